//! `hardening-bench`: what the bounds of issue 12 cost and hold, measured on `feen serve`
//! (release build by default; `FEEN_BIN` picks another):
//! - memory: the process's resident size idle, and its peak while clients send large JSON bodies
//!   (30 MiB each, 8 at a time) through the proxy for a while, with how many were answered and
//!   how many were told `503 server_busy`;
//! - logins: the proxy's latency at one connection, alone and while 8 clients log in as fast as
//!   they can (password hashing runs beside the proxy, not on its threads).
//!
//! Usage: `hardening-bench [SECONDS_PER_PHASE]`. A benchmark, not a test: it reports figures.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use feen_e2e::api::Api;
use feen_e2e::feen::{Feen, Options};
use feen_e2e::mock::MockProvider;
use serde_json::json;

const KEY: &str = "sk-bench-0123456789abcdef";

/// A kernel figure of the process (`VmRSS`, `VmHWM`), in MiB.
fn memory(pid: u32, field: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<f64>()
                .ok()
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// A JSON chat request padded to about `bytes` with an array of numbers (the shape that costs a
/// tree-building parser most).
fn big_body(bytes: usize) -> Vec<u8> {
    let mut body = String::with_capacity(bytes + 200);
    body.push_str(r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"pad":["#);
    while body.len() < bytes {
        body.push_str("1234567,");
    }
    body.push_str("0]}");
    body.into_bytes()
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize] as f64 / 1000.0
}

/// Small chats at one connection for `secs`: (p50, p99) in ms.
async fn latency(api: &Api, token: &str, secs: u64) -> (f64, f64) {
    let mut samples = Vec::new();
    let until = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < until {
        let started = Instant::now();
        let reply = api
            .chat(token, json!({"model": "gpt-4o-mini", "messages": []}))
            .await;
        if reply.status.is_success() {
            samples.push(started.elapsed().as_micros() as u64);
        }
    }
    samples.sort_unstable();
    (percentile(&samples, 0.5), percentile(&samples, 0.99))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let secs: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    if std::env::var("FEEN_BIN").is_err() {
        let target = std::env::var("CARGO_TARGET_DIR")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|_| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
        feen_e2e::feen::set_binary(target.join("release/feen"));
    }
    let mock = MockProvider::start(KEY).await;
    let feen = Feen::start_with(Options {
        env: vec![
            ("FEEN_LOG".into(), "warn".into()),
            ("FEEN_CLIENT_IP_HEADER".into(), "X-Forwarded-For".into()),
            ("FEEN_TRUSTED_PROXIES".into(), "127.0.0.1/32".into()),
        ],
        ..Options::default()
    })
    .await;
    let pid = feen.pid().expect("feen serve");
    let api = Api::new(&feen.base);
    let user = api.signup("bench").await;
    let key = api.add_key(&user, "openai", KEY, &mock.base_url()).await;
    let (_, token) = api.mint(&user, &key, json!({})).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    println!("feen serve, {secs} s per phase");
    println!("| measure | value |");
    println!("|---|---|");
    println!("| resident size, idle | {:.1} MiB |", memory(pid, "VmRSS:"));

    // Large bodies, 8 at a time.
    let body = Arc::new(big_body(30 << 20));
    let (answered, busy, other) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let until = Instant::now() + Duration::from_secs(secs);
    let senders: Vec<_> = (0..8)
        .map(|_| {
            let (api, token, body) = (api.clone(), token.clone(), body.clone());
            let (answered, busy, other) = (answered.clone(), busy.clone(), other.clone());
            tokio::spawn(async move {
                let auth = format!("Bearer {token}");
                while Instant::now() < until {
                    let reply = api
                        .raw(
                            http::Method::POST,
                            "/api/proxy/v1/chat/completions",
                            &[
                                ("authorization", &auth),
                                ("content-type", "application/json"),
                            ],
                            Some(body.to_vec()),
                        )
                        .await;
                    match (reply.status.as_u16(), reply.code()) {
                        (200, _) => answered.fetch_add(1, Ordering::Relaxed),
                        (503, "server_busy") => busy.fetch_add(1, Ordering::Relaxed),
                        _ => other.fetch_add(1, Ordering::Relaxed),
                    };
                }
            })
        })
        .collect();
    for sender in senders {
        let _ = sender.await;
    }
    println!(
        "| 30 MiB bodies, 8 clients: answered / 503 server_busy / other | {} / {} / {} |",
        answered.load(Ordering::Relaxed),
        busy.load(Ordering::Relaxed),
        other.load(Ordering::Relaxed)
    );
    println!(
        "| peak resident size (VmHWM) after the large bodies | {:.1} MiB |",
        memory(pid, "VmHWM:")
    );
    println!(
        "| resident size after them | {:.1} MiB |",
        memory(pid, "VmRSS:")
    );

    // Logins beside the proxy.
    let (p50, p99) = latency(&api, &token, secs).await;
    println!("| proxy at 1 connection, alone: p50 / p99 | {p50:.3} / {p99:.3} ms |");
    let stop = Arc::new(AtomicBool::new(false));
    let logins = Arc::new(AtomicU64::new(0));
    let flood: Vec<_> = (0..8u32)
        .map(|n| {
            let (api, stop, logins) = (api.clone(), stop.clone(), logins.clone());
            let email = user.email.clone();
            tokio::spawn(async move {
                let mut i = 0u32;
                while !stop.load(Ordering::Relaxed) {
                    // A new address each time: the per-address throttles never stop the hashing.
                    i += 1;
                    let from = format!("10.{}.{}.{}", n, i / 250 % 250, i % 250 + 1);
                    let body = json!({"email": email, "password": "a wrong guess"}).to_string();
                    api.raw(
                        http::Method::POST,
                        "/api/auth/login",
                        &[
                            ("content-type", "application/json"),
                            ("x-forwarded-for", &from),
                        ],
                        Some(body.into_bytes()),
                    )
                    .await;
                    logins.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (p50, p99) = latency(&api, &token, secs).await;
    stop.store(true, Ordering::Relaxed);
    for task in flood {
        let _ = task.await;
    }
    println!(
        "| proxy at 1 connection, during 8 clients logging in ({} logins): p50 / p99 | {p50:.3} / {p99:.3} ms |",
        logins.load(Ordering::Relaxed)
    );
    drop(feen);
}
