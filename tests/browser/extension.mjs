// The browser extension in Debian's Chromium: load assets/extension unpacked, configure it through
// its options page, then save images from a local test page through the extension's own save path
// (the function its context-menu handler calls) and check what imgvault stored.
//
// Run by tests/browser.rs as `node tests/browser/extension.mjs` from the repository root, with
// IMGVAULT_URL pointing at a fresh imgvault. A native context menu cannot be clicked from a test,
// so the menu is checked by the entries the service worker created, and the click handler's
// function, saveImage, is called in the service worker with what a click passes it.
import { createServer } from "node:http";
import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { isDeepStrictEqual } from "node:util";
import { ADMIN_PASSWORD, ARTIFACTS, BASE, deadline, launchWithExtension } from "./chromium.mjs";
import { randomBytes } from "node:crypto";
import { makeNoisePng } from "./page.mjs";

deadline(120);

const EXTENSION_DIR = resolve("assets/extension");

// ---- helpers ---------------------------------------------------------------------------------

function check(condition, message, detail) {
  if (!condition) {
    throw new Error(detail === undefined ? message : `${message}: ${JSON.stringify(detail, null, 1)}`);
  }
}

function equal(actual, expected, what) {
  check(isDeepStrictEqual(actual, expected), `${what}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`);
}

/** Polls `probe` until it returns something truthy; fails with `what` after `ms`. */
async function until(what, probe, ms = 10000) {
  const end = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** A 24-bit BMP (bottom-up rows padded to 4 bytes) of `pixel(x, y)` → [r, g, b]. */
function makeBmp(width, height, pixel) {
  const stride = Math.ceil((width * 3) / 4) * 4;
  const out = Buffer.alloc(54 + stride * height);
  out.write("BM", 0, "ascii");
  out.writeUInt32LE(out.length, 2);
  out.writeUInt32LE(54, 10); // where the pixels start
  out.writeUInt32LE(40, 14); // BITMAPINFOHEADER
  out.writeInt32LE(width, 18);
  out.writeInt32LE(height, 22);
  out.writeUInt16LE(1, 26); // planes
  out.writeUInt16LE(24, 28); // bits per pixel
  out.writeUInt32LE(stride * height, 34);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const [r, g, b] = pixel(x, y);
      out.set([b, g, r], 54 + (height - 1 - y) * stride + x * 3);
    }
  }
  return out;
}

/** Width and height from a PNG's IHDR; fails unless the bytes start with the PNG signature. */
function pngSize(bytes, what) {
  check(bytes.subarray(0, 8).equals(Buffer.from("\x89PNG\r\n\x1a\n", "latin1")), `${what} is not a PNG`, [...bytes.subarray(0, 16)]);
  return [bytes.readUInt32BE(16), bytes.readUInt32BE(20)];
}

async function api(path, { method = "GET", body, cookie } = {}) {
  const response = await fetch(BASE + path, {
    method,
    headers: { ...(body ? { "content-type": "application/json" } : {}), ...(cookie ? { cookie } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  return response;
}

async function login(username, password) {
  const response = await api("/api/login", { method: "POST", body: { username, password } });
  const reply = await response.json();
  check(response.ok && reply.success, `login as ${username} failed`, reply);
  const cookie = response.headers.get("set-cookie");
  check(cookie, `login as ${username} set no cookie`);
  return cookie.split(";")[0];
}

async function newestImage(cookie) {
  const response = await api("/api/user/images?per_page=1", { cookie });
  const reply = await response.json();
  check(response.ok && reply.images?.length === 1, "GET /api/user/images gave no image", reply);
  return reply.images[0];
}

/** The original file of a record, as the server serves it. */
async function storedBytes(record, cookie) {
  return Buffer.from(await (await api(record.preview_url, { cookie })).arrayBuffer());
}

/** The one record saved from `originalUrl`. */
async function imageFrom(cookie, originalUrl) {
  const response = await api("/api/user/images?per_page=100", { cookie });
  const reply = await response.json();
  const found = (reply.images || []).filter((image) => image.original_url === originalUrl);
  check(response.ok && found.length === 1, `expected one image saved from ${originalUrl}`, reply);
  return found[0];
}

// ---- the test page ---------------------------------------------------------------------------

const PNG_WIDTH = 9;
const PNG_HEIGHT = 6;
const png = makeNoisePng(PNG_WIDTH, PNG_HEIGHT);
const PAGE_TITLE = "扩展测试页 · imgvault extension test";
const ALT = "红色连衣裙 red dress";
const IMG_TITLE = "夏季新款 summer collection";
const CAPTION = "图 1：测试用的连衣裙 (figure caption)";
const DESCRIBED = "Described by another element";
const NEARBY = "Words next to the picture";

const PAGE = `<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>${PAGE_TITLE}</title></head>
<body>
  <h1>imgvault</h1>
  <figure>
    <img id="shirt" src="/shirt.png" alt="${ALT}" title="${IMG_TITLE}" width="90" height="60">
    <figcaption>  ${CAPTION}
    </figcaption>
  </figure>
  <img id="broken" src="/broken.png" alt="broken" aria-describedby="desc">
  <p id="desc">${DESCRIBED}</p>
  <div><p>${NEARBY} <img id="nearby" src="/nearby.png" alt=""></p></div>
  <figure><img id="bmp" src="/pattern.bmp" alt="bitmap"><figcaption>BMP</figcaption></figure>
  <figure><img id="avif" src="/quadrants.avif" alt="quadrants"><figcaption>AVIF</figcaption></figure>
  <figure><img id="svg" src="/logo.svg" alt="logo"><figcaption>SVG</figcaption></figure>
</body></html>`;

// Formats the server does not take (BMP) or may not take (AVIF: older imgvault servers and the
// original project refuse it), which the extension converts in the browser; and one it cannot
// convert (a service worker has no SVG decoder).
const BMP_WIDTH = 7; // odd, so the rows are padded
const BMP_HEIGHT = 5;
const bmpPixel = (x, y) => [x * 36, y * 50, 200 - x * 20];
const bmp = makeBmp(BMP_WIDTH, BMP_HEIGHT, bmpPixel);
// Made by fixtures/make_quadrants.py: 12x8, lossless, four flat quadrants of these colours.
const avif = readFileSync(resolve("tests/browser/fixtures/quadrants.avif"));
const AVIF_SIZE = [12, 8];
const QUADRANTS = [
  [[2, 1], [220, 40, 30]],
  [[9, 2], [30, 160, 60]],
  [[3, 6], [40, 70, 200]],
  [[10, 7], [250, 220, 20]],
];

const SVG = `<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"><rect width="8" height="8" fill="red"/></svg>`;

const BIG = 10 * 1024 * 1024 + 1; // one byte over the limit
const hits = new Map();

const pageServer = createServer((req, res) => {
  const path = new URL(req.url, "http://x").pathname;
  hits.set(path, (hits.get(path) || 0) + 1);
  if (path === "/page.html") {
    res.writeHead(200, { "content-type": "text/html; charset=utf-8" }).end(PAGE);
  } else if (path === "/shirt.png") {
    res.writeHead(200, { "content-type": "image/png", "content-length": png.length }).end(png);
  } else if (path === "/pattern.bmp") {
    res.writeHead(200, { "content-type": "image/bmp" }).end(bmp);
  } else if (path === "/quadrants.avif") {
    res.writeHead(200, { "content-type": "image/avif" }).end(avif);
  } else if (path === "/logo.svg") {
    res.writeHead(200, { "content-type": "image/svg+xml" }).end(SVG);
  } else if (path === "/big.png") {
    // No Content-Length: the extension must stop reading once the stream passes the limit.
    res.writeHead(200, { "content-type": "image/png" });
    const piece = Buffer.alloc(1024 * 1024, 7);
    let left = BIG;
    const pump = () => {
      while (left > 0) {
        const part = piece.subarray(0, Math.min(left, piece.length));
        left -= part.length;
        if (!res.write(part)) return res.once("drain", pump);
      }
      res.end();
    };
    res.on("error", () => {});
    pump();
  } else {
    res.writeHead(path === "/broken.png" ? 500 : 404, { "content-type": "text/plain" }).end("no");
  }
});

async function listen(server) {
  await new Promise((ok) => server.listen(0, "127.0.0.1", ok));
  return `http://127.0.0.1:${server.address().port}`;
}

/** An address where nothing listens: a port we held and let go. */
async function closedAddress() {
  const server = createServer();
  const address = await listen(server);
  await new Promise((ok) => server.close(ok));
  return address;
}

// ---- the run ---------------------------------------------------------------------------------

const ORIGIN = await listen(pageServer);
const PAGE_URL = `${ORIGIN}/page.html`;
const SRC_URL = `${ORIGIN}/shirt.png`;
let context;

try {
  context = await launchWithExtension(EXTENSION_DIR);
  const worker =
    context.serviceWorkers().find((w) => w.url().startsWith("chrome-extension://")) ||
    (await context.waitForEvent("serviceworker", { timeout: 30000 }));
  const extensionId = new URL(worker.url()).host;
  console.log(`extension ${extensionId} loaded, service worker ${worker.url()}`);
  check(worker.url().endsWith("/background.js"), "unexpected service worker", worker.url());

  // The context menu: the parent and one entry per category, created without runtime.lastError
  // (createMenu rejects on it, so menusReady would reject).
  const menus = await until("the context menu entries", () =>
    worker.evaluate(async () => {
      const created = await menusReady;
      return created.length ? created : null;
    }),
  );
  equal(menus.map((m) => [m.id, m.parentId ?? null, m.contexts]), [
    ["imgvault", null, ["image"]],
    ["save-clothes", "imgvault", ["image"]],
    ["save-char", "imgvault", ["image"]],
  ], "context menu entries");
  const menuTitle = await worker.evaluate(() => chrome.i18n.getMessage("menuParent"));
  equal(menus[0].title, menuTitle, "context menu title");
  check(menuTitle, "menuParent message missing");

  // ---- options page ----
  const options = await context.newPage();
  await options.goto(`chrome-extension://${extensionId}/options.html`);
  await options.waitForFunction(() => document.getElementById("server").value === "http://localhost:8080");
  check(await options.textContent("label[for=server]"), "options page labels are not localized");

  // An address that is not http(s) is refused and not stored.
  await options.fill("#server", "ftp://example.com/");
  await options.click("#save");
  await options.waitForSelector("#status.error");
  equal((await worker.evaluate(() => chrome.storage.local.get("server"))).server, undefined, "stored server after a bad address");

  await options.fill("#server", `${BASE}/`);
  await options.selectOption("#category", "char");
  await options.click("#save");
  await options.waitForSelector("#status.ok");
  equal(await worker.evaluate(() => chrome.storage.local.get(null)), { defaultCategory: "char", server: BASE }, "stored options");
  equal(await options.inputValue("#server"), BASE, "server field after saving");

  const { total_images: total } = await (await api("/api/status")).json();
  await options.evaluate(() => { document.getElementById("status").className = ""; }); // no stale result
  await options.click("#test");
  const testText = await until("the connection test result", () =>
    options.evaluate(() => {
      const status = document.getElementById("status"); // "ok" or "error" once the answer is in
      return status.className ? `${status.className}: ${status.textContent}` : null;
    }),
  );
  check(testText.startsWith("ok: "), "connection test failed", testText);
  check(testText.includes(String(total)), `connection test should show the total (${total})`, testText);
  await options.screenshot({ path: join(ARTIFACTS, "extension-options.png") });

  // The default category comes first in the menu once the options change.
  const reordered = await until("the menu to follow the default category", () =>
    worker.evaluate(async () => {
      const created = await menusReady;
      return created[1]?.id === "save-char" ? created : null;
    }),
  );
  check(reordered[1].title.endsWith(await worker.evaluate(() => chrome.i18n.getMessage("menuDefaultSuffix"))), "default entry not marked", reordered);

  // ---- save from the test page, as a context-menu click on the figure's image would ----
  const page = await context.newPage();
  await page.goto(PAGE_URL);
  await page.waitForFunction(() => document.getElementById("shirt").complete);
  const tabId = await worker.evaluate(async (url) => (await chrome.tabs.query({})).find((t) => t.url === url)?.id, PAGE_URL);
  check(typeof tabId === "number", "test page tab not found");

  const save = (srcUrl, category) =>
    worker.evaluate(
      async ({ srcUrl, pageUrl, tabId, category }) => {
        const result = await saveImage({ srcUrl, pageUrl, tabId, frameId: 0, category });
        const shown = result.notificationId ? await chrome.notifications.getAll() : {};
        return { ...result, shown: Boolean(shown[result.notificationId]) };
      },
      { srcUrl, pageUrl: PAGE_URL, tabId, category },
    );

  const shirtFetches = hits.get("/shirt.png") || 0;
  const saved = await save(SRC_URL, "clothes");
  console.log("anonymous save:", saved);
  check(saved.ok, "saving the image failed", saved);
  equal(saved.sent, "data", "what the extension sent");
  check(saved.text.includes("clothes"), "notification should carry the server's message", saved);
  check(saved.shown, "no notification shown", saved);
  check((hits.get("/shirt.png") || 0) > shirtFetches, "the extension did not fetch the image itself");

  const admin = await login("admin", ADMIN_PASSWORD);
  const record = await newestImage(admin);
  console.log("stored record:", record);
  equal(record.page_url, PAGE_URL, "page_url");
  equal(record.page_title, PAGE_TITLE, "page_title");
  equal(record.original_url, SRC_URL, "original_url");
  equal(record.context_info, { alt: ALT, title: IMG_TITLE, caption: CAPTION, category: "clothes" }, "context_info");
  equal([record.image_width, record.image_height], [PNG_WIDTH, PNG_HEIGHT], "image size");
  equal(record.file_size, png.length, "file_size");
  const stored = await storedBytes(record, admin);
  check(stored.equals(png), `stored bytes differ from the PNG (${stored.length} vs ${png.length} bytes)`);

  // ---- formats the server does not take are converted in the browser ----
  // Colours of some pixels of an image, as the browser decodes it.
  const pixelsOf = (bytes, points) =>
    worker.evaluate(async ({ bytes, points }) => {
      const bitmap = await createImageBitmap(new Blob([new Uint8Array(bytes)]));
      const context = new OffscreenCanvas(bitmap.width, bitmap.height).getContext("2d");
      context.drawImage(bitmap, 0, 0);
      return points.map(([x, y]) => [...context.getImageData(x, y, 1, 1).data.slice(0, 3)]);
    }, { bytes: [...bytes], points });
  const checkQuadrants = async (bytes, what) => {
    const colours = await pixelsOf(bytes, QUADRANTS.map(([point]) => point));
    QUADRANTS.forEach(([point, expected], i) =>
      // Lossless and sRGB, so exact today; 2 levels of slack for a decoder's YUV rounding.
      check(colours[i].every((c, k) => Math.abs(c - expected[k]) <= 2), `${what}: pixel ${point}`, { expected, got: colours[i] }));
  };
  const lossless = (from) => ({ from, to: "image/png", lossless: true, by: "extension" });
  await page.waitForFunction(() => ["bmp", "avif", "svg"].every((id) => document.getElementById(id).naturalWidth > 0));
  const sniffed = await worker.evaluate((samples) => samples.map((bytes) => sniffType(new Uint8Array(bytes))), [
    [...png], [...bmp], [...avif], [0xff, 0xd8, 0xff, 0xe0], [..."GIF89a"].map((c) => c.charCodeAt(0)),
    [..."RIFF\0\0\0\0WEBPVP8 "].map((c) => c.charCodeAt(0)), [0, 0, 1, 0, 1, 0], [..."<svg"].map((c) => c.charCodeAt(0)),
  ]);
  equal(sniffed, ["image/png", "image/bmp", "image/avif", "image/jpeg", "image/gif", "image/webp", "image/x-icon", ""], "sniffType");

  // BMP: the server refuses it, so it is converted before sending (one POST).
  const bmpUrl = `${ORIGIN}/pattern.bmp`;
  const savedBmp = await save(bmpUrl, "clothes");
  console.log("BMP save:", savedBmp);
  check(savedBmp.ok && savedBmp.shown, "saving the BMP failed", savedBmp);
  equal(savedBmp.converted, lossless("image/bmp"), "conversion the extension reports for the BMP");
  const bmpNote = await worker.evaluate(() => chrome.i18n.getMessage("convertedLossless", ["BMP", "PNG"]));
  check(bmpNote && savedBmp.text.endsWith(bmpNote), "the notification should say the BMP was converted", savedBmp);
  const bmpRecord = await imageFrom(admin, bmpUrl);
  equal(bmpRecord.context_info, { alt: "bitmap", caption: "BMP", category: "clothes", converted: lossless("image/bmp") }, "context_info of the BMP");
  check(bmpRecord.filename.endsWith(".png"), "the BMP should be stored as a PNG", bmpRecord.filename);
  const bmpStored = await storedBytes(bmpRecord, admin);
  equal(pngSize(bmpStored, "the stored BMP"), [BMP_WIDTH, BMP_HEIGHT], "stored BMP's PNG size");
  equal([bmpRecord.image_width, bmpRecord.image_height], [BMP_WIDTH, BMP_HEIGHT], "the BMP record's size");
  const corners = [[0, 0], [BMP_WIDTH - 1, BMP_HEIGHT - 1]];
  equal(await pixelsOf(bmpStored, corners), corners.map(([x, y]) => bmpPixel(x, y)), "stored BMP's corner pixels");

  // AVIF: what the extension must do depends on the server. Ask it directly first: one that takes
  // AVIF must get the file as it is; one that refuses it (imgvault before AVIF support, or the
  // original project) must get a PNG the extension made after that refusal.
  const probe = await api("/api/receive-image", {
    method: "POST",
    body: { imageData: `data:image/avif;base64,${avif.toString("base64")}`, category: "clothes" },
  });
  const probeReply = await probe.json();
  const takesAvif = probe.ok && probeReply.success === true;
  check(takesAvif || (probe.status === 400 && probeReply.error?.startsWith("不支持的文件格式")), "the AVIF probe got neither a save nor a format refusal", probeReply);
  console.log(`the server ${takesAvif ? "takes" : "refuses"} AVIF`);
  const avifUrl = `${ORIGIN}/quadrants.avif`;
  const savedAvif = await save(avifUrl, "clothes");
  console.log("AVIF save:", savedAvif);
  check(savedAvif.ok && savedAvif.shown, "saving the AVIF failed", savedAvif);
  const avifRecord = await imageFrom(admin, avifUrl);
  const avifStored = await storedBytes(avifRecord, admin);
  if (takesAvif) {
    equal(savedAvif.converted, undefined, "conversion of an AVIF the server takes");
    equal(avifRecord.context_info, { alt: "quadrants", caption: "AVIF", category: "clothes" }, "context_info of the AVIF");
    check(avifStored.equals(avif), "the AVIF should be stored as sent");
  } else {
    equal(savedAvif.converted, lossless("image/avif"), "conversion the extension reports for the AVIF");
    equal(avifRecord.context_info, { alt: "quadrants", caption: "AVIF", category: "clothes", converted: lossless("image/avif") }, "context_info of the AVIF");
    equal(pngSize(avifStored, "the stored AVIF"), AVIF_SIZE, "stored AVIF's PNG size");
    await checkQuadrants(avifStored, "the stored AVIF");
  }

  // Whatever the server takes, the conversion of an AVIF itself: PNG, its size, its colours.
  const direct = await worker.evaluate(async (bytes) => {
    const out = await convertImage(new Uint8Array(bytes), sniffType(new Uint8Array(bytes)));
    return { ...out, bytes: [...out.bytes] };
  }, [...avif]);
  equal(direct.converted, lossless("image/avif"), "convertImage's record for the AVIF");
  equal(direct.type, "image/png", "convertImage's type for the AVIF");
  const directPng = Buffer.from(direct.bytes);
  equal(pngSize(directPng, "the converted AVIF"), AVIF_SIZE, "the converted AVIF's size");
  await checkQuadrants(directPng, "the converted AVIF");

  // Past the server's limit as a PNG, the conversion is lossy WebP. 2048x2048 of noise is 12 MiB
  // as a PNG; it is made in the worker, as carrying it in and out would take longer.
  const large = await worker.evaluate(async () => {
    const canvas = new OffscreenCanvas(2048, 2048);
    const pixels = new ImageData(canvas.width, canvas.height);
    for (let i = 0; i < pixels.data.length; i += 65536) crypto.getRandomValues(pixels.data.subarray(i, i + 65536));
    for (let i = 3; i < pixels.data.length; i += 4) pixels.data[i] = 255; // opaque
    canvas.getContext("2d").putImageData(pixels, 0, 0);
    const png = new Uint8Array(await (await canvas.convertToBlob({ type: "image/png" })).arrayBuffer());
    const out = await convertImage(png, "image/png");
    const bitmap = await createImageBitmap(new Blob([out.bytes]));
    return { png: png.length, ...out, bytes: out.bytes.length, sniffed: sniffType(out.bytes), size: [bitmap.width, bitmap.height] };
  });
  console.log("large conversion:", large);
  check(large.png > 10 * 1024 * 1024 && large.bytes <= 10 * 1024 * 1024, "sizes of the large conversion", large);
  equal([large.type, large.sniffed, large.size], ["image/webp", "image/webp", [2048, 2048]], "the large conversion's type and size");
  equal(large.converted, { from: "image/png", to: "image/webp", lossless: false, by: "extension" }, "the large conversion's record");

  // SVG: nothing to convert it with in a service worker; refused with a message saying so.
  const savedSvg = await save(`${ORIGIN}/logo.svg`, "clothes");
  const svgText = await worker.evaluate(() => chrome.i18n.getMessage("errorNotConvertible", ["SVG"]));
  check(!savedSvg.ok && savedSvg.shown && savedSvg.text === svgText, "an SVG should be refused as not convertible", savedSvg);

  // ---- with a session in the browser, the save belongs to that user (credentials: "include") ----
  const user = { username: `ext${randomBytes(3).toString("hex")}`, email: "", password: "extension-pw" };
  user.email = `${user.username}@example.com`;
  const registered = await (await api("/api/register", { method: "POST", body: user })).json();
  check(registered.success, "register failed", registered);
  const browserLogin = await context.request.post(`${BASE}/api/login`, { data: { username: user.username, password: user.password } });
  check(browserLogin.ok(), "browser login failed", await browserLogin.text());
  const savedAsUser = await save(SRC_URL, "char");
  check(savedAsUser.ok && savedAsUser.sent === "data", "saving with a session failed", savedAsUser);
  const userRecord = await newestImage(await login(user.username, user.password));
  equal([userRecord.context_info.category, userRecord.page_url, userRecord.original_url], ["char", PAGE_URL, SRC_URL], "the logged-in user's record");
  check(userRecord.filename.startsWith("char_"), "filename of a char image", userRecord.filename);

  // ---- fallback: an image the extension cannot download is sent as its URL ----
  const brokenUrl = `${ORIGIN}/broken.png`;
  const brokenFetches = hits.get("/broken.png") || 0;
  const fallback = await save(brokenUrl, "clothes");
  console.log("fallback:", fallback);
  equal(fallback.sent, "url", "what the extension sent for an image it could not fetch");
  check((hits.get("/broken.png") || 0) > brokenFetches, "the extension did not try to fetch the image");
  // The server got a URL: it refuses a loopback address (SSRF guard) or, with
  // --allow-private-fetch, reports the origin's 500. Either way the user sees the server's error.
  check(!fallback.ok && /无法从该URL获取图片|获取图片失败/.test(fallback.text), "expected the server's URL error", fallback);
  check(fallback.shown, "no error notification shown", fallback);

  // ---- page info fallbacks: aria-describedby, then nearby text ----
  const described = await worker.evaluate(({ tabId, src, url }) => collectPageInfo(tabId, 0, src, url), { tabId, src: brokenUrl, url: PAGE_URL });
  equal(described.imageContext, { alt: "broken", caption: DESCRIBED }, "imageContext from aria-describedby");
  const nearby = await worker.evaluate(({ tabId, src, url }) => collectPageInfo(tabId, 0, src, url), { tabId, src: `${ORIGIN}/nearby.png`, url: PAGE_URL });
  equal(nearby.imageContext, { caption: NEARBY }, "imageContext from nearby text");

  // ---- helpers: base64 in chunks matches Node's; over 10 MiB is refused while streaming ----
  const sample = Buffer.from(Array.from({ length: 70001 }, (_, i) => (i * 7 + (i >> 8)) % 256));
  const encoded = await worker.evaluate((bytes) => toDataUrl(new Uint8Array(bytes), "image/png"), [...sample]);
  equal(encoded, `data:image/png;base64,${sample.toString("base64")}`, "toDataUrl of 70001 bytes");
  const tooBig = await worker.evaluate((url) => fetchImage(url).then(() => "accepted", (e) => e.message), `${ORIGIN}/big.png`);
  equal(tooBig, "too large", "an image over 10 MiB");

  // ---- server unreachable: a clear message, not a stack trace, and the capture kept ----
  const nowhere = await closedAddress();
  await worker.evaluate((server) => chrome.storage.local.set({ server }), nowhere);
  const unreachable = await save(SRC_URL, "clothes");
  const expected = await worker.evaluate((server) => chrome.i18n.getMessage("errorUnreachable", [server]), nowhere);
  check(!unreachable.ok && unreachable.text.startsWith(expected) && expected.includes(nowhere), "unreachable server message", unreachable);
  check(unreachable.queued, "a capture the server could not take is queued", unreachable);
  check(unreachable.shown, "no notification for an unreachable server", unreachable);
  await worker.evaluate((server) => chrome.storage.local.set({ server }), BASE);
  const drained = await worker.evaluate(() => drainQueue());
  equal(drained, { saved: 1, failed: 0, left: 0 }, "the queued capture once the server answers");

  console.log("extension test passed");
} catch (error) {
  console.error(`extension test FAILED: ${error.stack || error}`);
  process.exitCode = 1;
} finally {
  await context?.close().catch(() => {});
  pageServer.closeAllConnections();
  pageServer.close();
}
