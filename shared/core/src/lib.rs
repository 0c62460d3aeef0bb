//! Feen's sans-IO core: domain types, policies, crypto, the provider catalogue, usage parsing
//! and the ports through which every host gives the core its I/O.
//!
//! Architecture invariant: nothing in this crate performs I/O, reads a clock or draws random
//! bytes. Time and randomness come in as arguments (or through the [`ports`]); decisions and
//! values come out.

pub mod analytics;
pub mod audit;
pub mod authz;
pub mod body;
pub mod crypto;
pub mod encoding;
pub mod error;
pub mod ids;
pub mod inject;
pub mod limits;
pub mod netguard;
pub mod path;
pub mod ports;
pub mod pricing;
pub mod providers;
pub mod scan;
pub mod secret;
pub mod timefmt;
pub mod usage;
pub mod validate;

pub use body::Body;
pub use error::{Error, Result};
