//! `/api/status` (`src/api/status.rs`) and what holds for the server whatever the route: the
//! image total, everything surviving a restart on the same data file, and CORS answers for the
//! browser extension but not for web pages (`src/api/cors.rs`).

mod common;

use common::*;
use serde_json::json;

#[tokio::test]
async fn status_reports_running_and_the_image_total() {
    let app = spawn_app().await;
    let (status, body) = app.get_json(&app.client, "/api/status").await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "running");
    assert_eq!(body["total_images"], 0);
    let ts = body["timestamp"].as_str().unwrap();
    assert!(
        chrono::NaiveDateTime::parse_from_str(ts, "%Y-%m-%dT%H:%M:%S%.f").is_ok(),
        "{ts}"
    );

    app.receive_image(&app.client, "image/png", &png(4, 4, 1), "clothes")
        .await;
    let (_, body) = app.get_json(&app.client, "/api/status").await;
    assert_eq!(body["total_images"], 1);
}

#[tokio::test]
async fn everything_survives_a_restart_on_the_same_file() {
    let app = spawn_app().await;
    let client = new_client();
    let user_id = app.register(&client, "kim", "password123").await;
    let resp = client
        .post(app.url("/api/login"))
        .json(&json!({"username": "kim", "password": "password123", "remember_me": true}))
        .send()
        .await
        .unwrap();
    let cookie = set_cookie(&resp);
    let token = cookie.split(';').next().unwrap().to_string();
    let bytes = jpeg(64, 48, 77);
    let (_, up) = app
        .receive_image(&client, "image/jpeg", &bytes, "char")
        .await;
    let task = app.wait_task(up["taskId"].as_str().unwrap()).await;
    let (_, list_before) = app.get_json(&client, "/api/user/images").await;
    let (_, profile_before) = app.get_json(&client, "/api/user/profile").await;
    let (_, status_before) = app.get_json(&client, "/api/status").await;

    let dir = app.stop();
    let app = spawn_app_in(dir, &[]).await;

    // The remembered session still works, from a client that only has the cookie value.
    let fresh = new_client();
    let get = |path: String| {
        fresh
            .get(app.url(&path))
            .header("cookie", token.clone())
            .send()
    };
    let (status, profile_after) =
        status_and_json(get("/api/user/profile".into()).await.unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(profile_after, profile_before);
    let (_, list_after) = status_and_json(get("/api/user/images".into()).await.unwrap()).await;
    assert_eq!(list_after, list_before);
    let resp = get(format!(
        "/api/user/{user_id}/images/{}",
        up["filename"].as_str().unwrap()
    ))
    .await
    .unwrap();
    assert_eq!(resp.bytes().await.unwrap().as_ref(), bytes.as_slice());
    let (_, task_after) = app
        .get_json(
            &app.client,
            &format!("/api/task/{}", up["taskId"].as_str().unwrap()),
        )
        .await;
    assert_eq!(task_after, task);
    let (_, status_after) = app.get_json(&app.client, "/api/status").await;
    assert_eq!(status_after["total_images"], status_before["total_images"]);
    // The admin account is not re-created.
    app.login(&app.client, "admin", ADMIN_PASSWORD).await;
}

/// A supervisor may stop the server the moment it reads `listening on`: the SIGTERM handler is in
/// place by then, so the process exits 0 after closing the file rather than dying of the signal.
#[tokio::test]
async fn a_sigterm_sent_as_soon_as_the_server_listens_stops_it_cleanly() {
    let mut dir = tempfile::tempdir().expect("temp dir");
    for _ in 0..5 {
        // `stop` asserts a clean exit; no request is made first, so nothing else has run yet.
        dir = spawn_app_in(dir, &[]).await.stop();
    }
    let app = spawn_app_in(dir, &[]).await;
    let body: serde_json::Value = app
        .client
        .get(app.url("/api/status"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["status"], "running");
}

/// Logs going to a file or the journal (not a terminal) carry no colour escape codes, even without
/// `NO_COLOR`.
#[test]
fn logs_written_to_a_pipe_have_no_colour_codes() {
    use std::io::{BufRead, BufReader, Read};
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_imgvault"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(data_path(dir.path()))
        .env("IMGVAULT_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("IMGVAULT_MIN_FREE_MB", "0")
        .env("RUST_LOG", "imgvault=info")
        .env_remove("NO_COLOR")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    while !line.starts_with("listening on") {
        line.clear();
        assert!(
            stdout.read_line(&mut line).unwrap() > 0,
            "exited before listening"
        );
    }
    // SAFETY: kill only sends a signal to the child, which has not been reaped yet.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let mut log = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    assert!(child.wait().unwrap().success());
    assert!(
        log.contains("imgvault started") && log.contains("data file closed"),
        "{log}"
    );
    assert!(!log.contains('\x1b'), "colour codes in the log: {log:?}");
}

#[tokio::test]
async fn extensions_get_cors_answers_and_web_pages_do_not() {
    let app = spawn_app_with(&["--cors-origin", "http://nas.lan:3000"]).await;
    for origin in [
        "chrome-extension://abcdef",
        "moz-extension://1234",
        "http://nas.lan:3000",
    ] {
        let resp = app
            .client
            .request(reqwest::Method::OPTIONS, app.url("/api/receive-image"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 204, "{origin}");
        assert_eq!(resp.headers()["access-control-allow-origin"], origin);
        assert!(
            resp.headers()["access-control-allow-methods"]
                .to_str()
                .unwrap()
                .contains("POST")
        );
        // An allowed origin may send an API key and an idempotency key.
        let headers = resp.headers()["access-control-allow-headers"]
            .to_str()
            .unwrap();
        assert!(
            headers.contains("authorization") && headers.contains("idempotency-key"),
            "{headers}"
        );
    }
    let resp = app
        .client
        .post(app.url("/api/receive-image"))
        .header("origin", "https://evil.example")
        .json(&json!({"imageData": data_url("image/png", &png(2, 2, 2))}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().get("access-control-allow-origin").is_none());
}
