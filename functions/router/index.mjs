// The Worker on Feen's hostname: sends each path to the Worker of its function through a service
// binding (one hostname, each function deployed and scaled on its own; the hop costs about
// 0.2–0.3 ms). Every other path goes to the web Worker: the dashboard, and Feen's JSON 404.
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

export default {
  async fetch(request, env) {
    const path = new URL(request.url).pathname;
    if (path === "/healthz") return Response.json({ status: "ok" });
    for (const [prefix, binding] of routes) {
      if (path === prefix || path.startsWith(prefix + "/")) return env[binding].fetch(request);
    }
    return env.WEB.fetch(request);
  },
};
