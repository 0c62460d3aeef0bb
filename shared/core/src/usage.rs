//! Token usage: the event recorded for every proxied request, and an incremental parser that
//! reads usage out of a response as its bytes pass through (JSON bodies and SSE streams of the
//! OpenAI, Anthropic and Gemini APIs).

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::ids::{KeyId, RequestId, ShareId, TeamId, UserId};

/// How a proxied request ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The upstream answered and the whole response reached the client.
    Completed,
    /// The client went away before the response ended.
    ClientDisconnected,
    /// The upstream failed (unreachable, or its stream broke).
    UpstreamError,
    /// Feen refused the request before it reached the provider: a limit (429) or the share's
    /// policy (403). Such events carry no tokens and count as no use of the share.
    Refused,
}

impl Outcome {
    /// The stored text form.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Completed => "completed",
            Outcome::ClientDisconnected => "client_disconnected",
            Outcome::UpstreamError => "upstream_error",
            Outcome::Refused => "refused",
        }
    }

    /// The outcome for its stored text form.
    pub fn parse(text: &str) -> Option<Self> {
        [
            Outcome::Completed,
            Outcome::ClientDisconnected,
            Outcome::UpstreamError,
            Outcome::Refused,
        ]
        .into_iter()
        .find(|o| o.as_str() == text)
    }
}

/// One proxied request, as recorded. Exactly one per request, idempotent by `request_id`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageEvent {
    /// The request (and the event's idempotency key).
    pub request_id: RequestId,
    /// The share the request came through.
    pub share_id: ShareId,
    /// The provider key it used.
    pub key_id: KeyId,
    /// The user who minted the share (its owner, unless a team owns it).
    pub user_id: UserId,
    /// The team that owns the share, if one does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team_id: Option<TeamId>,
    /// The provider's catalogue name.
    pub provider: String,
    /// The model, from the request or the response.
    pub model: Option<String>,
    /// The upstream path called (no query string: it may hold credentials).
    pub endpoint: String,
    /// The upstream's HTTP status (0 when no response arrived).
    pub status: u16,
    /// Whether the response was streamed.
    pub streamed: bool,
    /// Input (prompt) tokens.
    pub input_tokens: u64,
    /// Output (completion) tokens.
    pub output_tokens: u64,
    /// What it cost in micro-USD; `None` when the model has no known price.
    pub cost_micros: Option<u64>,
    /// When the request arrived (ms since the epoch).
    pub started_at_ms: i64,
    /// From arrival to the last byte (ms).
    pub duration_ms: u64,
    /// How it ended.
    pub outcome: Outcome,
}

/// Token counts read from a response.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Input (prompt) tokens, if the response said.
    pub input_tokens: Option<u64>,
    /// Output (completion) tokens, if the response said.
    pub output_tokens: Option<u64>,
    /// How many of the input tokens were read from the provider's prompt cache (priced lower).
    pub cached_tokens: Option<u64>,
    /// The model the response names.
    pub model: Option<String>,
}

impl Usage {
    fn merge(&mut self, other: Usage) {
        if other.input_tokens.is_some() {
            self.input_tokens = other.input_tokens;
        }
        if other.output_tokens.is_some() {
            self.output_tokens = other.output_tokens;
        }
        if other.cached_tokens.is_some() {
            self.cached_tokens = other.cached_tokens;
        }
        if self.model.is_none() {
            self.model = other.model;
        }
    }
}

/// Reads usage from one JSON document (a whole response, or one SSE event), in any of the shapes
/// the supported APIs use. Later documents override earlier ones field by field, which is right
/// for all of them: Anthropic's `message_delta` carries the final output count, OpenAI's last
/// chunk carries the totals, Gemini repeats cumulative counts.
pub fn usage_from_json(doc: &Json) -> Usage {
    let mut usage = Usage {
        model: doc.get("model").and_then(Json::as_str).map(str::to_owned),
        ..Usage::default()
    };
    let candidates = [
        doc.get("usage"),
        doc.pointer("/message/usage"),      // Anthropic message_start
        doc.pointer("/response/usage"),     // OpenAI Responses API stream
        doc.pointer("/usage/tokens"),       // Cohere v2
        doc.pointer("/delta/usage/tokens"), // Cohere v2 stream (message-end)
        doc.get("metrics"),                 // Replicate predictions
    ];
    for block in candidates.into_iter().flatten() {
        // OpenAI counts cached tokens inside the prompt count; Anthropic counts cache reads and
        // writes beside `input_tokens`. Both are normalised to "input includes cached".
        let anthropic_cache_read = count(block, &["cache_read_input_tokens"]);
        let anthropic_cache_write = count(block, &["cache_creation_input_tokens"]);
        let fresh = count(
            block,
            &["prompt_tokens", "input_tokens", "input_token_count"],
        );
        let input = match (fresh, anthropic_cache_read, anthropic_cache_write) {
            (Some(f), None, None) => Some(f),
            (f, r, w) => Some(f.unwrap_or(0) + r.unwrap_or(0) + w.unwrap_or(0)),
        };
        let openai_cached = block
            .pointer("/prompt_tokens_details/cached_tokens")
            .or_else(|| block.pointer("/input_tokens_details/cached_tokens"))
            .and_then(Json::as_u64);
        usage.merge(Usage {
            input_tokens: input.filter(|_| fresh.is_some() || anthropic_cache_read.is_some()),
            output_tokens: count(
                block,
                &["completion_tokens", "output_tokens", "output_token_count"],
            ),
            cached_tokens: openai_cached.or(anthropic_cache_read),
            model: None,
        });
    }
    if let Some(meta) = doc.get("usageMetadata") {
        usage.merge(Usage {
            input_tokens: count(meta, &["promptTokenCount"]),
            output_tokens: count(meta, &["candidatesTokenCount"]),
            cached_tokens: count(meta, &["cachedContentTokenCount"]),
            model: None,
        });
    }
    if usage.model.is_none() {
        usage.model = doc
            .pointer("/message/model")
            .or_else(|| doc.pointer("/response/model"))
            .or_else(|| doc.get("modelVersion"))
            .and_then(Json::as_str)
            .map(str::to_owned);
    }
    usage
}

fn count(block: &Json, names: &[&str]) -> Option<u64> {
    names
        .iter()
        .find_map(|n| block.get(*n).and_then(Json::as_u64))
}

/// The body format a parser expects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// One JSON document.
    Json,
    /// Server-sent events whose `data:` lines are JSON documents.
    Sse,
    /// Anything else: no usage is read.
    Other,
}

impl Format {
    /// The format for a response `Content-Type`.
    pub fn from_content_type(content_type: &str) -> Self {
        let mime = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match mime.as_str() {
            "text/event-stream" => Format::Sse,
            "application/json" => Format::Json,
            _ => Format::Other,
        }
    }
}

/// The most of a JSON body kept for parsing, and the longest SSE line. Past these the parser
/// stops reading usage from that body or line instead of growing without bound.
pub const MAX_JSON_BODY: usize = 8 * 1024 * 1024;
const MAX_SSE_LINE: usize = 1024 * 1024;

/// Reads usage from a response as it streams past, chunk by chunk.
#[derive(Debug)]
pub struct UsageParser {
    format: Format,
    buf: Vec<u8>,
    overflow: bool,
    usage: Usage,
    events: u64,
}

impl UsageParser {
    /// A parser for a body of `format`.
    pub fn new(format: Format) -> Self {
        Self {
            format,
            buf: Vec::new(),
            overflow: false,
            usage: Usage::default(),
            events: 0,
        }
    }

    /// Looks at the next chunk of the body.
    pub fn feed(&mut self, chunk: &[u8]) {
        match self.format {
            Format::Other => {}
            Format::Json => {
                if self.buf.len() + chunk.len() > MAX_JSON_BODY {
                    self.overflow = true;
                    self.buf = Vec::new();
                } else if !self.overflow {
                    self.buf.extend_from_slice(chunk);
                }
            }
            Format::Sse => self.feed_sse(chunk),
        }
    }

    fn feed_sse(&mut self, mut chunk: &[u8]) {
        while let Some(pos) = chunk.iter().position(|&b| b == b'\n' || b == b'\r') {
            let (line, rest) = chunk.split_at(pos);
            if self.overflow {
                self.overflow = false;
            } else if self.buf.is_empty() {
                self.sse_line(line);
            } else {
                self.buf.extend_from_slice(line);
                let full = std::mem::take(&mut self.buf);
                self.sse_line(&full);
            }
            chunk = &rest[1..];
        }
        if self.overflow || self.buf.len() + chunk.len() > MAX_SSE_LINE {
            self.overflow = true;
            self.buf.clear();
        } else {
            self.buf.extend_from_slice(chunk);
        }
    }

    fn sse_line(&mut self, line: &[u8]) {
        let Some(data) = line.strip_prefix(b"data:") else {
            return;
        };
        let data = data.strip_prefix(b" ").unwrap_or(data);
        if data.first() != Some(&b'{') {
            return; // `[DONE]`, keep-alives, empty data
        }
        self.events += 1;
        if let Ok(doc) = serde_json::from_slice::<Json>(data) {
            self.usage.merge(usage_from_json(&doc));
        }
    }

    /// How many SSE data events carried JSON so far (providers send about one token per event,
    /// so this estimates output when a stream is cut before its usage arrives).
    pub fn events_seen(&self) -> u64 {
        self.events
    }

    /// The usage seen so far, for a body that ended (or was cut off) here.
    pub fn finish(&mut self) -> Usage {
        if self.format == Format::Json && !self.overflow && !self.buf.is_empty() {
            if let Ok(doc) = serde_json::from_slice::<Json>(&self.buf) {
                self.usage.merge(usage_from_json(&doc));
            }
            self.buf.clear();
        }
        if self.format == Format::Sse && !self.buf.is_empty() && !self.overflow {
            let last = std::mem::take(&mut self.buf);
            self.sse_line(&last);
        }
        self.usage.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_in_chunks(format: Format, body: &str, chunk: usize) -> Usage {
        let mut parser = UsageParser::new(format);
        for part in body.as_bytes().chunks(chunk) {
            parser.feed(part);
        }
        parser.finish()
    }

    fn usage(input: u64, output: u64, model: &str) -> Usage {
        Usage {
            input_tokens: Some(input),
            output_tokens: Some(output),
            cached_tokens: None,
            model: Some(model.into()),
        }
    }

    #[test]
    fn cached_input_is_read_and_counted_inside_the_input() {
        let openai = r#"{"model":"gpt-4o","usage":{"prompt_tokens":100,"completion_tokens":5,"prompt_tokens_details":{"cached_tokens":60}}}"#;
        let seen = parse_in_chunks(Format::Json, openai, 7);
        assert_eq!(
            (seen.input_tokens, seen.cached_tokens),
            (Some(100), Some(60))
        );
        let anthropic = "data: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":10,\"cache_read_input_tokens\":80,\"cache_creation_input_tokens\":5,\"output_tokens\":1}}}\n\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":9}}\n\n";
        let seen = parse_in_chunks(Format::Sse, anthropic, 5);
        assert_eq!(
            (seen.input_tokens, seen.cached_tokens, seen.output_tokens),
            (Some(95), Some(80), Some(9))
        );
        let gemini = r#"{"usageMetadata":{"promptTokenCount":50,"candidatesTokenCount":3,"cachedContentTokenCount":20}}"#;
        let seen = parse_in_chunks(Format::Json, gemini, 4);
        assert_eq!(
            (seen.input_tokens, seen.cached_tokens),
            (Some(50), Some(20))
        );
    }

    #[test]
    fn reads_usage_from_every_supported_shape_in_any_chunking() {
        let cases: &[(&str, Format, &str, Usage)] = &[
            (
                "openai chat json",
                Format::Json,
                r#"{"id":"c1","model":"gpt-4o-mini","choices":[],"usage":{"prompt_tokens":12,"completion_tokens":7,"total_tokens":19}}"#,
                usage(12, 7, "gpt-4o-mini"),
            ),
            (
                "openai chat stream with include_usage",
                Format::Sse,
                "data: {\"model\":\"gpt-4o\",\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\ndata: {\"model\":\"gpt-4o\",\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":2}}\n\ndata: [DONE]\n\n",
                usage(5, 2, "gpt-4o"),
            ),
            (
                "anthropic message json",
                Format::Json,
                r#"{"type":"message","model":"claude-3-5-haiku","usage":{"input_tokens":20,"output_tokens":9}}"#,
                usage(20, 9, "claude-3-5-haiku"),
            ),
            (
                "anthropic stream",
                Format::Sse,
                "event: message_start\r\ndata: {\"type\":\"message_start\",\"message\":{\"model\":\"claude-sonnet\",\"usage\":{\"input_tokens\":25,\"output_tokens\":1}}}\r\n\r\nevent: content_block_delta\r\ndata: {\"type\":\"content_block_delta\",\"delta\":{\"text\":\"x\"}}\r\n\r\nevent: message_delta\r\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":15}}\r\n\r\n",
                usage(25, 15, "claude-sonnet"),
            ),
            (
                "openai responses stream",
                Format::Sse,
                "event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"model\":\"gpt-5\",\"usage\":{\"input_tokens\":3,\"output_tokens\":4}}}\n\n",
                usage(3, 4, "gpt-5"),
            ),
            (
                "gemini stream",
                Format::Sse,
                "data: {\"candidates\":[],\"usageMetadata\":{\"promptTokenCount\":8,\"candidatesTokenCount\":1},\"modelVersion\":\"gemini-2.0-flash\"}\n\ndata: {\"candidates\":[],\"usageMetadata\":{\"promptTokenCount\":8,\"candidatesTokenCount\":6},\"modelVersion\":\"gemini-2.0-flash\"}\n\n",
                usage(8, 6, "gemini-2.0-flash"),
            ),
        ];
        for (name, format, body, expected) in cases {
            for chunk in [1, 2, 7, 64, body.len()] {
                assert_eq!(
                    &parse_in_chunks(*format, body, chunk),
                    expected,
                    "{name}, chunk {chunk}"
                );
            }
        }
    }

    #[test]
    fn a_stream_cut_short_reports_what_it_saw() {
        let body = "data: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":25,\"output_tokens\":1}}}\n\ndata: {\"type\":\"content_bl";
        let seen = parse_in_chunks(Format::Sse, body, 5);
        assert_eq!(seen.input_tokens, Some(25));
        assert_eq!(seen.output_tokens, Some(1));
    }

    #[test]
    fn junk_yields_no_usage() {
        for (format, body) in [
            (Format::Json, "not json"),
            (Format::Json, "{\"usage\":\"seven\"}"),
            (
                Format::Sse,
                "data: [DONE]\n\n: keep-alive\n\ndata: {broken\n\n",
            ),
            (Format::Other, "{\"usage\":{\"prompt_tokens\":1}}"),
        ] {
            let seen = parse_in_chunks(format, body, 3);
            assert_eq!(
                (seen.input_tokens, seen.output_tokens),
                (None, None),
                "{body}"
            );
        }
    }

    #[test]
    fn content_types_choose_the_format() {
        assert_eq!(
            Format::from_content_type("text/event-stream; charset=utf-8"),
            Format::Sse
        );
        assert_eq!(Format::from_content_type("application/json"), Format::Json);
        assert_eq!(
            Format::from_content_type("Application/JSON; charset=utf-8"),
            Format::Json
        );
        assert_eq!(Format::from_content_type("text/plain"), Format::Other);
    }
}
