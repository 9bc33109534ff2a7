// The image view (a modal dialog with the image and its metadata, previous/next, download) and
// deleting an image from it after a confirmation. It opens on the gallery's 'open-image' event; a
// 401 is emitted as 'session-lost' for auth.js, which sits above.

import { $, el, safeHttpUrl, safePath, text, formatBytes, toast, busy, isEditable, onBackdrop } from './dom.js';
import { state, cards } from './state.js';
import { t, catName, formatCount } from './i18n.js';
import { api } from './api.js';
import { scheduleStatus } from './status.js';
import { emit, on } from './events.js';
import { categoryOf, titleOf, altOf } from './images.js';
import { visibleImages, renderGallery, loadMore, sentinelInView } from './gallery.js';

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
  const src = safePath(image.preview_url);
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
}

function stepViewer(delta) {
  const list = visibleImages();
  const index = list.findIndex((i) => i.id === state.viewerId);
  const next = list[index + delta];
  if (next) {
    state.viewerId = next.id;
    fillViewer();
    if (delta > 0 && index + delta >= list.length - 3) loadMore();
  }
}

/** Asks before deleting; resolves true when confirmed. */
function confirmDelete() {
  const dialog = $('confirm');
  return new Promise((resolve) => {
    const done = (answer) => {
      $('confirm-ok').removeEventListener('click', yes);
      $('confirm-cancel').removeEventListener('click', no);
      dialog.removeEventListener('close', no);
      if (dialog.open) dialog.close();
      resolve(answer);
    };
    const yes = () => done(true);
    const no = () => done(false);
    $('confirm-ok').addEventListener('click', yes);
    $('confirm-cancel').addEventListener('click', no);
    dialog.addEventListener('close', no);
    dialog.showModal();
    $('confirm-cancel').focus();
  });
}

async function deleteCurrent() {
  const id = state.viewerId;
  if (!id || !(await confirmDelete())) return;
  const button = $('viewer-delete');
  busy(button, true);
  try {
    await api('DELETE', '/api/user/images/' + encodeURIComponent(id));
  } catch (err) {
    busy(button, false);
    if (err.status === 401) { emit('session-lost'); return; }
    if (err.status !== 404) { toast(err.display, true); return; }
    // 404: already gone; drop it from the page all the same.
  }
  busy(button, false);
  state.images = state.images.filter((i) => i.id !== id);
  state.ids.delete(id);
  cards.delete(id);
  state.total = Math.max(0, state.total - 1);
  viewerOpener = null;
  closeViewer();
  renderGallery();
  toast(t('toast.deleted'));
  scheduleStatus();
  requestAnimationFrame(() => {
    if (sentinelInView()) loadMore();
  });
}

/** The image view and the delete confirmation. */
export function bindViewer() {
  on('open-image', openViewer);
  const viewer = $('viewer');
  $('viewer-close').addEventListener('click', closeViewer);
  $('viewer-prev').addEventListener('click', () => stepViewer(-1));
  $('viewer-next').addEventListener('click', () => stepViewer(1));
  $('viewer-delete').addEventListener('click', deleteCurrent);
  $('viewer-image').addEventListener('load', () => { $('viewer-spinner').hidden = true; });
  $('viewer-image').addEventListener('error', () => { $('viewer-spinner').hidden = true; });
  viewer.addEventListener('click', (e) => { if (onBackdrop(viewer, e)) closeViewer(); });
  viewer.addEventListener('keydown', (e) => {
    if ($('confirm').open || isEditable(e.target)) return;
    if (e.key === 'ArrowLeft') { stepViewer(-1); e.preventDefault(); }
    if (e.key === 'ArrowRight') { stepViewer(1); e.preventDefault(); }
  });
  viewer.addEventListener('close', () => {
    state.viewerId = null;
    delete viewer.dataset.id;
    const back = viewerOpener;
    viewerOpener = null;
    if (back && back.isConnected) back.focus();
  });
  $('confirm').addEventListener('click', (e) => { if (onBackdrop($('confirm'), e)) $('confirm').close(); });
}
