//! The edit cost model against what editing really allocates: a counting allocator measures the
//! peak of `edit::apply` on phone-sized pictures; the model (what an allowance of one byte is told
//! the edit would take) must be at least what was measured. libjpeg's own buffers are C
//! allocations the counter does not see, so the JPEG cases are re-encodes, whose buffers (the
//! decoded picture, the strip, the output) are Rust's.

use std::sync::atomic::Ordering;

use imgvault::media::MediaError;
use imgvault::media::edit::{self, Crop, Edit, EditError, Flip, Rotation};

#[path = "../benches/common/images.rs"]
mod images;

#[path = "common/counting_alloc.rs"]
mod counting_alloc;
use counting_alloc::{CURRENT, PEAK};

/// What the model says `edit` of `bytes` takes, and the allocation peak of doing it.
fn model_and_peak(bytes: &[u8], edit: &Edit) -> (u64, usize) {
    let model = match edit::apply(bytes, edit, 1) {
        Err(EditError::Media(MediaError::OverBudget { cost, .. })) => cost,
        other => panic!("expected over budget, got {other:?}"),
    };
    let base = CURRENT.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let edited = edit::apply(bytes, edit, u64::MAX).expect("edit");
    let peak = PEAK.load(Ordering::Relaxed) - base;
    assert!(!edited.lossless, "a re-encode is measured");
    (model, peak)
}

#[test]
fn the_model_covers_what_edits_allocate() {
    let turn = Edit {
        rotate: Rotation::R90,
        ..Edit::default()
    };
    // 4000×3000 4:2:0: 3000 rows are not a whole number of 16-row blocks, so a quarter turn
    // re-encodes.
    let jpeg = images::photo_jpeg_420(4000, 3000);
    let png = images::photo_png(1600, 1200);
    let cases = [
        ("12 MP JPEG, quarter turn", jpeg.clone(), turn),
        (
            "12 MP JPEG, odd crop, mirrored",
            jpeg,
            Edit {
                flip: Some(Flip::H),
                crop: Some(Crop {
                    x: 3,
                    y: 5,
                    width: 3000,
                    height: 2000,
                }),
                ..Edit::default()
            },
        ),
        ("2 MP PNG, quarter turn", png, turn),
    ];
    for (name, bytes, edit) in cases {
        let (model, peak) = model_and_peak(&bytes, &edit);
        eprintln!(
            "{name}: model {:.1} MB, measured {:.1} MB",
            model as f64 / 1e6,
            peak as f64 / 1e6
        );
        assert!(
            model >= peak as u64,
            "{name}: model {model} < measured {peak}"
        );
    }
    // A phone photo fits the default budget (30% of --memory-mb 200).
    let (model, _) = model_and_peak(&images::photo_jpeg_420(4000, 3000), &turn);
    assert!(model <= 200 * 1024 * 1024 * 3 / 10, "{model}");
}
