//! Thumbnails, `/api/user/{id}/thumbnails/{file}` (`src/media/`, `src/jobs.rs`): real thumbnails
//! made in the background, shared by identical images, transparent images kept transparent, a
//! 64-megapixel PNG thumbnailed row by row, corrupt images failed with a reason, and a data file
//! from the first schema given thumbnails after an upgrade. Decompression bombs are in
//! `hostile_media.rs`.

mod common;

use common::*;
use serde_json::Value;

async fn thumbnail(
    app: &TestApp,
    client: &reqwest::Client,
    user_id: &str,
    up: &Value,
) -> (String, Vec<u8>) {
    let path = format!(
        "/api/user/{user_id}/thumbnails/{}",
        up["filename"].as_str().unwrap()
    );
    let resp = client.get(app.url(&path)).send().await.unwrap();
    assert_eq!(resp.status(), 200, "{path}");
    let mime = resp.headers()["content-type"].to_str().unwrap().to_string();
    (mime, resp.bytes().await.unwrap().to_vec())
}

#[tokio::test]
async fn a_large_upload_gets_a_smaller_512_px_thumbnail_before_its_task_completes() {
    let app = spawn_app().await;
    let (client, user_id) = app.user_client("thumbs").await;
    let bytes = jpeg(2000, 1500, 5);
    let (status, up) = app
        .receive_image(&client, "image/jpeg", &bytes, "clothes")
        .await;
    assert_eq!(status, 200, "{up}");
    let task = app.wait_task(up["taskId"].as_str().unwrap()).await;
    assert_eq!(task["status"]["status"], "completed", "{task}");
    let (mime, thumb) = thumbnail(&app, &client, &user_id, &up).await;
    assert_eq!(mime, "image/jpeg");
    assert!(
        thumb.len() < bytes.len(),
        "{} >= {}",
        thumb.len(),
        bytes.len()
    );
    let img = image::load_from_memory(&thumb).unwrap();
    assert_eq!((img.width(), img.height()), (512, 384));
}

#[tokio::test]
async fn an_image_whose_thumbnail_would_be_larger_is_its_own_thumbnail() {
    let app = spawn_app().await;
    let (client, user_id) = app.user_client("noise").await;
    // A small JPEG saved at low quality: re-encoding it at the thumbnail quality only grows it.
    let mut state = 0x2545_f491u32;
    let noise = image::RgbImage::from_fn(200, 150, |_, _| {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        image::Rgb([state as u8, (state >> 8) as u8, (state >> 16) as u8])
    });
    let mut bytes = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 30)
        .encode_image(&noise)
        .unwrap();
    let (status, up) = app
        .receive_image(&client, "image/jpeg", &bytes, "char")
        .await;
    assert_eq!(status, 200, "{up}");
    let task = app.wait_task(up["taskId"].as_str().unwrap()).await;
    assert_eq!(task["status"]["status"], "completed", "{task}");
    let (mime, thumb) = thumbnail(&app, &client, &user_id, &up).await;
    assert_eq!(mime, "image/jpeg");
    assert!(thumb == bytes, "the thumbnail should be the original");
}

#[tokio::test]
async fn small_images_are_not_upscaled_and_transparency_is_kept() {
    let app = spawn_app().await;
    let (client, user_id) = app.user_client("alpha").await;
    let mut rgba = image::RgbaImage::from_pixel(200, 100, image::Rgba([10, 200, 10, 255]));
    for (x, _, p) in rgba.enumerate_pixels_mut() {
        if x < 100 {
            p.0[3] = 0;
        }
    }
    let mut png_bytes = std::io::Cursor::new(Vec::new());
    rgba.write_to(&mut png_bytes, image::ImageFormat::Png)
        .unwrap();
    let (_, up) = app
        .receive_image(&client, "image/png", png_bytes.get_ref(), "clothes")
        .await;
    app.wait_task(up["taskId"].as_str().unwrap()).await;
    let (mime, thumb) = thumbnail(&app, &client, &user_id, &up).await;
    assert_eq!(mime, "image/webp");
    let img = image::load_from_memory(&thumb).unwrap().into_rgba8();
    assert_eq!(img.dimensions(), (200, 100));
    assert_eq!(img.get_pixel(10, 50).0[3], 0);
    assert_eq!(img.get_pixel(190, 50).0[3], 255);
}

#[tokio::test]
async fn a_corrupt_image_fails_its_task_and_its_thumbnail_is_the_original() {
    let mut app = spawn_app().await;
    let (client, user_id) = app.user_client("broken").await;
    let mut bytes = png(64, 64, 3);
    let idat = bytes.windows(4).position(|w| w == b"IDAT").unwrap();
    for b in &mut bytes[idat + 4..idat + 40] {
        *b ^= 0x5A;
    }
    let (status, up) = app
        .receive_image(&client, "image/png", &bytes, "clothes")
        .await;
    assert_eq!(status, 200);
    let task = app.wait_task(up["taskId"].as_str().unwrap()).await;
    assert_eq!(task["status"]["status"], "failed");
    let (mime, thumb) = thumbnail(&app, &client, &user_id, &up).await;
    assert_eq!(mime, "image/png");
    assert_eq!(thumb, bytes);
    assert!(app.is_alive());
}

#[tokio::test]
async fn a_jpeg_with_damaged_image_data_ends_its_task_and_the_server_keeps_serving() {
    let mut app = spawn_app().await;
    let (client, user_id) = app.user_client("badjpeg").await;
    let mut bytes = jpeg(1600, 1200, 9);
    // Scramble the entropy-coded data but keep the headers and the end marker, so the upload's
    // header probe accepts it and only the thumbnail decoder meets the damage.
    let scan = bytes.windows(2).position(|w| w == [0xFF, 0xDA]).unwrap() + 200;
    let end = bytes.len() - 2;
    for (i, b) in bytes[scan..end].iter_mut().enumerate() {
        *b = b.wrapping_mul(31).wrapping_add(i as u8);
    }
    let (status, up) = app
        .receive_image(&client, "image/jpeg", &bytes, "clothes")
        .await;
    assert_eq!(status, 200, "{up}");
    let task = app.wait_task(up["taskId"].as_str().unwrap()).await;
    let ended = task["status"]["status"].as_str().unwrap().to_string();
    assert!(ended == "completed" || ended == "failed", "{task}");
    let (mime, _) = thumbnail(&app, &client, &user_id, &up).await;
    assert_eq!(mime, "image/jpeg");
    let path = format!(
        "/api/user/{user_id}/images/{}",
        up["filename"].as_str().unwrap()
    );
    let original = client.get(app.url(&path)).send().await.unwrap();
    assert_eq!(original.status(), 200);
    assert_eq!(original.bytes().await.unwrap().to_vec(), bytes);
    assert!(app.is_alive());
}

#[tokio::test]
async fn a_schema_one_data_file_opens_and_its_images_get_thumbnails() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/v1.redb");
    std::fs::copy(fixture, data_path(dir.path())).unwrap();
    let app = spawn_app_in(dir, &[]).await;
    let client = new_client();
    let user = app.login(&client, "olduser", "oldpassword").await;
    let user_id = user["user_id"].as_str().unwrap().to_string();
    let (status, list) = app.get_json(&client, "/api/user/images").await;
    assert_eq!(status, 200);
    assert_eq!(list["total"], 2);
    let images = list["images"].as_array().unwrap();
    assert_eq!(images[0]["page_title"], "Old page");
    assert_eq!(images[0]["context_info"]["category"], "char");
    for img in images {
        let (mime, bytes) = thumbnail(&app, &client, &user_id, img).await;
        assert!(mime == "image/jpeg" || mime == "image/webp", "{mime}");
        let decoded = image::load_from_memory(&bytes).unwrap();
        assert!(decoded.width().max(decoded.height()) <= 512);
        assert!((bytes.len() as u64) < img["file_size"].as_u64().unwrap() || mime == "image/webp");
    }
    // The anonymous upload of the old file still belongs to admin.
    let admin = new_client();
    app.login(&admin, "admin", "fixture-admin").await;
    let (_, list) = app.get_json(&admin, "/api/user/images").await;
    assert_eq!(list["total"], 1);
}

/// A real, valid PNG of 8000×8000 zero pixels: 64 MB once decoded, about 60 KB on the wire.
fn zero_png_bomb() -> Vec<u8> {
    use image::codecs::png::{CompressionType, FilterType, PngEncoder};
    let img = image::GrayImage::new(8000, 8000);
    let mut out = std::io::Cursor::new(Vec::new());
    let encoder =
        PngEncoder::new_with_quality(&mut out, CompressionType::Best, FilterType::NoFilter);
    img.write_with_encoder(encoder).unwrap();
    out.into_inner()
}

/// 64 MB of pixels behind 60 KB cost a few MiB to thumbnail: the rows are filtered as they are
/// inflated (`media::cost`), never decoded whole, so the image is stored and gets its thumbnail.
#[tokio::test]
async fn a_small_png_of_64_megapixels_is_thumbnailed_row_by_row() {
    let app = spawn_app().await;
    let bomb = zero_png_bomb();
    assert!(
        bomb.len() < 200 * 1024,
        "the bomb should be small: {}",
        bomb.len()
    );
    let (client, user_id) = app.user_client("rows").await;
    let before = app.peak_rss_mib();
    let (status, body) = app
        .receive_image(&client, "image/png", &bomb, "clothes")
        .await;
    assert_eq!(status, 200, "{body}");
    let task = app.wait_task(body["taskId"].as_str().unwrap()).await;
    assert_eq!(task["status"]["status"], "completed", "{task}");
    let resp = client
        .get(app.url(&format!(
            "/api/user/{user_id}/thumbnails/{}",
            body["filename"].as_str().unwrap()
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let thumb = image::load_from_memory(&resp.bytes().await.unwrap()).expect("a thumbnail");
    assert_eq!(thumb.width(), thumb.height());
    assert!((64..=1024).contains(&thumb.width()), "{}", thumb.width());
    // Decoded whole it is 64 MiB, and 256 more for the conversion and the resizer.
    let grew = app.peak_rss_mib().saturating_sub(before);
    assert!(grew < 48, "peak RSS grew by {grew} MiB");
}
