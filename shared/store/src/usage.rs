//! Usage events: one row per proxied request, written in batches, idempotent by request id.

use feen_core::authz::Owner;
use feen_core::ids::{ShareId, TeamId, UserId};
use feen_core::ports::{Db, DbError};
use feen_core::usage::UsageEvent;

/// Columns per event row.
const COLUMNS: usize = 16;

/// Writes events; an event whose request id is already stored is skipped, so a batch may be
/// written twice. Returns how many rows were new.
pub async fn insert_batch(db: &dyn Db, events: &[UsageEvent]) -> Result<u64, DbError> {
    let mut written = 0;
    for chunk in events.chunks(50) {
        let mut sql = String::from(
            "INSERT INTO usage_events (request_id, share_id, api_key_id, user_id, provider, model, endpoint, status, \
             streamed, input_tokens, output_tokens, started_at, duration_ms, outcome, cost_micros, team_id) VALUES ",
        );
        let mut params = Vec::with_capacity(chunk.len() * COLUMNS);
        for (i, e) in chunk.iter().enumerate() {
            if i > 0 {
                sql.push_str(", ");
            }
            let base = i * COLUMNS;
            let marks: Vec<String> = (1..=COLUMNS).map(|n| format!("${}", base + n)).collect();
            sql.push('(');
            sql.push_str(&marks.join(", "));
            sql.push(')');
            let sat = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
            params.extend([
                e.request_id.as_str().into(),
                e.share_id.as_str().into(),
                e.key_id.as_str().into(),
                e.user_id.as_str().into(),
                e.provider.as_str().into(),
                e.model.clone().into(),
                e.endpoint.as_str().into(),
                i64::from(e.status).into(),
                i64::from(e.streamed).into(),
                sat(e.input_tokens).into(),
                sat(e.output_tokens).into(),
                e.started_at_ms.into(),
                sat(e.duration_ms).into(),
                e.outcome.as_str().into(),
                e.cost_micros.map(sat).into(),
                e.team_id.as_ref().map(TeamId::as_str).into(),
            ]);
        }
        sql.push_str(" ON CONFLICT (request_id) DO NOTHING");
        written += db.execute(&sql, &params).await?;
    }
    Ok(written)
}

/// A share's recorded usage.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    /// Requests recorded.
    pub requests: u64,
    /// Input tokens.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Micro-USD (requests with unknown prices count as 0).
    pub cost_micros: u64,
}

/// Where usage lives: raw events from the horizon on, daily rollups before it (raw events older
/// than the retention period are deleted once rolled up). An SQL expression for the horizon.
pub(crate) const HORIZON_SQL: &str =
    "COALESCE((SELECT value FROM job_marks WHERE name = 'usage_horizon'), 0)";

/// The totals of one of the owner's shares since `since_ms` (requests that reached the
/// provider; refusals are counted by the analytics). Before the raw-event horizon the daily
/// rollups count, whole days.
pub async fn share_totals(
    db: &dyn Db,
    owner: &Owner,
    share: &ShareId,
    since_ms: i64,
) -> Result<Totals, DbError> {
    let rows = db
        .query(
            &format!(
                "SELECT CAST(COALESCE(SUM(n), 0) AS BIGINT), CAST(COALESCE(SUM(i), 0) AS BIGINT), \
                 CAST(COALESCE(SUM(o), 0) AS BIGINT), CAST(COALESCE(SUM(c), 0) AS BIGINT) FROM ( \
                 SELECT COUNT(*) AS n, SUM(input_tokens) AS i, SUM(output_tokens) AS o, SUM(cost_micros) AS c \
                 FROM usage_events WHERE share_id = $1 AND COALESCE(team_id, user_id) = $2 AND started_at >= $3 \
                 AND started_at >= {HORIZON_SQL} AND outcome <> 'refused' \
                 UNION ALL SELECT SUM(requests), SUM(input_tokens), SUM(output_tokens), SUM(cost_micros) \
                 FROM usage_rollups WHERE period = 'day' AND share_id = $1 AND owner_id = $2 \
                 AND bucket_start > $3 - {DAY} AND bucket_start < {HORIZON_SQL}) parts",
                DAY = feen_core::analytics::DAY_MS
            ),
            &[share.as_str().into(), owner.as_str().into(), since_ms.into()],
        )
        .await?;
    let Some(row) = rows.first() else {
        return Ok(Totals::default());
    };
    let n = |i| row.int(i).map(|v| u64::try_from(v).unwrap_or(0));
    Ok(Totals {
        requests: n(0)?,
        input_tokens: n(1)?,
        output_tokens: n(2)?,
        cost_micros: n(3)?,
    })
}

/// The owner's most recent events for a share, newest first.
pub async fn recent(
    db: &dyn Db,
    owner: &Owner,
    share: &ShareId,
    limit: i64,
) -> Result<Vec<UsageEvent>, DbError> {
    use feen_core::ids::{KeyId, RequestId};
    use feen_core::usage::Outcome;
    let rows = db
        .query(
            "SELECT request_id, share_id, api_key_id, user_id, provider, model, endpoint, status, streamed, \
             input_tokens, output_tokens, started_at, duration_ms, outcome, cost_micros, team_id FROM usage_events \
             WHERE share_id = $1 AND COALESCE(team_id, user_id) = $2 AND outcome <> 'refused' \
             ORDER BY started_at DESC, request_id DESC LIMIT $3",
            &[share.as_str().into(), owner.as_str().into(), limit.into()],
        )
        .await?;
    let unsigned = |v: i64| u64::try_from(v).unwrap_or(0);
    crate::decode(rows, |row| {
        Ok(UsageEvent {
            request_id: RequestId::from_db(row.text(0)?),
            share_id: ShareId::from_db(row.text(1)?),
            key_id: KeyId::from_db(row.text(2)?),
            user_id: UserId::from_db(row.text(3)?),
            team_id: row.opt_text(15)?.map(TeamId::from_db),
            provider: row.text(4)?,
            model: row.opt_text(5)?,
            endpoint: row.text(6)?,
            status: u16::try_from(row.int(7)?).unwrap_or(0),
            streamed: row.int(8)? != 0,
            input_tokens: unsigned(row.int(9)?),
            output_tokens: unsigned(row.int(10)?),
            started_at_ms: row.int(11)?,
            duration_ms: unsigned(row.int(12)?),
            outcome: Outcome::parse(&row.text(13)?)
                .ok_or_else(|| DbError::Decode("unknown usage outcome".into()))?,
            cost_micros: row.opt_int(14)?.map(unsigned),
        })
    })
}
