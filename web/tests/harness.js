// What the browser tests run against: a real `feen serve` (embedded SQLite, fresh data
// directory) in front of the mock provider (the only stand-in: providers cannot be reached
// here), and headless Chromium from Debian driven by playwright-core.

import { spawn } from "node:child_process";
import { mkdtempSync, mkdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const target = process.env.CARGO_TARGET_DIR ?? path.join(root, "target");

/** Where the screenshots go: a person can look at them after a run. */
export const SCREENSHOTS = process.env.FEEN_SCREENSHOTS_DIR ?? path.join(root, "artifacts/screenshots");

/**
 * Starts a program and waits for the line that says where it listens.
 * @param {string} program
 * @param {string[]} args
 * @param {NodeJS.ProcessEnv} env
 * @param {RegExp | null} ready a pattern whose first group is the base URL (null: do not wait)
 * @returns {Promise<{url: string, stop: () => void, log: () => string}>}
 */
function start(program, args, env, ready) {
  return new Promise((resolve, reject) => {
    const child = spawn(program, args, { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let log = "";
    const timer = setTimeout(() => reject(new Error(`${program} did not start:\n${log}`)), 30_000);
    const onData = (/** @type {Buffer} */ chunk) => {
      log += chunk.toString();
      const m = ready && log.match(ready);
      if (m) {
        clearTimeout(timer);
        resolve({ url: m[1], stop: () => child.kill("SIGTERM"), log: () => log });
      }
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
    if (!ready) {
      clearTimeout(timer);
      resolve({ url: "", stop: () => child.kill("SIGTERM"), log: () => log });
    }
    child.on("exit", (code) => reject(new Error(`${program} exited (${code}):\n${log}`)));
  });
}

/** A free port on loopback (feen serve takes its address from the command line). */
async function freePort() {
  const net = await import("node:net");
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.listen(0, "127.0.0.1", () => {
      const addr = /** @type {import("node:net").AddressInfo} */ (srv.address());
      srv.close(() => resolve(addr.port));
    });
  });
}

/** The secret the mock provider expects: what the test stores as the provider key. */
export const PROVIDER_KEY = "sk-mock-browser-0123456789abcdef";

/**
 * Feen, the mock provider and a browser, for one test file.
 */
export async function setUp() {
  const mock = await start(path.join(target, "debug/mock-provider"), ["127.0.0.1:0", PROVIDER_KEY], {}, /listening on (http:\/\/\S+)/);
  const data = mkdtempSync(path.join(tmpdir(), "feen-web-"));
  const port = await freePort();
  const feen = await start(process.env.FEEN_BIN ?? path.join(target, "debug/feen"), ["serve", "--listen", `127.0.0.1:${port}`, "--data-dir", data], {
    FEEN_ALLOW_PRIVATE_UPSTREAMS: "1",
    FEEN_JOBS_INTERVAL_SECS: "0",
    FEEN_LOG: "warn",
  }, null).then(async (f) => {
    await waitForHealth(`http://127.0.0.1:${port}`);
    return { ...f, url: `http://127.0.0.1:${port}` };
  });
  const browser = await chromium.launch({
    executablePath: process.env.FEEN_CHROMIUM ?? "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-dev-shm-usage"],
  });
  mkdirSync(SCREENSHOTS, { recursive: true });
  return {
    base: feen.url,
    mockUrl: mock.url,
    browser,
    feenLog: feen.log,
    async tearDown() {
      await browser.close();
      feen.stop();
      mock.stop();
      rmSync(data, { recursive: true, force: true });
    },
  };
}

/** @param {string} base */
async function waitForHealth(base) {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    try {
      if ((await fetch(`${base}/healthz`)).ok) return;
    } catch {
      // Not listening yet.
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`feen at ${base} never became healthy`);
}

/**
 * A screenshot of the whole page under SCREENSHOTS.
 * @param {import("playwright-core").Page} page
 * @param {string} name
 */
export async function screenshot(page, name) {
  await page.screenshot({ path: path.join(SCREENSHOTS, `${name}.png`), fullPage: true });
}
