// The list in the grid: the logged-in user's images as the search picks them (js/query.js), or
// their trash; paging (more pages as the grid scrolls), fetching again after uploads and changes,
// and drawing it all: the cards with their selection boxes, the counts, the batch bar's state.
// Choosing and acting are done above (search.js, select.js, trash.js, viewer.js); what happens here
// is told to them by events: a card opened or picked ('open-image', 'pick', 'trash-card'), a 401
// ('session-lost'), a first page with its facets ('listed').

import { $, el, formatBytes, shortTime, store } from './dom.js';
import { PER_PAGE, MAX_BATCH, DISTINCT_KEY, state, cards } from './state.js';
import { t, catName, formatCount } from './i18n.js';
import { api } from './api.js';
import { emit } from './events.js';
import { listUrl, writeLocation, isFiltered, isDistinct } from './query.js';
import { categoryOf, givenName, formatOf, dimsOf, titleOf, altOf, fileUrl } from './images.js';

/** An empty list, nothing selected; answers still on their way are dropped. */
export function resetGallery() {
  state.generation += 1;
  state.images = [];
  state.ids = new Set();
  state.total = 0;
  state.facets = null;
  state.done = false;
  state.loading = false;
  state.loadError = null;
  clearSelection();
  cards.clear();
  $('grid').replaceChildren();
  renderGallery();
}

/** Starts the list over (a new search, another view) and loads its first pages. */
export function reloadGallery() {
  resetGallery();
  loadMore();
}

/** Goes to a list: view ('images' or 'trash') with changes to the search, as a new history entry
 *  (push) or in place of the current one, from its first page. */
export function navigate(view, changes, push) {
  state.view = view;
  Object.assign(state.query, changes);
  state.wantPages = 1;
  resetGallery();
  writeLocation(push);
  loadMore();
}

export function clearSelection() {
  state.selecting = false;
  state.selected.clear();
  state.anchor = null;
}

export function visibleImages() {
  return state.images;
}

function cardFor(image) {
  let li = cards.get(image.id);
  if (li) return li;
  const cat = categoryOf(image);
  const trashed = state.view === 'trash';
  li = el('li', { class: 'tile', 'data-id': image.id });
  const title = titleOf(image);
  const button = el('button', {
    type: 'button',
    class: 'thumb',
    'data-testid': 'thumb',
    'data-id': image.id,
    'data-category': cat,
    'aria-label': t(trashed ? 'thumb.pick' : 'thumb.open', { title }),
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
  const src = fileUrl(image, 'thumbnail_url') || fileUrl(image, 'preview_url');
  if (src) img.src = src;
  media.append(img, el('span', { class: 'badge', 'data-category': cat }, catName(cat)));
  const captures = Number(image.captures) || 0;
  if (captures > 1) {
    media.append(el('span', {
      class: 'captures',
      'data-testid': 'captures',
      title: t('thumb.captures', { n: formatCount(captures) }),
    }, '×' + formatCount(captures)));
  }
  const body = el('span', { class: 'thumb-body' });
  // An image without a name of its own is shown by when it was saved.
  const name = givenName(image);
  const heading = name || shortTime(image.saved_at) || title;
  const meta = trashed
    ? [t('trash.when', { time: shortTime(image.trashed_at) }), formatBytes(image.file_size)]
    : name
      ? [shortTime(image.saved_at), formatBytes(image.file_size)]
      : [formatOf(image), dimsOf(image), formatBytes(image.file_size)];
  body.append(
    el('span', { class: 'thumb-title', 'data-testid': 'thumb-title', title: heading }, heading),
    el('span', { class: 'thumb-meta' }, meta.filter(Boolean).join(' · ')),
  );
  button.append(media, body);
  // In selection mode, and always in the trash, a click picks; shift-click picks a range.
  button.addEventListener('click', (e) => {
    if (state.selecting || trashed || e.shiftKey) emit('pick', { id: image.id, range: e.shiftKey });
    else emit('open-image', image.id);
  });
  const pick = el('input', {
    type: 'checkbox',
    class: 'pick',
    'data-testid': 'pick',
    'aria-label': t('thumb.select', { title }),
  });
  pick.addEventListener('click', (e) => emit('pick', { id: image.id, range: e.shiftKey }));
  li.append(button, pick);
  if (trashed) {
    const actions = el('span', { class: 'tile-actions' });
    for (const [action, key, testid] of [['restore', 'trash.restore', 'restore'], ['purge', 'trash.purge', 'purge']]) {
      const b = el('button', {
        type: 'button',
        class: 'btn btn-sm' + (action === 'purge' ? ' btn-ghost is-danger' : ''),
        'data-testid': testid,
        'aria-label': t(key + 'One', { title }),
      }, t(key));
      b.addEventListener('click', () => emit('trash-card', { id: image.id, action }));
      actions.append(b);
    }
    li.append(actions);
  }
  cards.set(image.id, li);
  return li;
}

export function renderGallery() {
  const shown = visibleImages();
  const trash = state.view === 'trash';
  $('grid').replaceChildren(...shown.map(cardFor));
  document.body.dataset.list = state.view;
  $('gallery-title').textContent = t(trash ? 'trash.title' : 'gallery.title');
  $('search').hidden = trash;
  $('trash-open').hidden = trash;
  $('trash-back').hidden = !trash;
  $('trash-empty').hidden = !trash || state.total === 0;

  const count = $('gallery-count');
  const known = state.images.length > 0 || state.done;
  const distinct = isDistinct();
  const countKey = trash ? 'trash.count' : isFiltered() ? 'gallery.found'
    : distinct ? 'gallery.countDistinct' : 'gallery.count';
  const toggle = $('distinct-toggle');
  toggle.hidden = trash;
  toggle.setAttribute('aria-pressed', String(state.distinct));
  // A search (beyond a category) lists every capture; the toggle says so rather than doing nothing.
  toggle.disabled = isFiltered({ ...state.query, category: '' }) || Boolean(state.query.sort);
  toggle.title = toggle.disabled ? t('gallery.distinctSearch') : '';
  count.textContent = known ? t(countKey, { n: formatCount(state.total) }) : '';
  count.dataset.total = String(state.total);

  const empty = state.done && !state.loading && !state.loadError && shown.length === 0;
  $('empty').hidden = !empty;
  const category = state.query.category;
  const onlyCategory = isFiltered({ ...state.query, category: '' }) === false;
  $('empty-text').textContent = trash ? t('empty.trash')
    : !isFiltered() ? t('empty.all')
      : category && onlyCategory ? t('empty.cat', { cat: catName(category) })
        : t('empty.search');

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
  renderSelection(shown);
}

/** The cards' boxes and the batch bar: the count, "select all N", the view's actions. */
function renderSelection(shown) {
  const n = state.selected.size;
  const selecting = state.selecting || n > 0;
  document.body.classList.toggle('is-selecting', selecting);
  $('select-mode').setAttribute('aria-pressed', String(selecting));
  for (const image of shown) {
    const li = cards.get(image.id);
    const on = state.selected.has(image.id);
    li.classList.toggle('is-selected', on);
    li.querySelector('.pick').checked = on;
  }
  const bar = $('batch-bar');
  bar.hidden = !selecting || !state.user;
  bar.dataset.view = state.view;
  $('batch-count').textContent = n ? t('batch.count', { n: formatCount(n) }) : t('batch.none');
  $('batch-count').dataset.count = String(n);
  const all = $('batch-all');
  all.hidden = state.total <= n || state.total > MAX_BATCH || bar.dataset.gathering === 'true';
  all.textContent = t('batch.all', { n: formatCount(state.total) });
  if (bar.dataset.gathering !== 'true') {
    $('batch-note').textContent = state.total > MAX_BATCH && state.total > n
      ? t('batch.tooMany', { max: formatCount(MAX_BATCH) })
      : '';
  }
  for (const button of bar.querySelectorAll('[data-needs-selection]')) button.disabled = n === 0;
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

/** A first page's news for those above: its facets (absent from servers without them). */
function takeFirstPage(data) {
  state.facets = data.facets && typeof data.facets === 'object' ? data.facets : null;
  emit('listed');
}

/** Loads the next page. Pages are counted from what is loaded, so deletions and new uploads
 *  shift nothing out of view (an overlap is dropped by id). After a reload, the pages the address
 *  bar names are loaded one after the other. */
export async function loadMore() {
  if (!state.user || state.loading || state.done) return;
  const generation = state.generation;
  state.loading = true;
  state.loadError = null;
  renderGallery();
  const page = Math.floor(state.images.length / PER_PAGE) + 1;
  try {
    const data = await api('GET', listUrl(page, PER_PAGE));
    if (generation !== state.generation) return;
    const list = Array.isArray(data.images) ? data.images : [];
    addImages(list, false);
    state.total = Number(data.total) || 0;
    if (page === 1) takeFirstPage(data);
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
  if (state.loadError) return;
  writeLocation(false);
  if (page < state.wantPages) {
    loadMore();
    return;
  }
  state.wantPages = 1;
  // The sentinel can still be in view after a page: keep going while it is.
  requestAnimationFrame(() => {
    if (!state.loadError && sentinelInView()) loadMore();
  });
}

/** Fetches the pages the grid holds again, after images changed on the server (a batch action,
 *  an edit): the list is swapped in at once, so the grid keeps its place, and only the cards of
 *  images that changed are drawn anew. */
export async function refreshGallery() {
  if (!state.user) return;
  const generation = ++state.generation;
  const pages = Math.max(1, Math.ceil(state.images.length / PER_PAGE));
  state.loading = true;
  state.loadError = null;
  let answers = [];
  try {
    for (let page = 1; page <= pages; page++) {
      const data = await api('GET', listUrl(page, PER_PAGE));
      if (generation !== state.generation) return;
      answers.push(data);
      if (page >= (Number(data.pages) || 0)) break;
    }
  } catch (err) {
    if (generation !== state.generation) return;
    state.loading = false;
    if (err.status === 401) { emit('session-lost'); return; }
    state.loadError = err.display;
    renderGallery();
    return;
  }
  const before = new Map(state.images.map((image) => [image.id, JSON.stringify(image)]));
  state.images = [];
  state.ids = new Set();
  for (const data of answers) addImages(data.images, false);
  for (const [id, was] of before) {
    const now = state.images.find((image) => image.id === id);
    if (!now || JSON.stringify(now) !== was) cards.delete(id);
  }
  const last = answers[answers.length - 1];
  state.total = Number(answers[0].total) || 0;
  state.done = answers.length < pages || answers.length >= (Number(last.pages) || 0) ||
    state.images.length >= state.total;
  state.loading = false;
  takeFirstPage(answers[0]);
  renderGallery();
  requestAnimationFrame(() => {
    if (sentinelInView()) loadMore();
  });
}

/** One image's record changed (its tags, its pixels): swap it in and draw its card anew. */
export function updateImage(image) {
  const index = state.images.findIndex((i) => i.id === image.id);
  if (index < 0) return;
  state.images[index] = image;
  cards.delete(image.id);
  renderGallery();
}

/** New uploads: page 1 again, prepending whatever is new. */
let refreshTimer = 0;
export function scheduleRefresh() {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(refreshTop, 200);
}
async function refreshTop() {
  if (!state.user || state.view !== 'images') return;
  const generation = state.generation;
  try {
    const data = await api('GET', listUrl(1, PER_PAGE));
    if (generation !== state.generation) return;
    addImages(data.images, true);
    state.total = Number(data.total) || state.total;
    if (state.images.length >= state.total) state.done = true;
    takeFirstPage(data);
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

/** "Load more" and scrolling to the end; the toggle that collapses identical captures. */
export function bindGallery() {
  $('distinct-toggle').addEventListener('click', () => {
    state.distinct = !state.distinct;
    store(DISTINCT_KEY, state.distinct ? '1' : '0');
    reloadGallery();
  });
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
