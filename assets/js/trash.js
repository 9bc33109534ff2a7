// The trash: the grid's second list (GET /api/user/trash, ?view=trash in the address bar), where
// each image can be restored or deleted for good, and the whole trash emptied after a question that
// says how many images go. The selection's restore and delete are the batch bar's (select.js). The
// server itself deletes what has been in the trash for --trash-days.

import { $, ask, busy, toast } from './dom.js';
import { state } from './state.js';
import { t, formatCount } from './i18n.js';
import { api } from './api.js';
import { scheduleStatus } from './status.js';
import { on, emit } from './events.js';
import { navigate, refreshGallery } from './gallery.js';
import { runBatch } from './batch.js';

async function purgeOne(id) {
  const sure = await ask({ title: t('purge.title', { n: 1 }), text: t('purge.text'), ok: t('purge.ok') });
  if (sure) await runBatch('delete_forever', [id]);
}

async function emptyTrash() {
  const n = state.total;
  const sure = await ask({
    title: t('trash.emptyTitle'),
    text: t('trash.emptyText', { n: formatCount(n) }),
    ok: t('trash.emptyOk'),
  });
  if (!sure) return;
  const button = $('trash-empty');
  busy(button, true);
  try {
    const answer = await api('POST', '/api/user/trash/empty', {});
    toast(t('trash.emptied', { n: formatCount(Number(answer.deleted) || 0) }));
    scheduleStatus();
  } catch (err) {
    if (err.status === 401) { emit('session-lost'); return; }
    toast(err.display, true);
  } finally {
    busy(button, false);
  }
  await refreshGallery();
}

/** The way in and out of the trash, each card's buttons, and emptying. */
export function bindTrash() {
  $('trash-open').addEventListener('click', () => navigate('trash', {}, true));
  $('trash-back').addEventListener('click', () => navigate('images', {}, true));
  $('trash-empty').addEventListener('click', emptyTrash);
  on('trash-card', ({ id, action }) => {
    if (action === 'restore') runBatch('restore', [id]);
    else purgeOne(id);
  });
}
