// Shares: Feen tokens with limits. The list shows each limit and what it has counted in its
// current window; minting takes every limit the API has; the token is shown once, with a copy
// button and ready-to-paste snippets; limits can be changed, tokens regenerated or revoked.

import * as api from "../api.js";
import { h } from "../dom.js";
import { count, isoToLocal, localToIso, money, when } from "../format.js";
import { badge, button, confirm, copyButton, dialog, empty, formDialog, pageHeader, show, table, toast } from "../ui.js";
import { providerName } from "./keys.js";

/** The limits a share can have, in the order the form shows them. */
const LIMITS = [
  { name: "rateLimit", label: "Requests per minute", type: "number", min: 1 },
  { name: "dailyLimit", label: "Requests per day (UTC)", type: "number", min: 1 },
  { name: "tokensPerMinute", label: "Tokens per minute", type: "number", min: 1, hint: "Input and output tokens together." },
  { name: "tokensPerDay", label: "Tokens per day (UTC)", type: "number", min: 1 },
  { name: "budgetUsd", label: "Budget in USD", type: "number", min: 0, step: "0.01", hint: "A share with a budget can call only models with a known price." },
  { name: "budgetPeriod", label: "Budget period", type: "select", options: /** @type {[string, string][]} */ ([["month", "per month"], ["week", "per week (from Monday)"], ["day", "per day"], ["lifetime", "over the share's life"]]) },
  { name: "maxUses", label: "Requests in total", type: "number", min: 1 },
  { name: "reserveTokens", label: "Output tokens reserved when a request sets no max_tokens", type: "number", min: 1, placeholder: "4096" },
  { name: "expiresAt", label: "Expires at", type: "datetime-local" },
  { name: "allowedModels", label: "Allowed models", type: "textarea", list: true, placeholder: "gpt-4o-mini\nclaude-*", hint: "One per line; globs like gpt-4o* work. Empty: every model." },
  { name: "allowedEndpoints", label: "Allowed endpoints", type: "textarea", list: true, placeholder: "/v1/chat/*", hint: "Upstream paths or globs. Empty: every endpoint." },
  { name: "allowedIps", label: "Allowed client addresses", type: "textarea", list: true, placeholder: "203.0.113.0/24", hint: "Addresses or CIDR ranges, IPv4 or IPv6. Empty: anywhere." },
];

/** How a live limit reads: "3 / 20 this minute". */
const PER = { rateLimit: "this minute", dailyLimit: "today", tokensPerMinute: "tokens this minute", tokensPerDay: "tokens today", budgetUsd: "spent", maxUses: "uses" };

/**
 * @param {HTMLElement} main
 * @param {import("../app.js").Session} s
 */
export async function render(main, s) {
  const list = h("div", {});
  /** @type {api.Key[]} */
  let keys = [];
  const load = async () => {
    const [k, sh] = await Promise.all([api.keys.list(), api.shares.list()]);
    keys = k;
    return sh;
  };
  const reload = () => show(list, load, (items) => view(items, keys, s, reload));
  main.replaceChildren(
    pageHeader("Shares", "Feen tokens with limits. Hand one out; revoke it and the next request is refused.",
      h("button", { type: "button", class: "button button-primary", text: "Mint a share", onclick: () => mint(keys, s, reload) })),
    list);
  await reload();
}

/**
 * @param {api.Share[]} items
 * @param {api.Key[]} keys
 * @param {import("../app.js").Session} s
 * @param {() => void} reload
 */
function view(items, keys, s, reload) {
  if (items.length === 0) {
    return keys.length === 0
      ? empty("No shares yet", "Add a provider key first; then mint shares of it here.", h("a", { class: "button button-primary", href: "#/keys", text: "Go to keys" }))
      : empty("No shares yet", "Mint a share: a Feen token with the limits you choose.", button("Mint your first share", () => mint(keys, s, reload), "button-primary"));
  }
  const keyName = (/** @type {string} */ id) => keys.find((k) => k.id === id)?.name ?? id;
  return table([
    { label: "Name", cell: (sh) => [h("strong", { text: sh.name }), h("br"), h("code", { class: "muted", text: sh.tokenHint })] },
    { label: "Key", cell: (sh) => keyName(sh.apiKeyId) },
    { label: "Owner", cell: (sh) => s.ownerName(sh.teamId) },
    { label: "Status", cell: (sh) => badge(sh.status) },
    { label: "Limits and use", cell: (sh) => limits(sh) },
    { label: "Expires", cell: (sh) => (sh.expiresAt ? when(sh.expiresAt) : "never") },
    {
      label: "Actions",
      class: "cell-actions",
      cell: (sh) => sh.status !== "active" || !s.canManage(sh.teamId, "member")
        ? h("span", { class: "muted", text: sh.status === "active" ? "view only" : "—" })
        : [
          button("Edit limits", () => edit(sh, reload)),
          button("New token", () => regenerate(sh, keys, reload)),
          button("Revoke", () => revoke(sh, reload), "button-danger"),
        ],
    },
  ], items, "Shares");
}

/**
 * Each limit with a meter of what it has counted in its current window.
 * @param {api.Share} sh
 */
function limits(sh) {
  const live = sh.live ?? [];
  const rules = [
    sh.allowedModels.length ? `models: ${sh.allowedModels.join(", ")}` : null,
    sh.allowedEndpoints.length ? `endpoints: ${sh.allowedEndpoints.join(", ")}` : null,
    sh.allowedIps.length ? `from: ${sh.allowedIps.join(", ")}` : null,
  ].filter(Boolean);
  if (live.length === 0 && rules.length === 0) return h("span", { class: "muted", text: sh.status === "active" ? "no limits" : "—" });
  return h("ul", { class: "meters" },
    live.map((l) => {
      const budget = l.limit === "budgetUsd";
      const label = budget
        ? `${money(l.used)} / ${money(l.max)} ${sh.budgetPeriod === "lifetime" ? "in total" : `this ${sh.budgetPeriod}`}`
        : `${count(l.used)} / ${count(l.max)} ${PER[/** @type {keyof typeof PER} */ (l.limit)] ?? ""}`;
      const ratio = l.max > 0 ? Math.min(1, l.used / l.max) : 0;
      return h("li", { "data-limit": l.limit },
        h("span", { class: "meter-label", text: label }),
        h("meter", { min: 0, max: 1, low: 0.8, high: 0.95, optimum: 0, value: ratio, "aria-label": label }));
    }),
    rules.map((r) => h("li", { class: "muted", text: r })));
}

/**
 * The form's fields, filled with a share's current limits when editing.
 * @param {api.Share | null} sh
 */
function limitFields(sh) {
  return LIMITS.map((f) => {
    const current = sh ? /** @type {any} */ (sh)[f.name] : null;
    const value = f.name === "expiresAt" ? isoToLocal(current) : f.name === "budgetPeriod" ? current ?? "month" : current;
    return { ...f, value };
  });
}

/**
 * The request body from the form: limits left empty are omitted when minting, cleared (null)
 * when editing.
 * @param {import("../ui.js").Values} v
 * @param {boolean} editing
 */
function limitBody(v, editing) {
  /** @type {api.Body} */
  const body = {};
  for (const f of LIMITS) {
    let value = v[f.name];
    if (f.name === "expiresAt") value = localToIso(String(value ?? ""));
    if (f.name === "budgetPeriod") {
      if (v.budgetUsd === null) continue;
    }
    if (value === null || (Array.isArray(value) && value.length === 0 && !editing)) {
      if (editing) body[f.name] = Array.isArray(value) ? [] : null;
      continue;
    }
    body[f.name] = value;
  }
  return body;
}

/**
 * @param {api.Key[]} keys
 * @param {import("../app.js").Session} s
 * @param {() => void} reload
 */
async function mint(keys, s, reload) {
  const usable = keys.filter((k) => s.canManage(k.teamId, "member"));
  if (usable.length === 0) {
    toast("Add a provider key first", "error");
    location.hash = "#/keys";
    return;
  }
  const minted = await formDialog("Mint a share", [
    { name: "apiKeyId", label: "Key", type: "select", options: usable.map((k) => /** @type {[string, string]} */ ([k.id, `${k.name} (${providerName(k.provider)})`])) },
    { name: "name", label: "Name", required: true, placeholder: "Workshop, Alice's laptop, …" },
    ...limitFields(null),
  ], "Mint share", async (v) => api.shares.mint({ apiKeyId: v.apiKeyId, name: v.name, ...limitBody(v, false) }));
  if (minted?.token) {
    reload();
    await tokenDialog(minted, keys.find((k) => k.id === minted.apiKeyId));
  }
}

/** @param {api.Share} sh @param {() => void} reload */
async function edit(sh, reload) {
  const done = await formDialog(`Limits of “${sh.name}”`, [
    { name: "name", label: "Name", required: true, value: sh.name },
    ...limitFields(sh),
  ], "Save limits", async (v) => api.shares.update(sh.id, { name: v.name, ...limitBody(v, true) }), {
    intro: "Changes apply to the next request. Clear a field to remove that limit.",
  });
  if (done) {
    toast("Limits saved");
    reload();
  }
}

/** @param {api.Share} sh @param {api.Key[]} keys @param {() => void} reload */
async function regenerate(sh, keys, reload) {
  const sure = await confirm(`New token for “${sh.name}”?`, "The current token stops working at once; whoever holds it needs the new one.", "Make a new token");
  if (!sure) return;
  try {
    const fresh = await api.shares.regenerate(sh.id);
    reload();
    await tokenDialog(fresh, keys.find((k) => k.id === fresh.apiKeyId));
  } catch (err) {
    toast(err instanceof api.ApiError ? err.message : "No new token was made", "error");
  }
}

/** @param {api.Share} sh @param {() => void} reload */
async function revoke(sh, reload) {
  const sure = await confirm(`Revoke “${sh.name}”?`, "Its token is refused from the next request on. This cannot be undone.", "Revoke share");
  if (!sure) return;
  try {
    await api.shares.revoke(sh.id);
    toast("Share revoked");
  } catch (err) {
    toast(err instanceof api.ApiError ? err.message : "The share could not be revoked", "error");
  }
  reload();
}

/**
 * Ready-to-paste ways to use a token.
 * @param {string} token
 * @param {api.Key | undefined} key
 */
export function snippets(token, key) {
  const base = `${location.origin}/api/proxy`;
  const model = key?.provider === "anthropic" ? "claude-3-5-haiku-latest" : "gpt-4o-mini";
  const curl = key?.provider === "anthropic"
    ? `curl ${base}/v1/messages \\\n  -H "x-api-key: ${token}" \\\n  -H "anthropic-version: 2023-06-01" \\\n  -H "content-type: application/json" \\\n  -d '{"model": "${model}", "max_tokens": 256, "messages": [{"role": "user", "content": "Hello"}]}'`
    : `curl ${base}/v1/chat/completions \\\n  -H "Authorization: Bearer ${token}" \\\n  -H "content-type: application/json" \\\n  -d '{"model": "${model}", "messages": [{"role": "user", "content": "Hello"}]}'`;
  return [
    { id: "curl", label: "curl", code: curl },
    {
      id: "openai",
      label: "OpenAI SDK (Python)",
      code: `from openai import OpenAI\n\nclient = OpenAI(base_url="${base}/v1", api_key="${token}")\nreply = client.chat.completions.create(\n    model="gpt-4o-mini",\n    messages=[{"role": "user", "content": "Hello"}],\n)\nprint(reply.choices[0].message.content)`,
    },
    {
      id: "anthropic",
      label: "Anthropic SDK (Python)",
      code: `from anthropic import Anthropic\n\nclient = Anthropic(base_url="${base}", api_key="${token}")\nreply = client.messages.create(\n    model="claude-3-5-haiku-latest",\n    max_tokens=256,\n    messages=[{"role": "user", "content": "Hello"}],\n)\nprint(reply.content[0].text)`,
    },
  ];
}

/**
 * The token, shown this once: a copy button and snippets. The dialog closes only by its button,
 * after a reminder if the token was not copied.
 * @param {api.Share} sh
 * @param {api.Key | undefined} key
 */
async function tokenDialog(sh, key) {
  const token = sh.token ?? "";
  let copied = false;
  await dialog("Your new Feen token", (close) => {
    const tokenBox = h("input", { class: "token", readOnly: true, value: token, "aria-label": "Feen token", id: "new-token", onfocus: (/** @type {FocusEvent} */ e) => /** @type {HTMLInputElement} */ (e.target).select() });
    const copy = copyButton(() => {
      copied = true;
      return token;
    }, "Copy token");
    const tabs = snippets(token, key);
    const panel = h("pre", { class: "snippet", tabindex: "0", "aria-live": "polite" }, h("code", { text: tabs[0].code }));
    const tabButtons = tabs.map((t, i) => h("button", {
      type: "button",
      role: "tab",
      class: "tab",
      "aria-selected": i === 0 ? "true" : "false",
      "data-snippet": t.id,
      text: t.label,
      onclick: (/** @type {MouseEvent} */ e) => {
        for (const b of tabButtons) b.setAttribute("aria-selected", b === e.currentTarget ? "true" : "false");
        panel.replaceChildren(h("code", { text: t.code }));
      },
    }));
    const current = () => tabs[Math.max(0, tabButtons.findIndex((b) => b.getAttribute("aria-selected") === "true"))].code;
    return [
      h("p", { class: "notice", role: "note" }, h("strong", { text: "Copy it now: " }), `this is the only time Feen shows the token of “${sh.name}”. It stores only a hash.`),
      h("div", { class: "token-row" }, tokenBox, copy),
      h("h3", { text: "Use it with" }),
      h("div", { class: "tabs", role: "tablist", "aria-label": "Snippets" }, tabButtons),
      panel,
      h("div", { class: "actions" },
        copyButton(current, "Copy snippet"),
        h("button", {
          type: "button",
          class: "button button-primary",
          text: "Done",
          onclick: async () => {
            if (copied || (await confirm("Close without copying?", "The token cannot be shown again. You would need to make a new one.", "Close anyway"))) close();
          },
        })),
    ];
  }, { wide: true, dismissable: false });
}
