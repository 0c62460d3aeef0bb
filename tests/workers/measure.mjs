// Figures for Feen's Workers under workerd (Miniflare): per Worker, the time until a fresh
// instance is ready and answers its first request (cold start) against a warm request; and the
// wall time of a login (argon2id) in workerd. Needs the Workers built (scripts/build-workers.sh)
// and the same environment as serve.mjs (DATABASE_URL of a migrated database,
// UPSTASH_REDIS_REST_URL/TOKEN, FEEN_KEYRING, FEEN_SESSION_SECRET).
//
//   node tests/workers/measure.mjs [rounds]
import { Miniflare } from "miniflare";
import { fileURLToPath } from "node:url";
import path from "node:path";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const rounds = Number(process.argv[2] ?? 5);
const bindings = {};
for (const name of [
  "FEEN_KEYRING",
  "FEEN_SESSION_SECRET",
  "UPSTASH_REDIS_REST_URL",
  "UPSTASH_REDIS_REST_TOKEN",
]) {
  if (!process.env[name]) throw new Error(`${name} is not set`);
  bindings[name] = process.env[name];
}
bindings.FEEN_COOKIE_SECURE = "0";

const worker = (name) => {
  if (name === "baseline") {
    // What Miniflare and workerd cost by themselves: an empty JavaScript Worker.
    return {
      name,
      modules: true,
      script: "export default { fetch() { return new Response('ok'); } };",
      compatibilityDate: "2025-09-01",
    };
  }
  const build = path.join(root, "functions", name, "build");
  return {
    name,
    modules: true,
    scriptPath: path.join(build, "index.js"),
    modulesRoot: build,
    modulesRules: [{ type: "CompiledWasm", include: ["**/*.wasm"] }],
    compatibilityDate: "2025-09-01",
    bindings,
    hyperdrives: { DB: process.env.DATABASE_URL },
  };
};

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const ms = (x) => x.toFixed(1);

// A request each function answers itself, without the database: an unknown route (404) or a
// missing credential (401). The jobs Worker has no fetch handler: its cron trigger is timed.
const probes = {
  baseline: "/",
  auth: "/api/auth/me",
  keys: "/api/keys",
  shares: "/api/shared",
  proxy: "/api/proxy/v1/chat/completions",
};

async function time(fn) {
  const t = performance.now();
  const r = await fn();
  return [performance.now() - t, r];
}

console.log("| Worker | ready (compile + start) ms | first response ms | warm response ms |");
console.log("|---|---|---|---|");
for (const name of ["baseline", "auth", "keys", "shares", "proxy", "jobs"]) {
  const ready = [], first = [], warm = [];
  for (let i = 0; i < rounds; i++) {
    const [tReady, mf] = await time(async () => {
      const mf = new Miniflare({
        workers: [worker(name)],
        host: "127.0.0.1",
        port: 0,
        cf: false,
        unsafeTriggerHandlers: true,
      });
      await mf.ready;
      return mf;
    });
    const url = await mf.ready;
    const call = async () => {
      const resp =
        name === "jobs"
          ? await fetch(new URL("/cdn-cgi/handler/scheduled", url), { method: "POST" })
          : await fetch(new URL(probes[name], url));
      await resp.text();
      return resp.status;
    };
    const [tFirst, status] = await time(call);
    if (![200, 401, 404].includes(status)) throw new Error(`${name}: status ${status}`);
    const warmRuns = [];
    for (let j = 0; j < 20; j++) warmRuns.push((await time(call))[0]);
    ready.push(tReady);
    first.push(tFirst);
    warm.push(median(warmRuns));
    await mf.dispose();
  }
  console.log(`| ${name} | ${ms(median(ready))} | ${ms(median(first))} | ${ms(median(warm))} |`);
}

// Logins: argon2id (m=19 MiB, t=2, p=1) in workerd's wasm.
{
  const mf = new Miniflare({
    workers: [worker("auth")],
    host: "127.0.0.1",
    port: 0,
    cf: false,
  });
  const url = await mf.ready;
  const email = `measure-${Date.now()}@example.com`;
  const password = "correct horse battery staple";
  const post = (p, body) =>
    fetch(new URL(p, url), {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });
  const reg = await post("/api/auth/register", { email, password, name: "measure" });
  if (reg.status !== 201) throw new Error(`register: ${reg.status} ${await reg.text()}`);
  const logins = [];
  for (let i = 0; i < 8; i++) {
    const [t, resp] = await time(() => post("/api/auth/login", { email, password }));
    await resp.text();
    if (resp.status !== 200) throw new Error(`login: ${resp.status}`);
    logins.push(t);
  }
  console.log(`\nlogin (argon2id) in workerd: median ${ms(median(logins))} ms, min ${ms(Math.min(...logins))} ms over ${logins.length}`);
  await mf.dispose();
}
