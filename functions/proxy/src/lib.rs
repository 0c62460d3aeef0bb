//! The proxy function (`/api/proxy/*` and the OpenAI-compatible `/v1/*`): authenticates a Feen
//! token, enforces its share's limits, injects the real provider key, forwards, streams the
//! answer back untouched, and records one usage event per request.
//!
//! The request passes through named phases, each a function of its own:
//! 1. [`token_hash`]: read the Feen token from wherever the client's SDK put it; check its shape.
//! 2. [`feen_service::cache::load`]: the share and its sealed key, from the in-process memo, the
//!    shared cache or the database.
//! 3. [`admit`]: the policy checks (expiry, address, endpoint, model), the reservation, and every
//!    counter checked and bumped in one atomic call to the counter store, guarded so that a
//!    changed or revoked share is noticed in that same call.
//! 4. [`upstream_request`]: open the key, rewrite URL and headers for the provider.
//! 5. forward, then [`meter::Metered`] streams the response through while reading its usage,
//!    and when the body ends, fails, or the client goes away, records the usage event and
//!    settles the reservation (after the response, off the client's path).

pub mod filter;
pub mod meter;

use std::sync::Arc;

use bytes::Bytes;
use feen_core::crypto::token::{self, TokenHash, TokenKind};
use feen_core::ids::RequestId;
use feen_core::limits::{self, Reservation, Window};
use feen_core::ports::{Admission, Guard};
use feen_core::providers;
use feen_core::scan;
use feen_core::usage::{Format, Outcome, UsageEvent};
use feen_core::{Body, Error};
use feen_service::cache::{self, Cached};
use feen_service::inflight;
use feen_service::request::{answers_here, client_addr, under};
use feen_service::response::error_response;
use feen_service::{Ctx, Req, Resp};
use feen_store::shares::ProxyTarget;
use http::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use http::{Request, Response};

use crate::meter::{Meter, Metered, Settle};

/// The path prefix of the proxy.
pub const PREFIX: &str = "/api/proxy";
/// The OpenAI-compatible prefix (`base_url = http://host/v1`).
pub const OPENAI_PREFIX: &str = "/v1";

/// The largest request body forwarded (prompts with inline images are large).
pub const MAX_REQUEST_BODY: usize = 32 * 1024 * 1024;
/// How often admission retries after finding its view of the share stale.
const ADMIT_ATTEMPTS: usize = 3;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-feen-request-id");
const OVERHEAD: HeaderName = HeaderName::from_static("x-feen-overhead-ms");
const SERVER_TIMING: HeaderName = HeaderName::from_static("server-timing");

/// Serves `/api/proxy/*` and `/v1/*`.
pub async fn handle(req: Req, ctx: &Ctx) -> Resp {
    let started_us = ctx.clock.monotonic_us();
    let started_ms = ctx.now_ms();
    let request_id = RequestId::new(started_ms, ctx.random());
    let host = feen_service::request::request_host(&req);
    let here = answers_here(req.uri().path(), host, ctx.config.proxy_host.as_deref());
    let result = match here {
        true => proxy(req, ctx, &request_id, started_us, started_ms).await,
        false => Err(Error::NotFound("route")),
    };
    let mut resp = result.unwrap_or_else(|err| error_response(&err));
    // Whatever the upstream sent, nothing of it may act on the origin Feen serves from.
    providers::answer_headers(resp.headers_mut());
    if let Ok(value) = HeaderValue::from_str(request_id.as_str()) {
        resp.headers_mut().insert(REQUEST_ID, value);
    }
    resp
}

/// What admission decided: the share as it was checked, the counters it passed and what the
/// request reserved on them.
pub struct Admitted {
    /// The share.
    pub cached: Arc<Cached>,
    /// The counters, in order.
    pub windows: Vec<Window>,
    /// Their values after this request's reservation.
    pub values: Vec<u64>,
    /// What the request reserved.
    pub reservation: Reservation,
}

async fn proxy(
    req: Req,
    ctx: &Ctx,
    request_id: &RequestId,
    started_us: u64,
    started_ms: i64,
) -> Result<Resp, Error> {
    let endpoint = upstream_path(req.uri().path()).ok_or(Error::NotFound("route"))??;
    let hash = token_hash(&req)?;
    let client_ip = client_addr(&req);
    let cached = cache::load(ctx, &hash, client_ip)
        .await?
        .ok_or_else(invalid_token)?;
    let (parts, body) = req.into_parts();
    // The body counts against the process's budget of bodies in memory until it has been sent.
    let declared = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let (body, permit) =
        inflight::read_body(body, declared, MAX_REQUEST_BODY, ctx.config.body_memory).await?;
    let facts = scan::scan(&body)?;
    let model = request_model(&endpoint, facts.as_ref());
    let request = limits::Request {
        model: model.as_deref(),
        endpoint: &endpoint,
        client_ip,
        body_len: body.len() as u64,
        facts: facts.as_ref(),
    };
    let share = cached.clone();
    let refused = |status: http::StatusCode| {
        let elapsed_ms = ctx.clock.monotonic_us().saturating_sub(started_us) / 1000;
        let event = request_event(&share.target, request_id, &endpoint, &model, started_ms);
        ctx.usage.record(UsageEvent {
            status: status.as_u16(),
            duration_ms: elapsed_ms,
            outcome: Outcome::Refused,
            ..event
        });
    };
    let admitted = match admit(ctx, &hash, cached, &request, started_ms).await {
        Ok(admitted) => admitted,
        Err(Refusal::Limit { window, value }) => {
            let error = limits::refusal(&window, started_ms);
            refused(error.status());
            let mut resp = error_response(&error);
            rate_limit_headers(resp.headers_mut(), &[window], &[value], started_ms);
            return Ok(resp);
        }
        Err(Refusal::Error(e)) => {
            // The share's own policy said no (not the counter store failing): that is a
            // refusal its owner sees in the analytics.
            if matches!(e, Error::Forbidden { .. } | Error::RateLimited { .. }) {
                refused(e.status());
            }
            return Err(e);
        }
    };
    let target = &admitted.cached.target;
    let provider = providers::find(&target.provider)
        .ok_or_else(|| Error::internal(format!("share {} names unknown provider", target.share)))?;
    // Streams that would report no usage are asked to (and the extra is filtered out below);
    // a request with no output cap on a share that reserves is sent with the cap it reserved.
    let edits = scan::Edits {
        include_usage: provider.stream_usage
            && endpoint.ends_with("/chat/completions")
            && facts.as_ref().is_some_and(|f| f.stream),
        output_cap: target
            .policy
            .reserves()
            .then(|| output_field(provider.name, &endpoint))
            .flatten()
            .map(|field| (field, limits::output_cap(&target.policy, facts.as_ref()))),
    };
    let filter_usage = edits.include_usage
        && facts
            .as_ref()
            .is_some_and(|f| f.include_usage != Some(true));
    let rewritten = match &facts {
        Some(facts) => scan::rewrite(&body, facts, edits)?,
        None => None,
    };
    let body_len = body.len();
    let upstream_body = rewritten.map_or(body, Bytes::from);
    let upstream = upstream_request(ctx, target, provider, &parts, &endpoint, upstream_body)?;

    let overhead_us = ctx.clock.monotonic_us().saturating_sub(started_us);
    let mut event = UsageEvent {
        outcome: Outcome::UpstreamError,
        ..request_event(target, request_id, &endpoint, &model, started_ms)
    };
    let settle = Settle {
        kv: ctx.kv.clone(),
        defer: ctx.defer.clone(),
        windows: admitted.windows.clone(),
        reservation: admitted.reservation,
        estimated_input: body_len.div_ceil(4) as u64,
    };
    let sent = ctx.http.send(upstream).await;
    drop(permit);
    let response = match sent {
        Ok(response) => response,
        Err(err) => {
            let meter = Meter::new(
                Format::Other,
                event,
                ctx.usage.clone(),
                ctx.clock.clone(),
                started_us,
                settle,
            );
            meter.finish(Outcome::UpstreamError);
            return Err(Error::Upstream { detail: err.0 });
        }
    };
    let (mut head, body) = response.into_parts();
    if head.status.is_redirection() {
        // A redirect passed on would make Feen an open redirect, and following it would send
        // the key wherever the upstream says: neither is done.
        event.status = head.status.as_u16();
        drop(body);
        Meter::new(
            Format::Other,
            event,
            ctx.usage.clone(),
            ctx.clock.clone(),
            started_us,
            settle,
        )
        .finish(Outcome::UpstreamError);
        return Err(Error::BadGateway {
            code: "upstream_redirect",
            message:
                "the provider answered with a redirect, which Feen neither follows nor passes on"
                    .into(),
        });
    }
    let content_type = head
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let format = Format::from_content_type(content_type);
    event.status = head.status.as_u16();
    event.streamed = format == Format::Sse;
    rate_limit_headers(
        &mut head.headers,
        &admitted.windows,
        &admitted.values,
        started_ms,
    );
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
        settle,
    );
    let metered = Metered::new(body, meter, expected_len);
    if let Some(idle_ms) = ctx.config.stream_idle_ms {
        metered.watch(ctx.defer.clone(), idle_ms);
    }
    let body = if filter_usage && format == Format::Sse {
        head.headers.remove(http::header::CONTENT_LENGTH);
        Body::from_stream(filter::Filtered::new(metered))
    } else {
        Body::from_stream(metered)
    };
    Ok(Response::from_parts(head, body))
}

/// The usage event of a request through a share, before anything is known of how it ends (no
/// status, no tokens; marked refused until the caller says otherwise).
fn request_event(
    target: &ProxyTarget,
    request_id: &RequestId,
    endpoint: &str,
    model: &Option<String>,
    started_ms: i64,
) -> UsageEvent {
    UsageEvent {
        request_id: request_id.clone(),
        share_id: target.share.clone(),
        key_id: target.key.clone(),
        user_id: target.user.clone(),
        team_id: target.team.clone(),
        provider: target.provider.clone(),
        model: model.clone(),
        endpoint: endpoint.to_owned(),
        status: 0,
        streamed: false,
        input_tokens: 0,
        output_tokens: 0,
        cost_micros: None,
        started_at_ms: started_ms,
        duration_ms: 0,
        outcome: Outcome::Refused,
    }
}

/// The upstream path for a request path, normalised ([`feen_core::path`]): `/api/proxy/v1/x` →
/// `/v1/x`, `/v1/x` → `/v1/x`. `None` for a path that is not the proxy's or names nothing.
fn upstream_path(path: &str) -> Option<Result<String, Error>> {
    let rest = if under(path, PREFIX) {
        &path[PREFIX.len()..]
    } else if under(path, OPENAI_PREFIX) {
        path
    } else {
        return None;
    };
    if rest.trim_matches('/').is_empty() {
        return None;
    }
    Some(feen_core::path::normalise(rest))
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

/// The model a request names. Where the path names one (Gemini's `/models/{model}:{method}`,
/// Azure's `/deployments/{name}/...`), the path decides: that is what the provider runs, whatever
/// the body says. Otherwise the body's `model`.
fn request_model(path: &str, facts: Option<&scan::BodyFacts>) -> Option<String> {
    path_model(path).or_else(|| facts.and_then(|f| f.model.clone()))
}

fn path_model(path: &str) -> Option<String> {
    let after = path
        .split_once("/models/")
        .or_else(|| path.split_once("/deployments/"))?
        .1;
    let model = after.split([':', '/']).next()?;
    (!model.is_empty() && model.len() <= scan::MAX_MODEL).then(|| model.to_owned())
}

/// Where a request's output cap goes, by the API it calls (`None`: an API without one).
fn output_field(provider: &str, endpoint: &str) -> Option<scan::OutputField> {
    use scan::OutputField::{GenerationConfig, Top};
    if endpoint.contains(":generateContent") || endpoint.contains(":streamGenerateContent") {
        Some(GenerationConfig)
    } else if endpoint.ends_with("/chat/completions") {
        // OpenAI's reasoning models refuse `max_tokens`; everyone else knows only that.
        Some(Top(if provider == "openai" {
            "max_completion_tokens"
        } else {
            "max_tokens"
        }))
    } else if endpoint.ends_with("/responses") {
        Some(Top("max_output_tokens"))
    } else if endpoint.ends_with("/completions") || endpoint.ends_with("/messages") {
        Some(Top("max_tokens"))
    } else {
        None
    }
}

/// Why admission refused a request.
pub enum Refusal {
    /// A limit is reached: the window and the counter's current value (for the headers).
    Limit { window: Window, value: u64 },
    /// Anything else (policy, unknown token, the counter store down).
    Error(Error),
}

impl From<Error> for Refusal {
    fn from(e: Error) -> Self {
        Refusal::Error(e)
    }
}

/// Phase 3: the policy checks, the reservation, and every counter in one atomic call guarded by
/// the share's cache entry. If the entry changed (an update, a rotation, a revocation on any
/// replica), the share is reloaded and checked again.
pub async fn admit(
    ctx: &Ctx,
    hash: &TokenHash,
    mut cached: Arc<Cached>,
    facts: &limits::Request<'_>,
    now_ms: i64,
) -> Result<Admitted, Refusal> {
    let key = cache::key(hash);
    for _ in 0..ADMIT_ATTEMPTS {
        let target = &cached.target;
        limits::check_request(&target.policy, facts, now_ms)?;
        let reservation = limits::reserve(&target.policy, facts)?;
        let windows = limits::windows(
            &target.share,
            &target.policy,
            now_ms,
            reservation,
            target.used,
        );
        let counters: Vec<_> = windows.iter().map(|w| w.counter.clone()).collect();
        let guard = Guard {
            key: &key,
            value: &cached.text,
        };
        match ctx
            .kv
            .admit(Some(guard), &counters)
            .await
            .map_err(Error::from)?
        {
            Admission::Admitted { values } => {
                return Ok(Admitted {
                    cached,
                    windows,
                    values,
                    reservation,
                });
            }
            Admission::Refused { index, value } => {
                let window = windows
                    .get(index)
                    .cloned()
                    .ok_or_else(|| Error::internal("admit named no window"))?;
                return Err(Refusal::Limit { window, value });
            }
            Admission::Stale => {
                cached = cache::fetch(ctx, hash, facts.client_ip)
                    .await?
                    .ok_or_else(invalid_token)?
            }
        }
    }
    Err(Refusal::Error(Error::Unavailable {
        detail: format!(
            "share cache for {} kept changing during admission",
            cached.target.share
        ),
    }))
}

/// `x-ratelimit-limit-*`, `-remaining-*` and `-reset-*` (seconds to the window's end, `30s`) for
/// each counter, named as OpenAI names its own (`requests`, `tokens`) plus Feen's others.
fn rate_limit_headers(
    headers: &mut http::HeaderMap,
    windows: &[Window],
    values: &[u64],
    now_ms: i64,
) {
    for (window, value) in windows.iter().zip(values) {
        let suffix = match window.kind {
            limits::LimitKind::RequestsPerMinute => "requests",
            limits::LimitKind::RequestsPerDay => "requests-day",
            limits::LimitKind::TokensPerMinute => "tokens",
            limits::LimitKind::TokensPerDay => "tokens-day",
            limits::LimitKind::Budget => "budget-usd-micros",
            limits::LimitKind::Uses => "uses",
        };
        let remaining = window.counter.limit.saturating_sub(*value).to_string();
        let reset = window
            .resets_at_ms
            .map(|at| format!("{}s", ((at - now_ms).max(0) + 999) / 1000));
        let limit = window.counter.limit.to_string();
        let entries = [
            ("limit", Some(limit)),
            ("remaining", Some(remaining)),
            ("reset", reset),
        ];
        for (name, value) in entries {
            let name = HeaderName::from_bytes(format!("x-ratelimit-{name}-{suffix}").as_bytes());
            if let (Ok(name), Some(Ok(value))) = (name, value.map(|v| HeaderValue::from_str(&v))) {
                headers.insert(name, value);
            }
        }
    }
}

/// Phase 4: the request to send upstream, with the real key in the provider's auth style.
fn upstream_request(
    ctx: &Ctx,
    target: &ProxyTarget,
    provider: &providers::Provider,
    parts: &http::request::Parts,
    path: &str,
    body: Bytes,
) -> Result<Request<Body>, Error> {
    // A base URL of the owner's own must still be allowed now (the list may have changed).
    if let Some(own) = target.base_url.as_deref()
        && ctx
            .config
            .upstreams
            .allows(own, ctx.config.allow_private_upstreams)
            .is_err()
    {
        return Err(Error::Forbidden {
            code: "upstream_not_allowed",
            message: "this key points at a host this deployment no longer allows".into(),
        });
    }
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
        .open(&target.sealed(), &target.destination())
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
    let mut headers = providers::upstream_headers(
        &parts.headers,
        provider.auth,
        target.custom_auth.as_ref(),
        &key,
    );
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
            (
                "/api/proxy//v1//chat/completions",
                Some("/v1/chat/completions"),
            ),
            ("/api/proxy", None),
            ("/api/proxy/", None),
            ("/api/proxyx/v1", None),
            ("/v2/x", None),
        ];
        for (path, expected) in cases {
            assert_eq!(
                upstream_path(path).and_then(Result::ok).as_deref(),
                expected,
                "{path}"
            );
        }
        let climbing = upstream_path("/api/proxy/v1/chat/%2e%2e/images").expect("a proxy path");
        assert_eq!(climbing.map_err(|e| e.code()), Err("invalid_path"));
    }

    #[test]
    fn the_path_decides_the_model_where_it_names_one() {
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
            (
                "/v1beta/models/gemini-2.5-pro:generateContent",
                r#"{"model":"gemini-2.0-flash"}"#,
                Some("gemini-2.5-pro"),
            ),
            ("/v1/messages", r#"{"model":7}"#, None),
            (
                "/openai/deployments/my-gpt/chat/completions",
                r#"{"model":"gpt-4o-mini","messages":[]}"#,
                Some("my-gpt"),
            ),
        ];
        for (path, body, expected) in cases {
            let facts = scan::scan(body.as_bytes()).ok().flatten();
            assert_eq!(
                request_model(path, facts.as_ref()).as_deref(),
                *expected,
                "{path} {body}"
            );
        }
    }

    #[test]
    fn output_caps_go_where_each_api_reads_them() {
        use scan::OutputField::{GenerationConfig, Top};
        let cases = [
            (
                "openai",
                "/v1/chat/completions",
                Some(Top("max_completion_tokens")),
            ),
            ("groq", "/v1/chat/completions", Some(Top("max_tokens"))),
            ("openai", "/v1/responses", Some(Top("max_output_tokens"))),
            ("openai", "/v1/completions", Some(Top("max_tokens"))),
            ("anthropic", "/v1/messages", Some(Top("max_tokens"))),
            (
                "gemini",
                "/v1beta/models/g:generateContent",
                Some(GenerationConfig),
            ),
            ("openai", "/v1/embeddings", None),
        ];
        for (provider, endpoint, expected) in cases {
            assert_eq!(
                output_field(provider, endpoint),
                expected,
                "{provider} {endpoint}"
            );
        }
    }
}

// The Cloudflare Workers entry point: this function as a Worker of its own.
#[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
feen_workers::fetch_entry!(handle);

// The Spin entry point: this function as a component of its own.
#[cfg(all(target_arch = "wasm32", target_os = "wasi"))]
feen_spin::http_entry!(handle);
