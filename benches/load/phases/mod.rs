//! The load phases, one module each (numbered as in the list at the top of `main.rs`); `run` in
//! `main.rs` calls them in order and gathers their results in `Phases` for the report.

pub(crate) mod disk;
pub(crate) mod fetch;
pub(crate) mod ingest;
pub(crate) mod list;
pub(crate) mod status;
pub(crate) mod thumbnails;

use crate::measure::Measurement;
use disk::Disk;
use fetch::BigFetch;
use ingest::Ingest;
use list::ListSize;

/// Concurrent clients fetching the ingested images' thumbnails and originals.
const FETCH_CONCURRENCY: usize = 16;

/// The load phases, all on the first server process.
pub(crate) struct Phases {
    pub(crate) ingest: Ingest,
    pub(crate) disk: Disk,
    pub(crate) thumbnails: Measurement,
    pub(crate) list: Vec<ListSize>,
    pub(crate) fetch: Measurement,
    pub(crate) big: BigFetch,
    pub(crate) status: Measurement,
    /// VmRSS (KiB) once the server has been quiet for a while after the ingest phases.
    pub(crate) quiet_rss_kib: Option<u64>,
    /// Images in the data file at the end.
    pub(crate) total_images: usize,
}
