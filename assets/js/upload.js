// Uploads from the file picker, paste (Ctrl+V and the paste button) and drag and drop: a queue of
// at most MAX_PARALLEL_UPLOADS at a time, each shown with its progress and outcome.

import { store, $, el, formatBytes, toast, isEditable } from './dom.js';
import { MAX_BYTES, MAX_PARALLEL_UPLOADS, CATEGORIES, CATEGORY_KEY, state } from './state.js';
import { t, serverText, catName } from './i18n.js';
import { xhrPost, waitForTask } from './api.js';
import { scheduleStatus } from './status.js';
import { scheduleRefresh } from './gallery.js';

export const uploads = [];
const waiting = [];
let active = 0;
let uploadSeq = 0;

export function setUploadCategory(cat) {
  state.uploadCategory = cat;
  store(CATEGORY_KEY, cat);
  for (const r of document.querySelectorAll('input[name="upload-category"]')) r.checked = r.value === cat;
}

/** sources: [{ blob, name, clipboard }] */
function addUploads(sources) {
  if (!sources.length) return;
  $('uploads').hidden = false;
  for (const src of sources) {
    const item = {
      id: ++uploadSeq,
      blob: src.blob,
      name: src.name,
      size: src.blob.size,
      clipboard: Boolean(src.clipboard),
      category: state.uploadCategory,
      phase: 'queued',
      progress: 0,
      message: null,   // a server message (error or warning), shown as the server wrote it
      node: null,
      preview: null,
    };
    uploads.push(item);
    buildUpload(item);
    if (item.size > MAX_BYTES) {
      // The server would refuse it too; no need to send 10 MB to hear that.
      item.phase = 'error';
      item.message = '文件大小不能超过10MB';
      renderUpload(item);
    } else {
      waiting.push(item);
    }
  }
  pump();
}

function buildUpload(item) {
  const li = el('li', { class: 'upload-item', 'data-testid': 'upload-item' });
  // A local preview; a file the browser cannot show keeps the plain placeholder.
  const thumb = el('span', { class: 'upload-thumb', 'aria-hidden': 'true' });
  if (item.blob.type && item.blob.type.startsWith('image/')) {
    item.preview = URL.createObjectURL(item.blob);
    const img = el('img', { alt: '' });
    img.addEventListener('error', () => img.remove());
    img.src = item.preview;
    thumb.append(img);
  }
  const line = el('div', { class: 'upload-line' });
  line.append(
    el('span', { class: 'upload-name', 'data-testid': 'upload-name', title: item.name }, item.name),
    el('span', { class: 'upload-meta' }),
  );
  const bar = el('div', { class: 'upload-progress' });
  const progress = el('progress', { max: '1', value: '0', 'data-testid': 'upload-progress' });
  progress.setAttribute('aria-label', item.name);
  bar.append(progress, el('span', { class: 'upload-status', 'data-testid': 'upload-status' }));
  li.append(thumb, line, bar);
  item.node = li;
  $('upload-list').prepend(li);
  renderUpload(item);
}

function uploadStatusText(item) {
  switch (item.phase) {
    case 'queued': return t('up.queued');
    case 'reading': return t('up.reading');
    case 'uploading': return t('up.uploading', { p: Math.round(item.progress * 100) });
    case 'processing': return t('up.processing');
    case 'done':
      return item.anonymous ? t('up.savedAnon', { cat: catName(item.category) }) : t('up.saved', { cat: catName(item.category) });
    case 'warn': return t('up.processFailed', { msg: serverText(item.message) });
    case 'error': return item.message ? serverText(item.message) : t('up.network');
    default: return '';
  }
}

export function renderUpload(item) {
  const li = item.node;
  if (!li) return;
  const final = item.phase === 'done' || item.phase === 'warn';
  li.className = 'upload-item' + (final ? ' is-done' : '') + (item.phase === 'warn' ? ' is-warn' : '') +
    (item.phase === 'error' ? ' is-error' : '');
  li.dataset.state = item.phase;
  li.querySelector('.upload-meta').textContent = `${formatBytes(item.size)} · ${catName(item.category)}`;
  const progress = li.querySelector('progress');
  if (item.phase === 'processing' || item.phase === 'reading') {
    progress.removeAttribute('value'); // indeterminate
  } else {
    progress.value = final ? 1 : item.progress;
  }
  const status = li.querySelector('.upload-status');
  status.textContent = uploadStatusText(item);
  status.setAttribute('role', item.phase === 'error' ? 'alert' : 'status');
}

function pump() {
  while (active < MAX_PARALLEL_UPLOADS && waiting.length) {
    const item = waiting.shift();
    active += 1;
    runUpload(item).finally(() => {
      active -= 1;
      pump();
    });
  }
}

function readAsDataUrl(blob) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.addEventListener('load', () => resolve(String(reader.result)));
    reader.addEventListener('error', () => reject(reader.error));
    reader.readAsDataURL(blob);
  });
}

async function runUpload(item) {
  const onProgress = (fraction) => {
    item.progress = fraction;
    renderUpload(item);
  };
  let answer;
  if (item.clipboard) {
    item.phase = 'reading';
    renderUpload(item);
    let dataUrl;
    try {
      dataUrl = await readAsDataUrl(item.blob);
    } catch (err) {
      item.phase = 'error';
      item.message = t('clip.failed', { msg: err && err.message ? err.message : '?' });
      renderUpload(item);
      return;
    }
    item.phase = 'uploading';
    renderUpload(item);
    answer = await xhrPost('/api/upload-clipboard',
      JSON.stringify({ imageData: dataUrl, category: item.category }), 'application/json', onProgress);
  } else {
    item.phase = 'uploading';
    renderUpload(item);
    const form = new FormData();
    form.append('category', item.category);
    form.append('file', item.blob, item.name);
    answer = await xhrPost('/api/upload-file', form, null, onProgress);
  }

  const data = answer.data;
  if (answer.status < 200 || answer.status >= 300 || !data || data.success === false) {
    item.phase = 'error';
    item.message = data && typeof data.error === 'string'
      ? data.error
      : answer.status ? t('err.http', { status: answer.status }) : null;
    renderUpload(item);
    return;
  }
  item.anonymous = data.isLoggedIn === false;
  if (CATEGORIES.includes(data.category)) item.category = data.category;
  item.progress = 1;
  if (state.user && !item.anonymous) scheduleRefresh();
  scheduleStatus();

  if (typeof data.taskId === 'string' && data.taskId) {
    item.phase = 'processing';
    renderUpload(item);
    const task = await waitForTask(data.taskId, null, 60000);
    if (task.status === 'failed') {
      item.phase = 'warn';
      item.message = typeof task.error === 'string' ? task.error : '';
      renderUpload(item);
      return;
    }
  }
  item.phase = 'done';
  renderUpload(item);
}

function clearFinished() {
  for (let i = uploads.length - 1; i >= 0; i -= 1) {
    const item = uploads[i];
    if (['done', 'warn', 'error'].includes(item.phase)) {
      item.node.remove();
      if (item.preview) URL.revokeObjectURL(item.preview);
      uploads.splice(i, 1);
    }
  }
  $('uploads').hidden = uploads.length === 0;
}

function filesToSources(files, clipboard) {
  const stamp = new Date().toTimeString().slice(0, 8);
  return Array.from(files).map((file, i) => {
    let name = file.name;
    if (clipboard && (!name || /^image\.\w+$/i.test(name))) {
      const ext = (file.type.split('/')[1] || 'png').replace('jpeg', 'jpg');
      name = `${t('up.clipName')} ${stamp}${files.length > 1 ? '-' + (i + 1) : ''}.${ext}`;
    }
    return { blob: file, name: name || 'image', clipboard };
  });
}

function imageFilesFrom(dataTransfer) {
  const files = [];
  if (!dataTransfer) return files;
  for (const item of Array.from(dataTransfer.items || [])) {
    if (item.kind === 'file' && item.type.startsWith('image/')) {
      const file = item.getAsFile();
      if (file) files.push(file);
    }
  }
  if (!files.length) {
    for (const file of Array.from(dataTransfer.files || [])) {
      if (file.type.startsWith('image/')) files.push(file);
    }
  }
  return files;
}

function onPaste(event) {
  const files = imageFilesFrom(event.clipboardData);
  if (!files.length) {
    if (!isEditable(event.target)) toast(t('clip.empty'));
    return;
  }
  event.preventDefault();
  addUploads(filesToSources(files, true));
}

async function onPasteButton() {
  if (!navigator.clipboard || typeof navigator.clipboard.read !== 'function') {
    toast(t('clip.unsupported'), true);
    return;
  }
  let items;
  try {
    items = await navigator.clipboard.read();
  } catch (err) {
    const denied = err && (err.name === 'NotAllowedError' || err.name === 'SecurityError');
    toast(denied ? t('clip.denied') : t('clip.failed', { msg: err && err.message ? err.message : '?' }), true);
    return;
  }
  const files = [];
  for (const item of items) {
    const type = item.types.find((ty) => ty.startsWith('image/'));
    if (!type) continue;
    try {
      const blob = await item.getType(type);
      files.push(new File([blob], '', { type }));
    } catch {
      // an entry that cannot be read is skipped
    }
  }
  if (!files.length) {
    toast(t('clip.empty'));
    return;
  }
  addUploads(filesToSources(files, true));
}

// Drag and drop anywhere on the page.
let dragDepth = 0;
function hasFiles(event) {
  return Boolean(event.dataTransfer && Array.from(event.dataTransfer.types || []).includes('Files'));
}
function showDrop(on) {
  $('drop-overlay').hidden = !on;
  $('dropzone').classList.toggle('is-over', on);
  if (on) $('drop-overlay-text').textContent = t('upload.dropNow', { cat: catName(state.uploadCategory) });
}

/** The upload sources (file picker, paste, drop) and the warning when leaving mid-upload. */
export function bindUpload() {
  for (const radio of document.querySelectorAll('input[name="upload-category"]')) {
    radio.addEventListener('change', () => { if (radio.checked) setUploadCategory(radio.value); });
  }
  $('pick-button').addEventListener('click', () => $('file-input').click());
  $('file-input').addEventListener('change', (e) => {
    const input = e.target;
    addUploads(filesToSources(input.files || [], false));
    input.value = '';
  });
  // The Clipboard API exists only in secure contexts (https, localhost); elsewhere (plain http on
  // a LAN) the button would only fail, and Ctrl+V still works.
  $('paste-button').hidden = !(navigator.clipboard && typeof navigator.clipboard.read === 'function');
  $('paste-button').addEventListener('click', onPasteButton);
  $('clear-uploads').addEventListener('click', clearFinished);
  document.addEventListener('paste', onPaste);

  document.addEventListener('dragenter', (e) => {
    if (!hasFiles(e)) return;
    e.preventDefault();
    dragDepth += 1;
    showDrop(true);
  });
  document.addEventListener('dragover', (e) => {
    if (!hasFiles(e)) return;
    e.preventDefault();
    e.dataTransfer.dropEffect = 'copy';
  });
  document.addEventListener('dragleave', (e) => {
    if (!hasFiles(e)) return;
    dragDepth = Math.max(0, dragDepth - 1);
    if (dragDepth === 0) showDrop(false);
  });
  document.addEventListener('drop', (e) => {
    if (!hasFiles(e)) return;
    e.preventDefault();
    dragDepth = 0;
    showDrop(false);
    addUploads(filesToSources(e.dataTransfer.files, false));
  });

  window.addEventListener('beforeunload', (e) => {
    if (active > 0 || waiting.length > 0) e.preventDefault();
  });
}
