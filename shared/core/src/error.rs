//! The one error type that crosses a handler boundary, and its single mapping to an HTTP
//! status, a stable machine-readable code and a message a client may see.

use http::StatusCode;

/// Result with Feen's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything a request can fail with. The `Display` text is what the client sees; anything
/// internal (driver messages, upstream detail) lives only in `detail` fields, which are logged
/// by the host and never serialised into a response.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The body is not JSON, or not JSON of the expected shape.
    #[error("{0}")]
    BadRequest(String),
    /// The request is malformed in a way that has its own stable code (a path with dot
    /// segments, a body with a duplicated field, ...).
    #[error("{message}")]
    Invalid { code: &'static str, message: String },
    /// A field is present but its value is not acceptable.
    #[error("{field}: {message}")]
    Validation {
        field: &'static str,
        message: String,
    },
    /// No credentials, or credentials that are not (or no longer) valid.
    #[error("{message}")]
    Unauthorized {
        code: &'static str,
        message: &'static str,
    },
    /// The caller is known but may not do this (policy refusals carry their own code).
    #[error("{message}")]
    Forbidden { code: &'static str, message: String },
    /// The resource does not exist, or exists but belongs to someone else.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The request conflicts with existing state (an email already registered, ...).
    #[error("{0}")]
    Conflict(String),
    /// The route exists but not with this method.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// The body is larger than the endpoint accepts.
    #[error("request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    /// A limit was hit. `retry_after_secs` becomes the `Retry-After` header.
    #[error("{message}")]
    RateLimited {
        code: &'static str,
        message: String,
        retry_after_secs: u64,
    },
    /// A dependency (database, counter store) is unreachable: fail closed.
    #[error("service temporarily unavailable")]
    Unavailable { detail: String },
    /// Too much work in flight (request bodies held in memory): retry shortly.
    #[error("{message}")]
    Busy { message: &'static str },
    /// The provider could not be reached or answered nonsense.
    #[error("the upstream provider could not be reached")]
    Upstream { detail: String },
    /// The provider answered with something Feen does not pass on (a redirect, ...).
    #[error("{message}")]
    BadGateway { code: &'static str, message: String },
    /// A bug or an unexpected state. The client sees only "internal error".
    #[error("internal error")]
    Internal { detail: String },
}

impl Error {
    /// A validation error for one field.
    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        Error::Validation {
            field,
            message: message.into(),
        }
    }

    /// An internal error; `detail` is for the log only.
    pub fn internal(detail: impl Into<String>) -> Self {
        Error::Internal {
            detail: detail.into(),
        }
    }

    /// The caller must authenticate.
    pub fn unauthenticated() -> Self {
        Error::Unauthorized {
            code: "unauthenticated",
            message: "authentication required",
        }
    }

    /// The HTTP status for this error. This is the only place statuses are chosen for errors.
    pub fn status(&self) -> StatusCode {
        match self {
            Error::BadRequest(_) | Error::Validation { .. } | Error::Invalid { .. } => {
                StatusCode::BAD_REQUEST
            }
            Error::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            Error::Forbidden { .. } => StatusCode::FORBIDDEN,
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::Conflict(_) => StatusCode::CONFLICT,
            Error::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Error::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Error::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Error::Unavailable { .. } | Error::Busy { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Error::Upstream { .. } | Error::BadGateway { .. } => StatusCode::BAD_GATEWAY,
            Error::Internal { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable machine-readable code clients can match on.
    pub fn code(&self) -> &'static str {
        match self {
            Error::BadRequest(_) => "bad_request",
            Error::Validation { .. } => "validation_failed",
            Error::Unauthorized { code, .. }
            | Error::Forbidden { code, .. }
            | Error::RateLimited { code, .. }
            | Error::Invalid { code, .. }
            | Error::BadGateway { code, .. } => code,
            Error::NotFound(_) => "not_found",
            Error::Conflict(_) => "conflict",
            Error::MethodNotAllowed => "method_not_allowed",
            Error::PayloadTooLarge { .. } => "payload_too_large",
            Error::Unavailable { .. } => "service_unavailable",
            Error::Busy { .. } => "server_busy",
            Error::Upstream { .. } => "upstream_unreachable",
            Error::Internal { .. } => "internal_error",
        }
    }

    /// The error family in the vocabulary the OpenAI and Anthropic SDKs understand, so an
    /// error from Feen reads like one from the provider.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::BadRequest(_)
            | Error::Invalid { .. }
            | Error::Validation { .. }
            | Error::Conflict(_)
            | Error::MethodNotAllowed
            | Error::PayloadTooLarge { .. } => "invalid_request_error",
            Error::Unauthorized { .. } => "authentication_error",
            Error::Forbidden { .. } => "permission_error",
            Error::NotFound(_) => "not_found_error",
            Error::RateLimited { .. } => "rate_limit_error",
            Error::Unavailable { .. } | Error::Busy { .. } => "overloaded_error",
            Error::Upstream { .. } | Error::BadGateway { .. } | Error::Internal { .. } => {
                "api_error"
            }
        }
    }

    /// The field a validation error is about, if any.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            Error::Validation { field, .. } => Some(field),
            _ => None,
        }
    }

    /// What may be written to the log about this error (never sent to the client).
    pub fn log_detail(&self) -> Option<&str> {
        match self {
            Error::Unavailable { detail }
            | Error::Upstream { detail }
            | Error::Internal { detail } => Some(detail),
            _ => None,
        }
    }

    /// The JSON body for this error. It is shaped so that both OpenAI-style clients
    /// (`error.message`, `error.type`, `error.code`) and Anthropic-style clients (`type: "error"`,
    /// `error.type`, `error.message`) read it natively.
    pub fn to_json(&self) -> serde_json::Value {
        let mut error = serde_json::json!({
            "code": self.code(),
            "message": self.to_string(),
            "type": self.kind(),
        });
        if let (Some(field), Some(obj)) = (self.field(), error.as_object_mut()) {
            obj.insert("field".into(), field.into());
        }
        serde_json::json!({ "type": "error", "error": error })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_detail_never_reaches_the_client_body() {
        let err = Error::internal("connection to 10.0.0.3 refused: password=hunter2");
        let body = err.to_json().to_string();
        assert!(!body.contains("hunter2"));
        assert!(!body.contains("10.0.0.3"));
        assert_eq!(err.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            err.log_detail(),
            Some("connection to 10.0.0.3 refused: password=hunter2")
        );
    }

    #[test]
    fn every_variant_has_a_status_code_and_kind() {
        let cases: Vec<(Error, u16, &str)> = vec![
            (Error::BadRequest("x".into()), 400, "bad_request"),
            (Error::invalid("name", "too long"), 400, "validation_failed"),
            (Error::unauthenticated(), 401, "unauthenticated"),
            (
                Error::Forbidden {
                    code: "model_not_allowed",
                    message: "m".into(),
                },
                403,
                "model_not_allowed",
            ),
            (Error::NotFound("key"), 404, "not_found"),
            (Error::Conflict("taken".into()), 409, "conflict"),
            (Error::MethodNotAllowed, 405, "method_not_allowed"),
            (
                Error::PayloadTooLarge { limit: 10 },
                413,
                "payload_too_large",
            ),
            (
                Error::RateLimited {
                    code: "rate_limited",
                    message: "m".into(),
                    retry_after_secs: 3,
                },
                429,
                "rate_limited",
            ),
            (
                Error::Unavailable { detail: "d".into() },
                503,
                "service_unavailable",
            ),
            (
                Error::Upstream { detail: "d".into() },
                502,
                "upstream_unreachable",
            ),
            (Error::internal("d"), 500, "internal_error"),
            (
                Error::Invalid {
                    code: "invalid_path",
                    message: "m".into(),
                },
                400,
                "invalid_path",
            ),
            (Error::Busy { message: "m" }, 503, "server_busy"),
            (
                Error::BadGateway {
                    code: "upstream_redirect",
                    message: "m".into(),
                },
                502,
                "upstream_redirect",
            ),
        ];
        for (err, status, code) in cases {
            assert_eq!(err.status().as_u16(), status, "{err:?}");
            assert_eq!(err.code(), code, "{err:?}");
            let json = err.to_json();
            assert_eq!(json["type"], "error");
            assert_eq!(json["error"]["code"], code);
            assert!(!json["error"]["message"].as_str().unwrap_or("").is_empty());
        }
    }

    #[test]
    fn validation_errors_name_their_field() {
        let json = Error::invalid("email", "is not an email address").to_json();
        assert_eq!(json["error"]["field"], "email");
        assert_eq!(json["error"]["message"], "email: is not an email address");
    }
}
