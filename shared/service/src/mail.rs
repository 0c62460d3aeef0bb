//! Email notifications through the outbox: [`notify`] writes an email once per event (its
//! dedupe key) and asks for a delivery after the response; [`deliver`] (also run by the periodic
//! jobs) claims due emails and posts them to the configured HTTP mail API (a Resend-style
//! `POST {from, to, subject, text}` with a bearer key and the email's id as `Idempotency-Key`),
//! retrying failures with backoff. A failed send is retried, never dropped; a claim is a lease
//! on the row, so two senders never send the same email, and the idempotency key covers a
//! sender that dies between the API's answer and marking the row sent.

use feen_core::ids::{EmailId, derived};
use feen_core::ports::{Db, HttpClient};
use feen_core::secret::SecretString;
use feen_core::{Body, Error};
use feen_store::outbox::{self, Email};
use http::header::{AUTHORIZATION, CONTENT_TYPE};

use crate::Ctx;

/// Where emails are sent: `FEEN_EMAIL_API_URL`, `FEEN_EMAIL_API_KEY`, `FEEN_EMAIL_FROM`.
#[derive(Debug)]
pub struct MailConfig {
    /// The mail API's send endpoint.
    pub api_url: String,
    /// Its bearer key.
    pub api_key: SecretString,
    /// The sender address.
    pub from: String,
}

/// One notification to send.
#[derive(Clone, Debug)]
pub struct Message {
    /// What it is about (`new_device`, `team_invite`, `budget`, `share_expiring`).
    pub kind: &'static str,
    /// One email per event: the same key again sends nothing.
    pub dedupe_key: String,
    /// The recipient.
    pub to: String,
    /// The subject.
    pub subject: String,
    /// The plain-text body.
    pub body: String,
}

/// The outbox row for a message (its id derived from the dedupe key).
pub fn email(message: Message, now: i64) -> Email {
    Email {
        id: EmailId::new(now, derived(&message.dedupe_key)),
        dedupe_key: message.dedupe_key,
        kind: message.kind.to_owned(),
        to: message.to,
        subject: message.subject,
        body: message.body,
        created_at: now,
        attempts: 0,
    }
}

/// Writes the message to the outbox (once per dedupe key) and delivers it after the response.
/// Without a mail API configured, nothing is written. A failure is logged: the action that
/// caused the notification has happened already.
pub async fn notify(ctx: &Ctx, message: Message) {
    if ctx.config.mail.is_none() {
        return;
    }
    match outbox::enqueue(ctx.db.as_ref(), &email(message, ctx.now_ms())).await {
        Ok(true) => {
            let later = ctx.clone();
            ctx.defer.defer(Box::pin(async move {
                if let Some(mail) = later.config.mail.as_ref() {
                    let now = later.now_ms();
                    if let Err(e) = deliver(later.db.as_ref(), later.http.as_ref(), mail, now).await
                    {
                        tracing::warn!(error = %e, "email delivery failed; the jobs retry it");
                    }
                }
            }));
        }
        Ok(false) => {}
        Err(e) => tracing::error!(error = %e, "email not written to the outbox"),
    }
}

/// How long a sender holds a claimed email.
const LEASE_MS: i64 = 60_000;
/// The most emails one delivery sends.
const BATCH: i64 = 50;

/// When to try again after `attempts` failed attempts: 30 s, doubling, at most an hour.
pub fn backoff_ms(attempts: i64) -> i64 {
    let doublings = u32::try_from(attempts.clamp(1, 8) - 1).unwrap_or(0);
    (30_000_i64 << doublings).min(3_600_000)
}

/// What a delivery did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Delivery {
    /// Emails the mail API accepted.
    pub sent: u64,
    /// Emails that failed this time (they are retried).
    pub failed: u64,
}

/// Sends the emails that are due.
pub async fn deliver(
    db: &dyn Db,
    http: &dyn HttpClient,
    mail: &MailConfig,
    now: i64,
) -> Result<Delivery, Error> {
    let mut done = Delivery::default();
    for email in outbox::claim(db, now, LEASE_MS, BATCH).await? {
        match send(http, mail, &email).await {
            Ok(()) => {
                outbox::mark_sent(db, &email.id, now).await?;
                done.sent += 1;
            }
            Err(reason) => {
                tracing::warn!(email = %email.id, attempts = email.attempts, %reason, "email not sent; retrying later");
                let next = now + backoff_ms(email.attempts);
                outbox::mark_failed(db, &email.id, next, &reason).await?;
                done.failed += 1;
            }
        }
    }
    Ok(done)
}

async fn send(http: &dyn HttpClient, mail: &MailConfig, email: &Email) -> Result<(), String> {
    let body = serde_json::json!({
        "from": mail.from,
        "to": [email.to],
        "subject": email.subject,
        "text": email.body,
    });
    let request = http::Request::post(&mail.api_url)
        .header(CONTENT_TYPE, "application/json")
        .header(AUTHORIZATION, format!("Bearer {}", mail.api_key.expose()))
        .header("idempotency-key", email.id.as_str())
        .body(Body::from(body.to_string()))
        .map_err(|e| format!("request: {e}"))?;
    let response = http.send(request).await.map_err(|e| e.0)?;
    let status = response.status();
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("the mail API answered {}", status.as_u16()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_an_hour() {
        let waits: Vec<i64> = (1..=9).map(backoff_ms).collect();
        assert_eq!(
            waits,
            [
                30_000, 60_000, 120_000, 240_000, 480_000, 960_000, 1_920_000, 3_600_000, 3_600_000
            ]
        );
        assert_eq!(backoff_ms(0), 30_000);
    }

    #[test]
    fn an_events_email_has_one_id_whoever_writes_it() {
        let message = Message {
            kind: "budget",
            dedupe_key: "budget:shr_x:2026-11:80".into(),
            to: "a@example.com".into(),
            subject: "s".into(),
            body: "b".into(),
        };
        let a = email(message.clone(), 1_000);
        let b = email(message, 1_000);
        assert_eq!(a.id, b.id);
        assert!(a.id.as_str().starts_with("eml_"));
    }
}
