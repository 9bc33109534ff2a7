// What the web UI's browser scripts share: small test images made on the spot, a watch on a
// page's console errors and CSP violations, and waits that fail with a description of what did
// not happen (every wait is bounded; the whole run is bounded by chromium.mjs's deadline()).
import { deflateSync } from "node:zlib";
import { randomBytes } from "node:crypto";

export const WAIT = 15_000; // for one thing to appear

// ------------------------------------------------------------------------------------------------
// Test images: small, valid, distinct PNGs made here (no fixtures, no network).
// ------------------------------------------------------------------------------------------------

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
function crc32(buf) {
  let c = 0xffffffff;
  for (const b of buf) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
function chunk(type, data) {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, "ascii"), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([len, body, crc]);
}
/** An RGB PNG of width×height: diagonal stripes of two colours, so every image differs. */
export function makePng(width, height, a, b) {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // RGB
  const raw = Buffer.alloc((width * 3 + 1) * height);
  for (let y = 0; y < height; y++) {
    const row = y * (width * 3 + 1);
    raw[row] = 0; // filter: none
    for (let x = 0; x < width; x++) {
      const [r, g, bl] = Math.floor((x + y) / 6) % 2 ? a : b;
      raw.set([r, g, bl], row + 1 + x * 3);
    }
  }
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", ihdr),
    chunk("IDAT", deflateSync(raw)),
    chunk("IEND", Buffer.alloc(0)),
  ]);
}

/** An RGB PNG of random pixels: this run's own bytes, which do not compress. */
export function makeNoisePng(width, height) {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([8, 2, 0, 0, 0], 8); // 8-bit RGB
  const rows = [];
  for (let y = 0; y < height; y++) rows.push(Buffer.from([0]), randomBytes(width * 3));
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", ihdr),
    chunk("IDAT", deflateSync(Buffer.concat(rows))),
    chunk("IEND", Buffer.alloc(0)),
  ]);
}

/** The width and height a PNG's header gives. */
export function pngSize(bytes) {
  if (bytes.length < 24 || bytes.readUInt32BE(12) !== 0x49484452) throw new Error("not a PNG");
  return [bytes.readUInt32BE(16), bytes.readUInt32BE(20)];
}

// ------------------------------------------------------------------------------------------------
// Pages
// ------------------------------------------------------------------------------------------------

/** Records console errors, page errors, CSP violations and native dialogs of one page. */
export function watch(page, { allowFailedResources = false } = {}) {
  const problems = [];
  page.on("console", (msg) => {
    if (msg.type() !== "error" && !/Content Security Policy|Refused to/i.test(msg.text())) return;
    // A 4xx the test provokes on purpose (wrong password, bad file) is logged by Chromium as
    // "Failed to load resource"; only the error-message part of the test allows those.
    if (allowFailedResources && /^Failed to load resource: the server responded with a status of 4\d\d/.test(msg.text())) return;
    problems.push(`console ${msg.type()}: ${msg.text()} (${msg.location().url || "?"})`);
  });
  page.on("pageerror", (err) => problems.push(`page error: ${err.message}`));
  page.on("dialog", async (dialog) => {
    problems.push(`unexpected native dialog (${dialog.type()}): ${dialog.message()}`);
    await dialog.dismiss().catch(() => {});
  });
  return problems;
}

export async function waitUntil(page, description, fn, arg) {
  try {
    await page.waitForFunction(fn, arg, { timeout: WAIT });
  } catch (err) {
    throw new Error(`timed out waiting until ${description}: ${err.message.split("\n")[0]}`);
  }
}

export async function visible(locator, description) {
  try {
    await locator.waitFor({ state: "visible", timeout: WAIT });
  } catch (err) {
    throw new Error(`${description} did not become visible: ${err.message.split("\n")[0]}`);
  }
}

export async function hidden(locator, description) {
  try {
    await locator.waitFor({ state: "hidden", timeout: WAIT });
  } catch (err) {
    throw new Error(`${description} did not go away: ${err.message.split("\n")[0]}`);
  }
}

/** Every thumbnail on the page has loaded real pixels. */
export async function thumbnailsLoaded(page, count) {
  await waitUntil(page, `${count} thumbnails have loaded`, (n) => {
    const imgs = [...document.querySelectorAll("[data-testid=thumb-image]")];
    return imgs.length === n && imgs.every((img) => img.complete && img.naturalWidth > 0);
  }, count);
}
