//! The audit function (`/api/audit`): the caller's audit log, newest first with filters and a
//! cursor, and a check of its hash chain. A user sees their own chain, and with `teamId` the
//! chain of a team they administer (admins and the owner; see `feen_core::authz`).

use feen_core::Error;
use feen_core::audit::{self, Action};
use feen_core::authz::{self, Owner};
use feen_core::timefmt::{parse_rfc3339, to_rfc3339};
use feen_service::access::new_owner;
use feen_service::auth::{Caller, authenticate};
use feen_service::request::{query, segments};
use feen_service::{Ctx, Req, Resp, json, respond};
use feen_store::audit::{Entry, Filter};
use http::{Method, StatusCode};
use serde_json::json;

/// The path prefix this function serves.
pub const PREFIX: &str = "/api/audit";

/// The largest page, and the default.
const MAX_PAGE: i64 = 200;
const DEFAULT_PAGE: i64 = 50;
/// The most rows one verification reads.
const MAX_VERIFY: i64 = 10_000;

/// Serves `/api/audit*`.
pub async fn handle(req: Req, ctx: &Ctx) -> Resp {
    respond(route(req, ctx).await)
}

async fn route(req: Req, ctx: &Ctx) -> Result<Resp, Error> {
    let path = req.uri().path().to_owned();
    let segs = segments(&path, PREFIX).ok_or(Error::NotFound("route"))?;
    match (segs.as_slice(), req.method()) {
        ([], &Method::GET) => list(&req, ctx).await,
        (["verify"], &Method::GET) => verify(&req, ctx).await,
        ([] | ["verify"], _) => Err(Error::MethodNotAllowed),
        _ => Err(Error::NotFound("route")),
    }
}

fn entry_json(e: &Entry) -> serde_json::Value {
    json!({
        "id": e.id,
        "seq": e.seq,
        "actorId": e.actor,
        "action": e.action,
        "resourceType": e.resource_type,
        "resourceId": e.resource_id,
        "at": to_rfc3339(e.at_ms),
        "clientIp": e.client_ip,
        "userAgent": e.user_agent,
        "details": serde_json::from_str::<serde_json::Value>(&e.details).unwrap_or_default(),
        "hash": e.hash,
    })
}

fn int_param(
    params: &std::collections::HashMap<String, String>,
    name: &'static str,
) -> Result<Option<i64>, Error> {
    params
        .get(name)
        .map(|v| {
            v.parse::<i64>()
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| Error::invalid(name, "must be a positive integer"))
        })
        .transpose()
}

fn time_param(
    params: &std::collections::HashMap<String, String>,
    name: &'static str,
) -> Result<Option<i64>, Error> {
    params
        .get(name)
        .map(|v| parse_rfc3339(v).ok_or_else(|| Error::invalid(name, "must be an RFC 3339 time")))
        .transpose()
}

/// Whose chain a request reads: the team named by `teamId` (if the caller may read its audit
/// log), or the caller's own.
async fn chain_owner(
    ctx: &Ctx,
    caller: &Caller,
    params: &std::collections::HashMap<String, String>,
) -> Result<Owner, Error> {
    let team = params.get("teamId").map(String::as_str);
    new_owner(ctx, caller, team, authz::Action::ReadAudit).await
}

async fn list(req: &Req, ctx: &Ctx) -> Result<Resp, Error> {
    let caller = authenticate(req, ctx).await?;
    let params = query(req);
    if let Some(unknown) = params.keys().find(|k| {
        ![
            "teamId",
            "action",
            "resourceId",
            "from",
            "to",
            "limit",
            "cursor",
        ]
        .contains(&k.as_str())
    }) {
        return Err(Error::invalid(
            "query",
            format!("unknown parameter {unknown:?}"),
        ));
    }
    let action = match params.get("action") {
        Some(a) => Some(
            Action::parse(a)
                .ok_or_else(|| Error::invalid("action", "is not a known action"))?
                .as_str()
                .to_owned(),
        ),
        None => None,
    };
    let limit = int_param(&params, "limit")?.unwrap_or(DEFAULT_PAGE);
    if limit > MAX_PAGE {
        return Err(Error::invalid("limit", "must be at most 200"));
    }
    let filter = Filter {
        action,
        resource_id: params.get("resourceId").cloned(),
        from_ms: time_param(&params, "from")?,
        to_ms: time_param(&params, "to")?,
        before_seq: int_param(&params, "cursor")?,
    };
    let owner = chain_owner(ctx, &caller, &params).await?;
    let entries = feen_store::audit::list(ctx.db.as_ref(), owner.as_str(), &filter, limit).await?;
    let next = (entries.len() as i64 == limit)
        .then(|| entries.last().map(|e| e.seq.to_string()))
        .flatten();
    let items: Vec<_> = entries.iter().map(entry_json).collect();
    Ok(json(
        StatusCode::OK,
        &json!({ "entries": items, "nextCursor": next }),
    ))
}

async fn verify(req: &Req, ctx: &Ctx) -> Result<Resp, Error> {
    let caller = authenticate(req, ctx).await?;
    let params = query(req);
    let owner = chain_owner(ctx, &caller, &params).await?;
    let owner = owner.as_str();
    let head = feen_store::audit::head(ctx.db.as_ref(), owner).await?;
    let from = int_param(&params, "fromSeq")?.unwrap_or(1);
    let to = int_param(&params, "toSeq")?.unwrap_or(head).min(head);
    if to >= from && to - from + 1 > MAX_VERIFY {
        return Err(Error::invalid(
            "toSeq",
            "a range may hold at most 10000 rows",
        ));
    }
    let rows = if to >= from {
        feen_store::audit::range(ctx.db.as_ref(), owner, from, to).await?
    } else {
        Vec::new()
    };
    let stored: Vec<_> = rows.iter().map(Entry::stored).collect();
    // Rows deleted from the end leave a shorter, intact chain: the head anchored outside the
    // database (when the counter store still has it) shows them.
    let anchored = feen_service::audit::anchored_head(ctx, owner).await;
    // A range must start where asked and end where asked: rows missing at either end are gaps.
    let result = match (rows.first(), rows.last()) {
        _ if anchored.is_some_and(|a| a > head) => Err(audit::Break {
            seq: head + 1,
            reason: "truncated",
        }),
        (Some(first), _) if first.seq != from => Err(audit::Break {
            seq: from,
            reason: "gap",
        }),
        (_, Some(last)) if last.seq != to => Err(audit::Break {
            seq: last.seq + 1,
            reason: "gap",
        }),
        (None, _) if to >= from => Err(audit::Break {
            seq: from,
            reason: "gap",
        }),
        _ => audit::verify(&stored),
    };
    let checked = rows.len();
    Ok(json(
        StatusCode::OK,
        &match result {
            Ok(()) => json!({ "valid": true, "checked": checked, "fromSeq": from, "toSeq": to }),
            Err(b) => json!({ "valid": false, "checked": checked, "fromSeq": from, "toSeq": to,
                              "brokenAt": b }),
        },
    ))
}

// The Cloudflare Workers entry point: this function as a Worker of its own.
#[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
feen_workers::fetch_entry!(handle);

// The Spin entry point: this function as a component of its own.
#[cfg(all(target_arch = "wasm32", target_os = "wasi"))]
feen_spin::http_entry!(handle);
