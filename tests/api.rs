//! The seed API's success paths, field by field, against the real binary: accounts and sessions,
//! the three upload routes, listing, the file routes with ETags, tasks, delete, deduplication, and
//! a restart on the same data file.

mod common;

use common::*;
use imgvault::domain::BlobHash;
use imgvault::store::{DEFAULT_CACHE_BYTES, Store};
use serde_json::{Value, json};

fn is_display_time(v: &Value) -> bool {
    let s = v.as_str().unwrap_or("");
    chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").is_ok()
}

fn set_cookie(resp: &reqwest::Response) -> String {
    resp.headers()
        .get("set-cookie")
        .expect("set-cookie header")
        .to_str()
        .unwrap()
        .to_string()
}

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
async fn register_login_check_profile_and_logout_answer_as_the_seed_says() {
    let app = spawn_app().await;
    let client = new_client();

    let (status, reg) = app
        .post_json(
            &client,
            "/api/register",
            &json!({"username": "alice", "email": "alice@example.com", "password": "s3cret-pw"}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(reg["success"], true);
    assert_eq!(reg["message"], "注册成功");
    let user_id = reg["user_id"].as_str().unwrap().to_string();
    assert!(uuid::Uuid::parse_str(&user_id).is_ok(), "{user_id}");

    let (_, check) = app.get_json(&client, "/api/auth/check").await;
    assert_eq!(check, json!({"authenticated": false}));

    let resp = client
        .post(app.url("/api/login"))
        .json(&json!({"username": "alice", "password": "s3cret-pw"}))
        .send()
        .await
        .unwrap();
    let cookie = set_cookie(&resp);
    let (status, login) = status_and_json(resp).await;
    assert_eq!(status, 200);
    assert_eq!(
        login,
        json!({"success": true, "message": "登录成功",
               "user": {"user_id": user_id, "username": "alice", "email": "alice@example.com"}})
    );
    assert!(cookie.starts_with("session="), "{cookie}");
    for attr in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(cookie.contains(attr), "{cookie} lacks {attr}");
    }
    assert!(
        !cookie.contains("Max-Age"),
        "plain login is a browser-session cookie"
    );

    let (_, check) = app.get_json(&client, "/api/auth/check").await;
    assert_eq!(check["authenticated"], true);
    let user = &check["user"];
    assert_eq!(user["user_id"], user_id.as_str());
    assert_eq!(user["username"], "alice");
    assert_eq!(user["email"], "alice@example.com");
    assert!(is_display_time(&user["created_at"]), "{user}");
    assert!(is_display_time(&user["last_login"]), "{user}");
    assert_eq!(user["cloud_sync_enabled"], false);
    assert!(user.get("image_count").is_none());

    app.receive_image(&client, "image/png", &png(3, 3, 7), "char")
        .await;
    let (status, profile) = app.get_json(&client, "/api/user/profile").await;
    assert_eq!(status, 200);
    assert_eq!(profile["success"], true);
    assert_eq!(profile["user"]["image_count"], 1);
    assert_eq!(profile["user"]["username"], "alice");
    for body in [&reg, &login, &check, &profile] {
        let text = body.to_string();
        assert!(
            !text.contains("s3cret-pw") && !text.contains("password"),
            "{text}"
        );
    }

    let (status, out) = app.post_json(&client, "/api/logout", &json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(out, json!({"success": true, "message": "登出成功"}));
    let (status, body) = app.get_json(&client, "/api/user/profile").await;
    assert_eq!(status, 401);
    assert_eq!(body, json!({"success": false, "error": "需要登录"}));
}

#[tokio::test]
async fn remember_me_gives_a_seven_day_cookie() {
    let app = spawn_app().await;
    let client = new_client();
    app.register(&client, "bob", "password123").await;
    let resp = client
        .post(app.url("/api/login"))
        .json(&json!({"username": "bob", "password": "password123", "remember_me": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(set_cookie(&resp).contains("Max-Age=604800"));
}

#[tokio::test]
async fn admin_logs_in_with_the_configured_password() {
    let app = spawn_app().await;
    let user = app.login(&app.client, "admin", ADMIN_PASSWORD).await;
    assert_eq!(user["email"], "admin@local.com");
    let id = user["user_id"].as_str().unwrap();
    let suffix = id.strip_prefix("default-user-").expect(id);
    assert_eq!(suffix.len(), 8);
    assert!(
        suffix
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
    );
}

#[tokio::test]
async fn receive_image_stores_the_image_with_its_page_info() {
    let app = spawn_app().await;
    let (client, user_id) = app.user_client("carol").await;
    let bytes = png(40, 30, 2);
    let (status, up) = app
        .post_json(
            &client,
            "/api/receive-image",
            &json!({
                "imageData": data_url("image/png", &bytes),
                "originalUrl": "https://example.com/image.png",
                "category": "clothes",
                "pageInfo": {"url": "https://example.com/page", "title": "示例页面",
                             "imageContext": {"alt": "示例图片", "caption": "说明"}}
            }),
        )
        .await;
    assert_eq!(status, 200, "{up}");
    assert_eq!(up["success"], true);
    assert_eq!(up["isLoggedIn"], true);
    assert_eq!(up["category"], "clothes");
    assert_eq!(up["fileSize"], bytes.len());
    assert_eq!(up["message"], "图片已保存到 clothes 文件夹");
    assert!(up.get("originalFilename").is_none());
    let image_id = up["imageId"].as_str().unwrap();
    let uuid = image_id.strip_prefix("i-").unwrap();
    assert!(uuid::Uuid::parse_str(uuid).is_ok());
    assert!(up["taskId"].as_str().unwrap().starts_with("t-"));
    let filename = up["filename"].as_str().unwrap();
    let expected_tail = format!("_{}.png", &uuid.replace('-', "")[..8]);
    assert!(
        filename.starts_with("clothes_") && filename.ends_with(&expected_tail),
        "{filename}"
    );
    assert_eq!(filename.len(), "clothes_20250613_184530_87654321.png".len());

    let (status, list) = app.get_json(&client, "/api/user/images").await;
    assert_eq!(status, 200);
    assert_eq!(list["total"], 1);
    assert_eq!(list["page"], 1);
    assert_eq!(list["per_page"], 20);
    assert_eq!(list["pages"], 1);
    let img = &list["images"][0];
    assert_eq!(img["id"], image_id);
    assert_eq!(img["user_id"], user_id.as_str());
    assert_eq!(img["filename"], filename);
    assert_eq!(img["original_url"], "https://example.com/image.png");
    assert_eq!(img["page_url"], "https://example.com/page");
    assert_eq!(img["page_title"], "示例页面");
    assert!(is_display_time(&img["saved_at"]));
    assert_eq!(img["file_size"], bytes.len());
    assert_eq!(img["image_width"], 40);
    assert_eq!(img["image_height"], 30);
    assert_eq!(
        img["context_info"],
        json!({"alt": "示例图片", "caption": "说明", "category": "clothes"})
    );
    assert_eq!(img["status"], "saved");
    assert_eq!(img["cloud_synced"], false);
    assert_eq!(
        img["preview_url"],
        format!("/api/user/{user_id}/images/{filename}")
    );
    assert_eq!(
        img["thumbnail_url"],
        format!("/api/user/{user_id}/thumbnails/{filename}")
    );
}

#[tokio::test]
async fn clipboard_upload_takes_bare_base64_and_the_char_category() {
    let app = spawn_app().await;
    let (client, _) = app.user_client("dave").await;
    let bytes = jpeg(20, 10, 3);
    let (status, up) = app
        .post_json(
            &client,
            "/api/upload-clipboard",
            &json!({"imageData": b64(&bytes), "category": "char"}),
        )
        .await;
    assert_eq!(status, 200, "{up}");
    assert_eq!(up["category"], "char");
    assert_eq!(up["message"], "剪切板图片已保存到 char 文件夹");
    assert_eq!(up["isLoggedIn"], true);
    let filename = up["filename"].as_str().unwrap();
    assert!(
        filename.starts_with("char_") && filename.ends_with(".jpg"),
        "{filename}"
    );
}

#[tokio::test]
async fn anonymous_uploads_belong_to_admin_and_say_so() {
    let app = spawn_app().await;
    let (status, up) = app
        .receive_image(&new_client(), "image/png", &png(5, 5, 4), "shoes")
        .await;
    assert_eq!(status, 200);
    assert_eq!(up["isLoggedIn"], false);
    assert_eq!(up["category"], "clothes", "unknown categories fall back");
    assert_eq!(
        up["message"],
        "图片已保存到默认目录的clothes文件夹，建议登录以便管理您的图片"
    );
    let admin = new_client();
    app.login(&admin, "admin", ADMIN_PASSWORD).await;
    let (_, list) = app.get_json(&admin, "/api/user/images").await;
    assert_eq!(list["total"], 1);
    assert_eq!(list["images"][0]["id"], up["imageId"]);
}

#[tokio::test]
async fn upload_file_names_the_file_by_its_content_not_its_name() {
    let app = spawn_app().await;
    let (client, user_id) = app.user_client("erin").await;
    let bytes = jpeg(16, 12, 5);
    let form = reqwest::multipart::Form::new()
        .part(
            "file",
            reqwest::multipart::Part::bytes(bytes.clone())
                .file_name("holiday.png")
                .mime_str("image/png")
                .unwrap(),
        )
        .text("category", "char");
    let resp = client
        .post(app.url("/api/upload-file"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    let (status, up) = status_and_json(resp).await;
    assert_eq!(status, 200, "{up}");
    assert_eq!(up["originalFilename"], "holiday.png");
    assert_eq!(up["message"], "文件已上传到 char 文件夹");
    let filename = up["filename"].as_str().unwrap();
    assert!(filename.ends_with(".jpg"), "{filename}");

    let resp = client
        .get(app.url(&format!("/api/user/{user_id}/images/{filename}")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["content-type"], "image/jpeg");
    assert_eq!(resp.bytes().await.unwrap().as_ref(), bytes.as_slice());
    let (_, list) = app.get_json(&client, "/api/user/images").await;
    assert_eq!(
        list["images"][0]["context_info"]["original_filename"],
        "holiday.png"
    );
}

#[tokio::test]
async fn every_supported_format_is_accepted_with_its_dimensions() {
    let app = spawn_app().await;
    let (client, _) = app.user_client("fay").await;
    for (mime, bytes, ext) in [
        ("image/png", png(11, 7, 1), "png"),
        ("image/jpeg", jpeg(11, 7, 1), "jpg"),
        ("image/gif", gif(11, 7, 1), "gif"),
        ("image/webp", webp(11, 7, 1), "webp"),
    ] {
        let (status, up) = app.receive_image(&client, mime, &bytes, "clothes").await;
        assert_eq!(status, 200, "{mime}: {up}");
        assert!(up["filename"].as_str().unwrap().ends_with(ext));
    }
    let (_, list) = app.get_json(&client, "/api/user/images").await;
    assert_eq!(list["total"], 4);
    for img in list["images"].as_array().unwrap() {
        assert_eq!(
            (img["image_width"].clone(), img["image_height"].clone()),
            (json!(11), json!(7))
        );
    }
}

#[tokio::test]
async fn image_routes_serve_the_bytes_with_an_etag_and_304() {
    let app = spawn_app().await;
    let (client, user_id) = app.user_client("gus").await;
    let bytes = png(30, 20, 9);
    let (_, up) = app
        .receive_image(&client, "image/png", &bytes, "char")
        .await;
    let filename = up["filename"].as_str().unwrap();
    let etag = format!("\"{}\"", BlobHash::of(&bytes).to_hex());

    for path in [
        format!("/api/user/{user_id}/images/{filename}"),
        format!("/api/user/{user_id}/images/char/{filename}"),
    ] {
        let resp = client.get(app.url(&path)).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        assert_eq!(resp.headers()["content-type"], "image/png");
        assert_eq!(resp.headers()["etag"], etag.as_str());
        assert_eq!(resp.bytes().await.unwrap().as_ref(), bytes.as_slice());

        let resp = client
            .get(app.url(&path))
            .header("if-none-match", &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 304, "{path}");
        assert!(resp.bytes().await.unwrap().is_empty());
    }

    let (status, body) = app
        .get_json(
            &client,
            &format!("/api/user/{user_id}/images/clothes/{filename}"),
        )
        .await;
    assert_eq!((status, body), (404, json!({"error": "图片不存在"})));
    let (status, body) = app
        .get_json(
            &client,
            &format!("/api/user/{user_id}/images/shoes/{filename}"),
        )
        .await;
    assert_eq!(
        (status, body),
        (400, json!({"success": false, "error": "无效的分类"}))
    );
}

#[tokio::test]
async fn large_images_are_streamed_whole() {
    let app = spawn_app().await;
    let (client, user_id) = app.user_client("hal").await;
    // Noise does not compress: well over the 512 KiB that is sent in one piece.
    let bytes = png(900, 900, 11);
    assert!(bytes.len() > 1_000_000, "{}", bytes.len());
    let (status, up) = app
        .receive_image(&client, "image/png", &bytes, "clothes")
        .await;
    assert_eq!(status, 200);
    let resp = client
        .get(app.url(&format!(
            "/api/user/{user_id}/images/{}",
            up["filename"].as_str().unwrap()
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-length"],
        bytes.len().to_string().as_str()
    );
    let got = resp.bytes().await.unwrap();
    assert!(got.as_ref() == bytes.as_slice(), "streamed bytes differ");
}

#[tokio::test]
async fn byte_ranges_are_served_with_206_and_the_exact_bytes() {
    let app = spawn_app().await;
    let (client, user_id) = app.user_client("ray").await;
    let bytes = png(900, 900, 12);
    let n = bytes.len();
    let (_, up) = app
        .receive_image(&client, "image/png", &bytes, "clothes")
        .await;
    let url = app.url(&format!(
        "/api/user/{user_id}/images/{}",
        up["filename"].as_str().unwrap()
    ));
    let whole = client.get(&url).send().await.unwrap();
    assert_eq!(whole.headers()["accept-ranges"], "bytes");
    let tag = whole.headers()["etag"].to_str().unwrap().to_string();
    // Within a chunk, across the 32 KiB chunk boundary, open-ended, a suffix, the last byte, and a
    // range longer than the 512 KiB piece that is streamed.
    for (range, first, last) in [
        ("bytes=0-99", 0, 99),
        ("bytes=32760-32800", 32760, 32800),
        ("bytes=1000-", 1000, n - 1),
        ("bytes=-50", n - 50, n - 1),
        (&*format!("bytes={}-{}", n - 1, n + 100), n - 1, n - 1),
        ("bytes=5-700000", 5, 700_000),
    ] {
        let resp = client
            .get(&url)
            .header("range", range)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 206, "{range}");
        assert_eq!(
            resp.headers()["content-range"],
            format!("bytes {first}-{last}/{n}").as_str(),
            "{range}"
        );
        assert_eq!(
            resp.headers()["content-length"],
            (last - first + 1).to_string().as_str()
        );
        let got = resp.bytes().await.unwrap();
        assert!(got.as_ref() == &bytes[first..=last], "{range}: wrong bytes");
    }
    let past = client
        .get(&url)
        .header("range", format!("bytes={n}-"))
        .send()
        .await
        .unwrap();
    assert_eq!(past.status(), 416);
    assert_eq!(
        past.headers()["content-range"],
        format!("bytes */{n}").as_str()
    );
    // An If-Range naming another version, or several ranges: the whole file.
    let stale = client
        .get(&url)
        .header("range", "bytes=0-1")
        .header("if-range", "\"stale\"")
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), 200);
    assert_eq!(stale.bytes().await.unwrap().len(), n);
    let multi = client
        .get(&url)
        .header("range", "bytes=0-1,5-6")
        .send()
        .await
        .unwrap();
    assert_eq!(multi.status(), 200);
    let same = client
        .get(&url)
        .header("range", "bytes=0-1")
        .header("if-range", &tag)
        .send()
        .await
        .unwrap();
    assert_eq!(same.status(), 206);
}

#[tokio::test]
async fn upload_tasks_go_from_processing_to_completed() {
    let app = spawn_app().await;
    let (status, up) = app
        .receive_image(&app.client, "image/png", &png(64, 64, 1), "clothes")
        .await;
    assert_eq!(status, 200);
    let task = app.wait_task(up["taskId"].as_str().unwrap()).await;
    let t = &task["status"];
    assert_eq!(t["status"], "completed", "{task}");
    assert_eq!(t["task_id"], up["taskId"]);
    assert_eq!(t["image_id"], up["imageId"]);
    assert!(t["user_id"].as_str().unwrap().starts_with("default-user-"));
    assert!(is_display_time(&t["created_at"]) && is_display_time(&t["updated_at"]));
}

#[tokio::test]
async fn a_corrupt_image_body_fails_its_task_with_a_reason() {
    let app = spawn_app().await;
    // A complete PNG container whose compressed pixel data is garbage: accepted at the door,
    // refused by the full decode in the background.
    let mut bytes = png(32, 32, 3);
    let idat = bytes.windows(4).position(|w| w == b"IDAT").unwrap();
    for b in &mut bytes[idat + 4..idat + 40] {
        *b ^= 0x5A;
    }
    let (status, up) = app
        .receive_image(&app.client, "image/png", &bytes, "clothes")
        .await;
    assert_eq!(status, 200, "{up}");
    let task = app.wait_task(up["taskId"].as_str().unwrap()).await;
    assert_eq!(task["status"]["status"], "failed", "{task}");
    assert!(!task["status"]["error"].as_str().unwrap().is_empty());
}

#[tokio::test]
async fn pages_are_newest_first_and_per_page_is_bounded() {
    let app = spawn_app().await;
    let (client, _) = app.user_client("ivy").await;
    let mut ids = Vec::new();
    for i in 0..25 {
        let (_, up) = app
            .receive_image(&client, "image/png", &png(2, 2, i), "clothes")
            .await;
        ids.push(up["imageId"].as_str().unwrap().to_string());
    }
    ids.reverse();
    let mut seen = Vec::new();
    for page in 1..=3 {
        let (_, list) = app
            .get_json(
                &client,
                &format!("/api/user/images?page={page}&per_page=10"),
            )
            .await;
        assert_eq!(list["total"], 25);
        assert_eq!(list["pages"], 3);
        assert_eq!(list["page"], page);
        for img in list["images"].as_array().unwrap() {
            seen.push(img["id"].as_str().unwrap().to_string());
        }
    }
    assert_eq!(seen, ids, "every image once, newest first");

    let (_, list) = app
        .get_json(&client, "/api/user/images?per_page=1000")
        .await;
    assert_eq!(list["per_page"], 100);
    let (_, list) = app
        .get_json(&client, "/api/user/images?page=abc&per_page=-3")
        .await;
    assert_eq!(
        (list["page"].clone(), list["per_page"].clone()),
        (json!(1), json!(20))
    );
    let (_, list) = app.get_json(&client, "/api/user/images?page=9").await;
    assert_eq!(list["images"], json!([]));
    assert_eq!(list["total"], 25);
}

#[tokio::test]
async fn delete_removes_the_image_and_updates_every_count() {
    let app = spawn_app().await;
    let (client, user_id) = app.user_client("jon").await;
    let (_, keep) = app
        .receive_image(&client, "image/png", &png(3, 3, 1), "clothes")
        .await;
    let (_, gone) = app
        .receive_image(&client, "image/png", &png(3, 3, 2), "clothes")
        .await;
    let id = gone["imageId"].as_str().unwrap();

    let resp = client
        .delete(app.url(&format!("/api/user/images/{id}")))
        .send()
        .await
        .unwrap();
    let (status, body) = status_and_json(resp).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["success"], true);
    assert_eq!(body["imageId"], id);

    let (_, profile) = app.get_json(&client, "/api/user/profile").await;
    assert_eq!(profile["user"]["image_count"], 1);
    let (_, status_body) = app.get_json(&client, "/api/status").await;
    assert_eq!(status_body["total_images"], 1);
    let (_, list) = app.get_json(&client, "/api/user/images").await;
    assert_eq!(list["total"], 1);
    assert_eq!(list["images"][0]["id"], keep["imageId"]);
    let (status, _) = app
        .get_json(
            &client,
            &format!(
                "/api/user/{user_id}/images/{}",
                gone["filename"].as_str().unwrap()
            ),
        )
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn identical_bytes_from_two_users_are_stored_once_and_deleted_independently() {
    let app = spawn_app().await;
    let (ann, ann_id) = app.user_client("ann").await;
    let (ben, ben_id) = app.user_client("ben").await;
    let bytes = png(50, 50, 42);
    let (_, a) = app
        .receive_image(&ann, "image/png", &bytes, "clothes")
        .await;
    let (_, b) = app.receive_image(&ben, "image/png", &bytes, "char").await;

    let resp = ann
        .delete(app.url(&format!(
            "/api/user/images/{}",
            a["imageId"].as_str().unwrap()
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = ben
        .get(app.url(&format!(
            "/api/user/{ben_id}/images/{}",
            b["filename"].as_str().unwrap()
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.bytes().await.unwrap().as_ref(), bytes.as_slice());
    let (status, _) = app
        .get_json(
            &ann,
            &format!(
                "/api/user/{ann_id}/images/{}",
                a["filename"].as_str().unwrap()
            ),
        )
        .await;
    assert_eq!(status, 404);

    // Upload it again for ann, then look inside the data file: one blob, two references.
    app.receive_image(&ann, "image/png", &bytes, "clothes")
        .await;
    let dir = app.stop();
    let store = Store::open(&data_path(dir.path()), DEFAULT_CACHE_BYTES).unwrap();
    let blob = store
        .blob(&BlobHash::of(&bytes))
        .unwrap()
        .expect("blob kept");
    assert_eq!(blob.record.refs, 2);
    assert_eq!(blob.record.size, bytes.len() as u64);
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

#[tokio::test]
async fn cloud_sync_answers_disabled() {
    let app = spawn_app().await;
    let (client, _) = app.user_client("lea").await;
    let (status, body) = app.post_json(&client, "/api/cloud/sync", &json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"success": false, "error": "云端同步功能已禁用"})
    );
    let (status, _) = app
        .post_json(&new_client(), "/api/cloud/sync", &json!({}))
        .await;
    assert_eq!(status, 401);
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

#[tokio::test]
async fn the_root_serves_an_embedded_page_with_a_strict_csp() {
    let app = spawn_app().await;
    let resp = app.client.get(app.url("/")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let csp = resp.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-eval"),
        "{csp}"
    );
    assert!(resp.text().await.unwrap().contains("imgvault"));
}
