//! Local stand-ins for the serverless protocols Feen's edge hosts speak, each a faithful
//! front for the real service on this machine, proved with the official client libraries.
//! [`upstash`]: the Upstash Redis REST protocol in front of Redis; [`neon`]: Neon's SQL over HTTP
//! in front of PostgreSQL.

pub mod neon;
pub mod upstash;
