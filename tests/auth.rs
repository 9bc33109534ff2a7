//! Accounts and sessions (`src/api/auth.rs`, `src/auth.rs`, `src/store/users.rs` and
//! `sessions.rs`): register, login, `/api/auth/check`, the profile, logout and remember-me, field
//! by field as the seed answers them; and every way to get them wrong: missing or out-of-range
//! fields, duplicate names, wrong passwords, forged and logged-out cookies, anonymous callers on
//! private routes, and passwords that must never appear in an answer.
//!
//! Login throttling and the CSRF checks are attacks of issue 16, in `hardening.rs`.

mod common;

use common::*;
use serde_json::{Value, json};

fn is_display_time(v: &Value) -> bool {
    let s = v.as_str().unwrap_or("");
    chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").is_ok()
}

/// A session cookie the server does not honour: profile is 401, auth check says logged out.
async fn assert_cookie_refused(app: &TestApp, cookie: &str) {
    let answer = get_with_cookie(app, "/api/user/profile", cookie).await;
    assert_eq!(answer, (401, failure("需要登录")), "{cookie}");
    let answer = get_with_cookie(app, "/api/auth/check", cookie).await;
    assert_eq!(answer, (200, json!({"authenticated": false})), "{cookie}");
}

async fn register(app: &TestApp, body: Value) -> (u16, Value) {
    app.post_json(&new_client(), "/api/register", &body).await
}

/// Whether `username` can log in with `password`.
async fn can_log_in(app: &TestApp, username: &str, password: &str) -> bool {
    let body = json!({"username": username, "password": password});
    let (status, _) = app.post_json(&new_client(), "/api/login", &body).await;
    status == 200
}

/// Every object key in `value`, at any depth.
fn keys(value: &Value) -> Vec<String> {
    match value {
        Value::Object(map) => map
            .iter()
            .flat_map(|(k, v)| std::iter::once(k.clone()).chain(keys(v)))
            .collect(),
        Value::Array(items) => items.iter().flat_map(keys).collect(),
        _ => Vec::new(),
    }
}

#[tokio::test]
async fn register_login_check_profile_and_logout_answer_as_the_seed_says() {
    let app = spawn_app().await;
    let client = new_client();

    let (status, reg) = app
        .post_json(
            &client,
            "/api/register",
            &json!({"username": "alice", "email": "alice@example.com", "password": "s3cret-pw"}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(reg["success"], true);
    assert_eq!(reg["message"], "注册成功");
    let user_id = reg["user_id"].as_str().unwrap().to_string();
    assert!(uuid::Uuid::parse_str(&user_id).is_ok(), "{user_id}");

    let (_, check) = app.get_json(&client, "/api/auth/check").await;
    assert_eq!(check, json!({"authenticated": false}));

    let resp = client
        .post(app.url("/api/login"))
        .json(&json!({"username": "alice", "password": "s3cret-pw"}))
        .send()
        .await
        .unwrap();
    let cookie = set_cookie(&resp);
    let (status, login) = status_and_json(resp).await;
    assert_eq!(status, 200);
    assert_eq!(
        login,
        json!({"success": true, "message": "登录成功",
               "user": {"user_id": user_id, "username": "alice", "email": "alice@example.com"},
               "cloud_user": {"user_id": user_id, "username": "alice", "email": "alice@example.com",
                              "local_user_id": user_id}})
    );
    assert!(cookie.starts_with("imgvault_"), "{cookie}");
    for attr in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(cookie.contains(attr), "{cookie} lacks {attr}");
    }
    assert!(
        !cookie.contains("Max-Age"),
        "plain login is a browser-session cookie"
    );

    let (_, check) = app.get_json(&client, "/api/auth/check").await;
    assert_eq!(check["authenticated"], true);
    let user = &check["user"];
    assert_eq!(user["user_id"], user_id.as_str());
    assert_eq!(user["username"], "alice");
    assert_eq!(user["email"], "alice@example.com");
    assert!(is_display_time(&user["created_at"]), "{user}");
    assert!(is_display_time(&user["last_login"]), "{user}");
    assert_eq!(user["cloud_sync_enabled"], false);
    assert!(user.get("image_count").is_none());

    app.receive_image(&client, "image/png", &png(3, 3, 7), "char")
        .await;
    let (status, profile) = app.get_json(&client, "/api/user/profile").await;
    assert_eq!(status, 200);
    assert_eq!(profile["success"], true);
    assert_eq!(profile["user"]["image_count"], 1);
    assert_eq!(profile["user"]["username"], "alice");
    for body in [&reg, &login, &check, &profile] {
        let text = body.to_string();
        assert!(
            !text.contains("s3cret-pw") && !text.contains("password"),
            "{text}"
        );
    }

    let (status, out) = app.post_json(&client, "/api/logout", &json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(out, json!({"success": true, "message": "登出成功"}));
    let (status, body) = app.get_json(&client, "/api/user/profile").await;
    assert_eq!(status, 401);
    assert_eq!(body, json!({"success": false, "error": "需要登录"}));
}

#[tokio::test]
async fn remember_me_gives_a_seven_day_cookie() {
    let app = spawn_app().await;
    let client = new_client();
    app.register(&client, "bob", "password123").await;
    let resp = client
        .post(app.url("/api/login"))
        .json(&json!({"username": "bob", "password": "password123", "remember_me": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(set_cookie(&resp).contains("Max-Age=604800"));
}

#[tokio::test]
async fn admin_logs_in_with_the_configured_password() {
    let app = spawn_app().await;
    let user = app.login(&app.client, "admin", ADMIN_PASSWORD).await;
    assert_eq!(user["email"], "admin@local.com");
    let id = user["user_id"].as_str().unwrap();
    let suffix = id.strip_prefix("default-user-").expect(id);
    assert_eq!(suffix.len(), 8);
    assert!(
        suffix
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
    );
}

#[tokio::test]
async fn login_required_endpoints_refuse_anonymous_callers() {
    let mut app = spawn_app().await;
    let (owner, owner_id) = app.user_client("owner").await;
    let (_, up) = app
        .receive_image(&owner, "image/png", &png(6, 6, 1), "clothes")
        .await;
    let filename = up["filename"].as_str().unwrap();
    let image_id = up["imageId"].as_str().unwrap();
    let before = total_images(&app).await;
    let anonymous = new_client();

    let mut gets = file_routes(&owner_id, filename).to_vec();
    gets.extend(["/api/user/profile".into(), "/api/user/images".into()]);
    for path in &gets {
        let answer = app.get_json(&anonymous, path).await;
        assert_eq!(answer, (401, failure("需要登录")), "GET {path}");
    }
    for path in ["/api/logout", "/api/cloud/sync"] {
        let answer = app.post_json(&anonymous, path, &json!({})).await;
        assert_eq!(answer, (401, failure("需要登录")), "POST {path}");
    }
    let resp = anonymous
        .delete(app.url(&format!("/api/user/images/{image_id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(status_and_json(resp).await, (401, failure("需要登录")));

    assert_eq!(user_total(&app, &owner).await, 1);
    assert_unharmed(&mut app, before).await;
}

#[tokio::test]
async fn logout_invalidates_the_old_cookie_on_the_server() {
    let mut app = spawn_app().await;
    let (_, cookie) = login_cookie(&app, "leaver").await;
    let (status, profile) = get_with_cookie(&app, "/api/user/profile", &cookie).await;
    assert_eq!(
        status, 200,
        "the captured cookie works before logout: {profile}"
    );
    let before = total_images(&app).await;

    let resp = reqwest::Client::new()
        .post(app.url("/api/logout"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    assert_cookie_refused(&app, &cookie).await;
    assert_unharmed(&mut app, before).await;
}

#[tokio::test]
async fn forged_session_cookies_are_treated_as_logged_out() {
    let mut app = spawn_app().await;
    let (_, real) = login_cookie(&app, "victim").await;
    let before = total_images(&app).await;
    let (name, token) = real.split_once('=').expect("a cookie pair");
    let mut flipped = token.to_string();
    let last = flipped.pop().expect("non-empty token");
    flipped.push(if last == 'A' { 'B' } else { 'A' });
    let forged = [
        format!("{name}=deadbeef"),
        format!("{name}="),
        format!("{name}={}", "0".repeat(64)),
        format!("{name}={}", "x".repeat(4000)),
        format!("{name}={flipped}"),
        format!("{name}={token}{token}"),
        format!("{name}=../../../etc/passwd"),
        format!("{name}=\"quoted\""),
        format!("{}={token}", name.to_uppercase()),
        // The name every session had before names followed the port.
        format!("session={token}"),
    ];
    for cookie in &forged {
        assert_cookie_refused(&app, cookie).await;
    }
    assert_unharmed(&mut app, before).await;
}

#[tokio::test]
async fn register_without_required_fields_is_refused() {
    let mut app = spawn_app().await;
    let before = total_images(&app).await;
    let full =
        json!({"username": "newbie", "email": "newbie@example.com", "password": "password123"});
    let mut cases = vec![json!({})];
    for field in ["username", "email", "password"] {
        let mut missing = full.clone();
        missing.as_object_mut().unwrap().remove(field);
        cases.push(missing);
        let mut empty = full.clone();
        empty[field] = json!("");
        cases.push(empty);
    }
    for body in cases {
        let answer = register(&app, body.clone()).await;
        assert_eq!(
            answer,
            (400, failure("用户名、邮箱和密码不能为空")),
            "{body}"
        );
    }
    assert!(!can_log_in(&app, "newbie", "password123").await);
    assert_unharmed(&mut app, before).await;
}

#[tokio::test]
async fn duplicate_username_or_email_is_refused_whatever_its_case() {
    let mut app = spawn_app().await;
    let before = total_images(&app).await;
    let first =
        json!({"username": "alice", "email": "alice@example.com", "password": "password123"});
    assert_eq!(register(&app, first).await.0, 200);
    for (username, email) in [
        ("alice", "other@example.com"),
        ("ALICE", "other@example.com"),
        ("Alice", "other@example.com"),
        ("alice2", "alice@example.com"),
        ("alice3", "ALICE@EXAMPLE.COM"),
        ("admin", "new-admin@example.com"),
        ("notadmin", "admin@local.com"),
    ] {
        let body = json!({"username": username, "email": email, "password": "different-pw"});
        let answer = register(&app, body).await;
        assert_eq!(
            answer,
            (400, failure("用户名或邮箱已存在")),
            "{username} {email}"
        );
    }
    assert!(can_log_in(&app, "alice", "password123").await);
    assert!(!can_log_in(&app, "alice", "different-pw").await);
    assert!(!can_log_in(&app, "alice2", "different-pw").await);
    assert_unharmed(&mut app, before).await;
}

#[tokio::test]
async fn register_with_out_of_range_values_is_refused() {
    let mut app = spawn_app().await;
    let before = total_images(&app).await;
    let twenty_one = "u".repeat(21);
    let cases = [
        ("ab", "ab@example.com", "password123"),
        (twenty_one.as_str(), "long@example.com", "password123"),
        ("bademail1", "not-an-email", "password123"),
        ("bademail2", "a@b", "password123"),
        ("bademail3", "@example.com", "password123"),
        ("shortpw", "shortpw@example.com", "12345"),
    ];
    for (username, email, password) in cases {
        let body = json!({"username": username, "email": email, "password": password});
        let answer = register(&app, body.clone()).await;
        assert_error_status(&answer, 400, &body.to_string());
        assert_eq!(answer.1["success"], false, "{body}");
        assert!(!can_log_in(&app, username, password).await, "{body}");
    }
    assert_unharmed(&mut app, before).await;
}

#[tokio::test]
async fn wrong_password_and_unknown_user_get_identical_401s() {
    let mut app = spawn_app().await;
    let client = new_client();
    app.register(&client, "known", "password123").await;
    let before = total_images(&app).await;
    let wrong_password = app
        .post_json(
            &client,
            "/api/login",
            &json!({"username": "known", "password": "wrong-password"}),
        )
        .await;
    let unknown_user = app
        .post_json(
            &client,
            "/api/login",
            &json!({"username": "nobody-here", "password": "wrong-password"}),
        )
        .await;
    assert_eq!(wrong_password, (401, failure("用户名或密码错误")));
    assert_eq!(unknown_user, wrong_password);
    let (_, check) = app.get_json(&client, "/api/auth/check").await;
    assert_eq!(check, json!({"authenticated": false}));
    assert_unharmed(&mut app, before).await;
}

#[tokio::test]
async fn passwords_never_appear_in_any_answer() {
    let mut app = spawn_app().await;
    let before = total_images(&app).await;
    let password = "Sup3r-Secret-Passw0rd";
    let client = new_client();
    let mut answers = Vec::new();
    let body = json!({"username": "secretive", "email": "s@example.com", "password": password});
    answers.push(app.post_json(&client, "/api/register", &body).await);
    answers.push(app.post_json(&client, "/api/register", &body).await);
    let login = json!({"username": "secretive", "password": password});
    answers.push(app.post_json(&client, "/api/login", &login).await);
    answers.push(app.get_json(&client, "/api/auth/check").await);
    answers.push(app.get_json(&client, "/api/user/profile").await);
    let wrong = json!({"username": "secretive", "password": format!("{password}x")});
    answers.push(app.post_json(&new_client(), "/api/login", &wrong).await);
    let short = json!({"username": "short", "email": "short@example.com", "password": "Pw1!x"});
    answers.push(app.post_json(&new_client(), "/api/register", &short).await);

    let statuses: Vec<u16> = answers.iter().map(|(status, _)| *status).collect();
    assert_eq!(statuses, [200, 400, 200, 200, 200, 401, 400]);
    for (_, body) in &answers {
        let text = body.to_string();
        assert!(
            !text.contains(password) && !text.contains("Pw1!x"),
            "{text}"
        );
        for key in keys(body) {
            assert!(
                key != "password" && key != "password_hash",
                "{key} in {text}"
            );
        }
    }
    assert_unharmed(&mut app, before).await;
}
