//! `upstash-standin --listen ADDR --redis URL --token TOKEN [--readonly-token TOKEN]`: the
//! Upstash Redis REST protocol in front of a real Redis. Prints `listening on http://ADDR` when
//! ready.

#![allow(clippy::print_stdout)]

use feen_standins::upstash::{Config, spawn};

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let listen = arg(&args, "--listen").unwrap_or_else(|| "127.0.0.1:8079".into());
    let redis_url = arg(&args, "--redis").unwrap_or_else(|| "redis://127.0.0.1:6379".into());
    let token = arg(&args, "--token").ok_or("--token is required")?;
    let config = Config {
        token,
        readonly_token: arg(&args, "--readonly-token"),
    };
    let addr = spawn(&listen, &redis_url, config).await?;
    println!("listening on http://{addr}");
    std::future::pending::<()>().await;
    Ok(())
}
