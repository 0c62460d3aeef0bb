//! Feen's Spin components as Spin runs them, without the Spin CLI (which cannot be installed
//! here): one `wasmtime serve` per component (the `wasi:http` host underneath Spin), behind a
//! small router that reads `spin.toml`'s HTTP triggers and does what Spin's router does: the
//! longest matching route wins (`/x/...` matches `/x` and everything under it), and the request
//! reaches the component with Spin's `spin-*` headers (the client's address among them) set by
//! the router, never by the client.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use http_body_util::{BodyExt, combinators::BoxBody};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};

/// One `[[trigger.http]]` of `spin.toml`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// The route as written (`/api/auth/...`, `/healthz`).
    pub route: String,
    /// The component it names.
    pub component: String,
}

impl Route {
    /// Whether `path` matches, and how specific the match is (longer wins).
    fn matches(&self, path: &str) -> Option<usize> {
        match self.route.strip_suffix("/...") {
            Some(prefix) if path == prefix || path.starts_with(&format!("{prefix}/")) => {
                Some(prefix.len())
            }
            Some(_) => None,
            None => (path == self.route).then_some(self.route.len() + 1),
        }
    }
}

/// The parts of `spin.toml` a router needs: the routes, and each component's wasm file.
#[derive(Clone, Debug)]
pub struct Manifest {
    /// The HTTP triggers, in file order.
    pub routes: Vec<Route>,
    /// Each component's `source`, relative to the manifest's directory.
    pub sources: HashMap<String, PathBuf>,
}

impl Manifest {
    /// Reads the `spin.toml` at `path`.
    pub fn read(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let doc: toml::Table = toml::from_str(&text).map_err(|e| e.to_string())?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let routes = doc
            .get("trigger")
            .and_then(|t| t.get("http"))
            .and_then(|h| h.as_array())
            .ok_or("spin.toml has no [[trigger.http]]")?
            .iter()
            .map(|t| {
                let field = |name: &str| {
                    t.get(name)
                        .and_then(|v| v.as_str())
                        .map(str::to_owned)
                        .ok_or_else(|| format!("a [[trigger.http]] without `{name}`"))
                };
                Ok(Route {
                    route: field("route")?,
                    component: field("component")?,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        let sources = doc
            .get("component")
            .and_then(|c| c.as_table())
            .ok_or("spin.toml has no components")?
            .iter()
            .map(|(name, c)| {
                c.get("source")
                    .and_then(|s| s.as_str())
                    .map(|s| (name.clone(), dir.join(s)))
                    .ok_or_else(|| format!("component {name} has no source"))
            })
            .collect::<Result<HashMap<_, _>, String>>()?;
        Ok(Self { routes, sources })
    }

    /// The component serving `path`, as Spin chooses it.
    pub fn route(&self, path: &str) -> Option<&Route> {
        self.routes
            .iter()
            .filter_map(|r| r.matches(path).map(|n| (n, r)))
            .max_by_key(|(n, _)| *n)
            .map(|(_, r)| r)
    }
}

/// A component's `source` from `spin.toml` (`target/…`), under `CARGO_TARGET_DIR` when the build
/// put it elsewhere.
pub fn component_path(source: &Path) -> PathBuf {
    let Ok(target) = std::env::var("CARGO_TARGET_DIR") else {
        return source.to_path_buf();
    };
    let mut parts = source.components();
    while let Some(part) = parts.next() {
        if part.as_os_str() == "target" {
            return PathBuf::from(target).join(parts.as_path());
        }
    }
    source.to_path_buf()
}

type Out = BoxBody<Bytes, hyper::Error>;

fn answer(status: u16, text: &'static str) -> http::Response<Out> {
    let mut resp = http::Response::new(
        http_body_util::Full::new(Bytes::from_static(text.as_bytes()))
            .map_err(|never| match never {})
            .boxed(),
    );
    *resp.status_mut() = http::StatusCode::from_u16(status).unwrap_or_default();
    resp
}

async fn forward(
    mut req: http::Request<Incoming>,
    peer: SocketAddr,
    manifest: &Manifest,
    ports: &HashMap<String, u16>,
    client: &Client<HttpConnector, Incoming>,
) -> http::Response<Out> {
    let path = req.uri().path().to_owned();
    let Some(route) = manifest.route(&path) else {
        return answer(404, "Not Found");
    };
    let Some(port) = ports.get(&route.component) else {
        return answer(500, "component not started");
    };
    let path_and_query = req
        .uri()
        .path_and_query()
        .map_or("/".to_owned(), |p| p.to_string());
    let full_url = format!(
        "http://{}{path_and_query}",
        req.headers()
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("localhost")
    );
    let headers = req.headers_mut();
    let stale: Vec<_> = headers
        .keys()
        .filter(|k| k.as_str().starts_with("spin-"))
        .cloned()
        .collect();
    for name in stale {
        headers.remove(name);
    }
    let set = |headers: &mut http::HeaderMap, name: &'static str, value: &str| {
        if let Ok(v) = http::HeaderValue::from_str(value) {
            headers.insert(name, v);
        }
    };
    set(headers, "spin-client-addr", &peer.to_string());
    set(headers, "spin-full-url", &full_url);
    set(headers, "spin-matched-route", &route.route);
    set(headers, "spin-path-info", &path);
    let uri = format!("http://127.0.0.1:{port}{path_and_query}");
    match uri.parse() {
        Ok(uri) => *req.uri_mut() = uri,
        Err(_) => return answer(400, "bad request target"),
    }
    match client.request(req).await {
        Ok(resp) => resp.map(BodyExt::boxed),
        Err(_) => answer(502, "component unreachable"),
    }
}

/// Serves `manifest`'s routes on a free loopback port, forwarding to the components listening
/// on `ports`; returns the address.
pub async fn router(manifest: Manifest, ports: HashMap<String, u16>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("router: {e}"));
    let addr = listener
        .local_addr()
        .unwrap_or_else(|e| panic!("router: {e}"));
    let shared = std::sync::Arc::new((manifest, ports, {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        // A connection per request, as Spin's in-process router has no pooled hop: a reused
        // connection the component's host has just closed fails the request (seen as a 502).
        Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(0)
            .build(connector)
    }));
    tokio::spawn(async move {
        while let Ok((stream, peer)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            let shared = shared.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let shared = shared.clone();
                    async move {
                        let (manifest, ports, client) = &*shared;
                        Ok::<_, Infallible>(forward(req, peer, manifest, ports, client).await)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_route_wins_and_wildcards_cover_their_prefix() {
        let route = |route: &str, component: &str| Route {
            route: route.into(),
            component: component.into(),
        };
        let manifest = Manifest {
            routes: vec![
                route("/api/...", "fallback"),
                route("/api/auth/...", "auth"),
                route("/healthz", "auth"),
            ],
            sources: HashMap::new(),
        };
        let to = |path: &str| manifest.route(path).map(|r| r.component.as_str());
        assert_eq!(to("/api/auth"), Some("auth"));
        assert_eq!(to("/api/auth/login"), Some("auth"));
        assert_eq!(to("/api/authx"), Some("fallback"));
        assert_eq!(to("/api/keys/1"), Some("fallback"));
        assert_eq!(to("/healthz"), Some("auth"));
        assert_eq!(to("/healthz/x"), None);
        assert_eq!(to("/"), None);
    }

    #[test]
    fn the_repositorys_manifest_routes_every_function() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../spin.toml");
        let manifest = Manifest::read(&path).expect("spin.toml reads");
        let to = |path: &str| manifest.route(path).map(|r| r.component.as_str());
        assert_eq!(to("/api/auth/login"), Some("auth"));
        assert_eq!(to("/api/keys"), Some("keys"));
        assert_eq!(to("/api/shared/shr_1/usage"), Some("shares"));
        assert_eq!(to("/api/proxy/v1/chat/completions"), Some("proxy"));
        assert_eq!(to("/v1/models"), Some("proxy"));
        assert_eq!(to("/api/jobs/run"), Some("jobs"));
        assert_eq!(to("/api/audit/verify"), Some("audit"));
        assert_eq!(to("/api/teams/invites/accept"), Some("teams"));
        assert_eq!(to("/api/analytics/usage"), Some("analytics"));
        assert_eq!(to("/healthz"), Some("auth"));
        assert_eq!(to("/api/nothing"), Some("web"));
        assert_eq!(to("/"), Some("web"));
        assert_eq!(to("/js/app.js"), Some("web"));
        for component in [
            "auth",
            "keys",
            "shares",
            "proxy",
            "jobs",
            "audit",
            "teams",
            "analytics",
            "web",
        ] {
            assert!(manifest.sources.contains_key(component), "{component}");
        }
    }
}
