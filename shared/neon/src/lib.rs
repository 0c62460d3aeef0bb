//! PostgreSQL for Feen wherever only HTTP is available (Spin, or any host with fetch): the
//! [`Db`] port over Neon's serverless SQL-over-HTTP protocol, written over the core's
//! outbound-HTTP port. A query is one `POST /sql` of `{"query","params"}`; a transaction is one
//! `POST` of `{"queries":[…]}`, which the server runs between `BEGIN` and `COMMIT` (and rolls
//! back as a whole on any error). Values travel as PostgreSQL's text output.

use std::sync::Arc;

use bytes::Bytes;
use feen_core::Body;
use feen_core::ports::{Db, DbError, Dialect, HttpClient, Row, Value};
use http::header::{CONTENT_TYPE, HeaderValue};
use serde_json::{Value as Json, json};

/// The most bytes of a response read (Feen's queries return small results).
const MAX_RESPONSE: usize = 16 * 1024 * 1024;

/// PostgreSQL type ids read back as integers (int2, int4, int8).
const INTEGER_TYPES: [u64; 3] = [21, 23, 20];

/// A database behind a SQL-over-HTTP endpoint.
pub struct NeonDb {
    http: Arc<dyn HttpClient>,
    endpoint: String,
    connection: HeaderValue,
}

impl std::fmt::Debug for NeonDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NeonDb")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

/// Neon's endpoint for a connection string: the host with its first label replaced by `api`,
/// path `/sql` (`ep-x.us-east-2.aws.neon.tech` → `https://api.us-east-2.aws.neon.tech/sql`).
pub fn default_endpoint(connection_string: &str) -> Option<String> {
    let rest = connection_string.split_once("://")?.1;
    let host_port = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    let host = host_port.split(['/', '?', ':']).next()?;
    let (_, parent) = host.split_once('.')?;
    Some(format!("https://api.{parent}/sql"))
}

/// One statement of a transaction.
pub struct Statement<'a> {
    /// The SQL, with `$1, $2, …` placeholders.
    pub sql: &'a str,
    /// Its parameters.
    pub params: &'a [Value],
}

/// What one statement returned.
#[derive(Debug)]
pub struct Outcome {
    /// The rows (empty for writes without `RETURNING`).
    pub rows: Vec<Row>,
    /// The rows a write affected, or the rows a `SELECT` returned.
    pub count: u64,
}

impl NeonDb {
    /// A driver for the database at `connection_string` (`postgres://user:password@host/db`),
    /// reached at `endpoint` (`https://…/sql`; [`default_endpoint`] for Neon itself).
    pub fn new(
        http: Arc<dyn HttpClient>,
        endpoint: &str,
        connection_string: &str,
    ) -> Result<Self, DbError> {
        let mut connection = HeaderValue::from_str(connection_string).map_err(|_| {
            DbError::Unavailable("the connection string is not a valid header value".into())
        })?;
        connection.set_sensitive(true);
        Ok(Self {
            http,
            endpoint: endpoint.to_owned(),
            connection,
        })
    }

    /// Runs `statements` as one transaction: all of them, or none.
    pub async fn transaction(&self, statements: &[Statement<'_>]) -> Result<Vec<Outcome>, DbError> {
        let queries: Vec<Json> = statements
            .iter()
            .map(|s| json!({ "query": s.sql, "params": params(s.params) }))
            .collect();
        let reply = self.post(json!({ "queries": queries })).await?;
        reply
            .get("results")
            .and_then(Json::as_array)
            .ok_or_else(|| DbError::Decode("a transaction reply without results".into()))?
            .iter()
            .map(outcome)
            .collect()
    }

    async fn post(&self, body: Json) -> Result<Json, DbError> {
        let request = http::Request::post(&self.endpoint)
            .header("neon-connection-string", self.connection.clone())
            .header("neon-raw-text-output", "true")
            .header("neon-array-mode", "true")
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .body(Body::Full(Bytes::from(body.to_string())))
            .map_err(|e| DbError::Other(e.to_string()))?;
        let response = self
            .http
            .send(request)
            .await
            .map_err(|e| DbError::Unavailable(e.0))?;
        let status = response.status();
        let bytes = response
            .into_body()
            .collect(MAX_RESPONSE)
            .await
            .map_err(|e| DbError::Unavailable(e.to_string()))?;
        let reply: Json = serde_json::from_slice(&bytes).map_err(|_| {
            DbError::Unavailable(format!("the SQL endpoint answered {status} without JSON"))
        })?;
        if status.is_success() {
            return Ok(reply);
        }
        if status != http::StatusCode::BAD_REQUEST {
            return Err(DbError::Unavailable(format!(
                "the SQL endpoint answered {status}"
            )));
        }
        let code = reply.get("code").and_then(Json::as_str).unwrap_or("");
        let message = reply
            .get("message")
            .and_then(Json::as_str)
            .unwrap_or("no message");
        Err(classify(code, message))
    }
}

/// A PostgreSQL error by its SQLSTATE: a unique violation, a failure to reach or use the
/// database (connection exceptions, refused credentials, shutdowns, resources, or no SQLSTATE at
/// all: the endpoint's own refusal), or anything else.
fn classify(code: &str, message: &str) -> DbError {
    match code {
        "23505" => DbError::UniqueViolation,
        "" => DbError::Unavailable(message.to_owned()),
        c if ["08", "28", "53", "57P"]
            .iter()
            .any(|class| c.starts_with(class)) =>
        {
            DbError::Unavailable(format!("{c}: {message}"))
        }
        c => DbError::Other(format!("{c}: {message}")),
    }
}

/// Parameters as the official client sends them: text, or null.
fn params(values: &[Value]) -> Json {
    values
        .iter()
        .map(|v| match v {
            Value::Int(Some(i)) => Json::from(i.to_string()),
            Value::Text(Some(t)) => Json::from(t.as_str()),
            Value::Int(None) | Value::Text(None) => Json::Null,
        })
        .collect()
}

/// One result object as rows (integers for integer columns, text for the rest) and a count.
fn outcome(result: &Json) -> Result<Outcome, DbError> {
    let integer: Vec<bool> = result
        .get("fields")
        .and_then(Json::as_array)
        .map(|fields| {
            fields
                .iter()
                .map(|f| {
                    f.get("dataTypeID")
                        .and_then(Json::as_u64)
                        .is_some_and(|t| INTEGER_TYPES.contains(&t))
                })
                .collect()
        })
        .unwrap_or_default();
    let rows = result
        .get("rows")
        .and_then(Json::as_array)
        .ok_or_else(|| DbError::Decode("a result without rows".into()))?
        .iter()
        .map(|row| {
            let cells = row
                .as_array()
                .ok_or_else(|| DbError::Decode("a row that is not an array".into()))?;
            cells
                .iter()
                .enumerate()
                .map(|(i, cell)| {
                    let text = match cell {
                        Json::Null => None,
                        Json::String(s) => Some(s.clone()),
                        other => Some(other.to_string()),
                    };
                    if integer.get(i).copied().unwrap_or(false) {
                        text.map(|t| t.parse::<i64>())
                            .transpose()
                            .map(Value::Int)
                            .map_err(|_| DbError::Decode(format!("column {i} is not an integer")))
                    } else {
                        Ok(Value::Text(text))
                    }
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Row)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let count = result
        .get("rowCount")
        .and_then(Json::as_u64)
        .unwrap_or(rows.len() as u64);
    Ok(Outcome { rows, count })
}

#[cfg_attr(not(target_family = "wasm"), async_trait::async_trait)]
#[cfg_attr(target_family = "wasm", async_trait::async_trait(?Send))]
impl Db for NeonDb {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    async fn query(&self, sql: &str, values: &[Value]) -> Result<Vec<Row>, DbError> {
        let reply = self
            .post(json!({ "query": sql, "params": params(values) }))
            .await?;
        outcome(&reply).map(|o| o.rows)
    }

    async fn execute(&self, sql: &str, values: &[Value]) -> Result<u64, DbError> {
        let reply = self
            .post(json!({ "query": sql, "params": params(values) }))
            .await?;
        outcome(&reply).map(|o| o.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_endpoint_is_neons_api_host() {
        assert_eq!(
            default_endpoint("postgres://u:p@ep-x-123.us-east-2.aws.neon.tech/db?sslmode=require")
                .as_deref(),
            Some("https://api.us-east-2.aws.neon.tech/sql")
        );
        assert_eq!(default_endpoint("postgres://u:p@localhost/db"), None);
    }

    #[test]
    fn rows_decode_integers_by_column_type_and_keep_nulls() {
        let result = json!({
            "command": "SELECT", "rowCount": 2, "rowAsArray": true,
            "fields": [{"name": "n", "dataTypeID": 20}, {"name": "s", "dataTypeID": 25}],
            "rows": [["9007199254740993", "x"], [null, null]],
        });
        let out = outcome(&result).expect("decodes");
        assert_eq!(out.count, 2);
        assert_eq!(
            out.rows,
            vec![
                Row(vec![
                    Value::Int(Some(9_007_199_254_740_993)),
                    Value::Text(Some("x".into()))
                ]),
                Row(vec![Value::Int(None), Value::Text(None)]),
            ]
        );
        let bad = json!({"fields": [{"name": "n", "dataTypeID": 23}], "rows": [["x"]]});
        assert!(matches!(outcome(&bad), Err(DbError::Decode(_))));
    }

    #[test]
    fn errors_are_classified_by_sqlstate() {
        assert!(matches!(classify("23505", "dup"), DbError::UniqueViolation));
        assert!(matches!(classify("08006", "gone"), DbError::Unavailable(_)));
        assert!(matches!(
            classify("", "no password"),
            DbError::Unavailable(_)
        ));
        assert!(matches!(classify("42P01", "no table"), DbError::Other(_)));
    }
}
