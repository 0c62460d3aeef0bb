//! Feen's repositories: every SQL statement Feen runs, written once over the core's
//! [`Db`](feen_core::ports::Db) port, in the subset of SQL that PostgreSQL and SQLite share
//! (`$n` placeholders, BIGINT/INTEGER and TEXT columns, `ON CONFLICT DO NOTHING`).
//!
//! Architecture invariant: every query that reads or changes an owned resource takes the owner
//! (a user or a team, [`Owner`]) and filters by it, so a handler cannot forget the ownership
//! check. Handlers find the owner of an id first (`owner_of`), authorise the caller against it
//! with [`feen_core::authz::decide`], and then read or write through the owner.

pub mod analytics;
pub mod audit;
pub mod keyring;
pub mod keys;
pub mod outbox;
pub mod sessions;
pub mod shares;
pub mod teams;
pub mod tokens;
pub mod usage;
pub mod users;

use feen_core::authz::Owner;
use feen_core::ids::{TeamId, UserId};
use feen_core::ports::{DbError, Row};

/// The SQL expression for an owned row's owner: its team if it has one, else its user. Ids are
/// prefixed by kind, so a team id never equals a user id.
const OWNER: &str = "COALESCE(team_id, user_id)";

/// The owner in a row whose first two columns are `user_id, team_id`.
fn owner_at(row: &Row) -> Result<Owner, DbError> {
    Ok(Owner::from_columns(
        UserId::from_db(row.text(0)?),
        row.opt_text(1)?.map(TeamId::from_db),
    ))
}

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
