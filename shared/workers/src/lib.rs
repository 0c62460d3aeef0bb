//! The Cloudflare Workers host: the ports over workers-rs, and [`serve`], which turns a Worker's
//! `fetch` event into a call of a function's handler.
//!
//! - `Db`: PostgreSQL through a Hyperdrive binding (`DB`) with tokio-postgres, one connection per
//!   call, the connection future driven together with the query and dropped before the response
//!   (the pattern that keeps the local Hyperdrive proxy alive; see `platforms.md`).
//! - `Kv`: Redis over the Upstash REST protocol ([`feen_upstash::UpstashKv`]) through `fetch`.
//! - `HttpClient`: `fetch`, streaming both ways.
//! - `UsageSink`: the `USAGE` queue when bound, otherwise a direct idempotent insert; either way
//!   through `ctx.waitUntil`, after the response. `Defer`: `ctx.waitUntil`.
//! - Clock: `Date.now()` (the std clock panics on this target). Rng: `crypto.getRandomValues`.
//!
//! Everything here compiles only for `wasm32-unknown-unknown`.

#[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
mod host;

#[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
pub use host::*;
