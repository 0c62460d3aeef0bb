//! The ports over spin-sdk and WASI, the context built from the environment, and `serve`.

// The ports are shared through `Arc<dyn …>` on every host; on this single-threaded target the
// WASI types behind them are not `Send`, which is fine.
#![allow(clippy::arc_with_non_send_sync)]

use std::cell::OnceCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use feen_core::Body;
use feen_core::body::StreamError;
use feen_core::netguard::ClientIpSource;
use feen_core::ports::{Clock, Db, Defer, Deferred, HttpClient, HttpError, Kv, Rng, UsageSink};
use feen_core::usage::UsageEvent;
use feen_service::cache::Memo;
use feen_service::request::ClientAddr;
use feen_service::{Config, Ctx, Req, Resp};
use futures_util::StreamExt;
use http_body::Frame;
use spin_sdk::http::body::IncomingBodyExt;

/// Wall-clock time and a monotonic clock from WASI.
pub struct WasiClock {
    start: std::time::Instant,
}

impl Clock for WasiClock {
    fn now_ms(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    }

    fn monotonic_us(&self) -> u64 {
        self.start.elapsed().as_micros() as u64
    }
}

/// `wasi:random`.
pub struct WasiRng;

impl Rng for WasiRng {
    fn fill(&self, buf: &mut [u8]) {
        // wasi:random never fails; a host that cannot give randomness cannot run Feen.
        if getrandom::fill(buf).is_err() {
            panic!("wasi:random failed");
        }
    }
}

fn stream_error(e: impl std::fmt::Display) -> StreamError {
    e.to_string().into()
}

/// A Feen body as an `http_body::Body` (what spin-sdk sends and answers with).
pub struct OutBody(Option<Body>);

impl http_body::Body for OutBody {
    type Data = Bytes;
    type Error = StreamError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, StreamError>>> {
        match self.0.take() {
            None => Poll::Ready(None),
            Some(Body::Full(bytes)) if bytes.is_empty() => Poll::Ready(None),
            Some(Body::Full(bytes)) => Poll::Ready(Some(Ok(Frame::data(bytes)))),
            Some(Body::Stream(mut stream)) => {
                let polled = stream.get_mut().as_mut().poll_next(cx);
                if matches!(polled, Poll::Pending | Poll::Ready(Some(Ok(_)))) {
                    self.0 = Some(Body::Stream(stream));
                }
                polled.map(|chunk| chunk.map(|c| c.map(Frame::data)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.0 {
            None => true,
            Some(Body::Full(bytes)) => bytes.is_empty(),
            Some(Body::Stream(_)) => false,
        }
    }
}

/// Outbound HTTP through `wasi:http`.
pub struct WasiHttp;

#[async_trait::async_trait(?Send)]
impl HttpClient for WasiHttp {
    async fn send(&self, request: http::Request<Body>) -> Result<http::Response<Body>, HttpError> {
        let (parts, body) = request.into_parts();
        let request = http::Request::from_parts(parts, OutBody(Some(body)));
        let response = spin_sdk::http::send(request)
            .await
            .map_err(|e| HttpError(format!("{e:?}")))?;
        let (parts, body) = response.into_parts();
        let body = Body::from_stream(body.stream().map(|chunk| chunk.map_err(stream_error)));
        Ok(http::Response::from_parts(parts, body))
    }
}

/// Work after the response: a task of the component's, which the host keeps running.
pub struct Spawn;

impl Defer for Spawn {
    fn defer(&self, work: Deferred) {
        spin_sdk::wasip3::spawn(work);
    }

    fn sleep(&self, ms: u64) -> Deferred {
        Box::pin(spin_sdk::time::sleep(std::time::Duration::from_millis(ms)))
    }
}

/// Usage events onto the usage list in Redis; the first event of a burst schedules a drain
/// into PostgreSQL a second later. When Redis cannot take an event it is written directly.
pub struct ListSink {
    db: Arc<dyn Db>,
    kv: Arc<dyn Kv>,
}

impl UsageSink for ListSink {
    fn record(&self, event: UsageEvent) {
        let (db, kv) = (self.db.clone(), self.kv.clone());
        spin_sdk::wasip3::spawn(async move {
            match feen_service::usage_list::enqueue_usage(kv.as_ref(), &event).await {
                Ok(true) => {
                    spin_sdk::time::sleep(std::time::Duration::from_millis(
                        feen_service::usage_list::DRAIN_DELAY_MS,
                    ))
                    .await;
                    if let Err(e) =
                        feen_service::usage_list::drain_usage(db.as_ref(), kv.as_ref()).await
                    {
                        eprintln!("feen: draining usage failed (the jobs endpoint retries): {e}");
                    }
                }
                Ok(false) => {}
                Err(e) => {
                    eprintln!("feen: usage list unavailable ({e}); writing usage directly");
                    if let Err(e) = feen_service::usage_list::store_usage(
                        db.as_ref(),
                        std::slice::from_ref(&event),
                    )
                    .await
                    {
                        eprintln!("feen: usage event lost: {e}");
                    }
                }
            }
        });
    }
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// What lives for the instance's life: the configuration, the share memo, the client-address
/// source. A component instance serves many requests (concurrently, under WASI 0.3).
struct Instance {
    config: Arc<Config>,
    memo: Arc<Memo>,
    client_ip: ClientIpSource,
}

thread_local! {
    static INSTANCE: OnceCell<Result<Arc<Instance>, String>> = const { OnceCell::new() };
}

fn instance() -> Result<Arc<Instance>, String> {
    INSTANCE.with(|cell| {
        cell.get_or_init(|| {
            Ok(Arc::new(Instance {
                config: Arc::new({
                    let mut config = feen_service::settings::config(&var, None)?;
                    // wasi:http names a host; where it resolves is the runtime's business.
                    config.upstreams.checks_resolved_addresses = false;
                    config
                }),
                memo: Arc::new(Memo::new()),
                client_ip: feen_service::settings::client_ip_source(&var)?,
            }))
        })
        .clone()
    })
}

/// The context of ports for one request, from the environment: `DATABASE_URL` (and
/// `FEEN_SQL_HTTP_ENDPOINT` when it is not Neon's own), `UPSTASH_REDIS_REST_URL`/`_TOKEN`,
/// `FEEN_REDIS_PREFIX`, and the settings every host reads.
pub fn context() -> Result<(Ctx, ClientIpSource), String> {
    let instance = instance()?;
    let http: Arc<dyn HttpClient> = Arc::new(WasiHttp);
    let database = var("DATABASE_URL").ok_or("DATABASE_URL is not set")?;
    let endpoint = var("FEEN_SQL_HTTP_ENDPOINT")
        .or_else(|| feen_neon::default_endpoint(&database))
        .ok_or("FEEN_SQL_HTTP_ENDPOINT is not set and DATABASE_URL is not a Neon host")?;
    let db: Arc<dyn Db> = Arc::new(
        feen_neon::NeonDb::new(http.clone(), &endpoint, &database).map_err(|e| e.to_string())?,
    );
    let url = var("UPSTASH_REDIS_REST_URL").ok_or("UPSTASH_REDIS_REST_URL is not set")?;
    let token = var("UPSTASH_REDIS_REST_TOKEN").ok_or("UPSTASH_REDIS_REST_TOKEN is not set")?;
    let prefix = var("FEEN_REDIS_PREFIX").unwrap_or_else(|| "feen:".into());
    let kv: Arc<dyn Kv> = Arc::new(
        feen_upstash::UpstashKv::new(http.clone(), &url, &token, &prefix).map_err(|e| e.0)?,
    );
    let ctx = Ctx {
        db: db.clone(),
        kv: kv.clone(),
        http,
        clock: Arc::new(WasiClock {
            start: std::time::Instant::now(),
        }),
        rng: Arc::new(WasiRng),
        usage: Arc::new(ListSink { db, kv }),
        defer: Arc::new(Spawn),
        passwords: Arc::new(feen_core::crypto::password::Inline),
        memo: instance.memo.clone(),
        config: instance.config.clone(),
    };
    Ok((ctx, instance.client_ip.clone()))
}

/// Runs `handler` for one request: builds the context, converts the request and response, and
/// records the client's address from `spin-client-addr` (which Spin sets itself).
pub async fn serve<F, Fut>(req: spin_sdk::http::Request, handler: F) -> http::Response<OutBody>
where
    F: FnOnce(Req, Ctx) -> Fut,
    Fut: Future<Output = Resp>,
{
    let (mut parts, body) = req.into_parts();
    if parts.uri.path() == "/healthz" {
        let resp = feen_service::json(http::StatusCode::OK, &serde_json::json!({ "status": "ok" }));
        let (parts, body) = resp.into_parts();
        return http::Response::from_parts(parts, OutBody(Some(body)));
    }
    let (ctx, client_ip) = match context() {
        Ok(pair) => pair,
        Err(e) => {
            eprintln!("feen: configuration: {e}");
            let resp = feen_service::response::error_response(&feen_core::Error::Unavailable {
                detail: e,
            });
            let (parts, body) = resp.into_parts();
            return http::Response::from_parts(parts, OutBody(Some(body)));
        }
    };
    if let Err(e) = ctx.check_keyring_once().await {
        eprintln!("feen: {e}");
        let resp =
            feen_service::response::error_response(&feen_core::Error::Unavailable { detail: e });
        let (parts, body) = resp.into_parts();
        return http::Response::from_parts(parts, OutBody(Some(body)));
    }
    restore_host(&mut parts);
    let path = parts.uri.path();
    let host = parts
        .headers
        .get(http::header::HOST)
        .and_then(|v| v.to_str().ok());
    if !feen_service::request::answers_here(path, host, ctx.config.proxy_host.as_deref()) {
        return not_found();
    }
    let peer = parts
        .headers
        .get("spin-client-addr")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<std::net::SocketAddr>().ok())
        .map(|a| a.ip());
    if let Some(peer) = peer {
        let forwarded = client_ip
            .header
            .as_deref()
            .and_then(|h| parts.headers.get(h))
            .and_then(|v| v.to_str().ok());
        parts
            .extensions
            .insert(ClientAddr(client_ip.client(peer, forwarded)));
    }
    // What the handler leaves unread (a body refused as too large) is drained before answering.
    let (body, leftover) =
        feen_core::body::drainable(body.stream().map(|chunk| chunk.map_err(stream_error)));
    let resp = handler(http::Request::from_parts(parts, body), ctx).await;
    leftover.drain(MAX_DRAIN).await;
    let (parts, body) = resp.into_parts();
    http::Response::from_parts(parts, OutBody(Some(body)))
}

/// Runs a handler that needs no context (the dashboard's files): converts the request and the
/// response, and drains what the handler leaves unread.
pub async fn serve_plain<F>(req: spin_sdk::http::Request, handler: F) -> http::Response<OutBody>
where
    F: FnOnce(&Req) -> Resp,
{
    let (mut parts, body) = req.into_parts();
    restore_host(&mut parts);
    let host = parts
        .headers
        .get(http::header::HOST)
        .and_then(|v| v.to_str().ok());
    let proxy_host = feen_service::settings::proxy_host(var("FEEN_PROXY_HOST"))
        .ok()
        .flatten();
    if !feen_service::request::answers_here(parts.uri.path(), host, proxy_host.as_deref()) {
        return not_found();
    }
    let (body, leftover) =
        feen_core::body::drainable(body.stream().map(|chunk| chunk.map_err(stream_error)));
    let resp = handler(&http::Request::from_parts(parts, body));
    leftover.drain(MAX_DRAIN).await;
    let (parts, body) = resp.into_parts();
    http::Response::from_parts(parts, OutBody(Some(body)))
}

/// The host the client sent the request to, as a `Host` header: the WASI request carries it
/// as its authority, which the SDK does not put back, and Spin also says it in `spin-full-url`.
fn restore_host(parts: &mut http::request::Parts) {
    if parts.headers.contains_key(http::header::HOST) {
        return;
    }
    let host = parts
        .uri
        .authority()
        .map(|a| a.as_str().to_owned())
        .or_else(|| {
            parts
                .headers
                .get("spin-full-url")
                .and_then(|v| v.to_str().ok())
                .and_then(|url| url.parse::<http::Uri>().ok())
                .and_then(|uri| uri.authority().map(|a| a.as_str().to_owned()))
        });
    if let Some(value) = host.and_then(|h| http::HeaderValue::from_str(&h).ok()) {
        parts.headers.insert(http::header::HOST, value);
    }
}

/// Feen's JSON 404, for a path that is not answered on the host it was sent to.
fn not_found() -> http::Response<OutBody> {
    let resp = feen_service::response::error_response(&feen_core::Error::NotFound("route"));
    let (parts, body) = resp.into_parts();
    http::Response::from_parts(parts, OutBody(Some(body)))
}

/// The most of an unread request body drained (above the largest body a function accepts).
const MAX_DRAIN: usize = 48 * 1024 * 1024;
