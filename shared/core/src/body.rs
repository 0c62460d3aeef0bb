//! The HTTP body every handler takes and returns: either bytes in hand or a stream of chunks.
//!
//! Each host maps [`Body::Stream`] to its own streaming response (a hyper body, a Workers
//! `ReadableStream`, a Spin streaming body), which is what lets the proxy forward without
//! buffering.

#[cfg(target_family = "wasm")]
use std::cell::RefCell;
use std::fmt;
use std::pin::Pin;
#[cfg(target_family = "wasm")]
use std::rc::Rc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_core::Stream;
use sync_wrapper::SyncWrapper;

/// An error from a streamed body (the upstream went away, the client disconnected, ...).
pub type StreamError = Box<dyn std::error::Error + Send + Sync>;

/// A stream of body chunks. `Send` on native hosts (a multi-threaded runtime moves it between
/// threads); unbounded on wasm, where the platform's JS-backed or WASI types are not `Send`.
#[cfg(not(target_family = "wasm"))]
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, StreamError>> + Send>>;
/// A stream of body chunks (wasm: no `Send` bound, see the native definition).
#[cfg(target_family = "wasm")]
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, StreamError>>>>;

/// A request or response body.
pub enum Body {
    /// The whole body is in memory (possibly empty).
    Full(Bytes),
    /// The body arrives chunk by chunk. The wrapper makes the body `Sync` (it is only ever
    /// polled through `&mut`), so handlers may hold `&Request` across an `.await`.
    Stream(SyncWrapper<ByteStream>),
}

impl Body {
    /// An empty body.
    pub fn empty() -> Self {
        Body::Full(Bytes::new())
    }

    /// A body from a stream of chunks.
    #[cfg(not(target_family = "wasm"))]
    pub fn from_stream<S>(stream: S) -> Self
    where
        S: Stream<Item = Result<Bytes, StreamError>> + Send + 'static,
    {
        Body::Stream(SyncWrapper::new(Box::pin(stream)))
    }

    /// A body from a stream of chunks.
    #[cfg(target_family = "wasm")]
    pub fn from_stream<S>(stream: S) -> Self
    where
        S: Stream<Item = Result<Bytes, StreamError>> + 'static,
    {
        Body::Stream(SyncWrapper::new(Box::pin(stream)))
    }

    /// Reads the whole body, refusing more than `limit` bytes (the caller turns `None` into a
    /// 413). A stream error also yields `Err`.
    pub async fn collect(self, limit: usize) -> Result<Bytes, CollectError> {
        match self {
            Body::Full(bytes) if bytes.len() > limit => Err(CollectError::TooLarge),
            Body::Full(bytes) => Ok(bytes),
            Body::Stream(stream) => {
                use futures_util::StreamExt;
                let mut stream = stream.into_inner();
                let mut buf = Vec::new();
                while let Some(chunk) = stream.next().await {
                    let chunk = chunk.map_err(|e| CollectError::Stream(e.to_string()))?;
                    if buf.len() + chunk.len() > limit {
                        return Err(CollectError::TooLarge);
                    }
                    buf.extend_from_slice(&chunk);
                }
                Ok(Bytes::from(buf))
            }
        }
    }
}

/// A request body for a handler, and the [`Leftover`] the host keeps: what the handler leaves
/// unread (a body refused as too large) can be drained before answering, because a runtime that
/// closes a connection with unread request bytes resets it and the client may never see the
/// answer. Wasm hosts only (the edge runtimes, single-threaded).
#[cfg(target_family = "wasm")]
pub fn drainable<S>(stream: S) -> (Body, Leftover)
where
    S: Stream<Item = Result<Bytes, StreamError>> + 'static,
{
    let slot: Rc<RefCell<Option<ByteStream>>> = Rc::new(RefCell::new(Some(Box::pin(stream))));
    let reader = slot.clone();
    let body = Body::from_stream(futures_util::stream::poll_fn(move |cx| {
        match reader.borrow_mut().as_mut() {
            Some(stream) => stream.as_mut().poll_next(cx),
            None => Poll::Ready(None),
        }
    }));
    (body, Leftover(slot))
}

/// What a handler left unread of a [`drainable`] body.
#[cfg(target_family = "wasm")]
pub struct Leftover(Rc<RefCell<Option<ByteStream>>>);

#[cfg(target_family = "wasm")]
impl Leftover {
    /// Reads and discards the rest of the body, up to `max` bytes (past that the connection may
    /// be reset; nobody is owed an endless read).
    pub async fn drain(self, max: usize) {
        use futures_util::StreamExt;
        let rest = self.0.borrow_mut().take();
        if let Some(mut rest) = rest {
            let mut drained = 0usize;
            while let Some(Ok(chunk)) = rest.next().await {
                drained += chunk.len();
                if drained > max {
                    break;
                }
            }
        }
    }
}

/// Why [`Body::collect`] failed.
#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    /// More bytes than the limit.
    #[error("body too large")]
    TooLarge,
    /// The stream failed while being read.
    #[error("body stream failed: {0}")]
    Stream(String),
}

impl Default for Body {
    fn default() -> Self {
        Body::empty()
    }
}

impl From<Bytes> for Body {
    fn from(bytes: Bytes) -> Self {
        Body::Full(bytes)
    }
}

impl From<Vec<u8>> for Body {
    fn from(bytes: Vec<u8>) -> Self {
        Body::Full(Bytes::from(bytes))
    }
}

impl From<String> for Body {
    fn from(text: String) -> Self {
        Body::Full(Bytes::from(text))
    }
}

impl From<&'static str> for Body {
    fn from(text: &'static str) -> Self {
        Body::Full(Bytes::from_static(text.as_bytes()))
    }
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Body::Full(bytes) => write!(f, "Body::Full({} bytes)", bytes.len()),
            Body::Stream(_) => f.write_str("Body::Stream"),
        }
    }
}

/// Lets a [`Body`] be used where a stream of chunks is expected.
impl Stream for Body {
    type Item = Result<Bytes, StreamError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        match this {
            Body::Full(bytes) if bytes.is_empty() => Poll::Ready(None),
            Body::Full(bytes) => Poll::Ready(Some(Ok(std::mem::take(bytes)))),
            Body::Stream(stream) => stream.get_mut().as_mut().poll_next(cx),
        }
    }
}
