//! `POST /api/user/images/{id}/edit` and `/revert` against the real binary: the image's URLs
//! serve the edited bytes and thumbnail under the same id and name, a second edit applies to the
//! first, revert brings back the upload byte for byte, and bad edits change nothing.

mod common;
#[path = "../benches/common/images.rs"]
mod images;

use common::*;
use imgvault::domain::BlobHash;
use imgvault::store::{DEFAULT_CACHE_BYTES, Store};
use serde_json::{Value, json};

/// A 64×48 JPEG, white with a red top-left quarter: block-aligned, so quarter turns are lossless.
fn marked_jpeg() -> Vec<u8> {
    let img = image::RgbImage::from_fn(64, 48, |x, y| {
        if x < 32 && y < 24 {
            image::Rgb([230, 20, 20])
        } else {
            image::Rgb([250, 250, 250])
        }
    });
    let mut out = std::io::Cursor::new(Vec::new());
    image::DynamicImage::from(img)
        .write_to(&mut out, image::ImageFormat::Jpeg)
        .unwrap();
    out.into_inner()
}

fn animated_gif() -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut encoder = image::codecs::gif::GifEncoder::new(&mut out);
        for shade in [0u8, 255] {
            let frame = image::RgbaImage::from_pixel(8, 8, image::Rgba([shade, 0, 0, 255]));
            encoder.encode_frame(image::Frame::new(frame)).unwrap();
        }
    }
    out
}

async fn post(
    app: &TestApp,
    client: &reqwest::Client,
    id: &str,
    what: &str,
    body: Value,
) -> (u16, Value) {
    app.post_json(client, &format!("/api/user/images/{id}/{what}"), &body)
        .await
}

/// The image object of `id` in the caller's list.
async fn listed(app: &TestApp, client: &reqwest::Client, id: &str) -> Value {
    let (_, body) = app.get_json(client, "/api/user/images?per_page=100").await;
    body["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == id)
        .cloned()
        .unwrap_or_else(|| panic!("{id} not listed: {body}"))
}

fn is_red(p: &image::Rgb<u8>) -> bool {
    p[0] > 180 && p[1] < 80 && p[2] < 80
}

#[tokio::test]
async fn an_edit_replaces_what_the_image_serves_and_revert_brings_the_upload_back() {
    let app = spawn_app().await;
    let (alice, _) = app.user_client("alice").await;
    let original = marked_jpeg();
    let (status, up) = app
        .receive_image(&alice, "image/jpeg", &original, "clothes")
        .await;
    assert_eq!(status, 200, "{up}");
    let id = up["imageId"].as_str().unwrap().to_string();
    app.wait_task(up["taskId"].as_str().unwrap()).await;
    let before = listed(&app, &alice, &id).await;
    assert_eq!(before["edited"], false);

    // A quarter turn clockwise: 48×64, the red corner now top-right.
    let (status, body) = post(&app, &alice, &id, "edit", json!({"rotate": 90})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["success"], true);
    assert_eq!(body["message"], "图片已编辑");
    let image = &body["image"];
    assert_eq!(
        (image["id"].as_str(), &image["edited"]),
        (Some(id.as_str()), &json!(true))
    );
    assert_eq!(
        (
            image["image_width"].as_u64(),
            image["image_height"].as_u64()
        ),
        (Some(48), Some(64))
    );
    assert_eq!(image["preview_url"], before["preview_url"]);
    let served = app
        .get_bytes(&alice, image["preview_url"].as_str().unwrap())
        .await;
    assert_ne!(&served[..], &original[..]);
    assert_eq!(image["file_size"].as_u64(), Some(served.len() as u64));
    let turned = image::load_from_memory(&served).unwrap().to_rgb8();
    assert_eq!(turned.dimensions(), (48, 64));
    assert!(is_red(turned.get_pixel(40, 4)), "top right");
    assert!(!is_red(turned.get_pixel(4, 4)), "top left");
    let thumb = app
        .get_bytes(&alice, image["thumbnail_url"].as_str().unwrap())
        .await;
    assert_eq!(
        image::load_from_memory(&thumb)
            .unwrap()
            .to_rgb8()
            .dimensions(),
        (48, 64)
    );
    assert_eq!(listed(&app, &alice, &id).await["edited"], true);

    // A second edit applies to the edited image: mirror it back left-right, keep the top half.
    let (status, body) = post(
        &app,
        &alice,
        &id,
        "edit",
        json!({"flip": "h", "crop": {"x": 0, "y": 0, "width": 48, "height": 32}}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (
            body["image"]["image_width"].as_u64(),
            body["image"]["image_height"].as_u64()
        ),
        (Some(48), Some(32))
    );
    let served = app
        .get_bytes(&alice, body["image"]["preview_url"].as_str().unwrap())
        .await;
    let cropped = image::load_from_memory(&served).unwrap().to_rgb8();
    assert_eq!(cropped.dimensions(), (48, 32));
    assert!(is_red(cropped.get_pixel(4, 4)), "mirrored back to the left");

    // Revert: the upload, byte for byte, under the same URL.
    let (status, body) = post(&app, &alice, &id, "revert", json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["message"], "图片已还原");
    assert_eq!(body["image"]["edited"], false);
    assert_eq!(
        (
            body["image"]["image_width"].as_u64(),
            body["image"]["image_height"].as_u64()
        ),
        (Some(64), Some(48))
    );
    let served = app
        .get_bytes(&alice, body["image"]["preview_url"].as_str().unwrap())
        .await;
    assert_eq!(&served[..], &original[..]);
    let (status, body) = post(&app, &alice, &id, "revert", json!({})).await;
    assert_eq!(
        (status, &body["error"]),
        (400, &json!("图片未被编辑过，无需还原"))
    );

    // Edited again and deleted for good: every blob goes, the file checks clean.
    assert_eq!(
        post(&app, &alice, &id, "edit", json!({"rotate": 180}))
            .await
            .0,
        200
    );
    let (_, done) = app
        .post_json(
            &alice,
            "/api/user/images/batch",
            &json!({"ids": [id], "action": "delete_forever"}),
        )
        .await;
    assert_eq!(done["changed"], 1);
    let dir = app.stop();
    let store = Store::open(&data_path(dir.path()), DEFAULT_CACHE_BYTES).unwrap();
    assert!(store.blob(&BlobHash::of(&original)).unwrap().is_none());
    let report = store.check().unwrap();
    assert!(report.is_clean(), "{:?}", report.problems);
    assert_eq!((report.images, report.blobs), (0, 0));
}

#[tokio::test]
async fn bad_edits_are_refused_and_change_nothing() {
    let app = spawn_app().await;
    let (alice, _) = app.user_client("alice").await;
    let (bob, _) = app.user_client("bob").await;
    let jpeg_bytes = marked_jpeg();
    let (_, up) = app
        .receive_image(&alice, "image/jpeg", &jpeg_bytes, "clothes")
        .await;
    let id = up["imageId"].as_str().unwrap().to_string();
    let gif_bytes = animated_gif();
    let (status, gif_up) = app
        .receive_image(&alice, "image/gif", &gif_bytes, "char")
        .await;
    assert_eq!(status, 200, "{gif_up}");
    let gif = gif_up["imageId"].as_str().unwrap().to_string();

    for (body, error) in [
        (
            json!({"crop": {"x": 40, "y": 0, "width": 30, "height": 10}}),
            "裁剪区域超出图片范围",
        ),
        (
            json!({"crop": {"x": 0, "y": 0, "width": 0, "height": 10}}),
            "裁剪区域的宽和高必须大于 0",
        ),
        (
            json!({"crop": {"x": -1, "y": 0, "width": 5, "height": 5}}),
            "crop 需要 x、y、width、height 四个非负整数",
        ),
        (json!({"rotate": 45}), "rotate 只能是 90、180 或 270"),
        (json!({"flip": "x"}), "flip 只能是 \"h\" 或 \"v\""),
        (json!({}), "没有要做的修改"),
        (
            json!({"crop": {"x": 0, "y": 0, "width": 64, "height": 48}}),
            "没有要做的修改",
        ),
    ] {
        let (status, answer) = post(&app, &alice, &id, "edit", body.clone()).await;
        assert_eq!((status, answer), (400, failure(error)), "{body}");
    }
    let (status, answer) = post(&app, &alice, &gif, "edit", json!({"rotate": 90})).await;
    assert_eq!((status, answer), (400, failure("动图不支持编辑")));
    assert_eq!(
        post(&app, &bob, &id, "edit", json!({"rotate": 90})).await.0,
        403
    );
    assert_eq!(
        post(&app, &alice, "i-unknown", "edit", json!({"rotate": 90}))
            .await
            .0,
        404
    );
    assert_eq!(post(&app, &bob, &id, "revert", json!({})).await.0, 403);

    // Nothing changed: same bytes, same size, not edited.
    let image = listed(&app, &alice, &id).await;
    assert_eq!(image["edited"], false);
    let served = app
        .get_bytes(&alice, image["preview_url"].as_str().unwrap())
        .await;
    assert_eq!(&served[..], &jpeg_bytes[..]);
    let served = app
        .get_bytes(
            &alice,
            listed(&app, &alice, &gif).await["preview_url"]
                .as_str()
                .unwrap(),
        )
        .await;
    assert_eq!(&served[..], &gif_bytes[..]);

    // A trashed image cannot be edited.
    let resp = alice
        .delete(app.url(&format!("/api/user/images/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        post(&app, &alice, &id, "edit", json!({"rotate": 90}))
            .await
            .0,
        404
    );
}

/// A smooth `w`×`h` PNG: small on the wire, large once decoded.
fn gradient_png(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([(x / 32) as u8, (y / 32) as u8, 128])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    image::DynamicImage::from(img)
        .write_to(&mut out, image::ImageFormat::Png)
        .unwrap();
    out.into_inner()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn edits_of_large_images_at_once_stay_within_the_memory_budget() {
    let app = spawn_app().await;
    let (alice, _) = app.user_client("alice").await;
    // A 12 MP phone photo: 36 MB decoded, about 60 MB to edit: one fits the default budget.
    let fits = images::photo_jpeg_420(4000, 3000);
    let (status, up) = app
        .receive_image(&alice, "image/jpeg", &fits, "clothes")
        .await;
    assert_eq!(status, 200, "{up}");
    let fits_id = up["imageId"].as_str().unwrap().to_string();
    // 6000×6000: over the whole budget, refused by name before anything is decoded.
    let (status, up) = app
        .receive_image(&alice, "image/png", &gradient_png(6000, 6000), "clothes")
        .await;
    assert_eq!(status, 200, "{up}");
    let huge_id = up["imageId"].as_str().unwrap().to_string();
    let (status, body) = post(&app, &alice, &huge_id, "edit", json!({"rotate": 90})).await;
    assert_eq!(status, 400, "{body}");
    let error = body["error"].as_str().unwrap();
    assert!(
        error.contains("6000×6000") && error.contains("MB"),
        "{error}"
    );

    // Four edits of the photo at once: they take turns, the server stays in budget.
    let edits = (0..4).map(|i| {
        let (app, alice, id) = (&app, &alice, fits_id.clone());
        let rotate = [90, 180, 270][i % 3];
        async move { post(app, alice, &id, "edit", json!({"rotate": rotate})).await }
    });
    let answers = futures_util::future::join_all(edits).await;
    let ok = answers.iter().filter(|(s, _)| *s == 200).count();
    // Each edit is made from what the image showed when it was read: those that lost the race
    // to another edit are told so (409) and change nothing.
    assert!(ok >= 1, "{answers:?}");
    for (status, body) in &answers {
        assert!(
            *status == 200 || (*status == 409 && body["error"] == "图片已被修改，请刷新后重试"),
            "{status} {body}"
        );
    }
    let peak = app.peak_rss_mib();
    assert!(
        peak < 200,
        "peak RSS {peak} MiB with the default --memory-mb 200"
    );
    let (status, _) = app.get_json(&alice, "/api/status").await;
    assert_eq!(status, 200);
    eprintln!("4 concurrent edits of a 12 MP JPEG: {ok} applied, peak RSS {peak} MiB");
}

/// `png` with its image data scrambled and its chunk checksums made right again: a file that
/// passes every check an upload makes and fails to decode.
fn undecodable_png(png: &[u8]) -> Vec<u8> {
    let mut out = png.to_vec();
    let mut at = 8;
    while at + 12 <= out.len() {
        let len = u32::from_be_bytes(out[at..at + 4].try_into().unwrap()) as usize;
        if &out[at + 4..at + 8] == b"IDAT" {
            for b in &mut out[at + 8 + 2..at + 8 + len] {
                *b = b.wrapping_mul(31).wrapping_add(7);
            }
            let crc = crc32fast::hash(&out[at + 4..at + 8 + len]);
            out[at + 8 + len..at + 12 + len].copy_from_slice(&crc.to_be_bytes());
        }
        at += 12 + len;
    }
    out
}

#[tokio::test]
async fn an_image_that_does_not_decode_is_refused_and_left_as_it_was() {
    let app = spawn_app().await;
    let (alice, _) = app.user_client("alice").await;
    let broken = undecodable_png(&png(64, 64, 5));
    let (status, up) = app
        .receive_image(&alice, "image/png", &broken, "clothes")
        .await;
    assert_eq!(status, 200, "stored as sent: {up}");
    let id = up["imageId"].as_str().unwrap().to_string();
    let (status, body) = post(&app, &alice, &id, "edit", json!({"rotate": 90})).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"].as_str().unwrap().starts_with(DAMAGED),
        "{body}"
    );
    let image = listed(&app, &alice, &id).await;
    assert_eq!(image["edited"], false);
    let served = app
        .get_bytes(&alice, image["preview_url"].as_str().unwrap())
        .await;
    assert_eq!(&served[..], &broken[..]);
}
