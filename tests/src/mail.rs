//! A local stand-in for an HTTP email API (Resend's shape: `POST /emails` with a bearer key,
//! `{from, to, subject, text}` and an `Idempotency-Key`), capturing what Feen sends. It can be
//! told to fail, to test that the outbox retries; like the real APIs, a repeated idempotency key
//! is accepted without sending twice, and such repeats are counted.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpListener;

/// One email the API accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Captured {
    /// The sender.
    pub from: String,
    /// The recipient.
    pub to: String,
    /// The subject.
    pub subject: String,
    /// The plain-text body.
    pub text: String,
    /// The idempotency key Feen sent.
    pub key: String,
}

#[derive(Default)]
struct State {
    failing: bool,
    attempts: usize,
    repeats: usize,
    emails: Vec<Captured>,
}

/// A running capture server.
#[derive(Clone)]
pub struct MailCapture {
    /// Where it listens.
    pub addr: SocketAddr,
    api_key: String,
    state: Arc<Mutex<State>>,
}

impl MailCapture {
    /// Starts on a free port, accepting `api_key`.
    pub async fn start(api_key: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("mail capture cannot bind: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("mail capture address: {e}"));
        let capture = Self {
            addr,
            api_key: api_key.to_owned(),
            state: Arc::default(),
        };
        let server = capture.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let capture = server.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let capture = capture.clone();
                        async move { Ok::<_, Infallible>(capture.serve(req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        capture
    }

    /// The URL to configure as `FEEN_EMAIL_API_URL`.
    pub fn url(&self) -> String {
        format!("http://{}/emails", self.addr)
    }

    /// The environment that points Feen at this server.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("FEEN_EMAIL_API_URL".into(), self.url()),
            ("FEEN_EMAIL_API_KEY".into(), self.api_key.clone()),
            ("FEEN_EMAIL_FROM".into(), "feen@example.com".into()),
        ]
    }

    /// From now on, answer every send with 503 (or accept again).
    pub fn set_failing(&self, failing: bool) {
        if let Ok(mut s) = self.state.lock() {
            s.failing = failing;
        }
    }

    /// The emails accepted so far (each idempotency key once).
    pub fn emails(&self) -> Vec<Captured> {
        self.state
            .lock()
            .map(|s| s.emails.clone())
            .unwrap_or_default()
    }

    /// Every send attempt, failed ones included.
    pub fn attempts(&self) -> usize {
        self.state.lock().map(|s| s.attempts).unwrap_or(0)
    }

    /// Sends that repeated an idempotency key already accepted.
    pub fn repeats(&self) -> usize {
        self.state.lock().map(|s| s.repeats).unwrap_or(0)
    }

    async fn serve(
        &self,
        req: hyper::Request<hyper::body::Incoming>,
    ) -> hyper::Response<Full<Bytes>> {
        let (parts, body) = req.into_parts();
        let header = |name: &str| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned()
        };
        let respond = |status: u16, body: &str| {
            let mut resp = hyper::Response::new(Full::new(Bytes::from(body.to_owned())));
            *resp.status_mut() = hyper::StatusCode::from_u16(status)
                .unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
            resp
        };
        if parts.method != hyper::Method::POST || parts.uri.path() != "/emails" {
            return respond(404, "{\"message\":\"not found\"}");
        }
        if header("authorization") != format!("Bearer {}", self.api_key) {
            return respond(401, "{\"message\":\"invalid API key\"}");
        }
        let bytes = body
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let json: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let text = |field: &str| json[field].as_str().unwrap_or("").to_owned();
        let key = header("idempotency-key");
        let Ok(mut state) = self.state.lock() else {
            return respond(500, "{}");
        };
        state.attempts += 1;
        if state.failing {
            return respond(503, "{\"message\":\"temporarily unavailable\"}");
        }
        if key.is_empty() || text("subject").is_empty() {
            return respond(422, "{\"message\":\"missing field\"}");
        }
        if state.emails.iter().any(|e| e.key == key) {
            state.repeats += 1;
            return respond(200, "{\"id\":\"repeat\"}");
        }
        state.emails.push(Captured {
            from: text("from"),
            to: json["to"][0].as_str().unwrap_or("").to_owned(),
            subject: text("subject"),
            text: text("text"),
            key,
        });
        respond(200, "{\"id\":\"accepted\"}")
    }
}
