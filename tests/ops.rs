//! The commands beside `serve` (`src/ops/`) and the admin backup route (`src/api/admin.rs`): backups under load and from a stopped file, restoring by
//! starting a server on a backup, the admin-only backup route, scheduled backups and their
//! rotation, `check` and `--repair` on a damaged file, `compact`, export and import, user administration,
//! and the upgrade of a schema-1 data file.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use imgvault::domain::{BlobHash, Category};
use imgvault::media::ImageKind;
use imgvault::store::{DEFAULT_CACHE_BYTES, SCHEMA_VERSION, Store};

/// What one run of the `imgvault` command printed.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// Runs `imgvault ARGS` to the end with `env` set and `stdin` as its input. Blocking.
fn imgvault(args: &[&str], env: &[(&str, &str)], stdin: &str) -> Run {
    use std::io::Write;
    let mut command = Command::new(env!("CARGO_BIN_EXE_imgvault"));
    command.args(args).env("RUST_LOG", "imgvault=warn");
    for var in [
        "IMGVAULT_DATA",
        "IMGVAULT_USER",
        "IMGVAULT_PASSWORD",
        "IMGVAULT_ADMIN_PASSWORD",
    ] {
        command.env_remove(var);
    }
    command.envs(env.iter().copied());
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start imgvault");
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    let out = child.wait_with_output().expect("wait for imgvault");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn s(path: &Path) -> &str {
    path.to_str().expect("UTF-8 temp path")
}

fn read_blob(store: &Store, hash: &BlobHash) -> Vec<u8> {
    store
        .blob(hash)
        .unwrap()
        .expect("blob present")
        .read_all()
        .unwrap()
        .to_vec()
}

async fn get_bytes(app: &TestApp, client: &reqwest::Client, path: &str) -> (u16, Vec<u8>) {
    let resp = client.get(app.url(path)).send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.bytes().await.unwrap().to_vec())
}

/// A command refused because a server holds the data file.
fn assert_refused_while_served(run: &Run) {
    assert_eq!(run.code, 1, "{run}");
    assert!(
        run.stderr
            .contains("is in use by a running imgvault server; stop it first"),
        "{run}"
    );
}

/// Every `(filename, bytes)` of `user_id` is served back byte for byte.
async fn assert_originals(
    app: &TestApp,
    client: &reqwest::Client,
    user_id: &str,
    images: &[(String, Vec<u8>)],
) {
    for (filename, bytes) in images {
        let path = format!("/api/user/{user_id}/images/{filename}");
        let (status, got) = get_bytes(app, client, &path).await;
        assert_eq!(status, 200, "{path}");
        assert_eq!(&got, bytes, "{filename}");
    }
}

async fn admin_client(app: &TestApp) -> (reqwest::Client, String) {
    let client = new_client();
    let user = app.login(&client, "admin", ADMIN_PASSWORD).await;
    (client, user["user_id"].as_str().unwrap().to_string())
}

/// An acknowledged upload: owner, file name and the bytes sent.
type Acked = (String, String, Vec<u8>);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_under_load_passes_check_and_holds_every_acknowledged_image() {
    let app = Arc::new(spawn_app().await);
    let mut clients = vec![admin_client(&app).await];
    clients.push(app.user_client("alice").await);
    clients.push(app.user_client("bob").await);
    let acked: Arc<Mutex<Vec<Acked>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut uploaders = Vec::new();
    for (n, (client, user_id)) in clients.into_iter().enumerate() {
        let (app, acked, stop) = (app.clone(), acked.clone(), stop.clone());
        uploaders.push(tokio::spawn(async move {
            let mut seed = n as u32 * 1_000_000;
            while !stop.load(Ordering::SeqCst) {
                seed += 1;
                let bytes = png(96, 64, seed);
                let (status, body) = app
                    .receive_image(&client, "image/png", &bytes, "clothes")
                    .await;
                assert_eq!(status, 200, "{body}");
                let filename = body["filename"].as_str().unwrap().to_string();
                acked
                    .lock()
                    .unwrap()
                    .push((user_id.clone(), filename, bytes));
            }
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked.lock().unwrap().len() < 20 {
        assert!(Instant::now() < deadline, "uploads too slow");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let before: Vec<Acked> = acked.lock().unwrap().clone();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("backup.redb");
    let (base, out_arg) = (app.base.clone(), out.clone());
    let run = tokio::task::spawn_blocking(move || {
        imgvault(
            &["backup", s(&out_arg), "--server", &base],
            &[("IMGVAULT_PASSWORD", ADMIN_PASSWORD)],
            "",
        )
    })
    .await
    .unwrap();
    let during = acked.lock().unwrap().len() - before.len();
    stop.store(true, Ordering::SeqCst);
    for uploader in uploaders {
        uploader.await.unwrap();
    }
    assert_eq!(run.code, 0, "{run}");
    assert!(run.stdout.contains("backup written to"), "{run}");
    assert!(during > 0, "uploads went on while the backup was taken");
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["backup.redb"], "no temporary file is left");

    let check = imgvault(&["check", "--data", s(&out)], &[], "");
    assert_eq!(check.code, 0, "{check}");
    assert!(check.stdout.contains("no problems found"), "{check}");

    let store = Store::open(&out, DEFAULT_CACHE_BYTES).unwrap();
    for (user_id, filename, bytes) in &before {
        let image = store
            .image_by_name(&user_id.as_str().into(), filename)
            .unwrap()
            .unwrap_or_else(|| panic!("{user_id}/{filename} acknowledged but not in the backup"));
        assert_eq!(&read_blob(&store, &image.blob), bytes, "{filename}");
    }
    let held = store.total_images().unwrap() as usize;
    assert!(held >= before.len(), "{held} < {}", before.len());
    assert!(held <= before.len() + during + 3);
}

#[tokio::test]
async fn a_server_started_on_a_backup_has_the_same_logins_and_bytes() {
    let app = spawn_app().await;
    let (alice, alice_id) = app.user_client("alice").await;
    let mut sent = Vec::new();
    for (mime, bytes, category) in [
        ("image/png", png(300, 200, 1), "clothes"),
        ("image/jpeg", jpeg(640, 480, 2), "char"),
        ("image/gif", gif(50, 50, 3), "clothes"),
    ] {
        let (status, up) = app.receive_image(&alice, mime, &bytes, category).await;
        assert_eq!(status, 200, "{up}");
        app.wait_task(up["taskId"].as_str().unwrap()).await;
        sent.push((up["filename"].as_str().unwrap().to_string(), bytes));
    }
    let data = app.data_file();
    let restored_dir = tempfile::tempdir().unwrap();
    let restored = data_path(restored_dir.path());

    let refused = imgvault(&["backup", s(&restored), "--data", s(&data)], &[], "");
    assert_eq!(refused.code, 1, "{refused}");
    assert!(
        refused
            .stderr
            .contains("in use by a running imgvault server")
            && refused.stderr.contains("--server"),
        "{refused}"
    );
    assert!(!restored.exists());

    let dir = app.stop();
    let data = data_path(dir.path());
    let run = imgvault(&["backup", s(&restored), "--data", s(&data)], &[], "");
    assert_eq!(run.code, 0, "{run}");
    assert!(run.stdout.contains("2 users, 3 images"), "{run}");
    assert!(
        !run.stderr.contains("not closed cleanly"),
        "a stopped server closes its file: {run}"
    );

    let app = spawn_app_in(restored_dir, &[]).await;
    let client = new_client();
    let user = app.login(&client, "alice", "password123").await;
    assert_eq!(user["user_id"], alice_id.as_str());
    let (status, list) = app.get_json(&client, "/api/user/images").await;
    assert_eq!(status, 200);
    assert_eq!(list["total"], 3);
    assert_originals(&app, &client, &alice_id, &sent).await;
    for (filename, _) in &sent {
        let (status, _) = get_bytes(
            &app,
            &client,
            &format!("/api/user/{alice_id}/thumbnails/{filename}"),
        )
        .await;
        assert_eq!(status, 200);
    }
    admin_client(&app).await;
}

/// Starts the server on `data`, stores one image, and kills it (SIGKILL) so the file is left as a
/// power cut would leave it.
async fn crash_with_one_image(data: &Path) -> Vec<u8> {
    let mut server = spawn_server(data, &[]).await;
    let base = server.base.clone();
    let bytes = png(40, 30, 77);
    let client = new_client();
    let resp = client
        .post(format!("{base}/api/receive-image"))
        .json(&serde_json::json!({"imageData": data_url("image/png", &bytes)}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    server.kill();
    bytes
}

#[tokio::test]
async fn a_file_left_by_a_killed_server_is_repaired_and_backed_up() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("crashed.redb");
    let bytes = crash_with_one_image(&data).await;
    let out = dir.path().join("backup.redb");
    let run = imgvault(&["backup", s(&out), "--data", s(&data)], &[], "");
    assert_eq!(run.code, 0, "{run}");
    assert!(run.stderr.contains("was not closed cleanly"), "{run}");
    assert!(run.stdout.contains("1 users, 1 images"), "{run}");
    let check = imgvault(&["check", "--data", s(&out)], &[], "");
    assert_eq!(check.code, 0, "{check}");
    let store = Store::open(&out, DEFAULT_CACHE_BYTES).unwrap();
    let admin = store.user_by_username("admin").unwrap().unwrap();
    let image = &store.user_images(&admin.user_id).unwrap()[0];
    assert_eq!(read_blob(&store, &image.blob), bytes);
}

#[tokio::test]
async fn only_admin_may_download_a_backup() {
    let app = spawn_app().await;
    let (status, body) = app.get_json(&new_client(), "/api/admin/backup").await;
    assert_eq!(status, 401);
    assert_eq!(
        body,
        serde_json::json!({"success": false, "error": "需要登录"})
    );
    let (alice, _) = app.user_client("alice").await;
    let (status, body) = app.get_json(&alice, "/api/admin/backup").await;
    assert_eq!(status, 403);
    assert_eq!(body, serde_json::json!({"error": "权限不足"}));

    let (admin, _) = admin_client(&app).await;
    let resp = admin
        .get(app.url("/api/admin/backup"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/octet-stream");
    let disposition = resp.headers()["content-disposition"].to_str().unwrap();
    assert!(
        disposition.starts_with("attachment; filename=\"imgvault-"),
        "{disposition}"
    );
    let length: usize = resp.headers()["content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let body = resp.bytes().await.unwrap();
    assert_eq!(body.len(), length);
    assert!(body.starts_with(b"redb"), "a redb file");
    let leftovers: Vec<_> = std::fs::read_dir(app.data_file().parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "imgvault.redb")
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

fn backups_in(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

#[tokio::test]
async fn scheduled_backups_rotate_keeping_the_newest_complete_files() {
    let backups = tempfile::tempdir().unwrap();
    let app = spawn_app_with(&[
        "--backup-dir",
        s(backups.path()),
        "--backup-every",
        "1s",
        "--backup-keep",
        "2",
    ])
    .await;
    let (status, _) = app
        .receive_image(&app.client, "image/png", &png(20, 20, 9), "char")
        .await;
    assert_eq!(status, 200);

    let mut seen = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.len() < 4 {
        assert!(Instant::now() < deadline, "only {seen:?} after a minute");
        seen.extend(
            backups_in(backups.path())
                .into_iter()
                .filter(|n| n.ends_with(".redb") && n.starts_with("imgvault-")),
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    app.stop();
    let left = backups_in(backups.path());
    let newest: BTreeSet<String> = seen.iter().rev().take(2).cloned().collect();
    assert!(
        left.len() == 2 && left.iter().all(|n| n.starts_with("imgvault-")),
        "{left:?}"
    );
    assert!(left.iter().next_back() >= newest.iter().next_back());
    for name in &left {
        let run = imgvault(&["check", "--data", s(&backups.path().join(name))], &[], "");
        assert_eq!(run.code, 0, "{name}: {run}");
        assert!(run.stdout.contains("1 images"), "{run}");
    }
}

/// Opens `data` with redb directly and breaks what `check` must find: a user's count, the image
/// total, a blob's reference count, and an orphan chunk.
fn plant_inconsistencies(data: &Path, user_id: &str, blob: &BlobHash) {
    use imgvault::store::records::{BlobRecord, Record};
    use imgvault::store::tables::{BLOB_CHUNKS, BLOBS, META, USER_IMAGE_COUNTS};
    use redb::ReadableTable;
    let db = redb::Database::open(data).unwrap();
    let tx = db.begin_write().unwrap();
    {
        tx.open_table(USER_IMAGE_COUNTS)
            .unwrap()
            .insert(user_id, 99)
            .unwrap();
        tx.open_table(META)
            .unwrap()
            .insert("total_images", 7)
            .unwrap();
        tx.open_table(BLOB_CHUNKS)
            .unwrap()
            .insert((&[0xAB; 32], 0), b"left over".as_slice())
            .unwrap();
        let mut blobs = tx.open_table(BLOBS).unwrap();
        let mut record = BlobRecord::decode(blobs.get(&blob.0).unwrap().unwrap().value()).unwrap();
        assert_eq!(record.refs, 1);
        record.refs = 5;
        blobs.insert(&blob.0, record.encode().as_slice()).unwrap();
    }
    tx.commit().unwrap();
}

#[tokio::test]
async fn check_finds_planted_inconsistencies_and_repair_fixes_them() {
    let app = spawn_app().await;
    let (alice, alice_id) = app.user_client("alice").await;
    let bytes = png(64, 64, 4);
    let (_, up) = app.receive_image(&alice, "image/png", &bytes, "char").await;
    app.receive_image(&alice, "image/png", &png(64, 64, 5), "char")
        .await;
    app.wait_task(up["taskId"].as_str().unwrap()).await;
    let dir = app.stop();
    let data = data_path(dir.path());
    let clean = imgvault(&["check", "--data", s(&data)], &[], "");
    assert_eq!(clean.code, 0, "{clean}");

    plant_inconsistencies(&data, &alice_id, &BlobHash::of(&bytes));
    let run = imgvault(&["check", "--data", s(&data)], &[], "");
    assert_eq!(run.code, 1, "{run}");
    for expected in [
        &format!("image count of user {alice_id} is 99, but the user has 2 images (repairable)"),
        "image total is 7, but the file holds 2 images (repairable)",
        "has reference count 5, but 1 images and thumbnails use it (repairable)",
        "1 chunks belong to blob abababababababab, which has no record (repairable)",
        "4 problems:",
        "`imgvault check --repair` fixes 4 of them",
    ] {
        assert!(run.stdout.contains(expected), "{expected:?} in\n{run}");
    }

    let repair = imgvault(&["check", "--repair", "--data", s(&data)], &[], "");
    assert_eq!(repair.code, 0, "{repair}");
    assert_eq!(repair.stdout.matches("fixed: ").count(), 4, "{repair}");
    assert!(repair.stdout.contains("no problems found"), "{repair}");
    let again = imgvault(&["check", "--data", s(&data)], &[], "");
    assert_eq!(again.code, 0, "{again}");

    let store = Store::open(&data, DEFAULT_CACHE_BYTES).unwrap();
    assert_eq!(
        store.user_image_count(&alice_id.as_str().into()).unwrap(),
        2
    );
    assert_eq!(store.total_images().unwrap(), 2);
    assert_eq!(
        store
            .blob(&BlobHash::of(&bytes))
            .unwrap()
            .unwrap()
            .record
            .refs,
        1
    );
}

/// Each user's images as (blake3, category, file name, page title, size), sorted.
fn collection(store: &Store, username: &str) -> Vec<(String, String, String, Option<String>, u64)> {
    let user = store.user_by_username(username).unwrap().unwrap();
    let mut out: Vec<_> = store
        .user_images(&user.user_id)
        .unwrap()
        .into_iter()
        .map(|i| {
            let bytes = read_blob(store, &i.blob);
            assert_eq!(BlobHash::of(&bytes), i.blob);
            (
                i.blob.to_hex(),
                i.category.as_str().to_string(),
                i.filename,
                i.page_title,
                i.file_size,
            )
        })
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn export_and_import_keep_the_trash_and_edits_with_their_originals() {
    let app = spawn_app().await;
    let (alice, alice_id) = app.user_client("alice").await;
    let upload = |seed| {
        let (app, alice) = (&app, &alice);
        async move {
            let (status, up) = app
                .receive_image(alice, "image/png", &png(64, 32, seed), "clothes")
                .await;
            assert_eq!(status, 200, "{up}");
            up["imageId"].as_str().unwrap().to_string()
        }
    };
    let (edited, trashed, plain) = (upload(1).await, upload(2).await, upload(3).await);
    let (status, body) = app
        .post_json(
            &alice,
            &format!("/api/user/images/{edited}/edit"),
            &serde_json::json!({"rotate": 90}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let resp = alice
        .delete(app.url(&format!("/api/user/images/{trashed}")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let dir = app.stop();
    let data = data_path(dir.path());

    let export = tempfile::tempdir().unwrap();
    let out = export.path().join("export");
    let run = imgvault(&["export", s(&out), "--data", s(&data)], &[], "");
    assert_eq!(run.code, 0, "{run}");
    let fresh = export.path().join("fresh.redb");
    let run = imgvault(
        &["import", s(&out), "--data", s(&fresh)],
        &[("IMGVAULT_ADMIN_PASSWORD", "fresh-admin")],
        "",
    );
    assert_eq!(run.code, 0, "{run}");
    assert!(run.stdout.contains("imported 3 images ("), "{run}");
    let check = imgvault(&["check", "--data", s(&fresh)], &[], "");
    assert_eq!(check.code, 0, "{check}");

    let before = Store::open(&data, DEFAULT_CACHE_BYTES).unwrap();
    let after = Store::open(&fresh, DEFAULT_CACHE_BYTES).unwrap();
    let user: imgvault::domain::UserId = alice_id.as_str().into();
    let find = |store: &Store, id: &str| {
        let name = before.image(&id.into()).unwrap().unwrap().filename;
        store.image_by_name(&user, &name).unwrap().unwrap()
    };
    let (was, now) = (find(&before, &edited), find(&after, &edited));
    assert!(now.is_edited());
    assert_eq!((now.blob, now.width, now.height), (was.blob, 32, 64));
    assert_eq!(now.original, was.original);
    assert_eq!(
        read_blob(&after, &now.original.unwrap().blob),
        png(64, 32, 1)
    );
    let (was, now) = (find(&before, &trashed), find(&after, &trashed));
    assert_eq!((now.trashed_at, now.blob), (was.trashed_at, was.blob));
    assert_eq!(after.list_trash(&user, 1, 10).unwrap().total, 1);
    assert!(!find(&after, &plain).is_trashed());
    assert_eq!(after.total_images().unwrap(), 2);
}

#[tokio::test]
async fn export_then_import_into_a_fresh_file_gives_the_same_images() {
    let app = spawn_app().await;
    let (alice, alice_id) = app.user_client("alice").await;
    let (bob, _) = app.user_client("bob").await;
    let shared = png(120, 80, 7);
    let body = serde_json::json!({
        "imageData": data_url("image/png", &shared),
        "category": "char",
        "originalUrl": "https://example.com/shirt.png",
        "pageInfo": {"url": "https://example.com/p", "title": "A page", "imageContext": {"alt": "shirt"}},
        "tags": ["Denim", "夏季"],
    });
    let (status, first) = app.post_json(&alice, "/api/receive-image", &body).await;
    assert_eq!(status, 200, "{first}");
    app.receive_image(&alice, "image/jpeg", &jpeg(200, 100, 8), "clothes")
        .await;
    app.receive_image(&alice, "image/gif", &gif(30, 30, 9), "clothes")
        .await;
    app.receive_image(&bob, "image/png", &shared, "clothes")
        .await;
    app.receive_image(&new_client(), "image/webp", &webp(40, 40, 10), "char")
        .await;
    let dir = app.stop();
    let data = data_path(dir.path());

    let export = tempfile::tempdir().unwrap();
    let out = export.path().join("export");
    let run = imgvault(&["export", s(&out), "--data", s(&data)], &[], "");
    assert_eq!(run.code, 0, "{run}");
    assert!(run.stdout.contains("exported 5 images"), "{run}");
    let filename = first["filename"].as_str().unwrap();
    let file = out.join(format!("saved_images/{alice_id}/char/{filename}"));
    assert_eq!(std::fs::read(&file).unwrap(), shared);
    let metadata: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("metadata.json")).unwrap()).unwrap();
    assert_eq!(metadata["users"].as_array().unwrap().len(), 3);
    assert!(
        !metadata.to_string().contains("argon2"),
        "no password hashes"
    );
    let again = imgvault(&["export", s(&out), "--data", s(&data)], &[], "");
    assert_eq!(again.code, 1, "{again}");
    assert!(again.stderr.contains("already holds an export"), "{again}");

    let fresh = export.path().join("fresh.redb");
    let admin_pw = [("IMGVAULT_ADMIN_PASSWORD", "fresh-admin")];
    let run = imgvault(&["import", s(&out), "--data", s(&fresh)], &admin_pw, "");
    assert_eq!(run.code, 0, "{run}");
    assert!(
        run.stdout.contains("imported 5 images (")
            && run.stdout.contains("admin 1, alice 3, bob 1"),
        "{run}"
    );
    assert!(
        run.stdout.contains(
            "created user alice without a password; set one with `imgvault user passwd alice`"
        ),
        "{run}"
    );

    let check = imgvault(&["check", "--data", s(&fresh)], &[], "");
    assert_eq!(check.code, 0, "{check}");
    {
        let before = Store::open(&data, DEFAULT_CACHE_BYTES).unwrap();
        let after = Store::open(&fresh, DEFAULT_CACHE_BYTES).unwrap();
        for user in ["admin", "alice", "bob"] {
            assert_eq!(
                collection(&before, user),
                collection(&after, user),
                "{user}"
            );
        }
        assert_eq!(after.total_images().unwrap(), 5);
        assert_eq!(
            after.user_by_username("alice").unwrap().unwrap().user_id,
            alice_id.as_str()
        );
        let image = after
            .image_by_name(&alice_id.as_str().into(), filename)
            .unwrap()
            .unwrap();
        assert_eq!(
            image.original_url.as_deref(),
            Some("https://example.com/shirt.png")
        );
        assert_eq!(image.context_json.as_deref(), Some(r#"{"alt":"shirt"}"#));
        // Tags travel through metadata.json and are indexed again.
        assert_eq!(image.tags, ["Denim", "夏季"]);
        let tagged = after
            .list_tagged_images(
                &alice_id.as_str().into(),
                &imgvault::domain::Tags::parse(["denim"]).unwrap(),
                None,
                1,
                10,
            )
            .unwrap();
        assert_eq!(tagged.total, 1);
        let original = before
            .image_by_name(&alice_id.as_str().into(), filename)
            .unwrap()
            .unwrap();
        assert_eq!(image.saved_at, original.saved_at);
    }

    let twice = imgvault(&["import", s(&out), "--data", s(&fresh)], &[], "");
    assert_eq!(twice.code, 0, "{twice}");
    assert!(twice.stdout.contains("imported 0 images"), "{twice}");
    assert!(twice.stdout.contains("skipped 5:"), "{twice}");
    assert_eq!(
        twice.stdout.matches("already has it as").count(),
        5,
        "{twice}"
    );

    // The imported account opens once the admin sets its password, and its thumbnails are made.
    let run = imgvault(
        &["user", "passwd", "alice", "--data", s(&fresh)],
        &[],
        "new-password\n",
    );
    assert_eq!(run.code, 0, "{run}");
    let fresh_dir = tempfile::tempdir().unwrap();
    std::fs::rename(&fresh, data_path(fresh_dir.path())).unwrap();
    let app = spawn_app_in(fresh_dir, &[]).await;
    let client = new_client();
    app.login(&client, "alice", "new-password").await;
    let (status, thumb) = get_bytes(
        &app,
        &client,
        &format!("/api/user/{alice_id}/thumbnails/{filename}"),
    )
    .await;
    assert_eq!(status, 200);
    assert_ne!(thumb, shared);
}

#[tokio::test]
async fn a_plain_folder_goes_to_the_chosen_user_and_category_and_bad_files_are_skipped() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data.redb");
    let folder = work.path().join("photos");
    std::fs::create_dir_all(folder.join("sub")).unwrap();
    let a = png(64, 48, 1);
    std::fs::write(folder.join("a.png"), &a).unwrap();
    std::fs::write(folder.join("dup.png"), &a).unwrap();
    std::fs::write(folder.join("sub/b.jpg"), jpeg(80, 60, 2)).unwrap();
    std::fs::write(folder.join("notes.txt"), b"not an image").unwrap();
    std::fs::write(folder.join("cut.png"), &a[..a.len() - 20]).unwrap();
    let mut big = png(8, 8, 3);
    big.resize(11 * 1024 * 1024, 0);
    std::fs::write(folder.join("big.png"), &big).unwrap();
    std::fs::write(folder.join(".hidden.png"), &a).unwrap();
    std::fs::create_dir_all(folder.join("@eaDir")).unwrap();
    std::fs::write(folder.join("@eaDir/thumb.png"), png(8, 8, 4)).unwrap();

    let admin_pw = [("IMGVAULT_ADMIN_PASSWORD", "pw-admin")];
    let run = imgvault(
        &["import", s(&folder), "--data", s(&data), "--user", "carol"],
        &admin_pw,
        "",
    );
    assert_eq!(run.code, 1, "{run}");
    assert!(run.stderr.contains("there is no user \"carol\""), "{run}");
    let run = imgvault(
        &[
            "user",
            "add",
            "carol",
            "--email",
            "carol@example.com",
            "--data",
            s(&data),
        ],
        &[],
        "carol-pw\n",
    );
    assert_eq!(run.code, 0, "{run}");

    let run = imgvault(
        &[
            "import",
            s(&folder),
            "--data",
            s(&data),
            "--user",
            "carol",
            "--category",
            "char",
        ],
        &[],
        "",
    );
    assert_eq!(run.code, 0, "{run}");
    let unknown = format!("  notes.txt: not a {} image", ImageKind::accepted_names());
    for expected in [
        "imported 2 images (",
        ": carol 2",
        "skipped 6:",
        "  @eaDir: hidden or system directory",
        "  .hidden.png: hidden file",
        "  big.png: 11.0 MiB, over the 10 MiB limit",
        "  cut.png: the PNG image is truncated: its data ends before the image does",
        "  dup.png: carol already has it as char_",
        unknown.as_str(),
    ] {
        assert!(run.stdout.contains(expected), "{expected:?} in\n{run}");
    }
    let store = Store::open(&data, DEFAULT_CACHE_BYTES).unwrap();
    let carol = store.user_by_username("carol").unwrap().unwrap();
    let images = store.user_images(&carol.user_id).unwrap();
    assert_eq!(images.len(), 2);
    assert!(images.iter().all(|i| i.category.as_str() == "char"));
    assert!(images.iter().all(|i| i.filename.starts_with("char_")));
    assert_eq!(
        store.pending_tasks().unwrap().len(),
        2,
        "thumbnails are queued"
    );
    assert!(store.check().unwrap().is_clean());
}

#[tokio::test]
async fn user_commands_manage_a_stopped_servers_accounts_and_refuse_a_running_one() {
    let app = spawn_app().await;
    let data = app.data_file();
    assert_refused_while_served(&imgvault(&["user", "list", "--data", s(&data)], &[], ""));
    let dir = app.stop();
    let data = data_path(dir.path());
    let user = |args: &[&str], stdin: &str| {
        let mut all = vec!["user"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--data", s(&data)]);
        imgvault(&all, &[], stdin)
    };

    let run = user(
        &["add", "dave", "--email", "dave@example.com"],
        "dave-pass\n",
    );
    assert_eq!(run.code, 0, "{run}");
    assert!(run.stdout.starts_with("created user dave ("), "{run}");
    let run = user(&["add", "Dave", "--email", "x@example.com"], "dave-pass\n");
    assert_eq!(run.code, 1, "{run}");
    assert!(run.stderr.contains("is taken"), "{run}");
    let run = user(&["add", "erin", "--email", "erin@example.com"], "short\n");
    assert_eq!(run.code, 1, "{run}");
    assert!(run.stderr.contains("密码长度至少6位"), "{run}");
    let run = user(&["list"], "");
    assert_eq!(run.code, 0, "{run}");
    assert!(run.stdout.contains("admin") && run.stdout.contains("dave@example.com"));
    assert!(!run.stdout.contains("erin"), "{run}");

    let app = spawn_app_in(dir, &[]).await;
    let client = new_client();
    app.login(&client, "dave", "dave-pass").await;
    let (status, _) = app
        .receive_image(&client, "image/png", &png(10, 10, 1), "clothes")
        .await;
    assert_eq!(status, 200);
    let dir = app.stop();

    let run = user(&["passwd", "dave"], "new-dave-pass\n");
    assert_eq!(run.code, 0, "{run}");
    assert!(
        run.stdout
            .contains("password of dave changed; 1 sessions ended"),
        "{run}"
    );
    let run = user(&["delete", "dave"], "");
    assert_eq!(run.code, 1, "{run}");
    assert!(run.stderr.contains("dave has 1 images"), "{run}");

    let app = spawn_app_in(dir, &[]).await;
    let (status, body) = app
        .post_json(
            &new_client(),
            "/api/login",
            &serde_json::json!({"username": "dave", "password": "dave-pass"}),
        )
        .await;
    assert_eq!(status, 401, "{body}");
    app.login(&new_client(), "dave", "new-dave-pass").await;
    let dir = app.stop();

    let run = user(&["delete", "dave", "--delete-images"], "");
    assert_eq!(run.code, 0, "{run}");
    assert!(
        run.stdout.contains("deleted user dave and 1 images"),
        "{run}"
    );
    let run = user(&["delete", "admin", "--delete-images"], "");
    assert_eq!(run.code, 1, "{run}");
    assert!(run.stderr.contains("admin cannot be deleted"), "{run}");
    let run = user(&["delete", "nobody"], "");
    assert_eq!(run.code, 1, "{run}");
    let check = imgvault(&["check", "--data", s(&data)], &[], "");
    assert_eq!(check.code, 0, "{check}");
    drop(dir);
}

fn fixture_copy(dir: &Path) -> PathBuf {
    let path = dir.join("old.redb");
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/v1.redb");
    std::fs::copy(fixture, &path).unwrap();
    path
}

#[test]
fn a_schema_one_file_is_backed_up_as_it_is_and_migrated_with_every_record_intact() {
    let dir = tempfile::tempdir().unwrap();
    let data = fixture_copy(dir.path());

    // A backup before an upgrade copies the old file untouched.
    let pre = dir.path().join("pre-upgrade.redb");
    let run = imgvault(&["backup", s(&pre), "--data", s(&data)], &[], "");
    assert_eq!(run.code, 0, "{run}");
    assert!(run.stdout.contains("2 users, 3 images, 2 blobs"), "{run}");
    assert!(run.stdout.contains("(schema 1)"), "{run}");
    let untouched = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/v1.redb"
    ));
    assert_eq!(std::fs::read(&data).unwrap(), untouched.unwrap());

    let run = imgvault(&["check", "--data", s(&data)], &[], "");
    assert_eq!(run.code, 0, "{run}");
    for expected in [
        &format!("schema version {SCHEMA_VERSION}"),
        "2 users, 1 sessions",
        "3 images, 3 tasks",
        "2 blobs (311.1 KiB), 0 thumbnails",
    ] {
        assert!(run.stdout.contains(expected), "{expected:?} in\n{run}");
    }

    let store = Store::open(&data, DEFAULT_CACHE_BYTES).unwrap();
    let old = store.user_by_username("olduser").unwrap().unwrap();
    assert_eq!(old.user_id, "356eb1ab-65f6-457a-9e1d-21bce806733c");
    assert_eq!(old.email, "old@example.com");
    assert!(old.last_login.is_some());
    assert!(imgvault::secrets::verify_password(
        &old.password_hash,
        "oldpassword"
    ));
    let admin = store.user_by_username("admin").unwrap().unwrap();
    assert_eq!(admin.user_id, "default-user-06ff70f6");
    assert!(imgvault::secrets::verify_password(
        &admin.password_hash,
        "fixture-admin"
    ));
    assert_eq!(store.users().unwrap().len(), 2);

    assert_eq!(store.total_images().unwrap(), 3);
    assert_eq!(store.user_image_count(&old.user_id).unwrap(), 2);
    assert_eq!(store.user_image_count(&admin.user_id).unwrap(), 1);
    for (owner, category, total) in [
        (&old.user_id, Category::Clothes, 1),
        (&old.user_id, Category::Char, 1),
        (&admin.user_id, Category::Clothes, 1),
        (&admin.user_id, Category::Char, 0),
    ] {
        let page = store.list_images(owner, Some(category), 1, 10).unwrap();
        assert_eq!(page.total, total, "{owner} {category}");
        assert_eq!(page.images.len() as u64, total);
        assert!(page.images.iter().all(|i| i.category == category));
    }
    let images = store.user_images(&old.user_id).unwrap();
    let summary: Vec<_> = images
        .iter()
        .map(|i| {
            (
                i.category.as_str(),
                i.kind.ext(),
                i.width,
                i.height,
                i.file_size,
                i.original_url.as_deref(),
                i.page_title.as_deref(),
                i.context_json.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (
                "clothes",
                "png",
                600,
                400,
                316_495,
                Some("https://example.com/a.png"),
                Some("Old page"),
                Some(r#"{"alt":"a.png"}"#)
            ),
            (
                "char",
                "png",
                300,
                300,
                2037,
                Some("https://example.com/b.png"),
                Some("Old page"),
                Some(r#"{"alt":"b.png"}"#)
            ),
        ]
    );
    let anonymous = store.user_images(&admin.user_id).unwrap();
    assert_eq!(anonymous.len(), 1);
    assert_eq!(
        anonymous[0].blob, images[0].blob,
        "identical bytes share a blob"
    );
    for image in images.iter().chain(&anonymous) {
        let bytes = read_blob(&store, &image.blob);
        assert_eq!(bytes.len() as u64, image.file_size);
        assert_eq!(BlobHash::of(&bytes), image.blob);
        assert_eq!(
            store
                .image_by_name(&image.user_id, &image.filename)
                .unwrap()
                .unwrap()
                .id,
            image.id
        );
        assert!(store.task(&image.task_id).unwrap().is_some());
    }
    assert_eq!(store.blob(&images[0].blob).unwrap().unwrap().record.refs, 2);
    assert_eq!(store.blob(&images[1].blob).unwrap().unwrap().record.refs, 1);
    let backlog: BTreeSet<_> = store
        .thumb_backlog()
        .unwrap()
        .into_iter()
        .map(|b| b.0)
        .collect();
    let sources: BTreeSet<_> = images.iter().map(|i| i.blob.0).collect();
    assert_eq!(backlog, sources, "every old image waits for a thumbnail");
    drop(store);

    // The pre-upgrade backup is still schema 1 and upgrades the same way.
    let run = imgvault(&["check", "--data", s(&pre)], &[], "");
    assert_eq!(run.code, 0, "{run}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compact_shrinks_a_stopped_servers_file_and_keeps_every_image() {
    let app = spawn_app().await;
    let (client, user_id) = admin_client(&app).await;
    let mut kept = Vec::new();
    for seed in 0..24 {
        let bytes = png(400, 300, seed);
        let (status, up) = app
            .receive_image(&client, "image/png", &bytes, "clothes")
            .await;
        assert_eq!(status, 200, "{up}");
        app.wait_task(up["taskId"].as_str().unwrap()).await;
        if seed % 2 == 0 {
            let id = up["imageId"].as_str().unwrap();
            let resp = client
                .delete(app.url(&format!("/api/user/images/{id}")))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200);
        } else {
            kept.push((up["filename"].as_str().unwrap().to_string(), bytes));
        }
    }
    // Deleting moves to the trash; emptying it frees the space that compact gives back.
    let (status, emptied) = app
        .post_json(&client, "/api/user/trash/empty", &serde_json::json!({}))
        .await;
    assert_eq!((status, &emptied["deleted"]), (200, &serde_json::json!(12)));
    let data = app.data_file();
    assert_refused_while_served(&imgvault(&["compact", "--data", s(&data)], &[], ""));

    let dir = app.stop();
    let data = data_path(dir.path());
    let before = std::fs::metadata(&data).unwrap().len();
    let run = imgvault(&["compact", "--data", s(&data)], &[], "");
    assert_eq!(run.code, 0, "{run}");
    assert!(run.stdout.starts_with("compacted "), "{run}");
    let after = std::fs::metadata(&data).unwrap().len();
    let kept_bytes: u64 = kept.iter().map(|(_, b)| b.len() as u64).sum();
    assert!(
        after < before && after < kept_bytes + kept_bytes / 4 + (1 << 20),
        "{before} → {after} bytes for {kept_bytes} bytes of images: {run}"
    );
    let run = imgvault(&["check", "--data", s(&data)], &[], "");
    assert_eq!(run.code, 0, "{run}");

    let app = spawn_app_in(dir, &[]).await;
    let client = new_client();
    app.login(&client, "admin", ADMIN_PASSWORD).await;
    assert_originals(&app, &client, &user_id, &kept).await;
}

/// The finding lines of a doctor run for `topic`, e.g. `ok    data file: …`.
fn finding<'a>(run: &'a Run, topic: &str) -> Vec<&'a str> {
    run.stdout
        .lines()
        .filter(|line| {
            line.get(6..)
                .is_some_and(|rest| rest.starts_with(&format!("{topic}:")))
        })
        .collect()
}

#[tokio::test]
async fn doctor_finds_a_healthy_stopped_installation_healthy_and_says_what_is_wrong_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("vault.redb");
    let backups = dir.path().join("backups");
    std::fs::create_dir(&backups).unwrap();
    // A file with an image, and a fresh backup of it.
    let mut server = spawn_server(&data, &[]).await;
    let (status, _) = {
        let client = new_client();
        let resp = client
            .post(format!("{}/api/receive-image", server.base))
            .json(&serde_json::json!({"imageData": data_url("image/png", &png(9, 9, 3))}))
            .send()
            .await
            .unwrap();
        status_and_json(resp).await
    };
    assert_eq!(status, 200);
    let addr = server.base.trim_start_matches("http://").to_string();

    // While the server runs: the file is held, the server answers; loopback only is a warning.
    let run = imgvault(&["doctor", "--data", s(&data), "--listen", &addr], &[], "");
    assert_eq!(run.code, 0, "{run}");
    assert!(
        finding(&run, "data file")[0].starts_with("ok    data file")
            && run.stdout.contains("held by a running server"),
        "{run}"
    );
    assert!(
        finding(&run, "server")[0].contains("answers at") && run.stdout.contains("(1 images)"),
        "{run}"
    );
    assert!(finding(&run, "network")[0].starts_with("warn"), "{run}");
    // Told the wrong address (the default 127.0.0.1:8080 here), it finds the server where it
    // really listens, through the process that holds the file.
    let run = imgvault(&["doctor", "--data", s(&data)], &[], "");
    assert_eq!(run.code, 0, "{run}");
    let found = finding(&run, "server");
    assert!(
        found[0].starts_with("ok")
            && found[0].contains(&format!(
                "(pid {}) answers at {}",
                server.pid(),
                server.base
            ))
            && found[0].contains("not on 127.0.0.1:8080 (--listen"),
        "{run}"
    );
    server.stop().unwrap();

    let backup = imgvault(&["backup", s(&backups), "--data", s(&data)], &[], "");
    assert_eq!(backup.code, 0, "{backup}");
    let healthy = [
        "doctor",
        "--data",
        s(&data),
        "--listen",
        "127.0.0.1:0",
        "--backup-dir",
        s(&backups),
        "--backup-every",
        "1d",
    ];
    let run = imgvault(&healthy, &[], "");
    assert_eq!(run.code, 0, "{run}");
    for topic in ["data file", "schema", "disk", "backups", "server", "clock"] {
        let lines = finding(&run, topic);
        assert_eq!(lines.len(), 1, "{topic}: {run}");
        assert!(lines[0].starts_with("ok "), "{topic}: {run}");
    }
    assert!(
        run.stdout.contains("1 images")
            && run
                .stdout
                .contains(&format!("version {}", imgvault::store::SCHEMA_VERSION)),
        "{run}"
    );
    assert!(run.stdout.contains("0 problem(s)"), "{run}");

    // A backup far older than the schedule says backups stopped.
    std::fs::write(backups.join("imgvault-20200101-000000.redb"), b"old").unwrap();
    for entry in std::fs::read_dir(&backups).unwrap() {
        let path = entry.unwrap().path();
        if !path.ends_with("imgvault-20200101-000000.redb") {
            std::fs::remove_file(path).unwrap();
        }
    }
    let run = imgvault(&healthy, &[], "");
    assert_eq!(run.code, 1, "{run}");
    assert!(
        finding(&run, "backups")[0].starts_with("FAIL")
            && run.stdout.contains("backups have stopped"),
        "{run}"
    );

    // A port another program holds, with no server of ours on it.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().to_string();
    let run = imgvault(&["doctor", "--data", s(&data), "--listen", &port], &[], "");
    assert_eq!(run.code, 1, "{run}");
    assert!(finding(&run, "server")[0].starts_with("FAIL"), "{run}");
}

#[tokio::test]
async fn doctor_reports_an_unclean_file_and_a_newer_schema_without_touching_them() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("crashed.redb");
    crash_with_one_image(&data).await;
    let before = std::fs::read(&data).unwrap();
    let run = imgvault(
        &["doctor", "--data", s(&data), "--listen", "127.0.0.1:0"],
        &[],
        "",
    );
    assert_eq!(run.code, 0, "{run}");
    assert!(
        finding(&run, "data file")[0].starts_with("warn")
            && run.stdout.contains("not closed cleanly"),
        "{run}"
    );
    assert_eq!(
        std::fs::read(&data).unwrap(),
        before,
        "doctor repairs nothing"
    );

    // Repaired by a start, then marked as written by a newer build.
    spawn_server(&data, &[]).await.stop().unwrap();
    {
        let db = redb::Database::create(&data).unwrap();
        let tx = db.begin_write().unwrap();
        tx.open_table(imgvault::store::tables::META)
            .unwrap()
            .insert("schema_version", imgvault::store::SCHEMA_VERSION + 1)
            .unwrap();
        tx.commit().unwrap();
    }
    let run = imgvault(
        &["doctor", "--data", s(&data), "--listen", "127.0.0.1:0"],
        &[],
        "",
    );
    assert_eq!(run.code, 1, "{run}");
    assert!(
        finding(&run, "schema")[0].starts_with("FAIL") && run.stdout.contains("newer imgvault"),
        "{run}"
    );
}
