//! Personal access tokens.

use feen_core::crypto::token::TokenHash;
use feen_core::ids::{PatId, UserId};
use feen_core::ports::{Db, DbError, Row};

use crate::decode;

/// A personal access token as listed (never its secret).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pat {
    /// The id.
    pub id: PatId,
    /// The owner.
    pub user: UserId,
    /// What the owner called it.
    pub name: String,
    /// When it was made (ms).
    pub created_at: i64,
    /// When it stops working (ms), if ever.
    pub expires_at: Option<i64>,
}

fn from_row(row: &Row) -> Result<Pat, DbError> {
    Ok(Pat {
        id: PatId::from_db(row.text(0)?),
        user: UserId::from_db(row.text(1)?),
        name: row.text(2)?,
        created_at: row.int(3)?,
        expires_at: row.opt_int(4)?,
    })
}

const COLUMNS: &str = "id, user_id, name, created_at, expires_at";

/// Stores a new token.
pub async fn insert(db: &dyn Db, pat: &Pat, hash: &TokenHash) -> Result<(), DbError> {
    db.execute(
        "INSERT INTO personal_access_tokens (id, user_id, name, token_hash, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[
            pat.id.as_str().into(),
            pat.user.as_str().into(),
            pat.name.as_str().into(),
            hash.as_str().into(),
            pat.created_at.into(),
            pat.expires_at.into(),
        ],
    )
    .await
    .map(drop)
}

/// The owner's live tokens, newest first.
pub async fn list(db: &dyn Db, user: &UserId) -> Result<Vec<Pat>, DbError> {
    let rows = db
        .query(
            &format!(
                "SELECT {COLUMNS} FROM personal_access_tokens WHERE user_id = $1 AND revoked_at IS NULL ORDER BY id DESC"
            ),
            &[user.as_str().into()],
        )
        .await?;
    decode(rows, from_row)
}

/// The live, unexpired token with this hash.
pub async fn by_token(db: &dyn Db, hash: &TokenHash, now: i64) -> Result<Option<Pat>, DbError> {
    let rows = db
        .query(
            &format!(
                "SELECT {COLUMNS} FROM personal_access_tokens \
                 WHERE token_hash = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $2)"
            ),
            &[hash.as_str().into(), now.into()],
        )
        .await?;
    rows.first().map(from_row).transpose()
}

/// Revokes one of the owner's tokens. False if it is not theirs or already revoked.
pub async fn revoke(db: &dyn Db, user: &UserId, id: &PatId, now: i64) -> Result<bool, DbError> {
    let n = db
        .execute(
            "UPDATE personal_access_tokens SET revoked_at = $3 WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL",
            &[id.as_str().into(), user.as_str().into(), now.into()],
        )
        .await?;
    Ok(n == 1)
}

/// Revokes every live token of a user (signing out everywhere, a password change); returns how
/// many.
pub async fn revoke_all(db: &dyn Db, user: &UserId, now: i64) -> Result<u64, DbError> {
    db.execute(
        "UPDATE personal_access_tokens SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL",
        &[user.as_str().into(), now.into()],
    )
    .await
}
