// The page's shared state (who is logged in, the images loaded so far, the open image, the upload
// category) and the limits the UI works with; several modules read and change it.

import { stored } from './dom.js';

export const MAX_BYTES = 10 * 1024 * 1024; // the server's limit for one image
export const PER_PAGE = 48;
export const MAX_PARALLEL_UPLOADS = 3;
export const CATEGORIES = ['clothes', 'char'];

export const CATEGORY_KEY = 'imgvault.uploadCategory';

export const state = {
  user: null,
  images: [],          // loaded images, newest first, as the server lists them
  ids: new Set(),
  total: 0,            // the user's total, from the list
  done: false,
  loading: false,
  loadError: null,
  generation: 0,       // bumps on log in/out so stale answers are dropped
  filter: 'all',
  viewerId: null,
  uploadCategory: CATEGORIES.includes(stored(CATEGORY_KEY)) ? stored(CATEGORY_KEY) : 'clothes',
};
export const cards = new Map(); // image id → <li>
