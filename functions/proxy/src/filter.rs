//! The client's view of a stream the proxy asked usage for: the metered upstream stream with
//! the added usage removed (see [`feen_core::inject`]).

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use feen_core::body::StreamError;
use feen_core::inject::UsageChunkFilter;
use futures_core::Stream;

use crate::meter::Metered;

/// A metered stream passed through a [`UsageChunkFilter`].
pub struct Filtered {
    inner: Metered,
    filter: UsageChunkFilter,
    done: bool,
}

impl Filtered {
    /// Filters `inner`.
    pub fn new(inner: Metered) -> Self {
        Self {
            inner,
            filter: UsageChunkFilter::new(),
            done: false,
        }
    }
}

impl Stream for Filtered {
    type Item = Result<Bytes, StreamError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        loop {
            match Pin::new(&mut this.inner).poll_next(cx) {
                Poll::Ready(Some(Ok(chunk))) => {
                    let out = this.filter.push(&chunk);
                    if !out.is_empty() {
                        return Poll::Ready(Some(Ok(out)));
                    }
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(None) => {
                    this.done = true;
                    let rest = this.filter.finish();
                    return Poll::Ready((!rest.is_empty()).then_some(Ok(rest)));
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}
