//! Bad input, endpoint by endpoint: every answer is a JSON error with a stable code and the
//! right status, carries no internal detail, and changes nothing.

use feen_core::crypto::jwt::AccessKeys;
use feen_core::ids::{SessionId, UserId};
use feen_e2e::api::{Api, Reply, User};
use feen_e2e::feen::{Feen, Options, Secrets};
use feen_e2e::mock::MockProvider;
use http::{Method, StatusCode};
use serde_json::{Value, json};

const SECRET: &str = "sk-mock-badinput-0123456789";

/// (what, content type, body, expected status, expected code)
type BadBody = (
    &'static str,
    Option<&'static str>,
    Vec<u8>,
    StatusCode,
    &'static str,
);

struct World {
    api: Api,
    ann: User,
    bob: User,
    ann_key: String,
    ann_share: String,
    ann_pat_id: String,
    /// Ann's team, with a pending invitation.
    ann_team: String,
    ann_invite: String,
    secrets: Secrets,
    _mock: MockProvider,
    _feen: Feen,
}

async fn world() -> World {
    let secrets = Secrets::fresh();
    let feen = Feen::start_with(Options {
        secrets: Some(secrets.clone()),
        ..Options::default()
    })
    .await;
    let api = Api::new(&feen.base);
    let mock = MockProvider::start(SECRET).await;
    let ann = api.signup("ann").await;
    let bob = api.signup("bob").await;
    let ann_key = api.add_key(&ann, "openai", SECRET, &mock.base_url()).await;
    let (ann_share, _) = api.mint(&ann, &ann_key, json!({"rateLimit": 10})).await;
    let pat = api
        .post(
            "/api/auth/tokens",
            Some(&ann.token),
            json!({"name": "cli", "password": ann.password}),
        )
        .await;
    let team = api
        .post(
            "/api/teams",
            Some(&ann.token),
            json!({"name": "ann's team"}),
        )
        .await
        .str("/id");
    let invite = api
        .post(
            &format!("/api/teams/{team}/invites"),
            Some(&ann.token),
            json!({"email": "someone@example.com"}),
        )
        .await
        .str("/id");
    World {
        api,
        ann,
        bob,
        ann_key,
        ann_share,
        ann_pat_id: pat.str("/id"),
        ann_team: team,
        ann_invite: invite,
        secrets,
        _mock: mock,
        _feen: feen,
    }
}

/// Everything either user can see, to prove a bad request changed nothing.
async fn snapshot(w: &World) -> Vec<Value> {
    let mut out = Vec::new();
    for user in [&w.ann, &w.bob] {
        for path in [
            "/api/keys",
            "/api/shared",
            "/api/auth/tokens",
            "/api/auth/me",
            "/api/teams",
        ] {
            out.push(w.api.get(path, &user.token).await.body);
        }
    }
    let team = format!("/api/teams/{}", w.ann_team);
    out.push(w.api.get(&team, &w.ann.token).await.body);
    out.push(
        w.api
            .get(&format!("{team}/invites"), &w.ann.token)
            .await
            .body,
    );
    out
}

fn assert_error(reply: &Reply, status: StatusCode, code: &str, what: &str) {
    assert_eq!(reply.status, status, "{what}: {}", reply.text);
    assert_eq!(reply.code(), code, "{what}: {}", reply.text);
    assert_eq!(
        reply.header("content-type"),
        Some("application/json"),
        "{what}"
    );
    let message = reply
        .body
        .pointer("/error/message")
        .and_then(Value::as_str)
        .unwrap_or("");
    assert!(!message.is_empty(), "{what}: no message");
    for leak in [
        "sqlx",
        "SELECT",
        "panicked",
        "argon2",
        SECRET,
        "stack backtrace",
    ] {
        assert!(
            !reply.text.contains(leak),
            "{what}: leaked {leak:?}: {}",
            reply.text
        );
    }
}

async fn send(
    w: &World,
    method: &Method,
    path: &str,
    token: Option<&str>,
    content_type: Option<&str>,
    body: Option<Vec<u8>>,
) -> Reply {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers = Vec::new();
    if let Some(a) = auth.as_deref() {
        headers.push(("authorization", a));
    }
    if let Some(ct) = content_type {
        headers.push(("content-type", ct));
    }
    w.api.raw(method.clone(), path, &headers, body).await
}

#[tokio::test]
async fn json_endpoints_refuse_malformed_bodies_and_change_nothing() {
    let w = world().await;
    let before = snapshot(&w).await;
    let k = &w.ann_key;
    let s = &w.ann_share;
    let (t, a) = (&w.ann_team, &w.ann.id);
    let endpoints: Vec<(Method, String, bool)> = vec![
        (Method::POST, "/api/auth/register".into(), false),
        (Method::POST, "/api/auth/login".into(), false),
        (Method::POST, "/api/auth/tokens".into(), true),
        (Method::POST, "/api/keys".into(), true),
        (Method::PATCH, format!("/api/keys/{k}"), true),
        (Method::POST, format!("/api/keys/{k}/rotate"), true),
        (Method::POST, "/api/shared".into(), true),
        (Method::PATCH, format!("/api/shared/{s}"), true),
        (Method::POST, "/api/teams".into(), true),
        (Method::PATCH, format!("/api/teams/{t}"), true),
        (Method::POST, format!("/api/teams/{t}/invites"), true),
        (Method::PATCH, format!("/api/teams/{t}/members/{a}"), true),
        (Method::POST, format!("/api/teams/{t}/transfer"), true),
        (Method::POST, "/api/teams/invites/accept".into(), true),
    ];
    let oversized = format!("{{\"name\":\"{}\"}}", "x".repeat(70 * 1024)).into_bytes();
    let bodies: Vec<BadBody> = vec![
        (
            "malformed JSON",
            Some("application/json"),
            b"{\"name\":".to_vec(),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            "empty body",
            Some("application/json"),
            Vec::new(),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            "a JSON array",
            Some("application/json"),
            b"[1,2]".to_vec(),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            "a JSON string",
            Some("application/json"),
            b"\"hello\"".to_vec(),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            "an unknown field",
            Some("application/json"),
            b"{\"nonsense\":1}".to_vec(),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            "not JSON content type",
            Some("text/plain"),
            b"{}".to_vec(),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            "no content type",
            None,
            b"{}".to_vec(),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            "an oversized body",
            Some("application/json"),
            oversized,
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
    ];
    for (method, path, auth) in &endpoints {
        for (what, content_type, body, status, code) in &bodies {
            let token = auth.then_some(w.ann.token.as_str());
            let reply = send(&w, method, path, token, *content_type, Some(body.clone())).await;
            assert_error(
                &reply,
                *status,
                code,
                &format!("{method} {path} with {what}"),
            );
        }
    }
    assert_eq!(snapshot(&w).await, before);
}

#[tokio::test]
async fn fields_are_validated_with_their_names() {
    let w = world().await;
    let before = snapshot(&w).await;
    let t = Some(w.ann.token.as_str());
    let k = &w.ann_key;
    let cases: Vec<(&str, Value, StatusCode, &str)> = vec![
        (
            "/api/auth/register",
            json!({"email": "not-an-email", "password": "long enough pass", "name": "X"}),
            StatusCode::BAD_REQUEST,
            "validation_failed",
        ),
        (
            "/api/auth/register",
            json!({"email": "short@example.com", "password": "short", "name": "X"}),
            StatusCode::BAD_REQUEST,
            "validation_failed",
        ),
        (
            "/api/auth/register",
            json!({"email": "noname@example.com", "password": "long enough pass", "name": "  "}),
            StatusCode::BAD_REQUEST,
            "validation_failed",
        ),
        (
            "/api/auth/register",
            json!({"email": "typed@example.com", "password": 1234567890, "name": "X"}),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            "/api/auth/register",
            json!({"email": "missing@example.com", "name": "X"}),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            "/api/auth/login",
            json!({"email": "a@b.co"}),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            "/api/keys",
            json!({"name": "k", "provider": "nope", "apiKey": "sk-1"}),
            StatusCode::BAD_REQUEST,
            "validation_failed",
        ),
        (
            "/api/keys",
            json!({"name": "k", "provider": "openai", "apiKey": ""}),
            StatusCode::BAD_REQUEST,
            "validation_failed",
        ),
        (
            "/api/keys",
            json!({"name": "k", "provider": "openai", "apiKey": "sk 1"}),
            StatusCode::BAD_REQUEST,
            "validation_failed",
        ),
        (
            "/api/keys",
            json!({"name": "", "provider": "openai", "apiKey": "sk-1"}),
            StatusCode::BAD_REQUEST,
            "validation_failed",
        ),
        (
            "/api/keys",
            json!({"name": "k", "provider": "openai", "apiKey": "sk-1", "baseUrl": "ftp://x"}),
            StatusCode::BAD_REQUEST,
            "validation_failed",
        ),
        (
            "/api/keys",
            json!({"name": "k", "provider": "azure", "apiKey": "sk-1"}),
            StatusCode::BAD_REQUEST,
            "validation_failed",
        ),
        (
            "/api/keys",
            json!({"name": "k", "provider": 7, "apiKey": "sk-1"}),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            "/api/shared",
            json!({"apiKeyId": k, "name": "s", "rateLimit": 0}),
            StatusCode::BAD_REQUEST,
            "validation_failed",
        ),
        (
            "/api/shared",
            json!({"apiKeyId": k, "name": "s", "rateLimit": -1}),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            "/api/shared",
            json!({"apiKeyId": k, "name": "s", "rateLimit": "5"}),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            "/api/shared",
            json!({"apiKeyId": k, "name": "s", "dailyLimit": 1_000_000_000u64}),
            StatusCode::BAD_REQUEST,
            "validation_failed",
        ),
        (
            "/api/shared",
            json!({"apiKeyId": k, "name": "s", "expiresAt": "2001-01-01T00:00:00Z"}),
            StatusCode::BAD_REQUEST,
            "validation_failed",
        ),
        (
            "/api/shared",
            json!({"apiKeyId": k, "name": "s", "expiresAt": "tomorrow"}),
            StatusCode::BAD_REQUEST,
            "validation_failed",
        ),
        (
            "/api/shared",
            json!({"apiKeyId": k, "name": "s", "allowedModels": "gpt-4o"}),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            "/api/shared",
            json!({"apiKeyId": k, "name": "s", "allowedModels": [""]}),
            StatusCode::BAD_REQUEST,
            "validation_failed",
        ),
        (
            "/api/shared",
            json!({"apiKeyId": "key_nope", "name": "s"}),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            "/api/shared",
            json!({"apiKeyId": k, "name": ""}),
            StatusCode::BAD_REQUEST,
            "validation_failed",
        ),
        (
            "/api/auth/tokens",
            json!({"name": "t", "expiresAt": "soon"}),
            StatusCode::BAD_REQUEST,
            "validation_failed",
        ),
    ];
    for (path, body, status, code) in cases {
        let token = if path.starts_with("/api/auth/re") || path == "/api/auth/login" {
            None
        } else {
            t
        };
        let reply = w.api.post(path, token, body.clone()).await;
        assert_error(&reply, status, code, &format!("POST {path} {body}"));
        if code == "validation_failed" {
            assert!(
                reply.body.pointer("/error/field").is_some(),
                "{path} {body}: no field named"
            );
        }
    }
    let team = format!("/api/teams/{}", w.ann_team);
    let member = format!("{team}/members/{}", w.ann.id);
    let team_cases: Vec<(Method, String, Value, &str)> = vec![
        (
            Method::POST,
            "/api/teams".into(),
            json!({"name": ""}),
            "name",
        ),
        (
            Method::POST,
            "/api/teams".into(),
            json!({"name": "x".repeat(500)}),
            "name",
        ),
        (Method::PATCH, team.clone(), json!({"name": " "}), "name"),
        (
            Method::POST,
            format!("{team}/invites"),
            json!({"email": "nope"}),
            "email",
        ),
        (
            Method::POST,
            format!("{team}/invites"),
            json!({"email": "a@example.com", "role": "boss"}),
            "role",
        ),
        (
            Method::POST,
            format!("{team}/invites"),
            json!({"email": "a@example.com", "role": "Admin"}),
            "role",
        ),
        (Method::PATCH, member.clone(), json!({"role": ""}), "role"),
        (
            Method::POST,
            format!("{team}/transfer"),
            json!({"userId": w.ann.id}),
            "userId",
        ),
        (
            Method::GET,
            "/api/audit?teamId=nope".into(),
            Value::Null,
            "teamId",
        ),
        (
            Method::POST,
            "/api/keys".into(),
            json!({"name": "k", "provider": "openai", "apiKey": "sk-1", "baseUrl": "https://api.openai.com/v1", "teamId": "usr_x"}),
            "teamId",
        ),
    ];
    for (method, path, body, field) in team_cases {
        let body = (!body.is_null()).then_some(body);
        let reply = w.api.call(method.clone(), &path, t, body).await;
        let what = format!("{method} {path}");
        assert_error(&reply, StatusCode::BAD_REQUEST, "validation_failed", &what);
        assert_eq!(
            reply.body.pointer("/error/field"),
            Some(&json!(field)),
            "{what}"
        );
    }
    // Nobody is invited as owner, and the owner's own role cannot be changed: refusals, not
    // validation errors.
    for (method, path, body) in [
        (
            Method::POST,
            format!("{team}/invites"),
            json!({"email": "a@example.com", "role": "owner"}),
        ),
        (Method::PATCH, member, json!({"role": "viewer"})),
    ] {
        let reply = w.api.call(method.clone(), &path, t, Some(body)).await;
        let what = format!("{method} {path}");
        assert_error(&reply, StatusCode::FORBIDDEN, "insufficient_role", &what);
    }
    assert_eq!(snapshot(&w).await, before);
}

#[tokio::test]
async fn private_upstreams_are_refused_outside_dev_mode() {
    let feen = Feen::start_with(Options {
        // Listed, so that Spin (which cannot check resolved addresses) accepts the public one.
        env: vec![
            ("FEEN_ALLOW_PRIVATE_UPSTREAMS".into(), "0".into()),
            ("FEEN_UPSTREAM_HOSTS".into(), "gateway.example.com".into()),
        ],
        ..Options::default()
    })
    .await;
    let api = Api::new(&feen.base);
    let user = api.signup("ssrf").await;
    for url in [
        "http://127.0.0.1:9999",
        "https://127.0.0.1",
        "https://localhost",
        "https://2130706433",
        "https://0x7f.1",
        "https://[::1]",
        "https://169.254.169.254",
        "https://10.1.2.3",
        "https://[::ffff:127.0.0.1]",
    ] {
        let reply = api
            .post(
                "/api/keys",
                Some(&user.token),
                json!({"name": "k", "provider": "openai", "apiKey": "sk-1", "baseUrl": url}),
            )
            .await;
        assert_error(&reply, StatusCode::BAD_REQUEST, "validation_failed", url);
    }
    let ok = api.post("/api/keys", Some(&user.token), json!({"name": "k", "provider": "openai", "apiKey": "sk-1", "baseUrl": "https://gateway.example.com/v1"})).await;
    assert_eq!(ok.status, StatusCode::CREATED);
}

#[tokio::test]
async fn every_management_endpoint_requires_a_valid_token() {
    let w = world().await;
    let (k, s, p) = (&w.ann_key, &w.ann_share, &w.ann_pat_id);
    let (t, i, a) = (&w.ann_team, &w.ann_invite, &w.ann.id);
    let endpoints: Vec<(Method, String)> = vec![
        (Method::GET, "/api/auth/me".into()),
        (Method::GET, "/api/auth/tokens".into()),
        (Method::POST, "/api/auth/tokens".into()),
        (Method::DELETE, format!("/api/auth/tokens/{p}")),
        (Method::GET, "/api/keys".into()),
        (Method::POST, "/api/keys".into()),
        (Method::GET, format!("/api/keys/{k}")),
        (Method::PATCH, format!("/api/keys/{k}")),
        (Method::DELETE, format!("/api/keys/{k}")),
        (Method::POST, format!("/api/keys/{k}/rotate")),
        (Method::GET, "/api/shared".into()),
        (Method::POST, "/api/shared".into()),
        (Method::GET, format!("/api/shared/{s}")),
        (Method::PATCH, format!("/api/shared/{s}")),
        (Method::DELETE, format!("/api/shared/{s}")),
        (Method::POST, format!("/api/shared/{s}/regenerate")),
        (Method::GET, format!("/api/shared/{s}/usage")),
        (Method::GET, "/api/audit".into()),
        (Method::GET, "/api/audit/verify".into()),
        (Method::GET, "/api/teams".into()),
        (Method::POST, "/api/teams".into()),
        (Method::POST, "/api/teams/invites/accept".into()),
        (Method::GET, format!("/api/teams/{t}")),
        (Method::PATCH, format!("/api/teams/{t}")),
        (Method::DELETE, format!("/api/teams/{t}")),
        (Method::GET, format!("/api/teams/{t}/invites")),
        (Method::POST, format!("/api/teams/{t}/invites")),
        (Method::DELETE, format!("/api/teams/{t}/invites/{i}")),
        (Method::PATCH, format!("/api/teams/{t}/members/{a}")),
        (Method::DELETE, format!("/api/teams/{t}/members/{a}")),
        (Method::POST, format!("/api/teams/{t}/leave")),
        (Method::POST, format!("/api/teams/{t}/transfer")),
    ];
    let stranger = AccessKeys::new(&[9; 32])
        .issue(
            &UserId::new(1, [1; 10]),
            &SessionId::new(1, [1; 10]),
            now_secs(),
        )
        .map(|t| t.expose().to_owned())
        .unwrap_or_default();
    let ours = AccessKeys::new(&base64_decode(&w.secrets.session));
    let ann_id = UserId::parse(&w.ann.id).expect("user id");
    let expired = ours
        .issue(&ann_id, &SessionId::new(1, [2; 10]), now_secs() - 3600)
        .map(|t| t.expose().to_owned())
        .unwrap_or_default();
    let still_valid = ours
        .issue(&ann_id, &SessionId::new(1, [3; 10]), now_secs())
        .map(|t| t.expose().to_owned())
        .unwrap_or_default();
    assert_eq!(
        w.api.get("/api/auth/me", &still_valid).await.status,
        StatusCode::OK,
        "the forged-token setup itself must work"
    );
    let before = snapshot(&w).await;
    for (method, path) in &endpoints {
        let body = (*method != Method::GET && *method != Method::DELETE).then(|| b"{}".to_vec());
        let ct = body.as_ref().map(|_| "application/json");
        let none = send(&w, method, path, None, ct, body.clone()).await;
        assert_error(
            &none,
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            &format!("{method} {path} without a token"),
        );
        for (what, token) in [
            ("garbage", "garbage"),
            ("a bad PAT", "feenpat_nope"),
            ("a foreign JWT", stranger.as_str()),
            ("an expired JWT", expired.as_str()),
        ] {
            let reply = send(&w, method, path, Some(token), ct, body.clone()).await;
            assert_error(
                &reply,
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                &format!("{method} {path} with {what}"),
            );
        }
    }
    assert_eq!(snapshot(&w).await, before);
}

#[tokio::test]
async fn another_users_and_unknown_ids_are_not_found() {
    let w = world().await;
    let before = snapshot(&w).await;
    let (k, s, p) = (&w.ann_key, &w.ann_share, &w.ann_pat_id);
    let json_body = Some(b"{\"name\":\"mine now\"}".to_vec());
    let rotate_body = Some(b"{\"apiKey\":\"sk-stolen\"}".to_vec());
    let requests: Vec<(Method, String, Option<Vec<u8>>, &str)> = vec![
        (Method::GET, format!("/api/keys/{k}"), None, "key"),
        (
            Method::PATCH,
            format!("/api/keys/{k}"),
            json_body.clone(),
            "key",
        ),
        (Method::DELETE, format!("/api/keys/{k}"), None, "key"),
        (
            Method::POST,
            format!("/api/keys/{k}/rotate"),
            rotate_body,
            "key",
        ),
        (Method::GET, format!("/api/shared/{s}"), None, "share"),
        (
            Method::PATCH,
            format!("/api/shared/{s}"),
            json_body,
            "share",
        ),
        (Method::DELETE, format!("/api/shared/{s}"), None, "share"),
        (
            Method::POST,
            format!("/api/shared/{s}/regenerate"),
            None,
            "share",
        ),
        (Method::GET, format!("/api/shared/{s}/usage"), None, "share"),
        (
            Method::DELETE,
            format!("/api/auth/tokens/{p}"),
            None,
            "token",
        ),
    ];
    for (method, path, body, _) in &requests {
        let ct = body.as_ref().map(|_| "application/json");
        // Bob may not touch Ann's resources, and cannot tell them from missing ones.
        let reply = send(&w, method, path, Some(&w.bob.token), ct, body.clone()).await;
        assert_error(
            &reply,
            StatusCode::NOT_FOUND,
            "not_found",
            &format!("bob: {method} {path}"),
        );
        for unknown in [
            "key_01AAAAAAAAAAAAAAAAAAAAAAAA",
            "shr_01AAAAAAAAAAAAAAAAAAAAAAAA",
            "pat_01AAAAAAAAAAAAAAAAAAAAAAAA",
            "not-an-id",
            "%00",
        ] {
            let swapped = path
                .replace(k.as_str(), unknown)
                .replace(s.as_str(), unknown)
                .replace(p.as_str(), unknown);
            let reply = send(&w, method, &swapped, Some(&w.ann.token), ct, body.clone()).await;
            assert_error(
                &reply,
                StatusCode::NOT_FOUND,
                "not_found",
                &format!("ann: {method} {swapped}"),
            );
        }
    }
    // Bob is in no team of Ann's: every team route answers as for a missing team, and so do
    // unknown and malformed team ids for Ann.
    let (t, i, a) = (&w.ann_team, &w.ann_invite, &w.ann.id);
    let team_requests: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, format!("/api/teams/{t}"), None),
        (
            Method::PATCH,
            format!("/api/teams/{t}"),
            Some(json!({"name": "mine"})),
        ),
        (Method::DELETE, format!("/api/teams/{t}"), None),
        (Method::GET, format!("/api/teams/{t}/invites"), None),
        (
            Method::POST,
            format!("/api/teams/{t}/invites"),
            Some(json!({"email": "b@example.com"})),
        ),
        (Method::DELETE, format!("/api/teams/{t}/invites/{i}"), None),
        (
            Method::PATCH,
            format!("/api/teams/{t}/members/{a}"),
            Some(json!({"role": "viewer"})),
        ),
        (Method::DELETE, format!("/api/teams/{t}/members/{a}"), None),
        (
            Method::POST,
            format!("/api/teams/{t}/leave"),
            Some(json!({})),
        ),
        (
            Method::POST,
            format!("/api/teams/{t}/transfer"),
            Some(json!({"userId": w.bob.id})),
        ),
        (Method::GET, format!("/api/audit?teamId={t}"), None),
        (Method::GET, format!("/api/audit/verify?teamId={t}"), None),
    ];
    for (method, path, body) in &team_requests {
        let reply = w
            .api
            .call(method.clone(), path, Some(&w.bob.token), body.clone())
            .await;
        assert_error(
            &reply,
            StatusCode::NOT_FOUND,
            "not_found",
            &format!("bob: {method} {path}"),
        );
        for unknown in ["team_01AAAAAAAAAAAAAAAAAAAAAAAA", "not-a-team", "%00"] {
            let swapped = path.replace(t.as_str(), unknown);
            let reply = w
                .api
                .call(method.clone(), &swapped, Some(&w.ann.token), body.clone())
                .await;
            // A malformed id in the query string is a validation error; in the path, not found.
            let status =
                if swapped.contains("?teamId=") && unknown != "team_01AAAAAAAAAAAAAAAAAAAAAAAA" {
                    StatusCode::BAD_REQUEST
                } else {
                    StatusCode::NOT_FOUND
                };
            assert_eq!(
                reply.status, status,
                "ann: {method} {swapped}: {}",
                reply.text
            );
        }
    }
    // Ann's own team, but members and invitations that are not there.
    for path in [
        format!("/api/teams/{t}/members/{}", w.bob.id),
        format!("/api/teams/{t}/members/usr_01AAAAAAAAAAAAAAAAAAAAAAAA"),
        format!("/api/teams/{t}/invites/inv_01AAAAAAAAAAAAAAAAAAAAAAAA"),
        format!("/api/teams/{t}/invites/not-an-id"),
    ] {
        let reply = w.api.delete(&path, &w.ann.token).await;
        assert_error(
            &reply,
            StatusCode::NOT_FOUND,
            "not_found",
            &format!("ann: DELETE {path}"),
        );
    }
    // Minting a share on someone else's key is the same as on a missing one.
    let mint = w
        .api
        .post(
            "/api/shared",
            Some(&w.bob.token),
            json!({"apiKeyId": k, "name": "theirs"}),
        )
        .await;
    assert_error(
        &mint,
        StatusCode::NOT_FOUND,
        "not_found",
        "bob mints on ann's key",
    );
    assert_eq!(snapshot(&w).await, before);
}

#[tokio::test]
async fn unknown_routes_and_methods_get_json_errors() {
    let w = world().await;
    let t = Some(w.ann.token.as_str());
    let cases: Vec<(Method, &str, StatusCode, &str)> = vec![
        (
            Method::PUT,
            "/api/keys",
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        (
            Method::POST,
            "/api/auth/me",
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        (
            Method::GET,
            "/api/auth/login",
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        (
            Method::GET,
            "/api/keys/a/b/c",
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            Method::GET,
            "/api/nothing",
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        // `/` is the dashboard; beside it, only its own files exist.
        (Method::GET, "/nothing", StatusCode::NOT_FOUND, "not_found"),
        (
            Method::POST,
            "/",
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        (
            Method::PUT,
            "/api/teams",
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        (
            Method::GET,
            "/api/teams/invites/accept",
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        (
            Method::GET,
            "/api/teams/team_x/leave",
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        (
            Method::PUT,
            "/api/teams/team_x/members/usr_x",
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        (
            Method::GET,
            "/api/teams/team_x/nothing",
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            Method::POST,
            "/api/audit",
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        (
            Method::POST,
            "/api/proxy",
            StatusCode::NOT_FOUND,
            "not_found",
        ),
    ];
    for (method, path, status, code) in cases {
        let reply = send(&w, &method, path, t, None, None).await;
        assert_error(&reply, status, code, &format!("{method} {path}"));
    }
}

#[tokio::test]
async fn the_proxy_refuses_bad_tokens_and_bodies_before_reaching_the_provider() {
    let w = world().await;
    let (_, token) = w.api.mint(&w.ann, &w.ann_key, json!({})).await;
    let mut flipped = token.clone();
    let last = flipped
        .pop()
        .map(|c| if c == 'a' { 'b' } else { 'a' })
        .unwrap_or('a');
    flipped.push(last);
    let path = "/api/proxy/v1/chat/completions";
    let body = Some(b"{\"model\":\"gpt-4o\"}".to_vec());
    let none = send(
        &w,
        &Method::POST,
        path,
        None,
        Some("application/json"),
        body.clone(),
    )
    .await;
    assert_error(&none, StatusCode::UNAUTHORIZED, "missing_token", "no token");
    for bad in ["garbage", "feen_", flipped.as_str(), w.ann.token.as_str()] {
        let reply = send(
            &w,
            &Method::POST,
            path,
            Some(bad),
            Some("application/json"),
            body.clone(),
        )
        .await;
        assert_error(&reply, StatusCode::UNAUTHORIZED, "invalid_token", bad);
    }
    let huge = vec![b' '; 33 * 1024 * 1024];
    let reply = send(
        &w,
        &Method::POST,
        path,
        Some(&token),
        Some("application/json"),
        Some(huge),
    )
    .await;
    assert_error(
        &reply,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        "33 MiB body",
    );
    assert!(
        w._mock.requests().is_empty(),
        "refused requests reached the provider"
    );
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap_or_default()
}
