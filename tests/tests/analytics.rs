//! Usage analytics end to end: real requests through the proxy (admitted, failed, rate-limited
//! and refused by policy, on personal and team shares, across a day boundary), then every
//! grouping checked against sums computed here from the recorded events; the same query again
//! after the aggregation job (rollups) and after the raw events are gone (rollups only); CSV;
//! billing; the jobs run twice at once; retention.

use std::collections::BTreeMap;
use std::time::Duration;

use feen_core::analytics::{DAY_MS, Figures, HOUR_MS, day_floor, latency_bucket};
use feen_core::timefmt::to_rfc3339;
use feen_e2e::api::{Api, Reply, User};
use feen_e2e::feen::Feen;
use feen_e2e::mock::{MockProvider, OPENAI_INPUT_TOKENS, OPENAI_OUTPUT_TOKENS};
use http::{Method, StatusCode};
use serde_json::{Value, json};

const SECRET: &str = "sk-analytics-secret-0123456789";

/// One recorded usage event, as the database holds it.
#[derive(Clone, Debug)]
struct Event {
    share: String,
    key: String,
    owner: String,
    model: String,
    status: i64,
    outcome: String,
    input: i64,
    output: i64,
    cost: Option<i64>,
    started_at: i64,
    duration: i64,
}

async fn events(feen: &Feen) -> Vec<Event> {
    let db = feen.db().await;
    let rows = db
        .query(
            "SELECT share_id, api_key_id, COALESCE(team_id, user_id), COALESCE(model, ''), status, outcome, \
             input_tokens, output_tokens, cost_micros, started_at, duration_ms FROM usage_events",
            &[],
        )
        .await
        .expect("read usage events");
    rows.iter()
        .map(|r| Event {
            share: r.text(0).expect("share"),
            key: r.text(1).expect("key"),
            owner: r.text(2).expect("owner"),
            model: r.text(3).expect("model"),
            status: r.int(4).expect("status"),
            outcome: r.text(5).expect("outcome"),
            input: r.int(6).expect("input"),
            output: r.int(7).expect("output"),
            cost: r.opt_int(8).expect("cost"),
            started_at: r.int(9).expect("started"),
            duration: r.int(10).expect("duration"),
        })
        .collect()
}

/// What the events add up to, computed here, independently of Feen's SQL.
fn figures_of<'a>(events: impl Iterator<Item = &'a Event>) -> Figures {
    let mut f = Figures::default();
    for e in events {
        if e.outcome == "refused" {
            f.refused += 1;
            f.rate_limited += u64::from(e.status == 429);
            continue;
        }
        f.requests += 1;
        f.errors += u64::from(e.status >= 400 || e.status == 0 || e.outcome == "upstream_error");
        f.input_tokens += e.input as u64;
        f.output_tokens += e.output as u64;
        f.cost_micros += e.cost.unwrap_or(0) as u64;
        f.unpriced += u64::from(e.cost.is_none());
        f.latency[latency_bucket(e.duration as u64)] += 1;
    }
    f
}

fn group_of(e: &Event, by: &str) -> String {
    match by {
        "hour" => to_rfc3339(e.started_at.div_euclid(HOUR_MS) * HOUR_MS),
        "day" => to_rfc3339(day_floor(e.started_at)),
        "model" => e.model.clone(),
        "key" => e.key.clone(),
        "share" => e.share.clone(),
        _ => e.owner.clone(),
    }
}

fn expected(events: &[Event], by: &str) -> BTreeMap<String, Value> {
    let mut groups: BTreeMap<String, Vec<&Event>> = BTreeMap::new();
    for e in events {
        groups.entry(group_of(e, by)).or_default().push(e);
    }
    groups
        .into_iter()
        .map(|(g, es)| {
            let summary = figures_of(es.into_iter()).summary();
            let mut v = serde_json::to_value(summary).expect("summary");
            v["group"] = g.as_str().into();
            (g, v)
        })
        .collect()
}

fn rows_of(reply: &Reply) -> BTreeMap<String, Value> {
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    reply.body["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| (r["group"].as_str().expect("group").to_owned(), r.clone()))
        .collect()
}

async fn analytics(api: &Api, user: &User, query: &str) -> Reply {
    api.get(&format!("/api/analytics/usage?{query}"), &user.token)
        .await
}

/// Waits until `n` usage events are recorded (they are written after the responses).
async fn settled(feen: &Feen, n: usize) -> Vec<Event> {
    for _ in 0..200 {
        let all = events(feen).await;
        if all.len() >= n {
            return all;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("fewer than {n} usage events were recorded");
}

fn chat(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "hi"}]})
}

#[tokio::test]
async fn analytics_add_up_every_way_live_and_from_rollups() {
    feen_e2e::api::within_one_minute().await;
    let feen = Feen::start().await;
    let api = Api::new(&feen.base);
    let mock = MockProvider::start(SECRET).await;
    let ann = api.signup("analytics-ann").await;
    let bob = api.signup("analytics-bob").await;
    let personal = api.add_key(&ann, "openai", SECRET, &mock.base_url()).await;
    let other = api.add_key(&ann, "openai", SECRET, &mock.base_url()).await;
    let team = api
        .post("/api/teams", Some(&ann.token), json!({"name": "A"}))
        .await
        .str("/id");
    let body = json!({"name": "t", "provider": "openai", "apiKey": SECRET, "baseUrl": mock.base_url(), "teamId": team});
    let team_key = api
        .post("/api/keys", Some(&ann.token), body)
        .await
        .str("/id");
    let limited = json!({"rateLimit": 3, "allowedModels": ["gpt-4o-mini"]});
    let (s1, t1) = api.mint(&ann, &personal, limited).await;
    let (s2, t2) = api.mint(&ann, &other, json!({})).await;
    let (_, t3) = api.mint(&ann, &team_key, json!({})).await;
    let (_, bobs) = {
        let k = api.add_key(&bob, "openai", SECRET, &mock.base_url()).await;
        api.mint(&bob, &k, json!({})).await
    };

    // s1: 3 admitted, 2 over the rate limit (429), 1 for a model it may not use (403).
    for _ in 0..3 {
        assert_eq!(
            api.chat(&t1, chat("gpt-4o-mini")).await.status,
            StatusCode::OK
        );
    }
    for _ in 0..2 {
        let r = api.chat(&t1, chat("gpt-4o-mini")).await;
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    }
    assert_eq!(
        api.chat(&t1, chat("gpt-4o")).await.status,
        StatusCode::FORBIDDEN
    );
    // s2: 2 calls with another (priced) model and one the provider answers 404.
    for _ in 0..2 {
        assert_eq!(api.chat(&t2, chat("gpt-4o")).await.status, StatusCode::OK);
    }
    let missing = api
        .call(
            Method::POST,
            "/api/proxy/v1/nothing",
            Some(&t2),
            Some(json!({"model": "gpt-4o"})),
        )
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    // s3 (the team's): 2 calls with a model without a price.
    for _ in 0..2 {
        assert_eq!(
            api.chat(&t3, chat("house-model")).await.status,
            StatusCode::OK
        );
    }
    // Bob's usage is none of Ann's business.
    assert_eq!(
        api.chat(&bobs, chat("gpt-4o-mini")).await.status,
        StatusCode::OK
    );

    let all = settled(&feen, 12).await;
    assert_eq!(all.len(), 12, "one event per request, refusals included");
    // Across a day boundary: s2's requests were yesterday.
    let db = feen.db().await;
    db.execute(
        "UPDATE usage_events SET started_at = started_at - $1 WHERE share_id = $2",
        &[DAY_MS.into(), s2.as_str().into()],
    )
    .await
    .expect("age s2's events");
    let ann_events: Vec<Event> = events(&feen)
        .await
        .into_iter()
        .filter(|e| e.owner == ann.id || e.owner == team)
        .collect();
    assert_eq!(ann_events.len(), 11);
    // The mock's fixed usage is what was recorded: the figures below are real.
    let ok: Vec<_> = ann_events.iter().filter(|e| e.status == 200).collect();
    assert_eq!(ok.len(), 7);
    for e in &ok {
        assert_eq!(
            (e.input as u64, e.output as u64),
            (OPENAI_INPUT_TOKENS, OPENAI_OUTPUT_TOKENS)
        );
    }
    let totals = figures_of(ann_events.iter());
    assert_eq!(
        (
            totals.requests,
            totals.errors,
            totals.rate_limited,
            totals.refused
        ),
        (8, 1, 2, 3)
    );
    assert_eq!(totals.unpriced, 2, "the house model has no price");
    assert!(totals.cost_micros > 0);

    let now = feen_core::analytics::hour_floor(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0),
    );
    let range = format!(
        "from={}&to={}",
        to_rfc3339(day_floor(now) - DAY_MS),
        to_rfc3339(now + HOUR_MS)
    );
    let groupings = ["hour", "day", "model", "key", "share", "team"];
    let mut live = BTreeMap::new();
    for by in groupings {
        let reply = analytics(&api, &ann, &format!("{range}&groupBy={by}")).await;
        assert_eq!(
            reply.body["rolledUpTo"],
            Value::Null,
            "nothing is rolled up yet"
        );
        assert_eq!(rows_of(&reply), expected(&ann_events, by), "live, by {by}");
        assert_eq!(
            reply.body["totals"],
            serde_json::to_value(totals.summary()).expect("totals")
        );
        live.insert(by, reply.body["rows"].clone());
    }
    // Filters and one team.
    let only = analytics(&api, &ann, &format!("{range}&groupBy=model&shareId={s1}")).await;
    let s1_events: Vec<Event> = ann_events
        .iter()
        .filter(|e| e.share == s1)
        .cloned()
        .collect();
    assert_eq!(rows_of(&only), expected(&s1_events, "model"));
    let by_key = analytics(&api, &ann, &format!("{range}&groupBy=share&keyId={other}")).await;
    let key_events: Vec<Event> = ann_events
        .iter()
        .filter(|e| e.key == other)
        .cloned()
        .collect();
    assert_eq!(rows_of(&by_key), expected(&key_events, "share"));
    let model = analytics(
        &api,
        &ann,
        &format!("{range}&groupBy=key&model=house-model"),
    )
    .await;
    let model_events: Vec<Event> = ann_events
        .iter()
        .filter(|e| e.model == "house-model")
        .cloned()
        .collect();
    assert_eq!(rows_of(&model), expected(&model_events, "key"));
    let team_only = analytics(&api, &ann, &format!("{range}&groupBy=share&teamId={team}")).await;
    let team_events: Vec<Event> = ann_events
        .iter()
        .filter(|e| e.owner == team)
        .cloned()
        .collect();
    assert_eq!(rows_of(&team_only), expected(&team_events, "share"));
    // Bob sees only his own, and nothing of Ann's team.
    let bobs_view = analytics(&api, &bob, &format!("{range}&groupBy=share")).await;
    assert_eq!(rows_of(&bobs_view).len(), 1);
    let denied = analytics(&api, &bob, &format!("{range}&teamId={team}")).await;
    assert_eq!(denied.status, StatusCode::NOT_FOUND);

    // CSV of the same query.
    let csv = analytics(&api, &ann, &format!("{range}&groupBy=model&format=csv")).await;
    assert_eq!(csv.status, StatusCode::OK);
    assert_eq!(csv.header("content-type"), Some("text/csv; charset=utf-8"));
    assert!(
        csv.header("content-disposition")
            .is_some_and(|d| d.starts_with("attachment"))
    );
    let lines: Vec<&str> = csv.text.trim_end().split("\r\n").collect();
    assert!(lines[0].starts_with("model,requests,errors,rate_limited,refused,input_tokens"));
    let by_model = expected(&ann_events, "model");
    assert_eq!(lines.len(), by_model.len() + 1);
    for (line, (group, row)) in lines[1..].iter().zip(&by_model) {
        let cells: Vec<&str> = line.split(',').collect();
        assert_eq!(cells[0], group);
        assert_eq!(cells[1], row["requests"].to_string());
        assert_eq!(cells[5], row["inputTokens"].to_string());
        let micros = row["costMicros"].as_u64().expect("micros");
        assert_eq!(
            cells[7],
            format!("{}.{:06}", micros / 1_000_000, micros % 1_000_000)
        );
    }

    // Billing for this month, per key and share, equals the usage.
    let month = to_rfc3339(now).get(..7).expect("month").to_owned();
    let billing = api
        .get(&format!("/api/analytics/billing?month={month}"), &ann.token)
        .await;
    assert_eq!(billing.status, StatusCode::OK, "{}", billing.text);
    let personal_events: Vec<&Event> = ann_events
        .iter()
        .filter(|e| e.owner == ann.id && to_rfc3339(e.started_at).starts_with(&month))
        .collect();
    let personal_cost: i64 = personal_events.iter().filter_map(|e| e.cost).sum();
    assert_eq!(billing.body["total"]["costMicros"], personal_cost);
    assert_eq!(billing.body["final"], false);

    // The aggregation job, twice at once: then yesterday comes from the rollups, and every
    // figure is the same.
    tokio::join!(feen.run_jobs(), feen.run_jobs());
    for by in groupings {
        let reply = analytics(&api, &ann, &format!("{range}&groupBy={by}")).await;
        assert!(reply.body["rolledUpTo"].is_string(), "{}", reply.text);
        assert_eq!(reply.body["rows"], live[by], "rolled up, by {by}");
    }
    // Take yesterday's raw events away behind Feen's back: the rollups alone still say the same.
    let deleted = db
        .execute(
            "DELETE FROM usage_events WHERE started_at < $1",
            &[day_floor(now).into()],
        )
        .await
        .expect("delete yesterday's events");
    assert_eq!(deleted, 3, "s2's three events were yesterday");
    for by in groupings {
        let reply = analytics(&api, &ann, &format!("{range}&groupBy={by}")).await;
        assert_eq!(reply.body["rows"], live[by], "from rollups only, by {by}");
    }
}

#[tokio::test]
async fn the_analytics_refuse_bad_input() {
    let feen = Feen::start().await;
    let api = Api::new(&feen.base);
    let ann = api.signup("analytics-bad").await;
    let cases = [
        ("/api/analytics/usage?groupBy=week", "groupBy"),
        ("/api/analytics/usage?from=yesterday", "from"),
        ("/api/analytics/usage?to=2026-13-01T00:00:00Z", "to"),
        (
            "/api/analytics/usage?from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z",
            "from",
        ),
        (
            "/api/analytics/usage?from=2020-01-01T00:00:00Z&to=2026-01-01T00:00:00Z",
            "to",
        ),
        (
            "/api/analytics/usage?groupBy=hour&from=2026-01-01T00:00:00Z&to=2026-03-01T00:00:00Z",
            "to",
        ),
        ("/api/analytics/usage?keyId=nope", "keyId"),
        (
            "/api/analytics/usage?shareId=key_01AAAAAAAAAAAAAAAAAAAAAAAA",
            "shareId",
        ),
        ("/api/analytics/usage?teamId=nope", "teamId"),
        ("/api/analytics/usage?format=xml", "format"),
        ("/api/analytics/usage?colour=blue", "query"),
        ("/api/analytics/billing?month=2026-13", "month"),
        ("/api/analytics/billing?month=november", "month"),
        ("/api/analytics/billing?year=2026", "query"),
    ];
    for (path, field) in cases {
        let reply = api.get(path, &ann.token).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{path}: {}",
            reply.text
        );
        assert_eq!(reply.code(), "validation_failed", "{path}");
        assert_eq!(reply.body["error"]["field"], field, "{path}");
    }
    let unknown_team = api
        .get(
            "/api/analytics/usage?teamId=team_01AAAAAAAAAAAAAAAAAAAAAAAA",
            &ann.token,
        )
        .await;
    assert_eq!(unknown_team.status, StatusCode::NOT_FOUND);
    for (method, path, status) in [
        (
            Method::POST,
            "/api/analytics/usage",
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (Method::GET, "/api/analytics", StatusCode::NOT_FOUND),
        (Method::GET, "/api/analytics/usage/x", StatusCode::NOT_FOUND),
    ] {
        let reply = api.call(method.clone(), path, Some(&ann.token), None).await;
        assert_eq!(reply.status, status, "{method} {path}");
    }
    for path in ["/api/analytics/usage", "/api/analytics/billing"] {
        let reply = api.call(Method::GET, path, None, None).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{path}");
    }
    // An empty range is a valid answer with no rows.
    let empty = api
        .get("/api/analytics/usage?groupBy=model", &ann.token)
        .await;
    assert_eq!(empty.status, StatusCode::OK, "{}", empty.text);
    assert_eq!(empty.body["rows"], json!([]));
    assert_eq!(empty.body["totals"]["requests"], 0);
}

#[tokio::test]
async fn raw_events_expire_only_once_rolled_up_and_their_figures_stay() {
    let feen = Feen::start().await;
    let api = Api::new(&feen.base);
    let mock = MockProvider::start(SECRET).await;
    let ann = api.signup("retention").await;
    let key = api.add_key(&ann, "openai", SECRET, &mock.base_url()).await;
    let (old, old_token) = api.mint(&ann, &key, json!({})).await;
    let (_, new_token) = api.mint(&ann, &key, json!({})).await;
    for token in [&old_token, &old_token, &new_token] {
        assert_eq!(
            api.chat(token, chat("gpt-4o-mini")).await.status,
            StatusCode::OK
        );
    }
    settled(&feen, 3).await;
    // The old share's usage was 120 days ago, past the 90-day retention.
    let db = feen.db().await;
    db.execute(
        "UPDATE usage_events SET started_at = started_at - $1 WHERE share_id = $2",
        &[(120 * DAY_MS).into(), old.as_str().into()],
    )
    .await
    .expect("age events");
    let before = events(&feen).await;
    let old_at = before
        .iter()
        .find(|e| e.share == old)
        .expect("old")
        .started_at;
    let range = format!(
        "from={}&to={}&groupBy=share",
        to_rfc3339(day_floor(old_at)),
        to_rfc3339(day_floor(old_at) + DAY_MS)
    );
    let live = analytics(&api, &ann, &range).await;
    assert_eq!(rows_of(&live)[&old]["requests"], 2);
    let usage_before = api
        .get(&format!("/api/shared/{old}/usage"), &ann.token)
        .await;
    assert_eq!(usage_before.body["totals"]["requests"], 2);

    feen.run_jobs().await;
    let after = events(&feen).await;
    assert_eq!(
        after.len(),
        1,
        "the expired events are gone, today's is kept"
    );
    assert!(after.iter().all(|e| e.share != old));
    let rolled = analytics(&api, &ann, &range).await;
    assert_eq!(
        rolled.body["rows"], live.body["rows"],
        "the rollups kept their figures"
    );
    let usage_after = api
        .get(&format!("/api/shared/{old}/usage"), &ann.token)
        .await;
    assert_eq!(
        usage_after.body["totals"], usage_before.body["totals"],
        "a share's totals count what only the rollups hold"
    );
    // A second run changes nothing.
    feen.run_jobs().await;
    assert_eq!(
        analytics(&api, &ann, &range).await.body["rows"],
        live.body["rows"]
    );
}
