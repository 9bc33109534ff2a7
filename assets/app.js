// imgvault web UI, entry module: plain JavaScript ES modules, no framework, no build step, no
// network beyond this server. It only wires the modules under js/ together and starts the page;
// the language switch lives here because it redraws what every other module drew.
//
// Safety rule for every module: text that comes from image metadata (page titles, URLs, alt text,
// captions, file names) is only ever written with textContent or setAttribute, never as HTML, and
// only http(s) URLs become links.
//
// The modules import each other in one direction only, with no cycles (tests/web.rs checks it):
// app.js -> auth -> viewer -> editor / batch / tags -> gallery -> query -> state -> dom, and so
// on down (search, select, trash, duplicates and stats sit beside the viewer). A lower module tells a higher one
// something (a 401, a click on a card, a new first page) through an event of js/events.js.

import { $ } from './js/dom.js';
import { state, cards } from './js/state.js';
import { lang, setLang, serverText, applyLanguage } from './js/i18n.js';
import { api } from './js/api.js';
import { refreshStatus } from './js/status.js';
import { enterUser, enterAnon, bindAuth } from './js/auth.js';
import { readLocation } from './js/query.js';
import { renderGallery, bindGallery } from './js/gallery.js';
import { syncSearch, bindSearch } from './js/search.js';
import { bindSelect } from './js/select.js';
import { bindTrash } from './js/trash.js';
import { bindKeys } from './js/keys.js';
import { fillViewer, bindViewer } from './js/viewer.js';
import { bindDuplicates, renderDuplicates } from './js/duplicates.js';
import { bindStats, renderStats } from './js/stats.js';
import { uploads, setUploadCategory, renderUpload, bindUpload } from './js/upload.js';
import { renderSyncStatus, bindSync } from './js/sync.js';

function setLanguage(next) {
  setLang(next);
  applyLanguage();
  // Everything drawn from data is drawn again in the new language.
  cards.clear();
  renderGallery();
  syncSearch();
  for (const item of uploads) renderUpload(item);
  if (state.viewerId) fillViewer();
  renderDuplicates();
  renderStats();
  refreshStatus();
  renderSyncStatus();
  for (const form of ['login', 'register']) {
    const box = $(form + '-error');
    if (!box.hidden && box.dataset.raw) box.textContent = serverText(box.dataset.raw);
  }
}

/** Every control on the page, module by module. */
function bind() {
  $('lang-toggle').addEventListener('click', () => setLanguage(lang === 'en' ? 'zh' : 'en'));
  bindAuth();
  bindSync();
  bindUpload();
  bindGallery();
  bindSearch();
  bindSelect();
  bindTrash();
  bindKeys();
  bindViewer();
  bindDuplicates();
  bindStats();
}

async function start() {
  $('server-address').textContent = location.origin;
  setUploadCategory(state.uploadCategory);
  readLocation();
  applyLanguage();
  bind();
  syncSearch();
  refreshStatus();
  let check = null;
  try {
    check = await api('GET', '/api/auth/check');
  } catch {
    check = null;
  }
  if (check && check.authenticated) enterUser(check.user);
  else enterAnon();
  document.body.dataset.ready = 'true';
}

if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
else start();
