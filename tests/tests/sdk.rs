//! Compatibility with the official OpenAI Python SDK (from pip): only `base_url` and the key
//! change, and plain calls, streams, usage and rate-limit errors all work as with OpenAI.
//! `FEEN_PYTHON` names the interpreter that has the `openai` package (default `python3`).

use feen_e2e::api::Api;
use feen_e2e::feen::Feen;
use feen_e2e::mock::{self, MockProvider};
use serde_json::{Value, json};

const SECRET: &str = "sk-mock-sdk-0123456789abcdef";

#[tokio::test]
async fn the_official_openai_python_sdk_works_through_the_proxy() {
    let feen = Feen::start().await;
    let api = Api::new(&feen.base);
    let mock = MockProvider::start(SECRET).await;
    let user = api.signup("sdk").await;
    let key = api.add_key(&user, "openai", SECRET, &mock.base_url()).await;
    let (share, token) = api.mint(&user, &key, json!({"rateLimit": 2})).await;

    let python = std::env::var("FEEN_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/sdk/openai_sdk.py");
    let output = tokio::process::Command::new(&python)
        .arg(script)
        .arg(&feen.base)
        .arg(&token)
        .output()
        .await
        .unwrap_or_else(|e| panic!("running {python}: {e}"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the SDK script failed (is the openai package installed for {python}? `pip install openai`):\n{stderr}"
    );
    let seen: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&output.stdout)));

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
