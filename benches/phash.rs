//! Quality of the perceptual hash (`media::phash`): how well its Hamming distance tells a
//! near-duplicate (the same photo resized, recompressed, cropped, watermarked or converted) from a
//! different photo, over every threshold from 0 to 24 bits, for the stored algorithm and the two
//! it was chosen over (the classic DCT hash and the gradient hash, computed here from the same
//! pixels).
//!
//! ```text
//! apt-get install plasma-workspace-wallpapers mate-backgrounds ukui-wallpapers
//! cargo bench --bench phash
//! cargo bench --bench phash -- --photos 105 --threads 2   # every other tile, for a quick look
//! ```
//!
//! **Corpus.** Real photographs, found on the machine rather than kept in the repository: the
//! photographic wallpapers of Debian's `plasma-workspace-wallpapers`, `mate-backgrounds` and
//! `ukui-wallpapers` (`SOURCES`; their artwork is left out) and `lake.jpg` of the `webp` crate's
//! sources in the cargo registry when present. They are 26 large photos (1280×1024 to 5120×2880),
//! too few, so each is cut into a 3×3 grid of tiles that share no pixel, each tile a "distinct
//! photo" (about 850×530 pixels, a typical web image; 211 of them). Tiles of one photo often
//! share colours and texture, which makes telling them apart harder than telling unrelated photos
//! apart: the figures are, if anything, pessimistic. A tile with almost no detail (luma standard deviation below
//! `FLAT`, a patch of fog or sky that is no one's photo) is left out and counted (23). Nothing is
//! synthetic. Fewer than 200 tiles found (a package missing) stops the bench with the command
//! that installs them.
//!
//! **Variants.** Each tile is stored as a JPEG at quality 92 (the "original") and made into
//! `VARIANTS` near-duplicates from its pixels: resized to 50% and to 30%, recompressed at quality
//! 50, 70 and 95, cropped by 5% (one corner kept, and the centre kept), marked with a small
//! watermark (a translucent band with dark strokes across a fifth of the width, bottom right),
//! converted to PNG, lossy WebP and lossless WebP at 75%, and resized to 60% then saved at
//! quality 60. Every image goes through the server's own pipeline (`thumbnail::shown`, as the
//! thumbnail workers decode it: JPEG scaled decoding, EXIF, colour management) before it is
//! hashed.
//!
//! **Measure.** Every pair of images is compared. A pair from the same tile is a near-duplicate;
//! a pair from two tiles is not. At threshold `t`, a pair at distance ≤ `t` is called a duplicate:
//! precision is the share of those calls that are right, recall the share of near-duplicate pairs
//! called. Printed for `t` = 0..24 for each algorithm, then, at the default (10 bits), the recall
//! of each variant against its original and the closest pairs of different tiles.

use std::path::{Path, PathBuf};
use std::time::Instant;

use image::{DynamicImage, Rgb, RgbImage};
use imgvault::media::{ImageKind, jpeg, phash, thumbnail};

/// The photographic wallpapers used, each with the package that installs it.
const SOURCES: &[(&str, &str)] = &[
    (
        "plasma-workspace-wallpapers",
        "/usr/share/wallpapers/BytheWater/contents/images/2560x1600.jpg",
    ),
    (
        "plasma-workspace-wallpapers",
        "/usr/share/wallpapers/ColdRipple/contents/images/2560x1600.jpg",
    ),
    (
        "plasma-workspace-wallpapers",
        "/usr/share/wallpapers/ColorfulCups/contents/images/2560x1600.jpg",
    ),
    (
        "plasma-workspace-wallpapers",
        "/usr/share/wallpapers/DarkestHour/contents/images/2560x1600.jpg",
    ),
    (
        "plasma-workspace-wallpapers",
        "/usr/share/wallpapers/EveningGlow/contents/images/2560x1600.jpg",
    ),
    (
        "plasma-workspace-wallpapers",
        "/usr/share/wallpapers/FallenLeaf/contents/images/2560x1600.jpg",
    ),
    (
        "plasma-workspace-wallpapers",
        "/usr/share/wallpapers/Grey/contents/images/2560x1600.jpg",
    ),
    (
        "plasma-workspace-wallpapers",
        "/usr/share/wallpapers/Kite/contents/images/2560x1600.jpg",
    ),
    (
        "plasma-workspace-wallpapers",
        "/usr/share/wallpapers/OneStandsOut/contents/images/2560x1600.jpg",
    ),
    (
        "plasma-workspace-wallpapers",
        "/usr/share/wallpapers/Path/contents/images/2560x1600.jpg",
    ),
    (
        "plasma-workspace-wallpapers",
        "/usr/share/wallpapers/SafeLanding/contents/images/5120x2880.jpg",
    ),
    (
        "plasma-workspace-wallpapers",
        "/usr/share/wallpapers/summer_1am/contents/images/2560x1600.jpg",
    ),
    (
        "mate-backgrounds",
        "/usr/share/backgrounds/mate/nature/Aqua.jpg",
    ),
    (
        "mate-backgrounds",
        "/usr/share/backgrounds/mate/nature/Blinds.jpg",
    ),
    (
        "mate-backgrounds",
        "/usr/share/backgrounds/mate/nature/Dune.jpg",
    ),
    (
        "mate-backgrounds",
        "/usr/share/backgrounds/mate/nature/FreshFlower.jpg",
    ),
    (
        "mate-backgrounds",
        "/usr/share/backgrounds/mate/nature/Garden.jpg",
    ),
    (
        "mate-backgrounds",
        "/usr/share/backgrounds/mate/nature/GreenMeadow.jpg",
    ),
    (
        "mate-backgrounds",
        "/usr/share/backgrounds/mate/nature/LadyBird.jpg",
    ),
    (
        "mate-backgrounds",
        "/usr/share/backgrounds/mate/nature/RainDrops.jpg",
    ),
    (
        "mate-backgrounds",
        "/usr/share/backgrounds/mate/nature/Storm.jpg",
    ),
    (
        "mate-backgrounds",
        "/usr/share/backgrounds/mate/nature/TwoWings.jpg",
    ),
    (
        "mate-backgrounds",
        "/usr/share/backgrounds/mate/nature/Wood.jpg",
    ),
    (
        "mate-backgrounds",
        "/usr/share/backgrounds/mate/nature/YellowFlower.jpg",
    ),
    ("ukui-wallpapers", "/usr/share/backgrounds/2004default.jpg"),
];

/// Tiles per side of each photo.
const GRID: u32 = 3;
/// Tiles whose luma varies less than this (standard deviation, 0–255) are left out.
const FLAT: f64 = 12.0;
/// The server's default `max_distance`.
const DEFAULT_DISTANCE: u32 = 10;
const MAX_THRESHOLD: u32 = 24;

const VARIANTS: &[&str] = &[
    "resized 50%",
    "resized 30%",
    "JPEG q50",
    "JPEG q70",
    "JPEG q95",
    "crop 5% (corner)",
    "crop 5% (centre)",
    "watermark",
    "PNG",
    "WebP lossy q75",
    "WebP lossless 75%",
    "60% at JPEG q60",
];

struct Args {
    photos: usize,
    threads: usize,
}

fn main() {
    let mut args = Args {
        photos: usize::MAX,
        threads: 2,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--photos" => {
                args.photos = it.next().and_then(|v| v.parse().ok()).unwrap_or(usize::MAX)
            }
            "--threads" => args.threads = it.next().and_then(|v| v.parse().ok()).unwrap_or(2),
            _ => {}
        }
    }
    let started = Instant::now();
    let (tiles, flat, sources) = corpus();
    if tiles.len() < 200 && args.photos == usize::MAX {
        let packages: std::collections::BTreeSet<&str> = SOURCES.iter().map(|(p, _)| *p).collect();
        eprintln!(
            "only {} photos found (200 needed); install the wallpapers: apt-get install {}",
            tiles.len(),
            packages.into_iter().collect::<Vec<_>>().join(" ")
        );
        std::process::exit(2);
    }
    let step = (tiles.len() / args.photos.min(tiles.len()).max(1)).max(1);
    let tiles: Vec<RgbImage> = tiles.into_iter().step_by(step).take(args.photos).collect();
    println!(
        "corpus: {} photos (3×3 tiles of {sources} real photographs; {flat} flat tiles left out), \
         {} images each (original + {} variants)",
        tiles.len(),
        VARIANTS.len() + 1,
        VARIANTS.len()
    );

    // Each tile's images, hashed by both algorithms, on `threads` threads.
    let chunk = tiles.len().div_ceil(args.threads.max(1));
    let groups: Vec<Vec<Vec<u64>>> = std::thread::scope(|s| {
        let handles: Vec<_> = tiles
            .chunks(chunk.max(1))
            .map(|part| s.spawn(move || part.iter().map(hashes_of).collect::<Vec<_>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a hashing thread"))
            .collect()
    });
    println!("hashed in {:.1} s", started.elapsed().as_secs_f64());

    for (pick, name) in NAMES.iter().enumerate() {
        let hashes: Vec<Vec<u64>> = groups
            .iter()
            .map(|g| g.iter().map(|h| h[pick]).collect())
            .collect();
        report(name, &hashes);
    }
}

/// The tiles of every source found, the number of flat tiles left out, and the sources found.
fn corpus() -> (Vec<RgbImage>, usize, usize) {
    let mut paths: Vec<PathBuf> = SOURCES.iter().map(|(_, p)| PathBuf::from(p)).collect();
    paths.extend(cargo_lake());
    let (mut tiles, mut flat, mut found) = (Vec::new(), 0, 0);
    for path in paths.iter().filter(|p| p.exists()) {
        let Ok(photo) = image::open(path) else {
            eprintln!("cannot read {}", path.display());
            continue;
        };
        found += 1;
        let photo = photo.into_rgb8();
        let (tw, th) = (photo.width() / GRID, photo.height() / GRID);
        for ty in 0..GRID {
            for tx in 0..GRID {
                let tile = image::imageops::crop_imm(&photo, tx * tw, ty * th, tw, th).to_image();
                // Tiles of the 5120-px sources are brought to the others' size.
                let tile = if tw > 1000 {
                    image::imageops::resize(&tile, tw / 2, th / 2, image::imageops::Lanczos3)
                } else {
                    tile
                };
                if luma_deviation(&tile) < FLAT {
                    flat += 1;
                } else {
                    tiles.push(tile);
                }
            }
        }
    }
    (tiles, flat, found)
}

/// `lake.jpg` of the `webp` crate's sources, when cargo has them.
fn cargo_lake() -> Option<PathBuf> {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo")))?;
    let registry = home.join("registry/src");
    for index in std::fs::read_dir(registry).ok()?.flatten() {
        for krate in std::fs::read_dir(index.path()).ok()?.flatten() {
            let name = krate.file_name().to_string_lossy().to_string();
            let lake = krate.path().join("assets/lake.jpg");
            if name.starts_with("webp-0.") && lake.exists() {
                return Some(lake);
            }
        }
    }
    None
}

fn luma_deviation(image: &RgbImage) -> f64 {
    let values: Vec<f64> = image
        .pixels()
        .map(|p| 0.299 * f64::from(p[0]) + 0.587 * f64::from(p[1]) + 0.114 * f64::from(p[2]))
        .collect();
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / values.len() as f64).sqrt()
}

/// The hashes compared: the stored one and the two it was chosen over (see `media::phash`).
const NAMES: &[&str] = &[
    "stored (algorithm 1: 32 DCT coefficients, 3 levels, median-filtered)",
    "classic pHash (64 DCT coefficients vs their median)",
    "dHash (9×8 gradient signs)",
];

/// The `n` lowest 2-D DCT-II coefficients after the constant one, zigzag order, of `cells`
/// (`GRID`×`GRID`).
fn lowest_coefficients(cells: &[f32], n: usize) -> Vec<f32> {
    let size = phash::GRID;
    let used = 12;
    let basis: Vec<Vec<f64>> = (0..used)
        .map(|k| {
            (0..size)
                .map(|i| (std::f64::consts::PI / size as f64 * (i as f64 + 0.5) * k as f64).cos())
                .collect()
        })
        .collect();
    let mut rows = vec![vec![0f64; used]; size];
    for (y, row) in rows.iter_mut().enumerate() {
        for (u, out) in row.iter_mut().enumerate() {
            *out = (0..size)
                .map(|x| f64::from(cells[y * size + x]) * basis[u][x])
                .sum();
        }
    }
    let coefficient =
        |u: usize, v: usize| -> f64 { (0..size).map(|y| rows[y][u] * basis[v][y]).sum() };
    (1..)
        .flat_map(|sum: usize| (0..=sum).map(move |v| (sum - v, v)))
        .take(n)
        .map(|(u, v)| coefficient(u, v) as f32)
        .collect()
}

/// The classic perceptual hash: 64 coefficients, each one bit, above their median or not.
fn classic(shown: &DynamicImage) -> u64 {
    let grid = phash::Luma::of(shown, phash::GRID, phash::GRID);
    let values = lowest_coefficients(grid.cells(), 64);
    let mut sorted = values.clone();
    sorted.sort_by(f32::total_cmp);
    let median = (sorted[31] + sorted[32]) / 2.0;
    values
        .iter()
        .fold(0u64, |bits, &v| (bits << 1) | u64::from(v > median))
}

/// The gradient hash: 9×8 luma cells, one bit per pair of neighbours in a row.
fn gradient(shown: &DynamicImage) -> u64 {
    let grid = phash::Luma::of(shown, 9, 8);
    let cells = grid.cells();
    let mut bits = 0u64;
    for y in 0..8 {
        for x in 0..8 {
            bits = (bits << 1) | u64::from(cells[y * 9 + x] > cells[y * 9 + x + 1]);
        }
    }
    bits
}

fn candidates(shown: &DynamicImage) -> Vec<u64> {
    vec![phash::hash(shown), classic(shown), gradient(shown)]
}

/// The original and every variant of one tile as stored bytes, each hashed by every candidate.
fn hashes_of(tile: &RgbImage) -> Vec<Vec<u64>> {
    let original = jpeg::encode_rgb(tile, 92).expect("JPEG encodes");
    let decoded = image::load_from_memory(&original)
        .expect("the original decodes")
        .into_rgb8();
    let mut files = vec![(original, ImageKind::Jpeg)];
    files.extend(variants(&decoded));
    assert_eq!(files.len(), VARIANTS.len() + 1);
    files
        .iter()
        .map(|(bytes, kind)| {
            let shown = thumbnail::shown(bytes, *kind, thumbnail::DEFAULT_MAX_SIDE, u64::MAX)
                .expect("every variant decodes");
            candidates(&shown)
        })
        .collect()
}

fn scaled(image: &RgbImage, percent: u32) -> RgbImage {
    let (w, h) = (
        image.width() * percent / 100,
        image.height() * percent / 100,
    );
    image::imageops::resize(image, w.max(1), h.max(1), image::imageops::CatmullRom)
}

fn jpeg_at(image: &RgbImage, quality: u8) -> (Vec<u8>, ImageKind) {
    (
        jpeg::encode_rgb(image, quality).expect("JPEG encodes"),
        ImageKind::Jpeg,
    )
}

/// `VARIANTS`, in order.
fn variants(original: &RgbImage) -> Vec<(Vec<u8>, ImageKind)> {
    let (w, h) = original.dimensions();
    let crop = |x: u32, y: u32| {
        image::imageops::crop_imm(original, x, y, w * 95 / 100, h * 95 / 100).to_image()
    };
    let mut png = std::io::Cursor::new(Vec::new());
    DynamicImage::from(original.clone())
        .write_to(&mut png, image::ImageFormat::Png)
        .expect("PNG encodes");
    let webp_lossy = webp::Encoder::from_rgb(original.as_raw(), w, h)
        .encode(75.0)
        .to_vec();
    let three_quarters = scaled(original, 75);
    let webp_lossless = webp::Encoder::from_rgb(
        three_quarters.as_raw(),
        three_quarters.width(),
        three_quarters.height(),
    )
    .encode_lossless()
    .to_vec();
    vec![
        jpeg_at(&scaled(original, 50), 85),
        jpeg_at(&scaled(original, 30), 85),
        jpeg_at(original, 50),
        jpeg_at(original, 70),
        jpeg_at(original, 95),
        jpeg_at(&crop(0, 0), 85),
        jpeg_at(&crop(w * 25 / 1000, h * 25 / 1000), 85),
        jpeg_at(&watermarked(original), 85),
        (png.into_inner(), ImageKind::Png),
        (webp_lossy, ImageKind::Webp),
        (webp_lossless, ImageKind::Webp),
        jpeg_at(&scaled(original, 60), 60),
    ]
}

/// A translucent white band across a fifth of the width near the bottom right corner, with dark
/// strokes in it like the letters of a signature.
fn watermarked(original: &RgbImage) -> RgbImage {
    let mut out = original.clone();
    let (w, h) = out.dimensions();
    let (bw, bh) = (w / 5, (h / 14).max(4));
    let (x0, y0) = (w - bw - w / 40, h - bh - h / 40);
    for y in y0..y0 + bh {
        for x in x0..x0 + bw {
            let p = out.get_pixel_mut(x, y);
            let stroke = ((x - x0) / 3) % 4 == 0 && (y - y0) > bh / 5 && (y - y0) < bh * 4 / 5;
            *p = if stroke {
                Rgb([30, 30, 30])
            } else {
                Rgb(p.0.map(|c| ((u32::from(c) + 2 * 255) / 3) as u8))
            };
        }
    }
    out
}

/// Prints the precision/recall curve of `groups` (each tile's hashes, original first), the recall
/// of each variant at the default, and the closest pairs of different tiles.
fn report(name: &str, groups: &[Vec<u64>]) {
    let bins = 65usize;
    let mut same = vec![0u64; bins];
    let mut different = vec![0u64; bins];
    let all: Vec<(usize, u64)> = groups
        .iter()
        .enumerate()
        .flat_map(|(g, hashes)| hashes.iter().map(move |&h| (g, h)))
        .collect();
    for (i, &(ga, a)) in all.iter().enumerate() {
        for &(gb, b) in &all[i + 1..] {
            let d = phash::distance(a, b) as usize;
            if ga == gb {
                same[d] += 1;
            } else {
                different[d] += 1;
            }
        }
    }
    let positives: u64 = same.iter().sum();
    println!(
        "\n{name}: {} near-duplicate pairs, {} pairs of different photos",
        positives,
        different.iter().sum::<u64>()
    );
    println!("  t    TP        FP        FN     precision  recall");
    let (mut tp, mut fp) = (0u64, 0u64);
    for t in 0..=MAX_THRESHOLD as usize {
        tp += same[t];
        fp += different[t];
        let precision = if tp + fp == 0 {
            1.0
        } else {
            tp as f64 / (tp + fp) as f64
        };
        let recall = tp as f64 / positives as f64;
        let mark = if t as u32 == DEFAULT_DISTANCE {
            "  ← default"
        } else {
            ""
        };
        println!(
            "  {t:>2} {tp:>8} {fp:>9} {:>8}   {:>7.2}%  {:>6.2}%{mark}",
            positives - tp,
            100.0 * precision,
            100.0 * recall
        );
    }
    println!(
        "  recall of each variant against its original at ≤ {DEFAULT_DISTANCE} bits (median and worst distance):"
    );
    for (v, variant) in VARIANTS.iter().enumerate() {
        let mut distances: Vec<u32> = groups
            .iter()
            .map(|g| phash::distance(g[0], g[v + 1]))
            .collect();
        distances.sort_unstable();
        let within = distances.iter().filter(|&&d| d <= DEFAULT_DISTANCE).count();
        println!(
            "    {variant:<20} {:>6.2}%  median {:>2}  worst {:>2}",
            100.0 * within as f64 / groups.len() as f64,
            distances[distances.len() / 2],
            distances[distances.len() - 1]
        );
    }
    let originals: Vec<u64> = groups.iter().map(|g| g[0]).collect();
    let mut closest: Vec<u32> = Vec::new();
    for (i, a) in originals.iter().enumerate() {
        for b in &originals[i + 1..] {
            closest.push(phash::distance(*a, *b));
        }
    }
    closest.sort_unstable();
    println!(
        "  originals of different photos: closest {:?}, median {}",
        &closest[..closest.len().min(8)],
        closest[closest.len() / 2]
    );
}
