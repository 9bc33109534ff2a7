// The search over the gallery: the search box (results as you type, after a pause), tag filters
// as chips with completion, the category tabs with their counts, dates and sort, and the tags the
// results use most. Every change goes into the address bar (js/query.js) and lists again; back and
// forward bring an earlier search back. `/` jumps to the search box.

import { $, el, isShortcut, dialogOpen } from './dom.js';
import { state, emptyQuery } from './state.js';
import { t, formatCount } from './i18n.js';
import { on } from './events.js';
import { readLocation, isFiltered } from './query.js';
import { navigate, reloadGallery } from './gallery.js';
import { tagField, renderChips, sameTag } from './tags.js';

const TYPING_DELAY_MS = 300;
const FACET_TAGS = 12;

let typingTimer = 0;
// Whether the box's text has already made a history entry: the first pause in typing pushes one,
// later ones replace it, so back goes to before the search rather than letter by letter.
let typing = false;

function search(changes, push = true) {
  navigate('images', changes, push);
  syncSearch();
}

function addTag(tag) {
  if (state.query.tags.some((have) => sameTag(have, tag))) return;
  search({ tags: [...state.query.tags, tag] });
}

/** The images with one tag (a tag chip clicked in the image view): that tag alone, in the order
 *  chosen before. */
export function searchTag(tag) {
  search({ ...emptyQuery(), tags: [tag], sort: state.query.sort });
}

function removeTag(tag) {
  search({ tags: state.query.tags.filter((have) => have !== tag) });
}

/** Searches for the box's text now (Enter) or after a pause in typing. */
function searchText(now) {
  clearTimeout(typingTimer);
  const run = () => {
    const q = $('search-input').value.trim();
    if (q === state.query.q) return;
    search({ q }, !typing);
    typing = true;
  };
  if (now) run(); else typingTimer = setTimeout(run, TYPING_DELAY_MS);
}

/** The controls show the search in state.query (after a reload, back, or a change). */
export function syncSearch() {
  const q = state.query;
  const box = $('search-input');
  if (box.value.trim() !== q.q) box.value = q.q;
  for (const b of document.querySelectorAll('#filters [data-filter]')) {
    b.setAttribute('aria-pressed', String(b.dataset.filter === (q.category || 'all')));
  }
  renderChips($('tag-filter-chips'), q.tags, removeTag);
  $('active-filters').hidden = !isFiltered();
  $('date-from').value = q.from;
  $('date-to').value = q.to;
  $('date-to').min = q.from;
  $('date-from').max = q.to;
  $('sort').value = q.sort || 'newest';
  // On a phone the less used filters fold away; the toggle tells how many are set.
  const extra = q.tags.length + (q.from ? 1 : 0) + (q.to ? 1 : 0) + (q.sort ? 1 : 0);
  $('filters-toggle-count').textContent = extra ? String(extra) : '';
  $('filters-toggle-count').hidden = !extra;
  renderFacets();
}

/** The counts on the category tabs and the tags most used in the results, from the first page's
 *  facets; without them (an older server), the tabs have no counts and no tags are offered. */
function renderFacets() {
  const facets = state.facets;
  const cats = facets && facets.category && typeof facets.category === 'object' ? facets.category : null;
  for (const b of document.querySelectorAll('#filters [data-filter]')) {
    const count = b.querySelector('.tab-count');
    const n = !cats ? null
      : b.dataset.filter === 'all' ? (Number(cats.clothes) || 0) + (Number(cats.char) || 0)
        : Number(cats[b.dataset.filter]) || 0;
    count.textContent = n === null ? '' : formatCount(n);
    count.hidden = n === null;
  }
  const tags = (facets && Array.isArray(facets.tags) ? facets.tags : [])
    .filter((f) => f && typeof f.tag === 'string' && !state.query.tags.some((have) => sameTag(have, f.tag)))
    .slice(0, FACET_TAGS);
  const box = $('facet-tags-list');
  box.replaceChildren(...tags.map((f) => {
    const b = el('button', {
      type: 'button',
      class: 'chip chip-add',
      'data-testid': 'facet-tag',
      'data-tag': f.tag,
      'aria-label': t('search.addTag', { tag: f.tag, n: formatCount(f.count) }),
    });
    b.append(el('span', { class: 'chip-text' }, f.tag), el('span', { class: 'chip-count' }, formatCount(f.count)));
    b.addEventListener('click', () => addTag(f.tag));
    return b;
  }));
  $('facet-tags').hidden = tags.length === 0 || state.view !== 'images';
}

/** The search's controls, back and forward, and the `/` key. */
export function bindSearch() {
  on('listed', renderFacets);
  const box = $('search-input');
  box.addEventListener('input', () => searchText(false));
  box.addEventListener('keydown', (e) => {
    if (e.key === 'Enter') {
      e.preventDefault();
      searchText(true);
      typing = false;
    } else if (e.key === 'Escape' && box.value) {
      e.preventDefault();
      box.value = '';
      searchText(true);
    }
  });
  box.addEventListener('blur', () => { typing = false; });
  $('search-form').addEventListener('submit', (e) => e.preventDefault());

  for (const b of document.querySelectorAll('#filters [data-filter]')) {
    b.addEventListener('click', () => {
      const category = b.dataset.filter === 'all' ? '' : b.dataset.filter;
      if (category !== state.query.category) search({ category });
    });
  }
  tagField($('tag-filter-input'), { onPick: addTag, exclude: () => state.query.tags });
  for (const [id, key] of [['date-from', 'from'], ['date-to', 'to']]) {
    $(id).addEventListener('change', () => {
      const value = $(id).validity.valid ? $(id).value : '';
      if (value !== state.query[key]) search({ [key]: value });
    });
  }
  $('sort').addEventListener('change', () => {
    const sort = $('sort').value === 'newest' ? '' : $('sort').value;
    if (sort !== state.query.sort) search({ sort });
  });
  $('filters-clear').addEventListener('click', () => {
    search({ ...emptyQuery(), sort: state.query.sort });
    box.focus();
  });
  $('filters-toggle').addEventListener('click', () => {
    const open = $('filters-extra').classList.toggle('is-open');
    $('filters-toggle').setAttribute('aria-expanded', String(open));
  });

  window.addEventListener('popstate', () => {
    readLocation();
    syncSearch();
    reloadGallery();
  });
  document.addEventListener('keydown', (e) => {
    if (e.key !== '/' || !isShortcut(e) || dialogOpen() || $('search').hidden || $('gallery').hidden) return;
    e.preventDefault();
    box.focus();
    box.select();
  });
}
