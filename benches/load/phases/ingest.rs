//! Phase 1, ingest: fresh ~250 KB JPEGs posted anonymously at each `--concurrency`, and what the
//! server used for them, thumbnails included.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use serde_json::{Value, json};

use crate::Args;
use crate::client::{Stored, post_uploads, stored_images};
use crate::images::{JPEG_HEIGHT, JPEG_WIDTH, Route, Upload, calibrate_quality, make_jpegs};
use crate::measure::{Measurement, Monitor, Settled, Usage, measure, settle};
use crate::stats::{mb, ratio};

pub(crate) struct Ingest {
    pub(crate) quality: u8,
    pub(crate) phases: Vec<IngestPhase>,
    /// Every ingested image, in upload order.
    pub(crate) stored: Vec<Stored>,
}

pub(crate) struct IngestPhase {
    pub(crate) route: Route,
    pub(crate) requests: Measurement,
    pub(crate) image_bytes: u64,
    pub(crate) wire_bytes: u64,
    pub(crate) settled: Settled,
    /// From the first request to the thumbnail queue having drained.
    pub(crate) with_thumbnails: Usage,
}

impl Ingest {
    pub(crate) fn image_bytes(&self) -> u64 {
        self.phases.iter().map(|p| p.image_bytes).sum()
    }

    /// Bytes the server sent to storage over every ingest phase, thumbnails included.
    pub(crate) fn written(&self) -> Option<u64> {
        self.phases.iter().map(|p| p.with_thumbnails.written).sum()
    }
}

impl IngestPhase {
    pub(crate) fn images(&self) -> usize {
        self.requests.stats.count()
    }

    pub(crate) fn mb_per_s(&self, bytes: u64) -> f64 {
        mb(bytes) / self.requests.stats.wall.as_secs_f64()
    }

    pub(crate) fn written_per_image_byte(&self) -> Option<f64> {
        ratio(
            self.with_thumbnails.written.map(|w| w as f64),
            Some(self.image_bytes as f64),
        )
    }

    pub(crate) fn json(&self) -> Value {
        json!({
            "route": self.route.name(),
            "requests": self.requests.json(),
            "images": self.images(),
            "image_bytes": self.image_bytes,
            "wire_bytes": self.wire_bytes,
            "mean_image_bytes": self.image_bytes as f64 / self.images() as f64,
            "image_mb_per_s": self.mb_per_s(self.image_bytes),
            "wire_mb_per_s": self.mb_per_s(self.wire_bytes),
            "thumbnails": self.settled.json(),
            "with_thumbnails": self.with_thumbnails.json(self.images()),
            "written_per_image_byte": self.written_per_image_byte(),
        })
    }
}

/// One ingest phase per concurrency, each on its own fresh images.
pub(crate) async fn ingest_phases(
    base: &str,
    monitor: &Monitor,
    args: &Args,
) -> Result<Ingest, String> {
    let quality = calibrate_quality();
    let mut ingest = Ingest {
        quality,
        phases: Vec::new(),
        stored: Vec::new(),
    };
    println!("ingest:");
    let rounds = (args.concurrency.iter().map(|&c| (Route::Json, c)))
        .chain(args.multipart.iter().map(|&c| (Route::Multipart, c)));
    for (round, (route, concurrency)) in rounds.enumerate() {
        let started = Instant::now();
        let uploads = make_jpegs(round * args.ingest, args.ingest, quality, route);
        println!(
            "  generated {} JPEGs {JPEG_WIDTH}x{JPEG_HEIGHT} at quality {quality} in {:.1} s",
            uploads.len(),
            started.elapsed().as_secs_f64()
        );
        let (phase, stored) = ingest_phase(base, monitor, uploads, route, concurrency).await?;
        ingest.phases.push(phase);
        ingest.stored.extend(stored);
    }
    let distinct: HashSet<&str> = ingest.stored.iter().map(|s| s.etag.as_str()).collect();
    if distinct.len() != ingest.stored.len() {
        return Err("ingest: images of different phases repeat".into());
    }
    Ok(ingest)
}

/// Posts `uploads` anonymously at `concurrency`, then waits for their thumbnails.
async fn ingest_phase(
    base: &str,
    monitor: &Monitor,
    uploads: Vec<Upload>,
    route: Route,
    concurrency: usize,
) -> Result<(IngestPhase, Vec<Stored>), String> {
    let uploads = Arc::new(uploads);
    let mark = monitor.mark();
    let name = match route {
        Route::Json => format!("ingest c={concurrency}"),
        Route::Multipart => format!("ingest multipart c={concurrency}"),
    };
    let work = post_uploads(base, uploads.clone(), concurrency, None);
    let (requests, posted) = measure(monitor, name, concurrency, work).await?;
    let settled = settle(base, monitor, &posted).await?;
    let with_thumbnails = monitor.usage_since(&mark);
    println!("    {}", settled.describe());
    let phase = IngestPhase {
        route,
        requests,
        image_bytes: uploads.iter().map(|u| u.image_bytes as u64).sum(),
        wire_bytes: uploads.iter().map(|u| u.body.len() as u64).sum(),
        settled,
        with_thumbnails,
    };
    Ok((phase, stored_images(&uploads, posted)))
}
