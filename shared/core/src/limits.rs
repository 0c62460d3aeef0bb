//! Share policies: which limits a share has, the counters that enforce them, and the refusals
//! a client sees. Pure functions of the policy, the request and the time.

use serde::{Deserialize, Serialize};

use crate::Error;
use crate::ids::ShareId;
use crate::ports::Counter;

const MINUTE_MS: i64 = 60_000;
const DAY_MS: i64 = 86_400_000;

/// The most names (or globs) in `allowedModels`.
pub const MAX_ALLOWED_MODELS: usize = 100;

/// A share's limits. `None` means unlimited.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Policy {
    /// Requests per minute.
    pub rate_limit: Option<u64>,
    /// Requests per UTC day.
    pub daily_limit: Option<u64>,
    /// When the share stops working (ms since the epoch).
    pub expires_at_ms: Option<i64>,
    /// Models the share may call: exact names or globs with `*`. Empty means any model.
    pub allowed_models: Vec<String>,
}

/// Which limit a counter enforces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LimitKind {
    /// Requests per minute.
    RequestsPerMinute,
    /// Requests per day.
    RequestsPerDay,
}

/// A counter with the limit it enforces and when its window ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Window {
    /// The limit.
    pub kind: LimitKind,
    /// The counter to check and bump.
    pub counter: Counter,
    /// When the window ends (ms since the epoch).
    pub resets_at_ms: i64,
}

/// The counters one request must pass, in a fixed order.
pub fn windows(share: &ShareId, policy: &Policy, now_ms: i64) -> Vec<Window> {
    let mut out = Vec::with_capacity(2);
    let mut push = |kind, name: &str, len_ms: i64, limit: Option<u64>| {
        if let Some(limit) = limit {
            let index = now_ms.div_euclid(len_ms);
            let resets_at_ms = (index + 1) * len_ms;
            out.push(Window {
                kind,
                counter: Counter {
                    key: format!("ratelimit:{name}:{share}:{index}"),
                    limit,
                    cost: 1,
                    ttl_ms: u64::try_from(resets_at_ms - now_ms).unwrap_or(0) + 1_000,
                },
                resets_at_ms,
            });
        }
    };
    push(
        LimitKind::RequestsPerMinute,
        "rpm",
        MINUTE_MS,
        policy.rate_limit,
    );
    push(LimitKind::RequestsPerDay, "rpd", DAY_MS, policy.daily_limit);
    out
}

/// The error for a refused window: a 429 whose `Retry-After` is when the window ends.
pub fn refusal(window: &Window, now_ms: i64) -> Error {
    let wait_ms = (window.resets_at_ms - now_ms).max(0);
    let retry_after_secs = u64::try_from((wait_ms + 999) / 1000).unwrap_or(1).max(1);
    let (code, what) = match window.kind {
        LimitKind::RequestsPerMinute => ("rate_limit_exceeded", "requests per minute"),
        LimitKind::RequestsPerDay => ("daily_limit_exceeded", "requests per day"),
    };
    Error::RateLimited {
        code,
        message: format!(
            "this Feen token allows {} {what}; retry in {retry_after_secs} s",
            window.counter.limit
        ),
        retry_after_secs,
    }
}

/// Checks the parts of the policy that need no counter: expiry and the model.
pub fn check_request(policy: &Policy, model: Option<&str>, now_ms: i64) -> Result<(), Error> {
    if policy.expires_at_ms.is_some_and(|at| now_ms >= at) {
        return Err(Error::Unauthorized {
            code: "token_expired",
            message: "this Feen token has expired",
        });
    }
    if policy.allowed_models.is_empty() {
        return Ok(());
    }
    let Some(model) = model else {
        return Err(Error::Forbidden {
            code: "model_required",
            message: "this Feen token is limited to certain models; the request names none".into(),
        });
    };
    if policy
        .allowed_models
        .iter()
        .any(|pattern| glob_match(pattern, model))
    {
        Ok(())
    } else {
        Err(Error::Forbidden {
            code: "model_not_allowed",
            message: format!("this Feen token may not use the model {model:?}"),
        })
    }
}

/// Matches `text` against `pattern`, where `*` stands for any run of characters.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(at) => rest = &rest[at + middle.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_030_000; // 30 s into a minute

    fn share() -> ShareId {
        ShareId::new(0, [0; 10])
    }

    #[test]
    fn windows_exist_only_for_set_limits() {
        let policy = Policy {
            rate_limit: Some(5),
            daily_limit: None,
            ..Policy::default()
        };
        let w = windows(&share(), &policy, NOW);
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].kind, LimitKind::RequestsPerMinute);
        assert_eq!(w[0].counter.limit, 5);
        assert!(w[0].counter.key.starts_with("ratelimit:rpm:shr_"));
        assert_eq!(w[0].resets_at_ms, 1_800_000_060_000);
        assert!(windows(&share(), &Policy::default(), NOW).is_empty());
    }

    #[test]
    fn keys_change_with_the_window() {
        let policy = Policy {
            rate_limit: Some(1),
            daily_limit: Some(1),
            ..Policy::default()
        };
        let a = windows(&share(), &policy, NOW);
        let b = windows(&share(), &policy, NOW + 60_000);
        assert_ne!(a[0].counter.key, b[0].counter.key);
        assert_eq!(a[1].counter.key, b[1].counter.key);
    }

    #[test]
    fn refusals_say_when_to_retry() {
        let policy = Policy {
            rate_limit: Some(2),
            daily_limit: Some(9),
            ..Policy::default()
        };
        let w = windows(&share(), &policy, NOW);
        let rpm = refusal(&w[0], NOW);
        assert!(matches!(
            rpm,
            Error::RateLimited {
                retry_after_secs: 30,
                code: "rate_limit_exceeded",
                ..
            }
        ));
        let rpd = refusal(&w[1], NOW);
        assert_eq!(rpd.code(), "daily_limit_exceeded");
        assert_eq!(rpd.status().as_u16(), 429);
    }

    #[test]
    fn policy_checks_expiry_and_models() {
        let models = |m: &[&str]| m.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let cases: Vec<(Policy, Option<&str>, Option<&str>)> = vec![
            (Policy::default(), None, None),
            (
                Policy {
                    expires_at_ms: Some(NOW + 1),
                    ..Policy::default()
                },
                None,
                None,
            ),
            (
                Policy {
                    expires_at_ms: Some(NOW),
                    ..Policy::default()
                },
                None,
                Some("token_expired"),
            ),
            (
                Policy {
                    allowed_models: models(&["gpt-4o-mini"]),
                    ..Policy::default()
                },
                Some("gpt-4o-mini"),
                None,
            ),
            (
                Policy {
                    allowed_models: models(&["gpt-4o-mini"]),
                    ..Policy::default()
                },
                Some("gpt-4o"),
                Some("model_not_allowed"),
            ),
            (
                Policy {
                    allowed_models: models(&["claude-*"]),
                    ..Policy::default()
                },
                Some("claude-3-haiku"),
                None,
            ),
            (
                Policy {
                    allowed_models: models(&["claude-*"]),
                    ..Policy::default()
                },
                None,
                Some("model_required"),
            ),
        ];
        for (policy, model, expected) in cases {
            let got = check_request(&policy, model, NOW).err().map(|e| e.code());
            assert_eq!(got, expected, "{policy:?} {model:?}");
        }
    }

    #[test]
    fn globs_match_as_expected() {
        let cases = [
            ("gpt-4o", "gpt-4o", true),
            ("gpt-4o", "gpt-4o-mini", false),
            ("gpt-4o*", "gpt-4o-mini", true),
            ("*mini", "gpt-4o-mini", true),
            ("gpt-*-mini", "gpt-4o-mini", true),
            ("gpt-*-mini", "gpt-mini", false),
            ("*", "anything", true),
            ("a*b*c", "abc", true),
            ("a*b*c", "acb", false),
        ];
        for (pattern, text, expected) in cases {
            assert_eq!(glob_match(pattern, text), expected, "{pattern} ~ {text}");
        }
    }
}
