//! The jobs endpoint (`POST /api/jobs/run`), which lets any scheduler run the periodic jobs:
//! authenticated with `FEEN_JOBS_TOKEN`, refusing everything else with the usual errors; and
//! the key-ring rewrap it runs.

use feen_e2e::api::Api;
use feen_e2e::feen::{Backend, Feen, JOBS_TOKEN, Options, Secrets};
use feen_e2e::mock::MockProvider;
use http::{Method, StatusCode};
use serde_json::json;

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

async fn run_jobs(api: &Api) -> serde_json::Value {
    let auth = format!("Bearer {JOBS_TOKEN}");
    let reply = api
        .raw(
            Method::POST,
            "/api/jobs/run",
            &[("authorization", auth.as_str())],
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    reply.body
}

#[tokio::test]
async fn a_new_key_ring_version_reseals_every_key_and_the_old_one_can_retire() {
    const KEY: &str = "sk-rewrap-0123456789abcdefghij";
    let backend = Backend::fresh_shared().await;
    let first = Secrets::fresh();
    let start = |secrets: Secrets| {
        Feen::start_with(Options {
            backend: backend.clone(),
            secrets: Some(secrets),
            ..Options::default()
        })
    };
    let chat = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]});
    let mock = MockProvider::start(KEY).await;

    let feen = start(first.clone()).await;
    let api = Api::new(&feen.base);
    let user = api.signup("rewrap").await;
    let key = api.add_key(&user, "openai", KEY, &mock.base_url()).await;
    let (_, token) = api.mint(&user, &key, json!({})).await;
    assert_eq!(api.chat(&token, chat.clone()).await.status, StatusCode::OK);
    drop(feen);

    // A second version joins the ring: new secrets are sealed with it, old ones still open.
    let version_two = "2:AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=";
    let both = Secrets {
        keyring: format!("{},{version_two}", first.keyring),
        session: first.session.clone(),
    };
    let feen = start(both).await;
    let api = Api::new(&feen.base);
    assert_eq!(api.chat(&token, chat.clone()).await.status, StatusCode::OK);
    let report = run_jobs(&api).await;
    assert_eq!(report["keysResealed"], 1, "{report}");
    assert_eq!(report["keysOnOldVersions"], 0, "{report}");
    let again = run_jobs(&api).await;
    assert_eq!(again["keysResealed"], 0, "{again}");
    drop(feen);

    // The first version retires: the key still opens, and the provider gets it.
    let only_two = Secrets {
        keyring: version_two.to_owned(),
        session: first.session.clone(),
    };
    let feen = start(only_two).await;
    let api = Api::new(&feen.base);
    let reply = api.chat(&token, chat).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let keys = api.get("/api/keys", &user.token).await;
    assert_eq!(keys.status, StatusCode::OK, "{}", keys.text);
}
