// Cloud sync, offered only when the account has it enabled: starts the task and shows its progress
// and result under the header. A 401 is emitted as 'session-lost' for auth.js, which sits above.

import { $, text, busy } from './dom.js';
import { t, serverText, formatCount } from './i18n.js';
import { api, waitForTask } from './api.js';
import { emit } from './events.js';
import { scheduleRefresh } from './gallery.js';

let syncState = null; // { phase: 'running'|'done'|'error', text, progress }

/** No sync result shown (logged out, or dismissed). */
export function clearSync() {
  syncState = null;
  renderSyncStatus();
}

export function renderSyncStatus() {
  const box = $('sync-status');
  if (!syncState) {
    box.hidden = true;
    return;
  }
  box.hidden = false;
  box.classList.toggle('is-error', syncState.phase === 'error');
  box.dataset.state = syncState.phase;
  const bar = $('sync-progress');
  bar.hidden = syncState.phase === 'error';
  if (syncState.phase === 'running' && typeof syncState.progress !== 'number') bar.removeAttribute('value');
  else bar.value = syncState.phase === 'done' ? 1 : syncState.progress || 0;
  $('sync-text').textContent = typeof syncState.text === 'function' ? syncState.text() : syncState.text;
  $('sync-dismiss').hidden = syncState.phase === 'running';
}

/** Progress of a sync task: a fraction (0–1) and a description, from either a bare number or the
 *  server's object ({ total_images, synced_images, total_files_missing, refused_count, … }). */
function syncProgressOf(task) {
  const p = task && task.progress;
  if (p && typeof p === 'object') {
    const total = Number(p.total_images) || 0;
    const synced = Number(p.synced_images) || 0;
    return {
      fraction: total > 0 ? Math.min(1, synced / total) : undefined,
      synced,
      total,
      missing: Number(p.total_files_missing) || 0,
      refused: Number(p.refused_count) || 0,
    };
  }
  const n = Number(p);
  if (p !== undefined && p !== null && Number.isFinite(n)) return { fraction: n > 1 ? n / 100 : n };
  return null;
}

function syncSummary(progress) {
  if (!progress || progress.synced === undefined) return '';
  const parts = [t('sync.synced', { n: formatCount(progress.synced), total: formatCount(progress.total) })];
  if (progress.missing) parts.push(t('sync.missing', { n: formatCount(progress.missing) }));
  if (progress.refused) parts.push(t('sync.refused', { n: formatCount(progress.refused) }));
  return parts.join(' · ');
}

async function onSync() {
  const button = $('sync-button');
  busy(button, true);
  syncState = { phase: 'running', text: () => t('sync.starting') };
  renderSyncStatus();
  try {
    const data = await api('POST', '/api/cloud/sync');
    const info = data.sync_info && typeof data.sync_info === 'object' ? data.sync_info : null;
    const started = typeof data.message === 'string' && data.message ? data.message : '';
    const detail = () => (info && info.image_count !== undefined
      ? t('sync.info', { n: formatCount(info.image_count), time: text(String(info.estimated_time || '')) || '?' })
      : '');
    if (typeof data.taskId === 'string' && data.taskId) {
      syncState = {
        phase: 'running',
        text: () => [started ? serverText(started) : t('sync.running'), detail()].filter(Boolean).join(' · '),
      };
      renderSyncStatus();
      let last = null;
      const task = await waitForTask(data.taskId, (task) => {
        const progress = syncProgressOf(task);
        if (!progress) return;
        last = progress;
        syncState.progress = progress.fraction;
        syncState.text = () => {
          const summary = syncSummary(progress);
          if (summary) return `${t('sync.running')} ${summary}`;
          return typeof progress.fraction === 'number'
            ? t('sync.progress', { p: Math.round(progress.fraction * 100) })
            : t('sync.running');
        };
        renderSyncStatus();
      }, 10 * 60 * 1000);
      const final = syncProgressOf(task) || last;
      if (task.status === 'failed') {
        const why = typeof task.error === 'string' && task.error ? task.error : '?';
        syncState = {
          phase: 'error',
          text: () => [t('sync.failed', { msg: serverText(why) }), syncSummary(final)].filter(Boolean).join(' · '),
        };
      } else if (task.status === 'timeout' || task.status === 'unknown') {
        syncState = { phase: 'done', text: () => t('sync.stillRunning') };
      } else {
        syncState = { phase: 'done', text: () => [t('sync.done'), syncSummary(final) || detail()].filter(Boolean).join(' · ') };
      }
    } else {
      syncState = {
        phase: 'done',
        text: () => [started ? serverText(started) : t('sync.started'), detail()].filter(Boolean).join(' · '),
      };
    }
    scheduleRefresh();
  } catch (err) {
    if (err.status === 401) { busy(button, false); emit('session-lost'); return; }
    syncState = { phase: 'error', text: () => t('sync.failed', { msg: err.display }) };
  }
  busy(button, false);
  renderSyncStatus();
}

/** The sync button and the dismissal of its result. */
export function bindSync() {
  $('sync-button').addEventListener('click', onSync);
  $('sync-dismiss').addEventListener('click', clearSync);
}
