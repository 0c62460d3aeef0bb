//! Usage events on their way to the database: [`store_usage`] writes a batch in one idempotent
//! statement (every host's writer ends here), and the usage list (a Redis list) is the usage
//! queue of hosts without a queue service (Spin): [`enqueue_usage`] puts an event on it,
//! [`drain_usage`] moves events from it into the database.

use feen_core::Error;
use feen_core::ports::{Db, DbError, Kv, KvError};
use feen_core::usage::UsageEvent;

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
pub async fn drain_usage(db: &dyn Db, kv: &dyn Kv) -> Result<u64, Error> {
    if !kv.set_if_absent(DRAIN_LOCK, "1", DRAIN_LOCK_MS).await? {
        return Ok(0);
    }
    let result = drain_locked(db, kv).await;
    kv.delete(&[DRAIN_LOCK.to_owned()]).await?;
    result
}

async fn drain_locked(db: &dyn Db, kv: &dyn Kv) -> Result<u64, Error> {
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
