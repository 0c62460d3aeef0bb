//! The provider catalogue: where each provider lives and how it wants its key.

use http::HeaderValue;
use http::header::{AUTHORIZATION, HeaderMap, HeaderName};

use crate::secret::SecretString;

/// How a provider expects its API key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthStyle {
    /// `Authorization: Bearer KEY` (OpenAI and the OpenAI-compatible providers).
    Bearer,
    /// `x-api-key: KEY` plus `anthropic-version` (defaulted when the client sent none).
    Anthropic,
    /// `x-goog-api-key: KEY` (Google Gemini).
    GoogApiKey,
    /// `api-key: KEY` (Azure OpenAI).
    AzureApiKey,
    /// A header and value template of the key owner's choosing ([`CustomAuth`]).
    Custom,
}

/// How a `custom` provider wants its key: a header, and a template in which `{key}` stands for
/// the key (`Authorization` / `Bearer {key}`, `X-Api-Token` / `{key}`, ...).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CustomAuth {
    /// The header's name.
    pub header: String,
    /// The header's value, with `{key}` where the key goes.
    pub template: String,
}

impl CustomAuth {
    /// Validates a header name and template (defaults: `Authorization`, `Bearer {key}`).
    pub fn new(header: Option<&str>, template: Option<&str>) -> Result<Self, crate::Error> {
        let header = header.unwrap_or("Authorization").trim().to_owned();
        let template = template.unwrap_or("Bearer {key}").to_owned();
        let parsed = HeaderName::from_bytes(header.as_bytes())
            .map_err(|_| crate::Error::invalid("authHeader", "must be a valid HTTP header name"))?;
        let lower = parsed.as_str();
        if STRIPPED_REQUEST_HEADERS.contains(&lower) || lower == "content-type" {
            return Err(crate::Error::invalid(
                "authHeader",
                "cannot be a connection or content header",
            ));
        }
        if template.matches("{key}").count() != 1 || template.len() > 200 {
            return Err(crate::Error::invalid(
                "authTemplate",
                "must contain {key} exactly once, in at most 200 characters",
            ));
        }
        if HeaderValue::from_str(&template.replace("{key}", "k")).is_err() {
            return Err(crate::Error::invalid(
                "authTemplate",
                "must be a valid header value",
            ));
        }
        Ok(Self { header, template })
    }
}

/// The `anthropic-version` sent when the client did not send one.
pub const DEFAULT_ANTHROPIC_VERSION: &str = "2023-06-01";

/// One provider of the catalogue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Provider {
    /// The catalogue name used in the API (`"openai"`).
    pub name: &'static str,
    /// The default base URL; a key's `baseUrl` overrides it. Paths after `/api/proxy` are
    /// appended to it, so it carries no version segment.
    pub base_url: &'static str,
    /// How the key is sent.
    pub auth: AuthStyle,
    /// Whether its chat completion streams report usage when asked with
    /// `stream_options.include_usage` (so the proxy asks; see [`crate::inject`]).
    pub stream_usage: bool,
}

/// Every provider Feen knows. Azure has no default base URL: each resource has its own, so an
/// Azure key must carry `baseUrl`.
pub const CATALOGUE: &[Provider] = &[
    Provider {
        name: "openai",
        base_url: "https://api.openai.com",
        auth: AuthStyle::Bearer,
        stream_usage: true,
    },
    Provider {
        name: "anthropic",
        base_url: "https://api.anthropic.com",
        auth: AuthStyle::Anthropic,
        stream_usage: false,
    },
    Provider {
        name: "gemini",
        base_url: "https://generativelanguage.googleapis.com",
        auth: AuthStyle::GoogApiKey,
        stream_usage: false,
    },
    Provider {
        name: "custom",
        base_url: "",
        auth: AuthStyle::Custom,
        stream_usage: false,
    },
    Provider {
        name: "azure",
        base_url: "",
        auth: AuthStyle::AzureApiKey,
        stream_usage: true,
    },
    Provider {
        name: "mistral",
        base_url: "https://api.mistral.ai",
        auth: AuthStyle::Bearer,
        stream_usage: false,
    },
    Provider {
        name: "groq",
        base_url: "https://api.groq.com/openai",
        auth: AuthStyle::Bearer,
        stream_usage: false,
    },
    Provider {
        name: "together",
        base_url: "https://api.together.xyz",
        auth: AuthStyle::Bearer,
        stream_usage: true,
    },
    Provider {
        name: "cohere",
        base_url: "https://api.cohere.com",
        auth: AuthStyle::Bearer,
        stream_usage: false,
    },
    Provider {
        name: "deepseek",
        base_url: "https://api.deepseek.com",
        auth: AuthStyle::Bearer,
        stream_usage: true,
    },
    Provider {
        name: "xai",
        base_url: "https://api.x.ai",
        auth: AuthStyle::Bearer,
        stream_usage: true,
    },
    Provider {
        name: "openrouter",
        base_url: "https://openrouter.ai/api",
        auth: AuthStyle::Bearer,
        stream_usage: true,
    },
    Provider {
        name: "fireworks",
        base_url: "https://api.fireworks.ai/inference",
        auth: AuthStyle::Bearer,
        stream_usage: true,
    },
    Provider {
        name: "perplexity",
        base_url: "https://api.perplexity.ai",
        auth: AuthStyle::Bearer,
        stream_usage: false,
    },
    Provider {
        name: "huggingface",
        base_url: "https://router.huggingface.co",
        auth: AuthStyle::Bearer,
        stream_usage: false,
    },
    Provider {
        name: "replicate",
        base_url: "https://api.replicate.com",
        auth: AuthStyle::Bearer,
        stream_usage: false,
    },
];

/// Looks a provider up by its catalogue name.
pub fn find(name: &str) -> Option<&'static Provider> {
    CATALOGUE.iter().find(|p| p.name == name)
}

/// The headers in which clients send a provider key, and so in which a Feen token may arrive.
/// All of them are removed before forwarding.
pub const CREDENTIAL_HEADERS: &[&str] =
    &["authorization", "x-api-key", "x-goog-api-key", "api-key"];

/// Headers never forwarded upstream: hop-by-hop headers, the client's host, its cookies, and
/// anything naming the client's network position.
const STRIPPED_REQUEST_HEADERS: &[&str] = &[
    "host",
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
    "cookie",
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-real-ip",
    "cf-connecting-ip",
];

/// Headers a client may send that choose which of the key owner's organisations or projects a
/// request bills to: never forwarded (the key's owner decides that, not the token holder).
const ACCOUNT_REQUEST_HEADERS: &[&str] = &["openai-organization", "openai-project"];

/// Headers of an upstream's answer that never reach the client:
/// - anything that acts on the origin Feen serves from, where the dashboard lives: cookies,
///   redirects and refreshes, authentication prompts, policies (CSP, HSTS, permissions,
///   cross-origin isolation), site-data wiping, reporting endpoints, alternative services,
///   downloads under a name of the upstream's choosing;
/// - what identifies the key owner's account at the provider (organisation and project ids);
/// - hop-by-hop headers.
///
/// Feen's own `Content-Security-Policy` and `X-Content-Type-Options` replace any upstream one
/// (see [`answer_headers`]).
pub const STRIPPED_RESPONSE_HEADERS: &[&str] = &[
    "set-cookie",
    "set-cookie2",
    "location",
    "content-location",
    "refresh",
    "www-authenticate",
    "proxy-authenticate",
    "clear-site-data",
    "strict-transport-security",
    "public-key-pins",
    "public-key-pins-report-only",
    "alt-svc",
    "content-security-policy",
    "content-security-policy-report-only",
    "permissions-policy",
    "feature-policy",
    "cross-origin-opener-policy",
    "cross-origin-embedder-policy",
    "cross-origin-resource-policy",
    "access-control-allow-credentials",
    "report-to",
    "reporting-endpoints",
    "nel",
    "link",
    "content-disposition",
    "x-frame-options",
    "x-content-type-options",
    "origin-agent-cluster",
    "service-worker-allowed",
    "x-xss-protection",
    "openai-organization",
    "openai-project",
    "anthropic-organization-id",
    "x-organization-id",
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
];

/// The `Content-Security-Policy` of every answer the proxy gives: whatever the upstream sent is
/// a sandboxed document with no scripts, no plugins, no forms, no same-origin access and nothing
/// to load, so that even an HTML page from a hostile upstream is inert on Feen's origin.
pub const ANSWER_CSP: &str =
    "sandbox; default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Makes an upstream's answer headers safe to hand to a client on Feen's origin: removes
/// [`STRIPPED_RESPONSE_HEADERS`] and sets Feen's sandbox policy, `nosniff` and no referrer.
/// Used for every answer of the proxy, Feen's own errors included.
pub fn answer_headers(headers: &mut HeaderMap) {
    for name in STRIPPED_RESPONSE_HEADERS {
        headers.remove(*name);
    }
    headers.insert(
        http::header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(ANSWER_CSP),
    );
    headers.insert(
        http::header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        http::header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        http::header::X_FRAME_OPTIONS,
        HeaderValue::from_static("DENY"),
    );
}

/// The Feen token presented with a request, from whichever credential header the client's SDK
/// uses (`Authorization: Bearer`, `x-api-key`, `x-goog-api-key`, `api-key`).
pub fn presented_token(headers: &HeaderMap) -> Option<&str> {
    if let Some(auth) = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        let (scheme, token) = auth.split_once(' ')?;
        return scheme.eq_ignore_ascii_case("bearer").then(|| token.trim());
    }
    CREDENTIAL_HEADERS[1..]
        .iter()
        .find_map(|name| headers.get(*name).and_then(|v| v.to_str().ok()))
        .map(str::trim)
}

/// Turns the client's headers into the upstream's: drops credentials and hop-by-hop headers,
/// then adds the real key in the provider's style.
pub fn upstream_headers(
    client: &HeaderMap,
    auth: AuthStyle,
    custom: Option<&CustomAuth>,
    key: &SecretString,
) -> HeaderMap {
    let mut headers = HeaderMap::with_capacity(client.len() + 2);
    for (name, value) in client {
        let lower = name.as_str();
        if CREDENTIAL_HEADERS.contains(&lower)
            || STRIPPED_REQUEST_HEADERS.contains(&lower)
            || ACCOUNT_REQUEST_HEADERS.contains(&lower)
        {
            continue;
        }
        headers.append(name.clone(), value.clone());
    }
    let Ok(mut secret) = HeaderValue::from_str(key.expose()) else {
        return headers;
    };
    secret.set_sensitive(true);
    match auth {
        AuthStyle::Bearer => {
            if let Ok(mut value) = HeaderValue::from_str(&format!("Bearer {}", key.expose())) {
                value.set_sensitive(true);
                headers.insert(AUTHORIZATION, value);
            }
        }
        AuthStyle::Anthropic => {
            headers.insert(HeaderName::from_static("x-api-key"), secret);
            headers
                .entry(HeaderName::from_static("anthropic-version"))
                .or_insert(HeaderValue::from_static(DEFAULT_ANTHROPIC_VERSION));
        }
        AuthStyle::GoogApiKey => {
            headers.insert(HeaderName::from_static("x-goog-api-key"), secret);
        }
        AuthStyle::AzureApiKey => {
            headers.insert(HeaderName::from_static("api-key"), secret);
        }
        AuthStyle::Custom => {
            let Some(custom) = custom else { return headers };
            let name = HeaderName::from_bytes(custom.header.as_bytes());
            let value = HeaderValue::from_str(&custom.template.replace("{key}", key.expose()));
            if let (Ok(name), Ok(mut value)) = (name, value) {
                value.set_sensitive(true);
                headers.insert(name, value);
            }
        }
    }
    headers
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).expect("valid header"));
        }
        map
    }

    #[test]
    fn token_is_read_from_every_sdk_header() {
        type Case<'a> = (&'a [(&'static str, &'a str)], Option<&'a str>);
        let cases: &[Case] = &[
            (&[("authorization", "Bearer feen_abc")], Some("feen_abc")),
            (&[("authorization", "bearer  feen_abc ")], Some("feen_abc")),
            (&[("x-api-key", "feen_abc")], Some("feen_abc")),
            (&[("x-goog-api-key", "feen_abc")], Some("feen_abc")),
            (&[("api-key", "feen_abc")], Some("feen_abc")),
            (&[("authorization", "Basic Zm9v")], None),
            (&[], None),
        ];
        for (pairs, expected) in cases {
            assert_eq!(presented_token(&headers(pairs)), *expected, "{pairs:?}");
        }
    }

    #[test]
    fn upstream_gets_the_real_key_in_its_own_style_and_no_feen_token() {
        let client = headers(&[
            ("authorization", "Bearer feen_abc"),
            ("x-api-key", "feen_abc"),
            ("content-type", "application/json"),
            ("cookie", "feen_access=1"),
            ("x-forwarded-for", "1.2.3.4"),
            ("host", "feen.example"),
        ]);
        let key = SecretString::new("sk-real".into());
        let cases = [
            (AuthStyle::Bearer, "authorization", "Bearer sk-real"),
            (AuthStyle::Anthropic, "x-api-key", "sk-real"),
            (AuthStyle::GoogApiKey, "x-goog-api-key", "sk-real"),
            (AuthStyle::AzureApiKey, "api-key", "sk-real"),
        ];
        for (style, header, value) in cases {
            let out = upstream_headers(&client, style, None, &key);
            assert_eq!(
                out.get(header).and_then(|v| v.to_str().ok()),
                Some(value),
                "{style:?}"
            );
            assert!(
                out.values()
                    .all(|v| v.to_str().map(|s| !s.contains("feen_abc")).unwrap_or(true)),
                "{style:?}"
            );
            for gone in ["cookie", "x-forwarded-for", "host"] {
                assert!(out.get(gone).is_none(), "{style:?} kept {gone}");
            }
            assert_eq!(
                out.get("content-type").and_then(|v| v.to_str().ok()),
                Some("application/json")
            );
        }
    }

    #[test]
    fn the_client_cannot_choose_the_owners_organisation_or_project() {
        let client = headers(&[
            ("openai-organization", "org-other"),
            ("OpenAI-Project", "proj_other"),
            ("openai-beta", "assistants=v2"),
        ]);
        let out = upstream_headers(
            &client,
            AuthStyle::Bearer,
            None,
            &SecretString::new("k".into()),
        );
        assert!(out.get("openai-organization").is_none());
        assert!(out.get("openai-project").is_none());
        assert_eq!(
            out.get("openai-beta").and_then(|v| v.to_str().ok()),
            Some("assistants=v2")
        );
    }

    #[test]
    fn answers_lose_what_acts_on_the_origin_and_gain_the_sandbox() {
        let mut answer = headers(&[
            ("set-cookie", "feen_access=stolen; Path=/"),
            ("location", "https://evil.example/"),
            ("refresh", "0; url=https://evil.example/"),
            ("www-authenticate", "Basic realm=feen"),
            ("clear-site-data", "\"cookies\""),
            ("content-security-policy", "default-src *"),
            ("openai-organization", "org-owner"),
            ("anthropic-organization-id", "owner-org"),
            ("content-type", "text/html"),
            ("x-request-id", "req_1"),
            ("retry-after", "3"),
        ]);
        answer_headers(&mut answer);
        for gone in [
            "set-cookie",
            "location",
            "refresh",
            "www-authenticate",
            "clear-site-data",
            "openai-organization",
            "anthropic-organization-id",
        ] {
            assert!(answer.get(gone).is_none(), "{gone} passed");
        }
        let csp: Vec<_> = answer
            .get_all("content-security-policy")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        assert_eq!(csp, vec![ANSWER_CSP]);
        assert!(ANSWER_CSP.starts_with("sandbox;") && ANSWER_CSP.contains("default-src 'none'"));
        assert_eq!(
            answer
                .get("x-content-type-options")
                .and_then(|v| v.to_str().ok()),
            Some("nosniff")
        );
        for kept in ["content-type", "x-request-id", "retry-after"] {
            assert!(answer.get(kept).is_some(), "{kept} lost");
        }
    }

    #[test]
    fn anthropic_version_is_defaulted_but_a_clients_choice_is_kept() {
        let key = SecretString::new("k".into());
        let out = upstream_headers(&HeaderMap::new(), AuthStyle::Anthropic, None, &key);
        assert_eq!(
            out.get("anthropic-version").and_then(|v| v.to_str().ok()),
            Some(DEFAULT_ANTHROPIC_VERSION)
        );
        let out = upstream_headers(
            &headers(&[("anthropic-version", "2024-01-01")]),
            AuthStyle::Anthropic,
            None,
            &key,
        );
        assert_eq!(
            out.get("anthropic-version").and_then(|v| v.to_str().ok()),
            Some("2024-01-01")
        );
    }

    #[test]
    fn custom_providers_get_their_own_header() {
        let custom = CustomAuth::new(Some("X-Custom-Auth"), Some("Token {key}")).expect("valid");
        let client = headers(&[("authorization", "Bearer feen_abc")]);
        let out = upstream_headers(
            &client,
            AuthStyle::Custom,
            Some(&custom),
            &SecretString::new("s3cret".into()),
        );
        assert_eq!(
            out.get("x-custom-auth").and_then(|v| v.to_str().ok()),
            Some("Token s3cret")
        );
        assert!(out.get("authorization").is_none());
        assert_eq!(
            CustomAuth::new(None, None)
                .map(|c| c.template)
                .ok()
                .as_deref(),
            Some("Bearer {key}")
        );
        for (header, template) in [
            ("bad header", "{key}"),
            ("host", "{key}"),
            ("x-k", "no placeholder"),
            ("x-k", "{key}{key}"),
            ("x-k", "line\n{key}"),
        ] {
            assert!(
                CustomAuth::new(Some(header), Some(template)).is_err(),
                "{header} {template}"
            );
        }
    }

    #[test]
    fn catalogue_names_are_unique_and_found() {
        for provider in CATALOGUE {
            assert_eq!(find(provider.name), Some(provider));
            assert_eq!(
                CATALOGUE.iter().filter(|p| p.name == provider.name).count(),
                1
            );
        }
        assert_eq!(find("nope"), None);
    }
}
