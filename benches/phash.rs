//! Quality of the perceptual hash (`media::phash`): how well its Hamming distance tells a
//! near-duplicate (the same photo resized, recompressed, cropped, watermarked or converted) from a
//! different photo, over every threshold from 0 to 24 bits, for the stored algorithm and the two
//! it was chosen over (the classic DCT hash and the gradient hash, computed here from the same
//! pixels).
//!
//! ```text
//! apt-get install --no-install-recommends gcompris-qt-data palapeli-data
//! cargo bench --bench phash
//! cargo bench --bench phash -- --photos 100 --threads 2   # evenly spread subset, for a quick look
//! ```
//!
//! **Corpus.** Real camera photographs, each a whole photo, found on the machine rather than kept
//! in the repository. Most are the photos of GCompris's activities (`gcompris-qt-data`, GPL-3+,
//! the photos themselves public domain or CC-BY/CC-BY-SA from Wikimedia Commons): every raster
//! image of the activities in `GCOMPRIS_ACTIVITIES` (monuments, animals, musicians, and the
//! fishes, buildings, tools, windmills, dams and everyday objects to sort), which are all photos
//! (their drawings are SVG), read out of the Qt resource bundles the package installs them in
//! (`rcc_files`). Three of the sorting game's monuments are smaller copies of the monuments
//! activity's photos and are left out (`GCOMPRIS_DUPLICATES`); other photos of the same monument
//! or the same kind of tool stay, as the hard cases they are. Then the five photos of Palapeli's
//! puzzle collection (`palapeli-data`, public domain and GFDL) and `lake.jpg` of the `webp`
//! crate's sources in the cargo registry: 260 photos. The sorting game's 139 are 320 pixels on
//! the long side (small web pictures), the others 1024 to 1920 pixels, brought down to
//! `MAX_SIDE` (a typical web image) when larger. A photo with almost no detail (luma standard
//! deviation below `FLAT`) would be left out and counted; none is. Nothing is synthetic and
//! nothing is tiled. Fewer than `MIN_PHOTOS` found stops the bench with `INSTALL`.
//!
//! **Variants.** Each photo is stored as a JPEG at quality 92 (the "original") and made into
//! `VARIANTS` near-duplicates from its pixels: resized to 50% and to 30%, recompressed at quality
//! 50, 70 and 95, cropped by 5% (one corner kept, and the centre kept), marked with a small
//! watermark (a translucent band with dark strokes across a fifth of the width, bottom right),
//! converted to PNG, lossy WebP and lossless WebP at 75%, and resized to 60% then saved at
//! quality 60. Every image goes through the server's own pipeline (`thumbnail::shown`, as the
//! thumbnail workers decode it: JPEG scaled decoding, EXIF, colour management) before it is
//! hashed.
//!
//! **Measure.** Every pair of images is compared. A pair from the same photo is a near-duplicate;
//! a pair from two photos is not. At threshold `t`, a pair at distance ≤ `t` is called a
//! duplicate: precision is the share of those calls that are right, recall the share of
//! near-duplicate pairs called. Printed for `t` = 0..24 for each algorithm, then, at the default
//! (10 bits), the recall of each variant against its original and the closest pairs of different
//! photos. Last, the find-duplicates page's groups of the whole corpus at the default distance:
//! the server's own grouping (`phash::groups`) beside the connected components of the near pairs,
//! with the share of variants grouped with their original, the photos found whole and alone and
//! the groups that mix different photos.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Instant;

use image::{DynamicImage, Rgb, RgbImage};
use imgvault::media::phash::groups;
use imgvault::media::{ImageKind, jpeg, phash, thumbnail};

/// The one line that installs the corpus.
const INSTALL: &str = "apt-get install --no-install-recommends gcompris-qt-data palapeli-data";

/// Where `gcompris-qt-data` installs its activities' resource bundles.
const GCOMPRIS_RCC: &str = "/usr/share/gcompris-qt/rcc";
/// The activities whose raster images are all photographs.
const GCOMPRIS_ACTIVITIES: &[&str] = &[
    "explore_monuments",
    "erase",
    "explore_world_animals",
    "explore_farm_animals",
    "explore_world_music",
    "categorization",
];
/// Copies, at 320 pixels, of photos of `explore_monuments`.
const GCOMPRIS_DUPLICATES: &[&str] = &[
    "/gcompris/src/activities/categorization/resource/images/monuments/brandenburgGate.webp",
    "/gcompris/src/activities/categorization/resource/images/monuments/colosseum.webp",
    "/gcompris/src/activities/categorization/resource/images/monuments/greatPyramid.webp",
];
/// Palapeli's puzzle photos (`palapeli-data`).
const PALAPELI: &str = "/usr/share/palapeli/collection";

/// Photos larger than this on their long side are brought down to it.
const MAX_SIDE: u32 = 1280;
/// Photos whose luma varies less than this (standard deviation, 0–255) are left out.
const FLAT: f64 = 12.0;
/// Fewer photos than this is not a benchmark.
const MIN_PHOTOS: usize = 200;
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
    let corpus = corpus();
    if corpus.photos.len() < MIN_PHOTOS && args.photos == usize::MAX {
        eprintln!(
            "only {} photos found ({MIN_PHOTOS} needed); install them: {INSTALL}",
            corpus.photos.len()
        );
        std::process::exit(2);
    }
    let step = (corpus.photos.len() / args.photos.min(corpus.photos.len()).max(1)).max(1);
    let photos: Vec<&Photo> = corpus
        .photos
        .iter()
        .step_by(step)
        .take(args.photos)
        .collect();
    let mut sources: Vec<(&str, usize)> = Vec::new();
    for photo in &photos {
        match sources.iter_mut().find(|(s, _)| *s == photo.source) {
            Some((_, n)) => *n += 1,
            None => sources.push((photo.source, 1)),
        }
    }
    let small = photos.iter().filter(|p| p.long_side <= 400).count();
    println!(
        "corpus: {} distinct whole photos ({}; {} near-blank left out), {small} of them at most \
         400 px on the long side, the others up to {MAX_SIDE} px; {} images each (original + {} \
         variants)",
        photos.len(),
        sources
            .iter()
            .map(|(s, n)| format!("{n} of {s}"))
            .collect::<Vec<_>>()
            .join(", "),
        corpus.flat,
        VARIANTS.len() + 1,
        VARIANTS.len()
    );

    let names: Vec<&str> = photos.iter().map(|p| p.name.as_str()).collect();

    // Each photo's images, hashed by every candidate, on `threads` threads.
    let chunk = photos.len().div_ceil(args.threads.max(1));
    let groups: Vec<Vec<Vec<u64>>> = std::thread::scope(|s| {
        let handles: Vec<_> = photos
            .chunks(chunk.max(1))
            .map(|part| {
                s.spawn(move || {
                    part.iter()
                        .map(|p| hashes_of(&p.pixels))
                        .collect::<Vec<_>>()
                })
            })
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
        report(name, &hashes, &names);
    }
    let stored: Vec<Vec<u64>> = groups
        .iter()
        .map(|g| g.iter().map(|h| h[0]).collect())
        .collect();
    report_groups(&stored, &names);
}

/// What the find-duplicates page shows for this corpus: the server's groups at the default
/// distance (`phash::groups`, each around a centre), beside the connected components of the near
/// pairs (chains, what it made before), and how many of each mix different photos.
fn report_groups(photos: &[Vec<u64>], names: &[&str]) {
    let all: Vec<(usize, u64)> = photos
        .iter()
        .enumerate()
        .flat_map(|(photo, hashes)| hashes.iter().map(move |&h| (photo, h)))
        .collect();
    let hashes: Vec<u64> = all.iter().map(|&(_, h)| h).collect();
    let started = Instant::now();
    let made = groups::group(&hashes, &vec![true; hashes.len()], DEFAULT_DISTANCE);
    let took = started.elapsed();
    let centres: Vec<Vec<usize>> = made
        .lists
        .iter()
        .map(|g| g.iter().map(|&p| p as usize).collect())
        .collect();
    describe(
        &format!(
            "the server's groups (around centres, {:.1} ms)",
            took.as_secs_f64() * 1e3
        ),
        &centres,
        &all,
        photos,
        names,
    );

    let mut parent: Vec<usize> = (0..all.len()).collect();
    fn root(parent: &mut [usize], mut x: usize) -> usize {
        while parent[x] != x {
            parent[x] = parent[parent[x]];
            x = parent[x];
        }
        x
    }
    for i in 0..all.len() {
        for j in i + 1..all.len() {
            if phash::distance(all[i].1, all[j].1) <= DEFAULT_DISTANCE {
                let (a, b) = (root(&mut parent, i), root(&mut parent, j));
                parent[a] = b;
            }
        }
    }
    let mut members: std::collections::BTreeMap<usize, Vec<usize>> = Default::default();
    for i in 0..all.len() {
        let r = root(&mut parent, i);
        members.entry(r).or_default().push(i);
    }
    let chains: Vec<Vec<usize>> = members.into_values().filter(|g| g.len() > 1).collect();
    describe(
        "chains of near pairs (connected components)",
        &chains,
        &all,
        photos,
        names,
    );
}

fn describe(
    what: &str,
    groups: &[Vec<usize>],
    all: &[(usize, u64)],
    photos: &[Vec<u64>],
    names: &[&str],
) {
    let photos_in = |g: &Vec<usize>| {
        let mut p: Vec<usize> = g.iter().map(|&i| all[i].0).collect();
        p.sort_unstable();
        p.dedup();
        p
    };
    let mixed: Vec<Vec<usize>> = groups
        .iter()
        .map(photos_in)
        .filter(|p| p.len() > 1)
        .collect();
    // A photo is found whole when all its images are in one group that holds nothing else.
    let whole = groups
        .iter()
        .filter(|g| photos_in(g).len() == 1 && g.len() == photos[all[g[0]].0].len())
        .count();
    // The images of each photo that share a group with the photo's own original.
    let mut with_original = 0;
    for g in groups {
        for &i in g {
            let photo = all[i].0;
            let original = all.iter().position(|&(p, _)| p == photo).unwrap();
            if i != original && g.contains(&original) {
                with_original += 1;
            }
        }
    }
    let variants = all.len() - photos.len();
    let largest = mixed.iter().map(Vec::len).max().unwrap_or(1);
    println!(
        "\ngroups at {DEFAULT_DISTANCE} bits, {what}: {} groups of {} images; {with_original} of \
         {variants} variants ({:.1}%) grouped with their original; {whole} of {} photos found \
         whole and alone; {} groups mix different photos ({} photos in them, at most {largest} in \
         one)",
        groups.len(),
        groups.iter().map(Vec::len).sum::<usize>(),
        100.0 * with_original as f64 / variants as f64,
        photos.len(),
        mixed.len(),
        mixed.iter().map(Vec::len).sum::<usize>(),
    );
    for photos in mixed.iter().take(6) {
        println!(
            "    {}",
            photos
                .iter()
                .map(|&p| names[p])
                .collect::<Vec<_>>()
                .join("  +  ")
        );
    }
}

struct Photo {
    /// The package (or crate) it comes from.
    source: &'static str,
    /// Its file, short.
    name: String,
    /// Its long side as found, before `MAX_SIDE`.
    long_side: u32,
    pixels: RgbImage,
}

struct Corpus {
    photos: Vec<Photo>,
    /// Near-blank photos left out.
    flat: usize,
}

/// Every photo found, in a fixed order.
fn corpus() -> Corpus {
    let mut found: Vec<(&'static str, String, Vec<u8>)> = Vec::new();
    for activity in GCOMPRIS_ACTIVITIES {
        let path = Path::new(GCOMPRIS_RCC).join(format!("{activity}.rcc"));
        let Ok(bundle) = std::fs::read(&path) else {
            continue;
        };
        let Some(files) = rcc_files(&bundle) else {
            eprintln!("cannot read the resource bundle {}", path.display());
            continue;
        };
        found.extend(
            files
                .into_iter()
                .filter(|(name, _)| {
                    [".webp", ".jpg", ".png"].iter().any(|e| name.ends_with(e))
                        && !GCOMPRIS_DUPLICATES.contains(&name.as_str())
                })
                .map(|(name, bytes)| ("gcompris-qt-data", name, bytes)),
        );
    }
    let mut palapeli: Vec<PathBuf> = std::fs::read_dir(PALAPELI)
        .map(|dir| dir.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    palapeli.retain(|p| p.extension().is_some_and(|e| e == "jpg"));
    palapeli.sort();
    let files = palapeli
        .into_iter()
        .map(|p| ("palapeli-data", p))
        .chain(cargo_lake().map(|p| ("the webp crate", p)));
    for (source, path) in files {
        match std::fs::read(&path) {
            Ok(bytes) => found.push((source, path.display().to_string(), bytes)),
            Err(e) => eprintln!("cannot read {}: {e}", path.display()),
        }
    }

    let (mut photos, mut flat) = (Vec::new(), 0);
    for (source, name, bytes) in found {
        let Ok(image) = image::load_from_memory(&bytes) else {
            eprintln!("cannot decode {name}");
            continue;
        };
        let pixels = image.into_rgb8();
        let (w, h) = pixels.dimensions();
        let long_side = w.max(h);
        let pixels = if long_side > MAX_SIDE {
            let (nw, nh) = (
                (u64::from(w) * u64::from(MAX_SIDE) / u64::from(long_side)) as u32,
                (u64::from(h) * u64::from(MAX_SIDE) / u64::from(long_side)) as u32,
            );
            image::imageops::resize(&pixels, nw, nh, image::imageops::Lanczos3)
        } else {
            pixels
        };
        if luma_deviation(&pixels) < FLAT {
            flat += 1;
        } else {
            photos.push(Photo {
                source,
                name: short(&name),
                long_side,
                pixels,
            });
        }
    }
    Corpus { photos, flat }
}

/// `name` without the directories common to its source.
fn short(name: &str) -> String {
    match name.strip_prefix("/gcompris/src/activities/") {
        Some(rest) => rest.replace("/resource/", "/").replace("/images/", "/"),
        None => name.rsplit('/').next().unwrap_or(name).to_string(),
    }
}

/// The files of a Qt resource bundle (`.rcc`, format 1 to 3), path and bytes, in path order:
/// a header, a tree of nodes (directories list a run of children, files point into the data),
/// UTF-16 names. zlib-compressed files are inflated; zstd-compressed ones (which Debian's Qt 5
/// never writes) are left out.
fn rcc_files(bundle: &[u8]) -> Option<Vec<(String, Vec<u8>)>> {
    let be16 = |at: usize| Some(u16::from_be_bytes(bundle.get(at..at + 2)?.try_into().ok()?));
    let be32 =
        |at: usize| Some(u32::from_be_bytes(bundle.get(at..at + 4)?.try_into().ok()?) as usize);
    if bundle.get(..4)? != b"qres" {
        return None;
    }
    let (version, tree, data, names) = (be32(4)?, be32(8)?, be32(12)?, be32(16)?);
    // Format 2 added a modification time to each node.
    let node = if version >= 2 { 22 } else { 14 };
    let name = |offset: usize| {
        let at = names + offset;
        let units: Vec<u16> = (0..be16(at)? as usize)
            .map(|i| be16(at + 6 + 2 * i))
            .collect::<Option<_>>()?;
        String::from_utf16(&units).ok()
    };
    let (mut files, mut pending) = (Vec::new(), vec![(0usize, String::new())]);
    while let Some((index, parent)) = pending.pop() {
        let at = tree + index * node;
        let flags = be16(at + 4)?;
        let path = if index == 0 {
            String::new()
        } else {
            format!("{parent}/{}", name(be32(at)?)?)
        };
        if flags & 2 != 0 {
            let (count, first) = (be32(at + 6)?, be32(at + 10)?);
            // Children come after their parent, so a damaged bundle cannot loop.
            if first <= index {
                return None;
            }
            pending.extend((first..first + count).map(|child| (child, path.clone())));
        } else {
            let offset = data + be32(at + 10)?;
            let stored = bundle.get(offset + 4..offset + 4 + be32(offset)?)?;
            let bytes = match flags {
                0 => stored.to_vec(),
                1 => {
                    let mut out = Vec::new();
                    flate2::read::ZlibDecoder::new(stored.get(4..)?)
                        .read_to_end(&mut out)
                        .ok()?;
                    out
                }
                _ => continue,
            };
            files.push((path, bytes));
        }
    }
    files.sort();
    Some(files)
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

/// The original and every variant of one photo as stored bytes, each hashed by every candidate.
fn hashes_of(photo: &RgbImage) -> Vec<Vec<u64>> {
    let original = jpeg::encode_rgb(photo, 92).expect("JPEG encodes");
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

/// Prints the precision/recall curve of `groups` (each photo's hashes, original first, the photo
/// called by `names`), the recall
/// of each variant at the default, and the closest pairs of different photos.
fn report(name: &str, groups: &[Vec<u64>], names: &[&str]) {
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
    let mut closest: Vec<(u32, usize, usize)> = Vec::new();
    for (i, a) in groups.iter().enumerate() {
        for (j, b) in groups.iter().enumerate().skip(i + 1) {
            closest.push((phash::distance(a[0], b[0]), i, j));
        }
    }
    closest.sort_unstable();
    println!(
        "  originals of different photos: median distance {}, the closest:",
        closest[closest.len() / 2].0
    );
    for &(d, i, j) in &closest[..closest.len().min(6)] {
        println!("    {d:>2}  {}  ~  {}", names[i], names[j]);
    }
}
