//! The three upload routes, `/api/receive-image` (a data URL), `/api/upload-clipboard` (bare
//! base64) and `/api/upload-file` (multipart) (`src/api/images.rs`, `src/api/multipart.rs`,
//! `src/ingest.rs`, `src/writer.rs`): what is stored and answered for every supported format, and
//! every way a client can get an upload wrong (missing or malformed fields, bytes that are not an
//! image, images that lie about their size, bodies over the 10 MB limit), each of which must get
//! the seed's JSON error, store nothing and leave the server serving (`assert_unharmed`).
//!
//! Uploads by URL are in `url_fetch.rs`, thumbnails in `thumbnails.rs`, the anonymous quotas and
//! the body budget in `hardening.rs`, a full disk in `full_disk.rs`.

mod common;

use common::*;
use reqwest::multipart::Form;
use serde_json::{Value, json};

fn is_display_time(v: &Value) -> bool {
    let s = v.as_str().unwrap_or("");
    chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").is_ok()
}

/// Sends a body the server should refuse before reading it whole. The server may close the
/// connection right after answering, so the client may see a failed send instead of the answer;
/// when there is an answer it must be the seed's 413.
async fn send_oversized(request: reqwest::RequestBuilder, what: &str) {
    match request.send().await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            // The connection may also drop while the answer is read; only a complete answer counts.
            if let Ok(text) = resp.text().await {
                let body: Value = serde_json::from_str(&text)
                    .unwrap_or_else(|e| panic!("{what}: status {status}, not JSON ({e}): {text}"));
                assert_eq!((status, body), (413, failure(TOO_LARGE)), "{what}");
            }
        }
        Err(e) => assert!(!e.is_timeout(), "{what}: the server did not answer: {e}"),
    }
}

/// A real PNG followed by zeros up to `len` bytes: an image, only too large.
fn padded_png(len: usize) -> Vec<u8> {
    let mut bytes = png(8, 8, 1);
    bytes.resize(len, 0);
    bytes
}

/// CRC-32 (IEEE, reflected), as PNG chunks use it.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// One PNG chunk: length, type, data, CRC over type and data.
fn png_chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut chunk = (data.len() as u32).to_be_bytes().to_vec();
    chunk.extend_from_slice(kind);
    chunk.extend_from_slice(data);
    chunk.extend_from_slice(&crc32(&chunk[4..]).to_be_bytes());
    chunk
}

/// A well-formed PNG container whose header claims `width`×`height` 8-bit RGB pixels, with an
/// IDAT holding an empty zlib stream: tiny on the wire, enormous once decoded.
fn png_claiming(width: u32, height: u32) -> Vec<u8> {
    let mut ihdr = width.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    let empty_zlib = [
        0x78, 0x01, 0x01, 0x00, 0x00, 0xFF, 0xFF, 0x00, 0x00, 0x00, 0x01,
    ];
    let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
    bytes.extend(png_chunk(b"IHDR", &ihdr));
    bytes.extend(png_chunk(b"IDAT", &empty_zlib));
    bytes.extend(png_chunk(b"IEND", &[]));
    bytes
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
    let (status, up) = upload_form(&app, &client, form).await;
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

#[test]
fn crc32_matches_the_crc_an_encoder_wrote() {
    let real = png(4, 4, 1);
    // Signature (8), IHDR length (4), then type + 13 data bytes, then the CRC.
    let stored = u32::from_be_bytes(real[29..33].try_into().unwrap());
    assert_eq!(crc32(&real[12..29]), stored);
}

#[tokio::test]
async fn receive_image_without_image_data_is_refused() {
    let mut app = spawn_app().await;
    let before = total_images(&app).await;
    for body in [
        json!({}),
        json!({"category": "clothes"}),
        json!({"imageData": "", "category": "char"}),
    ] {
        let answer = app
            .post_json(&new_client(), "/api/receive-image", &body)
            .await;
        assert_eq!(answer, (400, failure("缺少图片数据")), "{body}");
    }
    assert_unharmed(&mut app, before).await;
}

#[tokio::test]
async fn clipboard_upload_without_image_data_is_refused() {
    let mut app = spawn_app().await;
    let (client, _) = app.user_client("clip").await;
    let before = total_images(&app).await;
    for body in [
        json!({}),
        json!({"category": "char"}),
        json!({"imageData": "", "category": "char"}),
    ] {
        let answer = app.post_json(&client, "/api/upload-clipboard", &body).await;
        assert_eq!(answer, (400, failure("剪切板中没有图片数据")), "{body}");
    }
    assert_eq!(user_total(&app, &client).await, 0);
    assert_unharmed(&mut app, before).await;
}

#[tokio::test]
async fn garbage_base64_is_refused_as_an_unsupported_format() {
    let mut app = spawn_app().await;
    let before = total_images(&app).await;
    for data in [
        "!!!not base64!!!",
        "data:image/png;base64,@@@@####",
        "data:image/png;base64,iVBORw0KGgo=AAAA=",
        "%%%%",
    ] {
        for route in ["/api/receive-image", "/api/upload-clipboard"] {
            let answer = app
                .post_json(&new_client(), route, &json!({"imageData": data}))
                .await;
            assert_unsupported(&answer, &format!("{route} {data}"));
        }
    }
    assert_unharmed(&mut app, before).await;
}

#[tokio::test]
async fn text_renamed_to_png_is_refused_on_every_upload_route() {
    let mut app = spawn_app().await;
    let before = total_images(&app).await;
    let text = b"just some notes, saved as notes.png\n".repeat(20);
    for (route, answer) in upload_everywhere(&app, &text).await {
        assert_unsupported(&answer, route);
    }
    assert_unharmed(&mut app, before).await;
}

#[tokio::test]
async fn truncated_png_is_refused_and_nothing_is_stored() {
    let mut app = spawn_app().await;
    let (client, _) = app.user_client("trunc").await;
    let before = total_images(&app).await;
    let whole = png(16, 16, 5);
    // Signature (8) + IHDR length and type (8) + 4 of its 13 data bytes.
    let cut = &whole[..20];
    for (route, answer) in upload_everywhere(&app, cut).await {
        assert_damaged(&answer, route);
    }
    let answer = app.receive_image(&client, "image/png", cut, "char").await;
    assert_damaged(&answer, "logged-in receive-image");
    assert_eq!(
        answer.1["error"],
        "图片文件已损坏或不完整：数据在图片结束之前中断"
    );
    assert_eq!(user_total(&app, &client).await, 0);
    assert_unharmed(&mut app, before).await;
}

#[tokio::test]
async fn png_claiming_100000_by_100000_pixels_is_refused_and_nothing_is_stored() {
    let mut app = spawn_app().await;
    let before = total_images(&app).await;
    let bomb = png_claiming(100_000, 100_000);
    for (route, answer) in upload_everywhere(&app, &bomb).await {
        assert_error_status(&answer, 400, route);
    }
    assert_unharmed(&mut app, before).await;
}

#[tokio::test]
async fn a_gif_with_a_huge_logical_screen_is_refused_at_upload() {
    let mut app = spawn_app().await;
    let before = total_images(&app).await;
    let mut huge = gif(4, 4, 1);
    // The logical screen width and height are the little-endian u16s at bytes 6..10.
    huge[6..8].copy_from_slice(&65_535u16.to_le_bytes());
    huge[8..10].copy_from_slice(&65_535u16.to_le_bytes());
    for (route, (status, body)) in upload_everywhere(&app, &huge).await {
        assert_eq!(status, 400, "{route}: {body}");
    }
    assert_unharmed(&mut app, before).await;
}

#[tokio::test]
async fn malformed_json_bodies_are_refused_with_a_json_error() {
    let mut app = spawn_app().await;
    let before = total_images(&app).await;
    for route in [
        "/api/receive-image",
        "/api/upload-clipboard",
        "/api/register",
        "/api/login",
    ] {
        for body in [
            "",
            "not json at all",
            "{\"imageData\": ",
            "{\"username\": \"a\",}",
            "[1, 2, 3",
            "\u{0}\u{1}\u{2}",
        ] {
            let (status, reply) = post_raw_json(&app, route, body).await;
            assert_eq!(status, 400, "{route} {body:?}: {reply}");
            assert_eq!(reply["success"], false, "{route} {body:?}: {reply}");
            assert_has_error(&reply, route);
        }
    }
    assert_unharmed(&mut app, before).await;
}

#[tokio::test]
async fn wrongly_typed_fields_are_refused_with_400() {
    let mut app = spawn_app().await;
    let before = total_images(&app).await;
    let cases = [
        ("/api/receive-image", json!({"imageData": 12345})),
        ("/api/receive-image", json!({"imageData": ["iVBORw0KGgo="]})),
        ("/api/upload-clipboard", json!({"imageData": {"data": "x"}})),
        ("/api/receive-image", json!("a JSON string, not an object")),
        (
            "/api/register",
            json!({"username": 42, "email": "n@example.com", "password": "password123"}),
        ),
        ("/api/login", json!({"username": "admin", "password": true})),
    ];
    for (route, body) in cases {
        let (status, reply) = app.post_json(&new_client(), route, &body).await;
        assert_eq!(status, 400, "{route} {body}: {reply}");
        assert_eq!(reply["success"], false, "{route} {body}: {reply}");
        assert_has_error(&reply, route);
    }
    assert_unharmed(&mut app, before).await;
}

#[tokio::test]
async fn invalid_upload_category_falls_back_to_clothes() {
    let mut app = spawn_app().await;
    let (client, _) = app.user_client("cats").await;
    let before = total_images(&app).await;
    let mut seed = 0;
    for category in ["shoes", "", "../char", "char/../../etc"] {
        seed += 1;
        let (status, up) = app
            .receive_image(&client, "image/png", &png(3, 3, seed), category)
            .await;
        assert_eq!(status, 200, "{category:?}: {up}");
        assert_eq!(up["category"], "clothes", "{category:?}");

        seed += 1;
        let (status, up) = app
            .post_json(
                &client,
                "/api/upload-clipboard",
                &json!({"imageData": b64(&png(3, 3, seed)), "category": category}),
            )
            .await;
        assert_eq!(status, 200, "{category:?}: {up}");
        assert_eq!(up["category"], "clothes", "{category:?}");

        seed += 1;
        let form = Form::new()
            .part("file", file_part(png(3, 3, seed), "a.png", "image/png"))
            .text("category", category);
        let (status, up) = upload_form(&app, &client, form).await;
        assert_eq!(status, 200, "{category:?}: {up}");
        assert_eq!(up["category"], "clothes", "{category:?}");
        assert!(up["filename"].as_str().unwrap().starts_with("clothes_"));
    }
    assert_eq!(user_total(&app, &client).await, 12);
    assert_unharmed(&mut app, before + 12).await;
}

#[tokio::test]
async fn multipart_without_a_file_part_is_refused() {
    let mut app = spawn_app().await;
    let before = total_images(&app).await;
    let forms = [
        Form::new().text("category", "clothes"),
        Form::new().part("image", file_part(png(4, 4, 1), "a.png", "image/png")),
    ];
    for form in forms {
        let answer = upload_form(&app, &new_client(), form).await;
        assert_eq!(answer, (400, failure("没有选择文件")));
    }
    assert_unharmed(&mut app, before).await;
}

#[tokio::test]
async fn file_part_with_an_empty_filename_is_refused() {
    let mut app = spawn_app().await;
    let before = total_images(&app).await;
    let form = Form::new()
        .part("file", file_part(png(4, 4, 1), "", "image/png"))
        .text("category", "char");
    let answer = upload_form(&app, &new_client(), form).await;
    assert_eq!(answer, (400, failure("文件名为空")));
    assert_unharmed(&mut app, before).await;
}

/// Images just over the 10 MB limit get the seed's 413 on every upload route; the bodies are
/// small enough that the server must answer them rather than drop the connection.
#[tokio::test]
async fn images_over_ten_megabytes_are_refused_with_413_on_every_route() {
    let mut app = spawn_app().await;
    let before = total_images(&app).await;
    let cases = [
        ("receive-image", 10 * MB + 1, "one byte over 10 MiB"),
        ("receive-image", 11 * MB, "11 MiB"),
        ("upload-clipboard", 11 * MB, "11 MiB"),
        ("upload-file", 11 * MB, "11 MiB"),
    ];
    for (route, len, size) in cases {
        let case = format!("{size} to /api/{route}");
        let resp = upload_request(&app, route, &padded_png(len))
            .send()
            .await
            .unwrap_or_else(|e| {
                panic!("{case}: the connection dropped instead of answering 413: {e:?}")
            });
        assert_eq!(
            status_and_json(resp).await,
            (413, failure(TOO_LARGE)),
            "{case}"
        );
        assert_unharmed(&mut app, before).await;
    }
}

#[tokio::test]
async fn fifty_megabyte_json_body_is_refused_and_the_server_carries_on() {
    let mut app = spawn_app().await;
    let before = total_images(&app).await;
    // "A" is valid base64 (zero bits), so only the size can be wrong with it.
    let body = format!(
        "{{\"imageData\": \"data:image/png;base64,{}\"}}",
        "A".repeat(50 * MB)
    );
    for route in ["/api/receive-image", "/api/upload-clipboard"] {
        let request = new_client()
            .post(app.url(route))
            .header("content-type", "application/json")
            .body(body.clone());
        send_oversized(request, route).await;
        assert_unharmed(&mut app, before).await;
    }
}

#[tokio::test]
async fn fifty_megabyte_multipart_file_is_refused_and_the_server_carries_on() {
    let mut app = spawn_app().await;
    let before = total_images(&app).await;
    let form = Form::new().text("category", "clothes").part(
        "file",
        file_part(padded_png(50 * MB), "big.png", "image/png"),
    );
    let request = new_client()
        .post(app.url("/api/upload-file"))
        .multipart(form);
    send_oversized(request, "upload-file").await;
    assert_unharmed(&mut app, before).await;
}

#[tokio::test]
async fn fifty_megabyte_body_without_a_length_is_refused_while_it_arrives() {
    let mut app = spawn_app().await;
    let before = total_images(&app).await;
    // Streamed in 1 MB pieces with no Content-Length: the limit can only be applied while reading.
    let stream = |head: &'static [u8]| {
        let mut pieces = vec![bytes::Bytes::from_static(head)];
        pieces.extend((0..50).map(|_| bytes::Bytes::from(vec![b'A'; MB])));
        reqwest::Body::wrap_stream(futures_util::stream::iter(
            pieces.into_iter().map(Ok::<_, std::io::Error>),
        ))
    };
    let request = new_client()
        .post(app.url("/api/receive-image"))
        .header("content-type", "application/json")
        .body(stream(b"{\"imageData\": \"data:image/png;base64,"));
    send_oversized(request, "receive-image, chunked").await;
    assert_unharmed(&mut app, before).await;

    let boundary = "XbadInputBoundaryX";
    let head: &'static [u8] = b"--XbadInputBoundaryX\r\n\
        Content-Disposition: form-data; name=\"file\"; filename=\"big.png\"\r\n\
        Content-Type: image/png\r\n\r\n\x89PNG\r\n\x1a\n";
    let request = new_client()
        .post(app.url("/api/upload-file"))
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(stream(head));
    send_oversized(request, "upload-file, chunked").await;
    assert_unharmed(&mut app, before).await;
}
