//! The native host: the ports implemented with sqlx (PostgreSQL, SQLite), Redis or an
//! in-process store, reqwest and the system clock and CSPRNG, and `feen serve`, which runs every
//! function in one hyper server.

pub mod config;
pub mod db;
pub mod deferred;
pub mod kv_memory;
pub mod kv_redis;
pub mod metrics;
pub mod outbound;
pub mod server;
pub mod system;
pub mod usage_writer;
