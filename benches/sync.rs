//! Cloud-sync benchmark: two real imgvault processes on loopback, a hub and a local server started
//! with `--cloud-url` pointing at it, both the release binary on fresh temporary data files.
//!
//! 1. Registers and logs in one user on the local server (which mirrors the account on the hub).
//! 2. Uploads N byte-distinct JPEGs of about K KB (noise from a seeded PRNG, as in
//!    `benches/load/`, at the quality whose first image comes closest to K KB) to
//!    `POST /api/receive-image` at c=C. Not part of the sync's time.
//! 3. Waits (bounded) until both processes are idle, so leftover thumbnail work does not share the
//!    sync's time, and resets their peak RSS (`/proc/PID/clear_refs`).
//! 4. Times one full sync, from `POST /api/cloud/sync` to its task reading `completed` (polled every
//!    10 ms): images/s, MB/s of image bytes and MB/s on the wire (`bytes_sent`, the base64 JSON
//!    batches), batches, CPU seconds of each process.
//! 5. Uploads one more image, waits for idle again and syncs again: what crossed (`files_sent`,
//!    `bytes_sent`).
//! 6. Checks that the hub's account holds N + 1 images.
//!
//! Prints a markdown table and writes `target/sync-bench.json` under the crate root. MB is 10^6
//! bytes, MiB 2^20. A wrong answer or a timeout panics; both servers are killed on the way out.
//!
//! ```text
//! cargo bench --bench sync
//! cargo bench --bench sync -- --images 200 --size-kb 1000 --concurrency 4
//! ```

use std::path::PathBuf;
use std::time::{Duration, Instant};

use base64::Engine;
use futures_util::StreamExt;
use rand::{RngCore, SeedableRng};
use serde_json::{Value, json};

#[path = "../tests/common/server.rs"]
mod spawned;
use spawned::Spawned;

const USER: &str = "syncbench";
const PASSWORD: &str = "password123";
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
const SYNC_TIMEOUT: Duration = Duration::from_secs(1800);
const SYNC_POLL: Duration = Duration::from_millis(10);
const IDLE_TIMEOUT: Duration = Duration::from_secs(300);
const IDLE_WINDOW: Duration = Duration::from_millis(500);
/// CPU seconds a process may use in one `IDLE_WINDOW` and still count as idle.
const IDLE_CPU: f64 = 0.02;

fn main() {
    let args = <Args as clap::Parser>::parse();
    // reqwest is built without a default TLS provider; it wants one even for plain HTTP.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let commit = spawned::commit();
    let nproc = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("imgvault sync bench — commit {commit}, nproc {nproc}");

    let jpegs = Jpegs::calibrate(args.size_kb);
    println!(
        "JPEGs {}x{} at quality {} for ~{} KB",
        jpegs.width, jpegs.height, jpegs.quality, args.size_kb
    );
    let hub = Server::start("hub", &[]);
    let cloud_url = format!("{}/api", hub.base);
    let local = Server::start("local", &["--cloud-url", &cloud_url]);
    println!("hub {}, local {}", hub.base, local.base);

    let report = runtime.block_on(run(&args, jpegs, &local, &hub));
    let warnings = [&local, &hub].map(|s| s.spawned.log_counts().1);
    let exits = [local, hub].map(Server::stop);

    let doc = json!({
        "commit": commit,
        "nproc": nproc,
        "args": {"images": args.images, "size_kb": args.size_kb, "concurrency": args.concurrency},
        "jpeg": {"width": jpegs.width, "height": jpegs.height, "quality": jpegs.quality},
        "report": report.json(),
        "servers": {
            "local": {"warn_or_error_lines": warnings[0], "exit": exits[0].1},
            "hub": {"warn_or_error_lines": warnings[1], "exit": exits[1].1},
        },
    });
    report.print(&args, jpegs);
    println!(
        "| server log WARN/ERROR lines | local {}, hub {} |",
        warnings[0], warnings[1]
    );
    println!(
        "| exit on SIGTERM | local {}, hub {} |",
        exits[0].1, exits[1].1
    );
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/sync-bench.json");
    std::fs::create_dir_all(path.parent().expect("parent"))
        .and_then(|()| std::fs::write(&path, serde_json::to_vec_pretty(&doc).expect("json")))
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    println!("\nwrote {}", path.display());
    assert!(
        exits.iter().all(|(clean, _)| *clean),
        "a server did not exit cleanly on SIGTERM"
    );
}

async fn run(args: &Args, jpegs: Jpegs, local: &Server, hub: &Server) -> Report {
    let client = http_client();
    let registered =
        call(client.post(format!("{}/api/register", local.base)).json(
            &json!({"username": USER, "email": "syncbench@example.com", "password": PASSWORD}),
        ))
        .await;
    assert_eq!(registered["success"], true, "register: {registered}");
    login(&client, &local.base).await;
    let profile = call(client.get(format!("{}/api/user/profile", local.base))).await;
    assert_eq!(
        profile["user"]["cloud_sync_enabled"], true,
        "the login did not reach the hub: {profile}"
    );

    println!(
        "uploading {} images at c={} ...",
        args.images, args.concurrency
    );
    let started = Instant::now();
    let sizes: Vec<u64> = futures_util::stream::iter(0..args.images as u64)
        .map(|seed| upload(&client, &local.base, jpegs, seed))
        .buffer_unordered(args.concurrency)
        .collect()
        .await;
    let upload_s = started.elapsed().as_secs_f64();
    let image_bytes: u64 = sizes.iter().sum();
    println!(
        "uploaded {} images, {:.1} MB, in {upload_s:.1} s",
        sizes.len(),
        image_bytes as f64 / 1e6
    );

    let idle_s = wait_idle(&[local, hub]).await;
    let peak_uploads = [local, hub].map(Server::peak_rss_mib);
    let reset = [local, hub].map(Server::reset_peak_rss);
    let first = sync(&client, [local, hub], args.images as u64).await;
    println!(
        "first sync: {:.2} s, {} batches",
        first.seconds, first.progress.batches
    );

    let one_image = upload(&client, &local.base, jpegs, args.images as u64).await;
    let idle2_s = wait_idle(&[local, hub]).await;
    let second = sync(&client, [local, hub], 1).await;
    assert_eq!(second.progress.files_sent, 1, "second sync: {second:?}");
    let peak_syncs = [local, hub].map(|s| s.peak_rss_mib());

    // The hub's copy of the account holds everything (a client of its own: cookies are per host).
    let hub_client = http_client();
    login(&hub_client, &hub.base).await;
    let profile = call(hub_client.get(format!("{}/api/user/profile", hub.base))).await;
    assert_eq!(
        profile["user"]["image_count"],
        args.images as u64 + 1,
        "the hub's account: {profile}"
    );

    Report {
        images: sizes.len() as u64,
        image_bytes,
        upload_s,
        idle_s: [idle_s, idle2_s],
        first,
        second,
        one_image,
        peak_uploads,
        peak_syncs: [0, 1].map(|i| reset[i].then_some(peak_syncs[i])),
    }
}

// ---------------------------------------------------------------------------------------------
// Command line

/// Upload N distinct JPEGs to a local server, then sync them to a hub: throughput and memory of
/// both.
#[derive(clap::Parser)]
#[command(bin_name = "cargo bench --bench sync --")]
struct Args {
    /// Distinct JPEGs to upload and sync.
    #[arg(long, default_value_t = 1_000, value_parser = positive())]
    images: usize,
    /// Size of each JPEG in KB of 1000 bytes, about.
    #[arg(long, default_value_t = 250, value_parser = positive())]
    size_kb: usize,
    /// Concurrent uploads before the sync.
    #[arg(long, default_value_t = 8, value_parser = positive())]
    concurrency: usize,
    /// Passed by `cargo bench`.
    #[arg(long, hide = true)]
    bench: bool,
}

fn positive() -> clap::builder::RangedU64ValueParser<usize> {
    clap::builder::RangedU64ValueParser::new().range(1..)
}

// ---------------------------------------------------------------------------------------------
// Test images

/// How the JPEGs are made: a gradient under per-pixel noise, at one size and quality.
#[derive(Clone, Copy)]
struct Jpegs {
    width: u32,
    height: u32,
    quality: u8,
}

impl Jpegs {
    /// 640×480 for 250 KB, scaled by area for other sizes, at the quality that comes closest.
    fn calibrate(size_kb: usize) -> Self {
        let target = size_kb * 1000;
        let scale = (size_kb as f64 / 250.0).sqrt();
        let side = |base: f64| ((base * scale / 8.0).round() as u32).max(2) * 8;
        let mut jpegs = Self {
            width: side(640.0),
            height: side(480.0),
            quality: 1,
        };
        let pixels = jpegs.pixels(0);
        let size = |quality: u8| Self { quality, ..jpegs }.encode(&pixels).len();
        // Largest quality that still fits (size grows with quality), or the next if closer.
        let (mut lo, mut hi) = (1u8, 100u8);
        while lo < hi {
            let mid = lo + (hi - lo).div_ceil(2);
            if size(mid) <= target {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        if lo < 100 && size(lo + 1).abs_diff(target) < size(lo).abs_diff(target) {
            lo += 1;
        }
        jpegs.quality = lo;
        jpegs
    }

    fn pixels(&self, seed: u64) -> Vec<u8> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let w = self.width as usize;
        let mut pixels = vec![0u8; w * self.height as usize * 3];
        rng.fill_bytes(&mut pixels);
        for (i, p) in pixels.iter_mut().enumerate() {
            let (x, y, channel) = ((i / 3) % w, i / 3 / w, i % 3);
            *p = (((x + y * 2 + channel * 80) / 8) as u8).wrapping_add(*p / 2);
        }
        pixels
    }

    fn encode(&self, pixels: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, self.quality)
            .encode(
                pixels,
                self.width,
                self.height,
                image::ExtendedColorType::Rgb8,
            )
            .expect("encode JPEG");
        out
    }
}

/// Makes image `seed` (off the async threads) and uploads it; returns its size in bytes.
async fn upload(client: &reqwest::Client, base: &str, jpegs: Jpegs, seed: u64) -> u64 {
    let (len, body) = tokio::task::spawn_blocking(move || {
        let jpeg = jpegs.encode(&jpegs.pixels(seed));
        let data = base64::engine::general_purpose::STANDARD.encode(&jpeg);
        let body =
            json!({"imageData": format!("data:image/jpeg;base64,{data}"), "category": "clothes"});
        (jpeg.len() as u64, body.to_string())
    })
    .await
    .expect("JPEG generation");
    let answer = call(
        client
            .post(format!("{base}/api/receive-image"))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body),
    )
    .await;
    assert!(
        answer["success"] == true && answer["fileSize"] == len && answer["isLoggedIn"] == true,
        "upload of image {seed} ({len} bytes): {answer}"
    );
    len
}

// ---------------------------------------------------------------------------------------------
// Syncs

#[derive(Debug)]
struct Progress {
    synced: u64,
    files_sent: u64,
    bytes_sent: u64,
    batches: u64,
}

#[derive(Debug)]
struct Sync {
    seconds: f64,
    progress: Progress,
    /// CPU seconds used during the sync by the local server and the hub.
    cpu: [f64; 2],
}

/// One sync of `expected` images, timed from the request to the task reading `completed`.
async fn sync(client: &reqwest::Client, servers: [&Server; 2], expected: u64) -> Sync {
    let base = &servers[0].base;
    let cpu_before = servers.map(Server::cpu_seconds);
    let started = Instant::now();
    let answer = call(
        client
            .post(format!("{base}/api/cloud/sync"))
            .json(&json!({})),
    )
    .await;
    assert!(
        answer["success"] == true
            && answer["message"] == "同步任务已启动"
            && answer["sync_info"]["image_count"] == expected,
        "the sync of {expected} images did not start: {answer}"
    );
    let task_id = answer["taskId"].as_str().expect("taskId");
    let task = loop {
        let reply = call(client.get(format!("{base}/api/task/{task_id}"))).await;
        if reply["status"]["status"] != "processing" {
            break reply["status"].clone();
        }
        assert!(
            started.elapsed() < SYNC_TIMEOUT,
            "sync still running after {SYNC_TIMEOUT:?}: {reply}"
        );
        tokio::time::sleep(SYNC_POLL).await;
    };
    let seconds = started.elapsed().as_secs_f64();
    let cpu_after = servers.map(Server::cpu_seconds);
    assert_eq!(task["status"], "completed", "sync failed: {task}");
    let p = &task["progress"];
    let field = |name: &str| {
        p[name]
            .as_u64()
            .unwrap_or_else(|| panic!("no {name} in {task}"))
    };
    assert!(
        field("total_images") == expected
            && field("synced_images") == expected
            && field("files_sent") == expected
            && field("refused_count") == 0
            && field("total_files_missing") == 0,
        "sync of {expected} distinct images: {task}"
    );
    Sync {
        seconds,
        progress: Progress {
            synced: field("synced_images"),
            files_sent: field("files_sent"),
            bytes_sent: field("bytes_sent"),
            batches: field("batches"),
        },
        cpu: [0, 1].map(|i| cpu_after[i] - cpu_before[i]),
    }
}

/// Waits until every server spends less than `IDLE_CPU` in an `IDLE_WINDOW` (background
/// thumbnails done); returns the seconds waited. Gives up, saying so, after `IDLE_TIMEOUT`.
async fn wait_idle(servers: &[&Server]) -> f64 {
    let started = Instant::now();
    while started.elapsed() < IDLE_TIMEOUT {
        let before: Vec<f64> = servers.iter().map(|s| s.cpu_seconds()).collect();
        tokio::time::sleep(IDLE_WINDOW).await;
        let idle = servers
            .iter()
            .zip(before)
            .all(|(s, b)| s.cpu_seconds() - b < IDLE_CPU);
        if idle {
            return started.elapsed().as_secs_f64();
        }
    }
    eprintln!("warning: the servers were still busy after {IDLE_TIMEOUT:?}; syncing anyway");
    started.elapsed().as_secs_f64()
}

// ---------------------------------------------------------------------------------------------
// Report

struct Report {
    images: u64,
    image_bytes: u64,
    upload_s: f64,
    /// Waits for idle servers before the first and the second sync.
    idle_s: [f64; 2],
    first: Sync,
    second: Sync,
    /// Bytes of the image the second sync carries.
    one_image: u64,
    /// Peak RSS in MiB of [local, hub] before the syncs, and during them (if it could be reset).
    peak_uploads: [f64; 2],
    peak_syncs: [Option<f64>; 2],
}

impl Report {
    fn first_rates(&self) -> (f64, f64, f64) {
        let s = self.first.seconds;
        (
            self.images as f64 / s,
            self.image_bytes as f64 / 1e6 / s,
            self.first.progress.bytes_sent as f64 / 1e6 / s,
        )
    }

    fn print(&self, args: &Args, jpegs: Jpegs) {
        let (images_per_s, image_mb_s, wire_mb_s) = self.first_rates();
        let (f, s) = (&self.first.progress, &self.second.progress);
        let mib = |m: Option<f64>| m.map_or("n/a".into(), |m| format!("{m:.0} MiB"));
        println!(
            "\n`cargo bench --bench sync -- --images {} --size-kb {} --concurrency {}`\n",
            args.images, args.size_kb, args.concurrency
        );
        println!("| | figure |\n|---|---|");
        println!(
            "| images | {} distinct JPEGs {}x{} q{}, mean {:.1} KB, {:.1} MB in all |",
            self.images,
            jpegs.width,
            jpegs.height,
            jpegs.quality,
            self.image_bytes as f64 / self.images as f64 / 1e3,
            self.image_bytes as f64 / 1e6
        );
        println!(
            "| upload (not timed as sync) | {:.1} s at c={}; servers idle {:.1} s later |",
            self.upload_s, args.concurrency, self.idle_s[0]
        );
        println!(
            "| first sync | {:.2} s: {images_per_s:.0} images/s, {image_mb_s:.1} MB/s of images, \
             {wire_mb_s:.1} MB/s on the wire |",
            self.first.seconds
        );
        println!(
            "| first sync, what crossed | {} images synced, {} files, {:.1} MB sent in {} batches |",
            f.synced,
            f.files_sent,
            f.bytes_sent as f64 / 1e6,
            f.batches
        );
        println!(
            "| first sync, CPU | local {:.2} s, hub {:.2} s |",
            self.first.cpu[0], self.first.cpu[1]
        );
        println!(
            "| second sync after one new image | {:.0} ms: {} file, {} bytes sent in {} batch \
             (the image: {} bytes) |",
            self.second.seconds * 1e3,
            s.files_sent,
            thousands(s.bytes_sent),
            s.batches,
            thousands(self.one_image)
        );
        println!(
            "| peak RSS during the syncs | local {}, hub {} |",
            mib(self.peak_syncs[0]),
            mib(self.peak_syncs[1])
        );
        println!(
            "| peak RSS before the syncs | local {:.0} MiB, hub {:.0} MiB |",
            self.peak_uploads[0], self.peak_uploads[1]
        );
    }

    fn json(&self) -> Value {
        let (images_per_s, image_mb_per_s, wire_mb_per_s) = self.first_rates();
        let sync = |s: &Sync| {
            json!({
                "seconds": s.seconds,
                "synced_images": s.progress.synced,
                "files_sent": s.progress.files_sent,
                "bytes_sent": s.progress.bytes_sent,
                "batches": s.progress.batches,
                "cpu_s": {"local": s.cpu[0], "hub": s.cpu[1]},
            })
        };
        let mut first = sync(&self.first);
        first["images_per_s"] = json!(images_per_s);
        first["image_mb_per_s"] = json!(image_mb_per_s);
        first["wire_mb_per_s"] = json!(wire_mb_per_s);
        let mut second = sync(&self.second);
        second["image_bytes"] = json!(self.one_image);
        json!({
            "images": self.images,
            "image_bytes": self.image_bytes,
            "upload_s": self.upload_s,
            "idle_wait_s": self.idle_s,
            "first_sync": first,
            "second_sync": second,
            "peak_rss_mib": {
                "before_syncs": {"local": self.peak_uploads[0], "hub": self.peak_uploads[1]},
                "during_syncs": {"local": self.peak_syncs[0], "hub": self.peak_syncs[1]},
            },
        })
    }
}

/// 334367 → "334,367"
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Servers and HTTP

/// The imgvault binary on a fresh data file; killed if still running when dropped.
struct Server {
    spawned: Spawned,
    /// `http://127.0.0.1:PORT`
    base: String,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start(name: &'static str, extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let data = dir.path().join(format!("{name}.redb"));
        let spawned =
            Spawned::start(name, &data, extra, "bench-admin-pw").unwrap_or_else(|e| panic!("{e}"));
        Self {
            base: spawned.base.clone(),
            spawned,
            _dir: dir,
        }
    }

    fn cpu_seconds(&self) -> f64 {
        self.spawned.cpu_seconds()
    }

    fn peak_rss_mib(&self) -> f64 {
        self.spawned.peak_rss_mib()
    }

    fn reset_peak_rss(&self) -> bool {
        self.spawned.reset_peak_rss()
    }

    /// SIGTERM, then a bounded wait (killed after it). Returns (exited cleanly, how).
    fn stop(mut self) -> (bool, String) {
        match self.spawned.stop() {
            Ok(status) => (status.success(), status.to_string()),
            Err(e) => (false, e),
        }
    }
}

fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .no_proxy()
        .timeout(REQUEST_TIMEOUT)
        .build()
        .expect("http client")
}

async fn login(client: &reqwest::Client, base: &str) {
    let answer = call(
        client
            .post(format!("{base}/api/login"))
            .json(&json!({"username": USER, "password": PASSWORD})),
    )
    .await;
    assert_eq!(answer["success"], true, "login on {base}: {answer}");
}

/// Sends a request and returns its JSON answer; panics on anything but 200 with JSON.
async fn call(request: reqwest::RequestBuilder) -> Value {
    let (client, request) = request.build_split();
    let request = request.expect("request");
    let what = format!("{} {}", request.method(), request.url());
    let response = client
        .execute(request)
        .await
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let status = response.status();
    let body = response
        .bytes()
        .await
        .unwrap_or_else(|e| panic!("{what}: reading the answer: {e}"));
    let text = String::from_utf8_lossy(&body);
    assert_eq!(status, reqwest::StatusCode::OK, "{what}: {:.300}", text);
    serde_json::from_slice(&body).unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {text:.300}"))
}
