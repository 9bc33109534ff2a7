// Log in, register, log out, and the two views they switch between: anonymous (log in + upload)
// and logged in (upload + gallery). A 401 from a user-only call, in any module, is emitted as
// 'session-lost' and ends up in sessionLost().

import { $, text, toast, busy } from './dom.js';
import { state } from './state.js';
import { t } from './i18n.js';
import { ApiError, api } from './api.js';
import { on } from './events.js';
import { resetGallery, loadMore } from './gallery.js';
import { closeViewer } from './viewer.js';
import { closeDuplicates } from './duplicates.js';
import { closeStats } from './stats.js';
import { clearSync } from './sync.js';

function showView(view) {
  document.body.dataset.view = view;
  $('boot').hidden = true;
  $('layout').hidden = false;
  const user = view === 'user';
  $('auth').hidden = user;
  $('gallery').hidden = !user;
  $('account').hidden = !user;
  $('login-jump').hidden = user;
  $('anon-note').hidden = user;
  $('sync-button').hidden = !(user && state.user && state.user.cloud_sync_enabled === true);
  if (!user) {
    clearSync();
  }
}

export function enterUser(user) {
  state.user = user || {};
  const name = text(state.user.username) || '?';
  $('account-name').textContent = name;
  $('account-name').title = text(state.user.email);
  $('avatar').textContent = Array.from(name)[0].toUpperCase();
  resetGallery();
  showView('user');
  loadMore();
}

export function enterAnon() {
  state.user = null;
  resetGallery();
  closeViewer();
  closeDuplicates();
  closeStats();
  showView('anon');
}

/** A user-only call answered 401: the session is gone (expired, or logged out elsewhere). */
function sessionLost() {
  if (!state.user) return;
  enterAnon();
  toast(t('toast.sessionLost'), true);
}

function selectAuthTab(which) {
  const login = which === 'login';
  $('tab-login').setAttribute('aria-selected', String(login));
  $('tab-register').setAttribute('aria-selected', String(!login));
  $('tab-login').tabIndex = login ? 0 : -1;
  $('tab-register').tabIndex = login ? -1 : 0;
  $('login-form').hidden = !login;
  $('register-form').hidden = login;
}

function showFormMessage(form, message, raw, ok) {
  const box = $(form + '-error');
  box.textContent = message;
  box.dataset.raw = raw || '';
  box.classList.toggle('form-ok', Boolean(ok));
  box.setAttribute('role', ok ? 'status' : 'alert');
  box.hidden = false;
}
function clearFormMessage(form) {
  const box = $(form + '-error');
  box.hidden = true;
  box.textContent = '';
  box.dataset.raw = '';
  for (const input of $(form + '-form').querySelectorAll('input')) input.removeAttribute('aria-invalid');
}
function showApiError(form, err) {
  showFormMessage(form, err.display, err.fromServer ? err.message : '');
}

/** Checks that the listed inputs are filled; marks and focuses the first empty one. */
function requireFilled(form, inputs) {
  for (const [input, labelKey] of inputs) {
    if (!input.value.trim()) {
      input.setAttribute('aria-invalid', 'true');
      showFormMessage(form, t('field.required', { field: t(labelKey) }));
      input.focus();
      return false;
    }
  }
  return true;
}

async function logIn(username, password, remember) {
  await api('POST', '/api/login', { username, password, remember_me: remember });
  const check = await api('GET', '/api/auth/check');
  if (!check.authenticated) throw new ApiError(t('err.http', { status: 401 }), 401, false);
  return check.user;
}

async function onLogin(event) {
  event.preventDefault();
  clearFormMessage('login');
  const username = $('login-username');
  const password = $('login-password');
  if (!requireFilled('login', [[username, 'field.username'], [password, 'field.password']])) return;
  const button = event.submitter || $('login-form').querySelector('[type=submit]');
  busy(button, true);
  try {
    const user = await logIn(username.value.trim(), password.value, $('login-remember').checked);
    password.value = '';
    enterUser(user);
  } catch (err) {
    showApiError('login', err);
    password.select();
  } finally {
    busy(button, false);
  }
}

async function onRegister(event) {
  event.preventDefault();
  clearFormMessage('register');
  const username = $('register-username');
  const email = $('register-email');
  const password = $('register-password');
  if (!requireFilled('register', [
    [username, 'field.username'], [email, 'field.email'], [password, 'field.password'],
  ])) return;
  const button = event.submitter || $('register-form').querySelector('[type=submit]');
  busy(button, true);
  try {
    await api('POST', '/api/register', {
      username: username.value.trim(),
      email: email.value.trim(),
      password: password.value,
    });
  } catch (err) {
    showApiError('register', err);
    busy(button, false);
    return;
  }
  try {
    const user = await logIn(username.value.trim(), password.value, true);
    enterUser(user);
    $('register-form').reset();
  } catch {
    // Registered, but the automatic log-in did not work: let the user log in by hand.
    $('login-username').value = username.value.trim();
    selectAuthTab('login');
    showFormMessage('login', t('register.thenLogin'), '', true);
    $('login-password').focus();
  } finally {
    password.value = '';
    busy(button, false);
  }
}

async function onLogout() {
  const button = $('logout-button');
  busy(button, true);
  try {
    await api('POST', '/api/logout');
  } catch (err) {
    if (err.status !== 401) {
      toast(err.display, true);
      busy(button, false);
      return;
    }
  }
  busy(button, false);
  enterAnon();
  selectAuthTab('login');
  clearFormMessage('login');
  toast(t('toast.loggedOut'));
}

/** The header's account buttons and the log-in and register forms. */
export function bindAuth() {
  on('session-lost', sessionLost);
  $('logout-button').addEventListener('click', onLogout);
  $('login-jump').addEventListener('click', () => {
    selectAuthTab('login');
    $('auth').scrollIntoView({ behavior: 'smooth', block: 'start' });
    $('login-username').focus({ preventScroll: true });
  });
  // Auth tabs (click, and arrow keys as tabs should).
  $('tab-login').addEventListener('click', () => selectAuthTab('login'));
  $('tab-register').addEventListener('click', () => selectAuthTab('register'));
  for (const tab of [$('tab-login'), $('tab-register')]) {
    tab.addEventListener('keydown', (e) => {
      if (e.key === 'ArrowLeft' || e.key === 'ArrowRight') {
        const next = tab.id === 'tab-login' ? 'register' : 'login';
        selectAuthTab(next);
        $('tab-' + next).focus();
        e.preventDefault();
      }
    });
  }
  $('login-form').addEventListener('submit', onLogin);
  $('register-form').addEventListener('submit', onRegister);
  for (const input of document.querySelectorAll('.form input')) {
    input.addEventListener('input', () => input.removeAttribute('aria-invalid'));
  }
}
