//! The user journey, end to end over HTTP: register → log in → add a key → mint a share → chat
//! completions through the proxy, plain and streamed → usage recorded → a limit gives 429 →
//! revoke → 401. Runs on the embedded default and on PostgreSQL + Redis.
//!
//! With `FEEN_E2E_BASE_URL` set, the suite talks to that host instead of starting one.

use std::time::{Duration, Instant};

use feen_e2e::api::{Api, User};
use feen_e2e::feen::{Backend, Feen, Options};
use feen_e2e::mock::{self, MockProvider};
use futures_util::StreamExt;
use http::{Method, StatusCode};
use serde_json::{Value, json};

const SECRET: &str = "sk-mock-journey-0123456789abcdef";
/// What the mock's usage costs on gpt-4o-mini ($0.15/M in, $0.60/M out): 11 × 0.15 + 7 × 0.6 =
/// 5.85 micro-USD, rounded up.
const GPT_4O_MINI_COST: u64 = 6;

/// A Feen to test: the one at `FEEN_E2E_BASE_URL`, or a fresh local one.
async fn target(backend: Backend) -> (Api, Option<Feen>) {
    if let Ok(base) = std::env::var("FEEN_E2E_BASE_URL") {
        return (Api::new(&base), None);
    }
    let feen = Feen::start_with(Options {
        backend,
        ..Options::default()
    })
    .await;
    (Api::new(&feen.base), Some(feen))
}

async fn setup(api: &Api, limits: Value) -> (User, MockProvider, String, String, String) {
    let mock = MockProvider::start(SECRET).await;
    let user = api.signup("journey").await;
    let key = api.add_key(&user, "openai", SECRET, &mock.base_url()).await;
    let (share, token) = api.mint(&user, &key, limits).await;
    (user, mock, key, share, token)
}

fn chat_body(stream: bool) -> Value {
    let mut body = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]});
    if stream {
        body["stream"] = json!(true);
        body["stream_options"] = json!({"include_usage": true});
    }
    body
}

async fn journey(api: Api) {
    feen_e2e::api::within_one_minute().await;
    let (user, mock, key, share, token) = setup(
        &api,
        json!({"rateLimit": 3, "dailyLimit": 100, "maxUses": 50}),
    )
    .await;
    let keys = api.get("/api/keys", &user.token).await;
    assert_eq!(
        keys.body["keys"][0]["lastUsedAt"],
        Value::Null,
        "{}",
        keys.text
    );

    let plain = api.chat(&token, chat_body(false)).await;
    assert_eq!(plain.status, StatusCode::OK, "{}", plain.text);
    assert_eq!(plain.str("/choices/0/message/content"), mock::REPLY);
    assert!(
        plain
            .header("x-feen-request-id")
            .is_some_and(|id| id.starts_with("req_"))
    );
    assert!(
        plain
            .header("x-feen-overhead-ms")
            .is_some_and(|ms| ms.parse::<f64>().is_ok())
    );
    assert_eq!(plain.header("x-ratelimit-limit-requests"), Some("3"));
    assert_eq!(plain.header("x-ratelimit-remaining-requests"), Some("2"));
    assert!(
        plain
            .header("x-ratelimit-reset-requests")
            .is_some_and(|r| r.ends_with('s'))
    );

    let streamed = api.chat(&token, chat_body(true)).await;
    assert_eq!(streamed.status, StatusCode::OK);
    assert_eq!(streamed.header("content-type"), Some("text/event-stream"));
    assert!(
        streamed.text.contains("\" mock\"") && streamed.text.ends_with("data: [DONE]\n\n"),
        "{}",
        streamed.text
    );

    // The provider got the real key, in its own style, and never the Feen token.
    let seen = mock.requests();
    assert_eq!(seen.len(), 2);
    for request in &seen {
        assert_eq!(
            request.header("authorization"),
            Some(format!("Bearer {SECRET}").as_str())
        );
        assert_eq!(request.path, "/v1/chat/completions");
        assert!(
            request.headers.iter().all(|(_, v)| !v.contains(&token)),
            "feen token leaked upstream"
        );
    }

    let usage = api.wait_for_usage(&user, &share, 2).await;
    assert_eq!(
        usage.body["totals"],
        json!({"requests": 2, "inputTokens": 2 * mock::OPENAI_INPUT_TOKENS, "outputTokens": 2 * mock::OPENAI_OUTPUT_TOKENS, "costMicros": 2 * GPT_4O_MINI_COST})
    );
    let events = usage.body["events"].as_array().cloned().unwrap_or_default();
    assert_eq!(
        events
            .iter()
            .filter(|e| e["streamed"] == json!(true))
            .count(),
        1
    );
    assert!(
        events
            .iter()
            .all(|e| e["outcome"] == json!("completed") && e["status"] == json!(200))
    );
    assert!(events.iter().all(|e| e["model"] == json!("gpt-4o-mini")));
    // The key shows when it was last used.
    let keys = api.get("/api/keys", &user.token).await;
    let last_used = keys.body["keys"][0]["lastUsedAt"]
        .as_str()
        .and_then(feen_core::timefmt::parse_rfc3339)
        .unwrap_or_else(|| panic!("no lastUsedAt: {}", keys.text));
    let now_ms = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0),
    )
    .unwrap_or(0);
    assert!(
        (now_ms - 60_000..=now_ms + 5_000).contains(&last_used),
        "{}",
        keys.text
    );
    let one_key = api.get(&format!("/api/keys/{key}"), &user.token).await;
    assert_eq!(
        one_key.body["lastUsedAt"],
        keys.body["keys"][0]["lastUsedAt"]
    );

    let third = api.chat(&token, chat_body(false)).await;
    assert_eq!(third.status, StatusCode::OK);
    let limited = api.chat(&token, chat_body(false)).await;
    assert_eq!(
        limited.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        limited.text
    );
    assert_eq!(limited.code(), "rate_limit_exceeded");
    let retry: u64 = limited
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("Retry-After");
    assert!((1..=60).contains(&retry));
    assert_eq!(limited.header("x-ratelimit-limit-requests"), Some("3"));
    assert_eq!(limited.header("x-ratelimit-remaining-requests"), Some("0"));
    assert_eq!(
        limited.header("x-ratelimit-reset-requests"),
        Some(format!("{retry}s").as_str())
    );
    assert!(limited.header("x-feen-request-id").is_some());
    assert_eq!(
        mock.requests().len(),
        3,
        "a refused request must not reach the provider"
    );

    // The share list shows what each limit has counted in its current window (the refused
    // request counted nowhere), and the share's usage the same.
    let listed = api.get("/api/shared", &user.token).await;
    let live = |body: &Value, limit: &str| {
        body.as_array()
            .and_then(|items| items.iter().find(|i| i["limit"] == limit))
            .map(|i| (i["used"].clone(), i["max"].clone()))
    };
    let listed_live = &listed.body["shares"][0]["live"];
    assert_eq!(
        live(listed_live, "rateLimit"),
        Some((json!(3), json!(3))),
        "{}",
        listed.text
    );
    assert_eq!(
        live(listed_live, "dailyLimit"),
        Some((json!(3), json!(100)))
    );
    assert_eq!(live(listed_live, "maxUses"), Some((json!(3), json!(50))));
    assert_eq!(
        listed_live.as_array().map(Vec::len),
        Some(3),
        "{}",
        listed.text
    );
    let usage = api
        .get(&format!("/api/shared/{share}/usage"), &user.token)
        .await;
    assert_eq!(&usage.body["live"], listed_live);

    assert_eq!(
        api.delete(&format!("/api/shared/{share}"), &user.token)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    let revoked = api.chat(&token, chat_body(false)).await;
    assert_eq!(revoked.status, StatusCode::UNAUTHORIZED);
    assert_eq!(revoked.code(), "invalid_token");
    let listed = api.get("/api/shared", &user.token).await;
    assert_eq!(listed.body["shares"][0]["status"], "revoked");
    assert_eq!(listed.body["shares"][0]["live"], json!([]));
    assert!(
        !listed.text.contains(&token),
        "the token is shown once, at minting"
    );
}

#[tokio::test]
async fn the_whole_journey_works_on_the_embedded_default() {
    let (api, feen) = target(Backend::Embedded).await;
    journey(api).await;
    // On Workers the usage went through the queue and its consumer, not the direct fallback.
    if let Some(feen) = feen {
        assert!(
            !feen.logs().contains("writing usage directly"),
            "{}",
            feen.logs()
        );
    }
}

#[tokio::test]
async fn the_whole_journey_works_on_postgres_and_redis() {
    let (api, _feen) = target(Backend::fresh_shared().await).await;
    journey(api).await;
}

#[tokio::test]
async fn the_whole_journey_works_on_postgres_and_redis_over_the_upstash_rest_protocol() {
    let config = feen_standins::upstash::Config {
        token: "journey-rest".into(),
        readonly_token: None,
    };
    let redis = feen_e2e::feen::redis_url();
    let addr = feen_standins::upstash::spawn("127.0.0.1:0", &redis, config)
        .await
        .expect("stand-in");
    let Backend::Shared {
        database_url,
        redis_prefix,
    } = Backend::fresh_shared().await
    else {
        unreachable!()
    };
    let backend = Backend::SharedRest {
        database_url,
        redis_prefix,
        rest_url: format!("http://{addr}"),
        token: "journey-rest".into(),
    };
    let (api, feen) = target(backend).await;
    // The native host says which store it uses; the edge hosts always use this one.
    if let Some(feen) = feen
        .as_ref()
        .filter(|_| std::env::var("FEEN_E2E_HOST").is_err())
    {
        assert!(feen.logs().contains("redis over REST"), "{}", feen.logs());
    }
    journey(api).await;
}

#[tokio::test]
async fn streamed_bytes_reach_the_client_before_the_upstream_finishes() {
    let (api, _feen) = target(Backend::Embedded).await;
    let (_user, _mock, _key, _share, token) = setup(&api, json!({})).await;
    let started = Instant::now();
    let resp = feen_e2e::http_client()
        .post(format!("{}/api/proxy/v1/chat/completions", api.base))
        .bearer_auth(&token)
        .header("x-mock-chunk-delay-ms", "150")
        .json(&chat_body(true))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::OK);
    let mut arrivals = Vec::new();
    let mut body = Vec::new();
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.expect("chunk");
        arrivals.push(started.elapsed());
        body.extend_from_slice(&chunk);
    }
    let total = started.elapsed();
    // 8 events 150 ms apart: the upstream takes over a second; the first event must not wait.
    assert!(total >= Duration::from_millis(1000), "{total:?}");
    assert!(
        arrivals[0] + Duration::from_millis(700) < total,
        "first byte at {:?} of {total:?}",
        arrivals[0]
    );
    assert!(
        arrivals.len() >= 6,
        "chunks arrived in {} reads: buffered?",
        arrivals.len()
    );
    assert!(String::from_utf8_lossy(&body).ends_with("data: [DONE]\n\n"));
}

#[tokio::test]
async fn anthropic_keys_are_sent_as_x_api_key_and_their_usage_is_read() {
    let (api, _feen) = target(Backend::Embedded).await;
    let mock = MockProvider::start(SECRET).await;
    let user = api.signup("anthropic").await;
    let key = api
        .add_key(&user, "anthropic", SECRET, &mock.base_url())
        .await;
    let (share, token) = api.mint(&user, &key, json!({})).await;
    let body = json!({"model": "claude-3-5-haiku", "max_tokens": 64, "messages": [{"role": "user", "content": "Hi"}]});
    let headers = [
        ("x-api-key", token.as_str()),
        ("content-type", "application/json"),
    ];
    let plain = api
        .raw(
            Method::POST,
            "/api/proxy/v1/messages",
            &headers,
            Some(body.to_string().into_bytes()),
        )
        .await;
    assert_eq!(plain.status, StatusCode::OK, "{}", plain.text);
    assert_eq!(plain.str("/content/0/text"), mock::REPLY);
    let mut streamed_body = body.clone();
    streamed_body["stream"] = json!(true);
    let streamed = api
        .raw(
            Method::POST,
            "/api/proxy/v1/messages",
            &headers,
            Some(streamed_body.to_string().into_bytes()),
        )
        .await;
    assert_eq!(streamed.status, StatusCode::OK);
    assert!(streamed.text.contains("event: message_stop"));
    for request in mock.requests() {
        assert_eq!(request.header("x-api-key"), Some(SECRET));
        assert_eq!(request.header("anthropic-version"), Some("2023-06-01"));
        assert_eq!(request.header("authorization"), None);
    }
    let usage = api.wait_for_usage(&user, &share, 2).await;
    assert_eq!(
        usage.body["totals"]["inputTokens"],
        json!(2 * mock::ANTHROPIC_INPUT_TOKENS)
    );
    assert_eq!(
        usage.body["totals"]["outputTokens"],
        json!(2 * mock::ANTHROPIC_OUTPUT_TOKENS)
    );
}

#[tokio::test]
async fn the_openai_compatible_v1_prefix_proxies_too() {
    let (api, _feen) = target(Backend::Embedded).await;
    let (_user, mock, _key, _share, token) = setup(&api, json!({})).await;
    let reply = api
        .call(
            Method::POST,
            "/v1/chat/completions",
            Some(&token),
            Some(chat_body(false)),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(mock.requests()[0].path, "/v1/chat/completions");
}

#[tokio::test]
async fn rotating_a_key_takes_effect_on_the_next_request() {
    let (api, _feen) = target(Backend::Embedded).await;
    let (user, mock, key, _share, token) = setup(&api, json!({})).await;
    assert_eq!(
        api.chat(&token, chat_body(false)).await.status,
        StatusCode::OK
    );
    let new_secret = "sk-mock-rotated-99999999999999";
    mock.accept_only(new_secret);
    // The provider refuses the old key, and Feen passes its answer through.
    assert_eq!(
        api.chat(&token, chat_body(false)).await.status,
        StatusCode::UNAUTHORIZED
    );
    let rotated = api
        .post(
            &format!("/api/keys/{key}/rotate"),
            Some(&user.token),
            json!({"apiKey": new_secret}),
        )
        .await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.text);
    assert_eq!(rotated.str("/hint"), "sk-...9999");
    assert_eq!(
        api.chat(&token, chat_body(false)).await.status,
        StatusCode::OK
    );
    assert_eq!(
        mock.requests()
            .last()
            .and_then(|r| r.header("authorization").map(str::to_owned)),
        Some(format!("Bearer {new_secret}"))
    );
}

#[tokio::test]
async fn daily_limits_models_and_expiry_are_enforced() {
    let (api, _feen) = target(Backend::Embedded).await;
    let (user, mock, key, _share, token) = setup(&api, json!({"dailyLimit": 1})).await;
    assert_eq!(
        api.chat(&token, chat_body(false)).await.status,
        StatusCode::OK
    );
    let over = api.chat(&token, chat_body(false)).await;
    assert_eq!(
        (over.status, over.code()),
        (StatusCode::TOO_MANY_REQUESTS, "daily_limit_exceeded")
    );
    assert!(over.header("retry-after").is_some());

    let (_, models_token) = api
        .mint(&user, &key, json!({"allowedModels": ["gpt-4o-*"]}))
        .await;
    let allowed = api.chat(&models_token, chat_body(false)).await;
    assert_eq!(allowed.status, StatusCode::OK);
    let refused = api
        .chat(&models_token, json!({"model": "o1-pro", "messages": []}))
        .await;
    assert_eq!(
        (refused.status, refused.code()),
        (StatusCode::FORBIDDEN, "model_not_allowed")
    );
    let unnamed = api.chat(&models_token, json!({"messages": []})).await;
    assert_eq!(
        (unnamed.status, unnamed.code()),
        (StatusCode::FORBIDDEN, "model_required")
    );

    let soon = feen_core::timefmt::to_rfc3339(now_ms() + 1500);
    let (_, brief_token) = api.mint(&user, &key, json!({"expiresAt": soon})).await;
    assert_eq!(
        api.chat(&brief_token, chat_body(false)).await.status,
        StatusCode::OK
    );
    tokio::time::sleep(Duration::from_millis(1700)).await;
    let expired = api.chat(&brief_token, chat_body(false)).await;
    assert_eq!(
        (expired.status, expired.code()),
        (StatusCode::UNAUTHORIZED, "token_expired")
    );
    assert_eq!(
        mock.requests().len(),
        3,
        "only admitted requests reach the provider"
    );
}

#[tokio::test]
async fn updated_limits_and_regenerated_tokens_take_effect_at_once() {
    let (api, _feen) = target(Backend::Embedded).await;
    feen_e2e::api::within_one_minute().await;
    let (user, _mock, _key, share, token) = setup(&api, json!({"rateLimit": 1})).await;
    assert_eq!(
        api.chat(&token, chat_body(false)).await.status,
        StatusCode::OK
    );
    assert_eq!(
        api.chat(&token, chat_body(false)).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    let raised = api
        .patch(
            &format!("/api/shared/{share}"),
            &user.token,
            json!({"rateLimit": 5}),
        )
        .await;
    assert_eq!(raised.status, StatusCode::OK, "{}", raised.text);
    assert_eq!(raised.body["rateLimit"], 5);
    assert_eq!(
        api.chat(&token, chat_body(false)).await.status,
        StatusCode::OK
    );
    let unlimited = api
        .patch(
            &format!("/api/shared/{share}"),
            &user.token,
            json!({"rateLimit": null}),
        )
        .await;
    assert_eq!(unlimited.body["rateLimit"], Value::Null);
    // A budget, then `budgetUsd: null` alone clears it (its period goes with it); a period
    // without an amount is still refused.
    let path = format!("/api/shared/{share}");
    let budgeted = api
        .patch(
            &path,
            &user.token,
            json!({"budgetUsd": 4, "budgetPeriod": "week"}),
        )
        .await;
    assert_eq!(
        (&budgeted.body["budgetUsd"], &budgeted.body["budgetPeriod"]),
        (&json!(4.0), &json!("week")),
        "{}",
        budgeted.text
    );
    let cleared = api
        .patch(&path, &user.token, json!({"budgetUsd": null}))
        .await;
    assert_eq!(cleared.status, StatusCode::OK, "{}", cleared.text);
    assert_eq!(
        (&cleared.body["budgetUsd"], &cleared.body["budgetPeriod"]),
        (&Value::Null, &Value::Null)
    );
    let period_alone = api
        .patch(&path, &user.token, json!({"budgetPeriod": "day"}))
        .await;
    assert_eq!(
        (
            period_alone.status,
            period_alone.body["error"]["field"].as_str()
        ),
        (StatusCode::BAD_REQUEST, Some("budgetPeriod")),
        "{}",
        period_alone.text
    );

    let regenerated = api
        .post(
            &format!("/api/shared/{share}/regenerate"),
            Some(&user.token),
            json!({}),
        )
        .await;
    assert_eq!(regenerated.status, StatusCode::OK, "{}", regenerated.text);
    let new_token = regenerated.str("/token");
    assert_ne!(new_token, token);
    assert_eq!(
        api.chat(&token, chat_body(false)).await.code(),
        "invalid_token"
    );
    assert_eq!(
        api.chat(&new_token, chat_body(false)).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn an_unreachable_provider_is_a_502_and_still_recorded() {
    let (api, _feen) = target(Backend::Embedded).await;
    let user = api.signup("down").await;
    // Nothing listens on port 9 (discard) here.
    let key = api
        .add_key(&user, "openai", SECRET, "http://127.0.0.1:9")
        .await;
    let (share, token) = api.mint(&user, &key, json!({})).await;
    let reply = api.chat(&token, chat_body(false)).await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::BAD_GATEWAY, "upstream_unreachable")
    );
    assert!(
        !reply.text.contains("127.0.0.1"),
        "internal detail leaked: {}",
        reply.text
    );
    let usage = api.wait_for_usage(&user, &share, 1).await;
    assert_eq!(usage.body["events"][0]["outcome"], "upstream_error");
    assert_eq!(usage.body["events"][0]["status"], 0);
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[tokio::test]
async fn a_stream_cut_by_the_client_records_the_tokens_seen() {
    let (api, _feen) = target(Backend::Embedded).await;
    let mock = MockProvider::start(SECRET).await;
    let user = api.signup("cut").await;
    let key = api
        .add_key(&user, "anthropic", SECRET, &mock.base_url())
        .await;
    let (share, token) = api.mint(&user, &key, json!({})).await;
    let body = json!({"model": "claude-3-5-haiku", "max_tokens": 64, "stream": true, "messages": [{"role": "user", "content": "Hi"}]});
    let resp = feen_e2e::http_client()
        .post(format!("{}/api/proxy/v1/messages", api.base))
        .header("x-api-key", &token)
        .header("x-mock-chunk-delay-ms", "300")
        .json(&body)
        .send()
        .await
        .expect("send");
    let mut stream = resp.bytes_stream();
    let first = stream.next().await.expect("a first chunk").expect("chunk");
    assert!(String::from_utf8_lossy(&first).contains("message_start"));
    drop(stream); // the client goes away mid-stream
    let usage = api.wait_for_usage(&user, &share, 1).await;
    let event = &usage.body["events"][0];
    assert_eq!(event["outcome"], "client_disconnected", "{}", usage.text);
    assert_eq!(
        event["inputTokens"],
        json!(mock::ANTHROPIC_INPUT_TOKENS),
        "the input count from message_start"
    );
    assert!(
        event["outputTokens"].as_u64().is_some_and(|n| n >= 1),
        "{event}"
    );
    // Exactly one event, however the stream ended.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        api.get(&format!("/api/shared/{share}/usage"), &user.token)
            .await
            .body["totals"]["requests"],
        1
    );
}

#[tokio::test]
async fn streams_that_did_not_ask_for_usage_are_still_counted_and_look_unchanged() {
    let (api, _feen) = target(Backend::Embedded).await;
    let (user, mock, _key, share, token) = setup(&api, json!({})).await;
    let body = json!({"model": "gpt-4o-mini", "stream": true, "messages": [{"role": "user", "content": "Hi"}]});
    let reply = api.chat(&token, body).await;
    assert_eq!(reply.status, StatusCode::OK);
    // The client sees the stream it asked for: no usage chunk, no `usage` fields.
    assert!(!reply.text.contains("usage"), "{}", reply.text);
    assert!(
        reply.text.contains("\" mock\"") && reply.text.ends_with("data: [DONE]\n\n"),
        "{}",
        reply.text
    );
    assert_eq!(
        reply.text.matches("data: ").count(),
        7,
        "role, four words, finish, [DONE]: {}",
        reply.text
    );
    // Feen asked the provider for usage, and recorded it exactly.
    let sent: Value = serde_json::from_slice(&mock.requests()[0].body).expect("json");
    assert_eq!(sent["stream_options"]["include_usage"], true);
    let usage = api.wait_for_usage(&user, &share, 1).await;
    assert_eq!(
        usage.body["totals"]["inputTokens"],
        json!(mock::OPENAI_INPUT_TOKENS)
    );
    assert_eq!(
        usage.body["totals"]["outputTokens"],
        json!(mock::OPENAI_OUTPUT_TOKENS)
    );
    assert_eq!(usage.body["totals"]["costMicros"], json!(GPT_4O_MINI_COST));
}
