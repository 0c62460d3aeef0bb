//! Share policies: which limits a share has, the counters that enforce them, the reservation a
//! request makes before it is forwarded and the settlement after, and the refusals a client
//! sees. Pure functions of the policy, the request and the time.
//!
//! The reservation rule. Before forwarding, a request reserves the most it can use:
//! - tokens (for tokens per minute and per day): a quarter of the body's bytes (the usual
//!   four characters per token) plus its output cap;
//! - money (for the budget): every byte of the body counted as an input token (no tokenizer
//!   makes more tokens than bytes of text) plus the output cap, at the model's price.
//!
//! The output cap is the request's own (`max_tokens`, `max_completion_tokens`,
//! `max_output_tokens`, `generationConfig.maxOutputTokens`), or the share's `reserveTokens`, or
//! [`DEFAULT_RESERVE_TOKENS`]. After the response the reservation is settled to what was really
//! used. So concurrent requests can never jointly spend past a budget; near the edge a request
//! whose worst case does not fit is refused even if its real cost would have.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use time::{Date, Month, OffsetDateTime};

use crate::Error;
use crate::ids::ShareId;
use crate::ports::{Adjustment, Counter};
use crate::pricing::{self, UsdMicros};

const MINUTE_MS: i64 = 60_000;
const DAY_MS: i64 = 86_400_000;
/// Lifetime counters (total uses, lifetime budget) live this long after their last write.
const LIFETIME_TTL_MS: u64 = 400 * DAY_MS as u64;

/// The most names (or globs) in `allowedModels` or `allowedEndpoints`, and CIDRs in `allowedIps`.
pub const MAX_LIST: usize = 100;
/// The output tokens reserved when neither the request nor the share caps them.
pub const DEFAULT_RESERVE_TOKENS: u64 = 4096;

/// Over which period a budget is counted. Periods are UTC: days start at midnight, weeks on
/// Monday, months on the first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Period {
    /// A UTC day.
    Day,
    /// A UTC week, Monday to Sunday.
    Week,
    /// A calendar month.
    Month,
    /// The share's whole life.
    Lifetime,
}

impl Period {
    /// The stored text form.
    pub fn as_str(self) -> &'static str {
        match self {
            Period::Day => "day",
            Period::Week => "week",
            Period::Month => "month",
            Period::Lifetime => "lifetime",
        }
    }

    /// The period for its text form.
    pub fn parse(text: &str) -> Option<Self> {
        [Period::Day, Period::Week, Period::Month, Period::Lifetime]
            .into_iter()
            .find(|p| p.as_str() == text)
    }
}

/// A spending limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Budget {
    /// The most that may be spent per period, in micro-USD.
    pub usd_micros: UsdMicros,
    /// The period.
    pub period: Period,
}

/// A share's limits. `None` or an empty list means unlimited.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Policy {
    /// Requests per minute.
    pub rate_limit: Option<u64>,
    /// Requests per UTC day.
    pub daily_limit: Option<u64>,
    /// Tokens (input + output) per minute.
    #[serde(default)]
    pub tokens_per_minute: Option<u64>,
    /// Tokens (input + output) per UTC day.
    #[serde(default)]
    pub tokens_per_day: Option<u64>,
    /// Spending limit.
    #[serde(default)]
    pub budget: Option<Budget>,
    /// Requests over the share's whole life.
    #[serde(default)]
    pub max_uses: Option<u64>,
    /// Output tokens to reserve when a request does not cap them.
    #[serde(default)]
    pub reserve_tokens: Option<u64>,
    /// When the share stops working (ms since the epoch).
    pub expires_at_ms: Option<i64>,
    /// Models the share may call: exact names or globs with `*`.
    pub allowed_models: Vec<String>,
    /// Upstream paths the share may call: exact paths or globs (`/v1/chat/*`).
    #[serde(default)]
    pub allowed_endpoints: Vec<String>,
    /// Client networks the share may be used from.
    #[serde(default)]
    pub allowed_ips: Vec<IpNet>,
}

impl Policy {
    /// Whether any limit needs a reservation (tokens or money).
    pub fn reserves(&self) -> bool {
        self.tokens_per_minute.is_some() || self.tokens_per_day.is_some() || self.budget.is_some()
    }
}

/// Which limit a counter enforces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LimitKind {
    /// Requests per minute.
    RequestsPerMinute,
    /// Requests per day.
    RequestsPerDay,
    /// Tokens per minute.
    TokensPerMinute,
    /// Tokens per day.
    TokensPerDay,
    /// Micro-USD per budget period.
    Budget,
    /// Requests over the share's life.
    Uses,
}

impl LimitKind {
    /// The share field that sets this limit (`rateLimit`, `budgetUsd`, ...).
    pub fn field(self) -> &'static str {
        match self {
            LimitKind::RequestsPerMinute => "rateLimit",
            LimitKind::RequestsPerDay => "dailyLimit",
            LimitKind::TokensPerMinute => "tokensPerMinute",
            LimitKind::TokensPerDay => "tokensPerDay",
            LimitKind::Budget => "budgetUsd",
            LimitKind::Uses => "maxUses",
        }
    }

    /// What the counter counts, for headers: requests, tokens or micro-USD.
    pub fn unit(self) -> &'static str {
        match self {
            LimitKind::RequestsPerMinute | LimitKind::RequestsPerDay | LimitKind::Uses => {
                "requests"
            }
            LimitKind::TokensPerMinute | LimitKind::TokensPerDay => "tokens",
            LimitKind::Budget => "usd-micros",
        }
    }
}

/// A counter with the limit it enforces and when its window ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Window {
    /// The limit.
    pub kind: LimitKind,
    /// The counter to check and bump.
    pub counter: Counter,
    /// When the window ends (ms since the epoch); `None` for lifetime counters.
    pub resets_at_ms: Option<i64>,
}

/// What a request reserves before it is forwarded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reservation {
    /// Tokens, for the token limits.
    pub tokens: u64,
    /// Micro-USD, for the budget (0 when the share has none).
    pub cost: UsdMicros,
}

/// What a share has used over its life, read from the database when the share is loaded. It
/// seeds the lifetime counters when the counter store has lost them (a Redis restart).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Used {
    /// Requests recorded.
    pub uses: u64,
    /// Micro-USD recorded.
    pub spent: UsdMicros,
}

/// The facts about a request that the policy looks at.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    /// The model, from the body or the path.
    pub model: Option<&'a str>,
    /// The upstream path (no query).
    pub endpoint: &'a str,
    /// The client's address as the host established it.
    pub client_ip: Option<IpAddr>,
    /// The request body.
    pub body: &'a [u8],
    /// The body as JSON, when it is JSON.
    pub json: Option<&'a Json>,
}

/// The output tokens a request may produce: its own cap, or the share's, or the default.
pub fn output_cap(policy: &Policy, json: Option<&Json>) -> u64 {
    let own = json.and_then(|doc| {
        [
            "/max_tokens",
            "/max_completion_tokens",
            "/max_output_tokens",
            "/generationConfig/maxOutputTokens",
        ]
        .iter()
        .find_map(|p| doc.pointer(p).and_then(Json::as_u64))
    });
    own.or(policy.reserve_tokens)
        .unwrap_or(DEFAULT_RESERVE_TOKENS)
}

/// The reservation for a request (see the module docs for the rule). A share with a budget can
/// only call models with a known price.
pub fn reserve(policy: &Policy, req: &Request<'_>) -> Result<Reservation, Error> {
    if !policy.reserves() {
        return Ok(Reservation::default());
    }
    let output = output_cap(policy, req.json);
    let bytes = req.body.len() as u64;
    let tokens = bytes.div_ceil(4).saturating_add(output);
    let cost = match policy.budget {
        None => 0,
        Some(_) => {
            let price = req
                .model
                .and_then(pricing::price)
                .ok_or_else(|| Error::Forbidden {
                    code: "model_not_priced",
                    message: format!(
                        "this Feen token has a budget, and the model {:?} has no known price",
                        req.model.unwrap_or("")
                    ),
                })?;
            pricing::cost(price, bytes, 0, output)
        }
    };
    Ok(Reservation { tokens, cost })
}

/// The counter-store keys of a share's lifetime counters (total uses, lifetime budget). They
/// live long; the jobs drop them once the share has ended.
pub fn lifetime_keys(share: &ShareId) -> [String; 2] {
    [
        format!("ratelimit:uses:{share}"),
        format!("ratelimit:budget-lifetime:{share}"),
    ]
}

/// When the budget period containing `now_ms` began (`None` for a lifetime budget).
pub fn period_start(period: Period, now_ms: i64) -> Option<i64> {
    let day = now_ms.div_euclid(DAY_MS);
    match period {
        Period::Day => Some(day * DAY_MS),
        Period::Week => Some(((day + 3).div_euclid(7) * 7 - 3) * DAY_MS),
        Period::Month => {
            let now = OffsetDateTime::from_unix_timestamp(now_ms.div_euclid(1000)).ok()?;
            let first = Date::from_calendar_date(now.year(), now.month(), 1).ok()?;
            Some(first.midnight().assume_utc().unix_timestamp() * 1000)
        }
        Period::Lifetime => None,
    }
}

/// The window index and end of a budget period containing `now_ms`.
fn period_window(period: Period, now_ms: i64) -> Option<(i64, i64)> {
    let day = now_ms.div_euclid(DAY_MS);
    match period {
        Period::Day => Some((day, (day + 1) * DAY_MS)),
        // 1970-01-01 was a Thursday: shifting by 3 days starts weeks on Monday.
        Period::Week => {
            let week = (day + 3).div_euclid(7);
            Some((week, (week * 7 - 3 + 7) * DAY_MS))
        }
        Period::Month => {
            let now = OffsetDateTime::from_unix_timestamp(now_ms.div_euclid(1000)).ok()?;
            let (year, month) = (now.year(), now.month());
            let (next_year, next_month) = if month == Month::December {
                (year + 1, Month::January)
            } else {
                (year, month.next())
            };
            let next = Date::from_calendar_date(next_year, next_month, 1)
                .ok()?
                .midnight()
                .assume_utc();
            Some((
                i64::from(year) * 12 + i64::from(u8::from(month)),
                next.unix_timestamp() * 1000,
            ))
        }
        Period::Lifetime => None,
    }
}

/// The counters one request must pass, in a fixed order, with what it reserves on each.
pub fn windows(
    share: &ShareId,
    policy: &Policy,
    now_ms: i64,
    reservation: Reservation,
    used: Used,
) -> Vec<Window> {
    let mut out = Vec::with_capacity(6);
    let mut windowed =
        |kind, name: &str, window: Option<(i64, i64)>, limit: Option<u64>, cost: u64| {
            let (Some(limit), Some((index, resets_at_ms))) = (limit, window) else {
                return;
            };
            out.push(Window {
                kind,
                counter: Counter {
                    key: format!("ratelimit:{name}:{share}:{index}"),
                    limit,
                    cost,
                    ttl_ms: u64::try_from(resets_at_ms - now_ms).unwrap_or(0) + 1_000,
                    seed: 0,
                },
                resets_at_ms: Some(resets_at_ms),
            });
        };
    let minute = now_ms.div_euclid(MINUTE_MS);
    let day = now_ms.div_euclid(DAY_MS);
    let minute_window = Some((minute, (minute + 1) * MINUTE_MS));
    let day_window = Some((day, (day + 1) * DAY_MS));
    windowed(
        LimitKind::RequestsPerMinute,
        "rpm",
        minute_window,
        policy.rate_limit,
        1,
    );
    windowed(
        LimitKind::RequestsPerDay,
        "rpd",
        day_window,
        policy.daily_limit,
        1,
    );
    windowed(
        LimitKind::TokensPerMinute,
        "tpm",
        minute_window,
        policy.tokens_per_minute,
        reservation.tokens,
    );
    windowed(
        LimitKind::TokensPerDay,
        "tpd",
        day_window,
        policy.tokens_per_day,
        reservation.tokens,
    );
    if let Some(budget) = policy.budget {
        match period_window(budget.period, now_ms) {
            Some(window) => {
                let name = format!("budget-{}", budget.period.as_str());
                windowed(
                    LimitKind::Budget,
                    &name,
                    Some(window),
                    Some(budget.usd_micros),
                    reservation.cost,
                );
            }
            None => out.push(Window {
                kind: LimitKind::Budget,
                counter: Counter {
                    key: lifetime_keys(share)[1].clone(),
                    limit: budget.usd_micros,
                    cost: reservation.cost,
                    ttl_ms: LIFETIME_TTL_MS,
                    seed: used.spent,
                },
                resets_at_ms: None,
            }),
        }
    }
    if let Some(max) = policy.max_uses {
        out.push(Window {
            kind: LimitKind::Uses,
            counter: Counter {
                key: lifetime_keys(share)[0].clone(),
                limit: max,
                cost: 1,
                ttl_ms: LIFETIME_TTL_MS,
                seed: used.uses,
            },
            resets_at_ms: None,
        });
    }
    out
}

/// The corrections that turn a reservation into what was really used, for the token and budget
/// counters of `windows`.
pub fn settlement(
    windows: &[Window],
    reservation: Reservation,
    tokens: u64,
    cost: UsdMicros,
) -> Vec<Adjustment> {
    let delta = |real: u64, reserved: u64| {
        i64::try_from(real).unwrap_or(i64::MAX) - i64::try_from(reserved).unwrap_or(i64::MAX)
    };
    windows
        .iter()
        .filter_map(|w| {
            let delta = match w.kind {
                LimitKind::TokensPerMinute | LimitKind::TokensPerDay => {
                    delta(tokens, reservation.tokens)
                }
                LimitKind::Budget => delta(cost, reservation.cost),
                _ => return None,
            };
            (delta != 0).then(|| Adjustment {
                key: w.counter.key.clone(),
                delta,
                ttl_ms: w.counter.ttl_ms,
            })
        })
        .collect()
}

/// The error for a refused window: a 429 whose `Retry-After` is when the window ends, or a 403
/// for limits that never reset.
pub fn refusal(window: &Window, now_ms: i64) -> Error {
    let limit = window.counter.limit;
    let Some(resets_at_ms) = window.resets_at_ms else {
        let (code, message) = match window.kind {
            LimitKind::Uses => (
                "uses_exhausted",
                format!("this Feen token has been used its {limit} times"),
            ),
            _ => (
                "budget_exhausted",
                format!("this Feen token has spent its budget of {}", usd(limit)),
            ),
        };
        return Error::Forbidden { code, message };
    };
    let wait_ms = (resets_at_ms - now_ms).max(0);
    let retry_after_secs = u64::try_from((wait_ms + 999) / 1000).unwrap_or(1).max(1);
    let (code, what) = match window.kind {
        LimitKind::RequestsPerMinute => (
            "rate_limit_exceeded",
            format!("{limit} requests per minute"),
        ),
        LimitKind::RequestsPerDay => ("daily_limit_exceeded", format!("{limit} requests per day")),
        LimitKind::TokensPerMinute => (
            "token_rate_limit_exceeded",
            format!("{limit} tokens per minute"),
        ),
        LimitKind::TokensPerDay => (
            "daily_token_limit_exceeded",
            format!("{limit} tokens per day"),
        ),
        LimitKind::Budget | LimitKind::Uses => {
            ("budget_exceeded", format!("{} per period", usd(limit)))
        }
    };
    Error::RateLimited {
        code,
        message: format!("this Feen token allows {what}; retry in {retry_after_secs} s"),
        retry_after_secs,
    }
}

fn usd(micros: UsdMicros) -> String {
    format!("${}.{:06}", micros / 1_000_000, micros % 1_000_000)
}

/// Checks what needs no counter: expiry, client address, endpoint and model.
pub fn check_request(policy: &Policy, req: &Request<'_>, now_ms: i64) -> Result<(), Error> {
    if policy.expires_at_ms.is_some_and(|at| now_ms >= at) {
        return Err(Error::Unauthorized {
            code: "token_expired",
            message: "this Feen token has expired",
        });
    }
    if !policy.allowed_ips.is_empty()
        && !req
            .client_ip
            .is_some_and(|ip| policy.allowed_ips.iter().any(|net| net.contains(&ip)))
    {
        return Err(Error::Forbidden {
            code: "ip_not_allowed",
            message: "this Feen token may not be used from this address".into(),
        });
    }
    if !policy.allowed_endpoints.is_empty()
        && !policy
            .allowed_endpoints
            .iter()
            .any(|p| glob_match(p, req.endpoint))
    {
        return Err(Error::Forbidden {
            code: "endpoint_not_allowed",
            message: format!("this Feen token may not call {}", req.endpoint),
        });
    }
    if policy.allowed_models.is_empty() {
        return Ok(());
    }
    let Some(model) = req.model else {
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

    const NOW: i64 = 1_800_000_030_000; // 2027-01-15T08:00:30Z, a Friday, 30 s into a minute

    fn share() -> ShareId {
        ShareId::new(0, [0; 10])
    }

    fn req<'a>(
        model: Option<&'a str>,
        endpoint: &'a str,
        ip: Option<IpAddr>,
        body: &'a [u8],
        json: Option<&'a Json>,
    ) -> Request<'a> {
        Request {
            model,
            endpoint,
            client_ip: ip,
            body,
            json,
        }
    }

    #[test]
    fn windows_exist_only_for_set_limits() {
        let policy = Policy {
            rate_limit: Some(5),
            ..Policy::default()
        };
        let w = windows(
            &share(),
            &policy,
            NOW,
            Reservation::default(),
            Used::default(),
        );
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].kind, LimitKind::RequestsPerMinute);
        assert_eq!(w[0].counter.limit, 5);
        assert!(w[0].counter.key.starts_with("ratelimit:rpm:shr_"));
        assert_eq!(w[0].resets_at_ms, Some(1_800_000_060_000));
        assert!(
            windows(
                &share(),
                &Policy::default(),
                NOW,
                Reservation::default(),
                Used::default()
            )
            .is_empty()
        );
    }

    #[test]
    fn every_limit_has_its_counter_and_reservation() {
        let policy = Policy {
            rate_limit: Some(1),
            daily_limit: Some(2),
            tokens_per_minute: Some(3),
            tokens_per_day: Some(4),
            budget: Some(Budget {
                usd_micros: 5,
                period: Period::Lifetime,
            }),
            max_uses: Some(6),
            ..Policy::default()
        };
        let r = Reservation {
            tokens: 70,
            cost: 80,
        };
        let used = Used { uses: 9, spent: 10 };
        let w = windows(&share(), &policy, NOW, r, used);
        let summary: Vec<_> = w
            .iter()
            .map(|w| (w.kind, w.counter.limit, w.counter.cost, w.counter.seed))
            .collect();
        assert_eq!(
            summary,
            vec![
                (LimitKind::RequestsPerMinute, 1, 1, 0),
                (LimitKind::RequestsPerDay, 2, 1, 0),
                (LimitKind::TokensPerMinute, 3, 70, 0),
                (LimitKind::TokensPerDay, 4, 70, 0),
                (LimitKind::Budget, 5, 80, 10),
                (LimitKind::Uses, 6, 1, 9),
            ]
        );
        assert_eq!(w[4].resets_at_ms, None);
        assert_eq!(w[5].counter.key, format!("ratelimit:uses:{}", share()));
    }

    #[test]
    fn budget_periods_reset_at_utc_boundaries() {
        // NOW is Friday 2027-01-15 08:00:30 UTC.
        let cases = [
            (Period::Day, "2027-01-16T00:00:00Z"),
            (Period::Week, "2027-01-18T00:00:00Z"),
            (Period::Month, "2027-02-01T00:00:00Z"),
        ];
        for (period, reset) in cases {
            let (_, at) = period_window(period, NOW).expect("window");
            assert_eq!(crate::timefmt::to_rfc3339(at), reset, "{period:?}");
        }
        let dec = crate::timefmt::parse_rfc3339("2026-12-31T23:59:59Z").expect("time");
        let (index, at) = period_window(Period::Month, dec).expect("window");
        assert_eq!(crate::timefmt::to_rfc3339(at), "2027-01-01T00:00:00Z");
        let (jan, _) = period_window(Period::Month, at).expect("window");
        assert_eq!(jan, index + 1);
        assert_eq!(period_window(Period::Lifetime, NOW), None);
    }

    #[test]
    fn budget_periods_start_where_the_previous_one_reset() {
        // NOW is Friday 2027-01-15 08:00:30 UTC.
        let cases = [
            (Period::Day, "2027-01-15T00:00:00Z"),
            (Period::Week, "2027-01-11T00:00:00Z"),
            (Period::Month, "2027-01-01T00:00:00Z"),
        ];
        for (period, start) in cases {
            let at = period_start(period, NOW).expect("start");
            assert_eq!(crate::timefmt::to_rfc3339(at), start, "{period:?}");
            // The previous period's window ends exactly there.
            let (_, prev_end) = period_window(period, at - 1).expect("window");
            assert_eq!(prev_end, at, "{period:?}");
        }
        assert_eq!(period_start(Period::Lifetime, NOW), None);
    }

    #[test]
    fn reservations_take_the_worst_case() {
        let tpm = Policy {
            tokens_per_minute: Some(100_000),
            ..Policy::default()
        };
        let body = br#"{"model":"gpt-4o-mini","max_tokens":100,"messages":[]}"#;
        let json: Json = serde_json::from_slice(body).expect("json");
        let r = reserve(
            &tpm,
            &req(
                Some("gpt-4o-mini"),
                "/v1/chat/completions",
                None,
                body,
                Some(&json),
            ),
        )
        .expect("reserve");
        assert_eq!(
            r,
            Reservation {
                tokens: (body.len() as u64).div_ceil(4) + 100,
                cost: 0
            }
        );

        let budget = Policy {
            budget: Some(Budget {
                usd_micros: 1_000_000,
                period: Period::Day,
            }),
            reserve_tokens: Some(50),
            ..Policy::default()
        };
        let no_cap: Json = serde_json::json!({"model": "gpt-4o-mini"});
        let r = reserve(
            &budget,
            &req(Some("gpt-4o-mini"), "/", None, b"0123456789", Some(&no_cap)),
        )
        .expect("reserve");
        let price = pricing::price("gpt-4o-mini").expect("priced");
        assert_eq!(r.cost, pricing::cost(price, 10, 0, 50));

        let unpriced = reserve(&budget, &req(Some("my-finetune"), "/", None, b"{}", None))
            .expect_err("unpriced");
        assert_eq!(unpriced.code(), "model_not_priced");
        assert_eq!(
            reserve(&Policy::default(), &req(None, "/", None, b"{}", None)).ok(),
            Some(Reservation::default())
        );
    }

    #[test]
    fn output_caps_come_from_every_api_shape() {
        let policy = Policy {
            reserve_tokens: Some(7),
            ..Policy::default()
        };
        let cases = [
            (serde_json::json!({"max_tokens": 11}), 11),
            (serde_json::json!({"max_completion_tokens": 12}), 12),
            (serde_json::json!({"max_output_tokens": 13}), 13),
            (
                serde_json::json!({"generationConfig": {"maxOutputTokens": 14}}),
                14,
            ),
            (serde_json::json!({}), 7),
        ];
        for (doc, cap) in cases {
            assert_eq!(output_cap(&policy, Some(&doc)), cap, "{doc}");
        }
        assert_eq!(output_cap(&Policy::default(), None), DEFAULT_RESERVE_TOKENS);
    }

    #[test]
    fn settlement_corrects_tokens_and_money_only() {
        let policy = Policy {
            rate_limit: Some(1),
            tokens_per_minute: Some(1000),
            budget: Some(Budget {
                usd_micros: 1000,
                period: Period::Day,
            }),
            ..Policy::default()
        };
        let r = Reservation {
            tokens: 500,
            cost: 300,
        };
        let w = windows(&share(), &policy, NOW, r, Used::default());
        let adj = settlement(&w, r, 120, 40);
        assert_eq!(
            adj.iter().map(|a| a.delta).collect::<Vec<_>>(),
            vec![-380, -260]
        );
        assert!(settlement(&w, r, 500, 300).is_empty());
    }

    #[test]
    fn refusals_say_when_to_retry_or_that_it_is_over() {
        let policy = Policy {
            rate_limit: Some(2),
            daily_limit: Some(9),
            max_uses: Some(3),
            budget: Some(Budget {
                usd_micros: 1_500_000,
                period: Period::Lifetime,
            }),
            ..Policy::default()
        };
        let w = windows(
            &share(),
            &policy,
            NOW,
            Reservation::default(),
            Used::default(),
        );
        let rpm = refusal(&w[0], NOW);
        assert!(matches!(
            rpm,
            Error::RateLimited {
                retry_after_secs: 30,
                code: "rate_limit_exceeded",
                ..
            }
        ));
        assert_eq!(refusal(&w[1], NOW).code(), "daily_limit_exceeded");
        let budget = refusal(&w[2], NOW);
        assert_eq!(
            (budget.status().as_u16(), budget.code()),
            (403, "budget_exhausted")
        );
        assert!(budget.to_string().contains("$1.500000"));
        assert_eq!(refusal(&w[3], NOW).code(), "uses_exhausted");
    }

    #[test]
    fn policy_checks_expiry_addresses_endpoints_and_models() {
        let models = |m: &[&str]| m.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let net = |s: &str| s.parse::<IpNet>().expect("cidr");
        let v4: IpAddr = "10.1.2.3".parse().expect("ip");
        let v6: IpAddr = "2001:db8::5".parse().expect("ip");
        // (policy, model, endpoint, client address, expected refusal code)
        type Case<'a> = (
            Policy,
            Option<&'a str>,
            &'a str,
            Option<IpAddr>,
            Option<&'a str>,
        );
        let cases: Vec<Case> = vec![
            (Policy::default(), None, "/v1/x", None, None),
            (
                Policy {
                    expires_at_ms: Some(NOW + 1),
                    ..Policy::default()
                },
                None,
                "/",
                None,
                None,
            ),
            (
                Policy {
                    expires_at_ms: Some(NOW),
                    ..Policy::default()
                },
                None,
                "/",
                None,
                Some("token_expired"),
            ),
            (
                Policy {
                    allowed_models: models(&["gpt-4o-mini"]),
                    ..Policy::default()
                },
                Some("gpt-4o-mini"),
                "/",
                None,
                None,
            ),
            (
                Policy {
                    allowed_models: models(&["gpt-4o-mini"]),
                    ..Policy::default()
                },
                Some("gpt-4o"),
                "/",
                None,
                Some("model_not_allowed"),
            ),
            (
                Policy {
                    allowed_models: models(&["claude-*"]),
                    ..Policy::default()
                },
                Some("claude-3-haiku"),
                "/",
                None,
                None,
            ),
            (
                Policy {
                    allowed_models: models(&["claude-*"]),
                    ..Policy::default()
                },
                None,
                "/",
                None,
                Some("model_required"),
            ),
            (
                Policy {
                    allowed_endpoints: models(&["/v1/chat/*"]),
                    ..Policy::default()
                },
                None,
                "/v1/chat/completions",
                None,
                None,
            ),
            (
                Policy {
                    allowed_endpoints: models(&["/v1/chat/*"]),
                    ..Policy::default()
                },
                None,
                "/v1/embeddings",
                None,
                Some("endpoint_not_allowed"),
            ),
            (
                Policy {
                    allowed_ips: vec![net("10.0.0.0/8")],
                    ..Policy::default()
                },
                None,
                "/",
                Some(v4),
                None,
            ),
            (
                Policy {
                    allowed_ips: vec![net("10.0.0.0/8")],
                    ..Policy::default()
                },
                None,
                "/",
                Some(v6),
                Some("ip_not_allowed"),
            ),
            (
                Policy {
                    allowed_ips: vec![net("10.0.0.0/8"), net("2001:db8::/32")],
                    ..Policy::default()
                },
                None,
                "/",
                Some(v6),
                None,
            ),
            (
                Policy {
                    allowed_ips: vec![net("10.0.0.0/8")],
                    ..Policy::default()
                },
                None,
                "/",
                None,
                Some("ip_not_allowed"),
            ),
        ];
        for (policy, model, endpoint, ip, expected) in cases {
            let got = check_request(&policy, &req(model, endpoint, ip, b"", None), NOW)
                .err()
                .map(|e| e.code());
            assert_eq!(got, expected, "{policy:?} {model:?} {endpoint} {ip:?}");
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
