//! The AVIF cost model against what decoding really allocates: a counting allocator measures the
//! peak of `avif::decode` and of the whole thumbnail, for fixtures of several sizes, bit depths,
//! subsamplings, alpha and grids; each model must be at least what was measured.
#![cfg(avif)]

use std::sync::atomic::Ordering;

use imgvault::media::{self, ImageKind, avif, cost, thumbnail};

#[path = "common/counting_alloc.rs"]
mod counting_alloc;
use counting_alloc::{CURRENT, PEAK};

/// Peak bytes allocated by `f` beyond what was held when it started.
fn peak_of<T>(f: impl FnOnce() -> T) -> (T, u64) {
    let base = CURRENT.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let out = f();
    (out, (PEAK.load(Ordering::Relaxed) - base) as u64)
}

fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/tests/fixtures/media/avif_{name}.avif",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

// One test: the counter sees every thread of the binary.
#[test]
fn the_models_bound_what_decoding_allocates() {
    let mut rows = Vec::new();
    for name in [
        "large_420",
        "large_444_10bit",
        "large_alpha",
        "large_grey",
        "large_grid_422_12bit",
        "large_av1_tiles",
        "420",
        "grid_alpha",
        "premultiplied",
    ] {
        let bytes = fixture(name);
        let header = avif::header(&bytes).unwrap();
        // The path the thumbnail takes: reduced as it is converted, unless it has alpha.
        let reduced = avif::reduced_size(&header, thumbnail::DEFAULT_MAX_SIDE);
        let model = avif::decode_cost(&header, reduced);
        let (image, measured) = peak_of(|| avif::decode(&bytes, &header, reduced).unwrap());
        assert_eq!(
            (image.width(), image.height()),
            reduced.unwrap_or((header.width, header.height))
        );
        drop(image);
        let probe = media::probe(&bytes).unwrap();
        let plan = cost::plan(&bytes, &probe, thumbnail::DEFAULT_MAX_SIDE);
        // The plan counts the source bytes, which the caller already holds here.
        let (thumb, thumb_measured) =
            peak_of(|| thumbnail::make(&bytes, ImageKind::Avif, thumbnail::DEFAULT_MAX_SIDE));
        thumb.unwrap();
        let thumb_measured = thumb_measured + bytes.len() as u64;
        rows.push(format!(
            "{name:24} {:>5}x{:<5} decode {:>10} ≤ {:>10} ({:.3})   thumbnail {:>10} ≤ {:>10} ({:.3})",
            header.width,
            header.height,
            measured,
            model,
            model as f64 / measured as f64,
            thumb_measured,
            plan.bytes,
            plan.bytes as f64 / thumb_measured as f64,
        ));
        assert!(
            model >= measured,
            "{name}: decode model {model} < {measured}"
        );
        assert!(
            plan.bytes >= thumb_measured,
            "{name}: thumbnail plan {} < {thumb_measured}",
            plan.bytes
        );
    }
    println!("{}", rows.join("\n"));
}

/// Peak resident memory of this process, after `reset_hwm`.
fn vm_hwm() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<u64>()
        .unwrap()
        * 1024
}

fn reset_hwm() {
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
}

/// Decode time, allocation peak and resident peak of every `.avif` in `$AVIF_MEASURE_DIR`
/// against the model, for the README's figures (release build):
/// `AVIF_MEASURE_DIR=dir cargo test --release --test avif_cost -- --ignored --nocapture`
#[test]
#[ignore = "measures files named by AVIF_MEASURE_DIR"]
fn measure_a_directory() {
    let dir = std::env::var("AVIF_MEASURE_DIR").expect("AVIF_MEASURE_DIR");
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "avif"))
        .collect();
    paths.sort();
    for path in paths {
        let bytes = std::fs::read(&path).unwrap();
        let header = match avif::header(&bytes) {
            Ok(h) => h,
            Err(e) => {
                println!("{}: {e}", path.display());
                continue;
            }
        };
        let reduced = avif::reduced_size(&header, thumbnail::DEFAULT_MAX_SIDE);
        let model = avif::decode_cost(&header, reduced);
        let rss_before = {
            reset_hwm();
            vm_hwm()
        };
        let start = std::time::Instant::now();
        let (image, measured) = peak_of(|| avif::decode(&bytes, &header, reduced).unwrap());
        let took = start.elapsed();
        let rss = vm_hwm() - rss_before;
        drop(image);
        let probe = media::probe(&bytes).unwrap();
        let plan = cost::plan(&bytes, &probe, thumbnail::DEFAULT_MAX_SIDE);
        let start = std::time::Instant::now();
        let (thumb, thumb_measured) =
            peak_of(|| thumbnail::make(&bytes, ImageKind::Avif, thumbnail::DEFAULT_MAX_SIDE));
        let thumb_took = start.elapsed();
        thumb.unwrap();
        let px = f64::from(header.width) * f64::from(header.height);
        println!(
            "{} {}x{} {}-bit {:?} tiles {} alpha {}: decode {:.0} ms, peak {:.1} MB ({:.2} B/px), \
             RSS peak +{:.1} MB, model {:.1} MB (ratio {:.3}); thumbnail {:.0} ms, peak {:.1} MB, \
             plan {:.1} MB (ratio {:.3})",
            path.file_name().unwrap().to_string_lossy(),
            header.width,
            header.height,
            header.depth,
            header.subsampling,
            header.tiles,
            header.alpha,
            took.as_secs_f64() * 1000.0,
            measured as f64 / 1e6,
            measured as f64 / px,
            rss as f64 / 1e6,
            model as f64 / 1e6,
            model as f64 / measured as f64,
            thumb_took.as_secs_f64() * 1000.0,
            (thumb_measured + bytes.len() as u64) as f64 / 1e6,
            plan.bytes as f64 / 1e6,
            plan.bytes as f64 / (thumb_measured + bytes.len() as u64) as f64,
        );
    }
}
