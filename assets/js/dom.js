// DOM and browser helpers shared by every part of the UI: element creation that never parses
// HTML, the URL checks that decide what may become a link or an image source, formatting,
// localStorage that tolerates private mode, the toast, the confirmation dialog and what counts as
// a keyboard shortcut. It imports nothing.

export function stored(key) {
  try { return localStorage.getItem(key); } catch { return null; }
}
export function store(key, value) {
  try { localStorage.setItem(key, value); } catch { /* private mode: not remembered */ }
}

export const $ = (id) => document.getElementById(id);

/** Creates an element; attrs are set with setAttribute, text with textContent. */
export function el(tag, attrs, text) {
  const node = document.createElement(tag);
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v !== undefined && v !== null && v !== false) node.setAttribute(k, v === true ? '' : String(v));
    }
  }
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

/** The URL if it is an absolute http(s) URL, otherwise null (never a javascript: or data: link). */
export function safeHttpUrl(value) {
  if (typeof value !== 'string' || !/^\s*https?:\/\//i.test(value)) return null;
  try {
    const url = new URL(value.trim());
    return url.protocol === 'http:' || url.protocol === 'https:' ? url.href : null;
  } catch {
    return null;
  }
}

/** A same-origin path handed out by the server (thumbnail_url, preview_url). */
export function safePath(value) {
  return typeof value === 'string' && value.startsWith('/') && !value.startsWith('//') ? value : null;
}

export function text(value) {
  return typeof value === 'string' ? value.trim() : '';
}

export function formatBytes(n) {
  const bytes = Number(n) || 0;
  if (bytes < 1024) return Math.round(bytes) + ' B';
  if (bytes < 1024 * 1024) return (bytes / 1024).toFixed(bytes < 10 * 1024 ? 1 : 0) + ' KB';
  if (bytes < 1024 ** 3) return (bytes / 1024 / 1024).toFixed(1) + ' MB';
  if (bytes < 1024 ** 4) return (bytes / 1024 ** 3).toFixed(1) + ' GB';
  return (bytes / 1024 ** 4).toFixed(1) + ' TB';
}

/** "2025-06-13 18:45:30" (the server's local time) → "06-13 18:45" this year, else "2025-06-13". */
export function shortTime(s) {
  const m = typeof s === 'string' && s.match(/^(\d{4})-(\d\d-\d\d)[ T](\d\d:\d\d)/);
  if (!m) return text(s);
  return Number(m[1]) === new Date().getFullYear() ? `${m[2]} ${m[3]}` : `${m[1]}-${m[2]}`;
}

/** One short message at a time, at the bottom of the screen. An action ({ label, run }) adds a
 *  button to it (such as "undo") and keeps it up longer. */
let toastTimer = 0;
export function toast(message, isError, action) {
  const node = el('div', { class: 'toast' + (isError ? ' is-error' : ''), 'data-testid': 'toast' });
  node.append(el('span', null, message));
  if (action) {
    const button = el('button', { type: 'button', class: 'toast-action', 'data-testid': 'toast-action' }, action.label);
    button.addEventListener('click', () => {
      node.remove();
      action.run();
    });
    node.append(button);
  }
  $('toasts').replaceChildren(node);
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => node.remove(), action ? 10000 : isError ? 6000 : 3000);
}

export function busy(button, on) {
  button.disabled = on;
  button.setAttribute('aria-busy', String(on));
}

const TEXT_INPUTS = /^(text|search|email|password|number|url|tel|date|datetime-local|month|time|week)$/;

/** A field that takes typing (where keys are text, not shortcuts, and a paste is the field's). */
export function isEditable(target) {
  if (!(target instanceof HTMLElement)) return false;
  if (target.isContentEditable || /^(TEXTAREA|SELECT)$/.test(target.tagName)) return true;
  return target.tagName === 'INPUT' && TEXT_INPUTS.test(target.type);
}

/** A key press meant for the page: not typed into a field, without Ctrl/Alt/⌘, not yet handled. */
export function isShortcut(event) {
  return !event.defaultPrevented && !event.ctrlKey && !event.metaKey && !event.altKey &&
    !isEditable(event.target);
}

/** Whether a modal dialog (the image view, a confirmation) is open over the page. */
export function dialogOpen() {
  return Boolean(document.querySelector('dialog[open]'));
}

/** A click on a modal dialog's backdrop (outside its box), not on its own padding. */
export function onBackdrop(dialog, event) {
  if (event.target !== dialog) return false;
  const r = dialog.getBoundingClientRect();
  return event.clientX < r.left || event.clientX > r.right || event.clientY < r.top || event.clientY > r.bottom;
}

/** Asks in the confirmation dialog ({ title, text, ok }: the words to show); resolves true when
 *  confirmed, false when cancelled or dismissed. */
export function ask({ title, text: body, ok }) {
  const dialog = $('confirm');
  $('confirm-title').textContent = title;
  $('confirm-text').textContent = body;
  $('confirm-ok').textContent = ok;
  return new Promise((resolve) => {
    const done = (answer) => {
      $('confirm-ok').removeEventListener('click', yes);
      $('confirm-cancel').removeEventListener('click', no);
      dialog.removeEventListener('close', no);
      dialog.removeEventListener('click', outside);
      if (dialog.open) dialog.close();
      resolve(answer);
    };
    const yes = () => done(true);
    const no = () => done(false);
    const outside = (event) => { if (onBackdrop(dialog, event)) done(false); };
    $('confirm-ok').addEventListener('click', yes);
    $('confirm-cancel').addEventListener('click', no);
    dialog.addEventListener('close', no);
    dialog.addEventListener('click', outside);
    dialog.showModal();
    $('confirm-cancel').focus();
  });
}
