//! Phases 5 and 6, fetch: the ingested originals at c=16, then big PNGs by many clients at once
//! to watch the server's memory while large bodies are in flight.

use std::sync::Arc;

use serde_json::{Value, json};

use super::FETCH_CONCURRENCY;
use crate::client::{
    Session, Stored, fetch_original, hammer, http_client, post_uploads, stored_images,
};
use crate::images::{BIG_SIDE, Upload, assert_distinct, big_png};
use crate::measure::{Measurement, Monitor, Settled, measure, settle};
use crate::stats::{mb, mib};

pub(crate) const BIG_IMAGES: usize = 4;
pub(crate) const BIG_CLIENTS: usize = 32;
pub(crate) const BIG_FETCHES_PER_CLIENT: usize = 8;
/// What the server's RSS should stay under while serving the big images.
pub(crate) const BIG_RSS_TARGET_MIB: f64 = 100.0;

/// `GET` the ingested originals (~250 KB) at c=16, `requests` times round-robin.
pub(crate) async fn fetch_phase(
    base: &str,
    monitor: &Monitor,
    admin: &Session,
    stored: &Arc<Vec<Stored>>,
    requests: usize,
) -> Result<Measurement, String> {
    println!("fetch:");
    let (client, base_url) = (http_client(), base.to_string());
    let (admin, images) = (admin.clone(), stored.clone());
    let work = hammer(FETCH_CONCURRENCY, requests, move |_, index| {
        let image = images[index % images.len()].clone();
        let request = admin.get_file(&client, &base_url, "images", &image.filename);
        async move { fetch_original(request, &image).await }
    });
    let name = "fetch original ~250 KB".to_string();
    let (m, _) = measure(monitor, name, FETCH_CONCURRENCY, work).await?;
    Ok(m)
}

pub(crate) struct BigFetch {
    pub(crate) image_bytes: Vec<u64>,
    pub(crate) upload: Measurement,
    pub(crate) settled: Settled,
    pub(crate) fetch: Measurement,
}

impl BigFetch {
    pub(crate) fn peak_rss_mib(&self) -> Option<f64> {
        mib(self.fetch.usage.peak_rss_kib)
    }

    /// Fetch `i` reads image `i % BIG_IMAGES`.
    fn fetched_bytes(&self) -> u64 {
        (0..self.fetch.stats.count())
            .map(|i| self.image_bytes[i % self.image_bytes.len()])
            .sum()
    }

    pub(crate) fn within_target(&self) -> Option<bool> {
        self.peak_rss_mib().map(|m| m < BIG_RSS_TARGET_MIB)
    }

    pub(crate) fn json(&self) -> Value {
        json!({
            "image_bytes": self.image_bytes,
            "upload": self.upload.json(),
            "thumbnails": self.settled.json(),
            "fetch": self.fetch.json(),
            "fetched_bytes": self.fetched_bytes(),
            "fetch_mb_per_s": mb(self.fetched_bytes()) / self.fetch.stats.wall.as_secs_f64(),
            "peak_rss_mib": self.peak_rss_mib(),
            "rss_target_mib": BIG_RSS_TARGET_MIB,
            "within_target": self.within_target(),
        })
    }
}

/// Uploads 4 big PNGs and lets 32 clients fetch them 8 times each: the server's memory while many
/// large bodies are in flight.
pub(crate) async fn big_fetch_phase(
    base: &str,
    monitor: &Monitor,
    admin: &Session,
) -> Result<BigFetch, String> {
    println!("big fetch:");
    let uploads = (0..BIG_IMAGES)
        .map(|seed| big_png(seed as u64).map(|png| Upload::new("image/png", &png)))
        .collect::<Result<Vec<_>, _>>()?;
    assert_distinct(&uploads);
    let image_bytes: Vec<u64> = uploads.iter().map(|u| u.image_bytes as u64).collect();
    let uploads = Arc::new(uploads);
    let name = format!("upload {BIG_SIDE}x{BIG_SIDE} noise PNG");
    let (upload, posted) = measure(
        monitor,
        name,
        1,
        post_uploads(base, uploads.clone(), 1, None),
    )
    .await?;
    let settled = settle(base, monitor, &posted).await?;
    println!("    {}", settled.describe());
    let images = Arc::new(stored_images(&uploads, posted));

    let clients: Vec<reqwest::Client> = (0..BIG_CLIENTS).map(|_| http_client()).collect();
    let (admin, base_url) = (admin.clone(), base.to_string());
    let count = BIG_CLIENTS * BIG_FETCHES_PER_CLIENT;
    let work = hammer(BIG_CLIENTS, count, move |worker, index| {
        let image = images[index % images.len()].clone();
        let request = admin.get_file(&clients[worker], &base_url, "images", &image.filename);
        async move { fetch_original(request, &image).await }
    });
    let name = "fetch big PNG (streamed)".to_string();
    let (fetch, _) = measure(monitor, name, BIG_CLIENTS, work).await?;
    Ok(BigFetch {
        image_bytes,
        upload,
        settled,
        fetch,
    })
}
