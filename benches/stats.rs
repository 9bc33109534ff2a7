//! Stats page benchmark: `GET /api/user/stats` on a collection of 100,000 images (the search
//! bench's collection, `benches/common/collection.rs`: saved over three years, from a handful of
//! shops) plus 1,000 images from 1,000 distinct sites, so the user's and the server's host tables
//! are full (`store::stats::MAX_HOSTS`): the worst case of the read.
//!
//! ```text
//! cargo bench --bench stats
//! cargo bench --bench stats -- --size 100000 --requests 2000 --concurrent 4000
//! ```
//!
//! Measured: `Store::stats` in the bench's own process (p50 and p99 of 1,000 calls: the store's
//! share, without HTTP); then the real release binary on the file, each query `--requests` times
//! one after another on one keep-alive connection (p50, p99) and `--concurrent` times by 16
//! clients at once (req/s, p99), every answer checked (status 200, the image total); the server's
//! peak RSS (VmHWM). The queries: the page as it asks (30 days, 12 months, 15 hosts), the largest
//! the API allows (366 days, 120 months, 50 hosts), each for the user and, as the admin, for the
//! server. Last, the file is made a schema 13 file (the statistics tables dropped) and opened
//! again: the time of the migration that builds the figures in one pass, which must give the same
//! figures.
//!
//! Client and server share the machine, so the figures include the bench's own CPU use. Data files
//! go under `target/` (or `--data-dir`), not `/tmp`.

#[path = "common/collection.rs"]
mod collection;
#[path = "common/latency.rs"]
mod latency;
#[path = "../tests/common/server.rs"]
mod spawned;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use imgvault::clock;
use imgvault::domain::{BlobHash, ImageId, TaskId};
use imgvault::store::records::{ImageRecord, TaskRecord, TaskStatus};
use imgvault::store::stats::{StatsQuery, day_of};
use imgvault::store::{Batch, NewImage, Store, TaskEnd};
use serde_json::Value;

use latency::{CONCURRENCY, client, concurrent, login, ms, percentile};
use spawned::Spawned;

const USER: &str = "statsuser";
const PASSWORD: &str = "stats-bench-pw";
const ADMIN_PASSWORD: &str = "stats-bench-admin";
const WARMUP: usize = 20;
/// Images from sites of their own, one each: enough to fill the host tables.
const EXTRA_HOSTS: usize = 1_000;

/// Latency of `GET /api/user/stats` on a collection whose host tables are full, in the store and
/// over HTTP, and the time of the migration that builds its figures.
#[derive(clap::Parser)]
#[command(bin_name = "cargo bench --bench stats --")]
struct Args {
    /// Images of the collection, before the 1,000 from distinct sites.
    #[arg(long, default_value_t = 100_000, value_parser = positive())]
    size: usize,
    /// Sequential requests per query.
    #[arg(long, default_value_t = 2_000, value_parser = positive())]
    requests: usize,
    /// Requests per query by 16 clients at once.
    #[arg(long, default_value_t = 4_000, value_parser = positive())]
    concurrent: usize,
    /// Where the temporary data directory goes.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/target"))]
    data_dir: PathBuf,
    /// Passed by `cargo bench`.
    #[arg(long, hide = true)]
    bench: bool,
}

fn positive() -> clap::builder::RangedU64ValueParser<usize> {
    clap::builder::RangedU64ValueParser::new().range(1..)
}

fn main() {
    let args = <Args as clap::Parser>::parse();
    // reqwest is built without a default TLS provider; it wants one even for plain HTTP.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    println!("binary: {}", spawned::binary());
    if let Err(e) = bench(&runtime, &args) {
        eprintln!("\nSTATS BENCH FAILED: {e}");
        std::process::exit(1);
    }
}

/// The 1,000 images from distinct sites, saved today.
fn add_hosts(store: &Store) -> Result<(), String> {
    let user = store
        .user_by_username(USER)
        .map_err(|e| e.to_string())?
        .ok_or("no bench user")?;
    let now = clock::now();
    let made: Vec<(ImageRecord, TaskRecord, Vec<u8>)> = (0..EXTRA_HOSTS)
        .map(|i| {
            let bytes = format!("stats bench site {i}").into_bytes();
            let id = ImageId::random();
            let task_id = TaskId::random();
            let image = ImageRecord {
                id: id.clone(),
                user_id: user.user_id.clone(),
                filename: format!("site_{i:04}.jpg"),
                category: imgvault::domain::Category::Char,
                kind: imgvault::media::ImageKind::Jpeg,
                blob: BlobHash::of(&bytes),
                original_url: None,
                page_url: Some(format!("https://shop{i}.example.com/item/{i}")),
                page_title: Some(format!("site {i}")),
                context_json: None,
                saved_at: now,
                file_size: 150_000,
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
                task_id,
                user_id: user.user_id.clone(),
                image_id: id,
                status: TaskStatus::Processing,
                error: None,
                created_at: now,
                updated_at: now,
            };
            (image, task, bytes)
        })
        .collect();
    // Their tasks end in the same commit, so the server has no background work on them.
    let ends: Vec<TaskEnd> = made
        .iter()
        .map(|(image, _, _)| TaskEnd {
            task_id: image.task_id.clone(),
            outcome: Ok(()),
            at: now,
        })
        .collect();
    let batch = Batch {
        uploads: made
            .iter()
            .map(|(image, task, bytes)| NewImage::plain(image, bytes, task))
            .collect(),
        thumbnails: Vec::new(),
        task_ends: ends.iter().collect(),
    };
    for outcome in store.commit(&batch).map_err(|e| e.to_string())? {
        outcome.map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// One checked `GET`: its latency and the answer's live image count.
async fn get(client: &reqwest::Client, url: &str, cookie: &str) -> Result<(Duration, u64), String> {
    let (took, answer) = latency::get(client, url, cookie).await?;
    Ok((took, images(&answer).map_err(|e| format!("{url}: {e}"))?))
}

fn images(answer: &Value) -> Result<u64, String> {
    answer["storage"]["images"]
        .as_u64()
        .ok_or_else(|| format!("no storage.images in {answer}"))
}

struct Measured {
    label: &'static str,
    bytes: usize,
    p50: Duration,
    p99: Duration,
    per_second: f64,
    concurrent_p99: Duration,
}

async fn measure(
    base: &str,
    label: &'static str,
    path: &str,
    cookie: &str,
    want: u64,
    args: &Args,
) -> Result<Measured, String> {
    let url = format!("{base}{path}");
    let one = client();
    let body = one
        .get(&url)
        .header(reqwest::header::COOKIE, cookie)
        .send()
        .await
        .map_err(|e| e.to_string())?
        .bytes()
        .await
        .map_err(|e| e.to_string())?;
    for _ in 0..WARMUP {
        get(&one, &url, cookie).await?;
    }
    let mut took = Vec::with_capacity(args.requests);
    for _ in 0..args.requests {
        let (t, images) = get(&one, &url, cookie).await?;
        if images != want {
            return Err(format!("{path}: {images} images, expected {want}"));
        }
        took.push(t);
    }
    took.sort();
    let (per_second, concurrent_p99) = concurrent(&url, cookie, args.concurrent, move |answer| {
        let got = images(answer)?;
        if got == want {
            Ok(())
        } else {
            Err(format!("{got} images, expected {want}"))
        }
    })
    .await?;
    Ok(Measured {
        label,
        bytes: body.len(),
        p50: percentile(&took, 0.5),
        p99: percentile(&took, 0.99),
        per_second,
        concurrent_p99,
    })
}

fn query(user: Option<&str>, days: u32, months: u32, hosts: usize) -> StatsQuery {
    StatsQuery {
        user: user.map(Into::into),
        today: day_of(clock::now()),
        days,
        months,
        top_hosts: hosts,
    }
}

fn bench(runtime: &tokio::runtime::Runtime, args: &Args) -> Result<(), String> {
    std::fs::create_dir_all(&args.data_dir).map_err(|e| e.to_string())?;
    let dir = tempfile::Builder::new()
        .prefix("stats-bench-")
        .tempdir_in(&args.data_dir)
        .map_err(|e| e.to_string())?;
    let file = dir.path().join("imgvault.redb");
    let started = Instant::now();
    collection::build(&file, args.size, USER, PASSWORD)?;
    let total = (args.size + EXTRA_HOSTS) as u64;
    let user_id;
    let before = {
        let store =
            Store::open(&file, imgvault::store::DEFAULT_CACHE_BYTES).map_err(|e| e.to_string())?;
        add_hosts(&store)?;
        user_id = store
            .user_by_username(USER)
            .map_err(|e| e.to_string())?
            .ok_or("no bench user")?
            .user_id
            .to_string();
        println!(
            "{total} images ({} + {EXTRA_HOSTS} from distinct sites): written in {:.1} s \
             ({:.0} MB data file)",
            args.size,
            started.elapsed().as_secs_f64(),
            std::fs::metadata(&file).map_or(0.0, |m| m.len() as f64 / 1e6)
        );
        // The store's share, in this process.
        for (label, asked) in [
            ("user, page", query(Some(&user_id), 30, 12, 15)),
            ("user, largest", query(Some(&user_id), 366, 120, 50)),
            ("server, page", query(None, 30, 12, 15)),
        ] {
            let mut took = Vec::with_capacity(1_000);
            for _ in 0..1_000 {
                let t = Instant::now();
                let stats = store.stats(&asked).map_err(|e| e.to_string())?;
                took.push(t.elapsed());
                if stats.totals.live.images != total {
                    return Err(format!("{label}: {} images", stats.totals.live.images));
                }
            }
            took.sort();
            println!(
                "Store::stats {label:<14} p50 {:>6.0} µs  p99 {:>6.0} µs",
                percentile(&took, 0.5).as_secs_f64() * 1e6,
                percentile(&took, 0.99).as_secs_f64() * 1e6
            );
        }
        store
            .stats(&query(Some(&user_id), 366, 120, 50))
            .map_err(|e| e.to_string())?
    };

    let mut server = Spawned::start("stats", &file, &[], ADMIN_PASSWORD)?;
    let measured = runtime.block_on(async {
        let user = login(&server.base, USER, PASSWORD).await?;
        let admin = login(&server.base, "admin", ADMIN_PASSWORD).await?;
        let mut out = Vec::new();
        for (label, path, cookie) in [
            ("user: the page's query", "/api/user/stats", &user),
            (
                "user: the largest query",
                "/api/user/stats?days=366&months=120&hosts=50",
                &user,
            ),
            (
                "server: the page's query",
                "/api/user/stats?scope=server",
                &admin,
            ),
            (
                "server: the largest query",
                "/api/user/stats?scope=server&days=366&months=120&hosts=50",
                &admin,
            ),
        ] {
            out.push(measure(&server.base, label, path, cookie, total, args).await?);
        }
        Ok::<_, String>(out)
    });
    let peak = server.peak_rss_mib();
    let rss = server.rss_mib();
    server.stop()?;
    let measured = measured?;
    println!(
        "\n{} requests one at a time; {} by {CONCURRENCY} clients at once",
        args.requests, args.concurrent
    );
    println!(
        "{:<28} {:>8} {:>8} {:>8} {:>10} {:>10}",
        "query", "bytes", "p50 ms", "p99 ms", "c=16 r/s", "c=16 p99"
    );
    for m in &measured {
        println!(
            "{:<28} {:>8} {:>8.2} {:>8.2} {:>10.0} {:>10.2}",
            m.label,
            m.bytes,
            ms(m.p50),
            ms(m.p99),
            m.per_second,
            ms(m.concurrent_p99)
        );
    }
    println!("server RSS {rss:.1} MiB at the end; peak (VmHWM) {peak:.1} MiB");

    // The upgrade: the same file as schema 13 wrote it, opened by this build.
    {
        use imgvault::store::tables::*;
        let db = redb::Database::create(&file).map_err(|e| e.to_string())?;
        let tx = db.begin_write().map_err(|e| e.to_string())?;
        for dropped in [
            tx.delete_table(STATS_DAYS),
            tx.delete_table(STATS_CATEGORIES),
            tx.delete_table(STATS_HOSTS),
            tx.delete_table(STATS_TOTALS),
        ] {
            dropped.map_err(|e| e.to_string())?;
        }
        tx.open_table(META)
            .map_err(|e| e.to_string())?
            .insert("schema_version", 13)
            .map_err(|e| e.to_string())?;
        tx.commit().map_err(|e| e.to_string())?;
    }
    let started = Instant::now();
    let store =
        Store::open(&file, imgvault::store::DEFAULT_CACHE_BYTES).map_err(|e| e.to_string())?;
    let upgrade = started.elapsed();
    let after = store
        .stats(&query(Some(&user_id), 366, 120, 50))
        .map_err(|e| e.to_string())?;
    if after.totals.live != before.totals.live
        || after.days != before.days
        || after.categories != before.categories
        || after.hosts.len() != before.hosts.len()
    {
        return Err("the migration built other figures than the writes kept".into());
    }
    println!(
        "\nupgrade from schema 13 at {total} images: the figures built in {:.1} s, equal to those \
         kept on write",
        upgrade.as_secs_f64()
    );
    Ok(())
}
