// imgvault extension: a context menu on images that saves them to the user's imgvault server.
// Runs as the service worker in Chromium and as the background script in Firefox.
//
// The save path is a handful of named functions on the global scope (saveImage and its helpers),
// so the browser test can drive exactly what a menu click does.

const DEFAULTS = { server: "http://localhost:8080", defaultCategory: "clothes" };
const CATEGORIES = ["clothes", "char"];
const MENU_PARENT = "imgvault";
const MAX_IMAGE_BYTES = 10 * 1024 * 1024; // the server's limit
const ICON = "icons/icon-128.png";

const msg = (name, ...subs) => chrome.i18n.getMessage(name, subs) || name;

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
 * how it went. Returns what the notification says, plus whether the bytes or only the URL were sent.
 */
async function saveImage({ srcUrl, pageUrl, tabId, frameId = 0, category }) {
  const { server } = await getSettings();
  const [imageData, pageInfo] = await Promise.all([
    imageAsDataUrl(srcUrl).catch((error) => {
      // CORS, network, too large…: let the server download it instead.
      console.warn("imgvault: sending the image URL instead of its bytes:", error.message);
      return srcUrl;
    }),
    collectPageInfo(tabId, frameId, srcUrl, pageUrl),
  ]);
  const result = await postImage(server, { imageData, originalUrl: srcUrl, category, pageInfo });
  const notificationId = await notify(result);
  return { ...result, notificationId, sent: imageData.startsWith("data:") ? "data" : "url" };
}

/** Downloads an image and encodes it as a `data:` URL; throws past the server's size limit. */
async function imageAsDataUrl(url) {
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
  const type = (response.headers.get("content-type") || "").split(";")[0].trim();
  return toDataUrl(bytes, type.startsWith("image/") ? type : "application/octet-stream");
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

/** POSTs to /api/receive-image; `{ok, text}` where text is the server's message or error. */
async function postImage(server, body) {
  let response;
  try {
    response = await fetch(`${server}/api/receive-image`, {
      method: "POST",
      credentials: "include", // a session the user has on the server applies
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
  } catch {
    return { ok: false, text: msg("errorUnreachable", server) };
  }
  const reply = await response.json().catch(() => null);
  if (response.ok && reply?.success) return { ok: true, text: reply.message || msg("savedFallback") };
  return { ok: false, text: reply?.error || msg("errorHttp", String(response.status)) };
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
