// The API reference page (/docs), in Debian's Chromium, against a real imgvault started by
// tests/browser.rs: every operation of /api/openapi.json is listed in its group, an operation
// opens to show its parameters, body and answers with their fields (from the document's schemas),
// the filter narrows the list, `/docs#operationId` opens that operation, and the page asks no other
// host for anything; the web UI links it. Screenshots on a desktop in light mode and on a phone in dark mode.
//
// Run: node tests/browser/apidoc.mjs (from the repository root; exit code 0 = pass).
import assert from "node:assert/strict";
import { join } from "node:path";
import { launch, BASE, ARTIFACTS, deadline } from "./chromium.mjs";
import { watch, visible, waitUntil } from "./page.mjs";

deadline(100);

const browser = await launch();
try {
  const doc = await (await fetch(BASE + "/api/openapi.json")).json();
  const expected = [];
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const method of ["get", "post", "put", "delete"]) {
      if (item[method]) expected.push(`${method} ${path}`);
    }
  }
  assert.ok(expected.length > 40, `${expected.length} operations`);

  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, colorScheme: "light" });
  const page = await context.newPage();
  const problems = watch(page);
  const foreign = [];
  page.on("request", (r) => {
    if (!r.url().startsWith(BASE)) foreign.push(r.url());
  });
  // The web UI links the page.
  await page.goto(BASE + "/");
  await page.getByTestId("api-docs-link").click();
  await page.waitForURL(BASE + "/docs");
  await visible(page.getByTestId("api-operation").first(), "the operations");
  const listed = await page.getByTestId("api-operation").evaluateAll((els) => els.map((e) => `${e.dataset.method} ${e.dataset.path}`));
  assert.deepEqual([...listed].sort(), [...expected].sort());
  assert.equal(await page.getByTestId("api-version").textContent(), doc.info.version);

  // The image list: its query parameters and the fields of its answer, unfolded.
  const list = page.locator("#list_images");
  await list.locator("summary").click();
  const params = await list.locator("table code").allTextContents();
  for (const name of ["q", "tag", "category", "page", "per_page", "distinct"]) {
    assert.ok(params.includes(name), `parameter ${name} in ${params}`);
  }
  const fields = await list.locator(".apidoc-field").allTextContents();
  for (const name of ["images", "total", "page", "pages", "filename", "thumbnail_url", "tags"]) {
    assert.ok(fields.includes(name), `field ${name} in ${fields}`);
  }
  assert.ok((await list.getByTestId("api-response").count()) >= 2, "answers listed");
  await page.screenshot({ path: join(ARTIFACTS, "apidoc-desktop.png"), fullPage: false });

  // The filter keeps the matching operations and the groups that hold them.
  const word = "/api/keys";
  const hits = Object.entries(doc.paths)
    .flatMap(([path, item]) => Object.entries(item).map(([method, op]) => ({ op, text: `${method} ${path} ${op.operationId} ${op.summary || ""}` })))
    .filter(({ text }) => text.toLowerCase().includes(word));
  const matching = hits.length;
  const groups = new Set(hits.map(({ op }) => op.tags[0]));
  assert.ok(matching >= 5 && matching < expected.length, `${matching} operations match ${word}`);
  await page.getByTestId("api-filter").fill(word);
  await waitUntil(page, "the filter to apply", (n) =>
    [...document.querySelectorAll("[data-testid=api-operation]")].filter((e) => !e.hidden).length === n, matching,
  );
  const shown = await page.getByTestId("api-group").evaluateAll((els) => els.filter((e) => !e.hidden).map((e) => e.id));
  assert.deepEqual(shown.sort(), [...groups].map((g) => `tag-${g}`).sort(), "only the groups of the matches show");
  await page.getByTestId("api-filter").fill("");

  // A phone in dark mode, opened at one operation.
  const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, colorScheme: "dark", isMobile: true });
  const small = await phone.newPage();
  const smallProblems = watch(small);
  await small.goto(BASE + "/docs#receive_image");
  await visible(small.locator("#receive_image .apidoc-body"), "the operation the address names");
  const background = await small.evaluate(() => getComputedStyle(document.body).backgroundColor);
  assert.notEqual(background, "rgb(255, 255, 255)", "dark mode");
  const overflow = await small.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 1, `the page is ${overflow}px wider than the phone`);
  await small.screenshot({ path: join(ARTIFACTS, "apidoc-phone-dark.png") });

  assert.deepEqual(foreign, [], "requests to other hosts");
  assert.deepEqual(problems, [], "page errors");
  assert.deepEqual(smallProblems, [], "page errors on the phone");
  console.log(`api page: ${listed.length} operations`);
} finally {
  await browser.close();
}
