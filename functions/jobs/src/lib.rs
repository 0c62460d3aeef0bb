//! Feen function: background work, on every host. [`store_usage`] writes a batch of usage
//! events (the Workers usage queue's consumer); [`periodic`] runs the periodic jobs (a cron
//! trigger on Workers, a timer in `feen serve`, `feen jobs` for any other scheduler).

use feen_core::ports::{Db, DbError};
use feen_core::usage::UsageEvent;
use serde::Serialize;

#[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
mod workers;

/// How long a refresh token's row is kept after it expired.
pub const SESSION_GRACE_MS: i64 = 86_400_000;

/// What one run of the periodic jobs did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// Expired refresh tokens deleted.
    pub sessions_purged: u64,
}

/// Runs every periodic job once. Each job is idempotent, so overlapping or repeated runs (a
/// retried cron, two replicas' timers) do no harm.
pub async fn periodic(db: &dyn Db, now: i64) -> Result<Report, DbError> {
    let sessions_purged = feen_store::sessions::purge_expired(db, now - SESSION_GRACE_MS).await?;
    Ok(Report { sessions_purged })
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
