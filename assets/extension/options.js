// Options page: the server address (validated, stored in chrome.storage.local), a connection test
// against /api/status, and the default category.

const DEFAULTS = { server: "http://localhost:8080", defaultCategory: "clothes" };
const msg = (name, ...subs) => chrome.i18n.getMessage(name, subs) || name;

const form = document.getElementById("options");
const serverInput = document.getElementById("server");
const categorySelect = document.getElementById("category");
const status = document.getElementById("status");

function localize() {
  document.documentElement.lang = chrome.i18n.getUILanguage();
  for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = msg(el.dataset.i18n);
  document.title = msg("optionsTitle");
}

function show(text, kind) {
  status.textContent = text;
  status.className = kind || "";
}

/** The address as stored (no trailing slash), or null unless it is an http(s) URL. */
function normalizeServer(value) {
  let url;
  try {
    url = new URL(value.trim());
  } catch {
    return null;
  }
  if (!["http:", "https:"].includes(url.protocol) || url.search || url.hash) return null;
  return (url.origin + url.pathname).replace(/\/+$/, "");
}

function readServer() {
  const server = normalizeServer(serverInput.value);
  serverInput.setAttribute("aria-invalid", String(!server));
  if (!server) show(msg("invalidServer"), "error");
  return server;
}

async function restore() {
  const settings = await chrome.storage.local.get(DEFAULTS);
  serverInput.value = settings.server;
  categorySelect.value = settings.defaultCategory;
}

async function save(event) {
  event.preventDefault();
  const server = readServer();
  if (!server) return;
  serverInput.value = server;
  await chrome.storage.local.set({ server, defaultCategory: categorySelect.value });
  show(msg("settingsSaved"), "ok");
}

async function testConnection() {
  const server = readServer();
  if (!server) return;
  show(msg("testing"));
  try {
    const response = await fetch(`${server}/api/status`, { credentials: "include" });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const body = await response.json().catch(() => null);
    if (body?.status !== "running" || typeof body.total_images !== "number") throw new Error(msg("notImgvault"));
    show(msg("testOk", String(body.total_images)), "ok");
  } catch (error) {
    // fetch rejects with a TypeError when nothing answers at that address.
    show(error instanceof TypeError ? msg("errorUnreachable", server) : msg("testFailed", error.message), "error");
  }
}

localize();
restore();
form.addEventListener("submit", save);
document.getElementById("test").addEventListener("click", testConnection);
