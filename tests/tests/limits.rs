//! Every limit a share can have, over HTTP: tokens per minute, budgets (never overshot, also
//! under concurrency), total uses, endpoints, client addresses; and the cost recorded per
//! request.

use feen_e2e::api::{Api, User};
use feen_e2e::feen::Feen;
use feen_e2e::mock::{self, MockProvider};
use http::StatusCode;
use serde_json::{Value, json};

const SECRET: &str = "sk-mock-limits-0123456789abcdef";
/// 11 input tokens at $0.15/M plus 7 output tokens at $0.60/M, rounded up to the micro-dollar.
const COST: u64 = 6;

async fn setup(limits: Value) -> (Feen, Api, User, MockProvider, String, String) {
    let feen = Feen::start().await;
    let api = Api::new(&feen.base);
    let mock = MockProvider::start(SECRET).await;
    let user = api.signup("limits").await;
    let key = api.add_key(&user, "openai", SECRET, &mock.base_url()).await;
    let (share, token) = api.mint(&user, &key, limits).await;
    (feen, api, user, mock, share, token)
}

fn chat(max_tokens: u64) -> Value {
    json!({"model": "gpt-4o-mini", "max_tokens": max_tokens, "messages": [{"role": "user", "content": "Hi"}]})
}

#[tokio::test]
async fn each_request_records_its_cost() {
    let (_feen, api, user, _mock, share, token) = setup(json!({})).await;
    assert_eq!(api.chat(&token, chat(10)).await.status, StatusCode::OK);
    let unpriced = api
        .chat(&token, json!({"model": "my-own-finetune", "messages": []}))
        .await;
    assert_eq!(unpriced.status, StatusCode::OK);
    let usage = api.wait_for_usage(&user, &share, 2).await;
    let events = usage.body["events"].as_array().cloned().unwrap_or_default();
    let cost_of = |model: &str| {
        events
            .iter()
            .find(|e| e["model"] == model)
            .map(|e| e["costMicros"].clone())
    };
    assert_eq!(cost_of("gpt-4o-mini"), Some(json!(COST)));
    assert_eq!(
        cost_of("my-own-finetune"),
        Some(Value::Null),
        "unknown prices are not guessed"
    );
    assert_eq!(usage.body["totals"]["costMicros"], json!(COST));
}

#[tokio::test]
async fn tokens_per_minute_count_the_tokens_really_used() {
    // Each request reserves a quarter of its body's bytes plus max_tokens, then settles to the 18
    // tokens the mock reports.
    let body = chat(10);
    let reserved = (body.to_string().len() as u64).div_ceil(4) + 10;
    let used = mock::OPENAI_INPUT_TOKENS + mock::OPENAI_OUTPUT_TOKENS;
    let limit = reserved + used + 2; // room for one settled request and one reservation
    // The three requests must fall in one minute's window (a CI run on Workers once saw the
    // third admitted in the next minute).
    feen_e2e::api::within_one_minute().await;
    let (_feen, api, user, _mock, share, token) = setup(json!({"tokensPerMinute": limit})).await;
    let first = api.chat(&token, body.clone()).await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(
        first.header("x-ratelimit-limit-tokens"),
        Some(limit.to_string().as_str())
    );
    api.wait_for_usage(&user, &share, 1).await;
    assert_eq!(
        api.chat(&token, body.clone()).await.status,
        StatusCode::OK,
        "the first request was settled to what it used"
    );
    api.wait_for_usage(&user, &share, 2).await;
    let third = api.chat(&token, body).await;
    assert_eq!(
        (third.status, third.code()),
        (StatusCode::TOO_MANY_REQUESTS, "token_rate_limit_exceeded")
    );
    assert!(third.header("retry-after").is_some());
}

#[tokio::test]
async fn a_budget_is_never_overshot_even_by_concurrent_requests() {
    // 100 micro-dollars; each request reserves its worst case (every body byte an input token,
    // plus max_tokens out) and really costs 6.
    let (_feen, api, user, mock, share, token) =
        setup(json!({"budgetUsd": 0.0001, "budgetPeriod": "day"})).await;
    let calls: Vec<_> = (0..40)
        .map(|_| {
            let api = api.clone();
            let token = token.clone();
            tokio::spawn(async move { api.chat(&token, chat(10)).await })
        })
        .collect();
    let mut admitted = 0;
    for call in calls {
        let reply = call.await.expect("task");
        match reply.status {
            StatusCode::OK => admitted += 1,
            StatusCode::TOO_MANY_REQUESTS => assert_eq!(reply.code(), "budget_exceeded"),
            other => panic!("unexpected {other}: {}", reply.text),
        }
    }
    assert!(admitted >= 1);
    assert_eq!(
        mock.requests().len(),
        admitted,
        "refused requests never reach the provider"
    );
    let usage = api.wait_for_usage(&user, &share, admitted as u64).await;
    let spent = usage.body["totals"]["costMicros"]
        .as_u64()
        .unwrap_or(u64::MAX);
    assert!(spent <= 100, "spent {spent} of a 100 micro-dollar budget");
    // Sequentially, once reservations settle, requests go on until the worst case no longer fits.
    let mut more = 0;
    while api.chat(&token, chat(10)).await.status == StatusCode::OK {
        more += 1;
        api.wait_for_usage(&user, &share, (admitted + more) as u64)
            .await;
        assert!(more < 20, "the budget never stopped requests");
    }
    let usage = api
        .wait_for_usage(&user, &share, (admitted + more) as u64)
        .await;
    let spent = usage.body["totals"]["costMicros"]
        .as_u64()
        .unwrap_or(u64::MAX);
    assert!(spent <= 100, "spent {spent}");
    let reserve = {
        let price_in = 150_000u64; // gpt-4o-mini, micro-USD per million tokens
        let bytes = chat(10).to_string().len() as u64;
        (bytes * price_in + 10 * 600_000).div_ceil(1_000_000)
    };
    assert!(
        spent + reserve > 100,
        "stopped with {spent} spent though a worst case of {reserve} still fitted"
    );
}

#[tokio::test]
async fn a_budget_only_calls_priced_models() {
    let (_feen, api, _user, mock, _share, token) = setup(json!({"budgetUsd": 1.0})).await;
    let reply = api
        .chat(&token, json!({"model": "my-own-finetune", "messages": []}))
        .await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::FORBIDDEN, "model_not_priced")
    );
    assert!(mock.requests().is_empty());
}

#[tokio::test]
async fn total_uses_run_out_for_good() {
    let (_feen, api, _user, _mock, _share, token) = setup(json!({"maxUses": 3})).await;
    for _ in 0..3 {
        assert_eq!(api.chat(&token, chat(10)).await.status, StatusCode::OK);
    }
    let over = api.chat(&token, chat(10)).await;
    assert_eq!(
        (over.status, over.code()),
        (StatusCode::FORBIDDEN, "uses_exhausted")
    );
}

#[tokio::test]
async fn endpoints_and_client_addresses_are_enforced() {
    let (_feen, api, user, mock, _share, token) =
        setup(json!({"allowedEndpoints": ["/v1/embeddings"]})).await;
    let chat_reply = api.chat(&token, chat(10)).await;
    assert_eq!(
        (chat_reply.status, chat_reply.code()),
        (StatusCode::FORBIDDEN, "endpoint_not_allowed")
    );
    let key = api.get("/api/keys", &user.token).await.str("/keys/0/id");
    let (_, far) = api
        .mint(
            &user,
            &key,
            json!({"allowedIps": ["10.0.0.0/8", "2001:db8::/32"]}),
        )
        .await;
    let refused = api.chat(&far, chat(10)).await;
    assert_eq!(
        (refused.status, refused.code()),
        (StatusCode::FORBIDDEN, "ip_not_allowed")
    );
    let (_, near) = api
        .mint(&user, &key, json!({"allowedIps": ["127.0.0.1"]}))
        .await;
    assert_eq!(api.chat(&near, chat(10)).await.status, StatusCode::OK);
    assert_eq!(mock.requests().len(), 1);
    let bad = api
        .post(
            "/api/shared",
            Some(&user.token),
            json!({"apiKeyId": key, "name": "x", "allowedIps": ["300.1.1.1/8"]}),
        )
        .await;
    assert_eq!(
        (bad.status, bad.code()),
        (StatusCode::BAD_REQUEST, "validation_failed")
    );
    let bad = api
        .post(
            "/api/shared",
            Some(&user.token),
            json!({"apiKeyId": key, "name": "x", "allowedEndpoints": ["v1/chat"]}),
        )
        .await;
    assert_eq!(
        (bad.status, bad.code()),
        (StatusCode::BAD_REQUEST, "validation_failed")
    );
}

#[tokio::test]
async fn every_limit_round_trips_through_the_api() {
    let limits = json!({
        "rateLimit": 5, "dailyLimit": 50, "tokensPerMinute": 1000, "tokensPerDay": 100000,
        "budgetUsd": 2.5, "budgetPeriod": "week", "maxUses": 500, "reserveTokens": 256,
        "allowedModels": ["gpt-4o-mini"], "allowedEndpoints": ["/v1/chat/completions"], "allowedIps": ["192.168.0.0/16"],
    });
    let (_feen, api, user, _mock, share, _token) = setup(limits.clone()).await;
    let got = api.get(&format!("/api/shared/{share}"), &user.token).await;
    for (field, value) in limits.as_object().cloned().unwrap_or_default() {
        assert_eq!(got.body[&field], value, "{field}");
    }
    let cleared = api
        .patch(
            &format!("/api/shared/{share}"),
            &user.token,
            json!({"budgetUsd": null, "allowedIps": null, "budgetPeriod": null}),
        )
        .await;
    assert_eq!(cleared.status, StatusCode::OK, "{}", cleared.text);
    assert_eq!(cleared.body["budgetUsd"], Value::Null);
    assert_eq!(cleared.body["allowedIps"], json!([]));
    assert_eq!(
        cleared.body["rateLimit"], 5,
        "absent fields keep their values"
    );
    let moved = api
        .patch(
            &format!("/api/shared/{share}"),
            &user.token,
            json!({"apiKeyId": "key_01AAAAAAAAAAAAAAAAAAAAAAAA"}),
        )
        .await;
    assert_eq!(
        (moved.status, moved.code()),
        (StatusCode::BAD_REQUEST, "validation_failed")
    );
    let bad_period = api
        .patch(
            &format!("/api/shared/{share}"),
            &user.token,
            json!({"budgetUsd": 1, "budgetPeriod": "fortnight"}),
        )
        .await;
    assert_eq!(
        (bad_period.status, bad_period.code()),
        (StatusCode::BAD_REQUEST, "validation_failed")
    );
}

#[tokio::test]
async fn client_addresses_come_from_a_forwarding_header_only_behind_a_trusted_proxy() {
    use feen_e2e::feen::Options;
    let mock = MockProvider::start(SECRET).await;
    let limits = json!({"allowedIps": ["203.0.113.0/24"]});
    let body = chat(10).to_string().into_bytes();
    for (trusting, forwarded, expected) in [
        (true, "203.0.113.7", StatusCode::OK),
        (true, "198.51.100.1", StatusCode::FORBIDDEN),
        (true, "203.0.113.7, 198.51.100.1", StatusCode::FORBIDDEN),
        (false, "203.0.113.7", StatusCode::FORBIDDEN),
    ] {
        let env = if trusting {
            vec![
                (
                    "FEEN_CLIENT_IP_HEADER".to_owned(),
                    "X-Forwarded-For".to_owned(),
                ),
                ("FEEN_TRUSTED_PROXIES".to_owned(), "127.0.0.1/32".to_owned()),
            ]
        } else {
            Vec::new()
        };
        let feen = Feen::start_with(Options {
            env,
            ..Options::default()
        })
        .await;
        let api = Api::new(&feen.base);
        let user = api.signup("xff").await;
        let key = api.add_key(&user, "openai", SECRET, &mock.base_url()).await;
        let (_, token) = api.mint(&user, &key, limits.clone()).await;
        let auth = format!("Bearer {token}");
        let headers = [
            ("authorization", auth.as_str()),
            ("content-type", "application/json"),
            ("x-forwarded-for", forwarded),
        ];
        let reply = api
            .raw(
                http::Method::POST,
                "/api/proxy/v1/chat/completions",
                &headers,
                Some(body.clone()),
            )
            .await;
        assert_eq!(
            reply.status, expected,
            "trusting={trusting} forwarded={forwarded}: {}",
            reply.text
        );
        let sent = mock.requests().pop();
        if expected == StatusCode::OK {
            assert!(
                sent.is_some_and(|r| r.header("x-forwarded-for").is_none()),
                "forwarding headers are not passed upstream"
            );
        }
    }
}
