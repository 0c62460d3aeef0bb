//! The shares function (`/api/shared`): mint a Feen token for a key with limits, list, read,
//! update limits, revoke, regenerate, and read a share's usage.
//!
//! The token is shown once, in the response that mints (or regenerates) it; only its hash is
//! stored. Every change rewrites the proxy's share cache in the same request, so it takes effect
//! on the next proxied call on every replica.

use feen_core::audit::Action;
use feen_core::authz::{self, Owner};
use feen_core::crypto::token::{self, TokenKind};
use feen_core::ids::{KeyId, ShareId};
use feen_core::limits::{self, Budget, MAX_LIST, Period, Policy};
use feen_core::timefmt::to_rfc3339;
use feen_core::{Error, validate};
use feen_service::access::authorize;
use feen_service::audit::{self, Origin};
use feen_service::auth::{Caller, authenticate};
use feen_service::request::{MAX_JSON_BODY, future_time, json_body, nullable, segments};
use feen_service::response::no_content;
use feen_service::{Ctx, Req, Resp, cache, json, respond};
use feen_store::shares::{self, HashScope, Share};
use feen_store::{keys, usage};
use http::{Method, StatusCode};
use ipnet::IpNet;
use serde::Deserialize;
use serde_json::json;

/// The path prefix this function serves.
pub const PREFIX: &str = "/api/shared";

const MAX_RATE_LIMIT: u64 = 1_000_000;
const MAX_DAILY_LIMIT: u64 = 100_000_000;
const MAX_TOKENS: u64 = 1_000_000_000_000;
const MAX_BUDGET_USD: f64 = 1_000_000.0;

/// Serves `/api/shared*`.
pub async fn handle(req: Req, ctx: &Ctx) -> Resp {
    respond(route(req, ctx).await)
}

async fn route(req: Req, ctx: &Ctx) -> Result<Resp, Error> {
    let path = req.uri().path().to_owned();
    let segs = segments(&path, PREFIX).ok_or(Error::NotFound("route"))?;
    let method = req.method().clone();
    match (segs.as_slice(), &method) {
        ([], &Method::GET) => list(req, ctx).await,
        ([], &Method::POST) => create(req, ctx).await,
        ([id], &Method::GET) => get(req, ctx, id).await,
        ([id], &Method::PATCH) => update(req, ctx, id).await,
        ([id], &Method::DELETE) => revoke(req, ctx, id).await,
        ([id, "regenerate"], &Method::POST) => regenerate(req, ctx, id).await,
        ([id, "usage"], &Method::GET) => usage_of(req, ctx, id).await,
        ([] | [_], _) | ([_, "regenerate" | "usage"], _) => Err(Error::MethodNotAllowed),
        _ => Err(Error::NotFound("route")),
    }
}

fn status(share: &Share, now: i64) -> &'static str {
    if share.revoked_at.is_some() {
        "revoked"
    } else if share.policy.expires_at_ms.is_some_and(|at| at <= now) {
        "expired"
    } else {
        "active"
    }
}

/// The JSON shape of a share (never its token).
fn share_json(share: &Share, now: i64) -> serde_json::Value {
    let p = &share.policy;
    json!({
        "id": share.id,
        "teamId": share.owner.team(),
        "createdBy": share.created_by,
        "name": share.name,
        "apiKeyId": share.key,
        "tokenHint": share.token_hint,
        "rateLimit": p.rate_limit,
        "dailyLimit": p.daily_limit,
        "tokensPerMinute": p.tokens_per_minute,
        "tokensPerDay": p.tokens_per_day,
        "budgetUsd": p.budget.map(|b| b.usd_micros as f64 / 1_000_000.0),
        "budgetPeriod": p.budget.map(|b| b.period.as_str()),
        "maxUses": p.max_uses,
        "reserveTokens": p.reserve_tokens,
        "expiresAt": p.expires_at_ms.map(to_rfc3339),
        "allowedModels": p.allowed_models,
        "allowedEndpoints": p.allowed_endpoints,
        "allowedIps": p.allowed_ips.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "status": status(share, now),
        "createdAt": to_rfc3339(share.created_at),
        "updatedAt": to_rfc3339(share.updated_at),
        "revokedAt": share.revoked_at.map(to_rfc3339),
    })
}

fn with_token(mut body: serde_json::Value, token: &str) -> serde_json::Value {
    if let Some(obj) = body.as_object_mut() {
        obj.insert("token".into(), token.into());
    }
    body
}

fn token_hint(token: &str) -> String {
    format!(
        "{}...",
        token
            .chars()
            .take(TokenKind::Share.prefix().len() + 4)
            .collect::<String>()
    )
}

fn limit(field: &'static str, value: Option<u64>, max: u64) -> Result<Option<u64>, Error> {
    match value {
        Some(0) => Err(Error::invalid(
            field,
            "must be at least 1 (omit it or send null for no limit)",
        )),
        Some(v) if v > max => Err(Error::invalid(field, format!("must be at most {max}"))),
        other => Ok(other),
    }
}

fn patterns(field: &'static str, list: Vec<String>) -> Result<Vec<String>, Error> {
    if list.len() > MAX_LIST {
        return Err(Error::invalid(
            field,
            format!("must list at most {MAX_LIST} entries"),
        ));
    }
    list.into_iter()
        .map(|m| {
            let m = m.trim().to_owned();
            if m.is_empty() || m.len() > 200 || m.chars().any(char::is_control) {
                Err(Error::invalid(
                    field,
                    "each entry must be 1 to 200 printable characters",
                ))
            } else {
                Ok(m)
            }
        })
        .collect()
}

fn networks(list: Vec<String>) -> Result<Vec<IpNet>, Error> {
    if list.len() > MAX_LIST {
        return Err(Error::invalid(
            "allowedIps",
            format!("must list at most {MAX_LIST} entries"),
        ));
    }
    list.iter()
        .map(|text| {
            let text = text.trim();
            text.parse::<IpNet>()
                .or_else(|_| text.parse::<std::net::IpAddr>().map(IpNet::from))
                .map(|net| net.trunc())
                .map_err(|_| {
                    Error::invalid(
                        "allowedIps",
                        format!("{text:?} is not an IP address or CIDR range"),
                    )
                })
        })
        .collect()
}

fn budget(usd: Option<f64>, period: Option<&str>) -> Result<Option<Budget>, Error> {
    let Some(usd) = usd else {
        return match period {
            Some(_) => Err(Error::invalid("budgetPeriod", "needs budgetUsd")),
            None => Ok(None),
        };
    };
    if !usd.is_finite() || !(0.000_001..=MAX_BUDGET_USD).contains(&usd) {
        return Err(Error::invalid(
            "budgetUsd",
            format!("must be between 0.000001 and {MAX_BUDGET_USD}"),
        ));
    }
    let period = match period {
        None => Period::Month,
        Some(text) => Period::parse(text).ok_or_else(|| {
            Error::invalid("budgetPeriod", "must be one of day, week, month, lifetime")
        })?,
    };
    Ok(Some(Budget {
        usd_micros: (usd * 1_000_000.0).round() as u64,
        period,
    }))
}

/// The body of a mint (`POST`) or an update (`PATCH`). In an update an absent field keeps its
/// value and `null` clears it; in a mint both mean "no limit".
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ShareBody {
    api_key_id: Option<String>,
    name: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    rate_limit: Option<Option<u64>>,
    #[serde(default, deserialize_with = "nullable")]
    daily_limit: Option<Option<u64>>,
    #[serde(default, deserialize_with = "nullable")]
    tokens_per_minute: Option<Option<u64>>,
    #[serde(default, deserialize_with = "nullable")]
    tokens_per_day: Option<Option<u64>>,
    #[serde(default, deserialize_with = "nullable")]
    budget_usd: Option<Option<f64>>,
    #[serde(default, deserialize_with = "nullable")]
    budget_period: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    max_uses: Option<Option<u64>>,
    #[serde(default, deserialize_with = "nullable")]
    reserve_tokens: Option<Option<u64>>,
    #[serde(default, deserialize_with = "nullable")]
    expires_at: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    allowed_models: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "nullable")]
    allowed_endpoints: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "nullable")]
    allowed_ips: Option<Option<Vec<String>>>,
}

impl ShareBody {
    /// Applies the body's limit fields to `policy`, validating each.
    fn apply(self, policy: &mut Policy, now: i64) -> Result<(), Error> {
        if let Some(v) = self.rate_limit {
            policy.rate_limit = limit("rateLimit", v, MAX_RATE_LIMIT)?;
        }
        if let Some(v) = self.daily_limit {
            policy.daily_limit = limit("dailyLimit", v, MAX_DAILY_LIMIT)?;
        }
        if let Some(v) = self.tokens_per_minute {
            policy.tokens_per_minute = limit("tokensPerMinute", v, MAX_TOKENS)?;
        }
        if let Some(v) = self.tokens_per_day {
            policy.tokens_per_day = limit("tokensPerDay", v, MAX_TOKENS)?;
        }
        if self.budget_usd.is_some() || self.budget_period.is_some() {
            let usd = match self.budget_usd {
                Some(v) => v,
                None => policy.budget.map(|b| b.usd_micros as f64 / 1_000_000.0),
            };
            let period = match &self.budget_period {
                Some(v) => v.clone(),
                // `budgetUsd: null` clears the budget, and with it its period.
                None if usd.is_none() => None,
                None => policy.budget.map(|b| b.period.as_str().to_owned()),
            };
            policy.budget = budget(usd, period.as_deref())?;
        }
        if let Some(v) = self.max_uses {
            policy.max_uses = limit("maxUses", v, MAX_DAILY_LIMIT)?;
        }
        if let Some(v) = self.reserve_tokens {
            policy.reserve_tokens = limit("reserveTokens", v, MAX_TOKENS)?;
        }
        if let Some(v) = self.expires_at {
            policy.expires_at_ms = future_time("expiresAt", v.as_deref(), now)?;
        }
        if let Some(v) = self.allowed_models {
            policy.allowed_models = patterns("allowedModels", v.unwrap_or_default())?;
        }
        if let Some(v) = self.allowed_endpoints {
            let list = patterns("allowedEndpoints", v.unwrap_or_default())?;
            if list.iter().any(|p| !p.starts_with('/')) {
                return Err(Error::invalid(
                    "allowedEndpoints",
                    "each entry is a path starting with /",
                ));
            }
            policy.allowed_endpoints = list;
        }
        if let Some(v) = self.allowed_ips {
            policy.allowed_ips = networks(v.unwrap_or_default())?;
        }
        Ok(())
    }
}

async fn create(req: Req, ctx: &Ctx) -> Result<Resp, Error> {
    let caller = authenticate(&req, ctx).await?;
    let origin = Origin::of(&req);
    let mut body: ShareBody = json_body(req, MAX_JSON_BODY).await?;
    let now = ctx.now_ms();
    let name = validate::name("name", body.name.take().as_deref().unwrap_or(""))?;
    let key_id = body
        .api_key_id
        .take()
        .ok_or_else(|| Error::invalid("apiKeyId", "is required"))?;
    let mut policy = Policy::default();
    body.apply(&mut policy, now)?;
    // A share belongs to its key's owner: minting one needs the right to manage that owner's
    // shares (and to see the key at all).
    let key_id = KeyId::parse(&key_id).ok_or(Error::NotFound("key"))?;
    let owner = keys::owner_of(ctx.db.as_ref(), &key_id)
        .await?
        .ok_or(Error::NotFound("key"))?;
    authorize(ctx, &caller, &owner, authz::Action::ManageShares, "key").await?;
    let (token, hash) = token::issue(TokenKind::Share, ctx.random());
    let share = Share {
        id: ShareId::new(now, ctx.random()),
        owner,
        created_by: caller.user.clone(),
        key: key_id,
        name,
        token_hint: token_hint(token.expose()),
        policy,
        created_at: now,
        updated_at: now,
        revoked_at: None,
    };
    shares::insert(ctx.db.as_ref(), &share, &hash).await?;
    let details = json!({ "name": share.name, "apiKeyId": share.key });
    let target = ("share", share.id.as_str());
    audit::act(
        ctx,
        &origin,
        &caller.user,
        &share.owner,
        Action::ShareMinted,
        target,
        details,
    )
    .await;
    Ok(json(
        StatusCode::CREATED,
        &with_token(share_json(&share, now), token.expose()),
    ))
}

async fn list(req: Req, ctx: &Ctx) -> Result<Resp, Error> {
    let caller = authenticate(&req, ctx).await?;
    let now = ctx.now_ms();
    let visible = shares::visible(ctx.db.as_ref(), &caller.user).await?;
    let live = live_usage(ctx, &visible, now).await?;
    let items: Vec<_> = visible
        .iter()
        .zip(live)
        .map(|(s, live)| {
            let mut body = share_json(s, now);
            if let Some(obj) = body.as_object_mut() {
                obj.insert("live".into(), live);
            }
            body
        })
        .collect();
    Ok(json(StatusCode::OK, &json!({ "shares": items })))
}

/// What each limit of each share has counted in its current window, read in one round trip
/// from the counters the proxy checks (so requests in flight count with what they reserved):
/// `[{limit, used, max, resetsAt}]`, in USD for a budget; empty for a share that has ended.
async fn live_usage(ctx: &Ctx, list: &[Share], now: i64) -> Result<Vec<serde_json::Value>, Error> {
    let windows: Vec<Vec<limits::Window>> = list
        .iter()
        .map(|s| match status(s, now) {
            "active" => limits::windows(
                &s.id,
                &s.policy,
                now,
                limits::Reservation::default(),
                limits::Used::default(),
            ),
            _ => Vec::new(),
        })
        .collect();
    let keys: Vec<String> = windows
        .iter()
        .flatten()
        .map(|w| w.counter.key.clone())
        .collect();
    let mut values = ctx.kv.get_many(&keys).await?.into_iter();
    let mut out = Vec::with_capacity(list.len());
    for (share, windows) in list.iter().zip(windows) {
        let mut items = Vec::with_capacity(windows.len());
        let mut seed: Option<limits::Used> = None;
        for window in windows {
            let counted = values.next().flatten().and_then(|v| v.parse::<u64>().ok());
            let used = match (counted, window.resets_at_ms) {
                (Some(n), _) => n,
                (None, Some(_)) => 0,
                // A lifetime counter the counter store has lost starts again from the database.
                (None, None) => {
                    let used = match seed {
                        Some(used) => used,
                        None => *seed.insert(shares::used(ctx.db.as_ref(), &share.id).await?),
                    };
                    match window.kind {
                        limits::LimitKind::Budget => used.spent,
                        _ => used.uses,
                    }
                }
            };
            let in_unit = |n: u64| match window.kind {
                limits::LimitKind::Budget => json!(n as f64 / 1_000_000.0),
                _ => json!(n),
            };
            items.push(json!({
                "limit": window.kind.field(),
                "used": in_unit(used),
                "max": in_unit(window.counter.limit),
                "resetsAt": window.resets_at_ms.map(to_rfc3339),
            }));
        }
        out.push(serde_json::Value::Array(items));
    }
    Ok(out)
}

/// The share `id` names and its owner, once the caller is allowed `action` on it.
async fn locate(
    ctx: &Ctx,
    caller: &Caller,
    id: &str,
    action: authz::Action,
) -> Result<(ShareId, Owner), Error> {
    let id = ShareId::parse(id).ok_or(Error::NotFound("share"))?;
    let owner = shares::owner_of(ctx.db.as_ref(), &id)
        .await?
        .ok_or(Error::NotFound("share"))?;
    authorize(ctx, caller, &owner, action, "share").await?;
    Ok((id, owner))
}

async fn owned(ctx: &Ctx, owner: &Owner, id: &ShareId) -> Result<Share, Error> {
    shares::get(ctx.db.as_ref(), owner, id)
        .await?
        .ok_or(Error::NotFound("share"))
}

async fn get(req: Req, ctx: &Ctx, id: &str) -> Result<Resp, Error> {
    let caller = authenticate(&req, ctx).await?;
    let (id, owner) = locate(ctx, &caller, id, authz::Action::ReadShares).await?;
    let share = owned(ctx, &owner, &id).await?;
    Ok(json(StatusCode::OK, &share_json(&share, ctx.now_ms())))
}

async fn update(req: Req, ctx: &Ctx, id: &str) -> Result<Resp, Error> {
    let caller = authenticate(&req, ctx).await?;
    let origin = Origin::of(&req);
    let (id, owner) = locate(ctx, &caller, id, authz::Action::ManageShares).await?;
    let mut body: ShareBody = json_body(req, MAX_JSON_BODY).await?;
    let now = ctx.now_ms();
    if body.api_key_id.is_some() {
        return Err(Error::invalid(
            "apiKeyId",
            "cannot change; mint a new share for another key",
        ));
    }
    let mut share = owned(ctx, &owner, &id).await?;
    if share.revoked_at.is_some() {
        return Err(Error::Conflict(
            "this share is revoked; mint a new one".into(),
        ));
    }
    if let Some(name) = body.name.take() {
        share.name = validate::name("name", &name)?;
    }
    body.apply(&mut share.policy, now)?;
    if !shares::update(ctx.db.as_ref(), &share, now).await? {
        return Err(Error::NotFound("share"));
    }
    cache::refresh_shares(ctx, &owner, HashScope::Share(&id)).await?;
    let share = owned(ctx, &owner, &id).await?;
    let body = share_json(&share, now);
    let target = ("share", id.as_str());
    let action = Action::ShareUpdated;
    audit::act(
        ctx,
        &origin,
        &caller.user,
        &owner,
        action,
        target,
        body.clone(),
    )
    .await;
    Ok(json(StatusCode::OK, &body))
}

async fn revoke(req: Req, ctx: &Ctx, id: &str) -> Result<Resp, Error> {
    let caller = authenticate(&req, ctx).await?;
    let (id, owner) = locate(ctx, &caller, id, authz::Action::ManageShares).await?;
    let share = owned(ctx, &owner, &id).await?;
    if share.revoked_at.is_none() {
        shares::revoke(ctx.db.as_ref(), &owner, &id, ctx.now_ms()).await?;
        let target = ("share", id.as_str());
        let origin = Origin::of(&req);
        let action = Action::ShareRevoked;
        audit::act(
            ctx,
            &origin,
            &caller.user,
            &owner,
            action,
            target,
            json!({}),
        )
        .await;
    }
    let hashes = shares::token_hashes(ctx.db.as_ref(), &owner, HashScope::Share(&id)).await?;
    cache::tombstone(ctx, &hashes).await?;
    Ok(no_content())
}

async fn regenerate(req: Req, ctx: &Ctx, id: &str) -> Result<Resp, Error> {
    let caller = authenticate(&req, ctx).await?;
    let (id, owner) = locate(ctx, &caller, id, authz::Action::ManageShares).await?;
    let old = shares::token_hashes(ctx.db.as_ref(), &owner, HashScope::Share(&id)).await?;
    let now = ctx.now_ms();
    let (token, hash) = token::issue(TokenKind::Share, ctx.random());
    let hint = token_hint(token.expose());
    if !shares::replace_token(ctx.db.as_ref(), &owner, &id, &hash, &hint, now).await? {
        let share = owned(ctx, &owner, &id).await?;
        if share.revoked_at.is_some() {
            return Err(Error::Conflict(
                "this share is revoked; mint a new one".into(),
            ));
        }
        return Err(Error::NotFound("share"));
    }
    cache::tombstone(ctx, &old).await?;
    let share = owned(ctx, &owner, &id).await?;
    let target = ("share", id.as_str());
    let origin = Origin::of(&req);
    let action = Action::ShareRegenerated;
    audit::act(
        ctx,
        &origin,
        &caller.user,
        &owner,
        action,
        target,
        json!({}),
    )
    .await;
    Ok(json(
        StatusCode::OK,
        &with_token(share_json(&share, now), token.expose()),
    ))
}

async fn usage_of(req: Req, ctx: &Ctx, id: &str) -> Result<Resp, Error> {
    let caller = authenticate(&req, ctx).await?;
    let (id, owner) = locate(ctx, &caller, id, authz::Action::ReadShares).await?;
    let share = owned(ctx, &owner, &id).await?;
    let live = live_usage(ctx, std::slice::from_ref(&share), ctx.now_ms())
        .await?
        .pop()
        .unwrap_or_default();
    let totals = usage::share_totals(ctx.db.as_ref(), &owner, &id, 0).await?;
    let events = usage::recent(ctx.db.as_ref(), &owner, &id, 100).await?;
    let events: Vec<_> = events
        .iter()
        .map(|e| {
            json!({
                "requestId": e.request_id,
                "model": e.model,
                "endpoint": e.endpoint,
                "status": e.status,
                "streamed": e.streamed,
                "inputTokens": e.input_tokens,
                "outputTokens": e.output_tokens,
                "costMicros": e.cost_micros,
                "startedAt": to_rfc3339(e.started_at_ms),
                "durationMs": e.duration_ms,
                "outcome": e.outcome,
            })
        })
        .collect();
    Ok(json(
        StatusCode::OK,
        &json!({
            "totals": { "requests": totals.requests, "inputTokens": totals.input_tokens, "outputTokens": totals.output_tokens, "costMicros": totals.cost_micros },
            "events": events,
            "live": live,
        }),
    ))
}

// The Cloudflare Workers entry point: this function as a Worker of its own.
#[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
feen_workers::fetch_entry!(handle);

// The Spin entry point: this function as a component of its own.
#[cfg(all(target_arch = "wasm32", target_os = "wasi"))]
feen_spin::http_entry!(handle);
