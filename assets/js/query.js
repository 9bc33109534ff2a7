// Where the page is: the gallery or the trash, the search (text, tags, category, dates, sort) and
// how many pages are loaded. It lives in the address bar's query string under the API's own
// parameter names (?q=…&tag=a&tag=b&category=char&from=2026-01-01&to=…&sort=oldest&page=2, or
// ?view=trash), so a search can be bookmarked and a reload or the back button brings it back; the
// same names go to /api/user/images.

import { state, emptyQuery, CATEGORIES, SORTS, PER_PAGE } from './state.js';

const DATE = /^\d{4}-\d\d-\d\d$/;
const MAX_TAGS = 64;    // the server refuses more in one filter
const MAX_PAGES = 20;   // a reload loads at most this many pages at once

/** Sets the view, the search and the pages to load from the address bar. */
export function readLocation() {
  const p = new URLSearchParams(location.search);
  state.view = p.get('view') === 'trash' ? 'trash' : 'images';
  const query = emptyQuery();
  query.q = (p.get('q') || '').trim();
  const tags = new Map();
  for (const tag of p.getAll('tag')) {
    const shown = tag.trim();
    if (shown && !tags.has(shown.toLowerCase())) tags.set(shown.toLowerCase(), shown);
  }
  query.tags = [...tags.values()].slice(0, MAX_TAGS);
  const category = p.get('category');
  query.category = CATEGORIES.includes(category) ? category : '';
  for (const key of ['from', 'to']) query[key] = DATE.test(p.get(key) || '') ? p.get(key) : '';
  const sort = p.get('sort');
  query.sort = SORTS.includes(sort) && sort !== SORTS[0] ? sort : '';
  state.query = query;
  const page = Number.parseInt(p.get('page') || '', 10);
  state.wantPages = page > 1 ? Math.min(page, MAX_PAGES) : 1;
}

/** The search as query parameters: only what is set. */
function searchParams(query) {
  const p = new URLSearchParams();
  if (query.q) p.set('q', query.q);
  for (const tag of query.tags) p.append('tag', tag);
  for (const key of ['category', 'from', 'to', 'sort']) if (query[key]) p.set(key, query[key]);
  return p;
}

/** Pages the grid holds now. */
export function pagesLoaded() {
  return Math.ceil(state.images.length / PER_PAGE);
}

/** Puts the page's place into the address bar: as a new history entry (push), or in place of the
 *  current one (a further page loaded, a search still being typed). */
export function writeLocation(push) {
  const p = state.view === 'trash' ? new URLSearchParams({ view: 'trash' }) : searchParams(state.query);
  if (pagesLoaded() > 1) p.set('page', String(pagesLoaded()));
  const search = p.toString() ? '?' + p : '';
  if (search === location.search) return;
  const url = location.pathname + search + location.hash;
  if (push) history.pushState(null, '', url);
  else history.replaceState(null, '', url);
}

/** Whether the list collapses identical captures: asked for, and the search is at most a category
 *  (the server's distinct list combines with nothing else). */
export function isDistinct(query = state.query) {
  return state.view === 'images' && state.distinct &&
    !isFiltered({ ...query, category: '' }) && !query.sort;
}

/** The list's address for one page of what the grid shows. */
export function listUrl(page, perPage) {
  const p = state.view === 'trash' ? new URLSearchParams() : searchParams(state.query);
  if (isDistinct()) p.set('distinct', '1');
  p.set('page', String(page));
  p.set('per_page', String(perPage));
  return (state.view === 'trash' ? '/api/user/trash?' : '/api/user/images?') + p;
}

/** Whether the search narrows the list (the text, tags, a category or dates; not the sort). */
export function isFiltered(query = state.query) {
  return Boolean(query.q || query.tags.length || query.category || query.from || query.to);
}
