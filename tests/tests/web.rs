//! The dashboard as each host serves it (`feen serve`, the Workers, the Spin components): the
//! page at `/` and its modules with their media types, the security headers on every answer,
//! revalidation by ETag, and Feen's JSON errors for unknown paths and other methods. What the
//! dashboard does in a browser is tested in `web/tests` (headless Chromium).

use feen_e2e::api::Api;
use feen_e2e::feen::Feen;
use http::{Method, StatusCode};

async fn target() -> (Api, Option<Feen>) {
    if let Ok(base) = std::env::var("FEEN_E2E_BASE_URL") {
        return (Api::new(&base), None);
    }
    let feen = Feen::start().await;
    (Api::new(&feen.base), Some(feen))
}

const CSP_PARTS: [&str; 4] = [
    "default-src 'none'",
    "script-src 'self'",
    "connect-src 'self'",
    "frame-ancestors 'none'",
];

fn assert_security_headers(reply: &feen_e2e::api::Reply, what: &str) {
    let csp = reply.header("content-security-policy").unwrap_or("");
    for part in CSP_PARTS {
        assert!(csp.contains(part), "{what}: CSP {csp:?} lacks {part:?}");
    }
    assert_eq!(
        reply.header("x-content-type-options"),
        Some("nosniff"),
        "{what}"
    );
    assert_eq!(
        reply.header("referrer-policy"),
        Some("no-referrer"),
        "{what}"
    );
    assert_eq!(reply.header("x-frame-options"), Some("DENY"), "{what}");
}

#[tokio::test]
async fn the_dashboard_is_served_with_its_security_headers() {
    let (api, _feen) = target().await;
    let page = api.raw(Method::GET, "/", &[], None).await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(page.header("cache-control"), Some("no-cache"));
    assert!(
        page.text
            .contains(r#"<script type="module" src="/js/app.js"></script>"#)
    );
    assert_security_headers(&page, "/");

    // Every module the page loads, as JavaScript (nosniff makes the type matter).
    for path in [
        "/js/app.js",
        "/js/api.js",
        "/js/dom.js",
        "/js/ui.js",
        "/js/pages/shares.js",
    ] {
        let module = api.raw(Method::GET, path, &[], None).await;
        assert_eq!(module.status, StatusCode::OK, "{path}");
        assert_eq!(
            module.header("content-type"),
            Some("text/javascript; charset=utf-8"),
            "{path}"
        );
        assert_security_headers(&module, path);
    }
    let css = api.raw(Method::GET, "/app.css", &[], None).await;
    assert_eq!(css.header("content-type"), Some("text/css; charset=utf-8"));

    // An unchanged file is not sent again; HEAD answers the headers alone.
    let etag = page.header("etag").unwrap_or("").to_owned();
    assert!(etag.starts_with('"') && etag.len() > 10, "{etag}");
    let again = api
        .raw(Method::GET, "/", &[("if-none-match", &etag)], None)
        .await;
    assert_eq!(again.status, StatusCode::NOT_MODIFIED);
    assert!(again.text.is_empty());
    let head = api.raw(Method::HEAD, "/js/app.js", &[], None).await;
    assert_eq!(head.status, StatusCode::OK);
    assert!(head.text.is_empty());

    // The API and the health check are where they were.
    let health = api.raw(Method::GET, "/healthz", &[], None).await;
    assert_eq!(health.body["status"], "ok");
    let me = api.raw(Method::GET, "/api/auth/me", &[], None).await;
    assert_eq!(me.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn unknown_paths_and_writes_get_json_errors() {
    let (api, _feen) = target().await;
    for path in [
        "/nope",
        "/js/nope.js",
        "/index.html/x",
        "/%2e%2e/Cargo.toml",
        "/api/nothing",
    ] {
        let reply = api.raw(Method::GET, path, &[], None).await;
        assert_eq!(
            (reply.status, reply.code()),
            (StatusCode::NOT_FOUND, "not_found"),
            "{path}: {}",
            reply.text
        );
        assert_security_headers(&reply, path);
    }
    for method in [Method::POST, Method::PUT, Method::DELETE] {
        let reply = api
            .raw(
                method.clone(),
                "/",
                &[("content-type", "application/json")],
                Some(b"{}".to_vec()),
            )
            .await;
        assert_eq!(
            (reply.status, reply.code()),
            (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            "{method}: {}",
            reply.text
        );
    }
}
