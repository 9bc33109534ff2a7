//! Near-duplicates against the real binary: `GET /api/user/images/{id}/similar` finds the caller's
//! resized and recompressed copies of an image nearest first (identical bytes at distance 0), never
//! another user's images, refuses a bad `max_distance`, and says clearly when an image has no
//! hash; `GET /api/user/duplicates` groups them.

mod common;

use common::*;
use imgvault::domain::BlobHash;
use imgvault::store::records::ThumbRecord;
use imgvault::store::{DEFAULT_CACHE_BYTES, Store};
use serde_json::{Value, json};

/// A photograph-like scene: soft shapes of different brightness over a gradient, with fine noise.
/// `seed` changes the layout.
fn scene(w: u32, h: u32, seed: u32) -> image::RgbImage {
    let r = |i: u32, k: u32| {
        let v = (seed.wrapping_mul(2_654_435_761) ^ (i * 7 + k).wrapping_mul(40_503))
            .wrapping_mul(2_246_822_519);
        (v >> 8) as f32 / (1u32 << 24) as f32
    };
    let blobs: Vec<(f32, f32, f32, [f32; 3])> = (0..6)
        .map(|i| {
            (
                r(i, 1),
                r(i, 2),
                0.1 + 0.25 * r(i, 3),
                [r(i, 4), r(i, 5), r(i, 6)].map(|c| c * 255.0),
            )
        })
        .collect();
    image::RgbImage::from_fn(w, h, |x, y| {
        let (fx, fy) = (x as f32 / w as f32, y as f32 / h as f32);
        let mut c = [fy * 120.0 + 40.0, fx * 80.0 + 60.0, 150.0];
        for &(bx, by, radius, colour) in &blobs {
            let d = ((fx - bx).powi(2) + (fy - by).powi(2)).sqrt();
            let t = (1.0 - d / radius).clamp(0.0, 1.0);
            for k in 0..3 {
                c[k] = c[k] * (1.0 - t) + colour[k] * t;
            }
        }
        let noise = ((x.wrapping_mul(73_856_093) ^ y.wrapping_mul(19_349_663)) % 9) as f32;
        image::Rgb(c.map(|v| (v + noise - 4.0).clamp(0.0, 255.0) as u8))
    })
}

fn jpeg_of(image: &image::RgbImage, quality: u8) -> Vec<u8> {
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality)
        .encode_image(image)
        .unwrap();
    out
}

fn png_of(image: &image::RgbImage) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    image.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

/// Uploads `bytes` and waits for its processing (thumbnail and hash) to end; the image id.
async fn upload(app: &TestApp, client: &reqwest::Client, mime: &str, bytes: &[u8]) -> String {
    let (status, body) = app.receive_image(client, mime, bytes, "clothes").await;
    assert_eq!(status, 200, "{body}");
    let task = app.wait_task(body["taskId"].as_str().unwrap()).await;
    assert_eq!(task["status"]["status"], "completed", "{task}");
    body["imageId"].as_str().unwrap().to_string()
}

async fn similar(app: &TestApp, client: &reqwest::Client, id: &str, query: &str) -> (u16, Value) {
    app.get_json(client, &format!("/api/user/images/{id}/similar{query}"))
        .await
}

/// (id, distance) of each match, in order.
fn matches(body: &Value) -> Vec<(String, u64)> {
    body["images"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"))
        .iter()
        .map(|i| {
            (
                i["id"].as_str().unwrap().to_string(),
                i["distance"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[tokio::test]
async fn copies_of_an_image_are_found_nearest_first_and_only_the_callers() {
    let app = spawn_app().await;
    let (alice, _) = app.user_client("alice").await;
    let (bob, _) = app.user_client("bob").await;

    let photo = scene(800, 600, 1);
    let original = upload(&app, &alice, "image/jpeg", &jpeg_of(&photo, 90)).await;
    let same_bytes = upload(&app, &alice, "image/jpeg", &jpeg_of(&photo, 90)).await;
    let small = image::imageops::resize(&photo, 400, 300, image::imageops::Triangle);
    let resized = upload(&app, &alice, "image/jpeg", &jpeg_of(&small, 60)).await;
    let as_png = upload(&app, &alice, "image/png", &png_of(&photo)).await;
    let other = upload(
        &app,
        &alice,
        "image/jpeg",
        &jpeg_of(&scene(800, 600, 2), 90),
    )
    .await;
    // Bob's copy of the very same bytes is his alone.
    let bobs = upload(&app, &bob, "image/jpeg", &jpeg_of(&photo, 90)).await;

    let (status, body) = similar(&app, &alice, &original, "").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["max_distance"].clone(), body["pending"].clone()),
        (json!(10), json!(false))
    );
    let found = matches(&body);
    assert!(
        found.contains(&(same_bytes.clone(), 0)),
        "identical bytes at 0: {body}"
    );
    let ids: Vec<&str> = found.iter().map(|(id, _)| id.as_str()).collect();
    assert!(ids.contains(&resized.as_str()), "{body}");
    assert!(ids.contains(&as_png.as_str()), "{body}");
    assert!(
        !ids.contains(&original.as_str()),
        "the image itself is left out"
    );
    assert!(!ids.contains(&other.as_str()), "{body}");
    assert!(!ids.contains(&bobs.as_str()), "{body}");
    assert!(
        found.windows(2).all(|w| w[0].1 <= w[1].1),
        "nearest first: {body}"
    );
    // Ties go newest first.
    let newest_first: Vec<&str> = [as_png.as_str(), resized.as_str(), same_bytes.as_str()]
        .into_iter()
        .filter(|id| found.iter().any(|(f, d)| f == id && *d == found[0].1))
        .collect();
    let tied: Vec<&str> = found
        .iter()
        .take_while(|(_, d)| *d == found[0].1)
        .map(|(id, _)| id.as_str())
        .collect();
    assert_eq!(tied, newest_first, "{body}");
    // Each match is an image object like the list's, plus its distance.
    let first = &body["images"][0];
    for field in [
        "filename",
        "thumbnail_url",
        "preview_url",
        "saved_at",
        "image_width",
    ] {
        assert!(!first[field].is_null(), "{field} in {first}");
    }
    // A larger distance may take in the other photo; `limit` cuts the list.
    let (_, wide) = similar(&app, &alice, &original, "?max_distance=32&limit=2").await;
    assert_eq!(matches(&wide).len(), 2);
    let (_, exact) = similar(&app, &alice, &original, "?max_distance=0").await;
    assert!(
        matches(&exact).contains(&(same_bytes.clone(), 0)),
        "{exact}"
    );

    // Bob sees only his own: his copy has no near-duplicate of his, and Alice's image is not his.
    let (status, body) = similar(&app, &bob, &bobs, "").await;
    assert_eq!((status, matches(&body)), (200, vec![]), "{body}");
    let (status, body) = similar(&app, &bob, &original, "").await;
    assert_eq!((status, body), (403, json!({"error": "权限不足"})));
    let (status, body) = similar(&app, &alice, "i-missing", "").await;
    assert_eq!((status, body), (404, json!({"error": "图片不存在"})));

    // Trashed copies drop out, restored ones come back.
    let (status, _) = app
        .post_json(
            &alice,
            "/api/user/images/batch",
            &json!({"ids": [same_bytes], "action": "trash"}),
        )
        .await;
    assert_eq!(status, 200);
    let (_, body) = similar(&app, &alice, &original, "").await;
    assert!(
        matches(&body).iter().all(|(id, _)| *id != same_bytes),
        "{body}"
    );

    // The groups page: the four copies left form one group; the other photo is in none.
    let (status, body) = app.get_json(&alice, "/api/user/duplicates").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["total_groups"], 1, "{body}");
    assert_eq!(body["groups"][0]["size"], 3, "{body}");
    let grouped: Vec<&str> = body["groups"][0]["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        grouped,
        [as_png.as_str(), resized.as_str(), original.as_str()],
        "newest first"
    );
    let (_, bobs_groups) = app.get_json(&bob, "/api/user/duplicates").await;
    assert_eq!(bobs_groups["total_groups"], 0, "{bobs_groups}");

    // Anonymous callers get the seed's 401.
    let (status, _) = similar(&app, &new_client(), &original, "").await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn a_bad_distance_or_limit_is_refused_with_a_clear_400() {
    let app = spawn_app().await;
    let (alice, _) = app.user_client("alice").await;
    let id = upload(&app, &alice, "image/png", &png(64, 64, 1)).await;
    for query in [
        "?max_distance=33",
        "?max_distance=-1",
        "?max_distance=abc",
        "?max_distance=",
        "?max_distance=99999999999999999999999",
        "?limit=0",
        "?limit=201",
    ] {
        let (status, body) = similar(&app, &alice, &id, query).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["success"], false, "{body}");
        assert!(
            body["error"].as_str().unwrap().contains("之间的整数"),
            "{body}"
        );
    }
    for query in [
        "?max_distance=13",
        "?per_page=0",
        "?per_group=51",
        "?page=0",
    ] {
        let (status, body) = app
            .get_json(&alice, &format!("/api/user/duplicates{query}"))
            .await;
        assert_eq!(status, 400, "{query}: {body}");
    }
    let (status, _) = similar(&app, &alice, &id, "?max_distance=32").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn an_image_without_a_hash_gets_a_clear_answer() {
    // A data file with two images the server cannot hash: one whose bytes do not decode (its
    // thumbnail failed), one whose bytes are lost (it stays without a hash).
    let app = spawn_app().await;
    let (_, alice_id) = app.user_client("alice").await;
    let dir = app.stop();
    let data = data_path(dir.path());
    let (broken, lost) = {
        let store = Store::open(&data, DEFAULT_CACHE_BYTES).unwrap();
        let mut ids = Vec::new();
        for (n, bytes) in [b"not an image".as_slice(), b"lost bytes"]
            .iter()
            .enumerate()
        {
            let id = format!("i-{n}");
            let blob = BlobHash::of(bytes);
            let image = imgvault::store::records::ImageRecord {
                id: id.as_str().into(),
                user_id: alice_id.as_str().into(),
                filename: format!("clothes_{n}.png"),
                category: imgvault::domain::Category::Clothes,
                kind: imgvault::media::ImageKind::Png,
                blob,
                original_url: None,
                page_url: None,
                page_title: None,
                context_json: None,
                saved_at: 1 + n as i64,
                file_size: bytes.len() as u64,
                width: 1,
                height: 1,
                cloud_synced: false,
                task_id: format!("t-{n}").as_str().into(),
                tags: Vec::new(),
                trashed_at: None,
                original: None,
                hub_stale: false,
            };
            let task = imgvault::store::records::TaskRecord {
                task_id: image.task_id.clone(),
                user_id: alice_id.as_str().into(),
                image_id: image.id.clone(),
                status: imgvault::store::records::TaskStatus::Completed,
                error: None,
                created_at: 1,
                updated_at: 1,
            };
            store.save_image(&image, bytes, &task).unwrap();
            store.finish_task(&task.task_id, Ok(()), 2).unwrap();
            let thumb = if n == 0 {
                ThumbRecord::Failed {
                    reason: "图片解码失败".into(),
                }
            } else {
                ThumbRecord::Ready {
                    blob,
                    kind: imgvault::media::ImageKind::Png,
                    width: 1,
                    height: 1,
                    max_side: 512,
                }
            };
            store.put_thumbnail(&blob, &thumb, &[], None).unwrap();
            ids.push(id);
        }
        drop(store);
        // The second image's bytes are gone from the file.
        let db = redb::Database::create(&data).unwrap();
        let tx = db.begin_write().unwrap();
        tx.open_table(imgvault::store::tables::BLOB_CHUNKS)
            .unwrap()
            .remove((&BlobHash::of(b"lost bytes").0, 0u32))
            .unwrap();
        tx.commit().unwrap();
        (ids[0].clone(), ids[1].clone())
    };
    let app = spawn_app_in(dir, &[]).await;
    let alice = new_client();
    app.login(&alice, "alice", "password123").await;
    let (status, body) = similar(&app, &alice, &broken, "").await;
    assert_eq!(
        (status, body),
        (
            422,
            json!({"success": false, "error": "图片无法解码，无法查找相似图片"})
        )
    );
    let (status, body) = similar(&app, &alice, &lost, "").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["pending"], true, "{body}");
    assert_eq!(body["images"], json!([]));
    assert!(
        body["message"].as_str().unwrap().contains("处理中"),
        "{body}"
    );
    let (_, groups) = app.get_json(&alice, "/api/user/duplicates").await;
    assert_eq!(
        (groups["total_groups"].clone(), groups["pending"].clone()),
        (json!(0), json!(1))
    );
}

#[tokio::test]
async fn images_stored_before_hashes_are_hashed_in_the_background_after_a_restart() {
    let app = spawn_app().await;
    let (alice, _) = app.user_client("alice").await;
    let photo = scene(640, 480, 5);
    let original = upload(&app, &alice, "image/jpeg", &jpeg_of(&photo, 90)).await;
    let small = image::imageops::resize(&photo, 320, 240, image::imageops::Triangle);
    let copy = upload(&app, &alice, "image/jpeg", &jpeg_of(&small, 70)).await;
    let (_, before) = similar(&app, &alice, &original, "").await;
    let dir = app.stop();
    // What an older data file holds: thumbnails, no hashes.
    {
        let db = redb::Database::create(data_path(dir.path())).unwrap();
        let tx = db.begin_write().unwrap();
        {
            let mut hashes = tx.open_table(imgvault::store::tables::PHASHES).unwrap();
            hashes.retain(|_, _| false).unwrap();
        }
        tx.commit().unwrap();
    }
    let report = Store::open(&data_path(dir.path()), DEFAULT_CACHE_BYTES)
        .unwrap()
        .check()
        .unwrap();
    assert_eq!((report.phashes, report.unhashed), (0, 2));
    let app = spawn_app_in(dir, &[]).await;
    let alice = new_client();
    app.login(&alice, "alice", "password123").await;
    // The background pass gets to them: the answer leaves `pending` and finds the copy again.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    let after = loop {
        let (status, body) = similar(&app, &alice, &original, "").await;
        assert_eq!(status, 200, "{body}");
        if body["pending"] == false {
            break body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never hashed: {body}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(
        matches(&after),
        matches(&before),
        "the same hashes as made at upload"
    );
    assert!(matches(&after).iter().any(|(id, _)| *id == copy));
}
