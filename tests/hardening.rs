//! Attacks on the account routes, the upload routes and the session cookie, against the real
//! binary: password hashing floods and guessing, cross-site requests, over-long metadata, huge
//! multipart heads, bodies held open, anonymous floods, and what refusal messages reveal.
//!
//! Attack traffic is sized to take seconds; where memory is the point the server's peak RSS
//! (`VmHWM`) is asserted against a bound far below what the unguarded server reached.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{ADMIN_PASSWORD, TestApp, new_client, spawn_app, spawn_app_with, status_and_json};
use serde_json::{Value, json};

fn tiny_png() -> Vec<u8> {
    small_png(2, 2)
}

/// Uploads a tiny PNG as the extension does; the status and answer.
async fn upload_tiny(app: &TestApp, client: &reqwest::Client) -> (u16, Value) {
    app.receive_image(client, "image/png", &tiny_png(), "clothes")
        .await
}

/// A valid PNG of `w`×`h` grey pixels.
fn small_png(w: u32, h: u32) -> Vec<u8> {
    let mut out = Vec::new();
    let img = image::GrayImage::from_pixel(w, h, image::Luma([128]));
    img.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
        .unwrap();
    out
}

async fn login_as(
    app: &TestApp,
    client: &reqwest::Client,
    forwarded_for: Option<&str>,
    username: &str,
    password: &str,
) -> reqwest::Response {
    let mut request = client
        .post(app.url("/api/login"))
        .json(&json!({"username": username, "password": password}));
    if let Some(addr) = forwarded_for {
        request = request.header("x-forwarded-for", addr);
    }
    request.send().await.expect("POST /api/login")
}

/// `/api/status` answers within a few seconds while `attack` runs.
async fn status_answers(app: &TestApp) -> Duration {
    let start = std::time::Instant::now();
    let (status, _) = app.get_json(&new_client(), "/api/status").await;
    assert_eq!(status, 200);
    start.elapsed()
}

#[tokio::test]
async fn a_flood_of_password_checks_is_queued_and_turned_away_not_hashed_at_once() {
    // Behind a trusted proxy every request claims its own address and user name, so neither rate
    // limit applies: only the hash gate stands between 150 logins and 150 × 19 MiB.
    let app = spawn_app_with(&["--trusted-proxy", "127.0.0.1"]).await;
    let client = new_client();
    let logins = (0..150).map(|i| {
        let (app, client) = (&app, &client);
        async move {
            let addr = format!("10.1.{}.{}", i / 250, i % 250 + 1);
            let resp = login_as(app, client, Some(&addr), &format!("user{i}"), "wrong").await;
            let retry_after = resp.headers().get("retry-after").is_some();
            (resp.status().as_u16(), retry_after)
        }
    });
    let (answers, latency) =
        tokio::join!(futures_util::future::join_all(logins), status_answers(&app));
    let busy = answers.iter().filter(|(s, _)| *s == 503).count();
    assert!(
        answers.iter().all(|(s, _)| matches!(s, 401 | 503)),
        "{answers:?}"
    );
    assert!(busy > 0, "some logins must be turned away: {answers:?}");
    assert!(
        answers.iter().filter(|(s, _)| *s == 503).all(|(_, r)| *r),
        "503 carries Retry-After"
    );
    let peak = app.peak_rss_mib();
    assert!(peak < 150, "peak RSS {peak} MiB under a login flood");
    assert!(
        latency < Duration::from_secs(3),
        "/api/status took {latency:?}"
    );
}

#[tokio::test]
async fn password_guessing_is_limited_per_address_without_locking_out_others() {
    let app = spawn_app_with(&["--trusted-proxy", "127.0.0.1"]).await;
    let client = new_client();
    let attacker = Some("203.0.113.7");
    let mut statuses = Vec::new();
    for _ in 0..12 {
        let resp = login_as(&app, &client, attacker, "admin", "guess").await;
        statuses.push((
            resp.status().as_u16(),
            resp.headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_string()),
        ));
    }
    assert!(
        statuses[..10].iter().all(|(s, _)| *s == 401),
        "{statuses:?}"
    );
    let (status, retry) = &statuses[11];
    assert_eq!(*status, 429, "{statuses:?}");
    let secs: u64 = retry.as_deref().expect("Retry-After").parse().unwrap();
    assert!((1..=60).contains(&secs), "Retry-After {secs}");

    // The owner, from their own address, still logs in; so does anyone at another account.
    let resp = login_as(&app, &client, Some("198.51.100.2"), "admin", ADMIN_PASSWORD).await;
    assert_eq!(resp.status(), 200);
    let other = new_client();
    app.register(&other, "carol", "carol-password").await;
    let resp = login_as(
        &app,
        &other,
        Some("198.51.100.3"),
        "carol",
        "carol-password",
    )
    .await;
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn guessing_at_one_name_from_many_addresses_is_limited_alike_for_real_and_unknown_names() {
    let app = spawn_app_with(&["--trusted-proxy", "127.0.0.1"]).await;
    let client = new_client();
    let mut first_429 = Vec::new();
    for name in ["admin", "no-such-user"] {
        let mut at = None;
        for i in 0..25 {
            let addr = format!("192.0.2.{}", i + 1);
            let resp = login_as(&app, &client, Some(&addr), name, "guess").await;
            if resp.status() == 429 {
                at = Some(i);
                let (_, body) = status_and_json(resp).await;
                assert!(body["error"].as_str().unwrap().contains("请求过于频繁"));
                break;
            }
            assert_eq!(resp.status(), 401);
        }
        first_429.push(at.expect("the name's attempts run out"));
    }
    assert_eq!(
        first_429[0], first_429[1],
        "an existing and an unknown name must look the same"
    );
}

#[tokio::test]
async fn forwarded_for_from_an_untrusted_peer_is_ignored() {
    let app = spawn_app().await;
    let client = new_client();
    for i in 0..10 {
        let addr = format!("10.9.9.{}", i + 1);
        let resp = login_as(&app, &client, Some(&addr), "admin", "guess").await;
        assert_eq!(resp.status(), 401);
    }
    let resp = login_as(&app, &client, Some("10.9.9.200"), "admin", "guess").await;
    assert_eq!(resp.status(), 429, "all attempts came from 127.0.0.1");
}

/// A logged-in client (cookie jar) and its session cookie as a header value.
async fn logged_in(app: &TestApp) -> (reqwest::Client, String) {
    let client = reqwest::Client::new();
    let resp = client
        .post(app.url("/api/login"))
        .json(&json!({"username": "admin", "password": ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let cookie = resp
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    (client, cookie)
}

async fn image_count(app: &TestApp, cookie: &str) -> u64 {
    let resp = reqwest::Client::new()
        .get(app.url("/api/user/images"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    let (status, body) = status_and_json(resp).await;
    assert_eq!(status, 200, "{body}");
    body["total"].as_u64().unwrap()
}

#[tokio::test]
async fn cross_site_requests_cannot_act_with_the_users_cookie() {
    let app = spawn_app().await;
    let (client, cookie) = logged_in(&app).await;
    let host = app.base.trim_start_matches("http://").to_string();
    let foreign = "http://127.0.0.1:1"; // Another port of the same host: the same site.
    let upload = json!({"imageData": common::data_url("image/png", &tiny_png())}).to_string();

    // A page's form or no-cors fetch: text/plain (no preflight) from a foreign origin.
    for (content_type, origin) in [
        ("text/plain", Some(foreign)),
        ("application/x-www-form-urlencoded", None),
        ("application/json", Some(foreign)),
        ("application/json", Some("null")),
    ] {
        let mut request = client
            .post(app.url("/api/receive-image"))
            .header("cookie", &cookie)
            .header("content-type", content_type)
            .body(upload.clone());
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        let (status, body) = status_and_json(request.send().await.unwrap()).await;
        assert_eq!(status, 403, "{content_type} from {origin:?}: {body}");
        assert_eq!(body["success"], false);
        assert!(body["error"].as_str().unwrap().contains("跨站请求被拒绝"));
    }
    // A foreign Referer without an Origin, and a DELETE from a foreign origin.
    let resp = client
        .post(app.url("/api/receive-image"))
        .header("cookie", &cookie)
        .header("content-type", "application/json")
        .header("referer", format!("{foreign}/page.html"))
        .body(upload.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert_eq!(image_count(&app, &cookie).await, 0, "nothing was stored");

    // Our own pages, the extension and clients without an Origin keep working.
    for origin in [
        Some(format!("http://{host}")),
        Some("chrome-extension://abcdefghijklmnop".to_string()),
        None,
    ] {
        let mut request = client
            .post(app.url("/api/receive-image"))
            .header("cookie", &cookie)
            .header("content-type", "application/json")
            .body(upload.clone());
        if let Some(origin) = &origin {
            request = request.header("origin", origin);
        }
        let (status, body) = status_and_json(request.send().await.unwrap()).await;
        assert_eq!(status, 200, "from {origin:?}: {body}");
    }
    assert_eq!(image_count(&app, &cookie).await, 3);

    let resp = reqwest::Client::new()
        .get(app.url("/api/user/images"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    let (_, page) = status_and_json(resp).await;
    let id = page["images"][0]["id"].as_str().unwrap().to_string();
    let resp = client
        .delete(app.url(&format!("/api/user/images/{id}")))
        .header("cookie", &cookie)
        .header("origin", foreign)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert_eq!(image_count(&app, &cookie).await, 3);
}

#[tokio::test]
async fn a_cross_site_form_cannot_log_the_browser_into_another_account() {
    let app = spawn_app().await;
    let client = reqwest::Client::new();
    let foreign = "http://attacker.test";
    let login = format!(r#"{{"username":"admin","password":"{ADMIN_PASSWORD}"}}"#);
    let register = r#"{"username":"mallory","email":"m@example.com","password":"mallory-pw"}"#;
    for (path, content_type, body) in [
        (
            "/api/login",
            "application/x-www-form-urlencoded",
            format!("username=admin&password={ADMIN_PASSWORD}"),
        ),
        ("/api/login", "application/json", login),
        ("/api/register", "text/plain", register.to_string()),
    ] {
        let resp = client
            .post(app.url(path))
            .header("origin", foreign)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 403, "{path} as {content_type}");
        assert!(resp.headers().get("set-cookie").is_none());
    }
}

#[tokio::test]
async fn page_metadata_is_capped_so_one_upload_cannot_bloat_the_list() {
    let app = spawn_app().await;
    let huge = "标".repeat(400_000); // 1.2 MB of UTF-8
    let long_url = format!("https://example.com/?q={}", "a".repeat(1_000_000));
    let body = json!({
        "imageData": common::data_url("image/png", &tiny_png()),
        "originalUrl": long_url,
        "pageInfo": {
            "url": long_url,
            "title": huge,
            "imageContext": {"alt": huge, "caption": "a caption", "srcset": long_url},
        },
    });
    let (status, answer) = app
        .post_json(&new_client(), "/api/receive-image", &body)
        .await;
    assert_eq!(status, 200, "{answer}");
    let (_, cookie) = logged_in(&app).await;
    let resp = reqwest::Client::new()
        .get(app.url("/api/user/images"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    let text = resp.text().await.unwrap();
    assert!(
        text.len() < 40 * 1024,
        "list page of one image: {} bytes",
        text.len()
    );
    let page: Value = serde_json::from_str(&text).unwrap();
    let image = &page["images"][0];
    let title = image["page_title"].as_str().unwrap();
    assert!(
        title.len() <= 2048 && title.starts_with("标标"),
        "{}",
        title.len()
    );
    assert!(image["original_url"].as_str().unwrap().len() <= 8192);
    assert!(image["page_url"].as_str().unwrap().len() <= 8192);
    let context = &image["context_info"];
    assert_eq!(context["caption"], "a caption");
    assert_eq!(context["truncated"], true);
    assert!(
        context.to_string().len() <= 8192 + 64,
        "{}",
        context.to_string().len()
    );
}

/// Writes a raw request and returns the status line and body of the answer (what arrived before
/// the server closed, if it did).
fn raw_exchange(addr: &str, head: &str, body_parts: impl Iterator<Item = Vec<u8>>) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream.write_all(head.as_bytes()).unwrap();
    for part in body_parts {
        // The server may answer and close before taking it all; that is the point.
        if stream.write_all(&part).is_err() {
            break;
        }
    }
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn a_huge_multipart_part_head_is_refused_at_a_few_kib() {
    let app = spawn_app().await;
    let addr = app.base.trim_start_matches("http://").to_string();
    let pad = 48 * 1024 * 1024;
    let head_start =
        "--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.png\"\r\nX-Pad: ";
    let tail = "\r\n\r\nPNG\r\n--XyZ--\r\n";
    let length = head_start.len() + pad + tail.len();
    let request = format!(
        "POST /api/upload-file HTTP/1.1\r\nHost: {addr}\r\nContent-Type: multipart/form-data; boundary=XyZ\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n"
    );
    let started = std::time::Instant::now();
    let answer = tokio::task::spawn_blocking({
        let addr = addr.clone();
        move || {
            let parts = std::iter::once(head_start.as_bytes().to_vec())
                .chain(std::iter::repeat_n(vec![b'a'; 1 << 20], pad >> 20))
                .chain(std::iter::once(tail.as_bytes().to_vec()));
            raw_exchange(&addr, &request, parts)
        }
    })
    .await
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer:.300}");
    assert!(answer.contains("分段头"), "{answer:.300}");
    assert!(started.elapsed() < Duration::from_secs(20));
    let peak = app.peak_rss_mib();
    assert!(peak < 80, "peak RSS {peak} MiB for a 48 MiB part head");
    let latency = status_answers(&app).await;
    assert!(
        latency < Duration::from_secs(2),
        "/api/status took {latency:?}"
    );
}

#[tokio::test]
async fn bodies_held_open_cannot_take_more_than_the_body_budget() {
    let app = spawn_app().await;
    let addr = app.base.trim_start_matches("http://").to_string();
    let declared = 13_900_000usize;
    let sent = 8 * 1024 * 1024;
    let mut held = Vec::new();
    for _ in 0..30 {
        let mut stream = TcpStream::connect(&addr).unwrap();
        let head = format!(
            "POST /api/receive-image HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {declared}\r\n\r\n{{\"imageData\":\""
        );
        stream.write_all(head.as_bytes()).unwrap();
        // Eight MiB of a body whose end never comes.
        let chunk = vec![b'A'; 1024 * 1024];
        for _ in 0..sent / chunk.len() {
            stream.write_all(&chunk).unwrap();
        }
        held.push(stream);
    }
    // The first bodies fit in the budget (60 MiB by default); the rest are refused as they come.
    let latency = status_answers(&app).await;
    let peak = app.peak_rss_mib();
    assert!(
        peak < 150,
        "peak RSS {peak} MiB with 30 bodies of 8 MiB held open"
    );
    assert!(
        latency < Duration::from_secs(2),
        "/api/status took {latency:?}"
    );
    // A small upload still fits beside the held bodies.
    let (status, body) = upload_tiny(&app, &new_client()).await;
    assert_eq!(status, 200, "{body}");
    drop(held);
}

#[tokio::test]
async fn anonymous_uploads_have_a_quota_per_address_and_sessions_do_not() {
    let app = spawn_app_with(&["--anonymous-images-per-minute", "5"]).await;
    let anonymous = new_client();
    for _ in 0..5 {
        let (status, body) = upload_tiny(&app, &anonymous).await;
        assert_eq!(status, 200, "{body}");
    }
    let resp = anonymous
        .post(app.url("/api/upload-clipboard"))
        .json(&json!({"imageData": common::data_url("image/png", &tiny_png())}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    let secs: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&secs));
    // A logged-in user from the same address is not counted.
    let (user, _) = app.user_client("dave").await;
    for _ in 0..8 {
        let (status, body) = upload_tiny(&app, &user).await;
        assert_eq!(status, 200, "{body}");
    }
}

#[tokio::test]
async fn anonymous_bytes_are_limited_too() {
    let app = spawn_app_with(&["--anonymous-mb-per-minute", "1"]).await;
    let anonymous = new_client();
    let mut noisy = image::RgbImage::new(400, 400);
    for (i, p) in noisy.pixels_mut().enumerate() {
        let v = (i as u32).wrapping_mul(2_654_435_761);
        *p = image::Rgb([v as u8, (v >> 8) as u8, (v >> 16) as u8]);
    }
    let mut big = Vec::new();
    noisy
        .write_to(&mut std::io::Cursor::new(&mut big), image::ImageFormat::Png)
        .unwrap();
    assert!(big.len() > 400_000, "{}", big.len());
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let (status, _) = app
            .receive_image(&anonymous, "image/png", &big, "clothes")
            .await;
        statuses.push(status);
    }
    assert!(statuses.contains(&200), "{statuses:?}");
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
}

#[tokio::test]
async fn anonymous_uploads_can_be_switched_off() {
    let app = spawn_app_with(&["--anonymous-uploads", "false"]).await;
    let (status, body) = upload_tiny(&app, &new_client()).await;
    assert_eq!(status, 401, "{body}");
    assert!(body["error"].as_str().unwrap().contains("匿名上传已关闭"));
    let (user, _) = app.user_client("erin").await;
    let (status, body) = upload_tiny(&app, &user).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn a_refused_url_never_names_the_address_it_resolved_to() {
    let app = spawn_app().await;
    let (status, body) = app
        .post_json(
            &new_client(),
            "/api/receive-image",
            &json!({"imageData": "http://localhost:9/cat.png"}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let error = body["error"].as_str().unwrap();
    assert!(error.contains("localhost"), "{error}");
    for leaked in ["127.0.0.1", "::1"] {
        assert!(!error.contains(leaked), "{error}");
    }
}

#[tokio::test]
async fn image_urls_that_stall_mid_body_cannot_take_more_than_the_body_budget() {
    // An image server that promises 10 MB, sends 8 MiB and then stalls until the fetch times out.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let mut stopped = stopped.clone();
            tokio::spawn(async move {
                let mut head = [0u8; 4096];
                let _ = socket.read(&mut head).await;
                let reply = "HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: 10000000\r\n\r\n";
                let _ = socket.write_all(reply.as_bytes()).await;
                let _ = socket.write_all(&vec![0u8; 8 * 1024 * 1024]).await;
                let _ = stopped.changed().await;
            });
        }
    });
    let app = spawn_app_with(&["--allow-private-fetch", "--fetch-timeout", "4"]).await;
    let client = new_client();
    let fetches = (0..30).map(|i| {
        let (app, client) = (&app, &client);
        async move {
            let body = json!({"imageData": format!("http://{origin}/img{i}.png")});
            app.post_json(client, "/api/receive-image", &body).await.0
        }
    });
    let (statuses, latency) = tokio::join!(futures_util::future::join_all(fetches), async {
        // Once the first fetches hold their bytes, status must still answer.
        status_answers(&app).await
    });
    let _ = stop.send(true);
    let busy = statuses.iter().filter(|s| **s == 503).count();
    assert!(busy > 0, "{statuses:?}");
    assert!(
        statuses.iter().all(|s| matches!(s, 503 | 504)),
        "{statuses:?}"
    );
    let peak = app.peak_rss_mib();
    assert!(
        peak < 150,
        "peak RSS {peak} MiB with 30 stalled image downloads"
    );
    assert!(
        latency < Duration::from_secs(2),
        "/api/status took {latency:?}"
    );
}

/// Reads one answer off `stream`: its head (lower-cased) and its body, by its Content-Length.
fn read_answer(stream: &mut TcpStream) -> (String, Vec<u8>) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).expect("the answer's head");
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map(|v| v.trim().parse().unwrap())
        .expect("a Content-Length");
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).unwrap();
    (head, body)
}

#[tokio::test]
async fn a_refused_body_leaves_its_connection_usable_or_says_it_is_closing() {
    let mut app = spawn_app().await;
    let addr = app.base.trim_start_matches("http://").to_string();
    tokio::task::spawn_blocking(move || {
        let post = |declared: usize| {
            format!(
                "POST /api/receive-image HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {declared}\r\n\r\n"
            )
        };
        let status = format!("GET /api/status HTTP/1.1\r\nHost: {addr}\r\n\r\n");
        let mut stream = TcpStream::connect(&addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();

        // Over the route's limit but within the drain cap: the body is read and thrown away, so
        // the client that sent it all gets its 413 and can go on using the connection.
        let declared = 20 * 1024 * 1024;
        stream.write_all(post(declared).as_bytes()).unwrap();
        let chunk = vec![b'A'; 1024 * 1024];
        for _ in 0..declared / chunk.len() {
            stream.write_all(&chunk).unwrap();
        }
        let (head, body) = read_answer(&mut stream);
        assert!(head.starts_with("http/1.1 413"), "{head}");
        assert!(!head.contains("connection: close"), "{head}");
        assert!(String::from_utf8_lossy(&body).contains("error"));
        stream.write_all(status.as_bytes()).unwrap();
        let (head, _) = read_answer(&mut stream);
        assert!(head.starts_with("http/1.1 200"), "{head}");

        // Declared far past the drain cap: refused before a byte of the body is read (none is
        // sent: bytes left unread at the close would reset the connection under the answer), and
        // the answer says the connection closes, so a pooling client does not send its next
        // request into it.
        stream.write_all(post(1 << 30).as_bytes()).unwrap();
        let (head, _) = read_answer(&mut stream);
        assert!(head.starts_with("http/1.1 413"), "{head}");
        assert!(head.contains("connection: close"), "{head}");
        let mut rest = Vec::new();
        let closed = stream.read_to_end(&mut rest);
        assert!(
            closed.is_ok() || closed.is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset),
            "the server should close the connection"
        );
    })
    .await
    .unwrap();
    assert!(app.is_alive());
}
