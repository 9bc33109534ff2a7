// Organizing images in the web UI, in Debian's Chromium, against a real imgvault started by
// tests/browser.rs: selection and batch actions, and the trash. Every UI action is checked against
// the server's state through the API afterwards, not only against the page.
//
// 1. Selection: shift-click a range of three, move them to another category, add a tag to three
//    others, "select all", Esc; the batch bar at phone width, light and dark; a long press on a
//    touch screen.
// 2. The trash: `Delete` in the image view, undo from the message; `Delete` on a selection; the
//    trash view's restore, and emptying it after a question that gives the count.
//
// Run: node tests/browser/organize.mjs (from the repository root; exit code 0 = pass).
import assert from "node:assert/strict";
import { join } from "node:path";
import { launch, BASE, ARTIFACTS, deadline } from "./chromium.mjs";
import { makePng, watch, waitUntil, visible, hidden, thumbnailsLoaded } from "./page.mjs";

deadline(150);

const COUNT = 6;
// The images, newest last as saved; the gallery lists them newest first.
const SIZES = [[64, 48], [48, 40], [30, 60], [50, 50], [72, 36], [40, 40]];

/** A new user with COUNT images (clothes), logged in in this context; returns their ids, newest
 *  first (the gallery's order). */
async function userWithImages(context, prefix) {
  const username = prefix + Date.now().toString(36).slice(-8);
  const account = { username, email: `${username}@example.com`, password: "organize-pw-1" };
  assert.equal((await context.request.post(BASE + "/api/register", { data: account })).status(), 200);
  assert.equal((await context.request.post(BASE + "/api/login", { data: account })).status(), 200);
  for (const [i, [w, h]] of SIZES.entries()) {
    const bytes = makePng(w, h, [40 * i, 120, 200 - 30 * i], [250, 240, 230]);
    const res = await context.request.post(BASE + "/api/receive-image", {
      data: { imageData: "data:image/png;base64," + bytes.toString("base64"), category: "clothes" },
    });
    assert.equal(res.status(), 200, `image ${i} saved`);
  }
  const list = await apiGet(context, "/api/user/images?per_page=100");
  assert.equal(list.total, COUNT);
  return list.images.map((i) => i.id);
}

async function apiGet(context, path) {
  const res = await context.request.get(BASE + path);
  assert.equal(res.status(), 200, `GET ${path}`);
  return res.json();
}

/** The server's record of one image (in the list, or in the trash when trashed). */
async function record(context, id) {
  for (const path of ["/api/user/images?per_page=100", "/api/user/trash?per_page=100"]) {
    const found = (await apiGet(context, path)).images.find((i) => i.id === id);
    if (found) return found;
  }
  return null;
}

async function openGallery(page, count) {
  await page.goto(BASE + "/");
  await visible(page.getByTestId("gallery"), "the gallery");
  await thumbnailsLoaded(page, count);
}

const card = (page, id) => page.locator(`[data-testid=thumb][data-id="${id}"]`);
const pick = (page, id) => page.locator(`li.tile[data-id="${id}"] [data-testid=pick]`);

async function thumbOrder(page) {
  return page.locator("[data-testid=thumb]").evaluateAll((els) => els.map((e) => e.dataset.id));
}

async function selectedCount(page) {
  return Number(await page.getByTestId("batch-count").getAttribute("data-count"));
}

// ------------------------------------------------------------------------------------------------
// 1. Selection and batch actions
// ------------------------------------------------------------------------------------------------

async function selection(browser) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  const problems = watch(page);
  const ids = await userWithImages(context, "sl_");
  await openGallery(page, COUNT);
  assert.deepEqual(await thumbOrder(page), ids, "the grid lists the images newest first");
  assert.equal(await page.getByTestId("batch-bar").isVisible(), false, "no batch bar before a pick");

  // A box, then shift on another box: the three from the first to the third.
  await card(page, ids[0]).hover();
  await pick(page, ids[0]).click();
  await visible(page.getByTestId("batch-bar"), "the batch bar");
  assert.equal(await selectedCount(page), 1);
  await pick(page, ids[2]).click({ modifiers: ["Shift"] });
  assert.equal(await selectedCount(page), 3, "shift-click picks the range");
  const chosen = await page.locator("li.tile.is-selected").evaluateAll((els) => els.map((e) => e.dataset.id));
  assert.deepEqual(chosen, ids.slice(0, 3), "the first three are picked");
  // Once choosing, a click on a card picks it instead of opening it; a second click unpicks.
  await card(page, ids[4]).click();
  assert.equal(await selectedCount(page), 4);
  assert.equal(await page.getByTestId("viewer").isVisible(), false, "a click while choosing opens nothing");
  await card(page, ids[4]).click();
  assert.equal(await selectedCount(page), 3);

  // Move them to char.
  const moved = page.waitForResponse((r) => r.url().endsWith("/api/user/images/batch"));
  await page.getByTestId("batch-category").selectOption("char");
  const movedAnswer = await moved;
  assert.deepEqual(JSON.parse(movedAnswer.request().postData()), { ids: ids.slice(0, 3), action: "set_category", category: "char" });
  assert.equal((await movedAnswer.json()).changed, 3);
  await visible(page.getByTestId("toast").filter({ hasText: "已将 3 张移到“角色”" }), "the message of the move");
  await hidden(page.getByTestId("batch-bar"), "the batch bar once the move is done");
  await waitUntil(page, "the cards show their new category", (want) =>
    want.every((id) => document.querySelector(`[data-testid=thumb][data-id="${id}"]`)?.dataset.category === "char"), ids.slice(0, 3));
  for (const id of ids) {
    assert.equal((await record(context, id)).category, ids.slice(0, 3).includes(id) ? "char" : "clothes", `category of ${id}`);
  }
  // The category's count follows.
  await page.getByTestId("filter-char").click();
  await waitUntil(page, "the char tab counts three", () =>
    document.querySelector("[data-testid=gallery-count]").dataset.total === "3");
  await thumbnailsLoaded(page, 3);
  await page.getByTestId("filter-clothes").click();
  await waitUntil(page, "the clothes tab counts three", () =>
    document.querySelector("[data-testid=gallery-count]").dataset.total === "3");
  await page.getByTestId("filter-all").click();
  await thumbnailsLoaded(page, COUNT);

  // Add a tag to the other three: "select" mode, taps on cards, then the tag panel.
  await page.getByTestId("select-mode").click();
  await visible(page.getByTestId("batch-bar"), "the batch bar in selection mode");
  assert.equal(await page.getByTestId("batch-trash").isDisabled(), true, "no action without a pick");
  for (const id of ids.slice(3)) await card(page, id).click();
  assert.equal(await selectedCount(page), 3);
  await page.getByTestId("batch-tags").click();
  await visible(page.getByTestId("batch-tags-panel"), "the tag panel");
  await page.getByTestId("batch-tag-input").fill("batch-tag");
  await page.getByTestId("batch-tag-input").press("Enter");
  await visible(page.locator("[data-testid=batch-tags-panel] [data-tag=batch-tag]"), "the tag to add, as a chip");
  const tagged = page.waitForResponse((r) => r.url().endsWith("/api/user/images/batch"));
  await page.getByTestId("batch-tag-add").click();
  const taggedAnswer = await tagged;
  assert.deepEqual(JSON.parse(taggedAnswer.request().postData()), { ids: ids.slice(3), action: "add_tags", tags: ["batch-tag"] });
  await visible(page.getByTestId("toast").filter({ hasText: "已为 3 张添加标签 batch-tag" }), "the message of the tagging");
  for (const id of ids) {
    const want = ids.slice(3).includes(id) ? ["batch-tag"] : [];
    assert.deepEqual((await record(context, id)).tags, want, `tags of ${id}`);
  }

  // "Select all" takes every match, loaded or not; Esc lets go.
  await pick(page, ids[1]).click();
  await visible(page.getByTestId("batch-all"), "the select-all button");
  assert.equal(await page.getByTestId("batch-all").textContent(), `选择全部 ${COUNT} 张`);
  await page.getByTestId("batch-all").click();
  await waitUntil(page, "all images are selected", (n) =>
    document.querySelector("[data-testid=batch-count]").dataset.count === String(n), COUNT);
  assert.equal(await page.getByTestId("batch-all").isVisible(), false, "nothing more to select");

  // The batch bar on a phone, in light and dark.
  await page.setViewportSize({ width: 390, height: 844 });
  await visible(page.getByTestId("batch-trash"), "the batch actions on a phone");
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  assert.ok(overflow <= 0, `no horizontal scroll at 390 px (overflow ${overflow}px)`);
  const bar = await page.getByTestId("batch-bar").boundingBox();
  assert.ok(bar.x >= 0 && bar.x + bar.width <= 390 + 0.5, `the batch bar fits the phone's width: ${JSON.stringify(bar)}`);
  await page.getByTestId("batch-tags").click();
  await page.screenshot({ path: join(ARTIFACTS, "batch-phone.png"), animations: "disabled" });
  await page.emulateMedia({ colorScheme: "dark" });
  await page.screenshot({ path: join(ARTIFACTS, "batch-phone-dark.png"), animations: "disabled" });
  await page.emulateMedia({ colorScheme: "light" });
  await page.setViewportSize({ width: 1280, height: 800 });
  await page.getByTestId("batch-tags").click(); // closes the tag panel (and leaves its field)
  await page.keyboard.press("Escape");
  await hidden(page.getByTestId("batch-bar"), "the batch bar after Esc");
  assert.equal(await page.locator("li.tile.is-selected").count(), 0, "Esc lets the selection go");

  assert.deepEqual(problems, [], "no console errors, page errors, CSP violations or dialogs");
  await context.close();
}

/** On a touch screen a long press picks a card (a tap would open it). */
async function longPress(browser) {
  const context = await browser.newContext({ viewport: { width: 390, height: 844 }, hasTouch: true, isMobile: true });
  const page = await context.newPage();
  const problems = watch(page);
  const ids = await userWithImages(context, "lp_");
  await openGallery(page, COUNT);
  assert.equal(await pick(page, ids[1]).isVisible(), false, "no boxes on a touch screen before choosing");
  const target = await card(page, ids[1]).boundingBox();
  const cdp = await context.newCDPSession(page);
  const point = { x: target.x + target.width / 2, y: target.y + target.height / 3 };
  await cdp.send("Input.dispatchTouchEvent", { type: "touchStart", touchPoints: [point] });
  await page.waitForTimeout(800);
  await cdp.send("Input.dispatchTouchEvent", { type: "touchEnd", touchPoints: [] });
  await visible(page.getByTestId("batch-bar"), "the batch bar after a long press");
  assert.equal(await selectedCount(page), 1, "the long press picked the card");
  assert.equal(await page.getByTestId("viewer").isVisible(), false, "the long press opened nothing");
  await visible(pick(page, ids[1]), "the boxes once choosing");
  // Now a tap picks another.
  await card(page, ids[3]).tap();
  assert.equal(await selectedCount(page), 2);
  assert.deepEqual(problems, [], "no console errors, page errors, CSP violations or dialogs");
  await context.close();
}

// ------------------------------------------------------------------------------------------------
// 2. The trash
// ------------------------------------------------------------------------------------------------

async function trash(browser) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  const problems = watch(page);
  const ids = await userWithImages(context, "tr_");
  await openGallery(page, COUNT);

  // Delete in the image view moves the image to the trash; the message's undo brings it back.
  await card(page, ids[2]).click();
  await visible(page.getByTestId("viewer"), "the image view");
  const trashed = page.waitForResponse((r) => r.url().endsWith("/api/user/images/batch"));
  await page.keyboard.press("Delete");
  assert.deepEqual(JSON.parse((await trashed).request().postData()), { ids: [ids[2]], action: "trash" });
  await hidden(page.getByTestId("viewer"), "the image view after Delete");
  await hidden(card(page, ids[2]), "the trashed image's card");
  assert.ok((await record(context, ids[2])).trashed_at, "the image is in the trash on the server");
  assert.equal((await apiGet(context, "/api/user/images")).total, COUNT - 1);
  const undo = page.getByTestId("toast-action");
  await visible(undo, "the undo button");
  assert.equal(await undo.textContent(), "撤销");
  const restored = page.waitForResponse((r) => r.url().endsWith("/api/user/images/batch"));
  await undo.click();
  assert.deepEqual(JSON.parse((await restored).request().postData()), { ids: [ids[2]], action: "restore" });
  await thumbnailsLoaded(page, COUNT);
  assert.equal((await record(context, ids[2])).trashed_at, undefined, "undo restored it on the server");
  assert.equal((await apiGet(context, "/api/user/trash")).total, 0);

  // Delete on a selection trashes the selection.
  await pick(page, ids[0]).click();
  await pick(page, ids[1]).click();
  await page.keyboard.press("Delete");
  await thumbnailsLoaded(page, COUNT - 2);
  await hidden(page.getByTestId("batch-bar"), "the batch bar after trashing the selection");
  assert.deepEqual((await apiGet(context, "/api/user/trash")).images.map((i) => i.id).sort(), [ids[0], ids[1]].sort());

  // The trash view: its address, its cards (with working thumbnails), restore one.
  await page.getByTestId("trash-open").click();
  await waitUntil(page, "the trash is listed", () => document.body.dataset.list === "trash");
  assert.equal(new URL(page.url()).searchParams.get("view"), "trash");
  await thumbnailsLoaded(page, 2);
  await page.screenshot({ path: join(ARTIFACTS, "trash-desktop.png"), animations: "disabled" });
  assert.equal(await page.getByTestId("search-input").isVisible(), false, "no search in the trash");
  assert.match(await page.getByTestId("gallery-title").textContent(), /回收站/);
  const restoreOne = page.waitForResponse((r) => r.url().endsWith("/api/user/images/batch"));
  await page.locator(`li.tile[data-id="${ids[0]}"] [data-testid=restore]`).click();
  assert.deepEqual(JSON.parse((await restoreOne).request().postData()), { ids: [ids[0]], action: "restore" });
  await thumbnailsLoaded(page, 1);
  assert.equal((await record(context, ids[0])).trashed_at, undefined, "restored on the server");

  // Emptying asks first, with the count; cancel keeps it, confirm deletes for good.
  await page.getByTestId("trash-empty").click();
  await visible(page.getByTestId("confirm-dialog"), "the empty-trash question");
  assert.match(await page.getByTestId("confirm-text").textContent(), /回收站里的 1 张图片会被永久删除/);
  await page.getByTestId("confirm-cancel").click();
  await hidden(page.getByTestId("confirm-dialog"), "the question after cancelling");
  assert.equal((await apiGet(context, "/api/user/trash")).total, 1, "cancelling kept the trash");
  await page.getByTestId("trash-empty").click();
  const emptied = page.waitForResponse((r) => r.url().endsWith("/api/user/trash/empty"));
  await page.getByTestId("confirm-ok").click();
  assert.equal((await (await emptied).json()).deleted, 1);
  await visible(page.getByTestId("empty"), "the empty trash's message");
  assert.equal((await apiGet(context, "/api/user/trash")).total, 0, "the trash is empty on the server");
  assert.equal(await record(context, ids[1]), null, "the image is gone for good");

  // Back to the images: everything but the deleted one.
  await page.getByTestId("trash-back").click();
  await thumbnailsLoaded(page, COUNT - 1);
  assert.equal(new URL(page.url()).searchParams.get("view"), null);

  assert.deepEqual(problems, [], "no console errors, page errors, CSP violations or dialogs");
  await context.close();
}

// ------------------------------------------------------------------------------------------------

const browser = await launch();
try {
  await selection(browser);
  console.log("ok - selection: shift range, move category, add tags, select all, Esc, phone");
  await longPress(browser);
  console.log("ok - a long press picks a card on a touch screen");
  await trash(browser);
  console.log("ok - trash: Delete and undo, Delete on a selection, restore, empty after asking");
} finally {
  await browser.close();
}
console.log(`screenshots in ${ARTIFACTS}`);
