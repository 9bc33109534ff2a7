// XSS test of the web UI in Debian's Chromium, against a real imgvault started by tests/browser.rs.
//
// Images are saved through the API the browser extension uses (POST /api/receive-image) with
// hostile metadata: a page title of `<img src=x onerror=alert(1)>`, markup in the alt text and
// caption, and `javascript:` page and original URLs. The gallery and the image view must show all
// of it as literal text: no dialog fires, no <img src="x"> exists, no javascript: link is made.
// A second image with ordinary https URLs checks that real links are still made, safely.
//
// Run: node tests/browser/xss.mjs (from the repository root; exit code 0 = pass).
import assert from "node:assert/strict";
import { join } from "node:path";
import { launch, BASE, ADMIN_PASSWORD, ARTIFACTS, deadline } from "./chromium.mjs";

deadline(120);

const WAIT = 15_000;
// A 1×1 PNG.
const PIXEL = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";

const hostile = {
  title: "<img src=x onerror=alert(1)>",
  alt: "\"><img src=x onerror=alert(2)>",
  caption: "<script>alert(3)</script><svg onload=alert(4)>",
  pageUrl: "javascript:alert(5)",
  originalUrl: "javascript:alert(6)//.png",
};
const friendly = {
  title: "Summer shirts & <friends>",
  pageUrl: "https://shop.example.com/summer?x=1&y=2",
  originalUrl: "https://cdn.example.com/img/shirt.png",
};

async function visible(locator, description) {
  try {
    await locator.waitFor({ state: "visible", timeout: WAIT });
  } catch (err) {
    throw new Error(`${description} did not become visible: ${err.message.split("\n")[0]}`);
  }
}

const browser = await launch();
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  const problems = [];
  page.on("dialog", async (dialog) => {
    problems.push(`a native dialog fired (${dialog.type()}): ${dialog.message()}`);
    await dialog.dismiss().catch(() => {});
  });
  page.on("pageerror", (err) => problems.push(`page error: ${err.message}`));
  page.on("console", (msg) => {
    if (msg.type() === "error" || /Content Security Policy|Refused to/i.test(msg.text())) {
      problems.push(`console ${msg.type()}: ${msg.text()}`);
    }
  });

  // Log in through the API (the context's requests share the page's cookies) and save the images
  // as the extension would.
  const login = await context.request.post(BASE + "/api/login", {
    data: { username: "admin", password: ADMIN_PASSWORD, remember_me: false },
  });
  assert.equal(login.status(), 200, `admin logs in: ${await login.text()}`);
  async function receive(body) {
    const res = await context.request.post(BASE + "/api/receive-image", { data: body });
    const json = await res.json();
    assert.equal(res.status(), 200, `receive-image: ${JSON.stringify(json)}`);
    assert.equal(json.success, true);
    return json.imageId;
  }
  const hostileId = await receive({
    imageData: PIXEL,
    originalUrl: hostile.originalUrl,
    category: "char",
    pageInfo: {
      url: hostile.pageUrl,
      title: hostile.title,
      imageContext: { alt: hostile.alt, caption: hostile.caption },
    },
  });
  const friendlyId = await receive({
    imageData: PIXEL,
    originalUrl: friendly.originalUrl,
    category: "clothes",
    pageInfo: { url: friendly.pageUrl, title: friendly.title, imageContext: { alt: "a shirt" } },
  });

  const response = await page.goto(BASE + "/");
  assert.match(response.headers()["content-security-policy"] || "", /script-src 'self'/, "CSP forbids inline script");
  const card = page.locator(`[data-testid=thumb][data-id="${hostileId}"]`);
  await visible(card, "the hostile image's thumbnail");

  // The gallery card: the title is text, the alt text is an attribute value.
  assert.equal(await card.getByTestId("thumb-title").textContent(), hostile.title, "card title shown literally");
  assert.equal(await card.getByTestId("thumb-image").getAttribute("alt"), hostile.alt, "alt text kept as an attribute value");

  // The image view.
  await card.click();
  await visible(page.getByTestId("viewer"), "the image view");
  assert.equal(await page.getByTestId("viewer-title").textContent(), hostile.title, "view title shown literally");
  assert.equal(await page.getByTestId("viewer-alt").textContent(), hostile.alt, "alt text shown literally");
  assert.equal(await page.getByTestId("viewer-caption").textContent(), hostile.caption, "caption shown literally");
  assert.equal(await page.getByTestId("viewer-page").locator("a").count(), 0, "no link made of a javascript: page URL");
  assert.equal(await page.getByTestId("viewer-page").textContent(), hostile.title, "the page title still shows, as text");
  assert.equal(await page.getByTestId("viewer-original").locator("a").count(), 0, "no link made of a javascript: original URL");
  assert.equal(await page.getByTestId("viewer-original").textContent(), hostile.originalUrl, "the original URL shows as text");
  await page.screenshot({ path: join(ARTIFACTS, "xss-view.png"), animations: "disabled" });

  // The friendly image: real links, opened safely.
  await page.getByTestId("viewer-close").click();
  await page.locator(`[data-testid=thumb][data-id="${friendlyId}"]`).click();
  await visible(page.getByTestId("viewer"), "the second image's view");
  const pageLink = page.getByTestId("viewer-page").locator("a");
  assert.equal(await pageLink.count(), 1, "an https page URL becomes a link");
  assert.equal(await pageLink.textContent(), friendly.title, "the link reads as the page title, literally");
  assert.equal(await pageLink.getAttribute("href"), friendly.pageUrl);
  assert.equal(await pageLink.getAttribute("target"), "_blank");
  assert.equal(await pageLink.getAttribute("rel"), "noopener noreferrer");
  const originalLink = page.getByTestId("viewer-original").locator("a");
  assert.equal(await originalLink.getAttribute("href"), friendly.originalUrl);
  assert.equal(await originalLink.getAttribute("rel"), "noopener noreferrer");

  // Nothing was injected anywhere in the document.
  const injected = await page.evaluate(() => ({
    imgX: document.querySelectorAll('img[src="x"]').length,
    svgs: [...document.querySelectorAll("svg[onload]")].length,
    scripts: [...document.scripts].map((s) => s.getAttribute("src") || "(inline)"),
    jsLinks: document.querySelectorAll('a[href^="javascript:" i]').length,
    handlers: [...document.querySelectorAll("*")].filter((e) =>
      [...e.attributes].some((a) => a.name.startsWith("on"))).length,
  }));
  assert.equal(injected.imgX, 0, 'no <img src="x"> element exists');
  assert.equal(injected.svgs, 0, "no injected <svg onload>");
  assert.equal(injected.jsLinks, 0, "no javascript: links");
  assert.equal(injected.handlers, 0, "no inline event handler attributes anywhere");
  assert.equal(injected.scripts.length, 1, `only the app's own script: ${injected.scripts}`);
  assert.match(injected.scripts[0], /^\/assets\/app\.js/);

  assert.deepEqual(problems, [], "no dialog, page error, console error or CSP violation");
  await context.close();
  console.log("ok - xss: hostile titles, alt text, captions and javascript: URLs render as text");
} finally {
  await browser.close();
}
