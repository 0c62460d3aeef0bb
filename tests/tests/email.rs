//! Email notifications through the outbox, against a local stand-in for an HTTP email API: a
//! sign-in from a new device, team invitations (with the token that joins), budgets at 80% and
//! 100%, shares expiring within a day; a failing mail server loses nothing, and once it is back
//! every email arrives exactly once, even with two senders at once.

use std::time::Duration;

use feen_e2e::api::{Api, User};
use feen_e2e::feen::{Feen, Options};
use feen_e2e::mail::{Captured, MailCapture};
use feen_e2e::mock::MockProvider;
use http::{Method, StatusCode};
use serde_json::{Value, json};

const SECRET: &str = "sk-email-secret-0123456789";
const MAIL_KEY: &str = "re_test_0123456789abcdef";

async fn feen_with(mail: &MailCapture) -> Feen {
    Feen::start_with(Options {
        env: mail.env(),
        ..Options::default()
    })
    .await
}

/// Signs in as `user` from a client that names itself `agent`.
async fn login_from(api: &Api, user: &User, agent: &str) {
    let body = json!({"email": user.email, "password": user.password}).to_string();
    let headers = [("content-type", "application/json"), ("user-agent", agent)];
    let reply = api
        .raw(
            Method::POST,
            "/api/auth/login",
            &headers,
            Some(body.into_bytes()),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
}

/// The captured emails once there are at least `n`.
async fn wait_for(mail: &MailCapture, n: usize) -> Vec<Captured> {
    for _ in 0..200 {
        let emails = mail.emails();
        if emails.len() >= n {
            return emails;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("fewer than {n} emails arrived: {:?}", mail.emails());
}

/// Waits until the mail server saw `n` attempts.
async fn attempts_reach(mail: &MailCapture, n: usize) {
    for _ in 0..200 {
        if mail.attempts() >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("fewer than {n} send attempts: {}", mail.attempts());
}

/// (kind, sent?, attempts, body) of every outbox row.
async fn outbox(feen: &Feen) -> Vec<(String, bool, i64, String)> {
    let db = feen.db().await;
    let rows = db
        .query(
            "SELECT kind, sent_at, attempts, body FROM email_outbox ORDER BY id",
            &[],
        )
        .await
        .expect("outbox");
    rows.iter()
        .map(|r| {
            (
                r.text(0).expect("kind"),
                r.opt_int(1).expect("sent").is_some(),
                r.int(2).expect("attempts"),
                r.text(3).expect("body"),
            )
        })
        .collect()
}

#[tokio::test]
async fn new_devices_and_invitations_are_emailed_once() {
    let mail = MailCapture::start(MAIL_KEY).await;
    let feen = feen_with(&mail).await;
    let api = Api::new(&feen.base);
    let ann = api.signup("mail-ann").await;
    let bob = api.signup("mail-bob").await;
    // The first device of an account is not news; a second one is, once.
    login_from(&api, &ann, "Laptop/1.0").await;
    let emails = wait_for(&mail, 1).await;
    assert_eq!(emails[0].to, ann.email);
    assert_eq!(emails[0].from, "feen@example.com");
    assert_eq!(emails[0].subject, "New sign-in to your Feen account");
    assert!(emails[0].text.contains("Laptop/1.0"), "{}", emails[0].text);
    login_from(&api, &ann, "Laptop/1.0").await;
    login_from(&api, &bob, "Phone/2.0").await;

    // An invitation carries the token that joins the team.
    let team = api
        .post("/api/teams", Some(&ann.token), json!({"name": "Mailers"}))
        .await
        .str("/id");
    let invite = api
        .post(
            &format!("/api/teams/{team}/invites"),
            Some(&ann.token),
            json!({"email": bob.email, "role": "admin"}),
        )
        .await;
    assert_eq!(invite.status, StatusCode::CREATED, "{}", invite.text);
    let emails = wait_for(&mail, 3).await;
    let new_device: Vec<_> = emails
        .iter()
        .filter(|e| e.subject.starts_with("New sign-in"))
        .collect();
    assert_eq!(new_device.len(), 2, "one per new device: {emails:?}");
    let invitation = emails
        .iter()
        .find(|e| e.subject.contains("Mailers"))
        .expect("an invitation email");
    assert_eq!(invitation.to, bob.email);
    let token = invitation
        .text
        .split_whitespace()
        .find(|w| w.starts_with("feeninv_"))
        .expect("the token in the email");
    assert_eq!(token, invite.str("/token"));
    let joined = api
        .post(
            "/api/teams/invites/accept",
            Some(&bob.token),
            json!({"token": token}),
        )
        .await;
    assert_eq!(joined.status, StatusCode::OK, "{}", joined.text);

    // Sent emails keep no body (the invitation's held a token); nothing was sent twice.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let rows = outbox(&feen).await;
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert!(
        rows.iter()
            .all(|(_, sent, _, body)| *sent && body.is_empty()),
        "{rows:?}"
    );
    assert_eq!(
        (mail.emails().len(), mail.attempts(), mail.repeats()),
        (3, 3, 0)
    );
}

#[tokio::test]
async fn a_failing_mail_server_loses_nothing_and_each_email_arrives_once() {
    let mail = MailCapture::start(MAIL_KEY).await;
    mail.set_failing(true);
    let feen = feen_with(&mail).await;
    let api = Api::new(&feen.base);
    let ann = api.signup("outbox-ann").await;
    login_from(&api, &ann, "Tablet/3.0").await;
    let team = api
        .post("/api/teams", Some(&ann.token), json!({"name": "Retry"}))
        .await
        .str("/id");
    let invite = api
        .post(
            &format!("/api/teams/{team}/invites"),
            Some(&ann.token),
            json!({"email": "friend@example.com"}),
        )
        .await;
    assert_eq!(invite.status, StatusCode::CREATED);
    // Both were tried at once, and failed.
    attempts_reach(&mail, 2).await;
    assert!(mail.emails().is_empty());

    // The jobs retry only when a retry is due (backoff); then fail again, and keep the emails.
    feen.run_jobs().await;
    let tried = mail.attempts();
    assert_eq!(tried, 2, "no retry before its time");
    let db = feen.db().await;
    let due_now = "UPDATE email_outbox SET next_attempt_at = 0 WHERE sent_at IS NULL";
    db.execute(due_now, &[]).await.expect("make due");
    feen.run_jobs().await;
    assert_eq!(mail.attempts(), 4);
    let rows = outbox(&feen).await;
    assert_eq!(rows.len(), 2);
    assert!(
        rows.iter()
            .all(|(_, sent, attempts, body)| !sent && *attempts == 2 && !body.is_empty())
    );

    // Back up: two senders at once deliver each email exactly once.
    mail.set_failing(false);
    db.execute(due_now, &[]).await.expect("make due");
    tokio::join!(feen.run_jobs(), feen.run_jobs());
    let emails = wait_for(&mail, 2).await;
    assert_eq!(emails.len(), 2, "{emails:?}");
    assert_eq!(mail.repeats(), 0, "no email was sent twice");
    assert_eq!(mail.attempts(), 6, "each email once more, by one sender");
    let mut to: Vec<&str> = emails.iter().map(|e| e.to.as_str()).collect();
    to.sort_unstable();
    let mut expected = vec![ann.email.as_str(), "friend@example.com"];
    expected.sort_unstable();
    assert_eq!(to, expected);
    assert!(outbox(&feen).await.iter().all(|(_, sent, _, _)| *sent));
    // Nothing more to send.
    db.execute(due_now, &[]).await.expect("make due");
    feen.run_jobs().await;
    assert_eq!(mail.attempts(), 6);
}

fn chat(max_tokens: u64) -> Value {
    json!({"model": "gpt-4o", "max_tokens": max_tokens, "messages": [{"role": "user", "content": "hi"}]})
}

#[tokio::test]
async fn budgets_and_expiring_shares_are_announced_once() {
    let mail = MailCapture::start(MAIL_KEY).await;
    let feen = feen_with(&mail).await;
    let api = Api::new(&feen.base);
    let mock = MockProvider::start(SECRET).await;
    let ann = api.signup("budget-ann").await;
    let bob = api.signup("budget-bob").await;
    let key = api.add_key(&ann, "openai", SECRET, &mock.base_url()).await;
    // What one request costs, measured on a share without limits.
    let (probe, probe_token) = api.mint(&ann, &key, json!({})).await;
    assert_eq!(api.chat(&probe_token, chat(1)).await.status, StatusCode::OK);
    let usage = api.wait_for_usage(&ann, &probe, 1).await;
    let cost = usage.body["totals"]["costMicros"].as_u64().expect("cost");
    assert!(cost > 0);

    // After one request the owners lower the budgets: `full` has spent all of its month's,
    // `most` 5/6 of it. (Budgets reserve the worst case, so a request never takes one past 100%
    // by itself.)
    let usd = |micros: u64| micros as f64 / 1_000_000.0;
    let budget = |micros: u64| json!({"budgetUsd": usd(micros), "budgetPeriod": "month"});
    let (full, full_token) = api.mint(&ann, &key, budget(cost * 10)).await;
    let (most, most_token) = api.mint(&ann, &key, budget(cost * 10)).await;
    for (share, token, lowered) in [
        (&full, &full_token, cost),
        (&most, &most_token, cost * 6 / 5),
    ] {
        let reply = api.chat(token, chat(1)).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        api.wait_for_usage(&ann, share, 1).await;
        let patched = api
            .patch(&format!("/api/shared/{share}"), &ann.token, budget(lowered))
            .await;
        assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
    }
    // A share expiring within the day and one expiring later; a team's expiring share reaches
    // its owner and its admins.
    let soon = chrono_in(2 * 3600);
    let (expiring, _) = api.mint(&ann, &key, json!({"expiresAt": soon})).await;
    api.mint(&ann, &key, json!({"expiresAt": chrono_in(3 * 86_400)}))
        .await;
    let team = api
        .post("/api/teams", Some(&ann.token), json!({"name": "Budgets"}))
        .await
        .str("/id");
    let invite = api
        .post(
            &format!("/api/teams/{team}/invites"),
            Some(&ann.token),
            json!({"email": bob.email, "role": "admin"}),
        )
        .await
        .str("/token");
    let accepted = api
        .post(
            "/api/teams/invites/accept",
            Some(&bob.token),
            json!({"token": invite}),
        )
        .await;
    assert_eq!(accepted.status, StatusCode::OK);
    let body = json!({"name": "t", "provider": "openai", "apiKey": SECRET, "baseUrl": mock.base_url(), "teamId": team});
    let team_key = api
        .post("/api/keys", Some(&ann.token), body)
        .await
        .str("/id");
    let (team_share, _) = api.mint(&bob, &team_key, json!({"expiresAt": soon})).await;
    let before = wait_for(&mail, 1).await.len(); // the invitation

    feen.run_jobs().await;
    let emails = wait_for(&mail, before + 6).await;
    let about = |share: &str| -> Vec<(String, String)> {
        emails
            .iter()
            .filter(|e| e.text.contains(share))
            .map(|e| (e.to.clone(), e.subject.clone()))
            .collect()
    };
    let mut full_mails = about(&full);
    full_mails.sort();
    assert_eq!(
        full_mails,
        vec![
            (
                ann.email.clone(),
                "Feen share \"test share\" has used 100% of its month budget".into()
            ),
            (
                ann.email.clone(),
                "Feen share \"test share\" has used 80% of its month budget".into()
            ),
        ]
    );
    assert_eq!(
        about(&most),
        vec![(
            ann.email.clone(),
            "Feen share \"test share\" has used 80% of its month budget".into()
        )]
    );
    assert_eq!(
        about(&expiring),
        vec![(
            ann.email.clone(),
            "Feen share \"test share\" expires within a day".into()
        )]
    );
    let mut team_mails: Vec<String> = about(&team_share).into_iter().map(|(to, _)| to).collect();
    team_mails.sort();
    let mut admins = vec![ann.email.clone(), bob.email.clone()];
    admins.sort();
    assert_eq!(team_mails, admins);
    assert_eq!(
        emails.len(),
        before + 6,
        "nothing about the probe or the later expiry"
    );

    // Announced once: the next runs add nothing.
    feen.run_jobs().await;
    feen.run_jobs().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(mail.emails().len(), before + 6);
    assert_eq!(mail.repeats(), 0);
}

/// An RFC 3339 time `secs` from now.
fn chrono_in(secs: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    feen_core::timefmt::to_rfc3339(now + secs * 1000)
}
