//! Usage for OpenAI-style streams the client did not ask usage for.
//!
//! OpenAI-compatible chat completion streams report token usage only when the request says
//! `stream_options: {include_usage: true}`; without it a streamed call would be recorded as
//! free, and budgets would never trip. So the proxy asks for usage itself ([`crate::scan::rewrite`])
//! and removes what that adds from the client's stream ([`UsageChunkFilter`]): the final chunk
//! with empty `choices` that carries the usage, and the `"usage":null` field the provider then
//! adds to every other chunk. The client's stream is what it would have been.

use bytes::{Bytes, BytesMut};
use serde_json::Value as Json;

/// Removes the usage that the proxy asked for ([`crate::scan::rewrite`]) from an SSE stream, event by event.
#[derive(Debug, Default)]
pub struct UsageChunkFilter {
    pending: BytesMut,
}

impl UsageChunkFilter {
    /// A filter for one stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes the next chunk of the upstream stream; returns the bytes ready for the client
    /// (whole events; a partial event waits for its end).
    pub fn push(&mut self, chunk: &[u8]) -> Bytes {
        self.pending.extend_from_slice(chunk);
        let mut out = BytesMut::new();
        while let Some((end, sep)) = event_end(&self.pending) {
            let event = self.pending.split_to(end + sep);
            filter_event(&event, &mut out);
        }
        out.freeze()
    }

    /// The rest, when the upstream stream ends.
    pub fn finish(&mut self) -> Bytes {
        let rest = self.pending.split();
        let mut out = BytesMut::new();
        if !rest.is_empty() {
            filter_event(&rest, &mut out);
        }
        out.freeze()
    }
}

/// The end of the first complete event: (index of its blank line, length of the separator).
fn event_end(buf: &[u8]) -> Option<(usize, usize)> {
    let lf = buf.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2));
    let crlf = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4));
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

fn filter_event(event: &[u8], out: &mut BytesMut) {
    let text = String::from_utf8_lossy(event);
    let data = text
        .lines()
        .find_map(|l| l.strip_prefix("data:"))
        .map(str::trim);
    if let Some(data) = data.filter(|d| d.starts_with('{'))
        && let Ok(doc) = serde_json::from_str::<Json>(data)
    {
        let usage_only = doc
            .get("choices")
            .and_then(Json::as_array)
            .is_some_and(Vec::is_empty)
            && doc.get("usage").is_some_and(|u| !u.is_null());
        if usage_only {
            return;
        }
        if doc.get("usage").is_some_and(Json::is_null) {
            out.extend_from_slice(
                text.replace(",\"usage\":null", "")
                    .replace("\"usage\":null,", "")
                    .as_bytes(),
            );
            return;
        }
    }
    out.extend_from_slice(event);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_added_usage_is_removed_in_any_chunking() {
        let upstream = concat!(
            "data: {\"id\":\"c\",\"choices\":[{\"delta\":{\"content\":\"Hi\"}}],\"usage\":null}\n\n",
            "data: {\"id\":\"c\",\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":null}\n\n",
            "data: {\"id\":\"c\",\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":1}}\n\n",
            "data: [DONE]\n\n",
        );
        let expected = concat!(
            "data: {\"id\":\"c\",\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\n",
            "data: {\"id\":\"c\",\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n",
            "data: [DONE]\n\n",
        );
        for size in [1, 3, 17, 64, upstream.len()] {
            let mut filter = UsageChunkFilter::new();
            let mut out = Vec::new();
            for chunk in upstream.as_bytes().chunks(size) {
                out.extend_from_slice(&filter.push(chunk));
            }
            out.extend_from_slice(&filter.finish());
            assert_eq!(String::from_utf8_lossy(&out), expected, "chunk size {size}");
        }
    }

    #[test]
    fn other_events_pass_untouched() {
        let upstream = "event: ping\r\ndata: {\"choices\":[{\"delta\":{}}]}\r\n\r\n: comment\n\ndata: not json\n\n";
        let mut filter = UsageChunkFilter::new();
        let mut out = filter.push(upstream.as_bytes()).to_vec();
        out.extend_from_slice(&filter.finish());
        assert_eq!(String::from_utf8_lossy(&out), upstream);
    }
}
