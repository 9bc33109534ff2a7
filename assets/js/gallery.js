// The logged-in user's images: the grid of cards, paging (more pages as the grid scrolls),
// refreshing after uploads, and the category filter. A click on a card and a 401 are emitted as
// events ('open-image', 'session-lost'): the viewer and auth sit above this module.

import { $, el, safePath, formatBytes, shortTime } from './dom.js';
import { PER_PAGE, state, cards } from './state.js';
import { t, catName, formatCount } from './i18n.js';
import { api } from './api.js';
import { emit } from './events.js';
import { categoryOf, givenName, formatOf, dimsOf, titleOf, altOf } from './images.js';

export function resetGallery() {
  state.generation += 1;
  state.images = [];
  state.ids = new Set();
  state.total = 0;
  state.done = false;
  state.loading = false;
  state.loadError = null;
  cards.clear();
  $('grid').replaceChildren();
  renderGallery();
}

export function visibleImages() {
  return state.filter === 'all' ? state.images : state.images.filter((i) => categoryOf(i) === state.filter);
}

function cardFor(image) {
  let li = cards.get(image.id);
  if (li) return li;
  const cat = categoryOf(image);
  li = el('li');
  const button = el('button', {
    type: 'button',
    class: 'thumb',
    'data-testid': 'thumb',
    'data-id': image.id,
    'data-category': cat,
    'aria-label': t('thumb.open', { title: titleOf(image) }),
  });
  const media = el('span', { class: 'thumb-media' });
  const img = el('img', {
    alt: altOf(image),
    loading: 'lazy',
    decoding: 'async',
    'data-testid': 'thumb-image',
  });
  if (image.image_width > 0 && image.image_height > 0) {
    img.setAttribute('width', image.image_width);
    img.setAttribute('height', image.image_height);
  }
  img.addEventListener('load', () => img.classList.add('is-loaded'));
  img.addEventListener('error', () => media.classList.add('is-broken'));
  const src = safePath(image.thumbnail_url) || safePath(image.preview_url);
  if (src) img.src = src;
  media.append(img, el('span', { class: 'badge', 'data-category': cat }, catName(cat)));
  const body = el('span', { class: 'thumb-body' });
  // An image without a name of its own is shown by when it was saved.
  const name = givenName(image);
  const heading = name || shortTime(image.saved_at) || titleOf(image);
  const meta = name
    ? [shortTime(image.saved_at), formatBytes(image.file_size)]
    : [formatOf(image), dimsOf(image), formatBytes(image.file_size)];
  body.append(
    el('span', { class: 'thumb-title', 'data-testid': 'thumb-title', title: heading }, heading),
    el('span', { class: 'thumb-meta' }, meta.filter(Boolean).join(' · ')),
  );
  button.append(media, body);
  button.addEventListener('click', () => emit('open-image', image.id));
  li.append(button);
  cards.set(image.id, li);
  return li;
}

export function renderGallery() {
  const shown = visibleImages();
  $('grid').replaceChildren(...shown.map(cardFor));

  const count = $('gallery-count');
  if (state.filter === 'all') {
    count.textContent = state.images.length || state.done ? t('gallery.count', { n: formatCount(state.total) }) : '';
  } else {
    count.textContent = state.done
      ? t('gallery.countCat', { n: formatCount(shown.length) })
      : t('gallery.countCatMore', { n: formatCount(shown.length) });
  }
  count.dataset.total = String(state.total);

  const empty = state.done && !state.loading && !state.loadError && shown.length === 0;
  $('empty').hidden = !empty;
  $('empty-text').textContent = state.filter === 'all' ? t('empty.all') : t('empty.cat', { cat: catName(state.filter) });

  $('load-spinner').hidden = !state.loading;
  const status = $('load-status');
  const more = $('load-more');
  if (state.loading) {
    status.textContent = t('gallery.loading');
    more.hidden = true;
  } else if (state.loadError) {
    status.textContent = t('gallery.error', { msg: state.loadError });
    more.textContent = t('gallery.retry');
    more.hidden = false;
  } else {
    status.textContent = state.done && shown.length > PER_PAGE ? t('gallery.end') : '';
    more.textContent = t('gallery.more');
    more.hidden = state.done || !state.user;
  }
}

function addImages(list, atTop) {
  const fresh = [];
  for (const image of Array.isArray(list) ? list : []) {
    if (!image || typeof image.id !== 'string' || state.ids.has(image.id)) continue;
    state.ids.add(image.id);
    fresh.push(image);
  }
  state.images = atTop ? fresh.concat(state.images) : state.images.concat(fresh);
  return fresh.length;
}

/** Loads the next page. Pages are counted from what is loaded, so deletions and new uploads
 *  shift nothing out of view (an overlap is dropped by id). */
export async function loadMore() {
  if (!state.user || state.loading || state.done) return;
  const generation = state.generation;
  state.loading = true;
  state.loadError = null;
  renderGallery();
  const page = Math.floor(state.images.length / PER_PAGE) + 1;
  try {
    const data = await api('GET', `/api/user/images?page=${page}&per_page=${PER_PAGE}`);
    if (generation !== state.generation) return;
    const list = Array.isArray(data.images) ? data.images : [];
    addImages(list, false);
    state.total = Number(data.total) || 0;
    const pages = Number(data.pages) || 0;
    state.done = list.length === 0 || page >= pages || state.images.length >= state.total;
  } catch (err) {
    if (generation !== state.generation) return;
    if (err.status === 401) {
      state.loading = false;
      emit('session-lost');
      return;
    }
    state.loadError = err.display;
  }
  state.loading = false;
  renderGallery();
  // A filter can leave the sentinel in view after a page: keep going while it is.
  requestAnimationFrame(() => {
    if (!state.loadError && sentinelInView()) loadMore();
  });
}

/** New uploads: page 1 again, prepending whatever is new. */
let refreshTimer = 0;
export function scheduleRefresh() {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(refreshTop, 200);
}
async function refreshTop() {
  if (!state.user) return;
  const generation = state.generation;
  try {
    const data = await api('GET', `/api/user/images?page=1&per_page=${PER_PAGE}`);
    if (generation !== state.generation) return;
    addImages(data.images, true);
    state.total = Number(data.total) || state.total;
    if (state.images.length >= state.total) state.done = true;
    renderGallery();
  } catch (err) {
    if (err.status === 401) emit('session-lost');
  }
}

export function sentinelInView() {
  const gallery = $('gallery');
  if (gallery.hidden) return false;
  const rect = $('sentinel').getBoundingClientRect();
  return rect.top < window.innerHeight + 600;
}

function setFilter(filter) {
  state.filter = filter;
  for (const b of document.querySelectorAll('#filters [data-filter]')) {
    b.setAttribute('aria-pressed', String(b.dataset.filter === filter));
  }
  renderGallery();
  requestAnimationFrame(() => {
    if (sentinelInView()) loadMore();
  });
}

/** The filters, "load more" and scrolling to the end. */
export function bindGallery() {
  for (const b of document.querySelectorAll('#filters [data-filter]')) {
    b.addEventListener('click', () => setFilter(b.dataset.filter));
  }
  $('load-more').addEventListener('click', () => {
    state.loadError = null;
    loadMore();
  });
  if ('IntersectionObserver' in window) {
    new IntersectionObserver((entries) => {
      if (entries.some((e) => e.isIntersecting)) loadMore();
    }, { rootMargin: '600px 0px' }).observe($('sentinel'));
  }
}
