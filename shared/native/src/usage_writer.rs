//! Usage events on the native host: handed to a channel by the proxy (never blocking it) and
//! written to the database in batches by one task. The task ends when every sender is gone,
//! after writing what is left, so a graceful shutdown loses nothing.

use std::sync::Arc;
use std::time::Duration;

use feen_core::ports::{Db, UsageSink};
use feen_core::usage::UsageEvent;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// The most events written in one batch.
const BATCH: usize = 500;
/// How long the writer waits for more events after the first of a batch.
const COALESCE: Duration = Duration::from_millis(20);

/// The sending side, used as the proxy's [`UsageSink`].
#[derive(Clone, Debug)]
pub struct ChannelSink {
    tx: mpsc::UnboundedSender<UsageEvent>,
}

impl UsageSink for ChannelSink {
    fn record(&self, event: UsageEvent) {
        if self.tx.send(event).is_err() {
            tracing::error!("usage event dropped: the writer has stopped");
        }
    }
}

/// Starts the writer; returns the sink and the task, which ends once every sink clone is dropped
/// and the queue is written.
pub fn spawn(db: Arc<dyn Db>) -> (ChannelSink, JoinHandle<()>) {
    let (tx, mut rx) = mpsc::unbounded_channel::<UsageEvent>();
    let task = tokio::spawn(async move {
        let mut batch = Vec::with_capacity(BATCH);
        while rx.recv_many(&mut batch, BATCH).await > 0 {
            // Let a busy proxy fill the batch a little: one write per many requests costs far
            // less than one per request. A closed channel ends the wait at once.
            let deadline = tokio::time::Instant::now() + COALESCE;
            while batch.len() < BATCH {
                let room = BATCH - batch.len();
                match tokio::time::timeout_at(deadline, rx.recv_many(&mut batch, room)).await {
                    Ok(n) if n > 0 => {}
                    _ => break,
                }
            }
            write_with_retry(db.as_ref(), &batch).await;
            batch.clear();
        }
    });
    (ChannelSink { tx }, task)
}

async fn write_with_retry(db: &dyn Db, batch: &[UsageEvent]) {
    let mut delay = Duration::from_millis(100);
    for attempt in 1..=8 {
        match feen_store::usage::insert_batch(db, batch).await {
            Ok(_) => return,
            Err(e) => {
                tracing::warn!(attempt, error = %e, events = batch.len(), "writing usage events failed; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
    tracing::error!(
        events = batch.len(),
        "usage events could not be written and were dropped"
    );
}
