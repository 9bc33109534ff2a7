// Connecting devices: the account's "extension & keys" dialog. It asks the server for a pairing
// code (typed into the browser extension's options page, which trades it for a capture key), and
// lists, creates and revokes API keys. A new key is shown once, here, and never again.

import { $, ask, busy, toast } from './dom.js';
import { t } from './i18n.js';
import { api } from './api.js';
import { emit } from './events.js';

let countdown = null;

function failed(err) {
  if (err.status === 401) { emit('session-lost'); return; }
  toast(err.display, true);
}

const scopeName = (scope) => t('keys.scope.' + scope);

async function loadKeys() {
  const list = $('keys-list');
  try {
    const { keys } = await api('GET', '/api/keys');
    list.replaceChildren();
    $('keys-empty').hidden = keys.length > 0;
    for (const key of keys) {
      const row = document.createElement('li');
      row.className = 'key-row';
      row.dataset.testid = 'key-row';
      const name = document.createElement('b');
      name.textContent = key.name;
      const facts = document.createElement('span');
      facts.className = 'muted';
      facts.textContent = [
        scopeName(key.scope),
        t('keys.created', { time: key.created_at }),
        key.last_used_at ? t('keys.used', { time: key.last_used_at }) : t('keys.unused'),
      ].join(' · ');
      const revoke = document.createElement('button');
      revoke.type = 'button';
      revoke.className = 'btn btn-ghost btn-sm';
      revoke.dataset.testid = 'key-revoke';
      revoke.textContent = t('keys.revoke');
      revoke.addEventListener('click', () => revokeKey(key));
      const text = document.createElement('span');
      text.className = 'key-text';
      text.append(name, facts);
      row.append(text, revoke);
      list.append(row);
    }
  } catch (err) {
    failed(err);
  }
}

async function revokeKey(key) {
  const sure = await ask({ title: t('keys.revokeTitle', { name: key.name }), text: t('keys.revokeText'), ok: t('keys.revoke') });
  if (!sure) return;
  try {
    await api('DELETE', `/api/keys/${encodeURIComponent(key.id)}`);
    toast(t('keys.revoked'));
  } catch (err) {
    failed(err);
  }
  await loadKeys();
}

async function pairingCode() {
  const button = $('pair-get');
  busy(button, true);
  try {
    const { code, expires_at: expires } = await api('POST', '/api/keys/pairing-code', {});
    $('pair-code').textContent = code;
    $('pair-box').hidden = false;
    const ends = Date.now() + 5 * 60 * 1000;
    clearInterval(countdown);
    const tick = () => {
      const left = Math.max(0, Math.round((ends - Date.now()) / 1000));
      $('pair-expiry').textContent = left > 0
        ? t('pair.expires', { time: `${Math.floor(left / 60)}:${String(left % 60).padStart(2, '0')}` })
        : t('pair.expired');
      $('pair-code').classList.toggle('expired', left === 0);
      if (left === 0) clearInterval(countdown);
    };
    tick();
    countdown = setInterval(tick, 1000);
    $('pair-code').title = expires;
  } catch (err) {
    failed(err);
  } finally {
    busy(button, false);
  }
}

async function createKey(event) {
  event.preventDefault();
  const button = $('key-create');
  busy(button, true);
  try {
    const created = await api('POST', '/api/keys', { name: $('key-name').value, scope: $('key-scope').value });
    $('key-secret').value = created.key;
    $('key-shown').hidden = false;
    $('key-name').value = '';
    await loadKeys();
  } catch (err) {
    failed(err);
  } finally {
    busy(button, false);
  }
}

async function copySecret() {
  const input = $('key-secret');
  try {
    await navigator.clipboard.writeText(input.value);
    toast(t('keys.copied'));
  } catch {
    // Plain-http LAN addresses have no clipboard API: leave it selected for Ctrl+C.
    input.select();
  }
}

function open() {
  $('pair-box').hidden = true;
  $('key-shown').hidden = true;
  $('key-secret').value = '';
  $('keys-dialog').showModal();
  loadKeys();
}

function closed() {
  clearInterval(countdown);
  // The key is shown once: it does not stay in the page after the dialog closes.
  $('key-secret').value = '';
  $('key-shown').hidden = true;
}

export function bindKeys() {
  $('keys-open').addEventListener('click', open);
  $('keys-close').addEventListener('click', () => $('keys-dialog').close());
  $('keys-dialog').addEventListener('close', closed);
  $('pair-get').addEventListener('click', pairingCode);
  $('key-form').addEventListener('submit', createKey);
  $('key-copy').addEventListener('click', copySecret);
}
