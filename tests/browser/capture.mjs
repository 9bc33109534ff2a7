// The capture workflow in Debian's Chromium, against a real imgvault started by tests/browser.rs:
// a user gets a pairing code in the web UI's "extension & keys" dialog; the extension, loaded in a
// fresh profile that never logged in to the vault, trades it for a capture key on its options page;
// its captures then land in that user's vault (not admin's); revoking the key in the web UI stops
// the next capture at once, with a notice that says what to do.
//
// Run: node tests/browser/capture.mjs (from the repository root; exit code 0 = pass).
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { join, resolve } from "node:path";
import { ARTIFACTS, BASE, deadline, launch, launchWithExtension } from "./chromium.mjs";
import { makePng, watch, visible, waitUntil } from "./page.mjs";

deadline(150);

const EXTENSION_DIR = resolve("assets/extension");
const png = makePng(11, 7, [200, 40, 90], [20, 220, 180]);
const PAGE = `<!doctype html><meta charset="utf-8"><title>配对测试页</title>
<img id="pic" src="/pic.png" alt="paired capture">`;

const pageServer = createServer((req, res) => {
  if (req.url === "/page.html") {
    res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
    res.end(PAGE);
  } else if (req.url === "/pic.png") {
    res.writeHead(200, { "content-type": "image/png" });
    res.end(png);
  } else {
    res.writeHead(404);
    res.end();
  }
});
await new Promise((r) => pageServer.listen(0, "127.0.0.1", r));
const ORIGIN = `http://127.0.0.1:${pageServer.address().port}`;

async function api(path, { method = "GET", body, cookie } = {}) {
  const response = await fetch(BASE + path, {
    method,
    headers: { ...(body ? { "content-type": "application/json" } : {}), ...(cookie ? { cookie } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  return { status: response.status, body: await response.json().catch(() => null), headers: response.headers };
}

const username = "cap" + Date.now().toString(36).slice(-8);
const account = { username, email: `${username}@example.com`, password: "capture-pw-1" };
assert.equal((await api("/api/register", { method: "POST", body: account })).status, 200);
const loggedIn = await api("/api/login", { method: "POST", body: account });
const cookie = loggedIn.headers.get("set-cookie").split(";")[0];
const totalImages = async () => (await api("/api/status")).body.total_images;
const mine = async () => (await api("/api/user/images?per_page=100", { cookie })).body;

let browser;
let context;
try {
  // ---- the web UI gives a pairing code ----
  browser = await launch();
  const web = await browser.newContext({ viewport: { width: 1200, height: 860 } });
  assert.equal((await web.request.post(BASE + "/api/login", { data: account })).status(), 200);
  const ui = await web.newPage();
  const problems = watch(ui);
  await ui.goto(BASE + "/");
  await visible(ui.getByTestId("keys-open"), "the extension & keys button");
  await ui.getByTestId("keys-open").click();
  await visible(ui.getByTestId("keys-dialog"), "the keys dialog");
  await ui.getByTestId("pair-get").click();
  await waitUntil(ui, "a pairing code is shown", () => /^[0-9A-Z]{4}-[0-9A-Z]{4}$/.test(document.querySelector("[data-testid=pair-code]").textContent));
  const code = await ui.getByTestId("pair-code").textContent();
  assert.match(await ui.getByTestId("pair-expiry").textContent(), /4:5\d|5:00/, "the code's countdown starts at five minutes");
  await ui.screenshot({ path: join(ARTIFACTS, "keys-dialog-desktop.png") });
  await ui.getByTestId("keys-close").click();

  // ---- the extension, in a profile that never saw the vault, pairs with it ----
  context = await launchWithExtension(EXTENSION_DIR);
  const worker =
    context.serviceWorkers().find((w) => w.url().startsWith("chrome-extension://")) ||
    (await context.waitForEvent("serviceworker", { timeout: 30000 }));
  const extensionId = new URL(worker.url()).host;
  const options = await context.newPage();
  await options.goto(`chrome-extension://${extensionId}/options.html`);
  await options.waitForFunction(() => document.getElementById("pair-state").textContent.length > 0);
  assert.ok(!(await options.locator("#pair-state").getAttribute("class"))?.includes("connected"), "not paired yet");
  await options.fill("#server", BASE);
  await options.fill("#pair-code", code.toLowerCase());
  await options.click("#pair");
  await options.waitForSelector("#pair-state.connected", { timeout: 15000 });
  assert.match(await options.textContent("#pair-state"), new RegExp(username));
  assert.ok(await options.locator("#pair-row").isHidden(), "no code field once paired");
  assert.ok(await options.locator("#unpair").isVisible(), "a way to disconnect");
  const stored = await worker.evaluate(() => chrome.storage.local.get(null));
  assert.match(stored.apiKey, /^ivk_/, "the key is kept by the extension");
  assert.equal(stored.server, BASE);
  await options.screenshot({ path: join(ARTIFACTS, "extension-paired.png") });
  // A code works once.
  await options.evaluate(() => chrome.storage.local.set({ apiKey: "" }));
  await options.reload();
  await options.fill("#pair-code", code);
  await options.click("#pair");
  await options.waitForSelector("#status.error");
  await options.evaluate((key) => chrome.storage.local.set({ apiKey: key }), stored.apiKey);

  // ---- a capture goes to the paired user's vault ----
  const page = await context.newPage();
  await page.goto(`${ORIGIN}/page.html`);
  await page.waitForFunction(() => document.getElementById("pic").complete);
  const tabId = await worker.evaluate(async (url) => (await chrome.tabs.query({})).find((t) => t.url === url)?.id, `${ORIGIN}/page.html`);
  const save = () =>
    worker.evaluate(
      ({ srcUrl, pageUrl, tabId }) => saveImage({ srcUrl, pageUrl, tabId, frameId: 0, category: "char" }),
      { srcUrl: `${ORIGIN}/pic.png`, pageUrl: `${ORIGIN}/page.html`, tabId },
    );
  const before = await totalImages();
  const saved = await save();
  assert.ok(saved.ok, `capture with the paired key: ${JSON.stringify(saved)}`);
  const list = await mine();
  assert.equal(list.total, 1, "the capture is in the paired user's vault");
  assert.equal(list.images[0].original_url, `${ORIGIN}/pic.png`);
  assert.equal(list.images[0].page_title, "配对测试页");
  const bytes = Buffer.from(await (await fetch(BASE + list.images[0].preview_url, { headers: { cookie } })).arrayBuffer());
  assert.ok(bytes.equals(png), "stored byte for byte");
  assert.equal(await totalImages(), before + 1);
  const admin = await api("/api/login", { method: "POST", body: { username: "admin", password: process.env.IMGVAULT_ADMIN_PASSWORD || "admin-test-pw" } });
  const adminCookie = admin.headers.get("set-cookie").split(";")[0];
  assert.equal((await api("/api/user/images", { cookie: adminCookie })).body.total, 0, "nothing went to admin");

  // ---- revoking in the web UI stops the next capture at once ----
  await ui.getByTestId("keys-open").click();
  await waitUntil(ui, "the paired key is listed", () => document.querySelectorAll("[data-testid=key-row]").length === 1);
  assert.match(await ui.getByTestId("key-row").textContent(), /Chromium|扩展|extension/i);
  await ui.getByTestId("key-revoke").click();
  await ui.getByTestId("confirm-ok").click();
  await waitUntil(ui, "the key is gone from the list", () => document.querySelectorAll("[data-testid=key-row]").length === 0);
  const refused = await save();
  assert.equal(refused.ok, false, "a capture with a revoked key fails");
  const revokedText = await worker.evaluate(() => chrome.i18n.getMessage("errorKeyRevoked"));
  assert.ok(refused.text.startsWith(revokedText), `the notice says to pair again: ${refused.text}`);
  assert.ok(refused.queued, "and the capture waits for the extension to be paired again");
  assert.equal((await mine()).total, 1, "nothing more stored");
  assert.equal(await totalImages(), before + 1);

  // Paired again, the waiting capture goes out.
  await ui.getByTestId("pair-get").click();
  await waitUntil(ui, "a new pairing code", (old) => {
    const shown = document.querySelector("[data-testid=pair-code]").textContent;
    return shown !== old && /^[0-9A-Z]{4}-[0-9A-Z]{4}$/.test(shown);
  }, code);
  const again = await ui.getByTestId("pair-code").textContent();
  await options.reload();
  await options.click("#unpair");
  await options.fill("#pair-code", again);
  await options.click("#pair");
  await options.waitForSelector("#pair-state.connected", { timeout: 15000 });
  const drained = await worker.evaluate(() => drainQueue());
  assert.deepEqual(drained, { saved: 1, failed: 0, left: 0 });
  assert.equal((await mine()).total, 2, "the queued capture is stored once re-paired");

  // ---- creating a key by hand shows it once ----
  await ui.fill("#key-name", "备份脚本");
  await ui.selectOption("#key-scope", "read");
  await ui.getByTestId("key-create").click();
  await waitUntil(ui, "the new key is shown", () => document.querySelector("[data-testid=key-secret]").value.startsWith("ivk_"));
  const secret = await ui.getByTestId("key-secret").inputValue();
  const viaKey = await fetch(BASE + "/api/user/images", { headers: { authorization: `Bearer ${secret}` } });
  assert.equal(viaKey.status, 200, "the shown key reads the user's images");
  await ui.setViewportSize({ width: 390, height: 800 });
  await ui.screenshot({ path: join(ARTIFACTS, "keys-dialog-phone.png") });
  await ui.getByTestId("keys-close").click();
  await ui.getByTestId("keys-open").click();
  assert.equal(await ui.getByTestId("key-secret").inputValue(), "", "the key is not shown again");
  assert.deepEqual(problems, [], "no console errors in the web UI");
  console.log("capture workflow: pairing, key capture, revocation ok");
} finally {
  await context?.close().catch(() => {});
  await browser?.close().catch(() => {});
  pageServer.close();
}
