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
