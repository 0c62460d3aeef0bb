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

/// A provider key sealed the way Feen sealed them before destinations were bound: AES-256-GCM
/// under the ring's version `version`, with only the key's row as additional data.
fn sealed_before_destinations(keyring: &str, version: u32, secret: &str, key_id: &str) -> String {
    use aes_gcm::aead::{Aead, KeyInit, Payload};
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD as B64;
    let key = keyring
        .split(',')
        .find_map(|e| e.strip_prefix(&format!("{version}:")))
        .and_then(|k| B64.decode(k).ok())
        .expect("the ring holds the version");
    let cipher = aes_gcm::Aes256Gcm::new_from_slice(&key).expect("a 32-byte key");
    let nonce = [7u8; 12];
    let aad = format!("feen/sealed-secret/v{version}/{key_id}");
    let sealed = cipher
        .encrypt(
            &aes_gcm::Nonce::from(nonce),
            Payload {
                msg: secret.as_bytes(),
                aad: aad.as_bytes(),
            },
        )
        .expect("seals");
    let mut out = nonce.to_vec();
    out.extend_from_slice(&sealed);
    format!("v{version}.{}", B64.encode(out))
}

#[tokio::test]
async fn keys_sealed_before_destinations_were_bound_keep_opening_and_are_resealed() {
    use feen_core::ports::Kv;
    const KEY: &str = "sk-legacy-0123456789abcdefghij";
    let secrets = Secrets::fresh();
    let feen = Feen::start_with(Options {
        backend: Backend::fresh_shared().await,
        secrets: Some(secrets.clone()),
        ..Options::default()
    })
    .await;
    let api = Api::new(&feen.base);
    let mock = MockProvider::start(KEY).await;
    let user = api.signup("legacy").await;
    let key = api.add_key(&user, "openai", KEY, &mock.base_url()).await;
    let (_, token) = api.mint(&user, &key, json!({})).await;
    let chat = json!({"model": "gpt-4o-mini", "messages": []});
    // The key as an earlier release stored it, and no cache entry of the new one left.
    let db = feen.db().await;
    let legacy = sealed_before_destinations(&secrets.keyring, 1, KEY, &key);
    db.execute(
        "UPDATE api_keys SET sealed_secret = $1, key_version = 1 WHERE id = $2",
        &[legacy.as_str().into(), key.as_str().into()],
    )
    .await
    .expect("update");
    let prefix = feen.redis_prefix.clone().expect("Redis");
    let kv = feen_native::kv_redis::RedisKv::connect(&feen_e2e::feen::redis_url(), &prefix)
        .await
        .expect("Redis");
    let hash = feen_core::crypto::token::verify(feen_core::crypto::token::TokenKind::Share, &token)
        .expect("token");
    kv.delete(&[format!("cache:share:{}", hash.as_str())])
        .await
        .expect("Redis");
    let reply = api.chat(&token, chat.clone()).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(
        mock.requests()
            .last()
            .and_then(|r| r.header("authorization")),
        Some(&*format!("Bearer {KEY}"))
    );
    // The jobs seal it again, for its destination; it still opens.
    let report = run_jobs(&api).await;
    assert_eq!(report["keysResealed"], 1, "{report}");
    assert_eq!(report["keysOnOldVersions"], 0, "{report}");
    let rows = db
        .query(
            "SELECT sealed_secret FROM api_keys WHERE id = $1",
            &[key.as_str().into()],
        )
        .await
        .expect("select");
    let stored = rows[0].text(0).expect("text");
    assert!(stored.starts_with("v1.d."), "{stored}");
    let reply = api.chat(&token, chat).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
}
