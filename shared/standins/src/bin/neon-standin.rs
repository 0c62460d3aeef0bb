//! `neon-standin --listen ADDR`: Neon's SQL-over-HTTP protocol (`POST /sql`) in front of the
//! PostgreSQL each request names in `Neon-Connection-String`. Prints `listening on http://ADDR`
//! when ready.

#![allow(clippy::print_stdout)]

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let listen = args
        .iter()
        .position(|a| a == "--listen")
        .and_then(|i| args.get(i + 1))
        .cloned()
        .unwrap_or_else(|| "127.0.0.1:4444".into());
    let addr = feen_standins::neon::spawn(&listen).await?;
    println!("listening on http://{addr}");
    std::future::pending::<()>().await;
    Ok(())
}
