// Settings: the account, personal access tokens (for the CLI and SDK), changing the password,
// and signing out of every session.

import * as api from "../api.js";
import { h } from "../dom.js";
import { when } from "../format.js";
import { button, confirm, copyButton, dialog, empty, form, formDialog, pageHeader, show, table, toast } from "../ui.js";

/**
 * @param {HTMLElement} main
 * @param {import("../app.js").Session} s
 */
export async function render(main, s) {
  const tokens = h("div", {});
  const reload = () => show(tokens, api.auth.tokens, (list) => tokenView(list, reload));
  main.replaceChildren(
    pageHeader("Settings", `Signed in as ${s.user.name} (${s.user.email}).`),
    h("section", { class: "panel", "aria-labelledby": "pats" },
      h("div", { class: "page-header" },
        h("h2", { id: "pats", text: "Personal access tokens" }),
        h("div", { class: "page-actions" }, button("New token", () => createToken(reload), "button-primary"))),
      h("p", { class: "muted", text: "For the feen CLI and SDK: they act as you, until they expire (in 90 days unless you choose, a year at most) or you revoke them." }),
      tokens),
    h("section", { class: "panel", "aria-labelledby": "password" },
      h("h2", { id: "password", text: "Change password" }),
      h("p", { class: "muted", text: "Every session ends, on every device; this one continues with the new password." }),
      form({
        fields: [
          { name: "currentPassword", label: "Current password", type: "password", required: true, autocomplete: "current-password" },
          { name: "newPassword", label: "New password", type: "password", required: true, autocomplete: "new-password", hint: "At least 10 characters." },
          tokensChoice("pwTokens"),
        ],
        submitLabel: "Change password",
        submit: async (v) => {
          await api.auth.changePassword(String(v.currentPassword), String(v.newPassword), v.pwTokens === "revoke");
          for (const input of main.querySelectorAll("input[type=password]")) /** @type {HTMLInputElement} */ (input).value = "";
          toast(v.pwTokens === "revoke" ? "Password changed; other sessions and your tokens were ended" : "Password changed; other sessions were signed out");
          reload();
        },
      })),
    h("section", { class: "panel", "aria-labelledby": "sessions" },
      h("h2", { id: "sessions", text: "Sessions" }),
      h("p", { class: "muted", text: "Lost a device? Sign out everywhere: every session ends at once, this one too." }),
      form({
        fields: [tokensChoice("outTokens")],
        submitLabel: "Sign out of all sessions",
        danger: true,
        submit: async (v) => {
          if (!(await confirm("Sign out everywhere?", "Every device signed in to your account is signed out at once, this one too.", "Sign out everywhere"))) return;
          await api.auth.logoutAll(v.outTokens === "revoke");
          location.hash = "#/signin";
          location.reload();
        },
      })));
  await reload();
}

/**
 * Whether personal access tokens end too (signing out everywhere, a new password).
 * @param {string} name
 * @returns {import("../ui.js").Field}
 */
function tokensChoice(name) {
  return { name, label: "Personal access tokens", type: "select", value: "keep", options: [["keep", "Keep working"], ["revoke", "Revoke them too"]] };
}

/** @param {api.Pat[]} list @param {() => void} reload */
function tokenView(list, reload) {
  if (list.length === 0) return empty("No tokens", "Make one to use the feen CLI or SDK.");
  return table([
    { label: "Name", cell: (t) => h("strong", { text: t.name }) },
    { label: "Created", cell: (t) => when(t.createdAt) },
    { label: "Expires", cell: (t) => (t.expiresAt ? when(t.expiresAt) : "never") },
    {
      label: "Actions",
      class: "cell-actions",
      cell: (t) => button("Revoke", async () => {
        if (!(await confirm(`Revoke “${t.name}”?`, "Programs using it stop working at once.", "Revoke"))) return;
        try {
          await api.auth.revokeToken(t.id);
          toast("Token revoked");
        } catch (err) {
          toast(err instanceof api.ApiError ? err.message : "That did not work", "error");
        }
        reload();
      }, "button-danger"),
    },
  ], list, "Personal access tokens");
}

/** @param {() => void} reload */
async function createToken(reload) {
  const pat = await formDialog("New personal access token", [
    { name: "name", label: "Name", required: true, placeholder: "laptop CLI" },
    { name: "expiresAt", label: "Expires at", type: "datetime-local", hint: "In 90 days if left empty; a year from now at most." },
    { name: "password", label: "Your password", type: "password", required: true, autocomplete: "current-password", hint: "A token acts as you, so making one needs your password." },
  ], "Make token", (v) => api.auth.createToken({ name: v.name, password: v.password, ...(v.expiresAt ? { expiresAt: new Date(String(v.expiresAt)).toISOString() } : {}) }));
  if (!pat) return;
  reload();
  await dialog("Your new personal access token", (close) => [
    h("p", { class: "notice", text: "Copy it now: it is shown only this once." }),
    h("div", { class: "token-row" }, h("input", { class: "token", readOnly: true, value: pat.token ?? "", "aria-label": "Personal access token" }), copyButton(() => pat.token ?? "")),
    h("div", { class: "actions" }, h("button", { type: "button", class: "button button-primary", text: "Done", onclick: () => close() })),
  ]);
}
