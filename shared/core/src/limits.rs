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
//! [`DEFAULT_RESERVE_TOKENS`] (which the proxy then sends as the request's cap), times the
//! answers asked for (`n`, `best_of`, `candidateCount`). A request whose cost cannot be known in
//! advance (a tool billed per call, a remote or uploaded file) is refused on a share with a
//! budget. After the response the reservation is settled to what was really used. So concurrent requests can never jointly spend past a budget; near the edge a request
//! whose worst case does not fit is refused even if its real cost would have.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use time::{Date, Month, OffsetDateTime};

use crate::Error;
use crate::ids::ShareId;
use crate::ports::{Adjustment, Counter};
use crate::pricing::{self, UsdMicros};
use crate::scan::BodyFacts;

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

    /// Whether any limit is counted in a window that resets (a minute, a day, a budget period).
    pub fn windowed(&self) -> bool {
        self.rate_limit.is_some()
            || self.daily_limit.is_some()
            || self.tokens_per_minute.is_some()
            || self.tokens_per_day.is_some()
            || self.budget.is_some_and(|b| b.period != Period::Lifetime)
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

/// What a share has used, read from the database when the share is loaded: over its life, and
/// in the windows current at that moment. It seeds the counters the counter store has lost (a
/// Redis that lost its data, a restart of the embedded default), so that a restart forgets
/// nothing that was recorded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Used {
    /// Requests recorded.
    pub uses: u64,
    /// Micro-USD recorded.
    pub spent: UsdMicros,
    /// Use recorded in the windows current when the share was loaded.
    #[serde(default)]
    pub recent: Recent,
}

/// Use recorded in the windows current at `at_ms`: a windowed counter that is missing in its
/// window starts from these, and only in that same window (later windows start from zero).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Recent {
    /// When it was read (ms since the epoch); 0: never read.
    pub at_ms: i64,
    /// Requests in that minute.
    pub minute_requests: u64,
    /// Tokens (input + output) in that minute.
    pub minute_tokens: u64,
    /// Requests in that UTC day.
    pub day_requests: u64,
    /// Tokens in that UTC day.
    pub day_tokens: u64,
    /// Micro-USD in that budget period (for a budget that is not for the share's lifetime).
    pub budget_spent: UsdMicros,
}

/// Where the windows a share's counters need began, at `now_ms`: the minute, the UTC day, and
/// the budget period (when its budget is not for its lifetime), for reading [`Recent`].
pub fn recent_starts(policy: &Policy, now_ms: i64) -> (i64, i64, Option<i64>) {
    let minute = now_ms.div_euclid(MINUTE_MS) * MINUTE_MS;
    let day = now_ms.div_euclid(DAY_MS) * DAY_MS;
    let period = policy.budget.and_then(|b| period_start(b.period, now_ms));
    (minute, day, period)
}

/// The facts about a request that the policy looks at.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    /// The model, from the path or the body.
    pub model: Option<&'a str>,
    /// The upstream path (no query), normalised: exactly what is sent.
    pub endpoint: &'a str,
    /// The client's address as the host established it.
    pub client_ip: Option<IpAddr>,
    /// The request body's length in bytes.
    pub body_len: u64,
    /// What the body says, when it is a JSON object.
    pub facts: Option<&'a BodyFacts>,
}

/// The output tokens one answer of a request may produce: its own cap, or the share's, or the
/// default. (The proxy sends the share's or the default cap with a request that has none, on a
/// share whose limits reserve, so the bound is real.)
pub fn output_cap(policy: &Policy, facts: Option<&BodyFacts>) -> u64 {
    facts
        .and_then(|f| f.output_cap)
        .or(policy.reserve_tokens)
        .unwrap_or(DEFAULT_RESERVE_TOKENS)
}

/// The reservation for a request (see the module docs for the rule). A share with a budget can
/// only call models with a known price, and only with requests whose cost is bounded.
pub fn reserve(policy: &Policy, req: &Request<'_>) -> Result<Reservation, Error> {
    if !policy.reserves() {
        return Ok(Reservation::default());
    }
    let choices = req.facts.map_or(1, |f| f.choices.max(1));
    let output = output_cap(policy, req.facts).saturating_mul(choices);
    let bytes = req.body_len;
    let tokens = bytes.div_ceil(4).saturating_add(output);
    let cost = match policy.budget {
        None => 0,
        Some(_) => {
            if let Some(why) = req.facts.and_then(|f| f.unbounded) {
                return Err(Error::Forbidden {
                    code: "cost_not_bounded",
                    message: format!(
                        "this Feen token has a budget, and this request's cost cannot be known before it runs: {why}"
                    ),
                });
            }
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
    let recent = used.recent;
    let mut windowed =
        |kind, name: &str, window: Option<(i64, i64)>, limit: Option<u64>, cost: u64, seed: u64| {
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
                    seed,
                },
                resets_at_ms: Some(resets_at_ms),
            });
        };
    let minute = now_ms.div_euclid(MINUTE_MS);
    let day = now_ms.div_euclid(DAY_MS);
    let minute_window = Some((minute, (minute + 1) * MINUTE_MS));
    let day_window = Some((day, (day + 1) * DAY_MS));
    // What was recorded seeds a counter only in the window it was read in.
    let same_minute = recent.at_ms > 0 && recent.at_ms.div_euclid(MINUTE_MS) == minute;
    let same_day = recent.at_ms > 0 && recent.at_ms.div_euclid(DAY_MS) == day;
    let in_minute = |v: u64| if same_minute { v } else { 0 };
    let in_day = |v: u64| if same_day { v } else { 0 };
    windowed(
        LimitKind::RequestsPerMinute,
        "rpm",
        minute_window,
        policy.rate_limit,
        1,
        in_minute(recent.minute_requests),
    );
    windowed(
        LimitKind::RequestsPerDay,
        "rpd",
        day_window,
        policy.daily_limit,
        1,
        in_day(recent.day_requests),
    );
    windowed(
        LimitKind::TokensPerMinute,
        "tpm",
        minute_window,
        policy.tokens_per_minute,
        reservation.tokens,
        in_minute(recent.minute_tokens),
    );
    windowed(
        LimitKind::TokensPerDay,
        "tpd",
        day_window,
        policy.tokens_per_day,
        reservation.tokens,
        in_day(recent.day_tokens),
    );
    if let Some(budget) = policy.budget {
        match period_window(budget.period, now_ms) {
            Some(window) => {
                let name = format!("budget-{}", budget.period.as_str());
                let same_period = recent.at_ms > 0
                    && period_window(budget.period, recent.at_ms).map(|w| w.0) == Some(window.0);
                windowed(
                    LimitKind::Budget,
                    &name,
                    Some(window),
                    Some(budget.usd_micros),
                    reservation.cost,
                    if same_period { recent.budget_spent } else { 0 },
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

/// Matches `text` against `pattern`: `*` stands for any run of characters without a `/`, `**`
/// for any run at all (so `/v1/chat/*` allows `/v1/chat/completions` but not
/// `/v1/chat/x/y`, and `/v1/**` allows everything under `/v1/`).
pub fn glob_match(pattern: &str, text: &str) -> bool {
    #[derive(Clone, Copy, PartialEq, Eq)]
    enum Token {
        Byte(u8),
        Star,
        AnyStar,
    }
    if !pattern.contains('*') {
        return pattern == text;
    }
    let bytes = pattern.as_bytes();
    let mut tokens = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'*' {
            let mut run = 0;
            while bytes.get(i + run) == Some(&b'*') {
                run += 1;
            }
            tokens.push(if run >= 2 {
                Token::AnyStar
            } else {
                Token::Star
            });
            i += run;
        } else {
            tokens.push(Token::Byte(bytes[i]));
            i += 1;
        }
    }
    // Which pattern positions are reachable after each byte of the text (an NFA run: time
    // pattern × text, memory one row), with stars matching nothing closed over.
    let close = |row: &mut Vec<bool>| {
        for j in 0..tokens.len() {
            if row[j] && matches!(tokens[j], Token::Star | Token::AnyStar) {
                row[j + 1] = true;
            }
        }
    };
    let mut row = vec![false; tokens.len() + 1];
    row[0] = true;
    close(&mut row);
    for &b in text.as_bytes() {
        let mut next = vec![false; tokens.len() + 1];
        let mut any = false;
        for (j, token) in tokens.iter().enumerate() {
            if !row[j] {
                continue;
            }
            match *token {
                Token::Byte(p) if p == b => next[j + 1] = true,
                Token::Byte(_) => continue,
                Token::Star if b == b'/' => continue,
                Token::Star | Token::AnyStar => next[j] = true,
            }
            any = true;
        }
        if !any {
            return false;
        }
        close(&mut next);
        row = next;
    }
    row[tokens.len()]
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
        facts: Option<&'a BodyFacts>,
    ) -> Request<'a> {
        Request {
            model,
            endpoint,
            client_ip: ip,
            body_len: body.len() as u64,
            facts,
        }
    }

    fn facts(body: &[u8]) -> BodyFacts {
        crate::scan::scan(body)
            .expect("accepted")
            .expect("an object")
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
        let used = Used {
            uses: 9,
            spent: 10,
            recent: Recent::default(),
        };
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
    fn recorded_use_seeds_windowed_counters_only_in_its_own_window() {
        let policy = Policy {
            rate_limit: Some(10),
            daily_limit: Some(100),
            tokens_per_minute: Some(1000),
            tokens_per_day: Some(10_000),
            budget: Some(Budget {
                usd_micros: 5000,
                period: Period::Month,
            }),
            ..Policy::default()
        };
        let recent = Recent {
            at_ms: NOW - 10_000,
            minute_requests: 3,
            minute_tokens: 30,
            day_requests: 40,
            day_tokens: 400,
            budget_spent: 4000,
        };
        let used = Used {
            recent,
            ..Used::default()
        };
        let seeds = |now: i64| -> Vec<u64> {
            windows(&share(), &policy, now, Reservation::default(), used)
                .iter()
                .map(|w| w.counter.seed)
                .collect()
        };
        assert_eq!(seeds(NOW), vec![3, 40, 30, 400, 4000]);
        // The next minute: the minute's counters start from zero, the day's from what was read.
        assert_eq!(seeds(NOW + 30_000), vec![0, 40, 0, 400, 4000]);
        // The next day (still January): only the month's budget.
        assert_eq!(seeds(NOW + DAY_MS), vec![0, 0, 0, 0, 4000]);
        // The next month: nothing.
        assert_eq!(seeds(NOW + 20 * DAY_MS), vec![0, 0, 0, 0, 0]);
        // Never read: nothing.
        let none = windows(
            &share(),
            &policy,
            NOW,
            Reservation::default(),
            Used::default(),
        );
        assert!(none.iter().all(|w| w.counter.seed == 0));
        assert!(policy.windowed());
        assert!(!Policy::default().windowed());
        let (minute, day, period) = recent_starts(&policy, NOW);
        assert_eq!((NOW - minute, NOW - day), (30_000, 8 * 3_600_000 + 30_000));
        assert_eq!(
            period.map(crate::timefmt::to_rfc3339).as_deref(),
            Some("2027-01-01T00:00:00Z")
        );
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
        let f = facts(body);
        let r = reserve(
            &tpm,
            &req(
                Some("gpt-4o-mini"),
                "/v1/chat/completions",
                None,
                body,
                Some(&f),
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
        let no_cap = facts(br#"{"model": "gpt-4o-mini"}"#);
        let r = reserve(
            &budget,
            &req(Some("gpt-4o-mini"), "/", None, b"0123456789", Some(&no_cap)),
        )
        .expect("reserve");
        let price = pricing::price("gpt-4o-mini").expect("priced");
        assert_eq!(r.cost, pricing::cost(price, 10, 0, 50));

        // Several answers reserve several caps.
        let body = br#"{"model":"gpt-4o-mini","max_tokens":100,"n":8}"#;
        let several = facts(body);
        let r = reserve(
            &budget,
            &req(Some("gpt-4o-mini"), "/", None, body, Some(&several)),
        )
        .expect("reserve");
        assert_eq!(r.cost, pricing::cost(price, body.len() as u64, 0, 800));
        assert_eq!(r.tokens, (body.len() as u64).div_ceil(4) + 800);
        let body = br#"{"model":"gpt-4o-mini","best_of":3,"n":2,"max_tokens":10}"#;
        let best = facts(body);
        let r = reserve(&tpm, &req(None, "/", None, body, Some(&best))).expect("reserve");
        assert_eq!(r.tokens, (body.len() as u64).div_ceil(4) + 30);

        // What cannot be bounded is refused on a budget, and only there.
        let body = br#"{"model":"gpt-4o-mini","tools":[{"type":"web_search_preview"}]}"#;
        let searching = facts(body);
        let refused = reserve(
            &budget,
            &req(Some("gpt-4o-mini"), "/", None, body, Some(&searching)),
        )
        .expect_err("unbounded");
        assert_eq!(
            (refused.code(), refused.status().as_u16()),
            ("cost_not_bounded", 403)
        );
        assert!(
            reserve(
                &tpm,
                &req(Some("gpt-4o-mini"), "/", None, body, Some(&searching))
            )
            .is_ok()
        );

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
        let cases: [(&[u8], u64); 5] = [
            (br#"{"max_tokens": 11}"#, 11),
            (br#"{"max_completion_tokens": 12}"#, 12),
            (br#"{"max_output_tokens": 13}"#, 13),
            (br#"{"generationConfig": {"maxOutputTokens": 14}}"#, 14),
            (b"{}", 7),
        ];
        for (doc, cap) in cases {
            assert_eq!(output_cap(&policy, Some(&facts(doc))), cap);
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
        let long = "a".repeat(200);
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
            ("/v1/chat/*", "/v1/chat/completions", true),
            ("/v1/chat/*", "/v1/chat/x/completions", false),
            ("/v1/chat/*", "/v1/chat/", true),
            ("/v1/*", "/v1/images/generations", false),
            ("/v1/**", "/v1/images/generations", true),
            ("/v1/**/completions", "/v1/chat/completions", true),
            ("/v1/**/completions", "/v1/a/b/completions", true),
            ("/v1/*/completions", "/v1/a/b/completions", false),
            ("openai/*", "openai/gpt-4o", true),
            ("*", "openai/gpt-4o", false),
            ("**", "openai/gpt-4o", true),
            ("***", "a/b", true),
            ("*-mini", "gpt-4o-mini", true),
            ("x*y*z*", "xyz", true),
            ("*a*a*a*a*a*a*b", long.as_str(), false),
        ];
        for (pattern, text, expected) in cases {
            assert_eq!(glob_match(pattern, text), expected, "{pattern} ~ {text}");
        }
    }
}
