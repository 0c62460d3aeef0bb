//! Monitoring points of `feen serve`, in Prometheus's text format at `GET /metrics` (bearer
//! `FEEN_METRICS_TOKEN`): requests and their latency by function and status, rate-limit
//! refusals, usage (events, tokens, cost), database call timings, and the share cache's hit
//! ratio (memo, shared entry, database).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use feen_core::ports::{Db, DbError, Dialect, Row, UsageSink, Value};
use feen_core::usage::UsageEvent;

/// Latency buckets, in seconds.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Debug, Default, Clone)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        for (i, bound) in BUCKETS.iter().enumerate() {
            if seconds <= *bound {
                self.counts[i] += 1;
            }
        }
        self.sum += seconds;
        self.count += 1;
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (i, bound) in BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {}",
                self.counts[i]
            );
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}",
            self.count
        );
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braces} {}", self.sum);
        let _ = writeln!(out, "{name}_count{braces} {}", self.count);
    }
}

#[derive(Debug, Default)]
struct State {
    requests: BTreeMap<(&'static str, u16), u64>,
    latency: BTreeMap<&'static str, Histogram>,
    db: Histogram,
    db_errors: u64,
    usage_events: u64,
    input_tokens: u64,
    output_tokens: u64,
    cost_micros: u64,
}

/// The counters, shared by the server, the database wrapper and the usage sink.
#[derive(Debug, Default)]
pub struct Metrics {
    state: Mutex<State>,
}

impl Metrics {
    /// Fresh counters.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Counts one answered request of `group` (`auth`, `proxy`, …).
    pub fn request(&self, group: &'static str, status: u16, seconds: f64) {
        if let Ok(mut s) = self.state.lock() {
            *s.requests.entry((group, status)).or_default() += 1;
            s.latency.entry(group).or_default().observe(seconds);
        }
    }

    fn db_call(&self, seconds: f64, failed: bool) {
        if let Ok(mut s) = self.state.lock() {
            s.db.observe(seconds);
            s.db_errors += u64::from(failed);
        }
    }

    fn usage(&self, event: &UsageEvent) {
        // Refusals are counted by their status (`feen_rate_limited_total`), not as usage.
        if event.outcome == feen_core::usage::Outcome::Refused {
            return;
        }
        if let Ok(mut s) = self.state.lock() {
            s.usage_events += 1;
            s.input_tokens += event.input_tokens;
            s.output_tokens += event.output_tokens;
            s.cost_micros += event.cost_micros.unwrap_or(0);
        }
    }

    /// Everything, in Prometheus's text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let Ok(s) = self.state.lock() else {
            return out;
        };
        out.push_str(
            "# HELP feen_http_requests_total Requests answered, by function and status.\n",
        );
        out.push_str("# TYPE feen_http_requests_total counter\n");
        for ((group, status), n) in &s.requests {
            let _ = writeln!(
                out,
                "feen_http_requests_total{{group=\"{group}\",status=\"{status}\"}} {n}"
            );
        }
        out.push_str("# HELP feen_rate_limited_total Proxied requests refused by a limit (429).\n");
        out.push_str("# TYPE feen_rate_limited_total counter\n");
        let limited = s.requests.get(&("proxy", 429)).copied().unwrap_or(0);
        let _ = writeln!(out, "feen_rate_limited_total {limited}");
        out.push_str("# HELP feen_http_request_duration_seconds Time to the response head.\n");
        out.push_str("# TYPE feen_http_request_duration_seconds histogram\n");
        for (group, h) in &s.latency {
            h.render(
                &mut out,
                "feen_http_request_duration_seconds",
                &format!("group=\"{group}\""),
            );
        }
        out.push_str("# HELP feen_db_query_duration_seconds Database calls.\n");
        out.push_str("# TYPE feen_db_query_duration_seconds histogram\n");
        s.db.render(&mut out, "feen_db_query_duration_seconds", "");
        let counters = [
            (
                "feen_db_errors_total",
                "Database calls that failed.",
                s.db_errors,
            ),
            (
                "feen_usage_events_total",
                "Usage events recorded.",
                s.usage_events,
            ),
            (
                "feen_usage_input_tokens_total",
                "Input tokens recorded.",
                s.input_tokens,
            ),
            (
                "feen_usage_output_tokens_total",
                "Output tokens recorded.",
                s.output_tokens,
            ),
            (
                "feen_usage_cost_micro_usd_total",
                "Cost recorded, micro-USD.",
                s.cost_micros,
            ),
        ];
        let (memo, shared, database) = feen_service::cache::stats();
        let cache = [("memo", memo), ("shared", shared), ("database", database)];
        for (name, help, value) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
            );
        }
        out.push_str(
            "# HELP feen_share_cache_lookups_total Share lookups by where they were answered.\n",
        );
        out.push_str("# TYPE feen_share_cache_lookups_total counter\n");
        for (source, n) in cache {
            let _ = writeln!(
                out,
                "feen_share_cache_lookups_total{{source=\"{source}\"}} {n}"
            );
        }
        out
    }
}

/// A database whose calls are timed.
pub struct TimedDb {
    /// The database.
    pub inner: Arc<dyn Db>,
    /// Where the timings go.
    pub metrics: Arc<Metrics>,
}

#[async_trait::async_trait]
impl Db for TimedDb {
    fn dialect(&self) -> Dialect {
        self.inner.dialect()
    }

    async fn query(&self, sql: &str, params: &[Value]) -> Result<Vec<Row>, DbError> {
        let started = Instant::now();
        let result = self.inner.query(sql, params).await;
        self.metrics
            .db_call(started.elapsed().as_secs_f64(), result.is_err());
        result
    }

    async fn execute(&self, sql: &str, params: &[Value]) -> Result<u64, DbError> {
        let started = Instant::now();
        let result = self.inner.execute(sql, params).await;
        self.metrics
            .db_call(started.elapsed().as_secs_f64(), result.is_err());
        result
    }
}

/// A usage sink that counts what passes through it.
pub struct CountingSink<S> {
    /// The sink.
    pub inner: S,
    /// Where the counts go.
    pub metrics: Arc<Metrics>,
}

impl<S: UsageSink> UsageSink for CountingSink<S> {
    fn record(&self, event: UsageEvent) {
        self.metrics.usage(&event);
        self.inner.record(event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative_and_the_text_is_prometheus_shaped() {
        let m = Metrics::default();
        m.request("proxy", 200, 0.0007);
        m.request("proxy", 200, 0.3);
        m.request("proxy", 429, 0.0002);
        let text = m.render();
        assert!(text.contains("feen_http_requests_total{group=\"proxy\",status=\"200\"} 2"));
        assert!(text.contains("feen_rate_limited_total 1"));
        assert!(
            text.contains(
                "feen_http_request_duration_seconds_bucket{group=\"proxy\",le=\"0.001\"} 2"
            )
        );
        assert!(
            text.contains(
                "feen_http_request_duration_seconds_bucket{group=\"proxy\",le=\"+Inf\"} 3"
            )
        );
        assert!(text.contains("feen_http_request_duration_seconds_count{group=\"proxy\"} 3"));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let value = line.rsplit(' ').next().unwrap_or("");
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
    }
}
