// imgvault extension: a context menu on images that saves them to the user's imgvault server.
// Runs as the service worker in Chromium and as the background script in Firefox.
//
// The save path is a handful of named functions on the global scope (saveImage and its helpers),
// so the browser test can drive exactly what a menu click does.

const DEFAULTS = { server: "http://localhost:8080", defaultCategory: "clothes", apiKey: "" };
const CATEGORIES = ["clothes", "char"];
const MENU_PARENT = "imgvault";
const MAX_IMAGE_BYTES = 10 * 1024 * 1024; // the server's limit
/** What the server stores as sent (an older one not AVIF: see saveImage). */
const SERVER_TYPES = ["image/png", "image/jpeg", "image/gif", "image/webp", "image/avif"];
/** How the server's refusal of an image format begins (imgvault's and the original project's). */
const UNSUPPORTED_FORMAT = "不支持的文件格式";
const ICON = "icons/icon-128.png";

const msg = (name, ...subs) => chrome.i18n.getMessage(name, subs) || name;

// The offline queue and the badge (queue.js); Firefox loads it from the manifest's script list.
if (typeof importScripts === "function") importScripts("queue.js");

async function getSettings() {
  return { ...DEFAULTS, ...(await chrome.storage.local.get(DEFAULTS)) };
}

// ---- context menu ----------------------------------------------------------------------------

/** The entries as created (resolved once every create has succeeded); the test reads it. */
let menusReady = Promise.resolve([]);

function createMenu(properties) {
  return new Promise((resolve, reject) => {
    chrome.contextMenus.create(properties, () => {
      const error = chrome.runtime.lastError;
      if (error) reject(new Error(error.message));
      else resolve(properties);
    });
  });
}

/** (Re)creates the menu: the parent, then one entry per category, the default one first. */
async function buildMenus() {
  const { defaultCategory } = await getSettings();
  const ordered = [...CATEGORIES].sort((a, b) => (b === defaultCategory) - (a === defaultCategory));
  await chrome.contextMenus.removeAll();
  const created = [await createMenu({ id: MENU_PARENT, title: msg("menuParent"), contexts: ["image"] })];
  for (const category of ordered) {
    const label = msg(category === "char" ? "categoryChar" : "categoryClothes");
    const suffix = category === defaultCategory ? msg("menuDefaultSuffix") : "";
    created.push(await createMenu({
      id: `save-${category}`,
      parentId: MENU_PARENT,
      title: label + suffix,
      contexts: ["image"],
    }));
  }
  return created;
}

function rebuildMenus() {
  menusReady = menusReady.catch(() => {}).then(buildMenus);
  menusReady.catch((error) => console.error("imgvault: context menu not created:", error));
}

chrome.runtime.onInstalled.addListener(rebuildMenus);
chrome.runtime.onStartup.addListener(rebuildMenus);
// Captures queued before the browser (or this worker) stopped go out as soon as it runs again.
drainQueue().catch((error) => console.warn("imgvault: queue not sent:", error.message));
chrome.storage.onChanged.addListener((changes, area) => {
  if (area === "local" && changes.defaultCategory) rebuildMenus();
});

chrome.contextMenus.onClicked.addListener((info, tab) => {
  const category = CATEGORIES.find((c) => info.menuItemId === `save-${c}`);
  if (!category) return;
  saveImage({
    srcUrl: info.srcUrl,
    pageUrl: info.pageUrl,
    tabId: tab?.id,
    frameId: info.frameId,
    category,
  });
});

// ---- the save path ---------------------------------------------------------------------------

/**
 * Saves the image at `srcUrl` (seen in tab `tabId`) to the configured server and tells the user
 * how it went. Returns what the notification says, whether the bytes, only their hash (the vault
 * had them already) or only the URL were sent, how the image was converted if it was, and whether
 * it was queued because the vault could not take it now.
 */
async function saveImage({ srcUrl, pageUrl, tabId, frameId = 0, category }) {
  const { server, apiKey } = await getSettings();
  const [image, pageInfo] = await Promise.all([
    fetchImage(srcUrl).catch((error) => {
      // CORS, network, too large…: let the server download it instead.
      console.warn("imgvault: sending the image URL instead of its bytes:", error.message);
      return null;
    }),
    collectPageInfo(tabId, frameId, srcUrl, pageUrl),
  ]);
  const bodyFor = (upload, fields) =>
    JSON.stringify({
      ...fields,
      originalUrl: srcUrl,
      category,
      pageInfo: upload?.converted
        ? { ...pageInfo, imageContext: { ...pageInfo.imageContext, converted: upload.converted } }
        : pageInfo,
    });
  // One Idempotency-Key per body: the same capture sent again is the same request.
  const send = async (upload) => {
    const body = bodyFor(upload, { imageData: upload ? toDataUrl(upload.bytes, upload.type) : srcUrl });
    const key = crypto.randomUUID();
    return { ...(await sendCapture(server, apiKey, key, body)), key, body };
  };
  let upload = image;
  let result;
  let sent = image ? "data" : "url";
  try {
    if (image && !SERVER_TYPES.includes(image.type)) upload = await convertImage(image.bytes, image.type);
    result = upload ? await sendKnown(server, apiKey, upload, bodyFor) : null;
    if (result) sent = "hash";
    else result = await send(upload);
    // A type the server refuses though we expected it to take it: AVIF on older servers and the
    // original project's, a JPEG with data after its end on older ones. Convert it, once.
    if (result.unsupported && image && !upload.converted) {
      upload = await convertImage(image.bytes, image.type);
      result = await send(upload);
    }
  } catch (error) {
    // Only convertImage throws: the browser cannot decode the image here (SVG in a service
    // worker, a damaged file) or its conversion is still too large.
    console.warn(`imgvault: ${image.type} image not converted:`, error.message);
    result = { ok: false, text: msg("errorNotConvertible", formatName(image.type)) };
  }
  let queued = false;
  if (!result.ok && result.retry && result.body) {
    const waiting = await enqueueCapture({ key: result.key, body: result.body });
    queued = waiting > 0;
    result = { ...result, text: queued ? msg("queuedNotice", result.text, String(waiting)) : msg("queueFull", result.text) };
  }
  const { converted } = upload || {};
  if (result.ok && converted) {
    const kind = converted.lossless ? "convertedLossless" : "convertedLossy";
    const note = msg(kind, formatName(converted.from), formatName(converted.to));
    result = { ...result, text: `${result.text} ${note}` };
  }
  if (result.ok && sent === "hash") result = { ...result, text: `${result.text} ${msg("alreadySaved")}` };
  const notificationId = await notify(result);
  if (result.ok) {
    if (typeof tabId === "number" && tabId >= 0) markKnownImages(tabId);
    drainQueue().catch(() => {});
  }
  return { ok: result.ok, text: result.text, notificationId, sent, converted, queued };
}

/**
 * When the vault already holds these bytes for the caller (asked by their SHA-256), saves this
 * capture as a new record on them without sending the bytes again; null when it does not, cannot
 * say (an older server, no account) or refuses the short form, so the caller sends the bytes.
 */
async function sendKnown(server, apiKey, upload, bodyFor) {
  const sha256 = await sha256Hex(upload.bytes);
  const known = await lookup(server, apiKey, { sha256: [sha256] });
  if (!known?.sha256.includes(sha256)) return null;
  const body = bodyFor(upload, { sha256 });
  const key = crypto.randomUUID();
  const result = await sendCapture(server, apiKey, key, body);
  return result.ok || result.retry ? { ...result, key, body } : null;
}

/** Downloads an image: its bytes and their type; throws past the server's size limit. */
async function fetchImage(url) {
  const response = await fetch(url, { credentials: "include" });
  if (!response.ok) throw new Error(`HTTP ${response.status}`);
  if (Number(response.headers.get("content-length")) > MAX_IMAGE_BYTES) throw new Error("too large");
  const chunks = [];
  let size = 0;
  const reader = response.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.length;
    if (size > MAX_IMAGE_BYTES) {
      reader.cancel();
      throw new Error("too large");
    }
    chunks.push(value);
  }
  const bytes = new Uint8Array(await new Blob(chunks).arrayBuffer());
  const header = (response.headers.get("content-type") || "").split(";")[0].trim().toLowerCase();
  const type = sniffType(bytes) || (header.startsWith("image/") ? header : "application/octet-stream");
  return { bytes, type };
}

/**
 * The image type of some bytes by their magic numbers, as the server sniffs them: the formats it
 * takes, plus the common ones browsers show that it does not (for naming them); "" for others.
 */
function sniffType(bytes) {
  const ascii = (start, end) => String.fromCharCode(...bytes.subarray(start, end));
  if (ascii(0, 8) === "\x89PNG\r\n\x1a\n") return "image/png";
  if (bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) return "image/jpeg";
  if (ascii(0, 4) === "GIF8") return "image/gif";
  if (ascii(0, 4) === "RIFF" && ascii(8, 12) === "WEBP") return "image/webp";
  if (ascii(4, 8) === "ftyp") {
    // ISO-BMFF: the major brand, a minor version, then compatible brands to the box's end.
    const end = Math.min(new DataView(bytes.buffer, bytes.byteOffset).getUint32(0), bytes.length);
    const brands = [ascii(8, 12)];
    for (let at = 16; at + 4 <= end; at += 4) brands.push(ascii(at, at + 4));
    return brands.includes("avif") ? "image/avif" : "";
  }
  if (ascii(0, 2) === "BM") return "image/bmp";
  if (ascii(0, 4) === "\0\0\x01\0") return "image/x-icon";
  return "";
}

/** "BMP" for image/bmp, "SVG" for image/svg+xml: how a notification names a type. */
const formatName = (type) => (type.split("/")[1] || type).replace(/^x-|\+xml$/g, "").toUpperCase();

/**
 * Re-encodes an image the server does not take, as the browser decodes it: PNG (lossless), or
 * WebP at quality 0.95 when the PNG would pass the server's limit (JPEG where WebP cannot be
 * encoded). Returns `{bytes, type, converted}`, `converted` being what `context_info` records.
 *
 * "Lossless" is the encoding: the PNG holds exactly what Chromium decodes onto an sRGB canvas.
 * That is the image as shown (AVIF irot/imir and EXIF orientation applied, colour profiles
 * converted to sRGB), but wide-gamut colours are clipped, more than 8 bits are rounded, and
 * semi-transparent pixels lose precision (the canvas stores premultiplied alpha).
 */
async function convertImage(bytes, fromType) {
  const bitmap = await createImageBitmap(new Blob([bytes], { type: fromType }));
  const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
  canvas.getContext("2d").drawImage(bitmap, 0, 0);
  bitmap.close();
  let blob = await canvas.convertToBlob({ type: "image/png" });
  if (blob.size > MAX_IMAGE_BYTES) {
    blob = await canvas.convertToBlob({ type: "image/webp", quality: 0.95 });
    // convertToBlob answers PNG for a type it cannot encode.
    if (blob.type !== "image/webp") blob = await canvas.convertToBlob({ type: "image/jpeg", quality: 0.95 });
  }
  if (blob.size > MAX_IMAGE_BYTES) throw new Error("too large even when converted");
  return {
    bytes: new Uint8Array(await blob.arrayBuffer()),
    type: blob.type,
    converted: { from: fromType, to: blob.type, lossless: blob.type === "image/png", by: "extension" },
  };
}

/** `data:` URL of some bytes. Service workers have no FileReader, so base64 is done by hand. */
function toDataUrl(bytes, type) {
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  }
  return `data:${type};base64,${btoa(binary)}`;
}

/** `{url, title, imageContext}` of the page (frame) showing the image. */
async function collectPageInfo(tabId, frameId, srcUrl, pageUrl) {
  const fallback = { url: pageUrl || "", title: "", imageContext: {} };
  if (typeof tabId !== "number" || tabId < 0) return fallback;
  try {
    const [injection] = await chrome.scripting.executeScript({
      target: { tabId, frameIds: [frameId] },
      func: describeImage,
      args: [srcUrl],
    });
    return injection?.result || fallback;
  } catch (error) {
    // Pages the browser keeps extensions out of (its own pages, web stores, PDF viewers).
    console.warn("imgvault: page info not available:", error.message);
    const tab = await chrome.tabs.get(tabId).catch(() => null);
    return { ...fallback, url: fallback.url || tab?.url || "", title: tab?.title || "" };
  }
}

/**
 * Runs in the page: the page's URL and title and the clicked image's alt, title and caption.
 * Self-contained, as functions injected with chrome.scripting must be.
 */
function describeImage(srcUrl) {
  const clean = (text) => (text || "").replace(/\s+/g, " ").trim().slice(0, 300);
  const textOf = (ids) =>
    (ids || "").split(/\s+/).map((id) => document.getElementById(id)?.textContent || "").join(" ");
  const nearbyText = (img) => {
    for (let el = img.parentElement, depth = 0; el && depth < 3; el = el.parentElement, depth++) {
      const text = clean(el.innerText);
      if (text) return text;
    }
    return "";
  };
  const img = Array.from(document.images).find((i) => i.currentSrc === srcUrl || i.src === srcUrl);
  const imageContext = {};
  if (img) {
    const caption =
      clean(img.closest("figure")?.querySelector("figcaption")?.textContent) ||
      clean(img.getAttribute("aria-label")) ||
      clean(textOf(img.getAttribute("aria-describedby"))) ||
      nearbyText(img);
    for (const [key, value] of Object.entries({ alt: clean(img.alt), title: clean(img.title), caption })) {
      if (value) imageContext[key] = value;
    }
  }
  return { url: location.href, title: document.title, imageContext };
}

/** Request headers of a call to the server: JSON, and the paired key when there is one. */
function serverHeaders(apiKey) {
  const headers = { "Content-Type": "application/json" };
  if (apiKey) headers.Authorization = `Bearer ${apiKey}`;
  return headers;
}

/** Shows the result; resolves to the notification's id (empty if notifications are unavailable). */
async function notify({ ok, text }) {
  try {
    return await chrome.notifications.create({
      type: "basic",
      iconUrl: chrome.runtime.getURL(ICON),
      title: msg(ok ? "notifySavedTitle" : "notifyFailedTitle"),
      message: text,
    });
  } catch (error) {
    console.error("imgvault: notification failed:", error, text);
    return "";
  }
}
