//! The ports: the traits through which a host gives the core and the functions their I/O.
//! One adapter per host implements them (native, Cloudflare Workers, Spin).
//!
//! `Send` decision: on native hosts the futures these traits return are `Send` (a
//! multi-threaded tokio runtime moves them between threads); on wasm they are not bounded,
//! because Workers' JS-backed types and Spin's WASI types are `!Send` and both runtimes are
//! single-threaded. The two `cfg_attr` lines on every trait and impl say exactly that, so no
//! host needs `unsafe impl Send`.

use crate::Body;
use crate::usage::UsageEvent;

/// `Send + Sync` on native hosts; nothing on wasm (see the module docs).
#[cfg(not(target_family = "wasm"))]
pub trait MaybeSendSync: Send + Sync {}
#[cfg(not(target_family = "wasm"))]
impl<T: Send + Sync + ?Sized> MaybeSendSync for T {}
/// `Send + Sync` on native hosts; nothing on wasm (see the module docs).
#[cfg(target_family = "wasm")]
pub trait MaybeSendSync {}
#[cfg(target_family = "wasm")]
impl<T: ?Sized> MaybeSendSync for T {}

// ---------------------------------------------------------------------------------------------
// Database

/// A SQL parameter or column value. Feen's schema uses only 64-bit integers and text, so the
/// same values travel through every driver (sqlx, tokio-postgres, SQL over HTTP). NULLs keep
/// their type so that PostgreSQL drivers can bind them without guessing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// A BIGINT (timestamps in ms, counts, money in micro-USD), or a typed NULL.
    Int(Option<i64>),
    /// A TEXT (ids, names, sealed secrets, hashes, JSON documents), or a typed NULL.
    Text(Option<String>),
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(Some(v))
    }
}
impl From<Option<i64>> for Value {
    fn from(v: Option<i64>) -> Self {
        Value::Int(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(Some(v.to_owned()))
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Text(Some(v))
    }
}
impl From<Option<String>> for Value {
    fn from(v: Option<String>) -> Self {
        Value::Text(v)
    }
}
impl From<Option<&str>> for Value {
    fn from(v: Option<&str>) -> Self {
        Value::Text(v.map(str::to_owned))
    }
}

/// One result row, columns in `SELECT` order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row(pub Vec<Value>);

impl Row {
    /// Column `i` as an integer. Drivers that return integers as text (SQL over HTTP) are
    /// accepted too.
    pub fn int(&self, i: usize) -> Result<i64, DbError> {
        self.opt_int(i)?
            .ok_or_else(|| DbError::Decode(format!("column {i} is NULL")))
    }

    /// Column `i` as an integer, or `None` when NULL.
    pub fn opt_int(&self, i: usize) -> Result<Option<i64>, DbError> {
        match self.0.get(i) {
            Some(Value::Int(v)) => Ok(*v),
            Some(Value::Text(None)) => Ok(None),
            Some(Value::Text(Some(t))) => t
                .parse()
                .map(Some)
                .map_err(|_| DbError::Decode(format!("column {i} is not an integer"))),
            None => Err(DbError::Decode(format!("no column {i}"))),
        }
    }

    /// Column `i` as text.
    pub fn text(&self, i: usize) -> Result<String, DbError> {
        self.opt_text(i)?
            .ok_or_else(|| DbError::Decode(format!("column {i} is NULL")))
    }

    /// Column `i` as text, or `None` when NULL.
    pub fn opt_text(&self, i: usize) -> Result<Option<String>, DbError> {
        match self.0.get(i) {
            Some(Value::Text(t)) => Ok(t.clone()),
            Some(Value::Int(v)) => Ok(v.map(|v| v.to_string())),
            None => Err(DbError::Decode(format!("no column {i}"))),
        }
    }
}

/// Which SQL the database speaks, where the two differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// PostgreSQL (native, Hyperdrive, SQL over HTTP).
    Postgres,
    /// SQLite (the embedded default).
    Sqlite,
}

/// What a database call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// A unique constraint refused the write (an email already taken, a duplicate request id).
    #[error("unique constraint violated")]
    UniqueViolation,
    /// The database could not be reached or the call failed for a reason outside our SQL.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A value read back is not of the expected type.
    #[error("unexpected column value: {0}")]
    Decode(String),
    /// Any other database error (bad SQL is a bug).
    #[error("database error: {0}")]
    Other(String),
}

impl From<DbError> for crate::Error {
    fn from(err: DbError) -> Self {
        match err {
            DbError::Unavailable(detail) => crate::Error::Unavailable { detail },
            other => crate::Error::internal(other.to_string()),
        }
    }
}

/// A SQL database. Queries use `$1, $2, ...` placeholders in both dialects.
#[cfg_attr(not(target_family = "wasm"), async_trait::async_trait)]
#[cfg_attr(target_family = "wasm", async_trait::async_trait(?Send))]
pub trait Db: MaybeSendSync {
    /// Which dialect this database speaks.
    fn dialect(&self) -> Dialect;
    /// Runs a query and returns its rows.
    async fn query(&self, sql: &str, params: &[Value]) -> Result<Vec<Row>, DbError>;
    /// Runs a statement and returns the number of rows it affected.
    async fn execute(&self, sql: &str, params: &[Value]) -> Result<u64, DbError>;
}

// ---------------------------------------------------------------------------------------------
// Counters and caches (Redis, or in process)

/// One counter to check and bump in an [`Kv::admit`] call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Counter {
    /// The key (`ratelimit:{type}:{id}:{window}`).
    pub key: String,
    /// The most the counter may reach.
    pub limit: u64,
    /// How much this request adds.
    pub cost: u64,
    /// How long the key lives after its first increment (the window's remaining length).
    pub ttl_ms: u64,
    /// The value a missing key starts from (lifetime counters rebuilt from the database after
    /// the store lost them); 0 for windowed counters.
    pub seed: u64,
}

/// A correction to a counter after the fact (a reservation settled to the real amount).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Adjustment {
    /// The counter's key.
    pub key: String,
    /// What to add (negative to give back).
    pub delta: i64,
    /// The expiry to give the key if it no longer exists.
    pub ttl_ms: u64,
}

/// A precondition on an [`Kv::admit`] call: the key must hold exactly this value. The proxy uses
/// it to check, in the same round trip, that the share it has in memory is still the current one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Guard<'a> {
    /// The key to compare.
    pub key: &'a str,
    /// The value it must hold.
    pub value: &'a str,
}

/// The outcome of an [`Kv::admit`] call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Every counter had room; all were bumped. `values` are their new values, in order.
    Admitted { values: Vec<u64> },
    /// Counter `index` had no room; nothing was bumped. `value` is its current value.
    Refused { index: usize, value: u64 },
    /// The guard key did not hold the expected value; nothing was bumped.
    Stale,
}

/// Why a counter or cache call failed: the store is unreachable. Callers fail closed.
#[derive(Debug, thiserror::Error)]
#[error("counter store unavailable: {0}")]
pub struct KvError(pub String);

impl From<KvError> for crate::Error {
    fn from(err: KvError) -> Self {
        crate::Error::Unavailable { detail: err.0 }
    }
}

/// Shared counters and a small cache. In production this is Redis (shared by all replicas);
/// the embedded default keeps it in process.
#[cfg_attr(not(target_family = "wasm"), async_trait::async_trait)]
#[cfg_attr(target_family = "wasm", async_trait::async_trait(?Send))]
pub trait Kv: MaybeSendSync {
    /// Atomically: if the guard holds (when given) and every counter plus its cost stays within
    /// its limit, adds every cost and returns the new values; otherwise changes nothing and says
    /// why. A missing counter starts from its seed. One round trip to the store.
    async fn admit(
        &self,
        guard: Option<Guard<'_>>,
        counters: &[Counter],
    ) -> Result<Admission, KvError>;
    /// Applies corrections to counters, in one round trip.
    async fn settle(&self, adjustments: &[Adjustment]) -> Result<(), KvError>;
    /// Adds `delta` to a counter (creating it with `ttl_ms`), returning the new value.
    async fn add(&self, key: &str, delta: i64, ttl_ms: u64) -> Result<i64, KvError>;
    /// Reads a cached value.
    async fn get(&self, key: &str) -> Result<Option<String>, KvError>;
    /// Reads several values at once (one round trip where the store can), in the keys' order.
    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<String>>, KvError> {
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            out.push(self.get(key).await?);
        }
        Ok(out)
    }
    /// Caches a value for `ttl_ms`, replacing any value.
    async fn set(&self, key: &str, value: &str, ttl_ms: u64) -> Result<(), KvError>;
    /// Caches a value for `ttl_ms` unless the key holds one already. A cache fill uses this, so
    /// it can never overwrite what a concurrent write (a revocation, an update) put there.
    async fn set_if_absent(&self, key: &str, value: &str, ttl_ms: u64) -> Result<bool, KvError>;
    /// Removes keys.
    async fn delete(&self, keys: &[String]) -> Result<(), KvError>;
    /// Appends a value to the list at `key` (a queue; lists do not expire). Returns its length.
    async fn list_push(&self, key: &str, value: &str) -> Result<u64, KvError>;
    /// The first `n` values of the list at `key`, oldest first (empty when there is none).
    async fn list_front(&self, key: &str, n: usize) -> Result<Vec<String>, KvError>;
    /// Removes the first `n` values of the list at `key`.
    async fn list_drop_front(&self, key: &str, n: usize) -> Result<(), KvError>;
}

// ---------------------------------------------------------------------------------------------
// Outbound HTTP, time, randomness, usage events

/// Why an outbound request failed before a response arrived.
#[derive(Debug, thiserror::Error)]
#[error("outbound request failed: {0}")]
pub struct HttpError(pub String);

/// Outbound HTTP. Responses stream: the body is not read before `send` returns.
#[cfg_attr(not(target_family = "wasm"), async_trait::async_trait)]
#[cfg_attr(target_family = "wasm", async_trait::async_trait(?Send))]
pub trait HttpClient: MaybeSendSync {
    /// Sends a request to an absolute URI.
    async fn send(&self, request: http::Request<Body>) -> Result<http::Response<Body>, HttpError>;
}

/// The clock.
pub trait Clock: MaybeSendSync {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;
    /// A monotonic reading in microseconds, for measuring durations only.
    fn monotonic_us(&self) -> u64;
}

/// Randomness from the platform's CSPRNG.
pub trait Rng: MaybeSendSync {
    /// Fills `buf` with random bytes.
    fn fill(&self, buf: &mut [u8]);
}

/// Draws `N` random bytes from a [`Rng`].
pub fn random<const N: usize>(rng: &dyn Rng) -> [u8; N] {
    let mut out = [0u8; N];
    rng.fill(&mut out);
    out
}

/// Password hashing (argon2id: tens of milliseconds of CPU), run where it cannot stall the
/// handling of other requests: a bounded pool of blocking threads natively, the calling task on
/// the single-threaded wasm hosts.
#[cfg_attr(not(target_family = "wasm"), async_trait::async_trait)]
#[cfg_attr(target_family = "wasm", async_trait::async_trait(?Send))]
pub trait Passwords: MaybeSendSync {
    /// The PHC string to store for `password` ([`crate::crypto::password::hash`]).
    async fn hash(
        &self,
        password: crate::secret::SecretString,
        salt: [u8; crate::crypto::password::SALT_LEN],
    ) -> String;
    /// Whether `password` matches `stored` ([`crate::crypto::password::verify`]).
    async fn verify(&self, stored: String, password: crate::secret::SecretString) -> bool;
}

/// Where usage events go (a channel, a queue, a Redis list). Must not block: it is called when
/// a proxied stream ends, possibly from a destructor.
pub trait UsageSink: MaybeSendSync {
    /// Hands one event over for asynchronous writing.
    fn record(&self, event: UsageEvent);
}

/// Work to finish after the response (settling reservations): boxed, `Send` on native hosts.
#[cfg(not(target_family = "wasm"))]
pub type Deferred = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;
/// Work to finish after the response (wasm: no `Send` bound).
#[cfg(target_family = "wasm")]
pub type Deferred = std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>;

/// Runs work off the client's critical path: a spawned task natively, `ctx.waitUntil` on
/// Workers. Hosts finish deferred work before shutting down.
pub trait Defer: MaybeSendSync {
    /// Runs `work` in the background.
    fn defer(&self, work: Deferred);
    /// A future that completes after `ms` milliseconds (for watchdogs inside deferred work).
    fn sleep(&self, ms: u64) -> Deferred;
}
