// The image view's edit tools. Quarter turns and mirrors are previewed on the image itself with a
// CSS transform; a crop is drawn on that preview with the pointer (or typed into its four fields);
// "apply" sends them all as one edit (POST /api/user/images/{id}/edit), which the server makes in
// this order: rotate, then flip, then crop in the coordinates of the turned and mirrored image,
// the image as the preview shows it. "Revert" brings back the upload (POST …/revert). Afterwards
// the image's record and pixels are new, and the view and the grid's card show them.

import { $, toast, busy } from './dom.js';
import { state, versions } from './state.js';
import { t } from './i18n.js';
import { api } from './api.js';
import { emit } from './events.js';
import { updateImage } from './gallery.js';

// The edit being prepared. Any sequence of turns and mirrors comes down to one clockwise turn
// followed by an optional horizontal mirror (a vertical mirror is a half turn and a horizontal
// one), which is also the order in which the server applies them.
let turn = 0;          // degrees clockwise: 0, 90, 180 or 270
let mirrored = false;  // then mirrored left to right
let crop = null;       // { x, y, width, height } in pixels of the turned and mirrored image
let cropping = false;  // the crop rectangle is being drawn
let onChanged = () => {};

function current() {
  return state.images.find((i) => i.id === state.viewerId) || null;
}

/** The image's size as shown before the edit: the browser's (which applies EXIF orientation, as
 *  the server's edit does) once it has loaded, else the record's. */
function natural() {
  const img = $('viewer-image');
  if (img.naturalWidth > 0) return [img.naturalWidth, img.naturalHeight];
  const image = current();
  return image ? [image.image_width || 0, image.image_height || 0] : [0, 0];
}

/** The size after the turn and mirror: the space the crop is in. */
function turnedSize() {
  const [w, h] = natural();
  return turn % 180 ? [h, w] : [w, h];
}

function wholeCrop(c) {
  const [w, h] = turnedSize();
  return !c || (c.x === 0 && c.y === 0 && c.width === w && c.height === h);
}

export function editPending() {
  return turn !== 0 || mirrored || !wholeCrop(crop) || cropping;
}

/** Forgets the edit being prepared (another image, the view closed, cancel). */
export function resetEdit() {
  turn = 0;
  mirrored = false;
  crop = null;
  cropping = false;
  renderEdit();
}

function rotate(degrees) {
  // A turn after a mirror turns the other way round: mirror∘turn(a) then turn(b) = mirror∘turn(a−b).
  turn = (turn + (mirrored ? -degrees : degrees) + 360) % 360;
  crop = null;
  renderEdit();
}

function flip(axis) {
  // A vertical mirror is a half turn and a horizontal mirror.
  if (axis === 'v') turn = (turn + 180) % 360;
  mirrored = !mirrored;
  crop = null;
  renderEdit();
}

/** How much the preview must be scaled to fit where the image was laid out: a quarter turn swaps
 *  its width and height, so it may have to shrink, or may grow up to its natural size; while a crop
 *  is drawn, a small image grows to fill the view, so that it can be drawn on. */
function fitScale() {
  const quarter = turn % 180 !== 0;
  if (!quarter && !cropping) return 1;
  const img = $('viewer-image');
  const media = $('viewer-media');
  const style = getComputedStyle(media);
  const room = [
    media.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight),
    media.clientHeight - parseFloat(style.paddingTop) - parseFloat(style.paddingBottom),
  ];
  const [w, h] = turnedSize();
  if (!img.offsetWidth || !w || !h) return 1;
  const laidOut = img.offsetWidth / natural()[0];
  const fits = Math.min(room[0] / w, room[1] / h, cropping ? Infinity : 1);
  return fits / laidOut;
}

/** The preview (the transform, the crop layer over the image) and the panel's buttons. */
export function renderEdit() {
  const img = $('viewer-image');
  const parts = [];
  const scale = fitScale();
  if (Math.abs(scale - 1) > 1e-3) parts.push(`scale(${scale.toFixed(4)})`);
  if (mirrored) parts.push('scaleX(-1)');
  if (turn) parts.push(`rotate(${turn}deg)`);
  if (parts.length) img.style.transform = parts.join(' ');
  else img.style.removeProperty('transform');
  img.classList.toggle('is-preview', parts.length > 0);
  img.dataset.turn = String(turn);
  img.dataset.mirrored = String(mirrored);

  $('edit-crop').setAttribute('aria-pressed', String(cropping));
  $('crop-fields').hidden = !cropping;
  placeCropLayer();

  const image = current();
  const pending = editPending();
  const [w, h] = turnedSize();
  const size = crop && !wholeCrop(crop) ? [crop.width, crop.height] : [w, h];
  const said = [];
  if (turn) said.push(t('edit.turned', { deg: turn }));
  if (mirrored) said.push(t('edit.mirrored'));
  if (crop && !wholeCrop(crop)) said.push(t('edit.cropped'));
  $('edit-status').textContent = said.length
    ? t('edit.pending', { what: said.join(t('list.sep')), w: size[0], h: size[1] })
    : cropping ? t('edit.cropHint') : '';
  $('edit-apply').hidden = !pending;
  $('edit-apply').disabled = !said.length;
  $('edit-cancel').hidden = !pending;
  $('edit-revert').hidden = pending || !(image && image.edited);
}

/** The crop layer lies exactly over the image as shown (its bounding box, which the transform
 *  turns and mirrors), so its fractions are fractions of the turned image. */
function placeCropLayer() {
  const layer = $('crop-layer');
  layer.hidden = !cropping;
  if (!cropping) return;
  const r = $('viewer-image').getBoundingClientRect();
  const m = $('viewer-media').getBoundingClientRect();
  layer.style.left = `${r.left - m.left}px`;
  layer.style.top = `${r.top - m.top}px`;
  layer.style.width = `${r.width}px`;
  layer.style.height = `${r.height}px`;
  const box = $('crop-box');
  const [w, h] = turnedSize();
  box.hidden = !crop || !w || !h;
  if (!box.hidden) {
    box.style.left = `${(crop.x / w) * 100}%`;
    box.style.top = `${(crop.y / h) * 100}%`;
    box.style.width = `${(crop.width / w) * 100}%`;
    box.style.height = `${(crop.height / h) * 100}%`;
  }
  const fields = { 'crop-x': 'x', 'crop-y': 'y', 'crop-w': 'width', 'crop-h': 'height' };
  for (const [id, key] of Object.entries(fields)) {
    const input = $(id);
    if (document.activeElement !== input) input.value = crop ? String(crop[key]) : '';
    input.max = String(key === 'x' || key === 'width' ? w : h);
  }
}

const clamp = (v, lo, hi) => Math.min(Math.max(v, lo), hi);

/** A pointer position as a pixel of the turned image. */
function pixelAt(event) {
  const r = $('crop-layer').getBoundingClientRect();
  const [w, h] = turnedSize();
  return {
    x: clamp(Math.round(((event.clientX - r.left) / r.width) * w), 0, w),
    y: clamp(Math.round(((event.clientY - r.top) / r.height) * h), 0, h),
  };
}

function bindCropDrawing() {
  const layer = $('crop-layer');
  let drag = null;
  layer.addEventListener('pointerdown', (e) => {
    if (e.button !== 0) return;
    e.preventDefault();
    layer.setPointerCapture(e.pointerId);
    const at = pixelAt(e);
    const inside = crop && at.x >= crop.x && at.x <= crop.x + crop.width &&
      at.y >= crop.y && at.y <= crop.y + crop.height;
    drag = inside ? { move: true, at, from: { ...crop } } : { move: false, at };
  });
  layer.addEventListener('pointermove', (e) => {
    if (!drag) return;
    const at = pixelAt(e);
    const [w, h] = turnedSize();
    if (drag.move) {
      crop = {
        ...drag.from,
        x: clamp(drag.from.x + at.x - drag.at.x, 0, w - drag.from.width),
        y: clamp(drag.from.y + at.y - drag.at.y, 0, h - drag.from.height),
      };
    } else {
      crop = {
        x: Math.min(drag.at.x, at.x),
        y: Math.min(drag.at.y, at.y),
        width: Math.abs(at.x - drag.at.x),
        height: Math.abs(at.y - drag.at.y),
      };
    }
    renderEdit();
  });
  const end = () => {
    if (!drag) return;
    drag = null;
    if (crop && (crop.width < 1 || crop.height < 1)) crop = null;
    renderEdit();
  };
  layer.addEventListener('pointerup', end);
  layer.addEventListener('pointercancel', end);

  const fields = { 'crop-x': 'x', 'crop-y': 'y', 'crop-w': 'width', 'crop-h': 'height' };
  for (const [id, key] of Object.entries(fields)) {
    $(id).addEventListener('input', () => {
      const [w, h] = turnedSize();
      const next = { ...(crop || { x: 0, y: 0, width: w, height: h }) };
      const value = Number.parseInt($(id).value, 10);
      if (!Number.isFinite(value)) return;
      next[key] = Math.max(0, value);
      next.x = clamp(next.x, 0, w - 1);
      next.y = clamp(next.y, 0, h - 1);
      next.width = clamp(next.width, 1, w - next.x);
      next.height = clamp(next.height, 1, h - next.y);
      crop = next;
      renderEdit();
    });
  }
}

/** The edited (or reverted) record: its pixels are new, at the same addresses. */
function took(image, message) {
  versions.set(image.id, (versions.get(image.id) || 0) + 1);
  resetEdit();
  updateImage(image);
  onChanged();
  toast(message);
}

async function send(path, body, button, doneKey) {
  const image = current();
  if (!image) return;
  busy(button, true);
  try {
    const answer = await api('POST', `/api/user/images/${encodeURIComponent(image.id)}/${path}`, body);
    if (answer.image && answer.image.id === image.id) took(answer.image, t(doneKey));
  } catch (err) {
    if (err.status === 401) emit('session-lost');
    else toast(err.display, true);
  } finally {
    busy(button, false);
  }
}

function applyEdit() {
  const body = {};
  if (turn) body.rotate = turn;
  if (mirrored) body.flip = 'h';
  if (crop && !wholeCrop(crop)) body.crop = { ...crop };
  if (Object.keys(body).length) send('edit', body, $('edit-apply'), 'edit.done');
}

/** The edit panel; changed() is called after an edit or a revert, to show the new image. */
export function bindEditor(changed) {
  onChanged = changed;
  $('edit-rotate-left').addEventListener('click', () => rotate(270));
  $('edit-rotate-right').addEventListener('click', () => rotate(90));
  $('edit-flip-h').addEventListener('click', () => flip('h'));
  $('edit-flip-v').addEventListener('click', () => flip('v'));
  $('edit-crop').addEventListener('click', () => {
    cropping = !cropping;
    if (!cropping && wholeCrop(crop)) crop = null;
    renderEdit();
  });
  $('edit-apply').addEventListener('click', applyEdit);
  $('edit-cancel').addEventListener('click', resetEdit);
  $('edit-revert').addEventListener('click', () => send('revert', {}, $('edit-revert'), 'edit.reverted'));
  bindCropDrawing();
  // The preview's size follows the view's.
  $('viewer-image').addEventListener('load', renderEdit);
  if ('ResizeObserver' in window) new ResizeObserver(() => { if (editPending()) renderEdit(); }).observe($('viewer-media'));
}
