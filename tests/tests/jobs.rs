//! The jobs endpoint (`POST /api/jobs/run`), which lets any scheduler run the periodic jobs:
//! authenticated with `FEEN_JOBS_TOKEN`, refusing everything else with the usual errors.

use feen_e2e::api::Api;
use feen_e2e::feen::{Feen, JOBS_TOKEN, Options};
use http::{Method, StatusCode};

#[tokio::test]
async fn the_jobs_endpoint_runs_the_jobs_for_the_token_holder_only() {
    let feen = Feen::start().await;
    let api = Api::new(&feen.base);
    let auth = format!("Bearer {JOBS_TOKEN}");
    let run = |token: Option<&'static str>| {
        let api = &api;
        async move {
            let bearer = token.map(|t| format!("Bearer {t}"));
            let headers: Vec<(&str, &str)> = bearer
                .as_deref()
                .map(|b| ("authorization", b))
                .into_iter()
                .collect();
            api.raw(Method::POST, "/api/jobs/run", &headers, None).await
        }
    };
    let ok = run(Some(JOBS_TOKEN)).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
    assert!(ok.body["sessionsPurged"].is_u64(), "{}", ok.text);
    assert!(ok.body["usageDrained"].is_u64(), "{}", ok.text);

    for token in [
        None,
        Some("wrong"),
        Some("e2e-jobs-token-0123456789abcdefghijklmnoP"),
    ] {
        let refused = run(token).await;
        assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{}", refused.text);
        assert_eq!(refused.body["error"]["code"], "invalid_token");
        assert!(!refused.text.contains(JOBS_TOKEN));
    }
    let get = api
        .raw(
            Method::GET,
            "/api/jobs/run",
            &[("authorization", auth.as_str())],
            None,
        )
        .await;
    assert_eq!(get.status, StatusCode::METHOD_NOT_ALLOWED);
    let unknown = api
        .raw(
            Method::POST,
            "/api/jobs/nope",
            &[("authorization", auth.as_str())],
            None,
        )
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown.body["error"]["code"], "not_found");
}

#[tokio::test]
async fn without_a_jobs_token_there_is_no_jobs_endpoint() {
    let feen = Feen::start_with(Options {
        env: vec![("FEEN_JOBS_TOKEN".into(), String::new())],
        ..Options::default()
    })
    .await;
    let api = Api::new(&feen.base);
    let reply = api
        .raw(
            Method::POST,
            "/api/jobs/run",
            &[("authorization", "Bearer ")],
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.text);
}
