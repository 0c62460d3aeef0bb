//! A small client for Feen's API as the suites use it: every call returns status, headers and
//! the JSON body, so tests can assert on all three.

use http::{HeaderMap, Method, StatusCode};
use serde_json::{Value, json};

/// What a call returned.
#[derive(Debug)]
pub struct Reply {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body as JSON (`Value::Null` when empty or not JSON).
    pub body: Value,
    /// The body as text.
    pub text: String,
}

impl Reply {
    /// The error code of a Feen error body.
    pub fn code(&self) -> &str {
        self.body
            .pointer("/error/code")
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// A string field of the body.
    pub fn str(&self, pointer: &str) -> String {
        self.body
            .pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("no {pointer} in {}", self.text))
            .to_owned()
    }
}

/// Feen's API at a base URL.
#[derive(Clone, Debug)]
pub struct Api {
    /// `http://host:port`.
    pub base: String,
    client: reqwest::Client,
}

/// A registered, logged-in user.
#[derive(Clone, Debug)]
pub struct User {
    /// The user id.
    pub id: String,
    /// The email.
    pub email: String,
    /// The password.
    pub password: String,
    /// An access token.
    pub token: String,
    /// A refresh token.
    pub refresh: String,
}

impl Api {
    /// A client for `base`.
    pub fn new(base: &str) -> Self {
        let client = crate::http_client();
        Self {
            base: base.trim_end_matches('/').to_owned(),
            client,
        }
    }

    /// Sends a request with optional bearer token and raw body.
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Reply {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(body) = body {
            req = req.body(body);
        }
        let resp = req.send().await.unwrap_or_else(|e| panic!("{path}: {e}"));
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            body,
            text,
        }
    }

    /// Sends a request whose target is written on the wire byte for byte: no URL parser on the
    /// way, which would resolve dot segments or decode escapes before Feen sees them (an HTTP/1.1
    /// request on a connection of its own, closed after the answer).
    pub async fn raw_target(
        &self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Reply {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let authority = self
            .base
            .strip_prefix("http://")
            .unwrap_or(&self.base)
            .to_owned();
        let mut stream = tokio::net::TcpStream::connect(&authority)
            .await
            .unwrap_or_else(|e| panic!("{authority}: {e}"));
        let mut head = format!(
            "{method} {target} HTTP/1.1\r\nhost: {authority}\r\nconnection: close\r\ncontent-length: {}\r\n",
            body.len()
        );
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        let mut wire = head.into_bytes();
        wire.extend_from_slice(body);
        stream
            .write_all(&wire)
            .await
            .unwrap_or_else(|e| panic!("{target}: {e}"));
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer).await;
        let split = answer
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or_else(|| panic!("{target}: no answer: {}", String::from_utf8_lossy(&answer)));
        let head = String::from_utf8_lossy(&answer[..split]).into_owned();
        let mut raw_body = answer[split + 4..].to_vec();
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|code| code.parse::<u16>().ok())
            .and_then(|code| StatusCode::from_u16(code).ok())
            .unwrap_or_else(|| panic!("{target}: bad status line in {head}"));
        let mut headers = HeaderMap::new();
        for line in lines {
            if let Some((name, value)) = line.split_once(':')
                && let (Ok(name), Ok(value)) = (
                    http::HeaderName::from_bytes(name.trim().as_bytes()),
                    http::HeaderValue::from_str(value.trim()),
                )
            {
                headers.append(name, value);
            }
        }
        if headers
            .get("transfer-encoding")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"chunked"))
        {
            raw_body = dechunk(&raw_body);
        }
        let text = String::from_utf8_lossy(&raw_body).into_owned();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            body,
            text,
        }
    }

    /// Sends JSON (or nothing) with an optional bearer token.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let auth = token.map(|t| format!("Bearer {t}"));
        let mut headers: Vec<(&str, &str)> = Vec::new();
        if let Some(auth) = auth.as_deref() {
            headers.push(("authorization", auth));
        }
        let body = body.map(|b| b.to_string().into_bytes());
        if body.is_some() {
            headers.push(("content-type", "application/json"));
        }
        self.raw(method, path, &headers, body).await
    }

    /// GET.
    pub async fn get(&self, path: &str, token: &str) -> Reply {
        self.call(Method::GET, path, Some(token), None).await
    }

    /// POST JSON.
    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Reply {
        self.call(Method::POST, path, token, Some(body)).await
    }

    /// PATCH JSON.
    pub async fn patch(&self, path: &str, token: &str, body: Value) -> Reply {
        self.call(Method::PATCH, path, Some(token), Some(body))
            .await
    }

    /// DELETE.
    pub async fn delete(&self, path: &str, token: &str) -> Reply {
        self.call(Method::DELETE, path, Some(token), None).await
    }

    /// Registers and logs in a new user with a unique email.
    pub async fn signup(&self, name: &str) -> User {
        let email = format!("{}@example.com", crate::feen::unique(name)).to_lowercase();
        let password = "correct horse battery staple".to_owned();
        let reg = self
            .post(
                "/api/auth/register",
                None,
                json!({"email": email, "password": password, "name": name}),
            )
            .await;
        assert_eq!(reg.status, StatusCode::CREATED, "register: {}", reg.text);
        let login = self
            .post(
                "/api/auth/login",
                None,
                json!({"email": email, "password": password}),
            )
            .await;
        assert_eq!(login.status, StatusCode::OK, "login: {}", login.text);
        User {
            id: reg.str("/user/id"),
            email,
            password,
            token: login.str("/accessToken"),
            refresh: login.str("/refreshToken"),
        }
    }

    /// Adds a key; returns its id.
    pub async fn add_key(
        &self,
        user: &User,
        provider: &str,
        secret: &str,
        base_url: &str,
    ) -> String {
        let reply = self
            .post("/api/keys", Some(&user.token), json!({"name": "test key", "provider": provider, "apiKey": secret, "baseUrl": base_url}))
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "add key: {}", reply.text);
        reply.str("/id")
    }

    /// Mints a share with `limits` merged into the body; returns (id, token).
    pub async fn mint(&self, user: &User, key_id: &str, limits: Value) -> (String, String) {
        let mut body = json!({"apiKeyId": key_id, "name": "test share"});
        if let (Some(obj), Some(extra)) = (body.as_object_mut(), limits.as_object()) {
            obj.extend(extra.clone());
        }
        let reply = self.post("/api/shared", Some(&user.token), body).await;
        assert_eq!(reply.status, StatusCode::CREATED, "mint: {}", reply.text);
        (reply.str("/id"), reply.str("/token"))
    }

    /// A chat completion through the proxy with a Feen token.
    pub async fn chat(&self, token: &str, body: Value) -> Reply {
        self.call(
            Method::POST,
            "/api/proxy/v1/chat/completions",
            Some(token),
            Some(body),
        )
        .await
    }

    /// Waits until a share has `n` usage events recorded (events are written asynchronously).
    pub async fn wait_for_usage(&self, user: &User, share: &str, n: u64) -> Reply {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let reply = self
                .get(&format!("/api/shared/{share}/usage"), &user.token)
                .await;
            let seen = reply
                .body
                .pointer("/totals/requests")
                .and_then(Value::as_u64)
                .unwrap_or(0);
            if seen >= n || std::time::Instant::now() > deadline {
                return reply;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}

/// The payload of a chunked HTTP/1.1 body.
fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(end) = raw.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&raw[..end])
            .ok()
            .and_then(|s| usize::from_str_radix(s.split(';').next().unwrap_or("").trim(), 16).ok())
            .unwrap_or(0);
        if size == 0 || raw.len() < end + 2 + size {
            break;
        }
        out.extend_from_slice(&raw[end + 2..end + 2 + size]);
        raw = &raw[(end + 4 + size).min(raw.len())..];
    }
    out
}

/// Waits, when less than 20 s of the current UTC minute remain, for the next one to start: a
/// test that counts requests against a per-minute limit must not straddle two windows.
pub async fn within_one_minute() {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let left = 60_000 - now_ms % 60_000;
    if left < 20_000 {
        tokio::time::sleep(std::time::Duration::from_millis(left + 50)).await;
    }
}
