//! Fuzzing on stable Rust without an extra crate: a seeded xorshift PRNG mutates seed inputs built
//! here (bit flips, interesting bytes, inserts, deletes, splices between seeds, length-field edits,
//! truncation, duplicated ranges) and each target checks invariants, not only "no panic":
//!
//! - `data_url`: `decode_image_data` agrees with a reference base64 decoder written here, in both
//!   directions, and its output is never larger than the input's base64 characters allow.
//! - `probe`: `sniff`/`probe` only report dimensions the file's own header states (read by a header
//!   reader written here; for AVIF, an `ispe` property stating them) and that a full decode confirms
//!   (AVIF by the server's own decoder, which must agree with its probe), within the limits.
//! - `multipart`: the upload form reader gives the same parts (or the same refusal) whether the
//!   body arrives whole, byte by byte or in odd pieces; the forms built here come back exactly as
//!   built; no part is over its limit and no form has more parts than `MAX_PARTS`.
//! - `sync_batch`: a hub's sync request body, read as a stream in pieces of varying size and
//!   ingested into a real data file through the server's writer: every id
//!   gets exactly one answer, every accepted image is stored whole under the caller, and the data
//!   file passes `check` at the end.
//!
//! `IMGVAULT_FUZZ_SECS` is the time per target (default 3; `IMGVAULT_FUZZ_SECS=600` for a long run),
//! `IMGVAULT_FUZZ_SEED` fixes the run's seed (printed at the start), and a failing case prints its
//! own seed: `IMGVAULT_FUZZ_REPLAY=0x… cargo test --test fuzz TARGET` runs exactly that case. The
//! failing input is also saved under the target's temporary directory.

mod common;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use base64::Engine;
use imgvault::api::fuzzing::SyncHub;
use imgvault::domain::BlobHash;
use imgvault::media::MAX_IMAGE_BYTES;
use imgvault::media::data_url::{DataUrlError, decode as decode_image_data};
use imgvault::media::{self, ImageKind, MAX_DECODE_BYTES, MAX_PIXELS, MAX_SIDE, MediaError};
use imgvault::store::records::UserRecord;
use imgvault::store::{DEFAULT_CACHE_BYTES, Store};
use serde_json::{Value, json};

/// A case that runs longer than this is a hang: the process aborts with the case's seed.
const HANG: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------------
// The engine

/// xorshift64*: small, fast, and the same sequence for the same seed everywhere.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        // splitmix64 of the seed, so that nearby seeds start far apart and 0 is usable.
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Self((z ^ (z >> 31)) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

const INTERESTING_BYTES: &[u8] = &[
    0, 1, 0x7F, 0x80, 0xFF, b'=', b'\n', b'\r', b' ', b',', b';', b'"', b'\\', b'{', b'}', b'[',
    b']', b':', b'A', b'/', b'+', b'-', b'.', b'0', b'9',
];

/// Applies a few random edits to `input`, keeping it at most `max_len` bytes long. `corpus` gives
/// material to splice in.
fn mutate(rng: &mut Rng, input: &mut Vec<u8>, corpus: &[Vec<u8>], max_len: usize) {
    let edits = 1 + rng.below(4) + if rng.one_in(4) { rng.below(12) } else { 0 };
    for _ in 0..edits {
        let len = input.len();
        match rng.below(10) {
            0 if len > 0 => {
                let at = rng.below(len);
                input[at] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let at = rng.below(len);
                input[at] = *rng.pick(INTERESTING_BYTES);
            }
            2 if len > 0 => {
                let at = rng.below(len);
                input[at] = input[at].wrapping_add(rng.below(33) as u8).wrapping_sub(16);
            }
            3 => {
                let at = rng.below(len + 1);
                let most = if rng.one_in(8) { 512 } else { 16 };
                let n = 1 + rng.below(most);
                let bytes: Vec<u8> = if rng.one_in(2) {
                    vec![*rng.pick(INTERESTING_BYTES); n]
                } else {
                    (0..n).map(|_| rng.next() as u8).collect()
                };
                input.splice(at..at, bytes);
            }
            4 if len > 0 => {
                let at = rng.below(len);
                let n = 1 + rng.below((len - at).min(64));
                input.drain(at..at + n);
            }
            5 => {
                let other = rng.pick(corpus);
                if !other.is_empty() {
                    let from = rng.below(other.len());
                    let n = 1 + rng.below(other.len() - from);
                    let piece = other[from..from + n].to_vec();
                    let at = rng.below(len + 1);
                    if rng.one_in(2) {
                        input.splice(at..at, piece);
                    } else {
                        let end = (at + piece.len()).min(len);
                        input.splice(at..end, piece);
                    }
                }
            }
            6 if len >= 2 => {
                // A length or size field: 2 or 4 bytes, either byte order, an edge value.
                let width = if rng.one_in(2) { 2 } else { 4 };
                let at = rng.below(len.saturating_sub(width - 1).max(1));
                let value: u32 = match rng.below(9) {
                    0 => 0,
                    1 => 1,
                    2 => 0x7F,
                    3 => 0xFFFF,
                    4 => 0x7FFF_FFFF,
                    5 => u32::MAX,
                    6 => len as u32,
                    7 => (len as u32)
                        .wrapping_add(rng.below(17) as u32)
                        .wrapping_sub(8),
                    _ => rng.next() as u32,
                };
                let bytes = match (width, rng.one_in(2)) {
                    (2, true) => (value as u16).to_be_bytes().to_vec(),
                    (2, false) => (value as u16).to_le_bytes().to_vec(),
                    (_, true) => value.to_be_bytes().to_vec(),
                    (_, false) => value.to_le_bytes().to_vec(),
                };
                for (i, b) in bytes.iter().enumerate() {
                    if let Some(slot) = input.get_mut(at + i) {
                        *slot = *b;
                    }
                }
            }
            7 if len > 0 => input.truncate(rng.below(len)),
            8 if len > 0 => {
                let from = rng.below(len);
                let n = 1 + rng.below((len - from).min(256));
                let piece = input[from..from + n].to_vec();
                let at = rng.below(len + 1);
                input.splice(at..at, piece);
            }
            _ => {
                let other = rng.pick(corpus);
                let cut = rng.below(input.len() + 1);
                let from = rng.below(other.len() + 1);
                input.truncate(cut);
                input.extend_from_slice(&other[from..]);
            }
        }
        input.truncate(max_len);
    }
}

struct Budget {
    time: Duration,
    seed: u64,
    replay: Option<u64>,
}

fn env_u64(name: &str) -> Option<u64> {
    let text = std::env::var(name).ok()?;
    let text = text.trim();
    let parsed = match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => text.parse(),
    };
    Some(parsed.unwrap_or_else(|_| panic!("{name}={text:?} is not a number")))
}

fn budget() -> Budget {
    let secs = std::env::var("IMGVAULT_FUZZ_SECS")
        .ok()
        .map(|s| {
            s.trim()
                .parse::<f64>()
                .expect("IMGVAULT_FUZZ_SECS: seconds")
        })
        .unwrap_or(3.0);
    let seed = env_u64("IMGVAULT_FUZZ_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
    });
    Budget {
        time: Duration::from_secs_f64(secs),
        seed,
        replay: env_u64("IMGVAULT_FUZZ_REPLAY"),
    }
}

/// Runs `check` on inputs from `generate` until the time budget is spent (or on the one case
/// named by `IMGVAULT_FUZZ_REPLAY`). A panic or a broken invariant fails the test with the case's
/// seed; a case that hangs aborts the process with it.
fn fuzz(
    target: &str,
    mut generate: impl FnMut(&mut Rng) -> Vec<u8>,
    mut check: impl FnMut(&[u8]) -> Result<(), String>,
) {
    let budget = budget();
    let mut seeds = Rng::new(budget.seed);
    eprintln!(
        "fuzz {target}: seed {:#x}, {:?}",
        budget.seed,
        if budget.replay.is_some() {
            Duration::ZERO
        } else {
            budget.time
        }
    );
    let (tick, ticks) = mpsc::channel::<u64>();
    let watchdog_target = target.to_string();
    let watchdog = std::thread::spawn(move || {
        let mut current = 0;
        loop {
            match ticks.recv_timeout(HANG) {
                Ok(seed) => current = seed,
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    eprintln!(
                        "fuzz {watchdog_target}: case {current:#x} still running after {HANG:?}; \
                         replay: IMGVAULT_FUZZ_REPLAY={current:#x} cargo test --test fuzz {watchdog_target}"
                    );
                    std::process::abort();
                }
            }
        }
    });
    let start = Instant::now();
    let mut cases = 0u64;
    loop {
        let case = match budget.replay {
            Some(seed) if cases == 0 => seed,
            Some(_) => break,
            None if start.elapsed() >= budget.time => break,
            None => seeds.next(),
        };
        cases += 1;
        tick.send(case).expect("watchdog");
        let input = generate(&mut Rng::new(case));
        let outcome = match catch_unwind(AssertUnwindSafe(|| check(&input))) {
            Ok(Ok(())) => continue,
            Ok(Err(broken)) => format!("invariant broken: {broken}"),
            Err(panic) => format!(
                "panic: {}",
                panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default()
            ),
        };
        let saved = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("fuzz-{target}-{case:016x}.bin"));
        let _ = std::fs::write(&saved, &input);
        panic!(
            "fuzz {target}: case {case:#x} (run seed {:#x}, after {cases} cases): {outcome}\n\
             input ({} bytes) saved to {}\n\
             replay: IMGVAULT_FUZZ_REPLAY={case:#x} cargo test --test fuzz {target}",
            budget.seed,
            input.len(),
            saved.display()
        );
    }
    drop(tick);
    watchdog.join().expect("watchdog");
    eprintln!(
        "fuzz {target}: {cases} cases in {:.1?}, no failure",
        start.elapsed()
    );
}

// ---------------------------------------------------------------------------------------------
// Seed images

fn rgba(w: u32, h: u32, seed: u32) -> image::RgbaImage {
    image::RgbaImage::from_fn(w, h, |x, y| {
        let v = x.wrapping_mul(31) ^ y.wrapping_mul(17) ^ seed.wrapping_mul(2_654_435_761);
        image::Rgba([
            v as u8,
            (v >> 8) as u8,
            (v >> 16) as u8,
            128 + (v as u8 >> 1),
        ])
    })
}

fn encoded(img: image::DynamicImage, format: image::ImageFormat) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, format).expect("encode seed image");
    out.into_inner()
}

/// Small images of every stored format, in several colour types and container variants.
fn image_seeds() -> Vec<Vec<u8>> {
    use image::DynamicImage as D;
    use image::ImageFormat as F;
    let mut seeds = vec![
        common::png(7, 5, 1),
        common::jpeg(9, 4, 2),
        common::gif(6, 6, 3),
        common::webp(5, 7, 4),
        encoded(D::ImageRgba8(rgba(12, 3, 5)), F::Png),
        encoded(
            D::ImageLuma16(D::ImageRgba8(rgba(4, 4, 6)).to_luma16()),
            F::Png,
        ),
        encoded(
            D::ImageLumaA8(D::ImageRgba8(rgba(3, 9, 7)).to_luma_alpha8()),
            F::Png,
        ),
        encoded(
            D::ImageLuma8(D::ImageRgba8(rgba(17, 2, 8)).to_luma8()),
            F::Jpeg,
        ),
        encoded(D::ImageRgba8(rgba(2, 2, 9)), F::Gif),
    ];
    // Lossy WebP, plain (VP8) and with alpha (VP8X + ALPH), from libwebp.
    let img = rgba(11, 6, 10);
    let lossy = webp::Encoder::from_rgb(&D::ImageRgba8(img.clone()).to_rgb8(), 11, 6).encode(60.0);
    seeds.push(lossy.to_vec());
    let alpha = webp::Encoder::from_rgba(&img, 11, 6).encode(60.0);
    seeds.push(alpha.to_vec());
    // An animated GIF of two frames.
    let mut gif = Vec::new();
    {
        let mut encoder = image::codecs::gif::GifEncoder::new(&mut gif);
        let frames = (0..2).map(|i| image::Frame::new(rgba(5, 3, 20 + i)));
        encoder.encode_frames(frames).expect("animated gif");
    }
    seeds.push(gif);
    // AVIF from avifenc: plain, a grid, alpha, turned and mirrored.
    for name in ["avif_420", "avif_grid", "avif_alpha", "avif_irot90_imir0"] {
        let path = format!(
            "{}/tests/fixtures/media/{name}.avif",
            env!("CARGO_MANIFEST_DIR")
        );
        seeds.push(std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}")));
    }
    seeds
}

// ---------------------------------------------------------------------------------------------
// data URL and base64

const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// The base64 payload a data URL or bare base64 carries, as the server's contract says: `None` when
/// the shape is refused before any base64 is read.
fn reference_payload(text: &str) -> Option<&str> {
    let text = text.trim();
    match text.strip_prefix("data:") {
        Some(rest) => {
            let (header, payload) = rest.split_once(',')?;
            header.ends_with(";base64").then_some(payload)
        }
        None => Some(text),
    }
}

/// Standard base64 with ASCII whitespace anywhere, padding optional and only at the end, and no
/// stray bits in the last character.
fn reference_base64(payload: &str) -> Option<Vec<u8>> {
    let chars: Vec<u8> = payload
        .bytes()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    let pad = chars.iter().rev().take_while(|&&b| b == b'=').count();
    let body = &chars[..chars.len() - pad];
    // The server's engine takes padding as optional: none, complete, or a single `=` where two
    // belong, but never more than the last group needs.
    let rest = body.len() % 4;
    if rest == 1 || (pad > 0 && (rest == 0 || rest + pad > 4)) {
        return None;
    }
    let mut bits = 0u32;
    let mut nbits = 0;
    let mut out = Vec::with_capacity(body.len() / 4 * 3 + 2);
    for &c in body {
        let v = ALPHABET.iter().position(|&a| a == c)? as u32;
        bits = (bits << 6) | v;
        nbits += 6;
        if nbits >= 8 {
            nbits -= 8;
            out.push((bits >> nbits) as u8);
            bits &= (1 << nbits) - 1;
        }
    }
    (bits == 0).then_some(out)
}

fn wrap(text: &str, width: usize, newline: &str) -> String {
    text.as_bytes()
        .chunks(width)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join(newline)
}

/// A data URL, bare base64, unpadded or wrapped base64 of `bytes`, chosen by `rng`.
fn some_encoding(rng: &mut Rng, bytes: &[u8]) -> String {
    let mut b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
    if rng.one_in(3) {
        b64 = b64.trim_end_matches('=').to_string();
    }
    if rng.one_in(3) {
        let width = 1 + rng.below(80);
        const NEWLINES: [&str; 4] = ["\n", "\r\n", " ", "\t"];
        let newline = NEWLINES[rng.below(4)];
        b64 = wrap(&b64, width, newline);
    }
    let prefix = *rng.pick(&[
        "data:image/png;base64,",
        "data:image/jpeg;base64,",
        "data:;base64,",
        "data:image/png;charset=x;base64,",
        "",
        "  ",
        "data:image/png,",
        "data:image/png;base64",
    ]);
    format!("{prefix}{b64}")
}

fn data_url_corpus(images: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut rng = Rng::new(7);
    let mut corpus: Vec<Vec<u8>> = images
        .iter()
        .flat_map(|img| {
            (0..4)
                .map(|_| some_encoding(&mut rng, img).into_bytes())
                .collect::<Vec<_>>()
        })
        .collect();
    for text in [
        "",
        "=",
        "==",
        "QQ",
        "QQ=",
        "QQ==",
        "QUI",
        "QUI=",
        "QUJD",
        "Q",
        "data:",
        "data:,",
        "data:;base64,",
        "data:image/png;base64,====",
        "data:image/png;base64,QQ==\r\n",
        " \t\n",
        "QQ==QQ==",
        "Q Q = =",
        "data:image/png;base64,データ",
        "\u{3000}QUJD\u{3000}",
    ] {
        corpus.push(text.as_bytes().to_vec());
    }
    corpus
}

fn check_data_url(input: &[u8]) -> Result<(), String> {
    let text = std::str::from_utf8(input).map_err(|_| "generator made invalid UTF-8")?;
    let got = decode_image_data(text);
    let expected = reference_payload(text).and_then(reference_base64);
    match (&got, &expected) {
        (Ok(bytes), Some(want)) if bytes == want => {}
        (Err(DataUrlError::NotBase64), None) => return Ok(()),
        _ => {
            return Err(format!(
                "decode_image_data says {:?}, the reference {:?}",
                got.as_ref().map(|b| b.len()),
                expected.as_ref().map(|b| b.len())
            ));
        }
    }
    let bytes = got.unwrap();
    let chars = text.bytes().filter(|b| ALPHABET.contains(b)).count();
    if bytes.len() > chars * 3 / 4 || bytes.len() as u64 > MAX_IMAGE_BYTES {
        return Err(format!(
            "{} bytes decoded from {chars} base64 characters",
            bytes.len()
        ));
    }
    Ok(())
}

#[test]
fn data_url() {
    let images = image_seeds();
    let corpus = data_url_corpus(&images);
    fuzz(
        "data_url",
        |rng| {
            if rng.one_in(3) {
                // Structure first: a damaged image, well encoded, then maybe a light text edit.
                let mut bytes = rng.pick(&images).clone();
                mutate(rng, &mut bytes, &images, 64 * 1024);
                let mut text = some_encoding(rng, &bytes).into_bytes();
                if rng.one_in(2) {
                    mutate(rng, &mut text, &corpus, 96 * 1024);
                }
                String::from_utf8_lossy(&text).into_owned().into_bytes()
            } else {
                let mut text = rng.pick(&corpus).clone();
                mutate(rng, &mut text, &corpus, 96 * 1024);
                String::from_utf8_lossy(&text).into_owned().into_bytes()
            }
        },
        check_data_url,
    );
}

/// The size limit holds at its edge, with and without wrapping (too large for the fuzz loop).
#[test]
fn data_url_size_edges() {
    let at_limit = vec![0xA5u8; MAX_IMAGE_BYTES as usize];
    let b64 = base64::engine::general_purpose::STANDARD.encode(&at_limit);
    assert_eq!(decode_image_data(&b64).unwrap().len(), at_limit.len());
    let over = base64::engine::general_purpose::STANDARD.encode(vec![0u8; at_limit.len() + 1]);
    assert!(matches!(
        decode_image_data(&over),
        Err(DataUrlError::TooLarge)
    ));
    let wrapped = wrap(&over, 76, "\r\n");
    assert!(matches!(
        decode_image_data(&format!("data:image/png;base64,{wrapped}")),
        Err(DataUrlError::TooLarge)
    ));
}

// ---------------------------------------------------------------------------------------------
// Format sniffer and header probe

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn le16(b: &[u8], at: usize) -> Option<u32> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?) as u32)
}

fn le24(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at + 3)?;
    Some(u32::from(s[0]) | u32::from(s[1]) << 8 | u32::from(s[2]) << 16)
}

/// The dimensions each format's header states, read by the specification, not by the codec.
fn header_dimensions(kind: ImageKind, b: &[u8]) -> Option<(u32, u32)> {
    match kind {
        ImageKind::Png => (b.get(12..16)? == b"IHDR").then_some(())?,
        ImageKind::Gif => return Some((le16(b, 6)?, le16(b, 8)?)),
        // Any `ispe` box may be the primary item's: see `avif_states`.
        ImageKind::Avif => return None,
        ImageKind::Webp => {
            let data = 20;
            return match b.get(12..16)? {
                b"VP8 " => Some((le16(b, data + 6)? & 0x3FFF, le16(b, data + 8)? & 0x3FFF)),
                b"VP8L" => {
                    let bits = u32::from_le_bytes(b.get(data + 1..data + 5)?.try_into().ok()?);
                    Some(((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1))
                }
                b"VP8X" => Some((le24(b, data + 4)? + 1, le24(b, data + 7)? + 1)),
                _ => None,
            };
        }
        ImageKind::Jpeg => return None,
    }
    Some((be32(b, 16)?, be32(b, 20)?))
}

/// Whether some start-of-frame segment in a JPEG states `w`×`h`. Decoders resynchronise past
/// damaged markers in different ways, so any SOF-shaped run of bytes may be the one they read.
fn jpeg_states(b: &[u8], w: u32, h: u32) -> bool {
    b.windows(9).any(|s| {
        s[0] == 0xFF
            && matches!(s[1], 0xC0..=0xCF)
            && !matches!(s[1], 0xC4 | 0xC8 | 0xCC)
            && u32::from(u16::from_be_bytes([s[5], s[6]])) == h
            && u32::from(u16::from_be_bytes([s[7], s[8]])) == w
    })
}

/// Whether some `ispe` (image spatial extents) property in an AVIF states `w`×`h`.
fn avif_states(b: &[u8], w: u32, h: u32) -> bool {
    b.windows(16).any(|s| {
        &s[..4] == b"ispe"
            && u32::from_be_bytes(s[8..12].try_into().unwrap()) == w
            && u32::from_be_bytes(s[12..16].try_into().unwrap()) == h
    })
}

fn check_probe(bytes: &[u8]) -> Result<(), String> {
    let sniffed = media::sniff(bytes);
    match media::probe(bytes) {
        Ok(p) => {
            if sniffed != Some(p.kind) {
                return Err(format!("probe says {:?}, sniff {sniffed:?}", p.kind));
            }
            if p.end > bytes.len() {
                return Err(format!(
                    "the image ends at {} past the {} bytes",
                    p.end,
                    bytes.len()
                ));
            }
            // The header's own figures; `width`/`height` are the image as shown (EXIF-oriented).
            let (w, h) = p.stored_dimensions();
            if w == 0
                || h == 0
                || w > MAX_SIDE
                || h > MAX_SIDE
                || u64::from(w) * u64::from(h) > MAX_PIXELS
            {
                return Err(format!("{w}x{h} accepted"));
            }
            // The decode-cost model reads the same header (JPEG markers, PNG IHDR, GIF frames).
            let plan = media::cost::plan(bytes, &p, 400);
            if plan.bytes < bytes.len() as u64 {
                return Err(format!("a cost of {} bytes below the source's", plan.bytes));
            }
            let stated = header_dimensions(p.kind, bytes);
            let justified = match p.kind {
                ImageKind::Jpeg => jpeg_states(bytes, w, h),
                ImageKind::Avif => avif_states(bytes, w, h),
                _ => stated == Some((w, h)),
            };
            if !justified {
                return Err(format!(
                    "{:?} {w}x{h} but the header says {stated:?}",
                    p.kind
                ));
            }
            // The image crate has no AVIF decoder here: ours must agree with its own probe.
            #[cfg(avif)]
            if p.kind == ImageKind::Avif
                && u64::from(w) * u64::from(h) <= 1 << 20
                && let Ok(header) = media::avif::header(bytes)
                && let Ok(img) = media::avif::decode(bytes, &header, None)
                && (img.width(), img.height()) != (w, h)
            {
                return Err(format!(
                    "probe says {w}x{h}, decoding gives {}x{}",
                    img.width(),
                    img.height()
                ));
            }
            if u64::from(w) * u64::from(h) <= 1 << 20 {
                let mut reader = image::ImageReader::new(std::io::Cursor::new(bytes))
                    .with_guessed_format()
                    .map_err(|e| e.to_string())?;
                let mut limits = image::Limits::default();
                limits.max_alloc = Some(64 << 20);
                reader.limits(limits);
                if let Ok(img) = reader.decode()
                    && (img.width(), img.height()) != (w, h)
                {
                    return Err(format!(
                        "probe says {w}x{h}, decoding gives {}x{}",
                        img.width(),
                        img.height()
                    ));
                }
            }
        }
        Err(MediaError::UnknownFormat) if sniffed.is_none() => {}
        Err(MediaError::Malformed(kind) | MediaError::Damaged(kind)) if sniffed == Some(kind) => {}
        Err(MediaError::Unsupported(_)) if sniffed.is_some() => {}
        Err(MediaError::TooLarge { width, height }) => {
            let px = u64::from(width) * u64::from(height);
            if width <= MAX_SIDE
                && height <= MAX_SIDE
                && px <= MAX_PIXELS
                && px * 8 <= MAX_DECODE_BYTES
            {
                return Err(format!("{width}x{height} called too large"));
            }
        }
        Err(e) => return Err(format!("unexpected {e:?} for sniffed {sniffed:?}")),
    }
    Ok(())
}

#[test]
fn probe() {
    let images = image_seeds();
    for img in &images {
        check_probe(img).expect("every seed image probes");
    }
    fuzz(
        "probe",
        |rng| {
            let mut bytes = rng.pick(&images).clone();
            mutate(rng, &mut bytes, &images, 64 * 1024);
            bytes
        },
        check_probe,
    );
}

// ---------------------------------------------------------------------------------------------
// Sync payload, as a hub receives it

const FUZZ_USER: &str = "fuzz-user";

fn user(user_id: &str) -> UserRecord {
    UserRecord {
        user_id: user_id.into(),
        username: user_id.into(),
        email: format!("{user_id}@example.com"),
        password_hash: "not-a-hash".into(),
        created_at: 1,
        last_login: None,
        cloud_sync_enabled: false,
    }
}

fn sync_entry(id: &str, filename: &str, bytes: &[u8]) -> Value {
    let probe = media::probe(bytes).expect("seed image");
    json!({
        "id": id, "user_id": "someone", "filename": filename,
        "original_url": "https://example.com/a.png", "page_url": "https://example.com/",
        "page_title": "页面", "saved_at": "2026-01-02 03:04:05",
        "file_size": bytes.len(), "image_width": probe.width, "image_height": probe.height,
        "context_info": {"category": "风景", "alt": "x"}, "status": "saved",
        "cloud_synced": false, "blake3": BlobHash::of(bytes).to_hex(), "category": "人物",
    })
}

/// A sync body of 0 to 4 images, some with their file, some by hash, with random damage to the
/// metadata; ids are fresh for each case most of the time.
fn sync_body(rng: &mut Rng, images: &[Vec<u8>], held: &[(String, Vec<u8>)]) -> Value {
    let mut metadata = Vec::new();
    let mut files = serde_json::Map::new();
    for k in 0..rng.below(5) {
        let mut bytes = rng.pick(images).clone();
        let fresh = format!("img-{:x}-{k}", rng.next() as u32);
        let (id, with_file) = match rng.below(6) {
            0 => {
                let (id, held_bytes) = rng.pick(held);
                bytes = held_bytes.clone();
                (id.clone(), rng.one_in(2))
            }
            1 => ("other-image".to_string(), true),
            2 => (fresh, false),
            _ => (fresh, true),
        };
        let filename = format!("{id}.{}", media::sniff(&bytes).unwrap().ext());
        let mut entry = sync_entry(&id, &filename, &bytes);
        if with_file {
            if rng.one_in(4) {
                mutate(rng, &mut bytes, images, 32 * 1024);
            }
            files.insert(filename.clone(), some_encoding(rng, &bytes).into());
        }
        for _ in 0..rng.below(3) {
            damage_entry(rng, &mut entry);
        }
        metadata.push(entry);
        if rng.one_in(6) {
            metadata.push(metadata[rng.below(metadata.len())].clone());
        }
    }
    json!({
        "user_info": {"user_id": "x", "username": "x", "email": "x@example.com",
                      "created_at": "2026-01-01 00:00:00", "cloud_sync_enabled": true},
        "images_metadata": metadata,
        "image_files": files,
        "sync_timestamp": "2026-01-02 03:04:05",
        "sync_statistics": {},
    })
}

fn damage_entry(rng: &mut Rng, entry: &mut Value) {
    let fields = [
        "id",
        "filename",
        "saved_at",
        "file_size",
        "image_width",
        "image_height",
        "blake3",
        "category",
        "context_info",
        "page_title",
    ];
    let field = *rng.pick(&fields);
    let value = match rng.below(12) {
        0 => json!(""),
        1 => json!(".hidden"),
        2 => json!("../../etc/passwd"),
        3 => json!("x".repeat(300)),
        4 => json!("名前.png"),
        5 => json!(0),
        6 => json!(u32::MAX),
        7 => json!(u64::MAX),
        8 => json!(-1),
        9 => Value::Null,
        10 => json!("zz".repeat(32)),
        _ => {
            let old = entry[field].as_u64().unwrap_or(0);
            json!(old.wrapping_add(rng.below(3) as u64).wrapping_sub(1))
        }
    };
    if rng.one_in(8) {
        entry.as_object_mut().unwrap().remove(field);
    } else {
        entry[field] = value;
    }
}

fn check_sync(hub: &SyncHub, store: &Store, body: &[u8], chunk: usize) -> Result<(), String> {
    let Ok(reply) = hub.sync_batch(FUZZ_USER, body, chunk) else {
        // Refused as a whole: only a body that is not SyncData may be (or one whose files come
        // before its metadata and would be too many to hold, which these small bodies never are).
        // serde skips unknown fields without checking their text, so JSON validity is checked too.
        let json = serde_json::from_slice::<Value>(body).is_ok();
        return match serde_json::from_slice::<imgvault::sync::SyncData>(body) {
            Ok(_) if json => Err("a well-formed SyncData body was refused as a whole".into()),
            _ => Ok(()),
        };
    };
    // Accepted bodies are JSON; fields the hub does not use may have other shapes than SyncData's.
    let data: Value =
        serde_json::from_slice(body).map_err(|e| format!("accepted, yet not JSON: {e}"))?;
    let sent_images = data["images_metadata"].as_array().map_or(0, Vec::len);
    let answers = reply.accepted.len() + reply.refused.len();
    if answers != sent_images {
        return Err(format!("{sent_images} images sent, {answers} answers"));
    }
    let sent: usize = data["image_files"].as_object().map_or(0, |files| {
        files.values().filter_map(Value::as_str).map(str::len).sum()
    });
    if reply.stored > reply.accepted.len() as u64
        || reply.received_files > reply.stored
        || reply.received_bytes > (sent as u64) * 3 / 4
    {
        return Err(format!(
            "stored {} received {} files {} bytes, of {} accepted and {sent} base64 bytes",
            reply.stored,
            reply.received_files,
            reply.received_bytes,
            reply.accepted.len()
        ));
    }
    for id in &reply.accepted {
        let image = store
            .image(id)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("accepted {id} is not stored"))?;
        if image.user_id != FUZZ_USER {
            return Err(format!("accepted {id} belongs to {}", image.user_id));
        }
        let bytes = store
            .blob_bytes(&image.blob)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("{id}: blob missing"))?;
        let probe = media::probe(&bytes).map_err(|e| format!("{id}: stored bytes: {e}"))?;
        if BlobHash::of(&bytes) != image.blob
            || image.file_size != bytes.len() as u64
            || (image.kind, image.width, image.height) != (probe.kind, probe.width, probe.height)
        {
            return Err(format!("{id}: the record does not describe its bytes"));
        }
    }
    Ok(())
}

/// A hub data file in memory-backed storage when there is some, with the fuzz user and another.
fn hub_store() -> (tempfile::TempDir, Arc<Store>, SyncHub) {
    let shm = std::path::Path::new("/dev/shm");
    let dir = if shm.is_dir() {
        tempfile::tempdir_in(shm).expect("temp dir")
    } else {
        tempfile::tempdir().expect("temp dir")
    };
    let store = Store::open(&dir.path().join("hub.redb"), DEFAULT_CACHE_BYTES).expect("store");
    for id in [FUZZ_USER, "other"] {
        store
            .create_user(&user(id), id, &format!("{id}@example.com"))
            .unwrap();
    }
    let store = Arc::new(store);
    let hub = SyncHub::new(store.clone());
    (dir, store, hub)
}

/// Found by the fuzzer: a repeat of an id in one batch was answered "accepted" even when the
/// first copy's commit was refused (its file name taken), so the sender would have marked an
/// image synced that the hub never stored.
#[test]
fn sync_repeat_of_a_refused_image_is_refused() {
    let (_dir, store, hub) = hub_store();
    let (first, second) = (common::png(3, 3, 1), common::png(4, 4, 2));
    let batch = |id: &str, bytes: &[u8], copies: usize| {
        let entry = sync_entry(id, "taken.png", bytes);
        json!({
            "images_metadata": vec![entry; copies],
            "image_files": {"taken.png": common::data_url("image/png", bytes)},
        })
        .to_string()
    };
    let sync = |body: String| hub.sync_batch(FUZZ_USER, body.as_bytes(), 4096).unwrap();
    assert_eq!(sync(batch("a", &first, 1)).accepted, vec!["a"]);
    let reply = sync(batch("b", &second, 2));
    assert!(reply.accepted.is_empty(), "accepted {:?}", reply.accepted);
    assert_eq!(reply.refused.len(), 2);
    assert!(store.image(&"b".into()).unwrap().is_none());
}

#[test]
fn sync_batch() {
    let (_dir, store, hub) = hub_store();
    let images = image_seeds();
    // One image held by the caller, one by another account, so later cases reach those branches.
    let held = vec![("held-image".to_string(), images[0].clone())];
    for (owner, id, bytes) in [
        (FUZZ_USER, "held-image", &images[0]),
        ("other", "other-image", &images[1]),
    ] {
        let filename = format!("{id}.{}", media::sniff(bytes).unwrap().ext());
        let body = json!({
            "images_metadata": [sync_entry(id, &filename, bytes)],
            "image_files": {filename: common::data_url("image/png", bytes)},
        });
        let reply = hub
            .sync_batch(owner, body.to_string().as_bytes(), 4096)
            .unwrap();
        assert_eq!(
            reply.accepted,
            [imgvault::domain::ImageId::from(id)],
            "seeding the hub"
        );
    }
    let mut rng = Rng::new(11);
    let corpus: Vec<Vec<u8>> = (0..16)
        .map(|_| sync_body(&mut rng, &images, &held).to_string().into_bytes())
        .collect();
    fuzz(
        "sync_batch",
        |rng| {
            let mut body = sync_body(rng, &images, &held).to_string().into_bytes();
            if rng.one_in(3) {
                mutate(rng, &mut body, &corpus, 256 * 1024);
            }
            body
        },
        // The read buffer's size varies with the case, so pieces end at every kind of place.
        |body| check_sync(&hub, &store, body, [3, 61, 4096, 65536][body.len() % 4]),
    );
    let report = store.check().expect("check");
    assert!(report.is_clean(), "{:?}", report.problems);
}

// ---------------------------------------------------------------------------------------------
// multipart

const BOUNDARY: &str = "----imgvaultFuzz7MA4YWxkTrZu0gW";
/// A part's body limit small enough for mutations to cross it.
const PART_LIMIT: usize = 4096;

/// A form with `parts` (name, filename, body), as a browser writes it.
fn form(parts: &[imgvault::api::fuzzing::Part]) -> Vec<u8> {
    let mut out = Vec::new();
    for part in parts {
        out.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
        match &part.filename {
            Some(f) => out.extend_from_slice(
                format!(
                    "Content-Disposition: form-data; name=\"{}\"; filename=\"{f}\"\r\n\
                     Content-Type: application/octet-stream\r\n",
                    part.name
                )
                .as_bytes(),
            ),
            None => out.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{}\"\r\n", part.name).as_bytes(),
            ),
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&part.body);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    out
}

/// A well-formed form: a file part (bytes that look like a delimiter included now and then) and a
/// few fields.
fn form_parts(rng: &mut Rng, images: &[Vec<u8>]) -> Vec<imgvault::api::fuzzing::Part> {
    use imgvault::api::fuzzing::Part;
    let mut parts = Vec::new();
    for i in 0..1 + rng.below(4) {
        let mut body = if rng.one_in(2) {
            let img = rng.pick(images);
            img[..img.len().min(PART_LIMIT)].to_vec()
        } else {
            (0..rng.below(64)).map(|_| rng.next() as u8).collect()
        };
        if rng.one_in(3) {
            // Almost a delimiter: the boundary without its CRLF, or cut short.
            let at = rng.below(body.len() + 1);
            let near: &[u8] = match rng.below(3) {
                0 => b"--",
                1 => &BOUNDARY.as_bytes()[..BOUNDARY.len() / 2],
                _ => b"\r\n--",
            };
            body.splice(at..at, near.iter().copied());
            body.truncate(PART_LIMIT);
        }
        parts.push(Part {
            name: ["file", "category", "note"][i % 3].to_string(),
            filename: (i == 0 || rng.one_in(4)).then(|| format!("img{i}.png")),
            body,
        });
    }
    parts
}

fn check_multipart(
    body: &[u8],
    expected: Option<&[imgvault::api::fuzzing::Part]>,
) -> Result<(), String> {
    use imgvault::api::fuzzing::multipart_form;
    let whole = multipart_form(body, BOUNDARY, body.len(), PART_LIMIT);
    for chunk in [1, 1 + body.len() % 97, 4096] {
        let split = multipart_form(body, BOUNDARY, chunk, PART_LIMIT);
        if split != whole {
            return Err(format!(
                "in {chunk}-byte pieces: {split:?}\nwhole: {whole:?}"
            ));
        }
    }
    if let Ok(parts) = &whole {
        if parts.len() > imgvault::api::fuzzing::MAX_PARTS {
            return Err(format!("{} parts", parts.len()));
        }
        if let Some(p) = parts.iter().find(|p| p.body.len() > PART_LIMIT) {
            return Err(format!("a part of {} bytes", p.body.len()));
        }
    }
    match (expected, &whole) {
        (Some(expected), Ok(parts)) if parts != expected => {
            Err(format!("built {expected:?}\nread {parts:?}"))
        }
        (Some(_), Err(e)) => Err(format!("a well-formed form refused: {e}")),
        _ => Ok(()),
    }
}

#[test]
fn multipart() {
    let images = image_seeds();
    let mut rng = Rng::new(17);
    let corpus: Vec<Vec<u8>> = (0..16)
        .map(|_| form(&form_parts(&mut rng, &images)))
        .collect();
    for _ in 0..64 {
        let parts = form_parts(&mut rng, &images);
        check_multipart(&form(&parts), Some(&parts)).expect("a built form reads back");
    }
    fuzz(
        "multipart",
        |rng| {
            let mut body = form(&form_parts(rng, &images));
            mutate(rng, &mut body, &corpus, 64 * 1024);
            body
        },
        |body| check_multipart(body, None),
    );
}
