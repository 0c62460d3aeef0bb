// Feen's API as the dashboard uses it: a typed client over `fetch`. The session lives in the
// HttpOnly cookies the auth function sets (this script never sees a token of the session); a
// request answered 401 refreshes the session once and is retried. Refreshes take turns, in this
// tab and across tabs (Web Locks): a refresh token presented twice would end the session.

/**
 * @typedef {{id: string, email: string, name: string, createdAt: string}} User
 * @typedef {{id: string, teamId: string | null, createdBy: string, name: string, provider: string,
 *   baseUrl: string | null, authHeader: string | null, authTemplate: string | null, hint: string,
 *   createdAt: string, updatedAt: string, lastUsedAt: string | null}} Key
 * @typedef {{limit: string, used: number, max: number, resetsAt: string | null}} LiveLimit
 * @typedef {{id: string, teamId: string | null, createdBy: string, name: string, apiKeyId: string,
 *   tokenHint: string, rateLimit: number | null, dailyLimit: number | null,
 *   tokensPerMinute: number | null, tokensPerDay: number | null, budgetUsd: number | null,
 *   budgetPeriod: string | null, maxUses: number | null, reserveTokens: number | null,
 *   expiresAt: string | null, allowedModels: string[], allowedEndpoints: string[],
 *   allowedIps: string[], status: "active" | "revoked" | "expired", createdAt: string,
 *   updatedAt: string, revokedAt: string | null, live?: LiveLimit[], token?: string}} Share
 * @typedef {{requests: number, errors: number, rateLimited: number, refused: number,
 *   inputTokens: number, outputTokens: number, costUsd: number, costMicros: number,
 *   unpricedRequests: number, latencyMs: {p50: number | null, p95: number | null, p99: number | null}}} Figures
 * @typedef {Figures & {group: string}} UsageRow
 * @typedef {{from: string, to: string, groupBy: string, rolledUpTo: string | null,
 *   rows: UsageRow[], totals: Figures}} Usage
 * @typedef {{requests: number, costMicros: number, costUsd: number, unpricedRequests: number}} BillLine
 * @typedef {{ownerId: string, month: string, final: boolean, total: BillLine,
 *   byKey: (BillLine & {keyId: string})[], byShare: (BillLine & {shareId: string, keyId: string})[]}} Bill
 * @typedef {{id: string, seq: number, actorId: string | null, action: string,
 *   resourceType: string | null, resourceId: string | null, at: string, clientIp: string | null,
 *   userAgent: string | null, details: {[k: string]: unknown}, hash: string}} AuditEntry
 * @typedef {{id: string, name: string, ownerId: string, role: Role, createdAt: string, updatedAt: string}} Team
 * @typedef {"viewer" | "member" | "admin" | "owner"} Role
 * @typedef {{userId: string, email: string, name: string, role: Role, joinedAt: string}} Member
 * @typedef {{id: string, teamId: string, email: string, role: Role, invitedBy: string,
 *   createdAt: string, expiresAt: string, token?: string}} Invite
 * @typedef {{id: string, name: string, createdAt: string, expiresAt: string | null, token?: string}} Pat
 * @typedef {{[field: string]: unknown}} Body
 */

/** An error answer of the API: its status, stable code, message, and the field at fault. */
export class ApiError extends Error {
  /**
   * @param {number} status
   * @param {string} code
   * @param {string} message
   * @param {string | null} [field]
   */
  constructor(status, code, message, field = null) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field;
  }
}

/** Called when the session has ended and cannot be refreshed (set by the app). */
let onSessionEnded = () => {};

/** @param {() => void} handler */
export function whenSessionEnds(handler) {
  onSessionEnded = handler;
}

/** @type {Promise<boolean> | null} */
let refreshing = null;

/** Refreshes the session once, however many requests ask at the same time. */
function refresh() {
  refreshing ??= (async () => {
    const run = async () => (await fetch("/api/auth/refresh", { method: "POST", credentials: "same-origin" })).ok;
    try {
      return navigator.locks ? await navigator.locks.request("feen-refresh", run) : await run();
    } catch {
      return false;
    } finally {
      refreshing = null;
    }
  })();
  return refreshing;
}

/**
 * The API error in a response.
 * @param {Response} resp
 */
async function errorOf(resp) {
  /** @type {any} */
  let body = null;
  try {
    body = await resp.json();
  } catch {
    // Not JSON (a proxy in front of Feen, say): the status must do.
  }
  const e = body?.error ?? {};
  return new ApiError(resp.status, e.code ?? "http_error", e.message ?? `request failed (${resp.status})`, e.field ?? null);
}

/**
 * Sends a request; answers the raw response once it is not a 401 a refresh could cure.
 * @param {string} method
 * @param {string} path
 * @param {Body | undefined} body
 */
async function send(method, path, body) {
  /** @type {RequestInit} */
  const init = { method, credentials: "same-origin", headers: {} };
  if (body !== undefined) {
    init.headers = { "content-type": "application/json" };
    init.body = JSON.stringify(body);
  }
  let resp;
  try {
    resp = await fetch(path, init);
  } catch {
    throw new ApiError(0, "network_error", "Feen could not be reached. Check your connection and try again.");
  }
  const sessionCall = !path.startsWith("/api/auth/login") && !path.startsWith("/api/auth/register");
  if (resp.status === 401 && sessionCall) {
    if (await refresh()) {
      resp = await fetch(path, init);
    }
    if (resp.status === 401) {
      onSessionEnded();
    }
  }
  if (!resp.ok) throw await errorOf(resp);
  return resp;
}

/**
 * A JSON call.
 * @param {string} method
 * @param {string} path
 * @param {Body} [body]
 * @returns {Promise<any>}
 */
export async function call(method, path, body) {
  const resp = await send(method, path, body);
  return resp.status === 204 ? null : resp.json();
}

/**
 * A query string from the parameters that are set.
 * @param {{[k: string]: string | number | null | undefined}} params
 */
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== null && v !== undefined && v !== "") q.set(k, String(v));
  const text = q.toString();
  return text ? `?${text}` : "";
}

/** @param {string} id */
const seg = (id) => encodeURIComponent(id);

export const auth = {
  /** @returns {Promise<User | null>} the signed-in user, or null */
  async me() {
    try {
      return (await call("GET", "/api/auth/me")).user;
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) return null;
      throw e;
    }
  },
  /** @param {string} email @param {string} password @returns {Promise<User>} */
  async login(email, password) {
    return (await call("POST", "/api/auth/login", { email, password })).user;
  },
  /** @param {string} name @param {string} email @param {string} password */
  async register(name, email, password) {
    await call("POST", "/api/auth/register", { name, email, password });
    return auth.login(email, password);
  },
  logout: () => call("POST", "/api/auth/logout"),
  /** @param {boolean} [revokeTokens] end personal access tokens too */
  logoutAll: (revokeTokens = false) => call("POST", "/api/auth/logout-all", { revokeTokens }),
  /** @param {string} currentPassword @param {string} newPassword @param {boolean} [revokeTokens] */
  changePassword: (currentPassword, newPassword, revokeTokens = false) =>
    call("POST", "/api/auth/password", { currentPassword, newPassword, revokeTokens }),
  /** @returns {Promise<Pat[]>} */
  tokens: async () => (await call("GET", "/api/auth/tokens")).tokens,
  /** @param {Body} body @returns {Promise<Pat>} */
  createToken: (body) => call("POST", "/api/auth/tokens", body),
  /** @param {string} id */
  revokeToken: (id) => call("DELETE", `/api/auth/tokens/${seg(id)}`),
};

export const keys = {
  /** @returns {Promise<Key[]>} */
  list: async () => (await call("GET", "/api/keys")).keys,
  /** @param {Body} body @returns {Promise<Key>} */
  add: (body) => call("POST", "/api/keys", body),
  /** @param {string} id @param {string} name */
  rename: (id, name) => call("PATCH", `/api/keys/${seg(id)}`, { name }),
  /** @param {string} id @param {string} apiKey */
  rotate: (id, apiKey) => call("POST", `/api/keys/${seg(id)}/rotate`, { apiKey }),
  /** @param {string} id */
  remove: (id) => call("DELETE", `/api/keys/${seg(id)}`),
};

export const shares = {
  /** @returns {Promise<Share[]>} */
  list: async () => (await call("GET", "/api/shared")).shares,
  /** @param {Body} body @returns {Promise<Share>} */
  mint: (body) => call("POST", "/api/shared", body),
  /** @param {string} id @param {Body} body @returns {Promise<Share>} */
  update: (id, body) => call("PATCH", `/api/shared/${seg(id)}`, body),
  /** @param {string} id */
  revoke: (id) => call("DELETE", `/api/shared/${seg(id)}`),
  /** @param {string} id @returns {Promise<Share>} */
  regenerate: (id) => call("POST", `/api/shared/${seg(id)}/regenerate`),
};

export const analytics = {
  /** @param {{[k: string]: string | number | null | undefined}} params @returns {Promise<Usage>} */
  usage: (params) => call("GET", `/api/analytics/usage${query(params)}`),
  /**
   * The same query as CSV text.
   * @param {{[k: string]: string | number | null | undefined}} params
   */
  async csv(params) {
    const resp = await send("GET", `/api/analytics/usage${query({ ...params, format: "csv" })}`, undefined);
    return resp.text();
  },
};

export const billing = {
  /** @param {{month: string, teamId?: string}} params @returns {Promise<Bill>} */
  month: (params) => call("GET", `/api/analytics/billing${query(params)}`),
};

export const audit = {
  /** @param {{[k: string]: string | number | null | undefined}} params @returns {Promise<{entries: AuditEntry[], nextCursor: string | null}>} */
  list: (params) => call("GET", `/api/audit${query(params)}`),
  /** @param {{[k: string]: string | number | null | undefined}} params @returns {Promise<{valid: boolean, checked: number, brokenAt?: {seq: number, reason: string}}>} */
  verify: (params) => call("GET", `/api/audit/verify${query(params)}`),
};

export const teams = {
  /** @returns {Promise<Team[]>} */
  list: async () => (await call("GET", "/api/teams")).teams,
  /** @param {string} name @returns {Promise<Team>} */
  create: (name) => call("POST", "/api/teams", { name }),
  /** @param {string} id @returns {Promise<Team & {members: Member[]}>} */
  get: (id) => call("GET", `/api/teams/${seg(id)}`),
  /** @param {string} id @param {string} name */
  rename: (id, name) => call("PATCH", `/api/teams/${seg(id)}`, { name }),
  /** @param {string} id */
  remove: (id) => call("DELETE", `/api/teams/${seg(id)}`),
  /** @param {string} id @returns {Promise<Invite[]>} */
  invites: async (id) => (await call("GET", `/api/teams/${seg(id)}/invites`)).invites,
  /** @param {string} id @param {string} email @param {string} role @returns {Promise<Invite>} */
  invite: (id, email, role) => call("POST", `/api/teams/${seg(id)}/invites`, { email, role }),
  /** @param {string} id @param {string} invite */
  cancelInvite: (id, invite) => call("DELETE", `/api/teams/${seg(id)}/invites/${seg(invite)}`),
  /** @param {string} token */
  accept: (token) => call("POST", "/api/teams/invites/accept", { token }),
  /** @param {string} id @param {string} user @param {string} role */
  setRole: (id, user, role) => call("PATCH", `/api/teams/${seg(id)}/members/${seg(user)}`, { role }),
  /** @param {string} id @param {string} user */
  removeMember: (id, user) => call("DELETE", `/api/teams/${seg(id)}/members/${seg(user)}`),
  /** @param {string} id */
  leave: (id) => call("POST", `/api/teams/${seg(id)}/leave`),
  /** @param {string} id @param {string} user */
  transfer: (id, user) => call("POST", `/api/teams/${seg(id)}/transfer`, { userId: user }),
};
