// Launching Debian's Chromium for the browser tests: never a downloaded browser, always headless,
// with the flags that keep it off the (closed) network, and a fresh profile every time.
import { mkdtempSync, mkdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

export const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";

export const ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
];

/** The imgvault server under test, started by tests/browser.rs. */
export const BASE = (process.env.IMGVAULT_URL || "").replace(/\/$/, "");
if (!BASE) throw new Error("IMGVAULT_URL is not set (run through `cargo test --test browser`)");
export const ADMIN_PASSWORD = process.env.IMGVAULT_ADMIN_PASSWORD || "admin-test-pw";
/** Stops (`POST /stop`) and starts again (`POST /start`, answers the new base URL) the server. */
export const CONTROL = (process.env.IMGVAULT_CONTROL || "").replace(/\/$/, "");

/** Where screenshots go; kept after the run as test artefacts. */
export const ARTIFACTS = process.env.ARTIFACTS_DIR || join(process.cwd(), "target", "browser-artifacts");
mkdirSync(ARTIFACTS, { recursive: true });

/** A browser with a fresh, throw-away profile. */
export async function launch(options = {}) {
  return chromium.launch({ executablePath, headless: true, args: ARGS, ...options });
}

/** A new empty profile directory, for a browser to be started more than once on it. */
export function newProfile() {
  const profile = mkdtempSync(join(tmpdir(), "imgvault-chromium-"));
  // Profiles are tens of MB each; none outlives the run.
  process.on("exit", () => rmSync(profile, { recursive: true, force: true }));
  return profile;
}

/** A persistent context (needed to load an unpacked extension), in `profile` or a new empty one. */
export async function launchWithExtension(extensionDir, profile = newProfile()) {
  return chromium.launchPersistentContext(profile, {
    executablePath,
    headless: true,
    args: [
      ...ARGS,
      `--disable-extensions-except=${extensionDir}`,
      `--load-extension=${extensionDir}`,
    ],
  });
}

/** Fails the run if it takes longer than `seconds`, so a hung browser never hangs CI. */
export function deadline(seconds) {
  const timer = setTimeout(() => {
    console.error(`browser test exceeded ${seconds} s`);
    process.exit(2);
  }, seconds * 1000);
  timer.unref();
}
