//! Shared setup for the native integration tests: a fresh database of each dialect, and the
//! service URLs the tests use.

#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use feen_core::ports::Db;
use feen_native::db::{PgDb, SqliteDb};

/// The PostgreSQL the tests use (`scripts/services.sh` sets it up).
pub fn database_url() -> String {
    std::env::var("FEEN_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://feen:feen@127.0.0.1:5432/feen_test".into())
}

/// The Redis the tests use.
pub fn redis_url() -> String {
    std::env::var("FEEN_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A name no other test (or test process) uses.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}{}_{}_{}",
        std::process::id(),
        nanos % 1_000_000_000,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A migrated SQLite database in a fresh temporary file.
pub async fn sqlite() -> Arc<dyn Db> {
    let dir = std::env::temp_dir().join(unique("feen-test-"));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let db = SqliteDb::open(&dir.join("feen.sqlite"))
        .await
        .expect("open sqlite");
    db.migrate().await.expect("migrate sqlite");
    Arc::new(db)
}

/// A migrated PostgreSQL schema of its own.
pub async fn postgres() -> Arc<dyn Db> {
    postgres_schema().await.1
}

/// A migrated PostgreSQL schema of its own, reached over SQL over HTTP (Neon's protocol) through
/// the stand-in.
pub async fn postgres_over_http() -> Arc<dyn Db> {
    let (schema, _) = postgres_schema().await;
    let addr = feen_standins::neon::spawn("127.0.0.1:0")
        .await
        .expect("SQL-over-HTTP stand-in");
    let dsn = format!(
        "{}?options=-csearch_path%3D{schema}",
        database_url().replace("postgres://", "postgresql://")
    );
    let http = feen_native::outbound::ReqwestHttp::new(true).expect("http client");
    let db = feen_neon::NeonDb::new(Arc::new(http), &format!("http://{addr}/sql"), &dsn)
        .expect("driver");
    Arc::new(db)
}

/// A migrated PostgreSQL schema of its own: its name, and a pool that uses it.
async fn postgres_schema() -> (String, Arc<dyn Db>) {
    let schema = unique("t_");
    let admin = PgDb::connect(&database_url(), 1, None)
        .await
        .expect("connect to PostgreSQL (run scripts/services.sh)");
    admin
        .execute(&format!("CREATE SCHEMA {schema}"), &[])
        .await
        .expect("create schema");
    let db = PgDb::connect(&database_url(), 4, Some(&schema))
        .await
        .expect("connect");
    db.migrate().await.expect("migrate postgres");
    (schema, Arc::new(db))
}
