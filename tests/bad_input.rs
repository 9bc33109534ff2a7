//! Bad input against the real binary: every way a client can get a request wrong (missing or
//! malformed fields, bytes that are not an image, images that lie about their size, bodies over the
//! 10 MB limit, path traversal in file names, forged and logged-out sessions, other users' images)
//! must get the seed's JSON error, must store nothing, and must leave the server serving.
//!
//! Each test ends with `assert_unharmed`: the process still runs, `/api/status` answers 200 and the
//! image total is what it was before the bad request.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::*;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

const UNSUPPORTED: &str = "不支持的文件格式";
const TOO_LARGE: &str = "文件大小不能超过10MB";
const MB: usize = 1024 * 1024;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// The seed's error body for everything but file and task lookups.
fn failure(error: &str) -> Value {
    json!({"success": false, "error": error})
}

/// `/api/status`'s `total_images`, asserting the server answers it.
async fn total_images(app: &TestApp) -> u64 {
    let (status, body) = app.get_json(&new_client(), "/api/status").await;
    assert_eq!(status, 200, "/api/status: {body}");
    body["total_images"].as_u64().expect("total_images")
}

/// The number of images `client`'s user owns, from `/api/user/images`.
async fn user_total(app: &TestApp, client: &reqwest::Client) -> u64 {
    let (status, body) = app.get_json(client, "/api/user/images").await;
    assert_eq!(status, 200, "/api/user/images: {body}");
    body["total"].as_u64().expect("total")
}

/// The server survived the bad requests: its process runs, it serves `/api/status`, and its image
/// total is still `expected` (a refused request stores nothing).
async fn assert_unharmed(app: &mut TestApp, expected: u64) {
    assert!(app.is_alive(), "the server process died");
    assert_eq!(total_images(app).await, expected, "the image total changed");
}

/// Status 400 with `{"success": false, "error": "不支持的文件格式…"}`.
#[track_caller]
fn assert_unsupported((status, body): &(u16, Value), what: &str) {
    assert_eq!(*status, 400, "{what}: {body}");
    assert_eq!(body["success"], false, "{what}: {body}");
    let error = body["error"].as_str().unwrap_or_default();
    assert!(error.starts_with(UNSUPPORTED), "{what}: {body}");
}

/// `status`, and a JSON body whose `error` is a non-empty string.
#[track_caller]
fn assert_error_status((status, body): &(u16, Value), expected: u16, what: &str) {
    assert_eq!(*status, expected, "{what}: {body}");
    assert_has_error(body, what);
}

#[track_caller]
fn assert_has_error(body: &Value, what: &str) {
    let error = body["error"].as_str().unwrap_or_default();
    assert!(!error.is_empty(), "{what}: no error message in {body}");
}

/// Posts `body` verbatim as `application/json` (for bodies `post_json` cannot produce).
async fn post_raw_json(app: &TestApp, path: &str, body: impl Into<reqwest::Body>) -> (u16, Value) {
    let resp = new_client()
        .post(app.url(path))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("POST");
    status_and_json(resp).await
}

/// Posts a multipart form to `/api/upload-file`.
async fn upload_form(app: &TestApp, client: &reqwest::Client, form: Form) -> (u16, Value) {
    let resp = client
        .post(app.url("/api/upload-file"))
        .multipart(form)
        .send()
        .await
        .expect("POST /api/upload-file");
    status_and_json(resp).await
}

/// A `file` part named `filename` declaring `mime`.
fn file_part(bytes: Vec<u8>, filename: &str, mime: &str) -> Part {
    Part::bytes(bytes)
        .file_name(filename.to_string())
        .mime_str(mime)
        .expect("mime type")
}

/// The three upload routes, by the last segment of their path.
const UPLOAD_ROUTES: [&str; 3] = ["receive-image", "upload-clipboard", "upload-file"];

/// An anonymous request sending `bytes` to `/api/{route}`: a data URL, bare base64, or a
/// multipart file.
fn upload_request(app: &TestApp, route: &str, bytes: &[u8]) -> reqwest::RequestBuilder {
    let request = new_client().post(app.url(&format!("/api/{route}")));
    match route {
        "receive-image" => request.json(&json!({"imageData": data_url("image/png", bytes)})),
        "upload-clipboard" => request.json(&json!({"imageData": b64(bytes), "category": "char"})),
        "upload-file" => {
            let part = file_part(bytes.to_vec(), "picture.png", "image/png");
            request.multipart(Form::new().part("file", part))
        }
        other => panic!("no upload route {other}"),
    }
}

async fn upload_via(app: &TestApp, route: &str, bytes: &[u8]) -> (u16, Value) {
    let resp = upload_request(app, route, bytes)
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST /api/{route}: {e}"));
    status_and_json(resp).await
}

/// Sends `bytes` to each of the three upload routes and returns the answers.
async fn upload_everywhere(app: &TestApp, bytes: &[u8]) -> Vec<(&'static str, (u16, Value))> {
    let mut answers = Vec::new();
    for route in UPLOAD_ROUTES {
        answers.push((route, upload_via(app, route, bytes).await));
    }
    answers
}

/// Registers `username` and returns its user id and the `session=…` cookie of a fresh login,
/// captured from `Set-Cookie` so it can be replayed by hand.
async fn login_cookie(app: &TestApp, username: &str) -> (String, String) {
    let client = new_client();
    let user_id = app.register(&client, username, "password123").await;
    let resp = client
        .post(app.url("/api/login"))
        .json(&json!({"username": username, "password": "password123"}))
        .send()
        .await
        .expect("POST /api/login");
    assert_eq!(resp.status(), 200);
    let cookie = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("session="))
        .expect("a session cookie")
        .split(';')
        .next()
        .expect("cookie pair")
        .to_string();
    (user_id, cookie)
}

/// `GET path` from a client without a cookie jar, sending `cookie` as the whole `Cookie` header.
async fn get_with_cookie(app: &TestApp, path: &str, cookie: &str) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .get(app.url(path))
        .header("cookie", cookie)
        .send()
        .await
        .expect("GET");
    status_and_json(resp).await
}

/// Sends `GET target` byte for byte over a plain socket. An HTTP client would resolve `../` and
/// `%2e%2e` segments before they left the machine; an attacker's client does not.
async fn raw_get(app: &TestApp, target: &str, cookie: &str) -> (u16, Vec<u8>) {
    let addr = app.base.trim_start_matches("http://").to_string();
    let request = format!(
        "GET {target} HTTP/1.1\r\nHost: {addr}\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n"
    );
    let answer = tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(&addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("read timeout");
        stream.write_all(request.as_bytes()).expect("send request");
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).expect("read answer");
        answer
    })
    .await
    .expect("socket thread");
    parse_response(&answer)
}

/// Status and body of a raw HTTP/1.1 answer (`Content-Length` or chunked).
fn parse_response(answer: &[u8]) -> (u16, Vec<u8>) {
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("end of headers");
    let head = String::from_utf8_lossy(&answer[..split]).to_ascii_lowercase();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status code");
    let body = &answer[split + 4..];
    if head.contains("transfer-encoding: chunked") {
        (status, dechunk(body))
    } else {
        (status, body.to_vec())
    }
}

fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = body.windows(2).position(|w| w == b"\r\n") {
        let size_field = String::from_utf8_lossy(&body[..eol]);
        let size_hex = size_field.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_hex, 16).expect("chunk size");
        if size == 0 {
            break;
        }
        let start = eol + 2;
        out.extend_from_slice(&body[start..start + size]);
        body = &body[start + size + 2..];
    }
    out
}

/// Percent-encodes every byte that is not unreserved, so `/` and `\` become `%2F` and `%5C`.
fn encode_all(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
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

// ---------------------------------------------------------------------------------------------
// Hand-made PNGs
// ---------------------------------------------------------------------------------------------

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

#[test]
fn crc32_matches_the_crc_an_encoder_wrote() {
    let real = png(4, 4, 1);
    // Signature (8), IHDR length (4), then type + 13 data bytes, then the CRC.
    let stored = u32::from_be_bytes(real[29..33].try_into().unwrap());
    assert_eq!(crc32(&real[12..29]), stored);
}

// ---------------------------------------------------------------------------------------------
// JSON uploads
// ---------------------------------------------------------------------------------------------

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
        assert_unsupported(&answer, route);
    }
    let answer = app.receive_image(&client, "image/png", cut, "char").await;
    assert_unsupported(&answer, "logged-in receive-image");
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

// ---------------------------------------------------------------------------------------------
// Multipart uploads
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// Size limits
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn image_one_byte_over_ten_megabytes_is_refused_with_413() {
    let mut app = spawn_app().await;
    let before = total_images(&app).await;
    let bytes = padded_png(10 * MB + 1);
    let answer = app
        .receive_image(&new_client(), "image/png", &bytes, "clothes")
        .await;
    assert_eq!(answer, (413, failure(TOO_LARGE)));
    assert_unharmed(&mut app, before).await;
}

/// An 11 MB image sent to `/api/{route}` gets the seed's 413; the body is small enough that the
/// server must answer it rather than drop the connection.
async fn assert_eleven_megabytes_refused(route: &str) {
    let mut app = spawn_app().await;
    let before = total_images(&app).await;
    let resp = upload_request(&app, route, &padded_png(11 * MB))
        .send()
        .await
        .unwrap_or_else(|e| {
            panic!("{route}: the connection dropped instead of answering 413: {e:?}")
        });
    assert_eq!(
        status_and_json(resp).await,
        (413, failure(TOO_LARGE)),
        "{route}"
    );
    assert_unharmed(&mut app, before).await;
}

#[tokio::test]
async fn eleven_megabyte_image_is_refused_with_413_by_receive_image() {
    assert_eleven_megabytes_refused("receive-image").await;
}

#[tokio::test]
async fn eleven_megabyte_image_is_refused_with_413_by_upload_clipboard() {
    assert_eleven_megabytes_refused("upload-clipboard").await;
}

#[tokio::test]
async fn eleven_megabyte_image_is_refused_with_413_by_upload_file() {
    assert_eleven_megabytes_refused("upload-file").await;
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

// ---------------------------------------------------------------------------------------------
// Image routes
// ---------------------------------------------------------------------------------------------

/// The three file routes for `filename` under `user_id`.
fn file_routes(user_id: &str, filename: &str) -> [String; 3] {
    [
        format!("/api/user/{user_id}/images/{filename}"),
        format!("/api/user/{user_id}/images/clothes/{filename}"),
        format!("/api/user/{user_id}/thumbnails/{filename}"),
    ]
}

#[tokio::test]
async fn login_required_endpoints_refuse_anonymous_callers() {
    let mut app = spawn_app().await;
    let (owner, owner_id) = app.user_client("owner").await;
    let (_, up) = app
        .receive_image(&owner, "image/png", &png(6, 6, 1), "clothes")
        .await;
    let filename = up["filename"].as_str().unwrap();
    let image_id = up["imageId"].as_str().unwrap();
    let before = total_images(&app).await;
    let anonymous = new_client();

    let mut gets = file_routes(&owner_id, filename).to_vec();
    gets.extend(["/api/user/profile".into(), "/api/user/images".into()]);
    for path in &gets {
        let answer = app.get_json(&anonymous, path).await;
        assert_eq!(answer, (401, failure("需要登录")), "GET {path}");
    }
    for path in ["/api/logout", "/api/cloud/sync"] {
        let answer = app.post_json(&anonymous, path, &json!({})).await;
        assert_eq!(answer, (401, failure("需要登录")), "POST {path}");
    }
    let resp = anonymous
        .delete(app.url(&format!("/api/user/images/{image_id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(status_and_json(resp).await, (401, failure("需要登录")));

    assert_eq!(user_total(&app, &owner).await, 1);
    assert_unharmed(&mut app, before).await;
}

#[tokio::test]
async fn path_traversal_in_image_names_never_returns_file_contents() {
    let mut app = spawn_app().await;
    let (user_id, cookie) = login_cookie(&app, "walker").await;
    let before = total_images(&app).await;
    let data_file = app.data_file().display().to_string();
    let names = [
        "..%2F..%2Fetc%2Fpasswd".to_string(),
        "..%2F..%2F..%2F..%2F..%2F..%2Fetc%2Fpasswd".to_string(),
        "%2e%2e%2f%2e%2e%2fetc%2fpasswd".to_string(),
        "%2E%2E%2F%2E%2E%2FCargo.toml".to_string(),
        "..%5C..%5Cetc%5Cpasswd".to_string(),
        "..%5c..%5c..%5cCargo.toml".to_string(),
        "..%252F..%252Fetc%252Fpasswd".to_string(),
        "Cargo.toml".to_string(),
        "passwd%00.png".to_string(),
        "%00".to_string(),
        "..%2F..%2FCargo.toml%00.png".to_string(),
        encode_all(&data_file),
        format!("..%2F..%2F..%2F..%2F..%2F..{}", encode_all(&data_file)),
    ];
    let mut targets: Vec<String> = names
        .iter()
        .flat_map(|name| file_routes(&user_id, name))
        .collect();
    targets.extend([
        format!("/api/user/{user_id}/images/../../../../etc/passwd"),
        format!("/api/user/{user_id}/images/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd"),
        format!("/api/user/{user_id}/thumbnails/./../../../Cargo.toml"),
        format!("/api/user/{user_id}/images/..%2Fclothes/Cargo.toml"),
        "/api/user/..%2F..%2F..%2Fetc/images/passwd".to_string(),
        "/api/user/../../../etc/passwd".to_string(),
    ]);
    for target in &targets {
        let (status, body) = raw_get(&app, target, &cookie).await;
        assert!((400..500).contains(&status), "{target}: status {status}");
        let json: Value = serde_json::from_slice(&body).unwrap_or_else(|_| {
            panic!(
                "{target}: body is not a JSON error: {:?}",
                String::from_utf8_lossy(&body)
            )
        });
        assert_has_error(&json, target);
        let text = String::from_utf8_lossy(&body);
        assert!(
            !text.contains("root:") && !text.contains("[package]"),
            "{target}: {text}"
        );
    }
    assert_unharmed(&mut app, before).await;
}

#[tokio::test]
async fn another_users_image_is_forbidden_under_their_id_and_missing_under_yours() {
    let mut app = spawn_app().await;
    let (owner, owner_id) = app.user_client("owner").await;
    let (intruder, intruder_id) = app.user_client("intruder").await;
    let bytes = png(10, 10, 3);
    let (status, up) = app
        .receive_image(&owner, "image/png", &bytes, "clothes")
        .await;
    assert_eq!(status, 200, "{up}");
    let filename = up["filename"].as_str().unwrap();
    let before = total_images(&app).await;

    for path in file_routes(&owner_id, filename) {
        let answer = app.get_json(&intruder, &path).await;
        assert_eq!(answer, (403, json!({"error": "权限不足"})), "{path}");
    }
    for path in file_routes(&intruder_id, filename) {
        let answer = app.get_json(&intruder, &path).await;
        assert_eq!(answer, (404, json!({"error": "图片不存在"})), "{path}");
    }
    // The owner still gets the bytes.
    let resp = owner
        .get(app.url(&file_routes(&owner_id, filename)[0]))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.bytes().await.unwrap().as_ref(), bytes.as_slice());
    assert_unharmed(&mut app, before).await;
}

#[tokio::test]
async fn invalid_category_on_the_by_category_route_is_refused() {
    let mut app = spawn_app().await;
    let (client, user_id) = app.user_client("sorter").await;
    let (_, up) = app
        .receive_image(&client, "image/png", &png(5, 5, 8), "char")
        .await;
    let filename = up["filename"].as_str().unwrap();
    let before = total_images(&app).await;
    // `..` and `%2e%2e` are resolved by the HTTP client; the traversal test sends them raw.
    for category in ["shoes", "CLOTHES", "char%00", "clothes%2F..", "%20char"] {
        let path = format!("/api/user/{user_id}/images/{category}/{filename}");
        let (status, body) = app.get_json(&client, &path).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(body["error"], "无效的分类", "{path}");
    }
    assert_unharmed(&mut app, before).await;
}

#[tokio::test]
async fn unknown_routes_and_tasks_answer_404_with_a_json_error() {
    let mut app = spawn_app().await;
    let before = total_images(&app).await;
    let client = new_client();
    for path in [
        "/api/nothing-here",
        "/api/user/someone/videos/x.png",
        "/api/status/extra",
    ] {
        let answer = app.get_json(&client, path).await;
        assert_error_status(&answer, 404, path);
    }
    let answer = app
        .post_json(&client, "/api/does/not/exist", &json!({}))
        .await;
    assert_error_status(&answer, 404, "POST /api/does/not/exist");

    for task in [
        "t-00000000-0000-0000-0000-000000000000",
        "not-a-task-id",
        "..%2F..%2Fetc%2Fpasswd",
    ] {
        let answer = app.get_json(&client, &format!("/api/task/{task}")).await;
        assert_eq!(answer, (404, json!({"error": "任务不存在"})), "{task}");
    }
    assert_unharmed(&mut app, before).await;
}

#[tokio::test]
async fn deleting_an_image_needs_its_owner() {
    let mut app = spawn_app().await;
    let (owner, _) = app.user_client("owner").await;
    let (intruder, _) = app.user_client("intruder").await;
    let (_, up) = app
        .receive_image(&owner, "image/png", &png(7, 7, 2), "clothes")
        .await;
    let image_id = up["imageId"].as_str().unwrap();
    let before = total_images(&app).await;
    let delete = |client: &reqwest::Client, id: &str| {
        client
            .delete(app.url(&format!("/api/user/images/{id}")))
            .send()
    };

    let resp = delete(&new_client(), image_id).await.unwrap();
    assert_eq!(status_and_json(resp).await, (401, failure("需要登录")));
    let resp = delete(&intruder, image_id).await.unwrap();
    assert_eq!(
        status_and_json(resp).await,
        (403, json!({"error": "权限不足"}))
    );
    for id in ["i-00000000-0000-0000-0000-000000000000", "nonsense"] {
        let resp = delete(&owner, id).await.unwrap();
        assert_eq!(
            status_and_json(resp).await,
            (404, json!({"error": "图片不存在"})),
            "{id}"
        );
    }
    assert_eq!(user_total(&app, &owner).await, 1);
    assert_unharmed(&mut app, before).await;
}

// ---------------------------------------------------------------------------------------------
// Sessions
// ---------------------------------------------------------------------------------------------

/// A session cookie the server does not honour: profile is 401, auth check says logged out.
async fn assert_cookie_refused(app: &TestApp, cookie: &str) {
    let answer = get_with_cookie(app, "/api/user/profile", cookie).await;
    assert_eq!(answer, (401, failure("需要登录")), "{cookie}");
    let answer = get_with_cookie(app, "/api/auth/check", cookie).await;
    assert_eq!(answer, (200, json!({"authenticated": false})), "{cookie}");
}

#[tokio::test]
async fn logout_invalidates_the_old_cookie_on_the_server() {
    let mut app = spawn_app().await;
    let (_, cookie) = login_cookie(&app, "leaver").await;
    let (status, profile) = get_with_cookie(&app, "/api/user/profile", &cookie).await;
    assert_eq!(
        status, 200,
        "the captured cookie works before logout: {profile}"
    );
    let before = total_images(&app).await;

    let resp = reqwest::Client::new()
        .post(app.url("/api/logout"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    assert_cookie_refused(&app, &cookie).await;
    assert_unharmed(&mut app, before).await;
}

#[tokio::test]
async fn forged_session_cookies_are_treated_as_logged_out() {
    let mut app = spawn_app().await;
    let (_, real) = login_cookie(&app, "victim").await;
    let before = total_images(&app).await;
    let token = real.trim_start_matches("session=");
    let mut flipped = token.to_string();
    let last = flipped.pop().expect("non-empty token");
    flipped.push(if last == 'A' { 'B' } else { 'A' });
    let forged = [
        "session=deadbeef".to_string(),
        "session=".to_string(),
        format!("session={}", "0".repeat(64)),
        format!("session={}", "x".repeat(4000)),
        format!("session={flipped}"),
        format!("session={token}{token}"),
        "session=../../../etc/passwd".to_string(),
        "session=\"quoted\"".to_string(),
        format!("Session={token}"),
    ];
    for cookie in &forged {
        assert_cookie_refused(&app, cookie).await;
    }
    assert_unharmed(&mut app, before).await;
}

// ---------------------------------------------------------------------------------------------
// Accounts
// ---------------------------------------------------------------------------------------------

async fn register(app: &TestApp, body: Value) -> (u16, Value) {
    app.post_json(&new_client(), "/api/register", &body).await
}

/// Whether `username` can log in with `password`.
async fn can_log_in(app: &TestApp, username: &str, password: &str) -> bool {
    let body = json!({"username": username, "password": password});
    let (status, _) = app.post_json(&new_client(), "/api/login", &body).await;
    status == 200
}

#[tokio::test]
async fn register_without_required_fields_is_refused() {
    let mut app = spawn_app().await;
    let before = total_images(&app).await;
    let full =
        json!({"username": "newbie", "email": "newbie@example.com", "password": "password123"});
    let mut cases = vec![json!({})];
    for field in ["username", "email", "password"] {
        let mut missing = full.clone();
        missing.as_object_mut().unwrap().remove(field);
        cases.push(missing);
        let mut empty = full.clone();
        empty[field] = json!("");
        cases.push(empty);
    }
    for body in cases {
        let answer = register(&app, body.clone()).await;
        assert_eq!(
            answer,
            (400, failure("用户名、邮箱和密码不能为空")),
            "{body}"
        );
    }
    assert!(!can_log_in(&app, "newbie", "password123").await);
    assert_unharmed(&mut app, before).await;
}

#[tokio::test]
async fn duplicate_username_or_email_is_refused_whatever_its_case() {
    let mut app = spawn_app().await;
    let before = total_images(&app).await;
    let first =
        json!({"username": "alice", "email": "alice@example.com", "password": "password123"});
    assert_eq!(register(&app, first).await.0, 200);
    for (username, email) in [
        ("alice", "other@example.com"),
        ("ALICE", "other@example.com"),
        ("Alice", "other@example.com"),
        ("alice2", "alice@example.com"),
        ("alice3", "ALICE@EXAMPLE.COM"),
        ("admin", "new-admin@example.com"),
        ("notadmin", "admin@local.com"),
    ] {
        let body = json!({"username": username, "email": email, "password": "different-pw"});
        let answer = register(&app, body).await;
        assert_eq!(
            answer,
            (400, failure("用户名或邮箱已存在")),
            "{username} {email}"
        );
    }
    assert!(can_log_in(&app, "alice", "password123").await);
    assert!(!can_log_in(&app, "alice", "different-pw").await);
    assert!(!can_log_in(&app, "alice2", "different-pw").await);
    assert_unharmed(&mut app, before).await;
}

#[tokio::test]
async fn register_with_out_of_range_values_is_refused() {
    let mut app = spawn_app().await;
    let before = total_images(&app).await;
    let twenty_one = "u".repeat(21);
    let cases = [
        ("ab", "ab@example.com", "password123"),
        (twenty_one.as_str(), "long@example.com", "password123"),
        ("bademail1", "not-an-email", "password123"),
        ("bademail2", "a@b", "password123"),
        ("bademail3", "@example.com", "password123"),
        ("shortpw", "shortpw@example.com", "12345"),
    ];
    for (username, email, password) in cases {
        let body = json!({"username": username, "email": email, "password": password});
        let answer = register(&app, body.clone()).await;
        assert_error_status(&answer, 400, &body.to_string());
        assert_eq!(answer.1["success"], false, "{body}");
        assert!(!can_log_in(&app, username, password).await, "{body}");
    }
    assert_unharmed(&mut app, before).await;
}

#[tokio::test]
async fn wrong_password_and_unknown_user_get_identical_401s() {
    let mut app = spawn_app().await;
    let client = new_client();
    app.register(&client, "known", "password123").await;
    let before = total_images(&app).await;
    let wrong_password = app
        .post_json(
            &client,
            "/api/login",
            &json!({"username": "known", "password": "wrong-password"}),
        )
        .await;
    let unknown_user = app
        .post_json(
            &client,
            "/api/login",
            &json!({"username": "nobody-here", "password": "wrong-password"}),
        )
        .await;
    assert_eq!(wrong_password, (401, failure("用户名或密码错误")));
    assert_eq!(unknown_user, wrong_password);
    let (_, check) = app.get_json(&client, "/api/auth/check").await;
    assert_eq!(check, json!({"authenticated": false}));
    assert_unharmed(&mut app, before).await;
}

/// Every object key in `value`, at any depth.
fn keys(value: &Value) -> Vec<String> {
    match value {
        Value::Object(map) => map
            .iter()
            .flat_map(|(k, v)| std::iter::once(k.clone()).chain(keys(v)))
            .collect(),
        Value::Array(items) => items.iter().flat_map(keys).collect(),
        _ => Vec::new(),
    }
}

#[tokio::test]
async fn passwords_never_appear_in_any_answer() {
    let mut app = spawn_app().await;
    let before = total_images(&app).await;
    let password = "Sup3r-Secret-Passw0rd";
    let client = new_client();
    let mut answers = Vec::new();
    let body = json!({"username": "secretive", "email": "s@example.com", "password": password});
    answers.push(app.post_json(&client, "/api/register", &body).await);
    answers.push(app.post_json(&client, "/api/register", &body).await);
    let login = json!({"username": "secretive", "password": password});
    answers.push(app.post_json(&client, "/api/login", &login).await);
    answers.push(app.get_json(&client, "/api/auth/check").await);
    answers.push(app.get_json(&client, "/api/user/profile").await);
    let wrong = json!({"username": "secretive", "password": format!("{password}x")});
    answers.push(app.post_json(&new_client(), "/api/login", &wrong).await);
    let short = json!({"username": "short", "email": "short@example.com", "password": "Pw1!x"});
    answers.push(app.post_json(&new_client(), "/api/register", &short).await);

    let statuses: Vec<u16> = answers.iter().map(|(status, _)| *status).collect();
    assert_eq!(statuses, [200, 400, 200, 200, 200, 401, 400]);
    for (_, body) in &answers {
        let text = body.to_string();
        assert!(
            !text.contains(password) && !text.contains("Pw1!x"),
            "{text}"
        );
        for key in keys(body) {
            assert!(
                key != "password" && key != "password_hash",
                "{key} in {text}"
            );
        }
    }
    assert_unharmed(&mut app, before).await;
}
