//! The audit log: appending to an owner's hash chain, listing it with filters, and reading a
//! range of it for verification.

use feen_core::audit::{self, Action, Fields, GENESIS};
use feen_core::ids::AuditId;
use feen_core::ports::{Db, DbError, Row};

use crate::decode;

/// A stored row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The row's id.
    pub id: AuditId,
    /// The chain's owner.
    pub owner: String,
    /// The row's place in the chain, from 1.
    pub seq: i64,
    /// Who acted.
    pub actor: Option<String>,
    /// What was done (`key.rotated`).
    pub action: String,
    /// The kind of resource.
    pub resource_type: Option<String>,
    /// Its id.
    pub resource_id: Option<String>,
    /// When (ms).
    pub at_ms: i64,
    /// The client's address.
    pub client_ip: Option<String>,
    /// The client's `User-Agent`.
    pub user_agent: Option<String>,
    /// Further facts, JSON.
    pub details: String,
    /// The previous row's hash.
    pub prev_hash: String,
    /// This row's hash.
    pub hash: String,
}

impl Entry {
    /// The row as the chain verifier reads it.
    pub fn stored(&self) -> audit::Stored<'_> {
        audit::Stored {
            fields: Fields {
                owner: &self.owner,
                seq: self.seq,
                id: self.id.as_str(),
                actor: self.actor.as_deref(),
                action: &self.action,
                resource_type: self.resource_type.as_deref(),
                resource_id: self.resource_id.as_deref(),
                at_ms: self.at_ms,
                client_ip: self.client_ip.as_deref(),
                user_agent: self.user_agent.as_deref(),
                details: &self.details,
            },
            prev_hash: &self.prev_hash,
            hash: &self.hash,
        }
    }
}

/// A row to append.
#[derive(Clone, Debug)]
pub struct NewEntry<'a> {
    /// Its id.
    pub id: &'a AuditId,
    /// The chain's owner.
    pub owner: &'a str,
    /// Who acted.
    pub actor: Option<&'a str>,
    /// What was done.
    pub action: Action,
    /// The kind of resource and its id.
    pub resource: Option<(&'a str, &'a str)>,
    /// When (ms).
    pub at_ms: i64,
    /// The client's address.
    pub client_ip: Option<&'a str>,
    /// The client's `User-Agent` (cut to 256 characters).
    pub user_agent: Option<&'a str>,
    /// Further facts (never a secret).
    pub details: &'a serde_json::Value,
}

const COLUMNS: &str = "id, owner_id, seq, actor_id, action, resource_type, resource_id, at, \
                       client_ip, user_agent, details, prev_hash, hash";

fn from_row(row: &Row) -> Result<Entry, DbError> {
    Ok(Entry {
        id: AuditId::from_db(row.text(0)?),
        owner: row.text(1)?,
        seq: row.int(2)?,
        actor: row.opt_text(3)?,
        action: row.text(4)?,
        resource_type: row.opt_text(5)?,
        resource_id: row.opt_text(6)?,
        at_ms: row.int(7)?,
        client_ip: row.opt_text(8)?,
        user_agent: row.opt_text(9)?,
        details: row.text(10)?,
        prev_hash: row.text(11)?,
        hash: row.text(12)?,
    })
}

/// How often an append retries when concurrent appends keep taking its place in the chain.
const APPEND_ATTEMPTS: usize = 8;

/// Appends a row to its owner's chain: reads the chain's head, links the row to it, and inserts
/// it at the next place. Two concurrent appends cannot both take a place (the owner and place
/// are unique together): the loser reads the new head and tries again. Returns the stored row.
pub async fn append(db: &dyn Db, new: &NewEntry<'_>) -> Result<Entry, DbError> {
    let details = new.details.to_string();
    let user_agent: Option<String> = new.user_agent.map(|ua| ua.chars().take(256).collect());
    for _ in 0..APPEND_ATTEMPTS {
        let head = db
            .query(
                "SELECT seq, hash FROM audit_log WHERE owner_id = $1 ORDER BY seq DESC LIMIT 1",
                &[new.owner.into()],
            )
            .await?;
        let (seq, prev_hash) = match head.first() {
            Some(row) => (row.int(0)? + 1, row.text(1)?),
            None => (1, GENESIS.to_owned()),
        };
        let entry = Entry {
            id: new.id.clone(),
            owner: new.owner.to_owned(),
            seq,
            actor: new.actor.map(str::to_owned),
            action: new.action.as_str().to_owned(),
            resource_type: new.resource.map(|(t, _)| t.to_owned()),
            resource_id: new.resource.map(|(_, id)| id.to_owned()),
            at_ms: new.at_ms,
            client_ip: new.client_ip.map(str::to_owned),
            user_agent: user_agent.clone(),
            details: details.clone(),
            prev_hash,
            hash: String::new(),
        };
        let hash = audit::chain_hash(&entry.prev_hash, &entry.stored().fields);
        let entry = Entry { hash, ..entry };
        let inserted = db
            .execute(
                &format!(
                    "INSERT INTO audit_log ({COLUMNS}) VALUES \
                     ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
                ),
                &[
                    entry.id.as_str().into(),
                    entry.owner.as_str().into(),
                    entry.seq.into(),
                    entry.actor.clone().into(),
                    entry.action.as_str().into(),
                    entry.resource_type.clone().into(),
                    entry.resource_id.clone().into(),
                    entry.at_ms.into(),
                    entry.client_ip.clone().into(),
                    entry.user_agent.clone().into(),
                    entry.details.as_str().into(),
                    entry.prev_hash.as_str().into(),
                    entry.hash.as_str().into(),
                ],
            )
            .await;
        match inserted {
            Ok(_) => return Ok(entry),
            Err(DbError::UniqueViolation) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(DbError::Unavailable(
        "the audit log is too busy to append to".into(),
    ))
}

/// What a listing selects.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// Only this action.
    pub action: Option<String>,
    /// Only rows about this resource.
    pub resource_id: Option<String>,
    /// Only rows at or after this time (ms).
    pub from_ms: Option<i64>,
    /// Only rows before this time (ms).
    pub to_ms: Option<i64>,
    /// Only rows before this place in the chain (the cursor of the previous page).
    pub before_seq: Option<i64>,
}

/// An owner's rows, newest first, at most `limit`. (The casts type the optional parameters for
/// drivers that send them untyped, as SQL over HTTP does.)
pub async fn list(
    db: &dyn Db,
    owner: &str,
    filter: &Filter,
    limit: i64,
) -> Result<Vec<Entry>, DbError> {
    let rows = db
        .query(
            &format!(
                "SELECT {COLUMNS} FROM audit_log WHERE owner_id = $1 \
                 AND (CAST($2 AS TEXT) IS NULL OR action = $2) \
                 AND (CAST($3 AS TEXT) IS NULL OR resource_id = $3) \
                 AND (CAST($4 AS BIGINT) IS NULL OR at >= $4) \
                 AND (CAST($5 AS BIGINT) IS NULL OR at < $5) \
                 AND (CAST($6 AS BIGINT) IS NULL OR seq < $6) \
                 ORDER BY seq DESC LIMIT $7"
            ),
            &[
                owner.into(),
                filter.action.clone().into(),
                filter.resource_id.clone().into(),
                filter.from_ms.into(),
                filter.to_ms.into(),
                filter.before_seq.into(),
                limit.into(),
            ],
        )
        .await?;
    decode(rows, from_row)
}

/// An owner's rows from place `from` to place `to` (inclusive), oldest first.
pub async fn range(db: &dyn Db, owner: &str, from: i64, to: i64) -> Result<Vec<Entry>, DbError> {
    let rows = db
        .query(
            &format!(
                "SELECT {COLUMNS} FROM audit_log WHERE owner_id = $1 AND seq >= $2 AND seq <= $3 \
                 ORDER BY seq"
            ),
            &[owner.into(), from.into(), to.into()],
        )
        .await?;
    decode(rows, from_row)
}

/// The last place of an owner's chain (0 when it is empty).
pub async fn head(db: &dyn Db, owner: &str) -> Result<i64, DbError> {
    let rows = db
        .query(
            "SELECT seq FROM audit_log WHERE owner_id = $1 ORDER BY seq DESC LIMIT 1",
            &[owner.into()],
        )
        .await?;
    rows.first().map_or(Ok(0), |r| r.int(0))
}
