//! Writing responses: JSON, Feen's error body, and the one place an error becomes a response.

use feen_core::{Body, Error};
use http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use http::{Response, StatusCode};
use serde::Serialize;

/// The response type every handler returns.
pub type Resp = Response<Body>;

/// A JSON response. Management responses are never cached.
pub fn json<T: Serialize>(status: StatusCode, value: &T) -> Resp {
    match serde_json::to_vec(value) {
        Ok(bytes) => {
            let mut resp = Response::new(Body::from(bytes));
            *resp.status_mut() = status;
            let headers = resp.headers_mut();
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
            resp
        }
        Err(e) => error_response(&Error::internal(format!("serialising a response: {e}"))),
    }
}

/// An empty `204 No Content`.
pub fn no_content() -> Resp {
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = StatusCode::NO_CONTENT;
    resp
}

/// The response for an error: its status, Feen's JSON error body, and `Retry-After` for limits.
/// Internal detail is logged here and nowhere reaches the client.
pub fn error_response(err: &Error) -> Resp {
    if let Some(detail) = err.log_detail() {
        tracing::error!(code = err.code(), detail, "request failed");
    }
    let mut resp = json(err.status(), &err.to_json());
    let retry_after = match err {
        Error::RateLimited {
            retry_after_secs, ..
        } => Some(*retry_after_secs),
        Error::Busy { .. } => Some(1),
        _ => None,
    };
    if let Some(secs) = retry_after {
        resp.headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(secs));
    }
    resp
}

/// Turns a handler's result into its response.
pub fn respond(result: Result<Resp, Error>) -> Resp {
    result.unwrap_or_else(|err| error_response(&err))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_errors_carry_retry_after() {
        let resp = error_response(&Error::RateLimited {
            code: "rate_limit_exceeded",
            message: "m".into(),
            retry_after_secs: 7,
        });
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            resp.headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok()),
            Some("7")
        );
        assert_eq!(
            resp.headers()
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok()),
            Some("application/json")
        );
    }
}
