// The stats page in the web UI, in Debian's Chromium, against a real imgvault started by
// tests/browser.rs. What the charts show is checked against GET /api/user/stats and against what
// the script saved.
//
// 1. A user with four images (two captures of the same bytes from one site, one from another
//    site, one uploaded without a page) opens "Stats": the daily chart's bars add up to the four
//    images, today's bar holds them, the monthly chart and the bytes measure agree too, the
//    category and source-site bars carry the right counts, and the figures show the images and
//    what deduplication saved. The user has no server switch.
// 2. At phone width nothing overflows the screen and the charts fit; in dark mode the page and
//    the bars take the dark theme's colours. Screenshots at desktop and phone widths, light and
//    dark.
// 3. The admin switches to the whole server and sees everyone's images.
//
// Run: node tests/browser/stats.mjs (from the repository root; exit code 0 = pass).
import assert from "node:assert/strict";
import { join } from "node:path";
import { launch, BASE, ADMIN_PASSWORD, ARTIFACTS, deadline } from "./chromium.mjs";
import { watch, waitUntil, visible, hidden, makePng } from "./page.mjs";

deadline(150);

async function apiGet(context, path) {
  const res = await context.request.get(BASE + path);
  assert.equal(res.status(), 200, `GET ${path}`);
  return res.json();
}

async function save(context, bytes, category, url) {
  const data = { imageData: "data:image/png;base64," + bytes.toString("base64"), category };
  if (url) data.pageInfo = { url, title: "page" };
  const res = await context.request.post(BASE + "/api/receive-image", { data });
  assert.equal(res.status(), 200, "saved");
  return (await res.json()).imageId;
}

/** The bars of the main chart: [key, value] each. */
function bars(page) {
  return page.locator("[data-testid=stats-chart] [data-testid=stats-bar]")
    .evaluateAll((els) => els.map((e) => [e.dataset.key, Number(e.dataset.value)]));
}

function rows(page, testid) {
  return page.locator(`[data-testid=${testid}] [data-testid=${testid}-row]`)
    .evaluateAll((els) => els.map((e) => [e.dataset.label, Number(e.dataset.value)]));
}

const sum = (list) => list.reduce((a, [, v]) => a + v, 0);

const browser = await launch();
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  const problems = watch(page);
  const username = "st_" + Date.now().toString(36).slice(-8);
  const account = { username, email: `${username}@example.com`, password: "stats-pw-1" };
  assert.equal((await context.request.post(BASE + "/api/register", { data: account })).status(), 200);
  assert.equal((await context.request.post(BASE + "/api/login", { data: account })).status(), 200);

  const shared = makePng(64, 48, [200, 60, 60], [250, 230, 200]);
  const other = makePng(80, 60, [40, 90, 200], [220, 240, 250]);
  const third = makePng(50, 50, [30, 160, 90], [240, 250, 240]);
  await save(context, shared, "clothes", "https://www.shop.example/a");
  await save(context, shared, "clothes", "https://shop.example/b");
  await save(context, other, "char", "https://art.example/c");
  await save(context, third, "clothes", null);
  const bytes = 2 * shared.length + other.length + third.length;
  const api = await apiGet(context, "/api/user/stats");
  assert.equal(api.storage.images, 4);
  assert.equal(api.storage.bytes, bytes);

  await page.goto(BASE + "/");
  await visible(page.getByTestId("gallery"), "the gallery");
  await page.getByTestId("stats-open").click();
  await visible(page.getByTestId("stats"), "the stats page");
  assert.equal(await page.getByTestId("gallery").isVisible(), false, "the page takes the gallery's place");
  await visible(page.getByTestId("stats-chart"), "the chart");
  await hidden(page.getByTestId("stats-scope"), "the server switch of a user");

  // 1. The charts carry the saved images.
  const daily = await bars(page);
  assert.equal(daily.length, 30, "thirty days");
  assert.equal(sum(daily), 4, "the bars add up to the images saved");
  assert.deepEqual(daily[29], [api.today, 4], "today's bar holds them all");
  assert.equal(await page.getByTestId("stats-images-value").textContent(), "4");
  assert.match(await page.getByTestId("stats-dedup-value").textContent(), /KB|B/);
  assert.equal(api.storage.dedup_saved_bytes, shared.length, "one capture was not stored twice");
  assert.deepEqual(await rows(page, "stats-categories"), [["clothes", 3], ["char", 1]]);
  const hosts = await rows(page, "stats-hosts");
  assert.deepEqual(hosts.slice(0, 2), [["shop.example", 2], ["art.example", 1]]);
  assert.deepEqual(hosts[2], ["", 1], "the upload without a page");
  assert.equal(await page.locator("[data-testid=stats-hosts-row] text").first().textContent(), "shop.example");

  await page.getByTestId("stats-series-months").click();
  await waitUntil(page, "the monthly chart", () =>
    document.querySelector("[data-testid=stats-chart]").dataset.series === "months");
  const monthly = await bars(page);
  assert.equal(monthly.length, 12);
  assert.equal(monthly[11][1], 4, "this month holds them");
  await page.getByTestId("stats-measure-bytes").click();
  await waitUntil(page, "the bytes chart", () =>
    document.querySelector("[data-testid=stats-chart]").dataset.measure === "bytes");
  assert.equal(sum(await bars(page)), bytes, "the bytes bars add up to the bytes saved");
  await page.getByTestId("stats-series-days").click();
  await page.getByTestId("stats-measure-images").click();
  await waitUntil(page, "the daily chart again", () =>
    document.querySelector("[data-testid=stats-chart]").dataset.series === "days");
  await page.screenshot({ path: join(ARTIFACTS, "stats-desktop.png"), animations: "disabled", fullPage: true });

  // 2. A phone, light then dark.
  await page.setViewportSize({ width: 390, height: 844 });
  await waitUntil(page, "the chart redrawn for the phone", () =>
    Number(document.querySelector("[data-testid=stats-chart]").getAttribute("width")) <= 390);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `the page is ${overflow}px wider than the phone`);
  for (const id of ["stats-chart", "stats-categories", "stats-hosts"]) {
    const box = await page.getByTestId(id).boundingBox();
    assert.ok(box.x >= 0 && box.x + box.width <= 390, `${id} fits the screen: ${JSON.stringify(box)}`);
  }
  assert.equal(sum(await bars(page)), 4, "the phone's chart holds the same images");
  await page.screenshot({ path: join(ARTIFACTS, "stats-phone.png"), animations: "disabled", fullPage: true });
  const lightBar = await page.locator("[data-testid=stats-bar]").last().evaluate((e) => getComputedStyle(e).fill);
  await page.emulateMedia({ colorScheme: "dark" });
  const dark = await page.evaluate(() => {
    const bar = document.querySelector("[data-testid=stats-chart] [data-testid=stats-bar]:last-of-type");
    const label = document.querySelector("[data-testid=stats-hosts] text");
    return {
      background: getComputedStyle(document.body).backgroundColor,
      bar: getComputedStyle(bar).fill,
      label: getComputedStyle(label).fill,
    };
  });
  const luminance = (rgb) => {
    const [r, g, b] = rgb.match(/\d+/g).map(Number);
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  assert.ok(luminance(dark.background) < 60, `a dark background: ${dark.background}`);
  assert.ok(luminance(dark.label) > 150, `light text on it: ${dark.label}`);
  assert.notEqual(dark.bar, lightBar, "the bars take the dark theme's accent");
  await page.screenshot({ path: join(ARTIFACTS, "stats-phone-dark.png"), animations: "disabled", fullPage: true });
  await page.emulateMedia({ colorScheme: "light" });

  await page.getByTestId("stats-back").click();
  await visible(page.getByTestId("gallery"), "the gallery again");
  assert.deepEqual(problems, [], "no console errors, page errors, CSP violations or dialogs");
  await context.close();

  // 3. The admin's switch to the whole server.
  const admin = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const adminPage = await admin.newPage();
  const adminProblems = watch(adminPage);
  const login = await admin.request.post(BASE + "/api/login", { data: { username: "admin", password: ADMIN_PASSWORD } });
  assert.equal(login.status(), 200);
  const server = await apiGet(admin, "/api/user/stats?scope=server");
  await adminPage.goto(BASE + "/");
  await visible(adminPage.getByTestId("gallery"), "the admin's gallery");
  await adminPage.getByTestId("stats-open").click();
  await visible(adminPage.getByTestId("stats-scope"), "the server switch");
  assert.equal(await adminPage.getByTestId("stats-images-value").textContent(), "0", "the admin's own images");
  await adminPage.getByTestId("stats-scope-server").click();
  await waitUntil(adminPage, "the server's figures", () => document.body.dataset.statsScope === "server");
  assert.equal(
    await adminPage.getByTestId("stats-images-value").textContent(),
    server.storage.images.toLocaleString("zh-CN"),
  );
  assert.ok(server.storage.images >= 4);
  assert.equal(sum(await bars(adminPage)), server.days.reduce((a, d) => a + d.images, 0));
  await visible(adminPage.getByTestId("stats-stored"), "the stored bytes of the server");
  await adminPage.setViewportSize({ width: 390, height: 844 });
  await adminPage.emulateMedia({ colorScheme: "dark" });
  await waitUntil(adminPage, "the chart redrawn for the phone", () =>
    Number(document.querySelector("[data-testid=stats-chart]").getAttribute("width")) <= 390);
  await adminPage.screenshot({ path: join(ARTIFACTS, "stats-server-phone-dark.png"), animations: "disabled", fullPage: true });
  assert.deepEqual(adminProblems, [], "no console errors for the admin");
  await admin.close();
  console.log("ok - the stats page draws the figures of the API, on a phone and in the dark, and the admin's server view");
} finally {
  await browser.close();
}
console.log(`screenshots in ${ARTIFACTS}`);
