//! Usage analytics, pure: the figures a group of usage events adds up to, the latency histogram
//! that percentiles are read from, the groupings the API offers, and UTC hour and day buckets.
//!
//! Percentiles come from a fixed histogram (the same buckets in raw events and in rollups), so
//! the figures of a period are the same whether they were read live or from rollups: a
//! percentile is the upper bound of the bucket it falls in.

use serde::Serialize;

/// One hour and one day in milliseconds.
pub const HOUR_MS: i64 = 3_600_000;
/// One UTC day in milliseconds.
pub const DAY_MS: i64 = 86_400_000;

/// Upper bounds (ms, inclusive) of the latency buckets; one more bucket holds the rest.
pub const LATENCY_BOUNDS_MS: [u64; 12] = [
    10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000, 120_000,
];
/// How many latency buckets there are (the bounds and the overflow).
pub const LATENCY_BUCKETS: usize = LATENCY_BOUNDS_MS.len() + 1;

/// The bucket a duration falls in.
pub fn latency_bucket(duration_ms: u64) -> usize {
    LATENCY_BOUNDS_MS
        .iter()
        .position(|bound| duration_ms <= *bound)
        .unwrap_or(LATENCY_BOUNDS_MS.len())
}

/// What a set of usage events adds up to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Figures {
    /// Requests forwarded to the provider.
    pub requests: u64,
    /// Forwarded requests that failed (an error status, or no answer).
    pub errors: u64,
    /// Requests refused for a rate, token or budget limit (429).
    pub rate_limited: u64,
    /// Requests refused for any reason, limits included.
    pub refused: u64,
    /// Input tokens.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Cost in micro-USD of the requests with a known price.
    pub cost_micros: u64,
    /// Forwarded requests whose model has no known price.
    pub unpriced: u64,
    /// Forwarded requests per latency bucket.
    pub latency: [u64; LATENCY_BUCKETS],
}

impl Figures {
    /// Adds another set's figures to these.
    pub fn add(&mut self, other: &Figures) {
        self.requests += other.requests;
        self.errors += other.errors;
        self.rate_limited += other.rate_limited;
        self.refused += other.refused;
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
        self.cost_micros += other.cost_micros;
        self.unpriced += other.unpriced;
        for (mine, theirs) in self.latency.iter_mut().zip(other.latency) {
            *mine += theirs;
        }
    }

    /// The latency (ms) under which a share `p` (0 < p ≤ 1) of the forwarded requests
    /// finished, as the upper bound of its bucket (the last bound for the overflow bucket);
    /// `None` without requests.
    pub fn percentile(&self, p: f64) -> Option<u64> {
        let total: u64 = self.latency.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = ((p * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for (i, n) in self.latency.iter().enumerate() {
            seen += n;
            if seen >= rank {
                let last = LATENCY_BOUNDS_MS.len() - 1;
                return Some(LATENCY_BOUNDS_MS[i.min(last)]);
            }
        }
        None
    }

    /// The figures as the API shows them.
    pub fn summary(&self) -> Summary {
        Summary {
            requests: self.requests,
            errors: self.errors,
            rate_limited: self.rate_limited,
            refused: self.refused,
            input_tokens: self.input_tokens,
            output_tokens: self.output_tokens,
            cost_usd: self.cost_micros as f64 / 1_000_000.0,
            cost_micros: self.cost_micros,
            unpriced_requests: self.unpriced,
            latency_ms: Latency {
                p50: self.percentile(0.50),
                p95: self.percentile(0.95),
                p99: self.percentile(0.99),
            },
        }
    }
}

/// The figures as the API shows them.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// Requests forwarded to the provider.
    pub requests: u64,
    /// Forwarded requests that failed.
    pub errors: u64,
    /// Requests refused for a limit (429).
    pub rate_limited: u64,
    /// Requests refused for any reason.
    pub refused: u64,
    /// Input tokens.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Cost in USD.
    pub cost_usd: f64,
    /// Cost in micro-USD (exact).
    pub cost_micros: u64,
    /// Forwarded requests without a known price.
    pub unpriced_requests: u64,
    /// Latency percentiles (upper bounds of histogram buckets).
    pub latency_ms: Latency,
}

/// Latency percentiles in ms.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Latency {
    /// Median.
    pub p50: Option<u64>,
    /// 95th percentile.
    pub p95: Option<u64>,
    /// 99th percentile.
    pub p99: Option<u64>,
}

/// How the analytics group usage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupBy {
    /// By UTC hour.
    Hour,
    /// By UTC day.
    Day,
    /// By model.
    Model,
    /// By provider key.
    Key,
    /// By share.
    Share,
    /// By owner: a team, or the user's own.
    Team,
}

impl GroupBy {
    /// Every grouping.
    pub const ALL: [GroupBy; 6] = [
        GroupBy::Hour,
        GroupBy::Day,
        GroupBy::Model,
        GroupBy::Key,
        GroupBy::Share,
        GroupBy::Team,
    ];

    /// The API name.
    pub fn as_str(self) -> &'static str {
        match self {
            GroupBy::Hour => "hour",
            GroupBy::Day => "day",
            GroupBy::Model => "model",
            GroupBy::Key => "key",
            GroupBy::Share => "share",
            GroupBy::Team => "team",
        }
    }

    /// The grouping with this API name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|g| g.as_str() == name)
    }
}

/// The start of the UTC hour `ms` falls in.
pub fn hour_floor(ms: i64) -> i64 {
    ms.div_euclid(HOUR_MS) * HOUR_MS
}

/// The start of the UTC day `ms` falls in.
pub fn day_floor(ms: i64) -> i64 {
    ms.div_euclid(DAY_MS) * DAY_MS
}

/// The start of the UTC month `ms` falls in.
pub fn month_start(ms: i64) -> i64 {
    let label = month_label(ms);
    parse_month(&label).map_or(day_floor(ms), |(start, _)| start)
}

/// The UTC month `ms` falls in, as `YYYY-MM`.
pub fn month_label(ms: i64) -> String {
    crate::timefmt::to_rfc3339(ms)
        .get(..7)
        .unwrap_or_default()
        .to_owned()
}

/// The month a `YYYY-MM` label names: (start, end) in ms, UTC.
pub fn parse_month(label: &str) -> Option<(i64, i64)> {
    let shaped = label.len() == 7 && label.as_bytes().get(4) == Some(&b'-');
    let start =
        crate::timefmt::parse_rfc3339(&format!("{label}-01T00:00:00Z")).filter(|_| shaped)?;
    let next = month_label(start + 32 * DAY_MS);
    let end = crate::timefmt::parse_rfc3339(&format!("{next}-01T00:00:00Z"))?;
    Some((start, end))
}

/// Micro-USD as an exact decimal amount of USD (`1.234567`).
pub fn usd(micros: u64) -> String {
    format!("{}.{:06}", micros / 1_000_000, micros % 1_000_000)
}

/// The end of the UTC hour `ms` falls in, or `ms` if it starts one.
pub fn hour_ceil(ms: i64) -> i64 {
    let floor = hour_floor(ms);
    if floor == ms { ms } else { floor + HOUR_MS }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_fall_in_the_bucket_of_their_upper_bound() {
        assert_eq!(latency_bucket(0), 0);
        assert_eq!(latency_bucket(10), 0);
        assert_eq!(latency_bucket(11), 1);
        assert_eq!(latency_bucket(120_000), 11);
        assert_eq!(latency_bucket(120_001), 12);
        assert_eq!(latency_bucket(u64::MAX), LATENCY_BUCKETS - 1);
    }

    #[test]
    fn percentiles_read_the_histogram() {
        let mut f = Figures::default();
        assert_eq!(f.percentile(0.5), None);
        // 90 fast requests, 9 of about a second, 1 very slow.
        f.latency[latency_bucket(7)] = 90;
        f.latency[latency_bucket(900)] = 9;
        f.latency[latency_bucket(500_000)] = 1;
        assert_eq!(f.percentile(0.5), Some(10));
        assert_eq!(f.percentile(0.90), Some(10));
        assert_eq!(f.percentile(0.95), Some(1_000));
        assert_eq!(f.percentile(0.99), Some(1_000));
        assert_eq!(f.percentile(1.0), Some(120_000));
    }

    #[test]
    fn figures_add_up_field_by_field() {
        let mut a = Figures {
            requests: 2,
            errors: 1,
            rate_limited: 3,
            refused: 4,
            input_tokens: 10,
            output_tokens: 20,
            cost_micros: 30,
            unpriced: 1,
            latency: [1; LATENCY_BUCKETS],
        };
        let b = a.clone();
        a.add(&b);
        assert_eq!(a.requests, 4);
        assert_eq!(a.refused, 8);
        assert_eq!(a.cost_micros, 60);
        assert_eq!(a.latency, [2; LATENCY_BUCKETS]);
        let s = a.summary();
        assert_eq!((s.cost_usd, s.unpriced_requests), (0.00006, 2));
    }

    #[test]
    fn buckets_are_utc_hours_and_days() {
        let t = 1_764_547_200_000 + 5 * HOUR_MS + 123; // 2025-12-01 05:00:00.123 UTC
        assert_eq!(hour_floor(t), 1_764_547_200_000 + 5 * HOUR_MS);
        assert_eq!(hour_ceil(t), 1_764_547_200_000 + 6 * HOUR_MS);
        assert_eq!(hour_ceil(hour_floor(t)), hour_floor(t));
        assert_eq!(day_floor(t), 1_764_547_200_000);
        assert_eq!(hour_floor(-1), -HOUR_MS);
    }

    #[test]
    fn months_are_calendar_months() {
        let at = |s: &str| crate::timefmt::parse_rfc3339(s).expect("time");
        assert_eq!(
            parse_month("2026-02"),
            Some((at("2026-02-01T00:00:00Z"), at("2026-03-01T00:00:00Z")))
        );
        assert_eq!(
            parse_month("2026-12"),
            Some((at("2026-12-01T00:00:00Z"), at("2027-01-01T00:00:00Z")))
        );
        for bad in [
            "2026-13",
            "2026-1",
            "26-01",
            "2026-01-01",
            "",
            "abcd-ef",
            "2026_01",
        ] {
            assert_eq!(parse_month(bad), None, "{bad}");
        }
        assert_eq!(
            month_start(at("2028-02-29T23:59:59Z")),
            at("2028-02-01T00:00:00Z")
        );
        assert_eq!(month_label(at("2028-02-29T23:59:59Z")), "2028-02");
    }

    #[test]
    fn money_is_exact() {
        assert_eq!(usd(0), "0.000000");
        assert_eq!(usd(1_234_567), "1.234567");
        assert_eq!(usd(5), "0.000005");
    }

    #[test]
    fn groupings_round_trip_by_name() {
        for g in GroupBy::ALL {
            assert_eq!(GroupBy::parse(g.as_str()), Some(g));
        }
        assert_eq!(GroupBy::parse("week"), None);
    }
}
