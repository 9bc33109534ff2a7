// The image view (a modal dialog with the image and its metadata, previous/next, download): its
// tags, edited in place; its edit tools (editor.js); its near-duplicates (similar.js); moving it
// to the trash, with undo. It opens on the gallery's 'open-image' event; a 401 is emitted as
// 'session-lost' for auth.js, which sits above. The arrow keys step through the list, Delete
// trashes the image, Esc closes the view (or first drops an edit being prepared).

import { $, el, safeHttpUrl, text, formatBytes, toast, busy, isShortcut, onBackdrop } from './dom.js';
import { state } from './state.js';
import { t, catName, formatCount } from './i18n.js';
import { api } from './api.js';
import { emit, on } from './events.js';
import { categoryOf, titleOf, altOf, fileUrl } from './images.js';
import { visibleImages, loadMore, updateImage } from './gallery.js';
import { runBatch } from './batch.js';
import { searchTag } from './search.js';
import { tagField, renderChips, sameTag } from './tags.js';
import { bindEditor, resetEdit, renderEdit, editPending } from './editor.js';
import { showSimilar, forgetSimilar } from './similar.js';

let viewerOpener = null;

function openViewer(id) {
  if (!state.ids.has(id)) return;
  const dialog = $('viewer');
  if (!dialog.open) viewerOpener = document.activeElement;
  state.viewerId = id;
  fillViewer();
  if (!dialog.open) dialog.showModal();
  $('viewer-close').focus();
}

export function closeViewer() {
  const dialog = $('viewer');
  if (dialog.open) dialog.close();
}

function fillLink(dd, url, label) {
  const safe = safeHttpUrl(url);
  if (safe) {
    const a = el('a', { href: safe, target: '_blank', rel: 'noopener noreferrer' }, label || safe);
    dd.replaceChildren(a);
  } else if (label || text(url)) {
    // Not an http(s) URL (or no URL): shown as text only, never as a link.
    dd.replaceChildren(el('span', null, label || text(url)));
  } else {
    dd.replaceChildren(el('span', { class: 'none' }, t('meta.none')));
  }
}

export function fillViewer() {
  const image = state.images.find((i) => i.id === state.viewerId);
  if (!image) return;
  const info = image.context_info || {};
  const cat = categoryOf(image);
  $('viewer-title').textContent = titleOf(image);

  const img = $('viewer-image');
  const src = fileUrl(image, 'preview_url');
  if (img.getAttribute('src') !== src) {
    img.removeAttribute('src');
    img.classList.remove('is-loaded');
    $('viewer-spinner').hidden = false;
    if (src) img.src = src;
  }
  img.alt = altOf(image);
  if (image.image_width > 0 && image.image_height > 0) {
    img.width = image.image_width;
    img.height = image.image_height;
  }

  const badge = $('viewer-category');
  badge.textContent = catName(cat);
  badge.dataset.category = cat;
  drawTags(image);

  const dims = $('viewer-dimensions');
  dims.textContent = image.image_width > 0 && image.image_height > 0
    ? t('meta.dimsValue', { w: image.image_width, h: image.image_height })
    : t('meta.none');
  const size = Number(image.file_size) || 0;
  $('viewer-size').textContent = size >= 1024
    ? `${formatBytes(size)} (${t('meta.bytes', { n: formatCount(size) })})`
    : formatBytes(size);
  $('viewer-size').dataset.bytes = String(size);
  $('viewer-saved').textContent = text(image.saved_at) || t('meta.none');
  fillLink($('viewer-page'), image.page_url, text(image.page_title));
  fillLink($('viewer-original'), image.original_url, '');
  showSources(image);

  const alt = text(info.alt);
  $('viewer-alt-row').hidden = !alt;
  $('viewer-alt').textContent = alt;
  const caption = text(info.caption);
  $('viewer-caption-row').hidden = !caption;
  $('viewer-caption').textContent = caption;
  $('viewer-filename').textContent = text(image.filename);

  const download = $('viewer-download');
  if (src) download.href = src; else download.removeAttribute('href');
  download.setAttribute('download', text(image.filename) || 'image');

  const list = visibleImages();
  const index = list.findIndex((i) => i.id === image.id);
  $('viewer-prev').disabled = index <= 0;
  $('viewer-next').disabled = index < 0 || index >= list.length - 1;
  $('viewer').dataset.id = image.id;
  renderEdit();
  showSimilar(image.id);
}

/** Every page the image's bytes were saved from ("seen on"), when there is more than this one:
 *  fetched once per image opened, drawn if the view still shows it. Not in the trash. */
let sourcesFor = null;
async function showSources(image) {
  const row = $('viewer-sources-row');
  if (sourcesFor === image.id) return;
  sourcesFor = image.id;
  row.hidden = true;
  $('viewer-sources').replaceChildren();
  if (state.view !== 'images') return;
  let sources;
  try {
    const answer = await api('GET', `/api/user/images/${encodeURIComponent(image.id)}/sources`);
    sources = Array.isArray(answer.sources) ? answer.sources : [];
  } catch (err) {
    if (err.status === 401) emit('session-lost');
    return;
  }
  if (state.viewerId !== image.id || sources.length < 2) return;
  $('viewer-sources').replaceChildren(...sources.map((source) => {
    const link = el('span');
    fillLink(link, source.page_url, text(source.page_title));
    const li = el('li', { 'data-testid': 'viewer-source', 'data-id': text(source.image_id) });
    li.append(...link.childNodes, el('span', { class: 'muted' }, text(source.saved_at)));
    return li;
  }));
  row.hidden = false;
}

/** The image's tags as chips, each with its remove button. */
function drawTags(image) {
  const tags = Array.isArray(image.tags) ? image.tags : [];
  renderChips($('viewer-tags'), tags, (tag) => saveTags(tags.filter((have) => have !== tag)), (tag) => {
    viewerOpener = null;
    closeViewer();
    searchTag(tag);
  });
}

/** Replaces the open image's tags (PUT …/tags) and shows what the server kept. */
let tagsSaving = Promise.resolve();
function saveTags(tags) {
  const id = state.viewerId;
  // One save at a time, in order: each sends the whole list.
  tagsSaving = tagsSaving.then(async () => {
    try {
      const answer = await api('PUT', `/api/user/images/${encodeURIComponent(id)}/tags`, { tags });
      const image = state.images.find((i) => i.id === id);
      if (image && Array.isArray(answer.tags)) {
        updateImage({ ...image, tags: answer.tags });
        if (state.viewerId === id) fillViewer();
      }
    } catch (err) {
      if (err.status === 401) emit('session-lost');
      else toast(err.display, true);
    }
  });
  return tagsSaving;
}

function addTag(tag) {
  const image = state.images.find((i) => i.id === state.viewerId);
  if (!image) return;
  const tags = Array.isArray(image.tags) ? image.tags : [];
  if (!tags.some((have) => sameTag(have, tag))) saveTags([...tags, tag]);
}

function stepViewer(delta) {
  const list = visibleImages();
  const index = list.findIndex((i) => i.id === state.viewerId);
  const next = list[index + delta];
  if (next) {
    state.viewerId = next.id;
    resetEdit();
    fillViewer();
    if (delta > 0 && index + delta >= list.length - 3) loadMore();
  }
}

/** Moves the open image to the trash (undo is offered) and closes the view. */
async function trashCurrent() {
  const id = state.viewerId;
  const button = $('viewer-delete');
  if (!id || button.disabled) return;
  busy(button, true);
  viewerOpener = null;
  const done = await runBatch('trash', [id]);
  busy(button, false);
  if (done) closeViewer();
}

/** The image view: its buttons, tags, edit tools and keys. */
export function bindViewer() {
  on('open-image', openViewer);
  const viewer = $('viewer');
  $('viewer-close').addEventListener('click', closeViewer);
  $('viewer-prev').addEventListener('click', () => stepViewer(-1));
  $('viewer-next').addEventListener('click', () => stepViewer(1));
  $('viewer-delete').addEventListener('click', trashCurrent);
  $('viewer-image').addEventListener('load', () => { $('viewer-spinner').hidden = true; });
  $('viewer-image').addEventListener('error', () => { $('viewer-spinner').hidden = true; });
  tagField($('viewer-tag-input'), {
    onPick: addTag,
    exclude: () => {
      const image = state.images.find((i) => i.id === state.viewerId);
      return image && Array.isArray(image.tags) ? image.tags : [];
    },
  });
  bindEditor(fillViewer);
  viewer.addEventListener('click', (e) => { if (onBackdrop(viewer, e)) closeViewer(); });
  // On the document: after a click on the picture, the focus is on no element of the view.
  document.addEventListener('keydown', (e) => {
    if (!viewer.open || $('confirm').open || !isShortcut(e)) return;
    if (e.key === 'ArrowLeft') { stepViewer(-1); e.preventDefault(); }
    if (e.key === 'ArrowRight') { stepViewer(1); e.preventDefault(); }
    if (e.key === 'Delete') { trashCurrent(); e.preventDefault(); }
  });
  // Esc drops an edit being prepared before it closes the view.
  viewer.addEventListener('cancel', (e) => {
    if (editPending()) {
      e.preventDefault();
      resetEdit();
    }
  });
  viewer.addEventListener('close', () => {
    state.viewerId = null;
    sourcesFor = null;
    delete viewer.dataset.id;
    resetEdit();
    forgetSimilar();
    const back = viewerOpener;
    viewerOpener = null;
    if (back && back.isConnected) back.focus();
  });
}
