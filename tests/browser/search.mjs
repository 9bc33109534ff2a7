// The gallery's search in Debian's Chromium, against a real imgvault started by tests/browser.rs:
// results as you type, the address bar holding the search (reload and back restore it), sort,
// dates, the category tabs' counts and the tags the results use most (the list's `facets`).
// Needs the list's search parameters (q, from, to, sort) and its facets on the server.
//
// Run: node tests/browser/search.mjs (from the repository root; exit code 0 = pass).
import assert from "node:assert/strict";
import { join } from "node:path";
import { launch, BASE, ARTIFACTS, deadline } from "./chromium.mjs";
import { makePng, watch, waitUntil, visible, thumbnailsLoaded } from "./page.mjs";

deadline(120);

// Saved oldest first; different sizes, so that sorting by size has an answer.
const IMAGES = [
  { title: "Red summer dress", category: "clothes", size: [40, 40], tags: ["summer"] },
  { title: "Blue denim jacket", category: "clothes", size: [90, 70], tags: ["denim", "summer"] },
  { title: "Red leather shoes", category: "char", size: [20, 24], tags: [] },
];

async function apiGet(context, path) {
  const res = await context.request.get(BASE + path);
  assert.equal(res.status(), 200, `GET ${path}`);
  return res.json();
}

function shownIds(page) {
  return page.locator("[data-testid=thumb]").evaluateAll((els) => els.map((e) => e.dataset.id));
}

async function showsExactly(page, description, ids) {
  await waitUntil(page, description, (want) => {
    const shown = [...document.querySelectorAll("[data-testid=thumb]")].map((e) => e.dataset.id).sort();
    return JSON.stringify(shown) === JSON.stringify(want);
  }, [...ids].sort());
}

/** YYYY-MM-DD of the server's local day, shifted by days (the list's dates are its local days). */
function day(saved, days) {
  const d = new Date(saved.slice(0, 10) + "T12:00:00Z");
  d.setUTCDate(d.getUTCDate() + days);
  return d.toISOString().slice(0, 10);
}

const browser = await launch();
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  const problems = watch(page);
  const username = "se_" + Date.now().toString(36).slice(-8);
  const account = { username, email: `${username}@example.com`, password: "search-pw-12" };
  assert.equal((await context.request.post(BASE + "/api/register", { data: account })).status(), 200);
  assert.equal((await context.request.post(BASE + "/api/login", { data: account })).status(), 200);
  const ids = [];
  for (const [i, image] of IMAGES.entries()) {
    const bytes = makePng(...image.size, [200, 40 * i, 60], [250, 250, 250]);
    const res = await context.request.post(BASE + "/api/receive-image", {
      data: {
        imageData: "data:image/png;base64," + bytes.toString("base64"),
        category: image.category,
        tags: image.tags,
        pageInfo: { url: `https://shop.example.com/${i}`, title: image.title },
      },
    });
    assert.equal(res.status(), 200, `image ${i} saved`);
    ids.push((await res.json()).imageId);
  }
  const [dress, jacket, shoes] = ids;
  const saved = (await apiGet(context, "/api/user/images")).images[0].saved_at;

  const listed = [];
  page.on("request", (r) => {
    if (r.url().includes("/api/user/images?")) listed.push(new URL(r.url()).searchParams);
  });
  await page.goto(BASE + "/");
  await thumbnailsLoaded(page, 3);

  // The category tabs count from the facets; the most used tags are offered.
  await waitUntil(page, "the tabs show their counts", () =>
    document.querySelector("[data-testid=count-all]").textContent === "3" &&
    document.querySelector("[data-testid=count-clothes]").textContent === "2" &&
    document.querySelector("[data-testid=count-char]").textContent === "1");
  await visible(page.locator("[data-testid=facet-tag][data-tag=summer]"), "the popular tag 'summer'");

  // `/` goes to the search box; typing lists the matches after a pause, with one request.
  await page.keyboard.press("/");
  const box = page.getByTestId("search-input");
  assert.equal(await box.evaluate((el) => el === document.activeElement), true, "/ focuses the search box");
  listed.length = 0;
  await box.pressSequentially("red", { delay: 40 });
  await showsExactly(page, "the two red things show", [dress, shoes]);
  assert.deepEqual(listed.map((p) => p.get("q")), ["red"], "one request, after typing stopped");
  assert.equal(new URL(page.url()).searchParams.get("q"), "red", "the address bar holds the search");
  assert.equal(await page.getByTestId("gallery-count").getAttribute("data-total"), "2");

  // Reload keeps the search; back returns to everything, forward to the search.
  await page.reload();
  await thumbnailsLoaded(page, 2);
  assert.equal(await box.inputValue(), "red", "the box shows the search after a reload");
  await page.goBack();
  await thumbnailsLoaded(page, 3);
  assert.equal(await box.inputValue(), "", "back empties the box");
  await page.goForward();
  await showsExactly(page, "forward shows the search again", [dress, shoes]);

  // Clearing the box lists everything.
  await box.fill("");
  await thumbnailsLoaded(page, 3);

  // Sort: largest file first, oldest first; the address bar says so.
  await page.getByTestId("sort").selectOption("largest");
  await waitUntil(page, "the largest image leads", (id) =>
    document.querySelector("[data-testid=thumb]")?.dataset.id === id, jacket);
  assert.equal(new URL(page.url()).searchParams.get("sort"), "largest");
  await page.getByTestId("sort").selectOption("oldest");
  await waitUntil(page, "the oldest image leads", (id) =>
    document.querySelector("[data-testid=thumb]")?.dataset.id === id, dress);
  assert.deepEqual(await shownIds(page), [dress, jacket, shoes]);
  await page.getByTestId("sort").selectOption("newest");
  assert.equal(new URL(page.url()).searchParams.get("sort"), null, "the default sort is not in the address");

  // Dates: from tomorrow nothing, to today everything.
  await page.getByTestId("date-from").fill(day(saved, 1));
  await visible(page.getByTestId("empty"), "no images saved after today");
  assert.equal(await page.locator("#empty-text").textContent(), "没有符合条件的图片。");
  assert.equal(new URL(page.url()).searchParams.get("from"), day(saved, 1));
  await page.getByTestId("date-from").fill("");
  await page.getByTestId("date-to").fill(day(saved, 0));
  await thumbnailsLoaded(page, 3);
  await page.getByTestId("date-to").fill(day(saved, -1));
  await visible(page.getByTestId("empty"), "no images saved before today");
  await page.getByTestId("filters-clear").click();
  await thumbnailsLoaded(page, 3);
  assert.equal(new URL(page.url()).search, "", "clearing the filters clears the address");

  // A popular tag filters by it.
  await page.locator("[data-testid=facet-tag][data-tag=denim]").click();
  await showsExactly(page, "the denim jacket alone", [jacket]);
  assert.equal(new URL(page.url()).searchParams.get("tag"), "denim");
  await page.getByTestId("filters-clear").click();
  await thumbnailsLoaded(page, 3);

  // After a batch move the counts follow.
  await page.locator(`li.tile[data-id="${dress}"] [data-testid=pick]`).click();
  await page.getByTestId("batch-category").selectOption("char");
  await waitUntil(page, "the tabs count the move", () =>
    document.querySelector("[data-testid=count-clothes]").textContent === "1" &&
    document.querySelector("[data-testid=count-char]").textContent === "2");

  // On a phone, the filters fold behind a button that counts them.
  await page.setViewportSize({ width: 390, height: 844 });
  await page.getByTestId("sort").evaluate((el) => el.scrollIntoView());
  assert.equal(await page.getByTestId("sort").isVisible(), false, "the filters are folded on a phone");
  await page.getByTestId("filters-toggle").click();
  await visible(page.getByTestId("sort"), "the unfolded filters");
  await page.getByTestId("search-input").fill("red");
  await showsExactly(page, "the red things on a phone", [dress, shoes]);
  await thumbnailsLoaded(page, 2);
  await page.waitForFunction(() => !document.querySelector("[data-testid=toast]"));
  await page.screenshot({ path: join(ARTIFACTS, "search-phone.png"), fullPage: true, animations: "disabled" });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  assert.ok(overflow <= 0, `no horizontal scroll at 390 px (overflow ${overflow}px)`);

  assert.deepEqual(problems, [], "no console errors, page errors, CSP violations or dialogs");
  await context.close();
  console.log("ok - search: as you type, in the address bar, reload and back, sort, dates, facets, phone");
} finally {
  await browser.close();
}
