//! The process's budget of request bodies held in memory. The proxy reads a body whole before it
//! forwards it (it must check what the body asks for first), so many large bodies at once could
//! take the process's memory: each body's bytes are counted against one budget
//! (`FEEN_BODY_MEMORY_MB`) while they are held, and a body that does not fit is refused with
//! `503 server_busy` and `Retry-After` instead of waiting. Counted with one atomic, so the check
//! costs nothing measurable and works the same on every host.

use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use feen_core::{Body, Error};

static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);

/// Bytes of request bodies held in this process right now.
pub fn in_flight() -> usize {
    IN_FLIGHT.load(Ordering::Relaxed)
}

/// A share of the budget, given back when dropped.
#[derive(Debug)]
pub struct Permit {
    bytes: usize,
}

impl Permit {
    /// Takes `more` bytes of the budget of `cap` bytes, if they fit.
    fn grow(&mut self, more: usize, cap: usize) -> bool {
        let taken = IN_FLIGHT.fetch_update(Ordering::AcqRel, Ordering::Acquire, |now| {
            now.checked_add(more).filter(|total| *total <= cap)
        });
        if taken.is_ok() {
            self.bytes += more;
        }
        taken.is_ok()
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        IN_FLIGHT.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

/// The most of a refused body read (and thrown away) so that the client, still sending, sees
/// the refusal instead of a reset connection; a larger one is cut off.
const MAX_DRAIN: usize = 64 << 20;

/// Reads what is left of a body without keeping it, up to [`MAX_DRAIN`].
async fn drain(body: Body) {
    use futures_util::StreamExt;
    let Body::Stream(stream) = body else {
        return;
    };
    let mut stream = stream.into_inner();
    let mut seen = 0usize;
    while let Some(Ok(chunk)) = stream.next().await {
        seen += chunk.len();
        if seen > MAX_DRAIN {
            return;
        }
    }
}

fn busy() -> Error {
    Error::Busy {
        message: "Feen is holding too many large request bodies right now; retry in a moment",
    }
}

/// Reads a request body of at most `limit` bytes, counting it against a budget of `cap` bytes
/// for every body in the process. A declared length is taken from the budget before reading
/// (and refused at once when over `limit`); a body without one takes its chunks as they come.
pub async fn read_body(
    body: Body,
    declared: Option<u64>,
    limit: usize,
    cap: usize,
) -> Result<(Bytes, Permit), Error> {
    let too_large = Error::PayloadTooLarge { limit };
    let declared = match declared.map(usize::try_from) {
        Some(Ok(n)) if n <= limit => Some(n),
        Some(_) => {
            drain(body).await;
            return Err(too_large);
        }
        None => None,
    };
    let mut permit = Permit { bytes: 0 };
    if !permit.grow(declared.unwrap_or(0), cap) {
        drain(body).await;
        return Err(busy());
    }
    match body {
        Body::Full(bytes) if bytes.len() > limit => Err(too_large),
        Body::Full(bytes) => {
            let more = bytes.len().saturating_sub(permit.bytes);
            if !permit.grow(more, cap) {
                return Err(busy());
            }
            Ok((bytes, permit))
        }
        Body::Stream(stream) => {
            use futures_util::StreamExt;
            let mut stream = stream.into_inner();
            let mut buf = Vec::with_capacity(declared.unwrap_or(0));
            while let Some(chunk) = stream.next().await {
                let chunk = chunk
                    .map_err(|_| Error::BadRequest("the request body could not be read".into()))?;
                let total = buf.len() + chunk.len();
                if total > limit {
                    drop(buf);
                    drain(Body::from_stream(stream)).await;
                    return Err(too_large);
                }
                if total > permit.bytes && !permit.grow(total - permit.bytes, cap) {
                    drop(buf);
                    drain(Body::from_stream(stream)).await;
                    return Err(busy());
                }
                buf.extend_from_slice(&chunk);
            }
            Ok((Bytes::from(buf), permit))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(chunks: Vec<&'static [u8]>) -> Body {
        Body::from_stream(futures_util::stream::iter(
            chunks.into_iter().map(|c| Ok(Bytes::from_static(c))),
        ))
    }

    // One test, because the budget is the process's: tests running in parallel would share it.
    #[test]
    fn bodies_are_counted_while_held_and_refused_past_the_budget() {
        futures_executor_lite(async {
            let base = in_flight();
            let (a, held) = read_body(stream(vec![b"abc", b"def"]), None, 100, base + 10)
                .await
                .expect("fits");
            assert_eq!(&a[..], b"abcdef");
            assert_eq!(in_flight(), base + 6);
            let over = read_body(stream(vec![b"12345"]), None, 100, base + 10).await;
            assert_eq!(over.map(|_| ()).map_err(|e| e.code()), Err("server_busy"));
            assert_eq!(in_flight(), base + 6, "a refused body gives its share back");
            let declared = read_body(Body::from(vec![0u8; 5]), Some(5), 100, base + 10).await;
            assert_eq!(
                declared.map(|_| ()).map_err(|e| e.code()),
                Err("server_busy")
            );
            drop(held);
            assert_eq!(in_flight(), base);
            let big = read_body(Body::from(vec![0u8; 5]), Some(500), 100, usize::MAX).await;
            assert_eq!(
                big.map(|_| ()).map_err(|e| e.code()),
                Err("payload_too_large")
            );
            let big = read_body(stream(vec![&[0u8; 60], &[0u8; 60]]), None, 100, usize::MAX).await;
            assert_eq!(
                big.map(|_| ()).map_err(|e| e.code()),
                Err("payload_too_large")
            );
            assert_eq!(in_flight(), base);
        });
    }

    /// Runs a future that never waits on anything outside itself.
    fn futures_executor_lite<F: std::future::Future<Output = ()>>(future: F) {
        use std::task::{Context, Poll, Waker};
        let mut future = std::pin::pin!(future);
        let mut cx = Context::from_waker(Waker::noop());
        loop {
            if let Poll::Ready(()) = future.as_mut().poll(&mut cx) {
                return;
            }
        }
    }
}
