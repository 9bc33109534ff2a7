//! Thumbnail generation, single-threaded, as the background workers run it: a 12-megapixel
//! photo-like JPEG (with full and with half-resolution chroma), a typical 1000×1300 web JPEG, a
//! 2000×2000 opaque PNG and a 2000×2000 transparent PNG (a cut-out garment), each to a 512 px
//! thumbnail (`media::thumbnail::make`: decode, orient, resize, encode).
//!
//! `cargo bench --bench thumbnail [-- --iterations N --size PX]`. Prints a table and writes
//! `target/thumbnail-bench.json`. The sources are generated here (smooth gradients plus sensor-like
//! noise, so the encoders see realistic entropy) and are not part of the timing.

use std::io::Cursor;
use std::time::{Duration, Instant};

use image::{ImageEncoder, RgbImage, RgbaImage};
use imgvault::media::{self, ImageKind, thumbnail};

struct Case {
    name: &'static str,
    bytes: Vec<u8>,
    kind: ImageKind,
}

fn main() {
    let mut iterations = 15usize;
    let mut size = thumbnail::DEFAULT_MAX_SIDE;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--iterations" => iterations = args.next().and_then(|v| v.parse().ok()).unwrap_or(15),
            "--size" => size = args.next().and_then(|v| v.parse().ok()).unwrap_or(size),
            // cargo bench passes `--bench`; anything else is ignored the same way.
            _ => {}
        }
    }

    let cases = [
        Case {
            name: "JPEG 4000x3000 (12 MP), 4:4:4",
            bytes: photo_jpeg(4000, 3000),
            kind: ImageKind::Jpeg,
        },
        Case {
            name: "JPEG 4000x3000 (12 MP), 4:2:0 like a phone's",
            bytes: photo_jpeg_420(4000, 3000),
            kind: ImageKind::Jpeg,
        },
        Case {
            name: "JPEG 1000x1300, a typical web image",
            bytes: photo_jpeg(1000, 1300),
            kind: ImageKind::Jpeg,
        },
        Case {
            name: "PNG 2000x2000 opaque",
            bytes: photo_png(2000, 2000),
            kind: ImageKind::Png,
        },
        Case {
            name: "PNG 2000x2000 transparent",
            bytes: cutout_png(2000, 2000),
            kind: ImageKind::Png,
        },
    ];

    println!("thumbnail to {size} px, single thread, {iterations} runs each (after one warm-up)\n");
    println!(
        "| source | source size | thumbnail | median | p90 | images/s | probe |\n|---|---|---|---|---|---|---|"
    );
    let mut json = Vec::new();
    for case in &cases {
        let warm = thumbnail::make(&case.bytes, case.kind, size).expect("thumbnail");
        let mut times = Vec::with_capacity(iterations);
        for _ in 0..iterations {
            let start = Instant::now();
            let thumb = thumbnail::make(&case.bytes, case.kind, size).expect("thumbnail");
            times.push(start.elapsed());
            assert_eq!(thumb.bytes.len(), warm.bytes.len());
        }
        times.sort();
        let median = times[times.len() / 2];
        let p90 = times[(times.len() * 9 / 10).min(times.len() - 1)];
        let probe_start = Instant::now();
        media::probe(&case.bytes).expect("probe");
        let probe = probe_start.elapsed();
        let per_second = 1.0 / median.as_secs_f64();
        println!(
            "| {} | {:.1} MB | {}x{} {:?}, {} KB | {} | {} | {:.1} | {} |",
            case.name,
            case.bytes.len() as f64 / 1e6,
            warm.width,
            warm.height,
            warm.kind,
            warm.bytes.len() / 1024,
            ms(median),
            ms(p90),
            per_second,
            ms(probe),
        );
        json.push(format!(
            "{{\"source\":\"{}\",\"source_bytes\":{},\"thumb_bytes\":{},\"median_ms\":{:.3},\"p90_ms\":{:.3},\"images_per_s\":{:.2}}}",
            case.name,
            case.bytes.len(),
            warm.bytes.len(),
            median.as_secs_f64() * 1e3,
            p90.as_secs_f64() * 1e3,
            per_second
        ));
    }
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/thumbnail-bench.json");
    if std::fs::write(&out, format!("[{}]\n", json.join(","))).is_ok() {
        println!("\nwritten to {}", out.display());
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

/// Deterministic noise, so runs compare.
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> i32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % 17) as i32 - 8
    }
}

fn shade(x: u32, y: u32, w: u32, h: u32, noise: &mut Noise) -> [u8; 3] {
    let fx = x as f32 / w as f32;
    let fy = y as f32 / h as f32;
    let base = [
        60.0 + 150.0 * fx,
        40.0 + 120.0 * fy,
        90.0 + 80.0 * ((fx * 9.0).sin() * (fy * 7.0).cos()),
    ];
    base.map(|c| (c as i32 + noise.next()).clamp(0, 255) as u8)
}

fn photo_jpeg(w: u32, h: u32) -> Vec<u8> {
    let mut noise = Noise(0x9e37_79b9_7f4a_7c15);
    let img = RgbImage::from_fn(w, h, |x, y| image::Rgb(shade(x, y, w, h, &mut noise)));
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90)
        .encode_image(&img)
        .expect("encode jpeg");
    out
}

/// The same picture with chroma at half resolution, as cameras and phones write it (the `image`
/// encoder above only writes full-resolution chroma, the slowest kind to decode).
fn photo_jpeg_420(w: u32, h: u32) -> Vec<u8> {
    let mut noise = Noise(0x9e37_79b9_7f4a_7c15);
    let img = RgbImage::from_fn(w, h, |x, y| image::Rgb(shade(x, y, w, h, &mut noise)));
    let mut compress = mozjpeg::Compress::new(mozjpeg::ColorSpace::JCS_RGB);
    compress.set_fastest_defaults();
    compress.set_size(w as usize, h as usize);
    compress.set_quality(90.0);
    compress.set_chroma_sampling_pixel_sizes((2, 2), (2, 2));
    let mut started = compress.start_compress(Vec::new()).expect("encode jpeg");
    started.write_scanlines(img.as_raw()).expect("encode jpeg");
    started.finish().expect("encode jpeg")
}

fn photo_png(w: u32, h: u32) -> Vec<u8> {
    let mut noise = Noise(0x2545_f491_4f6c_dd1d);
    let img = RgbImage::from_fn(w, h, |x, y| image::Rgb(shade(x, y, w, h, &mut noise)));
    let mut out = Cursor::new(Vec::new());
    image::codecs::png::PngEncoder::new(&mut out)
        .write_image(img.as_raw(), w, h, image::ExtendedColorType::Rgb8)
        .expect("encode png");
    out.into_inner()
}

/// A garment-like shape on a fully transparent background.
fn cutout_png(w: u32, h: u32) -> Vec<u8> {
    let mut noise = Noise(0x5851_f42d_4c95_7f2d);
    let img = RgbaImage::from_fn(w, h, |x, y| {
        let dx = (x as f32 - w as f32 / 2.0) / (w as f32 * 0.35);
        let dy = (y as f32 - h as f32 / 2.0) / (h as f32 * 0.45);
        let [r, g, b] = shade(x, y, w, h, &mut noise);
        if dx * dx + dy * dy <= 1.0 {
            image::Rgba([r, g, b, 255])
        } else {
            image::Rgba([0, 0, 0, 0])
        }
    });
    let mut out = Cursor::new(Vec::new());
    image::codecs::png::PngEncoder::new(&mut out)
        .write_image(img.as_raw(), w, h, image::ExtendedColorType::Rgba8)
        .expect("encode png");
    out.into_inner()
}
