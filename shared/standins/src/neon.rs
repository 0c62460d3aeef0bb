//! Neon's serverless SQL-over-HTTP protocol in front of a real PostgreSQL, as the official
//! `@neondatabase/serverless` client's `neon()` function speaks it: `POST /sql` with
//! `{"query","params"}` (autocommit) or `{"queries":[…]}` (one transaction, `Neon-Batch-*`
//! options echoed), `Neon-Connection-String` naming the database, `Neon-Raw-Text-Output` and
//! `Neon-Array-Mode`, and Postgres errors as a 400 with every error field.
//!
//! Each query is first parsed with the extended protocol (so a string holding several statements
//! is refused, and the parameter and column types are PostgreSQL's own), then run with its
//! parameters as untyped literals (`PREPARE`/`EXECUTE` over the simple protocol), which yields
//! PostgreSQL's text output for every type, as the real proxy returns it.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::{Map, Value as Json, json};
use tokio_postgres::types::Type;
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

/// The largest request body accepted (the real proxy's limit is 10 MiB).
const MAX_BODY: usize = 10 * 1024 * 1024;

/// Idle connections, per connection string.
#[derive(Clone, Default)]
struct Pool(Arc<Mutex<HashMap<String, Vec<Client>>>>);

impl Pool {
    async fn take(&self, dsn: &str) -> Result<Client, Failure> {
        let idle = self
            .0
            .lock()
            .ok()
            .and_then(|mut pools| pools.get_mut(dsn).and_then(Vec::pop));
        if let Some(client) = idle.filter(|c| !c.is_closed()) {
            return Ok(client);
        }
        let (client, connection) = tokio_postgres::connect(dsn, NoTls)
            .await
            .map_err(|e| Failure::from_pg(&e))?;
        tokio::spawn(connection);
        Ok(client)
    }

    fn give_back(&self, dsn: &str, client: Client) {
        if let Ok(mut pools) = self.0.lock() {
            pools.entry(dsn.to_owned()).or_default().push(client);
        }
    }
}

/// A failed request: the status and the error body (every Neon error field).
#[derive(Debug)]
struct Failure {
    status: StatusCode,
    fields: Map<String, Json>,
}

const ERROR_FIELDS: [&str; 17] = [
    "message",
    "code",
    "detail",
    "hint",
    "position",
    "internalPosition",
    "internalQuery",
    "severity",
    "where",
    "table",
    "column",
    "schema",
    "dataType",
    "constraint",
    "file",
    "line",
    "routine",
];

impl Failure {
    /// A failure that is not Postgres's: `code` and `severity` are empty.
    fn plain(status: StatusCode, message: &str) -> Self {
        let mut fields: Map<String, Json> = ERROR_FIELDS
            .iter()
            .map(|k| (k.to_string(), Json::Null))
            .collect();
        fields.insert("message".into(), message.into());
        fields.insert("code".into(), "".into());
        fields.insert("severity".into(), "".into());
        Self { status, fields }
    }

    /// A Postgres error with all its fields, or a connection failure.
    fn from_pg(err: &tokio_postgres::Error) -> Self {
        let Some(db) = err.as_db_error() else {
            return Self::plain(
                StatusCode::BAD_REQUEST,
                &format!("Couldn't connect to compute node: {err}"),
            );
        };
        let mut failure = Self::plain(StatusCode::BAD_REQUEST, db.message());
        let f = &mut failure.fields;
        let text = |v: Option<&str>| v.map_or(Json::Null, |v| v.into());
        f.insert("code".into(), db.code().code().into());
        f.insert("severity".into(), db.severity().into());
        f.insert("detail".into(), text(db.detail()));
        f.insert("hint".into(), text(db.hint()));
        f.insert("where".into(), text(db.where_()));
        f.insert("table".into(), text(db.table()));
        f.insert("column".into(), text(db.column()));
        f.insert("schema".into(), text(db.schema()));
        f.insert("dataType".into(), text(db.datatype()));
        f.insert("constraint".into(), text(db.constraint()));
        f.insert("file".into(), text(db.file()));
        f.insert("routine".into(), text(db.routine()));
        f.insert(
            "line".into(),
            db.line().map_or(Json::Null, |l| l.to_string().into()),
        );
        match db.position() {
            Some(tokio_postgres::error::ErrorPosition::Original(p)) => {
                f.insert("position".into(), p.to_string().into());
            }
            Some(tokio_postgres::error::ErrorPosition::Internal { position, query }) => {
                f.insert("internalPosition".into(), position.to_string().into());
                f.insert("internalQuery".into(), query.as_str().into());
            }
            None => {}
        }
        failure
    }

    fn response(self) -> Response<Full<Bytes>> {
        json_response(self.status, &Json::Object(self.fields), HeaderMap::new())
    }
}

fn json_response(status: StatusCode, body: &Json, extra: HeaderMap) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    resp.headers_mut()
        .insert("access-control-allow-origin", HeaderValue::from_static("*"));
    resp.headers_mut().extend(extra);
    resp
}

/// One query of a request.
struct Query {
    sql: String,
    params: Vec<Json>,
    array_mode: bool,
}

/// What a request asked for.
struct Options {
    raw_text: bool,
    array_mode: bool,
}

fn header_is_true(headers: &HeaderMap, name: &str) -> bool {
    headers.get(name).and_then(|v| v.to_str().ok()) == Some("true")
}

fn parse_query(value: &Json, array_mode: bool) -> Result<Query, Failure> {
    let bad = || Failure::plain(StatusCode::BAD_REQUEST, "request body is not a valid query");
    let sql = value.get("query").and_then(Json::as_str).ok_or_else(bad)?;
    let params = match value.get("params") {
        None | Some(Json::Null) => Vec::new(),
        Some(Json::Array(params)) => params.clone(),
        Some(_) => return Err(bad()),
    };
    let array_mode = value
        .get("arrayMode")
        .and_then(Json::as_bool)
        .unwrap_or(array_mode);
    Ok(Query {
        sql: sql.to_owned(),
        params,
        array_mode,
    })
}

/// A JSON parameter as the text PostgreSQL receives: strings as they are; booleans, numbers and
/// objects as their JSON text; arrays as PostgreSQL array literals.
fn param_text(value: &Json) -> Option<String> {
    match value {
        Json::Null => None,
        Json::String(s) => Some(s.clone()),
        Json::Array(items) => Some(array_literal(items)),
        other => Some(other.to_string()),
    }
}

fn array_literal(items: &[Json]) -> String {
    let inner: Vec<String> = items
        .iter()
        .map(|item| match item {
            Json::Null => "NULL".to_owned(),
            Json::Array(nested) => array_literal(nested),
            other => {
                let text = param_text(other).unwrap_or_default();
                format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
            }
        })
        .collect();
    format!("{{{}}}", inner.join(","))
}

/// A string as an SQL literal (standard-conforming strings: only quotes are doubled).
fn literal(text: Option<String>) -> String {
    match text {
        None => "NULL".to_owned(),
        Some(t) => format!("'{}'", t.replace('\'', "''")),
    }
}

/// The byte size `pg` reports for a type (`-1` for variable-length types).
fn type_size(ty: &Type) -> i64 {
    match *ty {
        Type::BOOL | Type::CHAR => 1,
        Type::INT2 => 2,
        Type::INT4 | Type::FLOAT4 | Type::OID | Type::DATE => 4,
        Type::INT8 | Type::FLOAT8 | Type::TIMESTAMP | Type::TIMESTAMPTZ | Type::TIME => 8,
        Type::UUID => 16,
        _ => -1,
    }
}

/// A text cell as the proxy sends it without raw text output: booleans, small integers and
/// floats as JSON values, JSON parsed; everything else as text.
fn typed_cell(ty: &Type, text: &str) -> Json {
    match *ty {
        Type::BOOL => Json::Bool(text == "t"),
        Type::INT2 | Type::INT4 => text.parse::<i64>().map_or_else(|_| text.into(), Json::from),
        Type::FLOAT4 | Type::FLOAT8 => text
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .map_or_else(|| text.into(), Json::from),
        Type::JSON | Type::JSONB => serde_json::from_str(text).unwrap_or_else(|_| text.into()),
        _ => text.into(),
    }
}

/// Commands whose tag carries a row count.
const COUNTED: [&str; 8] = [
    "SELECT", "INSERT", "UPDATE", "DELETE", "MERGE", "MOVE", "FETCH", "COPY",
];

/// The first keyword of a statement (after whitespace, comments and opening parentheses).
fn command_word(sql: &str) -> String {
    let mut rest = sql;
    loop {
        rest = rest.trim_start_matches(|c: char| c.is_whitespace() || c == '(');
        if let Some(after) = rest.strip_prefix("--") {
            rest = after.split_once('\n').map_or("", |(_, r)| r);
        } else if let Some(after) = rest.strip_prefix("/*") {
            rest = after.split_once("*/").map_or("", |(_, r)| r);
        } else {
            break;
        }
    }
    rest.chars()
        .take_while(char::is_ascii_alphabetic)
        .collect::<String>()
        .to_ascii_uppercase()
}

/// Runs one query on `client` and returns its result object.
async fn run(client: &Client, query: &Query, options: &Options, seq: u64) -> Result<Json, Failure> {
    // Parse (extended protocol): one statement only, and its parameter and column types.
    let stmt = client
        .prepare(&query.sql)
        .await
        .map_err(|e| Failure::from_pg(&e))?;
    if stmt.params().len() != query.params.len() {
        let mut failure = Failure::plain(
            StatusCode::BAD_REQUEST,
            &format!(
                "bind message supplies {} parameters, but prepared statement \"\" requires {}",
                query.params.len(),
                stmt.params().len()
            ),
        );
        failure.fields.insert("code".into(), "08P01".into());
        failure.fields.insert("severity".into(), "ERROR".into());
        return Err(failure);
    }
    let messages = if query.params.is_empty() {
        client.simple_query(&query.sql).await
    } else {
        let name = format!("neon_standin_{seq}");
        let args: Vec<String> = query
            .params
            .iter()
            .map(|p| literal(param_text(p)))
            .collect();
        client
            .simple_query(&format!("PREPARE {name} AS {}", query.sql))
            .await
            .map_err(|e| Failure::from_pg(&e))?;
        let result = client
            .simple_query(&format!("EXECUTE {name}({})", args.join(",")))
            .await;
        if result.is_ok() {
            client
                .simple_query(&format!("DEALLOCATE {name}"))
                .await
                .map_err(|e| Failure::from_pg(&e))?;
        }
        result
    }
    .map_err(|e| Failure::from_pg(&e))?;

    let columns = stmt.columns();
    let mut rows = Vec::new();
    let mut count = None;
    for message in messages {
        match message {
            SimpleQueryMessage::Row(row) => {
                let cells = (0..row.len()).map(|i| {
                    let text = row.get(i);
                    match (text, options.raw_text) {
                        (None, _) => Json::Null,
                        (Some(t), true) => t.into(),
                        (Some(t), false) => columns
                            .get(i)
                            .map_or(t.into(), |c| typed_cell(c.type_(), t)),
                    }
                });
                rows.push(if query.array_mode {
                    Json::Array(cells.collect())
                } else {
                    Json::Object(
                        columns
                            .iter()
                            .map(|c| c.name().to_owned())
                            .zip(cells)
                            .collect(),
                    )
                });
            }
            SimpleQueryMessage::CommandComplete(n) => count = Some(n),
            _ => {}
        }
    }
    let fields: Vec<Json> = columns
        .iter()
        .map(|c| {
            json!({
                "name": c.name(),
                "dataTypeID": c.type_().oid(),
                "tableID": c.table_oid().unwrap_or(0),
                "columnID": c.column_id().unwrap_or(0),
                "dataTypeSize": type_size(c.type_()),
                "dataTypeModifier": c.type_modifier(),
                "format": "text",
            })
        })
        .collect();
    let command = command_word(&query.sql);
    let row_count = if COUNTED.contains(&command.as_str()) {
        count.map_or(Json::Null, Json::from)
    } else {
        Json::Null
    };
    Ok(json!({
        "command": command,
        "rowCount": row_count,
        "rowAsArray": query.array_mode,
        "fields": fields,
        "rows": rows,
    }))
}

/// The `BEGIN` of a batch, from its `Neon-Batch-*` headers.
fn begin(headers: &HeaderMap) -> Result<String, Failure> {
    let mut sql = "BEGIN".to_owned();
    if let Some(level) = headers.get("neon-batch-isolation-level") {
        let level = match level.to_str().unwrap_or("") {
            "ReadUncommitted" => "READ UNCOMMITTED",
            "ReadCommitted" => "READ COMMITTED",
            "RepeatableRead" => "REPEATABLE READ",
            "Serializable" => "SERIALIZABLE",
            other => {
                return Err(Failure::plain(
                    StatusCode::BAD_REQUEST,
                    &format!("invalid isolation level: {other}"),
                ));
            }
        };
        sql.push_str(" ISOLATION LEVEL ");
        sql.push_str(level);
    }
    if header_is_true(headers, "neon-batch-read-only") {
        sql.push_str(" READ ONLY");
    }
    if header_is_true(headers, "neon-batch-deferrable") {
        sql.push_str(" DEFERRABLE");
    }
    Ok(sql)
}

/// The state shared by every request.
#[derive(Clone, Default)]
struct State {
    pool: Pool,
    seq: Arc<std::sync::atomic::AtomicU64>,
}

impl State {
    fn next(&self) -> u64 {
        self.seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }
}

/// The connection string, checked as the real proxy checks it (a password is required).
fn connection_string(headers: &HeaderMap) -> Result<String, Failure> {
    let dsn = headers
        .get("neon-connection-string")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            Failure::plain(
                StatusCode::BAD_REQUEST,
                "missing connection string (Neon-Connection-String)",
            )
        })?;
    let rest = dsn
        .strip_prefix("postgresql://")
        .or_else(|| dsn.strip_prefix("postgres://"))
        .ok_or_else(|| {
            Failure::plain(StatusCode::BAD_REQUEST, "invalid connection string scheme")
        })?;
    let userinfo = rest.split_once('@').map(|(u, _)| u).unwrap_or("");
    if !userinfo.contains(':') || userinfo.ends_with(':') {
        return Err(Failure::plain(
            StatusCode::BAD_REQUEST,
            "missing authentication credentials: required password",
        ));
    }
    Ok(dsn.to_owned())
}

async fn handle(
    req: http::Request<hyper::body::Incoming>,
    state: State,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    if parts.uri.path() != "/sql" {
        return Ok(Failure::plain(StatusCode::BAD_REQUEST, "unknown path").response());
    }
    if parts.method == Method::OPTIONS {
        let mut resp = Response::new(Full::new(Bytes::new()));
        let h = resp.headers_mut();
        h.insert("access-control-allow-origin", HeaderValue::from_static("*"));
        h.insert(
            "access-control-allow-headers",
            HeaderValue::from_static(
                "Authorization, Neon-Connection-String, Neon-Raw-Text-Output, Neon-Array-Mode, \
                 Neon-Pool-Opt-In, Neon-Batch-Read-Only, Neon-Batch-Isolation-Level, \
                 Neon-Batch-Deferrable",
            ),
        );
        h.insert("access-control-max-age", HeaderValue::from_static("86400"));
        return Ok(resp);
    }
    if parts.method != Method::POST {
        return Ok(Failure::plain(StatusCode::BAD_REQUEST, "only POST is supported").response());
    }
    let bytes = match http_body_util::Limited::new(body, MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return Ok(
                Failure::plain(StatusCode::PAYLOAD_TOO_LARGE, "request is too large").response(),
            );
        }
    };
    Ok(match answer(&parts.headers, &bytes, &state).await {
        Ok((body, headers)) => json_response(StatusCode::OK, &body, headers),
        Err(failure) => failure.response(),
    })
}

async fn answer(
    headers: &HeaderMap,
    bytes: &[u8],
    state: &State,
) -> Result<(Json, HeaderMap), Failure> {
    let dsn = connection_string(headers)?;
    let options = Options {
        raw_text: header_is_true(headers, "neon-raw-text-output"),
        array_mode: header_is_true(headers, "neon-array-mode"),
    };
    let body: Json = serde_json::from_slice(bytes)
        .map_err(|_| Failure::plain(StatusCode::BAD_REQUEST, "request body is not JSON"))?;
    let client = state.pool.take(&dsn).await?;
    let result = match body.get("queries") {
        None => {
            let query = parse_query(&body, options.array_mode)?;
            run(&client, &query, &options, state.next())
                .await
                .map(|r| (r, HeaderMap::new()))
        }
        Some(Json::Array(items)) => {
            let queries = items
                .iter()
                .map(|q| parse_query(q, options.array_mode))
                .collect::<Result<Vec<_>, _>>()?;
            batch(&client, &queries, &options, headers, state).await
        }
        Some(_) => Err(Failure::plain(
            StatusCode::BAD_REQUEST,
            "request body is not a valid batch",
        )),
    };
    // A connection that saw an error may hold an aborted transaction or a leftover statement.
    if result.is_ok() {
        state.pool.give_back(&dsn, client);
    }
    result
}

async fn batch(
    client: &Client,
    queries: &[Query],
    options: &Options,
    headers: &HeaderMap,
    state: &State,
) -> Result<(Json, HeaderMap), Failure> {
    client
        .simple_query(&begin(headers)?)
        .await
        .map_err(|e| Failure::from_pg(&e))?;
    let mut results = Vec::with_capacity(queries.len());
    for query in queries {
        match run(client, query, options, state.next()).await {
            Ok(result) => results.push(result),
            Err(failure) => {
                let _ = client.simple_query("ROLLBACK").await;
                return Err(failure);
            }
        }
    }
    client
        .simple_query("COMMIT")
        .await
        .map_err(|e| Failure::from_pg(&e))?;
    let echoed = headers
        .iter()
        .filter(|(name, _)| name.as_str().starts_with("neon-batch-"))
        .map(|(n, v)| (n.clone(), v.clone()))
        .collect();
    Ok((json!({ "results": results }), echoed))
}

/// Starts the stand-in on `listen` (port 0: any free port). Each request names its database in
/// `Neon-Connection-String`; connections are pooled per connection string. Returns the address
/// it listens on; the endpoint is `http://ADDR/sql`.
pub async fn spawn(listen: &str) -> std::io::Result<std::net::SocketAddr> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let state = State::default();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let state = state.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| handle(req, state.clone()));
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, service)
                    .await;
            });
        }
    });
    Ok(addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_become_the_text_postgres_receives() {
        assert_eq!(param_text(&json!("x")), Some("x".into()));
        assert_eq!(param_text(&json!(1.5)), Some("1.5".into()));
        assert_eq!(param_text(&json!(true)), Some("true".into()));
        assert_eq!(param_text(&json!({"a": 1})), Some("{\"a\":1}".into()));
        assert_eq!(param_text(&Json::Null), None);
        assert_eq!(
            param_text(&json!(["1", "a\"b", null, ["2", "3"]])),
            Some("{\"1\",\"a\\\"b\",NULL,{\"2\",\"3\"}}".into())
        );
        assert_eq!(literal(Some("it's".into())), "'it''s'");
        assert_eq!(literal(None), "NULL");
    }

    #[test]
    fn the_command_is_the_first_keyword() {
        assert_eq!(command_word("  select 1"), "SELECT");
        assert_eq!(command_word("-- c\n/* d */ (SELECT 1)"), "SELECT");
        assert_eq!(command_word("insert into t values (1)"), "INSERT");
    }
}
