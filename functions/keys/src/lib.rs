//! The keys function (`/api/keys`): add, list, get, rename, rotate and delete provider keys.
//!
//! The secret is sealed before it is stored and is never returned: responses carry a hint
//! (`sk-...wxyz`). Rotating or deleting a key updates the proxy's share cache in the same
//! request, so the next proxied call anywhere uses the new secret or is refused.

use feen_core::audit::Action;
use feen_core::authz::{self, Owner};
use feen_core::crypto::keyring::NONCE_LEN;
use feen_core::ids::KeyId;
use feen_core::netguard::check_base_url;
use feen_core::providers::{self, AuthStyle, CustomAuth};
use feen_core::secret::{SecretString, key_hint};
use feen_core::timefmt::to_rfc3339;
use feen_core::{Error, validate};
use feen_service::access::{authorize, new_owner};
use feen_service::audit::{self, Origin};
use feen_service::auth::{Caller, authenticate};
use feen_service::request::{MAX_JSON_BODY, json_body, segments};
use feen_service::response::no_content;
use feen_service::{Ctx, Req, Resp, json, respond};
use feen_store::keys::{self, ApiKey};
use feen_store::shares::HashScope;
use http::{Method, StatusCode};
use serde::Deserialize;
use serde_json::json;

/// The path prefix this function serves.
pub const PREFIX: &str = "/api/keys";

/// Serves `/api/keys*`.
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
        ([id], &Method::PATCH) => rename(req, ctx, id).await,
        ([id], &Method::DELETE) => delete(req, ctx, id).await,
        ([id, "rotate"], &Method::POST) => rotate(req, ctx, id).await,
        ([] | [_], _) | ([_, "rotate"], _) => Err(Error::MethodNotAllowed),
        _ => Err(Error::NotFound("route")),
    }
}

/// The JSON shape of a key (never its secret).
pub fn key_json(key: &ApiKey, last_used: Option<i64>) -> serde_json::Value {
    json!({
        "id": key.id,
        "teamId": key.owner.team(),
        "createdBy": key.created_by,
        "name": key.name,
        "provider": key.provider,
        "baseUrl": key.base_url,
        "authHeader": key.custom_auth.as_ref().map(|c| c.header.as_str()),
        "authTemplate": key.custom_auth.as_ref().map(|c| c.template.as_str()),
        "hint": key.hint,
        "createdAt": to_rfc3339(key.created_at),
        "updatedAt": to_rfc3339(key.updated_at),
        "lastUsedAt": last_used.map(to_rfc3339),
    })
}

/// The key `id` names and its owner, once the caller is allowed `action` on it.
async fn locate(
    ctx: &Ctx,
    caller: &Caller,
    id: &str,
    action: authz::Action,
) -> Result<(KeyId, Owner), Error> {
    let id = KeyId::parse(id).ok_or(Error::NotFound("key"))?;
    let owner = keys::owner_of(ctx.db.as_ref(), &id)
        .await?
        .ok_or(Error::NotFound("key"))?;
    authorize(ctx, caller, &owner, action, "key").await?;
    Ok((id, owner))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CreateBody {
    name: String,
    provider: String,
    api_key: SecretString,
    base_url: Option<String>,
    auth_header: Option<String>,
    auth_template: Option<String>,
    team_id: Option<String>,
}

async fn create(req: Req, ctx: &Ctx) -> Result<Resp, Error> {
    let caller = authenticate(&req, ctx).await?;
    let origin = Origin::of(&req);
    let body: CreateBody = json_body(req, MAX_JSON_BODY).await?;
    let name = validate::name("name", &body.name)?;
    let provider = providers::find(&body.provider).ok_or_else(|| {
        let names: Vec<&str> = providers::CATALOGUE.iter().map(|p| p.name).collect();
        Error::invalid("provider", format!("must be one of: {}", names.join(", ")))
    })?;
    validate::api_key(body.api_key.expose())?;
    let base_url = body
        .base_url
        .as_deref()
        .map(|url| check_base_url(url, ctx.config.allow_private_upstreams))
        .transpose()?;
    if let Some(url) = &base_url {
        ctx.config
            .upstreams
            .allows(url, ctx.config.allow_private_upstreams)?;
    }
    if provider.base_url.is_empty() && base_url.is_none() {
        return Err(Error::invalid(
            "baseUrl",
            format!("is required for {}", provider.name),
        ));
    }
    let custom_auth = match provider.auth {
        AuthStyle::Custom => Some(CustomAuth::new(
            body.auth_header.as_deref(),
            body.auth_template.as_deref(),
        )?),
        _ if body.auth_header.is_some() || body.auth_template.is_some() => {
            return Err(Error::invalid(
                "authHeader",
                "applies to the custom provider only",
            ));
        }
        _ => None,
    };
    let owner = new_owner(
        ctx,
        &caller,
        body.team_id.as_deref(),
        authz::Action::ManageKeys,
    )
    .await?;
    let now = ctx.now_ms();
    let key = ApiKey {
        id: KeyId::new(now, ctx.random()),
        owner,
        created_by: caller.user.clone(),
        name,
        provider: provider.name.to_owned(),
        base_url,
        custom_auth,
        hint: key_hint(&body.api_key),
        created_at: now,
        updated_at: now,
    };
    let sealed =
        ctx.config
            .keyring
            .seal(&body.api_key, &key.destination(), ctx.random::<NONCE_LEN>());
    keys::insert(ctx.db.as_ref(), &key, &sealed).await?;
    let details = json!({ "name": key.name, "provider": key.provider });
    let target = ("key", key.id.as_str());
    audit::act(
        ctx,
        &origin,
        &caller.user,
        &key.owner,
        Action::KeyAdded,
        target,
        details,
    )
    .await;
    Ok(json(StatusCode::CREATED, &key_json(&key, None)))
}

async fn list(req: Req, ctx: &Ctx) -> Result<Resp, Error> {
    let caller = authenticate(&req, ctx).await?;
    let keys = keys::visible(ctx.db.as_ref(), &caller.user).await?;
    let ids: Vec<KeyId> = keys.iter().map(|k| k.id.clone()).collect();
    let last_used = keys::last_used(ctx.db.as_ref(), &ids).await?;
    let items: Vec<_> = keys
        .iter()
        .zip(last_used)
        .map(|(k, last)| key_json(k, last))
        .collect();
    Ok(json(StatusCode::OK, &json!({ "keys": items })))
}

async fn get(req: Req, ctx: &Ctx, id: &str) -> Result<Resp, Error> {
    let caller = authenticate(&req, ctx).await?;
    let (id, owner) = locate(ctx, &caller, id, authz::Action::ReadKeys).await?;
    get_json(ctx, &owner, &id).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RenameBody {
    name: String,
}

async fn rename(req: Req, ctx: &Ctx, id: &str) -> Result<Resp, Error> {
    let caller = authenticate(&req, ctx).await?;
    let origin = Origin::of(&req);
    let (id, owner) = locate(ctx, &caller, id, authz::Action::ManageKeys).await?;
    let body: RenameBody = json_body(req, MAX_JSON_BODY).await?;
    let name = validate::name("name", &body.name)?;
    if !keys::rename(ctx.db.as_ref(), &owner, &id, &name, ctx.now_ms()).await? {
        return Err(Error::NotFound("key"));
    }
    let details = json!({ "name": name });
    let target = ("key", id.as_str());
    audit::act(
        ctx,
        &origin,
        &caller.user,
        &owner,
        Action::KeyRenamed,
        target,
        details,
    )
    .await;
    get_json(ctx, &owner, &id).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RotateBody {
    api_key: SecretString,
}

async fn rotate(req: Req, ctx: &Ctx, id: &str) -> Result<Resp, Error> {
    let caller = authenticate(&req, ctx).await?;
    let origin = Origin::of(&req);
    let (id, owner) = locate(ctx, &caller, id, authz::Action::ManageKeys).await?;
    let body: RotateBody = json_body(req, MAX_JSON_BODY).await?;
    validate::api_key(body.api_key.expose())?;
    // Sealed for the key's destination, which never changes after the key is added.
    let key = keys::get(ctx.db.as_ref(), &owner, &id)
        .await?
        .ok_or(Error::NotFound("key"))?;
    let sealed =
        ctx.config
            .keyring
            .seal(&body.api_key, &key.destination(), ctx.random::<NONCE_LEN>());
    let hint = key_hint(&body.api_key);
    if !keys::rotate(ctx.db.as_ref(), &owner, &id, &sealed, &hint, ctx.now_ms()).await? {
        return Err(Error::NotFound("key"));
    }
    feen_service::cache::refresh_shares(ctx, &owner, HashScope::Key(&id)).await?;
    let target = ("key", id.as_str());
    audit::act(
        ctx,
        &origin,
        &caller.user,
        &owner,
        Action::KeyRotated,
        target,
        json!({}),
    )
    .await;
    get_json(ctx, &owner, &id).await
}

async fn delete(req: Req, ctx: &Ctx, id: &str) -> Result<Resp, Error> {
    let caller = authenticate(&req, ctx).await?;
    let (id, owner) = locate(ctx, &caller, id, authz::Action::ManageKeys).await?;
    let hashes =
        feen_store::shares::token_hashes(ctx.db.as_ref(), &owner, HashScope::Key(&id)).await?;
    if !keys::delete(ctx.db.as_ref(), &owner, &id).await? {
        return Err(Error::NotFound("key"));
    }
    feen_service::cache::tombstone(ctx, &hashes).await?;
    let details = json!({ "sharesRevoked": hashes.len() });
    let target = ("key", id.as_str());
    let origin = Origin::of(&req);
    audit::act(
        ctx,
        &origin,
        &caller.user,
        &owner,
        Action::KeyDeleted,
        target,
        details,
    )
    .await;
    Ok(no_content())
}

async fn get_json(ctx: &Ctx, owner: &Owner, id: &KeyId) -> Result<Resp, Error> {
    let key = keys::get(ctx.db.as_ref(), owner, id)
        .await?
        .ok_or(Error::NotFound("key"))?;
    let last_used = keys::last_used(ctx.db.as_ref(), std::slice::from_ref(id)).await?;
    Ok(json(
        StatusCode::OK,
        &key_json(&key, last_used.first().copied().flatten()),
    ))
}

// The Cloudflare Workers entry point: this function as a Worker of its own.
#[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
feen_workers::fetch_entry!(handle);

// The Spin entry point: this function as a component of its own.
#[cfg(all(target_arch = "wasm32", target_os = "wasi"))]
feen_spin::http_entry!(handle);
