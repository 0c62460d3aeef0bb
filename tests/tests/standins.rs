//! The local stand-ins, proved with the official client libraries: the Upstash REST stand-in
//! runs the `@upstash/redis` test suite in `tests/standins/` (Node's test runner). The packages
//! come from `npm ci --prefix tests/standins` (done by scripts/test.sh).

use std::path::Path;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_upstash_stand_in_passes_the_official_clients_suite() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("standins");
    assert!(
        dir.join("node_modules/@upstash/redis").exists(),
        "the official client is not installed: npm ci --prefix tests/standins"
    );
    let redis =
        std::env::var("FEEN_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let config = feen_standins::upstash::Config {
        token: "std-token".into(),
        readonly_token: Some("std-readonly".into()),
    };
    let addr = feen_standins::upstash::spawn("127.0.0.1:0", &redis, config)
        .await
        .expect("stand-in");
    let output = tokio::process::Command::new("node")
        .args(["--test", "upstash.test.mjs"])
        .current_dir(&dir)
        .env("UPSTASH_URL", format!("http://{addr}"))
        .env("UPSTASH_TOKEN", "std-token")
        .env("UPSTASH_READONLY_TOKEN", "std-readonly")
        .output()
        .await
        .expect("node");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("# pass 6") && stdout.contains("# fail 0"),
        "{stdout}"
    );
}
