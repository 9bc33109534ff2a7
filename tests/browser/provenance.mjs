// Provenance in the web UI, in Debian's Chromium, against a real imgvault started by
// tests/browser.rs: the gallery's "collapse identical captures" toggle (distinct=1) with its
// capture-count badge, kept across a reload and set aside by a search, and the image view's
// "seen on" list of the pages an image was saved from. What the page shows is checked against
// what the server answers.
//
// Run: node tests/browser/provenance.mjs (from the repository root; exit code 0 = pass).
import assert from "node:assert/strict";
import { join } from "node:path";
import { launch, BASE, ARTIFACTS, deadline } from "./chromium.mjs";
import { makePng, watch, waitUntil, visible, hidden, thumbnailsLoaded } from "./page.mjs";

deadline(100);

const browser = await launch();
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  const problems = watch(page);
  const username = "cap_" + Date.now().toString(36).slice(-8);
  const account = { username, email: `${username}@example.com`, password: "capture-pw-1" };
  assert.equal((await context.request.post(BASE + "/api/register", { data: account })).status(), 200);
  assert.equal((await context.request.post(BASE + "/api/login", { data: account })).status(), 200);

  // The same bytes saved from two pages, and another image between them.
  const same = makePng(60, 40, [200, 60, 60], [250, 240, 230]);
  const other = makePng(40, 40, [60, 60, 200], [250, 240, 230]);
  const ids = [];
  for (const [bytes, page, category] of [[same, "one", "clothes"], [other, "three", "clothes"], [same, "two", "char"]]) {
    const res = await context.request.post(BASE + "/api/receive-image", {
      data: {
        imageData: "data:image/png;base64," + bytes.toString("base64"),
        category,
        pageInfo: { url: `https://pages.example/${page}`, title: `page ${page}` },
      },
    });
    assert.equal(res.status(), 200);
    ids.push((await res.json()).imageId);
  }
  const [first, between, newest] = ids;

  await page.goto(BASE + "/");
  await visible(page.getByTestId("gallery"), "the gallery");
  await thumbnailsLoaded(page, 3);
  const toggle = page.getByTestId("distinct-toggle");
  assert.equal(await toggle.getAttribute("aria-pressed"), "false");
  assert.equal(await page.getByTestId("captures").count(), 0, "no badge on a plain list");

  // Collapsed: one card per image, the newest capture with its count.
  const listed = page.waitForResponse((r) => r.url().includes("/api/user/images?") && r.url().includes("distinct=1"));
  await toggle.click();
  const answer = await (await listed).json();
  assert.equal(answer.total, 2);
  await thumbnailsLoaded(page, 2);
  assert.equal(await toggle.getAttribute("aria-pressed"), "true");
  const order = await page.locator("[data-testid=thumb]").evaluateAll((els) => els.map((e) => e.dataset.id));
  assert.deepEqual(order, [newest, between]);
  const badge = page.locator(`[data-testid=thumb][data-id="${newest}"] [data-testid=captures]`);
  assert.equal((await badge.textContent()).trim(), "×2");
  assert.equal(await page.locator(`[data-testid=thumb][data-id="${between}"] [data-testid=captures]`).count(), 0);
  assert.equal(await page.getByTestId("gallery-count").getAttribute("data-total"), "2");
  await page.screenshot({ path: join(ARTIFACTS, "capture-gallery-desktop.png"), animations: "disabled" });

  // Seen on: both pages, newest first, as links.
  await page.locator(`[data-testid=thumb][data-id="${newest}"]`).click();
  await visible(page.getByTestId("viewer-sources"), "the pages the image was seen on");
  const sources = page.getByTestId("viewer-source");
  await waitUntil(page, "two sources are listed", () => document.querySelectorAll("[data-testid=viewer-source]").length === 2);
  assert.deepEqual(await sources.evaluateAll((els) => els.map((e) => e.dataset.id)), [newest, first]);
  assert.deepEqual(
    await sources.locator("a").evaluateAll((els) => els.map((a) => [a.getAttribute("href"), a.textContent])),
    [["https://pages.example/two", "page two"], ["https://pages.example/one", "page one"]],
  );
  await page.screenshot({ path: join(ARTIFACTS, "capture-sources-desktop.png"), animations: "disabled" });
  // An image seen on one page only has no list (its page is in the row above).
  await page.getByTestId("viewer-next").click();
  await waitUntil(page, "the view shows the other image", (id) => document.getElementById("viewer").dataset.id === id, between);
  await hidden(page.getByTestId("viewer-sources"), "the sources of an image seen once");
  await page.keyboard.press("Escape");
  await hidden(page.getByTestId("viewer"), "the image view");

  // Kept across a reload; a search lists every capture and says why the toggle is off.
  await page.reload();
  await thumbnailsLoaded(page, 2);
  assert.equal(await page.getByTestId("distinct-toggle").getAttribute("aria-pressed"), "true");
  await page.getByTestId("search-input").fill("page");
  await page.getByTestId("search-input").press("Enter");
  await thumbnailsLoaded(page, 3);
  assert.equal(await toggle.isDisabled(), true, "the toggle is off during a search");
  assert.ok((await toggle.getAttribute("title")).length > 0, "and says why");
  await page.getByTestId("filters-clear").click();
  await thumbnailsLoaded(page, 2);
  // Within a category too.
  await page.getByTestId("filter-char").click();
  await waitUntil(page, "the char tab holds one image", () =>
    document.querySelector("[data-testid=gallery-count]").dataset.total === "1");
  await page.getByTestId("filter-all").click();
  await thumbnailsLoaded(page, 2);
  await toggle.click();
  await thumbnailsLoaded(page, 3);
  assert.equal(await page.getByTestId("captures").count(), 0);

  assert.deepEqual(problems, [], "no console errors, page errors, CSP violations or dialogs");
  await context.close();
  console.log("ok - collapse identical captures, the count badge, seen on, kept on reload, off in a search");
} finally {
  await browser.close();
}
console.log(`screenshots in ${ARTIFACTS}`);
