//! Near-duplicate search benchmark: one user's collection with perceptual hashes, written straight
//! into a fresh data file through the library's `Store` (as `benches/search.rs` does), then the
//! real release binary started on it and measured over HTTP.
//!
//! ```text
//! cargo bench --bench similar
//! cargo bench --bench similar -- --size 100000 --requests 2000
//! ```
//!
//! The collection: `--size` images (default 100,000), each its own blob and hash. 70% of the
//! hashes are unrelated (random, shaped like the real ones: 32 coefficients in three levels of two
//! bits); 30% are near-duplicates of an earlier image, 1 to 8 bits away, in groups of two to five, like the re-saved, resized and recompressed copies a real
//! collection gathers. Every task is completed, so the server does no background work.
//!
//! Measured: `Store::similar` in the bench's own process (median and p99 of 500 calls once the
//! index is built: the store's share, without HTTP); then on the server, after every image was
//! listed once (so the data file's page cache holds what the index build reads), the first
//! `/api/user/images/{id}/similar` (which builds the user's hash index: "first ms"), the RSS
//! before and after it (what the index holds), and `--requests` queries one after another on one
//! keep-alive connection from random seeds at the default distance (10) and at the largest (32),
//! p50 and p99; then `/api/user/duplicates` (the first call groups the whole collection) and its
//! later pages; and the peak RSS (`VmHWM`). Every answer is checked: status 200, the seed itself
//! never among the matches, matches nearest first, and each seed's planted copies found.
//!
//! Client and server share the machine, so the figures include the bench's own CPU use. Data files
//! go under `target/`.

#[path = "common/latency.rs"]
mod latency;
#[path = "../tests/common/server.rs"]
mod spawned;

use std::path::{Path, PathBuf};
use std::time::Instant;

use imgvault::clock::{DAY, Micros};
use imgvault::domain::{BlobHash, Category, Email, ImageId, TaskId, Username};
use imgvault::media::ImageKind;
use imgvault::store::records::{ImageRecord, TaskRecord, TaskStatus, UserRecord};
use imgvault::store::{Batch, NewImage, Similar, Store, TaskEnd};
use serde_json::Value;

use latency::{client, get, login, ms, percentile};
use spawned::Spawned;

const USER: &str = "finder";
const PASSWORD: &str = "similar-bench-pw";
const ADMIN_PASSWORD: &str = "similar-bench-admin";
const BUILD_BATCH: usize = 2_000;

struct Args {
    size: usize,
    requests: usize,
}

fn parse() -> Result<Args, String> {
    let mut args = Args {
        size: 100_000,
        requests: 2_000,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut number = |name: &str| -> Result<usize, String> {
            it.next()
                .and_then(|v| v.replace('_', "").parse().ok())
                .ok_or(format!("{name} needs a number"))
        };
        match arg.as_str() {
            "--size" => args.size = number("--size")?,
            "--requests" => args.requests = number("--requests")?,
            _ => {}
        }
    }
    Ok(args)
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// A hash shaped like `media::phash`'s: 32 coefficients in three levels (10, 11 and 11 of them,
/// in random order), two bits each (00, 01, 11).
fn unrelated(rng: &mut Rng) -> u64 {
    let mut levels: Vec<u64> = [0u64; 10]
        .into_iter()
        .chain([1; 11])
        .chain([2; 11])
        .collect();
    for i in (1..levels.len()).rev() {
        levels.swap(i, rng.below(i + 1));
    }
    levels.iter().fold(0, |bits, &level| {
        (bits << 2) | [0b00, 0b01, 0b11][level as usize]
    })
}

/// The collection: image ids in time order, and for each image the ids of its planted copies.
struct Built {
    ids: Vec<String>,
    copies: Vec<Vec<usize>>,
}

fn build(path: &Path, size: usize) -> Result<Built, String> {
    let store =
        Store::open(path, imgvault::store::DEFAULT_CACHE_BYTES).map_err(|e| e.to_string())?;
    let user = UserRecord::new(
        &Username::parse(USER).map_err(|e| e.0.to_string())?,
        &Email::parse(&format!("{USER}@example.com")).map_err(|e| e.0.to_string())?,
        imgvault::secrets::hash_password(PASSWORD),
    );
    store
        .create_user(&user, USER, &format!("{USER}@example.com"))
        .map_err(|e| e.to_string())?;
    let mut rng = Rng(0x51a1_1a7e);
    let mut hashes: Vec<u64> = Vec::with_capacity(size);
    let mut copies: Vec<Vec<usize>> = vec![Vec::new(); size];
    // Where each image's group started (for planting copies of the same original).
    let mut group_of: Vec<usize> = Vec::with_capacity(size);
    for i in 0..size {
        if i > 10 && rng.below(10) < 3 {
            // A copy of a recent image's group, 1–8 bits from that group's first image.
            let of = group_of[i - 1 - rng.below(10.min(i - 1))];
            let members = copies[of].len();
            if members < 4 {
                let mut h = hashes[of];
                for _ in 0..1 + rng.below(8) {
                    h ^= 1 << rng.below(64);
                }
                hashes.push(h);
                copies[of].push(i);
                group_of.push(of);
                continue;
            }
        }
        hashes.push(unrelated(&mut rng));
        group_of.push(i);
    }
    let start: Micros = 1_640_995_200_000_000;
    let step = 3 * 365 * DAY / size as i64;
    let mut ids = Vec::with_capacity(size);
    let mut done = 0;
    while done < size {
        let n = BUILD_BATCH.min(size - done);
        let mut made = Vec::with_capacity(n);
        for i in done..done + n {
            let bytes = format!("similar bench image {i}").into_bytes();
            let saved_at = start + i as i64 * step;
            let id = ImageId::random();
            ids.push(id.to_string());
            let task_id = TaskId::random();
            let image = ImageRecord {
                id: id.clone(),
                user_id: user.user_id.clone(),
                filename: format!("clothes_{i:06}.jpg"),
                category: Category::Clothes,
                kind: ImageKind::Jpeg,
                blob: BlobHash::of(&bytes),
                original_url: Some(format!("https://img.example.com/{i}.jpg")),
                page_url: Some(format!("https://shop.example.com/item/{i}")),
                page_title: Some(format!("商品 {i}")),
                context_json: None,
                saved_at,
                file_size: 100_000 + i as u64,
                width: 800,
                height: 1200,
                cloud_synced: false,
                task_id: task_id.clone(),
                tags: Vec::new(),
                trashed_at: None,
                original: None,
                hub_stale: false,
            };
            let task = TaskRecord {
                task_id: task_id.clone(),
                user_id: user.user_id.clone(),
                image_id: id,
                status: TaskStatus::Processing,
                error: None,
                created_at: saved_at,
                updated_at: saved_at,
            };
            let end = TaskEnd {
                task_id,
                outcome: Ok(()),
                at: saved_at,
            };
            made.push((image, task, bytes, end));
        }
        let batch = Batch {
            uploads: made
                .iter()
                .map(|(image, task, bytes, _)| NewImage::plain(image, bytes, task))
                .collect(),
            thumbnails: Vec::new(),
            task_ends: made.iter().map(|(_, _, _, end)| end).collect(),
        };
        for outcome in store.commit(&batch).map_err(|e| e.to_string())? {
            outcome.map_err(|e| e.to_string())?;
        }
        let hashed: Vec<(BlobHash, u64)> = made
            .iter()
            .enumerate()
            .map(|(k, (image, ..))| (image.blob, hashes[done + k]))
            .collect();
        store.put_phashes(&hashed).map_err(|e| e.to_string())?;
        done += n;
    }
    // Store share: the index built once, then 500 queries from random seeds.
    let owner = user.user_id.clone();
    let first = Instant::now();
    store
        .similar(&owner, &ids[0].as_str().into(), 10, 50)
        .map_err(|e| e.to_string())?;
    let built = first.elapsed();
    let mut times = Vec::new();
    for _ in 0..500 {
        let seed = rng.below(size);
        let started = Instant::now();
        let found = store
            .similar(&owner, &ids[seed].as_str().into(), 10, 50)
            .map_err(|e| e.to_string())?;
        times.push(started.elapsed());
        if !matches!(found, Similar::Found(_)) {
            return Err(format!("{found:?}"));
        }
    }
    times.sort();
    println!(
        "store: index built in {:.0} ms; similar p50 {:.3} ms, p99 {:.3} ms",
        ms(built),
        ms(percentile(&times, 0.5)),
        ms(percentile(&times, 0.99))
    );
    Ok(Built { ids, copies })
}

/// Checks one similar answer for seed `i`: the seed left out, nearest first, its copies found.
fn check(built: &Built, i: usize, answer: &Value) -> Result<(), String> {
    let images = answer["images"].as_array().ok_or("no images")?;
    let ids: Vec<&str> = images.iter().filter_map(|m| m["id"].as_str()).collect();
    if ids.contains(&built.ids[i].as_str()) {
        return Err("the seed is among its matches".into());
    }
    let distances: Vec<u64> = images
        .iter()
        .filter_map(|m| m["distance"].as_u64())
        .collect();
    if distances.windows(2).any(|w| w[0] > w[1]) {
        return Err(format!("not nearest first: {distances:?}"));
    }
    for &copy in &built.copies[i] {
        if images.len() < 50 && !ids.contains(&built.ids[copy].as_str()) {
            return Err(format!("image {i}'s copy {copy} is missing"));
        }
    }
    Ok(())
}

async fn measure(
    built: &Built,
    base: &str,
    server: &Spawned,
    requests: usize,
) -> Result<(), String> {
    let cookie = login(base, USER, PASSWORD).await?;
    let http = client();
    let mut rng = Rng(0x000b_e4c4);
    // Every image record read once through the list, so the data file's page cache is as full
    // as the index build will leave it: the RSS that the first similar query adds is the index's.
    let pages = built.ids.len().div_ceil(100);
    let warm = Instant::now();
    for page in 1..=pages {
        get(
            &http,
            &format!("{base}/api/user/images?page={page}&per_page=100"),
            &cookie,
        )
        .await?;
    }
    println!(
        "server: every image listed once ({pages} pages, {:.1} s) to fill the page cache; RSS {:.1} MiB",
        warm.elapsed().as_secs_f64(),
        server.rss_mib()
    );
    let rss_before = server.rss_mib();
    let url = |i: usize, d: u32| {
        format!(
            "{base}/api/user/images/{}/similar?max_distance={d}",
            built.ids[i]
        )
    };
    let (first, answer) = get(&http, &url(0, 10), &cookie).await?;
    check(built, 0, &answer)?;
    let rss_after = server.rss_mib();
    println!(
        "server: first similar (builds the index) {:.0} ms; RSS {:.1} → {:.1} MiB (+{:.1})",
        ms(first),
        rss_before,
        rss_after,
        rss_after - rss_before
    );
    for distance in [10, 32] {
        // Warm-up, then measured.
        for _ in 0..20 {
            get(&http, &url(rng.below(built.ids.len()), distance), &cookie).await?;
        }
        let mut times = Vec::with_capacity(requests);
        let mut matches = 0usize;
        for _ in 0..requests {
            // Half the seeds are images with copies, so answers are not all empty.
            let i = loop {
                let i = rng.below(built.ids.len());
                if rng.below(2) == 0 || !built.copies[i].is_empty() {
                    break i;
                }
            };
            let (took, answer) = get(&http, &url(i, distance), &cookie).await?;
            check(built, i, &answer)?;
            matches += answer["images"].as_array().map_or(0, Vec::len);
            times.push(took);
        }
        times.sort();
        println!(
            "server: similar max_distance={distance}: {requests} requests, p50 {:.2} ms, p99 {:.2} ms, \
             max {:.2} ms, {:.1} matches per answer",
            ms(percentile(&times, 0.5)),
            ms(percentile(&times, 0.99)),
            ms(*times.last().expect("requests")),
            matches as f64 / requests as f64
        );
    }
    let dupes = |page: u64| format!("{base}/api/user/duplicates?page={page}&per_page=20");
    let (first, answer) = get(&http, &dupes(1), &cookie).await?;
    let groups = answer["total_groups"].as_u64().unwrap_or(0);
    let planted = built.copies.iter().filter(|c| !c.is_empty()).count();
    println!(
        "server: first duplicates page (groups everything) {:.0} ms: {groups} groups of {} images \
         ({planted} planted groups; unrelated random hashes may join a few), complete: {}",
        ms(first),
        answer["total_images"],
        answer["complete"]
    );
    let pages = answer["pages"].as_u64().unwrap_or(1).max(1);
    let mut times = Vec::new();
    for _ in 0..200 {
        let (took, _) = get(&http, &dupes(1 + rng.below(pages as usize) as u64), &cookie).await?;
        times.push(took);
    }
    times.sort();
    println!(
        "server: duplicates pages after: p50 {:.2} ms, p99 {:.2} ms; RSS {:.1} MiB, peak {:.1} MiB",
        ms(percentile(&times, 0.5)),
        ms(percentile(&times, 0.99)),
        server.rss_mib(),
        server.peak_rss_mib()
    );
    Ok(())
}

fn main() {
    if let Err(e) = run() {
        eprintln!("similar bench failed: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args = parse()?;
    println!("binary: {}", spawned::binary());
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target");
    let dir = tempfile::Builder::new()
        .prefix("similar-bench-")
        .tempdir_in(&root)
        .map_err(|e| e.to_string())?;
    let file = dir.path().join("imgvault.redb");
    let started = Instant::now();
    let built = build(&file, args.size)?;
    println!(
        "built {} images in {:.1} s",
        args.size,
        started.elapsed().as_secs_f64()
    );
    let mut server = Spawned::start("similar", &file, &[], ADMIN_PASSWORD)?;
    let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    let measured = runtime.block_on(measure(&built, &server.base, &server, args.requests));
    server.stop()?;
    measured
}
