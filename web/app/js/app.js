// The dashboard: who is signed in, which page is shown (the part of the address after `#`), and
// the frame around the pages. Every page is a module exporting `render(main, session)`.

import * as api from "./api.js";
import { h, replace } from "./dom.js";
import { loading, failed, toast } from "./ui.js";

/**
 * What every page may use: the user, their teams (names and roles), and a way to sign out.
 * @typedef {{user: api.User, teams: api.Team[], ownerName: (teamId: string | null) => string,
 *   canManage: (teamId: string | null, role?: api.Role) => boolean, refreshTeams: () => Promise<void>}} Session
 */

/** @type {{[route: string]: {title: string, load: () => Promise<{render: (main: HTMLElement, s: Session) => Promise<void> | void}>}}} */
const pages = {
  keys: { title: "Keys", load: () => import("./pages/keys.js") },
  shares: { title: "Shares", load: () => import("./pages/shares.js") },
  usage: { title: "Usage", load: () => import("./pages/usage.js") },
  audit: { title: "Audit log", load: () => import("./pages/audit.js") },
  teams: { title: "Teams", load: () => import("./pages/teams.js") },
  settings: { title: "Settings", load: () => import("./pages/settings.js") },
};

const ROLE_RANK = { viewer: 0, member: 1, admin: 2, owner: 3 };

const main = /** @type {HTMLElement} */ (document.getElementById("main"));
const top = /** @type {HTMLElement} */ (document.getElementById("top"));

/** @type {Session | null} */
let session = null;

/** The route in the address: `#/keys` → `keys`. */
const route = () => (location.hash.startsWith("#/") ? location.hash.slice(2).split("?")[0] : "");

/** @param {api.User} user @returns {Promise<Session>} */
async function startSession(user) {
  /** @type {Session} */
  const s = {
    user,
    teams: [],
    ownerName: (teamId) => (teamId ? s.teams.find((t) => t.id === teamId)?.name ?? "a team" : "You"),
    canManage: (teamId, role = "admin") => {
      if (!teamId) return true;
      const team = s.teams.find((t) => t.id === teamId);
      return !!team && ROLE_RANK[team.role] >= ROLE_RANK[role];
    },
    refreshTeams: async () => {
      s.teams = await api.teams.list();
    },
  };
  await s.refreshTeams();
  return s;
}

function nav() {
  const current = route();
  replace(top,
    h("a", { class: "brand", href: "#/keys", "aria-label": "Feen home" }, h("img", { src: "/favicon.svg", alt: "", width: 24, height: 24 }), "Feen"),
    h("nav", { "aria-label": "Main" },
      h("ul", {}, Object.entries(pages).map(([name, p]) =>
        h("li", {}, h("a", { href: `#/${name}`, text: p.title, "aria-current": name === current ? "page" : null }))))),
    h("div", { class: "who" },
      h("span", { class: "who-name", text: session?.user.name ?? "" }),
      h("button", { type: "button", class: "button", text: "Sign out", onclick: signOut })));
  top.hidden = false;
}

async function signOut() {
  try {
    await api.auth.logout();
  } catch {
    // Already signed out: the sign-in page is right either way.
  }
  session = null;
  location.hash = "#/signin";
}

/** Shows the page the address names. */
async function render() {
  const name = route();
  if (!session) {
    top.hidden = true;
    const auth = await import("./pages/signin.js");
    auth.render(main, name === "signup" ? "signup" : "signin", async (user) => {
      session = await startSession(user);
      location.hash = "#/keys";
      if (route() === "keys") render();
    });
    document.title = name === "signup" ? "Create an account · Feen" : "Sign in · Feen";
    return;
  }
  const page = pages[name];
  if (!page) {
    location.replace("#/keys");
    return;
  }
  document.title = `${page.title} · Feen`;
  nav();
  replace(main, loading());
  try {
    const module = await page.load();
    // The heading takes focus as soon as it is there (screen readers announce the new page),
    // unless the reader has moved on by the time the page's data arrives.
    const heading = () => /** @type {HTMLElement | null} */ (main.querySelector("h1"))?.focus({ preventScroll: true });
    const rendering = module.render(main, session);
    heading();
    await rendering;
    if (document.activeElement === document.body || document.activeElement === main) heading();
  } catch (err) {
    replace(main, failed(err, render));
  }
}

api.whenSessionEnds(() => {
  if (!session) return;
  session = null;
  toast("Your session has ended. Sign in again.", "error");
  location.hash = "#/signin";
  render();
});

window.addEventListener("hashchange", () => {
  if (location.hash.startsWith("#/")) render();
});

async function boot() {
  replace(main, loading());
  try {
    const user = await api.auth.me();
    if (user) session = await startSession(user);
  } catch (err) {
    replace(main, failed(err, boot));
    return;
  }
  if (!session && !["signin", "signup"].includes(route())) location.replace("#/signin");
  if (session && ["signin", "signup", ""].includes(route())) location.replace("#/keys");
  render();
}

boot();
