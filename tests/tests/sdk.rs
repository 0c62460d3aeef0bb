//! Compatibility with the official OpenAI, Anthropic and Google GenAI Python SDKs (from pip):
//! only `base_url` and the key change, and plain calls, streams, usage and errors all work as
//! with the providers themselves; the usage Feen records equals what the provider reported.
//! `FEEN_PYTHON` names an interpreter with `openai`, `anthropic` and `google-genai` installed
//! (default `python3`).

use feen_e2e::api::{Api, User};
use feen_e2e::feen::Feen;
use feen_e2e::mock::{self, MockProvider};
use serde_json::{Value, json};

const SECRET: &str = "sk-mock-sdk-0123456789abcdef";

/// A Feen with a mock provider, a user, and a share of a `provider` key.
async fn setup(provider: &str, limits: Value) -> (Feen, Api, User, String, String) {
    let feen = Feen::start().await;
    let api = Api::new(&feen.base);
    let mock = MockProvider::start(SECRET).await;
    let user = api.signup("sdk").await;
    let key = api.add_key(&user, provider, SECRET, &mock.base_url()).await;
    let (share, token) = api.mint(&user, &key, limits).await;
    // The mock's server task runs until the test's runtime ends; the handle is not needed.
    drop(mock);
    (feen, api, user, share, token)
}

/// Runs `tests/sdk/{script}` against Feen with `token` and returns what it printed.
async fn run_sdk(script: &str, feen: &Feen, token: &str) -> Value {
    let python = std::env::var("FEEN_PYTHON").unwrap_or_else(|_| "python3".into());
    let path = format!("{}/sdk/{script}", env!("CARGO_MANIFEST_DIR"));
    let output = tokio::process::Command::new(&python)
        .arg(&path)
        .arg(&feen.base)
        .arg(token)
        .output()
        .await
        .unwrap_or_else(|e| panic!("running {python}: {e}"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{script} failed (are openai, anthropic and google-genai installed for {python}?):\n{stderr}"
    );
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&output.stdout)))
}

#[tokio::test]
async fn the_official_openai_python_sdk_works_through_the_proxy() {
    feen_e2e::api::within_one_minute().await;
    let (feen, api, user, share, token) = setup("openai", json!({"rateLimit": 2})).await;
    let seen = run_sdk("openai_sdk.py", &feen, &token).await;
    assert_eq!(seen["plain"], mock::REPLY);
    assert_eq!(seen["streamed"], mock::REPLY);
    assert_eq!(
        seen["plain_usage"],
        json!([mock::OPENAI_INPUT_TOKENS, mock::OPENAI_OUTPUT_TOKENS])
    );
    assert_eq!(
        seen["stream_usage"],
        json!([mock::OPENAI_INPUT_TOKENS, mock::OPENAI_OUTPUT_TOKENS])
    );
    assert_eq!(seen["limited"]["status"], 429);
    assert_eq!(seen["limited"]["code"], "rate_limit_exceeded");
    assert!(
        seen["limited"]["retry_after"]
            .as_str()
            .and_then(|s| s.parse::<u64>().ok())
            .is_some()
    );

    let usage = api.wait_for_usage(&user, &share, 2).await;
    assert_eq!(
        usage.body["totals"]["inputTokens"],
        json!(2 * mock::OPENAI_INPUT_TOKENS)
    );
    assert_eq!(
        usage.body["totals"]["outputTokens"],
        json!(2 * mock::OPENAI_OUTPUT_TOKENS)
    );
    assert!(!feen.logs().contains(SECRET));
}

#[tokio::test]
async fn the_official_anthropic_python_sdk_works_through_the_proxy() {
    let (feen, api, user, share, token) = setup("anthropic", json!({})).await;
    let seen = run_sdk("anthropic_sdk.py", &feen, &token).await;
    assert_eq!(seen["plain"], mock::REPLY);
    assert_eq!(seen["streamed"], mock::REPLY);
    let expected = json!([mock::ANTHROPIC_INPUT_TOKENS, mock::ANTHROPIC_OUTPUT_TOKENS]);
    assert_eq!(seen["plain_usage"], expected);
    assert_eq!(seen["stream_usage"], expected);
    let usage = api.wait_for_usage(&user, &share, 2).await;
    assert_eq!(
        usage.body["totals"]["inputTokens"],
        json!(2 * mock::ANTHROPIC_INPUT_TOKENS)
    );
    assert_eq!(
        usage.body["totals"]["outputTokens"],
        json!(2 * mock::ANTHROPIC_OUTPUT_TOKENS)
    );
    // claude-3-5-haiku: 13 × $0.80/M + 5 × $4/M = 30.4 micro-USD, rounded up, twice.
    assert_eq!(usage.body["totals"]["costMicros"], json!(62));
}

#[tokio::test]
async fn the_official_google_genai_python_sdk_works_through_the_proxy() {
    let (feen, api, user, share, token) = setup("gemini", json!({})).await;
    let seen = run_sdk("google_genai_sdk.py", &feen, &token).await;
    assert_eq!(seen["plain"], mock::REPLY);
    assert_eq!(seen["streamed"], mock::REPLY);
    let expected = json!([mock::GEMINI_INPUT_TOKENS, mock::GEMINI_OUTPUT_TOKENS]);
    assert_eq!(seen["plain_usage"], expected);
    assert_eq!(seen["stream_usage"], expected);
    let usage = api.wait_for_usage(&user, &share, 2).await;
    assert_eq!(
        usage.body["totals"]["inputTokens"],
        json!(2 * mock::GEMINI_INPUT_TOKENS)
    );
    assert_eq!(
        usage.body["totals"]["outputTokens"],
        json!(2 * mock::GEMINI_OUTPUT_TOKENS)
    );
}
