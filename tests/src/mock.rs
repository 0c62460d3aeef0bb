//! A mock AI provider speaking just enough of the OpenAI and Anthropic APIs, JSON and SSE, for
//! Feen to be tested end to end: it checks the API key like the real ones, reports fixed token
//! usage, streams with an optional delay between events, and records every request it gets.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::Frame;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;

/// Prompt tokens the mock reports for OpenAI-style calls.
pub const OPENAI_INPUT_TOKENS: u64 = 11;
/// Completion tokens the mock reports for OpenAI-style calls.
pub const OPENAI_OUTPUT_TOKENS: u64 = 7;
/// Input tokens the mock reports for Anthropic-style calls.
pub const ANTHROPIC_INPUT_TOKENS: u64 = 13;
/// Output tokens the mock reports for Anthropic-style calls.
pub const ANTHROPIC_OUTPUT_TOKENS: u64 = 5;
/// Prompt tokens the mock reports for Gemini calls.
pub const GEMINI_INPUT_TOKENS: u64 = 9;
/// Output tokens the mock reports for Gemini calls.
pub const GEMINI_OUTPUT_TOKENS: u64 = 4;
/// The text every mock completion says.
pub const REPLY: &str = "Hello from the mock";

/// One request the mock received.
#[derive(Clone, Debug)]
pub struct Recorded {
    /// The method.
    pub method: String,
    /// The path and query.
    pub path: String,
    /// Every header, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Bytes,
}

impl Recorded {
    /// The first value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct State {
    keys: Vec<String>,
    requests: Vec<Recorded>,
}

/// A running mock provider.
#[derive(Clone)]
pub struct MockProvider {
    /// Where it listens.
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
}

type MockBody = BoxBody<Bytes, Infallible>;

impl MockProvider {
    /// Starts a mock on a free port that accepts `key` as its API key.
    pub async fn start(key: &str) -> Self {
        Self::start_on(
            "127.0.0.1:0"
                .parse()
                .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0))),
            key,
        )
        .await
    }

    /// Starts a mock on `addr` (port 0: any free port).
    pub async fn start_on(addr: SocketAddr, key: &str) -> Self {
        let listener = TcpListener::bind(addr)
            .await
            .unwrap_or_else(|e| panic!("mock provider cannot bind {addr}: {e}"));
        let addr = listener.local_addr().unwrap_or(addr);
        let state = Arc::new(Mutex::new(State {
            keys: vec![key.to_owned()],
            requests: Vec::new(),
        }));
        let mock = Self { addr, state };
        let server = mock.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let _ = stream.set_nodelay(true);
                let mock = server.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let mock = mock.clone();
                        async move { Ok::<_, Infallible>(mock.serve(req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        mock
    }

    /// The base URL to store as a key's `baseUrl`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Replaces the API keys the mock accepts (a rotated key).
    pub fn accept_only(&self, key: &str) {
        if let Ok(mut state) = self.state.lock() {
            state.keys = vec![key.to_owned()];
        }
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.state
            .lock()
            .map(|s| s.requests.clone())
            .unwrap_or_default()
    }

    async fn serve(&self, req: hyper::Request<hyper::body::Incoming>) -> hyper::Response<MockBody> {
        let (parts, body) = req.into_parts();
        let body = body
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let recorded = Recorded {
            method: parts.method.to_string(),
            path: parts
                .uri
                .path_and_query()
                .map(|p| p.to_string())
                .unwrap_or_default(),
            headers: parts
                .headers
                .iter()
                .map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
                .collect(),
            body: body.clone(),
        };
        let keys = match self.state.lock() {
            Ok(mut state) => {
                state.requests.push(recorded.clone());
                state.keys.clone()
            }
            Err(_) => Vec::new(),
        };
        let path = parts.uri.path();
        let anthropic = path.ends_with("/messages");
        let gemini = path.contains("/models/")
            && (path.ends_with(":generateContent") || path.ends_with(":streamGenerateContent"));
        let presented = if anthropic {
            recorded.header("x-api-key").map(str::to_owned)
        } else if gemini {
            recorded.header("x-goog-api-key").map(str::to_owned)
        } else if let Some(custom) = recorded.header("x-custom-auth") {
            custom.strip_prefix("Token ").map(str::to_owned)
        } else {
            recorded
                .header("authorization")
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(str::to_owned)
        };
        if !presented.is_some_and(|p| keys.contains(&p)) {
            return json_response(
                401,
                &json!({"error": {"message": "Incorrect API key provided", "type": "invalid_request_error"}}),
            );
        }
        if let Some(kind) = path.split("/hostile/").nth(1) {
            return hostile(kind);
        }
        let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        // `x-mock-answer-model` makes the answer name another model than the request did (a
        // provider that ran something else).
        let model = recorded
            .header("x-mock-answer-model")
            .or_else(|| request.get("model").and_then(Value::as_str))
            .unwrap_or("mock-model")
            .to_owned();
        let stream = request
            .get("stream")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let delay = recorded
            .header("x-mock-chunk-delay-ms")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0u64);
        if gemini {
            let model = path
                .split("/models/")
                .nth(1)
                .and_then(|m| m.split(':').next())
                .unwrap_or("gemini")
                .to_owned();
            return if path.ends_with(":streamGenerateContent") {
                sse_response(gemini_stream(&model), delay)
            } else {
                json_response(200, &gemini_response(&model, REPLY, GEMINI_OUTPUT_TOKENS))
            };
        }
        // Each of `n` answers is billed, as providers do.
        let n = request.get("n").and_then(Value::as_u64).unwrap_or(1).max(1);
        match (path.ends_with("/chat/completions"), anthropic, stream) {
            (true, _, false) => json_response(200, &openai_completion(&model, n)),
            (true, _, true) => {
                let include_usage = request
                    .pointer("/stream_options/include_usage")
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                sse_response(openai_stream(&model, include_usage), delay)
            }
            (_, true, false) => json_response(200, &anthropic_message(&model)),
            (_, true, true) => sse_response(anthropic_stream(&model), delay),
            _ => json_response(
                404,
                &json!({"error": {"message": "unknown endpoint", "type": "invalid_request_error"}}),
            ),
        }
    }
}

/// The script of the hostile page: if it ever runs on Feen's origin, it reads the signed-in
/// user and creates a team with their session, and says so in the page's title.
pub const HOSTILE_SCRIPT: &str = "(async () => { \
    const me = await fetch('/api/auth/me').then(r => r.status, () => 'blocked'); \
    const team = await fetch('/api/teams', {method: 'POST', headers: {'content-type': 'application/json'}, \
        body: JSON.stringify({name: 'pwned by upstream'})}).then(r => r.status, () => 'blocked'); \
    document.title = 'ran ' + me + ' ' + team; })();";

/// What an upstream under an attacker's control answers (`.../hostile/{kind}`): `html`, a page
/// with a script, cookies for Feen's origin and the provider account's headers; `redirect`, a
/// redirect elsewhere; anything else, a JSON answer carrying the account's headers.
fn hostile(kind: &str) -> hyper::Response<MockBody> {
    let mut resp = match kind {
        "html" => {
            let page = format!(
                "<!doctype html><html><head><title>hostile</title></head><body><h1>Not Feen</h1>\
                 <script>{HOSTILE_SCRIPT}</script></body></html>"
            );
            let mut resp = hyper::Response::new(Full::new(Bytes::from(page)).boxed());
            resp.headers_mut().insert(
                "content-type",
                hyper::header::HeaderValue::from_static("text/html; charset=utf-8"),
            );
            resp
        }
        "redirect" => {
            let mut resp = hyper::Response::new(Full::new(Bytes::from_static(b"moved")).boxed());
            *resp.status_mut() = hyper::StatusCode::FOUND;
            resp.headers_mut().insert(
                "location",
                hyper::header::HeaderValue::from_static("https://evil.example/phish"),
            );
            resp
        }
        _ => json_response(200, &json!({"ok": true})),
    };
    let headers = resp.headers_mut();
    for (name, value) in [
        ("set-cookie", "feen_access=planted; Path=/; HttpOnly"),
        ("refresh", "0; url=https://evil.example/"),
        ("content-security-policy", "default-src * 'unsafe-inline'"),
        ("clear-site-data", "\"cookies\", \"storage\""),
        ("openai-organization", "org-owner-account"),
        ("openai-project", "proj_owner"),
        ("anthropic-organization-id", "owner-org-id"),
        ("x-request-id", "req_mock"),
    ] {
        headers.append(name, hyper::header::HeaderValue::from_static(value));
    }
    resp
}

fn json_response(status: u16, body: &Value) -> hyper::Response<MockBody> {
    let mut resp = hyper::Response::new(Full::new(Bytes::from(body.to_string())).boxed());
    *resp.status_mut() =
        hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut().insert(
        "content-type",
        hyper::header::HeaderValue::from_static("application/json"),
    );
    resp
}

fn sse_response(events: Vec<String>, delay_ms: u64) -> hyper::Response<MockBody> {
    let stream = futures_util::stream::iter(events.into_iter().enumerate()).then(
        move |(i, event)| async move {
            if i > 0 && delay_ms > 0 {
                tokio::time::sleep(Duration::from_millis(delay_ms)).await;
            }
            Ok::<_, Infallible>(Frame::data(Bytes::from(event)))
        },
    );
    let mut resp = hyper::Response::new(BodyExt::boxed(StreamBody::new(stream)));
    resp.headers_mut().insert(
        "content-type",
        hyper::header::HeaderValue::from_static("text/event-stream"),
    );
    resp.headers_mut().insert(
        "cache-control",
        hyper::header::HeaderValue::from_static("no-cache"),
    );
    resp
}

fn openai_completion(model: &str, n: u64) -> Value {
    let choices: Vec<Value> = (0..n.min(128))
        .map(|i| json!({"index": i, "message": {"role": "assistant", "content": REPLY}, "finish_reason": "stop"}))
        .collect();
    let output = OPENAI_OUTPUT_TOKENS * n;
    json!({
        "id": "chatcmpl-mock",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": model,
        "choices": choices,
        "usage": {"prompt_tokens": OPENAI_INPUT_TOKENS, "completion_tokens": output,
                  "total_tokens": OPENAI_INPUT_TOKENS + output},
    })
}

fn openai_stream(model: &str, include_usage: bool) -> Vec<String> {
    let chunk = |delta: Value, finish: Value| {
        let mut c = json!({
            "id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 1_700_000_000, "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        });
        if include_usage {
            c["usage"] = Value::Null; // as OpenAI does when usage is requested
        }
        format!("data: {c}\n\n")
    };
    let mut events = vec![chunk(
        json!({"role": "assistant", "content": ""}),
        Value::Null,
    )];
    for word in ["Hello", " from", " the", " mock"] {
        events.push(chunk(json!({"content": word}), Value::Null));
    }
    events.push(chunk(json!({}), json!("stop")));
    if include_usage {
        let usage = json!({
            "id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 1_700_000_000, "model": model,
            "choices": [],
            "usage": {"prompt_tokens": OPENAI_INPUT_TOKENS, "completion_tokens": OPENAI_OUTPUT_TOKENS,
                      "total_tokens": OPENAI_INPUT_TOKENS + OPENAI_OUTPUT_TOKENS},
        });
        events.push(format!("data: {usage}\n\n"));
    }
    events.push("data: [DONE]\n\n".into());
    events
}

fn anthropic_message(model: &str) -> Value {
    json!({
        "id": "msg_mock", "type": "message", "role": "assistant", "model": model,
        "content": [{"type": "text", "text": REPLY}],
        "stop_reason": "end_turn", "stop_sequence": null,
        "usage": {"input_tokens": ANTHROPIC_INPUT_TOKENS, "output_tokens": ANTHROPIC_OUTPUT_TOKENS},
    })
}

fn anthropic_stream(model: &str) -> Vec<String> {
    let event = |name: &str, data: Value| format!("event: {name}\ndata: {data}\n\n");
    let mut events = vec![
        event(
            "message_start",
            json!({"type": "message_start", "message": {
            "id": "msg_mock", "type": "message", "role": "assistant", "model": model, "content": [],
            "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": ANTHROPIC_INPUT_TOKENS, "output_tokens": 1}}}),
        ),
        event(
            "content_block_start",
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ),
    ];
    for word in ["Hello", " from", " the", " mock"] {
        events.push(event("content_block_delta", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": word}})));
    }
    events.push(event(
        "content_block_stop",
        json!({"type": "content_block_stop", "index": 0}),
    ));
    events.push(event("message_delta", json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null}, "usage": {"output_tokens": ANTHROPIC_OUTPUT_TOKENS}})));
    events.push(event("message_stop", json!({"type": "message_stop"})));
    events
}

fn gemini_response(model: &str, text: &str, output: u64) -> Value {
    json!({
        "candidates": [{"content": {"parts": [{"text": text}], "role": "model"}, "finishReason": "STOP", "index": 0}],
        "usageMetadata": {"promptTokenCount": GEMINI_INPUT_TOKENS, "candidatesTokenCount": output,
                          "totalTokenCount": GEMINI_INPUT_TOKENS + output},
        "modelVersion": model,
    })
}

fn gemini_stream(model: &str) -> Vec<String> {
    // Gemini repeats cumulative usage on every chunk and ends events with CRLF pairs.
    ["Hello", " from", " the", " mock"]
        .iter()
        .enumerate()
        .map(|(i, word)| {
            format!(
                "data: {}\r\n\r\n",
                gemini_response(model, word, i as u64 + 1)
            )
        })
        .collect()
}
