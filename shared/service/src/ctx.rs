//! The context a host builds once and hands to every handler: the ports and the configuration.

use std::sync::Arc;

use feen_core::crypto::jwt::AccessKeys;
use feen_core::crypto::keyring::KeyRing;
use feen_core::ports::{Clock, Db, Defer, HttpClient, Kv, Passwords, Rng, UsageSink, random};

use crate::cache::Memo;

/// Configuration shared by the functions, validated by the host at start-up.
#[derive(Debug)]
pub struct Config {
    /// Seals and opens provider keys.
    pub keyring: KeyRing,
    /// Signs and verifies access tokens.
    pub access: AccessKeys,
    /// Dev mode: keys may point at private, loopback and plain-http upstreams.
    pub allow_private_upstreams: bool,
    /// Where keys with a base URL of their own may point (`FEEN_UPSTREAM_HOSTS`, and whether
    /// this host checks resolved addresses).
    pub upstreams: feen_core::netguard::UpstreamPolicy,
    /// Whether cookies carry the `Secure` attribute (off only for plain-http local use).
    pub secure_cookies: bool,
    /// Hosts on which a client disconnect is invisible to the proxy (Workers) set this: a
    /// streamed response the client has not pulled from for this long is taken as abandoned and
    /// its usage recorded. `None` where the host drops the body on disconnect (native, Spin).
    pub stream_idle_ms: Option<u64>,
    /// `FEEN_JOBS_TOKEN`: the bearer token of the jobs endpoint (`POST /api/jobs/run`); `None`
    /// turns the endpoint off.
    pub jobs_token: Option<feen_core::secret::SecretString>,
    /// `FEEN_USAGE_RETENTION_DAYS`: how long raw usage events are kept once rolled up (the
    /// rollups are kept for good).
    pub usage_retention_days: u32,
    /// Where notification emails go; `None`: no emails are written.
    pub mail: Option<crate::mail::MailConfig>,
    /// `FEEN_PROXY_HOST`: the hostname (lower-case, optionally with a port) the proxy is served
    /// on, apart from the dashboard's; `None`: the proxy shares the dashboard's origin.
    pub proxy_host: Option<String>,
    /// `FEEN_BODY_MEMORY_MB`, in bytes: how much request-body data the proxy holds in memory at
    /// once across the process ([`crate::inflight`]).
    pub body_memory: usize,
}

/// The ports and configuration a handler works with.
#[derive(Clone)]
pub struct Ctx {
    /// The database.
    pub db: Arc<dyn Db>,
    /// Counters and caches.
    pub kv: Arc<dyn Kv>,
    /// Outbound HTTP.
    pub http: Arc<dyn HttpClient>,
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// Randomness.
    pub rng: Arc<dyn Rng>,
    /// Where usage events go.
    pub usage: Arc<dyn UsageSink>,
    /// Runs work after the response.
    pub defer: Arc<dyn Defer>,
    /// Hashes and checks passwords off the request-handling threads.
    pub passwords: Arc<dyn Passwords>,
    /// The in-process memo of shares in front of the shared cache.
    pub memo: Arc<Memo>,
    /// Configuration.
    pub config: Arc<Config>,
}

/// Whether this process (isolate, instance) has checked its key ring against the database.
static KEYRING_CHECKED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

impl Ctx {
    /// Checks the key ring against the fingerprints in the database
    /// ([`feen_store::keyring::check`]), once per process: the edge hosts, which have no start of
    /// their own, call it before their first request is handled (`feen serve` checks at start).
    /// A ring that differs is refused with a message naming the version; a database that cannot
    /// be asked is retried on the next request.
    pub async fn check_keyring_once(&self) -> Result<(), String> {
        use std::sync::atomic::Ordering;
        if KEYRING_CHECKED.load(Ordering::Acquire) {
            return Ok(());
        }
        feen_store::keyring::check(self.db.as_ref(), &self.config.keyring, self.now_ms())
            .await
            .map_err(|e| e.to_string())?;
        KEYRING_CHECKED.store(true, Ordering::Release);
        Ok(())
    }

    /// Milliseconds since the epoch.
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Seconds since the epoch.
    pub fn now_secs(&self) -> u64 {
        u64::try_from(self.clock.now_ms() / 1000).unwrap_or(0)
    }

    /// `N` random bytes.
    pub fn random<const N: usize>(&self) -> [u8; N] {
        random::<N>(self.rng.as_ref())
    }
}

impl std::fmt::Debug for Ctx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}
