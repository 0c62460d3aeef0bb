//! Stored provider keys. The secret is only ever stored sealed; listing never reads it.

use feen_core::authz::Owner;
use feen_core::crypto::keyring::{Destination, SealedSecret};
use feen_core::ids::{KeyId, TeamId, UserId};
use feen_core::ports::{Db, DbError, Row};
use feen_core::providers::CustomAuth;

use crate::{OWNER, decode};

/// A provider key as shown to its owner (no secret).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiKey {
    /// The id.
    pub id: KeyId,
    /// Who it belongs to: a user, or a team.
    pub owner: Owner,
    /// Who added it.
    pub created_by: UserId,
    /// What the owner called it.
    pub name: String,
    /// The provider's catalogue name.
    pub provider: String,
    /// A base URL overriding the provider's default.
    pub base_url: Option<String>,
    /// How a `custom` provider's key is sent.
    pub custom_auth: Option<CustomAuth>,
    /// A hint such as `sk-...wxyz`.
    pub hint: String,
    /// When it was added (ms).
    pub created_at: i64,
    /// When it was last renamed or rotated (ms).
    pub updated_at: i64,
}

impl ApiKey {
    /// Where the key may be sent: what its secret is sealed for.
    pub fn destination(&self) -> Destination<'_> {
        Destination {
            key: self.id.as_str(),
            provider: &self.provider,
            base_url: self.base_url.as_deref(),
            auth_header: self.custom_auth.as_ref().map(|c| c.header.as_str()),
            auth_template: self.custom_auth.as_ref().map(|c| c.template.as_str()),
        }
    }
}

const COLUMNS: &str = "id, user_id, name, provider, base_url, hint, created_at, updated_at, auth_header, auth_template, team_id";

fn from_row(row: &Row) -> Result<ApiKey, DbError> {
    let created_by = UserId::from_db(row.text(1)?);
    Ok(ApiKey {
        id: KeyId::from_db(row.text(0)?),
        owner: Owner::from_columns(created_by.clone(), row.opt_text(10)?.map(TeamId::from_db)),
        created_by,
        name: row.text(2)?,
        provider: row.text(3)?,
        base_url: row.opt_text(4)?,
        hint: row.text(5)?,
        created_at: row.int(6)?,
        updated_at: row.int(7)?,
        custom_auth: custom_auth(row.opt_text(8)?, row.opt_text(9)?),
    })
}

/// The custom auth stored in a pair of nullable columns.
pub fn custom_auth(header: Option<String>, template: Option<String>) -> Option<CustomAuth> {
    Some(CustomAuth {
        header: header?,
        template: template?,
    })
}

/// Stores a new key with its sealed secret.
pub async fn insert(db: &dyn Db, key: &ApiKey, sealed: &SealedSecret) -> Result<(), DbError> {
    db.execute(
        "INSERT INTO api_keys (id, user_id, name, provider, base_url, sealed_secret, key_version, hint, created_at, updated_at, \
         auth_header, auth_template, team_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        &[
            key.id.as_str().into(),
            key.created_by.as_str().into(),
            key.name.as_str().into(),
            key.provider.as_str().into(),
            key.base_url.clone().into(),
            sealed.as_str().into(),
            i64::from(sealed.version().unwrap_or(0)).into(),
            key.hint.as_str().into(),
            key.created_at.into(),
            key.updated_at.into(),
            key.custom_auth.as_ref().map(|c| c.header.as_str()).into(),
            key.custom_auth.as_ref().map(|c| c.template.as_str()).into(),
            key.owner.team().map(TeamId::as_str).into(),
        ],
    )
    .await
    .map(drop)
}

/// The owner's keys, newest first.
pub async fn list(db: &dyn Db, owner: &Owner) -> Result<Vec<ApiKey>, DbError> {
    let rows = db
        .query(
            &format!("SELECT {COLUMNS} FROM api_keys WHERE {OWNER} = $1 ORDER BY id DESC"),
            &[owner.as_str().into()],
        )
        .await?;
    decode(rows, from_row)
}

/// The keys a user can see: their own and those of every team they belong to, newest first.
pub async fn visible(db: &dyn Db, user: &UserId) -> Result<Vec<ApiKey>, DbError> {
    let rows = db
        .query(
            &format!(
                "SELECT {COLUMNS} FROM api_keys WHERE {OWNER} = $1 \
                 OR team_id IN (SELECT team_id FROM team_members WHERE user_id = $1) ORDER BY id DESC"
            ),
            &[user.as_str().into()],
        )
        .await?;
    decode(rows, from_row)
}

/// When each key was last used (ms), in the order of `ids`: its newest forwarded request
/// among the raw usage events, else its newest rolled-up hour with requests (events past
/// retention); `None` when it never was.
pub async fn last_used(db: &dyn Db, ids: &[KeyId]) -> Result<Vec<Option<i64>>, DbError> {
    let mut out = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(100) {
        let list = (1..=chunk.len())
            .map(|i| format!("${i}"))
            .collect::<Vec<_>>()
            .join(", ");
        let rows = db
            .query(
                &format!(
                    "SELECT k.id, \
                     CAST((SELECT MAX(e.started_at) FROM usage_events e \
                           WHERE e.api_key_id = k.id AND e.outcome <> 'refused') AS BIGINT), \
                     CAST((SELECT MAX(r.bucket_start) FROM usage_rollups r \
                           WHERE r.api_key_id = k.id AND r.period = 'hour' AND r.requests > 0) AS BIGINT) \
                     FROM api_keys k WHERE k.id IN ({list})"
                ),
                &chunk.iter().map(|id| id.as_str().into()).collect::<Vec<_>>(),
            )
            .await?;
        let mut found = std::collections::HashMap::with_capacity(rows.len());
        for row in &rows {
            let last = match (row.opt_int(1)?, row.opt_int(2)?) {
                (Some(raw), _) => Some(raw),
                (None, rolled) => rolled,
            };
            found.insert(row.text(0)?, last);
        }
        out.extend(
            chunk
                .iter()
                .map(|id| found.get(id.as_str()).copied().flatten()),
        );
    }
    Ok(out)
}

/// Who a key belongs to, so that the caller can be authorised before anything else is read.
pub async fn owner_of(db: &dyn Db, id: &KeyId) -> Result<Option<Owner>, DbError> {
    let rows = db
        .query(
            "SELECT user_id, team_id FROM api_keys WHERE id = $1",
            &[id.as_str().into()],
        )
        .await?;
    rows.first().map(crate::owner_at).transpose()
}

/// One of the owner's keys.
pub async fn get(db: &dyn Db, owner: &Owner, id: &KeyId) -> Result<Option<ApiKey>, DbError> {
    let rows = db
        .query(
            &format!("SELECT {COLUMNS} FROM api_keys WHERE id = $1 AND {OWNER} = $2"),
            &[id.as_str().into(), owner.as_str().into()],
        )
        .await?;
    rows.first().map(from_row).transpose()
}

/// Renames one of the owner's keys. False if it is not theirs.
pub async fn rename(
    db: &dyn Db,
    owner: &Owner,
    id: &KeyId,
    name: &str,
    now: i64,
) -> Result<bool, DbError> {
    let n = db
        .execute(
            &format!(
                "UPDATE api_keys SET name = $3, updated_at = $4 WHERE id = $1 AND {OWNER} = $2"
            ),
            &[
                id.as_str().into(),
                owner.as_str().into(),
                name.into(),
                now.into(),
            ],
        )
        .await?;
    Ok(n == 1)
}

/// Replaces the secret of one of the owner's keys in place. False if it is not theirs.
pub async fn rotate(
    db: &dyn Db,
    owner: &Owner,
    id: &KeyId,
    sealed: &SealedSecret,
    hint: &str,
    now: i64,
) -> Result<bool, DbError> {
    let n = db
        .execute(
            &format!(
                "UPDATE api_keys SET sealed_secret = $3, key_version = $4, hint = $5, updated_at = $6 \
                 WHERE id = $1 AND {OWNER} = $2"
            ),
            &[
                id.as_str().into(),
                owner.as_str().into(),
                sealed.as_str().into(),
                i64::from(sealed.version().unwrap_or(0)).into(),
                hint.into(),
                now.into(),
            ],
        )
        .await?;
    Ok(n == 1)
}

/// Deletes one of the owner's keys and, through the foreign key, its shares. False if it is not
/// theirs.
pub async fn delete(db: &dyn Db, owner: &Owner, id: &KeyId) -> Result<bool, DbError> {
    let n = db
        .execute(
            &format!("DELETE FROM api_keys WHERE id = $1 AND {OWNER} = $2"),
            &[id.as_str().into(), owner.as_str().into()],
        )
        .await?;
    Ok(n == 1)
}

/// A stored key the rewrap job looks at: its sealed secret and what it was sealed for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealedKey {
    /// The id.
    pub id: KeyId,
    /// Who it belongs to.
    pub owner: Owner,
    /// The provider's catalogue name.
    pub provider: String,
    /// Its base URL override.
    pub base_url: Option<String>,
    /// How a `custom` provider's key is sent.
    pub custom_auth: Option<CustomAuth>,
    /// The sealed secret.
    pub sealed: SealedSecret,
}

impl SealedKey {
    /// What the secret is sealed for.
    pub fn destination(&self) -> Destination<'_> {
        Destination {
            key: self.id.as_str(),
            provider: &self.provider,
            base_url: self.base_url.as_deref(),
            auth_header: self.custom_auth.as_ref().map(|c| c.header.as_str()),
            auth_template: self.custom_auth.as_ref().map(|c| c.template.as_str()),
        }
    }
}

/// The keys a ring whose current version is `current` would seal anew: sealed by an older
/// version, or before destinations were bound (their text has no `.d.`).
const NEEDS_RESEAL: &str = "(key_version < $1 OR sealed_secret NOT LIKE 'v%.d.%')";

/// Keys that need sealing anew ([`NEEDS_RESEAL`]), after `after` in id order, at most `limit`
/// (the key-ring rewrap job's batches; not an owner's query, hence no owner).
pub async fn needing_reseal(
    db: &dyn Db,
    current: u32,
    after: &str,
    limit: i64,
) -> Result<Vec<SealedKey>, DbError> {
    let rows = db
        .query(
            &format!(
                "SELECT id, user_id, team_id, sealed_secret, provider, base_url, auth_header, auth_template \
                 FROM api_keys WHERE {NEEDS_RESEAL} AND id > $2 ORDER BY id LIMIT $3"
            ),
            &[i64::from(current).into(), after.into(), limit.into()],
        )
        .await?;
    crate::decode(rows, |row| {
        Ok(SealedKey {
            id: KeyId::from_db(row.text(0)?),
            owner: crate::owner_at(row)?,
            sealed: SealedSecret::from_stored(row.text(3)?),
            provider: row.text(4)?,
            base_url: row.opt_text(5)?,
            custom_auth: custom_auth(row.opt_text(6)?, row.opt_text(7)?),
        })
    })
}

/// How many keys need sealing anew ([`NEEDS_RESEAL`]).
pub async fn count_needing_reseal(db: &dyn Db, current: u32) -> Result<i64, DbError> {
    let rows = db
        .query(
            &format!("SELECT COUNT(*) FROM api_keys WHERE {NEEDS_RESEAL}"),
            &[i64::from(current).into()],
        )
        .await?;
    rows.first().map_or(Ok(0), |r| r.int(0))
}

/// Replaces a key's sealed secret with the same secret sealed anew, if it still holds `old` (a
/// rotation in between wins). Leaves `updated_at` alone: the key did not change.
pub async fn reseal(
    db: &dyn Db,
    id: &KeyId,
    old: &SealedSecret,
    new: &SealedSecret,
) -> Result<bool, DbError> {
    let n = db
        .execute(
            "UPDATE api_keys SET sealed_secret = $3, key_version = $4 \
             WHERE id = $1 AND sealed_secret = $2",
            &[
                id.as_str().into(),
                old.as_str().into(),
                new.as_str().into(),
                i64::from(new.version().unwrap_or(0)).into(),
            ],
        )
        .await?;
    Ok(n == 1)
}
