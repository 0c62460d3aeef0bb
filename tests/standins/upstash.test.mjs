// Proves the Upstash REST stand-in with the official @upstash/redis client, as it is used by
// default (auto-pipelining, base64 responses, read-your-writes tokens, telemetry headers).
// UPSTASH_URL, UPSTASH_TOKEN and UPSTASH_READONLY_TOKEN name the stand-in under test.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Redis } from "@upstash/redis";

const url = process.env.UPSTASH_URL;
const token = process.env.UPSTASH_TOKEN;
const prefix = `t${process.pid}:${Date.now()}:`;
const redis = new Redis({ url, token });
const plain = new Redis({ url, token, enableAutoPipelining: false, responseEncoding: false });

test("commands round trip with the default client (auto-pipelined, base64)", async () => {
  assert.equal(await redis.set(`${prefix}a`, "héllo wörld"), "OK");
  assert.equal(await redis.get(`${prefix}a`), "héllo wörld");
  assert.equal(await redis.get(`${prefix}missing`), null);
  assert.equal(await redis.incr(`${prefix}n`), 1);
  assert.equal(await redis.incrby(`${prefix}n`, 41), 42);
  assert.equal(await redis.ping(), "PONG");
  assert.equal(await redis.type(`${prefix}a`), "string");
  assert.deepEqual(await redis.mget(`${prefix}a`, `${prefix}missing`), ["héllo wörld", null]);
  await redis.set(`${prefix}obj`, { nested: [1, 2] });
  assert.deepEqual(await redis.get(`${prefix}obj`), { nested: [1, 2] });
  assert.equal(await redis.set(`${prefix}nx`, "first", { nx: true, px: 60000 }), "OK");
  assert.equal(await redis.set(`${prefix}nx`, "second", { nx: true, px: 60000 }), null);
  assert.ok((await redis.pttl(`${prefix}nx`)) > 0);
  assert.equal(await redis.del(`${prefix}a`, `${prefix}nx`), 2);
});

test("the same without auto-pipelining or base64", async () => {
  assert.equal(await plain.set(`${prefix}p`, "v"), "OK");
  assert.equal(await plain.get(`${prefix}p`), "v");
  assert.deepEqual(await plain.lrange(`${prefix}nolist`, 0, -1), []);
});

test("explicit pipelines keep going after an error and report it per command", async () => {
  await redis.set(`${prefix}s`, "text");
  const p = redis.pipeline();
  p.set(`${prefix}x`, 1);
  p.incr(`${prefix}s`);
  p.get(`${prefix}x`);
  await assert.rejects(p.exec(), /not an integer/);
  assert.equal(await redis.get(`${prefix}x`), 1);
  const ok = redis.pipeline();
  ok.set(`${prefix}y`, "1");
  ok.incr(`${prefix}y`);
  assert.deepEqual(await ok.exec(), ["OK", 2]);
});

test("transactions (multi-exec) are atomic and answer per command", async () => {
  const tx = redis.multi();
  tx.set(`${prefix}t`, "1");
  tx.incr(`${prefix}t`);
  tx.get(`${prefix}t`);
  assert.deepEqual(await tx.exec(), ["OK", 2, 2]);
});

test("scripts: EVAL, EVALSHA, and createScript falling back from NOSCRIPT to EVAL", async () => {
  assert.equal(await redis.eval("return ARGV[1] .. KEYS[1]", [`${prefix}k`], ["v"]), `v${prefix}k`);
  const sha = await redis.scriptLoad("return tonumber(ARGV[1]) + 1");
  assert.equal(await redis.evalsha(sha, [], [41]), 42);
  const fresh = redis.createScript(`return '${prefix}' .. ARGV[1]`);
  assert.equal(await fresh.exec([], ["fresh"]), `${prefix}fresh`);
  await assert.rejects(redis.evalsha("0".repeat(40), [], []), /NOSCRIPT/);
});

test("errors: a bad token, a failing command, a read-only token", async () => {
  const wrong = new Redis({ url, token: "wrong-token" });
  await assert.rejects(wrong.get("x"), /Unauthorized/);
  await redis.set(`${prefix}str`, "text");
  await assert.rejects(plain.incr(`${prefix}str`), /not an integer/);
  const reader = new Redis({ url, token: process.env.UPSTASH_READONLY_TOKEN });
  assert.equal(await reader.get(`${prefix}str`), "text");
  await assert.rejects(reader.set(`${prefix}str`, "no"), /NOPERM/);
});
