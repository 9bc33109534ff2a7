//! Search benchmark for imgvault: one user's collection of each size, written straight into a
//! fresh data file through the library's `Store` (far faster than uploading it), then the real
//! release binary started on it and measured over HTTP.
//!
//! ```text
//! cargo bench --bench search
//! cargo bench --bench search -- --sizes 1000,100000 --requests 1000 --concurrent 4000
//! cargo bench --bench search -- --only ingest --ingest 2000    # ingest with tags and page text
//! IMGVAULT_BIN=path/to/other/imgvault cargo bench --bench search -- --only ingest
//! ```
//!
//! The collection is made to look like a real one: page titles in Chinese (half), Japanese and
//! English built from a few hundred shopping and fan words with a site suffix; page URLs and
//! image URLs of the shops and CDNs such pages come from (about 100 bytes each); an `alt` text on
//! half the images; 0 to 5 tags each from a vocabulary of 300 with Zipf frequencies (the most used
//! tag is on about a third of the images, the 10th on about 4%); 70% clothes, 30% char; sizes
//! log-uniform from 20 KB to 5 MB; saved over three years. The image bytes are a few distinct
//! bytes each (nothing here reads them) and every task is completed, so the server does no
//! background work.
//!
//! Each query is first timed in the bench's own process through `Store::search` on the file
//! (median and p99 of 300 calls once the catalog is built: the store's share, without HTTP).
//! Then a server is started on each size's file and each query is asked of each: once cold (the
//! first search builds the user's catalog: its time is "first ms"), then `--requests` times one
//! after another on one keep-alive connection, the sizes taking turns every 50 requests so that
//! load from elsewhere on the machine falls on all of them alike (p50, p99, and the ratio of the
//! largest size's p99 to the smallest's), then `--concurrent` times by 16 clients at once
//! (req/s, p99). The queries: a word, a tag and a category together (the 10th most used tag, and
//! the most used as a worst case); words alone (a common English word, a rare word, a Chinese
//! word); a tag alone; a category alone and the plain list (both answered from the indexes and
//! counters, no catalog); everything by size; a month of saved dates; and tag autocomplete
//! (`GET /api/user/tags?prefix=`). Every answer is checked (status 200, the same total every
//! time). Each server's RSS is read before and after its first search (what the catalog holds)
//! and its peak (VmHWM) at the end; the store logs each catalog it builds with its size. Last,
//! every tenth image of the largest collection (at most 10,000) is trashed by one batch request
//! and restored by another, each timed, with the list's total checked after each.
//!
//! `--only ingest` measures uploads instead: a fresh server, `--ingest` small PNGs (64×64 noise,
//! about 12 KB) posted to `/api/receive-image` by 8 clients at once, each with a page title, URL,
//! `alt` text, image URL and three tags, as the extension sends them. Run it with `IMGVAULT_BIN`
//! set to an older build to compare.
//!
//! Client and server share the machine, so the figures include the bench's own CPU use. Data files
//! go under `target/` (or `--data-dir`), not `/tmp`.

#[path = "common/collection.rs"]
mod collection;
#[path = "common/latency.rs"]
mod latency;
#[path = "../tests/common/server.rs"]
mod spawned;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use imgvault::domain::{Category, Tags};
use imgvault::store::{CategoryFilter, SearchQuery, Sort, Store};
use serde_json::{Value, json};

use collection::{RARE, Rng, build, page, vocabulary};
use latency::{client, concurrent, login, ms, percentile};
use spawned::Spawned;

const USER: &str = "searcher";
const PASSWORD: &str = "search-bench-pw";
const ADMIN_PASSWORD: &str = "search-bench-admin";
const WARMUP: usize = 20;

/// Search latency on collections of several sizes, in the store and over HTTP; or, with `--only
/// ingest`, uploads with tags and page text.
#[derive(clap::Parser)]
#[command(bin_name = "cargo bench --bench search --")]
struct Args {
    /// Collection sizes, each in its own data file.
    #[arg(long, value_delimiter = ',', default_value = "1000,100000", value_parser = positive())]
    sizes: Vec<usize>,
    /// Sequential requests per query and size.
    #[arg(long, default_value_t = 1_000, value_parser = positive())]
    requests: usize,
    /// Requests per query and size by 16 clients at once.
    #[arg(long, default_value_t = 4_000, value_parser = positive())]
    concurrent: usize,
    /// Measure uploads with tags and page text instead of searches.
    #[arg(long, value_name = "ingest", value_parser = ["ingest"])]
    only: Option<String>,
    /// Images of the ingest measurement.
    #[arg(long, default_value_t = 2_000, value_parser = positive())]
    ingest: usize,
    /// Where the temporary data directories go.
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
    let outcome = if args.only.is_some() {
        ingest(&runtime, &args)
    } else {
        search_bench(&runtime, &args)
    };
    if let Err(e) = outcome {
        eprintln!("\nSEARCH BENCH FAILED: {e}");
        std::process::exit(1);
    }
}

// ---------------------------------------------------------------------------------------------
// Measuring

/// One checked `GET`: its latency and the answer's `total` (or the number of tags offered).
async fn get(client: &reqwest::Client, url: &str, cookie: &str) -> Result<(Duration, u64), String> {
    let (took, answer) = latency::get(client, url, cookie).await?;
    Ok((took, total(&answer).map_err(|e| format!("{url}: {e}"))?))
}

fn total(answer: &Value) -> Result<u64, String> {
    answer["total"]
        .as_u64()
        .or_else(|| answer["tags"].as_array().map(|t| t.len() as u64))
        .ok_or_else(|| format!("no total in {answer}"))
}

/// One query as the HTTP API takes it and as `Store::search` takes it.
struct Query {
    label: &'static str,
    /// After `/api/user/`.
    path: String,
    /// `None` for autocomplete, which is not a search.
    search: Option<SearchQuery>,
}

fn queries() -> Vec<Query> {
    let tags = vocabulary();
    let (top, tenth) = (&tags[0], &tags[9]);
    let day = |text: &str| {
        let date = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").expect("date");
        imgvault::clock::local_day_start(date)
    };
    let search = |words: &str, tags: &[&String], category, sort| SearchQuery {
        words: imgvault::text::words(words),
        tags: Tags::parse(tags).expect("tags"),
        category,
        sort,
        page: 1,
        per_page: 20,
        ..SearchQuery::default()
    };
    let clothes = CategoryFilter::Only(Category::Clothes);
    let any = CategoryFilter::Any;
    let (word, common) = ("连衣裙", "dress");
    let tag = |t: &str| encode(t);
    let mut month = search("", &[], any, Sort::Newest);
    month.from = Some(day("2023-03-01"));
    month.until = Some(day("2023-04-01"));
    let prefix: String = tenth.chars().take(1).collect();
    vec![
        Query {
            label: "plain list (no parameters)",
            path: "images".into(),
            search: Some(search("", &[], any, Sort::Newest)),
        },
        Query {
            label: "category only (char)",
            path: "images?category=char".into(),
            search: Some(search(
                "",
                &[],
                CategoryFilter::Only(Category::Char),
                Sort::Newest,
            )),
        },
        Query {
            label: "word + tag (10th) + category",
            path: format!(
                "images?q={}&tag={}&category=clothes",
                encode(word),
                tag(tenth)
            ),
            search: Some(search(word, &[tenth], clothes, Sort::Newest)),
        },
        Query {
            label: "word + tag (most used) + category",
            path: format!("images?q={common}&tag={}&category=clothes", tag(top)),
            search: Some(search(common, &[top], clothes, Sort::Newest)),
        },
        Query {
            label: "tag only (10th)",
            path: format!("images?tag={}", tag(tenth)),
            search: Some(search("", &[tenth], any, Sort::Newest)),
        },
        Query {
            label: "tag only (most used)",
            path: format!("images?tag={}", tag(top)),
            search: Some(search("", &[top], any, Sort::Newest)),
        },
        Query {
            label: "q only: common word (dress)",
            path: format!("images?q={common}"),
            search: Some(search(common, &[], any, Sort::Newest)),
        },
        Query {
            label: "q only: rare word (限定款)",
            path: format!("images?q={}", encode(RARE)),
            search: Some(search(RARE, &[], any, Sort::Newest)),
        },
        Query {
            label: "q only: Chinese word (连衣裙)",
            path: format!("images?q={}", encode(word)),
            search: Some(search(word, &[], any, Sort::Newest)),
        },
        Query {
            label: "sort=largest",
            path: "images?sort=largest".into(),
            search: Some(search("", &[], any, Sort::Largest)),
        },
        Query {
            label: "a month of saved dates",
            path: "images?from=2023-03-01&to=2023-03-31".into(),
            search: Some(month),
        },
        Query {
            label: "tag autocomplete (one-character prefix)",
            path: format!("tags?prefix={}", encode(&prefix)),
            search: None,
        },
    ]
}

/// `Store::search` in this process, the catalog built: median and p99 of `runs` calls, in µs.
fn store_times(
    file: &Path,
    queries: &[Query],
    runs: usize,
) -> Result<Vec<Option<(f64, f64)>>, String> {
    let store =
        Store::open(file, imgvault::store::DEFAULT_CACHE_BYTES).map_err(|e| e.to_string())?;
    let user = store
        .user_by_username(USER)
        .map_err(|e| e.to_string())?
        .ok_or("no bench user")?
        .user_id;
    let mut times = Vec::new();
    for query in queries {
        let Some(search) = &query.search else {
            times.push(None);
            continue;
        };
        store.search(&user, search).map_err(|e| e.to_string())?;
        let mut took: Vec<Duration> = (0..runs)
            .map(|_| {
                let started = Instant::now();
                store.search(&user, search).map(|_| started.elapsed())
            })
            .collect::<Result<_, _>>()
            .map_err(|e| e.to_string())?;
        took.sort();
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        times.push(Some((
            us(percentile(&took, 0.5)),
            us(percentile(&took, 0.99)),
        )));
    }
    Ok(times)
}

/// One size's server and what was measured on it.
struct Sized {
    size: usize,
    server: Spawned,
    cookie: String,
    store: Vec<Option<(f64, f64)>>,
    rss_before: f64,
    rss_after_first_search: f64,
    /// Every image's id, in the order saved.
    ids: Vec<String>,
}

/// What one query measured on one size.
#[derive(Default)]
struct Measured {
    total: u64,
    first: Duration,
    sequential: Vec<Duration>,
    per_second: f64,
    concurrent_p99: Duration,
}

fn search_bench(runtime: &tokio::runtime::Runtime, args: &Args) -> Result<(), String> {
    let queries = queries();
    let mut dirs = Vec::new();
    let mut sized = Vec::new();
    for &size in &args.sizes {
        let (dir, file) = data_file(args, &size.to_string())?;
        let started = Instant::now();
        let ids = build(&file, size, USER, PASSWORD)?;
        println!(
            "{size} images: collection written in {:.1} s ({:.0} MB data file)",
            started.elapsed().as_secs_f64(),
            std::fs::metadata(&file).map_or(0.0, |m| m.len() as f64 / 1e6)
        );
        let store = store_times(&file, &queries, 300)?;
        // The store's INFO lines go to the terminal: "search catalog built" gives its size.
        let mut launch = spawned::Launch::bench("search", &file, &[], ADMIN_PASSWORD);
        launch.log_filter = "warn,imgvault::store=info".to_string();
        launch.echo = spawned::Echo::Inherit;
        let server = Spawned::launch(launch)?;
        let cookie = runtime.block_on(login(&server.base, USER, PASSWORD))?;
        let rss_before = server.rss_mib();
        sized.push(Sized {
            size,
            server,
            cookie,
            store,
            rss_before,
            rss_after_first_search: 0.0,
            ids,
        });
        dirs.push(dir);
    }
    let measured = runtime.block_on(measure_all(&mut sized, &queries, args));
    let batched = match (&measured, sized.last()) {
        (Ok(_), Some(largest)) => Some(runtime.block_on(batch_round_trip(largest))),
        _ => None,
    };
    let peaks: Vec<f64> = sized.iter().map(|s| s.server.peak_rss_mib()).collect();
    for s in &mut sized {
        s.server.stop()?;
    }
    let measured = measured?;
    let tags = vocabulary();
    println!(
        "\nthe most used tag is {:?} (on about a third of the images), the 10th {:?}",
        tags[0], tags[9]
    );
    println!(
        "store µs: Store::search in the bench's process, catalog built (p50/p99 of 300);\n\
         first ms: the first request to the server (the first search builds the catalog);\n\
         p50/p99 ms: {} requests one at a time, sizes interleaved; c=16: {} requests by 16 clients",
        args.requests, args.concurrent
    );
    println!(
        "\n{:<40} {:>7} {:>8} {:>14} {:>9} {:>7} {:>7} {:>8} {:>9}",
        "query",
        "images",
        "matches",
        "store µs",
        "first ms",
        "p50 ms",
        "p99 ms",
        "c=16 r/s",
        "c=16 p99"
    );
    for (q, query) in queries.iter().enumerate() {
        for (s, one) in sized.iter().enumerate() {
            let m = &measured[q][s];
            let store =
                one.store[q].map_or("-".to_string(), |(p50, p99)| format!("{p50:.0}/{p99:.0}"));
            println!(
                "{:<40} {:>7} {:>8} {:>14} {:>9.1} {:>7.2} {:>7.2} {:>8.0} {:>9.2}",
                if s == 0 { query.label } else { "" },
                one.size,
                m.total,
                store,
                ms(m.first),
                ms(percentile(&m.sequential, 0.5)),
                ms(percentile(&m.sequential, 0.99)),
                m.per_second,
                ms(m.concurrent_p99)
            );
        }
        if sized.len() > 1 {
            let p99 = |s: usize| ms(percentile(&measured[q][s].sequential, 0.99));
            println!(
                "{:<40} p99 at {} / p99 at {}: {:.2}",
                "",
                sized[sized.len() - 1].size,
                sized[0].size,
                p99(sized.len() - 1) / p99(0)
            );
        }
    }
    println!();
    for (one, peak) in sized.iter().zip(peaks) {
        println!(
            "{} images: server RSS {:.1} MiB before the first search, {:.1} MiB after it; \
             peak (VmHWM) {peak:.1} MiB",
            one.size, one.rss_before, one.rss_after_first_search
        );
    }
    if let Some(batched) = batched {
        let b = batched?;
        println!(
            "\nbatch at {} images: trash {} images in one request {:.0} ms, restore them {:.0} ms \
             (list total {} -> {} -> {}); server peak (VmHWM) afterwards {:.1} MiB",
            b.size,
            b.count,
            ms(b.trash),
            ms(b.restore),
            b.totals[0],
            b.totals[1],
            b.totals[2],
            b.peak_mib
        );
    }
    drop(dirs);
    Ok(())
}

/// What trashing and restoring a tenth of the largest collection took.
struct Batched {
    size: usize,
    count: usize,
    trash: Duration,
    restore: Duration,
    /// The plain list's total before, between and after.
    totals: [u64; 3],
    peak_mib: f64,
}

/// Trashes every tenth image of the collection (at most 10,000, the batch limit) in one request,
/// then restores them in another, checking the answers and the list's total at each step.
async fn batch_round_trip(one: &Sized) -> Result<Batched, String> {
    let ids: Vec<&String> = one.ids.iter().step_by(10).take(10_000).collect();
    let client = client();
    let list = format!("{}/api/user/images?per_page=1", one.server.base);
    let batch = format!("{}/api/user/images/batch", one.server.base);
    let mut totals = [0; 3];
    let mut took = [Duration::ZERO; 2];
    totals[0] = get(&client, &list, &one.cookie).await?.1;
    for (step, action) in ["trash", "restore"].into_iter().enumerate() {
        let started = Instant::now();
        let response = client
            .post(&batch)
            .header(reqwest::header::COOKIE, &one.cookie)
            .json(&json!({ "ids": ids, "action": action }))
            .send()
            .await
            .map_err(|e| format!("batch {action}: {e}"))?;
        let status = response.status();
        let answer: Value = response
            .json()
            .await
            .map_err(|e| format!("batch {action}: {e}"))?;
        took[step] = started.elapsed();
        if status != 200 || answer["changed"].as_u64() != Some(ids.len() as u64) {
            return Err(format!("batch {action}: {status} {answer}"));
        }
        totals[step + 1] = get(&client, &list, &one.cookie).await?.1;
    }
    let expected = [totals[0], totals[0] - ids.len() as u64, totals[0]];
    if totals != expected {
        return Err(format!("list totals {totals:?}, expected {expected:?}"));
    }
    Ok(Batched {
        size: one.size,
        count: ids.len(),
        trash: took[0],
        restore: took[1],
        totals,
        peak_mib: one.server.peak_rss_mib(),
    })
}

/// Every query on every size: first request, sequential requests with the sizes taking turns
/// (so a burst of load from elsewhere on the machine falls on all of them alike), then the
/// concurrent ones. Every answer of a query on a size must have the same total.
async fn measure_all(
    sized: &mut [Sized],
    queries: &[Query],
    args: &Args,
) -> Result<Vec<Vec<Measured>>, String> {
    const TURN: usize = 50;
    let mut all = Vec::new();
    for query in queries {
        let mut per_size: Vec<Measured> = Vec::new();
        let clients: Vec<reqwest::Client> = sized.iter().map(|_| client()).collect();
        for (s, one) in sized.iter_mut().enumerate() {
            let url = format!("{}/api/user/{}", one.server.base, query.path);
            let (first, total) = get(&clients[s], &url, &one.cookie).await?;
            // The first query with words or tags built the catalog.
            let searched = query.path.contains("q=") || query.path.contains("tag=");
            if searched && one.rss_after_first_search == 0.0 {
                one.rss_after_first_search = one.server.rss_mib();
            }
            for _ in 0..WARMUP {
                get(&clients[s], &url, &one.cookie).await?;
            }
            per_size.push(Measured {
                total,
                first,
                ..Measured::default()
            });
        }
        let mut left = args.requests;
        while left > 0 {
            let turn = TURN.min(left);
            for (s, one) in sized.iter().enumerate() {
                let url = format!("{}/api/user/{}", one.server.base, query.path);
                for _ in 0..turn {
                    let (took, total) = get(&clients[s], &url, &one.cookie).await?;
                    if total != per_size[s].total {
                        return Err(format!("{url}: total {total}, first {}", per_size[s].total));
                    }
                    per_size[s].sequential.push(took);
                }
            }
            left -= turn;
        }
        for (s, one) in sized.iter().enumerate() {
            let url = format!("{}/api/user/{}", one.server.base, query.path);
            let want = per_size[s].total;
            let (per_second, p99) = concurrent(&url, &one.cookie, args.concurrent, move |answer| {
                let got = total(answer)?;
                if got == want {
                    Ok(())
                } else {
                    Err(format!("total {got}, first {want}"))
                }
            })
            .await?;
            per_size[s].per_second = per_second;
            per_size[s].concurrent_p99 = p99;
            per_size[s].sequential.sort();
        }
        all.push(per_size);
    }
    Ok(all)
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn data_file(args: &Args, label: &str) -> Result<(tempfile::TempDir, PathBuf), String> {
    std::fs::create_dir_all(&args.data_dir).map_err(|e| e.to_string())?;
    let dir = tempfile::Builder::new()
        .prefix(&format!("search-bench-{label}-"))
        .tempdir_in(&args.data_dir)
        .map_err(|e| e.to_string())?;
    let file = dir.path().join("imgvault.redb");
    Ok((dir, file))
}

// ---------------------------------------------------------------------------------------------
// Ingest

/// A 64×64 noise PNG, distinct for each `seed`.
fn noise_png(seed: u64) -> Vec<u8> {
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let pixels: Vec<u8> = (0..64 * 64 * 3).map(|_| rng.next() as u8).collect();
    let mut out = Vec::new();
    image::ImageEncoder::write_image(
        image::codecs::png::PngEncoder::new(&mut out),
        &pixels,
        64,
        64,
        image::ExtendedColorType::Rgb8,
    )
    .expect("png");
    out
}

fn ingest(runtime: &tokio::runtime::Runtime, args: &Args) -> Result<(), String> {
    use base64::Engine;
    let (_dir, file) = data_file(args, "ingest")?;
    let mut server = Spawned::start("ingest", &file, &[], ADMIN_PASSWORD)?;
    let base = server.base.clone();
    let tags = vocabulary();
    let mut rng = Rng(42);
    let bodies: Vec<Vec<u8>> = (0..args.ingest)
        .map(|i| {
            let (title, url, image_url, alt) = page(&mut rng);
            let data = base64::engine::general_purpose::STANDARD.encode(noise_png(i as u64));
            serde_json::to_vec(&json!({
                "imageData": format!("data:image/png;base64,{data}"),
                "originalUrl": image_url,
                "category": "clothes",
                "tags": [&tags[rng.below(30)], &tags[30 + rng.below(100)], &tags[130 + rng.below(170)]],
                "pageInfo": {"url": url, "title": title, "imageContext": {"alt": alt}},
            }))
            .expect("json")
        })
        .collect();
    let outcome = runtime.block_on(async {
        let register = client()
            .post(format!("{base}/api/register"))
            .json(&json!({"username": USER, "email": format!("{USER}@example.com"), "password": PASSWORD}))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !register.status().is_success() {
            return Err(format!("register: {}", register.status()));
        }
        let cookie = login(&base, USER, PASSWORD).await?;
        let bodies = Arc::new(bodies);
        let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let started = Instant::now();
        let mut workers = Vec::new();
        for _ in 0..8 {
            let (bodies, next, base, cookie) = (bodies.clone(), next.clone(), base.clone(), cookie.clone());
            workers.push(tokio::spawn(async move {
                let client = client();
                let mut took = Vec::new();
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(body) = bodies.get(i) else { break };
                    let sent = Instant::now();
                    let response = client
                        .post(format!("{base}/api/receive-image"))
                        .header(reqwest::header::COOKIE, &cookie)
                        .header(reqwest::header::CONTENT_TYPE, "application/json")
                        .body(body.clone())
                        .send()
                        .await
                        .map_err(|e| e.to_string())?;
                    let status = response.status();
                    let text = response.text().await.map_err(|e| e.to_string())?;
                    if status != 200 {
                        return Err(format!("upload: {status} {text}"));
                    }
                    took.push(sent.elapsed());
                }
                Ok::<_, String>(took)
            }));
        }
        let mut took = Vec::new();
        for worker in workers {
            took.extend(worker.await.map_err(|e| e.to_string())??);
        }
        let elapsed = started.elapsed();
        took.sort();
        Ok((elapsed, took))
    });
    let cpu = server.cpu_seconds();
    let stopped = server.stop();
    let (elapsed, took) = outcome?;
    stopped?;
    println!(
        "ingest: {} PNGs of 64×64 with tags and page text at c=8: {:.0} images/s, p50 {:.1} ms, \
         p99 {:.1} ms, server CPU {:.2} ms per image",
        args.ingest,
        args.ingest as f64 / elapsed.as_secs_f64(),
        ms(percentile(&took, 0.5)),
        ms(percentile(&took, 0.99)),
        cpu * 1000.0 / args.ingest as f64
    );
    Ok(())
}
