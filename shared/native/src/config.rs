//! The native host's configuration: one table, read from the environment and flags, validated
//! once at start-up.
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `DATABASE_URL` | `postgres://...` or `sqlite://PATH` | `sqlite://DATA_DIR/feen.sqlite` |
//! | `REDIS_URL` | `redis://host:port` for shared counters and caches | in-process |
//! | `UPSTASH_REDIS_REST_URL`, `UPSTASH_REDIS_REST_TOKEN` | Redis over the Upstash REST protocol instead of `REDIS_URL` | unset |
//! | `FEEN_REDIS_PREFIX` | prefix of every Redis key (several deployments on one Redis) | `feen:` |
//! | `FEEN_KEYRING` | `1:BASE64KEY[,2:BASE64KEY]` (32-byte keys) | created in `DATA_DIR/secrets.json` |
//! | `FEEN_SESSION_SECRET` | base64 of at least 32 bytes, signs access tokens | created in `DATA_DIR/secrets.json` |
//! | `FEEN_ALLOW_PRIVATE_UPSTREAMS` | `1`: keys may point at private/loopback/plain-http URLs (dev only) | off |
//! | `FEEN_COOKIE_SECURE` | `0`/`1`: the `Secure` cookie attribute | on unless listening on loopback |
//! | `FEEN_CLIENT_IP_HEADER` | header a proxy in front of Feen sets with the client's address | none: the TCP peer |
//! | `FEEN_TRUSTED_PROXIES` | comma-separated CIDRs whose `FEEN_CLIENT_IP_HEADER` is believed | none |

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use feen_core::crypto::jwt::AccessKeys;
use feen_core::crypto::keyring::KeyRing;
use feen_core::netguard::ClientIpSource;
use feen_core::ports::{Rng, random};
use feen_service::Config;

/// Settings from the environment.
#[derive(Clone, Default)]
pub struct Settings {
    /// `DATABASE_URL`.
    pub database_url: Option<String>,
    /// `REDIS_URL`.
    pub redis_url: Option<String>,
    /// `UPSTASH_REDIS_REST_URL` and `UPSTASH_REDIS_REST_TOKEN`.
    pub upstash: Option<(String, String)>,
    /// `FEEN_REDIS_PREFIX`.
    pub redis_prefix: String,
    /// `FEEN_KEYRING`.
    pub keyring: Option<String>,
    /// `FEEN_SESSION_SECRET`.
    pub session_secret: Option<String>,
    /// `FEEN_ALLOW_PRIVATE_UPSTREAMS`.
    pub allow_private_upstreams: bool,
    /// `FEEN_COOKIE_SECURE`.
    pub cookie_secure: Option<bool>,
    /// `FEEN_CLIENT_IP_HEADER` and `FEEN_TRUSTED_PROXIES`.
    pub client_ip: ClientIpSource,
    /// `FEEN_METRICS_TOKEN`: the bearer token of `GET /metrics` (unset: no endpoint).
    pub metrics_token: Option<String>,
    /// `FEEN_JOBS_TOKEN`: the bearer token of `POST /api/jobs/run` (unset: no endpoint).
    pub jobs_token: Option<String>,
    /// `FEEN_JOBS_INTERVAL_SECS`: how often `feen serve` runs the periodic jobs (0: never, for
    /// deployments that run `feen jobs` from a scheduler of their own).
    pub jobs_interval_secs: u64,
    /// `FEEN_USAGE_RETENTION_DAYS`: how long raw usage events are kept once rolled up.
    pub usage_retention_days: u32,
    /// `FEEN_EMAIL_API_URL`, `FEEN_EMAIL_API_KEY`, `FEEN_EMAIL_FROM` (checked together).
    pub email: [Option<String>; 3],
    /// `FEEN_PROXY_HOST`: the proxy's own hostname, apart from the dashboard's.
    pub proxy_host: Option<String>,
    /// `FEEN_UPSTREAM_HOSTS` (the native host checks resolved addresses itself).
    pub upstreams: feen_core::netguard::UpstreamPolicy,
    /// `FEEN_BODY_MEMORY_MB`, in bytes (0: not set, the default).
    pub body_memory: usize,
    /// What the server allows each connection.
    pub server: ServerLimits,
}

/// What `feen serve` allows each client connection, so that no client can hold connections or
/// memory without end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerLimits {
    /// `FEEN_HEADER_TIMEOUT_SECS`: how long a request's headers may take to arrive, which is
    /// also how long an idle keep-alive connection waits for its next request.
    pub header_timeout_secs: u64,
    /// `FEEN_BODY_TIMEOUT_SECS`: how long a request's body may take to arrive, in all.
    pub body_timeout_secs: u64,
    /// `FEEN_MAX_CONNECTIONS`: connections served at once; further ones wait to be accepted.
    pub max_connections: usize,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            header_timeout_secs: 30,
            body_timeout_secs: 120,
            max_connections: 1024,
        }
    }
}

/// A whole number from `min` to `max`, or the default when unset.
fn bounded(
    name: &str,
    value: Option<String>,
    default: u64,
    min: u64,
    max: u64,
) -> Result<u64, String> {
    match value {
        None => Ok(default),
        Some(v) => match v.trim().parse::<u64>() {
            Ok(n) if (min..=max).contains(&n) => Ok(n),
            _ => Err(format!(
                "{name} must be a whole number from {min} to {max}, not {v:?}"
            )),
        },
    }
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("database", &self.database_url.as_deref().map(redact_url))
            .field("redis", &self.redis_url.as_deref().map(redact_url))
            .field("upstash", &self.upstash.as_ref().map(|(url, _)| url))
            .field("keyring", &self.keyring.as_ref().map(|_| "[set]"))
            .field(
                "session_secret",
                &self.session_secret.as_ref().map(|_| "[set]"),
            )
            .field("allow_private_upstreams", &self.allow_private_upstreams)
            .field("jobs_token", &self.jobs_token.as_ref().map(|_| "[set]"))
            .field(
                "metrics_token",
                &self.metrics_token.as_ref().map(|_| "[set]"),
            )
            .finish()
    }
}

/// A URL with any password replaced, for logs.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            format!("{}://[redacted]@{}", &url[..scheme_end], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

fn flag(name: &str) -> Result<Option<bool>, String> {
    feen_service::settings::flag(name, |n| std::env::var(n).ok())
}

impl Settings {
    /// Reads the settings from the environment.
    pub fn from_env() -> Result<Self, String> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        Ok(Self {
            database_url: var("DATABASE_URL"),
            redis_url: var("REDIS_URL"),
            upstash: match (
                var("UPSTASH_REDIS_REST_URL"),
                var("UPSTASH_REDIS_REST_TOKEN"),
            ) {
                (Some(url), Some(token)) => Some((url, token)),
                (None, None) => None,
                _ => {
                    return Err(
                        "set both UPSTASH_REDIS_REST_URL and UPSTASH_REDIS_REST_TOKEN, or neither"
                            .into(),
                    );
                }
            },
            redis_prefix: var("FEEN_REDIS_PREFIX").unwrap_or_else(|| "feen:".into()),
            keyring: var("FEEN_KEYRING"),
            session_secret: var("FEEN_SESSION_SECRET"),
            allow_private_upstreams: flag("FEEN_ALLOW_PRIVATE_UPSTREAMS")?.unwrap_or(false),
            cookie_secure: flag("FEEN_COOKIE_SECURE")?,
            client_ip: client_ip_source(var("FEEN_CLIENT_IP_HEADER"), var("FEEN_TRUSTED_PROXIES"))?,
            jobs_token: var("FEEN_JOBS_TOKEN"),
            proxy_host: feen_service::settings::proxy_host(var("FEEN_PROXY_HOST"))?,
            upstreams: feen_service::settings::upstream_policy(var("FEEN_UPSTREAM_HOSTS"), true)?,
            server: {
                let default = ServerLimits::default();
                ServerLimits {
                    header_timeout_secs: bounded(
                        "FEEN_HEADER_TIMEOUT_SECS",
                        var("FEEN_HEADER_TIMEOUT_SECS"),
                        default.header_timeout_secs,
                        1,
                        3600,
                    )?,
                    body_timeout_secs: bounded(
                        "FEEN_BODY_TIMEOUT_SECS",
                        var("FEEN_BODY_TIMEOUT_SECS"),
                        default.body_timeout_secs,
                        1,
                        3600,
                    )?,
                    max_connections: bounded(
                        "FEEN_MAX_CONNECTIONS",
                        var("FEEN_MAX_CONNECTIONS"),
                        default.max_connections as u64,
                        1,
                        1_000_000,
                    )? as usize,
                }
            },
            body_memory: feen_service::settings::body_memory(
                var("FEEN_BODY_MEMORY_MB"),
                feen_service::settings::NATIVE_BODY_MEMORY_MB,
            )?,
            email: {
                let email = EMAIL_VARS.map(var);
                feen_service::settings::mail(&|name| email_var(&email, name))?;
                email
            },
            usage_retention_days: feen_service::settings::usage_retention_days(var(
                "FEEN_USAGE_RETENTION_DAYS",
            ))?,
            metrics_token: match var("FEEN_METRICS_TOKEN") {
                Some(t) if t.trim().len() < 32 => {
                    return Err("FEEN_METRICS_TOKEN must be at least 32 characters".into());
                }
                other => other.map(|t| t.trim().to_owned()),
            },
            jobs_interval_secs: match var("FEEN_JOBS_INTERVAL_SECS") {
                None => 3600,
                Some(v) => v.trim().parse().map_err(|_| {
                    format!("FEEN_JOBS_INTERVAL_SECS must be a number of seconds, not {v:?}")
                })?,
            },
        })
    }

    /// Builds the functions' configuration, creating the secrets file in `data_dir` on first
    /// start when the secrets are not given in the environment.
    pub fn config(
        &self,
        data_dir: &Path,
        listen: SocketAddr,
        rng: &dyn Rng,
    ) -> Result<Config, String> {
        let (keyring, session) = match (&self.keyring, &self.session_secret) {
            (Some(ring), Some(secret)) => (ring.clone(), secret.clone()),
            (None, None) => load_or_create_secrets(data_dir, rng)?,
            _ => return Err("set both FEEN_KEYRING and FEEN_SESSION_SECRET, or neither".into()),
        };
        let keyring = KeyRing::parse(&keyring).map_err(|e| format!("FEEN_KEYRING: {e}"))?;
        let session = B64
            .decode(session.trim())
            .map_err(|_| "FEEN_SESSION_SECRET is not base64".to_owned())?;
        if session.len() < 32 {
            return Err("FEEN_SESSION_SECRET must be at least 32 bytes".into());
        }
        Ok(Config {
            keyring,
            access: AccessKeys::new(&session),
            allow_private_upstreams: self.allow_private_upstreams,
            // Secure unless said otherwise, or listening on loopback with no proxy in front
            // (plain-http local use). Behind a TLS-terminating proxy on loopback, naming the
            // proxy (FEEN_TRUSTED_PROXIES) says that clients come over TLS.
            secure_cookies: self
                .cookie_secure
                .unwrap_or(!listen.ip().is_loopback() || self.client_ip.header.is_some()),
            stream_idle_ms: None,
            jobs_token: feen_service::settings::jobs_token(self.jobs_token.clone())?,
            mail: self.mail()?,
            proxy_host: self.proxy_host.clone(),
            upstreams: feen_core::netguard::UpstreamPolicy {
                checks_resolved_addresses: true,
                ..self.upstreams.clone()
            },
            body_memory: match self.body_memory {
                0 => feen_service::settings::NATIVE_BODY_MEMORY_MB << 20,
                bytes => bytes,
            },
            // Zero is "not set" (a `Settings::default()`).
            usage_retention_days: match self.usage_retention_days {
                0 => feen_service::settings::DEFAULT_USAGE_RETENTION_DAYS,
                days => days,
            },
        })
    }
}

impl Settings {
    /// The mail API settings, if all three are set.
    pub fn mail(&self) -> Result<Option<feen_service::mail::MailConfig>, String> {
        feen_service::settings::mail(&|name| email_var(&self.email, name))
    }
}

const EMAIL_VARS: [&str; 3] = [
    "FEEN_EMAIL_API_URL",
    "FEEN_EMAIL_API_KEY",
    "FEEN_EMAIL_FROM",
];

fn email_var(values: &[Option<String>; 3], name: &str) -> Option<String> {
    EMAIL_VARS
        .iter()
        .position(|n| *n == name)
        .and_then(|i| values[i].clone())
}

fn client_ip_source(
    header: Option<String>,
    trusted: Option<String>,
) -> Result<ClientIpSource, String> {
    feen_service::settings::client_ip_source(&|name| match name {
        "FEEN_CLIENT_IP_HEADER" => header.clone(),
        "FEEN_TRUSTED_PROXIES" => trusted.clone(),
        _ => None,
    })
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct SecretsFile {
    keyring: String,
    session_secret: String,
}

/// The git work tree `dir` lies in, if any (a `.git` in it or above it): a key ring written there
/// is one `git add .` away from a repository.
pub fn git_work_tree(dir: &Path) -> Option<PathBuf> {
    let dir = std::fs::canonicalize(dir).ok()?;
    dir.ancestors()
        .find(|d| d.join(".git").exists())
        .map(Path::to_path_buf)
}

/// The secrets file's path in a data directory.
pub fn secrets_path(data_dir: &Path) -> PathBuf {
    data_dir.join("secrets.json")
}

fn load_or_create_secrets(data_dir: &Path, rng: &dyn Rng) -> Result<(String, String), String> {
    let path = secrets_path(data_dir);
    std::fs::create_dir_all(data_dir)
        .map_err(|e| format!("creating {}: {e}", data_dir.display()))?;
    let fresh = SecretsFile {
        keyring: KeyRing::from_single(random::<32>(rng))
            .to_config_text()
            .to_string(),
        session_secret: B64.encode(random::<32>(rng)),
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(&path) {
        Ok(mut file) => {
            let text = serde_json::to_string_pretty(&fresh).map_err(|e| e.to_string())?;
            file.write_all(text.as_bytes())
                .map_err(|e| format!("writing {}: {e}", path.display()))?;
            tracing::warn!(
                path = %path.display(),
                "created a new key ring and session secret (mode 0600); back this file up: provider keys cannot be opened without it"
            );
            Ok((fresh.keyring, fresh.session_secret))
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("reading {}: {e}", path.display()))?;
            let stored: SecretsFile = serde_json::from_str(&text)
                .map_err(|_| format!("{} is not a Feen secrets file", path.display()))?;
            Ok((stored.keyring, stored.session_secret))
        }
        Err(e) => Err(format!("creating {}: {e}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_bounded_and_named_when_wrong() {
        assert_eq!(bounded("X", None, 30, 1, 60), Ok(30));
        assert_eq!(bounded("X", Some(" 5 ".into()), 30, 1, 60), Ok(5));
        for bad in ["0", "61", "-1", "soon"] {
            let err = bounded("FEEN_X", Some(bad.into()), 30, 1, 60).expect_err(bad);
            assert!(err.contains("FEEN_X"), "{err}");
        }
    }

    #[test]
    fn a_data_directory_inside_a_work_tree_is_found() {
        let root = std::env::temp_dir().join(format!("feen-git-{}", std::process::id()));
        let data = root.join("app/feen-data");
        std::fs::create_dir_all(&data).expect("dirs");
        assert_eq!(git_work_tree(&data), None);
        std::fs::create_dir_all(root.join(".git")).expect("git dir");
        assert_eq!(git_work_tree(&data), std::fs::canonicalize(&root).ok());
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn urls_lose_their_passwords_in_logs() {
        assert_eq!(
            redact_url("postgres://feen:hunter2@db:5432/feen"),
            "postgres://[redacted]@db:5432/feen"
        );
        assert_eq!(
            redact_url("redis://127.0.0.1:6379"),
            "redis://127.0.0.1:6379"
        );
    }
}
