//! The committed media fixtures (`tests/fixtures/media`, made by `make_fixtures.py` there) against
//! the real binary, each as its manifest entry says: refused with the right message, or accepted
//! with its size as shown, its original stored byte for byte, and a thumbnail that is a thumbnail
//! (longest side `min(512, longest)`, no EXIF or ICC, turned as the EXIF says) and looks like the
//! original: CIE76 and CIEDE2000 differences between 8×8 block means of the thumbnail and of the
//! reference render (LittleCMS's, for colour-managed fixtures) or of the original itself.
//!
//! Every fixture is checked before anything is asserted, so one run lists every failure; the
//! figures are printed for each fixture (`cargo test --test media_fixtures -- --nocapture`).

mod common;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use common::*;
use image::metadata::Orientation;
use image::{DynamicImage, RgbaImage};
use serde::Deserialize;
use serde_json::Value;

const THUMB_SIDE: u32 = 512;
/// Side of the blocks whose means are compared: small enough to keep the chart's patches apart,
/// large enough to average away resampling and JPEG's 8×8 DCT blocks.
const BLOCK: u32 = 8;
/// Blocks within this many pixels of an edge in the reference are left out of the colour
/// figures: JPEG's 4:2:0 chroma and ringing smear a hard edge in any thumbnail, colour-managed or
/// not, and that says nothing about its colours.
const EDGE_MARGIN: u32 = 2;
/// An edge: neighbouring reference pixels more than this CIE76 apart. The chart's ramps change
/// by less than half of it from one pixel to the next; its patch borders by 20 to 100.
const EDGE_STEP: f32 = 8.0;

#[derive(Debug, Deserialize)]
struct Manifest {
    fixtures: Vec<Fixture>,
}

#[derive(Debug, Deserialize)]
struct Fixture {
    file: String,
    kind: String,
    verdict: String,
    width: Option<u32>,
    height: Option<u32>,
    reference: Option<String>,
    orientation: u8,
    icc: Option<String>,
    note: String,
    /// The start of the refusal's message.
    error: Option<String>,
    #[serde(default)]
    metadata: bool,
    /// The thumbnail's format when one is made: `jpeg`, or `webp` for transparent images.
    thumb: Option<String>,
    /// The largest mean CIE76 difference allowed.
    de_mean_max: Option<f64>,
    #[serde(default)]
    compare_original: bool,
    /// Marker colours expected in each corner of the image as shown.
    corners: Option<BTreeMap<String, [u8; 3]>>,
    /// Bytes after the image's end, which the stored original keeps.
    trailer: Option<usize>,
    /// A cargo feature the server needs for this fixture.
    feature: Option<String>,
}

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/media")
}

fn mime(kind: &str) -> String {
    format!("image/{kind}")
}

/// What one fixture measured, for the table.
#[derive(Default)]
struct Row {
    outcome: String,
    thumb: String,
    de76: Option<(f64, f64)>,
    de00: Option<(f64, f64)>,
    /// CIE76 mean over every opaque block, edges included, and the number of edge blocks.
    with_edges: Option<(f64, u32)>,
}

#[tokio::test]
async fn every_fixture_gets_its_verdict_size_and_colours() {
    let dir = fixtures_dir();
    let manifest: Manifest = serde_json::from_slice(
        &std::fs::read(dir.join("manifest.json")).expect("tests/fixtures/media/manifest.json"),
    )
    .expect("manifest.json parses");
    assert!(manifest.fixtures.len() >= 30, "the manifest lost fixtures");

    let app = spawn_app().await;
    let (client, user_id) = app.user_client("fixtures").await;
    let mut failures = Vec::new();
    let mut table = String::new();
    let mut checked = 0;
    for fixture in &manifest.fixtures {
        if let Some(feature) = &fixture.feature
            && !(feature == "avif" && cfg!(avif))
        {
            println!(
                "{}: skipped, the server is built without `{feature}`",
                fixture.file
            );
            continue;
        }
        let bytes = std::fs::read(dir.join(&fixture.file)).expect("fixture file");
        let mut problems = Vec::new();
        let row = check(&app, &client, &user_id, fixture, &bytes, &mut problems).await;
        checked += 1;
        let de = |d: Option<(f64, f64)>| {
            d.map_or("-".to_string(), |(mean, max)| {
                format!("{mean:.2} / {max:.2}")
            })
        };
        let with_edges = row
            .with_edges
            .map_or("-".to_string(), |(mean, n)| format!("{mean:.2} ({n})"));
        writeln!(
            table,
            "{:<30} {:<6} {:<22} {:>13} {:>13} {:>12}  {}",
            fixture.file,
            row.outcome,
            row.thumb,
            de(row.de76),
            de(row.de00),
            with_edges,
            if problems.is_empty() { "ok" } else { "FAILED" }
        )
        .unwrap();
        failures.extend(
            problems
                .into_iter()
                .map(|p| format!("{} ({}): {p}", fixture.file, fixture.note)),
        );
    }
    println!(
        "\nColour: block means ({BLOCK}×{BLOCK} px) of the thumbnail against the reference, \
         blocks on edges left out; the last column is the ΔE76 mean with them in (and their \
         number).\n\n{:<30} {:<6} {:<22} {:>13} {:>13} {:>12}\n{table}",
        "fixture", "answer", "thumbnail", "ΔE76 mean/max", "ΔE00 mean/max", "with edges"
    );
    assert!(
        failures.is_empty(),
        "{} problems in {checked} fixtures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Uploads one fixture and checks what the manifest says of it, noting each problem.
async fn check(
    app: &TestApp,
    client: &reqwest::Client,
    user_id: &str,
    fixture: &Fixture,
    bytes: &[u8],
    problems: &mut Vec<String>,
) -> Row {
    let mut row = Row::default();
    let (status, up) = app
        .receive_image(client, &mime(&fixture.kind), bytes, "clothes")
        .await;
    row.outcome = format!("{status}");
    if fixture.verdict != "accepted" {
        let expected = fixture.error.as_deref().expect("a refusal's message");
        let error = up["error"].as_str().unwrap_or_default();
        if status != 400 || up["success"] != false || !error.starts_with(expected) {
            problems.push(format!(
                "{}: expected 400 \"{expected}…\", got {status} {up}",
                fixture.verdict
            ));
        }
        return row;
    }
    if status != 200 {
        problems.push(format!("expected 200, got {status} {up}"));
        return row;
    }
    let task = app.wait_task(up["taskId"].as_str().unwrap()).await;
    if task["status"]["status"] != "completed" {
        problems.push(format!("task not completed: {task}"));
    }
    let Some(record) = find_record(app, client, up["imageId"].as_str().unwrap()).await else {
        problems.push("no record in /api/user/images".into());
        return row;
    };

    let shown = (fixture.width.unwrap(), fixture.height.unwrap());
    let answered = (
        record["image_width"].as_u64().unwrap_or(0) as u32,
        record["image_height"].as_u64().unwrap_or(0) as u32,
    );
    if answered != shown {
        problems.push(format!(
            "image_width×image_height {}×{}, expected {}×{} (as shown)",
            answered.0, answered.1, shown.0, shown.1
        ));
    }

    let original = app
        .get_bytes(client, record["preview_url"].as_str().unwrap())
        .await;
    if original != bytes {
        problems.push(format!(
            "stored original differs: {} bytes for {} sent{}",
            original.len(),
            bytes.len(),
            fixture
                .trailer
                .map_or(String::new(), |t| format!(" (with a {t}-byte trailer)"))
        ));
    }

    let thumb_path = format!(
        "/api/user/{user_id}/thumbnails/{}",
        up["filename"].as_str().unwrap()
    );
    let resp = client.get(app.url(&thumb_path)).send().await.unwrap();
    if resp.status() != 200 {
        problems.push(format!("thumbnail: status {}", resp.status()));
        return row;
    }
    let thumb_bytes = resp.bytes().await.unwrap().to_vec();
    let reused = thumb_bytes == bytes;
    let thumb_kind = sniff(&thumb_bytes);
    row.thumb = format!("{thumb_kind}{}", if reused { " (original)" } else { "" });
    let thumb = match image::load_from_memory(&thumb_bytes) {
        Ok(t) => t,
        Err(e) => {
            problems.push(format!(
                "thumbnail ({thumb_kind}, {} bytes{}) does not decode with the image crate: {e}",
                thumb_bytes.len(),
                if reused { ", the original itself" } else { "" }
            ));
            return row;
        }
    };
    row.thumb = format!(
        "{}×{} {}{}",
        thumb.width(),
        thumb.height(),
        thumb_kind,
        if reused { " (original)" } else { "" }
    );

    check_thumbnail_size(shown, &thumb, problems);
    if reused {
        let fits = shown.0.max(shown.1) <= THUMB_SIDE;
        if !fits || fixture.orientation != 1 || fixture.metadata || fixture.kind == "avif" {
            problems.push(
                "the original is its own thumbnail, but it is too large, turned, carries \
                 metadata or is AVIF"
                    .into(),
            );
        }
    } else {
        let expected = fixture.thumb.as_deref().unwrap_or("jpeg");
        if thumb_kind != expected {
            problems.push(format!("thumbnail is {thumb_kind}, expected {expected}"));
        }
        if let Some(what) = metadata_in(&thumb_bytes) {
            problems.push(format!("the thumbnail carries {what}"));
        }
    }

    if let Some(corners) = &fixture.corners {
        check_corners(&thumb, shown, corners, problems);
    }

    let reference = match (&fixture.reference, fixture.compare_original) {
        (Some(file), _) => Some(
            image::open(fixtures_dir().join(file))
                .unwrap_or_else(|e| panic!("reference {file}: {e}")),
        ),
        (None, true) => match image::load_from_memory(bytes) {
            Ok(mut img) => {
                img.apply_orientation(
                    Orientation::from_exif(fixture.orientation).expect("orientation 1-8"),
                );
                Some(img)
            }
            Err(e) => {
                problems.push(format!("the test cannot decode the original: {e}"));
                None
            }
        },
        (None, false) => None,
    };
    if let Some(reference) = reference {
        match block_differences(&thumb, &reference) {
            Some(d) => {
                row.de76 = Some((d.mean76, d.max76));
                row.de00 = Some((d.mean00, d.max00));
                row.with_edges = Some((d.all_mean76, d.edge_blocks));
                let limit = fixture.de_mean_max.expect("de_mean_max with a reference");
                if d.mean76 > limit {
                    problems.push(format!(
                        "ΔE76 mean {:.2} (max {:.2} at {:?}; ΔE00 mean {:.2}) over {limit} \
                         against {} (profile {})",
                        d.mean76,
                        d.max76,
                        d.worst,
                        d.mean00,
                        fixture.reference.as_deref().unwrap_or("the original"),
                        fixture.icc.as_deref().unwrap_or("none")
                    ));
                }
            }
            None => problems.push("no opaque block to compare".into()),
        }
    }
    row
}

async fn find_record(app: &TestApp, client: &reqwest::Client, image_id: &str) -> Option<Value> {
    let (status, list) = app.get_json(client, "/api/user/images?per_page=100").await;
    assert_eq!(status, 200, "{list}");
    list["images"]
        .as_array()?
        .iter()
        .find(|i| i["id"] == image_id)
        .cloned()
}

fn sniff(bytes: &[u8]) -> &'static str {
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        "jpeg"
    } else if bytes.starts_with(b"\x89PNG") {
        "png"
    } else if bytes.starts_with(b"GIF8") {
        "gif"
    } else if bytes.len() > 12 && &bytes[0..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        "webp"
    } else {
        "unknown"
    }
}

/// The longest side is `min(512, longest)`, the other in proportion (±1 for rounding), and the
/// thumbnail is turned as the image is shown.
fn check_thumbnail_size(shown: (u32, u32), thumb: &DynamicImage, problems: &mut Vec<String>) {
    let (w, h) = shown;
    let longest = w.max(h);
    let target = longest.min(THUMB_SIDE);
    let (tw, th) = (thumb.width(), thumb.height());
    let scaled = |side: u32| f64::from(side) * f64::from(target) / f64::from(longest);
    let (ew, eh) = (scaled(w), scaled(h));
    if tw.max(th) != target || (f64::from(tw) - ew).abs() > 1.0 || (f64::from(th) - eh).abs() > 1.0
    {
        problems.push(format!(
            "thumbnail {tw}×{th}, expected {ew:.0}×{eh:.0} (longest side {target})"
        ));
    }
}

/// What a thumbnail must not carry: EXIF, XMP or an ICC profile.
fn metadata_in(bytes: &[u8]) -> Option<&'static str> {
    match sniff(bytes) {
        "jpeg" => {
            let mut pos = 2;
            while pos + 4 <= bytes.len() && bytes[pos] == 0xFF {
                let marker = bytes[pos + 1];
                if marker == 0xDA || marker == 0xD9 {
                    break;
                }
                let len = usize::from(u16::from_be_bytes([bytes[pos + 2], bytes[pos + 3]]));
                let segment = &bytes[pos + 4..(pos + 2 + len).min(bytes.len())];
                match marker {
                    0xE1 if segment.starts_with(b"Exif") => return Some("an EXIF APP1"),
                    0xE1 => return Some("an APP1 (XMP)"),
                    0xE2 if segment.starts_with(b"ICC_PROFILE") => return Some("an ICC APP2"),
                    _ => {}
                }
                pos += 2 + len;
            }
            None
        }
        "webp" => {
            let mut pos = 12;
            while pos + 8 <= bytes.len() {
                let id = &bytes[pos..pos + 4];
                let len = u32::from_le_bytes(bytes[pos + 4..pos + 8].try_into().unwrap()) as usize;
                match id {
                    b"ICCP" => return Some("an ICCP chunk"),
                    b"EXIF" => return Some("an EXIF chunk"),
                    b"XMP " => return Some("an XMP chunk"),
                    _ => {}
                }
                pos += 8 + len + len % 2;
            }
            None
        }
        _ => None,
    }
}

/// Each corner's marker, sampled inside the marker (a third of its 24 px in from the edges, in
/// the thumbnail's scale), is nearer its own colour than any other marker's, and close to it.
fn check_corners(
    thumb: &DynamicImage,
    shown: (u32, u32),
    corners: &BTreeMap<String, [u8; 3]>,
    problems: &mut Vec<String>,
) {
    let rgb = thumb.to_rgb8();
    let scale = f64::from(thumb.width()) / f64::from(shown.0);
    let inset = ((8.0 * scale).round() as u32).max(1);
    let size = ((8.0 * scale).round() as u32).max(1);
    let (w, h) = rgb.dimensions();
    for (corner, expected) in corners {
        let x0 = if corner.ends_with("left") {
            inset
        } else {
            w - inset - size
        };
        let y0 = if corner.starts_with("top") {
            inset
        } else {
            h - inset - size
        };
        let mut sum = [0f64; 3];
        for y in y0..y0 + size {
            for x in x0..x0 + size {
                for (s, v) in sum.iter_mut().zip(rgb.get_pixel(x, y).0) {
                    *s += f64::from(v);
                }
            }
        }
        let n = f64::from(size * size);
        let mean = sum.map(|s| (s / n).round() as u8);
        let nearest = corners
            .iter()
            .min_by_key(|(_, c)| {
                c.iter()
                    .zip(mean)
                    .map(|(&a, b)| (i32::from(a) - i32::from(b)).pow(2))
                    .sum::<i32>()
            })
            .map(|(name, _)| name.as_str())
            .unwrap();
        let de = empfindung::cie76::diff(lab::Lab::from_rgb(expected), lab::Lab::from_rgb(&mean));
        if nearest != corner || de > 10.0 {
            problems.push(format!(
                "{corner} corner is {mean:?} (nearest marker: {nearest}, ΔE76 {de:.1} from \
                 {expected:?}): the thumbnail is not turned as shown"
            ));
        }
    }
}

#[derive(Default)]
struct Differences {
    mean76: f64,
    max76: f64,
    mean00: f64,
    max00: f64,
    /// Top left corner of the block of `max76`.
    worst: (u32, u32),
    /// Blocks left out as on an edge, and the CIE76 mean with them in.
    edge_blocks: u32,
    all_mean76: f64,
}

/// CIE76 and CIEDE2000 between the Lab means of `BLOCK`-pixel blocks of the thumbnail and of
/// `reference` resized to it (Lanczos3, as the server resizes). Left out: blocks with a pixel not
/// fully opaque in either, and blocks on an edge of the reference (`EDGE_MARGIN`), whose count is
/// reported with the CIE76 mean over all opaque blocks. `None` when no block is left.
fn block_differences(thumb: &DynamicImage, reference: &DynamicImage) -> Option<Differences> {
    let thumb = thumb.to_rgba8();
    let (w, h) = thumb.dimensions();
    let reference = if reference.width() == w && reference.height() == h {
        reference.to_rgba8()
    } else {
        image::imageops::resize(
            &reference.to_rgba8(),
            w,
            h,
            image::imageops::FilterType::Lanczos3,
        )
    };
    let edges = edge_map(&reference);
    let mut d = Differences::default();
    let (mut sum76, mut sum00, mut blocks, mut all76, mut all) = (0.0, 0.0, 0, 0.0, 0);
    for by in 0..h / BLOCK {
        for bx in 0..w / BLOCK {
            let (Some(a), Some(b)) = (block_lab(&thumb, bx, by), block_lab(&reference, bx, by))
            else {
                continue;
            };
            let d76 = f64::from(empfindung::cie76::diff(a, b));
            all76 += d76;
            all += 1;
            if near_edge(&edges, w, h, bx, by) {
                continue;
            }
            let d00 = f64::from(empfindung::cie00::diff(a, b));
            sum76 += d76;
            sum00 += d00;
            if d76 > d.max76 {
                d.max76 = d76;
                d.worst = (bx * BLOCK, by * BLOCK);
            }
            d.max00 = d.max00.max(d00);
            blocks += 1;
        }
    }
    d.mean76 = sum76 / f64::from(blocks);
    d.mean00 = sum00 / f64::from(blocks);
    d.edge_blocks = all - blocks;
    d.all_mean76 = all76 / f64::from(all);
    (blocks > 0).then_some(d)
}

/// Per pixel, whether it differs from its right or lower neighbour by more than `EDGE_STEP`.
fn edge_map(img: &RgbaImage) -> Vec<bool> {
    let (w, h) = img.dimensions();
    let lab: Vec<lab::Lab> = img
        .pixels()
        .map(|p| lab::Lab::from_rgb(&[p.0[0], p.0[1], p.0[2]]))
        .collect();
    let mut edges = vec![false; lab.len()];
    for y in 0..h {
        for x in 0..w {
            let i = (y * w + x) as usize;
            let right = x + 1 < w && empfindung::cie76::diff(lab[i], lab[i + 1]) > EDGE_STEP;
            let below =
                y + 1 < h && empfindung::cie76::diff(lab[i], lab[i + w as usize]) > EDGE_STEP;
            edges[i] = right || below;
        }
    }
    edges
}

/// Whether an edge lies in block (`bx`, `by`) or within `EDGE_MARGIN` pixels of it.
fn near_edge(edges: &[bool], w: u32, h: u32, bx: u32, by: u32) -> bool {
    let x0 = (bx * BLOCK).saturating_sub(EDGE_MARGIN + 1);
    let y0 = (by * BLOCK).saturating_sub(EDGE_MARGIN + 1);
    let x1 = ((bx + 1) * BLOCK + EDGE_MARGIN).min(w);
    let y1 = ((by + 1) * BLOCK + EDGE_MARGIN).min(h);
    (y0..y1).any(|y| (x0..x1).any(|x| edges[(y * w + x) as usize]))
}

/// The mean Lab (D65, from sRGB) of one block; `None` if a pixel in it is not fully opaque.
fn block_lab(img: &RgbaImage, bx: u32, by: u32) -> Option<lab::Lab> {
    let (mut l, mut a, mut b) = (0f64, 0f64, 0f64);
    for y in by * BLOCK..(by + 1) * BLOCK {
        for x in bx * BLOCK..(bx + 1) * BLOCK {
            let [r, g, bl, alpha] = img.get_pixel(x, y).0;
            if alpha < u8::MAX {
                return None;
            }
            let lab = lab::Lab::from_rgb(&[r, g, bl]);
            l += f64::from(lab.l);
            a += f64::from(lab.a);
            b += f64::from(lab.b);
        }
    }
    let n = f64::from(BLOCK * BLOCK);
    Some(lab::Lab {
        l: (l / n) as f32,
        a: (a / n) as f32,
        b: (b / n) as f32,
    })
}
