//! Reading requests: JSON bodies with a size limit, path segments, cookies, the client address.

use std::net::IpAddr;

use feen_core::body::CollectError;
use feen_core::{Body, Error};
use http::header::{CONTENT_TYPE, COOKIE};
use serde::Deserialize;
use serde::de::DeserializeOwned;

/// The request type every handler takes.
pub type Req = http::Request<Body>;

/// The client's address as the host established it (the TCP peer, or the platform's trusted
/// client-IP header at the edge). Hosts put it in the request's extensions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

/// The largest JSON body a management endpoint accepts.
pub const MAX_JSON_BODY: usize = 64 * 1024;

/// Reads and parses a JSON body of at most `limit` bytes. Wrong content type, oversize bodies
/// and malformed or mistyped JSON each get their own clear error.
pub async fn json_body<T: DeserializeOwned>(req: Req, limit: usize) -> Result<T, Error> {
    let content_type = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let is_json = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .eq_ignore_ascii_case("application/json");
    // The body is read even when it will be refused: a server that answers before reading it
    // must close the connection, which breaks the client's next request on it (workerd does).
    let bytes = req.into_body().collect(limit).await.map_err(|e| match e {
        CollectError::TooLarge => Error::PayloadTooLarge { limit },
        CollectError::Stream(_) => Error::BadRequest("the request body could not be read".into()),
    })?;
    if !is_json {
        return Err(Error::BadRequest(
            "the body must be JSON, sent with Content-Type: application/json".into(),
        ));
    }
    serde_json::from_slice(&bytes).map_err(|e| Error::BadRequest(format!("invalid JSON body: {e}")))
}

/// The path after `prefix`, split on `/`, without empty segments. `None` if the path does not
/// start with `prefix`.
pub fn segments<'a>(path: &'a str, prefix: &str) -> Option<Vec<&'a str>> {
    let rest = path.strip_prefix(prefix)?;
    if !(rest.is_empty() || rest.starts_with('/')) {
        return None;
    }
    Some(rest.split('/').filter(|s| !s.is_empty()).collect())
}

/// The value of cookie `name`.
pub fn cookie<'a>(req: &'a Req, name: &str) -> Option<&'a str> {
    req.headers()
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The path prefixes the proxy answers under (`/api/proxy/*`, and `/v1/*` for OpenAI-style
/// `base_url`s).
pub const PROXY_PREFIXES: [&str; 2] = ["/api/proxy", "/v1"];

/// Whether `path` is `prefix` or lies under it (`/api/keys`, `/api/keys/...`, not `/api/keysx`).
pub fn under(path: &str, prefix: &str) -> bool {
    path.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// Whether `path` is one of the proxy's.
pub fn is_proxy_path(path: &str) -> bool {
    PROXY_PREFIXES.iter().any(|prefix| under(path, prefix))
}

/// The host a request was sent to (`Host`, else the URI's authority), as written.
pub fn request_host(req: &Req) -> Option<&str> {
    req.headers()
        .get(http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()))
}

/// Whether a request for `path` sent to `host` is answered there, when the deployment serves the
/// proxy on a hostname of its own (`FEEN_PROXY_HOST`): the proxy only there, and everything else
/// (the dashboard, the API) never there, so that what an upstream returns never shares an origin
/// with the dashboard's session. `/healthz` answers everywhere. Without a proxy host, everything
/// answers everywhere. A configured host without a port matches the request's host on any port.
pub fn answers_here(path: &str, host: Option<&str>, proxy_host: Option<&str>) -> bool {
    let Some(proxy_host) = proxy_host else {
        return true;
    };
    if path == "/healthz" {
        return true;
    }
    let host = host.unwrap_or("").trim().to_ascii_lowercase();
    let on_proxy_host = if proxy_host.contains(':') {
        host == proxy_host
    } else {
        host.rsplit_once(':')
            .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
            .map_or(host.as_str(), |(name, _)| name)
            == proxy_host
    };
    on_proxy_host == is_proxy_path(path)
}

/// The client's address, if the host recorded one.
pub fn client_addr(req: &Req) -> Option<IpAddr> {
    req.extensions().get::<ClientAddr>().map(|c| c.0)
}

/// The query string's parameters, decoded; a name given twice keeps its last value.
pub fn query(req: &Req) -> std::collections::HashMap<String, String> {
    form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

/// An optional RFC 3339 time that must lie in the future, as milliseconds since the epoch.
pub fn future_time(
    field: &'static str,
    text: Option<&str>,
    now_ms: i64,
) -> Result<Option<i64>, Error> {
    let Some(text) = text else { return Ok(None) };
    let at = feen_core::timefmt::parse_rfc3339(text)
        .ok_or_else(|| Error::invalid(field, "must be an RFC 3339 time"))?;
    if at <= now_ms {
        return Err(Error::invalid(field, "must be in the future"));
    }
    Ok(Some(at))
}

/// Deserialises a field that may be absent (keep the current value), `null` (clear it) or a
/// value (set it): `Option<Option<T>>` with `#[serde(default, deserialize_with = "nullable")]`.
pub fn nullable<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_proxy_host_of_its_own_answers_only_the_proxy() {
        let proxy = Some("proxy.feen.test");
        let cases = [
            ("/api/proxy/v1/chat/completions", "proxy.feen.test", true),
            ("/v1/chat/completions", "PROXY.feen.test:443", true),
            ("/api/auth/me", "proxy.feen.test", false),
            ("/", "proxy.feen.test", false),
            ("/api/proxy/v1/chat/completions", "feen.test", false),
            ("/v1/models", "feen.test:8787", false),
            ("/api/auth/me", "feen.test", true),
            ("/api/proxyx", "feen.test", true),
            ("/healthz", "proxy.feen.test", true),
            ("/healthz", "feen.test", true),
        ];
        for (path, host, expected) in cases {
            assert_eq!(
                answers_here(path, Some(host), proxy),
                expected,
                "{path} on {host}"
            );
            assert!(
                answers_here(path, Some(host), None),
                "{path} without a proxy host"
            );
        }
        assert!(!answers_here("/v1/x", None, proxy));
        assert!(answers_here("/api/auth/me", None, proxy));
        let with_port = Some("proxy.feen.test:8443");
        assert!(answers_here(
            "/v1/x",
            Some("proxy.feen.test:8443"),
            with_port
        ));
        assert!(!answers_here("/v1/x", Some("proxy.feen.test"), with_port));
    }

    #[test]
    fn segments_split_under_a_prefix_only() {
        assert_eq!(segments("/api/keys", "/api/keys"), Some(vec![]));
        assert_eq!(segments("/api/keys/", "/api/keys"), Some(vec![]));
        assert_eq!(
            segments("/api/keys/key_1/rotate", "/api/keys"),
            Some(vec!["key_1", "rotate"])
        );
        assert_eq!(segments("/api/keysx", "/api/keys"), None);
        assert_eq!(segments("/other", "/api/keys"), None);
    }

    #[test]
    fn cookies_are_found_by_name() {
        let req = http::Request::builder()
            .header("cookie", "a=1; feen_access=tok; b=2")
            .body(Body::empty())
            .expect("request");
        assert_eq!(cookie(&req, "feen_access"), Some("tok"));
        assert_eq!(cookie(&req, "missing"), None);
    }
}
