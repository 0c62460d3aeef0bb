// The dashboard in headless Chromium against a real `feen serve`: an owner signs up, adds a key,
// mints a share, copies its token, the token calls the proxy, the usage shows in the chart, the
// share is revoked and the next call refused; plus bad input in forms, sessions that survive a
// reload, refresh when the access cookie has expired, end when signed out everywhere, the other
// pages, the keyboard, a phone-sized screen, and the security headers. Screenshots of every page
// are written to artifacts/screenshots (FEEN_SCREENSHOTS_DIR).

import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { PROVIDER_KEY, screenshot, setUp } from "./harness.js";

/** @type {Awaited<ReturnType<typeof setUp>>} */
let env;
before(async () => {
  env = await setUp();
});
after(async () => {
  await env?.tearDown();
});

const password = "correct horse battery staple";

/**
 * A fresh browser context (its own cookies) with the clipboard allowed, on the sign-up page.
 * @param {{width: number, height: number}} [viewport]
 */
async function newPage(viewport = { width: 1280, height: 860 }) {
  const context = await env.browser.newContext({ viewport });
  await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: env.base });
  const page = await context.newPage();
  /** @type {string[]} */
  const problems = [];
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("console", (m) => {
    if (m.type() === "error" && !m.text().includes("401") && !m.text().includes("400") && !m.text().includes("Failed to load resource")) problems.push(`console: ${m.text()}`);
  });
  return { context, page, problems };
}

/**
 * Signs up a new account through the form; lands on the keys page.
 * @param {import("playwright-core").Page} page
 * @param {string} name
 */
async function signUp(page, name) {
  const email = `${name}-${Date.now()}-${Math.random().toString(36).slice(2, 7)}@example.com`.toLowerCase();
  await page.goto(`${env.base}/#/signup`);
  await page.getByLabel("Your name").fill(name);
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Create account" }).click();
  await page.getByRole("heading", { name: "Keys", level: 1 }).waitFor();
  return email;
}

/**
 * Polls until `check` passes (usage is recorded just after the response).
 * @param {() => Promise<void>} check
 */
async function eventually(check, ms = 15_000) {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      return await check();
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}

/** Waits for the next UTC minute when less than `margin` ms of this one remain: a test that
 * counts requests against a per-minute limit must not straddle two windows. */
async function withinOneMinute(margin = 20_000) {
  const left = 60_000 - (Date.now() % 60_000);
  if (left < margin) await new Promise((r) => setTimeout(r, left + 100));
}

/**
 * Waits for a form dialog to close after its submit; fails with what the form shows otherwise.
 * @param {import("playwright-core").Locator} dialog
 */
async function closes(dialog) {
  const errors = dialog.locator(".form-error:visible, .field-error:visible");
  await Promise.race([dialog.waitFor({ state: "detached" }), errors.first().waitFor()]);
  assert.deepEqual(await errors.allInnerTexts().catch(() => []), [], "the form refused the input");
  await dialog.waitFor({ state: "detached" });
}

/** @param {string} token */
const chat = (token) =>
  fetch(`${env.base}/api/proxy/v1/chat/completions`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify({ model: "gpt-4o-mini", messages: [{ role: "user", content: "Hi" }] }),
  });

test("an owner signs up, shares a key, and the usage and revocation show", async () => {
  const { page, problems, context } = await newPage();
  await page.goto(env.base);
  await page.getByRole("heading", { name: "Sign in to Feen" }).waitFor();
  await screenshot(page, "01-sign-in");
  // A wrong password is said plainly and changes nothing.
  await page.getByLabel("Email").fill("nobody@example.com");
  await page.getByLabel("Password").fill("not the password at all");
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("alert").filter({ hasText: "invalid email or password" }).waitFor();

  await page.getByRole("link", { name: "Create an account" }).click();
  await page.getByRole("heading", { name: "Create your Feen account" }).waitFor();
  // The server's validation message appears beside the field it is about.
  await page.getByLabel("Your name").fill("Ann");
  await page.getByLabel("Email").fill(`ann-${Date.now()}@example.com`);
  await page.getByLabel("Password").fill("short");
  await page.getByRole("button", { name: "Create account" }).click();
  await page.locator('[data-field="password"] .field-error').filter({ hasText: "at least 10 characters" }).waitFor();
  assert.equal(await page.getByLabel("Password").getAttribute("aria-invalid"), "true");
  await screenshot(page, "02-sign-up-validation");
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Create account" }).click();
  await page.getByRole("heading", { name: "Keys", level: 1 }).waitFor();
  await page.getByText("No keys yet").waitFor();
  await screenshot(page, "03-keys-empty");

  // Adding a key: a missing field is caught before sending, the server's message shown for the rest.
  await page.getByRole("button", { name: "Add key" }).first().click();
  const dialog = page.getByRole("dialog", { name: "Add a provider key" });
  await dialog.getByRole("button", { name: "Add key" }).click();
  await dialog.locator('[data-field="name"] .field-error').filter({ hasText: "Name is required" }).waitFor();
  await dialog.getByLabel("Name", { exact: true }).fill("Team OpenAI key");
  await dialog.getByLabel("Provider").selectOption("openai");
  await dialog.getByLabel("API key").fill(PROVIDER_KEY);
  await dialog.getByLabel("Base URL").fill("ftp://example.com");
  await dialog.getByRole("button", { name: "Add key" }).click();
  await dialog.locator('[data-field="baseUrl"] .field-error').waitFor();
  await screenshot(page, "04-add-key-validation");
  await dialog.getByLabel("Base URL").fill(env.mockUrl);
  await dialog.getByRole("button", { name: "Add key" }).click();
  await dialog.waitFor({ state: "detached" });
  const keyRow = page.getByRole("row").filter({ hasText: "Team OpenAI key" });
  await keyRow.waitFor();
  const rowText = await keyRow.innerText();
  assert.match(rowText, /OpenAI/);
  assert.match(rowText, /sk-\.\.\.cdef/);
  assert.match(rowText, /never/, "a new key was never used");
  assert.ok(!(await page.content()).includes(PROVIDER_KEY), "the secret is never shown again");
  await screenshot(page, "05-keys");

  // Minting a share: the token is shown once, copied with the button, with snippets.
  await page.getByRole("link", { name: "Shares" }).click();
  await page.getByRole("heading", { name: "Shares", level: 1 }).waitFor();
  await page.getByText("No shares yet").waitFor();
  await page.getByRole("button", { name: "Mint a share" }).first().click();
  const mint = page.getByRole("dialog", { name: "Mint a share" });
  await mint.getByLabel("Name", { exact: true }).fill("Workshop");
  await mint.getByLabel("Requests per minute").fill("0");
  await mint.getByRole("button", { name: "Mint share" }).click();
  await mint.locator('[data-field="rateLimit"] .field-error').waitFor();
  await mint.getByLabel("Requests per minute").fill("5");
  await mint.getByLabel("Budget in USD").fill("2.50");
  await mint.getByLabel("Allowed models").fill("gpt-4o-mini\ngpt-4o");
  await screenshot(page, "06-mint-share");
  await mint.getByRole("button", { name: "Mint share" }).click();
  const shown = page.getByRole("dialog", { name: "Your new Feen token" });
  await shown.waitFor();
  const token = await shown.getByLabel("Feen token").inputValue();
  assert.match(token, /^feen_[A-Za-z0-9]+$/);
  await shown.getByRole("button", { name: "Copy token" }).click();
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), token);
  assert.match(await shown.locator(".snippet").innerText(), new RegExp(`Bearer ${token}`));
  await shown.getByRole("tab", { name: "OpenAI SDK (Python)" }).click();
  const openaiSnippet = await shown.locator(".snippet").innerText();
  assert.ok(openaiSnippet.includes(`base_url="${env.base}/api/proxy/v1"`) && openaiSnippet.includes(token), openaiSnippet);
  await shown.getByRole("tab", { name: "Anthropic SDK (Python)" }).click();
  assert.ok((await shown.locator(".snippet").innerText()).includes(`base_url="${env.base}/api/proxy"`));
  await screenshot(page, "07-token-once");
  await shown.getByRole("button", { name: "Done" }).click();
  await page.waitForFunction(() => !document.querySelector("dialog"));
  assert.ok(!(await page.content()).includes(token), "the token is gone once the dialog closes");

  // The token works with the proxy, and what it used shows up.
  await withinOneMinute(40_000);
  for (let i = 0; i < 2; i++) {
    const reply = await chat(token);
    assert.equal(reply.status, 200, await reply.text());
  }
  await eventually(async () => {
    await page.getByRole("link", { name: "Usage" }).click();
    await page.reload();
    await page.getByRole("heading", { name: "Usage", level: 1 }).waitFor();
    const bars = await page.locator('[data-chart="series"] rect.bar').evaluateAll((rs) => rs.map((r) => Number(r.getAttribute("data-value"))));
    assert.equal(bars.reduce((a, b) => a + b, 0), 2, `bars: ${bars}`);
  });
  const today = await page.locator(".cards").innerText();
  assert.match(today, /Requests today\s+2\n/i);
  const breakdown = await page.locator('[data-chart="breakdown"] rect.bar').count();
  assert.equal(breakdown, 1, "one model");
  assert.match(await page.getByRole("table", { name: "Usage by model" }).innerText(), /gpt-4o-mini\s+2/);
  // This month's bill: the cost per key and per share (not final until the month is over).
  await eventually(async () => {
    const bill = await page.locator(".bill-total").innerText();
    assert.match(bill, /\$0\.000012 for 2 requests in \d{4}-\d\d/);
    assert.match(bill, /so far/);
  });
  assert.match(await page.getByRole("table", { name: "Cost by key" }).innerText(), /Team OpenAI key\s+2\s+\$0\.000012/);
  assert.match(await page.getByRole("table", { name: "Cost by share" }).innerText(), /Workshop\s+Team OpenAI key\s+2/);
  await screenshot(page, "08-usage");
  await page.getByLabel("Show").selectOption("tokens");
  await eventually(async () => {
    const tokens = await page.locator('[data-chart="series"] rect.bar').evaluateAll((rs) => rs.map((r) => Number(r.getAttribute("data-value"))));
    assert.equal(tokens.reduce((a, b) => a + b, 0), 36, "2 requests of 11 input and 7 output tokens");
  });
  const download = page.waitForEvent("download");
  await page.getByRole("button", { name: "Export CSV" }).click();
  const csv = await (await download).createReadStream();
  let text = "";
  for await (const chunk of csv) text += chunk;
  assert.match(text.split("\n")[0], /requests/);

  // The share list shows the live count against its limit; the key its last use.
  await page.getByRole("link", { name: "Shares" }).click();
  const shareRow = page.getByRole("row").filter({ hasText: "Workshop" });
  await shareRow.waitFor();
  await eventually(async () => {
    await page.reload();
    const row = await page.getByRole("row").filter({ hasText: "Workshop" }).innerText();
    assert.match(row, /2 \/ 5 this minute/);
    // Two requests at 6 micro-USD each, once their reservations are settled.
    assert.match(row, /\$0\.000012 \/ \$2\.50 this month/);
  });
  await screenshot(page, "09-shares");
  await page.getByRole("link", { name: "Keys" }).click();
  await page.getByRole("row").filter({ hasText: "Team OpenAI key" }).filter({ hasNotText: "never" }).waitFor();

  // Revoking: asked first, then the next call is refused.
  await page.getByRole("link", { name: "Shares" }).click();
  await page.getByRole("row").filter({ hasText: "Workshop" }).getByRole("button", { name: "Revoke" }).click();
  const sure = page.getByRole("dialog", { name: "Revoke “Workshop”?" });
  await screenshot(page, "10-revoke-confirm");
  await sure.getByRole("button", { name: "Revoke share" }).click();
  await page.getByRole("row").filter({ hasText: "Workshop" }).getByText("revoked").waitFor();
  const refused = await chat(token);
  assert.equal(refused.status, 401);
  assert.equal((await refused.json()).error.code, "invalid_token");

  // The audit log has it all, and its chain verifies.
  await page.getByRole("link", { name: "Audit log" }).click();
  await page.getByRole("heading", { name: "Audit log", level: 1 }).waitFor();
  for (const action of ["share.revoked", "share.minted", "key.added", "auth.login"]) {
    await page.getByRole("cell", { name: action, exact: true }).first().waitFor();
  }
  await page.getByRole("button", { name: "Verify the chain" }).click();
  await page.getByText("the chain is intact").waitFor();
  await page.getByLabel("Action").selectOption("key.added");
  await page.getByRole("button", { name: "Filter" }).click();
  await eventually(async () => assert.equal(await page.getByRole("table", { name: "Audit log entries" }).locator("tbody tr").count(), 1));
  await screenshot(page, "11-audit");

  // A reload keeps the session.
  await page.reload();
  await page.getByRole("heading", { name: "Audit log", level: 1 }).waitFor();
  assert.deepEqual(problems, []);
  await context.close();
});

test("an expired access cookie is refreshed; signing out, everywhere or here, ends the session", async () => {
  const { page, context, problems } = await newPage();
  const email = await signUp(page, "Sessions");
  const cookies = await context.cookies();
  const access = cookies.find((c) => c.name === "feen_access");
  const refresh = cookies.find((c) => c.name === "feen_refresh");
  assert.ok(access?.httpOnly && access.sameSite === "Strict" && refresh?.httpOnly && refresh.path === "/api/auth");
  assert.equal(await page.evaluate(() => document.cookie), "", "the session is invisible to scripts");

  // The access token expires after 15 minutes: without its cookie the next call refreshes.
  await context.clearCookies({ name: "feen_access" });
  await page.getByRole("link", { name: "Teams" }).click();
  await page.getByRole("heading", { name: "Teams", level: 1 }).waitFor();
  await page.getByText("No teams yet").waitFor();
  const after = await context.cookies();
  assert.ok(after.some((c) => c.name === "feen_access"), "a new access cookie");
  assert.notEqual(after.find((c) => c.name === "feen_refresh")?.value, refresh.value, "the refresh token rotated");
  // Several calls at once with an expired access cookie share one refresh (a second would be
  // taken for a stolen token and end the session).
  await context.clearCookies({ name: "feen_access" });
  await page.getByRole("link", { name: "Usage" }).click();
  await page.getByRole("heading", { name: "Usage", level: 1 }).waitFor();
  await page.getByText("No usage in this range").waitFor();
  await page.reload();
  await page.getByRole("heading", { name: "Usage", level: 1 }).waitFor();

  // Signed out everywhere from another device: this tab's next call goes to the sign-in page.
  const other = await fetch(`${env.base}/api/auth/login`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ email, password }) });
  const { accessToken } = await other.json();
  const out = await fetch(`${env.base}/api/auth/logout-all`, { method: "POST", headers: { authorization: `Bearer ${accessToken}` } });
  assert.equal(out.status, 204);
  await page.getByRole("link", { name: "Keys" }).click();
  await page.getByRole("heading", { name: "Sign in to Feen" }).waitFor();
  await page.getByText("Your session has ended").waitFor();
  await page.reload();
  await page.getByRole("heading", { name: "Sign in to Feen" }).waitFor();

  // Sign in again, then sign out here: a reload stays signed out.
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("heading", { name: "Keys", level: 1 }).waitFor();
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.getByRole("heading", { name: "Sign in to Feen" }).waitFor();
  await page.reload();
  await page.getByRole("heading", { name: "Sign in to Feen" }).waitFor();
  assert.deepEqual(problems, []);
  await context.close();
});

test("teams and settings work, with the keyboard too", async () => {
  const { page, context, problems } = await newPage();
  const email = await signUp(page, "Teamer");

  // Keyboard only: open the add-key dialog, Escape closes it and focus returns.
  await page.getByText("No keys yet").waitFor();
  await page.getByRole("heading", { name: "Keys", level: 1 }).focus();
  await page.keyboard.press("Tab");
  assert.equal(await page.evaluate(() => document.activeElement?.textContent), "Add key");
  await page.keyboard.press("Enter");
  await page.getByRole("dialog", { name: "Add a provider key" }).waitFor();
  assert.equal(await page.evaluate(() => document.activeElement?.getAttribute("name")), "name", "focus moves into the dialog");
  await page.keyboard.press("Escape");
  await page.getByRole("dialog").waitFor({ state: "detached" });
  assert.equal(await page.evaluate(() => document.activeElement?.textContent), "Add key", "focus returns to the button");

  await page.getByRole("link", { name: "Teams" }).click();
  await page.getByRole("button", { name: "New team" }).click();
  const create = page.getByRole("dialog", { name: "New team" });
  await create.getByLabel("Team name").fill("Research");
  await create.getByRole("button", { name: "Create team" }).click();
  await page.getByRole("row").filter({ hasText: "Research" }).getByRole("button", { name: "Open" }).click();
  await page.getByRole("heading", { name: "Research", level: 2 }).waitFor();
  await page.getByLabel("Email", { exact: true }).fill("bea@example.com");
  await page.getByLabel("Role").selectOption("admin");
  await page.getByRole("button", { name: "Send invitation" }).click();
  const invite = page.getByRole("dialog", { name: "Invitation made" });
  assert.match(await invite.getByLabel("Invitation token").inputValue(), /^feeninv_/);
  await invite.getByRole("button", { name: "Done" }).click();
  await page.getByRole("table", { name: "Pending invitations" }).getByText("bea@example.com").waitFor();

  // A second person joins with the token from the dialog, and the owner changes their role.
  const second = await newPage();
  const cyEmail = await signUp(second.page, "Cy");
  await page.getByLabel("Email", { exact: true }).fill(cyEmail);
  await page.getByLabel("Role").selectOption("member");
  await page.getByRole("button", { name: "Send invitation" }).click();
  const made = page.getByRole("dialog", { name: "Invitation made" });
  const inviteToken = await made.getByLabel("Invitation token").inputValue();
  await made.getByRole("button", { name: "Done" }).click();
  await second.page.getByRole("link", { name: "Teams" }).click();
  await second.page.getByRole("button", { name: "Accept an invitation" }).click();
  const join = second.page.getByRole("dialog", { name: "Accept an invitation" });
  await join.getByLabel("Invitation token").fill("feeninv_not_a_real_token");
  await join.getByRole("button", { name: "Join team" }).click();
  await join.locator(".form-error:visible, .field-error:visible").first().waitFor();
  await join.getByLabel("Invitation token").fill(inviteToken);
  await join.getByRole("button", { name: "Join team" }).click();
  await closes(join);
  const cyRow = second.page.getByRole("row").filter({ hasText: "Research" });
  assert.match(await cyRow.innerText(), /member/);
  await page.getByRole("button", { name: "Open" }).click();
  const member = page.getByRole("table", { name: "Members" }).getByRole("row").filter({ hasText: cyEmail });
  await member.getByLabel("Role of Cy").selectOption("viewer");
  await page.getByText("Role changed").waitFor();
  await second.page.reload();
  await eventually(async () => assert.match(await second.page.getByRole("row").filter({ hasText: "Research" }).innerText(), /viewer/));
  // A viewer sees the members but none of the admin's controls.
  await second.page.getByRole("row").filter({ hasText: "Research" }).getByRole("button", { name: "Open" }).click();
  await second.page.getByRole("heading", { name: "Research", level: 2 }).waitFor();
  assert.equal(await second.page.getByRole("button", { name: "Send invitation" }).count(), 0);
  assert.equal(await second.page.getByRole("button", { name: "Delete team" }).count(), 0);
  assert.deepEqual(second.problems, []);
  await second.context.close();
  await page.getByRole("table", { name: "Members" }).getByRole("row").filter({ hasText: cyEmail }).getByLabel("Role of Cy").waitFor();
  assert.equal(await page.getByLabel("Role of Cy").inputValue(), "viewer");
  await screenshot(page, "12-teams");

  await page.getByRole("link", { name: "Settings" }).click();
  await page.getByRole("heading", { name: "Settings", level: 1 }).waitFor();
  await page.getByRole("button", { name: "New token" }).click();
  const pat = page.getByRole("dialog", { name: "New personal access token" });
  await pat.getByLabel("Name", { exact: true }).fill("laptop CLI");
  // A token acts as you: the password is asked for, and a wrong one is said beside its field.
  await pat.getByLabel("Your password").fill("not my password");
  await pat.getByRole("button", { name: "Make token" }).click();
  await pat.locator('[data-field="password"] .field-error').filter({ hasText: "is not your current password" }).waitFor();
  await pat.getByLabel("Your password").fill(password);
  await pat.getByRole("button", { name: "Make token" }).click();
  const patToken = await page.getByRole("dialog", { name: "Your new personal access token" }).getByLabel("Personal access token").inputValue();
  assert.match(patToken, /^feenpat_/);
  await page.getByRole("dialog", { name: "Your new personal access token" }).getByRole("button", { name: "Done" }).click();
  await page.getByRole("row").filter({ hasText: "laptop CLI" }).waitFor();
  const me = await fetch(`${env.base}/api/auth/me`, { headers: { authorization: `Bearer ${patToken}` } });
  assert.equal((await me.json()).user.email, email);

  await page.getByLabel("Current password").fill("not my password");
  await page.getByLabel("New password").fill("a new and longer passphrase");
  await page.getByRole("button", { name: "Change password" }).click();
  await page.locator('[data-field="currentPassword"] .field-error').filter({ hasText: "is not your current password" }).waitFor();
  await screenshot(page, "13-settings");
  await page.getByLabel("Current password").fill(password);
  await page.locator('[data-field="pwTokens"] select').selectOption("revoke");
  await page.getByRole("button", { name: "Change password" }).click();
  await page.getByText("Password changed").waitFor();
  // Asked to, the new password ended the personal access token too.
  const patAfter = await fetch(`${env.base}/api/auth/me`, { headers: { authorization: `Bearer ${patToken}` } });
  assert.equal(patAfter.status, 401);
  const oldLogin = await fetch(`${env.base}/api/auth/login`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ email, password }) });
  assert.equal(oldLogin.status, 401);
  // This tab stays signed in with its new session.
  await page.getByRole("link", { name: "Keys" }).click();
  await page.getByRole("heading", { name: "Keys", level: 1 }).waitFor();
  assert.deepEqual(problems, []);
  await context.close();
});

test("keys and shares change: rename, new secret, limits, new token, delete", async () => {
  const { page, context, problems } = await newPage();
  await signUp(page, "Changer");
  await page.getByRole("button", { name: "Add key" }).first().click();
  const add = page.getByRole("dialog", { name: "Add a provider key" });
  await add.getByLabel("Name", { exact: true }).fill("Key one");
  await add.getByLabel("API key").fill(PROVIDER_KEY);
  await add.getByLabel("Base URL").fill(env.mockUrl);
  await add.getByRole("button", { name: "Add key" }).click();
  await page.getByRole("row").filter({ hasText: "Key one" }).waitFor();

  // Rename.
  await page.getByRole("row").filter({ hasText: "Key one" }).getByRole("button", { name: "Rename" }).click();
  const rename = page.getByRole("dialog", { name: "Rename “Key one”" });
  await rename.getByLabel("Name", { exact: true }).fill("Key two");
  await rename.getByRole("button", { name: "Rename" }).click();
  await page.getByRole("row").filter({ hasText: "Key two" }).waitFor();

  // Mint, then change the limits: the list shows the new ones, the proxy enforces them.
  await page.getByRole("link", { name: "Shares" }).click();
  await page.getByRole("button", { name: "Mint a share" }).first().click();
  const mint = page.getByRole("dialog", { name: "Mint a share" });
  await mint.getByLabel("Name", { exact: true }).fill("Changing");
  await mint.getByLabel("Budget in USD").fill("3");
  await mint.getByRole("button", { name: "Mint share" }).click();
  const first = page.getByRole("dialog", { name: "Your new Feen token" });
  const token = await first.getByLabel("Feen token").inputValue();
  // Closing without copying asks first.
  await first.getByRole("button", { name: "Done" }).click();
  await page.getByRole("dialog", { name: "Close without copying?" }).getByRole("button", { name: "Close anyway" }).click();
  await page.waitForFunction(() => !document.querySelector("dialog"));
  const row = () => page.getByRole("row").filter({ hasText: "Changing" });
  await withinOneMinute();
  await row().getByRole("button", { name: "Edit limits" }).click();
  const edit = page.getByRole("dialog", { name: "Limits of “Changing”" });
  assert.equal(await edit.getByLabel("Budget in USD").inputValue(), "3");
  await edit.getByLabel("Requests per minute").fill("1");
  await edit.getByLabel("Budget in USD").fill("");
  await edit.getByRole("button", { name: "Save limits" }).click();
  await closes(edit);
  await eventually(async () => {
    const text = await row().innerText();
    assert.match(text, /0 \/ 1 this minute/);
    assert.doesNotMatch(text, /this month/, "the budget was cleared");
  });
  assert.equal((await chat(token)).status, 200);
  const limited = await chat(token);
  assert.equal(limited.status, 429, "the new limit applies at once");

  // A new token: the old one stops, the new one works (its limits stay).
  await row().getByRole("button", { name: "New token" }).click();
  await page.getByRole("dialog", { name: "New token for “Changing”?" }).getByRole("button", { name: "Make a new token" }).click();
  const second = page.getByRole("dialog", { name: "Your new Feen token" });
  const fresh = await second.getByLabel("Feen token").inputValue();
  assert.notEqual(fresh, token);
  await second.getByRole("button", { name: "Copy token" }).click();
  await second.getByRole("button", { name: "Done" }).click();
  assert.equal((await chat(token)).status, 401);
  // Clearing a limit removes it: the new token is no longer held to one request a minute.
  await row().getByRole("button", { name: "Edit limits" }).click();
  const clear = page.getByRole("dialog", { name: "Limits of “Changing”" });
  assert.equal(await clear.getByLabel("Requests per minute").inputValue(), "1");
  await clear.getByLabel("Requests per minute").fill("");
  await clear.getByRole("button", { name: "Save limits" }).click();
  await closes(clear);
  await eventually(async () => assert.match(await row().innerText(), /no limits/));
  assert.equal((await chat(fresh)).status, 200);

  // A new secret for the key: the provider now sees it (the mock refuses a key it does not know).
  await page.getByRole("link", { name: "Keys" }).click();
  await page.getByRole("row").filter({ hasText: "Key two" }).getByRole("button", { name: "Replace secret" }).click();
  const rotate = page.getByRole("dialog", { name: "Replace the secret of “Key two”" });
  await rotate.getByLabel("New API key").fill("sk-not-the-mock-key-000");
  await rotate.getByRole("button", { name: "Replace secret" }).click();
  await page.getByRole("row").filter({ hasText: "Key two" }).filter({ hasText: "sk-...-000" }).waitFor();
  const upstreamRefused = await chat(fresh);
  assert.equal(upstreamRefused.status, 401, "the provider refused the replaced secret");

  // Deleting asks first; cancelling keeps the key, confirming ends its shares at once.
  await page.getByRole("row").filter({ hasText: "Key two" }).getByRole("button", { name: "Delete" }).click();
  await page.getByRole("dialog", { name: "Delete “Key two”?" }).getByRole("button", { name: "Cancel" }).click();
  await page.getByRole("row").filter({ hasText: "Key two" }).waitFor();
  await page.getByRole("row").filter({ hasText: "Key two" }).getByRole("button", { name: "Delete" }).click();
  await page.getByRole("dialog", { name: "Delete “Key two”?" }).getByRole("button", { name: "Delete key" }).click();
  await page.getByText("No keys yet").waitFor();
  assert.equal((await chat(fresh)).status, 401);
  assert.deepEqual(problems, []);
  await context.close();
});

test("loading failures show an error with a way to try again", async () => {
  const { page, context } = await newPage();
  await signUp(page, "Flaky");
  // The API answers 503 once (as during an outage): the page says so and offers a retry.
  let failures = 0;
  await page.route("**/api/keys", async (route) => {
    failures++;
    await route.fulfill({ status: 503, contentType: "application/json", body: JSON.stringify({ type: "error", error: { code: "unavailable", message: "the service is unavailable; try again shortly", type: "api_error" } }) });
  });
  await page.reload();
  await page.getByRole("alert").filter({ hasText: "the service is unavailable" }).waitFor();
  await screenshot(page, "15-error-state");
  await page.unroute("**/api/keys");
  await page.getByRole("button", { name: "Try again" }).click();
  await page.getByText("No keys yet").waitFor();
  assert.ok(failures >= 1);
  await context.close();
});

test("on a phone-sized screen every page fits and tables become cards", async () => {
  const { page, context, problems } = await newPage({ width: 390, height: 844 });
  await signUp(page, "Phone");
  for (const [name, heading] of [["keys", "Keys"], ["shares", "Shares"], ["usage", "Usage"], ["audit", "Audit log"], ["teams", "Teams"], ["settings", "Settings"]]) {
    await page.goto(`${env.base}/#/${name}`);
    await page.getByRole("heading", { name: heading, level: 1 }).waitFor();
    await page.locator('[aria-busy="true"]').waitFor({ state: "detached" });
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    if (name === "audit") {
      // The sign-up's login is in the log: its table is shown as cards.
      assert.equal(await page.locator(".table thead").first().evaluate((el) => getComputedStyle(el).display), "none");
    }
    assert.ok(overflow <= 0, `${name} is ${overflow}px wider than the screen`);
    // Nor is anything cut off inside a table shown as cards (long ids wrap).
    const hidden = await page.locator(".table-wrap").evaluateAll((ws) => ws.map((w) => w.scrollWidth - w.clientWidth));
    assert.ok(hidden.every((px) => px <= 0), `${name}: a table scrolls sideways by ${hidden}px`);
    await screenshot(page, `14-phone-${name}`);
  }
  assert.deepEqual(problems, []);
  await context.close();
});

test("the dashboard is served with a strict security policy and nothing inline", async () => {
  const resp = await fetch(`${env.base}/`);
  assert.equal(resp.status, 200);
  const csp = resp.headers.get("content-security-policy") ?? "";
  assert.match(csp, /default-src 'none'/);
  assert.match(csp, /script-src 'self'(;|$)/);
  assert.match(csp, /frame-ancestors 'none'/);
  assert.equal(resp.headers.get("x-content-type-options"), "nosniff");
  assert.equal(resp.headers.get("referrer-policy"), "no-referrer");
  const html = await resp.text();
  assert.ok(!/<script>|<script [^>]*>[^<]/.test(html), "no inline script");
  // A page that tries inline code is blocked by the policy in a real browser.
  const { page, context } = await newPage();
  /** @type {string[]} */
  const violations = [];
  page.on("console", (m) => {
    if (m.text().includes("Content Security Policy")) violations.push(m.text());
  });
  await page.goto(env.base);
  await page.getByRole("heading", { name: "Sign in to Feen" }).waitFor();
  const ran = await page.evaluate(() => {
    const s = document.createElement("script");
    s.textContent = "window.__inline = 1";
    document.body.append(s);
    return /** @type {any} */ (window).__inline === 1;
  });
  assert.equal(ran, false, "inline script must not run");
  assert.ok(violations.length > 0);
  const etag = resp.headers.get("etag") ?? "";
  const again = await fetch(`${env.base}/`, { headers: { "if-none-match": etag } });
  assert.equal(again.status, 304);
  const missing = await fetch(`${env.base}/nope.js`);
  assert.equal(missing.status, 404);
  assert.equal((await missing.json()).error.code, "not_found");
  await context.close();
});

test("a page an upstream serves through the proxy cannot use the dashboard's session", async () => {
  const { page, context } = await newPage();
  await signUp(page, "Target");
  // Signed in, the victim's page makes a custom key at the attacker-run upstream (the mock's
  // hostile route) and a share of it: the link an attacker would send is the proxy URL with it.
  const token = await page.evaluate(async (mockUrl) => {
    /** @param {string} path @param {unknown} body */
    const post = async (path, body) => {
      const r = await fetch(path, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
      return r.json();
    };
    const key = await post("/api/keys", { name: "theirs", provider: "custom", apiKey: "sk-mock-browser-0123456789abcdef", baseUrl: mockUrl, authHeader: "X-Custom-Auth", authTemplate: "Token {key}" });
    const share = await post("/api/shared", { apiKeyId: key.id, name: "link" });
    return String(share.token);
  }, env.mockUrl);
  assert.match(token, /^feen_/);
  const answer = await page.goto(`${env.base}/api/proxy/hostile/html?key=${token}`);
  assert.equal(answer?.status(), 200);
  await page.getByRole("heading", { name: "Not Feen" }).waitFor();
  // Its script would have read the user and made a team with the session: it did not run, and
  // the page has no origin of its own to act with.
  await new Promise((r) => setTimeout(r, 1000));
  assert.equal(await page.title(), "hostile");
  assert.equal(await page.evaluate(() => self.origin), "null");
  assert.equal((await context.cookies()).filter((c) => c.value === "planted").length, 0, "no cookie from the upstream");
  await page.goto(env.base);
  await page.getByRole("heading", { name: "Keys", level: 1 }).waitFor();
  const teams = await page.evaluate(async () => (await (await fetch("/api/teams")).json()).teams);
  assert.deepEqual(teams.filter((/** @type {{name: string}} */ t) => t.name === "pwned by upstream"), []);
  await context.close();
});
