//! The counter store over the Upstash Redis REST protocol: each call is one `POST` of a command
//! array to the database URL, authenticated with a bearer token; scripts go as `EVALSHA`, with a
//! fall back to `EVAL` when the server has not seen them yet. No response encoding is asked for:
//! every value Feen stores is ASCII text.

use std::sync::Arc;

use bytes::Bytes;
use feen_core::Body;
use feen_core::ports::{Adjustment, Admission, Counter, Guard, HttpClient, Kv, KvError};
use http::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use serde_json::{Value as Json, json};

use crate::scripts::{ADD_SCRIPT, ADMIT_SCRIPT, SETTLE_SCRIPT, admission, sha1};

/// The most bytes of a REST response read (Feen's values are small).
const MAX_RESPONSE: usize = 1024 * 1024;

/// Feen's counter store on an Upstash-compatible REST endpoint.
pub struct UpstashKv {
    http: Arc<dyn HttpClient>,
    url: String,
    auth: HeaderValue,
    prefix: String,
    admit_sha: String,
    settle_sha: String,
    add_sha: String,
}

impl std::fmt::Debug for UpstashKv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstashKv")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// The reply to one command: its result, or the error Redis gave.
enum Reply {
    Result(Json),
    Error(String),
}

impl UpstashKv {
    /// A client for the REST endpoint at `url` with `token`; every key is stored under `prefix`.
    pub fn new(
        http: Arc<dyn HttpClient>,
        url: &str,
        token: &str,
        prefix: &str,
    ) -> Result<Self, KvError> {
        let mut auth = HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| KvError("the Upstash token is not a valid header value".into()))?;
        auth.set_sensitive(true);
        Ok(Self {
            http,
            url: url.trim_end_matches('/').to_owned(),
            auth,
            prefix: prefix.to_owned(),
            admit_sha: sha1(ADMIT_SCRIPT),
            settle_sha: sha1(SETTLE_SCRIPT),
            add_sha: sha1(ADD_SCRIPT),
        })
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    async fn command(&self, args: &[Json]) -> Result<Reply, KvError> {
        let body = serde_json::to_vec(args).map_err(|e| KvError(e.to_string()))?;
        let request = http::Request::post(format!("{}/", self.url))
            .header(AUTHORIZATION, self.auth.clone())
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .body(Body::Full(Bytes::from(body)))
            .map_err(|e| KvError(e.to_string()))?;
        let response = self.http.send(request).await.map_err(|e| KvError(e.0))?;
        let status = response.status();
        let bytes = response
            .into_body()
            .collect(MAX_RESPONSE)
            .await
            .map_err(|e| KvError(e.to_string()))?;
        let reply: Json = serde_json::from_slice(&bytes)
            .map_err(|_| KvError(format!("the REST endpoint answered {status} without JSON")))?;
        if let Some(error) = reply.get("error").and_then(Json::as_str) {
            // 400 carries Redis's own error (a script error, NOSCRIPT); anything else (401, 5xx)
            // means the store cannot be used.
            return if status == http::StatusCode::BAD_REQUEST {
                Ok(Reply::Error(error.to_owned()))
            } else {
                Err(KvError(format!(
                    "the REST endpoint answered {status}: {error}"
                )))
            };
        }
        if !status.is_success() {
            return Err(KvError(format!("the REST endpoint answered {status}")));
        }
        reply
            .get("result")
            .cloned()
            .map(Reply::Result)
            .ok_or_else(|| KvError("a reply without a result".into()))
    }

    /// Runs a command whose error is a failure.
    async fn run(&self, args: &[Json]) -> Result<Json, KvError> {
        match self.command(args).await? {
            Reply::Result(v) => Ok(v),
            Reply::Error(e) => Err(KvError(e)),
        }
    }

    /// Runs a script by digest, sending its source once when the server does not know it.
    async fn script(
        &self,
        sha: &str,
        source: &str,
        keys: Vec<String>,
        args: Vec<Json>,
    ) -> Result<Json, KvError> {
        let tail: Vec<Json> = std::iter::once(json!(keys.len()))
            .chain(keys.into_iter().map(Json::from))
            .chain(args)
            .collect();
        let mut call = vec![json!("EVALSHA"), json!(sha)];
        call.extend(tail.iter().cloned());
        match self.command(&call).await? {
            Reply::Result(v) => Ok(v),
            Reply::Error(e) if e.to_ascii_uppercase().contains("NOSCRIPT") => {
                let mut call = vec![json!("EVAL"), json!(source)];
                call.extend(tail);
                self.run(&call).await
            }
            Reply::Error(e) => Err(KvError(e)),
        }
    }
}

fn ints(value: &Json) -> Result<Vec<i64>, KvError> {
    value
        .as_array()
        .ok_or_else(|| KvError("a script reply that is not a list".into()))?
        .iter()
        .map(|v| {
            v.as_i64()
                .ok_or_else(|| KvError("a script reply that is not a list of integers".into()))
        })
        .collect()
}

#[cfg_attr(not(target_family = "wasm"), async_trait::async_trait)]
#[cfg_attr(target_family = "wasm", async_trait::async_trait(?Send))]
impl Kv for UpstashKv {
    async fn admit(
        &self,
        guard: Option<Guard<'_>>,
        counters: &[Counter],
    ) -> Result<Admission, KvError> {
        if counters.is_empty() && guard.is_none() {
            return Ok(Admission::Admitted { values: Vec::new() });
        }
        let mut keys = vec![self.key(guard.map_or("guard:none", |g| g.key))];
        let mut args = match guard {
            Some(g) => vec![json!("1"), json!(g.value)],
            None => vec![json!("0"), json!("")],
        };
        for c in counters {
            keys.push(self.key(&c.key));
            args.extend([
                json!(c.limit),
                json!(c.cost),
                json!(c.ttl_ms.max(1)),
                json!(c.seed),
            ]);
        }
        let reply = ints(
            &self
                .script(&self.admit_sha, ADMIT_SCRIPT, keys, args)
                .await?,
        )?;
        admission(&reply)
    }

    async fn settle(&self, adjustments: &[Adjustment]) -> Result<(), KvError> {
        if adjustments.is_empty() {
            return Ok(());
        }
        let keys = adjustments.iter().map(|a| self.key(&a.key)).collect();
        let args = adjustments
            .iter()
            .flat_map(|a| [json!(a.delta), json!(a.ttl_ms.max(1))])
            .collect();
        self.script(&self.settle_sha, SETTLE_SCRIPT, keys, args)
            .await
            .map(drop)
    }

    async fn add(&self, key: &str, delta: i64, ttl_ms: u64) -> Result<i64, KvError> {
        let reply = self
            .script(
                &self.add_sha,
                ADD_SCRIPT,
                vec![self.key(key)],
                vec![json!(delta), json!(ttl_ms.max(1))],
            )
            .await?;
        reply
            .as_i64()
            .ok_or_else(|| KvError("the add script did not answer an integer".into()))
    }

    async fn get(&self, key: &str) -> Result<Option<String>, KvError> {
        let reply = self.run(&[json!("GET"), json!(self.key(key))]).await?;
        Ok(match reply {
            Json::String(s) => Some(s),
            Json::Number(n) => Some(n.to_string()),
            _ => None,
        })
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<String>>, KvError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut command = vec![json!("MGET")];
        command.extend(keys.iter().map(|k| json!(self.key(k))));
        match self.run(&command).await? {
            Json::Array(values) if values.len() == keys.len() => Ok(values
                .into_iter()
                .map(|v| match v {
                    Json::String(s) => Some(s),
                    Json::Number(n) => Some(n.to_string()),
                    _ => None,
                })
                .collect()),
            _ => Err(KvError("MGET did not answer one value per key".into())),
        }
    }

    async fn set(&self, key: &str, value: &str, ttl_ms: u64) -> Result<(), KvError> {
        self.run(&[
            json!("SET"),
            json!(self.key(key)),
            json!(value),
            json!("PX"),
            json!(ttl_ms.max(1)),
        ])
        .await
        .map(drop)
    }

    async fn set_if_absent(&self, key: &str, value: &str, ttl_ms: u64) -> Result<bool, KvError> {
        let reply = self
            .run(&[
                json!("SET"),
                json!(self.key(key)),
                json!(value),
                json!("PX"),
                json!(ttl_ms.max(1)),
                json!("NX"),
            ])
            .await?;
        Ok(!reply.is_null())
    }

    async fn delete(&self, keys: &[String]) -> Result<(), KvError> {
        if keys.is_empty() {
            return Ok(());
        }
        let mut args = vec![json!("DEL")];
        args.extend(keys.iter().map(|k| json!(self.key(k))));
        self.run(&args).await.map(drop)
    }

    async fn list_push(&self, key: &str, value: &str) -> Result<u64, KvError> {
        let reply = self
            .run(&[json!("RPUSH"), json!(self.key(key)), json!(value)])
            .await?;
        reply
            .as_u64()
            .ok_or_else(|| KvError("RPUSH answered something other than a length".into()))
    }

    async fn list_front(&self, key: &str, n: usize) -> Result<Vec<String>, KvError> {
        if n == 0 {
            return Ok(Vec::new());
        }
        let reply = self
            .run(&[
                json!("LRANGE"),
                json!(self.key(key)),
                json!(0),
                json!(n - 1),
            ])
            .await?;
        reply
            .as_array()
            .ok_or_else(|| KvError("LRANGE answered something other than a list".into()))?
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| KvError("LRANGE answered a non-text value".into()))
            })
            .collect()
    }

    async fn list_drop_front(&self, key: &str, n: usize) -> Result<(), KvError> {
        self.run(&[json!("LTRIM"), json!(self.key(key)), json!(n), json!(-1)])
            .await
            .map(drop)
    }
}
