// The "find duplicates" page: the user's groups of near-duplicates (GET /api/user/duplicates),
// largest group first, a page of groups at a time, shown in place of the gallery. In each group
// the images to keep are ticked, at first only the best one (most pixels, then the largest file,
// then the oldest); "move the other N to the trash" sends the rest through the batch action, with
// undo in the message, and the groups are asked for again. "Skip" hides a group until the page is
// opened again; nothing about it is stored.

import { $, el, busy, toast, shortTime, formatBytes } from './dom.js';
import { t, formatCount } from './i18n.js';
import { api } from './api.js';
import { emit } from './events.js';
import { titleOf, altOf, fileUrl, dimsOf } from './images.js';
import { refreshGallery } from './gallery.js';
import { runBatch } from './batch.js';

const PER_PAGE = 10;
const PER_GROUP = 12;

const page = {
  open: false,
  groups: [],
  next: 1,
  pages: 0,
  loading: false,
  answer: null,
  /** Group keys (their images' ids) skipped since the page was opened. */
  skipped: new Set(),
};

function groupKey(group) {
  return group.images.map((i) => i.id).join(' ');
}

/** The image a group keeps unless told otherwise: the most pixels, then bytes, then the oldest
 *  (the group lists them newest first, so on a tie of saved times the later one is older). */
function best(images) {
  const pixels = (i) => (Number(i.image_width) || 0) * (Number(i.image_height) || 0);
  return images.reduce((a, b) => {
    if (pixels(b) !== pixels(a)) return pixels(b) > pixels(a) ? b : a;
    if ((Number(b.file_size) || 0) !== (Number(a.file_size) || 0)) {
      return (Number(b.file_size) || 0) > (Number(a.file_size) || 0) ? b : a;
    }
    return String(b.saved_at) <= String(a.saved_at) ? b : a;
  });
}

function choice(image, kept, onChange) {
  const title = titleOf(image);
  const li = el('li', { class: 'dupe-item', 'data-id': image.id, 'data-testid': 'dupe-item' });
  const label = el('label', { class: 'dupe-choice' });
  const media = el('span', { class: 'dupe-media' });
  const img = el('img', { alt: altOf(image), loading: 'lazy', decoding: 'async' });
  const src = fileUrl(image, 'thumbnail_url') || fileUrl(image, 'preview_url');
  if (src) img.src = src;
  media.append(img);
  const box = el('input', {
    type: 'checkbox',
    class: 'dupe-keep',
    'data-testid': 'dupe-keep',
    'aria-label': t('dupes.keepOne', { title }),
  });
  box.checked = kept;
  box.addEventListener('change', onChange);
  const keep = el('span', { class: 'dupe-keep-row' });
  keep.append(box, el('span', null, t('dupes.keep')));
  const meta = [dimsOf(image), formatBytes(image.file_size), shortTime(image.saved_at)].filter(Boolean);
  label.append(
    media,
    keep,
    el('span', { class: 'dupe-title', title }, title),
    el('span', { class: 'dupe-meta' }, meta.join(' · ')),
  );
  li.append(label);
  li.classList.toggle('is-kept', kept);
  return li;
}

function groupView(group) {
  const keep = best(group.images);
  const li = el('li', { class: 'dupe-group card', 'data-testid': 'dupe-group' });
  const head = el('div', { class: 'dupe-head' });
  const heading = el('h3', null, t('dupes.group', { n: formatCount(group.size) }));
  head.append(heading);
  if (group.size > group.images.length) {
    head.append(el('span', { class: 'muted' }, t('dupes.cut', { shown: group.images.length })));
  }
  const list = el('ul', { class: 'dupe-items' });
  const trash = el('button', { type: 'button', class: 'btn btn-danger btn-sm', 'data-testid': 'dupe-trash' });
  const skip = el('button', { type: 'button', class: 'btn btn-ghost btn-sm', 'data-testid': 'dupe-skip' }, t('dupes.skip'));
  const update = () => {
    const boxes = [...list.querySelectorAll('.dupe-keep')];
    for (const b of boxes) b.closest('.dupe-item').classList.toggle('is-kept', b.checked);
    const others = boxes.filter((b) => !b.checked).length;
    const kept = boxes.length - others;
    trash.textContent = kept === 0 ? t('dupes.keepSome') : t('dupes.trashOthers', { n: formatCount(others) });
    trash.disabled = kept === 0 || others === 0;
  };
  list.append(...group.images.map((image) => choice(image, image.id === keep.id, update)));
  trash.addEventListener('click', async () => {
    const ids = [...list.querySelectorAll('.dupe-item')]
      .filter((item) => !item.querySelector('.dupe-keep').checked)
      .map((item) => item.dataset.id);
    busy(trash, true);
    const done = await runBatch('trash', ids);
    busy(trash, false);
    if (done) await reload();
  });
  skip.addEventListener('click', () => {
    page.skipped.add(groupKey(group));
    li.remove();
    renderCount();
  });
  const actions = el('div', { class: 'dupe-actions' });
  actions.append(trash, skip);
  li.append(head, list, actions);
  update();
  return li;
}

function renderCount() {
  const a = page.answer;
  const count = $('dupes-count');
  count.textContent = a ? t('dupes.count', {
    groups: formatCount(a.total_groups),
    n: formatCount(a.total_images),
  }) : '';
  count.dataset.groups = a ? String(a.total_groups) : '';
  const notes = [];
  if (a && a.pending > 0) notes.push(t('dupes.pending', { n: formatCount(a.pending) }));
  if (a && a.complete === false) notes.push(t('dupes.incomplete'));
  $('dupes-note').textContent = notes.join(' ');
  $('dupes-note').hidden = notes.length === 0;
}

function render() {
  const shown = page.groups.filter((g) => !page.skipped.has(groupKey(g)));
  $('dupes-list').replaceChildren(...shown.map(groupView));
  renderCount();
  $('dupes-empty').hidden = page.loading || page.groups.length > 0;
  $('dupes-more').hidden = page.loading || page.next > page.pages;
  $('dupes-status').textContent = page.loading ? t('dupes.loading') : '';
}

async function loadPage() {
  if (page.loading) return;
  page.loading = true;
  render();
  try {
    const answer = await api('GET', `/api/user/duplicates?page=${page.next}&per_page=${PER_PAGE}&per_group=${PER_GROUP}`);
    page.answer = answer;
    page.groups = page.groups.concat(Array.isArray(answer.groups) ? answer.groups : []);
    page.pages = Number(answer.pages) || 0;
    page.next += 1;
  } catch (err) {
    if (err.status === 401) { emit('session-lost'); return; }
    toast(err.display, true);
  } finally {
    page.loading = false;
    if (page.open) render();
  }
}

/** The groups again from the first page (after images moved to the trash). */
async function reload() {
  page.groups = [];
  page.next = 1;
  page.pages = 0;
  await loadPage();
}

function openPage() {
  page.open = true;
  page.skipped.clear();
  document.body.dataset.page = 'duplicates';
  $('gallery').hidden = true;
  $('dupes').hidden = false;
  $('dupes-title').focus();
  reload();
}

/** Draws the page again (in a new language), when it is open. */
export function renderDuplicates() {
  if (page.open) render();
}

export function closeDuplicates() {
  if (!page.open) return;
  page.open = false;
  delete document.body.dataset.page;
  $('dupes').hidden = true;
  $('gallery').hidden = false;
  refreshGallery();
}

export function bindDuplicates() {
  $('dupes-open').addEventListener('click', openPage);
  $('dupes-back').addEventListener('click', closeDuplicates);
  $('dupes-more').addEventListener('click', loadPage);
}
