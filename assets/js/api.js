// The client for the JSON API: fetch with one error type (ApiError) for network failures, HTTP
// errors and `success: false`, XMLHttpRequest for uploads (progress), and polling of tasks.

import { t, serverText } from './i18n.js';

export class ApiError extends Error {
  constructor(message, status, fromServer) {
    super(message);
    this.status = status;
    this.fromServer = fromServer;
  }
  get display() {
    return this.fromServer ? serverText(this.message) : this.message;
  }
}

export async function api(method, url, body) {
  const init = { method, credentials: 'same-origin', headers: { Accept: 'application/json' } };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(url, init);
  } catch {
    throw new ApiError(t('err.network'), 0, false);
  }
  let data = null;
  try {
    data = await res.json();
  } catch {
    data = null;
  }
  if (!res.ok || (data && data.success === false)) {
    const message = data && typeof data.error === 'string' ? data.error : null;
    throw new ApiError(message || t('err.http', { status: res.status }), res.status, Boolean(message));
  }
  return data || {};
}

/** XMLHttpRequest for uploads: fetch cannot report upload progress. */
export function xhrPost(url, body, contentType, onProgress) {
  return new Promise((resolve) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', url);
    xhr.setRequestHeader('Accept', 'application/json');
    if (contentType) xhr.setRequestHeader('Content-Type', contentType);
    xhr.upload.addEventListener('progress', (e) => {
      if (e.lengthComputable && e.total > 0) onProgress(e.loaded / e.total);
    });
    xhr.addEventListener('load', () => {
      let data = null;
      try { data = JSON.parse(xhr.responseText); } catch { data = null; }
      resolve({ status: xhr.status, data });
    });
    xhr.addEventListener('error', () => resolve({ status: 0, data: null }));
    xhr.addEventListener('abort', () => resolve({ status: 0, data: null }));
    xhr.send(body);
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls /api/task/{id} until it is finished; calls onUpdate with each answer's task. */
export async function waitForTask(taskId, onUpdate, limitMs = 120000) {
  const started = Date.now();
  let delay = 250;
  while (Date.now() - started < limitMs) {
    await sleep(delay);
    delay = Math.min(delay * 1.6, 2000);
    let task;
    try {
      const res = await fetch('/api/task/' + encodeURIComponent(taskId), {
        credentials: 'same-origin',
        headers: { Accept: 'application/json' },
      });
      const data = await res.json().catch(() => null);
      if (!res.ok) return { status: 'unknown', error: data && data.error };
      task = data && data.status && typeof data.status === 'object' ? data.status : null;
    } catch {
      continue; // a dropped poll is retried
    }
    if (!task) return { status: 'unknown' };
    if (onUpdate) onUpdate(task);
    if (task.status === 'completed' || task.status === 'failed') return task;
  }
  return { status: 'timeout' };
}
