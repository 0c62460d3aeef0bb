//! Starting `feen serve` for a test: on a free port, with its own data directory, logs captured
//! to a file (so tests can assert what was and was not logged), stopped with SIGTERM.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use tokio::process::{Child, Command};

/// The `FEEN_JOBS_TOKEN` every test host is started with.
pub const JOBS_TOKEN: &str = "e2e-jobs-token-0123456789abcdefghijklmnop";

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

static BINARY: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

/// Makes [`binary`] return `path` (the benchmark uses the release build).
pub fn set_binary(path: PathBuf) {
    let _ = BINARY.set(path);
}

/// The `feen` binary under test: the one [`set_binary`] named, `FEEN_BIN`, or the workspace's
/// debug build.
pub fn binary() -> PathBuf {
    if let Some(path) = BINARY.get() {
        return path.clone();
    }
    if let Ok(path) = std::env::var("FEEN_BIN") {
        return PathBuf::from(path);
    }
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let path = target.join("debug/feen");
    assert!(
        path.exists(),
        "{} is missing: build it first (cargo build -p feen)",
        path.display()
    );
    path
}

/// The PostgreSQL the tests use (`scripts/services.sh` sets it up).
pub fn database_url() -> String {
    std::env::var("FEEN_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://feen:feen@127.0.0.1:5432/feen_test".into())
}

/// The Redis the tests use.
pub fn redis_url() -> String {
    std::env::var("FEEN_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A fresh, empty PostgreSQL database; returns its URL.
pub async fn fresh_postgres_database() -> String {
    use feen_core::ports::Db;
    let name = unique("e2e_");
    let admin = feen_native::db::PgDb::connect(&database_url(), 1, None)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL is not reachable (run scripts/services.sh): {e}"));
    admin
        .execute(&format!("CREATE DATABASE {name}"), &[])
        .await
        .unwrap_or_else(|e| panic!("create database: {e}"));
    let base = database_url();
    let (server, _) = base.rsplit_once('/').unwrap_or((&base, ""));
    format!("{server}/{name}")
}

/// Which storage a Feen process uses.
#[derive(Clone, Debug)]
pub enum Backend {
    /// The embedded default: SQLite in the data directory, counters in process.
    Embedded,
    /// PostgreSQL and Redis (the URL of the database; Redis keys under `prefix`).
    Shared {
        database_url: String,
        redis_prefix: String,
    },
    /// PostgreSQL and Redis over the Upstash REST protocol at `rest_url`.
    SharedRest {
        database_url: String,
        redis_prefix: String,
        rest_url: String,
        token: String,
    },
}

impl Backend {
    /// A shared backend with a fresh database and Redis prefix of its own.
    pub async fn fresh_shared() -> Self {
        Backend::Shared {
            database_url: fresh_postgres_database().await,
            redis_prefix: format!("{}:", unique("e2e")),
        }
    }
}

/// Secrets shared by every process of one deployment.
#[derive(Clone, Debug)]
pub struct Secrets {
    /// `FEEN_KEYRING`.
    pub keyring: String,
    /// `FEEN_SESSION_SECRET`.
    pub session: String,
}

impl Secrets {
    /// Fresh random secrets (from the test's pid and clock: they protect nothing real).
    pub fn fresh() -> Self {
        let seed = unique("s");
        let bytes = |tag: &str| {
            let mut out = [0u8; 32];
            for (i, b) in format!("{tag}{seed}").bytes().cycle().take(32).enumerate() {
                out[i] = b;
            }
            out
        };
        Self {
            keyring: format!("1:{}", B64.encode(bytes("k"))),
            session: B64.encode(bytes("j")),
        }
    }
}

/// A running `feen serve`.
pub struct Feen {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// Its data directory.
    pub data_dir: PathBuf,
    /// Its database: `postgres://…`, or the embedded SQLite file.
    database: String,
    log_path: PathBuf,
    child: Option<Child>,
    /// Further processes of the host (Spin: one `wasmtime serve` per component), ended on drop.
    others: Vec<Child>,
    /// Whether dropping this Feen removes its data directory: when the harness made it, the
    /// test passed, and nobody stopped Feen to start it again on the same directory.
    remove_on_drop: bool,
    /// The extra environment it was started with (`feen jobs` runs with it too).
    env: Vec<(String, String)>,
    /// The prefix of its keys in the machine's Redis, when its counter store is Redis (directly
    /// or through the Upstash stand-in).
    pub redis_prefix: Option<String>,
}

/// How to start a Feen process.
#[derive(Clone, Debug)]
pub struct Options {
    /// Storage.
    pub backend: Backend,
    /// Secrets; `None` lets Feen create its own in the data directory.
    pub secrets: Option<Secrets>,
    /// The data directory; `None` for a fresh one.
    pub data_dir: Option<PathBuf>,
    /// Extra environment.
    pub env: Vec<(String, String)>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            backend: Backend::Embedded,
            secrets: None,
            data_dir: None,
            env: Vec::new(),
        }
    }
}

/// The port a `wasmtime serve` says it serves on (`Serving HTTP on http://127.0.0.1:PORT/`), once
/// it has bound it; its log is `log`.
async fn serving_port(log: &Path) -> u16 {
    let deadline = Instant::now() + Duration::from_secs(90);
    while Instant::now() < deadline {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let port = text
            .lines()
            .find_map(|l| l.strip_prefix("Serving HTTP on http://127.0.0.1:"))
            .and_then(|rest| rest.trim_end_matches('/').parse().ok());
        if let Some(port) = port {
            return port;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!(
        "wasmtime never said where it serves; its log:\n{}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

impl Feen {
    /// Starts the embedded default in a fresh data directory.
    pub async fn start() -> Self {
        Self::start_with(Options::default()).await
    }

    /// Starts Feen as `options` say and waits until it answers.
    pub async fn start_with(options: Options) -> Self {
        if std::env::var("FEEN_E2E_HOST").as_deref() == Ok("workers") {
            return Self::start_workers(options).await;
        }
        if std::env::var("FEEN_E2E_HOST").as_deref() == Ok("spin") {
            return Self::start_spin(options).await;
        }
        let owned = options.data_dir.is_none();
        let data_dir = options
            .data_dir
            .clone()
            .unwrap_or_else(|| std::env::temp_dir().join(unique("feen-e2e-")));
        std::fs::create_dir_all(&data_dir).unwrap_or_else(|e| panic!("data dir: {e}"));
        let log_path = data_dir.join(format!("{}.log", unique("feen-")));
        let log = std::fs::File::create(&log_path).unwrap_or_else(|e| panic!("log file: {e}"));
        let port = free_port();
        let mut cmd = Command::new(binary());
        cmd.arg("serve")
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--data-dir")
            .arg(&data_dir)
            .env_remove("DATABASE_URL")
            .env_remove("REDIS_URL")
            .env_remove("UPSTASH_REDIS_REST_URL")
            .env_remove("UPSTASH_REDIS_REST_TOKEN")
            .env_remove("FEEN_KEYRING")
            .env_remove("FEEN_SESSION_SECRET")
            .env("FEEN_ALLOW_PRIVATE_UPSTREAMS", "1")
            .env("FEEN_JOBS_TOKEN", JOBS_TOKEN)
            .env("FEEN_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true);
        match &options.backend {
            Backend::Embedded => {}
            Backend::Shared {
                database_url,
                redis_prefix,
            } => {
                cmd.env("DATABASE_URL", database_url)
                    .env("REDIS_URL", redis_url())
                    .env("FEEN_REDIS_PREFIX", redis_prefix);
            }
            Backend::SharedRest {
                database_url,
                redis_prefix,
                rest_url,
                token,
            } => {
                cmd.env("DATABASE_URL", database_url)
                    .env("UPSTASH_REDIS_REST_URL", rest_url)
                    .env("UPSTASH_REDIS_REST_TOKEN", token)
                    .env("FEEN_REDIS_PREFIX", redis_prefix);
            }
        }
        if let Some(secrets) = &options.secrets {
            cmd.env("FEEN_KEYRING", &secrets.keyring)
                .env("FEEN_SESSION_SECRET", &secrets.session);
        }
        for (k, v) in &options.env {
            cmd.env(k, v);
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", binary().display()));
        let database = match &options.backend {
            Backend::Embedded => data_dir.join("feen.sqlite").display().to_string(),
            Backend::Shared { database_url, .. } | Backend::SharedRest { database_url, .. } => {
                database_url.clone()
            }
        };
        let feen = Self {
            base: format!("http://127.0.0.1:{port}"),
            data_dir,
            database,
            log_path,
            child: Some(child),
            others: Vec::new(),
            remove_on_drop: owned,
            env: options.env.clone(),
            redis_prefix: match &options.backend {
                Backend::Embedded => None,
                Backend::Shared { redis_prefix, .. } | Backend::SharedRest { redis_prefix, .. } => {
                    Some(redis_prefix.clone())
                }
            },
        };
        feen.wait_ready().await;
        feen
    }

    /// The URL Miniflare printed (`listening on URL`) once it bound its port.
    async fn announced_base(&self) -> String {
        let deadline = Instant::now() + Duration::from_secs(90);
        while Instant::now() < deadline {
            let log = self.logs();
            if let Some(url) = log.lines().find_map(|l| l.strip_prefix("listening on ")) {
                return url.trim().to_owned();
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!(
            "Miniflare never said where it listens; its log:\n{}",
            self.logs()
        );
    }

    async fn wait_ready(&self) {
        self.wait_ready_at(&self.base).await;
    }

    async fn wait_ready_at(&self, base: &str) {
        let client = crate::http_client();
        // workerd compiles four Workers' wasm at start-up: allow for a busy machine.
        let patience =
            if std::env::var("FEEN_E2E_HOST").is_ok_and(|h| h == "workers" || h == "spin") {
                90
            } else {
                20
            };
        let deadline = Instant::now() + Duration::from_secs(patience);
        while Instant::now() < deadline {
            if let Ok(resp) = client.get(format!("{base}/healthz")).send().await
                && resp.status().is_success()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("feen did not become ready; its log:\n{}", self.logs());
    }

    /// The process id of `feen serve` (not of the edge hosts' harnesses).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// Everything Feen has logged so far.
    pub fn logs(&self) -> String {
        if let Ok(text) = std::fs::read_to_string(&self.log_path) {
            return text;
        }
        // Spin: a log per component.
        let mut paths: Vec<PathBuf> = std::fs::read_dir(&self.data_dir)
            .map(|dir| dir.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        paths.retain(|p| p.extension().is_some_and(|e| e == "log"));
        paths.sort();
        paths
            .iter()
            .map(|p| {
                let text = std::fs::read_to_string(p).unwrap_or_default();
                format!("== {}\n{text}", p.display())
            })
            .collect()
    }

    /// Starts Feen's Workers under Miniflare/workerd (`tests/workers/serve.mjs`), as deployed:
    /// PostgreSQL through Hyperdrive (a fresh database, migrated with `feen migrate`), Redis over
    /// the Upstash REST protocol (the stand-in), the router in front of the function Workers.
    /// Chosen for every suite by `FEEN_E2E_HOST=workers`.
    async fn start_workers(options: Options) -> Self {
        let data_dir = std::env::temp_dir().join(unique("feen-workers-"));
        let prefix = format!("{}:", unique("w"));
        std::fs::create_dir_all(&data_dir).unwrap_or_else(|e| panic!("data dir: {e}"));
        let log_path = data_dir.join("miniflare.log");
        let log = std::fs::File::create(&log_path).unwrap_or_else(|e| panic!("log file: {e}"));
        let (database_url, rest, token) = edge_backing(&options).await;
        let secrets = options.secrets.clone().unwrap_or_else(Secrets::fresh);
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("workers/serve.mjs");
        let mut cmd = Command::new("node");
        // Port 0: Miniflare binds a free port itself and prints it (a port picked here first
        // could be taken by another test before workerd binds it).
        cmd.arg(script)
            .env("PORT", "0")
            .env("DATABASE_URL", &database_url)
            .env("UPSTASH_REDIS_REST_URL", format!("http://{rest}"))
            .env("UPSTASH_REDIS_REST_TOKEN", &token)
            .env("FEEN_REDIS_PREFIX", &prefix)
            .env("FEEN_KEYRING", &secrets.keyring)
            .env("FEEN_SESSION_SECRET", &secrets.session)
            .env("FEEN_ALLOW_PRIVATE_UPSTREAMS", "1")
            .env("FEEN_COOKIE_SECURE", "0")
            .env("FEEN_JOBS_TOKEN", JOBS_TOKEN)
            // Short enough for the cut-stream test to see the watchdog within its wait.
            .env("FEEN_STREAM_IDLE_SECS", "2")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap_or_else(|e| panic!("log file: {e}")))
            .stderr(log)
            // node starts workerd as a child: a group of their own lets the whole tree be ended.
            .process_group(0);
        for (k, v) in &options.env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().unwrap_or_else(|e| panic!("starting node: {e}"));
        let mut feen = Self {
            base: String::new(),
            data_dir,
            database: database_url,
            log_path,
            child: Some(child),
            others: Vec::new(),
            remove_on_drop: true,
            env: options.env.clone(),
            redis_prefix: Some(prefix),
        };
        feen.base = feen.announced_base().await;
        feen.wait_ready().await;
        feen
    }

    /// Starts Feen's Spin components as Spin runs them (`crate::spin`): one `wasmtime serve` per
    /// component of `spin.toml` behind a router that follows its routes, PostgreSQL over SQL over
    /// HTTP (the stand-in, in front of a fresh migrated database), Redis over the Upstash REST
    /// protocol (the stand-in). Chosen for every suite by `FEEN_E2E_HOST=spin`; the components
    /// are built by `scripts/build-spin.sh`.
    async fn start_spin(options: Options) -> Self {
        let data_dir = std::env::temp_dir().join(unique("feen-spin-"));
        std::fs::create_dir_all(&data_dir).unwrap_or_else(|e| panic!("data dir: {e}"));
        let log_path = data_dir.join("wasmtime.log");
        let prefix = format!("{}:", unique("s"));
        let (database_url, rest, token) = edge_backing(&options).await;
        let sql = feen_standins::neon::spawn("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("SQL-over-HTTP stand-in: {e}"));
        let secrets = options.secrets.clone().unwrap_or_else(Secrets::fresh);
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let manifest = crate::spin::Manifest::read(&root.join("spin.toml"))
            .unwrap_or_else(|e| panic!("spin.toml: {e}"));
        let mut env: Vec<(String, String)> = vec![
            ("DATABASE_URL".into(), database_url.clone()),
            ("FEEN_SQL_HTTP_ENDPOINT".into(), format!("http://{sql}/sql")),
            ("UPSTASH_REDIS_REST_URL".into(), format!("http://{rest}")),
            ("UPSTASH_REDIS_REST_TOKEN".into(), token),
            ("FEEN_REDIS_PREFIX".into(), prefix.clone()),
            ("FEEN_KEYRING".into(), secrets.keyring.clone()),
            ("FEEN_SESSION_SECRET".into(), secrets.session.clone()),
            ("FEEN_ALLOW_PRIVATE_UPSTREAMS".into(), "1".into()),
            ("FEEN_COOKIE_SECURE".into(), "0".into()),
            ("FEEN_JOBS_TOKEN".into(), JOBS_TOKEN.into()),
        ];
        // The test's own values replace the defaults (wasmtime keeps the first of two).
        env.retain(|(k, _)| !options.env.iter().any(|(o, _)| o == k));
        env.extend(options.env.iter().cloned());
        let wasmtime = std::env::var("FEEN_WASMTIME").unwrap_or_else(|_| "wasmtime".into());
        let mut ports = std::collections::HashMap::new();
        let mut others = Vec::new();
        for (component, source) in &manifest.sources {
            let source = crate::spin::component_path(source);
            assert!(
                source.exists(),
                "{} is missing: bash scripts/build-spin.sh",
                source.display()
            );
            // Port 0: wasmtime binds a free port itself and says which (a port picked here
            // first could be taken by another test before wasmtime binds it).
            let component_log = data_dir.join(format!("wasmtime-{component}.log"));
            let log =
                std::fs::File::create(&component_log).unwrap_or_else(|e| panic!("log file: {e}"));
            let mut cmd = Command::new(&wasmtime);
            cmd.arg("serve")
                .args(["-S", "cli=y", "-C", "cache=y", "--addr", "127.0.0.1:0"]);
            for (k, v) in &env {
                cmd.arg("--env").arg(format!("{k}={v}"));
            }
            cmd.arg(&source)
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap_or_else(|e| panic!("log file: {e}")))
                .stderr(log)
                .kill_on_drop(true);
            others.push(
                cmd.spawn()
                    .unwrap_or_else(|e| panic!("starting {wasmtime} for {component}: {e}")),
            );
            ports.insert(component.clone(), serving_port(&component_log).await);
        }
        let router = crate::spin::router(manifest, ports.clone()).await;
        let feen = Self {
            base: format!("http://{router}"),
            data_dir,
            database: database_url,
            log_path,
            child: None,
            others,
            remove_on_drop: true,
            env: options.env.clone(),
            redis_prefix: Some(prefix),
        };
        // Every component answers /healthz; wait for each one, not just the routed one.
        for port in ports.values() {
            feen.wait_ready_at(&format!("http://127.0.0.1:{port}"))
                .await;
        }
        feen.wait_ready().await;
        feen
    }

    /// A connection to this Feen's database, for tests that must look at or age stored rows.
    pub async fn db(&self) -> std::sync::Arc<dyn feen_core::ports::Db> {
        if self.database.starts_with("postgres") {
            let db = feen_native::db::PgDb::connect(&self.database, 2, None).await;
            std::sync::Arc::new(db.unwrap_or_else(|e| panic!("PostgreSQL: {e}")))
        } else {
            let db = feen_native::db::SqliteDb::open(Path::new(&self.database)).await;
            std::sync::Arc::new(db.unwrap_or_else(|e| panic!("SQLite: {e}")))
        }
    }

    /// Runs the periodic jobs once, the way this host runs them: `feen jobs` beside
    /// `feen serve`; the jobs Worker's cron trigger under workerd.
    pub async fn run_jobs(&self) {
        if std::env::var("FEEN_E2E_HOST").as_deref() == Ok("workers") {
            let resp = crate::http_client()
                .post(format!(
                    "{}/cdn-cgi/handler/scheduled?cron=17+*+*+*+*",
                    self.base
                ))
                .header("MF-Route-Override", "jobs")
                .send()
                .await
                .unwrap_or_else(|e| panic!("cron trigger: {e}"));
            let status = resp.status();
            let text = resp.text().await.unwrap_or_default();
            assert_eq!(
                (status.as_u16(), text.as_str()),
                (200, "ok"),
                "cron trigger failed; log:\n{}",
                self.logs()
            );
            return;
        }
        let mut cmd = Command::new(binary());
        cmd.arg("jobs")
            .arg("--data-dir")
            .arg(&self.data_dir)
            .env_remove("DATABASE_URL")
            .env("FEEN_ALLOW_PRIVATE_UPSTREAMS", "1");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        if self.database.starts_with("postgres") {
            cmd.env("DATABASE_URL", &self.database);
        }
        let out = cmd
            .output()
            .await
            .unwrap_or_else(|e| panic!("feen jobs: {e}"));
        assert!(
            out.status.success(),
            "feen jobs failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Stops Feen with SIGTERM (a graceful shutdown) and waits for it to exit.
    pub async fn stop(mut self) -> std::process::ExitStatus {
        let Some(mut child) = self.child.take() else {
            panic!("already stopped")
        };
        // A stopped Feen may be started again on the same directory.
        self.remove_on_drop = false;
        if let Some(pid) = child.id() {
            signal("TERM", &pid.to_string());
        }
        match tokio::time::timeout(Duration::from_secs(40), child.wait()).await {
            Ok(Ok(status)) => status,
            _ => panic!("feen did not stop within 40 s; its log:\n{}", self.logs()),
        }
    }
}

impl Drop for Feen {
    /// Ends the host's extra processes, the Workers host gracefully (so the workerd that node
    /// started does not outlive the test), and removes the data directory of a passed test.
    fn drop(&mut self) {
        for other in &mut self.others {
            let _ = other.start_kill();
        }
        if let Some(pid) = self.child.as_ref().and_then(Child::id)
            && std::env::var("FEEN_E2E_HOST").as_deref() == Ok("workers")
        {
            // SIGTERM first: serve.mjs disposes of Miniflare, which stops its workerd.
            signal("TERM", &pid.to_string());
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline
                && self
                    .child
                    .as_mut()
                    .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            // Whatever is left of the group (nothing, when the dispose worked).
            signal("KILL", &format!("-{pid}"));
        }
        // A failed test keeps its directory (its logs); a passed one leaves nothing behind.
        if self.remove_on_drop && !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.data_dir);
        }
    }
}

/// What the edge hosts run against: a migrated PostgreSQL database (the options' shared one, so
/// that a test can start a host again on the same data, or a fresh one), and the Upstash REST
/// stand-in in front of Redis (its address and token).
async fn edge_backing(options: &Options) -> (String, std::net::SocketAddr, String) {
    let database_url = match &options.backend {
        Backend::Shared { database_url, .. } | Backend::SharedRest { database_url, .. } => {
            database_url.clone()
        }
        Backend::Embedded => fresh_postgres_database().await,
    };
    let migrated = Command::new(binary())
        .arg("migrate")
        .env("DATABASE_URL", &database_url)
        .output()
        .await;
    assert!(
        migrated.is_ok_and(|o| o.status.success()),
        "feen migrate failed"
    );
    let token = unique("rest");
    let config = feen_standins::upstash::Config {
        token: token.clone(),
        readonly_token: None,
    };
    let rest = feen_standins::upstash::spawn("127.0.0.1:0", &redis_url(), config)
        .await
        .unwrap_or_else(|e| panic!("Upstash stand-in: {e}"));
    (database_url, rest, token)
}

/// Sends signal `name` to `target` (a pid, or `-PGID` for a process group) with `kill(1)`.
///
/// The target goes after `--`: procps-ng 4.0's `kill -KILL -14949` reads the group as `-1` (its
/// first digit) and signals every process the caller may signal, which as root is the whole
/// machine.
fn signal(name: &str, target: &str) {
    let _ = std::process::Command::new("kill")
        .args(["-s", name, "--", target])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}
