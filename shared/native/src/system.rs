//! The clock and the randomness of the native host.

use std::sync::OnceLock;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use feen_core::ports::{Clock, Rng};

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
