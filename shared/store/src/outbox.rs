//! The email outbox: emails are written once per event, claimed by one sender at a time with a
//! lease, retried until the mail API takes them, then marked sent (and their body cleared). Also
//! the devices users signed in from, to tell a new one.

use feen_core::ids::{EmailId, UserId};
use feen_core::ports::{Db, DbError, Row};

use crate::decode;

/// An email to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Email {
    /// The id, also the idempotency key the mail API sees.
    pub id: EmailId,
    /// One email per event: a second write with the same key is dropped.
    pub dedupe_key: String,
    /// What it is about (`new_device`, `team_invite`, `budget`, `share_expiring`).
    pub kind: String,
    /// The recipient.
    pub to: String,
    /// The subject.
    pub subject: String,
    /// The plain-text body.
    pub body: String,
    /// When it was written (ms).
    pub created_at: i64,
    /// Sending attempts so far.
    pub attempts: i64,
}

const COLUMNS: &str = "id, dedupe_key, kind, to_address, subject, body, created_at, attempts";

fn from_row(row: &Row) -> Result<Email, DbError> {
    Ok(Email {
        id: EmailId::from_db(row.text(0)?),
        dedupe_key: row.text(1)?,
        kind: row.text(2)?,
        to: row.text(3)?,
        subject: row.text(4)?,
        body: row.text(5)?,
        created_at: row.int(6)?,
        attempts: row.int(7)?,
    })
}

/// Writes an email unless one with its dedupe key exists. True if it was written.
pub async fn enqueue(db: &dyn Db, email: &Email) -> Result<bool, DbError> {
    let n = db
        .execute(
            "INSERT INTO email_outbox (id, dedupe_key, kind, to_address, subject, body, created_at, attempts, next_attempt_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, 0, $7) ON CONFLICT (dedupe_key) DO NOTHING",
            &[
                email.id.as_str().into(),
                email.dedupe_key.as_str().into(),
                email.kind.as_str().into(),
                email.to.as_str().into(),
                email.subject.as_str().into(),
                email.body.as_str().into(),
                email.created_at.into(),
            ],
        )
        .await?;
    Ok(n == 1)
}

/// Claims up to `limit` emails that are due and not claimed by another sender, each until
/// `now + lease_ms`, counting an attempt. A claim is a compare-and-swap on the row, so two
/// senders never hold the same email.
pub async fn claim(
    db: &dyn Db,
    now: i64,
    lease_ms: i64,
    limit: i64,
) -> Result<Vec<Email>, DbError> {
    let due = db
        .query(
            "SELECT id FROM email_outbox WHERE sent_at IS NULL AND next_attempt_at <= $1 \
             AND (claimed_until IS NULL OR claimed_until < $1) ORDER BY next_attempt_at, id LIMIT $2",
            &[now.into(), limit.into()],
        )
        .await?;
    let mut claimed = Vec::new();
    for row in &due {
        let id = row.text(0)?;
        let n = db
            .execute(
                "UPDATE email_outbox SET claimed_until = $2, attempts = attempts + 1 WHERE id = $1 \
                 AND sent_at IS NULL AND next_attempt_at <= $3 AND (claimed_until IS NULL OR claimed_until < $3)",
                &[id.as_str().into(), (now + lease_ms).into(), now.into()],
            )
            .await?;
        if n != 1 {
            continue;
        }
        let rows = db
            .query(
                &format!("SELECT {COLUMNS} FROM email_outbox WHERE id = $1"),
                &[id.as_str().into()],
            )
            .await?;
        if let Some(email) = rows.first().map(from_row).transpose()? {
            claimed.push(email);
        }
    }
    Ok(claimed)
}

/// Marks a claimed email sent and clears its body (it may hold an invitation's token).
pub async fn mark_sent(db: &dyn Db, id: &EmailId, now: i64) -> Result<(), DbError> {
    db.execute(
        "UPDATE email_outbox SET sent_at = $2, claimed_until = NULL, body = '', last_error = NULL WHERE id = $1",
        &[id.as_str().into(), now.into()],
    )
    .await
    .map(drop)
}

/// Releases a claimed email after a failed attempt, to be tried again at `next_attempt_at`.
pub async fn mark_failed(
    db: &dyn Db,
    id: &EmailId,
    next_attempt_at: i64,
    error: &str,
) -> Result<(), DbError> {
    db.execute(
        "UPDATE email_outbox SET claimed_until = NULL, next_attempt_at = $2, last_error = $3 \
         WHERE id = $1 AND sent_at IS NULL",
        &[id.as_str().into(), next_attempt_at.into(), error.into()],
    )
    .await
    .map(drop)
}

/// How many emails are not sent yet (due now or waiting for a retry).
pub async fn pending(db: &dyn Db) -> Result<i64, DbError> {
    let rows = db
        .query(
            "SELECT COUNT(*) FROM email_outbox WHERE sent_at IS NULL",
            &[],
        )
        .await?;
    rows.first().map_or(Ok(0), |r| r.int(0))
}

/// Deletes emails sent before `before` (the cleanup job).
pub async fn purge_sent(db: &dyn Db, before: i64) -> Result<u64, DbError> {
    db.execute(
        "DELETE FROM email_outbox WHERE sent_at < $1",
        &[before.into()],
    )
    .await
}

/// Remembers that `user` signed in from `device`. True if it is the first time.
pub async fn remember_device(
    db: &dyn Db,
    user: &UserId,
    device: &str,
    now: i64,
) -> Result<bool, DbError> {
    let n = db
        .execute(
            "INSERT INTO known_devices (user_id, device, first_seen) VALUES ($1, $2, $3) \
             ON CONFLICT (user_id, device) DO NOTHING",
            &[user.as_str().into(), device.into(), now.into()],
        )
        .await?;
    Ok(n == 1)
}

/// How many devices `user` has signed in from.
pub async fn device_count(db: &dyn Db, user: &UserId) -> Result<i64, DbError> {
    let rows = db
        .query(
            "SELECT COUNT(*) FROM known_devices WHERE user_id = $1",
            &[user.as_str().into()],
        )
        .await?;
    rows.first().map_or(Ok(0), |r| r.int(0))
}

/// The email addresses of an owner's people: the user, or a team's owner and admins.
pub async fn owner_addresses(db: &dyn Db, owner: &str) -> Result<Vec<String>, DbError> {
    let rows = db
        .query(
            "SELECT email FROM users WHERE id = $1 \
             UNION SELECT u.email FROM team_members m JOIN users u ON u.id = m.user_id \
             JOIN teams t ON t.id = m.team_id WHERE m.team_id = $1 \
             AND (m.role = 'admin' OR m.user_id = t.owner_id) ORDER BY 1",
            &[owner.into()],
        )
        .await?;
    decode(rows, |r| r.text(0))
}
