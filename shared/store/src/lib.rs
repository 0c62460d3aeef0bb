//! Feen's repositories: every SQL statement Feen runs, written once over the core's
//! [`Db`](feen_core::ports::Db) port, in the subset of SQL that PostgreSQL and SQLite share
//! (`$n` placeholders, BIGINT/INTEGER and TEXT columns, `ON CONFLICT DO NOTHING`).
//!
//! Architecture invariant: every query that reads or changes a user's resource takes the owner's
//! id and filters by it, so a handler cannot forget the ownership check.

pub mod audit;
pub mod keys;
pub mod sessions;
pub mod shares;
pub mod tokens;
pub mod usage;
pub mod users;

use feen_core::ports::{DbError, Row};

/// Maps rows with a fallible row decoder.
fn decode<T>(rows: Vec<Row>, f: impl Fn(&Row) -> Result<T, DbError>) -> Result<Vec<T>, DbError> {
    rows.iter().map(f).collect()
}

/// A stored non-negative count (a limit) as `u64`.
fn count(value: Option<i64>) -> Option<u64> {
    value.and_then(|v| u64::try_from(v).ok())
}

/// A `u64` count as a stored BIGINT (saturating: no limit comes near 2^63).
fn stored(value: Option<u64>) -> Option<i64> {
    value.map(|v| i64::try_from(v).unwrap_or(i64::MAX))
}
