//! Criterion micro-benchmarks of the hot pieces of ingest and thumbnailing (issue 8), one function
//! at a time, so that a change to one of them shows up as a number rather than as noise in the
//! end-to-end `load`, `sync` and `thumbnail` benches:
//!
//! - `ingest/*`: what the upload route does with a ~250 KB JPEG sent by the extension as a
//!   `data:image/jpeg;base64,...` string: `media::data_url::decode`, `BlobHash::of` (blake3), and
//!   both together; plus plain base64 decoding of the same payload for reference. Throughput is the
//!   image's size.
//! - `sniff/*`, `probe/*`: `media::sniff` and the header-only `media::probe` (which sniffs first) of
//!   a ~250 KB JPEG, a cut-out PNG and a lossy WebP.
//! - `thumbnail/*`: `media::thumbnail::make` to 512 px of a typical web JPEG (1000×1300, ~250 KB)
//!   and of a 12 MP photo (4000×3000); throughput is images per second.
//!
//! Splitting a blob into `store::tables::CHUNK_SIZE` chunks is not measured: it is `<[u8]>::chunks`
//! inside the store's write transaction, and its cost is the database insert, which the `load`
//! bench covers.
//!
//! Run with `cargo bench --bench pieces` (under a minute on two cores). A filter (a regex on the
//! benchmark name) runs a subset: `cargo bench --bench pieces -- probe/`, or
//! `cargo bench --bench pieces -- thumbnail/web_jpeg`; `-- --list` lists the names. Results and
//! the comparison with the previous run are kept under `target/criterion/`.
//!
//! The inputs are generated deterministically (`benches/common/images.rs`), outside the timing;
//! the larger ones only when a benchmark that uses them runs.

use std::hint::black_box;
use std::sync::LazyLock;
use std::time::Duration;

use base64::Engine;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use imgvault::domain::BlobHash;
use imgvault::media::data_url::decode as decode_image_data;
use imgvault::media::{self, ImageKind, thumbnail};

#[path = "common/images.rs"]
mod images;
use images::{cutout_png, encode_jpeg, photo_rgb};

/// Size of the typical uploaded photo, as in `benches/load/`.
const WEB_JPEG_TARGET_BYTES: usize = 250_000;

/// A typical photo on a web page, as the extension sends it: 1000×1300 JPEG of about 250 KB (the
/// quality is the one whose size comes closest).
static WEB_JPEG: LazyLock<Vec<u8>> = LazyLock::new(|| {
    let img = photo_rgb(1000, 1300);
    let jpeg = (80..=95)
        .map(|quality| (quality, encode_jpeg(&img, quality)))
        .min_by_key(|(_, jpeg)| jpeg.len().abs_diff(WEB_JPEG_TARGET_BYTES))
        .expect("qualities");
    report(
        &format!("web JPEG 1000x1300 at quality {}", jpeg.0),
        &jpeg.1,
    );
    jpeg.1
});

/// `WEB_JPEG` as the upload body's `imageData`.
static WEB_JPEG_DATA_URL: LazyLock<String> = LazyLock::new(|| {
    let url = format!(
        "data:image/jpeg;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(&*WEB_JPEG)
    );
    report("its data URL", url.as_bytes());
    url
});

/// A 12-megapixel camera photo, as in `benches/thumbnail.rs`.
static PHOTO_12MP: LazyLock<Vec<u8>> = LazyLock::new(|| {
    let jpeg = encode_jpeg(&photo_rgb(4000, 3000), 90);
    report("JPEG 4000x3000", &jpeg);
    jpeg
});

/// A cut-out garment on a transparent background, the common PNG in this vault.
static CUTOUT_PNG: LazyLock<Vec<u8>> = LazyLock::new(|| {
    let png = cutout_png(1000, 1300);
    report("cut-out PNG 1000x1300", &png);
    png
});

/// The web photo as lossy WebP, as sites serve it.
static WEB_WEBP: LazyLock<Vec<u8>> = LazyLock::new(|| {
    let img = photo_rgb(1000, 1300);
    let webp = webp::Encoder::from_rgb(img.as_raw(), img.width(), img.height())
        .encode_simple(false, 80.0)
        .expect("encode webp")
        .to_vec();
    report("lossy WebP 1000x1300", &webp);
    webp
});

fn report(what: &str, bytes: &[u8]) {
    eprintln!("input: {what}, {} bytes", bytes.len());
}

fn ingest(c: &mut Criterion) {
    let mut group = c.benchmark_group("ingest");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Bytes(WEB_JPEG.len() as u64));
    let url = WEB_JPEG_DATA_URL.as_str();
    assert_eq!(decode_image_data(url).expect("decode"), *WEB_JPEG);
    group.bench_function("decode_hash", |b| {
        b.iter(|| {
            let bytes = decode_image_data(black_box(url)).expect("decode");
            BlobHash::of(&bytes)
        })
    });
    group.bench_function("decode", |b| {
        b.iter(|| decode_image_data(black_box(url)).expect("decode"))
    });
    group.bench_function("hash", |b| b.iter(|| BlobHash::of(black_box(&WEB_JPEG))));
    // Not imgvault code: the base64 crate alone on the payload, to show what `decode_image_data`
    // adds around it.
    let payload = url.split_once(',').expect("data URL").1;
    group.bench_function("reference_base64_only", |b| {
        b.iter(|| {
            base64::engine::general_purpose::STANDARD
                .decode(black_box(payload))
                .expect("base64")
        })
    });
    group.finish();
}

fn probe(c: &mut Criterion) {
    let inputs: [(&str, &LazyLock<Vec<u8>>, ImageKind); 3] = [
        ("jpeg", &WEB_JPEG, ImageKind::Jpeg),
        ("png", &CUTOUT_PNG, ImageKind::Png),
        ("webp", &WEB_WEBP, ImageKind::Webp),
    ];
    let mut group = c.benchmark_group("sniff");
    group
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    for (name, bytes, kind) in inputs {
        group.bench_function(name, |b| {
            let bytes = bytes.as_slice();
            assert_eq!(media::sniff(bytes), Some(kind));
            b.iter(|| media::sniff(black_box(bytes)))
        });
    }
    group.finish();

    let mut group = c.benchmark_group("probe");
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    for (name, bytes, kind) in inputs {
        group.bench_function(name, |b| {
            let bytes = bytes.as_slice();
            assert_eq!(media::probe(bytes).expect("probe").kind, kind);
            b.iter(|| media::probe(black_box(bytes)).expect("probe"))
        });
    }
    group.finish();
}

fn thumbnails(c: &mut Criterion) {
    let size = thumbnail::DEFAULT_MAX_SIDE;
    let mut group = c.benchmark_group("thumbnail");
    // Milliseconds per call: ten samples are enough, and keep the whole run under a minute.
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .throughput(Throughput::Elements(1));
    let inputs: [(&str, &LazyLock<Vec<u8>>); 2] = [
        ("web_jpeg_1000x1300", &WEB_JPEG),
        ("jpeg_4000x3000", &PHOTO_12MP),
    ];
    for (name, bytes) in inputs {
        group.bench_function(name, |b| {
            let bytes = bytes.as_slice();
            b.iter(|| thumbnail::make(black_box(bytes), ImageKind::Jpeg, size).expect("thumbnail"))
        });
    }
    group.finish();
}

criterion_group! {
    name = pieces;
    // Plots would need gnuplot; the numbers are what this bench is for.
    config = Criterion::default().without_plots();
    targets = ingest, probe, thumbnails
}
criterion_main!(pieces);
