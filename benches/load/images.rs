//! The images the bench uploads, generated here rather than taken from
//! `benches/common/images.rs` because every one must be byte-distinct (the server stores
//! identical bytes once): ~250 KB noise JPEGs, tiny PNGs to fill a collection, big PNGs.

use std::collections::HashSet;
use std::io::Cursor;

use base64::Engine;
use bytes::Bytes;
use rand::{RngCore, SeedableRng};
use serde_json::json;

pub(crate) const JPEG_WIDTH: u32 = 640;
pub(crate) const JPEG_HEIGHT: u32 = 480;
const JPEG_TARGET_BYTES: usize = 250_000;
/// Big images: random RGB compresses to nothing, so a PNG is about 3 bytes a pixel (~9.7 MB).
pub(crate) const BIG_SIDE: u32 = 1800;

/// One upload ready to send: its route and body, and the size and hash of the image inside it.
pub(crate) struct Upload {
    /// The route it is posted to.
    pub(crate) path: &'static str,
    pub(crate) content_type: String,
    pub(crate) body: Bytes,
    pub(crate) image_bytes: usize,
    pub(crate) digest: blake3::Hash,
}

/// How an upload reaches the server.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route {
    /// `POST /api/receive-image` with the image as a base64 data URL, as the browser extension does.
    Json,
    /// `POST /api/upload-file` as multipart form data, as the web UI's file picker does.
    Multipart,
}

impl Route {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Route::Json => "json",
            Route::Multipart => "multipart",
        }
    }
}

/// Separates the parts of the multipart bodies; never appears in a JPEG's first bytes or a name.
const BOUNDARY: &str = "imgvault-load-bench-boundary-7f3a9c";

impl Upload {
    pub(crate) fn new(mime: &str, image: &[u8]) -> Self {
        Self::for_route(Route::Json, mime, image)
    }

    pub(crate) fn for_route(route: Route, mime: &str, image: &[u8]) -> Self {
        let (path, content_type, body) = match route {
            Route::Json => {
                let data = base64::engine::general_purpose::STANDARD.encode(image);
                let body = json!({
                    "imageData": format!("data:{mime};base64,{data}"),
                    "category": "clothes",
                });
                (
                    "/api/receive-image",
                    "application/json".to_string(),
                    serde_json::to_vec(&body).expect("serialize upload"),
                )
            }
            Route::Multipart => {
                let ext = mime.rsplit('/').next().unwrap_or("bin");
                let mut body = format!(
                    "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"category\"\r\n\r\n\
                     clothes\r\n--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; \
                     filename=\"photo.{ext}\"\r\nContent-Type: {mime}\r\n\r\n"
                )
                .into_bytes();
                body.extend_from_slice(image);
                body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
                (
                    "/api/upload-file",
                    format!("multipart/form-data; boundary={BOUNDARY}"),
                    body,
                )
            }
        };
        Self {
            path,
            content_type,
            body: Bytes::from(body),
            image_bytes: image.len(),
            digest: blake3::hash(image),
        }
    }
}

/// A gradient under strong per-pixel noise, from a PRNG seeded with `seed`.
fn noisy_pixels(seed: u64) -> Vec<u8> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let (w, h) = (JPEG_WIDTH as usize, JPEG_HEIGHT as usize);
    let mut pixels = vec![0u8; w * h * 3];
    rng.fill_bytes(&mut pixels);
    for (i, p) in pixels.iter_mut().enumerate() {
        let (x, y, channel) = ((i / 3) % w, i / 3 / w, i % 3);
        let gradient = ((x + y * 2 + channel * 80) / 8) as u8;
        *p = gradient.wrapping_add(*p / 2);
    }
    pixels
}

fn encode_jpeg(pixels: &[u8], quality: u8) -> Vec<u8> {
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality)
        .encode(
            pixels,
            JPEG_WIDTH,
            JPEG_HEIGHT,
            image::ExtendedColorType::Rgb8,
        )
        .expect("encode JPEG");
    out
}

/// The JPEG quality whose output for the first image is closest to `JPEG_TARGET_BYTES`.
pub(crate) fn calibrate_quality() -> u8 {
    let pixels = noisy_pixels(0);
    let size = |q: u8| encode_jpeg(&pixels, q).len();
    // Largest quality whose output still fits the target (size grows with quality).
    let (mut lo, mut hi) = (1u8, 100u8);
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        if size(mid) <= JPEG_TARGET_BYTES {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    if lo < 100 && size(lo + 1).abs_diff(JPEG_TARGET_BYTES) < size(lo).abs_diff(JPEG_TARGET_BYTES) {
        lo + 1
    } else {
        lo
    }
}

/// `n` byte-distinct JPEGs from seeds `first_seed..`, as upload bodies for `route`, encoded on
/// every core.
pub(crate) fn make_jpegs(first_seed: usize, n: usize, quality: u8, route: Route) -> Vec<Upload> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = n.div_ceil(threads).max(1);
    let mut slots: Vec<Option<Upload>> = (0..n).map(|_| None).collect();
    std::thread::scope(|scope| {
        for (t, part) in slots.chunks_mut(chunk).enumerate() {
            scope.spawn(move || {
                for (k, slot) in part.iter_mut().enumerate() {
                    let seed = (first_seed + t * chunk + k) as u64;
                    let jpeg = encode_jpeg(&noisy_pixels(seed), quality);
                    *slot = Some(Upload::for_route(route, "image/jpeg", &jpeg));
                }
            });
        }
    });
    let uploads: Vec<Upload> = slots
        .into_iter()
        .map(|u| u.expect("every JPEG generated"))
        .collect();
    assert_distinct(&uploads);
    uploads
}

/// An 8×8 PNG whose first two pixels spell `index`, so every index gives other bytes.
pub(crate) fn tiny_png(index: usize) -> Vec<u8> {
    let n = index as u64;
    let img = image::RgbImage::from_fn(8, 8, |x, y| match (x, y) {
        (0, 0) => image::Rgb([n as u8, (n >> 8) as u8, (n >> 16) as u8]),
        (1, 0) => image::Rgb([(n >> 24) as u8, (n >> 32) as u8, (n >> 40) as u8]),
        _ => image::Rgb([(x * 32) as u8, (y * 32) as u8, ((x + y) * 16) as u8]),
    });
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png)
        .expect("encode PNG");
    out.into_inner()
}

/// A `BIG_SIDE`² PNG of random RGB bytes from a PRNG seeded with `seed`: incompressible, so
/// about 3 bytes a pixel. Fails if it would not fit under the server's upload limit.
pub(crate) fn big_png(seed: u64) -> Result<Vec<u8>, String> {
    use image::ImageEncoder;
    use image::codecs::png::{CompressionType, FilterType, PngEncoder};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut pixels = vec![0u8; (BIG_SIDE * BIG_SIDE * 3) as usize];
    rng.fill_bytes(&mut pixels);
    let mut out = Vec::new();
    PngEncoder::new_with_quality(&mut out, CompressionType::Fast, FilterType::NoFilter)
        .write_image(&pixels, BIG_SIDE, BIG_SIDE, image::ExtendedColorType::Rgb8)
        .expect("encode PNG");
    let limit = imgvault::media::MAX_IMAGE_BYTES;
    if out.len() as u64 > limit {
        return Err(format!(
            "a {BIG_SIDE}x{BIG_SIDE} noise PNG is {} bytes, over the upload limit of {limit}",
            out.len()
        ));
    }
    Ok(out)
}

/// The server stores identical bytes once; the bench must not measure deduplication by accident.
pub(crate) fn assert_distinct(uploads: &[Upload]) {
    let distinct: HashSet<_> = uploads.iter().map(|u| u.digest).collect();
    assert_eq!(distinct.len(), uploads.len(), "generated images repeat");
}
