// The page's shared state (who is logged in, what the gallery shows and has loaded, the selection,
// the open image, the upload category) and the limits the UI works with; several modules read and
// change it.

import { stored } from './dom.js';

export const MAX_BYTES = 10 * 1024 * 1024; // the server's limit for one image
export const PER_PAGE = 48;
export const MAX_PARALLEL_UPLOADS = 3;
export const CATEGORIES = ['clothes', 'char'];
export const SORTS = ['newest', 'oldest', 'largest', 'smallest'];
export const MAX_BATCH = 10000;  // ids in one batch request, the server's limit
export const GATHER_PER_PAGE = 100; // the list's largest page, for gathering every match's id

export const CATEGORY_KEY = 'imgvault.uploadCategory';
export const DISTINCT_KEY = 'imgvault.distinct';

/** No search: every image, newest first. */
export function emptyQuery() {
  return { q: '', tags: [], category: '', from: '', to: '', sort: '' };
}

export const state = {
  user: null,
  view: 'images',      // 'images' (the search's results) or 'trash'
  query: emptyQuery(), // the search, as the address bar holds it (js/query.js)
  wantPages: 1,        // pages to load at once: the address bar's page on a reload
  images: [],          // loaded images, in the list's order
  ids: new Set(),
  total: 0,            // matches of the search (or in the trash), from the list
  facets: null,        // the first page's facets, when the server sends them
  done: false,
  loading: false,
  loadError: null,
  generation: 0,       // bumps whenever the list starts over, so stale answers are dropped
  selecting: false,    // selection mode: cards pick instead of open
  selected: new Set(), // picked image ids, loaded or not ("select all matches")
  anchor: null,        // the last picked id, where a shift-click range starts
  viewerId: null,
  // "Collapse identical captures": the list of the newest capture of each image (distinct=1),
  // kept across visits; a search or filter beyond the category lists every capture.
  distinct: stored(DISTINCT_KEY) === '1',
  uploadCategory: CATEGORIES.includes(stored(CATEGORY_KEY)) ? stored(CATEGORY_KEY) : 'clothes',
};
export const cards = new Map(); // image id → <li>
// image id → a number that changes when its pixels do (an edit): added to its file URLs, so the
// browser fetches the new pixels instead of showing the ones it holds for the same address.
export const versions = new Map();
