// Choosing images to act on together: a card's box picks it (a long press does on a touch screen,
// and any click does once choosing has begun), shift extends from the last pick, and "select all N"
// gathers the id of every match of the search, page by page. The batch bar acts on the choice
// through batch.js: to the trash, to a category, tags added or removed; in the trash, restore or
// delete for good. Delete trashes the choice, Esc lets it go.

import { $, toast, busy, ask, isShortcut, dialogOpen } from './dom.js';
import { state, MAX_BATCH, GATHER_PER_PAGE } from './state.js';
import { t, formatCount } from './i18n.js';
import { api } from './api.js';
import { on, emit } from './events.js';
import { listUrl } from './query.js';
import { renderGallery, clearSelection } from './gallery.js';
import { runBatch } from './batch.js';
import { tagField, renderChips, sameTag } from './tags.js';

const LONG_PRESS_MS = 500;

/** Picks or unpicks id; with range, picks everything between the last pick and id as well. */
function pick({ id, range }) {
  state.selecting = true;
  const order = state.images.map((image) => image.id);
  const from = range && state.anchor ? order.indexOf(state.anchor) : -1;
  const to = order.indexOf(id);
  if (from >= 0 && to >= 0) {
    const [a, b] = from < to ? [from, to] : [to, from];
    for (const other of order.slice(a, b + 1)) state.selected.add(other);
  } else if (state.selected.has(id)) {
    state.selected.delete(id);
  } else {
    state.selected.add(id);
  }
  state.anchor = id;
  renderGallery();
}

export function stopSelecting() {
  clearSelection();
  closeTagPanel();
  renderGallery();
}

/** Every match's id, gathered page by page with the search as it is (at most MAX_BATCH). */
async function selectAll() {
  const bar = $('batch-bar');
  const total = state.total;
  if (total > MAX_BATCH) {
    toast(t('batch.tooMany', { max: formatCount(MAX_BATCH) }), true);
    return;
  }
  const generation = state.generation;
  const ids = [];
  bar.dataset.gathering = 'true';
  renderGallery();
  try {
    for (let page = 1; ids.length < total; page++) {
      $('batch-note').textContent = t('batch.gathering', { n: formatCount(ids.length), total: formatCount(total) });
      const data = await api('GET', listUrl(page, GATHER_PER_PAGE));
      if (generation !== state.generation) return;
      const list = Array.isArray(data.images) ? data.images : [];
      for (const image of list) if (image && typeof image.id === 'string') ids.push(image.id);
      if (list.length === 0 || page >= (Number(data.pages) || 0)) break;
    }
    state.selecting = true;
    for (const id of ids.slice(0, MAX_BATCH)) state.selected.add(id);
  } catch (err) {
    if (err.status === 401) emit('session-lost');
    else toast(err.display, true);
  } finally {
    delete bar.dataset.gathering;
    $('batch-note').textContent = '';
    renderGallery();
  }
}

/** Runs action on the selection; the choice is let go once it is done. */
async function act(action, extra, button) {
  const ids = [...state.selected];
  if (!ids.length) return;
  if (button) busy(button, true);
  const done = await runBatch(action, ids, extra);
  if (button) busy(button, false);
  if (done) stopSelecting();
}

export async function trashSelection() {
  if (state.view !== 'images' || !state.selected.size) return;
  await act('trash', {}, $('batch-trash'));
}

async function purgeSelection() {
  const n = state.selected.size;
  if (!n) return;
  const sure = await ask({
    title: t('purge.title', { n: formatCount(n) }),
    text: t('purge.text'),
    ok: t('purge.ok'),
  });
  if (sure) await act('delete_forever', {}, $('batch-purge'));
}

// The tags to add to or remove from the selection, typed into the batch bar's tag panel.
let batchTags = [];

function drawBatchTags() {
  renderChips($('batch-tag-chips'), batchTags, (tag) => {
    batchTags = batchTags.filter((have) => have !== tag);
    drawBatchTags();
  });
  const none = batchTags.length === 0 && !$('batch-tag-input').value.trim();
  $('batch-tag-add').disabled = none;
  $('batch-tag-remove').disabled = none;
}

function closeTagPanel() {
  $('batch-tags-panel').hidden = true;
  $('batch-tags').setAttribute('aria-expanded', 'false');
  batchTags = [];
  $('batch-tag-input').value = '';
  drawBatchTags();
}

async function applyTags(action, button) {
  // Text typed but not yet made a chip counts as well.
  const typed = $('batch-tag-input').value.trim();
  if (typed && !batchTags.some((have) => sameTag(have, typed))) batchTags.push(typed);
  if (!batchTags.length) return;
  await act(action, { tags: batchTags }, button);
}

/** A long press on a card picks it, on touch screens (where a plain tap opens it). */
function bindLongPress(grid) {
  let timer = 0;
  let start = null;    // where the touch went down, while it is down
  let pressed = false; // the touch became a long press: its click is not a tap
  const cancel = () => {
    clearTimeout(timer);
    start = null;
  };
  grid.addEventListener('pointerdown', (e) => {
    pressed = false;
    const card = e.pointerType === 'touch' && e.target.closest('.thumb');
    if (!card) return;
    start = { x: e.clientX, y: e.clientY };
    timer = setTimeout(() => {
      pressed = true;
      if (!state.selected.has(card.dataset.id)) pick({ id: card.dataset.id, range: false });
      if (navigator.vibrate) navigator.vibrate(20);
    }, LONG_PRESS_MS);
  });
  grid.addEventListener('pointerup', cancel);
  grid.addEventListener('pointercancel', cancel);
  grid.addEventListener('pointermove', (e) => {
    if (start && Math.hypot(e.clientX - start.x, e.clientY - start.y) > 10) cancel();
  });
  // The click that ends a long press must not pick the card again (or open it).
  grid.addEventListener('click', (e) => {
    if (!pressed) return;
    pressed = false;
    e.stopPropagation();
    e.preventDefault();
  }, true);
  // Nor may the browser's own long-press menu open over it.
  grid.addEventListener('contextmenu', (e) => {
    if (pressed || start) e.preventDefault();
  });
}

/** The cards' boxes, the batch bar, and the Delete and Esc keys. */
export function bindSelect() {
  on('pick', pick);
  bindLongPress($('grid'));
  $('select-mode').addEventListener('click', () => {
    if (state.selecting) stopSelecting();
    else {
      state.selecting = true;
      renderGallery();
    }
  });
  $('batch-clear').addEventListener('click', stopSelecting);
  $('batch-all').addEventListener('click', selectAll);
  $('batch-trash').addEventListener('click', trashSelection);
  $('batch-category').addEventListener('change', async () => {
    const select = $('batch-category');
    const category = select.value;
    if (!category) return;
    await act('set_category', { category }, select);
    select.value = '';
  });
  $('batch-tags').addEventListener('click', () => {
    const panel = $('batch-tags-panel');
    if (!panel.hidden) { closeTagPanel(); return; }
    panel.hidden = false;
    $('batch-tags').setAttribute('aria-expanded', 'true');
    $('batch-tag-input').focus();
  });
  tagField($('batch-tag-input'), {
    onPick: (tag) => {
      if (!batchTags.some((have) => sameTag(have, tag))) batchTags.push(tag);
      drawBatchTags();
    },
    exclude: () => batchTags,
  });
  $('batch-tag-input').addEventListener('input', drawBatchTags);
  // Esc in the field (with no offers open, which it closes first) closes the panel.
  $('batch-tag-input').addEventListener('keydown', (e) => {
    if (e.key !== 'Escape' || e.defaultPrevented) return;
    e.preventDefault();
    closeTagPanel();
    $('batch-tags').focus();
  });
  $('batch-tag-add').addEventListener('click', () => applyTags('add_tags', $('batch-tag-add')));
  $('batch-tag-remove').addEventListener('click', () => applyTags('remove_tags', $('batch-tag-remove')));
  $('batch-restore').addEventListener('click', () => act('restore', {}, $('batch-restore')));
  $('batch-purge').addEventListener('click', purgeSelection);
  drawBatchTags();
  // Messages and the end of the page keep clear of the bar, whatever its height.
  if ('ResizeObserver' in window) {
    new ResizeObserver(() => {
      document.body.style.setProperty('--batch-bar-height', `${$('batch-bar').offsetHeight}px`);
    }).observe($('batch-bar'));
  }

  document.addEventListener('keydown', (e) => {
    if (!isShortcut(e) || dialogOpen() || !state.user) return;
    if (e.key === 'Delete' && state.selected.size && state.view === 'images') {
      e.preventDefault();
      trashSelection();
    } else if (e.key === 'Escape' && (state.selecting || state.selected.size)) {
      e.preventDefault();
      stopSelecting();
    }
  });
}
