// The extension's offline queue and "already saved", in Debian's Chromium against a real imgvault
// started by tests/browser.rs. The extension talks to the vault through a TCP proxy run here, which
// counts the bytes the extension sends and can lose an answer; the vault itself is stopped and
// started again through tests/browser.rs (`IMGVAULT_CONTROL`).
//
// 1. "Already saved": an image captured a second time (from another page) sends its SHA-256 and
//    the page's details, not its bytes: the bytes on the wire are a small fraction of the image.
// 2. The server is stopped: three captures are queued, the badge counts them; the browser is
//    closed and started again on the same profile; the server is started again on the same data
//    file, but the answer to the first replayed capture is lost on the way; the extension sends it
//    again with the same Idempotency-Key. Every capture ends up stored once, byte for byte, in the
//    order taken, and the badge is clear.
//
// Run: node tests/browser/queue.mjs (from the repository root; exit code 0 = pass).
import assert from "node:assert/strict";
import { createServer as createHttpServer } from "node:http";
import { createServer as createTcpServer, connect } from "node:net";
import { resolve } from "node:path";
import { BASE, CONTROL, deadline, launchWithExtension, newProfile } from "./chromium.mjs";
import { makeNoisePng } from "./page.mjs";

deadline(170);

const EXTENSION_DIR = resolve("assets/extension");

// Random pixels, so they do not compress: the bytes dominate any request that carries them.
const images = { a: makeNoisePng(96, 96), b: makeNoisePng(90, 90), c: makeNoisePng(80, 80), d: makeNoisePng(70, 70) };

const pages = createHttpServer((req, res) => {
  const name = req.url.match(/^\/(\w)\.png$/)?.[1];
  if (name && images[name]) {
    res.writeHead(200, { "content-type": "image/png", "cache-control": "no-store" });
    res.end(images[name]);
    return;
  }
  const page = req.url.match(/^\/page-(\w+)\.html$/)?.[1];
  if (page) {
    res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
    res.end(`<!doctype html><meta charset="utf-8"><title>page ${page}</title>${Object.keys(images).map((n) => `<img id="${n}" src="/${n}.png">`).join("")}`);
    return;
  }
  res.writeHead(404);
  res.end();
});
await new Promise((r) => pages.listen(0, "127.0.0.1", r));
const ORIGIN = `http://127.0.0.1:${pages.address().port}`;

// ---- the vault, which moves to another port when it is started again ----
let vault = BASE;
async function control(action) {
  const answer = await fetch(`${CONTROL}/${action}`, { method: "POST" });
  const text = await answer.text();
  assert.equal(answer.status, 200, `${action}: ${text}`);
  return text;
}
const stopVault = () => control("stop");
const startVault = async () => { vault = await control("start"); };

// ---- the proxy between the extension and the vault ----
let sent = 0; // bytes from the extension towards the vault
let loseNextAnswer = false;
let answersLost = 0;
const proxy = createTcpServer((client) => {
  const { port, hostname } = new URL(vault);
  const upstream = connect(Number(port), hostname);
  client.on("data", (chunk) => {
    sent += chunk.length;
    upstream.write(chunk);
  });
  upstream.on("data", (chunk) => {
    if (loseNextAnswer) {
      // The vault has the request and answers; the answer never arrives.
      loseNextAnswer = false;
      answersLost += 1;
      client.destroy();
      upstream.destroy();
      return;
    }
    client.write(chunk);
  });
  for (const [a, b] of [[client, upstream], [upstream, client]]) {
    a.on("end", () => b.end());
    a.on("error", () => b.destroy());
    a.on("close", () => b.destroy());
  }
});
await new Promise((r) => proxy.listen(0, "127.0.0.1", r));
const SERVER = `http://127.0.0.1:${proxy.address().port}`;

// ---- the user and the key ----
async function api(path, { method = "GET", body, cookie, key } = {}) {
  const response = await fetch(vault + path, {
    method,
    headers: {
      ...(body ? { "content-type": "application/json" } : {}),
      ...(cookie ? { cookie } : {}),
      ...(key ? { authorization: `Bearer ${key}` } : {}),
    },
    body: body ? JSON.stringify(body) : undefined,
  });
  return { status: response.status, body: await response.json().catch(() => null), headers: response.headers };
}
const username = "q" + Date.now().toString(36).slice(-8);
const account = { username, email: `${username}@example.com`, password: "queue-pw-12" };
assert.equal((await api("/api/register", { method: "POST", body: account })).status, 200);
const cookie = (await api("/api/login", { method: "POST", body: account })).headers.get("set-cookie").split(";")[0];
const code = (await api("/api/keys/pairing-code", { method: "POST", body: {}, cookie })).body.code;
const paired = await api("/api/keys/pair", { method: "POST", body: { code } });
assert.equal(paired.status, 200, JSON.stringify(paired.body));
const key = paired.body.key;
const mine = async () => (await api("/api/user/images?per_page=100", { cookie })).body.images;

async function startBrowser(profile) {
  const context = await launchWithExtension(EXTENSION_DIR, profile);
  const worker =
    context.serviceWorkers().find((w) => w.url().startsWith("chrome-extension://")) ||
    (await context.waitForEvent("serviceworker", { timeout: 30000 }));
  return { context, worker };
}

async function capture(context, worker, name, pageName) {
  const pageUrl = `${ORIGIN}/page-${pageName}.html`;
  const page = await context.newPage();
  await page.goto(pageUrl);
  await page.waitForFunction((n) => document.getElementById(n).complete, name);
  const tabId = await worker.evaluate(async (url) => (await chrome.tabs.query({})).find((t) => t.url === url)?.id, pageUrl);
  const result = await worker.evaluate(
    ({ srcUrl, pageUrl, tabId }) => saveImage({ srcUrl, pageUrl, tabId, frameId: 0, category: "clothes" }),
    { srcUrl: `${ORIGIN}/${name}.png`, pageUrl, tabId },
  );
  await page.close();
  return result;
}

const profile = newProfile();
let browser = await startBrowser(profile);
try {
  await browser.worker.evaluate(
    (settings) => chrome.storage.local.set(settings),
    { server: SERVER, apiKey: key, apiKeyUser: username },
  );

  // ---- 1. "already saved" sends no image bytes ----
  sent = 0;
  const first = await capture(browser.context, browser.worker, "a", "one");
  assert.ok(first.ok, JSON.stringify(first));
  assert.equal(first.sent, "data");
  const firstBytes = sent;
  assert.ok(firstBytes > images.a.length, `the first capture carries the image (${firstBytes} bytes sent)`);
  sent = 0;
  const second = await capture(browser.context, browser.worker, "a", "two");
  assert.ok(second.ok, JSON.stringify(second));
  assert.equal(second.sent, "hash", "the second capture sends the hash only");
  console.log(`"already saved": first capture ${firstBytes} bytes on the wire, second ${sent} (image ${images.a.length})`);
  assert.ok(sent < images.a.length / 4, `the second capture sent ${sent} bytes for a ${images.a.length}-byte image`);
  const afterA = await mine();
  assert.equal(afterA.length, 2, "two captures of the same image");
  assert.deepEqual(new Set(afterA.map((i) => i.page_url)), new Set([`${ORIGIN}/page-one.html`, `${ORIGIN}/page-two.html`]));

  // The toolbar badge marks a page showing images already in the vault (a of a, b, c, d).
  const marked = await browser.context.newPage();
  await marked.goto(`${ORIGIN}/page-three.html`);
  const markedTab = await browser.worker.evaluate(async (url) => (await chrome.tabs.query({})).find((t) => t.url === url)?.id, `${ORIGIN}/page-three.html`);
  let badge = "";
  for (const end = Date.now() + 15_000; Date.now() < end && badge !== "✓1"; ) {
    badge = await browser.worker.evaluate((tabId) => chrome.action.getBadgeText({ tabId }), markedTab);
    if (badge !== "✓1") await new Promise((r) => setTimeout(r, 100));
  }
  assert.equal(badge, "✓1", "one image of the page is in the vault");
  await marked.close();

  // ---- 2. the server stops: captures are queued and counted on the badge ----
  await stopVault();
  for (const name of ["b", "c", "d"]) {
    const result = await capture(browser.context, browser.worker, name, "offline");
    assert.equal(result.ok, false);
    assert.ok(result.queued, `capture ${name} queued: ${JSON.stringify(result)}`);
  }
  assert.equal(await browser.worker.evaluate(() => chrome.action.getBadgeText({})), "3", "the badge counts the waiting captures");

  // ---- the browser is closed, the server started again; the browser comes back, one answer is lost ----
  await browser.context.close();
  await startVault();
  assert.equal((await mine()).length, 2, "nothing reached the vault while it was stopped");
  loseNextAnswer = true;
  browser = await startBrowser(profile);
  // The worker sends the queue when it starts; then on its timer. Ask it along until it is empty
  // (a capture whose answer was lost waits its backoff first).
  const end = Date.now() + 60_000;
  let left = -1;
  while (Date.now() < end) {
    left = (await browser.worker.evaluate(() => drainQueue())).left;
    if (left === 0) break;
    await new Promise((r) => setTimeout(r, 500));
  }
  assert.equal(left, 0, "the queue empties once the vault answers");
  assert.equal(answersLost, 1, "one answer was lost on the way");
  assert.equal(await browser.worker.evaluate(() => chrome.action.getBadgeText({})), "", "the badge is clear");

  const stored = await mine();
  assert.equal(stored.length, 5, `every capture stored once: ${stored.map((i) => i.original_url).join(", ")}`);
  for (const name of ["b", "c", "d"]) {
    const records = stored.filter((i) => i.original_url === `${ORIGIN}/${name}.png`);
    assert.equal(records.length, 1, `${name} stored exactly once`);
    const bytes = Buffer.from(await (await fetch(vault + records[0].preview_url, { headers: { cookie } })).arrayBuffer());
    assert.ok(bytes.equals(images[name]), `${name} stored byte for byte`);
  }
  // Captured in the order they were taken.
  // The list is newest first.
  const order = stored.filter((i) => i.page_url.endsWith("page-offline.html")).reverse().map((i) => i.original_url.slice(-5, -4));
  assert.deepEqual(order, ["b", "c", "d"]);
  console.log("offline queue: 3 captures queued while the server was stopped, kept across a browser restart, one lost answer replayed, all stored once");
} finally {
  await browser.context.close().catch(() => {});
  pages.close();
  proxy.close();
}
