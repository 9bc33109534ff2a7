//! Phase 2, disk: what the server wrote during ingest and how large the data file is, against
//! the bytes of the images and thumbnails it holds.

use std::path::Path;

use serde_json::{Value, json};

use super::ingest::Ingest;
use super::thumbnails::ThumbBytes;
use crate::stats::ratio;

/// The data file after ingest against what it holds.
pub(crate) struct Disk {
    /// Written during the ingest phases, thumbnails included.
    pub(crate) written: Option<u64>,
    pub(crate) image_bytes: u64,
    pub(crate) thumbs: ThumbBytes,
    /// The file's length.
    pub(crate) apparent: u64,
    /// Blocks allocated to it.
    pub(crate) allocated: Option<u64>,
}

impl Disk {
    pub(crate) fn measure(
        data: &Path,
        ingest: &Ingest,
        thumbs: ThumbBytes,
    ) -> Result<Self, String> {
        let meta = std::fs::metadata(data).map_err(|e| format!("{}: {e}", data.display()))?;
        #[cfg(unix)]
        let allocated = Some(std::os::unix::fs::MetadataExt::blocks(&meta) * 512);
        #[cfg(not(unix))]
        let allocated = None;
        Ok(Self {
            written: ingest.written(),
            image_bytes: ingest.image_bytes(),
            thumbs,
            apparent: meta.len(),
            allocated,
        })
    }

    pub(crate) fn payload(&self) -> u64 {
        self.image_bytes + self.thumbs.bytes
    }

    /// `bytes` per byte of images, and per byte of images plus thumbnails.
    pub(crate) fn ratios(&self, bytes: Option<u64>) -> (Option<f64>, Option<f64>) {
        let bytes = bytes.map(|b| b as f64);
        (
            ratio(bytes, Some(self.image_bytes as f64)),
            ratio(bytes, Some(self.payload() as f64)),
        )
    }

    pub(crate) fn json(&self) -> Value {
        let pair = |(images, payload): (Option<f64>, Option<f64>)| {
            json!({
                "vs_images": images,
                "vs_images_and_thumbnails": payload,
            })
        };
        json!({
            "written_during_ingest_bytes": self.written,
            "image_bytes": self.image_bytes,
            "thumbnail_bytes": self.thumbs.bytes,
            "thumbnails_stored": self.thumbs.stored,
            "images_that_are_their_own_thumbnail": self.thumbs.originals,
            "payload_bytes": self.payload(),
            "file_apparent_bytes": self.apparent,
            "file_allocated_bytes": self.allocated,
            "written_per": pair(self.ratios(self.written)),
            "apparent_per": pair(self.ratios(Some(self.apparent))),
            "allocated_per": pair(self.ratios(self.allocated)),
        })
    }
}
