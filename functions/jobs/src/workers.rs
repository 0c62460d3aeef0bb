//! The jobs function as a Worker: the consumer of the `feen-usage` queue, the cron trigger, and
//! the jobs endpoint (`POST /api/jobs/run`, through the router) for an outside scheduler.

use feen_core::ports::Clock;
use feen_workers::{HyperdriveDb, WorkerClock};

feen_workers::fetch_entry!(crate::handle);

/// Writes a batch of usage events from the queue in one statement. Messages that are not usage
/// events are acknowledged and dropped (logged); when the database fails, the whole batch is
/// retried later (the write is idempotent, so a redelivery is harmless).
#[worker::event(queue)]
async fn queue(
    batch: worker::MessageBatch<serde_json::Value>,
    env: worker::Env,
    _ctx: worker::Context,
) -> worker::Result<()> {
    let decoded = crate::decode(
        batch
            .iter()
            .map(|m| m.map(|m| m.into_body()).unwrap_or(serde_json::Value::Null)),
    );
    if decoded.malformed > 0 {
        worker::console_error!(
            "feen: {} queue message(s) are not usage events; dropped",
            decoded.malformed
        );
    }
    let db = HyperdriveDb::new(&env, "DB")?;
    match crate::store_usage(&db, &decoded.events).await {
        Ok(_) => batch.ack_all(),
        Err(e) => {
            worker::console_error!("feen: writing usage events failed, retrying the batch: {e}");
            batch.retry_all();
        }
    }
    Ok(())
}

/// Runs the periodic jobs (the cron triggers in `wrangler.toml`).
#[worker::event(scheduled)]
async fn scheduled(
    _event: worker::ScheduledEvent,
    env: worker::Env,
    _ctx: worker::ScheduleContext,
) {
    let run = async {
        let db = HyperdriveDb::new(&env, "DB").map_err(|e| e.to_string())?;
        // The key ring, when this Worker has the secrets, lets the cron re-seal keys too.
        let config = feen_workers::context_config(&env).ok();
        // The counter store, when this Worker has its secrets: dropping share-cache entries.
        let kv = feen_workers::kv(&env).ok();
        let means = crate::Means {
            usage_list: None,
            cache: kv.as_deref(),
            usage_retention_days: config.as_ref().map(|c| c.usage_retention_days),
            mail: config.as_ref().and_then(|c| c.mail.as_ref()).map(|m| {
                (
                    &feen_workers::FetchHttp as &dyn feen_core::ports::HttpClient,
                    m,
                )
            }),
            keyring: config.as_ref().map(|c| {
                (
                    &c.keyring,
                    &feen_workers::WorkerRng as &dyn feen_core::ports::Rng,
                )
            }),
        };
        crate::periodic(&db, means, WorkerClock.now_ms())
            .await
            .map_err(|e| e.to_string())
    };
    match run.await {
        Ok(report) => worker::console_log!(
            "feen: periodic jobs done: {}",
            serde_json::to_string(&report).unwrap_or_default()
        ),
        Err(e) => worker::console_error!("feen: periodic jobs failed: {e}"),
    }
}
