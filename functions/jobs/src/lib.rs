//! Feen function: background work, on every host. [`store_usage`] writes a batch of usage
//! events (the Workers usage queue's consumer); [`enqueue_usage`] and [`drain_usage`] are the
//! usage queue of hosts without one (a Redis list: Spin); [`periodic`] runs the periodic jobs (a
//! cron trigger on Workers, a timer in `feen serve`, `feen jobs` or the jobs endpoint for any
//! other scheduler).

use feen_core::Error;
use feen_core::ports::{Db, Kv};
use feen_service::request::segments;
pub use feen_service::usage_list::{
    DRAIN_DELAY_MS, Decoded, USAGE_LIST, decode, drain_usage, enqueue_usage, store_usage,
};
use feen_service::{Ctx, Req, Resp, json, respond};
use http::{Method, StatusCode};
use serde::Serialize;

#[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
mod workers;

// The Spin entry point: the jobs endpoint as a component of its own (Spin's cron trigger needs
// a plugin interface, so a scheduler calls the endpoint instead).
#[cfg(all(target_arch = "wasm32", target_os = "wasi"))]
feen_spin::http_entry!(handle);

/// The path prefix this function serves.
pub const PREFIX: &str = "/api/jobs";

/// Serves `POST /api/jobs/run`: runs the periodic jobs once (and drains the usage list) for a
/// scheduler of the operator's, authenticated with `Authorization: Bearer FEEN_JOBS_TOKEN`.
/// Without a configured token the endpoint does not exist.
pub async fn handle(req: Req, ctx: &Ctx) -> Resp {
    respond(route(req, ctx).await)
}

async fn route(req: Req, ctx: &Ctx) -> Result<Resp, Error> {
    let Some(expected) = ctx.config.jobs_token.as_ref() else {
        return Err(Error::NotFound("route"));
    };
    let path = req.uri().path().to_owned();
    match (
        segments(&path, PREFIX)
            .ok_or(Error::NotFound("route"))?
            .as_slice(),
        req.method(),
    ) {
        (["run"], &Method::POST) => {}
        (["run"], _) => return Err(Error::MethodNotAllowed),
        _ => return Err(Error::NotFound("route")),
    }
    let presented = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if !presented.is_some_and(|p| expected.ct_eq(p)) {
        return Err(Error::Unauthorized {
            code: "invalid_token",
            message: "the jobs token is missing or wrong",
        });
    }
    let report = periodic(ctx.db.as_ref(), Some(ctx.kv.as_ref()), ctx.now_ms()).await?;
    Ok(json(StatusCode::OK, &report))
}

/// How long a refresh token's row is kept after it expired.
pub const SESSION_GRACE_MS: i64 = 86_400_000;

/// What one run of the periodic jobs did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// Expired refresh tokens deleted.
    pub sessions_purged: u64,
    /// Usage events moved from the usage list to the database.
    pub usage_drained: u64,
}

/// Runs every periodic job once; `usage_list` is the store holding the usage list, on hosts
/// that queue usage there. Each job is idempotent, so overlapping or repeated runs (a retried
/// cron, two replicas' timers) do no harm.
pub async fn periodic(db: &dyn Db, usage_list: Option<&dyn Kv>, now: i64) -> Result<Report, Error> {
    let sessions_purged = feen_store::sessions::purge_expired(db, now - SESSION_GRACE_MS).await?;
    let usage_drained = match usage_list {
        Some(kv) => drain_usage(db, kv).await?,
        None => 0,
    };
    Ok(Report {
        sessions_purged,
        usage_drained,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(request: &str) -> serde_json::Value {
        serde_json::json!({
            "requestId": request, "shareId": "shr_1", "keyId": "key_1", "userId": "usr_1",
            "provider": "openai", "model": "gpt-4o-mini", "endpoint": "/v1/chat/completions",
            "status": 200, "streamed": false, "inputTokens": 12, "outputTokens": 5,
            "costMicros": 5, "startedAtMs": 1_700_000_000_000_i64, "durationMs": 42,
            "outcome": "completed",
        })
    }

    #[test]
    fn decoding_keeps_events_in_order_and_counts_what_is_not_one() {
        let decoded = decode([
            event("req_a"),
            serde_json::json!({ "requestId": 3 }),
            serde_json::json!("text"),
            event("req_b"),
        ]);
        let ids: Vec<&str> = decoded
            .events
            .iter()
            .map(|e| e.request_id.as_str())
            .collect();
        assert_eq!(ids, ["req_a", "req_b"]);
        assert_eq!(decoded.events[0].input_tokens, 12);
        assert_eq!(decoded.malformed, 2);
    }
}
