//! The metered response body: passes every chunk through unchanged and in order, reads usage
//! from it on the way, and records exactly one usage event when the body ends, fails, or is
//! dropped because the client went away.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use feen_core::Body;
use feen_core::body::StreamError;
use feen_core::ports::{Clock, UsageSink};
use feen_core::usage::{Format, Outcome, UsageEvent, UsageParser};
use futures_core::Stream;

/// What the metered body records at its end.
pub struct Meter {
    parser: UsageParser,
    event: UsageEvent,
    sink: Arc<dyn UsageSink>,
    clock: Arc<dyn Clock>,
    started_us: u64,
}

impl Meter {
    /// A meter for a body of `format`, completing `event`.
    pub fn new(
        format: Format,
        event: UsageEvent,
        sink: Arc<dyn UsageSink>,
        clock: Arc<dyn Clock>,
        started_us: u64,
    ) -> Self {
        Self {
            parser: UsageParser::new(format),
            event,
            sink,
            clock,
            started_us,
        }
    }

    fn finish(mut self, outcome: Outcome) {
        let usage = self.parser.finish();
        self.event.input_tokens = usage.input_tokens.unwrap_or(0);
        self.event.output_tokens = usage.output_tokens.unwrap_or(0);
        if self.event.model.is_none() {
            self.event.model = usage.model;
        }
        self.event.outcome = outcome;
        self.event.duration_ms = self.clock.monotonic_us().saturating_sub(self.started_us) / 1000;
        self.sink.record(self.event);
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
