//! The mock provider as a standalone program, for the SDK compatibility tests and benchmarks:
//! `mock-provider ADDR KEY` listens on ADDR and prints `listening on http://ADDR` when ready.

#![allow(clippy::print_stdout)]

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:0".into());
    let key = args.next().unwrap_or_else(|| "sk-mock".into());
    let addr = addr
        .parse()
        .unwrap_or_else(|_| panic!("not an address: {addr}"));
    let mock = feen_e2e::mock::MockProvider::start_on(addr, &key).await;
    println!("listening on {}", mock.base_url());
    std::future::pending::<()>().await;
}
