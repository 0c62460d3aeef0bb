// Runs Feen's Workers under Miniflare (workerd), as wrangler.toml deploys them: a router Worker on
// one hostname with a service binding to each function Worker. Configuration comes from the
// environment (the same names as `wrangler secret` / vars); prints `listening on URL` when ready.
//
// Needs the Workers built first (functions/*/build, by scripts/build-workers.sh).
import { Miniflare } from "miniflare";
import { fileURLToPath } from "node:url";
import path from "node:path";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const env = (name, fallback) => process.env[name] ?? fallback;
const bindings = {
  UPSTASH_REDIS_REST_URL: env("UPSTASH_REDIS_REST_URL"),
  UPSTASH_REDIS_REST_TOKEN: env("UPSTASH_REDIS_REST_TOKEN"),
  FEEN_REDIS_PREFIX: env("FEEN_REDIS_PREFIX", "feen:"),
  FEEN_ALLOW_PRIVATE_UPSTREAMS: env("FEEN_ALLOW_PRIVATE_UPSTREAMS", "0"),
  FEEN_COOKIE_SECURE: env("FEEN_COOKIE_SECURE", "1"),
};
// Every other FEEN_* setting of the harness's environment, as a deployment's secrets and vars.
for (const [k, v] of Object.entries(process.env)) if (k.startsWith("FEEN_") && !(k in bindings)) bindings[k] = v;
for (const [k, v] of Object.entries(bindings)) if (v === undefined) delete bindings[k];

const functions = ["auth", "keys", "shares", "proxy", "jobs", "audit", "teams", "analytics", "web"];
// The usage queue, as `functions/{proxy,jobs}/wrangler.toml` declare it (a short batch timeout
// so that tests see usage within a second).
const extra = {
  proxy: { queueProducers: { USAGE: "feen-usage" } },
  jobs: { queueConsumers: { "feen-usage": { maxBatchSize: 100, maxBatchTimeout: 1 } } },
};
const worker = (name) => {
  const build = path.join(root, "functions", name, "build");
  return {
    name,
    modules: true,
    scriptPath: path.join(build, "index.js"),
    modulesRoot: build,
    modulesRules: [{ type: "CompiledWasm", include: ["**/*.wasm"] }],
    compatibilityDate: "2025-09-01",
    bindings,
    hyperdrives: { DB: env("DATABASE_URL") },
    ...extra[name],
  };
};

// The router, as `wrangler.toml` deploys it on the hostname.
const router = {
  name: "router",
  modules: true,
  scriptPath: path.join(root, "functions/router/index.mjs"),
  modulesRoot: path.join(root, "functions/router"),
  bindings: env("FEEN_PROXY_HOST") ? { FEEN_PROXY_HOST: env("FEEN_PROXY_HOST") } : {},
  serviceBindings: { AUTH: "auth", KEYS: "keys", SHARES: "shares", PROXY: "proxy", JOBS: "jobs", AUDIT: "audit", TEAMS: "teams", ANALYTICS: "analytics", WEB: "web" },
  compatibilityDate: "2025-09-01",
};

const mf = new Miniflare({
  workers: [router, ...functions.map(worker)],
  host: "127.0.0.1",
  port: Number(env("PORT", "0")),
  cf: false,
  // Lets a test run the cron trigger: POST /cdn-cgi/handler/scheduled with `MF-Route-Override: jobs`.
  unsafeTriggerHandlers: true,
});
const url = await mf.ready;
console.log(`listening on ${url.origin}`);
process.on("SIGTERM", async () => {
  await mf.dispose();
  process.exit(0);
});
