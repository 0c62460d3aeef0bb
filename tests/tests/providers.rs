//! Providers beyond OpenAI and Anthropic, end to end: Gemini (its header, `?key=`, JSON and SSE,
//! `usageMetadata`), Azure's `api-key`, and a custom provider with its own header template.

use feen_e2e::api::{Api, User};
use feen_e2e::feen::Feen;
use feen_e2e::mock::{self, MockProvider};
use http::{Method, StatusCode};
use serde_json::json;

const SECRET: &str = "sk-mock-providers-0123456789";

async fn setup() -> (Feen, Api, User, MockProvider) {
    let feen = Feen::start().await;
    let api = Api::new(&feen.base);
    let mock = MockProvider::start(SECRET).await;
    let user = api.signup("providers").await;
    (feen, api, user, mock)
}

#[tokio::test]
async fn gemini_gets_x_goog_api_key_from_either_credential_and_its_usage_is_read() {
    let (_feen, api, user, mock) = setup().await;
    let key = api.add_key(&user, "gemini", SECRET, &mock.base_url()).await;
    let (share, token) = api
        .mint(&user, &key, json!({"allowedModels": ["gemini-2.0-flash"]}))
        .await;
    let body = json!({"contents": [{"parts": [{"text": "Hi"}]}]})
        .to_string()
        .into_bytes();
    let path = "/api/proxy/v1beta/models/gemini-2.0-flash:generateContent";
    let plain = api
        .raw(
            Method::POST,
            path,
            &[
                ("x-goog-api-key", &token),
                ("content-type", "application/json"),
            ],
            Some(body.clone()),
        )
        .await;
    assert_eq!(plain.status, StatusCode::OK, "{}", plain.text);
    assert_eq!(plain.str("/candidates/0/content/parts/0/text"), mock::REPLY);
    // The Gemini SDKs' other habit: the key in the query string.
    let stream_path = format!(
        "/api/proxy/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse&key={token}"
    );
    let streamed = api
        .raw(
            Method::POST,
            &stream_path,
            &[("content-type", "application/json")],
            Some(body),
        )
        .await;
    assert_eq!(streamed.status, StatusCode::OK, "{}", streamed.text);
    assert!(streamed.text.contains(" mock"));
    let seen = mock.requests();
    for request in &seen {
        assert_eq!(request.header("x-goog-api-key"), Some(SECRET));
        assert!(
            !request.path.contains(&token) && !request.path.contains("key="),
            "{}",
            request.path
        );
    }
    assert_eq!(
        seen[1].path,
        "/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse"
    );
    let usage = api.wait_for_usage(&user, &share, 2).await;
    assert_eq!(
        usage.body["totals"]["inputTokens"],
        json!(2 * mock::GEMINI_INPUT_TOKENS)
    );
    assert_eq!(
        usage.body["totals"]["outputTokens"],
        json!(2 * mock::GEMINI_OUTPUT_TOKENS)
    );
    let events = usage.body["events"].as_array().cloned().unwrap_or_default();
    assert!(events.iter().all(|e| e["model"] == "gemini-2.0-flash"));
    // 9 × $0.10/M + 4 × $0.40/M = 2.5 micro-USD, rounded up.
    assert!(events.iter().all(|e| e["costMicros"] == 3), "{events:?}");
}

#[tokio::test]
async fn azure_keys_use_api_key_and_keep_the_api_version() {
    let (_feen, api, user, mock) = setup().await;
    let key = api.add_key(&user, "azure", SECRET, &mock.base_url()).await;
    let (_, token) = api.mint(&user, &key, json!({})).await;
    let path = "/api/proxy/openai/deployments/my-gpt/chat/completions?api-version=2024-10-21";
    let body = json!({"messages": [{"role": "user", "content": "Hi"}]})
        .to_string()
        .into_bytes();
    let reply = api
        .raw(
            Method::POST,
            path,
            &[("api-key", &token), ("content-type", "application/json")],
            Some(body),
        )
        .await;
    // The mock speaks OpenAI's auth; what matters is what Feen sent.
    let request = mock.requests().pop().expect("forwarded");
    assert_eq!(
        request.path,
        "/openai/deployments/my-gpt/chat/completions?api-version=2024-10-21"
    );
    assert_eq!(request.header("api-key"), Some(SECRET));
    assert_eq!(request.header("authorization"), None);
    assert_ne!(reply.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn custom_providers_send_the_key_in_their_own_header() {
    let (_feen, api, user, mock) = setup().await;
    let created = api
        .post(
            "/api/keys",
            Some(&user.token),
            json!({"name": "gateway", "provider": "custom", "apiKey": SECRET, "baseUrl": mock.base_url(),
                   "authHeader": "X-Custom-Auth", "authTemplate": "Token {key}"}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    assert_eq!(created.body["authTemplate"], "Token {key}");
    let (_, token) = api.mint(&user, &created.str("/id"), json!({})).await;
    let reply = api
        .chat(&token, json!({"model": "gpt-4o-mini", "messages": []}))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let request = mock.requests().pop().expect("forwarded");
    assert_eq!(
        request.header("x-custom-auth"),
        Some(format!("Token {SECRET}").as_str())
    );
    assert_eq!(request.header("authorization"), None);

    let missing_url = api
        .post(
            "/api/keys",
            Some(&user.token),
            json!({"name": "g", "provider": "custom", "apiKey": SECRET}),
        )
        .await;
    assert_eq!(
        (missing_url.status, missing_url.code()),
        (StatusCode::BAD_REQUEST, "validation_failed")
    );
    let bad_template = api
        .post("/api/keys", Some(&user.token), json!({"name": "g", "provider": "custom", "apiKey": SECRET, "baseUrl": mock.base_url(), "authTemplate": "no key here"}))
        .await;
    assert_eq!(bad_template.body["error"]["field"], "authTemplate");
    let not_custom = api
        .post(
            "/api/keys",
            Some(&user.token),
            json!({"name": "g", "provider": "openai", "apiKey": SECRET, "authHeader": "X-K"}),
        )
        .await;
    assert_eq!(
        (not_custom.status, not_custom.code()),
        (StatusCode::BAD_REQUEST, "validation_failed")
    );
}
