// Near-duplicates in the web UI, in Debian's Chromium, against a real imgvault started by
// tests/browser.rs. Every UI action is checked against the server's state through the API.
//
// 1. The image view lists the open image's look-alikes (a smaller copy, the same bytes saved
//    twice) with their distance, not an unrelated image; a click on one opens it in the view.
// 2. "Find duplicates" groups them, ticks the copy with the most pixels to keep, and moves the
//    others to the trash; the server's trash then holds exactly those, and the page says no
//    duplicates are left. At desktop and phone widths, light and dark.
//
// Run: node tests/browser/duplicates.mjs (from the repository root; exit code 0 = pass).
import assert from "node:assert/strict";
import { join } from "node:path";
import { deflateSync } from "node:zlib";
import { launch, BASE, ARTIFACTS, deadline } from "./chromium.mjs";
import { watch, waitUntil, visible, hidden, thumbnailsLoaded } from "./page.mjs";

deadline(150);

/** A photo-like scene (soft discs over a gradient) as an RGB PNG of width×height; `seed` moves
 *  the discs. The same seed at another size is the same picture resized. */
function scenePng(width, height, seed) {
  let s = seed * 2654435761 >>> 0;
  const rand = () => ((s = (s ^ (s << 13)) >>> 0, s = (s ^ (s >>> 17)) >>> 0, s = (s ^ (s << 5)) >>> 0) / 4294967296);
  const discs = Array.from({ length: 6 }, () => [rand(), rand(), 0.1 + 0.25 * rand(), [rand() * 255, rand() * 255, rand() * 255]]);
  const raw = Buffer.alloc((width * 3 + 1) * height);
  for (let y = 0; y < height; y++) {
    const row = y * (width * 3 + 1);
    for (let x = 0; x < width; x++) {
      const fx = x / width, fy = y / height;
      let c = [fy * 120 + 40, fx * 80 + 60, 150];
      for (const [bx, by, r, colour] of discs) {
        const t = Math.min(1, Math.max(0, 1 - Math.hypot(fx - bx, fy - by) / r));
        c = c.map((v, k) => v * (1 - t) + colour[k] * t);
      }
      raw.set(c.map((v) => Math.round(v)), row + 1 + x * 3);
    }
  }
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (buf) => {
    let c = 0xffffffff;
    for (const b of buf) c = crcTable[(c ^ b) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type, data) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const body = Buffer.concat([Buffer.from(type, "ascii"), data]);
    const sum = Buffer.alloc(4);
    sum.writeUInt32BE(crc(body));
    return Buffer.concat([len, body, sum]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8;
  ihdr[9] = 2;
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", ihdr),
    chunk("IDAT", deflateSync(raw)),
    chunk("IEND", Buffer.alloc(0)),
  ]);
}

async function apiGet(context, path) {
  const res = await context.request.get(BASE + path);
  assert.equal(res.status(), 200, `GET ${path}`);
  return res.json();
}

/** Saves a PNG and waits until it is processed (thumbnail and hash made); its image id. */
async function save(context, bytes, title) {
  const res = await context.request.post(BASE + "/api/receive-image", {
    data: {
      imageData: "data:image/png;base64," + bytes.toString("base64"),
      category: "clothes",
      pageInfo: { title },
    },
  });
  assert.equal(res.status(), 200, "saved");
  const body = await res.json();
  for (let i = 0; i < 200; i++) {
    const task = await apiGet(context, `/api/task/${body.taskId}`);
    if (task.status.status !== "processing") {
      assert.equal(task.status.status, "completed");
      return body.imageId;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error("the upload's task never ended");
}

const browser = await launch();
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  const problems = watch(page);
  const username = "du_" + Date.now().toString(36).slice(-8);
  const account = { username, email: `${username}@example.com`, password: "dupes-pw-1" };
  assert.equal((await context.request.post(BASE + "/api/register", { data: account })).status(), 200);
  assert.equal((await context.request.post(BASE + "/api/login", { data: account })).status(), 200);

  const big = scenePng(480, 360, 7);
  const ids = {};
  ids.other = await save(context, scenePng(480, 360, 99), "A different picture");
  ids.small = await save(context, scenePng(240, 180, 7), "Harbour, small copy");
  ids.big = await save(context, big, "Harbour at dusk");
  ids.again = await save(context, big, "Harbour at dusk, saved again");

  await page.goto(BASE + "/");
  await visible(page.getByTestId("gallery"), "the gallery");
  await thumbnailsLoaded(page, 4);

  // 1. The image view's similar images.
  await page.locator(`[data-testid=thumb][data-id="${ids.big}"]`).click();
  await visible(page.getByTestId("viewer"), "the image view");
  const strip = page.getByTestId("similar-thumb");
  await waitUntil(page, "the similar images are listed", () =>
    document.querySelectorAll("[data-testid=similar-thumb]").length > 0);
  const listed = await strip.evaluateAll((els) => els.map((e) => [e.dataset.id, Number(e.dataset.distance)]));
  assert.deepEqual(listed.map(([id]) => id).sort(), [ids.again, ids.small].sort(), "the two copies, not the other picture");
  assert.deepEqual(listed[0], [ids.again, 0], "the same bytes first, at distance 0");
  await waitUntil(page, "the similar thumbnails have loaded", () =>
    [...document.querySelectorAll("[data-testid=similar-thumb] img")].every((i) => i.complete && i.naturalWidth > 0));
  await page.screenshot({ path: join(ARTIFACTS, "similar-desktop.png"), animations: "disabled" });
  // A click opens that copy in the view.
  await page.locator(`[data-testid=similar-thumb][data-id="${ids.small}"]`).click();
  await waitUntil(page, "the view shows the small copy", (id) => document.querySelector("[data-testid=viewer]").dataset.id === id, ids.small);
  await waitUntil(page, "the small copy's look-alikes are listed", (want) => {
    const shown = [...document.querySelectorAll("[data-testid=similar-thumb]")].map((e) => e.dataset.id).sort();
    return JSON.stringify(shown) === JSON.stringify(want);
  }, [ids.again, ids.big].sort());
  await page.getByTestId("viewer-close").click();
  await hidden(page.getByTestId("viewer"), "the image view");

  // 2. The duplicates page.
  await page.getByTestId("dupes-open").click();
  await visible(page.getByTestId("dupes"), "the duplicates page");
  assert.equal(await page.getByTestId("gallery").isVisible(), false, "the page takes the gallery's place");
  await visible(page.getByTestId("dupe-group").first(), "a group");
  assert.equal(await page.getByTestId("dupe-group").count(), 1, "one group: the other picture is in none");
  const items = page.getByTestId("dupe-item");
  const inGroup = await items.evaluateAll((els) => els.map((e) => e.dataset.id));
  assert.deepEqual([...inGroup].sort(), [ids.again, ids.big, ids.small].sort());
  const kept = await page.locator("[data-testid=dupe-item]:has([data-testid=dupe-keep]:checked)")
    .evaluateAll((els) => els.map((e) => e.dataset.id));
  assert.deepEqual(kept, [ids.big], "the older of the two largest copies is kept");
  const trashButton = page.getByTestId("dupe-trash");
  assert.match(await trashButton.textContent(), /2/, "two to move");
  await waitUntil(page, "the group's thumbnails have loaded", () =>
    [...document.querySelectorAll("[data-testid=dupe-item] img")].every((i) => i.complete && i.naturalWidth > 0));
  await page.screenshot({ path: join(ARTIFACTS, "duplicates-desktop.png"), animations: "disabled" });
  await page.setViewportSize({ width: 390, height: 844 });
  await page.screenshot({ path: join(ARTIFACTS, "duplicates-phone.png"), animations: "disabled", fullPage: true });
  await page.emulateMedia({ colorScheme: "dark" });
  await page.screenshot({ path: join(ARTIFACTS, "duplicates-phone-dark.png"), animations: "disabled", fullPage: true });
  await page.emulateMedia({ colorScheme: "light" });
  await page.setViewportSize({ width: 1280, height: 800 });

  // Unticking every copy leaves nothing to keep: the button says so and does nothing.
  await page.locator(`[data-testid=dupe-item][data-id="${ids.big}"] [data-testid=dupe-keep]`).uncheck();
  assert.equal(await trashButton.isDisabled(), true, "at least one copy is kept");
  await page.locator(`[data-testid=dupe-item][data-id="${ids.big}"] [data-testid=dupe-keep]`).check();
  await trashButton.click();
  await visible(page.getByTestId("dupes-empty"), "the no-duplicates message");
  const trash = await apiGet(context, "/api/user/trash?per_page=100");
  assert.deepEqual(trash.images.map((i) => i.id).sort(), [ids.again, ids.small].sort(), "the server's trash holds the two copies");
  const live = await apiGet(context, "/api/user/images?per_page=100");
  assert.deepEqual(live.images.map((i) => i.id).sort(), [ids.big, ids.other].sort());
  const groups = await apiGet(context, "/api/user/duplicates");
  assert.equal(groups.total_groups, 0);

  // Back to the gallery, which lists what is left.
  await page.getByTestId("dupes-back").click();
  await visible(page.getByTestId("gallery"), "the gallery again");
  await thumbnailsLoaded(page, 2);

  assert.deepEqual(problems, [], "no console errors, page errors, CSP violations or dialogs");
  await context.close();
  console.log("ok - similar images in the view; find duplicates keeps the best copy and trashes the rest");
} finally {
  await browser.close();
}
console.log(`screenshots in ${ARTIFACTS}`);
