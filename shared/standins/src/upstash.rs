//! The Upstash Redis REST protocol in front of a real Redis, as the official `@upstash/redis`
//! client speaks it: `POST /` with a command array, `/pipeline` (in order, not atomic, errors
//! per item), `/multi-exec` (atomic; a command refused at queue time fails the whole
//! transaction), path-style commands, bearer or `?_token=` auth with an optional read-only
//! token, and `Upstash-Encoding: base64`.

use std::convert::Infallible;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use http::{Method, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use redis::aio::MultiplexedConnection;
use redis::{RedisError, Value};
use serde_json::{Value as Json, json};

/// Commands the read-only token may run.
const READ_ONLY: &[&str] = &[
    "GET",
    "MGET",
    "EXISTS",
    "TTL",
    "PTTL",
    "TYPE",
    "STRLEN",
    "GETRANGE",
    "HGET",
    "HMGET",
    "HGETALL",
    "HKEYS",
    "HVALS",
    "HLEN",
    "HEXISTS",
    "LRANGE",
    "LLEN",
    "LINDEX",
    "SMEMBERS",
    "SISMEMBER",
    "SCARD",
    "ZRANGE",
    "ZCARD",
    "ZSCORE",
    "ZRANK",
    "PING",
    "ECHO",
    "EVAL_RO",
    "EVALSHA_RO",
    "DBSIZE",
];

/// The stand-in's configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// The token that may run any command.
    pub token: String,
    /// A token that may run only read commands.
    pub readonly_token: Option<String>,
}

/// How a request authenticated.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Access {
    Full,
    ReadOnly,
}

fn reply(status: StatusCode, body: &Json) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        "content-type",
        http::HeaderValue::from_static("application/json"),
    );
    resp.headers_mut().insert(
        "upstash-sync-token",
        http::HeaderValue::from_static("standin"),
    );
    resp
}

fn error(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    reply(status, &json!({ "error": message }))
}

/// A JSON argument as the text Redis receives: strings as they are, numbers and booleans in their
/// JSON form, anything else as JSON text.
fn argument(value: &Json) -> Vec<u8> {
    match value {
        Json::String(s) => s.clone().into_bytes(),
        other => other.to_string().into_bytes(),
    }
}

fn command(args: &[Json]) -> Result<(String, redis::Cmd), String> {
    let name = args
        .first()
        .and_then(Json::as_str)
        .ok_or("ERR the command must be a non-empty array with a name")?;
    let mut cmd = redis::cmd(name);
    for arg in &args[1..] {
        cmd.arg(argument(arg));
    }
    Ok((name.to_ascii_uppercase(), cmd))
}

fn server_error(err: &RedisError) -> String {
    match (err.code(), err.detail()) {
        (Some("EXECABORT"), None) => {
            "EXECABORT Transaction discarded because of previous errors.".into()
        }
        (Some(code), Some(detail)) => format!("{code} {detail}"),
        (Some(code), None) => code.to_owned(),
        _ => err.to_string(),
    }
}

/// A Redis value as JSON; strings base64-encoded when asked (except a top-level `OK`).
fn to_json(value: Value, base64: bool, top: bool) -> Result<Json, String> {
    let text = |bytes: Vec<u8>| {
        if base64 {
            Json::String(B64.encode(bytes))
        } else {
            Json::String(String::from_utf8_lossy(&bytes).into_owned())
        }
    };
    Ok(match value {
        Value::Nil => Json::Null,
        Value::Int(n) => json!(n),
        Value::BulkString(bytes) => text(bytes),
        Value::SimpleString(s) => text(s.into_bytes()),
        Value::Okay if top || !base64 => json!("OK"),
        Value::Okay => text(b"OK".to_vec()),
        Value::Array(items) | Value::Set(items) => Json::Array(
            items
                .into_iter()
                .map(|v| to_json(v, base64, false))
                .collect::<Result<_, _>>()?,
        ),
        Value::ServerError(e) => {
            return Err(format!("{} {}", e.code(), e.details().unwrap_or(""))
                .trim()
                .to_owned());
        }
        Value::Double(d) => text(d.to_string().into_bytes()),
        Value::Boolean(b) => json!(i64::from(b)),
        other => text(format!("{other:?}").into_bytes()),
    })
}

fn item(result: redis::RedisResult<Value>, base64: bool) -> Json {
    match result
        .map_err(|e| server_error(&e))
        .and_then(|v| to_json(v, base64, true))
    {
        Ok(result) => json!({ "result": result }),
        Err(error) => json!({ "error": error }),
    }
}

fn authorise(name: &str, access: Access) -> Result<(), String> {
    if access == Access::ReadOnly && !READ_ONLY.contains(&name) {
        return Err(format!(
            "NOPERM this user has no permissions to run the '{}' command",
            name.to_ascii_lowercase()
        ));
    }
    Ok(())
}

/// Serves one request.
pub async fn serve(
    req: http::Request<hyper::body::Incoming>,
    config: &Config,
    conn: &MultiplexedConnection,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    if ![Method::GET, Method::HEAD, Method::POST, Method::PUT].contains(&parts.method) {
        return Ok(error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed"));
    }
    let bearer = parts
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let query_token = parts
        .uri
        .query()
        .and_then(|q| q.split('&').find_map(|p| p.strip_prefix("_token=")));
    let access = match bearer.or(query_token) {
        Some(t) if t == config.token => Access::Full,
        Some(t) if config.readonly_token.as_deref() == Some(t) => Access::ReadOnly,
        _ => return Ok(error(StatusCode::UNAUTHORIZED, "Unauthorized")),
    };
    let base64 = parts
        .headers
        .get("upstash-encoding")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("base64"));
    match parts
        .headers
        .get("upstash-response-format")
        .and_then(|v| v.to_str().ok())
    {
        None | Some("json") => {}
        Some(_) => {
            return Ok(error(
                StatusCode::BAD_REQUEST,
                "ERR only the json response format is supported here",
            ));
        }
    }
    let bytes = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let mut conn = conn.clone();
    let path = parts.uri.path().trim_end_matches('/').to_owned();
    Ok(match path.as_str() {
        "" if parts.method == Method::POST && bytes.first() == Some(&b'[') => {
            single(&bytes, access, base64, &mut conn).await
        }
        "/pipeline" | "/multi-exec" => {
            batch(&bytes, path == "/multi-exec", access, base64, &mut conn).await
        }
        _ => path_command(&path, &bytes, access, base64, &mut conn).await,
    })
}

async fn single(
    body: &[u8],
    access: Access,
    base64: bool,
    conn: &mut MultiplexedConnection,
) -> Response<Full<Bytes>> {
    let Ok(args) = serde_json::from_slice::<Vec<Json>>(body) else {
        return error(StatusCode::BAD_REQUEST, "ERR failed to parse command");
    };
    run(&args, access, base64, conn).await
}

async fn run(
    args: &[Json],
    access: Access,
    base64: bool,
    conn: &mut MultiplexedConnection,
) -> Response<Full<Bytes>> {
    let (name, cmd) = match command(args) {
        Ok(c) => c,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e),
    };
    if let Err(e) = authorise(&name, access) {
        return error(StatusCode::BAD_REQUEST, &e);
    }
    let result = cmd.query_async::<Value>(conn).await;
    let body = item(result, base64);
    let status = if body.get("error").is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    reply(status, &body)
}

async fn batch(
    body: &[u8],
    atomic: bool,
    access: Access,
    base64: bool,
    conn: &mut MultiplexedConnection,
) -> Response<Full<Bytes>> {
    let Ok(commands) = serde_json::from_slice::<Vec<Vec<Json>>>(body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "ERR failed to parse pipeline request",
        );
    };
    let mut pipe = redis::pipe();
    if atomic {
        pipe.atomic();
    }
    for args in &commands {
        let (name, cmd) = match command(args) {
            Ok(c) => c,
            Err(e) => return error(StatusCode::BAD_REQUEST, &e),
        };
        if let Err(e) = authorise(&name, access) {
            return error(StatusCode::BAD_REQUEST, &e);
        }
        pipe.add_command(cmd);
    }
    pipe.ignore_errors();
    match pipe
        .query_async::<Vec<redis::RedisResult<Value>>>(conn)
        .await
    {
        Ok(results) => reply(
            StatusCode::OK,
            &Json::Array(results.into_iter().map(|r| item(r, base64)).collect()),
        ),
        // A transaction Redis discarded as a whole (EXECABORT) is one error.
        Err(e) => error(StatusCode::BAD_REQUEST, &server_error(&e)),
    }
}

async fn path_command(
    path: &str,
    body: &[u8],
    access: Access,
    base64: bool,
    conn: &mut MultiplexedConnection,
) -> Response<Full<Bytes>> {
    let mut args: Vec<Json> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| json!(percent_decode(s)))
        .collect();
    if args.is_empty() {
        return error(StatusCode::BAD_REQUEST, "ERR no command");
    }
    if !body.is_empty() {
        args.push(json!(String::from_utf8_lossy(body)));
    }
    run(&args, access, base64, conn).await
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let decoded = (bytes[i] == b'%' && i + 2 < bytes.len())
            .then(|| {
                std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
            })
            .flatten();
        match decoded {
            Some(b) => {
                out.push(b);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Starts the stand-in on `listen` (port 0: any free port) in front of the Redis at `redis_url`,
/// serving until the runtime ends. Returns the address it listens on.
pub async fn spawn(
    listen: &str,
    redis_url: &str,
    config: Config,
) -> Result<std::net::SocketAddr, Box<dyn std::error::Error>> {
    let conn = redis::Client::open(redis_url)?
        .get_multiplexed_async_connection()
        .await?;
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let config = std::sync::Arc::new(config);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (config, conn) = (config.clone(), conn.clone());
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let (config, conn) = (config.clone(), conn.clone());
                    async move { serve(req, &config, &conn).await }
                });
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, service)
                    .await;
            });
        }
    });
    Ok(addr)
}
