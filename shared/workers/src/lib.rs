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

/// The `#[event(fetch)]` entry point of a function Worker, calling the function's
/// `handle(req, &ctx)`: `feen_workers::fetch_entry!(handle);` in a function crate, behind
/// `#[cfg(all(target_arch = "wasm32", target_os = "unknown"))]`.
#[macro_export]
macro_rules! fetch_entry {
    ($handle:path) => {
        /// The Cloudflare Workers entry point: this function as a Worker of its own.
        #[worker::event(fetch)]
        async fn fetch(
            req: worker::HttpRequest,
            env: worker::Env,
            ctx: worker::Context,
        ) -> worker::Result<http::Response<worker::Body>> {
            $crate::serve(
                req,
                env,
                ctx,
                |req, ctx| async move { $handle(req, &ctx).await },
            )
            .await
        }
    };
}

/// The `#[event(fetch)]` entry point of a function that needs no context (no database, no
/// counters): `feen_workers::plain_entry!(handle);` where `handle(&request) -> response`.
#[macro_export]
macro_rules! plain_entry {
    ($handle:path) => {
        /// The Cloudflare Workers entry point: this function as a Worker of its own.
        #[worker::event(fetch)]
        async fn fetch(
            req: worker::HttpRequest,
            _env: worker::Env,
            _ctx: worker::Context,
        ) -> worker::Result<http::Response<worker::Body>> {
            $crate::serve_plain(req, |req| $handle(req)).await
        }
    };
}
