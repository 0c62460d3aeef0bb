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
