//! Accounts and sessions over HTTP: login answers, refresh rotation and reuse detection, logout,
//! cookies and CSRF, personal access tokens, and login throttling.

use feen_e2e::api::Api;
use feen_e2e::feen::Feen;
use http::{Method, StatusCode};
use serde_json::json;

async fn target() -> (Api, Option<Feen>) {
    if let Ok(base) = std::env::var("FEEN_E2E_BASE_URL") {
        return (Api::new(&base), None);
    }
    let feen = Feen::start().await;
    (Api::new(&feen.base), Some(feen))
}

#[tokio::test]
async fn login_returns_tokens_and_http_only_same_site_cookies() {
    let (api, _feen) = target().await;
    let user = api.signup("cookies").await;
    let login = api
        .post(
            "/api/auth/login",
            None,
            json!({"email": user.email, "password": user.password}),
        )
        .await;
    assert_eq!(login.status, StatusCode::OK);
    assert_eq!(login.body["tokenType"], "Bearer");
    assert_eq!(login.body["expiresIn"], 900);
    assert_eq!(login.body["user"]["email"], user.email.as_str());
    assert!(login.body["user"].get("passwordHash").is_none() && !login.text.contains("argon2"));
    let cookies: Vec<&str> = login
        .headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    assert_eq!(cookies.len(), 2, "{cookies:?}");
    for cookie in &cookies {
        assert!(
            cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
            "{cookie}"
        );
    }
    assert!(
        cookies
            .iter()
            .any(|c| c.starts_with("feen_refresh=") && c.contains("Path=/api/auth"))
    );

    // The access cookie authenticates the dashboard's reads.
    let access_cookie = cookies
        .iter()
        .find(|c| c.starts_with("feen_access="))
        .and_then(|c| c.split(';').next())
        .unwrap_or("");
    let me = api
        .raw(
            Method::GET,
            "/api/auth/me",
            &[("cookie", access_cookie)],
            None,
        )
        .await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.text);
    assert_eq!(me.body["user"]["id"], user.id.as_str());

    // A cookie-authenticated write from another origin is refused (CSRF).
    let body = json!({"name": "x", "provider": "openai", "apiKey": "sk-abc"})
        .to_string()
        .into_bytes();
    let cross = api
        .raw(
            Method::POST,
            "/api/keys",
            &[
                ("cookie", access_cookie),
                ("origin", "https://evil.example"),
                ("content-type", "application/json"),
            ],
            Some(body.clone()),
        )
        .await;
    assert_eq!(
        (cross.status, cross.code()),
        (StatusCode::FORBIDDEN, "csrf_rejected")
    );
    // And a form post (not JSON) is refused whatever its origin.
    let form = api
        .raw(
            Method::POST,
            "/api/keys",
            &[
                ("cookie", access_cookie),
                ("content-type", "application/x-www-form-urlencoded"),
            ],
            Some(b"name=x".to_vec()),
        )
        .await;
    assert_eq!(form.status, StatusCode::BAD_REQUEST);
    assert!(
        api.get("/api/keys", &user.token).await.body["keys"]
            .as_array()
            .is_some_and(Vec::is_empty)
    );
}

#[tokio::test]
async fn refresh_rotates_and_a_reused_refresh_token_ends_the_session() {
    let (api, _feen) = target().await;
    let user = api.signup("refresh").await;
    let first = api
        .post(
            "/api/auth/refresh",
            None,
            json!({"refreshToken": user.refresh}),
        )
        .await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    let rotated = first.str("/refreshToken");
    assert_ne!(rotated, user.refresh);
    let access = first.str("/accessToken");
    assert_eq!(
        api.get("/api/auth/me", &access).await.status,
        StatusCode::OK
    );

    // Replaying the first refresh token is theft: the whole session ends.
    let replay = api
        .post(
            "/api/auth/refresh",
            None,
            json!({"refreshToken": user.refresh}),
        )
        .await;
    assert_eq!(
        (replay.status, replay.code()),
        (StatusCode::UNAUTHORIZED, "refresh_token_reused")
    );
    let after = api
        .post("/api/auth/refresh", None, json!({"refreshToken": rotated}))
        .await;
    assert_eq!(after.status, StatusCode::UNAUTHORIZED);
    let me = api.get("/api/auth/me", &access).await;
    assert_eq!(
        (me.status, me.code()),
        (StatusCode::UNAUTHORIZED, "session_ended")
    );

    for bad in [
        json!({"refreshToken": "feenrt_nope"}),
        json!({"refreshToken": 5}),
        json!({}),
    ] {
        let reply = api.post("/api/auth/refresh", None, bad.clone()).await;
        assert!(
            reply.status == StatusCode::UNAUTHORIZED || reply.status == StatusCode::BAD_REQUEST,
            "{bad}: {}",
            reply.text
        );
    }
}

#[tokio::test]
async fn logout_makes_the_access_and_refresh_tokens_stop_working() {
    let (api, _feen) = target().await;
    let user = api.signup("logout").await;
    assert_eq!(
        api.get("/api/auth/me", &user.token).await.status,
        StatusCode::OK
    );
    let out = api
        .call(Method::POST, "/api/auth/logout", Some(&user.token), None)
        .await;
    assert_eq!(out.status, StatusCode::NO_CONTENT, "{}", out.text);
    assert_eq!(
        api.get("/api/auth/me", &user.token).await.code(),
        "session_ended"
    );
    let refresh = api
        .post(
            "/api/auth/refresh",
            None,
            json!({"refreshToken": user.refresh}),
        )
        .await;
    assert_eq!(refresh.status, StatusCode::UNAUTHORIZED);
    let again = api.call(Method::POST, "/api/auth/logout", None, None).await;
    assert_eq!(again.status, StatusCode::UNAUTHORIZED);
}

/// Signs `user` in once more: a second device with its own session.
async fn second_device(api: &Api, user: &feen_e2e::api::User) -> (String, String) {
    let login = api
        .post(
            "/api/auth/login",
            None,
            json!({"email": user.email, "password": user.password}),
        )
        .await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.text);
    (login.str("/accessToken"), login.str("/refreshToken"))
}

#[tokio::test]
async fn signing_out_everywhere_ends_every_session_but_not_access_tokens_for_programs() {
    let (api, _feen) = target().await;
    let user = api.signup("everywhere").await;
    let other = api.signup("bystander").await;
    let (phone, phone_refresh) = second_device(&api, &user).await;
    let pat = api
        .post(
            "/api/auth/tokens",
            Some(&user.token),
            json!({"name": "ci", "password": user.password}),
        )
        .await
        .str("/token");
    let out = api
        .call(Method::POST, "/api/auth/logout-all", Some(&phone), None)
        .await;
    assert_eq!(out.status, StatusCode::NO_CONTENT, "{}", out.text);
    let cleared: Vec<&str> = out
        .headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    assert!(
        cleared.len() == 2 && cleared.iter().all(|c| c.contains("Max-Age=0")),
        "{cleared:?}"
    );
    // Both devices' access tokens stop at once, and neither refresh token works.
    for token in [&user.token, &phone] {
        assert_eq!(api.get("/api/auth/me", token).await.code(), "session_ended");
    }
    for refresh in [&user.refresh, &phone_refresh] {
        let reply = api
            .post("/api/auth/refresh", None, json!({"refreshToken": refresh}))
            .await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.text);
    }
    // Personal access tokens are not sessions: they stay until revoked.
    assert_eq!(api.get("/api/auth/me", &pat).await.status, StatusCode::OK);
    // Another user is untouched.
    assert_eq!(
        api.get("/api/auth/me", &other.token).await.status,
        StatusCode::OK
    );
    let audit = api.get("/api/audit?action=auth.logout_all", &pat).await;
    assert_eq!(
        audit.body["entries"][0]["details"]["sessions"], 2,
        "{}",
        audit.text
    );
    // Without credentials: 401, and nothing else happens.
    let anonymous = api
        .call(Method::POST, "/api/auth/logout-all", None, None)
        .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    let wrong_method = api.get("/api/auth/logout-all", &pat).await;
    assert_eq!(wrong_method.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn changing_the_password_needs_the_old_one_and_ends_every_other_session() {
    let (api, _feen) = target().await;
    let user = api.signup("password").await;
    let (phone, _) = second_device(&api, &user).await;
    let new_password = "a completely different passphrase";

    // Bad input changes nothing, and says which field is wrong.
    for (body, field) in [
        (
            json!({"currentPassword": "wrong password!", "newPassword": new_password}),
            "currentPassword",
        ),
        (
            json!({"currentPassword": user.password, "newPassword": "short"}),
            "newPassword",
        ),
    ] {
        let reply = api
            .post("/api/auth/password", Some(&user.token), body)
            .await;
        assert_eq!(
            (
                reply.status,
                reply.code(),
                reply.body["error"]["field"].as_str()
            ),
            (StatusCode::BAD_REQUEST, "validation_failed", Some(field)),
            "{}",
            reply.text
        );
        assert!(!reply.text.contains(&user.password), "{}", reply.text);
    }
    for body in [
        json!({"newPassword": new_password}),
        json!({"currentPassword": 5, "newPassword": new_password}),
        json!([]),
    ] {
        let reply = api
            .post("/api/auth/password", Some(&user.token), body.clone())
            .await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{body}: {}",
            reply.text
        );
    }
    assert_eq!(api.get("/api/auth/me", &phone).await.status, StatusCode::OK);

    // A personal access token may not change the password.
    let pat = api
        .post(
            "/api/auth/tokens",
            Some(&user.token),
            json!({"name": "ci", "password": user.password}),
        )
        .await
        .str("/token");
    let by_pat = api
        .post(
            "/api/auth/password",
            Some(&pat),
            json!({"currentPassword": user.password, "newPassword": new_password}),
        )
        .await;
    assert_eq!(
        (by_pat.status, by_pat.code()),
        (StatusCode::FORBIDDEN, "session_required")
    );

    let changed = api
        .post(
            "/api/auth/password",
            Some(&user.token),
            json!({"currentPassword": user.password, "newPassword": new_password}),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.text);
    assert!(!changed.text.contains(new_password));
    let fresh = changed.str("/accessToken");
    assert_eq!(api.get("/api/auth/me", &fresh).await.status, StatusCode::OK);
    for old in [&user.token, &phone] {
        assert_eq!(api.get("/api/auth/me", old).await.code(), "session_ended");
    }
    let old_login = api
        .post(
            "/api/auth/login",
            None,
            json!({"email": user.email, "password": user.password}),
        )
        .await;
    assert_eq!(old_login.code(), "invalid_credentials");
    let new_login = api
        .post(
            "/api/auth/login",
            None,
            json!({"email": user.email, "password": new_password}),
        )
        .await;
    assert_eq!(new_login.status, StatusCode::OK, "{}", new_login.text);
    let audit = api
        .get("/api/audit?action=auth.password_changed", &fresh)
        .await;
    assert_eq!(
        audit.body["entries"].as_array().map(Vec::len),
        Some(1),
        "{}",
        audit.text
    );
    assert!(!audit.text.contains(new_password) && !audit.text.contains(&user.password));
}

#[tokio::test]
async fn unknown_email_and_wrong_password_get_the_same_answer() {
    let (api, _feen) = target().await;
    let user = api.signup("enum").await;
    let wrong = api
        .post(
            "/api/auth/login",
            None,
            json!({"email": user.email, "password": "not the password"}),
        )
        .await;
    let unknown = api
        .post(
            "/api/auth/login",
            None,
            json!({"email": "nobody-here@example.com", "password": "not the password"}),
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        (wrong.status, wrong.text.clone()),
        (unknown.status, unknown.text.clone())
    );
    assert_eq!(wrong.code(), "invalid_credentials");
}

#[tokio::test]
async fn repeated_failed_logins_lock_the_account_for_a_while() {
    let (api, _feen) = target().await;
    let user = api.signup("throttle").await;
    for _ in 0..10 {
        let reply = api
            .post(
                "/api/auth/login",
                None,
                json!({"email": user.email, "password": "guess guess guess"}),
            )
            .await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    }
    let locked = api
        .post(
            "/api/auth/login",
            None,
            json!({"email": user.email, "password": user.password}),
        )
        .await;
    assert_eq!(
        (locked.status, locked.code()),
        (StatusCode::TOO_MANY_REQUESTS, "too_many_attempts")
    );
    assert!(
        locked
            .header("retry-after")
            .and_then(|v| v.parse::<u64>().ok())
            .is_some_and(|s| s > 0)
    );
}

#[tokio::test]
async fn too_many_attempts_from_one_address_are_throttled() {
    let (api, _feen) = target().await;
    let mut last = StatusCode::OK;
    for i in 0..31 {
        let reply = api
            .post(
                "/api/auth/login",
                None,
                json!({"email": format!("ip{i}@example.com"), "password": "whatever whatever"}),
            )
            .await;
        last = reply.status;
        if last == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(reply.code(), "too_many_attempts");
            assert_eq!(i, 30, "throttled after {i} attempts, expected 30");
            break;
        }
    }
    assert_eq!(last, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn personal_access_tokens_work_until_revoked() {
    let (api, _feen) = target().await;
    let user = api.signup("pat").await;
    let make = |body: serde_json::Value| {
        let (api, token) = (api.clone(), user.token.clone());
        async move { api.post("/api/auth/tokens", Some(&token), body).await }
    };
    // The current password is needed: a stolen session alone cannot mint a lasting credential.
    let without = make(json!({"name": "laptop cli"})).await;
    assert_eq!(
        (
            without.status,
            without.code(),
            without.body["error"]["field"].as_str()
        ),
        (
            StatusCode::BAD_REQUEST,
            "validation_failed",
            Some("password")
        )
    );
    let wrong = make(json!({"name": "laptop cli", "password": "not my password"})).await;
    assert_eq!(wrong.body["error"]["field"], "password", "{}", wrong.text);
    let created = make(json!({"name": "laptop cli", "password": user.password})).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let pat = created.str("/token");
    assert!(pat.starts_with("feenpat_"));
    assert!(!created.text.contains(&user.password));
    // Every token expires: in 90 days unless asked otherwise, in a year at most.
    let expires = feen_core::timefmt::parse_rfc3339(&created.str("/expiresAt")).expect("a time");
    let in_days = (expires - now_ms()) / 86_400_000;
    assert!((89..=90).contains(&in_days), "expires in {in_days} days");
    let too_long = make(json!({"name": "forever", "password": user.password,
                               "expiresAt": "2099-01-01T00:00:00Z"}))
    .await;
    assert_eq!(
        too_long.body["error"]["field"], "expiresAt",
        "{}",
        too_long.text
    );
    let id = created.str("/id");
    let me = api.get("/api/auth/me", &pat).await;
    assert_eq!(me.body["user"]["id"], user.id.as_str());
    let listed = api.get("/api/auth/tokens", &user.token).await;
    assert_eq!(listed.body["tokens"][0]["name"], "laptop cli");
    assert!(!listed.text.contains(&pat));
    assert_eq!(
        api.delete(&format!("/api/auth/tokens/{id}"), &user.token)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(api.get("/api/auth/me", &pat).await.code(), "invalid_token");
    assert_eq!(
        api.delete(&format!("/api/auth/tokens/{id}"), &user.token)
            .await
            .status,
        StatusCode::NOT_FOUND
    );

    let past = make(json!({"name": "old", "password": user.password,
                           "expiresAt": "2001-01-01T00:00:00Z"}))
    .await;
    assert_eq!(
        (past.status, past.code()),
        (StatusCode::BAD_REQUEST, "validation_failed")
    );
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[tokio::test]
async fn signing_out_everywhere_or_a_new_password_can_end_personal_access_tokens() {
    let (api, _feen) = target().await;
    let user = api.signup("patend").await;
    let pat = |name: &'static str, password: String| {
        let (api, token) = (api.clone(), user.token.clone());
        async move {
            api.post(
                "/api/auth/tokens",
                Some(&token),
                json!({"name": name, "password": password}),
            )
            .await
            .str("/token")
        }
    };
    let first = pat("first", user.password.clone()).await;
    // Signing out everywhere, asked to: the token ends with the sessions.
    let (phone, _) = second_device(&api, &user).await;
    let out = api
        .post(
            "/api/auth/logout-all",
            Some(&phone),
            json!({"revokeTokens": true}),
        )
        .await;
    assert_eq!(out.status, StatusCode::NO_CONTENT, "{}", out.text);
    assert_eq!(
        api.get("/api/auth/me", &first).await.code(),
        "invalid_token"
    );
    // A password change, asked to: the same.
    let session = api
        .post(
            "/api/auth/login",
            None,
            json!({"email": user.email, "password": user.password}),
        )
        .await
        .str("/accessToken");
    let user = feen_e2e::api::User {
        token: session,
        ..user
    };
    let second = {
        let (api, token, password) = (api.clone(), user.token.clone(), user.password.clone());
        api.post(
            "/api/auth/tokens",
            Some(&token),
            json!({"name": "second", "password": password}),
        )
        .await
        .str("/token")
    };
    let changed = api
        .post(
            "/api/auth/password",
            Some(&user.token),
            json!({"currentPassword": user.password, "newPassword": "another long passphrase",
                   "revokeTokens": true}),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.text);
    assert_eq!(
        api.get("/api/auth/me", &second).await.code(),
        "invalid_token"
    );
    let audit = api
        .get(
            "/api/audit?action=auth.password_changed",
            &changed.str("/accessToken"),
        )
        .await;
    assert_eq!(
        audit.body["entries"][0]["details"]["tokensRevoked"], 1,
        "{}",
        audit.text
    );
}

#[tokio::test]
async fn a_browser_gets_its_refresh_token_as_a_cookie_only() {
    let (api, _feen) = target().await;
    let user = api.signup("browser").await;
    let body = json!({"email": user.email, "password": user.password})
        .to_string()
        .into_bytes();
    let origin = api.base.clone();
    let login = api
        .raw(
            Method::POST,
            "/api/auth/login",
            &[("content-type", "application/json"), ("origin", &origin)],
            Some(body),
        )
        .await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.text);
    assert!(login.body.get("refreshToken").is_none(), "{}", login.text);
    let cookies: Vec<&str> = login
        .headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let refresh = cookies
        .iter()
        .find(|c| c.contains("feen_refresh="))
        .expect("a refresh cookie");
    assert!(refresh.contains("HttpOnly") && refresh.contains("Path=/api/auth"));
    // Refreshing from the page with that cookie: again nothing in the body.
    let pair = refresh.split(';').next().unwrap_or("");
    let renewed = api
        .raw(
            Method::POST,
            "/api/auth/refresh",
            &[
                ("cookie", pair),
                ("origin", &origin),
                ("sec-fetch-site", "same-origin"),
            ],
            None,
        )
        .await;
    assert_eq!(renewed.status, StatusCode::OK, "{}", renewed.text);
    assert!(
        renewed.body.get("refreshToken").is_none(),
        "{}",
        renewed.text
    );
    assert!(renewed.body.get("accessToken").is_some());
}

#[tokio::test]
async fn secure_cookies_carry_the_host_and_secure_prefixes() {
    let feen = Feen::start_with(feen_e2e::feen::Options {
        env: vec![("FEEN_COOKIE_SECURE".into(), "1".into())],
        ..Default::default()
    })
    .await;
    let api = Api::new(&feen.base);
    let user = api.signup("prefixed").await;
    let login = api
        .post(
            "/api/auth/login",
            None,
            json!({"email": user.email, "password": user.password}),
        )
        .await;
    let cookies: Vec<String> = login
        .headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok().map(str::to_owned))
        .collect();
    let access = cookies
        .iter()
        .find(|c| c.starts_with("__Host-feen_access="))
        .unwrap_or_else(|| panic!("no __Host- access cookie in {cookies:?}"));
    assert!(
        access.contains("; Path=/;") && access.contains("; Secure") && !access.contains("Domain")
    );
    let refresh = cookies
        .iter()
        .find(|c| c.starts_with("__Secure-feen_refresh="))
        .unwrap_or_else(|| panic!("no __Secure- refresh cookie in {cookies:?}"));
    assert!(refresh.contains("Path=/api/auth") && refresh.contains("; Secure"));
    let value = access
        .split(';')
        .next()
        .and_then(|pair| pair.split_once('='))
        .map(|(_, v)| v.to_owned())
        .unwrap_or_default();
    let me = |cookie: String| {
        let api = api.clone();
        async move {
            api.raw(Method::GET, "/api/auth/me", &[("cookie", &cookie)], None)
                .await
        }
    };
    assert_eq!(
        me(format!("__Host-feen_access={value}")).await.status,
        StatusCode::OK
    );
    // The unprefixed name (which a sibling host could have set) is not read.
    assert_eq!(
        me(format!("feen_access={value}")).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn guesses_are_counted_atomically_per_account_and_address_and_lock_nobody_out() {
    // Behind a trusted proxy, so that the test can speak from several addresses.
    let feen = Feen::start_with(feen_e2e::feen::Options {
        env: vec![
            ("FEEN_CLIENT_IP_HEADER".into(), "X-Forwarded-For".into()),
            (
                "FEEN_TRUSTED_PROXIES".into(),
                "127.0.0.1/32, ::1/128".into(),
            ),
            ("FEEN_COOKIE_SECURE".into(), "0".into()),
        ],
        ..Default::default()
    })
    .await;
    let api = Api::new(&feen.base);
    let user = api.signup("guessed").await;
    let login = |from: &'static str, password: String| {
        let (api, email) = (api.clone(), user.email.clone());
        async move {
            let body = json!({"email": email, "password": password}).to_string();
            api.raw(
                Method::POST,
                "/api/auth/login",
                &[
                    ("content-type", "application/json"),
                    ("x-forwarded-for", from),
                ],
                Some(body.into_bytes()),
            )
            .await
        }
    };
    // 20 guesses at once from one address: 10 are checked, the rest refused unchecked.
    let guesses: Vec<_> = (0..20)
        .map(|_| tokio::spawn(login("198.51.100.7", "a wrong guess".into())))
        .collect();
    let (mut checked, mut refused) = (0, 0);
    for guess in guesses {
        let reply = guess.await.expect("task");
        match reply.code() {
            "invalid_credentials" => checked += 1,
            "too_many_attempts" => refused += 1,
            other => panic!("unexpected {other}: {}", reply.text),
        }
    }
    assert_eq!((checked, refused), (10, 10));
    // From there even the right password waits; from anywhere else the owner gets in.
    assert_eq!(
        login("198.51.100.7", user.password.clone()).await.code(),
        "too_many_attempts"
    );
    let owner = login("203.0.113.9", user.password.clone()).await;
    assert_eq!(owner.status, StatusCode::OK, "{}", owner.text);
}

#[tokio::test]
async fn registering_twice_with_one_email_is_a_conflict() {
    let (api, _feen) = target().await;
    let user = api.signup("twice").await;
    let again = api.post("/api/auth/register", None, json!({"email": user.email.to_uppercase(), "password": "another long password", "name": "Twin"})).await;
    assert_eq!(
        (again.status, again.code()),
        (StatusCode::CONFLICT, "conflict")
    );
}

#[tokio::test]
async fn the_periodic_jobs_purge_expired_refresh_tokens_and_only_those() {
    // Needs the database behind the host, so always a Feen of its own.
    let feen = Feen::start().await;
    let api = Api::new(&feen.base);
    let user = api.signup("purge").await;
    let db = feen.db().await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    // The login's refresh token expired two days ago (past the one-day grace).
    let aged = db
        .execute(
            "UPDATE sessions SET expires_at = $1 WHERE user_id = $2",
            &[(now - 2 * 86_400_000).into(), user.id.as_str().into()],
        )
        .await
        .expect("age the session");
    assert_eq!(aged, 1);
    let fresh = api
        .post(
            "/api/auth/login",
            None,
            json!({"email": user.email, "password": user.password}),
        )
        .await
        .str("/refreshToken");
    let count = |db: std::sync::Arc<dyn feen_core::ports::Db>, user: String| async move {
        let rows = db
            .query(
                "SELECT COUNT(*) FROM sessions WHERE user_id = $1",
                &[user.as_str().into()],
            )
            .await
            .expect("count sessions");
        rows[0].int(0).expect("a count")
    };
    assert_eq!(count(db.clone(), user.id.clone()).await, 2);

    feen.run_jobs().await;
    assert_eq!(count(db.clone(), user.id.clone()).await, 1);
    let purged = api
        .post(
            "/api/auth/refresh",
            None,
            json!({"refreshToken": user.refresh}),
        )
        .await;
    assert_eq!(
        (purged.status, purged.body["error"]["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_token"))
    );
    let kept = api
        .post("/api/auth/refresh", None, json!({"refreshToken": fresh}))
        .await;
    assert_eq!(kept.status, StatusCode::OK, "{}", kept.text);

    // A second run finds nothing more to do.
    feen.run_jobs().await;
    assert_eq!(count(db, user.id.clone()).await, 2, "the refresh added one");
}
