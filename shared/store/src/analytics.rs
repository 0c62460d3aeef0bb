//! Usage rollups and the analytics queries over them. Raw usage events are rolled up per UTC
//! hour (from the events) and per UTC day (from the hours), per share and model; every rollup
//! row is recomputed from what it summarises with an upsert, so the aggregation job is safe to
//! run twice or concurrently. Billing months are rolled up from the days.
//!
//! A query reads rollups before a cut (the end of what is rolled up, at most the start of
//! today) and raw events after it, and adds them up in Rust; both give the same figures.

use std::collections::BTreeMap;

use feen_core::analytics::{DAY_MS, Figures, GroupBy, LATENCY_BOUNDS_MS, LATENCY_BUCKETS};
use feen_core::ports::{Db, DbError, Row, Value};
use feen_core::timefmt::to_rfc3339;

/// The mark below which every hour is rolled up.
pub const ROLLED_TO: &str = "usage_rolled_to";
/// The mark below which raw events were deleted (only rollups remain).
pub const HORIZON: &str = "usage_horizon";

/// The figure columns of a rollup row, in the order of [`Figures`].
fn figure_columns() -> Vec<String> {
    let mut cols: Vec<String> = [
        "requests",
        "errors",
        "rate_limited",
        "refused",
        "input_tokens",
        "output_tokens",
        "cost_micros",
        "unpriced",
    ]
    .map(str::to_owned)
    .to_vec();
    cols.extend((0..LATENCY_BUCKETS).map(|i| format!("lat_{i}")));
    cols
}

/// The same figures computed from raw usage events, in the same order.
fn raw_aggregates() -> Vec<String> {
    const FORWARDED: &str = "outcome <> 'refused'";
    let count = |cond: &str| {
        format!("CAST(COALESCE(SUM(CASE WHEN {cond} THEN 1 ELSE 0 END), 0) AS BIGINT)")
    };
    let sum = |expr: &str| format!("CAST(COALESCE(SUM({expr}), 0) AS BIGINT)");
    let mut exprs = vec![
        count(FORWARDED),
        count(&format!(
            "{FORWARDED} AND (status >= 400 OR status = 0 OR outcome = 'upstream_error')"
        )),
        count("outcome = 'refused' AND status = 429"),
        count("outcome = 'refused'"),
        sum("input_tokens"),
        sum("output_tokens"),
        sum("COALESCE(cost_micros, 0)"),
        count(&format!("{FORWARDED} AND cost_micros IS NULL")),
    ];
    let mut low: Option<u64> = None;
    for bound in LATENCY_BOUNDS_MS {
        let above = low.map_or(String::new(), |l| format!(" AND duration_ms > {l}"));
        exprs.push(count(&format!(
            "{FORWARDED}{above} AND duration_ms <= {bound}"
        )));
        low = Some(bound);
    }
    let last = LATENCY_BOUNDS_MS[LATENCY_BOUNDS_MS.len() - 1];
    exprs.push(count(&format!("{FORWARDED} AND duration_ms > {last}")));
    exprs
}

/// Figures read from columns `first..` of a row.
fn figures_at(row: &Row, first: usize) -> Result<Figures, DbError> {
    let n = |i: usize| row.int(first + i).map(|v| u64::try_from(v).unwrap_or(0));
    let mut latency = [0; LATENCY_BUCKETS];
    for (i, slot) in latency.iter_mut().enumerate() {
        *slot = n(8 + i)?;
    }
    Ok(Figures {
        requests: n(0)?,
        errors: n(1)?,
        rate_limited: n(2)?,
        refused: n(3)?,
        input_tokens: n(4)?,
        output_tokens: n(5)?,
        cost_micros: n(6)?,
        unpriced: n(7)?,
        latency,
    })
}

/// A job mark's value.
pub async fn mark(db: &dyn Db, name: &str) -> Result<Option<i64>, DbError> {
    let rows = db
        .query(
            "SELECT value FROM job_marks WHERE name = $1",
            &[name.into()],
        )
        .await?;
    rows.first().map(|r| r.int(0)).transpose()
}

/// Moves a job mark forward to `value` (never back: concurrent runs may finish in any order).
pub async fn advance_mark(db: &dyn Db, name: &str, value: i64) -> Result<(), DbError> {
    db.execute(
        "INSERT INTO job_marks (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET \
         value = CASE WHEN excluded.value > job_marks.value THEN excluded.value ELSE job_marks.value END",
        &[name.into(), value.into()],
    )
    .await
    .map(drop)
}

/// Where a query at `now` takes rollups and where raw events: what the job rolled up, at most
/// the start of today (today is always read live).
pub async fn cut(db: &dyn Db, now: i64) -> Result<i64, DbError> {
    let rolled = mark(db, ROLLED_TO).await?.unwrap_or(i64::MIN);
    Ok(rolled.min(feen_core::analytics::day_floor(now)))
}

/// When the oldest raw usage event started, if there is one.
pub async fn earliest_event(db: &dyn Db) -> Result<Option<i64>, DbError> {
    let rows = db
        .query("SELECT MIN(started_at) FROM usage_events", &[])
        .await?;
    Ok(rows.first().map(|r| r.opt_int(0)).transpose()?.flatten())
}

fn upsert_tail(conflict: &str, columns: &[String]) -> String {
    let sets: Vec<String> = columns
        .iter()
        .map(|c| format!("{c} = excluded.{c}"))
        .collect();
    format!(
        " ON CONFLICT ({conflict}) DO UPDATE SET {}",
        sets.join(", ")
    )
}

/// Recomputes the hourly rollups of the hours in `[from, to)` (hour-aligned) from the raw
/// events. Returns how many rollup rows were written.
pub async fn roll_hours(db: &dyn Db, from: i64, to: i64) -> Result<u64, DbError> {
    let columns = figure_columns();
    let sql = format!(
        "INSERT INTO usage_rollups (period, bucket_start, share_id, model, api_key_id, owner_id, {cols}) \
         SELECT 'hour', (started_at / 3600000) * 3600000, share_id, COALESCE(model, ''), MIN(api_key_id), \
         MIN(COALESCE(team_id, user_id)), {aggs} FROM usage_events WHERE started_at >= $1 AND started_at < $2 \
         GROUP BY (started_at / 3600000) * 3600000, share_id, COALESCE(model, ''){tail}",
        cols = columns.join(", "),
        aggs = raw_aggregates().join(", "),
        tail = upsert_tail("period, bucket_start, share_id, model", &columns),
    );
    db.execute(&sql, &[from.into(), to.into()]).await
}

/// Recomputes the daily rollups of the days in `[from, to)` (day-aligned) from the hourly ones.
pub async fn roll_days(db: &dyn Db, from: i64, to: i64) -> Result<u64, DbError> {
    let columns = figure_columns();
    let sums: Vec<String> = columns
        .iter()
        .map(|c| format!("CAST(SUM({c}) AS BIGINT)"))
        .collect();
    let sql = format!(
        "INSERT INTO usage_rollups (period, bucket_start, share_id, model, api_key_id, owner_id, {cols}) \
         SELECT 'day', (bucket_start / {DAY_MS}) * {DAY_MS}, share_id, model, MIN(api_key_id), MIN(owner_id), {sums} \
         FROM usage_rollups WHERE period = 'hour' AND bucket_start >= $1 AND bucket_start < $2 \
         GROUP BY (bucket_start / {DAY_MS}) * {DAY_MS}, share_id, model{tail}",
        cols = columns.join(", "),
        sums = sums.join(", "),
        tail = upsert_tail("period, bucket_start, share_id, model", &columns),
    );
    db.execute(&sql, &[from.into(), to.into()]).await
}

/// Recomputes the billing rows of one month (`[from, to)`, labelled `month` as `YYYY-MM`) from
/// the daily rollups.
pub async fn roll_billing(db: &dyn Db, month: &str, from: i64, to: i64) -> Result<u64, DbError> {
    let columns: Vec<String> = ["api_key_id", "requests", "cost_micros", "unpriced"]
        .map(str::to_owned)
        .to_vec();
    let sql = format!(
        "INSERT INTO billing_months (owner_id, month, share_id, api_key_id, requests, cost_micros, unpriced) \
         SELECT owner_id, CAST($3 AS TEXT), share_id, MIN(api_key_id), CAST(SUM(requests) AS BIGINT), \
         CAST(SUM(cost_micros) AS BIGINT), CAST(SUM(unpriced) AS BIGINT) FROM usage_rollups \
         WHERE period = 'day' AND bucket_start >= $1 AND bucket_start < $2 GROUP BY owner_id, share_id{}",
        upsert_tail("owner_id, month, share_id", &columns),
    );
    db.execute(&sql, &[from.into(), to.into(), month.into()])
        .await
}

/// One owner's billing row for a month and share.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BillingRow {
    /// The key the share spends.
    pub key: String,
    /// The share.
    pub share: String,
    /// Requests forwarded.
    pub requests: u64,
    /// Cost in micro-USD.
    pub cost_micros: u64,
    /// Requests without a known price.
    pub unpriced: u64,
}

/// An owner's billing rows for a month.
pub async fn billing(db: &dyn Db, owner: &str, month: &str) -> Result<Vec<BillingRow>, DbError> {
    let rows = db
        .query(
            "SELECT api_key_id, share_id, requests, cost_micros, unpriced FROM billing_months \
             WHERE owner_id = $1 AND month = $2 ORDER BY share_id",
            &[owner.into(), month.into()],
        )
        .await?;
    crate::decode(rows, |r| {
        let n = |i| r.int(i).map(|v| u64::try_from(v).unwrap_or(0));
        Ok(BillingRow {
            key: r.text(0)?,
            share: r.text(1)?,
            requests: n(2)?,
            cost_micros: n(3)?,
            unpriced: n(4)?,
        })
    })
}

/// Deletes raw usage events that started before `before` (the caller makes sure they are
/// rolled up). Returns how many were deleted.
pub async fn expire_events(db: &dyn Db, before: i64) -> Result<u64, DbError> {
    db.execute(
        "DELETE FROM usage_events WHERE started_at < $1",
        &[before.into()],
    )
    .await
}

/// What an analytics query asks.
#[derive(Clone, Debug)]
pub struct Query<'a> {
    /// The owners whose usage is included (user and team ids).
    pub owners: &'a [String],
    /// Only this key.
    pub key: Option<&'a str>,
    /// Only this share.
    pub share: Option<&'a str>,
    /// Only this model.
    pub model: Option<&'a str>,
    /// The grouping.
    pub group: GroupBy,
    /// From (hour-aligned, inclusive).
    pub from: i64,
    /// To (hour-aligned, exclusive).
    pub to: i64,
}

/// A statement under construction with numbered parameters.
struct Sql {
    text: String,
    params: Vec<Value>,
}

impl Sql {
    fn param(&mut self, value: Value) -> String {
        self.params.push(value);
        format!("${}", self.params.len())
    }

    /// `AND <column> IN (...owners) AND` the optional filters.
    fn filters(&mut self, q: &Query<'_>, owner: &str, model: &str) {
        let owners: Vec<String> = q
            .owners
            .iter()
            .map(|o| self.param(o.as_str().into()))
            .collect();
        let owners = if owners.is_empty() {
            "NULL".to_owned()
        } else {
            owners.join(", ")
        };
        let key = self.param(q.key.into());
        let share = self.param(q.share.into());
        let m = self.param(q.model.into());
        self.text.push_str(&format!(
            " AND {owner} IN ({owners}) AND (CAST({key} AS TEXT) IS NULL OR api_key_id = {key}) \
             AND (CAST({share} AS TEXT) IS NULL OR share_id = {share}) \
             AND (CAST({m} AS TEXT) IS NULL OR {model} = {m})"
        ));
    }
}

/// The SQL expression a grouping groups rows of a source by.
fn group_expr(group: GroupBy, time: &str, model: &str, owner: &str) -> String {
    match group {
        GroupBy::Hour => format!("({time} / 3600000) * 3600000"),
        GroupBy::Day => format!("({time} / {DAY_MS}) * {DAY_MS}"),
        GroupBy::Model => model.to_owned(),
        GroupBy::Key => "api_key_id".to_owned(),
        GroupBy::Share => "share_id".to_owned(),
        GroupBy::Team => owner.to_owned(),
    }
}

fn group_key(group: GroupBy, row: &Row) -> Result<String, DbError> {
    match group {
        GroupBy::Hour | GroupBy::Day => Ok(to_rfc3339(row.int(0)?)),
        _ => Ok(row.opt_text(0)?.unwrap_or_default()),
    }
}

fn merge(
    into: &mut BTreeMap<String, Figures>,
    group: GroupBy,
    rows: &[Row],
) -> Result<(), DbError> {
    for row in rows {
        into.entry(group_key(group, row)?)
            .or_default()
            .add(&figures_at(row, 1)?);
    }
    Ok(())
}

/// Adds the raw events of `[from, to)` to `into`.
async fn from_events(
    db: &dyn Db,
    q: &Query<'_>,
    from: i64,
    to: i64,
    into: &mut BTreeMap<String, Figures>,
) -> Result<(), DbError> {
    let (owner, model) = ("COALESCE(team_id, user_id)", "COALESCE(model, '')");
    let expr = group_expr(q.group, "started_at", model, owner);
    let mut sql = Sql {
        text: String::new(),
        params: vec![from.into(), to.into()],
    };
    sql.text = format!(
        "SELECT {expr}, {} FROM usage_events WHERE started_at >= $1 AND started_at < $2",
        raw_aggregates().join(", ")
    );
    sql.filters(q, owner, model);
    sql.text.push_str(&format!(" GROUP BY {expr}"));
    let rows = db.query(&sql.text, &sql.params).await?;
    merge(into, q.group, &rows)
}

/// Adds the rollups of one period in `[from, to)` to `into`.
async fn from_rollups(
    db: &dyn Db,
    q: &Query<'_>,
    period: &str,
    from: i64,
    to: i64,
    into: &mut BTreeMap<String, Figures>,
) -> Result<(), DbError> {
    if from >= to {
        return Ok(());
    }
    let expr = group_expr(q.group, "bucket_start", "model", "owner_id");
    let sums: Vec<String> = figure_columns()
        .iter()
        .map(|c| format!("CAST(SUM({c}) AS BIGINT)"))
        .collect();
    let mut sql = Sql {
        text: String::new(),
        params: vec![period.into(), from.into(), to.into()],
    };
    sql.text = format!(
        "SELECT {expr}, {} FROM usage_rollups WHERE period = $1 AND bucket_start >= $2 AND bucket_start < $3",
        sums.join(", ")
    );
    sql.filters(q, "owner_id", "model");
    sql.text.push_str(&format!(" GROUP BY {expr}"));
    let rows = db.query(&sql.text, &sql.params).await?;
    merge(into, q.group, &rows)
}

/// The figures of a query per group, with rollups before `cut` (day-aligned days where the
/// grouping allows, hours at the edges) and raw events from `cut` on.
pub async fn usage(
    db: &dyn Db,
    q: &Query<'_>,
    cut: i64,
) -> Result<BTreeMap<String, Figures>, DbError> {
    let mut out = BTreeMap::new();
    let rolled_end = cut.clamp(q.from, q.to);
    if q.group == GroupBy::Hour {
        from_rollups(db, q, "hour", q.from, rolled_end, &mut out).await?;
    } else {
        let first_day = feen_core::analytics::day_floor(q.from + DAY_MS - 1);
        let last_day = feen_core::analytics::day_floor(rolled_end);
        if first_day < last_day {
            from_rollups(db, q, "hour", q.from, first_day, &mut out).await?;
            from_rollups(db, q, "day", first_day, last_day, &mut out).await?;
            from_rollups(db, q, "hour", last_day, rolled_end, &mut out).await?;
        } else {
            from_rollups(db, q, "hour", q.from, rolled_end, &mut out).await?;
        }
    }
    if rolled_end < q.to {
        from_events(db, q, rolled_end, q.to, &mut out).await?;
    }
    Ok(out)
}
