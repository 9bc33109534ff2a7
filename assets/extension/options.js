// Options page: the server address (validated, stored in chrome.storage.local), a connection test
// against /api/status, the default category, and pairing: a code from the web UI's "extension &
// keys" traded for a capture key (POST /api/keys/pair), which every capture then carries as
// `Authorization: Bearer`, so captures reach the right account without a login in this browser.

const DEFAULTS = { server: "http://localhost:8080", defaultCategory: "clothes", apiKey: "", apiKeyUser: "" };
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
  showPairing(settings);
}

/** Whether a key is stored, and for whom. */
function showPairing({ apiKey, apiKeyUser }) {
  const state = document.getElementById("pair-state");
  state.textContent = apiKey ? msg("pairedAs", apiKeyUser || "?") : msg("notPaired");
  state.classList.toggle("connected", Boolean(apiKey));
  document.getElementById("pair-row").hidden = Boolean(apiKey);
  document.getElementById("pair-hint").hidden = Boolean(apiKey);
  document.getElementById("unpair").hidden = !apiKey;
}

/** Trades the typed code for a capture key of the server's user who asked for the code. */
async function pair() {
  const server = readServer();
  if (!server) return;
  const code = document.getElementById("pair-code").value.trim();
  if (!code) {
    show(msg("pairCodeMissing"), "error");
    return;
  }
  show(msg("pairing"));
  try {
    const response = await fetch(`${server}/api/keys/pair`, {
      method: "POST",
      credentials: "omit",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ code, name: msg("keyName", navigator.platform || "") }),
    });
    const body = await response.json().catch(() => null);
    if (!response.ok || !body?.key) throw new Error(body?.error || `HTTP ${response.status}`);
    const check = await fetch(`${server}/api/auth/check`, {
      credentials: "omit",
      headers: { Authorization: `Bearer ${body.key}` },
    }).then((r) => r.json()).catch(() => null);
    const settings = { server, apiKey: body.key, apiKeyUser: check?.user?.username || "" };
    serverInput.value = server;
    await chrome.storage.local.set(settings);
    document.getElementById("pair-code").value = "";
    showPairing(settings);
    show(msg("pairedOk", settings.apiKeyUser || "?"), "ok");
  } catch (error) {
    show(error instanceof TypeError ? msg("errorUnreachable", server) : msg("pairFailed", error.message), "error");
  }
}

/** Forgets the key here. It stays valid on the server until revoked in the web UI. */
async function unpair() {
  await chrome.storage.local.set({ apiKey: "", apiKeyUser: "" });
  showPairing({ apiKey: "", apiKeyUser: "" });
  show(msg("unpaired"), "ok");
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
document.getElementById("pair").addEventListener("click", pair);
document.getElementById("unpair").addEventListener("click", unpair);
