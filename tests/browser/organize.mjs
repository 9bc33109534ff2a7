// Organizing images in the web UI, in Debian's Chromium, against a real imgvault started by
// tests/browser.rs: selection and batch actions, the trash, tags and editing. Every UI action is
// checked against the server's state through the API afterwards, not only against the page.
//
// 1. Selection: shift-click a range of three, move them to another category, add a tag to three
//    others, "select all", Esc; the batch bar at phone width, light and dark; a long press on a
//    touch screen.
// 2. The trash: `Delete` in the image view, undo from the message; `Delete` on a selection; the
//    trash view's restore, and emptying it after a question that gives the count.
// 3. Tags: tag an image in the image view, see completion offer that tag for the next image,
//    click the tag's chip to list the images carrying it (the address bar holds the filter).
// 4. Editing: rotate and crop in the image view (the preview turns first), the served file's new
//    size, the refreshed thumbnail, revert.
//
// Run: node tests/browser/organize.mjs (from the repository root; exit code 0 = pass).
import assert from "node:assert/strict";
import { join } from "node:path";
import { launch, BASE, ARTIFACTS, deadline } from "./chromium.mjs";
import { makePng, pngSize, watch, waitUntil, visible, hidden, thumbnailsLoaded } from "./page.mjs";

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
// 3. Tags
// ------------------------------------------------------------------------------------------------

async function tags(browser) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  const problems = watch(page);
  const ids = await userWithImages(context, "tg_");
  await openGallery(page, COUNT);

  // Tag the first image in the image view: typed, then Enter.
  await card(page, ids[0]).click();
  const viewer = page.getByTestId("viewer");
  await visible(viewer, "the image view");
  const saved = page.waitForResponse((r) => r.url().endsWith(`/api/user/images/${ids[0]}/tags`) && r.request().method() === "PUT");
  await page.getByTestId("viewer-tag-input").fill("Denim");
  await page.getByTestId("viewer-tag-input").press("Enter");
  assert.equal((await saved).status(), 200, "the tags were saved");
  await visible(page.locator("[data-testid=viewer-tags] [data-tag=Denim]"), "the new tag's chip");
  assert.deepEqual((await record(context, ids[0])).tags, ["Denim"], "the server holds the tag");

  // The next image (→ key, once the focus has left the field): completion offers the tag that
  // exists, the keyboard takes it.
  await page.getByTestId("viewer-tag-input").blur();
  await page.keyboard.press("ArrowRight");
  await waitUntil(page, "the view shows the second image", (id) =>
    document.querySelector("[data-testid=viewer]").dataset.id === id, ids[1]);
  const input = page.getByTestId("viewer-tag-input");
  await input.pressSequentially("de", { delay: 30 });
  const offer = page.locator("[data-testid=viewer] [data-testid=tag-suggestion]");
  await visible(offer.first(), "the tag suggestions");
  assert.equal(await offer.count(), 1, "one tag is offered");
  assert.match(await offer.first().textContent(), /^Denim1$/, "the offer is the existing tag with its count");
  assert.equal(await input.getAttribute("aria-expanded"), "true", "the combobox says it is open");
  // Esc closes the offers, not the view; ↓ asks again, a second ↓ moves onto the offer.
  await input.press("Escape");
  await hidden(offer.first(), "the offers after Esc");
  assert.equal(await viewer.isVisible(), true, "Esc in the open list keeps the view open");
  await input.press("ArrowDown");
  await visible(offer.first(), "the offers again after ↓");
  await input.press("ArrowDown");
  assert.equal(await offer.first().getAttribute("aria-selected"), "true", "the arrow key moves onto the offer");
  const saved2 = page.waitForResponse((r) => r.url().endsWith(`/api/user/images/${ids[1]}/tags`));
  await input.press("Enter");
  assert.equal((await saved2).status(), 200);
  await visible(page.locator("[data-testid=viewer-tags] [data-tag=Denim]"), "the taken tag's chip");
  assert.equal(await input.inputValue(), "", "the field is cleared after taking a tag");
  assert.deepEqual((await record(context, ids[1])).tags, ["Denim"], "the second image has the tag too");
  // A second tag, and removing it again with its chip's button.
  const tagPut = () => page.waitForResponse((r) => r.url().endsWith(`/api/user/images/${ids[1]}/tags`));
  let put = tagPut();
  await input.fill("summer");
  await input.press("Enter");
  await put;
  await visible(page.locator("[data-testid=viewer-tags] [data-tag=summer]"), "the second tag's chip");
  assert.deepEqual((await record(context, ids[1])).tags, ["Denim", "summer"]);
  put = tagPut();
  await page.locator("[data-testid=viewer-tags] [data-tag=summer] [data-testid=tag-chip-remove]").click();
  await put;
  await hidden(page.locator("[data-testid=viewer-tags] [data-tag=summer]"), "the removed tag's chip");
  assert.deepEqual((await record(context, ids[1])).tags, ["Denim"], "the removed tag is gone on the server");

  // Clicking the tag lists the images that carry it, and the address bar says so.
  await page.locator("[data-testid=viewer-tags] [data-tag=Denim] [data-testid=tag-chip-open]").click();
  await hidden(viewer, "the image view after following a tag");
  await waitUntil(page, "the grid lists the two tagged images", (want) => {
    const shown = [...document.querySelectorAll("[data-testid=thumb]")].map((e) => e.dataset.id).sort();
    return JSON.stringify(shown) === JSON.stringify(want);
  }, [ids[0], ids[1]].sort());
  assert.equal(new URL(page.url()).searchParams.getAll("tag").join(), "Denim", "the address bar holds the tag");
  await visible(page.locator("[data-testid=tag-filter-chips] [data-tag=Denim]"), "the active tag filter's chip");
  assert.equal(await page.getByTestId("gallery-count").getAttribute("data-total"), "2");

  // A reload keeps the filter; back goes to everything.
  await page.reload();
  await thumbnailsLoaded(page, 2);
  await page.goBack();
  await thumbnailsLoaded(page, COUNT);
  assert.equal(new URL(page.url()).search, "", "back to the unfiltered address");
  await page.goForward();
  await thumbnailsLoaded(page, 2);
  // Removing the filter's chip lists everything again.
  await page.locator("[data-testid=tag-filter-chips] [data-tag=Denim] [data-testid=tag-chip-remove]").click();
  await thumbnailsLoaded(page, COUNT);

  // The tag filter field completes too, and takes the tag as a filter.
  const filter = page.getByTestId("tag-filter-input");
  await filter.pressSequentially("DEN", { delay: 30 });
  const filterOffer = page.locator("#search [data-testid=tag-suggestion]");
  await visible(filterOffer.first(), "the filter's tag suggestions");
  await filterOffer.first().click();
  await thumbnailsLoaded(page, 2);
  assert.equal(new URL(page.url()).searchParams.get("tag"), "Denim", "the offer's spelling is used");

  assert.deepEqual(problems, [], "no console errors, page errors, CSP violations or dialogs");
  await context.close();
}

// ------------------------------------------------------------------------------------------------
// 4. Editing
// ------------------------------------------------------------------------------------------------

async function editing(browser) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  const problems = watch(page);
  const ids = await userWithImages(context, "ed_");
  await openGallery(page, COUNT);
  // The oldest image: 64 × 48.
  const id = ids[COUNT - 1];
  const [w, h] = SIZES[0];
  await card(page, id).click();
  await visible(page.getByTestId("viewer"), "the image view");
  const img = page.getByTestId("viewer-image");
  await waitUntil(page, "the image has loaded", (want) => {
    const i = document.querySelector("[data-testid=viewer-image]");
    return i.complete && i.naturalWidth === want;
  }, w);
  assert.equal(await page.getByTestId("edit-revert").isVisible(), false, "no revert before an edit");

  // Turn right: the preview turns (a CSS transform), the shown box becomes portrait.
  await page.getByTestId("edit-rotate-right").click();
  assert.match(await img.evaluate((i) => i.style.transform), /rotate\(90deg\)/);
  const turned = await img.boundingBox();
  assert.ok(turned.height > turned.width, `the preview is portrait after a quarter turn: ${JSON.stringify(turned)}`);
  // Two vertical flips cancel out; one horizontal flip shows mirrored, a second undoes it.
  await page.getByTestId("edit-flip-v").click();
  await page.getByTestId("edit-flip-v").click();
  assert.equal(await img.getAttribute("data-turn"), "90");
  assert.equal(await img.getAttribute("data-mirrored"), "false");
  await page.screenshot({ path: join(ARTIFACTS, "edit-rotate-desktop.png"), animations: "disabled" });

  // Crop: drag over the turned preview, from a quarter to three quarters across, a quarter to
  // half down.
  await page.getByTestId("edit-crop").click();
  const layer = page.getByTestId("crop-layer");
  await visible(layer, "the crop layer");
  const box = await layer.boundingBox();
  const shown = await img.boundingBox();
  assert.ok(Math.abs(box.width - shown.width) < 1 && Math.abs(box.height - shown.height) < 1 &&
    Math.abs(box.x - shown.x) < 1 && Math.abs(box.y - shown.y) < 1, "the crop layer covers the preview");
  assert.ok(shown.width > turned.width * 2, "a small image grows to be cropped");
  assert.ok(Math.abs(shown.width / shown.height - h / w) < 0.02, "the turned preview keeps its proportions");
  await page.mouse.move(box.x + box.width * 0.25, box.y + box.height * 0.25);
  await page.mouse.down();
  await page.mouse.move(box.x + box.width * 0.6, box.y + box.height * 0.4, { steps: 4 });
  await page.mouse.move(box.x + box.width * 0.75, box.y + box.height * 0.5, { steps: 4 });
  await page.mouse.up();
  const crop = {};
  for (const [key, testid] of [["x", "crop-x"], ["y", "crop-y"], ["width", "crop-w"], ["height", "crop-h"]]) {
    crop[key] = Number(await page.getByTestId(testid).inputValue());
  }
  // The turned image is h × w (48 × 64).
  assert.ok(Math.abs(crop.x - h * 0.25) <= 1 && Math.abs(crop.y - w * 0.25) <= 1, `crop origin: ${JSON.stringify(crop)}`);
  assert.ok(Math.abs(crop.width - h * 0.5) <= 1 && Math.abs(crop.height - w * 0.25) <= 1, `crop size: ${JSON.stringify(crop)}`);
  // The numbers can be typed too: make the width exact.
  await page.getByTestId("crop-w").fill("20");
  crop.width = 20;
  await page.screenshot({ path: join(ARTIFACTS, "edit-crop-desktop.png"), animations: "disabled" });
  await page.emulateMedia({ colorScheme: "dark" });
  await page.screenshot({ path: join(ARTIFACTS, "edit-crop-desktop-dark.png"), animations: "disabled" });
  await page.emulateMedia({ colorScheme: "light" });

  const edited = page.waitForResponse((r) => r.url().endsWith(`/api/user/images/${id}/edit`));
  await page.getByTestId("edit-apply").click();
  const editAnswer = await edited;
  assert.equal(editAnswer.status(), 200, "the edit answered 200");
  assert.deepEqual(JSON.parse(editAnswer.request().postData()), { rotate: 90, crop });
  await visible(page.getByTestId("toast").filter({ hasText: "图片已编辑" }), "the edit's message");

  // The server's record and the file it serves have the crop's size.
  const after = await record(context, id);
  assert.equal(after.edited, true);
  assert.deepEqual([after.image_width, after.image_height], [crop.width, crop.height], "the stored size is the crop's");
  const file = await context.request.get(BASE + after.preview_url);
  assert.deepEqual(pngSize(await file.body()), [crop.width, crop.height], "the served file has the crop's size");
  // The view and the card show the new pixels (new addresses, so nothing stale from the cache).
  await waitUntil(page, "the view shows the edited image", (want) => {
    const i = document.querySelector("[data-testid=viewer-image]");
    return i.complete && i.naturalWidth === want[0] && i.naturalHeight === want[1] && !i.style.transform;
  }, [crop.width, crop.height]);
  assert.match(await page.getByTestId("viewer-dimensions").textContent(), new RegExp(`${crop.width} × ${crop.height}`));
  const thumbSrc = await page.locator(`li.tile[data-id="${id}"] [data-testid=thumb-image]`).getAttribute("src");
  assert.match(thumbSrc, /[?&]v=1$/, "the card's thumbnail address changed");
  await visible(page.getByTestId("edit-revert"), "the revert button of an edited image");

  // The view with its tools on a phone, in dark.
  await page.setViewportSize({ width: 390, height: 844 });
  await page.emulateMedia({ colorScheme: "dark" });
  await page.getByTestId("edit-rotate-right").click();
  await page.screenshot({ path: join(ARTIFACTS, "viewer-phone-dark.png"), animations: "disabled" });
  const sideways = await page.evaluate(() => document.querySelector("[data-testid=viewer]").scrollWidth - innerWidth);
  assert.ok(sideways <= 0, `the image view fits a phone (overflow ${sideways}px)`);
  await page.getByTestId("edit-cancel").click();
  await page.emulateMedia({ colorScheme: "light" });
  await page.setViewportSize({ width: 1280, height: 800 });

  // Esc drops an edit being prepared before it closes the view.
  await page.getByTestId("edit-rotate-left").click();
  await page.keyboard.press("Escape");
  assert.equal(await page.getByTestId("viewer").isVisible(), true, "the first Esc only drops the edit");
  assert.equal(await img.getAttribute("data-turn"), "0");

  // Revert: the upload as it was.
  const reverted = page.waitForResponse((r) => r.url().endsWith(`/api/user/images/${id}/revert`));
  await page.getByTestId("edit-revert").click();
  assert.equal((await reverted).status(), 200);
  const back = await record(context, id);
  assert.equal(back.edited, false);
  assert.deepEqual([back.image_width, back.image_height], [w, h], "reverted to the original size");
  await waitUntil(page, "the view shows the original again", (want) => {
    const i = document.querySelector("[data-testid=viewer-image]");
    return i.complete && i.naturalWidth === want;
  }, w);
  await hidden(page.getByTestId("edit-revert"), "the revert button after reverting");

  // In English, the server's refusal is translated: an animated image cannot be edited (stubbed:
  // the answer is the server's own words).
  await page.getByTestId("viewer-close").click();
  await page.getByTestId("lang-toggle").click();
  await page.route(`**/api/user/images/${id}/edit`, (route) =>
    route.fulfill({ status: 400, json: { success: false, error: "动图不支持编辑" } }));
  await card(page, id).click();
  await page.getByTestId("edit-flip-h").click();
  await page.getByTestId("edit-apply").click();
  await visible(page.getByTestId("toast").filter({ hasText: "Animated images cannot be edited" }), "the translated refusal");
  assert.equal(await img.getAttribute("data-mirrored"), "true", "a refused edit stays prepared");

  assert.deepEqual(problems.filter((p) => !/status of 400/.test(p)), [], "no console errors, page errors, CSP violations or dialogs");
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
  await tags(browser);
  console.log("ok - tags: tagged in the image view, completion, the tag's chip lists its images");
  await editing(browser);
  console.log("ok - editing: rotate and crop with a preview, the new file, revert, Esc");
} finally {
  await browser.close();
}
console.log(`screenshots in ${ARTIFACTS}`);
