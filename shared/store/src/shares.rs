//! Shares: Feen tokens with limits, minted for one key. Only the token's hash is stored.

use feen_core::crypto::keyring::SealedSecret;
use feen_core::crypto::token::TokenHash;
use feen_core::ids::{KeyId, ShareId, UserId};
use feen_core::limits::Policy;
use feen_core::ports::{Db, DbError, Row, Value};
use serde::{Deserialize, Serialize};

use crate::{count, decode, stored};

/// A share as shown to its owner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Share {
    /// The id.
    pub id: ShareId,
    /// The owner.
    pub user: UserId,
    /// The key it spends.
    pub key: KeyId,
    /// What the owner called it.
    pub name: String,
    /// The token's first characters, to recognise it (`feen_AbC...`).
    pub token_hint: String,
    /// Its limits.
    pub policy: Policy,
    /// When it was minted (ms).
    pub created_at: i64,
    /// When its limits or token last changed (ms).
    pub updated_at: i64,
    /// When it was revoked (ms), if it was.
    pub revoked_at: Option<i64>,
}

const COLUMNS: &str = "id, user_id, api_key_id, name, token_hint, rate_limit, daily_limit, expires_at, \
                       allowed_models, created_at, updated_at, revoked_at";

fn models_from_text(text: &str) -> Result<Vec<String>, DbError> {
    serde_json::from_str(text)
        .map_err(|_| DbError::Decode("allowed_models is not a JSON list".into()))
}

fn models_to_text(models: &[String]) -> String {
    serde_json::to_string(models).unwrap_or_else(|_| "[]".into())
}

/// The policy in the four columns from `first` on: rate_limit, daily_limit, expires_at,
/// allowed_models (the order of [`policy_values`]).
fn policy_at(row: &Row, first: usize) -> Result<Policy, DbError> {
    Ok(Policy {
        rate_limit: count(row.opt_int(first)?),
        daily_limit: count(row.opt_int(first + 1)?),
        expires_at_ms: row.opt_int(first + 2)?,
        allowed_models: models_from_text(&row.text(first + 3)?)?,
    })
}

fn from_row(row: &Row) -> Result<Share, DbError> {
    Ok(Share {
        id: ShareId::from_db(row.text(0)?),
        user: UserId::from_db(row.text(1)?),
        key: KeyId::from_db(row.text(2)?),
        name: row.text(3)?,
        token_hint: row.text(4)?,
        policy: policy_at(row, 5)?,
        created_at: row.int(9)?,
        updated_at: row.int(10)?,
        revoked_at: row.opt_int(11)?,
    })
}

fn policy_values(policy: &Policy) -> [Value; 4] {
    [
        stored(policy.rate_limit).into(),
        stored(policy.daily_limit).into(),
        policy.expires_at_ms.into(),
        models_to_text(&policy.allowed_models).into(),
    ]
}

/// Stores a new share.
pub async fn insert(db: &dyn Db, share: &Share, hash: &TokenHash) -> Result<(), DbError> {
    let [rate, daily, expires, models] = policy_values(&share.policy);
    db.execute(
        "INSERT INTO shares (id, user_id, api_key_id, name, token_hash, token_hint, rate_limit, daily_limit, \
         expires_at, allowed_models, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        &[
            share.id.as_str().into(),
            share.user.as_str().into(),
            share.key.as_str().into(),
            share.name.as_str().into(),
            hash.as_str().into(),
            share.token_hint.as_str().into(),
            rate,
            daily,
            expires,
            models,
            share.created_at.into(),
            share.updated_at.into(),
        ],
    )
    .await
    .map(drop)
}

/// The owner's shares (revoked ones too, marked), newest first.
pub async fn list(db: &dyn Db, user: &UserId) -> Result<Vec<Share>, DbError> {
    let rows = db
        .query(
            &format!("SELECT {COLUMNS} FROM shares WHERE user_id = $1 ORDER BY id DESC"),
            &[user.as_str().into()],
        )
        .await?;
    decode(rows, from_row)
}

/// One of the owner's shares.
pub async fn get(db: &dyn Db, user: &UserId, id: &ShareId) -> Result<Option<Share>, DbError> {
    let rows = db
        .query(
            &format!("SELECT {COLUMNS} FROM shares WHERE id = $1 AND user_id = $2"),
            &[id.as_str().into(), user.as_str().into()],
        )
        .await?;
    rows.first().map(from_row).transpose()
}

/// Replaces the name and limits of one of the owner's live shares. False if it is not theirs
/// or is revoked.
pub async fn update(db: &dyn Db, share: &Share, now: i64) -> Result<bool, DbError> {
    let [rate, daily, expires, models] = policy_values(&share.policy);
    let n = db
        .execute(
            "UPDATE shares SET name = $3, rate_limit = $4, daily_limit = $5, expires_at = $6, allowed_models = $7, \
             updated_at = $8 WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL",
            &[
                share.id.as_str().into(),
                share.user.as_str().into(),
                share.name.as_str().into(),
                rate,
                daily,
                expires,
                models,
                now.into(),
            ],
        )
        .await?;
    Ok(n == 1)
}

/// Revokes one of the owner's shares. False if it is not theirs or already revoked.
pub async fn revoke(db: &dyn Db, user: &UserId, id: &ShareId, now: i64) -> Result<bool, DbError> {
    let n = db
        .execute(
            "UPDATE shares SET revoked_at = $3, updated_at = $3 WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL",
            &[id.as_str().into(), user.as_str().into(), now.into()],
        )
        .await?;
    Ok(n == 1)
}

/// Gives one of the owner's live shares a new token. False if it is not theirs or is revoked.
pub async fn replace_token(
    db: &dyn Db,
    user: &UserId,
    id: &ShareId,
    hash: &TokenHash,
    hint: &str,
    now: i64,
) -> Result<bool, DbError> {
    let n = db
        .execute(
            "UPDATE shares SET token_hash = $3, token_hint = $4, updated_at = $5 \
             WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL",
            &[
                id.as_str().into(),
                user.as_str().into(),
                hash.as_str().into(),
                hint.into(),
                now.into(),
            ],
        )
        .await?;
    Ok(n == 1)
}

/// The token hashes of a share (its current one) or of every share of a key, for cache
/// invalidation.
pub async fn token_hashes(
    db: &dyn Db,
    user: &UserId,
    scope: HashScope<'_>,
) -> Result<Vec<TokenHash>, DbError> {
    let (sql, id) = match scope {
        HashScope::Share(id) => (
            "SELECT token_hash FROM shares WHERE id = $1 AND user_id = $2",
            id.as_str(),
        ),
        HashScope::Key(id) => (
            "SELECT token_hash FROM shares WHERE api_key_id = $1 AND user_id = $2",
            id.as_str(),
        ),
    };
    let rows = db.query(sql, &[id.into(), user.as_str().into()]).await?;
    decode(rows, |row| Ok(TokenHash::from_stored(row.text(0)?)))
}

/// Which shares [`token_hashes`] looks at.
#[derive(Clone, Copy, Debug)]
pub enum HashScope<'a> {
    /// One share.
    Share(&'a ShareId),
    /// Every share of a key.
    Key(&'a KeyId),
}

/// What the proxy needs to serve a token: the share's policy and its key, still sealed. This is
/// also what the share cache holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProxyTarget {
    /// The share.
    pub share: ShareId,
    /// Its owner.
    pub user: UserId,
    /// Its key.
    pub key: KeyId,
    /// The key's provider.
    pub provider: String,
    /// The key's base URL override.
    pub base_url: Option<String>,
    /// The key's secret, sealed (never opened outside the proxy's memory).
    pub sealed_secret: String,
    /// The share's limits.
    pub policy: Policy,
}

impl ProxyTarget {
    /// The sealed secret.
    pub fn sealed(&self) -> SealedSecret {
        SealedSecret::from_stored(self.sealed_secret.clone())
    }
}

/// The live share a token hash belongs to, with its key.
pub async fn proxy_target(db: &dyn Db, hash: &TokenHash) -> Result<Option<ProxyTarget>, DbError> {
    let rows = db
        .query(
            "SELECT s.id, s.user_id, s.api_key_id, k.provider, k.base_url, k.sealed_secret, \
             s.rate_limit, s.daily_limit, s.expires_at, s.allowed_models \
             FROM shares s JOIN api_keys k ON k.id = s.api_key_id \
             WHERE s.token_hash = $1 AND s.revoked_at IS NULL",
            &[hash.as_str().into()],
        )
        .await?;
    let Some(row) = rows.first() else {
        return Ok(None);
    };
    Ok(Some(ProxyTarget {
        share: ShareId::from_db(row.text(0)?),
        user: UserId::from_db(row.text(1)?),
        key: KeyId::from_db(row.text(2)?),
        provider: row.text(3)?,
        base_url: row.opt_text(4)?,
        sealed_secret: row.text(5)?,
        policy: policy_at(row, 6)?,
    }))
}
