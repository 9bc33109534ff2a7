//! `imgvault compact`: gives the sparse growth and the free pages of a data file back to the disk,
//! for a stopped server's file.

use std::path::Path;
use std::time::Instant;

use super::{OpsError, Outcome, human_bytes, open_existing};
use crate::cli::CompactArgs;

pub fn run(args: CompactArgs) -> Result<Outcome, OpsError> {
    let path = &args.data.data;
    let mut store = open_existing(path)?;
    let before = FileSize::of(path)?;
    eprintln!(
        "compacting {} ({}, {} on disk) ...",
        path.display(),
        human_bytes(before.apparent),
        human_bytes(before.allocated)
    );
    let started = Instant::now();
    store.compact().map_err(OpsError::store(path, ""))?;
    drop(store);
    let after = FileSize::of(path)?;
    println!(
        "compacted {} in {:.1} s: {} → {} ({} → {} on disk)",
        path.display(),
        started.elapsed().as_secs_f64(),
        human_bytes(before.apparent),
        human_bytes(after.apparent),
        human_bytes(before.allocated),
        human_bytes(after.allocated),
    );
    Ok(Outcome::Done)
}

/// A file's length and the bytes the disk actually holds for it (they differ for sparse files).
struct FileSize {
    apparent: u64,
    allocated: u64,
}

impl FileSize {
    fn of(path: &Path) -> Result<Self, OpsError> {
        let meta = std::fs::metadata(path).map_err(OpsError::io(format!(
            "reading the size of {}",
            path.display()
        )))?;
        #[cfg(unix)]
        let allocated = std::os::unix::fs::MetadataExt::blocks(&meta) * 512;
        #[cfg(not(unix))]
        let allocated = meta.len();
        Ok(Self {
            apparent: meta.len(),
            allocated,
        })
    }
}
