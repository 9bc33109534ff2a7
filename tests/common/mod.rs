//! Shared harness for the integration tests: every test starts the real `imgvault` binary on
//! `127.0.0.1:0` with its own temporary data file and talks to it over real HTTP.
//!
//! Nothing here sleeps to wait for the server: `spawn_app` blocks on the `listening on` line the
//! binary prints once its socket accepts connections.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

pub mod original_cloud;
pub mod server;

use server::{Echo, Launch, Spawned};

pub const ADMIN_PASSWORD: &str = "admin-test-pw";

/// A running imgvault process with its own data directory.
pub struct TestApp {
    /// `http://127.0.0.1:PORT`, no trailing slash.
    pub base: String,
    /// A client with its own cookie jar.
    pub client: reqwest::Client,
    // Declared before `dir`, so a dropped app is killed before its data directory is removed.
    server: Spawned,
    dir: tempfile::TempDir,
}

/// Starts the binary on a fresh temporary data file.
pub async fn spawn_app() -> TestApp {
    spawn_app_in(tempfile::tempdir().expect("temp dir"), &[]).await
}

/// Starts the binary with extra command-line arguments after `serve`.
pub async fn spawn_app_with(args: &[&str]) -> TestApp {
    spawn_app_in(tempfile::tempdir().expect("temp dir"), args).await
}

/// Starts the binary on the data file inside `dir` (created if it does not exist yet).
pub async fn spawn_app_in(dir: tempfile::TempDir, args: &[&str]) -> TestApp {
    // Built before the child exists, so a failure here cannot leave a server running.
    let client = new_client();
    let server = spawn_server(&data_path(dir.path()), args).await;
    TestApp {
        base: server.base.clone(),
        client,
        server,
        dir,
    }
}

/// Starts the binary on `data` as `spawn_app` does, for a test that keeps the file itself.
pub async fn spawn_server(data: &Path, args: &[&str]) -> Spawned {
    let launch = Launch {
        label: "imgvault".to_string(),
        binary: env!("CARGO_BIN_EXE_imgvault").into(),
        data: data.to_path_buf(),
        args: args.iter().map(|a| a.to_string()).collect(),
        admin_password: ADMIN_PASSWORD.to_string(),
        // The free-space floor (256 MiB by default) would refuse uploads on a nearly full test
        // machine; tests that are about it pass `--min-free-mb`, which wins over this.
        env: vec![("IMGVAULT_MIN_FREE_MB".to_string(), "0".to_string())],
        log_filter: "imgvault=warn".to_string(),
        echo: Echo::Inherit,
    };
    // Off the runtime: a test's own servers (a fake hub, an image origin) keep serving meanwhile.
    tokio::task::spawn_blocking(move || Spawned::launch(launch))
        .await
        .expect("start-up thread")
        .unwrap_or_else(|e| panic!("{e}"))
}

pub fn data_path(dir: &Path) -> PathBuf {
    dir.join("imgvault.redb")
}

/// A client with an empty cookie jar of its own.
pub fn new_client() -> reqwest::Client {
    // reqwest is built without a default TLS provider (the server picks ring); tests need one too.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .cookie_store(true)
        .timeout(Duration::from_secs(60))
        .build()
        .expect("http client")
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn data_file(&self) -> PathBuf {
        data_path(self.dir.path())
    }

    /// Sends SIGTERM, waits for a clean exit and hands back the data directory so the caller can
    /// start the server again on the same file.
    pub fn stop(self) -> tempfile::TempDir {
        let TestApp {
            mut server, dir, ..
        } = self;
        let exit = server.stop().unwrap_or_else(|e| panic!("{e}"));
        assert!(exit.success(), "imgvault did not exit cleanly: {exit:?}");
        dir
    }

    /// Kills the process outright (SIGKILL, as a power cut would) and hands back its data directory.
    pub fn kill(self) -> tempfile::TempDir {
        let TestApp {
            mut server, dir, ..
        } = self;
        server.kill();
        dir
    }

    /// The server's process id (for reading its /proc/PID/status).
    pub fn pid(&self) -> u32 {
        self.server.pid()
    }

    /// The server's peak resident memory so far (`VmHWM`), in MiB.
    pub fn peak_rss_mib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("read /proc/PID/status");
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM in /proc/PID/status");
        kib / 1024
    }

    /// Sends SIGTERM and returns at once; `wait_exit` then waits for the process to end.
    pub fn terminate(&self) {
        self.server.terminate().unwrap_or_else(|e| panic!("{e}"));
    }

    /// Waits at most `limit` for the process to exit; `None` if it is still running then.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        self.server
            .wait_exit(limit)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Whether the process is still running (it must survive every bad request).
    pub fn is_alive(&mut self) -> bool {
        self.server.exited().is_none()
    }

    pub async fn get_json(&self, client: &reqwest::Client, path: &str) -> (u16, Value) {
        let resp = client.get(self.url(path)).send().await.expect("GET");
        status_and_json(resp).await
    }

    pub async fn post_json(
        &self,
        client: &reqwest::Client,
        path: &str,
        body: &Value,
    ) -> (u16, Value) {
        let resp = client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("POST");
        status_and_json(resp).await
    }

    /// Registers a user and returns its `user_id`.
    pub async fn register(
        &self,
        client: &reqwest::Client,
        username: &str,
        password: &str,
    ) -> String {
        let (status, body) = self
            .post_json(
                client,
                "/api/register",
                &json!({"username": username, "email": format!("{username}@example.com"), "password": password}),
            )
            .await;
        assert_eq!(status, 200, "register {username}: {body}");
        body["user_id"].as_str().expect("user_id").to_string()
    }

    /// Logs `client` in and returns the `user` object of the answer.
    pub async fn login(&self, client: &reqwest::Client, username: &str, password: &str) -> Value {
        let (status, body) = self
            .post_json(
                client,
                "/api/login",
                &json!({"username": username, "password": password}),
            )
            .await;
        assert_eq!(status, 200, "login {username}: {body}");
        body["user"].clone()
    }

    /// A fresh client, registered and logged in as `username` (password `password123`).
    pub async fn user_client(&self, username: &str) -> (reqwest::Client, String) {
        let client = new_client();
        let user_id = self.register(&client, username, "password123").await;
        self.login(&client, username, "password123").await;
        (client, user_id)
    }

    /// Posts `bytes` as a data URL to `/api/receive-image` and returns the answer.
    pub async fn receive_image(
        &self,
        client: &reqwest::Client,
        mime: &str,
        bytes: &[u8],
        category: &str,
    ) -> (u16, Value) {
        self.post_json(
            client,
            "/api/receive-image",
            &json!({"imageData": data_url(mime, bytes), "category": category}),
        )
        .await
    }

    /// Polls `/api/task/{id}` until it leaves `processing`, for at most ten seconds.
    /// The body of a `GET` that must succeed at the transport level (an image file, say).
    /// Saves an 8×8 PNG (made from `seed`) in `category` and returns its image id.
    pub async fn upload_png(&self, client: &reqwest::Client, seed: u32, category: &str) -> String {
        let (status, body) = self
            .receive_image(client, "image/png", &png(8, 8, seed), category)
            .await;
        assert_eq!(status, 200, "{body}");
        body["imageId"].as_str().unwrap().to_string()
    }

    /// The ids on one page of `GET /api/user/images?{query}`, and its total.
    pub async fn list_ids(&self, client: &reqwest::Client, query: &str) -> (Vec<String>, u64) {
        let (status, body) = self
            .get_json(client, &format!("/api/user/images?{query}"))
            .await;
        assert_eq!(status, 200, "{query}: {body}");
        let ids = body["images"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].as_str().unwrap().to_string())
            .collect();
        (ids, body["total"].as_u64().unwrap())
    }

    pub async fn get_bytes(&self, client: &reqwest::Client, path: &str) -> bytes::Bytes {
        client
            .get(self.url(path))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
    }

    pub async fn wait_task(&self, task_id: &str) -> Value {
        // Generous: a 64-megapixel PNG is thumbnailed by this crate's own (unoptimised, in a test
        // build) row filter, which takes seconds on a loaded 2-core machine.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let (status, body) = self
                .get_json(&self.client, &format!("/api/task/{task_id}"))
                .await;
            assert_eq!(status, 200, "task {task_id}: {body}");
            if body["status"]["status"] != "processing" {
                return body;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "task {task_id} still processing"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// `text` percent-encoded, every byte, for a query string.
pub fn urlencode(text: &str) -> String {
    text.bytes().map(|b| format!("%{b:02X}")).collect()
}

/// The answer's `Set-Cookie` header.
pub fn set_cookie(resp: &reqwest::Response) -> String {
    resp.headers()
        .get("set-cookie")
        .expect("set-cookie header")
        .to_str()
        .unwrap()
        .to_string()
}

pub async fn status_and_json(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("response body");
    let body = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("status {status}: body is not JSON ({e}): {text:?}"));
    (status, body)
}

pub fn data_url(mime: &str, bytes: &[u8]) -> String {
    format!("data:{mime};base64,{}", b64(bytes))
}

pub fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A `w`×`h` RGB image whose pixels depend on `seed`, so different seeds give different bytes.
fn pattern(w: u32, h: u32, seed: u32) -> image::RgbImage {
    image::RgbImage::from_fn(w, h, |x, y| {
        let v = x.wrapping_mul(31) ^ y.wrapping_mul(17) ^ seed.wrapping_mul(2_654_435_761);
        image::Rgb([v as u8, (v >> 8) as u8, (v >> 16) as u8])
    })
}

fn encode(img: image::DynamicImage, format: image::ImageFormat) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, format).expect("encode test image");
    out.into_inner()
}

pub fn png(w: u32, h: u32, seed: u32) -> Vec<u8> {
    encode(pattern(w, h, seed).into(), image::ImageFormat::Png)
}

pub fn jpeg(w: u32, h: u32, seed: u32) -> Vec<u8> {
    encode(pattern(w, h, seed).into(), image::ImageFormat::Jpeg)
}

pub fn gif(w: u32, h: u32, seed: u32) -> Vec<u8> {
    encode(
        image::DynamicImage::ImageRgba8(image::DynamicImage::from(pattern(w, h, seed)).to_rgba8()),
        image::ImageFormat::Gif,
    )
}

pub fn webp(w: u32, h: u32, seed: u32) -> Vec<u8> {
    encode(
        image::DynamicImage::ImageRgba8(image::DynamicImage::from(pattern(w, h, seed)).to_rgba8()),
        image::ImageFormat::WebP,
    )
}

// ---------------------------------------------------------------------------------------------
// Refusals: a bad request must get the seed's JSON error, store nothing and leave the server
// serving. Refusal tests end with `assert_unharmed`: the process still runs, `/api/status`
// answers 200 and the image total is what it was before the bad request.
// ---------------------------------------------------------------------------------------------

pub const UNSUPPORTED: &str = "不支持的文件格式";
/// The start of every refusal of a file in an accepted format that is cut short or broken.
pub const DAMAGED: &str = "图片文件已损坏或不完整";
pub const TOO_LARGE: &str = "文件大小不能超过10MB";
pub const MB: usize = 1024 * 1024;

/// The seed's error body for everything but file and task lookups.
pub fn failure(error: &str) -> Value {
    json!({"success": false, "error": error})
}

/// `/api/status`'s `total_images`, asserting the server answers it.
pub async fn total_images(app: &TestApp) -> u64 {
    let (status, body) = app.get_json(&new_client(), "/api/status").await;
    assert_eq!(status, 200, "/api/status: {body}");
    body["total_images"].as_u64().expect("total_images")
}

/// The number of images `client`'s user owns, from `/api/user/images`.
pub async fn user_total(app: &TestApp, client: &reqwest::Client) -> u64 {
    let (status, body) = app.get_json(client, "/api/user/images").await;
    assert_eq!(status, 200, "/api/user/images: {body}");
    body["total"].as_u64().expect("total")
}

/// The server survived the bad requests: its process runs, it serves `/api/status`, and its image
/// total is still `expected` (a refused request stores nothing).
pub async fn assert_unharmed(app: &mut TestApp, expected: u64) {
    assert!(app.is_alive(), "the server process died");
    assert_eq!(total_images(app).await, expected, "the image total changed");
}

/// Status 400 with `{"success": false, "error": "不支持的文件格式…"}`.
#[track_caller]
pub fn assert_unsupported((status, body): &(u16, Value), what: &str) {
    assert_eq!(*status, 400, "{what}: {body}");
    assert_eq!(body["success"], false, "{what}: {body}");
    let error = body["error"].as_str().unwrap_or_default();
    assert!(error.starts_with(UNSUPPORTED), "{what}: {body}");
}

/// Status 400 with `{"success": false, "error": "图片文件已损坏或不完整…"}`.
#[track_caller]
pub fn assert_damaged((status, body): &(u16, Value), what: &str) {
    assert_eq!(*status, 400, "{what}: {body}");
    assert_eq!(body["success"], false, "{what}: {body}");
    let error = body["error"].as_str().unwrap_or_default();
    assert!(error.starts_with(DAMAGED), "{what}: {body}");
}

/// `status`, and a JSON body whose `error` is a non-empty string.
#[track_caller]
pub fn assert_error_status((status, body): &(u16, Value), expected: u16, what: &str) {
    assert_eq!(*status, expected, "{what}: {body}");
    assert_has_error(body, what);
}

#[track_caller]
pub fn assert_has_error(body: &Value, what: &str) {
    let error = body["error"].as_str().unwrap_or_default();
    assert!(!error.is_empty(), "{what}: no error message in {body}");
}

/// Posts `body` verbatim as `application/json` (for bodies `post_json` cannot produce).
pub async fn post_raw_json(
    app: &TestApp,
    path: &str,
    body: impl Into<reqwest::Body>,
) -> (u16, Value) {
    let resp = new_client()
        .post(app.url(path))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("POST");
    status_and_json(resp).await
}

/// Posts a multipart form to `/api/upload-file`.
pub async fn upload_form(app: &TestApp, client: &reqwest::Client, form: Form) -> (u16, Value) {
    let resp = client
        .post(app.url("/api/upload-file"))
        .multipart(form)
        .send()
        .await
        .expect("POST /api/upload-file");
    status_and_json(resp).await
}

/// A `file` part named `filename` declaring `mime`.
pub fn file_part(bytes: Vec<u8>, filename: &str, mime: &str) -> Part {
    Part::bytes(bytes)
        .file_name(filename.to_string())
        .mime_str(mime)
        .expect("mime type")
}

/// The three upload routes, by the last segment of their path.
pub const UPLOAD_ROUTES: [&str; 3] = ["receive-image", "upload-clipboard", "upload-file"];

/// An anonymous request sending `bytes` to `/api/{route}`: a data URL, bare base64, or a
/// multipart file.
pub fn upload_request(app: &TestApp, route: &str, bytes: &[u8]) -> reqwest::RequestBuilder {
    let request = new_client().post(app.url(&format!("/api/{route}")));
    match route {
        "receive-image" => request.json(&json!({"imageData": data_url("image/png", bytes)})),
        "upload-clipboard" => request.json(&json!({"imageData": b64(bytes), "category": "char"})),
        "upload-file" => {
            let part = file_part(bytes.to_vec(), "picture.png", "image/png");
            request.multipart(Form::new().part("file", part))
        }
        other => panic!("no upload route {other}"),
    }
}

pub async fn upload_via(app: &TestApp, route: &str, bytes: &[u8]) -> (u16, Value) {
    let resp = upload_request(app, route, bytes)
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST /api/{route}: {e}"));
    status_and_json(resp).await
}

/// Sends `bytes` to each of the three upload routes and returns the answers.
pub async fn upload_everywhere(app: &TestApp, bytes: &[u8]) -> Vec<(&'static str, (u16, Value))> {
    let mut answers = Vec::new();
    for route in UPLOAD_ROUTES {
        answers.push((route, upload_via(app, route, bytes).await));
    }
    answers
}

/// Registers `username` and returns its user id and the `name=value` session cookie of a fresh login,
/// captured from `Set-Cookie` so it can be replayed by hand.
pub async fn login_cookie(app: &TestApp, username: &str) -> (String, String) {
    let client = new_client();
    let user_id = app.register(&client, username, "password123").await;
    let resp = client
        .post(app.url("/api/login"))
        .json(&json!({"username": username, "password": "password123"}))
        .send()
        .await
        .expect("POST /api/login");
    assert_eq!(resp.status(), 200);
    let cookie = server::session_cookie(resp.headers()).expect("a session cookie");
    (user_id, cookie)
}

/// `GET path` from a client without a cookie jar, sending `cookie` as the whole `Cookie` header.
pub async fn get_with_cookie(app: &TestApp, path: &str, cookie: &str) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .get(app.url(path))
        .header("cookie", cookie)
        .send()
        .await
        .expect("GET");
    status_and_json(resp).await
}

/// Sends `GET target` byte for byte over a plain socket. An HTTP client would resolve `../` and
/// `%2e%2e` segments before they left the machine; an attacker's client does not.
pub async fn raw_get(app: &TestApp, target: &str, cookie: &str) -> (u16, Vec<u8>) {
    let addr = app.base.trim_start_matches("http://").to_string();
    let request = format!(
        "GET {target} HTTP/1.1\r\nHost: {addr}\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n"
    );
    let answer = tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(&addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("read timeout");
        stream.write_all(request.as_bytes()).expect("send request");
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).expect("read answer");
        answer
    })
    .await
    .expect("socket thread");
    parse_response(&answer)
}

/// Status and body of a raw HTTP/1.1 answer (`Content-Length` or chunked).
pub fn parse_response(answer: &[u8]) -> (u16, Vec<u8>) {
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("end of headers");
    let head = String::from_utf8_lossy(&answer[..split]).to_ascii_lowercase();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status code");
    let body = &answer[split + 4..];
    if head.contains("transfer-encoding: chunked") {
        (status, dechunk(body))
    } else {
        (status, body.to_vec())
    }
}

pub fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = body.windows(2).position(|w| w == b"\r\n") {
        let size_field = String::from_utf8_lossy(&body[..eol]);
        let size_hex = size_field.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_hex, 16).expect("chunk size");
        if size == 0 {
            break;
        }
        let start = eol + 2;
        out.extend_from_slice(&body[start..start + size]);
        body = &body[start + size + 2..];
    }
    out
}

/// The three file routes for `filename` under `user_id`.
pub fn file_routes(user_id: &str, filename: &str) -> [String; 3] {
    [
        format!("/api/user/{user_id}/images/{filename}"),
        format!("/api/user/{user_id}/images/clothes/{filename}"),
        format!("/api/user/{user_id}/thumbnails/{filename}"),
    ]
}

/// A PNG of random pixels: it does not compress, so its size is predictable.
pub fn noisy_png(w: u32, h: u32, seed: u32) -> Vec<u8> {
    let mut state = 0x9e37_79b9u32.wrapping_mul(seed + 1);
    let img = image::RgbImage::from_fn(w, h, |_, _| {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        image::Rgb([state as u8, (state >> 8) as u8, (state >> 16) as u8])
    });
    encode(img.into(), image::ImageFormat::Png)
}
