//! The metered response body: passes every chunk through unchanged and in order, reads usage
//! from it on the way, and when the body ends, fails, or is dropped because the client went
//! away, records exactly one usage event and settles the request's reservation.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use feen_core::Body;
use feen_core::body::StreamError;
use feen_core::limits::{self, Reservation, Window};
use feen_core::ports::{Clock, Defer, Kv, UsageSink};
use feen_core::pricing;
use feen_core::usage::{Format, Outcome, UsageEvent, UsageParser};
use futures_core::Stream;

/// What settling a reservation needs.
pub struct Settle {
    /// The counter store.
    pub kv: Arc<dyn Kv>,
    /// Runs the settlement after the response.
    pub defer: Arc<dyn Defer>,
    /// The counters the request passed.
    pub windows: Vec<Window>,
    /// What it reserved on them.
    pub reservation: Reservation,
    /// The input tokens to assume when the response never said (a quarter of the body's bytes).
    pub estimated_input: u64,
}

/// What the metered body records at its end.
pub struct Meter {
    parser: UsageParser,
    event: UsageEvent,
    sink: Arc<dyn UsageSink>,
    clock: Arc<dyn Clock>,
    started_us: u64,
    settle: Settle,
}

impl Meter {
    /// A meter for a body of `format`, completing `event` and settling with `settle`.
    pub fn new(
        format: Format,
        event: UsageEvent,
        sink: Arc<dyn UsageSink>,
        clock: Arc<dyn Clock>,
        started_us: u64,
        settle: Settle,
    ) -> Self {
        Self {
            parser: UsageParser::new(format),
            event,
            sink,
            clock,
            started_us,
            settle,
        }
    }

    /// Records the event and settles the reservation. Where a successful response never said
    /// what it used (a stream cut before its usage arrived), input is estimated from the request
    /// and output from the events seen, and the reservation is kept rather than refunded: a
    /// budget is never credited with money that may have been spent.
    pub fn finish(mut self, outcome: Outcome) {
        let usage = self.parser.finish();
        let answered = (200..300).contains(&self.event.status);
        let reported = usage.input_tokens.is_some() || usage.output_tokens.is_some();
        let input = usage.input_tokens.unwrap_or(if answered {
            self.settle.estimated_input
        } else {
            0
        });
        let output = usage.output_tokens.unwrap_or(if answered {
            self.parser.events_seen()
        } else {
            0
        });
        let cached = usage.cached_tokens.unwrap_or(0).min(input);
        // The model that ran, when the answer names one with a price, sets the cost; otherwise
        // the model the request named (the one the policy checked).
        let price = usage
            .model
            .as_deref()
            .and_then(pricing::price)
            .or_else(|| self.event.model.as_deref().and_then(pricing::price));
        if self.event.model.is_none() {
            self.event.model = usage
                .model
                .map(|m| m.chars().take(feen_core::scan::MAX_MODEL).collect());
        }
        let cost = price.map(|p| pricing::cost(p, input - cached, cached, output));
        self.event.input_tokens = input;
        self.event.output_tokens = output;
        self.event.cost_micros = cost;
        self.event.outcome = outcome;
        self.event.duration_ms = self.clock.monotonic_us().saturating_sub(self.started_us) / 1000;
        self.sink.record(self.event);

        let keep_reservation = answered && !reported;
        if !keep_reservation {
            let s = self.settle;
            let adjustments = limits::settlement(
                &s.windows,
                s.reservation,
                input.saturating_add(output),
                cost.unwrap_or(0),
            );
            if !adjustments.is_empty() {
                let kv = s.kv.clone();
                s.defer.defer(Box::pin(async move {
                    // A failed settlement leaves the reservation counted: limits err on the
                    // side of refusing, never of overspending.
                    let _ = kv.settle(&adjustments).await;
                }));
            }
        }
    }
}

/// What the body and its watchdog share: the meter until one of them finishes it, and when the
/// client last had a chunk it has not pulled after.
struct Shared {
    meter: Mutex<Option<Meter>>,
    delivered_at_us: AtomicU64,
    awaiting_pull: AtomicBool,
}

impl Shared {
    fn take(&self) -> Option<Meter> {
        self.meter.lock().ok().and_then(|mut m| m.take())
    }
}

/// A body that meters the body it wraps.
pub struct Metered {
    inner: Body,
    shared: Arc<Shared>,
    clock: Arc<dyn Clock>,
    /// The upstream's `Content-Length`: servers stop polling a body once that many bytes are
    /// out, so reaching it is the end of the body.
    expected_len: Option<u64>,
    seen_len: u64,
}

impl Metered {
    /// Wraps `inner`, whose length is `expected_len` when the upstream said.
    // On wasm the ports inside the meter are `!Send` by design (see `ports`); the `Arc` is the
    // same type on every host, and wasm hosts are single-threaded.
    #[cfg_attr(target_family = "wasm", allow(clippy::arc_with_non_send_sync))]
    pub fn new(inner: Body, meter: Meter, expected_len: Option<u64>) -> Self {
        let clock = meter.clock.clone();
        let shared = Arc::new(Shared {
            meter: Mutex::new(Some(meter)),
            delivered_at_us: AtomicU64::new(0),
            awaiting_pull: AtomicBool::new(false),
        });
        Self {
            inner,
            shared,
            clock,
            expected_len,
            seen_len: 0,
        }
    }

    /// On hosts where a client's disconnect never reaches the body (Workers), records the usage
    /// once the client has not pulled the next chunk for `idle_ms`. Waiting for a slow upstream
    /// does not count: only a chunk handed over and not followed by another pull does.
    pub fn watch(&self, defer: Arc<dyn Defer>, idle_ms: u64) {
        let (shared, clock, timer) = (self.shared.clone(), self.clock.clone(), defer.clone());
        let step = (idle_ms / 4).clamp(50, 1000);
        defer.defer(Box::pin(async move {
            loop {
                timer.sleep(step).await;
                if shared.meter.lock().map_or(true, |m| m.is_none()) {
                    return;
                }
                let idle_us = clock
                    .monotonic_us()
                    .saturating_sub(shared.delivered_at_us.load(Ordering::Relaxed));
                if shared.awaiting_pull.load(Ordering::Relaxed) && idle_us >= idle_ms * 1000 {
                    if let Some(meter) = shared.take() {
                        meter.finish(Outcome::ClientDisconnected);
                    }
                    return;
                }
            }
        }));
    }
}

impl Stream for Metered {
    type Item = Result<Bytes, StreamError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        this.shared.awaiting_pull.store(false, Ordering::Relaxed);
        let polled = Pin::new(&mut this.inner).poll_next(cx);
        match &polled {
            Poll::Ready(Some(Ok(chunk))) => {
                if let Ok(mut meter) = this.shared.meter.lock()
                    && let Some(meter) = meter.as_mut()
                {
                    meter.parser.feed(chunk);
                }
                this.seen_len += chunk.len() as u64;
                if this.expected_len.is_some_and(|len| this.seen_len >= len) {
                    if let Some(meter) = this.shared.take() {
                        meter.finish(Outcome::Completed);
                    }
                } else {
                    this.shared
                        .delivered_at_us
                        .store(this.clock.monotonic_us(), Ordering::Relaxed);
                    this.shared.awaiting_pull.store(true, Ordering::Relaxed);
                }
            }
            Poll::Ready(Some(Err(_))) => {
                if let Some(meter) = this.shared.take() {
                    meter.finish(Outcome::UpstreamError);
                }
            }
            Poll::Ready(None) => {
                if let Some(meter) = this.shared.take() {
                    meter.finish(Outcome::Completed);
                }
            }
            Poll::Pending => {}
        }
        polled
    }
}

impl Drop for Metered {
    fn drop(&mut self) {
        if let Some(meter) = self.shared.take() {
            meter.finish(Outcome::ClientDisconnected);
        }
    }
}
