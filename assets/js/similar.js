// Near-duplicates in the image view: the open image's look-alikes among the user's images
// (GET /api/user/images/{id}/similar), as small thumbnails with how many bits their perceptual
// hashes differ by (0: the same picture). A click opens one in the view when the gallery has it
// loaded, else its file in a new tab. Answers for an image the view has left are dropped.

import { $, el, toast } from './dom.js';
import { state } from './state.js';
import { t, formatCount } from './i18n.js';
import { api } from './api.js';
import { emit } from './events.js';
import { titleOf, altOf, fileUrl } from './images.js';

let asked = null;

function status(key, vars) {
  const p = $('viewer-similar-status');
  p.textContent = key ? t(key, vars) : '';
  p.hidden = !key;
}

function tile(image) {
  const title = titleOf(image);
  const distance = Number(image.distance) || 0;
  const button = el('button', {
    type: 'button',
    class: 'similar-thumb',
    'data-testid': 'similar-thumb',
    'data-id': image.id,
    'data-distance': String(distance),
    title: t('similar.open', { title, d: distance }),
    'aria-label': t('similar.open', { title, d: distance }),
  });
  const img = el('img', { alt: altOf(image), loading: 'lazy', decoding: 'async' });
  const src = fileUrl(image, 'thumbnail_url') || fileUrl(image, 'preview_url');
  if (src) img.src = src;
  const badge = el('span', { class: 'similar-distance' },
    distance === 0 ? t('similar.same') : t('similar.bits', { d: distance }));
  button.append(img, badge);
  button.addEventListener('click', () => {
    if (state.ids.has(image.id)) emit('open-image', image.id);
    else {
      const preview = fileUrl(image, 'preview_url');
      if (preview) window.open(preview, '_blank', 'noopener');
    }
  });
  const li = el('li');
  li.append(button);
  return li;
}

/** Shows the open image's near-duplicates; asks the server once per image shown. */
export async function showSimilar(id) {
  if (asked === id) return;
  asked = id;
  const list = $('viewer-similar');
  list.replaceChildren();
  status('similar.loading');
  let answer;
  try {
    answer = await api('GET', `/api/user/images/${encodeURIComponent(id)}/similar?limit=24`);
  } catch (err) {
    if (asked !== id) return;
    if (err.status === 401) { emit('session-lost'); return; }
    if (err.status === 422) { status('similar.undecodable'); return; }
    status('similar.failed');
    toast(err.display, true);
    return;
  }
  if (asked !== id) return;
  const images = Array.isArray(answer.images) ? answer.images : [];
  list.replaceChildren(...images.map(tile));
  if (answer.pending) status('similar.pending');
  else if (images.length === 0) status('similar.none');
  else status('similar.count', { n: formatCount(images.length) });
}

/** Forgets the last answer, so the next showSimilar asks again (after a change). */
export function forgetSimilar() {
  asked = null;
}
