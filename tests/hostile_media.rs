//! Decompression bombs padded past the old compression-ratio check, against the real binary: each
//! is refused at upload (400) or thumbnailed within the decode budget, six at once too, and the
//! server's peak RSS stays far below what decoding them whole would take. Large but ordinary
//! images (a 6000×4000 photo, a 4000² PNG, a 12 MP AVIF) still get their thumbnails. AVIF
//! containers that lie about their contents are refused or decoded within the budget too.

mod common;

use std::io::Write;

use common::*;
use flate2::Compression;
use flate2::write::ZlibEncoder;
use serde_json::Value;

const MIB: u64 = 1024 * 1024;
/// Peak RSS the server may reach here: the default budget is 200 MiB, of which decoded pixels get
/// 60; one of these bombs decoded whole takes 430–517 MiB.
const PEAK_LIMIT: u64 = 150 * MIB;
/// The junk that lowered the bombs' ratio under the old 400:1 check.
const PADDING: usize = 700 * 1024;

fn vm_hwm(app: &TestApp) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", app.pid())).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

fn junk(len: usize) -> Vec<u8> {
    (0..len as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect()
}

fn png_chunk(png: &mut Vec<u8>, kind: &[u8], data: &[u8]) {
    png.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let start = png.len();
    png.extend_from_slice(kind);
    png.extend_from_slice(data);
    let crc = crc32(&png[start..]);
    png.extend_from_slice(&crc.to_be_bytes());
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// An 8000² RGBA PNG of zeros (256 MB decoded) padded with a 700 KB ancillary chunk. Interlaced,
/// it must be decoded whole; not interlaced, it can be read row by row.
fn png_bomb(interlaced: bool) -> Vec<u8> {
    let (w, h) = (8000u32, 8000u32);
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 6, 0, 0, u8::from(interlaced)]);
    png_chunk(&mut png, b"IHDR", &ihdr);
    png_chunk(&mut png, b"juNK", &junk(PADDING));
    // Filter byte 0 and zero pixels for every row (and every Adam7 pass row, fewer bytes in all).
    let mut z = ZlibEncoder::new(Vec::new(), Compression::best());
    let row = vec![0u8; 1 + w as usize * 4];
    for _ in 0..h {
        z.write_all(&row).unwrap();
    }
    png_chunk(&mut png, b"IDAT", &z.finish().unwrap());
    png_chunk(&mut png, b"IEND", &[]);
    png
}

/// A 16000×4000 GIF (256 MB as RGBA) whose first frame covers the canvas, padded with a comment.
fn gif_bomb() -> Vec<u8> {
    let mut gif = b"GIF89a".to_vec();
    gif.extend_from_slice(&16000u16.to_le_bytes());
    gif.extend_from_slice(&4000u16.to_le_bytes());
    // A global colour table of two entries.
    gif.extend_from_slice(&[0x80, 0, 0, 0, 0, 0, 255, 255, 255]);
    gif.extend_from_slice(&[0x21, 0xFE]);
    for block in junk(PADDING).chunks(255) {
        gif.push(block.len() as u8);
        gif.extend_from_slice(block);
    }
    gif.push(0);
    gif.push(0x2C);
    for v in [0u16, 0, 16000, 4000] {
        gif.extend_from_slice(&v.to_le_bytes());
    }
    gif.push(0);
    // LZW, minimum code size 2: a clear code (4) then the end code (5), 3 bits each.
    gif.extend_from_slice(&[2, 1, 0b0010_1100, 0, 0x3B]);
    gif
}

/// An 8000² lossless WebP (256 MB as RGBA) whose bitstream is 700 KB of junk after its header.
fn webp_bomb() -> Vec<u8> {
    let mut vp8l = vec![0x2F];
    let bits: u32 = (8000 - 1) | ((8000 - 1) << 14) | (1 << 28);
    vp8l.extend_from_slice(&bits.to_le_bytes());
    // One more byte keeps the chunk's length even, as RIFF wants.
    vp8l.extend_from_slice(&junk(PADDING + 1));
    let mut webp = b"RIFF".to_vec();
    webp.extend_from_slice(&((4 + 8 + vp8l.len()) as u32).to_le_bytes());
    webp.extend_from_slice(b"WEBPVP8L");
    webp.extend_from_slice(&(vp8l.len() as u32).to_le_bytes());
    webp.extend_from_slice(&vp8l);
    webp
}

/// Uploads `bytes`; a 200 must come with a task that completes.
async fn upload(app: &TestApp, client: &reqwest::Client, mime: &str, bytes: &[u8]) -> (u16, Value) {
    let (status, body) = app.receive_image(client, mime, bytes, "clothes").await;
    if status == 200 {
        let task = app.wait_task(body["taskId"].as_str().unwrap()).await;
        assert_eq!(task["status"]["status"], "completed", "{mime}: {task}");
    }
    (status, body)
}

fn assert_refused(mime: &str, status: u16, body: &Value) {
    assert_eq!(status, 400, "{mime}: {body}");
    assert_eq!(body["success"], false, "{body}");
    assert!(
        body["error"].as_str().unwrap().starts_with("图片尺寸过大"),
        "{body}"
    );
}

#[tokio::test]
async fn padded_bombs_are_refused_or_thumbnailed_within_the_budget() {
    let bombs = [
        ("image/png", png_bomb(true), false),
        ("image/png", png_bomb(false), true),
        ("image/gif", gif_bomb(), false),
        ("image/webp", webp_bomb(), false),
    ];
    for (_, bytes, _) in &bombs {
        // Each passes the ratio test the server used to rely on.
        assert!(256_000_000 / bytes.len() < 400, "{}", bytes.len());
    }
    let app = spawn_app().await;
    let (client, _) = app.user_client("bombs").await;
    for (mime, bytes, thumbnailed) in &bombs {
        let (status, body) = upload(&app, &client, mime, bytes).await;
        if *thumbnailed {
            assert_eq!(status, 200, "{mime}: {body}");
        } else {
            assert_refused(mime, status, &body);
        }
    }
    let peak = vm_hwm(&app);
    assert!(peak < PEAK_LIMIT, "peak RSS {} MiB", peak / MIB);

    // Six at once: each decoded whole would be 1.5 GiB together.
    let six: Vec<_> = (0..6).map(|i| bombs[i % 4].clone()).collect();
    let answers = futures_util::future::join_all(
        six.iter()
            .map(|(mime, bytes, _)| upload(&app, &client, mime, bytes)),
    )
    .await;
    for ((mime, _, thumbnailed), (status, body)) in six.iter().zip(&answers) {
        if *thumbnailed {
            assert!(*status == 200 || *status == 400, "{mime}: {body}");
        } else {
            assert_refused(mime, *status, body);
        }
    }
    let peak = vm_hwm(&app);
    assert!(peak < PEAK_LIMIT, "peak RSS {} MiB", peak / MIB);
}

#[tokio::test]
async fn large_ordinary_images_still_get_their_thumbnails() {
    let app = spawn_app().await;
    let (client, user_id) = app.user_client("photos").await;
    let photo = image::RgbImage::from_fn(6000, 4000, |x, y| {
        image::Rgb([(x / 24) as u8, (y / 16) as u8, ((x + y) / 40) as u8])
    });
    let mut jpeg = std::io::Cursor::new(Vec::new());
    photo.write_to(&mut jpeg, image::ImageFormat::Jpeg).unwrap();
    let drawing = image::RgbaImage::from_fn(4000, 4000, |x, y| {
        image::Rgba([
            (x / 16) as u8,
            (y / 16) as u8,
            90,
            if x < 2000 { 255 } else { 0 },
        ])
    });
    let mut png = std::io::Cursor::new(Vec::new());
    drawing.write_to(&mut png, image::ImageFormat::Png).unwrap();
    for (mime, bytes, size) in [
        ("image/jpeg", jpeg.into_inner(), (512, 341)),
        ("image/png", png.into_inner(), (512, 512)),
        // A phone photo's size as AVIF: reduced as it is converted, it fits the default budget.
        ("image/avif", fixture("avif_phone_12mp.avif"), (512, 384)),
    ] {
        assert!(bytes.len() < 10_000_000, "{mime}: {}", bytes.len());
        let (status, up) = upload(&app, &client, mime, &bytes).await;
        assert_eq!(status, 200, "{mime}: {up}");
        let path = format!(
            "/api/user/{user_id}/thumbnails/{}",
            up["filename"].as_str().unwrap()
        );
        let resp = client.get(app.url(&path)).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        let thumb = image::load_from_memory(&resp.bytes().await.unwrap()).unwrap();
        assert_eq!((thumb.width(), thumb.height()), size, "{mime}");
        if mime == "image/png" {
            // The transparent half stays transparent through the row-by-row path.
            let rgba = thumb.to_rgba8();
            assert_eq!(rgba.get_pixel(500, 256).0[3], 0);
            assert_eq!(rgba.get_pixel(10, 256).0[3], 255);
        }
        if mime == "image/avif" {
            let [r, g, b] = thumb.to_rgb8().get_pixel(256, 192).0;
            assert!(
                r.abs_diff(200) + g.abs_diff(60) + b.abs_diff(40) < 12,
                "{r} {g} {b}"
            );
        }
    }
    let peak = vm_hwm(&app);
    assert!(peak < PEAK_LIMIT, "peak RSS {} MiB", peak / MIB);
}

/// A 64² PNG whose `iCCP` profile is 1 MB of zlib that inflates to 1 GiB: the header alone would
/// take it all, before a single pixel. Interlaced and not, so both decode paths meet it.
fn iccp_bomb(interlaced: bool) -> Vec<u8> {
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&64u32.to_be_bytes());
    ihdr.extend_from_slice(&64u32.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, u8::from(interlaced)]);
    png_chunk(&mut png, b"IHDR", &ihdr);
    let mut iccp = b"bomb\0\0".to_vec();
    let mut z = ZlibEncoder::new(Vec::new(), Compression::best());
    let zeros = vec![0u8; MIB as usize];
    for _ in 0..1024 {
        z.write_all(&zeros).unwrap();
    }
    iccp.extend_from_slice(&z.finish().unwrap());
    png_chunk(&mut png, b"iCCP", &iccp);
    // Black pixels and a filter byte per row; Adam7's seven passes have rows of their own.
    let passes: &[(u32, u32, u32, u32)] = if interlaced {
        &[
            (0, 0, 8, 8),
            (4, 0, 8, 8),
            (0, 4, 4, 8),
            (2, 0, 4, 4),
            (0, 2, 2, 4),
            (1, 0, 2, 2),
            (0, 1, 1, 2),
        ]
    } else {
        &[(0, 0, 1, 1)]
    };
    let data: u32 = passes
        .iter()
        .map(|&(x, y, dx, dy)| (64 - y).div_ceil(dy) * (1 + (64 - x).div_ceil(dx) * 3))
        .sum();
    let mut z = ZlibEncoder::new(Vec::new(), Compression::best());
    z.write_all(&vec![0u8; data as usize]).unwrap();
    png_chunk(&mut png, b"IDAT", &z.finish().unwrap());
    png_chunk(&mut png, b"IEND", &[]);
    png
}

#[tokio::test]
async fn a_profile_that_inflates_to_a_gigabyte_is_ignored_and_costs_nothing() {
    let app = spawn_app().await;
    let (client, _) = app.user_client("iccbomb").await;
    for interlaced in [false, true] {
        let bomb = iccp_bomb(interlaced);
        assert!(bomb.len() < 2 * MIB as usize, "{}", bomb.len());
        // The profile is dropped unread, as browsers drop a profile they cannot use: the image is
        // stored and its thumbnail made (`upload` waits for the task to complete).
        let (status, body) = upload(&app, &client, "image/png", &bomb).await;
        assert_eq!(status, 200, "interlaced {interlaced}: {body}");
    }
    let peak = vm_hwm(&app);
    eprintln!("peak RSS after two iCCP bombs: {} MiB", peak / MIB);
    assert!(peak < PEAK_LIMIT, "peak RSS {} MiB", peak / MIB);
}

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/media/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// What the server must answer an AVIF that asks for more than it holds.
enum Verdict {
    /// 400 "不支持的文件格式：…" naming this.
    Unsupported(&'static str),
    /// 400 "图片文件已损坏或不完整…": the container contradicts itself or the file.
    Damaged,
    /// Stored and thumbnailed within the budget, or refused as too large.
    WithinBudget,
    /// Stored and thumbnailed: everything the picture needs is in the file.
    Stored,
}

#[tokio::test]
async fn avif_bombs_are_refused_or_decoded_within_the_budget() {
    // tests/fixtures/media/make_avif_bombs.py (and make_avif_fixtures.sh for the first).
    let bombs = [
        // 8000×8000 of one colour in 843 bytes: 64 megapixels, 96 MB as decoded YUV.
        ("bomb_avif_8000.avif", Verdict::WithinBudget),
        // A 64×48 picture declared 8000×8000 or 65535×65535: the AV1 frame's own size decides.
        ("bomb_avif_ispe_8000.avif", Verdict::Damaged),
        ("bomb_avif_ispe_65535.avif", Verdict::Damaged),
        // 1024 tile items sharing one 46-byte extent; and 1066 tiles, past the most accepted.
        ("bomb_avif_grid_reuse.avif", Verdict::WithinBudget),
        (
            "bomb_avif_grid_1066.avif",
            Verdict::Unsupported("超过 1024 块"),
        ),
        // The data box declares 2^62 bytes (nothing is sized by it, and the item's data is all
        // there, so it is taken as libavif takes it); the item's extent declares 4 GiB.
        ("bomb_avif_mdat_2e62.avif", Verdict::Stored),
        ("bomb_avif_extent.avif", Verdict::Damaged),
    ];
    let app = spawn_app().await;
    let (client, _) = app.user_client("avifbombs").await;
    let check = |name: &str, verdict: &Verdict, (status, body): &(u16, Value)| {
        let error = body["error"].as_str().unwrap_or_default();
        match verdict {
            Verdict::Unsupported(what) => assert!(
                *status == 400 && error.starts_with("不支持的文件格式：") && error.contains(what),
                "{name}: {body}"
            ),
            Verdict::Damaged => assert_damaged(&(*status, body.clone()), name),
            Verdict::Stored => assert_eq!(*status, 200, "{name}: {body}"),
            Verdict::WithinBudget => assert!(
                *status == 200
                    || (*status == 400
                        && error.starts_with("图片尺寸过大")
                        && error.contains("解码需要约")),
                "{name}: {body}"
            ),
        }
    };
    for (name, verdict) in &bombs {
        let bytes = fixture(name);
        assert!(bytes.len() < 64 * 1024, "{name}: {} bytes", bytes.len());
        let answer = upload(&app, &client, "image/avif", &bytes).await;
        eprintln!("{name}: {} {}", answer.0, answer.1);
        check(name, verdict, &answer);
    }
    let peak = vm_hwm(&app);
    eprintln!("peak RSS after the AVIF bombs: {} MiB", peak / MIB);
    assert!(peak < PEAK_LIMIT, "peak RSS {} MiB", peak / MIB);

    // All at once, twice over.
    let answers = futures_util::future::join_all(bombs.iter().chain(&bombs).map(|(name, _)| {
        let (app, client) = (&app, &client);
        async move { upload(app, client, "image/avif", &fixture(name)).await }
    }))
    .await;
    for ((name, verdict), answer) in bombs.iter().chain(&bombs).zip(&answers) {
        check(name, verdict, answer);
    }
    let peak = vm_hwm(&app);
    eprintln!("peak RSS after 14 AVIF bombs at once: {} MiB", peak / MIB);
    assert!(peak < PEAK_LIMIT, "peak RSS {} MiB", peak / MIB);

    // And an ordinary AVIF is still taken.
    let (status, body) = upload(&app, &client, "image/avif", &fixture("avif_420.avif")).await;
    assert_eq!(status, 200, "{body}");
}
