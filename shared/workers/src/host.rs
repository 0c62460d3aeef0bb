//! The ports on Workers, and the `fetch` glue (see the crate docs).

// `Ctx` holds its ports in `Arc`s, one shape for every host; a Worker isolate is single-threaded,
// so an `Arc` of a `!Send` port is sound here, only heavier than an `Rc`.
#![allow(clippy::arc_with_non_send_sync)]

use std::cell::OnceCell;
use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;

use bytes::Bytes;
use feen_core::Body;
use feen_core::body::StreamError;
use feen_core::netguard::ClientIpSource;
use feen_core::ports::{
    Clock, Db, DbError, Defer, Deferred, Dialect, HttpClient, HttpError, Kv, Rng, Row, UsageSink,
    Value,
};
use feen_core::usage::UsageEvent;
use feen_service::cache::Memo;
use feen_service::request::ClientAddr;
use feen_service::{Config, Ctx, Req, Resp};
use futures_util::{StreamExt, TryStreamExt};
use tokio_postgres::types::{ToSql, Type};

/// `Date.now()`; the std clock panics on this target.
#[derive(Clone, Copy, Debug, Default)]
pub struct WorkerClock;

impl Clock for WorkerClock {
    fn now_ms(&self) -> i64 {
        worker::Date::now().as_millis() as i64
    }

    fn monotonic_us(&self) -> u64 {
        // Workers freeze timers during execution (a Spectre mitigation): millisecond resolution
        // at best, which is what the platform offers.
        worker::Date::now().as_millis() * 1000
    }
}

/// `crypto.getRandomValues`.
#[derive(Clone, Copy, Debug, Default)]
pub struct WorkerRng;

impl Rng for WorkerRng {
    fn fill(&self, buf: &mut [u8]) {
        // As natively: running on with predictable tokens would be worse than failing the request.
        #[allow(clippy::expect_used)]
        getrandom::fill(buf).expect("crypto.getRandomValues failed");
    }
}

/// Outbound `fetch`, streaming both ways. Redirects are not followed.
#[derive(Clone, Copy, Debug, Default)]
pub struct FetchHttp;

fn stream_error(e: impl std::fmt::Display) -> StreamError {
    e.to_string().into()
}

/// Our body as a workers-rs body (a `ReadableStream`).
fn to_worker_body(body: Body) -> worker::Result<worker::Body> {
    match body {
        Body::Full(bytes) if bytes.is_empty() => Ok(worker::Body::empty()),
        Body::Full(bytes) => worker::Body::from_stream(futures_util::stream::once(async move {
            Ok::<Vec<u8>, String>(bytes.to_vec())
        })),
        Body::Stream(stream) => worker::Body::from_stream(
            stream
                .into_inner()
                .map_ok(|b: Bytes| b.to_vec())
                .map_err(|e| e.to_string()),
        ),
    }
}

fn from_worker_body(body: worker::Body) -> Body {
    Body::from_stream(body.map(|chunk| chunk.map_err(stream_error)))
}

#[async_trait::async_trait(?Send)]
impl HttpClient for FetchHttp {
    async fn send(&self, request: http::Request<Body>) -> Result<http::Response<Body>, HttpError> {
        let err = |e: worker::Error| HttpError(e.to_string());
        let (parts, body) = request.into_parts();
        let request = http::Request::from_parts(parts, to_worker_body(body).map_err(err)?);
        let request = worker::request_to_wasm(request).map_err(err)?;
        // Never follow a redirect (the key would go wherever the upstream says): `manual` hands
        // the 3xx back. Set on the JS request itself: the extension `request_to_wasm` reads is
        // a type of worker's that it does not export (`worker::RequestRedirect` is another one
        // and is ignored), so that route silently followed redirects.
        let init = worker::web_sys::RequestInit::new();
        init.set_redirect(worker::web_sys::RequestRedirect::Manual);
        let request = worker::web_sys::Request::new_with_request_and_init(&request, &init)
            .map_err(|e| HttpError(format!("{e:?}")))?;
        let request = worker::Request::from(request);
        let response = worker::Fetch::Request(request).send().await.map_err(err)?;
        let response: http::Response<worker::Body> = response.try_into().map_err(err)?;
        Ok(response.map(from_worker_body))
    }
}

/// PostgreSQL through a Hyperdrive binding.
pub struct HyperdriveDb {
    hyperdrive: worker::Hyperdrive,
}

/// Feen's values as tokio-postgres parameters, each with its type stated (BIGINT or TEXT), so the
/// server never has to guess (a NULL keeps its column's type).
struct Params {
    ints: Vec<Option<i64>>,
    texts: Vec<Option<String>>,
}

impl Params {
    fn new(params: &[Value]) -> Self {
        Self {
            ints: params
                .iter()
                .map(|p| if let Value::Int(v) = p { *v } else { None })
                .collect(),
            texts: params
                .iter()
                .map(|p| {
                    if let Value::Text(v) = p {
                        v.clone()
                    } else {
                        None
                    }
                })
                .collect(),
        }
    }

    fn typed<'a>(&'a self, params: &[Value]) -> Vec<(&'a (dyn ToSql + Sync), Type)> {
        params
            .iter()
            .enumerate()
            .map(|(i, p)| match p {
                Value::Int(_) => (&self.ints[i] as &(dyn ToSql + Sync), Type::INT8),
                Value::Text(_) => (&self.texts[i] as &(dyn ToSql + Sync), Type::TEXT),
            })
            .collect()
    }
}

type Connection = tokio_postgres::Connection<worker::Socket, tokio_postgres::tls::NoTlsStream>;

impl HyperdriveDb {
    /// The database behind the `binding` Hyperdrive binding.
    pub fn new(env: &worker::Env, binding: &str) -> worker::Result<Self> {
        Ok(Self {
            hyperdrive: env.hyperdrive(binding)?,
        })
    }

    /// A fresh connection through Hyperdrive (which pools the real ones). The caller must drive
    /// the connection together with its queries and drop the client when they are done, so the
    /// connection ends before the response is sent.
    async fn connect(&self) -> Result<(tokio_postgres::Client, Connection), DbError> {
        let unavailable = |e: &dyn std::fmt::Display| DbError::Unavailable(e.to_string());
        let config = tokio_postgres::Config::from_str(&self.hyperdrive.connection_string())
            .map_err(|e| unavailable(&e))?;
        let socket = self.hyperdrive.connect().map_err(|e| unavailable(&e))?;
        config
            .connect_raw(socket, tokio_postgres::NoTls)
            .await
            .map_err(|e| unavailable(&e))
    }
}

fn classify(err: tokio_postgres::Error) -> DbError {
    match err.code() {
        Some(code) if *code == tokio_postgres::error::SqlState::UNIQUE_VIOLATION => {
            DbError::UniqueViolation
        }
        Some(_) => DbError::Other(err.to_string()),
        None => DbError::Unavailable(err.to_string()),
    }
}

fn row(row: &tokio_postgres::Row) -> Result<Row, DbError> {
    let decode = |e: tokio_postgres::Error| DbError::Decode(e.to_string());
    let mut values = Vec::with_capacity(row.len());
    for (i, column) in row.columns().iter().enumerate() {
        let value = match *column.type_() {
            Type::INT8 => Value::Int(row.try_get::<_, Option<i64>>(i).map_err(decode)?),
            Type::INT4 => Value::Int(
                row.try_get::<_, Option<i32>>(i)
                    .map_err(decode)?
                    .map(i64::from),
            ),
            Type::INT2 => Value::Int(
                row.try_get::<_, Option<i16>>(i)
                    .map_err(decode)?
                    .map(i64::from),
            ),
            _ => Value::Text(row.try_get::<_, Option<String>>(i).map_err(decode)?),
        };
        values.push(value);
    }
    Ok(Row(values))
}

#[async_trait::async_trait(?Send)]
impl Db for HyperdriveDb {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    async fn query(&self, sql: &str, params: &[Value]) -> Result<Vec<Row>, DbError> {
        let (client, connection) = self.connect().await?;
        let values = Params::new(params);
        let typed = values.typed(params);
        let query = async move {
            let rows = client.query_typed(sql, &typed).await;
            drop(client);
            rows
        };
        let (rows, _) = futures_util::future::join(query, connection).await;
        rows.map_err(classify)?.iter().map(row).collect()
    }

    async fn execute(&self, sql: &str, params: &[Value]) -> Result<u64, DbError> {
        let (client, connection) = self.connect().await?;
        let values = Params::new(params);
        let typed = values.typed(params);
        let run = async move {
            let types: Vec<Type> = typed.iter().map(|(_, t)| t.clone()).collect();
            let args: Vec<&(dyn ToSql + Sync)> = typed.iter().map(|(v, _)| *v).collect();
            let result = match client.prepare_typed(sql, &types).await {
                Ok(statement) => client.execute(&statement, &args).await,
                Err(e) => Err(e),
            };
            drop(client);
            result
        };
        let (result, _) = futures_util::future::join(run, connection).await;
        result.map_err(classify)
    }
}

/// `ctx.waitUntil`.
pub struct WaitUntil(pub Arc<worker::Context>);

impl Defer for WaitUntil {
    fn defer(&self, work: Deferred) {
        self.0.wait_until(work);
    }

    fn sleep(&self, ms: u64) -> Deferred {
        Box::pin(worker::Delay::from(std::time::Duration::from_millis(ms)))
    }
}

/// Usage events to the `USAGE` queue when bound (a consumer writes them in batches), otherwise
/// written directly; after the response either way.
pub struct QueueSink {
    queue: Option<worker::Queue>,
    db: Arc<dyn Db>,
    context: Arc<worker::Context>,
}

impl UsageSink for QueueSink {
    fn record(&self, event: UsageEvent) {
        let queue = self.queue.clone();
        let db = self.db.clone();
        self.context.wait_until(async move {
            let sent = match &queue {
                Some(queue) => match queue.send(&event).await {
                    Ok(()) => true,
                    Err(e) => {
                        worker::console_error!(
                            "feen: usage queue unavailable ({e}); writing usage directly"
                        );
                        false
                    }
                },
                None => false,
            };
            if !sent {
                let _ = feen_store::usage::insert_batch(db.as_ref(), std::slice::from_ref(&event))
                    .await;
            }
        });
    }
}

fn text(env: &worker::Env, name: &str) -> Option<String> {
    env.secret(name)
        .map(|s| s.to_string())
        .or_else(|_| env.var(name).map(|v| v.to_string()))
        .ok()
        .filter(|v| !v.is_empty())
}

/// The functions' configuration from the Worker's secrets and vars (kept for the isolate's life).
pub fn context_config(env: &worker::Env) -> worker::Result<Arc<Config>> {
    if let Some(config) = CONFIG.with(|c| c.get().cloned()) {
        return Ok(config);
    }
    let config = Arc::new(config(env)?);
    CONFIG.with(|c| c.set(config.clone()).ok());
    Ok(config)
}

fn config(env: &worker::Env) -> worker::Result<Config> {
    // A disconnect is invisible to a Worker (workerd neither drops nor cancels the stream).
    feen_service::settings::config(&|name| text(env, name), Some(30))
        .map_err(|e| worker::Error::RustError(format!("{e} (wrangler secret put / [vars])")))
}

/// `FEEN_CLIENT_IP_HEADER` and `FEEN_TRUSTED_PROXIES`, as on the native host (unusable values
/// are logged and ignored: the peer is then the client).
fn client_ip_source(env: &worker::Env) -> ClientIpSource {
    feen_service::settings::client_ip_source(&|name| text(env, name)).unwrap_or_else(|e| {
        worker::console_error!("feen: {e}");
        ClientIpSource::default()
    })
}

thread_local! {
    // What outlives a request in an isolate: the parsed configuration and the share memo.
    static CONFIG: OnceCell<Arc<Config>> = const { OnceCell::new() };
    static MEMO: OnceCell<Arc<Memo>> = const { OnceCell::new() };
}

/// The counter store: Redis over the Upstash REST protocol, from the Worker's secrets.
pub fn kv(env: &worker::Env) -> worker::Result<Arc<dyn Kv>> {
    let url = text(env, "UPSTASH_REDIS_REST_URL")
        .ok_or_else(|| worker::Error::RustError("UPSTASH_REDIS_REST_URL is not set".into()))?;
    let token = text(env, "UPSTASH_REDIS_REST_TOKEN")
        .ok_or_else(|| worker::Error::RustError("UPSTASH_REDIS_REST_TOKEN is not set".into()))?;
    let prefix = text(env, "FEEN_REDIS_PREFIX").unwrap_or_else(|| "feen:".into());
    let kv = feen_upstash::UpstashKv::new(Arc::new(FetchHttp), &url, &token, &prefix)
        .map_err(|e| worker::Error::RustError(e.0))?;
    Ok(Arc::new(kv))
}

/// The context of ports for one request.
pub fn context(env: &worker::Env, context: worker::Context) -> worker::Result<Ctx> {
    let config = context_config(env)?;
    let memo = MEMO.with(|m| m.get_or_init(|| Arc::new(Memo::new())).clone());
    let http: Arc<dyn HttpClient> = Arc::new(FetchHttp);
    let kv = kv(env)?;
    let db: Arc<dyn Db> = Arc::new(HyperdriveDb::new(env, "DB")?);
    let context = Arc::new(context);
    Ok(Ctx {
        db: db.clone(),
        kv,
        http,
        clock: Arc::new(WorkerClock),
        rng: Arc::new(WorkerRng),
        usage: Arc::new(QueueSink {
            queue: env.queue("USAGE").ok(),
            db,
            context: context.clone(),
        }),
        defer: Arc::new(WaitUntil(context)),
        passwords: Arc::new(feen_core::crypto::password::Inline),
        memo,
        config,
    })
}

/// Runs a handler that needs no context (the dashboard's files): converts the request and the
/// response, and drains what the handler leaves unread.
pub async fn serve_plain<F>(
    req: worker::HttpRequest,
    handler: F,
) -> worker::Result<http::Response<worker::Body>>
where
    F: FnOnce(&Req) -> Resp,
{
    let (parts, body) = req.into_parts();
    let (body, leftover) =
        feen_core::body::drainable(body.map(|chunk| chunk.map_err(stream_error)));
    let resp = handler(&http::Request::from_parts(parts, body));
    leftover.drain(MAX_DRAIN).await;
    let (parts, body) = resp.into_parts();
    Ok(http::Response::from_parts(parts, to_worker_body(body)?))
}

/// The most of an unread request body drained to keep its connection open.
const MAX_DRAIN: usize = 1024 * 1024;

/// Runs `handler` for a `fetch` event: builds the context, converts the request and response,
/// and records the client's address from `CF-Connecting-IP` (set by Cloudflare itself).
pub async fn serve<F, Fut>(
    req: worker::HttpRequest,
    env: worker::Env,
    context: worker::Context,
    handler: F,
) -> worker::Result<http::Response<worker::Body>>
where
    F: FnOnce(Req, Ctx) -> Fut,
    Fut: Future<Output = Resp>,
{
    let ctx = match self::context(&env, context) {
        Ok(ctx) => ctx,
        Err(e) => {
            worker::console_error!("feen: configuration: {e}");
            let resp = feen_service::response::error_response(&feen_core::Error::Unavailable {
                detail: e.to_string(),
            });
            return Ok(resp.map(|_| worker::Body::empty()));
        }
    };
    if let Err(e) = ctx.check_keyring_once().await {
        worker::console_error!("feen: {e}");
        let resp =
            feen_service::response::error_response(&feen_core::Error::Unavailable { detail: e });
        let (parts, body) = resp.into_parts();
        return Ok(http::Response::from_parts(parts, to_worker_body(body)?));
    }
    let (mut parts, body) = req.into_parts();
    // Cloudflare sets CF-Connecting-IP itself; behind a further proxy the operator may name a
    // forwarding header and the proxies it is believed from, exactly as on the native host.
    let peer = parts
        .headers
        .get("cf-connecting-ip")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    if let Some(peer) = peer {
        let source = client_ip_source(&env);
        let forwarded = source
            .header
            .as_deref()
            .and_then(|h| parts.headers.get(h))
            .and_then(|v| v.to_str().ok());
        parts
            .extensions
            .insert(ClientAddr(source.client(peer, forwarded)));
    }
    // Whatever the handler leaves unread is drained below: workerd closes a connection whose
    // request body was not read, which breaks the client's next request on it.
    let (body, leftover) =
        feen_core::body::drainable(body.map(|chunk| chunk.map_err(stream_error)));
    let resp = handler(http::Request::from_parts(parts, body), ctx).await;
    leftover.drain(MAX_DRAIN).await;
    let (parts, body) = resp.into_parts();
    Ok(http::Response::from_parts(parts, to_worker_body(body)?))
}
