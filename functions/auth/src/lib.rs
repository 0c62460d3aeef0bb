//! The auth function (`/api/auth/*`): register, log in, log out, refresh, me, and personal
//! access tokens.
//!
//! Sessions: a 15-minute access token (JWT) returned in the body for programs and set as an
//! HttpOnly `SameSite=Strict` cookie for the dashboard, plus a 30-day refresh token that rotates
//! on every use. Presenting a refresh token a second time is taken as theft: its whole session
//! is revoked. Logging out revokes the session and remembers it in the counter store until its
//! access tokens have expired, so they stop working on every replica at once.

use feen_core::Error;
use feen_core::audit::Action;
use feen_core::crypto::jwt::ACCESS_TTL_SECS;
use feen_core::crypto::password::{self, SALT_LEN};
use feen_core::crypto::token::{self, TokenKind};
use feen_core::ids::{PatId, SessionId, UserId};
use feen_core::ports::{Adjustment, Admission, Counter};
use feen_core::secret::SecretString;
use feen_core::timefmt::to_rfc3339;
use feen_core::validate;
use feen_service::audit::{self, Event, Origin};
use feen_service::auth::{
    access_cookie, authenticate, from_browser, refresh_cookie, revoked_session_key,
};
use feen_service::request::{MAX_JSON_BODY, client_addr, cookie, future_time, json_body, segments};
use feen_service::response::no_content;
use feen_service::{Ctx, Req, Resp, json, respond};
use feen_store::sessions::{self, Session};
use feen_store::{tokens, users};
use http::header::{HeaderValue, SET_COOKIE};
use http::{Method, StatusCode};
use serde::Deserialize;
use serde_json::json;

/// The path prefix this function serves.
pub const PREFIX: &str = "/api/auth";

const REFRESH_TTL_MS: i64 = 30 * 86_400_000;
const IP_WINDOW_MS: i64 = 5 * 60_000;
const IP_ATTEMPTS: u64 = 30;
const ACCOUNT_WINDOW_MS: i64 = 15 * 60_000;
/// Password guesses at one account from one address per window.
const ACCOUNT_ATTEMPTS: u64 = 10;

/// Serves `/api/auth/*`.
pub async fn handle(req: Req, ctx: &Ctx) -> Resp {
    respond(route(req, ctx).await)
}

async fn route(req: Req, ctx: &Ctx) -> Result<Resp, Error> {
    let path = req.uri().path().to_owned();
    let segs = segments(&path, PREFIX).ok_or(Error::NotFound("route"))?;
    let method = req.method().clone();
    match (segs.as_slice(), &method) {
        (["register"], &Method::POST) => register(req, ctx).await,
        (["login"], &Method::POST) => login(req, ctx).await,
        (["logout"], &Method::POST) => logout(req, ctx).await,
        (["logout-all"], &Method::POST) => logout_all(req, ctx).await,
        (["password"], &Method::POST) => change_password(req, ctx).await,
        (["refresh"], &Method::POST) => refresh(req, ctx).await,
        (["me"], &Method::GET) => me(req, ctx).await,
        (["tokens"], &Method::GET) => list_pats(req, ctx).await,
        (["tokens"], &Method::POST) => create_pat(req, ctx).await,
        (["tokens", id], &Method::DELETE) => revoke_pat(&req, ctx, id).await,
        (
            [
                "register" | "login" | "logout" | "logout-all" | "password" | "refresh" | "me"
                | "tokens",
            ],
            _,
        )
        | (["tokens", _], _) => Err(Error::MethodNotAllowed),
        _ => Err(Error::NotFound("route")),
    }
}

fn user_json(user: &users::User) -> serde_json::Value {
    json!({ "id": user.id, "email": user.email, "name": user.name, "createdAt": to_rfc3339(user.created_at) })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegisterBody {
    email: String,
    password: SecretString,
    name: String,
}

async fn register(req: Req, ctx: &Ctx) -> Result<Resp, Error> {
    throttle_ip(&req, ctx).await?;
    let body: RegisterBody = json_body(req, MAX_JSON_BODY).await?;
    let email = validate::email(&body.email)?;
    let name = validate::name("name", &body.name)?;
    validate::new_password("password", body.password.expose())?;
    let now = ctx.now_ms();
    let user = users::User {
        id: UserId::new(now, ctx.random()),
        email,
        name,
        password_hash: ctx
            .passwords
            .hash(body.password, ctx.random::<SALT_LEN>())
            .await,
        created_at: now,
    };
    match users::insert(ctx.db.as_ref(), &user).await {
        Ok(()) => Ok(json(
            StatusCode::CREATED,
            &json!({ "user": user_json(&user) }),
        )),
        Err(feen_core::ports::DbError::UniqueViolation) => Err(Error::Conflict(
            "an account with this email already exists".into(),
        )),
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    email: String,
    password: SecretString,
}

async fn login(req: Req, ctx: &Ctx) -> Result<Resp, Error> {
    throttle_ip(&req, ctx).await?;
    let origin = Origin::of(&req);
    let browser = from_browser(&req);
    let body: LoginBody = json_body(req, MAX_JSON_BODY).await?;
    let email = body.email.trim().to_ascii_lowercase();
    let now = ctx.now_ms();
    // Guesses at one account from one address: counted in one atomic step before the password
    // is checked (so parallel guesses cannot slip past the count), and given back when the
    // password was right. Per address, not per account alone, so nobody can lock anyone else
    // out. Keyed by a hash, so the counter store never holds email addresses.
    let email_hash = token::hash(&email);
    let address = client_addr_key(&origin);
    let attempts = Counter {
        key: format!(
            "ratelimit:login:{}:{address}:{}",
            &email_hash.as_str()[..32],
            now / ACCOUNT_WINDOW_MS
        ),
        limit: ACCOUNT_ATTEMPTS,
        cost: 1,
        ttl_ms: ACCOUNT_WINDOW_MS as u64,
        seed: 0,
    };
    let attempt_key = attempts.key.clone();
    if !matches!(
        ctx.kv.admit(None, &[attempts]).await?,
        Admission::Admitted { .. }
    ) {
        return Err(Error::RateLimited {
            code: "too_many_attempts",
            message: "too many failed logins for this account from this address; try again later"
                .into(),
            retry_after_secs: retry_after(now, ACCOUNT_WINDOW_MS),
        });
    }
    let user = users::by_email(ctx.db.as_ref(), &email).await?;
    // An unknown email costs the same one hash as a wrong password and gets the same answer.
    let stored = user.as_ref().map_or_else(
        || password::DECOY_HASH.to_owned(),
        |u| u.password_hash.clone(),
    );
    let verified = ctx.passwords.verify(stored, body.password).await;
    if let Some(user) = user.as_ref().filter(|_| !verified) {
        // Recorded after the response: the answer must take as long as for an unknown email.
        let (later, origin, owner) = (ctx.clone(), origin.clone(), user.id.as_str().to_owned());
        ctx.defer.defer(Box::pin(async move {
            let event = Event {
                owner: &owner,
                actor: None,
                action: Action::LoginFailed,
                resource: Some(("user", &owner)),
                details: json!({}),
            };
            audit::record(&later, &origin, event).await;
        }));
    }
    let Some(user) = user.filter(|_| verified) else {
        return Err(Error::Unauthorized {
            code: "invalid_credentials",
            message: "invalid email or password",
        });
    };
    // A right password does not count as a guess.
    let refund = Adjustment {
        key: attempt_key,
        delta: -1,
        ttl_ms: ACCOUNT_WINDOW_MS as u64,
    };
    ctx.kv.settle(&[refund]).await?;
    let (resp, family) = start_session(ctx, &user, browser).await?;
    let event = Event {
        owner: user.id.as_str(),
        actor: Some(user.id.as_str()),
        action: Action::Login,
        resource: Some(("session", family.as_str())),
        details: json!({}),
    };
    audit::record(ctx, &origin, event).await;
    new_device_alert(ctx, &user, &origin).await;
    Ok(resp)
}

/// Remembers the device (its `User-Agent`, hashed) a user signed in from, and emails them when
/// it is one they never signed in from before (not for their very first). Failures are logged:
/// the login has happened.
async fn new_device_alert(ctx: &Ctx, user: &users::User, origin: &Origin) {
    let agent = origin.user_agent.as_deref().unwrap_or("");
    let device = token::hash(&format!("device:{agent}")).as_str()[..32].to_owned();
    let now = ctx.now_ms();
    let db = ctx.db.as_ref();
    let first_time = match feen_store::outbox::remember_device(db, &user.id, &device, now).await {
        Ok(first) => first,
        Err(e) => {
            tracing::warn!(error = %e, "device not remembered");
            return;
        }
    };
    if !first_time
        || feen_store::outbox::device_count(db, &user.id)
            .await
            .unwrap_or(0)
            < 2
    {
        return;
    }
    let client = if agent.is_empty() {
        "an unnamed client"
    } else {
        agent
    };
    let address = origin.client_ip.as_deref().unwrap_or("an unknown address");
    let message = feen_service::mail::Message {
        kind: "new_device",
        dedupe_key: format!("new_device:{}:{device}", user.id),
        to: user.email.clone(),
        subject: "New sign-in to your Feen account".into(),
        body: format!(
            "Your Feen account ({}) was signed in to from a device it was not used from before:\n\n\
             {client}\nfrom {address}\nat {}\n\nIf this was you, there is nothing to do. If not, \
             change your password in the dashboard's settings (which signs out every session).",
            user.email,
            to_rfc3339(now)
        ),
    };
    feen_service::mail::notify(ctx, message).await;
}

/// Starts a new login (a session family) for `user`: the answer a login gives, and the family.
/// `browser`: the caller is a browser (see [`from_browser`]), which gets the refresh token as a
/// cookie only.
async fn start_session(
    ctx: &Ctx,
    user: &users::User,
    browser: bool,
) -> Result<(Resp, SessionId), Error> {
    let now = ctx.now_ms();
    let family = SessionId::new(now, ctx.random());
    let session = Session {
        id: family.clone(),
        family: family.clone(),
        user: user.id.clone(),
        expires_at: now + REFRESH_TTL_MS,
        rotated_at: None,
        revoked_at: None,
    };
    let resp = issue_session(ctx, &session, Some(user), browser).await?;
    Ok((resp, family))
}

/// Stores a refresh token for `session` and answers with it and a fresh access token: both as
/// HttpOnly cookies, and in the body for programs (a browser gets the refresh token in its
/// cookie only, out of its scripts' reach).
async fn issue_session(
    ctx: &Ctx,
    session: &Session,
    user: Option<&users::User>,
    browser: bool,
) -> Result<Resp, Error> {
    let now = ctx.now_ms();
    let (refresh, hash) = token::issue(TokenKind::Refresh, ctx.random());
    sessions::insert(ctx.db.as_ref(), session, &hash, now).await?;
    let access = ctx
        .config
        .access
        .issue(&session.user, &session.family, ctx.now_secs())
        .ok_or_else(|| Error::internal("signing an access token failed"))?;
    let mut body = json!({
        "accessToken": access.expose(),
        "tokenType": "Bearer",
        "expiresIn": ACCESS_TTL_SECS,
    });
    if let Some(obj) = body.as_object_mut() {
        if !browser {
            obj.insert("refreshToken".into(), refresh.expose().into());
        }
        if let Some(user) = user {
            obj.insert("user".into(), user_json(user));
        }
    }
    let mut resp = json(StatusCode::OK, &body);
    let secure = ctx.config.secure_cookies;
    set_cookie(
        &mut resp,
        access_cookie(secure),
        access.expose(),
        "/",
        ACCESS_TTL_SECS as i64,
        secure,
    );
    set_cookie(
        &mut resp,
        refresh_cookie(secure),
        refresh.expose(),
        PREFIX,
        REFRESH_TTL_MS / 1000,
        secure,
    );
    Ok(resp)
}

fn set_cookie(resp: &mut Resp, name: &str, value: &str, path: &str, max_age: i64, secure: bool) {
    let secure = if secure { "; Secure" } else { "" };
    let text = format!(
        "{name}={value}; HttpOnly; SameSite=Strict; Path={path}; Max-Age={max_age}{secure}"
    );
    if let Ok(value) = HeaderValue::from_str(&text) {
        resp.headers_mut().append(SET_COOKIE, value);
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RefreshBody {
    refresh_token: Option<SecretString>,
}

/// The refresh token from the body (programs) or the cookie (the dashboard).
async fn presented_refresh(req: Req, ctx: &Ctx) -> Result<Option<String>, Error> {
    let from_cookie = cookie(&req, refresh_cookie(ctx.config.secure_cookies)).map(str::to_owned);
    let has_body = req.headers().contains_key(http::header::CONTENT_TYPE);
    let body: RefreshBody = if has_body {
        json_body(req, MAX_JSON_BODY).await?
    } else {
        RefreshBody::default()
    };
    Ok(body
        .refresh_token
        .map(|t| t.expose().to_owned())
        .or(from_cookie))
}

async fn refresh(req: Req, ctx: &Ctx) -> Result<Resp, Error> {
    let invalid = || Error::Unauthorized {
        code: "invalid_token",
        message: "the refresh token is invalid or expired",
    };
    let origin = Origin::of(&req);
    let browser = from_browser(&req);
    let presented = presented_refresh(req, ctx)
        .await?
        .ok_or_else(Error::unauthenticated)?;
    let hash = token::verify(TokenKind::Refresh, &presented).ok_or_else(invalid)?;
    let now = ctx.now_ms();
    let session = sessions::by_token(ctx.db.as_ref(), &hash)
        .await?
        .ok_or_else(invalid)?;
    if session.revoked_at.is_some() || session.expires_at <= now {
        return Err(invalid());
    }
    let won = session.rotated_at.is_none()
        && sessions::mark_rotated(ctx.db.as_ref(), &session.id, now).await?;
    if !won {
        end_session(ctx, &session.family).await?;
        let event = Event {
            owner: session.user.as_str(),
            actor: None,
            action: Action::RefreshReused,
            resource: Some(("session", session.family.as_str())),
            details: json!({}),
        };
        audit::record(ctx, &origin, event).await;
        return Err(Error::Unauthorized {
            code: "refresh_token_reused",
            message: "this refresh token was already used; the session has been ended",
        });
    }
    let next = Session {
        id: SessionId::new(now, ctx.random()),
        rotated_at: None,
        ..session
    };
    issue_session(ctx, &next, None, browser).await
}

/// Revokes a session everywhere: its refresh tokens in the database, its access tokens through
/// the counter store until they would have expired anyway.
async fn end_session(ctx: &Ctx, family: &SessionId) -> Result<(), Error> {
    sessions::revoke_family(ctx.db.as_ref(), family, ctx.now_ms()).await?;
    ctx.kv
        .set(
            &revoked_session_key(family),
            "1",
            (ACCESS_TTL_SECS + 60) * 1000,
        )
        .await?;
    Ok(())
}

async fn logout(req: Req, ctx: &Ctx) -> Result<Resp, Error> {
    let caller = authenticate(&req, ctx).await.ok();
    let origin = Origin::of(&req);
    let presented = presented_refresh(req, ctx).await?;
    let mut ended = false;
    let hash = presented
        .as_deref()
        .and_then(|t| token::verify(TokenKind::Refresh, t));
    if let Some(hash) = hash
        && let Some(session) = sessions::by_token(ctx.db.as_ref(), &hash).await?
    {
        end_session(ctx, &session.family).await?;
        record_logout(ctx, &origin, &session.user, &session.family).await;
        ended = true;
    }
    if let Some((caller, session)) = caller.as_ref().and_then(|c| Some((c, c.session()?))) {
        end_session(ctx, session).await?;
        record_logout(ctx, &origin, &caller.user, session).await;
        ended = true;
    }
    if !ended {
        return Err(Error::unauthenticated());
    }
    let mut resp = no_content();
    clear_cookies(&mut resp, ctx.config.secure_cookies);
    Ok(resp)
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct LogoutAllBody {
    #[serde(default)]
    revoke_tokens: bool,
}

/// Ends every session of the caller at once: each live login's refresh tokens in the database,
/// its access tokens through the counter store (so every device is signed out on its next
/// request), and clears this client's cookies. With `revokeTokens`, their personal access
/// tokens end too.
async fn logout_all(req: Req, ctx: &Ctx) -> Result<Resp, Error> {
    let caller = authenticate(&req, ctx).await?;
    let origin = Origin::of(&req);
    let body: LogoutAllBody = if req.headers().contains_key(http::header::CONTENT_TYPE) {
        json_body(req, MAX_JSON_BODY).await?
    } else {
        LogoutAllBody::default()
    };
    let ended = end_every_session(ctx, &caller.user).await?;
    let tokens_revoked = match body.revoke_tokens {
        true => tokens::revoke_all(ctx.db.as_ref(), &caller.user, ctx.now_ms()).await?,
        false => 0,
    };
    let event = Event {
        owner: caller.user.as_str(),
        actor: Some(caller.user.as_str()),
        action: Action::LogoutAll,
        resource: Some(("user", caller.user.as_str())),
        details: json!({ "sessions": ended, "tokensRevoked": tokens_revoked }),
    };
    audit::record(ctx, &origin, event).await;
    let mut resp = no_content();
    clear_cookies(&mut resp, ctx.config.secure_cookies);
    Ok(resp)
}

async fn end_every_session(ctx: &Ctx, user: &UserId) -> Result<usize, Error> {
    let families = sessions::live_families(ctx.db.as_ref(), user, ctx.now_ms()).await?;
    for family in &families {
        end_session(ctx, family).await?;
    }
    Ok(families.len())
}

fn clear_cookies(resp: &mut Resp, secure: bool) {
    set_cookie(resp, access_cookie(secure), "", "/", 0, secure);
    set_cookie(resp, refresh_cookie(secure), "", PREFIX, 0, secure);
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PasswordBody {
    current_password: SecretString,
    new_password: SecretString,
    #[serde(default)]
    revoke_tokens: bool,
}

/// Changes the caller's password. Only a signed-in session may (not a personal access token),
/// and only with the current password. Every session ends (a thief's included); this client
/// gets a new one in the answer, as from a login.
async fn change_password(req: Req, ctx: &Ctx) -> Result<Resp, Error> {
    throttle_ip(&req, ctx).await?;
    let caller = authenticate(&req, ctx).await?;
    if caller.session().is_none() {
        return Err(Error::Forbidden {
            code: "session_required",
            message: "sign in with your password to change it; a personal access token cannot"
                .into(),
        });
    }
    let origin = Origin::of(&req);
    let browser = from_browser(&req);
    let body: PasswordBody = json_body(req, MAX_JSON_BODY).await?;
    let user = users::by_id(ctx.db.as_ref(), &caller.user)
        .await?
        .ok_or_else(Error::unauthenticated)?;
    if !ctx
        .passwords
        .verify(user.password_hash.clone(), body.current_password)
        .await
    {
        return Err(Error::invalid(
            "currentPassword",
            "is not your current password",
        ));
    }
    validate::new_password("newPassword", body.new_password.expose())?;
    let hash = ctx
        .passwords
        .hash(body.new_password, ctx.random::<SALT_LEN>())
        .await;
    if !users::set_password(ctx.db.as_ref(), &user.id, &hash).await? {
        return Err(Error::unauthenticated());
    }
    end_every_session(ctx, &user.id).await?;
    let tokens_revoked = match body.revoke_tokens {
        true => tokens::revoke_all(ctx.db.as_ref(), &user.id, ctx.now_ms()).await?,
        false => 0,
    };
    let (resp, _) = start_session(ctx, &user, browser).await?;
    let event = Event {
        owner: user.id.as_str(),
        actor: Some(user.id.as_str()),
        action: Action::PasswordChanged,
        resource: Some(("user", user.id.as_str())),
        details: json!({ "tokensRevoked": tokens_revoked }),
    };
    audit::record(ctx, &origin, event).await;
    Ok(resp)
}

async fn record_logout(ctx: &Ctx, origin: &Origin, user: &UserId, family: &SessionId) {
    let event = Event {
        owner: user.as_str(),
        actor: Some(user.as_str()),
        action: Action::Logout,
        resource: Some(("session", family.as_str())),
        details: json!({}),
    };
    audit::record(ctx, origin, event).await;
}

async fn me(req: Req, ctx: &Ctx) -> Result<Resp, Error> {
    let caller = authenticate(&req, ctx).await?;
    let user = users::by_id(ctx.db.as_ref(), &caller.user)
        .await?
        .ok_or_else(Error::unauthenticated)?;
    Ok(json(StatusCode::OK, &json!({ "user": user_json(&user) })))
}

fn pat_json(pat: &tokens::Pat) -> serde_json::Value {
    json!({
        "id": pat.id,
        "name": pat.name,
        "createdAt": to_rfc3339(pat.created_at),
        "expiresAt": pat.expires_at.map(to_rfc3339),
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PatBody {
    name: String,
    expires_at: Option<String>,
    password: Option<SecretString>,
}

/// How long a personal access token lives when its maker does not say.
pub const PAT_DEFAULT_TTL_MS: i64 = 90 * 86_400_000;
/// The longest a personal access token may live.
pub const PAT_MAX_TTL_MS: i64 = 366 * 86_400_000;

/// Makes a personal access token. The caller's current password is required (a stolen session
/// or token alone cannot make a credential that outlives it), and every token expires: in 90
/// days unless asked otherwise, in at most a year.
async fn create_pat(req: Req, ctx: &Ctx) -> Result<Resp, Error> {
    throttle_ip(&req, ctx).await?;
    let caller = authenticate(&req, ctx).await?;
    let origin = Origin::of(&req);
    let body: PatBody = json_body(req, MAX_JSON_BODY).await?;
    let now = ctx.now_ms();
    let name = validate::name("name", &body.name)?;
    let expires_at = match future_time("expiresAt", body.expires_at.as_deref(), now)? {
        None => now + PAT_DEFAULT_TTL_MS,
        Some(at) if at - now > PAT_MAX_TTL_MS => {
            return Err(Error::invalid(
                "expiresAt",
                "must be at most a year from now",
            ));
        }
        Some(at) => at,
    };
    let password = body
        .password
        .ok_or_else(|| Error::invalid("password", "your current password is required"))?;
    let user = users::by_id(ctx.db.as_ref(), &caller.user)
        .await?
        .ok_or_else(Error::unauthenticated)?;
    if !ctx.passwords.verify(user.password_hash, password).await {
        return Err(Error::invalid("password", "is not your current password"));
    }
    let expires_at = Some(expires_at);
    let (secret, hash) = token::issue(TokenKind::Pat, ctx.random());
    let pat = tokens::Pat {
        id: PatId::new(now, ctx.random()),
        user: caller.user,
        name,
        created_at: now,
        expires_at,
    };
    tokens::insert(ctx.db.as_ref(), &pat, &hash).await?;
    let event = Event {
        owner: pat.user.as_str(),
        actor: Some(pat.user.as_str()),
        action: Action::PatCreated,
        resource: Some(("pat", pat.id.as_str())),
        details: json!({ "name": pat.name }),
    };
    audit::record(ctx, &origin, event).await;
    let mut body = pat_json(&pat);
    if let Some(obj) = body.as_object_mut() {
        obj.insert("token".into(), secret.expose().into());
    }
    Ok(json(StatusCode::CREATED, &body))
}

async fn list_pats(req: Req, ctx: &Ctx) -> Result<Resp, Error> {
    let caller = authenticate(&req, ctx).await?;
    let pats = tokens::list(ctx.db.as_ref(), &caller.user).await?;
    let items: Vec<_> = pats.iter().map(pat_json).collect();
    Ok(json(StatusCode::OK, &json!({ "tokens": items })))
}

async fn revoke_pat(req: &Req, ctx: &Ctx, id: &str) -> Result<Resp, Error> {
    let caller = authenticate(req, ctx).await?;
    let id = PatId::parse(id).ok_or(Error::NotFound("token"))?;
    if tokens::revoke(ctx.db.as_ref(), &caller.user, &id, ctx.now_ms()).await? {
        let event = Event {
            owner: caller.user.as_str(),
            actor: Some(caller.user.as_str()),
            action: Action::PatRevoked,
            resource: Some(("pat", id.as_str())),
            details: json!({}),
        };
        audit::record(ctx, &Origin::of(req), event).await;
        Ok(no_content())
    } else {
        Err(Error::NotFound("token"))
    }
}

/// The client's address as a counter-key part: IPv6 clients by their /64 (one host usually holds
/// a whole /64), `-` when the host recorded none.
fn client_addr_key(origin: &Origin) -> String {
    let Some(ip) = origin
        .client_ip
        .as_deref()
        .and_then(|ip| ip.parse::<std::net::IpAddr>().ok())
    else {
        return "-".into();
    };
    match ip {
        std::net::IpAddr::V4(v4) => v4.to_string(),
        std::net::IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
    }
}

/// Counts an attempt from the client's address; too many in the window is a 429.
async fn throttle_ip(req: &Req, ctx: &Ctx) -> Result<(), Error> {
    let Some(ip) = client_addr(req) else {
        return Ok(());
    };
    let now = ctx.now_ms();
    let window = now / IP_WINDOW_MS;
    let counter = Counter {
        key: format!("ratelimit:auth-ip:{ip}:{window}"),
        limit: IP_ATTEMPTS,
        cost: 1,
        ttl_ms: IP_WINDOW_MS as u64,
        seed: 0,
    };
    match ctx.kv.admit(None, &[counter]).await? {
        Admission::Admitted { .. } => Ok(()),
        Admission::Refused { .. } | Admission::Stale => Err(Error::RateLimited {
            code: "too_many_attempts",
            message: "too many attempts from this address; try again later".into(),
            retry_after_secs: retry_after(now, IP_WINDOW_MS),
        }),
    }
}

fn retry_after(now: i64, window_ms: i64) -> u64 {
    let left = window_ms - now.rem_euclid(window_ms);
    u64::try_from((left + 999) / 1000).unwrap_or(1).max(1)
}

// The Cloudflare Workers entry point: this function as a Worker of its own.
#[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
feen_workers::fetch_entry!(handle);

// The Spin entry point: this function as a component of its own.
#[cfg(all(target_arch = "wasm32", target_os = "wasi"))]
feen_spin::http_entry!(handle);
