//! What every Feen function shares: the [`Ctx`] of ports a host hands to a handler, caller
//! authentication, and JSON in and out with Feen's error shape.

pub mod access;
pub mod audit;
pub mod auth;
pub mod cache;
pub mod ctx;
pub mod inflight;
pub mod mail;
pub mod request;
pub mod response;
pub mod settings;
pub mod usage_list;

pub use ctx::{Config, Ctx};
pub use request::{ClientAddr, Req};
pub use response::{Resp, error_response, json, respond};
