//! API keys against the real binary: made, listed and revoked by a logged-in session; used with
//! `Authorization: Bearer` by clients that never logged in; each scope let through exactly where
//! it may go; a bad key refused everywhere, even where anonymous callers are welcome; pairing
//! codes traded once for a capture key.

mod common;

use common::*;
use serde_json::{Value, json};

/// Creates a key of `scope` for the logged-in `client`; the whole answer.
async fn create_key(app: &TestApp, client: &reqwest::Client, name: &str, scope: &str) -> Value {
    let (status, body) = app
        .post_json(client, "/api/keys", &json!({"name": name, "scope": scope}))
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

/// A request from a client without cookies, carrying `key`.
fn with_key(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    key: &str,
) -> reqwest::RequestBuilder {
    new_client()
        .request(method, app.url(path))
        .header("authorization", format!("Bearer {key}"))
}

async fn send(request: reqwest::RequestBuilder) -> (u16, Value) {
    status_and_json(request.send().await.expect("request")).await
}

async fn upload_with_key(app: &TestApp, key: &str, seed: u32) -> (u16, Value) {
    send(
        with_key(app, reqwest::Method::POST, "/api/receive-image", key).json(
            &json!({"imageData": data_url("image/png", &png(8, 8, seed)), "category": "char"}),
        ),
    )
    .await
}

#[tokio::test]
async fn a_key_is_shown_once_listed_without_its_secret_and_acts_for_its_user_without_a_cookie() {
    let app = spawn_app().await;
    let (alice, alice_id) = app.user_client("alice").await;
    let created = create_key(&app, &alice, "laptop extension", "capture").await;
    let key = created["key"].as_str().unwrap().to_string();
    assert_eq!(created["success"], true);
    assert_eq!(created["name"], "laptop extension");
    assert_eq!(created["scope"], "capture");
    assert!(created["id"].as_str().unwrap().starts_with("k-"));
    assert!(created["created_at"].is_string());
    assert!(
        key.starts_with("ivk_") && key.len() >= 4 + 22,
        "128 bits at least: {key}"
    );

    let (status, listed) = app.get_json(&alice, "/api/keys").await;
    assert_eq!(status, 200);
    let keys = listed["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["id"], created["id"]);
    assert_eq!(keys[0]["last_used_at"], Value::Null);
    assert!(
        !listed.to_string().contains(&key[4..]),
        "the list never holds the key"
    );

    // A client that never logged in saves into alice's collection, not the admin's.
    let admin_before = total_images(&app).await;
    let (status, body) = upload_with_key(&app, &key, 1).await;
    assert_eq!(status, 200, "{body}");
    let image_id = body["imageId"].as_str().unwrap().to_string();
    assert_eq!(app.list_ids(&alice, "").await, (vec![image_id], 1));
    assert_eq!(total_images(&app).await, admin_before + 1);
    let (status, check) = send(with_key(
        &app,
        reqwest::Method::GET,
        "/api/auth/check",
        &key,
    ))
    .await;
    assert_eq!(status, 200);
    assert_eq!(check["authenticated"], true);
    assert_eq!(check["user"]["user_id"], alice_id.as_str());
    // The upload's task can be followed with the key.
    let task = body["taskId"].as_str().unwrap();
    let (status, _) = send(with_key(
        &app,
        reqwest::Method::GET,
        &format!("/api/task/{task}"),
        &key,
    ))
    .await;
    assert_eq!(status, 200);

    // Its use is noted (written beside the request, not before the answer: poll a while).
    let mut noted = Value::Null;
    for _ in 0..100 {
        let (_, listed) = app.get_json(&alice, "/api/keys").await;
        noted = listed["keys"][0]["last_used_at"].clone();
        if noted.is_string() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(noted.is_string(), "last_used_at after use: {noted}");
}

#[tokio::test]
async fn each_scope_is_let_through_exactly_where_it_may_go() {
    let app = spawn_app().await;
    let (alice, alice_id) = app.user_client("alice").await;
    let image = app.upload_png(&alice, 7, "clothes").await;
    let capture = create_key(&app, &alice, "capture", "capture").await["key"]
        .as_str()
        .unwrap()
        .to_string();
    let read = create_key(&app, &alice, "read", "read").await["key"]
        .as_str()
        .unwrap()
        .to_string();
    let full = create_key(&app, &alice, "full", "full").await["key"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, listed) = app.get_json(&alice, "/api/user/images").await;
    let filename = listed["images"][0]["filename"]
        .as_str()
        .unwrap()
        .to_string();

    use reqwest::Method;
    let batch = json!({"ids": [image], "action": "add_tags", "tags": ["x"]});
    // (method, path, body, capture, read, full): the status each scope must get.
    let cases: Vec<(Method, String, Option<Value>, u16, u16, u16)> = vec![
        (Method::GET, "/api/status".into(), None, 200, 200, 200),
        (Method::GET, "/api/auth/check".into(), None, 200, 200, 200),
        (Method::GET, "/api/user/images".into(), None, 403, 200, 200),
        (Method::GET, "/api/user/profile".into(), None, 403, 200, 200),
        (Method::GET, "/api/user/tags".into(), None, 403, 200, 200),
        (Method::GET, "/api/user/trash".into(), None, 403, 200, 200),
        (
            Method::GET,
            "/api/user/file-paths".into(),
            None,
            403,
            200,
            200,
        ),
        (
            Method::GET,
            format!("/api/user/{alice_id}/images/{filename}"),
            None,
            403,
            200,
            200,
        ),
        (
            Method::POST,
            "/api/user/images/batch".into(),
            Some(batch),
            403,
            403,
            200,
        ),
        (
            Method::PUT,
            format!("/api/user/images/{image}/tags"),
            Some(json!({"tags": ["y"]})),
            403,
            403,
            200,
        ),
        (Method::GET, "/api/admin/backup".into(), None, 403, 403, 403),
        (Method::GET, "/api/keys".into(), None, 403, 403, 403),
        (
            Method::POST,
            "/api/keys".into(),
            Some(json!({"name": "n", "scope": "full"})),
            403,
            403,
            403,
        ),
        (
            Method::POST,
            "/api/keys/pairing-code".into(),
            Some(json!({})),
            403,
            403,
            403,
        ),
        (
            Method::POST,
            "/api/logout".into(),
            Some(json!({})),
            403,
            403,
            403,
        ),
        (
            Method::POST,
            "/api/cloud/sync".into(),
            Some(json!({})),
            403,
            403,
            400,
        ),
        (
            Method::DELETE,
            format!("/api/user/images/{image}"),
            None,
            403,
            403,
            200,
        ),
    ];
    for (method, path, body, capture_status, read_status, full_status) in cases {
        for (key, expected, scope) in [
            (&capture, capture_status, "capture"),
            (&read, read_status, "read"),
            (&full, full_status, "full"),
        ] {
            let mut request = with_key(&app, method.clone(), &path, key);
            if let Some(body) = &body {
                request = request.json(body);
            }
            let response = request.send().await.expect("request");
            let status = response.status().as_u16();
            let text = response.text().await.unwrap_or_default();
            assert_eq!(status, expected, "{scope} key, {method} {path}: {text}");
            // A full key of a user who is not the admin meets the admin route's own refusal.
            if status == 403 && !(scope == "full" && path == "/api/admin/backup") {
                assert!(
                    text.contains("API 密钥的权限不足"),
                    "{scope} {method} {path}: {text}"
                );
            }
        }
    }
    // Every scope may upload.
    for (seed, key) in [(20, &capture), (21, &read), (22, &full)] {
        assert_eq!(upload_with_key(&app, key, seed).await.0, 200);
    }
    // The admin's key does not reach the backup with a read scope, but with a full one.
    let admin = new_client();
    app.login(&admin, "admin", ADMIN_PASSWORD).await;
    let admin_full = create_key(&app, &admin, "ops", "full").await["key"]
        .as_str()
        .unwrap()
        .to_string();
    let response = with_key(&app, Method::GET, "/api/admin/backup", &admin_full)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn a_bad_key_is_refused_everywhere_even_where_anonymous_uploads_are_welcome() {
    let app = spawn_app().await;
    let (alice, _) = app.user_client("alice").await;
    let created = create_key(&app, &alice, "phone", "capture").await;
    let key = created["key"].as_str().unwrap().to_string();
    assert_eq!(upload_with_key(&app, &key, 1).await.0, 200);
    let before = total_images(&app).await;

    let unknown = format!("ivk_{}", "A".repeat(43));
    for bad in [
        "",
        "garbage",
        "ivk_short",
        unknown.as_str(),
        &format!("{key}x"),
    ] {
        for (method, path) in [
            (reqwest::Method::GET, "/api/status"),
            (reqwest::Method::GET, "/api/auth/check"),
            (reqwest::Method::GET, "/"),
        ] {
            let (status, body) = send(with_key(&app, method.clone(), path, bad)).await;
            assert_eq!(status, 401, "{bad:?} on {path}: {body}");
            assert_eq!(body["error"], "API 密钥无效或已被撤销");
        }
        let (status, _) = upload_with_key(&app, bad, 2).await;
        assert_eq!(status, 401, "{bad:?}: a bad key is never anonymous");
    }
    assert_eq!(total_images(&app).await, before, "nothing stored");

    // Revoked: refused from the next request on.
    let id = created["id"].as_str().unwrap();
    let response = alice
        .delete(app.url(&format!("/api/keys/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let (status, _) = upload_with_key(&app, &key, 3).await;
    assert_eq!(status, 401);
    let response = alice
        .delete(app.url(&format!("/api/keys/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404, "gone already");
    // Another user cannot revoke alice's keys.
    let other = create_key(&app, &alice, "second", "capture").await;
    let (bob, _) = app.user_client("bob").await;
    let path = format!("/api/keys/{}", other["id"].as_str().unwrap());
    assert_eq!(
        bob.delete(app.url(&path)).send().await.unwrap().status(),
        404
    );
    assert_eq!(
        upload_with_key(&app, other["key"].as_str().unwrap(), 4)
            .await
            .0,
        200
    );
    assert_eq!(total_images(&app).await, before + 1);
}

#[tokio::test]
async fn a_key_acts_as_its_user_whatever_cookie_comes_with_it_and_needs_no_csrf_dance() {
    let app = spawn_app().await;
    let (alice, _) = app.user_client("alice").await;
    let (_, bob_cookie) = login_cookie(&app, "bob").await;
    let key = create_key(&app, &alice, "script", "full").await["key"]
        .as_str()
        .unwrap()
        .to_string();
    // A foreign origin and a text body would be refused with a cookie alone; with a key the
    // request is the key's, and the cookie is not looked at.
    let response = new_client()
        .post(app.url("/api/receive-image"))
        .header("authorization", format!("Bearer {key}"))
        .header("cookie", &bob_cookie)
        .header("origin", "http://evil.test")
        .header("content-type", "text/plain")
        .body(json!({"imageData": data_url("image/png", &png(8, 8, 5))}).to_string())
        .send()
        .await
        .unwrap();
    let (status, body) = status_and_json(response).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(app.list_ids(&alice, "").await.1, 1);
    assert_eq!(
        get_with_cookie(&app, "/api/user/images", &bob_cookie)
            .await
            .1["total"],
        0
    );
}

#[tokio::test]
async fn a_pairing_code_is_traded_once_for_a_capture_key() {
    let app = spawn_app().await;
    let (alice, _) = app.user_client("alice").await;
    let (status, issued) = app
        .post_json(&alice, "/api/keys/pairing-code", &json!({}))
        .await;
    assert_eq!(status, 200, "{issued}");
    let code = issued["code"].as_str().unwrap().to_string();
    assert_eq!(code.len(), 9, "XXXX-XXXX: {code}");
    assert!(issued["expires_at"].is_string());

    // A name the key could not carry is refused before the code is spent.
    for (name, what) in [
        (json!("x".repeat(65)), "long name"),
        (json!("a\u{7}b"), "control character"),
    ] {
        let (status, body) = app
            .post_json(
                &new_client(),
                "/api/keys/pair",
                &json!({"code": code, "name": name}),
            )
            .await;
        assert_eq!(status, 400, "{what}: {body}");
        assert_eq!(body["success"], false);
    }

    // The extension's options page never logged in.
    let extension = new_client();
    let typed = code.to_lowercase();
    let (status, paired) = app
        .post_json(
            &extension,
            "/api/keys/pair",
            &json!({"code": typed, "name": "Chromium"}),
        )
        .await;
    assert_eq!(status, 200, "{paired}");
    assert_eq!(paired["scope"], "capture");
    assert_eq!(paired["name"], "Chromium");
    let key = paired["key"].as_str().unwrap();
    assert_eq!(upload_with_key(&app, key, 1).await.0, 200);
    assert_eq!(app.list_ids(&alice, "").await.1, 1);

    for (code, what) in [
        (json!(code), "used already"),
        (json!("ZZZZ-ZZZZ"), "never issued"),
        (json!("x".repeat(1000)), "not a code"),
        (json!(null), "missing"),
    ] {
        let (status, body) = app
            .post_json(&new_client(), "/api/keys/pair", &json!({"code": code}))
            .await;
        assert_eq!(status, 400, "{what}: {body}");
        assert_eq!(body["error"], "配对码无效或已过期，请在网页上重新获取");
    }
    let (_, listed) = app.get_json(&alice, "/api/keys").await;
    assert_eq!(
        listed["keys"].as_array().unwrap().len(),
        1,
        "one key, from the one good code (the refused names spent nothing)"
    );

    // A blank name gets the default one.
    let (_, issued) = app
        .post_json(&alice, "/api/keys/pairing-code", &json!({}))
        .await;
    let (status, paired) = app
        .post_json(
            &new_client(),
            "/api/keys/pair",
            &json!({"code": issued["code"], "name": "   "}),
        )
        .await;
    assert_eq!(status, 200, "{paired}");
    assert_eq!(paired["name"], "浏览器扩展");
    assert_eq!(paired["scope"], "capture");

    // Guessing codes is limited like guessing passwords.
    let guesser = new_client();
    let mut limited = false;
    for _ in 0..40 {
        let (status, _) = app
            .post_json(&guesser, "/api/keys/pair", &json!({"code": "ZZZZ-ZZZZ"}))
            .await;
        if status == 429 {
            limited = true;
            break;
        }
        assert_eq!(status, 400);
    }
    assert!(limited, "pairing attempts are rate limited");

    // Asking for codes is limited per user too.
    let mut statuses = Vec::new();
    for _ in 0..10 {
        statuses.push(
            app.post_json(&alice, "/api/keys/pairing-code", &json!({}))
                .await
                .0,
        );
    }
    assert!(statuses.contains(&429), "{statuses:?}");
    // Anonymous callers get no codes.
    assert_eq!(
        app.post_json(&new_client(), "/api/keys/pairing-code", &json!({}))
            .await
            .0,
        401
    );
}

#[tokio::test]
async fn key_requests_that_make_no_sense_are_refused_clearly() {
    let app = spawn_app().await;
    let (alice, _) = app.user_client("alice").await;
    for (body, what) in [
        (json!({"scope": "capture"}), "no name"),
        (json!({"name": "  ", "scope": "capture"}), "blank name"),
        (
            json!({"name": "x".repeat(65), "scope": "capture"}),
            "long name",
        ),
        (
            json!({"name": "a\u{7}b", "scope": "capture"}),
            "control character",
        ),
        (json!({"name": "n", "scope": "admin"}), "unknown scope"),
        (json!({"name": "n"}), "no scope"),
    ] {
        let (status, body) = app.post_json(&alice, "/api/keys", &body).await;
        assert_eq!(status, 400, "{what}: {body}");
        assert_eq!(body["success"], false);
    }
    let (status, _) = app
        .post_json(
            &alice,
            "/api/keys",
            &json!({"name": "x".repeat(100_000), "scope": "read"}),
        )
        .await;
    assert_eq!(status, 413);
    assert_eq!(
        app.post_json(
            &new_client(),
            "/api/keys",
            &json!({"name": "n", "scope": "read"})
        )
        .await
        .0,
        401
    );

    // A user's keys are bounded.
    for i in 0..100 {
        create_key(&app, &alice, &format!("k{i}"), "capture").await;
    }
    let (status, body) = app
        .post_json(
            &alice,
            "/api/keys",
            &json!({"name": "one more", "scope": "capture"}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let (_, listed) = app.get_json(&alice, "/api/keys").await;
    assert_eq!(listed["keys"].as_array().unwrap().len(), 100);
}
