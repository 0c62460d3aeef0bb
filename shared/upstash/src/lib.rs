//! Redis for Feen wherever only HTTP is available (Workers, Spin, or a native host pointed at
//! Upstash): the [`Kv`](feen_core::ports::Kv) port over the Upstash Redis REST protocol, written
//! over the core's outbound-HTTP port, and the Lua scripts every Redis backend runs.

pub mod client;
pub mod scripts;

pub use client::UpstashKv;
