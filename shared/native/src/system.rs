//! The clock, the randomness and the password hashing of the native host.

use std::sync::OnceLock;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use std::sync::Arc;

use feen_core::crypto::password::{self, SALT_LEN};
use feen_core::ports::{Clock, Passwords, Rng};
use feen_core::secret::SecretString;

/// The system clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

fn epoch() -> Instant {
    static START: OnceLock<Instant> = OnceLock::new();
    *START.get_or_init(Instant::now)
}

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
    }

    fn monotonic_us(&self) -> u64 {
        u64::try_from(epoch().elapsed().as_micros()).unwrap_or(u64::MAX)
    }
}

/// The operating system's CSPRNG.
#[derive(Clone, Copy, Debug, Default)]
pub struct OsRng;

impl Rng for OsRng {
    fn fill(&self, buf: &mut [u8]) {
        // The OS generator does not fail on supported platforms; if it ever did, running on with
        // predictable keys and tokens would be worse than stopping.
        #[allow(clippy::expect_used)]
        getrandom::fill(buf).expect("the operating system's random number generator failed");
    }
}

/// Password hashing on tokio's blocking threads, at most one hash per core at a time: a burst of
/// logins waits for its turn instead of taking the threads that serve the proxy.
#[derive(Clone, Debug)]
pub struct BlockingPasswords {
    turns: Arc<tokio::sync::Semaphore>,
}

impl BlockingPasswords {
    /// As many hashes at once as the machine has cores.
    pub fn new() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self {
            turns: Arc::new(tokio::sync::Semaphore::new(cores)),
        }
    }

    async fn run<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> Option<T> {
        let _turn = self.turns.acquire().await.ok()?;
        tokio::task::spawn_blocking(work).await.ok()
    }
}

impl Default for BlockingPasswords {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait::async_trait]
impl Passwords for BlockingPasswords {
    async fn hash(&self, password: SecretString, salt: [u8; SALT_LEN]) -> String {
        // An empty string never verifies: a lost hash fails closed.
        self.run(move || password::hash(&password, salt))
            .await
            .unwrap_or_default()
    }

    async fn verify(&self, stored: String, password: SecretString) -> bool {
        self.run(move || password::verify(&stored, &password))
            .await
            .unwrap_or(false)
    }
}
