//! Feen function: background work, on every host. [`store_usage`] writes a batch of usage
//! events (the Workers usage queue's consumer); [`enqueue_usage`] and [`drain_usage`] are the
//! usage queue of hosts without one (a Redis list: Spin); [`periodic`] runs the periodic jobs (a
//! cron trigger on Workers, a timer in `feen serve`, `feen jobs` or the jobs endpoint for any
//! other scheduler).

use feen_core::Error;
use feen_core::ports::{Db, DbError, Kv, KvError};
use feen_core::usage::UsageEvent;
use feen_service::request::segments;
use feen_service::{Ctx, Req, Resp, json, respond};
use http::{Method, StatusCode};
use serde::Serialize;

#[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
mod workers;

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

/// The Redis list usage events wait in on hosts without a queue service.
pub const USAGE_LIST: &str = "usage:queue";
/// Held while a drain runs, so that two drains never trim each other's events.
const DRAIN_LOCK: &str = "usage:drain-lock";
/// Set when a drain has been scheduled, so that a burst of requests schedules one.
const DRAIN_SOON: &str = "usage:drain-soon";
/// How long a drain may hold the lock (it gives it back when done).
const DRAIN_LOCK_MS: u64 = 30_000;
/// Events written per statement.
const BATCH: usize = 500;
/// The most batches one drain writes (later events wait for the next drain).
const MAX_BATCHES: usize = 20;
/// How long after an event the drain it scheduled runs: events arriving meanwhile join it.
pub const DRAIN_DELAY_MS: u64 = 1_000;

/// Why a job failed.
#[derive(Debug)]
pub enum JobError {
    /// The database failed.
    Db(DbError),
    /// The counter store failed.
    Kv(KvError),
}

impl std::fmt::Display for JobError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JobError::Db(e) => e.fmt(f),
            JobError::Kv(e) => e.fmt(f),
        }
    }
}

impl From<DbError> for JobError {
    fn from(e: DbError) -> Self {
        JobError::Db(e)
    }
}

impl From<KvError> for JobError {
    fn from(e: KvError) -> Self {
        JobError::Kv(e)
    }
}

impl From<JobError> for feen_core::Error {
    fn from(e: JobError) -> Self {
        match e {
            JobError::Db(e) => e.into(),
            JobError::Kv(e) => e.into(),
        }
    }
}

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
pub async fn periodic(
    db: &dyn Db,
    usage_list: Option<&dyn Kv>,
    now: i64,
) -> Result<Report, JobError> {
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

/// Puts a usage event on the usage list. Returns true when the caller should run
/// [`drain_usage`] in [`DRAIN_DELAY_MS`] (no drain is scheduled yet).
pub async fn enqueue_usage(kv: &dyn Kv, event: &UsageEvent) -> Result<bool, KvError> {
    let json = serde_json::to_string(event).map_err(|e| KvError(e.to_string()))?;
    kv.list_push(USAGE_LIST, &json).await?;
    kv.set_if_absent(DRAIN_SOON, "1", DRAIN_DELAY_MS).await
}

/// Moves usage events from the usage list to the database in batches, oldest first: each batch
/// is written (idempotently) before it leaves the list, so a failure loses nothing and a retry
/// writes nothing twice. One drain at a time: a drain that finds another running returns 0.
pub async fn drain_usage(db: &dyn Db, kv: &dyn Kv) -> Result<u64, JobError> {
    if !kv.set_if_absent(DRAIN_LOCK, "1", DRAIN_LOCK_MS).await? {
        return Ok(0);
    }
    let result = drain_locked(db, kv).await;
    kv.delete(&[DRAIN_LOCK.to_owned()]).await?;
    result
}

async fn drain_locked(db: &dyn Db, kv: &dyn Kv) -> Result<u64, JobError> {
    let mut drained = 0;
    for _ in 0..MAX_BATCHES {
        let items = kv.list_front(USAGE_LIST, BATCH).await?;
        if items.is_empty() {
            break;
        }
        let decoded = decode(
            items
                .iter()
                .map(|item| serde_json::from_str(item).unwrap_or(serde_json::Value::Null)),
        );
        store_usage(db, &decoded.events).await?;
        kv.list_drop_front(USAGE_LIST, items.len()).await?;
        drained += decoded.events.len() as u64;
        if items.len() < BATCH {
            break;
        }
    }
    Ok(drained)
}

/// A batch of queue messages decoded: the usage events, and how many messages were not one
/// (acknowledged and dropped: a retry cannot make them readable).
#[derive(Debug, Default)]
pub struct Decoded {
    /// The events, in arrival order.
    pub events: Vec<UsageEvent>,
    /// Messages that are not usage events.
    pub malformed: usize,
}

/// Decodes queue message bodies into usage events.
pub fn decode<I: IntoIterator<Item = serde_json::Value>>(bodies: I) -> Decoded {
    let mut decoded = Decoded::default();
    for body in bodies {
        match serde_json::from_value::<UsageEvent>(body) {
            Ok(event) => decoded.events.push(event),
            Err(_) => decoded.malformed += 1,
        }
    }
    decoded
}

/// Writes a batch of usage events in one statement. Idempotent per request id: a redelivered
/// batch writes nothing twice. Returns how many rows were new.
pub async fn store_usage(db: &dyn Db, events: &[UsageEvent]) -> Result<u64, DbError> {
    if events.is_empty() {
        return Ok(0);
    }
    feen_store::usage::insert_batch(db, events).await
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
