//! The security hardening of issue 12, end to end on every host: what an upstream answers is
//! inert on Feen's origin, the proxy can live on a hostname of its own, the path checked is the
//! path sent, prices and reservations do not under-count, limits survive restarts, and bad
//! tokens cost little.

use feen_e2e::api::{Api, User};
use feen_e2e::feen::{Feen, Options};
use feen_e2e::mock::MockProvider;
use http::{Method, StatusCode};
use serde_json::json;

const SECRET: &str = "sk-mock-security-0123456789";

async fn setup() -> (Feen, Api, User, MockProvider) {
    let feen = Feen::start().await;
    let api = Api::new(&feen.base);
    let mock = MockProvider::start(SECRET).await;
    let user = api.signup("security").await;
    (feen, api, user, mock)
}

/// A `custom` key at the mock (the shape an attacker's own upstream would have) and a share of it.
async fn custom_share(api: &Api, user: &User, mock: &MockProvider) -> (String, String) {
    let reply = api
        .post(
            "/api/keys",
            Some(&user.token),
            json!({"name": "their server", "provider": "custom", "apiKey": SECRET,
                   "baseUrl": mock.base_url(), "authHeader": "X-Custom-Auth", "authTemplate": "Token {key}"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    let key = reply.str("/id");
    api.mint(user, &key, json!({})).await
}

#[tokio::test]
async fn upstream_answers_cannot_act_on_feens_origin() {
    let (_feen, api, user, mock) = setup().await;
    let (_share, token) = custom_share(&api, &user, &mock).await;

    // An HTML page, reached by a link that carries the token: passed through, but sandboxed.
    let page = api
        .raw(
            Method::GET,
            &format!("/api/proxy/hostile/html?key={token}"),
            &[],
            None,
        )
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    assert!(page.text.contains("Not Feen"), "the body is passed on");
    let csp: Vec<&str> = page
        .headers
        .get_all("content-security-policy")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    assert_eq!(csp.len(), 1, "{csp:?}");
    assert!(
        csp[0].starts_with("sandbox;") && csp[0].contains("default-src 'none'"),
        "{csp:?}"
    );
    assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
    for gone in [
        "set-cookie",
        "refresh",
        "clear-site-data",
        "openai-organization",
        "openai-project",
        "anthropic-organization-id",
    ] {
        assert!(
            page.header(gone).is_none(),
            "{gone} reached the client: {:?}",
            page.headers
        );
    }
    assert_eq!(page.header("x-request-id"), Some("req_mock"));

    // A redirect is not passed on: Feen is no open redirect, and the key goes nowhere else.
    let moved = api
        .raw(
            Method::GET,
            "/api/proxy/hostile/redirect",
            &[("authorization", &format!("Bearer {token}"))],
            None,
        )
        .await;
    assert_eq!(moved.status, StatusCode::BAD_GATEWAY, "{}", moved.text);
    assert_eq!(moved.code(), "upstream_redirect");
    assert!(moved.header("location").is_none());
    assert!(moved.header("set-cookie").is_none());
    assert!(!moved.text.contains("evil.example"));

    // Feen's own answers on the proxy carry the sandbox too.
    let refused = api
        .raw(
            Method::GET,
            "/api/proxy/hostile/html?key=feen_nope",
            &[],
            None,
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert!(
        refused
            .header("content-security-policy")
            .is_some_and(|c| c.starts_with("sandbox;"))
    );

    // The token holder cannot pick the owner's organisation or project.
    let picked = api
        .raw(
            Method::GET,
            "/api/proxy/hostile/json",
            &[
                ("authorization", &format!("Bearer {token}")),
                ("openai-organization", "org-someone-else"),
                ("OpenAI-Project", "proj_someone_else"),
            ],
            None,
        )
        .await;
    assert_eq!(picked.status, StatusCode::OK, "{}", picked.text);
    let sent = mock
        .requests()
        .into_iter()
        .find(|r| r.path.ends_with("/hostile/json"))
        .expect("the mock saw the request");
    assert_eq!(sent.header("openai-organization"), None);
    assert_eq!(sent.header("openai-project"), None);
    assert_eq!(
        sent.header("x-custom-auth"),
        Some(&*format!("Token {SECRET}"))
    );
}

#[tokio::test]
async fn the_proxy_can_have_a_hostname_of_its_own() {
    let feen = Feen::start_with(Options {
        env: vec![("FEEN_PROXY_HOST".into(), "proxy.feen.test".into())],
        ..Options::default()
    })
    .await;
    let api = Api::new(&feen.base);
    let mock = MockProvider::start(SECRET).await;
    let user = api.signup("proxyhost").await;
    let key = api.add_key(&user, "openai", SECRET, &mock.base_url()).await;
    let (_share, token) = api.mint(&user, &key, json!({})).await;
    let bearer = format!("Bearer {token}");
    let chat = |host: &'static str| {
        let api = api.clone();
        let bearer = bearer.clone();
        async move {
            api.raw(
                Method::POST,
                "/api/proxy/v1/chat/completions",
                &[
                    ("host", host),
                    ("authorization", &bearer),
                    ("content-type", "application/json"),
                ],
                Some(br#"{"model":"gpt-4o-mini","messages":[]}"#.to_vec()),
            )
            .await
        }
    };
    // On the proxy's hostname: the proxy, and nothing else.
    let there = chat("proxy.feen.test").await;
    assert_eq!(there.status, StatusCode::OK, "{}", there.text);
    let me = api
        .raw(
            Method::GET,
            "/api/auth/me",
            &[
                ("host", "proxy.feen.test"),
                ("authorization", &format!("Bearer {}", user.token)),
            ],
            None,
        )
        .await;
    assert_eq!(me.status, StatusCode::NOT_FOUND, "{}", me.text);
    let dashboard = api
        .raw(Method::GET, "/", &[("host", "proxy.feen.test:443")], None)
        .await;
    assert_eq!(dashboard.status, StatusCode::NOT_FOUND);
    // On the dashboard's hostname: no proxy.
    let here = chat("feen.test").await;
    assert_eq!(here.status, StatusCode::NOT_FOUND, "{}", here.text);
    assert_eq!(
        mock.requests().len(),
        1,
        "only the proxy host reached the provider"
    );
    let health = api
        .raw(
            Method::GET,
            "/healthz",
            &[("host", "proxy.feen.test")],
            None,
        )
        .await;
    assert_eq!(health.status, StatusCode::OK);
}

#[tokio::test]
async fn the_path_checked_is_the_path_sent() {
    let (_feen, api, user, mock) = setup().await;
    let key = api.add_key(&user, "openai", SECRET, &mock.base_url()).await;
    let (_share, token) = api
        .mint(&user, &key, json!({"allowedEndpoints": ["/v1/chat/*"]}))
        .await;
    let auth = format!("Bearer {token}");
    let headers = [
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
    ];
    let body = br#"{"model":"gpt-4o-mini","prompt":"a cat"}"#;
    // Every spelling that would reach /v1/images/generations past a /v1/chat/* allow-list. An edge
    // runtime may resolve some spellings itself before Feen sees them: then the allow-list
    // refuses what they resolve to. Either way nothing reaches the provider.
    for target in [
        "/api/proxy/v1/chat/../../v1/images/generations",
        "/api/proxy/v1/chat/%2e%2e/%2e%2e/v1/images/generations",
        "/api/proxy/v1/chat/%2E%2E/%2E%2E/v1/images/generations",
        "/api/proxy/v1/chat/.%2e/.%2E/v1/images/generations",
        "/api/proxy/v1/chat/..%2f..%2fv1/images/generations",
        "/api/proxy/v1/chat%2f..%2f..%2fimages/generations",
        "/api/proxy/v1/chat/..;/..;/v1/images/generations",
        "/v1/chat/../images/generations",
        "/api/proxy/v1/chat/./../../v1/images/generations",
    ] {
        let reply = api.raw_target("POST", target, &headers, body).await;
        let refused = matches!(
            (reply.status, reply.code()),
            (StatusCode::BAD_REQUEST, "invalid_path")
                | (StatusCode::FORBIDDEN, "endpoint_not_allowed")
                | (StatusCode::NOT_FOUND, "not_found")
        );
        assert!(refused, "{target}: {} {}", reply.status, reply.text);
    }
    assert!(
        mock.requests().is_empty(),
        "reached the provider: {:?}",
        mock.requests().iter().map(|r| &r.path).collect::<Vec<_>>()
    );
    // Doubled slashes are removed, and what is checked is what is sent.
    let chat = br#"{"model":"gpt-4o-mini","messages":[]}"#;
    let reply = api
        .raw_target("POST", "/api/proxy/v1//chat///completions", &headers, chat)
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let sent: Vec<String> = mock.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(sent, vec!["/v1/chat/completions".to_owned()]);
    // `*` does not cross a `/`.
    let deeper = api
        .raw_target("POST", "/api/proxy/v1/chat/x/completions", &headers, chat)
        .await;
    assert_eq!(
        (deeper.status, deeper.code()),
        (StatusCode::FORBIDDEN, "endpoint_not_allowed"),
        "{}",
        deeper.text
    );
}

#[tokio::test]
async fn the_model_in_the_path_is_the_one_checked_and_priced() {
    let (_feen, api, user, mock) = setup().await;
    let key = api.add_key(&user, "gemini", SECRET, &mock.base_url()).await;
    let (_share, token) = api
        .mint(
            &user,
            &key,
            json!({"allowedModels": ["gemini-2.0-flash"], "budgetUsd": 1.0}),
        )
        .await;
    let headers = [
        ("x-goog-api-key", token.as_str()),
        ("content-type", "application/json"),
    ];
    let cheap_body = br#"{"model":"gemini-2.0-flash","contents":[{"parts":[{"text":"hi"}]}]}"#;
    for target in [
        // The body names the allowed model; the path runs another.
        "/api/proxy/v1beta/models/gemini-2.5-pro:generateContent",
        // Climbing out of the allowed model's path.
        "/api/proxy/v1beta/models/gemini-2.0-flash/../gemini-2.5-pro:generateContent",
        "/api/proxy/v1beta/models/gemini-2.0-flash/%2e%2e/gemini-2.5-pro:generateContent",
    ] {
        let reply = api.raw_target("POST", target, &headers, cheap_body).await;
        assert!(
            matches!(
                (reply.status, reply.code()),
                (StatusCode::BAD_REQUEST, "invalid_path")
                    | (StatusCode::FORBIDDEN, "model_not_allowed")
            ),
            "{target}: {} {}",
            reply.status,
            reply.text
        );
    }
    assert!(mock.requests().is_empty(), "gemini-2.5-pro was reached");
    let ok = api
        .raw_target(
            "POST",
            "/api/proxy/v1beta/models/gemini-2.0-flash:generateContent",
            &headers,
            cheap_body,
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
    // The share reserves (it has a budget): a request without an output cap is sent with one.
    let sent = &mock.requests()[0];
    let sent_body: serde_json::Value = serde_json::from_slice(&sent.body).expect("json");
    assert_eq!(sent_body["generationConfig"]["maxOutputTokens"], 4096);
}

#[tokio::test]
async fn prices_are_never_guessed_and_bodies_that_lie_are_refused() {
    let (_feen, api, user, mock) = setup().await;
    let key = api.add_key(&user, "openai", SECRET, &mock.base_url()).await;
    let (_share, token) = api.mint(&user, &key, json!({"budgetUsd": 5.0})).await;
    for model in ["o1-pro", "gpt-4o-mini-anything", "gpt-4o-mini-tts"] {
        let reply = api
            .chat(
                &token,
                json!({"model": model, "messages": [], "max_tokens": 5}),
            )
            .await;
        assert_eq!(
            (reply.status, reply.code()),
            (StatusCode::FORBIDDEN, "model_not_priced"),
            "{model}: {}",
            reply.text
        );
    }
    let dated = api
        .chat(
            &token,
            json!({"model": "gpt-4o-mini-2024-07-18", "messages": [], "max_tokens": 5}),
        )
        .await;
    assert_eq!(dated.status, StatusCode::OK, "{}", dated.text);
    // A second `model` (which a provider might read instead of the first) is refused.
    let auth = format!("Bearer {token}");
    let twice = api
        .raw(
            Method::POST,
            "/api/proxy/v1/chat/completions",
            &[
                ("authorization", &auth),
                ("content-type", "application/json"),
            ],
            Some(br#"{"model":"gpt-4o-mini","messages":[],"model":"o1"}"#.to_vec()),
        )
        .await;
    assert_eq!(
        (twice.status, twice.code()),
        (StatusCode::BAD_REQUEST, "invalid_body"),
        "{}",
        twice.text
    );
    // Tools the provider bills per call cannot be bounded: refused on a budget.
    let search = api
        .chat(
            &token,
            json!({"model": "gpt-4o-mini", "messages": [], "max_tokens": 5,
                   "tools": [{"type": "web_search_preview"}]}),
        )
        .await;
    assert_eq!(
        (search.status, search.code()),
        (StatusCode::FORBIDDEN, "cost_not_bounded"),
        "{}",
        search.text
    );
    let long = "m".repeat(300);
    let too_long = api
        .chat(&token, json!({"model": long, "messages": []}))
        .await;
    assert_eq!(too_long.code(), "invalid_body", "{}", too_long.text);
    assert_eq!(mock.requests().len(), 1, "only the priced request was sent");
    // The request had a cap of its own: nothing was added.
    let sent: serde_json::Value = serde_json::from_slice(&mock.requests()[0].body).expect("json");
    assert_eq!(sent.get("max_completion_tokens"), None);
}

#[tokio::test]
async fn several_answers_per_request_cannot_overspend_a_budget() {
    // Each request asks for 8 answers of at most 7 tokens and really gets them (the mock bills
    // 7 output tokens per answer): its worst case is 8 × 7 output tokens, not 7.
    let (_feen, api, user, mock) = setup().await;
    let key = api.add_key(&user, "openai", SECRET, &mock.base_url()).await;
    let (share, token) = api
        .mint(
            &user,
            &key,
            json!({"budgetUsd": 0.001, "budgetPeriod": "day"}),
        )
        .await;
    let body = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}],
                      "max_tokens": feen_e2e::mock::OPENAI_OUTPUT_TOKENS, "n": 8});
    let calls: Vec<_> = (0..40)
        .map(|_| {
            let (api, token, body) = (api.clone(), token.clone(), body.clone());
            tokio::spawn(async move { api.chat(&token, body).await })
        })
        .collect();
    let mut admitted = 0u64;
    for call in calls {
        let reply = call.await.expect("task");
        match reply.status {
            StatusCode::OK => admitted += 1,
            StatusCode::TOO_MANY_REQUESTS => assert_eq!(reply.code(), "budget_exceeded"),
            other => panic!("unexpected {other}: {}", reply.text),
        }
    }
    assert!(admitted >= 1);
    assert_eq!(mock.requests().len() as u64, admitted);
    let usage = api.wait_for_usage(&user, &share, admitted).await;
    let spent = usage.body["totals"]["costMicros"]
        .as_u64()
        .unwrap_or(u64::MAX);
    assert!(
        spent <= 1000,
        "{admitted} requests spent {spent} of a 1000 micro-dollar budget"
    );
}

#[tokio::test]
async fn windowed_limits_survive_a_restart_and_a_counter_store_that_lost_its_data() {
    feen_e2e::api::within_one_minute().await;
    // Natively the embedded default restarts on its data directory (its counters were in the
    // process); an edge host starts again on the same database with an empty counter store (a
    // Redis that lost its data: a fresh key prefix).
    let native = std::env::var("FEEN_E2E_HOST").is_err();
    let data_dir = std::env::temp_dir().join(feen_e2e::feen::unique("feen-restart-"));
    let options = if native {
        Options {
            data_dir: Some(data_dir.clone()),
            ..Options::default()
        }
    } else {
        Options {
            backend: feen_e2e::feen::Backend::fresh_shared().await,
            secrets: Some(feen_e2e::feen::Secrets::fresh()),
            ..Options::default()
        }
    };
    let mock = MockProvider::start(SECRET).await;
    let first = Feen::start_with(options.clone()).await;
    let api = Api::new(&first.base);
    let user = api.signup("restart").await;
    let key = api.add_key(&user, "openai", SECRET, &mock.base_url()).await;
    let (share, token) = api
        .mint(&user, &key, json!({"dailyLimit": 3, "rateLimit": 3}))
        .await;
    let hi = json!({"model": "gpt-4o-mini", "messages": []});
    for _ in 0..3 {
        let reply = api.chat(&token, hi.clone()).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    }
    let recorded = api.wait_for_usage(&user, &share, 3).await;
    assert_eq!(recorded.body["totals"]["requests"], 3);
    if native {
        first.stop().await;
    } else {
        drop(first);
    }
    let second = Feen::start_with(options).await;
    let api = Api::new(&second.base);
    let fourth = api.chat(&token, hi.clone()).await;
    assert_eq!(
        fourth.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        fourth.text
    );
    assert!(
        matches!(
            fourth.code(),
            "daily_limit_exceeded" | "rate_limit_exceeded"
        ),
        "{}",
        fourth.text
    );
    assert_eq!(
        mock.requests().len(),
        3,
        "the 4th request never reached the provider"
    );
    drop(second);
    let _ = std::fs::remove_dir_all(&data_dir);
}

/// Feen on PostgreSQL and Redis (on every host), with the counter store reachable by the test as
/// whoever can write to Redis would reach it.
async fn on_redis() -> (
    Feen,
    feen_native::kv_redis::RedisKv,
    feen_e2e::feen::Secrets,
) {
    let secrets = feen_e2e::feen::Secrets::fresh();
    let feen = Feen::start_with(Options {
        backend: feen_e2e::feen::Backend::fresh_shared().await,
        secrets: Some(secrets.clone()),
        ..Options::default()
    })
    .await;
    let prefix = feen.redis_prefix.clone().expect("a Redis-backed host");
    let kv = feen_native::kv_redis::RedisKv::connect(&feen_e2e::feen::redis_url(), &prefix)
        .await
        .unwrap_or_else(|e| panic!("Redis: {e}"));
    (feen, kv, secrets)
}

fn cache_key(token: &str) -> String {
    let hash = feen_core::crypto::token::verify(feen_core::crypto::token::TokenKind::Share, token)
        .expect("a Feen token");
    format!("cache:share:{}", hash.as_str())
}

#[tokio::test]
async fn whoever_writes_to_redis_cannot_send_a_key_elsewhere_or_lift_a_limit() {
    use feen_core::ports::Kv;
    let (feen, kv, _) = on_redis().await;
    let api = Api::new(&feen.base);
    let real = MockProvider::start(SECRET).await;
    let evil = MockProvider::start("sk-attacker").await;
    let owner = api.signup("victim").await;
    let key = api
        .add_key(&owner, "openai", SECRET, &real.base_url())
        .await;
    let (_share, token) = api
        .mint(&owner, &key, json!({"allowedModels": ["gpt-4o-mini"]}))
        .await;
    let chat = |model: &'static str| {
        let (api, token) = (api.clone(), token.clone());
        async move {
            api.chat(&token, json!({"model": model, "messages": []}))
                .await
        }
    };
    assert_eq!(chat("gpt-4o-mini").await.status, StatusCode::OK);
    let entry_key = cache_key(&token);
    let entry = kv
        .get(&entry_key)
        .await
        .expect("Redis")
        .expect("the share is cached");
    assert!(entry.contains("\"mac\":\"v"), "{entry}");
    assert!(
        !entry.contains(SECRET),
        "the key is only ever cached sealed"
    );

    // Pointed at another server, with the MAC kept, and with it dropped; a model allow-list
    // lifted: each is read as a miss, and the database decides.
    let elsewhere = entry.replace(&real.base_url(), &evil.base_url());
    let unmacked = match elsewhere.rfind(",\"mac\":\"") {
        Some(at) => format!("{}}}", &elsewhere[..at]),
        None => panic!("no MAC in {elsewhere}"),
    };
    let unlimited = entry.replace("[\"gpt-4o-mini\"]", "[]");
    for forged in [&elsewhere, &unmacked, &unlimited] {
        kv.set(&entry_key, forged, 300_000).await.expect("Redis");
        let reply = chat("gpt-4o-mini").await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        let refused = chat("o1").await;
        assert_eq!(refused.code(), "model_not_allowed", "{}", refused.text);
    }
    // Another share's valid entry, moved under this token: its MAC covers its own token only.
    let attacker = api.signup("attacker").await;
    let their_key = api
        .add_key(&attacker, "openai", "sk-attacker", &evil.base_url())
        .await;
    let (_, their_token) = api.mint(&attacker, &their_key, json!({})).await;
    assert_eq!(
        api.chat(
            &their_token,
            json!({"model": "gpt-4o-mini", "messages": []})
        )
        .await
        .status,
        StatusCode::OK
    );
    let theirs = kv
        .get(&cache_key(&their_token))
        .await
        .expect("Redis")
        .expect("cached");
    kv.set(&entry_key, &theirs, 300_000).await.expect("Redis");
    assert_eq!(chat("gpt-4o-mini").await.status, StatusCode::OK);
    // The attacker's server saw only the attacker's own request, never the victim's key.
    let seen_by_evil = evil.requests();
    assert_eq!(seen_by_evil.len(), 1, "{seen_by_evil:?}");
    assert_eq!(
        seen_by_evil[0].header("authorization"),
        Some("Bearer sk-attacker")
    );
    assert!(real.requests().len() >= 5);

    // Whoever writes to the database cannot either: a key whose destination changed there does
    // not open (once its cache entry is gone).
    let db = feen.db().await;
    feen_core::ports::Db::execute(
        db.as_ref(),
        "UPDATE api_keys SET base_url = $1 WHERE id = $2",
        &[evil.base_url().into(), key.as_str().into()],
    )
    .await
    .expect("update");
    kv.delete(std::slice::from_ref(&entry_key))
        .await
        .expect("Redis");
    let moved = chat("gpt-4o-mini").await;
    assert!(!moved.status.is_success(), "{}", moved.text);
    assert!(!moved.text.contains(SECRET));
    assert_eq!(
        evil.requests().len(),
        1,
        "the victim's key went to the new destination"
    );
}

#[tokio::test]
async fn every_process_must_hold_the_same_key_ring() {
    let backend = feen_e2e::feen::Backend::fresh_shared().await;
    let first = Feen::start_with(Options {
        backend: backend.clone(),
        secrets: Some(feen_e2e::feen::Secrets::fresh()),
        ..Options::default()
    })
    .await;
    let api = Api::new(&first.base);
    assert_eq!(
        api.raw(Method::GET, "/api/auth/me", &[], None).await.code(),
        "unauthenticated"
    );
    let other = feen_e2e::feen::Secrets::fresh();
    let database_url = match &backend {
        feen_e2e::feen::Backend::Shared { database_url, .. } => database_url.clone(),
        _ => unreachable!("a shared backend"),
    };
    if std::env::var("FEEN_E2E_HOST").is_err() {
        // `feen serve` refuses to start, and says why.
        let run = tokio::process::Command::new(feen_e2e::feen::binary())
            .arg("serve")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .env("DATABASE_URL", &database_url)
            .env("FEEN_KEYRING", &other.keyring)
            .env("FEEN_SESSION_SECRET", &other.session)
            .env_remove("REDIS_URL")
            .kill_on_drop(true)
            .output();
        let out = tokio::time::timeout(std::time::Duration::from_secs(30), run)
            .await
            .unwrap_or_else(|_| {
                panic!("feen serve started with a key ring its database does not know")
            })
            .expect("runs");
        assert!(!out.status.success());
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(said.contains("FEEN_KEYRING version 1"), "{said}");
        assert!(
            !said.contains(&other.keyring[2..]),
            "the key itself is never printed"
        );
    } else {
        // An edge function refuses to serve with it.
        let second = Feen::start_with(Options {
            backend,
            secrets: Some(other),
            ..Options::default()
        })
        .await;
        let reply = Api::new(&second.base)
            .raw(Method::GET, "/api/auth/me", &[], None)
            .await;
        assert_eq!(
            reply.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{}",
            reply.text
        );
    }
}

#[tokio::test]
async fn own_base_urls_must_be_on_listed_hosts_where_the_host_cannot_check_addresses() {
    let spin = std::env::var("FEEN_E2E_HOST").as_deref() == Ok("spin");
    let add = |api: Api, user: User, base_url: &'static str| async move {
        api.post(
            "/api/keys",
            Some(&user.token),
            json!({"name": "own", "provider": "openai", "apiKey": SECRET, "baseUrl": base_url}),
        )
        .await
    };
    // Without a list: Spin (which sees only the name) refuses; the others check the address.
    let open = Feen::start_with(Options {
        env: vec![("FEEN_ALLOW_PRIVATE_UPSTREAMS".into(), "0".into())],
        ..Options::default()
    })
    .await;
    let api = Api::new(&open.base);
    let user = api.signup("upstreams").await;
    let reply = add(api.clone(), user.clone(), "https://api.example.com").await;
    if spin {
        assert_eq!(reply.body["error"]["field"], "baseUrl", "{}", reply.text);
    } else {
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    }
    // With one: only what it names, on every host.
    let listed = Feen::start_with(Options {
        env: vec![
            ("FEEN_ALLOW_PRIVATE_UPSTREAMS".into(), "0".into()),
            ("FEEN_UPSTREAM_HOSTS".into(), "*.example.com".into()),
        ],
        ..Options::default()
    })
    .await;
    let api = Api::new(&listed.base);
    let user = api.signup("listed").await;
    let ok = add(api.clone(), user.clone(), "https://llm.example.com").await;
    assert_eq!(ok.status, StatusCode::CREATED, "{}", ok.text);
    for refused in ["https://example.com.evil.test", "https://evilexample.com"] {
        let reply = add(api.clone(), user.clone(), refused).await;
        assert_eq!(
            (reply.status, reply.body["error"]["field"].as_str()),
            (StatusCode::BAD_REQUEST, Some("baseUrl")),
            "{refused}: {}",
            reply.text
        );
    }
    // Catalogue providers at their own address need no list.
    let catalogue = api
        .post(
            "/api/keys",
            Some(&user.token),
            json!({"name": "plain", "provider": "openai", "apiKey": SECRET}),
        )
        .await;
    assert_eq!(catalogue.status, StatusCode::CREATED, "{}", catalogue.text);
}

#[tokio::test]
async fn made_up_tokens_cost_little_and_leave_nothing_behind() {
    use feen_core::crypto::token::{TokenKind, issue};
    use feen_core::ports::Kv;
    feen_e2e::api::within_one_minute().await;
    let (feen, kv, _) = on_redis().await;
    let api = Api::new(&feen.base);
    let mock = MockProvider::start(SECRET).await;
    let user = api.signup("flood").await;
    let key = api.add_key(&user, "openai", SECRET, &mock.base_url()).await;
    let (_, token) = api.mint(&user, &key, json!({})).await;
    let hi = json!({"model": "gpt-4o-mini", "messages": []});
    assert_eq!(api.chat(&token, hi.clone()).await.status, StatusCode::OK);
    let mut made_up = Vec::new();
    let (mut unknown, mut throttled) = (0, 0);
    for n in 0..70u32 {
        let mut seed = [0u8; 32];
        seed[..4].copy_from_slice(&n.to_le_bytes());
        seed[31] = 0xfe;
        let (fake, _) = issue(TokenKind::Share, seed);
        let reply = api.chat(fake.expose(), hi.clone()).await;
        match (reply.status, reply.code()) {
            (StatusCode::UNAUTHORIZED, "invalid_token") => unknown += 1,
            (StatusCode::TOO_MANY_REQUESTS, "too_many_invalid_tokens") => throttled += 1,
            other => panic!("unexpected {other:?}: {}", reply.text),
        }
        made_up.push(fake.expose().to_owned());
    }
    assert_eq!((unknown, throttled), (60, 10));
    // Nothing was remembered of them.
    for fake in &made_up {
        assert_eq!(kv.get(&cache_key(fake)).await.expect("Redis"), None);
    }
    // The real token is unaffected.
    assert_eq!(api.chat(&token, hi).await.status, StatusCode::OK);
    assert!(mock.requests().len() == 2);
}

#[tokio::test]
async fn the_cost_is_that_of_the_model_the_provider_says_it_ran() {
    let (_feen, api, user, mock) = setup().await;
    let key = api.add_key(&user, "openai", SECRET, &mock.base_url()).await;
    let (share, token) = api.mint(&user, &key, json!({})).await;
    let auth = format!("Bearer {token}");
    let reply = api
        .raw(
            Method::POST,
            "/api/proxy/v1/chat/completions",
            &[
                ("authorization", &auth),
                ("content-type", "application/json"),
                ("x-mock-answer-model", "gpt-4o"),
            ],
            Some(br#"{"model":"gpt-4o-mini","messages":[],"max_tokens":7}"#.to_vec()),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.str("/model"), "gpt-4o");
    let usage = api.wait_for_usage(&user, &share, 1).await;
    // 11 input and 7 output tokens at gpt-4o's $2.50 / $10 per million, not gpt-4o-mini's.
    let gpt_4o = (11 * 2_500_000 + 7 * 10_000_000u64).div_ceil(1_000_000);
    assert_eq!(usage.body["totals"]["costMicros"], gpt_4o, "{}", usage.text);
}
