//! Measures the analytics on a database of a given size: writing usage events, the aggregation
//! job, and the same queries answered from raw events and from rollups (checking they agree).
//!
//! `analytics-bench [sqlite|postgres] [events]` (PostgreSQL: `FEEN_TEST_DATABASE_URL`, a fresh
//! schema). Prints one line per step with its wall time.

use std::sync::Arc;
use std::time::Instant;

use feen_core::analytics::{DAY_MS, GroupBy, HOUR_MS, day_floor};
use feen_core::ids::{KeyId, RequestId, ShareId, UserId};
use feen_core::ports::Db;
use feen_core::usage::{Outcome, UsageEvent};
use feen_native::db::{PgDb, SqliteDb};
use feen_store::analytics::{self, Query};

const DAYS: i64 = 30;
const USERS: u8 = 10;
const SHARES_PER_USER: u8 = 10;
const MODELS: [&str; 4] = [
    "gpt-4o-mini",
    "gpt-4o",
    "claude-sonnet-4",
    "gemini-2.0-flash",
];

fn events(n: usize, now: i64) -> Vec<UsageEvent> {
    let start = day_floor(now) - DAYS * DAY_MS;
    let span = (now - start) as u64;
    (0..n)
        .map(|i| {
            let i64i = i as i64;
            let user = (i % usize::from(USERS)) as u8;
            let share = (i / usize::from(USERS) % usize::from(SHARES_PER_USER)) as u8;
            let refused = i % 17 == 0;
            UsageEvent {
                request_id: RequestId::new(start, {
                    let mut r = [0u8; 10];
                    r[..8].copy_from_slice(&(i as u64).to_be_bytes());
                    r
                }),
                share_id: ShareId::new(start, [user, share, 0, 0, 0, 0, 0, 0, 0, 1]),
                key_id: KeyId::new(start, [user, share % 2, 0, 0, 0, 0, 0, 0, 0, 2]),
                user_id: UserId::new(start, [user; 10]),
                team_id: None,
                provider: "openai".into(),
                model: Some(MODELS[i % MODELS.len()].into()),
                endpoint: "/v1/chat/completions".into(),
                status: if refused { 429 } else { 200 },
                streamed: i % 3 == 0,
                input_tokens: if refused { 0 } else { 100 + (i as u64 % 900) },
                output_tokens: if refused { 0 } else { 20 + (i as u64 % 300) },
                cost_micros: (!refused && i % 11 != 0).then_some(50 + (i as u64 % 500)),
                started_at_ms: start + ((i64i as u64).wrapping_mul(2_654_435_761) % span) as i64,
                duration_ms: 5 + (i as u64 * 37 % 4_000),
                outcome: if refused {
                    Outcome::Refused
                } else {
                    Outcome::Completed
                },
            }
        })
        .collect()
}

async fn open(kind: &str) -> Arc<dyn Db> {
    if kind == "postgres" {
        let url = std::env::var("FEEN_TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://feen:feen@127.0.0.1:5432/feen_test".into());
        let schema = format!("bench_{}", std::process::id());
        let admin = PgDb::connect(&url, 1, None).await.expect("connect");
        admin
            .execute(&format!("CREATE SCHEMA {schema}"), &[])
            .await
            .expect("schema");
        let db = PgDb::connect(&url, 4, Some(&schema))
            .await
            .expect("connect");
        db.migrate().await.expect("migrate");
        return Arc::new(db);
    }
    let dir = std::env::temp_dir().join(format!("feen-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let db = SqliteDb::open(&dir.join("feen.sqlite"))
        .await
        .expect("open");
    db.migrate().await.expect("migrate");
    Arc::new(db)
}

fn say(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout(), "{line}");
}

fn step(name: &str, started: Instant) {
    say(&format!(
        "{name:<44} {:>10.1} ms",
        started.elapsed().as_secs_f64() * 1000.0
    ));
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let kind = args.get(1).map_or("sqlite", String::as_str).to_owned();
    let n: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(200_000);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let db = open(&kind).await;
    say(&format!(
        "{kind}: {n} usage events over {DAYS} days, {USERS} owners"
    ));
    let all = events(n, now);
    let t = Instant::now();
    for chunk in all.chunks(1_000) {
        feen_store::usage::insert_batch(db.as_ref(), chunk)
            .await
            .expect("insert");
    }
    step("write the events (batches of 1000)", t);

    let owners: Vec<String> = (0..USERS)
        .map(|u| UserId::new(now, [u; 10]).as_str().to_owned())
        .collect();
    let to = feen_core::analytics::hour_ceil(now);
    let q = |group, from| Query {
        owners: &owners,
        key: None,
        share: None,
        model: None,
        group,
        from,
        to,
    };
    let month = day_floor(now) - DAYS * DAY_MS;
    let week = day_floor(now) - 7 * DAY_MS;
    let cases = [
        ("30 days by day", q(GroupBy::Day, month)),
        ("30 days by model", q(GroupBy::Model, month)),
        ("30 days by share", q(GroupBy::Share, month)),
        ("7 days by hour", q(GroupBy::Hour, week)),
    ];
    let mut live = Vec::new();
    for (name, query) in &cases {
        let t = Instant::now();
        live.push(
            analytics::usage(db.as_ref(), query, i64::MIN)
                .await
                .expect("query"),
        );
        step(&format!("live (raw events): {name}"), t);
    }
    let t = Instant::now();
    let (rows, _) = feen_jobs::aggregate(db.as_ref(), now, 90 * DAY_MS)
        .await
        .expect("aggregate");
    step(
        &format!("aggregation job, first run ({rows} rollup rows)"),
        t,
    );
    let t = Instant::now();
    feen_jobs::aggregate(db.as_ref(), now + HOUR_MS, 90 * DAY_MS)
        .await
        .expect("aggregate");
    step("aggregation job, next run (48 h recomputed)", t);
    let cut = analytics::cut(db.as_ref(), now).await.expect("cut");
    for ((name, query), expected) in cases.iter().zip(&live) {
        let t = Instant::now();
        let got = analytics::usage(db.as_ref(), query, cut)
            .await
            .expect("query");
        step(&format!("rolled up + today live: {name}"), t);
        assert_eq!(&got, expected, "{name}: the two paths disagree");
    }
    say("both paths agree on every query");
}
