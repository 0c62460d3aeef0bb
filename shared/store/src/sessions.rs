//! Refresh-token sessions. A login starts a family; each refresh marks its token rotated and
//! adds the next one to the family. Presenting a rotated token again is reuse: the family is
//! revoked.

use feen_core::crypto::token::TokenHash;
use feen_core::ids::{SessionId, UserId};
use feen_core::ports::{Db, DbError};

/// A refresh token's row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    /// This token's row.
    pub id: SessionId,
    /// The login it belongs to (the `sid` in access tokens).
    pub family: SessionId,
    /// Whose session it is.
    pub user: UserId,
    /// When the refresh token expires (ms).
    pub expires_at: i64,
    /// Set once the token has been exchanged for the next one.
    pub rotated_at: Option<i64>,
    /// Set when the family was logged out or caught reusing a token.
    pub revoked_at: Option<i64>,
}

/// Stores a refresh token.
pub async fn insert(
    db: &dyn Db,
    session: &Session,
    hash: &TokenHash,
    now: i64,
) -> Result<(), DbError> {
    db.execute(
        "INSERT INTO sessions (id, family_id, user_id, token_hash, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[
            session.id.as_str().into(),
            session.family.as_str().into(),
            session.user.as_str().into(),
            hash.as_str().into(),
            now.into(),
            session.expires_at.into(),
        ],
    )
    .await
    .map(drop)
}

/// The session a refresh token belongs to.
pub async fn by_token(db: &dyn Db, hash: &TokenHash) -> Result<Option<Session>, DbError> {
    let rows = db
        .query(
            "SELECT id, family_id, user_id, expires_at, rotated_at, revoked_at FROM sessions WHERE token_hash = $1",
            &[hash.as_str().into()],
        )
        .await?;
    let Some(row) = rows.first() else {
        return Ok(None);
    };
    Ok(Some(Session {
        id: SessionId::from_db(row.text(0)?),
        family: SessionId::from_db(row.text(1)?),
        user: UserId::from_db(row.text(2)?),
        expires_at: row.int(3)?,
        rotated_at: row.opt_int(4)?,
        revoked_at: row.opt_int(5)?,
    }))
}

/// Marks a token rotated, if nobody did yet. Returns false when a concurrent refresh won: the
/// caller treats that as reuse.
pub async fn mark_rotated(db: &dyn Db, id: &SessionId, now: i64) -> Result<bool, DbError> {
    let n = db
        .execute(
            "UPDATE sessions SET rotated_at = $2 WHERE id = $1 AND rotated_at IS NULL AND revoked_at IS NULL",
            &[id.as_str().into(), now.into()],
        )
        .await?;
    Ok(n == 1)
}

/// Revokes every token of a family (logout, or reuse detected).
pub async fn revoke_family(db: &dyn Db, family: &SessionId, now: i64) -> Result<(), DbError> {
    db.execute(
        "UPDATE sessions SET revoked_at = $2 WHERE family_id = $1 AND revoked_at IS NULL",
        &[family.as_str().into(), now.into()],
    )
    .await
    .map(drop)
}

/// The logins of a user still alive at `now` (families with an unrevoked, unexpired token).
pub async fn live_families(
    db: &dyn Db,
    user: &UserId,
    now: i64,
) -> Result<Vec<SessionId>, DbError> {
    let rows = db
        .query(
            "SELECT DISTINCT family_id FROM sessions \
             WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > $2",
            &[user.as_str().into(), now.into()],
        )
        .await?;
    rows.iter()
        .map(|r| r.text(0).map(SessionId::from_db))
        .collect()
}

/// Deletes the refresh tokens that expired before `before` (a periodic job). An expired token is
/// refused before reuse detection looks at it, so deleting its row changes no answer.
pub async fn purge_expired(db: &dyn Db, before: i64) -> Result<u64, DbError> {
    db.execute(
        "DELETE FROM sessions WHERE expires_at < $1",
        &[before.into()],
    )
    .await
}
