//! The counter store and cache on Redis (RESP over TCP), shared by every `feen serve` process.
//! [`Kv::admit`] is one `EVALSHA` of [`ADMIT_SCRIPT`]: atomic across all replicas, one round trip.

use feen_core::ports::{Adjustment, Admission, Counter, Guard, Kv, KvError};
use feen_upstash::scripts::{ADD_SCRIPT, ADMIT_SCRIPT, SETTLE_SCRIPT, admission};
use redis::aio::ConnectionManager;

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
        admission(&reply)
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

    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<String>>, KvError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.conn.clone();
        let mut cmd = redis::cmd("MGET");
        for key in keys {
            cmd.arg(self.key(key));
        }
        cmd.query_async(&mut conn).await.map_err(err)
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

    async fn list_push(&self, key: &str, value: &str) -> Result<u64, KvError> {
        let mut conn = self.conn.clone();
        redis::cmd("RPUSH")
            .arg(self.key(key))
            .arg(value)
            .query_async(&mut conn)
            .await
            .map_err(err)
    }

    async fn list_front(&self, key: &str, n: usize) -> Result<Vec<String>, KvError> {
        if n == 0 {
            return Ok(Vec::new());
        }
        let mut conn = self.conn.clone();
        redis::cmd("LRANGE")
            .arg(self.key(key))
            .arg(0)
            .arg(n - 1)
            .query_async(&mut conn)
            .await
            .map_err(err)
    }

    async fn list_drop_front(&self, key: &str, n: usize) -> Result<(), KvError> {
        let mut conn = self.conn.clone();
        redis::cmd("LTRIM")
            .arg(self.key(key))
            .arg(n)
            .arg(-1)
            .query_async(&mut conn)
            .await
            .map_err(err)
    }
}
