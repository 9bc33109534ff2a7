//! Crash safety of the real binary: uploads from several clients at once (all three upload routes,
//! anonymous from 127.0.0.1), the server killed with SIGKILL while they are in flight, `imgvault
//! check` run on the file the kill left, then the server restarted on the same file. Every upload
//! that was answered 200 with its id before the kill must be served back byte for byte: after each
//! restart those of the round just killed and a sample of older ones, at the end all of them.
//!
//! `ROUNDS` (default 3) and `ROUND_SECS` (seconds of uploads before each kill, default 2) size the
//! run; `ROUNDS=50` is the long run.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use serde_json::json;

/// The anonymous quota would stop a test that uploads as fast as it can from one address.
const FLAGS: &[&str] = &[
    "--anonymous-images-per-minute",
    "1000000",
    "--anonymous-mb-per-minute",
    "1000000",
];
const UPLOADERS: usize = 6;
/// Uploads of earlier rounds read back after each restart (all are read back at the end).
const SAMPLE_OLDER: usize = 200;

/// An acknowledged upload: the file name the server answered and the bytes sent.
type Acked = (String, Vec<u8>);

fn env_number(name: &str, default: f64) -> f64 {
    std::env::var(name)
        .ok()
        .map(|v| v.trim().parse().unwrap_or_else(|_| panic!("{name}={v:?}")))
        .unwrap_or(default)
}

/// Images of all four formats and a spread of sizes (a few hundred bytes to about 100 KB), each
/// different from every other.
fn image(n: u32) -> (&'static str, Vec<u8>) {
    let side = 8 + (n * 37) % 160;
    match n % 4 {
        0 => ("image/png", png(side, side / 2 + 1, n)),
        1 => ("image/jpeg", jpeg(side * 2, side, n)),
        2 => ("image/gif", gif(side / 2 + 1, side / 3 + 1, n)),
        _ => ("image/webp", webp(side, side / 2 + 1, n)),
    }
}

/// Sends one upload by one of the three routes; `Some(filename)` when it was acknowledged.
/// `None` when the answer was not a 200 with an id or the connection failed (the server was killed).
async fn upload(
    app_base: &str,
    client: &reqwest::Client,
    n: u32,
    bytes: &[u8],
    mime: &str,
) -> Option<String> {
    let request = match n % 3 {
        0 => client
            .post(format!("{app_base}/api/receive-image"))
            .json(&json!({"imageData": data_url(mime, bytes), "category": "char",
                          "pageInfo": {"url": "https://example.com/", "title": format!("page {n}")}})),
        1 => client
            .post(format!("{app_base}/api/upload-clipboard"))
            .json(&json!({"imageData": data_url(mime, bytes)})),
        _ => {
            let part = reqwest::multipart::Part::bytes(bytes.to_vec())
                .file_name(format!("upload-{n}"))
                .mime_str(mime)
                .ok()?;
            let form = reqwest::multipart::Form::new()
                .part("file", part)
                .text("category", "clothes");
            client.post(format!("{app_base}/api/upload-file")).multipart(form)
        }
    };
    let resp = request.send().await.ok()?;
    if resp.status() != 200 {
        return None;
    }
    let body: serde_json::Value = resp.json().await.ok()?;
    if body["success"] != true || !body["imageId"].is_string() {
        return None;
    }
    Some(body["filename"].as_str()?.to_string())
}

/// Every acknowledged upload is served back as it was sent.
async fn assert_all_present(app: &TestApp, acked: &[Acked], round: usize) {
    let client = new_client();
    let admin = app.login(&client, "admin", ADMIN_PASSWORD).await;
    let admin_id = admin["user_id"].as_str().expect("admin user_id");
    for (filename, bytes) in acked {
        let path = format!("/api/user/{admin_id}/images/{filename}");
        let resp = client
            .get(app.url(&path))
            .send()
            .await
            .expect("GET original");
        let status = resp.status().as_u16();
        let got = resp.bytes().await.expect("original bytes");
        assert_eq!(
            status, 200,
            "round {round}: acknowledged {filename} is gone"
        );
        assert!(
            got[..] == bytes[..],
            "round {round}: {filename} came back with other bytes ({} instead of {})",
            got.len(),
            bytes.len()
        );
    }
}

/// `imgvault check` on a data file no server holds: exit 0 and no problems.
fn assert_check_clean(data: &std::path::Path, round: usize) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_imgvault"))
        .arg("check")
        .arg("--data")
        .arg(data)
        .env("RUST_LOG", "imgvault=warn")
        .env_remove("IMGVAULT_DATA")
        .output()
        .expect("run imgvault check");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("no problems found"),
        "round {round}: imgvault check after kill -9: {:?}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_acknowledged_upload_survives_kill_9_under_concurrent_uploads() {
    let rounds = env_number("ROUNDS", 3.0) as usize;
    let round_time = Duration::from_secs_f64(env_number("ROUND_SECS", 2.0));
    let mut dir = tempfile::tempdir().expect("temp dir");
    let mut acked: Vec<Acked> = Vec::new();
    let mut last_round = 0;
    let next = Arc::new(AtomicU32::new(0));
    for round in 0..rounds {
        let app = spawn_app_in(dir, FLAGS).await;
        // The uploads of the last round, and a sample of the older ones (all of them at the end).
        let older = acked.len() - last_round;
        let sample: Vec<Acked> = acked[..older]
            .iter()
            .step_by(older / SAMPLE_OLDER + 1)
            .chain(&acked[older..])
            .cloned()
            .collect();
        assert_all_present(&app, &sample, round).await;

        let this_round = Arc::new(Mutex::new(Vec::<Acked>::new()));
        let killed = Arc::new(AtomicBool::new(false));
        let uploaders: Vec<_> = (0..UPLOADERS)
            .map(|_| {
                let (base, next, this_round, killed) = (
                    app.base.clone(),
                    next.clone(),
                    this_round.clone(),
                    killed.clone(),
                );
                tokio::spawn(async move {
                    let client = new_client();
                    let mut refused_before_kill = 0u32;
                    loop {
                        let n = next.fetch_add(1, Ordering::Relaxed);
                        let (mime, bytes) = image(n);
                        match upload(&base, &client, n, &bytes, mime).await {
                            Some(filename) => this_round.lock().unwrap().push((filename, bytes)),
                            None if killed.load(Ordering::SeqCst) => return refused_before_kill,
                            None => refused_before_kill += 1,
                        }
                    }
                })
            })
            .collect();
        // The load runs for the round's time; the kill lands on whatever is in flight then.
        tokio::time::sleep(round_time).await;
        killed.store(true, Ordering::SeqCst);
        dir = app.kill();
        let mut refused = 0;
        for uploader in uploaders {
            refused += uploader.await.expect("uploader task");
        }
        let new = std::mem::take(&mut *this_round.lock().unwrap());
        // The flag is set before the kill, so every failure seen while it was unset was an answer.
        assert!(
            refused == 0,
            "round {round}: {refused} uploads refused while the server was up"
        );
        assert!(!new.is_empty(), "round {round}: no upload was acknowledged");
        eprintln!(
            "round {round}: {} uploads acknowledged before kill -9 ({} in all)",
            new.len(),
            acked.len() + new.len()
        );
        last_round = new.len();
        acked.extend(new);
        assert_check_clean(&data_path(dir.path()), round);
    }
    let app = spawn_app_in(dir, FLAGS).await;
    assert_all_present(&app, &acked, rounds).await;
    let dir = app.stop();
    assert_check_clean(&data_path(dir.path()), rounds);
}
