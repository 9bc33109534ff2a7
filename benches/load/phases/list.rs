//! Phase 4, list: a second user's collection filled to each `--list-images` size in turn, and
//! its first, middle and last page listed at each.

use std::sync::Arc;

use serde_json::Value;

use crate::Args;
use crate::client::{Session, exchange, hammer, http_client, post_uploads, register};
use crate::images::{Upload, assert_distinct, tiny_png};
use crate::measure::{Measurement, Monitor, Settled, measure, settle};

/// The user whose collection is listed (anonymous uploads, the ingested ones, belong to admin).
const LIST_USER: &str = "listbench";
const LIST_PASSWORD: &str = "listbench-pw";
pub(crate) const PER_PAGE: usize = 20;
pub(crate) const FILL_CONCURRENCY: usize = 16;
const LIST_CONCURRENCY: usize = 16;
const LIST_WARMUP: usize = 5;

/// The list measurements at one collection size.
pub(crate) struct ListSize {
    pub(crate) images: usize,
    pub(crate) fill: Option<Measurement>,
    pub(crate) settled: Settled,
    pub(crate) pages: Vec<ListRun>,
}

pub(crate) struct ListRun {
    pub(crate) label: &'static str,
    pub(crate) page: usize,
    pub(crate) pages: usize,
    pub(crate) m: Measurement,
}

/// Fills the list user's collection to each size in turn and measures its pages there.
pub(crate) async fn list_phases(
    base: &str,
    monitor: &Monitor,
    args: &Args,
) -> Result<Vec<ListSize>, String> {
    let lister = register(base, LIST_USER, LIST_PASSWORD).await?;
    let mut sizes = Vec::new();
    let mut have = 0;
    for &images in &args.list_images {
        println!("list at {images} images:");
        let (fill, settled) = fill(base, monitor, &lister, have, images).await?;
        println!("    {}", settled.describe());
        have = images;
        let pages = list_pages(base, monitor, &lister, images, args.requests).await?;
        sizes.push(ListSize {
            images,
            fill,
            settled,
            pages,
        });
    }
    Ok(sizes)
}

/// Tops `user`'s collection up from `have` to `want` images with tiny PNGs, then waits for the
/// background thumbnail queue to drain.
async fn fill(
    base: &str,
    monitor: &Monitor,
    user: &Session,
    have: usize,
    want: usize,
) -> Result<(Option<Measurement>, Settled), String> {
    let uploads: Vec<Upload> = (have..want)
        .map(|i| Upload::new("image/png", &tiny_png(i)))
        .collect();
    assert_distinct(&uploads);
    if uploads.is_empty() {
        return Ok((None, settle(base, monitor, &[]).await?));
    }
    let name = format!("fill png 8x8 to {want}");
    let work = post_uploads(
        base,
        Arc::new(uploads),
        FILL_CONCURRENCY,
        Some(user.clone()),
    );
    let (m, posted) = measure(monitor, name, FILL_CONCURRENCY, work).await?;
    let settled = settle(base, monitor, &posted).await?;
    Ok((Some(m), settled))
}

/// The first, middle and last page, one request at a time, then the first page at c=16.
async fn list_pages(
    base: &str,
    monitor: &Monitor,
    user: &Session,
    total: usize,
    requests: usize,
) -> Result<Vec<ListRun>, String> {
    let pages = total.div_ceil(PER_PAGE).max(1);
    let plan = [
        ("first", 1, 1),
        ("middle", (pages / 2).max(1), 1),
        ("last", pages, 1),
        ("first", 1, LIST_CONCURRENCY),
    ];
    let mut runs = Vec::new();
    for (label, page, concurrency) in plan {
        let url = format!("{base}/api/user/images?page={page}&per_page={PER_PAGE}");
        let (client, user) = (http_client(), user.clone());
        let call = move |_worker: usize, _index: usize| {
            let request = user.get(&client, &url);
            async move {
                let (latency, answer) = exchange(request).await?;
                check_page(&answer, page, total)?;
                Ok((latency, ()))
            }
        };
        hammer(1, LIST_WARMUP, call.clone())
            .await
            .require_all_ok(&format!("list page {page} warm-up"))?;
        let name = format!("list {total} {label} p{page}/{pages}");
        let (m, _) = measure(
            monitor,
            name,
            concurrency,
            hammer(concurrency, requests, call),
        )
        .await?;
        runs.push(ListRun {
            label,
            page,
            pages,
            m,
        });
    }
    Ok(runs)
}

/// A page of `/api/user/images` must count every stored image and hold a full page (or the rest).
fn check_page(answer: &Value, page: usize, total: usize) -> Result<(), String> {
    let pages = total.div_ceil(PER_PAGE);
    let expected_len = if page < pages {
        PER_PAGE
    } else {
        total - (pages - 1) * PER_PAGE
    };
    let len = answer["images"].as_array().map(Vec::len);
    let problems = [
        (answer["total"] != total as u64, "total"),
        (answer["page"] != page as u64, "page"),
        (answer["per_page"] != PER_PAGE as u64, "per_page"),
        (answer["pages"] != pages as u64, "pages"),
        (len != Some(expected_len), "images"),
    ];
    match problems.iter().find(|(bad, _)| *bad) {
        None => Ok(()),
        Some((_, field)) => Err(format!(
            "page {page}: wrong `{field}` (expected total {total}, pages {pages}, \
             {expected_len} images; got total {}, page {}, per_page {}, pages {}, {len:?} images)",
            answer["total"], answer["page"], answer["per_page"], answer["pages"]
        )),
    }
}

/// p99 at the largest size over p99 at the smallest, per kind of page measurement.
pub(crate) fn list_growth(sizes: &[ListSize]) -> Vec<(String, f64)> {
    let (Some(small), Some(large)) = (sizes.first(), sizes.last()) else {
        return Vec::new();
    };
    small
        .pages
        .iter()
        .zip(&large.pages)
        .map(|(s, l)| {
            let kind = format!("{} c={}", s.label, s.m.concurrency);
            (kind, l.m.p99_ms() / s.m.p99_ms())
        })
        .collect()
}
