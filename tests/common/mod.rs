//! Shared harness for the integration tests: every test starts the real `imgvault` binary on
//! `127.0.0.1:0` with its own temporary data file and talks to it over real HTTP.
//!
//! Nothing here sleeps to wait for the server: `spawn_app` blocks on the `listening on` line the
//! binary prints once its socket accepts connections.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};

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
    pub async fn wait_task(&self, task_id: &str) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
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
