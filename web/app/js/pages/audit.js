// The audit log: every sensitive action on your account (or a team's, for its admins), newest
// first, with filters, more on demand, and a check of the log's hash chain.

import * as api from "../api.js";
import { h, replace } from "../dom.js";
import { localToIso, when } from "../format.js";
import { badge, button, empty, failed, loading, pageHeader, table, toast } from "../ui.js";

const ACTIONS = [
  "auth.login", "auth.login_failed", "auth.logout", "auth.logout_all", "auth.password_changed", "auth.refresh_reused",
  "pat.created", "pat.revoked", "key.added", "key.renamed", "key.rotated", "key.deleted",
  "share.minted", "share.updated", "share.revoked", "share.regenerated",
  "team.created", "team.renamed", "team.deleted", "team.member_invited", "team.invite_cancelled", "team.member_joined",
  "team.member_removed", "team.member_left", "team.role_changed", "team.ownership_transferred",
];

/**
 * @param {HTMLElement} main
 * @param {import("../app.js").Session} s
 */
export async function render(main, s) {
  const owners = /** @type {[string, string][]} */ ([["", "Your account"], ...s.teams.filter((t) => s.canManage(t.id)).map((t) => [t.id, `Team: ${t.name}`])]);
  const select = (/** @type {string} */ name, /** @type {string} */ label, /** @type {[string, string][]} */ options) =>
    h("div", { class: "field field-inline" }, h("label", { for: `audit-${name}`, text: label }),
      h("select", { id: `audit-${name}`, name }, options.map(([v, l]) => h("option", { value: v, text: l }))));
  const input = (/** @type {string} */ name, /** @type {string} */ label, /** @type {string} */ type) =>
    h("div", { class: "field field-inline" }, h("label", { for: `audit-${name}`, text: label }), h("input", { id: `audit-${name}`, name, type }));
  const filters = h("form", { class: "controls" },
    select("teamId", "Log of", owners),
    select("action", "Action", [["", "Any action"], ...ACTIONS.map((a) => /** @type {[string, string]} */ ([a, a]))]),
    input("resourceId", "Resource id", "text"),
    input("from", "From", "datetime-local"),
    input("to", "To", "datetime-local"),
    h("button", { type: "submit", class: "button button-primary", text: "Filter" }));
  const results = h("div", {});
  const verdict = h("p", { class: "verdict", role: "status" });
  main.replaceChildren(
    pageHeader("Audit log", "Every sensitive action, with who, when and from where. Each entry is chained to the one before it by a hash.",
      h("button", { type: "button", class: "button", text: "Verify the chain", onclick: () => verify() })),
    verdict, filters, results);

  const value = (/** @type {string} */ name) => /** @type {HTMLInputElement} */ (filters.elements.namedItem(name)).value;
  const params = () => ({
    teamId: value("teamId"), action: value("action"), resourceId: value("resourceId").trim(),
    from: localToIso(value("from")), to: localToIso(value("to")),
  });

  /** @type {api.AuditEntry[]} */
  let entries = [];
  /** @param {string | null} cursor */
  async function load(cursor) {
    if (!cursor) replace(results, loading());
    try {
      const page = await api.audit.list({ ...params(), limit: 50, cursor });
      entries = cursor ? [...entries, ...page.entries] : page.entries;
      replace(results, entries.length === 0
        ? empty("Nothing here", "No entries match these filters.")
        : [view(entries), page.nextCursor ? button("Load more", () => load(page.nextCursor)) : null]);
    } catch (err) {
      replace(results, failed(err, () => load(cursor)));
    }
  }

  async function verify() {
    try {
      const r = await api.audit.verify({ teamId: value("teamId") });
      replace(verdict, r.valid
        ? [badge("intact", "active"), ` ${r.checked} entries checked: the chain is intact.`]
        : [badge("broken", "revoked"), ` The chain breaks at entry ${r.brokenAt?.seq} (${r.brokenAt?.reason}).`]);
    } catch (err) {
      toast(err instanceof api.ApiError ? err.message : "The check failed", "error");
    }
  }

  filters.addEventListener("submit", (e) => {
    e.preventDefault();
    load(null);
  });
  await load(null);
}

/** @param {api.AuditEntry[]} entries */
function view(entries) {
  return table([
    { label: "When", cell: (e) => when(e.at) },
    { label: "Action", cell: (e) => h("code", { text: e.action }) },
    { label: "Resource", cell: (e) => (e.resourceId ? `${e.resourceType ?? ""} ${e.resourceId}` : "—") },
    { label: "By", cell: (e) => e.actorId ?? "—" },
    { label: "From", cell: (e) => [e.clientIp ?? "—", h("br"), h("small", { class: "muted", text: e.userAgent ?? "" })] },
    { label: "Details", cell: (e) => (Object.keys(e.details).length ? h("code", { class: "details", text: JSON.stringify(e.details) }) : "—") },
  ], entries, "Audit log entries");
}
