//! Cloud sync, `/api/cloud/sync` and the hub's `/api/sync/user/…` routes (`src/api/sync.rs`,
//! `src/cloud.rs`, `src/store/sync.rs`), between two real imgvault processes on loopback: a local
//! server started with `--cloud-url` pointing at a hub (the same binary). Failure modes use a proxy or a fake hub that
//! this test runs, so each is reproduced exactly rather than hoped for.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use serde_json::{Value, json};
use warp::Filter;

fn cloud_args(hub: &str) -> Vec<String> {
    vec!["--cloud-url".into(), format!("{hub}/api")]
}

async fn spawn_local(hub_base: &str, extra: &[&str]) -> TestApp {
    let mut args = cloud_args(hub_base);
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    spawn_app_with(&args).await
}

/// Starts a sync and returns its task id.
async fn start_sync(app: &TestApp, client: &reqwest::Client) -> (String, Value) {
    let (status, body) = app.post_json(client, "/api/cloud/sync", &json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["success"], true, "{body}");
    (body["taskId"].as_str().expect("taskId").to_string(), body)
}

/// Polls the sync task until it leaves `processing` (bounded: one minute).
async fn wait_sync(app: &TestApp, task_id: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (status, body) = app
            .get_json(&app.client, &format!("/api/task/{task_id}"))
            .await;
        assert_eq!(status, 200, "{body}");
        if body["status"]["status"] != "processing" {
            return body["status"].clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "sync still running: {body}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every image of the client's account: filename → (blake3 of its bytes, record).
async fn images_by_hash(
    app: &TestApp,
    client: &reqwest::Client,
) -> BTreeMap<String, (String, Value)> {
    let mut out = BTreeMap::new();
    let mut page = 1;
    loop {
        let (status, body) = app
            .get_json(
                client,
                &format!("/api/user/images?per_page=100&page={page}"),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        let images = body["images"].as_array().unwrap().clone();
        if images.is_empty() {
            return out;
        }
        for image in images {
            let bytes = app
                .get_bytes(client, image["preview_url"].as_str().unwrap())
                .await;
            let hash = blake3::hash(&bytes).to_hex().to_string();
            out.insert(
                image["filename"].as_str().unwrap().to_string(),
                (hash, image),
            );
        }
        page += 1;
    }
}

async fn upload(app: &TestApp, client: &reqwest::Client, bytes: &[u8], category: &str) -> String {
    let (status, body) = app
        .receive_image(client, "image/png", bytes, category)
        .await;
    assert_eq!(status, 200, "{body}");
    body["imageId"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn a_sync_copies_every_image_once_and_the_next_sync_sends_only_what_is_new() {
    let hub = spawn_app().await;
    let local = spawn_local(&hub.base, &[]).await;
    let (client, _) = local.user_client("syncer").await;

    // The same credentials work on the hub.
    let hub_client = new_client();
    let hub_user = hub.login(&hub_client, "syncer", "password123").await;
    assert_eq!(hub_user["username"], "syncer");
    let (_, profile) = local.get_json(&client, "/api/user/profile").await;
    assert_eq!(profile["user"]["cloud_sync_enabled"], true, "{profile}");

    let a = png(300, 200, 1);
    let b = png(200, 300, 2);
    upload(&local, &client, &a, "clothes").await;
    upload(&local, &client, &b, "char").await;
    upload(&local, &client, &a, "char").await; // identical bytes, a different image
    let (task_id, started) = start_sync(&local, &client).await;
    assert_eq!(started["message"], "同步任务已启动");
    assert_eq!(started["sync_info"]["image_count"], 3);
    let task = wait_sync(&local, &task_id).await;
    assert_eq!(task["status"], "completed", "{task}");
    assert_eq!(task["progress"]["synced_images"], 3, "{task}");
    // The duplicate travelled as metadata only.
    assert_eq!(task["progress"]["files_sent"], 2, "{task}");

    let local_images = images_by_hash(&local, &client).await;
    assert!(
        local_images
            .values()
            .all(|(_, i)| i["cloud_synced"] == true)
    );
    let hub_images = images_by_hash(&hub, &hub_client).await;
    assert_eq!(hub_images.len(), 3);
    for (name, (hash, image)) in &local_images {
        let (hub_hash, hub_image) = hub_images
            .get(name)
            .unwrap_or_else(|| panic!("{name} not on the hub"));
        assert_eq!(hash, hub_hash, "{name}");
        for field in [
            "id",
            "image_width",
            "image_height",
            "file_size",
            "saved_at",
            "context_info",
        ] {
            assert_eq!(image[field], hub_image[field], "{name}: {field}");
        }
    }
    let distinct: HashSet<&String> = hub_images.values().map(|(h, _)| h).collect();
    assert_eq!(distinct.len(), 2);

    // One more image: only it crosses.
    upload(&local, &client, &png(120, 80, 3), "clothes").await;
    let (task_id, started) = start_sync(&local, &client).await;
    assert_eq!(started["sync_info"]["image_count"], 1);
    let task = wait_sync(&local, &task_id).await;
    assert_eq!(task["status"], "completed", "{task}");
    assert_eq!(task["progress"]["files_sent"], 1, "{task}");
    assert_eq!(task["progress"]["synced_images"], 1, "{task}");
    assert_eq!(images_by_hash(&hub, &hub_client).await.len(), 4);

    // Nothing left: a sync with nothing to send completes with nothing sent.
    let (task_id, _) = start_sync(&local, &client).await;
    let task = wait_sync(&local, &task_id).await;
    assert_eq!(task["status"], "completed", "{task}");
    assert_eq!(task["progress"]["bytes_sent"], 0, "{task}");
}

#[tokio::test]
async fn tags_categories_the_trash_and_deletions_reach_the_hub_without_resending_bytes() {
    let hub = spawn_app().await;
    let local = spawn_local(&hub.base, &[]).await;
    let (client, _) = local.user_client("keeper").await;
    let hub_client = new_client();
    hub.login(&hub_client, "keeper", "password123").await;
    let kept = upload(&local, &client, &png(60, 40, 1), "clothes").await;
    let trashed = upload(&local, &client, &png(60, 40, 2), "clothes").await;
    let deleted = upload(&local, &client, &png(60, 40, 3), "char").await;
    let never_synced = upload(&local, &client, &png(60, 40, 4), "char").await;
    let batch = |body: Value| {
        let (local, client) = (&local, &client);
        async move {
            let (status, answer) = local
                .post_json(client, "/api/user/images/batch", &body)
                .await;
            assert_eq!(status, 200, "{answer}");
            assert_eq!(answer["skipped"], json!([]), "{answer}");
        }
    };
    // Tagged before the first sync: the tags go with the image.
    batch(json!({"ids": [kept], "action": "add_tags", "tags": ["Denim", "夏季"]})).await;
    batch(json!({"ids": [never_synced], "action": "trash"})).await;
    let (task_id, _) = start_sync(&local, &client).await;
    let task = wait_sync(&local, &task_id).await;
    assert_eq!(task["status"], "completed", "{task}");
    assert_eq!(task["progress"]["files_sent"], 3, "{task}");
    assert_eq!(
        hub.list_ids(&hub_client, "tag=denim").await,
        (vec![kept.clone()], 1)
    );
    // An image trashed before it ever reached the hub does not go there.
    assert_eq!(hub.list_ids(&hub_client, "").await.1, 3);

    // Changes to images the hub holds: new tags, a category, the trash, a deletion for good.
    batch(json!({"ids": [kept], "action": "remove_tags", "tags": ["denim"]})).await;
    batch(json!({"ids": [kept], "action": "set_category", "category": "char"})).await;
    batch(json!({"ids": [trashed], "action": "trash"})).await;
    batch(json!({"ids": [deleted], "action": "delete_forever"})).await;
    let (task_id, _) = start_sync(&local, &client).await;
    let task = wait_sync(&local, &task_id).await;
    assert_eq!(task["status"], "completed", "{task}");
    assert_eq!(task["progress"]["files_sent"], 0, "{task}");
    assert_eq!(task["progress"]["synced_images"], 2, "{task}");
    assert_eq!(hub.list_ids(&hub_client, "").await, (vec![kept.clone()], 1));
    assert_eq!(hub.list_ids(&hub_client, "tag=denim").await.1, 0);
    assert_eq!(
        hub.list_ids(&hub_client, "category=char").await,
        (vec![kept.clone()], 1)
    );
    let (_, hub_tags) = hub.get_json(&hub_client, "/api/user/tags").await;
    assert_eq!(hub_tags["tags"], json!([{"tag": "夏季", "count": 1}]));
    let (_, hub_trash) = hub.get_json(&hub_client, "/api/user/trash").await;
    assert_eq!(hub_trash["total"], 1, "{hub_trash}");
    assert_eq!(hub_trash["images"][0]["id"], json!(trashed));

    // Restored here, restored there; nothing left to send afterwards.
    batch(json!({"ids": [trashed], "action": "restore"})).await;
    let (task_id, started) = start_sync(&local, &client).await;
    assert_eq!(started["sync_info"]["image_count"], 1);
    let task = wait_sync(&local, &task_id).await;
    assert_eq!(task["progress"]["files_sent"], 0, "{task}");
    assert_eq!(hub.list_ids(&hub_client, "").await.1, 2);
    let (task_id, started) = start_sync(&local, &client).await;
    assert_eq!(started["sync_info"]["image_count"], 0);
    let task = wait_sync(&local, &task_id).await;
    assert_eq!(task["progress"]["bytes_sent"], 0, "{task}");

    // The hub's file is consistent: trashed and deleted images counted as they should be.
    let dir = hub.stop();
    let store =
        imgvault::store::Store::open(&data_path(dir.path()), imgvault::store::DEFAULT_CACHE_BYTES)
            .unwrap();
    let report = store.check().unwrap();
    assert!(report.is_clean(), "{:?}", report.problems);
}

#[tokio::test]
async fn an_edit_reaches_the_hub_and_a_revert_goes_back_without_bytes() {
    let hub = spawn_app().await;
    let local = spawn_local(&hub.base, &[]).await;
    let (client, _) = local.user_client("editor").await;
    let hub_client = new_client();
    hub.login(&hub_client, "editor", "password123").await;
    let original = png(64, 32, 9);
    let id = upload(&local, &client, &original, "clothes").await;
    let sync = || async {
        let (task_id, _) = start_sync(&local, &client).await;
        let task = wait_sync(&local, &task_id).await;
        assert_eq!(task["status"], "completed", "{task}");
        assert_eq!(
            task["progress"]["refused_count"].as_u64().unwrap_or(0),
            0,
            "{task}"
        );
        task
    };
    sync().await;
    let (status, edited) = local
        .post_json(
            &client,
            &format!("/api/user/images/{id}/edit"),
            &json!({"rotate": 90}),
        )
        .await;
    assert_eq!(status, 200, "{edited}");
    let task = sync().await;
    assert_eq!(task["progress"]["files_sent"], 1, "{task}");
    let on_hub = images_by_hash(&hub, &hub_client).await;
    let (hash, image) = on_hub.values().next().unwrap();
    let edited_bytes = local
        .get_bytes(&client, edited["image"]["preview_url"].as_str().unwrap())
        .await;
    assert_eq!(hash, &blake3::hash(&edited_bytes).to_hex().to_string());
    assert_eq!(
        (image["image_width"].as_u64(), image["edited"].as_bool()),
        (Some(32), Some(true))
    );

    // The hub kept the upload: reverting sends no file.
    let (status, _) = local
        .post_json(
            &client,
            &format!("/api/user/images/{id}/revert"),
            &json!({}),
        )
        .await;
    assert_eq!(status, 200);
    let task = sync().await;
    assert_eq!(task["progress"]["files_sent"], 0, "{task}");
    let on_hub = images_by_hash(&hub, &hub_client).await;
    let (hash, image) = on_hub.values().next().unwrap();
    assert_eq!(hash, &blake3::hash(&original).to_hex().to_string());
    assert_eq!(image["edited"], false);
}

/// Forwards everything to the hub at `target`, except that the `stop_at`-th sync batch waits for
/// the test to kill the hub first (and so fails).
struct Proxy {
    addr: SocketAddr,
    target: Arc<Mutex<String>>,
    batch_seen: tokio::sync::mpsc::Receiver<()>,
    hub_killed: Arc<tokio::sync::Notify>,
}

async fn proxy(target: String, stop_at: usize) -> Proxy {
    let target = Arc::new(Mutex::new(target));
    let (seen_tx, batch_seen) = tokio::sync::mpsc::channel(1);
    let hub_killed = Arc::new(tokio::sync::Notify::new());
    let batches = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let client = new_client();
    let route = warp::any()
        .and(warp::method())
        .and(warp::path::full())
        .and(warp::header::headers_cloned())
        .and(warp::body::bytes())
        .then({
            let (target, hub_killed) = (target.clone(), hub_killed.clone());
            move |method: warp::http::Method,
                  path: warp::path::FullPath,
                  headers: warp::http::HeaderMap,
                  body: bytes::Bytes| {
                let (target, hub_killed, client, seen_tx, batches) = (
                    target.clone(),
                    hub_killed.clone(),
                    client.clone(),
                    seen_tx.clone(),
                    batches.clone(),
                );
                async move {
                    let path = path.as_str().to_string();
                    let is_batch =
                        path.starts_with("/api/sync/user/") && !path.ends_with("/manifest");
                    if is_batch
                        && batches.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1 == stop_at
                    {
                        let _ = seen_tx.send(()).await;
                        hub_killed.notified().await;
                    }
                    let url = format!("{}{path}", target.lock().unwrap());
                    let method = reqwest::Method::from_bytes(method.as_str().as_bytes()).unwrap();
                    let mut request = client.request(method, url).body(body);
                    for name in ["cookie", "content-type"] {
                        if let Some(v) = headers.get(name) {
                            request = request.header(name, v.clone());
                        }
                    }
                    let mut reply = warp::http::Response::builder();
                    match request.send().await {
                        Ok(resp) => {
                            reply = reply.status(resp.status().as_u16());
                            for (name, value) in resp.headers() {
                                if name == "set-cookie" || name == "content-type" {
                                    reply = reply.header(name.as_str(), value.as_bytes());
                                }
                            }
                            reply
                                .body(resp.bytes().await.unwrap_or_default().to_vec())
                                .unwrap()
                        }
                        Err(_) => reply
                            .status(502)
                            .body(br#"{"success":false,"error":"hub down"}"#.to_vec())
                            .unwrap(),
                    }
                }
            }
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(warp::serve(route).incoming(listener).run());
    Proxy {
        addr,
        target,
        batch_seen,
        hub_killed,
    }
}

#[tokio::test]
async fn a_hub_killed_mid_sync_loses_nothing_and_the_next_sync_resumes() {
    let hub = spawn_app().await;
    let mut proxy = proxy(hub.base.clone(), 2).await;
    let local = spawn_local(&format!("http://{}", proxy.addr), &[]).await;
    let (client, _) = local.user_client("resumer").await;
    // About 1.5 MB each (noise does not compress): three or four to a 4 MiB batch.
    let images: Vec<Vec<u8>> = (0..12).map(|i| noisy_png(800, 500, i)).collect();
    for image in &images {
        upload(&local, &client, image, "clothes").await;
    }

    let (task_id, _) = start_sync(&local, &client).await;
    proxy.batch_seen.recv().await.expect("a second batch");
    let hub_dir = hub.kill();
    proxy.hub_killed.notify_one();
    let task = wait_sync(&local, &task_id).await;
    assert_eq!(task["status"], "failed", "{task}");
    assert!(
        task["error"].as_str().unwrap().starts_with("云端响应错误"),
        "{task}"
    );
    let first_batch = task["progress"]["synced_images"].as_u64().unwrap();
    let first_files = task["progress"]["files_sent"].as_u64().unwrap();
    assert!(first_batch > 0 && first_batch < 12, "{task}");
    // Local data untouched but for the acknowledged batch's flags.
    let local_images = images_by_hash(&local, &client).await;
    assert_eq!(local_images.len(), 12);
    let synced = local_images
        .values()
        .filter(|(_, i)| i["cloud_synced"] == true)
        .count();
    assert_eq!(synced as u64, first_batch);

    // The hub comes back (same data file, new port); the sync picks up where it stopped.
    let hub = spawn_app_in(hub_dir, &[]).await;
    *proxy.target.lock().unwrap() = hub.base.clone();
    let (task_id, started) = start_sync(&local, &client).await;
    assert_eq!(started["sync_info"]["image_count"], 12 - first_batch);
    let task = wait_sync(&local, &task_id).await;
    assert_eq!(task["status"], "completed", "{task}");
    // The batch acknowledged before the kill is not sent again.
    assert_eq!(
        task["progress"]["files_sent"].as_u64().unwrap(),
        12 - first_batch,
        "{task}"
    );
    assert!(first_files + 12 - first_batch >= 12);

    let hub_client = new_client();
    hub.login(&hub_client, "resumer", "password123").await;
    let hub_images = images_by_hash(&hub, &hub_client).await;
    assert_eq!(hub_images.len(), 12, "nothing lost, nothing duplicated");
    let local_images = images_by_hash(&local, &client).await;
    for (name, (hash, _)) in &local_images {
        assert_eq!(&hub_images[name].0, hash, "{name}");
    }
    assert!(
        local_images
            .values()
            .all(|(_, i)| i["cloud_synced"] == true)
    );
}

#[derive(Clone, Copy)]
enum FakeHub {
    Fails,
    Hangs,
}

/// A hub that accepts logins and then misbehaves on every sync request.
async fn fake_hub(mode: FakeHub) -> (String, tokio::sync::oneshot::Sender<()>) {
    let login = warp::path!("api" / "login").map(|| {
        warp::reply::with_header(
            warp::reply::json(&json!({"success": true, "user": {"user_id": "hub-user", "username": "x", "email": "x@x.org"}, "message": "登录成功"})),
            "set-cookie",
            "session=fake-hub-token; HttpOnly; Path=/",
        )
    });
    let register = warp::path!("api" / "register").map(|| {
        warp::reply::json(&json!({"success": true, "user_id": "hub-user", "message": "注册成功"}))
    });
    let sync = warp::path("api")
        .and(warp::path("sync"))
        .then(move || async move {
            match mode {
                FakeHub::Fails => warp::reply::with_status(
                    warp::reply::json(&json!({"success": false, "error": "服务器内部错误"})),
                    warp::http::StatusCode::INTERNAL_SERVER_ERROR,
                ),
                FakeHub::Hangs => {
                    std::future::pending::<()>().await;
                    unreachable!()
                }
            }
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(
        warp::serve(login.or(register).or(sync))
            .incoming(listener)
            .graceful(async {
                let _ = stopped.await;
            })
            .run(),
    );
    (format!("http://{addr}"), stop)
}

/// Logs in, uploads two images, syncs, and checks the failure and that nothing local changed.
async fn sync_fails_with(
    hub_base: &str,
    extra: &[&str],
    expected: &str,
    before_sync: impl AsyncFnOnce(),
) {
    let local = spawn_local(hub_base, extra).await;
    let (client, _) = local.user_client("unlucky").await;
    upload(&local, &client, &png(64, 64, 9), "clothes").await;
    upload(&local, &client, &png(64, 32, 10), "char").await;
    let before = images_by_hash(&local, &client).await;
    before_sync().await;
    let (task_id, _) = start_sync(&local, &client).await;
    let task = wait_sync(&local, &task_id).await;
    assert_eq!(task["status"], "failed", "{task}");
    let error = task["error"].as_str().unwrap();
    assert!(
        error.starts_with(expected),
        "expected {expected}, got {error}"
    );
    let after = images_by_hash(&local, &client).await;
    assert_eq!(before, after, "local data changed by a failed sync");
    assert!(after.values().all(|(_, i)| i["cloud_synced"] == false));
}

#[tokio::test]
async fn a_hub_answering_500_gives_the_seed_error_and_changes_nothing() {
    let (base, _stop) = fake_hub(FakeHub::Fails).await;
    sync_fails_with(&base, &[], "云端响应错误", async || {}).await;
}

#[tokio::test]
async fn a_hub_that_never_answers_times_out() {
    let (base, _stop) = fake_hub(FakeHub::Hangs).await;
    sync_fails_with(
        &base,
        &["--cloud-timeout", "1"],
        "同步请求超时",
        async || {},
    )
    .await;
}

#[tokio::test]
async fn an_unreachable_hub_is_a_network_failure() {
    let (base, stop) = fake_hub(FakeHub::Fails).await;
    let addr = base.trim_start_matches("http://").to_string();
    // Logged in while the hub was up; it is gone by the time the sync starts.
    sync_fails_with(&base, &[], "网络请求失败", async move || {
        stop.send(()).unwrap();
        // The port is closed once the server has shut down: wait for connections to be refused.
        while tokio::net::TcpStream::connect(&addr).await.is_ok() {
            tokio::task::yield_now().await;
        }
    })
    .await;
}

#[tokio::test]
async fn sync_routes_on_the_hub_belong_to_their_user() {
    let hub = spawn_app().await;
    let (alice, _) = hub.user_client("alice").await;
    let (_, bob_id) = hub.user_client("bob").await;
    let body = json!({"user_info": {}, "images_metadata": [], "image_files": {}, "sync_timestamp": "", "sync_statistics": {}});
    for path in [
        format!("/api/sync/user/{bob_id}"),
        format!("/api/sync/user/{bob_id}/manifest"),
    ] {
        let body = if path.ends_with("manifest") {
            json!({"images": []})
        } else {
            body.clone()
        };
        let (status, answer) = hub.post_json(&alice, &path, &body).await;
        assert_eq!(status, 403, "{path}: {answer}");
        assert_eq!(answer["error"], "权限不足");
        let (status, answer) = hub.post_json(&new_client(), &path, &body).await;
        assert_eq!(status, 401, "{path}: {answer}");
    }
}

#[tokio::test]
async fn the_hub_refuses_files_that_do_not_match_their_metadata() {
    let hub = spawn_app().await;
    let (alice, alice_id) = hub.user_client("alice").await;
    let good = png(40, 30, 1);
    let meta = |id: &str, name: &str, size: usize, w: u32, hash: Option<String>| {
        json!({"id": id, "filename": name, "saved_at": "2026-01-02 03:04:05", "file_size": size,
               "image_width": w, "image_height": 30, "context_info": {"category": "char"},
               "blake3": hash})
    };
    let body = json!({
        "user_info": {"user_id": "x", "username": "alice", "email": "a@x.org", "created_at": "", "last_login": null, "cloud_sync_enabled": true},
        "images_metadata": [
            meta("i-good", "char_good.png", good.len(), 40, Some(blake3::hash(&good).to_hex().to_string())),
            meta("i-size", "char_size.png", good.len() + 1, 40, None),
            meta("i-dims", "char_dims.png", good.len(), 41, None),
            meta("i-hash", "char_hash.png", good.len(), 40, Some("0".repeat(64))),
            meta("i-text", "char_text.png", 5, 40, None),
            meta("../evil", "char_evil.png", good.len(), 40, None),
            meta("i-nofile", "char_nofile.png", good.len(), 40, None),
        ],
        "image_files": {
            "char_good.png": data_url("image/png", &good),
            "char_size.png": data_url("image/png", &good),
            "char_dims.png": data_url("image/png", &good),
            "char_hash.png": data_url("image/png", &good),
            "char_text.png": data_url("image/png", b"hello"),
            "char_evil.png": data_url("image/png", &good),
        },
        "sync_timestamp": "2026-01-02T03:04:05",
        "sync_statistics": {"total_metadata_records": 7, "total_files_found": 6, "total_files_missing": 1, "total_size": 0, "categories": ["char"]}
    });
    let path = format!("/api/sync/user/{alice_id}");
    let (status, answer) = hub.post_json(&alice, &path, &body).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["accepted"], json!(["i-good"]), "{answer}");
    let refused: HashSet<&str> = answer["refused"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        refused,
        HashSet::from([
            "i-size", "i-dims", "i-hash", "i-text", "../evil", "i-nofile"
        ])
    );
    // The same body again: the good image is acknowledged, not stored twice.
    let (_, again) = hub.post_json(&alice, &path, &body).await;
    assert_eq!(again["accepted"], json!(["i-good"]));
    assert_eq!(again["stored"], 0);
    let images = images_by_hash(&hub, &alice).await;
    assert_eq!(images.len(), 1);
    assert_eq!(images["char_good.png"].1["saved_at"], "2026-01-02 03:04:05");
    assert_eq!(
        images["char_good.png"].1["context_info"]["category"],
        "char"
    );
}

#[tokio::test]
async fn a_sync_body_over_the_hubs_limit_is_refused_cleanly_declared_or_not() {
    let mut hub = spawn_app_with(&["--max-sync-body-mb", "2"]).await;
    let (alice, alice_id) = hub.user_client("alice").await;
    let padding = "A".repeat(3 * 1024 * 1024);
    let body = format!(r#"{{"images_metadata": [], "image_files": {{"x": "{padding}"}}}}"#);
    let url = hub.url(&format!("/api/sync/user/{alice_id}"));
    // With a Content-Length over the limit: refused, and the body drained so the connection stays
    // usable for the next request (hyper would otherwise close it under a pooling client).
    let declared = alice
        .post(&url)
        .header("content-type", "application/json")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    let (status, answer) = status_and_json(declared).await;
    assert_eq!(status, 413, "{answer}");
    // Chunked, refused when the limit is passed.
    let pieces: Vec<Result<Vec<u8>, std::io::Error>> = body
        .into_bytes()
        .chunks(64 * 1024)
        .map(|c| Ok(c.to_vec()))
        .collect();
    let chunked = alice
        .post(&url)
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            pieces,
        )))
        .send()
        .await
        .unwrap();
    let (status, answer) = status_and_json(chunked).await;
    assert_eq!(status, 413, "{answer}");
    assert!(hub.is_alive());
}

#[tokio::test]
async fn sync_is_disabled_without_a_hub_and_needs_a_hub_login_with_one() {
    let app = spawn_app().await;
    let (client, _) = app.user_client("solo").await;
    let (status, body) = app.post_json(&client, "/api/cloud/sync", &json!({})).await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        json!({"success": false, "error": "云端同步功能已禁用"})
    );
    let (status, _) = app
        .post_json(&new_client(), "/api/cloud/sync", &json!({}))
        .await;
    assert_eq!(status, 401, "an anonymous sync");

    // A hub that is down at login: the login works, sync explains what to do.
    let (base, stop) = fake_hub(FakeHub::Fails).await;
    stop.send(()).unwrap();
    let addr = base.trim_start_matches("http://").to_string();
    while tokio::net::TcpStream::connect(&addr).await.is_ok() {
        tokio::task::yield_now().await;
    }
    let local = spawn_local(&base, &[]).await;
    let (client, _) = local.user_client("offline").await;
    let (_, profile) = local.get_json(&client, "/api/user/profile").await;
    assert_eq!(profile["user"]["cloud_sync_enabled"], false, "{profile}");
    let (status, body) = local
        .post_json(&client, "/api/cloud/sync", &json!({}))
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("重新登录"),
        "{body}"
    );
}

#[tokio::test]
async fn an_image_whose_bytes_are_missing_is_counted_and_the_rest_still_syncs() {
    let hub = spawn_app().await;
    let local = spawn_local(&hub.base, &[]).await;
    let (client, _) = local.user_client("gappy").await;
    let lost = png(50, 40, 21);
    for bytes in [&lost, &png(51, 40, 22), &png(52, 40, 23)] {
        upload(&local, &client, bytes, "clothes").await;
    }
    // The lost image's bytes vanish from the data file while the server is stopped.
    let dir = local.stop();
    {
        use imgvault::store::tables::BLOBS;
        let db = redb::Database::open(data_path(dir.path())).unwrap();
        let tx = db.begin_write().unwrap();
        let hash = *blake3::hash(&lost).as_bytes();
        assert!(
            tx.open_table(BLOBS)
                .unwrap()
                .remove(&hash)
                .unwrap()
                .is_some()
        );
        tx.commit().unwrap();
    }
    let args = cloud_args(&hub.base);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let local = spawn_app_in(dir, &args).await;
    // The session and its hub login survived the restart.
    let (task_id, started) = start_sync(&local, &client).await;
    assert_eq!(started["sync_info"]["image_count"], 3);
    let task = wait_sync(&local, &task_id).await;
    assert_eq!(task["status"], "completed", "{task}");
    assert_eq!(task["progress"]["total_files_missing"], 1, "{task}");
    assert_eq!(task["progress"]["synced_images"], 2, "{task}");
    let hub_client = new_client();
    hub.login(&hub_client, "gappy", "password123").await;
    assert_eq!(images_by_hash(&hub, &hub_client).await.len(), 2);
}
