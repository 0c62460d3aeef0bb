//! Who is calling: a user authenticated by an access token (bearer or cookie) or a personal
//! access token. Every management handler starts here.

use feen_core::Error;
use feen_core::crypto::token::{self, TokenKind};
use feen_core::ids::{SessionId, UserId};
use http::Method;
use http::header::{AUTHORIZATION, HOST, ORIGIN};

use crate::request::cookie;
use crate::{Ctx, Req};

/// The name of the access-token cookie. When cookies are `Secure` it is `__Host-`: the browser
/// then keeps it to this exact host, `Path=/`, `Secure`, with no `Domain`, so a sibling host
/// cannot set or overwrite it.
pub fn access_cookie(secure: bool) -> &'static str {
    if secure {
        "__Host-feen_access"
    } else {
        "feen_access"
    }
}

/// The name of the refresh-token cookie (`Path=/api/auth`, so it is sent only there; a
/// `__Host-` cookie must have `Path=/`, hence `__Secure-` when cookies are `Secure`).
pub fn refresh_cookie(secure: bool) -> &'static str {
    if secure {
        "__Secure-feen_refresh"
    } else {
        "feen_refresh"
    }
}

/// Whether a request comes from a browser's script or page rather than a program: browsers
/// send `Origin` with every `POST` and `Sec-Fetch-Site` with every request to a secure origin,
/// and a script can set neither. Such callers get their session only as cookies: the refresh
/// token is kept out of the answer's body, where the page's scripts could read it.
pub fn from_browser(req: &Req) -> bool {
    req.headers().contains_key(ORIGIN) || req.headers().contains_key("sec-fetch-site")
}

/// How the caller proved who they are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credential {
    /// An access token in `Authorization: Bearer`.
    Bearer(SessionId),
    /// An access token in the `feen_access` cookie.
    Cookie(SessionId),
    /// A personal access token.
    Pat,
}

/// An authenticated caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// The user.
    pub user: UserId,
    /// How they authenticated.
    pub credential: Credential,
}

impl Caller {
    /// The login session, when authenticated by an access token.
    pub fn session(&self) -> Option<&SessionId> {
        match &self.credential {
            Credential::Bearer(s) | Credential::Cookie(s) => Some(s),
            Credential::Pat => None,
        }
    }
}

/// The key under which a logged-out session is remembered until its access tokens expire.
pub fn revoked_session_key(session: &SessionId) -> String {
    format!("revoked:session:{session}")
}

/// Authenticates the caller of a management endpoint.
///
/// Cookie-authenticated writes must also pass the CSRF check: the cookie is `SameSite=Strict`,
/// bodies must be JSON (which a cross-site form cannot send), and an `Origin` header, when
/// present, must name this host.
pub async fn authenticate(req: &Req, ctx: &Ctx) -> Result<Caller, Error> {
    let invalid = Error::Unauthorized {
        code: "invalid_token",
        message: "the access token is invalid or expired",
    };
    let bearer = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    let from_jar = cookie(req, access_cookie(ctx.config.secure_cookies));
    let (token, from_cookie) = match (bearer, from_jar) {
        (Some(token), _) => (token, false),
        (None, Some(token)) => (token, true),
        (None, None) => return Err(Error::unauthenticated()),
    };
    if token.starts_with(TokenKind::Pat.prefix()) {
        let hash = token::verify(TokenKind::Pat, token).ok_or(invalid)?;
        let pat = feen_store::tokens::by_token(ctx.db.as_ref(), &hash, ctx.now_ms())
            .await?
            .ok_or(Error::Unauthorized {
                code: "invalid_token",
                message: "the access token is invalid or expired",
            })?;
        return Ok(Caller {
            user: pat.user,
            credential: Credential::Pat,
        });
    }
    let access = ctx
        .config
        .access
        .verify(token, ctx.now_secs())
        .ok_or(invalid)?;
    if ctx
        .kv
        .get(&revoked_session_key(&access.session))
        .await?
        .is_some()
    {
        return Err(Error::Unauthorized {
            code: "session_ended",
            message: "this session has been logged out",
        });
    }
    if from_cookie {
        csrf_check(req)?;
        return Ok(Caller {
            user: access.user,
            credential: Credential::Cookie(access.session),
        });
    }
    Ok(Caller {
        user: access.user,
        credential: Credential::Bearer(access.session),
    })
}

fn csrf_check(req: &Req) -> Result<(), Error> {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return Ok(());
    }
    let Some(origin) = req.headers().get(ORIGIN).and_then(|v| v.to_str().ok()) else {
        return Ok(());
    };
    let host = req
        .headers()
        .get(HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let origin_host = origin.split_once("://").map_or(origin, |(_, rest)| rest);
    if origin_host.eq_ignore_ascii_case(host) {
        Ok(())
    } else {
        Err(Error::Forbidden {
            code: "csrf_rejected",
            message: "cross-site request refused".into(),
        })
    }
}
