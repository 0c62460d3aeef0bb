// Teams: the caller's teams and roles, creating one, accepting an invitation, and for one team
// its members (roles, removal, transfer), pending invitations, renaming, leaving and deleting.
// What a button may do is decided by the server; buttons a role cannot use are not shown.

import * as api from "../api.js";
import { h, replace } from "../dom.js";
import { when } from "../format.js";
import { badge, button, confirm, copyButton, dialog, empty, form, formDialog, pageHeader, show, table, toast } from "../ui.js";

const RANK = { viewer: 0, member: 1, admin: 2, owner: 3 };
const ROLES = /** @type {[string, string][]} */ ([["viewer", "Viewer: reads"], ["member", "Member: also mints shares"], ["admin", "Admin: also manages keys and members"]]);

/**
 * @param {HTMLElement} main
 * @param {import("../app.js").Session} s
 */
export async function render(main, s) {
  const list = h("div", {});
  const detail = h("div", {});
  const reload = async () => {
    await s.refreshTeams();
    replace(list, view(s, reload, (id) => open(id, s, detail, reload)));
  };
  main.replaceChildren(
    pageHeader("Teams", "Own keys and shares together. Roles: viewer, member, admin, owner.",
      h("button", { type: "button", class: "button", text: "Accept an invitation", onclick: () => accept(reload) }),
      h("button", { type: "button", class: "button button-primary", text: "New team", onclick: () => create(reload) })),
    list, detail);
  await reload();
}

/**
 * @param {import("../app.js").Session} s
 * @param {() => void} reload
 * @param {(id: string) => void} openTeam
 */
function view(s, reload, openTeam) {
  if (s.teams.length === 0) {
    return empty("No teams yet", "Make a team to share keys with others, or accept an invitation you were sent.",
      button("Make a team", () => create(reload), "button-primary"));
  }
  return table([
    { label: "Team", cell: (t) => h("strong", { text: t.name }) },
    { label: "Your role", cell: (t) => badge(t.role, "role") },
    { label: "Since", cell: (t) => when(t.createdAt) },
    { label: "Actions", class: "cell-actions", cell: (t) => button("Open", () => openTeam(t.id)) },
  ], s.teams, "Your teams");
}

/** @param {() => void} reload */
async function create(reload) {
  const team = await formDialog("New team", [{ name: "name", label: "Team name", required: true }], "Create team", (v) => api.teams.create(String(v.name)));
  if (team) {
    toast(`Team “${team.name}” created`);
    reload();
  }
}

/** @param {() => void} reload */
async function accept(reload) {
  const done = await formDialog("Accept an invitation", [
    { name: "token", label: "Invitation token", required: true, placeholder: "feeninv_…", hint: "From the email or the person who invited you. Only the invited address can use it." },
  ], "Join team", (v) => api.teams.accept(String(v.token)));
  if (done) {
    toast("You joined the team");
    reload();
  }
}

/**
 * @param {string} id
 * @param {import("../app.js").Session} s
 * @param {HTMLElement} detail
 * @param {() => Promise<void>} reloadList
 */
async function open(id, s, detail, reloadList) {
  const reload = async () => {
    await show(detail, async () => {
      const team = await api.teams.get(id);
      const invites = RANK[team.role] >= RANK.admin ? await api.teams.invites(id) : [];
      return { team, invites };
    }, ({ team, invites }) => teamView(team, invites, s, reload, async () => {
      replace(detail);
      await reloadList();
    }));
  };
  await reload();
  detail.querySelector("h2")?.focus();
}

/**
 * @param {api.Team & {members: api.Member[]}} team
 * @param {api.Invite[]} invites
 * @param {import("../app.js").Session} s
 * @param {() => Promise<void>} reload
 * @param {() => Promise<void>} gone
 */
function teamView(team, invites, s, reload, gone) {
  const admin = RANK[team.role] >= RANK.admin;
  const owner = team.role === "owner";
  const act = async (/** @type {() => Promise<unknown>} */ f, /** @type {string} */ done) => {
    try {
      await f();
      toast(done);
    } catch (err) {
      toast(err instanceof api.ApiError ? err.message : "That did not work", "error");
    }
    await reload();
  };
  const mayChange = (/** @type {api.Member} */ m) => m.userId !== s.user.id && m.role !== "owner" && (owner || (admin && m.role !== "admin"));
  return h("section", { class: "panel", "aria-labelledby": "team-title" },
    h("div", { class: "page-header" },
      h("h2", { id: "team-title", tabindex: "-1", text: team.name }),
      h("div", { class: "page-actions" },
        admin ? button("Rename", async () => {
          if (await formDialog("Rename team", [{ name: "name", label: "Team name", required: true, value: team.name }], "Rename", (v) => api.teams.rename(team.id, String(v.name)))) await reload();
        }) : null,
        owner ? null : button("Leave", async () => {
          if (await confirm(`Leave “${team.name}”?`, "You lose access to its keys and shares until someone invites you again.", "Leave team")) {
            await act(() => api.teams.leave(team.id), "You left the team");
            await gone();
          }
        }, "button-danger"),
        owner ? button("Delete team", async () => {
          if (await confirm(`Delete “${team.name}”?`, "The team, its keys and its shares are deleted; every share token stops working at once.", "Delete team")) {
            await act(() => api.teams.remove(team.id), "Team deleted");
            await gone();
          }
        }, "button-danger") : null)),
    h("h3", { text: "Members" }),
    table([
      { label: "Name", cell: (m) => [m.name, m.userId === s.user.id ? " (you)" : ""] },
      { label: "Email", cell: (m) => m.email },
      {
        label: "Role",
        cell: (m) => mayChange(m)
          ? h("select", {
            "aria-label": `Role of ${m.name}`,
            onchange: (/** @type {Event} */ e) => act(() => api.teams.setRole(team.id, m.userId, /** @type {HTMLSelectElement} */ (e.target).value), "Role changed"),
          }, ROLES.filter(([r]) => owner || r !== "admin").map(([r, l]) => h("option", { value: r, text: l.split(":")[0], selected: r === m.role })))
          : badge(m.role, "role"),
      },
      { label: "Joined", cell: (m) => when(m.joinedAt) },
      {
        label: "Actions",
        class: "cell-actions",
        cell: (m) => [
          mayChange(m) ? button("Remove", async () => {
            if (await confirm(`Remove ${m.name}?`, "They lose access at once.", "Remove")) await act(() => api.teams.removeMember(team.id, m.userId), "Member removed");
          }, "button-danger") : null,
          owner && m.userId !== s.user.id ? button("Make owner", async () => {
            if (await confirm(`Hand “${team.name}” to ${m.name}?`, "They become the owner; you stay an admin.", "Transfer")) await act(() => api.teams.transfer(team.id, m.userId), "Ownership transferred");
          }) : null,
        ],
      },
    ], team.members, "Members"),
    admin ? [
      h("h3", { text: "Invitations" }),
      invites.length === 0 ? h("p", { class: "muted", text: "No pending invitations." }) : table([
        { label: "Email", cell: (i) => i.email },
        { label: "Role", cell: (i) => badge(i.role, "role") },
        { label: "Expires", cell: (i) => when(i.expiresAt) },
        { label: "Actions", class: "cell-actions", cell: (i) => button("Withdraw", () => act(() => api.teams.cancelInvite(team.id, i.id), "Invitation withdrawn"), "button-danger") },
      ], invites, "Pending invitations"),
      h("h4", { text: "Invite someone" }),
      form({
        fields: [
          { name: "email", label: "Email", type: "email", required: true },
          { name: "role", label: "Role", type: "select", options: ROLES.filter(([r]) => owner || r !== "admin"), value: "member" },
        ],
        submitLabel: "Send invitation",
        submit: async (v) => {
          const invite = await api.teams.invite(team.id, String(v.email), String(v.role));
          await dialog("Invitation made", (close) => [
            h("p", { text: `${invite.email} can join with this token for 7 days (it is also emailed when Feen sends email). It is shown only now.` }),
            h("div", { class: "token-row" }, h("input", { class: "token", readOnly: true, value: invite.token ?? "", "aria-label": "Invitation token" }), copyButton(() => invite.token ?? "")),
            h("div", { class: "actions" }, h("button", { type: "button", class: "button button-primary", text: "Done", onclick: () => close() })),
          ]);
          await reload();
        },
      }),
    ] : null);
}
