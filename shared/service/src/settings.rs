//! The functions' configuration read from named variables, for the edge hosts (a Worker's
//! secrets and vars, a Spin component's environment): one reading, one set of names and errors.
//! The native host reads the same names in `feen_native::config`, with its own defaults.

use base64::Engine;
use feen_core::crypto::jwt::AccessKeys;
use feen_core::crypto::keyring::KeyRing;
use feen_core::netguard::ClientIpSource;
use feen_core::secret::SecretString;

use crate::Config;
use crate::mail::MailConfig;

/// The smallest `FEEN_JOBS_TOKEN` accepted (it guards an endpoint reachable from the internet).
pub const MIN_JOBS_TOKEN: usize = 32;

/// Reads the configuration through `get` (a variable's value; unset and empty are the same).
/// `stream_idle_default_secs` is the host's default for `FEEN_STREAM_IDLE_SECS`: `Some` on hosts
/// where a client disconnect is invisible (Workers), `None` where it is seen (Spin).
pub fn config(
    get: &dyn Fn(&str) -> Option<String>,
    stream_idle_default_secs: Option<u64>,
) -> Result<Config, String> {
    let get = |name: &str| get(name).filter(|v| !v.trim().is_empty());
    let missing = |name: &str| format!("{name} is not set");
    let keyring = KeyRing::parse(&get("FEEN_KEYRING").ok_or_else(|| missing("FEEN_KEYRING"))?)
        .map_err(|e| format!("FEEN_KEYRING: {e}"))?;
    let session = base64::engine::general_purpose::STANDARD
        .decode(
            get("FEEN_SESSION_SECRET")
                .ok_or_else(|| missing("FEEN_SESSION_SECRET"))?
                .trim(),
        )
        .map_err(|_| "FEEN_SESSION_SECRET is not base64".to_owned())?;
    if session.len() < 32 {
        return Err("FEEN_SESSION_SECRET must be at least 32 bytes".into());
    }
    let stream_idle_secs = match get("FEEN_STREAM_IDLE_SECS") {
        Some(v) => Some(
            v.trim()
                .parse::<u64>()
                .map_err(|_| format!("FEEN_STREAM_IDLE_SECS must be a number, not {v:?}"))?,
        ),
        None => stream_idle_default_secs,
    };
    Ok(Config {
        keyring,
        access: AccessKeys::new(&session),
        allow_private_upstreams: flag("FEEN_ALLOW_PRIVATE_UPSTREAMS", get)?.unwrap_or(false),
        // The host says otherwise where it cannot check resolved addresses (Spin).
        upstreams: upstream_policy(get("FEEN_UPSTREAM_HOSTS"), true)?,
        // The edge is always reached over TLS: Secure unless turned off for local tests.
        secure_cookies: flag("FEEN_COOKIE_SECURE", get)?.unwrap_or(true),
        stream_idle_ms: stream_idle_secs.map(|s| s.max(1) * 1000),
        jobs_token: jobs_token(get("FEEN_JOBS_TOKEN"))?,
        usage_retention_days: usage_retention_days(get("FEEN_USAGE_RETENTION_DAYS"))?,
        mail: mail(&get)?,
        proxy_host: proxy_host(get("FEEN_PROXY_HOST"))?,
        body_memory: body_memory(get("FEEN_BODY_MEMORY_MB"), EDGE_BODY_MEMORY_MB)?,
    })
}

/// The default of `FEEN_BODY_MEMORY_MB` on `feen serve`.
pub const NATIVE_BODY_MEMORY_MB: usize = 256;
/// The default of `FEEN_BODY_MEMORY_MB` on the edge hosts (a Worker isolate has 128 MB in all).
pub const EDGE_BODY_MEMORY_MB: usize = 64;
/// The least `FEEN_BODY_MEMORY_MB`: one body of the largest size the proxy accepts.
pub const MIN_BODY_MEMORY_MB: usize = 32;

/// `FEEN_BODY_MEMORY_MB` (whole MiB, at least [`MIN_BODY_MEMORY_MB`]), in bytes.
pub fn body_memory(value: Option<String>, default_mb: usize) -> Result<usize, String> {
    let mb = match value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()) {
        None => default_mb,
        Some(v) => match v.parse::<usize>() {
            Ok(mb) if (MIN_BODY_MEMORY_MB..=1 << 20).contains(&mb) => mb,
            _ => {
                return Err(format!(
                    "FEEN_BODY_MEMORY_MB must be a whole number of MiB from {MIN_BODY_MEMORY_MB}, not {v:?}"
                ));
            }
        },
    };
    Ok(mb << 20)
}

/// `FEEN_UPSTREAM_HOSTS`, for a host that does (or does not) check resolved addresses.
pub fn upstream_policy(
    hosts: Option<String>,
    checks_resolved_addresses: bool,
) -> Result<feen_core::netguard::UpstreamPolicy, String> {
    Ok(feen_core::netguard::UpstreamPolicy {
        hosts: hosts
            .map(|h| feen_core::netguard::UpstreamPolicy::parse_hosts(&h))
            .transpose()?,
        checks_resolved_addresses,
    })
}

/// `FEEN_PROXY_HOST`: a host name, optionally with a port (`proxy.example.com`,
/// `proxy.example.com:8443`), lower-cased.
pub fn proxy_host(value: Option<String>) -> Result<Option<String>, String> {
    let Some(value) = value.map(|v| v.trim().to_ascii_lowercase()) else {
        return Ok(None);
    };
    let (name, port) = match value.rsplit_once(':') {
        Some((name, port)) => (name, Some(port)),
        None => (value.as_str(), None),
    };
    let name_ok = !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|p| p > 0));
    if !(name_ok && port_ok) {
        return Err(format!(
            "FEEN_PROXY_HOST must be a host name with an optional port (proxy.example.com), not {value:?}"
        ));
    }
    Ok(Some(value))
}

/// A yes/no setting: `1`/`true`/`yes` or `0`/`false`/`no`; `None` when unset; anything else is
/// refused with the setting's name.
pub fn flag(name: &str, get: impl Fn(&str) -> Option<String>) -> Result<Option<bool>, String> {
    match get(name).as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some("1" | "true" | "yes") => Ok(Some(true)),
        Some("0" | "false" | "no") => Ok(Some(false)),
        Some(other) => Err(format!("{name} must be 0 or 1, not {other:?}")),
    }
}

/// `FEEN_EMAIL_API_URL`, `FEEN_EMAIL_API_KEY` and `FEEN_EMAIL_FROM`: all three, or none.
pub fn mail(get: &dyn Fn(&str) -> Option<String>) -> Result<Option<MailConfig>, String> {
    let get = |name: &str| {
        get(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    match (
        get("FEEN_EMAIL_API_URL"),
        get("FEEN_EMAIL_API_KEY"),
        get("FEEN_EMAIL_FROM"),
    ) {
        (None, None, None) => Ok(None),
        (Some(url), Some(key), Some(from)) => {
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                return Err("FEEN_EMAIL_API_URL must be an http(s) URL".into());
            }
            if !from.contains('@') {
                return Err("FEEN_EMAIL_FROM must be an email address".into());
            }
            Ok(Some(MailConfig {
                api_url: url,
                api_key: SecretString::new(key),
                from,
            }))
        }
        _ => Err("set FEEN_EMAIL_API_URL, FEEN_EMAIL_API_KEY and FEEN_EMAIL_FROM together".into()),
    }
}

/// The default of `FEEN_USAGE_RETENTION_DAYS`.
pub const DEFAULT_USAGE_RETENTION_DAYS: u32 = 90;
/// The least retention: the aggregation job recomputes the last two days from raw events.
pub const MIN_USAGE_RETENTION_DAYS: u32 = 3;

/// `FEEN_USAGE_RETENTION_DAYS`, checked.
pub fn usage_retention_days(value: Option<String>) -> Result<u32, String> {
    let Some(v) = value.filter(|v| !v.trim().is_empty()) else {
        return Ok(DEFAULT_USAGE_RETENTION_DAYS);
    };
    match v.trim().parse::<u32>() {
        Ok(days) if days >= MIN_USAGE_RETENTION_DAYS => Ok(days),
        _ => Err(format!(
            "FEEN_USAGE_RETENTION_DAYS must be a whole number of days, at least {MIN_USAGE_RETENTION_DAYS}, not {v:?}"
        )),
    }
}

/// `FEEN_JOBS_TOKEN`, checked for length.
pub fn jobs_token(value: Option<String>) -> Result<Option<SecretString>, String> {
    match value {
        None => Ok(None),
        Some(t) if t.trim().len() < MIN_JOBS_TOKEN => Err(format!(
            "FEEN_JOBS_TOKEN must be at least {MIN_JOBS_TOKEN} characters"
        )),
        Some(t) => Ok(Some(SecretString::new(t.trim().to_owned()))),
    }
}

/// `FEEN_CLIENT_IP_HEADER` and `FEEN_TRUSTED_PROXIES`: both, or neither.
pub fn client_ip_source(get: &dyn Fn(&str) -> Option<String>) -> Result<ClientIpSource, String> {
    let get = |name: &str| get(name).filter(|v| !v.trim().is_empty());
    let (header, trusted) = match (get("FEEN_CLIENT_IP_HEADER"), get("FEEN_TRUSTED_PROXIES")) {
        (None, None) => return Ok(ClientIpSource::default()),
        (Some(h), Some(t)) => (h, t),
        _ => {
            return Err(
                "set both FEEN_CLIENT_IP_HEADER and FEEN_TRUSTED_PROXIES, or neither".into(),
            );
        }
    };
    let header = header.trim().to_ascii_lowercase();
    http::HeaderName::from_bytes(header.as_bytes())
        .map_err(|_| format!("FEEN_CLIENT_IP_HEADER: {header:?} is not a header name"))?;
    let trusted = trusted
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<ipnet::IpNet>()
                .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| format!("FEEN_TRUSTED_PROXIES: {s:?} is not a CIDR"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ClientIpSource {
        header: Some(header),
        trusted,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: std::collections::HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    const RING: &str = "1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    const SESSION: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

    #[test]
    fn a_complete_configuration_reads() {
        let get = vars(&[
            ("FEEN_KEYRING", RING),
            ("FEEN_SESSION_SECRET", SESSION),
            ("FEEN_COOKIE_SECURE", "0"),
            ("FEEN_JOBS_TOKEN", "0123456789abcdef0123456789abcdef"),
        ]);
        let config = config(&get, Some(30)).expect("reads");
        assert!(!config.secure_cookies);
        assert_eq!(config.stream_idle_ms, Some(30_000));
        assert!(config.jobs_token.is_some());
        let spin = config_without_idle(&get);
        assert_eq!(spin.stream_idle_ms, None);
    }

    fn config_without_idle(get: &dyn Fn(&str) -> Option<String>) -> Config {
        config(get, None).expect("reads")
    }

    #[test]
    fn missing_or_bad_values_are_named_and_not_echoed() {
        let err = config(&vars(&[("FEEN_SESSION_SECRET", SESSION)]), None).expect_err("no ring");
        assert!(err.contains("FEEN_KEYRING"), "{err}");
        let short = vars(&[
            ("FEEN_KEYRING", RING),
            ("FEEN_SESSION_SECRET", SESSION),
            ("FEEN_JOBS_TOKEN", "short-secret-value"),
        ]);
        let err = config(&short, None).expect_err("short token");
        assert!(err.contains("FEEN_JOBS_TOKEN") && !err.contains("short-secret-value"));
        let err = client_ip_source(&vars(&[("FEEN_CLIENT_IP_HEADER", "x-forwarded-for")]))
            .expect_err("half");
        assert!(err.contains("FEEN_TRUSTED_PROXIES"));
        let source = client_ip_source(&vars(&[
            ("FEEN_CLIENT_IP_HEADER", "X-Forwarded-For"),
            ("FEEN_TRUSTED_PROXIES", "10.0.0.0/8, 127.0.0.1"),
        ]))
        .expect("reads");
        assert_eq!(source.header.as_deref(), Some("x-forwarded-for"));
        assert_eq!(source.trusted.len(), 2);
        assert_eq!(
            proxy_host(Some(" Proxy.Example.com:8443 ".into())),
            Ok(Some("proxy.example.com:8443".into()))
        );
        assert_eq!(proxy_host(None), Ok(None));
        assert_eq!(body_memory(None, 64), Ok(64 << 20));
        assert_eq!(body_memory(Some("100".into()), 64), Ok(100 << 20));
        for bad in ["8", "lots", "-1"] {
            assert!(body_memory(Some(bad.into()), 64).is_err(), "{bad}");
        }
        for bad in [
            "https://proxy.example.com",
            "proxy.example.com:0",
            "a b",
            ":80",
        ] {
            assert!(proxy_host(Some(bad.into())).is_err(), "{bad}");
        }
    }
}
