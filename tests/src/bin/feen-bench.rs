//! `feen-bench`: what Feen adds over calling the provider directly. Starts the mock provider and
//! a `feen serve` (release build by default), mints a share without limits, then drives the mock
//! directly and through Feen, side by side, over keep-alive HTTP/1.1 connections, plain and
//! streamed, at 1 and 32 connections, and prints latency percentiles, requests per second and
//! time to first byte.
//!
//! Usage: `feen-bench [embedded|redis] [SECONDS_PER_RUN]`. `FEEN_BIN` picks the binary (default
//! `target/release/feen`). A benchmark, not a test: it asserts nothing and reports figures.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::time::{Duration, Instant};

use bytes::Bytes;
use feen_e2e::api::Api;
use feen_e2e::feen::{Backend, Feen, Options};
use feen_e2e::mock::MockProvider;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::json;

const KEY: &str = "sk-bench-0123456789abcdef";

#[derive(Clone)]
struct Target {
    host: String,
    path: String,
    token: String,
}

#[derive(Default)]
struct Samples {
    total_us: Vec<u64>,
    first_byte_us: Vec<u64>,
    errors: u64,
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)] as f64 / 1000.0
}

async fn connection(target: Target, body: Bytes, until: Instant, measure_from: Instant) -> Samples {
    let mut samples = Samples::default();
    let stream = match tokio::net::TcpStream::connect(&target.host).await {
        Ok(stream) => stream,
        Err(e) => {
            eprintln!("connect to {}: {e}", target.host);
            samples.errors += 1;
            return samples;
        }
    };
    let _ = stream.set_nodelay(true);
    let Ok((mut sender, conn)) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await
    else {
        samples.errors += 1;
        return samples;
    };
    tokio::spawn(conn);
    while Instant::now() < until {
        let req = hyper::Request::post(&target.path)
            .header("host", &target.host)
            .header("authorization", format!("Bearer {}", target.token))
            .header("content-type", "application/json")
            .body(Full::new(body.clone()));
        let Ok(req) = req else { break };
        // The connection takes a moment to become free after a response body ends.
        if sender.ready().await.is_err() {
            samples.errors += 1;
            break;
        }
        let started = Instant::now();
        let resp = match sender.send_request(req).await {
            Ok(resp) => resp,
            Err(e) => {
                eprintln!("request to {}: {e}", target.host);
                samples.errors += 1;
                break;
            }
        };
        let ok = resp.status().is_success();
        let mut body = resp.into_body();
        let mut first = None;
        while let Some(frame) = body.frame().await {
            if frame.is_err() {
                samples.errors += 1;
                break;
            }
            first.get_or_insert_with(|| started.elapsed());
        }
        let total = started.elapsed();
        if started >= measure_from {
            if ok {
                samples.total_us.push(total.as_micros() as u64);
                samples
                    .first_byte_us
                    .push(first.unwrap_or(total).as_micros() as u64);
            } else {
                samples.errors += 1;
            }
        }
    }
    samples
}

struct Result {
    rps: f64,
    p50: f64,
    p99: f64,
    ttfb50: f64,
    errors: u64,
}

async fn run(target: &Target, stream: bool, conns: usize, secs: u64) -> Result {
    let mut body = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]});
    if stream {
        body["stream"] = json!(true);
        body["stream_options"] = json!({"include_usage": true});
    }
    let body = Bytes::from(body.to_string());
    let warmup = Duration::from_millis(700);
    let start = Instant::now();
    let measure_from = start + warmup;
    let until = measure_from + Duration::from_secs(secs);
    let tasks: Vec<_> = (0..conns)
        .map(|_| {
            tokio::spawn(connection(
                target.clone(),
                body.clone(),
                until,
                measure_from,
            ))
        })
        .collect();
    let mut all = Samples::default();
    for task in tasks {
        if let Ok(s) = task.await {
            all.total_us.extend(s.total_us);
            all.first_byte_us.extend(s.first_byte_us);
            all.errors += s.errors;
        }
    }
    all.total_us.sort_unstable();
    all.first_byte_us.sort_unstable();
    Result {
        rps: all.total_us.len() as f64 / secs as f64,
        p50: percentile(&all.total_us, 0.50),
        p99: percentile(&all.total_us, 0.99),
        ttfb50: percentile(&all.first_byte_us, 0.50),
        errors: all.errors,
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip(1);
    let backend_name = args.next().unwrap_or_else(|| "embedded".into());
    let secs: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(5);
    if std::env::var("FEEN_BIN").is_err() {
        let release =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release/feen");
        let target = std::env::var("CARGO_TARGET_DIR")
            .map(|d| std::path::PathBuf::from(d).join("release/feen"))
            .unwrap_or(release);
        feen_e2e::feen::set_binary(target);
    }
    let backend = match backend_name.as_str() {
        "redis" => Backend::fresh_shared().await,
        _ => Backend::Embedded,
    };
    let mock = MockProvider::start(KEY).await;
    let feen = Feen::start_with(Options {
        backend,
        ..Options::default()
    })
    .await;
    let api = Api::new(&feen.base);
    let user = api.signup("bench").await;
    let key = api.add_key(&user, "openai", KEY, &mock.base_url()).await;
    let (_, token) = api.mint(&user, &key, json!({})).await;

    let direct = Target {
        host: mock.addr.to_string(),
        path: "/v1/chat/completions".into(),
        token: KEY.into(),
    };
    let via = Target {
        host: feen.base.trim_start_matches("http://").to_owned(),
        path: "/api/proxy/v1/chat/completions".into(),
        token,
    };
    println!(
        "backend: {backend_name}; {secs} s per run after 0.7 s warm-up; mock provider in this process"
    );
    println!(
        "| mode | conns | direct p50 ms | feen p50 ms | overhead p50 ms | direct p99 ms | feen p99 ms | direct req/s | feen req/s | direct ttfb p50 ms | feen ttfb p50 ms | errors |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for stream in [false, true] {
        for conns in [1usize, 32] {
            let d = run(&direct, stream, conns, secs).await;
            let f = run(&via, stream, conns, secs).await;
            println!(
                "| {} | {conns} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.0} | {:.0} | {:.3} | {:.3} | {} |",
                if stream { "stream" } else { "plain" },
                d.p50,
                f.p50,
                f.p50 - d.p50,
                d.p99,
                f.p99,
                d.rps,
                f.rps,
                d.ttfb50,
                f.ttfb50,
                d.errors + f.errors
            );
        }
    }
    drop(feen);
}
