// End-to-end test of the web UI in Debian's Chromium, against a real imgvault started by
// tests/browser.rs (IMGVAULT_URL, a fresh data file, the admin password in IMGVAULT_ADMIN_PASSWORD).
//
// 1. The main flow, with no console error and no CSP violation allowed: register, log out, log in,
//    upload two files through the file input as `char`, paste a third image (a real `paste` event
//    carrying a File) as `clothes`, see the three thumbnails load, filter by category, screenshot the
//    gallery at desktop and phone widths, open an image and check its size and dimensions, move it
//    to the trash, reload, log out.
// 2. Error messages from the server: a wrong password, a taken name, a text file named .png; a file
//    over 10 MB refused before it is sent; anonymous uploads by drag and drop and by the paste
//    button (Clipboard API); the English switch (remembered).
// 3. Pagination: 60 images, the first page of 48, the rest loaded by scrolling; the filter.
// 4. The cloud-sync button, progress and result, with the API stubbed (the server has sync off).
//
// Run: node tests/browser/e2e.mjs (from the repository root; exit code 0 = pass).
import assert from "node:assert/strict";
import { join } from "node:path";
import { launch, BASE, ARTIFACTS, deadline } from "./chromium.mjs";
import { WAIT, makePng, watch, waitUntil, visible, hidden, thumbnailsLoaded } from "./page.mjs";

deadline(120);

const charA = { name: "character-a.png", width: 64, height: 48, bytes: makePng(64, 48, [230, 90, 80], [250, 210, 120]) };
const charB = { name: "character-b.png", width: 40, height: 72, bytes: makePng(40, 72, [70, 120, 230], [160, 220, 255]) };
const pasted = { width: 90, height: 60, bytes: makePng(90, 60, [40, 160, 110], [200, 240, 180]) };

// ------------------------------------------------------------------------------------------------
// Helpers
// ------------------------------------------------------------------------------------------------

async function chooseUploadCategory(page, category) {
  await page.locator(`label:has([data-testid=upload-category-${category}])`).click();
  assert.equal(await page.getByTestId(`upload-category-${category}`).isChecked(), true, `upload category ${category} chosen`);
}

/** A real `paste` event carrying an image File, as the browser fires for Ctrl+V. */
async function pasteImage(page, bytes, type = "image/png") {
  await page.evaluate(({ b64, type }) => {
    const data = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const file = new File([data], "image.png", { type });
    const clipboardData = new DataTransfer();
    clipboardData.items.add(file);
    const event = new ClipboardEvent("paste", { clipboardData, bubbles: true, cancelable: true });
    document.body.dispatchEvent(event);
  }, { b64: bytes.toString("base64"), type });
}

async function thumbIds(page) {
  return page.locator("[data-testid=thumb]").evaluateAll((els) => els.map((e) => [e.dataset.id, e.dataset.category]));
}

// ------------------------------------------------------------------------------------------------
// 1. The main flow
// ------------------------------------------------------------------------------------------------

async function mainFlow(browser) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  const problems = watch(page);

  const response = await page.goto(BASE + "/");
  assert.equal(response.status(), 200, "GET / answers 200");
  const csp = response.headers()["content-security-policy"] || "";
  assert.match(csp, /script-src 'self'/, "the page is served with a CSP that forbids inline script");
  await page.locator("body[data-ready]").waitFor({ state: "attached", timeout: WAIT });

  // Anonymous: the log-in screen and the upload panel.
  await visible(page.getByTestId("auth"), "the log-in screen");
  await visible(page.getByTestId("upload"), "the upload panel");
  await visible(page.getByTestId("anon-note"), "the note that anonymous uploads go to the admin");
  await visible(page.getByTestId("server-total"), "the server total from /api/status");
  assert.equal(await page.getByTestId("gallery").isVisible(), false, "no gallery before logging in");

  // Register (the UI logs the new account in).
  const username = "e2e_" + Date.now().toString(36).slice(-8);
  const password = "correct-horse-42";
  await page.getByTestId("tab-register").click();
  await page.getByTestId("register-username").fill(username);
  await page.getByTestId("register-email").fill(`${username}@example.com`);
  await page.getByTestId("register-password").fill(password);
  await page.getByTestId("register-submit").click();
  await page.locator("body[data-view=user]").waitFor({ state: "attached", timeout: WAIT });
  await visible(page.getByTestId("gallery"), "the gallery after registering");
  assert.equal(await page.getByTestId("current-user").textContent(), username, "the header shows the new user");
  await visible(page.getByTestId("empty"), "the empty-gallery message");
  assert.equal(await page.getByTestId("sync-button").isVisible(), false, "no sync button: cloud sync is disabled");

  // Log out, then log in through the form.
  await page.getByTestId("logout").click();
  await visible(page.getByTestId("auth"), "the log-in screen after logging out");
  await page.getByTestId("login-username").fill(username);
  await page.getByTestId("login-password").fill(password);
  await page.getByTestId("login-submit").click();
  await visible(page.getByTestId("gallery"), "the gallery after logging in");
  assert.equal(await page.getByTestId("current-user").textContent(), username);

  // Two files through the file input, as `char`.
  await chooseUploadCategory(page, "char");
  await page.getByTestId("file-input").setInputFiles([
    { name: charA.name, mimeType: "image/png", buffer: charA.bytes },
    { name: charB.name, mimeType: "image/png", buffer: charB.bytes },
  ]);
  await visible(page.locator("[data-testid=upload-item][data-state=done]").nth(1), "two finished file uploads");
  assert.equal(await page.locator("[data-testid=upload-item] progress").count(), 2, "a progress bar per file");

  // One image pasted, as `clothes`.
  await chooseUploadCategory(page, "clothes");
  await pasteImage(page, pasted.bytes);
  await visible(page.locator("[data-testid=upload-item][data-state=done]").nth(2), "the pasted image's upload finishing");
  assert.equal(await page.locator("[data-testid=upload-item][data-state=error]").count(), 0, "no upload failed");

  // The gallery shows all three, and every thumbnail loads.
  await thumbnailsLoaded(page, 3);
  await waitUntil(page, "the gallery count says 3", () =>
    document.querySelector("[data-testid=gallery-count]").dataset.total === "3");
  const all = await thumbIds(page);
  assert.equal(all.length, 3);
  assert.deepEqual(all.map(([, c]) => c).sort(), ["char", "char", "clothes"], "categories of the three images");
  assert.equal(all[0][1], "clothes", "newest first: the pasted image leads");
  // The header's total is refreshed shortly after uploads settle.
  await waitUntil(page, "the server total counts the uploads", () =>
    Number(document.querySelector("[data-testid=server-total-count]").dataset.value) >= 3);

  // Filters.
  await page.getByTestId("filter-char").click();
  await waitUntil(page, "only the two char images show", () => {
    const cats = [...document.querySelectorAll("[data-testid=thumb]")].map((e) => e.dataset.category);
    return cats.length === 2 && cats.every((c) => c === "char");
  });
  assert.equal(await page.getByTestId("filter-char").getAttribute("aria-pressed"), "true");
  await page.getByTestId("filter-clothes").click();
  await waitUntil(page, "only the clothes image shows", () => {
    const cats = [...document.querySelectorAll("[data-testid=thumb]")].map((e) => e.dataset.category);
    return cats.length === 1 && cats[0] === "clothes";
  });
  await page.getByTestId("filter-all").click();
  await thumbnailsLoaded(page, 3);

  // Screenshots: desktop and phone; no horizontal scrolling on the phone. Passing messages
  // ("logged out" from earlier) leave first, so they do not cover the gallery.
  await waitUntil(page, "passing messages have gone", () => !document.querySelector("[data-testid=toast]"));
  await page.screenshot({ path: join(ARTIFACTS, "gallery-desktop.png"), fullPage: true, animations: "disabled" });
  await page.setViewportSize({ width: 390, height: 844 });
  await thumbnailsLoaded(page, 3);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  assert.ok(overflow <= 0, `no horizontal scroll at 390 px (overflow ${overflow}px)`);
  await page.screenshot({ path: join(ARTIFACTS, "gallery-phone.png"), fullPage: true, animations: "disabled" });
  await page.setViewportSize({ width: 1280, height: 800 });

  // Open the pasted image.
  const [pastedId] = all[0];
  await page.locator(`[data-testid=thumb][data-id="${pastedId}"]`).click();
  const viewer = page.getByTestId("viewer");
  await visible(viewer, "the image view");
  const dims = await page.getByTestId("viewer-dimensions").textContent();
  assert.ok(dims.includes(`${pasted.width} × ${pasted.height}`), `dimensions shown: ${dims}`);
  const size = await page.getByTestId("viewer-size").textContent();
  assert.ok(size.includes(`${pasted.bytes.length} B`), `file size shown: ${size} (expected ${pasted.bytes.length} B)`);
  assert.equal(await page.getByTestId("viewer-size").getAttribute("data-bytes"), String(pasted.bytes.length));
  assert.match(await page.getByTestId("viewer-saved").textContent(), /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d/, "saved time shown");
  await waitUntil(page, "the full image loads at its real size", (w) => {
    const img = document.querySelector("[data-testid=viewer-image]");
    return img.complete && img.naturalWidth === w;
  }, pasted.width);
  assert.equal(await page.getByTestId("viewer-category").getAttribute("data-category"), "clothes");

  // Move it to the trash: no question asked (the message offers to undo it).
  const trashed = page.waitForResponse((r) => r.url().endsWith("/api/user/images/batch") && r.request().method() === "POST");
  await page.getByTestId("viewer-delete").click();
  const trashAnswer = await trashed;
  assert.equal(trashAnswer.status(), 200, "the batch trash answered 200");
  assert.deepEqual(JSON.parse(trashAnswer.request().postData()), { ids: [pastedId], action: "trash" });
  assert.equal(await page.getByTestId("confirm-dialog").isVisible(), false, "no confirmation for what can be undone");
  await hidden(viewer, "the image view after moving the image to the trash");
  await hidden(page.locator(`[data-testid=thumb][data-id="${pastedId}"]`), "the trashed image's thumbnail");
  assert.equal(await page.locator("[data-testid=thumb]").count(), 2, "two images left");
  await visible(page.getByTestId("toast-action"), "the undo button in the message");

  // Still gone after a reload (the server deleted it, not just the page).
  await page.reload();
  await visible(page.getByTestId("gallery"), "the gallery after a reload (the session is kept)");
  await thumbnailsLoaded(page, 2);
  assert.equal(await page.locator(`[data-testid=thumb][data-id="${pastedId}"]`).count(), 0, "the deleted image stays gone");

  // Log out: the log-in screen comes back and the gallery goes.
  await page.getByTestId("logout").click();
  await visible(page.getByTestId("auth"), "the log-in screen after logging out");
  await visible(page.getByTestId("login-form"), "the log-in form");
  assert.equal(await page.getByTestId("gallery").isVisible(), false, "no gallery after logging out");
  assert.equal(await page.locator("[data-testid=thumb]").count(), 0, "no thumbnails left on the page");

  assert.deepEqual(problems, [], "no console errors, page errors, CSP violations or dialogs");
  await context.close();
}

// ------------------------------------------------------------------------------------------------
// 2. Error messages
// ------------------------------------------------------------------------------------------------

async function errorMessages(browser) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  const problems = watch(page, { allowFailedResources: true });
  await page.goto(BASE + "/");
  await visible(page.getByTestId("login-form"), "the log-in form");

  // A wrong password shows the server's message.
  await page.getByTestId("login-username").fill("admin");
  await page.getByTestId("login-password").fill("not-the-password");
  const answer = page.waitForResponse((r) => r.url().endsWith("/api/login"));
  await page.getByTestId("login-submit").click();
  assert.equal((await answer).status(), 401);
  const loginError = page.getByTestId("login-error");
  await visible(loginError, "the log-in error");
  assert.equal((await loginError.textContent()).trim(), "用户名或密码错误");

  // Registering a taken name shows the server's message too.
  await page.getByTestId("tab-register").click();
  await page.getByTestId("register-username").fill("admin");
  await page.getByTestId("register-email").fill("someone@example.com");
  await page.getByTestId("register-password").fill("password123");
  await page.getByTestId("register-submit").click();
  await visible(page.getByTestId("register-error"), "the registration error");
  assert.equal((await page.getByTestId("register-error").textContent()).trim(), "用户名或邮箱已存在");
  await page.getByTestId("tab-login").click();

  // A text file named .png: the server's format error, for that file.
  const sent = page.waitForResponse((r) => r.url().endsWith("/api/upload-file"));
  await page.getByTestId("file-input").setInputFiles([
    { name: "notes.png", mimeType: "image/png", buffer: Buffer.from("just some text, not an image\n") },
  ]);
  assert.equal((await sent).status(), 400);
  const bad = page.locator("[data-testid=upload-item][data-state=error]").filter({ hasText: "notes.png" });
  await visible(bad, "the failed upload");
  const badText = await bad.getByTestId("upload-status").textContent();
  // The list is this build's formats (AVIF is a build feature, on by default).
  assert.match(badText, /^不支持的文件格式，请上传 PNG、JPG、JPEG、GIF(、WebP 或 AVIF| 或 WebP) 格式的图片$/);

  // Over 10 MB: refused on the page, never sent.
  let uploadsSent = 0;
  page.on("request", (r) => { if (r.url().endsWith("/api/upload-file")) uploadsSent += 1; });
  await page.getByTestId("file-input").setInputFiles([
    { name: "huge.png", mimeType: "image/png", buffer: Buffer.alloc(10 * 1024 * 1024 + 1) },
  ]);
  const huge = page.locator("[data-testid=upload-item][data-state=error]").filter({ hasText: "huge.png" });
  await visible(huge, "the too-large file's error");
  assert.equal(await huge.getByTestId("upload-status").textContent(), "文件大小不能超过10MB");
  assert.equal(uploadsSent, 0, "a file over 10 MB is not sent");

  // Anonymous uploads work. By drag and drop: a real drop event carrying a File.
  await page.evaluate((b64) => {
    const file = new File([Uint8Array.from(atob(b64), (c) => c.charCodeAt(0))], "dropped.png", { type: "image/png" });
    const dataTransfer = new DataTransfer();
    dataTransfer.items.add(file);
    const target = document.querySelector("[data-testid=dropzone]");
    target.dispatchEvent(new DragEvent("dragenter", { dataTransfer, bubbles: true, cancelable: true }));
    if (document.getElementById("drop-overlay").hidden) throw new Error("no drop overlay while dragging files");
    target.dispatchEvent(new DragEvent("dragover", { dataTransfer, bubbles: true, cancelable: true }));
    target.dispatchEvent(new DragEvent("drop", { dataTransfer, bubbles: true, cancelable: true }));
  }, makePng(20, 20, [10, 10, 10], [240, 240, 240]).toString("base64"));
  const dropped = page.locator("[data-testid=upload-item][data-state=done]").filter({ hasText: "dropped.png" });
  await visible(dropped, "the dropped file's upload finishing");
  assert.match(await dropped.getByTestId("upload-status").textContent(), /管理员/, "an anonymous upload says it went to the admin");
  assert.equal(await page.locator("#drop-overlay").isVisible(), false, "the drop overlay goes away");

  // By the paste button (the Clipboard API), with clipboard permission granted to the page.
  await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: BASE });
  const written = await page.evaluate(async () => {
    const canvas = new OffscreenCanvas(33, 21);
    const g = canvas.getContext("2d");
    g.fillStyle = "#c0ffee";
    g.fillRect(0, 0, 33, 21);
    const blob = await canvas.convertToBlob({ type: "image/png" });
    try {
      await navigator.clipboard.write([new ClipboardItem({ "image/png": blob })]);
      return "ok";
    } catch (err) {
      return String(err);
    }
  });
  assert.equal(written, "ok", "the test could put an image on the clipboard");
  const clip = page.waitForResponse((r) => r.url().endsWith("/api/upload-clipboard"));
  await page.getByTestId("paste-button").click();
  const clipAnswer = await clip;
  assert.equal(clipAnswer.status(), 200, "the clipboard image went to /api/upload-clipboard");
  assert.equal(JSON.parse(clipAnswer.request().postData()).imageData.slice(0, 22), "data:image/png;base64,");
  await visible(page.locator("[data-testid=upload-item][data-state=done]").filter({ hasText: "剪贴板图片" }), "the clipboard upload finishing");

  // The English switch translates the page and the server's messages, and is remembered.
  await page.getByTestId("lang-toggle").click();
  await waitUntil(page, "the page is in English", () => document.documentElement.lang === "en");
  assert.equal((await loginError.textContent()).trim(), "Wrong username or password");
  // A message naming a part is translated too: a JPEG with no image in it.
  const emptySent = page.waitForResponse((r) => r.url().endsWith("/api/upload-file"));
  await page.getByTestId("file-input").setInputFiles([
    { name: "empty.jpg", mimeType: "image/jpeg", buffer: Buffer.from([0xff, 0xd8, 0xff, 0xd9]) },
  ]);
  assert.equal((await emptySent).status(), 400);
  const empty = page.locator("[data-testid=upload-item][data-state=error]").filter({ hasText: "empty.jpg" });
  await visible(empty, "the refused empty JPEG");
  assert.equal(await empty.getByTestId("upload-status").textContent(), "The image file is damaged or incomplete: not a valid JPEG file");
  assert.equal(await page.getByTestId("login-submit").textContent(), "Log in");
  await page.reload();
  await visible(page.getByTestId("login-form"), "the log-in form after a reload");
  assert.equal(await page.evaluate(() => document.documentElement.lang), "en", "the language choice is remembered");
  await page.getByTestId("lang-toggle").click();
  await waitUntil(page, "the page is in Chinese again", () => document.documentElement.lang === "zh-CN");
  assert.equal(await page.getByTestId("login-submit").textContent(), "登录");

  assert.deepEqual(problems, [], "no page errors, CSP violations or dialogs");
  await context.close();
}

// ------------------------------------------------------------------------------------------------
// 3. Pagination: more images than one page, loaded as the gallery scrolls
// ------------------------------------------------------------------------------------------------

async function pagination(browser) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  const problems = watch(page);

  // A user with 60 images (one page holds 48), saved through the API.
  const username = "pg_" + Date.now().toString(36).slice(-8);
  const account = { username, email: `${username}@example.com`, password: "pagination-pw" };
  assert.equal((await context.request.post(BASE + "/api/register", { data: account })).status(), 200);
  assert.equal((await context.request.post(BASE + "/api/login", { data: account })).status(), 200);
  const COUNT = 60;
  for (let i = 0; i < COUNT; i += 10) {
    await Promise.all(Array.from({ length: 10 }, async (_, j) => {
      const n = i + j;
      const bytes = makePng(24 + (n % 7), 24 + (n % 5), [n * 4, 100, 200 - n * 3], [250, 250, 250]);
      const res = await context.request.post(BASE + "/api/receive-image", {
        data: { imageData: "data:image/png;base64," + bytes.toString("base64"), category: n % 3 ? "clothes" : "char" },
      });
      assert.equal(res.status(), 200, `image ${n} saved`);
    }));
  }

  await page.goto(BASE + "/");
  await visible(page.getByTestId("gallery"), "the gallery");
  // Whether the sentinel starts within reach (and page 2 follows at once) depends on the fonts'
  // line heights, so the first page is "at least 48" here.
  await waitUntil(page, "the first page shows", () =>
    document.querySelectorAll("[data-testid=thumb]").length >= 48);
  assert.equal(await page.getByTestId("gallery-count").getAttribute("data-total"), String(COUNT));

  // Scrolling to the end loads the rest, without duplicates.
  await page.evaluate(() => window.scrollTo(0, document.body.scrollHeight));
  await waitUntil(page, `all ${COUNT} thumbnails show`, (n) =>
    document.querySelectorAll("[data-testid=thumb]").length === n, COUNT);
  const ids = await thumbIds(page);
  assert.equal(new Set(ids.map(([id]) => id)).size, COUNT, "no image listed twice");

  // The char filter shows exactly the char images (every third one).
  await page.getByTestId("filter-char").click();
  await waitUntil(page, "the char filter shows 20 images", () => {
    const cats = [...document.querySelectorAll("[data-testid=thumb]")].map((e) => e.dataset.category);
    return cats.length === 20 && cats.every((c) => c === "char");
  });

  assert.deepEqual(problems, [], "no console errors, page errors, CSP violations or dialogs");
  await context.close();
}

// ------------------------------------------------------------------------------------------------
// 4. Cloud sync. The server has sync disabled (the button stays hidden, checked in the main flow),
//    so the API's answers are stubbed here to drive the button, its progress and its result.
// ------------------------------------------------------------------------------------------------

async function cloudSync(browser) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  const problems = watch(page, { allowFailedResources: true });
  const user = { user_id: "u-sync", username: "syncer", email: "syncer@example.com", cloud_sync_enabled: true };
  await page.route("**/api/auth/check", (route) => route.fulfill({ json: { authenticated: true, user } }));
  await page.route("**/api/user/images?*", (route) =>
    route.fulfill({ json: { images: [], total: 0, page: 1, per_page: 48, pages: 0 } }));
  let polls = 0;
  await page.route("**/api/task/t-sync", (route) => {
    polls += 1;
    const progress = (synced) => ({
      total_images: 25, synced_images: synced, files_sent: synced, bytes_sent: synced * 1000,
      batches: 1, total_files_missing: 0, refused_count: 0, refused: [],
    });
    const status = polls < 2
      ? { task_id: "t-sync", status: "processing", progress: progress(10) }
      : { task_id: "t-sync", status: "completed", progress: progress(25) };
    return route.fulfill({ json: { status } });
  });
  let syncAnswer = {
    status: 200,
    json: { success: true, message: "同步任务已启动", taskId: "t-sync", sync_info: { user_id: "u-sync", image_count: 25, estimated_time: "2.5秒" } },
  };
  await page.route("**/api/cloud/sync", (route) => route.fulfill(syncAnswer));

  await page.goto(BASE + "/");
  await visible(page.getByTestId("sync-button"), "the sync button (cloud sync enabled)");
  await page.getByTestId("sync-button").click();
  await visible(page.getByTestId("sync-status"), "the sync progress");
  await page.locator("[data-testid=sync-status][data-state=done]").waitFor({ timeout: WAIT });
  const done = await page.getByTestId("sync-text").textContent();
  assert.ok(done.includes("同步完成") && done.includes("已同步 25 / 25 张"), `sync result shown: ${done}`);
  assert.ok(polls >= 2, "the sync task was polled until it completed");

  // A refusal shows the server's error.
  syncAnswer = { status: 400, json: { success: false, error: "云端同步功能已禁用" } };
  await page.getByTestId("sync-button").click();
  await page.locator("[data-testid=sync-status][data-state=error]").waitFor({ timeout: WAIT });
  assert.ok((await page.getByTestId("sync-text").textContent()).includes("云端同步功能已禁用"));

  assert.deepEqual(problems, [], "no page errors, CSP violations or dialogs");
  await context.close();
}

// ------------------------------------------------------------------------------------------------

const browser = await launch();
try {
  await mainFlow(browser);
  console.log("ok - main flow: register, log in, upload, paste, filter, view, trash, log out");
  await errorMessages(browser);
  console.log("ok - error messages (wrong password, taken name, bad format, too large); drop; paste button; English");
  await pagination(browser);
  console.log("ok - pagination: 60 images load as the gallery scrolls, filter over all of them");
  await cloudSync(browser);
  console.log("ok - cloud sync button (stubbed API): progress, result, error");
} finally {
  await browser.close();
}
console.log(`screenshots in ${ARTIFACTS}`);
