//! What only the native host can show: its logs never hold a secret, a graceful shutdown writes
//! every usage event, and several processes sharing PostgreSQL and Redis act as one.

use feen_e2e::api::Api;
use feen_e2e::feen::{Backend, Feen, Options, Secrets};
use feen_e2e::mock::MockProvider;
use http::{Method, StatusCode};
use serde_json::{Value, json};

const SECRET: &str = "sk-live-NEVER-LOG-ME-4242424242";

fn chat() -> Value {
    json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]})
}

#[tokio::test]
async fn provider_keys_and_tokens_never_appear_in_logs_or_responses() {
    let feen = Feen::start().await;
    let api = Api::new(&feen.base);
    let mock = MockProvider::start(SECRET).await;
    let user = api.signup("leak").await;
    let mut texts = Vec::new();
    let key = api.add_key(&user, "openai", SECRET, &mock.base_url()).await;
    texts.push(api.get("/api/keys", &user.token).await.text);
    texts.push(api.get(&format!("/api/keys/{key}"), &user.token).await.text);
    feen_e2e::api::within_one_minute().await;
    let (share, token) = api.mint(&user, &key, json!({"rateLimit": 2})).await;
    for _ in 0..3 {
        texts.push(api.chat(&token, chat()).await.text);
    }
    // Through a query-string credential too (the Gemini SDK style).
    let q = api
        .raw(
            Method::POST,
            &format!("/api/proxy/v1/chat/completions?key={token}"),
            &[("content-type", "application/json")],
            Some(chat().to_string().into_bytes()),
        )
        .await;
    texts.push(q.text);
    // A rotation to a key the provider refuses, and a provider that is down.
    texts.push(
        api.post(
            &format!("/api/keys/{key}/rotate"),
            Some(&user.token),
            json!({"apiKey": format!("{SECRET}-2")}),
        )
        .await
        .text,
    );
    mock.accept_only("something-else");
    texts.push(api.chat(&token, chat()).await.text);
    let down = api
        .add_key(&user, "openai", SECRET, "http://127.0.0.1:9")
        .await;
    let (_, down_token) = api.mint(&user, &down, json!({})).await;
    texts.push(api.chat(&down_token, chat()).await.text);
    texts.push(api.wait_for_usage(&user, &share, 2).await.text);
    texts.push(api.get("/api/shared", &user.token).await.text);

    let logs = feen.logs();
    assert!(
        logs.contains("/api/proxy/v1/chat/completions"),
        "the request log is missing: {logs}"
    );
    for (what, secret) in [
        ("provider key", SECRET),
        ("share token", token.as_str()),
        ("password", user.password.as_str()),
        ("access token", user.token.as_str()),
    ] {
        assert!(!logs.contains(secret), "{what} in the log");
        for text in &texts {
            assert!(
                !text.contains(secret) || (what == "share token" && text.contains("\"token\"")),
                "{what} in a response: {text}"
            );
        }
    }
    let stored = std::fs::read(feen.data_dir.join("feen.sqlite")).unwrap_or_default();
    assert!(
        !stored.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()),
        "provider key stored in plain text"
    );
}

#[tokio::test]
async fn a_graceful_shutdown_writes_every_pending_usage_event() {
    let secrets = Secrets::fresh();
    let feen = Feen::start_with(Options {
        secrets: Some(secrets.clone()),
        ..Options::default()
    })
    .await;
    let data_dir = feen.data_dir.clone();
    let api = Api::new(&feen.base);
    let mock = MockProvider::start(SECRET).await;
    let user = api.signup("shutdown").await;
    let key = api.add_key(&user, "openai", SECRET, &mock.base_url()).await;
    let (share, token) = api.mint(&user, &key, json!({})).await;
    let n = 60;
    let calls: Vec<_> = (0..n)
        .map(|_| {
            let api = api.clone();
            let token = token.clone();
            tokio::spawn(async move { api.chat(&token, chat()).await.status })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.expect("task"), StatusCode::OK);
    }
    let status = feen.stop().await;
    assert!(status.success(), "feen exited with {status}");

    let again = Feen::start_with(Options {
        secrets: Some(secrets),
        data_dir: Some(data_dir),
        ..Options::default()
    })
    .await;
    let api = Api::new(&again.base);
    let login = api
        .post(
            "/api/auth/login",
            None,
            json!({"email": user.email, "password": user.password}),
        )
        .await;
    let token = login.str("/accessToken");
    let usage = api.get(&format!("/api/shared/{share}/usage"), &token).await;
    assert_eq!(usage.body["totals"]["requests"], json!(n), "{}", usage.text);
}

#[tokio::test]
async fn two_processes_sharing_postgres_and_redis_act_as_one() {
    let backend = Backend::fresh_shared().await;
    let secrets = Secrets::fresh();
    let options = Options {
        backend,
        secrets: Some(secrets),
        ..Options::default()
    };
    let a = Feen::start_with(options.clone()).await;
    let b = Feen::start_with(options).await;
    let (api_a, api_b) = (Api::new(&a.base), Api::new(&b.base));
    let mock = MockProvider::start(SECRET).await;
    let user = api_a.signup("replicas").await;
    let key = api_a
        .add_key(&user, "openai", SECRET, &mock.base_url())
        .await;

    // A rate limit holds across both processes: 64 concurrent clients, exactly `limit` admitted.
    let limit = 10;
    feen_e2e::api::within_one_minute().await;
    let (share, token) = api_a.mint(&user, &key, json!({"rateLimit": limit})).await;
    let calls: Vec<_> = (0..64)
        .map(|i| {
            let api = if i % 2 == 0 {
                api_a.clone()
            } else {
                api_b.clone()
            };
            let token = token.clone();
            tokio::spawn(async move { api.chat(&token, chat()).await.status })
        })
        .collect();
    let mut admitted = 0;
    for call in calls {
        match call.await.expect("task") {
            StatusCode::OK => admitted += 1,
            StatusCode::TOO_MANY_REQUESTS => {}
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(admitted, limit);

    // Rotating on A: the next request on B uses the new secret.
    let (_, open_token) = api_a.mint(&user, &key, json!({})).await;
    assert_eq!(
        api_b.chat(&open_token, chat()).await.status,
        StatusCode::OK,
        "warms B's view of the share"
    );
    let rotated = "sk-live-rotated-7777777777";
    mock.accept_only(rotated);
    assert_eq!(
        api_a
            .post(
                &format!("/api/keys/{key}/rotate"),
                Some(&user.token),
                json!({"apiKey": rotated})
            )
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(api_b.chat(&open_token, chat()).await.status, StatusCode::OK);

    // Revoking on A: the next request on B is refused.
    let revoke = api_a
        .delete(&format!("/api/shared/{share}"), &user.token)
        .await;
    assert_eq!(revoke.status, StatusCode::NO_CONTENT);
    assert_eq!(api_b.chat(&token, chat()).await.code(), "invalid_token");
    // A session logged out on B no longer works on A.
    assert_eq!(
        api_b
            .call(Method::POST, "/api/auth/logout", Some(&user.token), None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        api_a.get("/api/keys", &user.token).await.code(),
        "session_ended"
    );
}

#[tokio::test]
async fn first_start_creates_a_private_key_ring_and_later_starts_reuse_it() {
    let feen = Feen::start().await;
    let data_dir = feen.data_dir.clone();
    let secrets = data_dir.join("secrets.json");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&secrets)
            .expect("secrets file")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "secrets file mode {mode:o}");
    }
    assert!(
        feen.logs().contains("created a new key ring"),
        "the first start must say so"
    );
    let api = Api::new(&feen.base);
    let mock = MockProvider::start(SECRET).await;
    let user = api.signup("restart").await;
    let key = api.add_key(&user, "openai", SECRET, &mock.base_url()).await;
    let (_, token) = api.mint(&user, &key, json!({})).await;
    assert!(feen.stop().await.success());

    let again = Feen::start_with(Options {
        data_dir: Some(data_dir),
        ..Options::default()
    })
    .await;
    assert!(!again.logs().contains("created a new key ring"));
    // The key sealed before the restart still opens: the ring was reused, not regenerated.
    let reply = Api::new(&again.base).chat(&token, chat()).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
}

#[tokio::test]
async fn feen_migrate_prepares_an_empty_database() {
    let data_dir = std::env::temp_dir().join(feen_e2e::feen::unique("migrate-"));
    let embedded = tokio::process::Command::new(feen_e2e::feen::binary())
        .args(["migrate", "--data-dir"])
        .arg(&data_dir)
        .env_remove("DATABASE_URL")
        .output()
        .await
        .expect("run feen migrate");
    assert!(
        embedded.status.success(),
        "{}",
        String::from_utf8_lossy(&embedded.stderr)
    );
    assert!(data_dir.join("feen.sqlite").exists());

    let url = feen_e2e::feen::fresh_postgres_database().await;
    let pg = tokio::process::Command::new(feen_e2e::feen::binary())
        .arg("migrate")
        .env("DATABASE_URL", &url)
        .output()
        .await
        .expect("run feen migrate");
    assert!(
        pg.status.success(),
        "{}",
        String::from_utf8_lossy(&pg.stderr)
    );
    assert!(
        !String::from_utf8_lossy(&pg.stderr).contains(":feen@"),
        "the database password was logged"
    );

    let bad = tokio::process::Command::new(feen_e2e::feen::binary())
        .arg("migrate")
        .env("DATABASE_URL", "mysql://nope")
        .output()
        .await
        .expect("run feen migrate");
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("DATABASE_URL must start with"));
}

/// Fires 64 concurrent requests spread over two processes and counts the admitted ones.
async fn admitted_across(apis: &[Api; 2], token: &str) -> (usize, Vec<String>) {
    let calls: Vec<_> = (0..64)
        .map(|i| {
            let api = apis[i % 2].clone();
            let token = token.to_owned();
            tokio::spawn(async move { api.chat(&token, chat()).await })
        })
        .collect();
    let (mut admitted, mut codes) = (0, Vec::new());
    for call in calls {
        let reply = call.await.expect("task");
        if reply.status == StatusCode::OK {
            admitted += 1;
        } else {
            codes.push(reply.code().to_owned());
        }
    }
    (admitted, codes)
}

#[tokio::test]
async fn daily_total_and_budget_limits_hold_exactly_across_processes() {
    let options = Options {
        backend: Backend::fresh_shared().await,
        secrets: Some(Secrets::fresh()),
        ..Options::default()
    };
    let (a, b) = (
        Feen::start_with(options.clone()).await,
        Feen::start_with(options).await,
    );
    let apis = [Api::new(&a.base), Api::new(&b.base)];
    let mock = MockProvider::start(SECRET).await;
    let user = apis[0].signup("exact").await;
    let key = apis[0]
        .add_key(&user, "openai", SECRET, &mock.base_url())
        .await;

    let (_, daily) = apis[0].mint(&user, &key, json!({"dailyLimit": 7})).await;
    let (admitted, codes) = admitted_across(&apis, &daily).await;
    assert_eq!(admitted, 7, "{codes:?}");
    assert!(
        codes.iter().all(|c| c == "daily_limit_exceeded"),
        "{codes:?}"
    );

    let (_, uses) = apis[0].mint(&user, &key, json!({"maxUses": 9})).await;
    let (admitted, codes) = admitted_across(&apis, &uses).await;
    assert_eq!(admitted, 9, "{codes:?}");
    assert!(codes.iter().all(|c| c == "uses_exhausted"), "{codes:?}");

    let (budget_share, budget) = apis[0]
        .mint(
            &user,
            &key,
            json!({"budgetUsd": 0.0002, "budgetPeriod": "lifetime", "reserveTokens": 10}),
        )
        .await;
    let (admitted, codes) = admitted_across(&apis, &budget).await;
    assert!(
        admitted >= 1 && codes.iter().all(|c| c == "budget_exhausted"),
        "{admitted} {codes:?}"
    );
    let usage = apis[1]
        .wait_for_usage(&user, &budget_share, admitted as u64)
        .await;
    let spent = usage.body["totals"]["costMicros"]
        .as_u64()
        .unwrap_or(u64::MAX);
    assert!(spent <= 200, "spent {spent} of a 200 micro-dollar budget");
}

#[tokio::test]
async fn the_proxy_fails_closed_while_redis_is_down_and_recovers() {
    // A Redis of this test's own, so stopping it disturbs no other test.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("port");
        l.local_addr().expect("addr").port()
    };
    let start_redis = || {
        std::process::Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server (run scripts/services.sh)")
    };
    let mut redis = start_redis();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let backend = match Backend::fresh_shared().await {
        Backend::Shared {
            database_url,
            redis_prefix,
        } => Backend::Shared {
            database_url,
            redis_prefix,
        },
        other => other,
    };
    let feen = Feen::start_with(Options {
        backend,
        env: vec![("REDIS_URL".into(), format!("redis://127.0.0.1:{port}"))],
        ..Options::default()
    })
    .await;
    let api = Api::new(&feen.base);
    let mock = MockProvider::start(SECRET).await;
    let user = api.signup("redis-down").await;
    let key = api.add_key(&user, "openai", SECRET, &mock.base_url()).await;
    let (_, token) = api.mint(&user, &key, json!({"rateLimit": 1000})).await;
    assert_eq!(api.chat(&token, chat()).await.status, StatusCode::OK);

    let _ = redis.kill();
    let _ = redis.wait();
    let down = api.chat(&token, chat()).await;
    assert_eq!(
        (down.status, down.code()),
        (StatusCode::SERVICE_UNAVAILABLE, "service_unavailable"),
        "{}",
        down.text
    );
    assert!(
        !down.text.contains(&port.to_string()),
        "internal detail leaked: {}",
        down.text
    );
    assert_eq!(
        mock.requests().len(),
        1,
        "nothing is forwarded without its limits"
    );

    let mut redis = start_redis();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let mut status = StatusCode::SERVICE_UNAVAILABLE;
    while std::time::Instant::now() < deadline {
        status = api.chat(&token, chat()).await.status;
        if status == StatusCode::OK {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let _ = redis.kill();
    let _ = redis.wait();
    assert_eq!(
        status,
        StatusCode::OK,
        "service did not resume after Redis came back"
    );
}

/// A sample's value in Prometheus text.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
}

/// The metrics token of the metrics tests.
const TOKEN: &str = "metrics-token-0123456789abcdefghijklmnop";

#[tokio::test]
async fn metrics_count_requests_refusals_usage_database_and_cache_for_the_token_holder() {
    let feen = Feen::start_with(Options {
        env: vec![("FEEN_METRICS_TOKEN".into(), TOKEN.into())],
        ..Options::default()
    })
    .await;
    let api = Api::new(&feen.base);
    let mock = MockProvider::start(SECRET).await;
    let user = api.signup("metrics").await;
    let key = api.add_key(&user, "openai", SECRET, &mock.base_url()).await;
    feen_e2e::api::within_one_minute().await;
    let (share, token) = api.mint(&user, &key, json!({"rateLimit": 2})).await;
    let statuses: Vec<u16> = [
        api.chat(&token, chat()).await.status.as_u16(),
        api.chat(&token, chat()).await.status.as_u16(),
        api.chat(&token, chat()).await.status.as_u16(),
    ]
    .into();
    assert_eq!(statuses, [200, 200, 429]);
    let usage = api.wait_for_usage(&user, &share, 2).await;
    let input = usage.body["totals"]["inputTokens"]
        .as_u64()
        .expect("input tokens");

    let bearer = format!("Bearer {TOKEN}");
    let reply = api
        .raw(
            Method::GET,
            "/metrics",
            &[("authorization", bearer.as_str())],
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(
        reply.header("content-type"),
        Some("text/plain; version=0.0.4")
    );
    let text = reply.text;
    assert_eq!(
        sample(
            &text,
            "feen_http_requests_total{group=\"proxy\",status=\"200\"}"
        ),
        2.0
    );
    assert_eq!(sample(&text, "feen_rate_limited_total"), 1.0);
    assert_eq!(
        sample(
            &text,
            "feen_http_request_duration_seconds_count{group=\"proxy\"}"
        ),
        3.0
    );
    assert_eq!(sample(&text, "feen_usage_events_total"), 2.0);
    assert_eq!(sample(&text, "feen_usage_input_tokens_total"), input as f64);
    assert!(sample(&text, "feen_db_query_duration_seconds_count") > 0.0);
    assert_eq!(sample(&text, "feen_db_errors_total"), 0.0);
    // The first call found the share in the database, the next ones in memory.
    assert_eq!(
        sample(&text, "feen_share_cache_lookups_total{source=\"database\"}"),
        1.0
    );
    assert!(sample(&text, "feen_share_cache_lookups_total{source=\"memo\"}") >= 2.0);
    assert!(!text.contains(SECRET) && !text.contains(&token) && !text.contains(TOKEN));

    for auth in [None, Some("Bearer wrong")] {
        let headers: Vec<(&str, &str)> = auth.map(|a| ("authorization", a)).into_iter().collect();
        let refused = api.raw(Method::GET, "/metrics", &headers, None).await;
        assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{}", refused.text);
        assert_eq!(refused.code(), "invalid_token");
    }
}

#[tokio::test]
async fn a_burst_of_first_requests_looks_the_share_up_once() {
    let feen = Feen::start_with(Options {
        env: vec![("FEEN_METRICS_TOKEN".into(), TOKEN.into())],
        ..Options::default()
    })
    .await;
    let api = Api::new(&feen.base);
    let mock = MockProvider::start(SECRET).await;
    let user = api.signup("burst").await;
    let key = api.add_key(&user, "openai", SECRET, &mock.base_url()).await;
    let (_, token) = api.mint(&user, &key, json!({})).await;
    // 24 requests at once with a token nobody has used yet.
    let calls: Vec<_> = (0..24)
        .map(|_| {
            let (api, token) = (api.clone(), token.clone());
            tokio::spawn(async move { api.chat(&token, chat()).await.status })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.expect("task"), StatusCode::OK);
    }
    let bearer = format!("Bearer {TOKEN}");
    let text = api
        .raw(
            Method::GET,
            "/metrics",
            &[("authorization", bearer.as_str())],
            None,
        )
        .await
        .text;
    // One of them looked the share up; the others waited for it and found it in memory.
    let lookups = |source: &str| {
        sample(
            &text,
            &format!("feen_share_cache_lookups_total{{source=\"{source}\"}}"),
        )
    };
    assert_eq!(lookups("database"), 1.0, "{text}");
    assert_eq!(lookups("shared"), 0.0);
    assert_eq!(lookups("memo"), 23.0);
}

#[tokio::test]
async fn without_a_metrics_token_there_is_no_metrics_endpoint() {
    let feen = Feen::start().await;
    let reply = Api::new(&feen.base)
        .raw(Method::GET, "/metrics", &[], None)
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
}

/// `feen serve` on a fresh data directory with `env` added.
async fn serve_with(env: &[(&str, &str)]) -> Feen {
    Feen::start_with(Options {
        env: env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        ..Options::default()
    })
    .await
}

/// Reads from `stream` until it closes or `within` passes; whether it closed, and what it read.
async fn read_until_closed(
    stream: &mut tokio::net::TcpStream,
    within: std::time::Duration,
) -> (bool, Vec<u8>) {
    use tokio::io::AsyncReadExt;
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let mut buf = [0u8; 4096];
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (true, seen),
            Ok(Ok(n)) => seen.extend_from_slice(&buf[..n]),
            Err(_) => return (false, seen),
        }
    }
}

fn addr(feen: &Feen) -> String {
    feen.base.trim_start_matches("http://").to_owned()
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_or_goes_idle_is_disconnected() {
    use tokio::io::AsyncWriteExt;
    let feen = serve_with(&[("FEEN_HEADER_TIMEOUT_SECS", "1")]).await;
    // Headers that never end.
    let mut slow = tokio::net::TcpStream::connect(addr(&feen))
        .await
        .expect("connect");
    slow.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nx-slow: ")
        .await
        .expect("write");
    let (closed, _) = read_until_closed(&mut slow, std::time::Duration::from_secs(10)).await;
    assert!(closed, "a connection with unfinished headers stayed open");
    // A keep-alive connection that sends nothing after its first request.
    let mut idle = tokio::net::TcpStream::connect(addr(&feen))
        .await
        .expect("connect");
    idle.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .expect("write");
    let (closed, seen) = read_until_closed(&mut idle, std::time::Duration::from_secs(10)).await;
    assert!(String::from_utf8_lossy(&seen).starts_with("HTTP/1.1 200"));
    assert!(closed, "an idle keep-alive connection stayed open");
}

#[tokio::test]
async fn a_body_that_never_arrives_is_given_up_on() {
    use tokio::io::AsyncWriteExt;
    let feen = serve_with(&[("FEEN_BODY_TIMEOUT_SECS", "1")]).await;
    let mut stream = tokio::net::TcpStream::connect(addr(&feen))
        .await
        .expect("connect");
    stream
        .write_all(
            b"POST /api/proxy/v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer feen_x\r\n\
              content-type: application/json\r\ncontent-length: 1000\r\n\r\n{\"model\":",
        )
        .await
        .expect("write");
    let (_, seen) = read_until_closed(&mut stream, std::time::Duration::from_secs(10)).await;
    let answer = String::from_utf8_lossy(&seen);
    // Answered (the token is read first: a made-up one is refused before the body is waited
    // for), or the body timed out; either way within the deadline, not never.
    assert!(
        answer.starts_with("HTTP/1.1 4"),
        "no answer within 10 s: {answer:?}"
    );
    // With a real token the body is what is waited for, and the deadline ends the wait.
    let api = Api::new(&feen.base);
    let mock = MockProvider::start(SECRET).await;
    let user = api.signup("slowbody").await;
    let key = api.add_key(&user, "openai", SECRET, &mock.base_url()).await;
    let (_, token) = api.mint(&user, &key, json!({})).await;
    let mut stream = tokio::net::TcpStream::connect(addr(&feen))
        .await
        .expect("connect");
    let head = format!(
        "POST /api/proxy/v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {token}\r\n\
         content-type: application/json\r\ncontent-length: 1000\r\n\r\n{{\"model\":"
    );
    stream.write_all(head.as_bytes()).await.expect("write");
    let started = std::time::Instant::now();
    let (_, seen) = read_until_closed(&mut stream, std::time::Duration::from_secs(10)).await;
    let answer = String::from_utf8_lossy(&seen);
    assert!(
        answer.starts_with("HTTP/1.1 400"),
        "the unfinished body was not given up on: {answer:?}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    assert!(mock.requests().is_empty());
}

#[tokio::test]
async fn connections_past_the_cap_wait_for_one_to_close() {
    use tokio::io::AsyncWriteExt;
    let feen = serve_with(&[
        ("FEEN_MAX_CONNECTIONS", "2"),
        ("FEEN_HEADER_TIMEOUT_SECS", "60"),
    ])
    .await;
    // Two connections hold both places (the harness's readiness probe has closed its own).
    let first = tokio::net::TcpStream::connect(addr(&feen))
        .await
        .expect("connect");
    let _second = tokio::net::TcpStream::connect(addr(&feen))
        .await
        .expect("connect");
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let mut third = tokio::net::TcpStream::connect(addr(&feen))
        .await
        .expect("the kernel queues it");
    third
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .expect("write");
    let (_, early) = read_until_closed(&mut third, std::time::Duration::from_millis(1500)).await;
    assert!(
        early.is_empty(),
        "a third connection was served past the cap"
    );
    drop(first);
    let (_, later) = read_until_closed(&mut third, std::time::Duration::from_secs(10)).await;
    assert!(
        String::from_utf8_lossy(&later).starts_with("HTTP/1.1 200"),
        "the waiting connection was never served"
    );
}

#[tokio::test]
async fn a_key_ring_written_inside_a_git_work_tree_is_warned_about() {
    let root = std::env::temp_dir().join(feen_e2e::feen::unique("feen-worktree-"));
    std::fs::create_dir_all(root.join(".git")).expect("a work tree");
    let feen = Feen::start_with(Options {
        data_dir: Some(root.join("feen-data")),
        ..Options::default()
    })
    .await;
    let logs = feen.logs();
    assert!(
        logs.contains("inside a git work tree"),
        "no warning in:\n{logs}"
    );
    drop(feen);
    let _ = std::fs::remove_dir_all(&root);
}
