//! Outbound HTTP over reqwest, streaming both ways, with the SSRF guard at connect time: names
//! resolving to private, loopback or link-local addresses are refused (unless dev mode allows
//! them), so a key's public-looking base URL cannot be re-pointed inside by DNS. Redirects are
//! never followed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use feen_core::netguard::is_public_ip;
use feen_core::ports::{HttpClient, HttpError};
use feen_core::{Body, body::StreamError};
use futures_util::TryStreamExt;

/// The native outbound client.
#[derive(Clone, Debug)]
pub struct ReqwestHttp {
    client: reqwest::Client,
}

#[derive(Debug)]
struct GuardedResolver;

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let public: Vec<SocketAddr> =
                addrs.into_iter().filter(|a| is_public_ip(a.ip())).collect();
            if public.is_empty() {
                let err: Box<dyn std::error::Error + Send + Sync> =
                    format!("{host} resolves only to private or loopback addresses").into();
                return Err(err);
            }
            Ok(Box::new(public.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

impl ReqwestHttp {
    /// A client; `allow_private` (dev mode) turns the resolver guard off.
    pub fn new(allow_private: bool) -> Result<Self, HttpError> {
        // One process-wide TLS provider; a second install attempt is harmless.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(Duration::from_secs(600))
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(256)
            .tcp_nodelay(true)
            .no_proxy();
        if !allow_private {
            builder = builder.dns_resolver(Arc::new(GuardedResolver));
        }
        let client = builder.build().map_err(|e| HttpError(e.to_string()))?;
        Ok(Self { client })
    }
}

#[async_trait::async_trait]
impl HttpClient for ReqwestHttp {
    async fn send(&self, request: http::Request<Body>) -> Result<http::Response<Body>, HttpError> {
        let (parts, body) = request.into_parts();
        let url =
            reqwest::Url::parse(&parts.uri.to_string()).map_err(|e| HttpError(e.to_string()))?;
        let body = match body {
            Body::Full(bytes) => reqwest::Body::from(bytes),
            Body::Stream(stream) => reqwest::Body::wrap_stream(stream.into_inner()),
        };
        let response = self
            .client
            .request(parts.method, url)
            .headers(parts.headers)
            .body(body)
            .send()
            .await
            .map_err(|e| HttpError(without_url(&e)))?;
        let mut out = http::Response::builder().status(response.status());
        if let Some(headers) = out.headers_mut() {
            *headers = response.headers().clone();
        }
        let stream = response
            .bytes_stream()
            .map_err(|e| -> StreamError { without_url(&e).into() });
        out.body(Body::from_stream(stream))
            .map_err(|e| HttpError(e.to_string()))
    }
}

/// reqwest's error text without the URL (a query string could carry a credential).
fn without_url(err: &reqwest::Error) -> String {
    let mut text = err.to_string();
    if let Some(url) = err.url() {
        text = text.replace(url.as_str(), "<upstream>");
    }
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use reqwest::dns::Resolve;

    use super::*;

    #[tokio::test]
    async fn names_resolving_to_loopback_are_refused_at_connect_time() {
        let name = reqwest::dns::Name::from_str("localhost").expect("name");
        let result = GuardedResolver.resolve(name).await;
        let err = result.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("private or loopback"), "{err}");
    }

    #[tokio::test]
    async fn the_guarded_client_refuses_a_loopback_name_and_dev_mode_allows_it() {
        let guarded = ReqwestHttp::new(false).expect("client");
        let request = http::Request::get("http://localhost:9/")
            .body(Body::empty())
            .expect("request");
        let err = guarded
            .send(request)
            .await
            .err()
            .map(|e| e.0)
            .unwrap_or_default();
        assert!(err.contains("private or loopback"), "{err}");
        let dev = ReqwestHttp::new(true).expect("client");
        let request = http::Request::get("http://localhost:9/")
            .body(Body::empty())
            .expect("request");
        let err = dev
            .send(request)
            .await
            .err()
            .map(|e| e.0)
            .unwrap_or_default();
        assert!(
            !err.contains("private or loopback"),
            "dev mode resolves normally: {err}"
        );
    }
}
