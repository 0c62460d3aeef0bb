//! The counter store and cache on Redis (RESP over TCP), shared by every `feen serve` process.
//! [`Kv::admit`] is one `EVALSHA` of [`ADMIT_SCRIPT`]: atomic across all replicas, one round trip.

use feen_core::ports::{Adjustment, Admission, Counter, Guard, Kv, KvError};
use redis::aio::ConnectionManager;

/// The admission script. `KEYS[1]` is the guard key (ignored unless `ARGV[1]` is `1`, in which
/// case it must hold `ARGV[2]`); `KEYS[i+1]` are the counters, each with four arguments from
/// `ARGV[4i-1]`: limit, cost, expiry in ms, seed. A missing counter with a seed starts from it.
/// Only if every counter has room are all bumped. Replies `{1, v1, v2, ...}` (new values),
/// `{0, index, value}` (the first counter without room) or `{2}` (the guard failed).
pub const ADMIT_SCRIPT: &str = r"
if ARGV[1] == '1' and redis.call('GET', KEYS[1]) ~= ARGV[2] then
  return {2}
end
local n = #KEYS - 1
for i = 1, n do
  local key, b = KEYS[i + 1], 4 * i - 1
  local raw = redis.call('GET', key)
  local value
  if raw then
    value = tonumber(raw)
  else
    value = tonumber(ARGV[b + 3])
    if value > 0 then redis.call('SET', key, value, 'PX', ARGV[b + 2]) end
  end
  if value + tonumber(ARGV[b + 1]) > tonumber(ARGV[b]) then
    return {0, i - 1, value}
  end
end
local out = {1}
for i = 1, n do
  local key, b = KEYS[i + 1], 4 * i - 1
  local cost = tonumber(ARGV[b + 1])
  local value = redis.call('INCRBY', key, cost)
  if redis.call('PTTL', key) < 0 then
    redis.call('PEXPIRE', key, ARGV[b + 2])
  end
  out[#out + 1] = value
end
return out
";

/// Applies corrections: `ARGV[2i-1]` added to `KEYS[i]`, a fresh key expiring in `ARGV[2i]` ms.
const SETTLE_SCRIPT: &str = r"
for i = 1, #KEYS do
  redis.call('INCRBY', KEYS[i], ARGV[2 * i - 1])
  if redis.call('PTTL', KEYS[i]) < 0 then redis.call('PEXPIRE', KEYS[i], ARGV[2 * i]) end
end
return #KEYS
";

/// Adds `ARGV[1]` to `KEYS[1]` and gives a fresh key the expiry `ARGV[2]` ms.
const ADD_SCRIPT: &str = r"
local value = redis.call('INCRBY', KEYS[1], ARGV[1])
if redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return value
";

/// Redis through a reconnecting connection manager (commands are pipelined over one
/// multiplexed connection).
#[derive(Clone)]
pub struct RedisKv {
    conn: ConnectionManager,
    prefix: String,
    admit: redis::Script,
    settle: redis::Script,
    add: redis::Script,
}

impl std::fmt::Debug for RedisKv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RedisKv")
    }
}

impl RedisKv {
    /// Connects to `url` (`redis://host:port/db`). Every key is stored under `prefix`, so several
    /// deployments (or test runs) can share one Redis.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, KvError> {
        let client = redis::Client::open(url).map_err(err)?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(std::time::Duration::from_secs(2)))
            .set_response_timeout(Some(std::time::Duration::from_secs(2)))
            .set_number_of_retries(1);
        let conn = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(err)?;
        Ok(Self {
            conn,
            prefix: prefix.to_owned(),
            admit: redis::Script::new(ADMIT_SCRIPT),
            settle: redis::Script::new(SETTLE_SCRIPT),
            add: redis::Script::new(ADD_SCRIPT),
        })
    }
}

impl RedisKv {
    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }
}

fn err(e: redis::RedisError) -> KvError {
    KvError(e.to_string())
}

fn unsigned(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

#[async_trait::async_trait]
impl Kv for RedisKv {
    async fn admit(
        &self,
        guard: Option<Guard<'_>>,
        counters: &[Counter],
    ) -> Result<Admission, KvError> {
        if counters.is_empty() && guard.is_none() {
            return Ok(Admission::Admitted { values: Vec::new() });
        }
        let mut invocation = self.admit.prepare_invoke();
        match guard {
            Some(g) => invocation.key(self.key(g.key)).arg("1").arg(g.value),
            None => invocation.key(self.key("guard:none")).arg("0").arg(""),
        };
        for c in counters {
            invocation
                .key(self.key(&c.key))
                .arg(c.limit)
                .arg(c.cost)
                .arg(c.ttl_ms.max(1))
                .arg(c.seed);
        }
        let mut conn = self.conn.clone();
        let reply: Vec<i64> = invocation.invoke_async(&mut conn).await.map_err(err)?;
        match reply.as_slice() {
            [1, values @ ..] => Ok(Admission::Admitted {
                values: values.iter().copied().map(unsigned).collect(),
            }),
            [2] => Ok(Admission::Stale),
            [0, index, value] => Ok(Admission::Refused {
                index: unsigned(*index) as usize,
                value: unsigned(*value),
            }),
            _ => Err(KvError("unexpected reply from the admit script".into())),
        }
    }

    async fn settle(&self, adjustments: &[Adjustment]) -> Result<(), KvError> {
        if adjustments.is_empty() {
            return Ok(());
        }
        let mut invocation = self.settle.prepare_invoke();
        for a in adjustments {
            invocation
                .key(self.key(&a.key))
                .arg(a.delta)
                .arg(a.ttl_ms.max(1));
        }
        let mut conn = self.conn.clone();
        let _: i64 = invocation.invoke_async(&mut conn).await.map_err(err)?;
        Ok(())
    }

    async fn add(&self, key: &str, delta: i64, ttl_ms: u64) -> Result<i64, KvError> {
        let mut conn = self.conn.clone();
        self.add
            .key(self.key(key))
            .arg(delta)
            .arg(ttl_ms.max(1))
            .invoke_async(&mut conn)
            .await
            .map_err(err)
    }

    async fn get(&self, key: &str) -> Result<Option<String>, KvError> {
        let mut conn = self.conn.clone();
        redis::cmd("GET")
            .arg(self.key(key))
            .query_async(&mut conn)
            .await
            .map_err(err)
    }

    async fn set(&self, key: &str, value: &str, ttl_ms: u64) -> Result<(), KvError> {
        let mut conn = self.conn.clone();
        redis::cmd("SET")
            .arg(self.key(key))
            .arg(value)
            .arg("PX")
            .arg(ttl_ms.max(1))
            .query_async(&mut conn)
            .await
            .map_err(err)
    }

    async fn set_if_absent(&self, key: &str, value: &str, ttl_ms: u64) -> Result<bool, KvError> {
        let mut conn = self.conn.clone();
        let reply: Option<String> = redis::cmd("SET")
            .arg(self.key(key))
            .arg(value)
            .arg("PX")
            .arg(ttl_ms.max(1))
            .arg("NX")
            .query_async(&mut conn)
            .await
            .map_err(err)?;
        Ok(reply.is_some())
    }

    async fn delete(&self, keys: &[String]) -> Result<(), KvError> {
        if keys.is_empty() {
            return Ok(());
        }
        let keys: Vec<String> = keys.iter().map(|k| self.key(k)).collect();
        let mut conn = self.conn.clone();
        redis::cmd("DEL")
            .arg(keys)
            .query_async(&mut conn)
            .await
            .map_err(err)
    }
}
