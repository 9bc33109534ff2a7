// imgvault extension: the offline queue and the toolbar badge.
//
// A capture the vault cannot take now (unreachable, or answering 5xx, 429 or 507) is kept in
// IndexedDB with its bytes and sent again, in the order captured, when the vault answers: on a
// timer with backoff, at browser start-up and after every capture that went through. Every capture
// carries an Idempotency-Key made when it was captured, so a capture whose answer was lost on the
// way is not stored twice when it is sent again: the vault answers the replay with the first
// answer. The queue is bounded (QUEUE_LIMIT bytes); a capture that does not fit is refused with a
// notice, never silently dropped.
//
// The badge shows how many captures wait (orange); with none waiting, on a page with images
// already in the vault, how many of them are there (green check). Loaded before background.js
// (importScripts in Chromium's service worker, the background scripts list in Firefox).

const QUEUE_DB = "imgvault";
const QUEUE_STORE = "captures";
const QUEUE_LIMIT = 200 * 1024 * 1024;
const QUEUE_ALARM = "imgvault-queue";
const RETRY_FIRST_MS = 5_000;
const RETRY_MAX_MS = 15 * 60_000;

/** Statuses that say "not now" rather than "never": send the capture again later. */
const retryable = (status) => status === 0 || status === 408 || status === 429 || status >= 500;

function openQueue() {
  return new Promise((resolve, reject) => {
    const request = indexedDB.open(QUEUE_DB, 1);
    request.onupgradeneeded = () => request.result.createObjectStore(QUEUE_STORE, { keyPath: "seq", autoIncrement: true });
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

/** Runs `work(store)` in one transaction; resolves to what it returned once the transaction is done. */
async function inQueue(mode, work) {
  const db = await openQueue();
  try {
    return await new Promise((resolve, reject) => {
      const tx = db.transaction(QUEUE_STORE, mode);
      let result;
      Promise.resolve(work(tx.objectStore(QUEUE_STORE))).then((value) => { result = value; }, reject);
      tx.oncomplete = () => resolve(result);
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error || new Error("queue transaction aborted"));
    });
  } finally {
    db.close();
  }
}

const requestResult = (request) =>
  new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });

/** Every queued capture, oldest first. */
function queuedCaptures() {
  return inQueue("readonly", (store) => requestResult(store.getAll()));
}

/**
 * Queues a capture: `{key, body}` (the Idempotency-Key and the JSON body as sent). Resolves to the
 * number now waiting, or to 0 when the queue has no room for it (nothing queued then).
 */
async function enqueueCapture({ key, body }) {
  const size = body.length;
  const waiting = await inQueue("readwrite", async (store) => {
    const all = await requestResult(store.getAll());
    const used = all.reduce((sum, c) => sum + c.size, 0);
    if (used + size > QUEUE_LIMIT) return 0;
    await requestResult(store.add({ key, body, size, queuedAt: Date.now(), attempts: 0, nextAt: 0 }));
    return all.length + 1;
  });
  if (waiting) {
    await chrome.alarms.create(QUEUE_ALARM, { periodInMinutes: 1 });
    await renderBadge();
  }
  return waiting;
}

function updateCapture(capture) {
  return inQueue("readwrite", (store) => requestResult(store.put(capture)));
}

function removeCapture(seq) {
  return inQueue("readwrite", (store) => requestResult(store.delete(seq)));
}

let draining = null;

/**
 * Sends the waiting captures in order until one has to wait (the vault still cannot take it);
 * then that one and everything after it waits for its backoff. One pass at a time.
 */
function drainQueue() {
  draining ||= drainOnce().finally(() => { draining = null; });
  return draining;
}

async function drainOnce() {
  let saved = 0;
  const failed = [];
  for (const capture of await queuedCaptures()) {
    if (capture.nextAt > Date.now()) break;
    const { server, apiKey } = await getSettings();
    const result = await sendCapture(server, apiKey, capture.key, capture.body);
    if (result.ok) {
      await removeCapture(capture.seq);
      saved += 1;
    } else if (result.retry) {
      capture.attempts += 1;
      capture.nextAt = Date.now() + Math.min(RETRY_MAX_MS, RETRY_FIRST_MS * 2 ** (capture.attempts - 1));
      await updateCapture(capture);
      break;
    } else {
      // The vault refused it for good (its format, a conflict): keeping it would block the rest.
      await removeCapture(capture.seq);
      failed.push(result.text);
    }
  }
  const left = (await queuedCaptures()).length;
  if (!left) await chrome.alarms.clear(QUEUE_ALARM);
  await renderBadge();
  if (saved) await notify({ ok: true, text: msg("queueSent", String(saved)) });
  for (const text of failed) await notify({ ok: false, text });
  return { saved, failed: failed.length, left };
}

/**
 * POSTs one capture to /api/receive-image: `{ok, retry, status, text, reply}`. `retry` when the
 * vault could not take it now (unreachable, 5xx, 429, 507); a revoked key is retried too, so the
 * captures wait for the extension to be paired again rather than being lost.
 */
async function sendCapture(server, apiKey, key, body) {
  let response;
  try {
    response = await fetch(`${server}/api/receive-image`, {
      method: "POST",
      credentials: apiKey ? "omit" : "include",
      headers: { ...serverHeaders(apiKey), "Idempotency-Key": key },
      body,
    });
  } catch {
    return { ok: false, retry: true, status: 0, text: msg("errorUnreachable", server) };
  }
  const reply = await response.json().catch(() => null);
  if (response.ok && reply?.success) return { ok: true, status: response.status, reply, text: reply.message || msg("savedFallback") };
  const error = typeof reply?.error === "string" ? reply.error : "";
  if (apiKey && response.status === 401) return { ok: false, retry: true, status: 401, text: msg("errorKeyRevoked") };
  return {
    ok: false,
    // A 409 with Retry-After: the same capture is being stored right now; without: a key reused.
    retry: retryable(response.status) || (response.status === 409 && response.headers.has("retry-after")),
    status: response.status,
    text: error || msg("errorHttp", String(response.status)),
    unsupported: response.status === 400 && error.startsWith(UNSUPPORTED_FORMAT),
  };
}

// ---- the badge -------------------------------------------------------------------------------

/** Images of each tab's page already in the vault (tab id → count), while the worker lives. */
const knownOnTab = new Map();

async function renderBadge() {
  const waiting = (await queuedCaptures()).length;
  if (waiting) {
    await chrome.action.setBadgeBackgroundColor({ color: "#d97706" });
    await chrome.action.setBadgeText({ text: String(waiting) });
    for (const tabId of knownOnTab.keys()) await chrome.action.setBadgeText({ tabId, text: null }).catch(() => {});
    return;
  }
  await chrome.action.setBadgeText({ text: "" });
  for (const [tabId, count] of knownOnTab) {
    await chrome.action.setBadgeBackgroundColor({ tabId, color: "#0f766e" }).catch(() => {});
    await chrome.action.setBadgeText({ tabId, text: count ? `✓${count}` : null }).catch(() => {});
  }
}

/**
 * Asks the vault which of the page's images it already holds for the paired user (by their URLs;
 * only when paired, so nothing is asked of a vault that does not know who is asking) and shows
 * the count on the tab's badge.
 */
async function markKnownImages(tabId) {
  const { server, apiKey } = await getSettings();
  if (!apiKey) return;
  let urls = [];
  try {
    const [injection] = await chrome.scripting.executeScript({
      target: { tabId },
      func: () => [...new Set([...document.images].map((i) => i.currentSrc || i.src).filter((u) => /^https?:/.test(u)))].slice(0, 500),
    });
    urls = injection?.result || [];
  } catch {
    return; // pages extensions may not read
  }
  const known = urls.length ? await lookup(server, apiKey, { urls }) : null;
  knownOnTab.set(tabId, known ? known.urls.length : 0);
  await renderBadge();
}

/** `{sha256, urls}` the vault already holds for the caller, or null if it cannot say. */
async function lookup(server, apiKey, { sha256 = [], urls = [] }) {
  try {
    const response = await fetch(`${server}/api/images/lookup`, {
      method: "POST",
      credentials: apiKey ? "omit" : "include",
      headers: serverHeaders(apiKey),
      body: JSON.stringify({ sha256, urls }),
    });
    if (!response.ok) return null;
    const reply = await response.json();
    return { sha256: reply?.known?.sha256 || [], urls: reply?.known?.urls || [] };
  } catch {
    return null;
  }
}

/** Lower-case hex SHA-256 of some bytes, as the vault keeps it beside its own hash. */
async function sha256Hex(bytes) {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

chrome.alarms.onAlarm.addListener((alarm) => {
  if (alarm.name === QUEUE_ALARM) drainQueue();
});
chrome.tabs.onUpdated.addListener((tabId, change) => {
  if (change.status === "complete") markKnownImages(tabId);
});
chrome.tabs.onRemoved.addListener((tabId) => knownOnTab.delete(tabId));
