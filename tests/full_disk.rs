//! Full disks: the real binary on a 20 MiB tmpfs. A write that finds no room answers 507 with the
//! usual JSON error; reads, logins and `/api/status` go on meanwhile and status says the server is
//! degraded; once space is freed, uploads are taken again without a restart, and the data file
//! passes `imgvault check`.
//!
//! Mounting a tmpfs needs root (CI runs as root) or a user namespace (`unshare -rm`, into which the
//! test re-runs itself). Where neither works the test fails: a skipped test would hide exactly
//! the machine where no one checked this.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{TestApp, new_client, png, spawn_app_in, upload_form};
use serde_json::{Value, json};

const IN_NAMESPACE: &str = "IMGVAULT_TEST_IN_USER_NAMESPACE";

/// A tmpfs of `size_mb` MiB mounted on a fresh directory, unmounted on drop.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    /// Mounts the tmpfs, or returns `None` when this process may not mount (then the caller
    /// re-runs the test inside a user namespace).
    fn mount(size_mb: u32) -> Option<Self> {
        let dir = std::env::temp_dir().join(format!(
            "imgvault-full-disk-{}-{}",
            std::process::id(),
            rand_suffix()
        ));
        std::fs::create_dir_all(&dir).expect("mount point");
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_mb}m"), "tmpfs"])
            .arg(&dir)
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            Some(Self { dir })
        } else {
            let _ = std::fs::remove_dir(&dir);
            None
        }
    }

    fn path(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        let _ = std::fs::remove_dir(&self.dir);
    }
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// Runs `test` on a fresh 20 MiB tmpfs: directly when this process may mount one, else by
/// re-running this one test inside `unshare -rm`, where it may.
fn on_tmpfs<F, Fut>(name: &str, test: F)
where
    F: FnOnce(Tmpfs) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    if let Some(fs) = Tmpfs::mount(20) {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(test(fs));
        return;
    }
    assert!(
        std::env::var_os(IN_NAMESPACE).is_none(),
        "cannot mount a tmpfs even inside a user namespace: this test needs root or unprivileged \
         user namespaces"
    );
    let exe = std::env::current_exe().expect("test binary");
    let status = Command::new("unshare")
        .args(["-rm", "--"])
        .arg(exe)
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(IN_NAMESPACE, "1")
        .status();
    match status {
        Ok(s) => assert!(s.success(), "{name} failed inside `unshare -rm`: {s}"),
        Err(e) => panic!(
            "cannot mount a tmpfs (not root) and cannot run `unshare -rm` ({e}): this test needs \
             root or unprivileged user namespaces"
        ),
    }
}

/// Writes zeros to `path` until the file system is full; returns the bytes written.
fn fill(path: &Path) -> u64 {
    let mut file = std::fs::File::create(path).expect("filler file");
    let mut written = 0u64;
    for chunk in [1 << 20, 4096] {
        let zeros = vec![0u8; chunk];
        loop {
            match file.write(&zeros) {
                Ok(0) => break,
                Ok(n) => written += n as u64,
                Err(e) if e.kind() == std::io::ErrorKind::StorageFull => break,
                Err(e) => panic!("filling the disk: {e}"),
            }
        }
    }
    let _ = file.sync_all();
    written
}

/// Writes `bytes` of zeros to `path`.
fn write_filler(path: &Path, bytes: usize) {
    std::fs::write(path, vec![0u8; bytes]).expect("filler file");
}

async fn start(fs: &Tmpfs, min_free_mb: u32) -> TestApp {
    let dir = tempfile::tempdir_in(fs.path()).expect("data dir on the tmpfs");
    let min_free = min_free_mb.to_string();
    spawn_app_in(dir, &["--min-free-mb", &min_free, "--media-workers", "1"]).await
}

async fn status(app: &TestApp) -> Value {
    let (code, body) = app.get_json(&app.client, "/api/status").await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["status"], "running", "the seed's field stays: {body}");
    body
}

/// Asserts the 507 answer: the seed's error shape, a Chinese message about space, Retry-After.
async fn upload_expecting_507(app: &TestApp, client: &reqwest::Client, seed: u32) -> Value {
    let resp = client
        .post(app.url("/api/receive-image"))
        .json(&json!({"imageData": common::data_url("image/png", &png(64, 64, seed)), "category": "clothes"}))
        .send()
        .await
        .expect("POST");
    assert_eq!(resp.status().as_u16(), 507);
    assert!(resp.headers().contains_key("retry-after"));
    let (_, body) = common::status_and_json(resp).await;
    assert_eq!(body["success"], false, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("空间不足"),
        "{body}"
    );
    body
}

/// The reads and the login a full disk must leave working; `first` is an image stored earlier.
async fn reads_and_login_work(
    app: &TestApp,
    client: &reqwest::Client,
    user_id: &str,
    first: &str,
    bytes: &[u8],
) {
    let (code, list) = app.get_json(client, "/api/user/images").await;
    assert_eq!(code, 200, "list: {list}");
    assert!(list["total"].as_u64().unwrap() >= 1, "{list}");
    let resp = client
        .get(app.url(&format!("/api/user/{user_id}/images/{first}")))
        .send()
        .await
        .expect("GET image");
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.bytes().await.unwrap().as_ref(), bytes);
    let other = new_client();
    app.login(&other, "filler", "password123").await;
    let (code, list) = app.get_json(&other, "/api/user/images").await;
    assert_eq!(code, 200, "list after a login on a full disk: {list}");
}

/// Uploads until one is accepted, for at most ten seconds (space was just freed).
async fn upload_until_accepted(app: &TestApp, client: &reqwest::Client) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut seed = 10_000;
    loop {
        seed += 1;
        let (code, body) = app
            .receive_image(client, "image/png", &png(64, 64, seed), "clothes")
            .await;
        if code == 200 {
            return body;
        }
        assert_eq!(code, 507, "{body}");
        assert!(
            tokio::time::Instant::now() < deadline,
            "uploads still refused after space was freed: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn check_clean(data: &Path) {
    let out = Command::new(env!("CARGO_BIN_EXE_imgvault"))
        .arg("check")
        .arg("--data")
        .arg(data)
        .output()
        .expect("run imgvault check");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("no problems found"),
        "check: {:?}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_full_disk_answers_507_keeps_reads_and_logins_and_recovers_without_a_restart() {
    on_tmpfs(
        "a_full_disk_answers_507_keeps_reads_and_logins_and_recovers_without_a_restart",
        |fs| async move {
            // No floor: the disk really runs full under the database.
            let app = start(&fs, 0).await;
            let (client, user_id) = app.user_client("filler").await;
            let first_bytes = png(64, 64, 1);
            let (code, first) = app
                .receive_image(&client, "image/png", &first_bytes, "clothes")
                .await;
            assert_eq!(code, 200, "{first}");
            app.wait_task(first["taskId"].as_str().unwrap()).await;
            let first_name = first["filename"].as_str().unwrap().to_string();
            assert_eq!(status(&app).await["degraded"], false);

            let filler = fs.path().join("filler");
            fill(&filler);
            // The file may still hold free pages; larger uploads use them up.
            let mut refused = None;
            for seed in 2..60 {
                let bytes = png(400, 400, seed);
                let (code, body) = app
                    .receive_image(&client, "image/png", &bytes, "clothes")
                    .await;
                if code == 507 {
                    refused = Some(body);
                    break;
                }
                assert_eq!(code, 200, "{body}");
            }
            let refused = refused.expect("an upload onto a full disk was refused");
            assert_eq!(refused["success"], false, "{refused}");
            // Refused early now, without another try at the disk.
            upload_expecting_507(&app, &client, 100).await;

            reads_and_login_work(&app, &client, &user_id, &first_name, &first_bytes).await;
            let during = status(&app).await;
            assert_eq!(during["degraded"], true, "{during}");
            assert!(during["degraded_reason"].is_string(), "{during}");
            assert!(during["total_images"].as_u64().unwrap() >= 1, "{during}");

            std::fs::remove_file(&filler).unwrap();
            let saved = upload_until_accepted(&app, &client).await;
            app.wait_task(saved["taskId"].as_str().unwrap()).await;
            let after = status(&app).await;
            assert_eq!(after["degraded"], false, "{after}");
            reads_and_login_work(&app, &client, &user_id, &first_name, &first_bytes).await;

            let data = app.data_file();
            let dir = app.stop();
            check_clean(&data);
            drop(dir);
        },
    );
}

#[test]
fn uploads_are_refused_below_the_free_space_floor_and_taken_again_above_it() {
    on_tmpfs(
        "uploads_are_refused_below_the_free_space_floor_and_taken_again_above_it",
        |fs| async move {
            let app = start(&fs, 8).await;
            let (client, user_id) = app.user_client("filler").await;
            let first_bytes = png(64, 64, 1);
            let (code, first) = app
                .receive_image(&client, "image/png", &first_bytes, "clothes")
                .await;
            assert_eq!(code, 200, "{first}");
            let first_name = first["filename"].as_str().unwrap().to_string();

            // Leaves well under 8 MiB free but room for the database to write.
            let filler = fs.path().join("filler");
            let free = fs2_free(fs.path());
            write_filler(&filler, (free - 4 * 1024 * 1024) as usize);
            upload_expecting_507(&app, &client, 2).await;
            // The anonymous route and the file route are held back the same way.
            let anonymous = new_client();
            upload_expecting_507(&app, &anonymous, 3).await;
            let form = reqwest::multipart::Form::new().part(
                "file",
                reqwest::multipart::Part::bytes(png(64, 64, 4)).file_name("a.png"),
            );
            let (code, body) = upload_form(&app, &client, form).await;
            assert_eq!(code, 507, "{body}");

            reads_and_login_work(&app, &client, &user_id, &first_name, &first_bytes).await;
            let during = status(&app).await;
            assert_eq!(during["degraded"], true, "{during}");
            assert!(
                during["degraded_reason"]
                    .as_str()
                    .unwrap()
                    .contains("--min-free-mb"),
                "{during}"
            );

            std::fs::remove_file(&filler).unwrap();
            upload_until_accepted(&app, &client).await;
            assert_eq!(status(&app).await["degraded"], false);
            let data = app.data_file();
            let dir = app.stop();
            check_clean(&data);
            drop(dir);
        },
    );
}

/// Free bytes on the file system holding `dir`, as `df` counts them.
fn fs2_free(dir: &Path) -> u64 {
    let out = Command::new("df")
        .args(["-B1", "--output=avail"])
        .arg(dir)
        .output()
        .expect("df");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(1)
        .and_then(|l| l.trim().parse().ok())
        .expect("df output")
}
