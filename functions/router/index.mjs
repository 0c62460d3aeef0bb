// The Worker on Feen's hostname: sends each path to the Worker of its function through a service
// binding (one hostname, each function deployed and scaled on its own; the hop costs about
// 0.2–0.3 ms). Every other path goes to the web Worker: the dashboard, and Feen's JSON 404.
//
// With FEEN_PROXY_HOST set (a var: the proxy's own hostname, optionally with a port), the proxy
// answers only on that hostname and nothing else answers there, so that what an upstream returns
// never shares an origin with the dashboard's session (the same rule as
// feen_service::request::answers_here on the other hosts).
const routes = [
  ["/api/auth", "AUTH"],
  ["/api/keys", "KEYS"],
  ["/api/shared", "SHARES"],
  ["/api/proxy", "PROXY"],
  ["/v1", "PROXY"],
  ["/api/jobs", "JOBS"],
  ["/api/audit", "AUDIT"],
  ["/api/teams", "TEAMS"],
  ["/api/analytics", "ANALYTICS"],
];

const under = (path, prefix) => path === prefix || path.startsWith(prefix + "/");

/** Whether `path` sent to `host` is answered there (see the header). */
function answersHere(path, host, proxyHost) {
  if (!proxyHost || path === "/healthz") return true;
  proxyHost = proxyHost.trim().toLowerCase();
  host = host.toLowerCase();
  const onProxyHost = proxyHost.includes(":") ? host === proxyHost : host.replace(/:\d+$/, "") === proxyHost;
  const isProxy = under(path, "/api/proxy") || under(path, "/v1");
  return onProxyHost === isProxy;
}

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const path = url.pathname;
    if (path === "/healthz") return Response.json({ status: "ok" });
    if (!answersHere(path, request.headers.get("host") ?? url.host, env.FEEN_PROXY_HOST)) {
      // Read what was sent first: workerd closes a connection whose request body was left
      // unread, which would break the client's next request on it.
      await request.arrayBuffer().catch(() => null);
      const error = { code: "not_found", message: "route not found", type: "not_found_error" };
      return Response.json({ type: "error", error }, { status: 404, headers: { "cache-control": "no-store" } });
    }
    for (const [prefix, binding] of routes) {
      if (under(path, prefix)) return env[binding].fetch(request);
    }
    return env.WEB.fetch(request);
  },
};
