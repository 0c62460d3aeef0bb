//! Feen's end-to-end harness: a mock AI provider, a way to start `feen serve`, and a small HTTP
//! client for Feen's API. The suites in `tests/` use these to talk HTTP to a base URL, so they
//! can run against any host.

pub mod api;
pub mod feen;
pub mod mail;
pub mod mock;
pub mod spin;

/// An HTTP client for tests. (The workspace builds reqwest without a built-in TLS provider,
/// so one is installed first.)
pub fn http_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_default()
}
