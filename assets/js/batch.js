// One action on many images at once (POST /api/user/images/batch: trash, restore, delete_forever,
// set_category, add_tags, remove_tags) and what follows each: the list is fetched again, a message
// says how many changed and why any were skipped, and a move to the trash offers to undo it.
// Every action on images in the UI that the batch endpoint can do goes through here, one image or
// ten thousand.

import { toast } from './dom.js';
import { MAX_BATCH } from './state.js';
import { t, catName, formatCount } from './i18n.js';
import { api } from './api.js';
import { scheduleStatus } from './status.js';
import { emit } from './events.js';
import { refreshGallery } from './gallery.js';

const SKIP_REASONS = ['not_found', 'repeated', 'unchanged', 'too_many_tags', 'in_trash', 'not_in_trash'];

/** "2 skipped: not found 1, unchanged 1", or '' when none were. */
export function skippedText(skipped) {
  if (!Array.isArray(skipped) || skipped.length === 0) return '';
  const counts = new Map();
  for (const s of skipped) {
    const reason = SKIP_REASONS.includes(s && s.reason) ? s.reason : 'other';
    counts.set(reason, (counts.get(reason) || 0) + 1);
  }
  const parts = [...counts].map(([reason, n]) => t('skip.' + reason, { n: formatCount(n) }));
  return t('batch.skipped', { n: formatCount(skipped.length), why: parts.join(t('list.sep')) });
}

function doneText(action, changed, extra) {
  const n = formatCount(changed);
  if (action === 'set_category') return t('batch.done.set_category', { n, cat: catName(extra.category) });
  if (action === 'add_tags' || action === 'remove_tags') {
    return t('batch.done.' + action, { n, tags: extra.tags.join(t('list.sep')) });
  }
  return t('batch.done.' + action, { n });
}

/** Runs action on ids (extra: { category } or { tags }), then lists again and says what happened.
 *  Resolves to the server's answer ({ changed, skipped }), or null when it failed (said in a
 *  toast). */
export async function runBatch(action, ids, extra = {}) {
  const list = [...ids].slice(0, MAX_BATCH);
  if (list.length === 0) return null;
  let answer;
  try {
    answer = await api('POST', '/api/user/images/batch', { ids: list, action, ...extra });
  } catch (err) {
    if (err.status === 401) emit('session-lost');
    else toast(err.display, true);
    return null;
  }
  const changed = Number(answer.changed) || 0;
  const skipped = Array.isArray(answer.skipped) ? answer.skipped : [];
  const message = [doneText(action, changed, extra), skippedText(skipped)].filter(Boolean).join(t('sentence.sep'));
  await refreshGallery();
  if (action === 'trash' || action === 'restore' || action === 'delete_forever') scheduleStatus();
  if (action === 'trash' && changed > 0) {
    // Undo brings back exactly what moved: not the skipped, which were not in the list anyway.
    const gone = new Set(skipped.map((s) => s.id));
    const moved = list.filter((id) => !gone.has(id));
    toast(message, false, { label: t('undo'), run: () => runBatch('restore', moved) });
  } else {
    toast(message, changed === 0 && skipped.length > 0);
  }
  return { changed, skipped };
}
