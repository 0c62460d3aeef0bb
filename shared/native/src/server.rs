//! `feen serve`: every function in one process behind a hyper server, with graceful shutdown
//! that finishes in-flight requests and writes every pending usage event.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use feen_core::body::StreamError;
use feen_core::netguard::ClientIpSource;
use feen_core::ports::{Clock, Db, HttpClient, Kv};
use feen_core::secret::SecretString;
use feen_core::{Body, Error};
use feen_service::cache::Memo;
use feen_service::request::ClientAddr;
use feen_service::response::{error_response, json};
use feen_service::{Ctx, Req, Resp};
use futures_util::TryStreamExt;
use http::StatusCode;
use http_body_util::{BodyExt, Full, StreamBody, combinators::UnsyncBoxBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::config::{Settings, redact_url};
use crate::db::{PgDb, SqliteDb};
use crate::deferred::Tasks;
use crate::kv_memory::MemoryKv;
use crate::kv_redis::RedisKv;
use crate::metrics::{CountingSink, Metrics, TimedDb};
use crate::outbound::ReqwestHttp;
use crate::system::{BlockingPasswords, OsRng, SystemClock};
use crate::usage_writer;

/// How long a shutdown waits for in-flight requests (long streams) before closing them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(15);

/// Routes a request to the function that owns its path.
pub async fn dispatch(req: Req, ctx: &Ctx) -> Resp {
    let path = req.uri().path();
    let host = feen_service::request::request_host(&req);
    if !feen_service::request::answers_here(path, host, ctx.config.proxy_host.as_deref()) {
        return error_response(&Error::NotFound("route"));
    }
    let under = |prefix: &str| feen_service::request::under(path, prefix);
    if under(feen_auth::PREFIX) {
        feen_auth::handle(req, ctx).await
    } else if under(feen_keys::PREFIX) {
        feen_keys::handle(req, ctx).await
    } else if under(feen_shares::PREFIX) {
        feen_shares::handle(req, ctx).await
    } else if under(feen_proxy::PREFIX) || under(feen_proxy::OPENAI_PREFIX) {
        feen_proxy::handle(req, ctx).await
    } else if under(feen_audit::PREFIX) {
        feen_audit::handle(req, ctx).await
    } else if under(feen_teams::PREFIX) {
        feen_teams::handle(req, ctx).await
    } else if under(feen_analytics::PREFIX) {
        feen_analytics::handle(req, ctx).await
    } else if under(feen_jobs::PREFIX) {
        feen_jobs::handle(req, ctx).await
    } else if path == "/healthz" {
        json(StatusCode::OK, &serde_json::json!({ "status": "ok" }))
    } else {
        feen_web::handle(&req)
    }
}

/// Opens the database named by `DATABASE_URL` (or the embedded SQLite file) and migrates it.
pub async fn open_db(
    settings: &Settings,
    data_dir: &Path,
) -> Result<(Arc<dyn Db>, String), String> {
    match settings.database_url.as_deref() {
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            let db = PgDb::connect(url, 32, None)
                .await
                .map_err(|e| format!("connecting to PostgreSQL: {e}"))?;
            db.migrate()
                .await
                .map_err(|e| format!("migrating PostgreSQL: {e}"))?;
            Ok((Arc::new(db), format!("postgres ({})", redact_url(url))))
        }
        Some(url) if url.starts_with("sqlite:") => {
            let path = PathBuf::from(
                url.trim_start_matches("sqlite://")
                    .trim_start_matches("sqlite:"),
            );
            open_sqlite(&path).await
        }
        Some(_) => Err("DATABASE_URL must start with postgres://, postgresql:// or sqlite:".into()),
        None => {
            std::fs::create_dir_all(data_dir)
                .map_err(|e| format!("creating {}: {e}", data_dir.display()))?;
            open_sqlite(&data_dir.join("feen.sqlite")).await
        }
    }
}

async fn open_sqlite(path: &Path) -> Result<(Arc<dyn Db>, String), String> {
    let db = SqliteDb::open(path)
        .await
        .map_err(|e| format!("opening {}: {e}", path.display()))?;
    db.migrate()
        .await
        .map_err(|e| format!("migrating {}: {e}", path.display()))?;
    Ok((Arc::new(db), format!("sqlite ({})", path.display())))
}

async fn open_kv(
    settings: &Settings,
    http: Arc<dyn HttpClient>,
) -> Result<(Arc<dyn Kv>, String), String> {
    if let Some((url, token)) = &settings.upstash {
        if settings.redis_url.is_some() {
            return Err("set REDIS_URL or UPSTASH_REDIS_REST_URL, not both".into());
        }
        let kv = feen_upstash::UpstashKv::new(http, url, token, &settings.redis_prefix)
            .map_err(|e| e.to_string())?;
        return Ok((Arc::new(kv), format!("redis over REST ({url})")));
    }
    match settings.redis_url.as_deref() {
        Some(url) => {
            let kv = RedisKv::connect(url, &settings.redis_prefix)
                .await
                .map_err(|e| format!("connecting to Redis: {e}"))?;
            Ok((Arc::new(kv), format!("redis ({})", redact_url(url))))
        }
        None => Ok((Arc::new(MemoryKv::new()), "in-process".into())),
    }
}

/// Checks the key ring against the fingerprints in the database ([`feen_store::keyring`]), so
/// that a process never starts with a key ring that differs from its replicas'.
pub async fn check_keyring(
    db: &dyn Db,
    ring: &feen_core::crypto::keyring::KeyRing,
) -> Result<(), String> {
    feen_store::keyring::check(db, ring, SystemClock.now_ms())
        .await
        .map_err(|e| e.to_string())
}

/// Runs `feen serve` until `shutdown` resolves.
pub async fn serve(
    settings: Settings,
    listen: SocketAddr,
    data_dir: PathBuf,
    shutdown: impl Future<Output = ()>,
) -> Result<(), String> {
    let config = settings.config(&data_dir, listen, &OsRng)?;
    if crate::config::secrets_path(&data_dir).exists()
        && let Some(tree) = crate::config::git_work_tree(&data_dir)
    {
        tracing::warn!(
            data_dir = %data_dir.display(),
            work_tree = %tree.display(),
            "the data directory, with the key ring in secrets.json, is inside a git work tree: \
             keep it out of commits (it is in this repository's .gitignore as /feen-data) or \
             move it with --data-dir"
        );
    }
    let (db, db_name) = open_db(&settings, &data_dir).await?;
    check_keyring(db.as_ref(), &config.keyring).await?;
    let metrics = Metrics::new();
    let db: Arc<dyn Db> = Arc::new(TimedDb {
        inner: db,
        metrics: metrics.clone(),
    });
    let http: Arc<dyn HttpClient> =
        Arc::new(ReqwestHttp::new(settings.allow_private_upstreams).map_err(|e| e.to_string())?);
    // The REST store is reached by a client of its own: its URL is the operator's, not an
    // owner's upstream, so the private-address guard does not apply to it.
    let store_http: Arc<dyn HttpClient> =
        Arc::new(ReqwestHttp::new(true).map_err(|e| e.to_string())?);
    let (kv, kv_name) = open_kv(&settings, store_http).await?;
    let (sink, writer) = usage_writer::spawn(db.clone());
    let tasks = Tasks::new();
    let front = Arc::new(Front {
        body_timeout: Duration::from_secs(settings.server.body_timeout_secs),
        client_ip: settings.client_ip.clone(),
        metrics: metrics.clone(),
        metrics_token: settings.metrics_token.clone().map(SecretString::new),
    });
    let ctx = Ctx {
        db,
        kv,
        http,
        clock: Arc::new(SystemClock),
        rng: Arc::new(OsRng),
        usage: Arc::new(CountingSink {
            inner: sink,
            metrics: metrics.clone(),
        }),
        defer: Arc::new(tasks.clone()),
        passwords: Arc::new(BlockingPasswords::new()),
        memo: Arc::new(Memo::new()),
        config: Arc::new(config),
    };
    let jobs = (settings.jobs_interval_secs > 0).then(|| {
        tokio::spawn(run_jobs_every(
            ctx.db.clone(),
            ctx.kv.clone(),
            ctx.http.clone(),
            ctx.config.clone(),
            Duration::from_secs(settings.jobs_interval_secs),
        ))
    });
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| format!("listening on {listen}: {e}"))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    tracing::info!(address = %format!("http://{local}"), database = %db_name, counters = %kv_name, "feen is listening");

    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    let limits = settings.server;
    // One permit per open connection: past the cap, connections wait in the kernel's queue.
    let connections = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let mut http1 = hyper::server::conn::http1::Builder::new();
    http1
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(Duration::from_secs(limits.header_timeout_secs));
    loop {
        let permit = tokio::select! {
            permit = connections.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(pair) => pair,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let ctx = ctx.clone();
                let front = front.clone();
                let service = hyper::service::service_fn(move |req| {
                    let ctx = ctx.clone();
                    let front = front.clone();
                    async move { Ok::<_, Infallible>(handle(req, peer, &front, &ctx).await) }
                });
                let conn = http1.serve_connection(TokioIo::new(stream), service);
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                    drop(permit);
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    if let Some(jobs) = jobs {
        jobs.abort();
    }
    tracing::info!("shutting down: finishing in-flight requests");
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("in-flight requests did not finish in time; closing them");
    }
    if tokio::time::timeout(Duration::from_secs(10), tasks.finish())
        .await
        .is_err()
    {
        tracing::warn!("deferred work (settlements) did not finish in time");
    }
    drop(ctx);
    if tokio::time::timeout(Duration::from_secs(30), writer)
        .await
        .is_err()
    {
        tracing::error!("usage events were still being written at exit");
    }
    tracing::info!("stopped");
    Ok(())
}

/// Runs the periodic jobs once (`feen jobs`, and each tick of `feen serve`'s timer); with the
/// configuration (its key ring), keys sealed with older versions are re-sealed too.
pub async fn run_jobs(
    db: &dyn Db,
    config: Option<&feen_service::Config>,
    cache: Option<&dyn Kv>,
    mail: Option<(&dyn HttpClient, &feen_service::mail::MailConfig)>,
) -> Result<feen_jobs::Report, String> {
    let now = feen_core::ports::Clock::now_ms(&SystemClock);
    let means = feen_jobs::Means {
        usage_list: None,
        cache,
        keyring: config.map(|c| (&c.keyring, &OsRng as &dyn feen_core::ports::Rng)),
        usage_retention_days: config.map(|c| c.usage_retention_days),
        mail,
    };
    feen_jobs::periodic(db, means, now)
        .await
        .map_err(|e| format!("periodic jobs: {e}"))
}

/// `feen serve`'s timer: the periodic jobs a minute after start, then every `every`.
async fn run_jobs_every(
    db: Arc<dyn Db>,
    kv: Arc<dyn Kv>,
    http: Arc<dyn HttpClient>,
    config: Arc<feen_service::Config>,
    every: Duration,
) {
    let first = tokio::time::Instant::now() + every.min(Duration::from_secs(60));
    let mut ticks = tokio::time::interval_at(first, every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let mail = config.mail.as_ref().map(|m| (http.as_ref(), m));
        match run_jobs(db.as_ref(), Some(&config), Some(kv.as_ref()), mail).await {
            Ok(report) => tracing::info!(
                usage_rows_rolled_up = report.usage_rows_rolled_up,
                usage_events_expired = report.usage_events_expired,
                notifications_queued = report.notifications_queued,
                emails_sent = report.emails_sent,
                emails_failed = report.emails_failed,
                emails_pending = report.emails_pending,
                sessions_purged = report.sessions_purged,
                invites_purged = report.invites_purged,
                keys_resealed = report.keys_resealed,
                keys_on_old_versions = report.keys_on_old_versions,
                "periodic jobs done"
            ),
            Err(e) => tracing::warn!(error = %e, "periodic jobs failed; retrying at the next tick"),
        }
    }
}

type OutBody = UnsyncBoxBody<Bytes, StreamError>;

/// A request body that must arrive before a deadline (`FEEN_BODY_TIMEOUT_SECS` from the start of
/// the request): past it, reading fails, and the handler answers as for any unreadable body.
struct Deadline<S> {
    inner: S,
    timer: std::pin::Pin<Box<tokio::time::Sleep>>,
    over: bool,
}

impl<S> futures_util::Stream for Deadline<S>
where
    S: futures_util::Stream<Item = Result<Bytes, StreamError>> + Unpin,
{
    type Item = Result<Bytes, StreamError>;

    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.over {
            return std::task::Poll::Ready(None);
        }
        if let std::task::Poll::Ready(item) = std::pin::Pin::new(&mut this.inner).poll_next(cx) {
            return std::task::Poll::Ready(item);
        }
        if this.timer.as_mut().poll(cx).is_ready() {
            this.over = true;
            return std::task::Poll::Ready(Some(Err("the request body took too long".into())));
        }
        std::task::Poll::Pending
    }
}

/// What the server does around the functions: the client's address, the monitoring points.
struct Front {
    body_timeout: Duration,
    client_ip: ClientIpSource,
    metrics: Arc<Metrics>,
    metrics_token: Option<SecretString>,
}

/// The function a path belongs to, as a metrics label.
fn group(path: &str) -> &'static str {
    let under = |prefix: &str| {
        path == prefix
            || path
                .strip_prefix(prefix)
                .is_some_and(|rest| rest.starts_with('/'))
    };
    [
        (feen_auth::PREFIX, "auth"),
        (feen_keys::PREFIX, "keys"),
        (feen_shares::PREFIX, "shares"),
        (feen_proxy::PREFIX, "proxy"),
        (feen_proxy::OPENAI_PREFIX, "proxy"),
        (feen_jobs::PREFIX, "jobs"),
        (feen_audit::PREFIX, "audit"),
        (feen_teams::PREFIX, "teams"),
        (feen_analytics::PREFIX, "analytics"),
    ]
    .into_iter()
    .find(|(prefix, _)| under(prefix))
    .map_or_else(
        || match feen_web::asset(path) {
            Some(_) => "web",
            None => "other",
        },
        |(_, name)| name,
    )
}

/// `GET /metrics` with `Authorization: Bearer FEEN_METRICS_TOKEN` (no token configured: no
/// such route).
fn metrics_response(parts: &http::request::Parts, front: &Front) -> Option<Resp> {
    let expected = front.metrics_token.as_ref()?;
    if parts.uri.path() != "/metrics" {
        return None;
    }
    let presented = parts
        .headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if !presented.is_some_and(|p| expected.ct_eq(p)) {
        return Some(error_response(&Error::Unauthorized {
            code: "invalid_token",
            message: "the metrics token is missing or wrong",
        }));
    }
    let mut resp = http::Response::new(Body::Full(Bytes::from(front.metrics.render())));
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    Some(resp)
}

async fn handle(
    req: http::Request<Incoming>,
    peer: SocketAddr,
    front: &Front,
    ctx: &Ctx,
) -> http::Response<OutBody> {
    let started = std::time::Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let (mut parts, incoming) = req.into_parts();
    let client_ip = &front.client_ip;
    let forwarded = client_ip
        .header
        .as_deref()
        .and_then(|h| parts.headers.get(h))
        .and_then(|v| v.to_str().ok());
    let client = client_ip.client(peer.ip(), forwarded);
    parts.extensions.insert(ClientAddr(client));
    let body = Body::from_stream(Deadline {
        inner: incoming
            .into_data_stream()
            .map_err(|e| -> StreamError { Box::new(e) }),
        timer: Box::pin(tokio::time::sleep(front.body_timeout)),
        over: false,
    });
    let resp = match metrics_response(&parts, front) {
        Some(resp) => resp,
        None => dispatch(http::Request::from_parts(parts, body), ctx).await,
    };
    let group = group(&path);
    front.metrics.request(
        group,
        resp.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    // The path only: a query string may carry a token (`?key=`).
    tracing::info!(
        method = %method,
        path = %path,
        status = resp.status().as_u16(),
        micros = started.elapsed().as_micros() as u64,
        "request"
    );
    let (parts, body) = resp.into_parts();
    let body: OutBody = match body {
        Body::Full(bytes) => Full::new(bytes)
            .map_err(|never| match never {})
            .boxed_unsync(),
        Body::Stream(stream) => {
            StreamBody::new(stream.into_inner().map_ok(Frame::data)).boxed_unsync()
        }
    };
    http::Response::from_parts(parts, body)
}
