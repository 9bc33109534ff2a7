//! A 64-bit perceptual hash: two images that look alike (one resized, recompressed, cropped by a
//! few percent, marked with a small watermark or converted to another format) get hashes a few
//! bits apart, and unrelated images about 32 bits apart. It is what near-duplicate search compares
//! (`store::search::similar`), by Hamming distance.
//!
//! The hash is made from the image as it is shown: the thumbnail pipeline's decoded, oriented,
//! colour-managed pixels (`thumbnail::make_within`), so it costs no decode of its own and an image
//! with EXIF orientation hashes like its upright copy. Transparent pixels are composited on white
//! (what a page behind a PNG usually is), and an animation is hashed by its first frame, the one
//! the decoder gives.
//!
//! The hash (`ALGORITHM` 1) was chosen by measurement on `benches/phash.rs`: real photographs
//! and their variants, every pair compared, precision and recall at every distance. Per image:
//!
//! 1. its luma averaged into 32×32 cells (`Luma`: a box filter over every pixel, so neither
//!    scaling nor JPEG noise moves a cell much);
//! 2. a 5×5 median over the cells, which erases marks a few cells across (a watermark, a caption,
//!    a logo) and keeps the shapes that span more;
//! 3. a 2-D DCT-II of the cells, of which the 32 lowest frequencies after the constant one (in
//!    zigzag order) are kept: the image's coarse layout, which every variant keeps;
//! 4. each of the 32 coefficients put in one of three levels by the terciles of the 32, and
//!    written as two bits counting the level (00, 01, 11), so the bits two hashes differ in add
//!    up how far each coefficient moved between levels.
//!
//! The classic perceptual hash (the 64 lowest coefficients, one bit each: above their median or
//! not) scored 86% recall at 10 bits; it needs the 7th to 10th frequencies, which a 5% crop shifts
//! by a quarter of their period. Fewer, coarser frequencies with two bits each keep crops within a
//! few bits, and the median keeps watermarks out. The gradient hash (dHash) had far worse
//! precision: flat or smooth photos give it the same bits. The bench prints all three.
//!
//! Changing the hash changes `ALGORITHM`: stored hashes name the algorithm that made them, and
//! those of another are made again in the background.

use image::DynamicImage;

pub mod groups;

/// The algorithm of the hashes made now, stored beside each hash (`PhashRecord`).
pub const ALGORITHM: u8 = 1;

/// Side of the grid of luma cells the hash transforms.
pub const GRID: usize = 32;
/// The median's window is `2 × MEDIAN_RADIUS + 1` cells square.
const MEDIAN_RADIUS: usize = 2;
/// Coefficients kept, each two bits.
const COEFFICIENTS: usize = 32;
/// Rows and columns of the transform computed (the kept frequencies need no more).
const USED: usize = 9;

/// The hash of `image` with the stored algorithm (`ALGORITHM`).
pub fn hash(image: &DynamicImage) -> u64 {
    let cells = median(&Luma::of(image, GRID, GRID));
    let coefficients = dct(&cells);
    let lowest: Vec<f32> = zigzag()
        .take(COEFFICIENTS)
        .map(|(u, v)| coefficients[v][u])
        .collect();
    levels(&lowest)
}

/// The number of bits in which two hashes differ.
pub fn distance(a: u64, b: u64) -> u32 {
    (a ^ b).count_ones()
}

/// An image's luma, composited on white and averaged into `width`×`height` cells.
pub struct Luma {
    width: usize,
    height: usize,
    cells: Vec<f32>,
}

impl Luma {
    /// The cells, row by row.
    pub fn cells(&self) -> &[f32] {
        &self.cells
    }

    /// Averages every pixel of `image` into its cell (the cell its centre falls in): a box filter
    /// whatever the image's size. An empty image gives grey cells.
    pub fn of(image: &DynamicImage, width: usize, height: usize) -> Self {
        let (w, h) = (image.width() as usize, image.height() as usize);
        let mut sums = vec![0f32; width * height];
        let mut counts = vec![0u32; width * height];
        if w > 0 && h > 0 {
            let column: Vec<usize> = (0..w).map(|x| x * width / w).collect();
            let mut add = |x: usize, y: usize, luma: f32| {
                let cell = (y * height / h) * width + column[x];
                sums[cell] += luma;
                counts[cell] += 1;
            };
            match image {
                DynamicImage::ImageLuma8(img) => {
                    for (x, y, p) in img.enumerate_pixels() {
                        add(x as usize, y as usize, f32::from(p.0[0]));
                    }
                }
                DynamicImage::ImageLumaA8(img) => {
                    for (x, y, p) in img.enumerate_pixels() {
                        add(x as usize, y as usize, on_white(f32::from(p.0[0]), p.0[1]));
                    }
                }
                DynamicImage::ImageRgb8(img) => {
                    for (x, y, p) in img.enumerate_pixels() {
                        add(x as usize, y as usize, luma(p.0));
                    }
                }
                DynamicImage::ImageRgba8(img) => {
                    for (x, y, p) in img.enumerate_pixels() {
                        let [r, g, b, a] = p.0;
                        add(x as usize, y as usize, on_white(luma([r, g, b]), a));
                    }
                }
                other => {
                    for (x, y, p) in other.to_rgba8().enumerate_pixels() {
                        let [r, g, b, a] = p.0;
                        add(x as usize, y as usize, on_white(luma([r, g, b]), a));
                    }
                }
            }
        }
        // A cell no pixel fell in (an image smaller than the grid) takes its left or upper
        // neighbour's value: the image stretched, as a resize would.
        let mut cells = vec![128f32; width * height];
        for y in 0..height {
            for x in 0..width {
                let i = y * width + x;
                cells[i] = if counts[i] > 0 {
                    sums[i] / counts[i] as f32
                } else if x > 0 {
                    cells[i - 1]
                } else if y > 0 {
                    cells[i - width]
                } else {
                    128.0
                };
            }
        }
        Self {
            width,
            height,
            cells,
        }
    }
}

/// BT.601 luma of gamma-encoded sRGB, as JPEG uses.
fn luma([r, g, b]: [u8; 3]) -> f32 {
    0.299 * f32::from(r) + 0.587 * f32::from(g) + 0.114 * f32::from(b)
}

/// `value` seen over a white background through opacity `alpha`.
fn on_white(value: f32, alpha: u8) -> f32 {
    let a = f32::from(alpha) / 255.0;
    value * a + 255.0 * (1.0 - a)
}

/// The `GRID`×`GRID` cells after a median over each one's window (clamped at the edges).
fn median(luma: &Luma) -> Vec<f32> {
    let n = GRID;
    assert_eq!((luma.width, luma.height), (n, n), "the hash needs its grid");
    let side = 2 * MEDIAN_RADIUS + 1;
    let mut out = vec![0f32; n * n];
    let mut window = Vec::with_capacity(side * side);
    for y in 0..n {
        for x in 0..n {
            window.clear();
            for dy in 0..side {
                let yy = (y + dy).saturating_sub(MEDIAN_RADIUS).min(n - 1);
                for dx in 0..side {
                    let xx = (x + dx).saturating_sub(MEDIAN_RADIUS).min(n - 1);
                    window.push(luma.cells[yy * n + xx]);
                }
            }
            window.sort_unstable_by(f32::total_cmp);
            out[y * n + x] = window[window.len() / 2];
        }
    }
    out
}

/// The first `USED`×`USED` coefficients of the 2-D DCT-II of `GRID`×`GRID` cells,
/// `[vertical][horizontal]` frequency.
fn dct(cells: &[f32]) -> [[f32; USED]; USED] {
    let basis = dct_basis();
    let mut rows = [[0f32; USED]; GRID];
    for (y, row) in rows.iter_mut().enumerate() {
        let line = &cells[y * GRID..][..GRID];
        for (u, out) in row.iter_mut().enumerate() {
            *out = line.iter().zip(&basis[u]).map(|(v, c)| v * c).sum();
        }
    }
    let mut coefficients = [[0f32; USED]; USED];
    for (v, out_row) in coefficients.iter_mut().enumerate() {
        for (u, out) in out_row.iter_mut().enumerate() {
            *out = (0..GRID).map(|y| rows[y][u] * basis[v][y]).sum();
        }
    }
    coefficients
}

/// `basis[k][n]`: the DCT-II basis function `k` at sample `n` over `GRID` samples (computed in
/// f64, so the f32 table is the same on every platform).
fn dct_basis() -> [[f32; GRID]; USED] {
    let mut basis = [[0f32; GRID]; USED];
    for (k, row) in basis.iter_mut().enumerate() {
        for (n, c) in row.iter_mut().enumerate() {
            *c = (std::f64::consts::PI / GRID as f64 * (n as f64 + 0.5) * k as f64).cos() as f32;
        }
    }
    basis
}

/// Frequencies `(u, v)` from the lowest up, by `u + v` then `v`, without the constant (0, 0).
fn zigzag() -> impl Iterator<Item = (usize, usize)> {
    (1..).flat_map(|sum: usize| (0..=sum).map(move |v| (sum - v, v)))
}

/// Two bits per value, first value in the highest bits: 00, 01 or 11 as the value is in the
/// lowest, middle or highest third of the values.
fn levels(values: &[f32]) -> u64 {
    let mut sorted = values.to_vec();
    sorted.sort_unstable_by(f32::total_cmp);
    let cut = |k: usize| {
        let i = k * sorted.len() / 3;
        (sorted[i - 1] + sorted[i]) / 2.0
    };
    let (low, high) = (cut(1), cut(2));
    values.iter().fold(0u64, |bits, &v| {
        (bits << 2) | u64::from(v > low) | (u64::from(v > high) << 1)
    })
}

#[cfg(test)]
mod tests {
    use image::{Rgb, RgbImage, Rgba, RgbaImage};

    use super::*;

    /// A photograph-like scene: soft shapes of different brightness over a gradient, with fine
    /// noise that recompression disturbs. `seed` changes the layout.
    fn scene(w: u32, h: u32, seed: u32) -> RgbImage {
        let blobs: Vec<(f32, f32, f32, [f32; 3])> = (0..6)
            .map(|i| {
                let r = |k: u32| {
                    let v = (seed.wrapping_mul(2_654_435_761) ^ (i * 7 + k).wrapping_mul(40_503))
                        .wrapping_mul(2_246_822_519);
                    (v >> 8) as f32 / (1u32 << 24) as f32
                };
                (
                    r(1),
                    r(2),
                    0.1 + 0.25 * r(3),
                    [r(4), r(5), r(6)].map(|c| c * 255.0),
                )
            })
            .collect();
        RgbImage::from_fn(w, h, |x, y| {
            let (fx, fy) = (x as f32 / w as f32, y as f32 / h as f32);
            let mut c = [fy * 120.0 + 40.0, fx * 80.0 + 60.0, 150.0];
            for &(bx, by, r, colour) in &blobs {
                let d = ((fx - bx).powi(2) + (fy - by).powi(2)).sqrt();
                let t = (1.0 - d / r).clamp(0.0, 1.0);
                for k in 0..3 {
                    c[k] = c[k] * (1.0 - t) + colour[k] * t;
                }
            }
            let noise = ((x.wrapping_mul(73_856_093) ^ y.wrapping_mul(19_349_663)) % 9) as f32;
            Rgb(c.map(|v| (v + noise - 4.0).clamp(0.0, 255.0) as u8))
        })
    }

    fn through_jpeg(image: &RgbImage, quality: u8) -> DynamicImage {
        let bytes = crate::media::jpeg::encode_rgb(image, quality).unwrap();
        image::load_from_memory(&bytes).unwrap()
    }

    #[test]
    fn variants_of_an_image_stay_close() {
        let original = scene(640, 480, 1);
        let h = hash(&original.clone().into());
        let resized = image::imageops::resize(&original, 200, 150, image::imageops::Triangle);
        let cropped = image::imageops::crop_imm(&original, 16, 12, 608, 456).to_image();
        let mut marked = original.clone();
        for y in 440..470 {
            for x in 500..630 {
                marked.put_pixel(x, y, Rgb([255, 255, 255]));
            }
        }
        for (name, variant) in [
            ("resized", DynamicImage::from(resized)),
            ("jpeg q50", through_jpeg(&original, 50)),
            ("cropped 5%", cropped.into()),
            ("watermark", marked.into()),
        ] {
            let d = distance(h, hash(&variant));
            // Within the server's default `max_distance`.
            assert!(d <= 10, "{name}: {d} bits");
        }
    }

    #[test]
    fn different_images_are_far_apart() {
        let hashes: Vec<u64> = (0..8)
            .map(|seed| hash(&scene(320, 240, seed).into()))
            .collect();
        for (i, a) in hashes.iter().enumerate() {
            for b in &hashes[i + 1..] {
                assert!(distance(*a, *b) > 10, "{a:016x} {b:016x}");
            }
        }
    }

    #[test]
    fn a_turned_image_hashes_like_itself_only_once_turned_back() {
        let upright = scene(400, 300, 3);
        let turned = image::imageops::rotate90(&upright);
        let h = hash(&upright.clone().into());
        assert!(distance(h, hash(&turned.clone().into())) > 10);
        let back = image::imageops::rotate270(&turned);
        assert_eq!(hash(&back.into()), h);
    }

    #[test]
    fn transparency_is_seen_on_white() {
        let opaque = scene(300, 300, 4);
        // The same picture over a transparent margin, which shows as white.
        let mut framed = RgbaImage::from_pixel(360, 360, Rgba([0, 0, 0, 0]));
        let mut on_white = RgbImage::from_pixel(360, 360, Rgb([255, 255, 255]));
        for (x, y, p) in opaque.enumerate_pixels() {
            framed.put_pixel(x + 30, y + 30, Rgba([p[0], p[1], p[2], 255]));
            on_white.put_pixel(x + 30, y + 30, *p);
        }
        assert_eq!(hash(&framed.into()), hash(&on_white.into()));
        // Fully transparent pixels' colour does not matter.
        let clear_red = RgbaImage::from_pixel(64, 64, Rgba([255, 0, 0, 0]));
        let clear_black = RgbaImage::from_pixel(64, 64, Rgba([0, 0, 0, 0]));
        assert_eq!(hash(&clear_red.into()), hash(&clear_black.into()));
    }

    #[test]
    fn tiny_and_flat_images_hash_without_panicking() {
        for (w, h) in [(1, 1), (3, 50), (50, 3), (31, 33)] {
            let _ = hash(&RgbImage::from_pixel(w, h, Rgb([9, 9, 9])).into());
        }
    }

    #[test]
    fn the_stored_algorithm_gives_the_same_bits_forever() {
        // Stored hashes are compared with new ones: the bits for a fixed image never change
        // unless `ALGORITHM` does.
        let h = hash(&scene(256, 192, 7).into());
        assert_eq!(format!("{h:016x}"), "003c77f40d17d55f");
    }
}
