// Measures the dashboard's first load in headless Chromium against `feen serve` (debug build,
// loopback): requests, bytes and time (the page's own clock, from navigation start) until the
// page's heading shows and its data has loaded, signed out and signed in,
// cold (empty cache) and warm (revalidated by ETag). Run: node measure.js [runs]; FEEN_BIN picks
// the feen binary (e.g. target/release/feen).

import { PROVIDER_KEY, setUp } from "./tests/harness.js";

const runs = Number(process.argv[2] ?? 10);
const env = await setUp();
void PROVIDER_KEY;
const median = (/** @type {number[]} */ xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const context = await env.browser.newContext();
const page = await context.newPage();
const email = `measure-${Date.now()}@example.com`;
await page.goto(`${env.base}/#/signup`);
await page.getByLabel("Your name").fill("Measure");
await page.getByLabel("Email").fill(email);
await page.getByLabel("Password").fill("correct horse battery staple");
await page.getByRole("button", { name: "Create account" }).click();
await page.getByRole("heading", { name: "Keys", level: 1 }).waitFor();

/**
 * @param {import("playwright-core").Page} p
 * @param {string} url
 * @param {string} heading
 */
async function load(p, url, heading) {
  await p.goto(url, { waitUntil: "commit" });
  await p.getByRole("heading", { name: heading, level: 1 }).waitFor();
  await p.locator('[aria-busy="true"]').waitFor({ state: "detached" });
  // Time since the navigation started, by the page's own clock, when the page is ready.
  const ms = Math.round(await p.evaluate(() => performance.now()));
  const entries = await p.evaluate(() => performance.getEntriesByType("resource").map((e) => /** @type {PerformanceResourceTiming} */ (e).transferSize));
  return { ms, requests: entries.length + 1, bytes: entries.reduce((a, b) => a + b, 0) };
}

for (const [label, ctxOpts, url, heading] of /** @type {const} */ ([
  ["signed out, sign-in page", false, `${env.base}/`, "Sign in to Feen"],
  ["signed in, keys page", true, `${env.base}/#/keys`, "Keys"],
  ["signed in, usage page", true, `${env.base}/#/usage`, "Usage"],
])) {
  /** @type {number[]} */ const cold = [];
  /** @type {number[]} */ const warm = [];
  let shape = { requests: 0, bytes: 0 };
  for (let i = 0; i < runs; i++) {
    const c = ctxOpts ? await env.browser.newContext({ storageState: await context.storageState() }) : await env.browser.newContext();
    const p = await c.newPage();
    const first = await load(p, url, heading);
    cold.push(first.ms);
    shape = first;
    await p.goto("about:blank");
    warm.push((await load(p, url, heading)).ms);
    await c.close();
  }
  console.log(`${label}: ${shape.requests} requests, ${shape.bytes} bytes of resources; cold median ${median(cold)} ms, warm median ${median(warm)} ms (${runs} runs)`);
}
await env.tearDown();
