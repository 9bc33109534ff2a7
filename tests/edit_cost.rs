//! The edit cost model against what editing really allocates: a counting allocator measures the
//! peak of `edit::apply` on phone-sized pictures; the model (what an allowance of one byte is told
//! the edit would take) must be at least what was measured. libjpeg's own buffers are C
//! allocations the counter does not see, so the JPEG cases are re-encodes, whose buffers (the
//! decoded picture, the strip, the output) are Rust's.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use imgvault::media::MediaError;
use imgvault::media::edit::{self, Crop, Edit, EditError, Flip, Rotation};

#[path = "../benches/common/images.rs"]
mod images;

struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is passed to the system allocator unchanged; only sizes are counted.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract is the system allocator's.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as for `alloc`.
        unsafe { System.dealloc(ptr, layout) };
        CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
            grew(new_size);
        }
        p
    }
}

fn grew(size: usize) {
    let now = CURRENT.fetch_add(size, Ordering::Relaxed) + size;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

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
