//! Shares: Feen tokens with limits, minted for one key. Only the token's hash is stored.

use feen_core::authz::Owner;
use feen_core::crypto::keyring::{Destination, SealedSecret};
use feen_core::crypto::token::TokenHash;
use feen_core::ids::{KeyId, ShareId, TeamId, UserId};
use feen_core::limits::{self, Budget, Period, Policy, Recent, Used};
use feen_core::ports::{Db, DbError, Row, Value};
use serde::{Deserialize, Serialize};

use crate::{OWNER, count, decode, stored};

/// A share as shown to its owner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Share {
    /// The id.
    pub id: ShareId,
    /// Who it belongs to: its key's owner.
    pub owner: Owner,
    /// Who minted it.
    pub created_by: UserId,
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

/// The columns that hold a share's policy, in the order of [`policy_values`] and [`policy_at`].
const POLICY_COLUMNS: [&str; 12] = [
    "rate_limit",
    "daily_limit",
    "tokens_per_minute",
    "tokens_per_day",
    "budget_micros",
    "budget_period",
    "max_uses",
    "reserve_tokens",
    "expires_at",
    "allowed_models",
    "allowed_endpoints",
    "allowed_ips",
];

fn columns() -> String {
    format!(
        "id, user_id, api_key_id, name, token_hint, {}, created_at, updated_at, revoked_at, team_id",
        POLICY_COLUMNS.join(", ")
    )
}

fn list_from_text<T: serde::de::DeserializeOwned>(
    text: &str,
    column: &str,
) -> Result<Vec<T>, DbError> {
    serde_json::from_str(text).map_err(|_| DbError::Decode(format!("{column} is not a JSON list")))
}

fn list_to_text<T: Serialize>(list: &[T]) -> String {
    serde_json::to_string(list).unwrap_or_else(|_| "[]".into())
}

/// The policy in the columns from `first` on, in the order of [`POLICY_COLUMNS`].
fn policy_at(row: &Row, first: usize) -> Result<Policy, DbError> {
    let col = |i: usize| first + i;
    let budget = match (row.opt_int(col(4))?, row.opt_text(col(5))?) {
        (Some(micros), Some(period)) => Some(Budget {
            usd_micros: u64::try_from(micros).unwrap_or(0),
            period: Period::parse(&period)
                .ok_or_else(|| DbError::Decode("unknown budget period".into()))?,
        }),
        _ => None,
    };
    Ok(Policy {
        rate_limit: count(row.opt_int(col(0))?),
        daily_limit: count(row.opt_int(col(1))?),
        tokens_per_minute: count(row.opt_int(col(2))?),
        tokens_per_day: count(row.opt_int(col(3))?),
        budget,
        max_uses: count(row.opt_int(col(6))?),
        reserve_tokens: count(row.opt_int(col(7))?),
        expires_at_ms: row.opt_int(col(8))?,
        allowed_models: list_from_text(&row.text(col(9))?, "allowed_models")?,
        allowed_endpoints: list_from_text(&row.text(col(10))?, "allowed_endpoints")?,
        allowed_ips: list_from_text(&row.text(col(11))?, "allowed_ips")?,
    })
}

fn policy_values(policy: &Policy) -> [Value; 12] {
    [
        stored(policy.rate_limit).into(),
        stored(policy.daily_limit).into(),
        stored(policy.tokens_per_minute).into(),
        stored(policy.tokens_per_day).into(),
        stored(policy.budget.map(|b| b.usd_micros)).into(),
        policy.budget.map(|b| b.period.as_str()).into(),
        stored(policy.max_uses).into(),
        stored(policy.reserve_tokens).into(),
        policy.expires_at_ms.into(),
        list_to_text(&policy.allowed_models).into(),
        list_to_text(&policy.allowed_endpoints).into(),
        list_to_text(&policy.allowed_ips).into(),
    ]
}

/// `$first, $first+1, ...` for `n` parameters.
fn marks(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn from_row(row: &Row) -> Result<Share, DbError> {
    let created_by = UserId::from_db(row.text(1)?);
    Ok(Share {
        id: ShareId::from_db(row.text(0)?),
        owner: Owner::from_columns(created_by.clone(), row.opt_text(20)?.map(TeamId::from_db)),
        created_by,
        key: KeyId::from_db(row.text(2)?),
        name: row.text(3)?,
        token_hint: row.text(4)?,
        policy: policy_at(row, 5)?,
        created_at: row.int(17)?,
        updated_at: row.int(18)?,
        revoked_at: row.opt_int(19)?,
    })
}

/// Stores a new share.
pub async fn insert(db: &dyn Db, share: &Share, hash: &TokenHash) -> Result<(), DbError> {
    let sql = format!(
        "INSERT INTO shares (id, user_id, api_key_id, name, token_hash, token_hint, created_at, updated_at, team_id, {}) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, {})",
        POLICY_COLUMNS.join(", "),
        marks(10, POLICY_COLUMNS.len())
    );
    let mut params: Vec<Value> = vec![
        share.id.as_str().into(),
        share.created_by.as_str().into(),
        share.key.as_str().into(),
        share.name.as_str().into(),
        hash.as_str().into(),
        share.token_hint.as_str().into(),
        share.created_at.into(),
        share.updated_at.into(),
        share.owner.team().map(TeamId::as_str).into(),
    ];
    params.extend(policy_values(&share.policy));
    db.execute(&sql, &params).await.map(drop)
}

/// The owner's shares (revoked ones too, marked), newest first.
pub async fn list(db: &dyn Db, owner: &Owner) -> Result<Vec<Share>, DbError> {
    let rows = db
        .query(
            &format!(
                "SELECT {} FROM shares WHERE {OWNER} = $1 ORDER BY id DESC",
                columns()
            ),
            &[owner.as_str().into()],
        )
        .await?;
    decode(rows, from_row)
}

/// The shares a user can see: their own and those of every team they belong to, newest first.
pub async fn visible(db: &dyn Db, user: &UserId) -> Result<Vec<Share>, DbError> {
    let rows = db
        .query(
            &format!(
                "SELECT {} FROM shares WHERE {OWNER} = $1 \
                 OR team_id IN (SELECT team_id FROM team_members WHERE user_id = $1) ORDER BY id DESC",
                columns()
            ),
            &[user.as_str().into()],
        )
        .await?;
    decode(rows, from_row)
}

/// Who a share belongs to, so that the caller can be authorised before anything else is read.
pub async fn owner_of(db: &dyn Db, id: &ShareId) -> Result<Option<Owner>, DbError> {
    let rows = db
        .query(
            "SELECT user_id, team_id FROM shares WHERE id = $1",
            &[id.as_str().into()],
        )
        .await?;
    rows.first().map(crate::owner_at).transpose()
}

/// One of the owner's shares.
pub async fn get(db: &dyn Db, owner: &Owner, id: &ShareId) -> Result<Option<Share>, DbError> {
    let rows = db
        .query(
            &format!(
                "SELECT {} FROM shares WHERE id = $1 AND {OWNER} = $2",
                columns()
            ),
            &[id.as_str().into(), owner.as_str().into()],
        )
        .await?;
    rows.first().map(from_row).transpose()
}

/// Replaces the name and limits of one of the owner's live shares. False if it is not theirs
/// or is revoked.
pub async fn update(db: &dyn Db, share: &Share, now: i64) -> Result<bool, DbError> {
    let sets: Vec<String> = POLICY_COLUMNS
        .iter()
        .enumerate()
        .map(|(i, c)| format!("{c} = ${}", i + 5))
        .collect();
    let sql = format!(
        "UPDATE shares SET name = $3, updated_at = $4, {} WHERE id = $1 AND {OWNER} = $2 AND revoked_at IS NULL",
        sets.join(", ")
    );
    let mut params: Vec<Value> = vec![
        share.id.as_str().into(),
        share.owner.as_str().into(),
        share.name.as_str().into(),
        now.into(),
    ];
    params.extend(policy_values(&share.policy));
    Ok(db.execute(&sql, &params).await? == 1)
}

/// Revokes one of the owner's shares. False if it is not theirs or already revoked.
pub async fn revoke(db: &dyn Db, owner: &Owner, id: &ShareId, now: i64) -> Result<bool, DbError> {
    let n = db
        .execute(
            &format!(
                "UPDATE shares SET revoked_at = $3, updated_at = $3 WHERE id = $1 AND {OWNER} = $2 AND revoked_at IS NULL"
            ),
            &[id.as_str().into(), owner.as_str().into(), now.into()],
        )
        .await?;
    Ok(n == 1)
}

/// Gives one of the owner's live shares a new token. False if it is not theirs or is revoked.
pub async fn replace_token(
    db: &dyn Db,
    owner: &Owner,
    id: &ShareId,
    hash: &TokenHash,
    hint: &str,
    now: i64,
) -> Result<bool, DbError> {
    let n = db
        .execute(
            &format!(
                "UPDATE shares SET token_hash = $3, token_hint = $4, updated_at = $5 \
                 WHERE id = $1 AND {OWNER} = $2 AND revoked_at IS NULL"
            ),
            &[
                id.as_str().into(),
                owner.as_str().into(),
                hash.as_str().into(),
                hint.into(),
                now.into(),
            ],
        )
        .await?;
    Ok(n == 1)
}

/// The token hashes of a share (its current one), of every share of a key, or of every share
/// of the owner, for cache invalidation.
pub async fn token_hashes(
    db: &dyn Db,
    owner: &Owner,
    scope: HashScope<'_>,
) -> Result<Vec<TokenHash>, DbError> {
    let (column, id) = match scope {
        HashScope::Share(id) => ("id", id.as_str()),
        HashScope::Key(id) => ("api_key_id", id.as_str()),
        HashScope::All => (OWNER, owner.as_str()),
    };
    let sql = format!("SELECT token_hash FROM shares WHERE {column} = $1 AND {OWNER} = $2");
    let rows = db.query(&sql, &[id.into(), owner.as_str().into()]).await?;
    decode(rows, |row| Ok(TokenHash::from_stored(row.text(0)?)))
}

/// Which shares [`token_hashes`] looks at.
#[derive(Clone, Copy, Debug)]
pub enum HashScope<'a> {
    /// One share.
    Share(&'a ShareId),
    /// Every share of a key.
    Key(&'a KeyId),
    /// Every share of the owner.
    All,
}

/// What the proxy needs to serve a token: the share's policy and its key, still sealed. This is
/// also what the share cache holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProxyTarget {
    /// The share.
    pub share: ShareId,
    /// The user who minted it (a user's share: its owner).
    pub user: UserId,
    /// The team it belongs to, for a team's share.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<TeamId>,
    /// Its key.
    pub key: KeyId,
    /// The key's provider.
    pub provider: String,
    /// The key's base URL override.
    pub base_url: Option<String>,
    /// The key's secret, sealed (never opened outside the proxy's memory).
    pub sealed_secret: String,
    /// How a `custom` provider's key is sent.
    #[serde(default)]
    pub custom_auth: Option<feen_core::providers::CustomAuth>,
    /// The share's limits.
    pub policy: Policy,
    /// What it had used when it was loaded (seeds lifetime counters).
    #[serde(default)]
    pub used: Used,
}

impl ProxyTarget {
    /// The sealed secret.
    pub fn sealed(&self) -> SealedSecret {
        SealedSecret::from_stored(self.sealed_secret.clone())
    }

    /// Where the key may be sent: what its secret was sealed for.
    pub fn destination(&self) -> Destination<'_> {
        Destination {
            key: self.key.as_str(),
            provider: &self.provider,
            base_url: self.base_url.as_deref(),
            auth_header: self.custom_auth.as_ref().map(|c| c.header.as_str()),
            auth_template: self.custom_auth.as_ref().map(|c| c.template.as_str()),
        }
    }
}

/// The live share a token hash belongs to, with its key, and what it has used (over its life,
/// and in the windows current at `now`, for the limits that need it).
pub async fn proxy_target(
    db: &dyn Db,
    hash: &TokenHash,
    now: i64,
) -> Result<Option<ProxyTarget>, DbError> {
    let policy_columns: Vec<String> = POLICY_COLUMNS.iter().map(|c| format!("s.{c}")).collect();
    let sql = format!(
        "SELECT s.id, s.user_id, s.api_key_id, k.provider, k.base_url, k.sealed_secret, k.auth_header, k.auth_template, s.team_id, {} \
         FROM shares s JOIN api_keys k ON k.id = s.api_key_id WHERE s.token_hash = $1 AND s.revoked_at IS NULL",
        policy_columns.join(", ")
    );
    let rows = db.query(&sql, &[hash.as_str().into()]).await?;
    let Some(row) = rows.first() else {
        return Ok(None);
    };
    let share = ShareId::from_db(row.text(0)?);
    let policy = policy_at(row, 9)?;
    let lifetime =
        policy.max_uses.is_some() || policy.budget.is_some_and(|b| b.period == Period::Lifetime);
    let mut used = if lifetime {
        used(db, &share).await?
    } else {
        Used::default()
    };
    if policy.windowed() {
        used.recent = recent(db, &share, &policy, now).await?;
    }
    Ok(Some(ProxyTarget {
        share,
        user: UserId::from_db(row.text(1)?),
        team: row.opt_text(8)?.map(TeamId::from_db),
        key: KeyId::from_db(row.text(2)?),
        provider: row.text(3)?,
        base_url: row.opt_text(4)?,
        sealed_secret: row.text(5)?,
        custom_auth: crate::keys::custom_auth(row.opt_text(6)?, row.opt_text(7)?),
        policy,
        used,
    }))
}

/// What a share has used over its life, from its recorded usage events.
pub async fn used(db: &dyn Db, share: &ShareId) -> Result<Used, DbError> {
    let rows = db
        .query(
            &format!(
                "SELECT CAST(COALESCE(SUM(n), 0) AS BIGINT), CAST(COALESCE(SUM(c), 0) AS BIGINT) FROM ( \
                 SELECT COUNT(*) AS n, SUM(cost_micros) AS c FROM usage_events WHERE share_id = $1 \
                 AND outcome <> 'refused' AND started_at >= {h} \
                 UNION ALL SELECT SUM(requests), SUM(cost_micros) FROM usage_rollups \
                 WHERE period = 'day' AND share_id = $1 AND bucket_start < {h}) parts",
                h = crate::usage::HORIZON_SQL
            ),
            &[share.as_str().into()],
        )
        .await?;
    let Some(row) = rows.first() else {
        return Ok(Used::default());
    };
    Ok(Used {
        uses: count(row.opt_int(0)?).unwrap_or(0),
        spent: count(row.opt_int(1)?).unwrap_or(0),
        recent: Recent::default(),
    })
}

/// What a share has recorded in the windows current at `now` (the minute, the UTC day, the
/// budget period): requests that reached the provider, their tokens and cost. Raw events count
/// from the retention horizon on, the daily rollups before it (only a budget period can reach
/// that far back).
pub async fn recent(
    db: &dyn Db,
    share: &ShareId,
    policy: &Policy,
    now: i64,
) -> Result<Recent, DbError> {
    let (minute, day, period) = limits::recent_starts(policy, now);
    let from = period.map_or(day, |p| p.min(day));
    // Without a budget period the cost column is summed from `now` on: nothing.
    let period = period.unwrap_or(now + 1);
    let rows = db
        .query(
            &format!(
                "SELECT CAST(COALESCE(SUM(mr), 0) AS BIGINT), CAST(COALESCE(SUM(mt), 0) AS BIGINT), \
                 CAST(COALESCE(SUM(dr), 0) AS BIGINT), CAST(COALESCE(SUM(dt), 0) AS BIGINT), \
                 CAST(COALESCE(SUM(pc), 0) AS BIGINT) FROM ( \
                 SELECT SUM(CASE WHEN started_at >= $2 THEN 1 ELSE 0 END) AS mr, \
                 SUM(CASE WHEN started_at >= $2 THEN input_tokens + output_tokens ELSE 0 END) AS mt, \
                 SUM(CASE WHEN started_at >= $3 THEN 1 ELSE 0 END) AS dr, \
                 SUM(CASE WHEN started_at >= $3 THEN input_tokens + output_tokens ELSE 0 END) AS dt, \
                 SUM(CASE WHEN started_at >= $4 THEN COALESCE(cost_micros, 0) ELSE 0 END) AS pc \
                 FROM usage_events WHERE share_id = $1 AND started_at >= $5 \
                 AND started_at >= {h} AND outcome <> 'refused' \
                 UNION ALL SELECT 0, 0, 0, 0, SUM(cost_micros) FROM usage_rollups \
                 WHERE period = 'day' AND share_id = $1 AND bucket_start >= $4 AND bucket_start < {h}) parts",
                h = crate::usage::HORIZON_SQL
            ),
            &[
                share.as_str().into(),
                minute.into(),
                day.into(),
                period.into(),
                from.into(),
            ],
        )
        .await?;
    let Some(row) = rows.first() else {
        return Ok(Recent {
            at_ms: now,
            ..Recent::default()
        });
    };
    let value = |i| Ok::<u64, DbError>(count(row.opt_int(i)?).unwrap_or(0));
    Ok(Recent {
        at_ms: now,
        minute_requests: value(0)?,
        minute_tokens: value(1)?,
        day_requests: value(2)?,
        day_tokens: value(3)?,
        budget_spent: value(4)?,
    })
}

/// A live share someone may need to hear about (the notification jobs' candidates; not an
/// owner's query, hence no owner).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Watched {
    /// The share.
    pub id: ShareId,
    /// Its name.
    pub name: String,
    /// Its owner.
    pub owner: Owner,
    /// When it expires, if it does.
    pub expires_at: Option<i64>,
    /// Its budget, if it has one.
    pub budget: Option<Budget>,
}

/// Live shares that expire in `(now, until]` or have a budget.
pub async fn watched(db: &dyn Db, now: i64, until: i64) -> Result<Vec<Watched>, DbError> {
    let rows = db
        .query(
            "SELECT id, name, user_id, team_id, expires_at, budget_micros, budget_period FROM shares \
             WHERE revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $1) \
             AND ((expires_at > $1 AND expires_at <= $2) OR budget_micros IS NOT NULL) ORDER BY id",
            &[now.into(), until.into()],
        )
        .await?;
    decode(rows, |row| {
        let budget = match (row.opt_int(5)?, row.opt_text(6)?) {
            (Some(micros), Some(period)) => Some(Budget {
                usd_micros: u64::try_from(micros).unwrap_or(0),
                period: Period::parse(&period)
                    .ok_or_else(|| DbError::Decode("unknown budget period".into()))?,
            }),
            _ => None,
        };
        Ok(Watched {
            id: ShareId::from_db(row.text(0)?),
            name: row.text(1)?,
            owner: Owner::from_columns(
                UserId::from_db(row.text(2)?),
                row.opt_text(3)?.map(TeamId::from_db),
            ),
            expires_at: row.opt_int(4)?,
            budget,
        })
    })
}

/// Shares that ended (expired or were revoked) in `[from, to)`, with their current token hash
/// (the cleanup job's list; not an owner's query).
pub async fn ended(db: &dyn Db, from: i64, to: i64) -> Result<Vec<(ShareId, TokenHash)>, DbError> {
    let rows = db
        .query(
            "SELECT id, token_hash FROM shares WHERE (expires_at >= $1 AND expires_at < $2) \
             OR (revoked_at >= $1 AND revoked_at < $2) ORDER BY id",
            &[from.into(), to.into()],
        )
        .await?;
    decode(rows, |row| {
        Ok((
            ShareId::from_db(row.text(0)?),
            TokenHash::from_stored(row.text(1)?),
        ))
    })
}
