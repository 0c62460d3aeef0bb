//! The audit log over HTTP: every sensitive action leaves one row in its owner's chain (never a
//! secret), the listing filters and pages, another user sees nothing of it, and verification
//! finds a row edited in the database.

use std::time::Duration;

use feen_e2e::api::{Api, User};
use feen_e2e::feen::Feen;
use http::{Method, StatusCode};
use serde_json::{Value, json};

const API_KEY: &str = "sk-audit-secret-0123456789abcdef";

fn actions(reply: &Value) -> Vec<String> {
    reply["entries"]
        .as_array()
        .map(|entries| {
            entries
                .iter()
                .filter_map(|e| e["action"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The caller's audit log once it has `n` rows (some are written after the response).
async fn log_of(api: &Api, user: &User, n: usize) -> Value {
    for _ in 0..100 {
        let reply = api.get("/api/audit?limit=200", &user.token).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        if actions(&reply.body).len() >= n {
            return reply.body;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the audit log never reached {n} rows");
}

#[tokio::test]
async fn every_sensitive_action_is_logged_chained_and_private() {
    let feen = Feen::start().await;
    let api = Api::new(&feen.base);
    let ann = api.signup("audit-ann").await;
    let bob = api.signup("audit-bob").await;

    let key = api
        .add_key(&ann, "openai", API_KEY, "https://api.openai.com/v1")
        .await;
    let renamed = api
        .patch(
            &format!("/api/keys/{key}"),
            &ann.token,
            json!({"name": "prod"}),
        )
        .await;
    assert_eq!(renamed.status, StatusCode::OK, "{}", renamed.text);
    let rotated = api
        .post(
            &format!("/api/keys/{key}/rotate"),
            Some(&ann.token),
            json!({"apiKey": "sk-audit-rotated-0123456789abcdef"}),
        )
        .await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.text);
    let (share, share_token) = api.mint(&ann, &key, json!({"rateLimit": 5})).await;
    let updated = api
        .patch(
            &format!("/api/shared/{share}"),
            &ann.token,
            json!({"rateLimit": 9}),
        )
        .await;
    assert_eq!(updated.status, StatusCode::OK, "{}", updated.text);
    let regenerated = api
        .post(
            &format!("/api/shared/{share}/regenerate"),
            Some(&ann.token),
            json!({}),
        )
        .await;
    assert_eq!(regenerated.status, StatusCode::OK, "{}", regenerated.text);
    let new_token = regenerated.str("/token");
    let revoked = api
        .delete(&format!("/api/shared/{share}"), &ann.token)
        .await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT);
    let pat = api
        .post(
            "/api/auth/tokens",
            Some(&ann.token),
            json!({"name": "ci", "password": ann.password}),
        )
        .await;
    assert_eq!(pat.status, StatusCode::CREATED, "{}", pat.text);
    let (pat_id, pat_token) = (pat.str("/id"), pat.str("/token"));
    let pat_revoked = api
        .delete(&format!("/api/auth/tokens/{pat_id}"), &ann.token)
        .await;
    assert_eq!(pat_revoked.status, StatusCode::NO_CONTENT);
    let deleted = api.delete(&format!("/api/keys/{key}"), &ann.token).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let failed = api
        .post(
            "/api/auth/login",
            None,
            json!({"email": ann.email, "password": "not the password"}),
        )
        .await;
    assert_eq!(failed.status, StatusCode::UNAUTHORIZED);

    let log = log_of(&api, &ann, 12).await;
    let mut seen = actions(&log);
    // The failed login is written after its response; it may land anywhere after the delete.
    let failed_at = seen
        .iter()
        .position(|a| a == "auth.login_failed")
        .expect("the failed login is logged");
    seen.remove(failed_at);
    assert_eq!(
        seen,
        [
            "key.deleted",
            "pat.revoked",
            "pat.created",
            "share.revoked",
            "share.regenerated",
            "share.updated",
            "share.minted",
            "key.rotated",
            "key.renamed",
            "key.added",
            "auth.login",
        ]
    );
    let text = log.to_string();
    for secret in [
        API_KEY,
        "sk-audit-rotated",
        share_token.as_str(),
        new_token.as_str(),
        pat_token.as_str(),
        ann.password.as_str(),
        "not the password",
        ann.refresh.as_str(),
    ] {
        assert!(!text.contains(secret), "the audit log holds a secret");
    }
    for entry in log["entries"].as_array().expect("entries") {
        assert_eq!(entry["clientIp"], "127.0.0.1", "{entry}");
        assert!(entry["hash"].as_str().is_some_and(|h| h.len() == 64));
    }

    // Bob's log has his own login and nothing of Ann's.
    let bobs = log_of(&api, &bob, 1).await;
    assert_eq!(actions(&bobs), ["auth.login"]);

    // Filters and pages.
    let rotations = api.get("/api/audit?action=key.rotated", &ann.token).await;
    assert_eq!(actions(&rotations.body), ["key.rotated"]);
    let about_share = api
        .get(&format!("/api/audit?resourceId={share}"), &ann.token)
        .await;
    assert_eq!(actions(&about_share.body).len(), 4);
    let first = api.get("/api/audit?limit=5", &ann.token).await;
    assert_eq!(actions(&first.body).len(), 5);
    let cursor = first.str("/nextCursor");
    let second = api
        .get(&format!("/api/audit?limit=5&cursor={cursor}"), &ann.token)
        .await;
    let seqs = |v: &Value| -> Vec<i64> {
        v["entries"]
            .as_array()
            .map(|e| e.iter().filter_map(|e| e["seq"].as_i64()).collect())
            .unwrap_or_default()
    };
    assert_eq!(seqs(&first.body), [12, 11, 10, 9, 8]);
    assert_eq!(seqs(&second.body), [7, 6, 5, 4, 3]);

    // The chain verifies, then shows an edit made behind Feen's back.
    let verified = api.get("/api/audit/verify", &ann.token).await;
    assert_eq!(verified.status, StatusCode::OK, "{}", verified.text);
    assert_eq!(verified.body["valid"], true, "{}", verified.text);
    assert_eq!(verified.body["checked"], 12);
    let db = feen.db().await;
    db.execute(
        "UPDATE audit_log SET details = '{}' WHERE owner_id = $1 AND seq = 2",
        &[ann.id.as_str().into()],
    )
    .await
    .expect("tamper");
    let broken = api.get("/api/audit/verify", &ann.token).await;
    assert_eq!(broken.body["valid"], false, "{}", broken.text);
    assert_eq!(broken.body["brokenAt"], json!({"seq": 2, "reason": "hash"}));
    let later = api.get("/api/audit/verify?fromSeq=3", &ann.token).await;
    assert_eq!(later.body["valid"], true, "{}", later.text);
    assert_eq!(later.body["checked"], 10);

    // Deleting the newest rows leaves an intact, shorter chain; the anchored head shows it.
    db.execute(
        "DELETE FROM audit_log WHERE owner_id = $1 AND seq >= 11",
        &[ann.id.as_str().into()],
    )
    .await
    .expect("truncate");
    let truncated = api.get("/api/audit/verify?fromSeq=3", &ann.token).await;
    assert_eq!(truncated.body["valid"], false, "{}", truncated.text);
    assert_eq!(
        truncated.body["brokenAt"],
        json!({"seq": 11, "reason": "truncated"})
    );
}

#[tokio::test]
async fn the_audit_endpoints_refuse_bad_input() {
    let feen = Feen::start().await;
    let api = Api::new(&feen.base);
    let user = api.signup("audit-bad").await;
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=201", "limit"),
        ("limit=ten", "limit"),
        ("action=key.stolen", "action"),
        ("from=yesterday", "from"),
        ("cursor=-1", "cursor"),
        ("colour=blue", "query"),
    ] {
        let reply = api.get(&format!("/api/audit?{query}"), &user.token).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{query}: {}",
            reply.text
        );
        assert_eq!(reply.code(), "validation_failed", "{query}: {}", reply.text);
        assert_eq!(reply.body["error"]["field"], field, "{query}");
    }
    let anonymous = api.raw(Method::GET, "/api/audit", &[], None).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    let post = api
        .raw(
            Method::POST,
            "/api/audit",
            &[("authorization", &format!("Bearer {}", user.token))],
            None,
        )
        .await;
    assert_eq!(post.status, StatusCode::METHOD_NOT_ALLOWED);
    let range = api
        .get("/api/audit/verify?fromSeq=1&toSeq=20000", &user.token)
        .await;
    assert_eq!(range.status, StatusCode::OK, "{}", range.text);
    assert_eq!(range.body["toSeq"], 1, "the range ends at the chain's head");
}
