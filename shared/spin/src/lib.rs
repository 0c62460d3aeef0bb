//! The Fermyon Spin host: the ports over spin-sdk and WASI, and [`serve`], which turns a Spin
//! component's HTTP request into a call of a function's handler. A component imports nothing but
//! `wasi:*` interfaces, so it runs under Spin and under any `wasi:http` host (`wasmtime serve`).
//!
//! - `Db`: PostgreSQL over SQL over HTTP ([`feen_neon::NeonDb`], Neon's protocol).
//! - `Kv`: Redis over the Upstash REST protocol ([`feen_upstash::UpstashKv`]).
//! - `HttpClient`: `wasi:http` outbound requests, streaming both ways.
//! - `UsageSink`: the usage list in Redis, drained into PostgreSQL a second after the first event
//!   of a burst (and by the jobs endpoint); `Defer`: tasks spawned past the response.
//! - Clock, randomness and configuration: WASI's clocks, random and environment.
//!
//! Everything here compiles only for `wasm32-wasip2`.

#[cfg(all(target_arch = "wasm32", target_os = "wasi"))]
mod host;

#[cfg(all(target_arch = "wasm32", target_os = "wasi"))]
pub use host::*;

/// The `#[http_service]` entry point of a function component, calling the function's
/// `handle(req, &ctx)`: `feen_spin::http_entry!(handle);` in a function crate, behind
/// `#[cfg(all(target_arch = "wasm32", target_os = "wasi"))]`.
#[macro_export]
macro_rules! http_entry {
    ($handle:path) => {
        /// The Spin entry point: this function as a component of its own.
        #[spin_sdk::http_service]
        async fn serve_spin(
            req: spin_sdk::http::Request,
        ) -> spin_sdk::http::Response<$crate::OutBody> {
            $crate::serve(req, |req, ctx| async move { $handle(req, &ctx).await }).await
        }
    };
}

/// The `#[http_service]` entry point of a function that needs no context (no database, no
/// counters): `feen_spin::plain_entry!(handle);` where `handle(&request) -> response`.
#[macro_export]
macro_rules! plain_entry {
    ($handle:path) => {
        /// The Spin entry point: this function as a component of its own.
        #[spin_sdk::http_service]
        async fn serve_spin(
            req: spin_sdk::http::Request,
        ) -> spin_sdk::http::Response<$crate::OutBody> {
            $crate::serve_plain(req, |req| $handle(req)).await
        }
    };
}
