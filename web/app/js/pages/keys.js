// Provider keys: the list, adding one (provider, optional base URL, owner), renaming, replacing
// the secret, deleting. The secret itself is never shown again: only its hint.

import * as api from "../api.js";
import { h } from "../dom.js";
import { ago, when } from "../format.js";
import { button, confirm, empty, formDialog, pageHeader, show, table, toast } from "../ui.js";

/** Every provider Feen knows, as [value, label]. */
export const PROVIDERS = /** @type {[string, string][]} */ ([
  ["openai", "OpenAI"], ["anthropic", "Anthropic"], ["gemini", "Google Gemini"], ["azure", "Azure OpenAI"],
  ["mistral", "Mistral"], ["groq", "Groq"], ["together", "Together"], ["cohere", "Cohere"],
  ["deepseek", "DeepSeek"], ["xai", "xAI"], ["openrouter", "OpenRouter"], ["fireworks", "Fireworks"],
  ["perplexity", "Perplexity"], ["huggingface", "Hugging Face"], ["replicate", "Replicate"], ["custom", "Custom (any HTTPS API)"],
]);

/** @param {string} value */
export const providerName = (value) => PROVIDERS.find(([v]) => v === value)?.[1] ?? value;

/**
 * @param {HTMLElement} main
 * @param {import("../app.js").Session} s
 */
export async function render(main, s) {
  const list = h("div", {});
  const reload = () => show(list, api.keys.list, (keys) => view(keys, s, reload));
  main.replaceChildren(
    pageHeader("Keys", "Your provider keys, stored encrypted. Shares spend them; nobody ever sees them again.",
      h("button", { type: "button", class: "button button-primary", text: "Add key", onclick: () => add(s, reload) })),
    list);
  await reload();
}

/**
 * @param {api.Key[]} keys
 * @param {import("../app.js").Session} s
 * @param {() => void} reload
 */
function view(keys, s, reload) {
  if (keys.length === 0) {
    return empty("No keys yet", "Add a provider key (OpenAI, Anthropic, Gemini, …) to start sharing it.",
      button("Add your first key", () => add(s, reload), "button-primary"));
  }
  return table([
    { label: "Name", cell: (k) => h("strong", { text: k.name }) },
    { label: "Provider", cell: (k) => providerName(k.provider) },
    { label: "Key", cell: (k) => h("code", { text: k.hint }) },
    { label: "Owner", cell: (k) => s.ownerName(k.teamId) },
    { label: "Created", cell: (k) => when(k.createdAt) },
    { label: "Last used", cell: (k) => h("span", { title: when(k.lastUsedAt), text: ago(k.lastUsedAt) }) },
    {
      label: "Actions",
      class: "cell-actions",
      cell: (k) => s.canManage(k.teamId)
        ? [
          button("Rename", () => rename(k, reload)),
          button("Replace secret", () => rotate(k, reload)),
          button("Delete", () => remove(k, reload), "button-danger"),
        ]
        : h("span", { class: "muted", text: "view only" }),
    },
  ], keys, "Provider keys");
}

/**
 * @param {import("../app.js").Session} s
 * @param {() => void} reload
 */
async function add(s, reload) {
  const owners = /** @type {[string, string][]} */ ([["", "You"], ...s.teams.filter((t) => s.canManage(t.id)).map((t) => [t.id, `Team: ${t.name}`])]);
  const added = await formDialog("Add a provider key", [
    { name: "name", label: "Name", required: true, placeholder: "Team OpenAI key" },
    { name: "provider", label: "Provider", type: "select", options: PROVIDERS, value: "openai" },
    { name: "apiKey", label: "API key", type: "password", required: true, hint: "Sealed with AES-256-GCM. Only a hint (sk-...wxyz) is ever shown." },
    { name: "baseUrl", label: "Base URL", type: "url", placeholder: "https://…", hint: "Needed for Azure and custom providers; otherwise the provider's own." },
    { name: "authHeader", label: "Auth header (custom only)", placeholder: "X-Api-Token" },
    { name: "authTemplate", label: "Auth value (custom only)", placeholder: "Token {key}" },
    ...(owners.length > 1 ? [{ name: "teamId", label: "Owner", type: "select", options: owners, value: "" }] : []),
  ], "Add key", async (v) => {
    /** @type {api.Body} */
    const body = { name: v.name, provider: v.provider, apiKey: v.apiKey };
    for (const k of ["baseUrl", "authHeader", "authTemplate", "teamId"]) if (v[k]) body[k] = v[k];
    return api.keys.add(body);
  });
  if (added) {
    toast(`Key “${added.name}” added`);
    reload();
  }
}

/** @param {api.Key} key @param {() => void} reload */
async function rename(key, reload) {
  const done = await formDialog(`Rename “${key.name}”`, [{ name: "name", label: "Name", required: true, value: key.name }], "Rename",
    async (v) => api.keys.rename(key.id, String(v.name)));
  if (done) {
    toast("Key renamed");
    reload();
  }
}

/** @param {api.Key} key @param {() => void} reload */
async function rotate(key, reload) {
  const done = await formDialog(`Replace the secret of “${key.name}”`, [
    { name: "apiKey", label: "New API key", type: "password", required: true },
  ], "Replace secret", async (v) => api.keys.rotate(key.id, String(v.apiKey)), {
    intro: "Every share of this key uses the new secret from its next request; their tokens stay the same.",
  });
  if (done) {
    toast("Secret replaced");
    reload();
  }
}

/** @param {api.Key} key @param {() => void} reload */
async function remove(key, reload) {
  const sure = await confirm(`Delete “${key.name}”?`,
    "The key is deleted for good and every share of it stops working at once. This cannot be undone.", "Delete key");
  if (!sure) return;
  try {
    await api.keys.remove(key.id);
    toast("Key deleted");
  } catch (err) {
    toast(err instanceof api.ApiError ? err.message : "The key could not be deleted", "error");
  }
  reload();
}
