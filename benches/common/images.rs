//! Test images shared by the benches: smooth gradients plus seeded sensor-like noise, so the
//! encoders and decoders see realistic entropy and every run sees the same bytes. Each bench uses
//! the subset it needs.
#![allow(dead_code)]

use std::io::Cursor;

use image::{ImageEncoder, RgbImage, RgbaImage};

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

/// A photo-like picture.
pub fn photo_rgb(w: u32, h: u32) -> RgbImage {
    let mut noise = Noise(0x9e37_79b9_7f4a_7c15);
    RgbImage::from_fn(w, h, |x, y| image::Rgb(shade(x, y, w, h, &mut noise)))
}

/// `img` as a JPEG from the `image` crate's encoder, which writes full-resolution chroma (4:4:4),
/// the slowest kind to decode.
pub fn encode_jpeg(img: &RgbImage, quality: u8) -> Vec<u8> {
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality)
        .encode_image(img)
        .expect("encode jpeg");
    out
}

pub fn photo_jpeg(w: u32, h: u32) -> Vec<u8> {
    encode_jpeg(&photo_rgb(w, h), 90)
}

/// The same picture with chroma at half resolution, as cameras and phones write it.
pub fn photo_jpeg_420(w: u32, h: u32) -> Vec<u8> {
    let img = photo_rgb(w, h);
    let mut compress = mozjpeg::Compress::new(mozjpeg::ColorSpace::JCS_RGB);
    compress.set_fastest_defaults();
    compress.set_size(w as usize, h as usize);
    compress.set_quality(90.0);
    compress.set_chroma_sampling_pixel_sizes((2, 2), (2, 2));
    let mut started = compress.start_compress(Vec::new()).expect("encode jpeg");
    started.write_scanlines(img.as_raw()).expect("encode jpeg");
    started.finish().expect("encode jpeg")
}

pub fn photo_png(w: u32, h: u32) -> Vec<u8> {
    let mut noise = Noise(0x2545_f491_4f6c_dd1d);
    let img = RgbImage::from_fn(w, h, |x, y| image::Rgb(shade(x, y, w, h, &mut noise)));
    let mut out = Cursor::new(Vec::new());
    image::codecs::png::PngEncoder::new(&mut out)
        .write_image(img.as_raw(), w, h, image::ExtendedColorType::Rgb8)
        .expect("encode png");
    out.into_inner()
}

/// A garment-like shape on a fully transparent background.
pub fn cutout_png(w: u32, h: u32) -> Vec<u8> {
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
