//! The shares function (`/api/shared`): mint a Feen token for a key with limits, list, read,
//! update limits, revoke, regenerate, and read a share's usage.
//!
//! The token is shown once, in the response that mints (or regenerates) it; only its hash is
//! stored. Every change rewrites the proxy's share cache in the same request, so it takes effect
//! on the next proxied call on every replica.

use feen_core::crypto::token::{self, TokenKind};
use feen_core::ids::{KeyId, ShareId, UserId};
use feen_core::limits::{MAX_ALLOWED_MODELS, Policy};
use feen_core::timefmt::to_rfc3339;
use feen_core::{Error, validate};
use feen_service::auth::authenticate;
use feen_service::request::{MAX_JSON_BODY, future_time, json_body, nullable, segments};
use feen_service::response::no_content;
use feen_service::{Ctx, Req, Resp, cache, json, respond};
use feen_store::shares::{self, HashScope, Share};
use feen_store::{keys, usage};
use http::{Method, StatusCode};
use serde::Deserialize;
use serde_json::json;

/// The path prefix this function serves.
pub const PREFIX: &str = "/api/shared";

const MAX_RATE_LIMIT: u64 = 1_000_000;
const MAX_DAILY_LIMIT: u64 = 100_000_000;

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
    json!({
        "id": share.id,
        "name": share.name,
        "apiKeyId": share.key,
        "tokenHint": share.token_hint,
        "rateLimit": share.policy.rate_limit,
        "dailyLimit": share.policy.daily_limit,
        "expiresAt": share.policy.expires_at_ms.map(to_rfc3339),
        "allowedModels": share.policy.allowed_models,
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

fn parse_id(id: &str) -> Result<ShareId, Error> {
    ShareId::parse(id).ok_or(Error::NotFound("share"))
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

fn models(list: Vec<String>) -> Result<Vec<String>, Error> {
    if list.len() > MAX_ALLOWED_MODELS {
        return Err(Error::invalid(
            "allowedModels",
            format!("must list at most {MAX_ALLOWED_MODELS} models"),
        ));
    }
    list.into_iter()
        .map(|m| {
            let m = m.trim().to_owned();
            if m.is_empty() || m.len() > 200 || m.chars().any(char::is_control) {
                Err(Error::invalid(
                    "allowedModels",
                    "each entry must be 1 to 200 printable characters",
                ))
            } else {
                Ok(m)
            }
        })
        .collect()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CreateBody {
    api_key_id: String,
    name: String,
    rate_limit: Option<u64>,
    daily_limit: Option<u64>,
    expires_at: Option<String>,
    #[serde(default)]
    allowed_models: Vec<String>,
}

async fn create(req: Req, ctx: &Ctx) -> Result<Resp, Error> {
    let caller = authenticate(&req, ctx).await?;
    let body: CreateBody = json_body(req, MAX_JSON_BODY).await?;
    let now = ctx.now_ms();
    let name = validate::name("name", &body.name)?;
    let policy = Policy {
        rate_limit: limit("rateLimit", body.rate_limit, MAX_RATE_LIMIT)?,
        daily_limit: limit("dailyLimit", body.daily_limit, MAX_DAILY_LIMIT)?,
        expires_at_ms: future_time("expiresAt", body.expires_at.as_deref(), now)?,
        allowed_models: models(body.allowed_models)?,
    };
    let key_id = KeyId::parse(&body.api_key_id).ok_or(Error::NotFound("key"))?;
    keys::get(ctx.db.as_ref(), &caller.user, &key_id)
        .await?
        .ok_or(Error::NotFound("key"))?;
    let (token, hash) = token::issue(TokenKind::Share, ctx.random());
    let share = Share {
        id: ShareId::new(now, ctx.random()),
        user: caller.user,
        key: key_id,
        name,
        token_hint: token_hint(token.expose()),
        policy,
        created_at: now,
        updated_at: now,
        revoked_at: None,
    };
    shares::insert(ctx.db.as_ref(), &share, &hash).await?;
    Ok(json(
        StatusCode::CREATED,
        &with_token(share_json(&share, now), token.expose()),
    ))
}

async fn list(req: Req, ctx: &Ctx) -> Result<Resp, Error> {
    let caller = authenticate(&req, ctx).await?;
    let now = ctx.now_ms();
    let items: Vec<_> = shares::list(ctx.db.as_ref(), &caller.user)
        .await?
        .iter()
        .map(|s| share_json(s, now))
        .collect();
    Ok(json(StatusCode::OK, &json!({ "shares": items })))
}

async fn owned(ctx: &Ctx, user: &UserId, id: &ShareId) -> Result<Share, Error> {
    shares::get(ctx.db.as_ref(), user, id)
        .await?
        .ok_or(Error::NotFound("share"))
}

async fn get(req: Req, ctx: &Ctx, id: &str) -> Result<Resp, Error> {
    let caller = authenticate(&req, ctx).await?;
    let share = owned(ctx, &caller.user, &parse_id(id)?).await?;
    Ok(json(StatusCode::OK, &share_json(&share, ctx.now_ms())))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct UpdateBody {
    name: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    rate_limit: Option<Option<u64>>,
    #[serde(default, deserialize_with = "nullable")]
    daily_limit: Option<Option<u64>>,
    #[serde(default, deserialize_with = "nullable")]
    expires_at: Option<Option<String>>,
    allowed_models: Option<Vec<String>>,
}

async fn update(req: Req, ctx: &Ctx, id: &str) -> Result<Resp, Error> {
    let caller = authenticate(&req, ctx).await?;
    let id = parse_id(id)?;
    let body: UpdateBody = json_body(req, MAX_JSON_BODY).await?;
    let now = ctx.now_ms();
    let mut share = owned(ctx, &caller.user, &id).await?;
    if share.revoked_at.is_some() {
        return Err(Error::Conflict(
            "this share is revoked; mint a new one".into(),
        ));
    }
    if let Some(name) = body.name {
        share.name = validate::name("name", &name)?;
    }
    if let Some(v) = body.rate_limit {
        share.policy.rate_limit = limit("rateLimit", v, MAX_RATE_LIMIT)?;
    }
    if let Some(v) = body.daily_limit {
        share.policy.daily_limit = limit("dailyLimit", v, MAX_DAILY_LIMIT)?;
    }
    if let Some(v) = body.expires_at {
        share.policy.expires_at_ms = future_time("expiresAt", v.as_deref(), now)?;
    }
    if let Some(list) = body.allowed_models {
        share.policy.allowed_models = models(list)?;
    }
    if !shares::update(ctx.db.as_ref(), &share, now).await? {
        return Err(Error::NotFound("share"));
    }
    cache::refresh_shares(ctx, &caller.user, HashScope::Share(&id)).await?;
    let share = owned(ctx, &caller.user, &id).await?;
    Ok(json(StatusCode::OK, &share_json(&share, now)))
}

async fn revoke(req: Req, ctx: &Ctx, id: &str) -> Result<Resp, Error> {
    let caller = authenticate(&req, ctx).await?;
    let id = parse_id(id)?;
    let share = owned(ctx, &caller.user, &id).await?;
    if share.revoked_at.is_none() {
        shares::revoke(ctx.db.as_ref(), &caller.user, &id, ctx.now_ms()).await?;
    }
    let hashes = shares::token_hashes(ctx.db.as_ref(), &caller.user, HashScope::Share(&id)).await?;
    cache::tombstone(ctx, &hashes).await?;
    Ok(no_content())
}

async fn regenerate(req: Req, ctx: &Ctx, id: &str) -> Result<Resp, Error> {
    let caller = authenticate(&req, ctx).await?;
    let id = parse_id(id)?;
    let old = shares::token_hashes(ctx.db.as_ref(), &caller.user, HashScope::Share(&id)).await?;
    let now = ctx.now_ms();
    let (token, hash) = token::issue(TokenKind::Share, ctx.random());
    if !shares::replace_token(
        ctx.db.as_ref(),
        &caller.user,
        &id,
        &hash,
        &token_hint(token.expose()),
        now,
    )
    .await?
    {
        let share = owned(ctx, &caller.user, &id).await?;
        if share.revoked_at.is_some() {
            return Err(Error::Conflict(
                "this share is revoked; mint a new one".into(),
            ));
        }
        return Err(Error::NotFound("share"));
    }
    cache::tombstone(ctx, &old).await?;
    let share = owned(ctx, &caller.user, &id).await?;
    Ok(json(
        StatusCode::OK,
        &with_token(share_json(&share, now), token.expose()),
    ))
}

async fn usage_of(req: Req, ctx: &Ctx, id: &str) -> Result<Resp, Error> {
    let caller = authenticate(&req, ctx).await?;
    let id = parse_id(id)?;
    owned(ctx, &caller.user, &id).await?;
    let totals = usage::share_totals(ctx.db.as_ref(), &caller.user, &id, 0).await?;
    let events = usage::recent(ctx.db.as_ref(), &caller.user, &id, 100).await?;
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
                "startedAt": to_rfc3339(e.started_at_ms),
                "durationMs": e.duration_ms,
                "outcome": e.outcome,
            })
        })
        .collect();
    Ok(json(
        StatusCode::OK,
        &json!({
            "totals": { "requests": totals.requests, "inputTokens": totals.input_tokens, "outputTokens": totals.output_tokens },
            "events": events,
        }),
    ))
}
