//! The database port over sqlx: PostgreSQL (`DATABASE_URL`) and SQLite (the embedded default),
//! with the migrations from `migrations/` embedded at compile time.

use std::str::FromStr;
use std::time::Duration;

use feen_core::ports::{Db, DbError, Dialect, Row, Value};
use sqlx::postgres::{PgPoolOptions, PgRow};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Column, PgPool, Row as _, SqlitePool, TypeInfo, ValueRef};

static PG_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/postgres");
static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/sqlite");

/// PostgreSQL through a sqlx pool.
#[derive(Clone, Debug)]
pub struct PgDb {
    pool: PgPool,
}

impl PgDb {
    /// Connects a pool of up to `max` connections. `schema`, when given, is put first on the
    /// search path of every connection (tests isolate themselves this way).
    pub async fn connect(url: &str, max: u32, schema: Option<&str>) -> Result<Self, DbError> {
        let mut options = sqlx::postgres::PgConnectOptions::from_str(url).map_err(unavailable)?;
        if let Some(schema) = schema {
            options = options.options([("search_path", schema)]);
        }
        let pool = PgPoolOptions::new()
            .max_connections(max)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await
            .map_err(unavailable)?;
        Ok(Self { pool })
    }

    /// Applies the pending PostgreSQL migrations.
    pub async fn migrate(&self) -> Result<(), DbError> {
        PG_MIGRATIONS
            .run(&self.pool)
            .await
            .map_err(|e| DbError::Other(e.to_string()))
    }

    /// The underlying pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

/// SQLite through a sqlx pool, in WAL mode.
#[derive(Clone, Debug)]
pub struct SqliteDb {
    pool: SqlitePool,
}

impl SqliteDb {
    /// Opens (creating if missing) the database file at `path`.
    pub async fn open(path: &std::path::Path) -> Result<Self, DbError> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await
            .map_err(unavailable)?;
        Ok(Self { pool })
    }

    /// Applies the pending SQLite migrations.
    pub async fn migrate(&self) -> Result<(), DbError> {
        SQLITE_MIGRATIONS
            .run(&self.pool)
            .await
            .map_err(|e| DbError::Other(e.to_string()))
    }
}

/// Feen's SQL is written in `feen-store` from constant text; parameters always travel as
/// bind values, never spliced into the text.
fn sql_text(sql: &str) -> sqlx::AssertSqlSafe<String> {
    sqlx::AssertSqlSafe(sql.to_owned())
}

fn unavailable(err: sqlx::Error) -> DbError {
    DbError::Unavailable(err.to_string())
}

fn classify(err: sqlx::Error) -> DbError {
    match &err {
        sqlx::Error::Database(db) if db.is_unique_violation() => DbError::UniqueViolation,
        sqlx::Error::Database(_)
        | sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::ColumnNotFound(_) => DbError::Other(err.to_string()),
        _ => DbError::Unavailable(err.to_string()),
    }
}

/// Binds Feen's values for either driver: typed NULLs stay typed, so PostgreSQL never has to
/// guess a parameter's type.
fn bind<DB: sqlx::Database>(params: &[Value]) -> Result<DB::Arguments, DbError>
where
    for<'t> Option<i64>: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    for<'t> Option<String>: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
{
    use sqlx::Arguments;
    let mut args = DB::Arguments::default();
    for p in params {
        let bound = match p {
            Value::Int(v) => args.add(*v),
            Value::Text(v) => args.add(v.clone()),
        };
        bound.map_err(|e| DbError::Other(e.to_string()))?;
    }
    Ok(args)
}

fn pg_row(row: &PgRow) -> Result<Row, DbError> {
    let mut values = Vec::with_capacity(row.len());
    for (i, column) in row.columns().iter().enumerate() {
        let value = match column.type_info().name() {
            "INT8" => Value::Int(row.try_get::<Option<i64>, _>(i).map_err(classify)?),
            "INT4" => Value::Int(
                row.try_get::<Option<i32>, _>(i)
                    .map_err(classify)?
                    .map(i64::from),
            ),
            "INT2" => Value::Int(
                row.try_get::<Option<i16>, _>(i)
                    .map_err(classify)?
                    .map(i64::from),
            ),
            _ => Value::Text(row.try_get::<Option<String>, _>(i).map_err(classify)?),
        };
        values.push(value);
    }
    Ok(Row(values))
}

fn sqlite_row(row: &SqliteRow) -> Result<Row, DbError> {
    let mut values = Vec::with_capacity(row.len());
    for i in 0..row.len() {
        let raw = row.try_get_raw(i).map_err(classify)?;
        let value = if raw.is_null() {
            Value::Text(None)
        } else if raw.type_info().name() == "INTEGER" {
            Value::Int(Some(row.try_get::<i64, _>(i).map_err(classify)?))
        } else {
            Value::Text(Some(row.try_get::<String, _>(i).map_err(classify)?))
        };
        values.push(value);
    }
    Ok(Row(values))
}

#[async_trait::async_trait]
impl Db for PgDb {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    async fn query(&self, sql: &str, params: &[Value]) -> Result<Vec<Row>, DbError> {
        let rows = sqlx::query_with(sql_text(sql), bind::<sqlx::Postgres>(params)?)
            .fetch_all(&self.pool)
            .await
            .map_err(classify)?;
        rows.iter().map(pg_row).collect()
    }

    async fn execute(&self, sql: &str, params: &[Value]) -> Result<u64, DbError> {
        let done = sqlx::query_with(sql_text(sql), bind::<sqlx::Postgres>(params)?)
            .execute(&self.pool)
            .await
            .map_err(classify)?;
        Ok(done.rows_affected())
    }
}

#[async_trait::async_trait]
impl Db for SqliteDb {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    async fn query(&self, sql: &str, params: &[Value]) -> Result<Vec<Row>, DbError> {
        let rows = sqlx::query_with(sql_text(sql), bind::<sqlx::Sqlite>(params)?)
            .fetch_all(&self.pool)
            .await
            .map_err(classify)?;
        rows.iter().map(sqlite_row).collect()
    }

    async fn execute(&self, sql: &str, params: &[Value]) -> Result<u64, DbError> {
        let done = sqlx::query_with(sql_text(sql), bind::<sqlx::Sqlite>(params)?)
            .execute(&self.pool)
            .await
            .map_err(classify)?;
        Ok(done.rows_affected())
    }
}
