//! Users.

use feen_core::ids::UserId;
use feen_core::ports::{Db, DbError, Row};

/// A user as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    /// The id.
    pub id: UserId,
    /// Lower-cased email address, unique.
    pub email: String,
    /// Display name.
    pub name: String,
    /// Argon2id PHC string.
    pub password_hash: String,
    /// When the account was created (ms).
    pub created_at: i64,
}

const COLUMNS: &str = "id, email, name, password_hash, created_at";

fn from_row(row: &Row) -> Result<User, DbError> {
    Ok(User {
        id: UserId::from_db(row.text(0)?),
        email: row.text(1)?,
        name: row.text(2)?,
        password_hash: row.text(3)?,
        created_at: row.int(4)?,
    })
}

/// Stores a new user. An email already taken is [`DbError::UniqueViolation`].
pub async fn insert(db: &dyn Db, user: &User) -> Result<(), DbError> {
    db.execute(
        "INSERT INTO users (id, email, name, password_hash, created_at) VALUES ($1, $2, $3, $4, $5)",
        &[
            user.id.as_str().into(),
            user.email.as_str().into(),
            user.name.as_str().into(),
            user.password_hash.as_str().into(),
            user.created_at.into(),
        ],
    )
    .await
    .map(drop)
}

/// The user with this (lower-cased) email.
pub async fn by_email(db: &dyn Db, email: &str) -> Result<Option<User>, DbError> {
    let rows = db
        .query(
            &format!("SELECT {COLUMNS} FROM users WHERE email = $1"),
            &[email.into()],
        )
        .await?;
    rows.first().map(from_row).transpose()
}

/// The user with this id.
pub async fn by_id(db: &dyn Db, id: &UserId) -> Result<Option<User>, DbError> {
    let rows = db
        .query(
            &format!("SELECT {COLUMNS} FROM users WHERE id = $1"),
            &[id.as_str().into()],
        )
        .await?;
    rows.first().map(from_row).transpose()
}

/// Replaces a user's password hash.
pub async fn set_password(db: &dyn Db, id: &UserId, password_hash: &str) -> Result<bool, DbError> {
    db.execute(
        "UPDATE users SET password_hash = $2 WHERE id = $1",
        &[id.as_str().into(), password_hash.into()],
    )
    .await
    .map(|n| n == 1)
}
