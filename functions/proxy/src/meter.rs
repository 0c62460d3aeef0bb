//! The metered response body: passes every chunk through unchanged and in order, reads usage
//! from it on the way, and when the body ends, fails, or is dropped because the client went
//! away, records exactly one usage event and settles the request's reservation.

use std::pin::Pin;
use std::sync::Arc;
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
        if self.event.model.is_none() {
            self.event.model = usage.model;
        }
        let cost = self
            .event
            .model
            .as_deref()
            .and_then(pricing::price)
            .map(|p| pricing::cost(p, input - cached, cached, output));
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

/// A body that meters the body it wraps.
pub struct Metered {
    inner: Body,
    meter: Option<Meter>,
    /// The upstream's `Content-Length`: servers stop polling a body once that many bytes are
    /// out, so reaching it is the end of the body.
    expected_len: Option<u64>,
    seen_len: u64,
}

impl Metered {
    /// Wraps `inner`, whose length is `expected_len` when the upstream said.
    pub fn new(inner: Body, meter: Meter, expected_len: Option<u64>) -> Self {
        Self {
            inner,
            meter: Some(meter),
            expected_len,
            seen_len: 0,
        }
    }
}

impl Stream for Metered {
    type Item = Result<Bytes, StreamError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_next(cx);
        match &polled {
            Poll::Ready(Some(Ok(chunk))) => {
                if let Some(meter) = this.meter.as_mut() {
                    meter.parser.feed(chunk);
                }
                this.seen_len += chunk.len() as u64;
                if this.expected_len.is_some_and(|len| this.seen_len >= len)
                    && let Some(meter) = this.meter.take()
                {
                    meter.finish(Outcome::Completed);
                }
            }
            Poll::Ready(Some(Err(_))) => {
                if let Some(meter) = this.meter.take() {
                    meter.finish(Outcome::UpstreamError);
                }
            }
            Poll::Ready(None) => {
                if let Some(meter) = this.meter.take() {
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
        if let Some(meter) = self.meter.take() {
            meter.finish(Outcome::ClientDisconnected);
        }
    }
}
