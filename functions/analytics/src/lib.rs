//! The analytics function (`/api/analytics`): usage figures over a time range, grouped by hour,
//! day, model, key, share or team, with filters, as JSON or CSV; and billing per owner and
//! month, per key and per share.
//!
//! Times are whole UTC hours (`from` rounds down, `to` up). Figures older than what the
//! aggregation job rolled up (at most the start of today) come from the rollups, the rest from
//! the raw events; both give the same numbers. The caller sees their own usage and that of every
//! team they belong to (`teamId` narrows to one team); see `feen_core::authz`.

use std::collections::{BTreeMap, HashMap};

use feen_core::analytics::{
    DAY_MS, Figures, GroupBy, HOUR_MS, hour_ceil, hour_floor, month_label, parse_month, usd,
};
use feen_core::authz::{self, Owner};
use feen_core::ids::{KeyId, ShareId};
use feen_core::timefmt::{parse_rfc3339, to_rfc3339};
use feen_core::{Body, Error};
use feen_service::access::new_owner;
use feen_service::auth::{Caller, authenticate};
use feen_service::request::{query, segments};
use feen_service::{Ctx, Req, Resp, json, respond};
use feen_store::analytics::{self, Query};
use http::{Method, StatusCode};
use serde_json::json;

/// The path prefix this function serves.
pub const PREFIX: &str = "/api/analytics";

/// The longest range a query may span, and with hourly grouping.
const MAX_RANGE_MS: i64 = 400 * DAY_MS;
const MAX_HOURLY_RANGE_MS: i64 = 31 * DAY_MS;
/// The range when none is given: the last seven days.
const DEFAULT_RANGE_MS: i64 = 7 * DAY_MS;

/// Serves `/api/analytics*`.
pub async fn handle(req: Req, ctx: &Ctx) -> Resp {
    respond(route(req, ctx).await)
}

async fn route(req: Req, ctx: &Ctx) -> Result<Resp, Error> {
    let path = req.uri().path().to_owned();
    let segs = segments(&path, PREFIX).ok_or(Error::NotFound("route"))?;
    match (segs.as_slice(), req.method()) {
        (["usage"], &Method::GET) => usage(&req, ctx).await,
        (["billing"], &Method::GET) => billing(&req, ctx).await,
        (["usage" | "billing"], _) => Err(Error::MethodNotAllowed),
        _ => Err(Error::NotFound("route")),
    }
}

type Params = HashMap<String, String>;

fn refuse_unknown(params: &Params, known: &[&str]) -> Result<(), Error> {
    match params.keys().find(|k| !known.contains(&k.as_str())) {
        Some(unknown) => Err(Error::invalid(
            "query",
            format!("unknown parameter {unknown:?}"),
        )),
        None => Ok(()),
    }
}

fn time_param(params: &Params, name: &'static str) -> Result<Option<i64>, Error> {
    params
        .get(name)
        .map(|v| parse_rfc3339(v).ok_or_else(|| Error::invalid(name, "must be an RFC 3339 time")))
        .transpose()
}

/// The owners whose usage a request covers: one team (`teamId`), or the caller and every team
/// they belong to.
async fn owners(ctx: &Ctx, caller: &Caller, params: &Params) -> Result<Vec<String>, Error> {
    if let Some(team) = params.get("teamId") {
        let owner = new_owner(ctx, caller, Some(team), authz::Action::ReadUsage).await?;
        return Ok(vec![owner.as_str().to_owned()]);
    }
    let mut owners = vec![caller.user.as_str().to_owned()];
    for (team, role) in feen_store::teams::of_user(ctx.db.as_ref(), &caller.user).await? {
        let owner = Owner::Team(team.id);
        if authz::decide(&caller.user, Some(role), authz::Action::ReadUsage, &owner).is_ok() {
            owners.push(owner.as_str().to_owned());
        }
    }
    Ok(owners)
}

/// Where rollups end and raw events begin.
async fn cut(ctx: &Ctx) -> Result<i64, Error> {
    Ok(analytics::cut(ctx.db.as_ref(), ctx.now_ms()).await?)
}

async fn usage(req: &Req, ctx: &Ctx) -> Result<Resp, Error> {
    let caller = authenticate(req, ctx).await?;
    let params = query(req);
    let known = [
        "from", "to", "groupBy", "teamId", "keyId", "shareId", "model", "format",
    ];
    refuse_unknown(&params, &known)?;
    let group = match params.get("groupBy") {
        None => GroupBy::Day,
        Some(g) => GroupBy::parse(g).ok_or_else(|| {
            Error::invalid("groupBy", "must be hour, day, model, key, share or team")
        })?,
    };
    let csv = match params.get("format").map(String::as_str) {
        None | Some("json") => false,
        Some("csv") => true,
        Some(_) => return Err(Error::invalid("format", "must be json or csv")),
    };
    let to = hour_ceil(time_param(&params, "to")?.unwrap_or_else(|| ctx.now_ms()));
    let from = hour_floor(time_param(&params, "from")?.unwrap_or(to - DEFAULT_RANGE_MS));
    if from >= to {
        return Err(Error::invalid("from", "must be before to"));
    }
    let max = if group == GroupBy::Hour {
        MAX_HOURLY_RANGE_MS
    } else {
        MAX_RANGE_MS
    };
    if to - from > max {
        return Err(Error::invalid(
            "to",
            format!("a range may span at most {} days", max / DAY_MS),
        ));
    }
    let key = params.get("keyId").map(String::as_str);
    if key.is_some_and(|k| KeyId::parse(k).is_none()) {
        return Err(Error::invalid("keyId", "is not a key id"));
    }
    let share = params.get("shareId").map(String::as_str);
    if share.is_some_and(|s| ShareId::parse(s).is_none()) {
        return Err(Error::invalid("shareId", "is not a share id"));
    }
    let owners = owners(ctx, &caller, &params).await?;
    let q = Query {
        owners: &owners,
        key,
        share,
        model: params.get("model").map(String::as_str),
        group,
        from,
        to,
    };
    let cut = cut(ctx).await?;
    let groups = analytics::usage(ctx.db.as_ref(), &q, cut).await?;
    let mut totals = Figures::default();
    for figures in groups.values() {
        totals.add(figures);
    }
    if csv {
        return Ok(csv_response(group, &groups, from, to));
    }
    let rows: Vec<_> = groups
        .iter()
        .map(|(name, figures)| {
            let mut row = serde_json::to_value(figures.summary()).unwrap_or_default();
            row["group"] = name.as_str().into();
            row
        })
        .collect();
    let rolled_up_to = (cut > from).then(|| to_rfc3339(cut.min(to)));
    Ok(json(
        StatusCode::OK,
        &json!({
            "from": to_rfc3339(from),
            "to": to_rfc3339(to),
            "groupBy": group.as_str(),
            "rolledUpTo": rolled_up_to,
            "rows": rows,
            "totals": totals.summary(),
        }),
    ))
}

/// A CSV field: quoted when it must be (RFC 4180), and never read as a formula by a
/// spreadsheet (model names come from whoever holds a token), whichever separator the
/// spreadsheet's locale splits on: every piece that starts after a `,`, `;` or tab, as well as
/// the field itself, has a `'` put before a leading `=`, `+`, `-`, `@`, tab or carriage return,
/// and a field holding any of those separators is quoted.
fn csv_field(text: &str) -> String {
    const TRIGGERS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];
    const SEPARATORS: [char; 3] = [',', ';', '\t'];
    let mut safe = String::with_capacity(text.len() + 2);
    let mut at_start = true;
    for c in text.chars() {
        if at_start && TRIGGERS.contains(&c) {
            safe.push('\'');
        }
        safe.push(c);
        at_start = SEPARATORS.contains(&c);
    }
    if safe.contains([',', ';', '"', '\n', '\r', '\t']) {
        format!("\"{}\"", safe.replace('"', "\"\""))
    } else {
        safe
    }
}

fn csv_response(group: GroupBy, groups: &BTreeMap<String, Figures>, from: i64, to: i64) -> Resp {
    let mut out = format!(
        "{},requests,errors,rate_limited,refused,input_tokens,output_tokens,cost_usd,unpriced_requests,latency_p50_ms,latency_p95_ms,latency_p99_ms\r\n",
        group.as_str()
    );
    let opt = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_default();
    for (name, f) in groups {
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{},{},{}\r\n",
            csv_field(name),
            f.requests,
            f.errors,
            f.rate_limited,
            f.refused,
            f.input_tokens,
            f.output_tokens,
            usd(f.cost_micros),
            f.unpriced,
            opt(f.percentile(0.5)),
            opt(f.percentile(0.95)),
            opt(f.percentile(0.99)),
        ));
    }
    let name = format!(
        "attachment; filename=\"feen-usage-{}-{}.csv\"",
        &to_rfc3339(from).get(..10).unwrap_or("from"),
        &to_rfc3339(to - HOUR_MS).get(..10).unwrap_or("to"),
    );
    let mut resp = http::Response::new(Body::from(out));
    let headers = resp.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    if let Ok(value) = http::HeaderValue::from_str(&name) {
        headers.insert(http::header::CONTENT_DISPOSITION, value);
    }
    resp
}

async fn billing(req: &Req, ctx: &Ctx) -> Result<Resp, Error> {
    let caller = authenticate(req, ctx).await?;
    let params = query(req);
    refuse_unknown(&params, &["month", "teamId"])?;
    let now = ctx.now_ms();
    let month = match params.get("month") {
        Some(m) => m.clone(),
        None => month_label(now),
    };
    let (start, end) =
        parse_month(&month).ok_or_else(|| Error::invalid("month", "must be YYYY-MM"))?;
    let team = params.get("teamId").map(String::as_str);
    let owner = new_owner(ctx, &caller, team, authz::Action::ReadUsage).await?;
    let cut = cut(ctx).await?;
    // A month wholly rolled up is read from its billing rollup; a month still running is added
    // up from the day rollups and today's events, like any other query.
    let closed = end <= cut;
    let mut by_share: BTreeMap<String, (String, Figures)> = BTreeMap::new();
    let mut by_key: BTreeMap<String, Figures> = BTreeMap::new();
    if closed {
        for row in analytics::billing(ctx.db.as_ref(), owner.as_str(), &month).await? {
            let figures = Figures {
                requests: row.requests,
                cost_micros: row.cost_micros,
                unpriced: row.unpriced,
                ..Figures::default()
            };
            by_key.entry(row.key.clone()).or_default().add(&figures);
            by_share.insert(row.share, (row.key, figures));
        }
    } else {
        let owners = [owner.as_str().to_owned()];
        let q = |group| Query {
            owners: &owners,
            key: None,
            share: None,
            model: None,
            group,
            from: start,
            to: end,
        };
        by_key = analytics::usage(ctx.db.as_ref(), &q(GroupBy::Key), cut).await?;
        // The key of each share, while it exists (a deleted key takes its shares with it).
        let key_of: HashMap<String, String> = feen_store::shares::list(ctx.db.as_ref(), &owner)
            .await?
            .into_iter()
            .map(|s| (s.id.as_str().to_owned(), s.key.as_str().to_owned()))
            .collect();
        for (share, figures) in analytics::usage(ctx.db.as_ref(), &q(GroupBy::Share), cut).await? {
            let key = key_of.get(&share).cloned().unwrap_or_default();
            by_share.insert(share, (key, figures));
        }
    }
    let mut total = Figures::default();
    for figures in by_key.values() {
        total.add(figures);
    }
    let line = |f: &Figures| {
        json!({
            "requests": f.requests,
            "costMicros": f.cost_micros,
            "costUsd": f.cost_micros as f64 / 1_000_000.0,
            "unpricedRequests": f.unpriced,
        })
    };
    let with = |mut v: serde_json::Value, field: &str, id: &str| {
        v[field] = id.into();
        v
    };
    let shares: Vec<_> = by_share
        .iter()
        .map(|(share, (key, f))| with(with(line(f), "shareId", share), "keyId", key))
        .collect();
    let keys: Vec<_> = by_key
        .iter()
        .map(|(key, f)| with(line(f), "keyId", key))
        .collect();
    Ok(json(
        StatusCode::OK,
        &json!({
            "ownerId": owner.as_str(),
            "month": month,
            "final": closed,
            "total": line(&total),
            "byKey": keys,
            "byShare": shares,
        }),
    ))
}

// The Cloudflare Workers entry point: this function as a Worker of its own.
#[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
feen_workers::fetch_entry!(handle);

// The Spin entry point: this function as a component of its own.
#[cfg(all(target_arch = "wasm32", target_os = "wasi"))]
feen_spin::http_entry!(handle);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_and_never_formulas() {
        assert_eq!(csv_field("gpt-4o"), "gpt-4o");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(csv_field("-1"), "'-1");
        assert_eq!(csv_field("@x"), "'@x");
        // Split on `;` (or `,`, or a tab) by a locale, no piece starts a formula.
        assert_eq!(csv_field("gpt;=1+1"), "\"gpt;'=1+1\"");
        assert_eq!(csv_field("a,@SUM(A1)"), "\"a,'@SUM(A1)\"");
        assert_eq!(csv_field("a\t-2;+3"), "\"a\t'-2;'+3\"");
        assert_eq!(csv_field("a;b"), "\"a;b\"");
        assert_eq!(csv_field("a-b"), "a-b");
    }
}
