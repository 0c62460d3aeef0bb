//! The proxy function (`/api/proxy/*` and the OpenAI-compatible `/v1/*`): authenticates a Feen
//! token, enforces its share's limits, injects the real provider key, forwards, streams the
//! answer back untouched, and records one usage event per request.
//!
//! The request passes through named phases, each a function of its own:
//! 1. [`token_hash`]: read the Feen token from wherever the client's SDK put it; check its shape.
//! 2. [`load_share`]: the share and its sealed key, from the share cache (or the database).
//! 3. [`check_policy`]: expiry and model, from the request body or path.
//! 4. [`admit`]: every counter checked and bumped in one atomic call to the counter store.
//! 5. [`upstream_request`]: open the key, rewrite URL and headers for the provider.
//! 6. forward, then [`meter::Metered`] streams the response through while reading its usage,
//!    and records the usage event when the body ends, fails, or the client goes away.

pub mod meter;

use bytes::Bytes;
use feen_core::crypto::token::{self, TokenHash, TokenKind};
use feen_core::ids::RequestId;
use feen_core::limits::{self, Window};
use feen_core::ports::Admission;
use feen_core::providers;
use feen_core::usage::{Format, Outcome, UsageEvent};
use feen_core::{Body, Error};
use feen_service::request::segments;
use feen_service::response::error_response;
use feen_service::{Ctx, Req, Resp, cache};
use feen_store::shares::ProxyTarget;
use http::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use http::{Request, Response};

use crate::meter::{Meter, Metered};

/// The path prefix of the proxy.
pub const PREFIX: &str = "/api/proxy";
/// The OpenAI-compatible prefix (`base_url = http://host/v1`).
pub const OPENAI_PREFIX: &str = "/v1";

/// The largest request body forwarded (prompts with inline images are large).
pub const MAX_REQUEST_BODY: usize = 32 * 1024 * 1024;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-feen-request-id");
const OVERHEAD: HeaderName = HeaderName::from_static("x-feen-overhead-ms");
const SERVER_TIMING: HeaderName = HeaderName::from_static("server-timing");

/// Headers of the upstream response that are not passed on.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
];

/// Serves `/api/proxy/*` and `/v1/*`.
pub async fn handle(req: Req, ctx: &Ctx) -> Resp {
    let started_us = ctx.clock.monotonic_us();
    let started_ms = ctx.now_ms();
    let request_id = RequestId::new(started_ms, ctx.random());
    let mut resp = match proxy(req, ctx, &request_id, started_us, started_ms).await {
        Ok(resp) => resp,
        Err(err) => error_response(&err),
    };
    if let Ok(value) = HeaderValue::from_str(request_id.as_str()) {
        resp.headers_mut().insert(REQUEST_ID, value);
    }
    resp
}

async fn proxy(
    req: Req,
    ctx: &Ctx,
    request_id: &RequestId,
    started_us: u64,
    started_ms: i64,
) -> Result<Resp, Error> {
    let upstream_path = upstream_path(req.uri().path()).ok_or(Error::NotFound("route"))?;
    let hash = token_hash(&req)?;
    let target = load_share(ctx, &hash).await?;
    let (parts, body) = req.into_parts();
    let body = body.collect(MAX_REQUEST_BODY).await.map_err(|e| match e {
        feen_core::body::CollectError::TooLarge => Error::PayloadTooLarge {
            limit: MAX_REQUEST_BODY,
        },
        feen_core::body::CollectError::Stream(_) => {
            Error::BadRequest("the request body could not be read".into())
        }
    })?;
    let model = request_model(&upstream_path, &body);
    check_policy(&target, model.as_deref(), started_ms)?;
    let windows = limits::windows(&target.share, &target.policy, started_ms);
    let admitted = admit(ctx, &windows, started_ms).await?;
    let upstream = upstream_request(ctx, &target, &parts, &upstream_path, body)?;

    let overhead_us = ctx.clock.monotonic_us().saturating_sub(started_us);
    let mut event = UsageEvent {
        request_id: request_id.clone(),
        share_id: target.share.clone(),
        key_id: target.key.clone(),
        user_id: target.user.clone(),
        provider: target.provider.clone(),
        model,
        endpoint: upstream_path.split('?').next().unwrap_or("").to_owned(),
        status: 0,
        streamed: false,
        input_tokens: 0,
        output_tokens: 0,
        started_at_ms: started_ms,
        duration_ms: 0,
        outcome: Outcome::UpstreamError,
    };
    let response = match ctx.http.send(upstream).await {
        Ok(response) => response,
        Err(err) => {
            event.duration_ms = ctx.clock.monotonic_us().saturating_sub(started_us) / 1000;
            ctx.usage.record(event);
            return Err(Error::Upstream { detail: err.0 });
        }
    };
    let (mut head, body) = response.into_parts();
    let content_type = head
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let format = Format::from_content_type(content_type);
    event.status = head.status.as_u16();
    event.streamed = format == Format::Sse;
    for name in HOP_BY_HOP {
        head.headers.remove(*name);
    }
    rate_limit_headers(&mut head.headers, &windows, &admitted);
    let overhead = format!("{:.3}", overhead_us as f64 / 1000.0);
    if let Ok(value) = HeaderValue::from_str(&overhead) {
        head.headers.insert(OVERHEAD, value);
    }
    if let Ok(value) = HeaderValue::from_str(&format!("feen;dur={overhead}")) {
        head.headers.append(SERVER_TIMING, value);
    }
    let expected_len = head
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let meter = Meter::new(
        format,
        event,
        ctx.usage.clone(),
        ctx.clock.clone(),
        started_us,
    );
    let body = Body::from_stream(Metered::new(body, meter, expected_len));
    Ok(Response::from_parts(head, body))
}

/// The upstream path for a request path: `/api/proxy/v1/x` → `/v1/x`, `/v1/x` → `/v1/x`.
fn upstream_path(path: &str) -> Option<String> {
    if segments(path, PREFIX).is_some() {
        let rest = &path[PREFIX.len()..];
        return (!rest.trim_matches('/').is_empty()).then(|| rest.to_owned());
    }
    segments(path, OPENAI_PREFIX).map(|_| path.to_owned())
}

/// Phase 1: the Feen token's hash. A token of the wrong shape is refused without a lookup.
pub fn token_hash(req: &Req) -> Result<TokenHash, Error> {
    let query_key = req.uri().query().and_then(|q| {
        q.split('&')
            .filter_map(|p| p.split_once('='))
            .find(|(k, _)| *k == "key")
            .map(|(_, v)| v)
    });
    let presented = providers::presented_token(req.headers()).or(query_key).ok_or(Error::Unauthorized {
        code: "missing_token",
        message: "send your Feen token as the API key (Authorization: Bearer, x-api-key or x-goog-api-key)",
    })?;
    token::verify(TokenKind::Share, presented).ok_or(invalid_token())
}

fn invalid_token() -> Error {
    Error::Unauthorized {
        code: "invalid_token",
        message: "this Feen token is not valid (unknown, revoked or regenerated)",
    }
}

/// Phase 2: the live share behind the token.
pub async fn load_share(ctx: &Ctx, hash: &TokenHash) -> Result<ProxyTarget, Error> {
    cache::load(ctx, hash).await?.ok_or_else(invalid_token)
}

/// The model a request names: the `model` field of a JSON body, or Gemini's
/// `/models/{model}:{method}` path.
fn request_model(path: &str, body: &Bytes) -> Option<String> {
    if body.first() == Some(&b'{') {
        #[derive(serde::Deserialize)]
        struct WithModel {
            model: Option<String>,
        }
        if let Ok(WithModel { model: Some(model) }) = serde_json::from_slice::<WithModel>(body) {
            return Some(model);
        }
    }
    let after = path.split_once("/models/")?.1;
    let model = after.split([':', '/', '?']).next()?;
    (!model.is_empty()).then(|| model.to_owned())
}

/// Phase 3: expiry and model.
pub fn check_policy(target: &ProxyTarget, model: Option<&str>, now_ms: i64) -> Result<(), Error> {
    limits::check_request(&target.policy, model, now_ms)
}

/// Phase 4: every counter, in one atomic call.
async fn admit(ctx: &Ctx, windows: &[Window], now_ms: i64) -> Result<Vec<u64>, Error> {
    if windows.is_empty() {
        return Ok(Vec::new());
    }
    let counters: Vec<_> = windows.iter().map(|w| w.counter.clone()).collect();
    match ctx.kv.admit(&counters).await? {
        Admission::Admitted { values } => Ok(values),
        Admission::Refused { index, .. } => {
            let window = windows
                .get(index)
                .ok_or_else(|| Error::internal("admit named no window"))?;
            Err(limits::refusal(window, now_ms))
        }
    }
}

fn rate_limit_headers(headers: &mut http::HeaderMap, windows: &[Window], values: &[u64]) {
    for (window, value) in windows.iter().zip(values) {
        let suffix = match window.kind {
            limits::LimitKind::RequestsPerMinute => "requests",
            limits::LimitKind::RequestsPerDay => "requests-day",
        };
        let remaining = window.counter.limit.saturating_sub(*value);
        for (name, value) in [("limit", window.counter.limit), ("remaining", remaining)] {
            if let Ok(name) =
                HeaderName::from_bytes(format!("x-ratelimit-{name}-{suffix}").as_bytes())
            {
                headers.insert(name, HeaderValue::from(value));
            }
        }
    }
}

/// Phase 5: the request to send upstream, with the real key in the provider's auth style.
fn upstream_request(
    ctx: &Ctx,
    target: &ProxyTarget,
    parts: &http::request::Parts,
    path: &str,
    body: Bytes,
) -> Result<Request<Body>, Error> {
    let provider = providers::find(&target.provider)
        .ok_or_else(|| Error::internal(format!("share {} names unknown provider", target.share)))?;
    let base = target.base_url.as_deref().unwrap_or(provider.base_url);
    if base.is_empty() {
        return Err(Error::internal(format!(
            "key {} has no base URL",
            target.key
        )));
    }
    let key = ctx
        .config
        .keyring
        .open(&target.sealed(), target.key.as_str())
        .map_err(|e| Error::internal(format!("opening key {}: {e}", target.key)))?;
    let mut url = format!("{}{path}", base.trim_end_matches('/'));
    if let Some(query) = parts.uri.query() {
        // `key=` may hold the Feen token (Gemini SDKs); it never goes upstream.
        let kept: Vec<&str> = query
            .split('&')
            .filter(|p| !p.starts_with("key=") && *p != "key")
            .collect();
        if !kept.is_empty() {
            url.push('?');
            url.push_str(&kept.join("&"));
        }
    }
    let mut headers = providers::upstream_headers(&parts.headers, provider.auth, &key);
    headers.insert(
        http::header::ACCEPT_ENCODING,
        HeaderValue::from_static("identity"),
    );
    let mut request = Request::builder()
        .method(parts.method.clone())
        .uri(url)
        .body(Body::Full(body))
        .map_err(|e| Error::internal(format!("building the upstream request: {e}")))?;
    *request.headers_mut() = headers;
    Ok(request)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_paths() {
        let cases = [
            (
                "/api/proxy/v1/chat/completions",
                Some("/v1/chat/completions"),
            ),
            (
                "/api/proxy/v1beta/models/gemini:generateContent",
                Some("/v1beta/models/gemini:generateContent"),
            ),
            ("/v1/chat/completions", Some("/v1/chat/completions")),
            ("/api/proxy", None),
            ("/api/proxy/", None),
            ("/api/proxyx/v1", None),
            ("/v2/x", None),
        ];
        for (path, expected) in cases {
            assert_eq!(upstream_path(path).as_deref(), expected, "{path}");
        }
    }

    #[test]
    fn request_models() {
        let cases: &[(&str, &str, Option<&str>)] = &[
            (
                "/v1/chat/completions",
                r#"{"model":"gpt-4o","messages":[]}"#,
                Some("gpt-4o"),
            ),
            ("/v1/chat/completions", r#"{"messages":[]}"#, None),
            ("/v1/chat/completions", "not json", None),
            (
                "/v1beta/models/gemini-2.0-flash:streamGenerateContent",
                "{}",
                Some("gemini-2.0-flash"),
            ),
            ("/v1/messages", r#"{"model":7}"#, None),
        ];
        for (path, body, expected) in cases {
            assert_eq!(
                request_model(path, &Bytes::from(*body)).as_deref(),
                *expected,
                "{path} {body}"
            );
        }
    }
}
