//! The local stand-ins, proved with the official client libraries (Node's test runner, suites
//! in `tests/standins/`): the Upstash REST stand-in with `@upstash/redis`, the SQL-over-HTTP
//! stand-in with `@neondatabase/serverless`. The packages come from
//! `npm ci --prefix tests/standins` (done by scripts/test.sh).

use std::path::Path;

/// Runs `suite` with `env` and checks that all `tests` of it passed.
async fn node_suite(suite: &str, env: &[(&str, String)], tests: usize) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("standins");
    assert!(
        dir.join("node_modules/@upstash/redis").exists()
            && dir.join("node_modules/@neondatabase/serverless").exists(),
        "the official clients are not installed: npm ci --prefix tests/standins"
    );
    let mut cmd = tokio::process::Command::new("node");
    cmd.args(["--test", suite]).current_dir(&dir);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let output = cmd.output().await.expect("node");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains(&format!("# pass {tests}")) && stdout.contains("# fail 0"),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_upstash_stand_in_passes_the_official_clients_suite() {
    let config = feen_standins::upstash::Config {
        token: "std-token".into(),
        readonly_token: Some("std-readonly".into()),
    };
    let addr = feen_standins::upstash::spawn("127.0.0.1:0", &feen_e2e::feen::redis_url(), config)
        .await
        .expect("stand-in");
    let env = [
        ("UPSTASH_URL", format!("http://{addr}")),
        ("UPSTASH_TOKEN", "std-token".into()),
        ("UPSTASH_READONLY_TOKEN", "std-readonly".into()),
    ];
    node_suite("upstash.test.mjs", &env, 6).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sql_over_http_stand_in_passes_the_official_clients_suite() {
    let addr = feen_standins::neon::spawn("127.0.0.1:0")
        .await
        .expect("stand-in");
    let env = [
        ("NEON_SQL_ENDPOINT", format!("http://{addr}/sql")),
        (
            "DATABASE_URL",
            feen_e2e::feen::fresh_postgres_database().await,
        ),
    ];
    node_suite("neon.test.mjs", &env, 6).await;
}
