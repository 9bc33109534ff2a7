//! The capture workflow against the real binary: "already saved" lookups that answer only from the
//! caller's live images, captures sent as a SHA-256 instead of bytes, uploads made once per
//! `Idempotency-Key` (replayed sequentially, concurrently, after a restart and after a kill), and
//! provenance: every page an image was captured on, and the gallery's `distinct=1` list.

mod common;

use common::*;
use imgvault::domain::Sha256;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

fn sha(bytes: &[u8]) -> String {
    Sha256::of(bytes).to_hex()
}

async fn lookup(app: &TestApp, client: &reqwest::Client, body: &Value) -> (u16, Value) {
    app.post_json(client, "/api/images/lookup", body).await
}

/// Posts `body` to `receive-image` with `key` as its `Idempotency-Key`: the status, the answer's
/// text and whether it says it is a replay.
async fn keyed(
    app: &TestApp,
    client: &reqwest::Client,
    key: &str,
    body: &Value,
) -> (u16, String, bool) {
    let resp = client
        .post(app.url("/api/receive-image"))
        .header("idempotency-key", key)
        .json(body)
        .send()
        .await
        .expect("POST");
    let status = resp.status().as_u16();
    let replayed = resp.headers().contains_key("idempotent-replayed");
    (status, resp.text().await.unwrap(), replayed)
}

/// A capture of `bytes` from page `page`.
fn capture(bytes: &[u8], page: &str, category: &str) -> Value {
    json!({
        "imageData": data_url("image/png", bytes),
        "category": category,
        "originalUrl": format!("https://img.example/{page}.png"),
        "pageInfo": {"url": format!("https://pages.example/{page}"), "title": format!("page {page}")},
    })
}

async fn save(app: &TestApp, client: &reqwest::Client, body: &Value) -> Value {
    let (status, answer) = app.post_json(client, "/api/receive-image", body).await;
    assert_eq!(status, 200, "{answer}");
    answer
}

async fn batch(app: &TestApp, client: &reqwest::Client, ids: &[&str], action: &str) {
    let (status, body) = app
        .post_json(
            client,
            "/api/user/images/batch",
            &json!({"ids": ids, "action": action}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn a_lookup_knows_only_the_callers_live_images() {
    let mut app = spawn_app().await;
    let (alice, _) = app.user_client("alice").await;
    let (bob, _) = app.user_client("bob").await;
    let (a, b) = (png(8, 8, 1), png(8, 8, 2));
    let saved = save(&app, &alice, &capture(&a, "a", "clothes")).await;
    let a_id = saved["imageId"].as_str().unwrap().to_string();
    save(&app, &bob, &json!({"imageData": data_url("image/png", &a)})).await;
    save(&app, &bob, &capture(&b, "b", "char")).await;
    let total = total_images(&app).await;

    let asked = json!({
        "sha256": [sha(&a).to_uppercase(), sha(&b), sha(b"never stored"), sha(&a)],
        "urls": ["https://img.example/a.png", "https://img.example/b.png", "https://img.example/a.png"],
    });
    // Anonymous: no oracle on the admin's images.
    let (status, body) = lookup(&app, &new_client(), &asked).await;
    assert_eq!((status, body), (401, failure("需要登录")));
    // Hex of either case, answered lower-case, each once; bob's images are never alice's.
    let (status, body) = lookup(&app, &alice, &asked).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"known": {"sha256": [sha(&a)], "urls": ["https://img.example/a.png"]}})
    );
    let (_, body) = lookup(&app, &bob, &asked).await;
    assert_eq!(
        body,
        json!({"known": {"sha256": [sha(&a), sha(&b)], "urls": ["https://img.example/b.png"]}})
    );
    // In the trash it is not known; restored, it is again.
    batch(&app, &alice, &[&a_id], "trash").await;
    let (_, body) = lookup(&app, &alice, &asked).await;
    assert_eq!(body, json!({"known": {"sha256": [], "urls": []}}));
    batch(&app, &alice, &[&a_id], "restore").await;
    let (_, body) = lookup(&app, &alice, &asked).await;
    assert_eq!(body["known"]["sha256"], json!([sha(&a)]));
    // Either list may be left out.
    let (_, body) = lookup(
        &app,
        &alice,
        &json!({"urls": ["https://img.example/a.png"]}),
    )
    .await;
    assert_eq!(body["known"]["sha256"], json!([]));

    // Bounds: 500 of each is fine, 501 is not; malformed hex is refused whole.
    let many: Vec<String> = (0..500u32).map(|i| sha(&i.to_le_bytes())).collect();
    let (status, _) = lookup(&app, &alice, &json!({"sha256": many, "urls": many})).await;
    assert_eq!(status, 200);
    let mut too_many = many.clone();
    too_many.push(sha(b"one more"));
    for body in [
        json!({"sha256": too_many}),
        json!({"urls": too_many}),
        json!({"sha256": [sha(&a), "abc"]}),
        json!({"sha256": [format!("{}zz", &sha(&a)[2..])]}),
        json!({"sha256": [format!("{}0", sha(&a))]}),
        json!({"sha256": "not a list"}),
    ] {
        let (status, answer) = lookup(&app, &alice, &body).await;
        assert_error_status(&(status, answer), 400, "bad lookup");
    }
    // A body over the bound is refused before it is parsed.
    let huge = json!({"urls": ["x".repeat(2 * MB)]});
    let (status, _) = lookup(&app, &alice, &huge).await;
    assert_eq!(status, 413);
    assert_unharmed(&mut app, total).await;
}

#[tokio::test]
async fn a_capture_sent_as_its_sha256_is_stored_like_an_upload_without_its_bytes() {
    let mut app = spawn_app().await;
    let (alice, _) = app.user_client("alice").await;
    let (bob, _) = app.user_client("bob").await;
    let a = png(16, 12, 7);
    let first = save(&app, &alice, &capture(&a, "first", "clothes")).await;
    app.wait_task(first["taskId"].as_str().unwrap()).await;
    let total = total_images(&app).await;

    let by_hash = json!({
        "sha256": sha(&a).to_uppercase(),
        "category": "char",
        "originalUrl": "https://img.example/again.png",
        "pageInfo": {"url": "https://pages.example/again", "title": "again"},
    });
    let body = serde_json::to_vec(&by_hash).unwrap();
    // Not one byte of the image on the wire.
    assert!(body.len() < 300, "{} bytes", body.len());
    let resp = alice
        .post(app.url("/api/receive-image"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let (status, again) = status_and_json(resp).await;
    assert_eq!(status, 200, "{again}");
    // Answered exactly like an upload: the same fields, its own image and task.
    let fields = |v: &Value| {
        let mut keys: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        keys
    };
    assert_eq!(fields(&again), fields(&first));
    assert_eq!(again["fileSize"], json!(a.len()));
    assert_eq!(again["category"], "char");
    assert_eq!(again["message"], "图片已保存到 char 文件夹");
    assert_eq!(again["isLoggedIn"], true);
    assert_ne!(again["imageId"], first["imageId"]);
    let task = app.wait_task(again["taskId"].as_str().unwrap()).await;
    assert_eq!(task["status"]["status"], "completed", "{task}");
    assert_eq!(total_images(&app).await, total + 1);
    let (_, list) = app.get_json(&alice, "/api/user/images?category=char").await;
    let shown = &list["images"][0];
    assert_eq!(shown["id"], again["imageId"]);
    assert_eq!(shown["page_url"], "https://pages.example/again");
    assert_eq!(shown["page_title"], "again");
    assert_eq!(shown["image_width"], 16);
    let served = app
        .get_bytes(&alice, shown["preview_url"].as_str().unwrap())
        .await;
    assert_eq!(served.as_ref(), a.as_slice());
    let thumb = alice
        .get(app.url(shown["thumbnail_url"].as_str().unwrap()))
        .send()
        .await
        .unwrap();
    assert_eq!(thumb.status(), 200);

    // Where it was seen: both captures, newest first, the image itself included.
    let id = again["imageId"].as_str().unwrap();
    let (status, sources) = app
        .get_json(&alice, &format!("/api/user/images/{id}/sources"))
        .await;
    assert_eq!(status, 200, "{sources}");
    let sources = sources["sources"].as_array().unwrap();
    assert_eq!(sources.len(), 2);
    assert_eq!(sources[0]["image_id"], again["imageId"]);
    assert_eq!(sources[0]["page_url"], "https://pages.example/again");
    assert_eq!(sources[1]["image_id"], first["imageId"]);
    assert_eq!(sources[1]["page_title"], "page first");
    assert_eq!(sources[1]["original_url"], "https://img.example/first.png");
    assert!(sources[1]["saved_at"].is_string());
    let (status, _) = app
        .get_json(&bob, &format!("/api/user/images/{id}/sources"))
        .await;
    assert_eq!(status, 404);

    // A hash bob has no image of: refused alike whether alice has it or nobody does.
    let total = total_images(&app).await;
    let refuse = |hash: String| json!({"sha256": hash, "category": "char"});
    let (status, someone_elses) = app
        .post_json(&bob, "/api/receive-image", &refuse(sha(&a)))
        .await;
    let (status2, nobodys) = app
        .post_json(&bob, "/api/receive-image", &refuse(sha(b"nobody")))
        .await;
    assert_eq!((status, &someone_elses), (status2, &nobodys));
    assert_eq!(status, 404, "{someone_elses}");
    assert_eq!(
        someone_elses,
        failure("服务器上没有您的这张图片，请发送图片数据")
    );
    assert_eq!(user_total(&app, &bob).await, 0);
    // Anonymous: 401; malformed: 400. Nothing stored by any of them.
    let (status, body) = app
        .post_json(&new_client(), "/api/receive-image", &refuse(sha(&a)))
        .await;
    assert_eq!((status, body), (401, failure("需要登录")));
    let (status, body) = app
        .post_json(&alice, "/api/receive-image", &refuse("12ab".into()))
        .await;
    assert_error_status(&(status, body), 400, "short hash");
    // A trashed capture is not one to capture again.
    batch(
        &app,
        &alice,
        &[
            first["imageId"].as_str().unwrap(),
            again["imageId"].as_str().unwrap(),
        ],
        "trash",
    )
    .await;
    let (status, _) = app
        .post_json(&alice, "/api/receive-image", &refuse(sha(&a)))
        .await;
    assert_eq!(status, 404);
    assert_unharmed(&mut app, total - 2).await;
}

#[tokio::test]
async fn a_replayed_capture_gets_its_first_answer_and_is_stored_once() {
    let mut app = spawn_app().await;
    let (alice, _) = app.user_client("alice").await;
    let (bob, _) = app.user_client("bob").await;
    let body = capture(&png(8, 8, 3), "p", "clothes");

    let (status, first, replayed) = keyed(&app, &alice, "capture-1", &body).await;
    assert_eq!((status, replayed), (200, false), "{first}");
    for _ in 0..2 {
        let (status, again, replayed) = keyed(&app, &alice, "capture-1", &body).await;
        assert_eq!((status, replayed), (200, true));
        assert_eq!(again, first);
    }
    assert_eq!(user_total(&app, &alice).await, 1);

    // The same key with another request: 409, nothing stored.
    let other = capture(&png(8, 8, 4), "p", "clothes");
    let (status, text, _) = keyed(&app, &alice, "capture-1", &other).await;
    let answer: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        (status, answer),
        (
            409,
            failure("该 Idempotency-Key 已用于另一个不同的上传请求")
        )
    );
    let mut moved = body.clone();
    moved["pageInfo"]["title"] = json!("another title");
    assert_eq!(keyed(&app, &alice, "capture-1", &moved).await.0, 409);
    assert_eq!(user_total(&app, &alice).await, 1);

    // Keys are the user's own: bob's "capture-1" is another capture.
    let (status, bobs, replayed) = keyed(&app, &bob, "capture-1", &body).await;
    assert_eq!((status, replayed), (200, false));
    assert_ne!(bobs, first);
    assert_eq!(user_total(&app, &bob).await, 1);

    // Anonymous captures are the admin's, and so are their keys.
    let anonymous = new_client();
    let (status, anon, _) = keyed(&app, &anonymous, "anon-1", &body).await;
    assert_eq!(status, 200, "{anon}");
    let (_, again, replayed) = keyed(&app, &new_client(), "anon-1", &body).await;
    assert_eq!((again, replayed), (anon.clone(), true));
    let admin = new_client();
    app.login(&admin, "admin", ADMIN_PASSWORD).await;
    assert_eq!(keyed(&app, &admin, "anon-1", &other).await.0, 409);
    assert_eq!(keyed(&app, &admin, "anon-1", &body).await.1, anon);

    // Multipart: a replay has another boundary, and is still the same capture.
    let file = png(9, 9, 5);
    let form = || {
        Form::new().text("category", "char").part(
            "file",
            Part::bytes(file.clone())
                .file_name("mine.png")
                .mime_str("image/png")
                .unwrap(),
        )
    };
    let upload = || async {
        let resp = alice
            .post(app.url("/api/upload-file"))
            .header("idempotency-key", "file-1")
            .multipart(form())
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    };
    let first_file = upload().await;
    assert_eq!(first_file.0, 200, "{}", first_file.1);
    assert_eq!(upload().await, first_file);
    assert_eq!(user_total(&app, &alice).await, 2);

    // Bad keys: 400 before anything is read or stored.
    let total = total_images(&app).await;
    for key in ["k".repeat(129), "tab\there".to_string(), String::new()] {
        let (status, text, _) = keyed(&app, &alice, &key, &body).await;
        let answer: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            (status, answer),
            (
                400,
                failure("Idempotency-Key 无效：应为1到128个可打印ASCII字符")
            ),
            "{key:?}"
        );
    }
    assert_eq!(keyed(&app, &alice, &"k".repeat(128), &body).await.0, 200);
    assert_unharmed(&mut app, total + 1).await;
}

#[tokio::test]
async fn concurrent_requests_with_one_key_store_one_image() {
    let app = spawn_app().await;
    let (alice, _) = app.user_client("alice").await;
    let body = capture(&png(64, 64, 6), "p", "clothes");
    let answers =
        futures_util::future::join_all((0..8).map(|_| keyed(&app, &alice, "together", &body)))
            .await;
    let first = &answers[0].1;
    for (status, text, _) in &answers {
        assert_eq!((*status, text), (200, first));
    }
    assert_eq!(answers.iter().filter(|a| !a.2).count(), 1);
    assert_eq!(user_total(&app, &alice).await, 1);
}

#[tokio::test]
async fn a_key_outlives_a_restart_and_a_kill() {
    let app = spawn_app().await;
    let (alice, _) = app.user_client("alice").await;
    let body = capture(&png(8, 8, 8), "p", "clothes");
    let (status, first, _) = keyed(&app, &alice, "survives", &body).await;
    assert_eq!(status, 200);
    let app = spawn_app_in(app.stop(), &[]).await;
    let alice = new_client();
    app.login(&alice, "alice", "password123").await;
    let (status, again, replayed) = keyed(&app, &alice, "survives", &body).await;
    assert_eq!(
        (status, again.as_str(), replayed),
        (200, first.as_str(), true)
    );

    // Acknowledged, then killed as a power cut would: the key was in the image's commit.
    let second = capture(&png(8, 8, 9), "q", "char");
    let (status, answer, _) = keyed(&app, &alice, "killed", &second).await;
    assert_eq!(status, 200);
    let app = spawn_app_in(app.kill(), &[]).await;
    let alice = new_client();
    app.login(&alice, "alice", "password123").await;
    assert_eq!(keyed(&app, &alice, "killed", &second).await.1, answer);
    assert_eq!(user_total(&app, &alice).await, 2);
}

/// The ids and capture counts of one `distinct=1` page, and its total.
async fn distinct(
    app: &TestApp,
    client: &reqwest::Client,
    query: &str,
) -> (Vec<(String, u64)>, u64) {
    let (status, body) = app
        .get_json(client, &format!("/api/user/images?distinct=1&{query}"))
        .await;
    assert_eq!(status, 200, "{query}: {body}");
    let shown = body["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["id"].as_str().unwrap().to_string(),
                i["captures"].as_u64().expect("captures"),
            )
        })
        .collect();
    (shown, body["total"].as_u64().unwrap())
}

#[tokio::test]
async fn identical_captures_collapse_into_one_content_through_trash_restore_and_delete() {
    let app = spawn_app().await;
    let (alice, _) = app.user_client("alice").await;
    let (bob, _) = app.user_client("bob").await;
    let (a, b, c) = (png(8, 8, 10), png(8, 8, 11), png(8, 8, 12));
    let mut ids = Vec::new();
    for (bytes, page, category) in [
        (&a, "a1", "clothes"),
        (&b, "b", "clothes"),
        (&a, "a2", "clothes"),
        (&c, "c", "char"),
        (&a, "a3", "char"),
    ] {
        let saved = save(&app, &alice, &capture(bytes, page, category)).await;
        ids.push(saved["imageId"].as_str().unwrap().to_string());
    }
    save(&app, &bob, &capture(&a, "bob", "clothes")).await;
    let [a1, b_id, a2, c_id, a3] = <[String; 5]>::try_from(ids).unwrap();
    let id = |s: &String, n: u64| (s.clone(), n);

    assert_eq!(
        distinct(&app, &alice, "").await,
        (vec![id(&a3, 3), id(&c_id, 1), id(&b_id, 1)], 3)
    );
    assert_eq!(
        distinct(&app, &alice, "page=2&per_page=2").await,
        (vec![id(&b_id, 1)], 3)
    );
    assert_eq!(
        distinct(&app, &alice, "category=clothes").await,
        (vec![id(&a2, 2), id(&b_id, 1)], 2)
    );
    assert_eq!(
        distinct(&app, &alice, "category=char&sort=newest").await,
        (vec![id(&a3, 1), id(&c_id, 1)], 2)
    );
    assert_eq!(distinct(&app, &alice, "category=none").await, (vec![], 0));
    assert_eq!(distinct(&app, &bob, "").await.1, 1);
    // The plain list still shows every capture.
    assert_eq!(app.list_ids(&alice, "").await.1, 5);
    for query in ["q=page", "tag=x", "from=2020-01-01", "sort=oldest"] {
        let (status, body) = app
            .get_json(&alice, &format!("/api/user/images?distinct=1&{query}"))
            .await;
        assert_eq!(
            (status, body),
            (
                400,
                failure("distinct=1 只能与 category、page、per_page 一起使用")
            ),
            "{query}"
        );
    }

    // Trashed captures are never counted; restored, they are again.
    batch(&app, &alice, &[&a3], "trash").await;
    assert_eq!(
        distinct(&app, &alice, "").await,
        (vec![id(&c_id, 1), id(&a2, 2), id(&b_id, 1)], 3)
    );
    assert_eq!(
        distinct(&app, &alice, "category=char").await,
        (vec![id(&c_id, 1)], 1)
    );
    let (status, _) = app
        .get_json(&alice, &format!("/api/user/images/{a3}/sources"))
        .await;
    assert_eq!(status, 404);
    batch(&app, &alice, &[&a3], "restore").await;
    assert_eq!(distinct(&app, &alice, "").await.0[0], id(&a3, 3));

    // Deleted for good: the content keeps its other captures, then goes with the last.
    batch(&app, &alice, &[&a2], "delete_forever").await;
    assert_eq!(
        distinct(&app, &alice, "category=clothes").await,
        (vec![id(&b_id, 1), id(&a1, 1)], 2)
    );
    let (_, sources) = app
        .get_json(&alice, &format!("/api/user/images/{a1}/sources"))
        .await;
    let seen: Vec<&str> = sources["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["page_url"].as_str().unwrap())
        .collect();
    assert_eq!(
        seen,
        ["https://pages.example/a3", "https://pages.example/a1"]
    );
    batch(&app, &alice, &[&a1, &a3], "delete_forever").await;
    assert_eq!(
        distinct(&app, &alice, "").await,
        (vec![id(&c_id, 1), id(&b_id, 1)], 2)
    );
    assert_eq!(distinct(&app, &bob, "").await.1, 1);
}
