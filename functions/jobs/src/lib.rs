//! Feen function: background work, on every host. [`store_usage`] writes a batch of usage
//! events (the Workers usage queue's consumer); [`enqueue_usage`] and [`drain_usage`] are the
//! usage queue of hosts without one (a Redis list: Spin); [`periodic`] runs the periodic jobs (a
//! cron trigger on Workers, a timer in `feen serve`, `feen jobs` or the jobs endpoint for any
//! other scheduler).

use feen_core::Error;
use feen_core::analytics::{
    DAY_MS, GroupBy, HOUR_MS, day_floor, hour_ceil, hour_floor, month_label, month_start,
    parse_month, usd,
};
use feen_core::crypto::keyring::{KeyRing, NONCE_LEN};
use feen_core::limits;
use feen_core::ports::HttpClient;
use feen_core::ports::{Db, Kv, Rng, random};
use feen_core::timefmt::to_rfc3339;
use feen_service::mail::{self, Delivery, MailConfig};
use feen_service::request::segments;
use feen_service::settings;
pub use feen_service::usage_list::{
    DRAIN_DELAY_MS, Decoded, USAGE_LIST, decode, drain_usage, enqueue_usage, store_usage,
};
use feen_service::{Ctx, Req, Resp, json, respond};
use feen_store::analytics;
use feen_store::shares::HashScope;
use http::{Method, StatusCode};
use serde::Serialize;

#[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
mod workers;

// The Spin entry point: the jobs endpoint as a component of its own (Spin's cron trigger needs
// a plugin interface, so a scheduler calls the endpoint instead).
#[cfg(all(target_arch = "wasm32", target_os = "wasi"))]
feen_spin::http_entry!(handle);

/// The path prefix this function serves.
pub const PREFIX: &str = "/api/jobs";

/// Serves `POST /api/jobs/run`: runs the periodic jobs once (and drains the usage list) for a
/// scheduler of the operator's, authenticated with `Authorization: Bearer FEEN_JOBS_TOKEN`.
/// Without a configured token the endpoint does not exist.
pub async fn handle(req: Req, ctx: &Ctx) -> Resp {
    respond(route(req, ctx).await)
}

async fn route(req: Req, ctx: &Ctx) -> Result<Resp, Error> {
    let Some(expected) = ctx.config.jobs_token.as_ref() else {
        return Err(Error::NotFound("route"));
    };
    let path = req.uri().path().to_owned();
    match (
        segments(&path, PREFIX)
            .ok_or(Error::NotFound("route"))?
            .as_slice(),
        req.method(),
    ) {
        (["run"], &Method::POST) => {}
        (["run"], _) => return Err(Error::MethodNotAllowed),
        _ => return Err(Error::NotFound("route")),
    }
    let presented = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if !presented.is_some_and(|p| expected.ct_eq(p)) {
        return Err(Error::Unauthorized {
            code: "invalid_token",
            message: "the jobs token is missing or wrong",
        });
    }
    let means = Means {
        usage_list: Some(ctx.kv.as_ref()),
        keyring: Some((&ctx.config.keyring, ctx.rng.as_ref())),
        cache: Some(ctx.kv.as_ref()),
        usage_retention_days: Some(ctx.config.usage_retention_days),
        mail: ctx.config.mail.as_ref().map(|m| (ctx.http.as_ref(), m)),
    };
    let report = periodic(ctx.db.as_ref(), means, ctx.now_ms()).await?;
    Ok(json(StatusCode::OK, &report))
}

/// How long a refresh token's row is kept after it expired.
pub const SESSION_GRACE_MS: i64 = 86_400_000;
/// How long a team invitation's row is kept after it expired or was accepted (the audit log
/// keeps the fact for good).
pub const INVITE_GRACE_MS: i64 = 30 * 86_400_000;

/// What one run of the periodic jobs did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// Expired refresh tokens deleted.
    pub sessions_purged: u64,
    /// Team invitations deleted a grace period after they expired or were accepted.
    pub invites_purged: u64,
    /// Usage events moved from the usage list to the database.
    pub usage_drained: u64,
    /// Provider keys re-sealed with the key ring's current version.
    pub keys_resealed: u64,
    /// Provider keys still sealed with an older version (0: older versions may be retired once
    /// the share cache has turned over, 5 minutes).
    pub keys_on_old_versions: u64,
    /// Rollup rows (hourly, daily, billing) written from the usage events.
    pub usage_rows_rolled_up: u64,
    /// Raw usage events deleted past the retention period (their rollups remain).
    pub usage_events_expired: u64,
    /// Notification emails written to the outbox (budgets at 80% and 100%, shares expiring
    /// within a day).
    pub notifications_queued: u64,
    /// Emails the mail API accepted in this run.
    pub emails_sent: u64,
    /// Emails that failed in this run (retried with backoff).
    pub emails_failed: u64,
    /// Emails still waiting to be sent.
    pub emails_pending: u64,
    /// Shares that ended (expired or revoked) whose cache entry and lifetime counters were
    /// dropped from the counter store.
    pub ended_shares_forgotten: u64,
}

/// What the periodic jobs may use besides the database.
#[derive(Clone, Copy, Default)]
pub struct Means<'a> {
    /// The store holding the usage list, on hosts that queue usage there.
    pub usage_list: Option<&'a dyn Kv>,
    /// The key ring and randomness, to re-seal provider keys with the current version.
    pub keyring: Option<(&'a KeyRing, &'a dyn Rng)>,
    /// The share cache, whose entries of re-sealed keys are dropped (refilled from the database
    /// on next use). Without it they age out within 5 minutes.
    pub cache: Option<&'a dyn Kv>,
    /// How long raw usage events are kept once rolled up (`None`: the default, 90 days).
    pub usage_retention_days: Option<u32>,
    /// The mail API and a client to reach it: notifications are written and the outbox
    /// delivered only with it.
    pub mail: Option<(&'a dyn HttpClient, &'a MailConfig)>,
}

/// Runs every periodic job once. Each job is idempotent, so overlapping or repeated runs (a
/// retried cron, two replicas' timers) do no harm.
pub async fn periodic(db: &dyn Db, means: Means<'_>, now: i64) -> Result<Report, Error> {
    let sessions_purged = feen_store::sessions::purge_expired(db, now - SESSION_GRACE_MS).await?;
    let invites_purged = feen_store::teams::purge_invites(db, now - INVITE_GRACE_MS).await?;
    let usage_drained = match means.usage_list {
        Some(kv) => drain_usage(db, kv).await?,
        None => 0,
    };
    let (keys_resealed, keys_on_old_versions) = match means.keyring {
        Some((ring, rng)) => rewrap(db, ring, rng, means.cache).await?,
        None => (0, 0),
    };
    let retention = means
        .usage_retention_days
        .unwrap_or(settings::DEFAULT_USAGE_RETENTION_DAYS)
        .max(settings::MIN_USAGE_RETENTION_DAYS);
    let (usage_rows_rolled_up, usage_events_expired) =
        aggregate(db, now, i64::from(retention) * DAY_MS).await?;
    let (mut notifications_queued, mut delivery) = (0, Delivery::default());
    if let Some((http, mail)) = means.mail {
        notifications_queued = notifications(db, now).await?;
        delivery = mail::deliver(db, http, mail, now).await?;
    }
    let emails_pending = u64::try_from(feen_store::outbox::pending(db).await?).unwrap_or(0);
    let ended_shares_forgotten = match means.cache {
        Some(kv) => forget_ended_shares(db, kv, now).await?,
        None => 0,
    };
    // Sent emails are kept a while (their body is cleared when sent) for support questions.
    feen_store::outbox::purge_sent(db, now - INVITE_GRACE_MS).await?;
    Ok(Report {
        ended_shares_forgotten,
        notifications_queued,
        emails_sent: delivery.sent,
        emails_failed: delivery.failed,
        emails_pending,
        usage_rows_rolled_up,
        usage_events_expired,
        sessions_purged,
        invites_purged,
        usage_drained,
        keys_resealed,
        keys_on_old_versions,
    })
}

/// The job mark up to which ended shares were forgotten.
const FORGOTTEN_TO: &str = "ended_shares_forgotten_to";
/// How far back the first run looks for ended shares.
const FORGET_LOOKBACK_MS: i64 = 30 * DAY_MS;

/// Drops what the counter store still holds of shares that ended (expired or revoked) since the
/// last run: their cache entry (or tombstone) and their long-lived lifetime counters. Nothing
/// is lost: a share extended after expiring reloads its entry from the database and re-seeds
/// its lifetime counters from its recorded usage. Returns how many shares were forgotten.
pub async fn forget_ended_shares(db: &dyn Db, kv: &dyn Kv, now: i64) -> Result<u64, Error> {
    let from = analytics::mark(db, FORGOTTEN_TO)
        .await?
        .unwrap_or(now - FORGET_LOOKBACK_MS);
    let ended = feen_store::shares::ended(db, from, now).await?;
    let mut keys = Vec::with_capacity(ended.len() * 3);
    for (share, hash) in &ended {
        keys.push(feen_service::cache::key(hash));
        keys.extend(limits::lifetime_keys(share));
    }
    for chunk in keys.chunks(300) {
        kv.delete(chunk).await?;
    }
    analytics::advance_mark(db, FORGOTTEN_TO, now).await?;
    Ok(ended.len() as u64)
}

/// Writes the notifications that are due: a share expiring within a day, a budget at 80% and at
/// 100% of its period. Each is written once (its dedupe key names the share, the period or
/// expiry, and the recipient), so runs may repeat. Returns how many were new.
pub async fn notifications(db: &dyn Db, now: i64) -> Result<u64, Error> {
    let mut queued = 0;
    let cut = analytics::cut(db, now).await?;
    for share in feen_store::shares::watched(db, now, now + DAY_MS).await? {
        let mut messages = Vec::new();
        if let Some(at) = share.expires_at.filter(|at| *at <= now + DAY_MS) {
            messages.push((
                "share_expiring",
                format!("expiring:{}:{at}", share.id),
                format!("Feen share \"{}\" expires within a day", share.name),
                format!(
                    "The Feen share \"{}\" ({}) expires at {}. Whoever holds its token will be \
                     refused from then on. To keep it working, set a later expiry (PATCH \
                     /api/shared/{}).",
                    share.name,
                    share.id,
                    to_rfc3339(at),
                    share.id
                ),
            ));
        }
        if let Some(budget) = share.budget.filter(|b| b.usd_micros > 0) {
            let start = limits::period_start(budget.period, now);
            let owners = [share.owner.as_str().to_owned()];
            let q = analytics::Query {
                owners: &owners,
                key: None,
                share: Some(share.id.as_str()),
                model: None,
                group: GroupBy::Share,
                from: hour_floor(start.unwrap_or(0)),
                to: hour_ceil(now),
            };
            let spent: u64 = analytics::usage(db, &q, cut)
                .await?
                .values()
                .map(|f| f.cost_micros)
                .sum();
            let period = start.map_or("lifetime".to_owned(), to_rfc3339);
            for percent in [80_u64, 100] {
                if u128::from(spent) * 100 < u128::from(budget.usd_micros) * u128::from(percent) {
                    continue;
                }
                messages.push((
                    "budget",
                    format!("budget:{}:{period}:{percent}", share.id),
                    format!(
                        "Feen share \"{}\" has used {percent}% of its {} budget",
                        share.name,
                        budget.period.as_str()
                    ),
                    format!(
                        "The Feen share \"{}\" ({}) has spent ${} of its ${} {} budget. {}",
                        share.name,
                        share.id,
                        usd(spent),
                        usd(budget.usd_micros),
                        budget.period.as_str(),
                        if percent >= 100 {
                            "Requests are refused until the period ends or the budget is raised."
                        } else {
                            "Requests are refused once it is all spent."
                        }
                    ),
                ));
            }
        }
        if messages.is_empty() {
            continue;
        }
        let recipients = feen_store::outbox::owner_addresses(db, share.owner.as_str()).await?;
        for (kind, key, subject, body) in messages {
            for to in &recipients {
                let message = mail::Message {
                    kind,
                    dedupe_key: format!("{key}:{to}"),
                    to: to.clone(),
                    subject: subject.clone(),
                    body: body.clone(),
                };
                if feen_store::outbox::enqueue(db, &mail::email(message, now)).await? {
                    queued += 1;
                }
            }
        }
    }
    Ok(queued)
}

/// Every run recomputes the rollups of this many past hours from the raw events, so that events
/// written late (a long stream, a retried queue batch) are counted.
pub const RECOMPUTE_MS: i64 = 48 * HOUR_MS;
/// An hour is rolled up once it ended this long ago.
pub const SETTLE_MS: i64 = 5 * 60_000;

/// Usage aggregation: rolls the raw usage events up into hourly rollups, those into daily ones
/// and those into billing months, recomputing (never incrementing) every row it touches, so that
/// runs may repeat or overlap; then deletes raw events past the retention period, never before
/// they are rolled up and out of the recomputed window. Returns (rollup rows written, events
/// deleted).
pub async fn aggregate(db: &dyn Db, now: i64, retention_ms: i64) -> Result<(u64, u64), Error> {
    let end = hour_floor(now - SETTLE_MS);
    let start = match analytics::mark(db, analytics::ROLLED_TO).await? {
        Some(mark) => mark - RECOMPUTE_MS,
        None => analytics::earliest_event(db).await?.map_or(end, hour_floor),
    };
    let horizon = analytics::mark(db, analytics::HORIZON).await?.unwrap_or(0);
    let start = start.max(horizon).min(end);
    let mut rows = 0;
    let mut from = start;
    while from < end {
        let to = (day_floor(from) + DAY_MS).min(end);
        rows += analytics::roll_hours(db, from, to).await?;
        from = to;
    }
    if start < end {
        let (first_day, last_day) = (day_floor(start), day_floor(end - 1) + DAY_MS);
        rows += analytics::roll_days(db, first_day, last_day).await?;
        for (month, from, to) in months(first_day, last_day) {
            rows += analytics::roll_billing(db, &month, from, to).await?;
        }
    }
    analytics::advance_mark(db, analytics::ROLLED_TO, end).await?;
    // Raw events go only once they are out of the recomputed window, whole days at a time. The
    // horizon moves first: readers then take the days before it from the rollups, which is
    // right whether or not the deletion below has happened yet.
    let expire_before = day_floor((now - retention_ms).min(end - RECOMPUTE_MS));
    let mut expired = 0;
    if expire_before > horizon {
        analytics::advance_mark(db, analytics::HORIZON, expire_before).await?;
        expired = analytics::expire_events(db, expire_before).await?;
    }
    Ok((rows, expired))
}

/// The calendar months (`YYYY-MM`, start, end) that overlap `[from, to)`, UTC.
fn months(from: i64, to: i64) -> Vec<(String, i64, i64)> {
    let mut out = Vec::new();
    if from >= to {
        return out;
    }
    let mut start = month_start(from);
    while start < to {
        let label = month_label(start);
        let Some((_, next)) = parse_month(&label) else {
            break;
        };
        out.push((label, start, next));
        start = next;
    }
    out
}

/// Keys re-sealed per statement batch, and the most one run re-seals.
const REWRAP_BATCH: i64 = 100;
const REWRAP_MAX: usize = 50;

/// Re-seals provider keys sealed with an older key-ring version, or before destinations were
/// bound, with the current version for their destination, in batches, each only if the key was
/// not rotated meanwhile. A key whose version the ring no longer holds (or that does not open for
/// its stored destination) is left as it is, and counted. Returns (re-sealed, still to do).
pub async fn rewrap(
    db: &dyn Db,
    ring: &KeyRing,
    rng: &dyn Rng,
    cache: Option<&dyn Kv>,
) -> Result<(u64, u64), Error> {
    let current = ring.current_version();
    let mut resealed = 0;
    let mut after = String::new();
    for _ in 0..REWRAP_MAX {
        let batch = feen_store::keys::needing_reseal(db, current, &after, REWRAP_BATCH).await?;
        let Some(last) = batch.last() else {
            break;
        };
        after = last.id.as_str().to_owned();
        for key in &batch {
            let destination = key.destination();
            let Ok(secret) = ring.open(&key.sealed, &destination) else {
                continue;
            };
            let new = ring.seal(&secret, &destination, random::<NONCE_LEN>(rng));
            if !feen_store::keys::reseal(db, &key.id, &key.sealed, &new).await? {
                continue;
            }
            resealed += 1;
            if let Some(kv) = cache {
                let hashes =
                    feen_store::shares::token_hashes(db, &key.owner, HashScope::Key(&key.id))
                        .await?;
                let keys: Vec<String> = hashes.iter().map(feen_service::cache::key).collect();
                kv.delete(&keys).await?;
            }
        }
        if (batch.len() as i64) < REWRAP_BATCH {
            break;
        }
    }
    let left = feen_store::keys::count_needing_reseal(db, current).await?;
    Ok((resealed, u64::try_from(left).unwrap_or(0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_cover_a_range_in_calendar_months() {
        let at = |s: &str| feen_core::timefmt::parse_rfc3339(s).expect("time");
        let got = months(at("2026-01-31T00:00:00Z"), at("2026-03-02T00:00:00Z"));
        let labels: Vec<_> = got.iter().map(|(m, _, _)| m.as_str()).collect();
        assert_eq!(labels, ["2026-01", "2026-02", "2026-03"]);
        assert_eq!(got[1].1, at("2026-02-01T00:00:00Z"));
        assert_eq!(got[1].2, at("2026-03-01T00:00:00Z"));
        assert_eq!(got[2].2, at("2026-04-01T00:00:00Z"));
        let leap = months(at("2028-02-10T00:00:00Z"), at("2028-02-11T00:00:00Z"));
        assert_eq!(
            leap,
            vec![(
                "2028-02".into(),
                at("2028-02-01T00:00:00Z"),
                at("2028-03-01T00:00:00Z")
            )]
        );
        assert!(months(5, 5).is_empty());
    }

    fn event(request: &str) -> serde_json::Value {
        serde_json::json!({
            "requestId": request, "shareId": "shr_1", "keyId": "key_1", "userId": "usr_1",
            "provider": "openai", "model": "gpt-4o-mini", "endpoint": "/v1/chat/completions",
            "status": 200, "streamed": false, "inputTokens": 12, "outputTokens": 5,
            "costMicros": 5, "startedAtMs": 1_700_000_000_000_i64, "durationMs": 42,
            "outcome": "completed",
        })
    }

    #[test]
    fn decoding_keeps_events_in_order_and_counts_what_is_not_one() {
        let decoded = decode([
            event("req_a"),
            serde_json::json!({ "requestId": 3 }),
            serde_json::json!("text"),
            event("req_b"),
        ]);
        let ids: Vec<&str> = decoded
            .events
            .iter()
            .map(|e| e.request_id.as_str())
            .collect();
        assert_eq!(ids, ["req_a", "req_b"]);
        assert_eq!(decoded.events[0].input_tokens, 12);
        assert_eq!(decoded.malformed, 2);
    }
}
