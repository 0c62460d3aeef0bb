//! Work after the response on the native host: spawned tasks, tracked so that a graceful
//! shutdown waits for them (settlements of reservations must not be lost).

use feen_core::ports::{Defer, Deferred};
use tokio_util::task::TaskTracker;

/// Spawns deferred work on the runtime and keeps count of it.
#[derive(Clone, Debug, Default)]
pub struct Tasks {
    tracker: TaskTracker,
}

impl Tasks {
    /// A new tracker.
    pub fn new() -> Self {
        Self::default()
    }

    /// Waits until every deferred task has finished (no new ones may start after this).
    pub async fn finish(&self) {
        self.tracker.close();
        self.tracker.wait().await;
    }
}

impl Defer for Tasks {
    fn defer(&self, work: Deferred) {
        self.tracker.spawn(work);
    }

    fn sleep(&self, ms: u64) -> Deferred {
        Box::pin(tokio::time::sleep(std::time::Duration::from_millis(ms)))
    }
}
