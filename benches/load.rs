//! Load benchmark for imgvault: starts the real release binary on `127.0.0.1:0` with a fresh data
//! file and measures it over HTTP, the way the browser extension and the web UI use it. Meant to
//! be run as is on the machine that will host imgvault (a Raspberry Pi, a NAS):
//!
//! ```text
//! cargo bench --bench load
//! cargo bench --bench load -- --ingest 1000 --concurrency 1,8,32 --list-images 1000,10000,100000
//! ```
//!
//! Phases, in order, 1 to 7 against one server process:
//! 1. **ingest**: one phase per `--concurrency` value (default `1,8,32`), each posting `--ingest`
//!    fresh byte-distinct JPEGs of about 250 KB (640×480 noise from a seeded PRNG), encoded before
//!    the phase as the extension's JSON body (`imageData` as a base64 data URL), anonymously to
//!    `POST /api/receive-image` by C concurrent clients. After each phase the bench waits (bounded)
//!    for the background thumbnail queue to drain (see "settling" below), and reports the
//!    server's CPU and disk writes both for the requests alone and with the thumbnails included.
//! 2. **disk**: bytes the server wrote during the ingest phases (`write_bytes` of `/proc/PID/io`)
//!    per image byte acknowledged; the data file's apparent size (its length) and allocated size
//!    (its blocks) against the payload: the image bytes alone, and images plus stored thumbnails.
//! 3. **thumbnails**: `GET` the thumbnail of every ingested image at c=16. Where its `ETag` (the
//!    blob's blake3) is the original's, the image is its own thumbnail and adds no stored bytes.
//! 4. **list**: a second user (`listbench`) uploads tiny distinct 8×8 PNGs at c=16 until it owns
//!    each `--list-images` size in turn (default `1000,10000,100000`, filled incrementally); at
//!    each size, once the thumbnail queue has drained, `GET /api/user/images?per_page=20` for the
//!    first, the middle and the last page, `--requests` sequential requests each on one
//!    keep-alive connection, then page 1 at c=16. Prints p99(largest) / p99(smallest) per page.
//! 5. **fetch**: `GET` the originals of the ingested images at c=16, `--fetch-requests` times.
//! 6. **big fetch**: uploads 4 distinct ~9.7 MB PNGs (1800×1800 random RGB, under the 10 MiB
//!    limit), waits for their thumbnails, then 32 clients fetch them 8 times each, reading each
//!    body as a stream and discarding it. The server's RSS should stay under 100 MiB; the RSS at
//!    the start of the fetch is shown too (the big uploads just before leave the heap grown).
//! 7. **status**: `GET /api/status`, 2,000 requests at c=16, a baseline for the HTTP stack.
//! 8. **restart**: stops the server (SIGTERM) and starts it again on the same file (now holding
//!    the largest list set): time from spawn to the `listening on` line and the RSS right then.
//!
//! **Settling**: after every batch of uploads the bench polls the last 16 upload tasks until none
//! is `processing`, then waits until the server uses at most 20 ms of CPU in 500 ms (5 minutes at
//! most). Both are needed: when the thumbnail queue overflows (large fills), work goes to the data
//! file's pending list and is picked up later, after the last tasks already read `completed`.
//!
//! Each measurement reports requests/s, p50/p99/mean latency and, from `/proc/PID/stat` (utime +
//! stime) read before and after it, the server's CPU ms per request; a thread reads the server's
//! VmRSS every 20 ms so each measurement also reports the largest RSS seen during it. Peak RSS is
//! VmHWM at the end; idle RSS is read right after `listening on`, before any request. The
//! `/proc` figures are Linux only ("n/a" elsewhere); CPU time comes in clock ticks (10 ms at
//! 100 Hz), so a figure over a short measurement is coarse.
//!
//! Every answer is checked (status 200, `success`, `fileSize`, `total`, page length, body length
//! and `ETag` of every file); a single bad answer aborts the run with a non-zero exit after the
//! server is stopped. A latency is one HTTP exchange, from sending the request to having read the
//! whole body; percentiles are nearest-rank over the sorted samples. Client and server share the
//! machine, so on a small box the figures include the bench's own CPU use. The data file lives in
//! a temporary directory under `target/` (or `--data-dir`), not `/tmp`, which is often a RAM disk
//! where nothing reaches a disk. The header names the commit (`-dirty` when the tree has
//! uncommitted changes) and the machine's load average at the start and the end. The report is
//! printed and also written as JSON to `target/load-bench.json` under the crate root. MB is 10^6
//! bytes, MiB 2^20.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::io::{BufRead, BufReader, Cursor};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use base64::Engine;
use bytes::Bytes;
use rand::{RngCore, SeedableRng};
use serde_json::{Value, json};

const USAGE: &str = "usage: cargo bench --bench load -- [--ingest N] [--concurrency C,...] \
                     [--list-images M,...] [--requests R] [--fetch-requests F] [--data-dir DIR]
  --ingest N           ~250 KB JPEGs to ingest per concurrency (default 400)
  --concurrency C,...  concurrent clients of each ingest phase (default 1,8,32)
  --list-images M,...  list sizes, filled in turn (default 1000,10000,100000)
  --requests R         requests per list measurement (default 1000)
  --fetch-requests F   requests of the original-fetch phase (default 3000)
  --data-dir DIR       where the temporary data directory goes (default target/ of the crate)";

const ADMIN_PASSWORD: &str = "bench-admin-pw";
/// The user whose collection is listed (anonymous uploads, the ingested ones, belong to admin).
const LIST_USER: &str = "listbench";
const LIST_PASSWORD: &str = "listbench-pw";
const PER_PAGE: usize = 20;
const FILL_CONCURRENCY: usize = 16;
const LIST_CONCURRENCY: usize = 16;
const LIST_WARMUP: usize = 5;
const FETCH_CONCURRENCY: usize = 16;
const STATUS_CONCURRENCY: usize = 16;
const STATUS_REQUESTS: usize = 2_000;
const JPEG_WIDTH: u32 = 640;
const JPEG_HEIGHT: u32 = 480;
const JPEG_TARGET_BYTES: usize = 250_000;
/// Big images: random RGB compresses to nothing, so a PNG is about 3 bytes a pixel (~9.7 MB).
const BIG_SIDE: u32 = 1800;
const BIG_IMAGES: usize = 4;
const BIG_CLIENTS: usize = 32;
const BIG_FETCHES_PER_CLIENT: usize = 8;
/// What the server's RSS should stay under while serving the big images.
const BIG_RSS_TARGET_MIB: f64 = 100.0;
/// Task ids polled to tell when the background thumbnail queue has drained.
const SETTLE_PROBES: usize = 16;
const SETTLE_TIMEOUT: Duration = Duration::from_secs(300);
/// The server counts as idle when it uses at most this much CPU in one window.
const IDLE_WINDOW: Duration = Duration::from_millis(500);
const IDLE_CPU_MS: f64 = 20.0;
const RSS_SAMPLE_EVERY: Duration = Duration::from_millis(20);
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Server log lines at WARN or ERROR echoed to the terminal (all of them are counted).
const ECHOED_SERVER_WARNINGS: usize = 20;

fn main() {
    let args = Args::parse().unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(2);
    });
    // reqwest is built without a default TLS provider; it wants one even for plain HTTP.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");

    let header = Header::collect();
    header.print();
    let data = DataDir::create(&args).unwrap_or_else(|e| {
        eprintln!("load bench: {e}");
        std::process::exit(1);
    });
    println!("data file: {}", data.file.display());

    let started = Instant::now();
    let report = bench(&runtime, &args, &data.file).unwrap_or_else(|e| {
        eprintln!("\nLOAD BENCH FAILED: {e}");
        std::process::exit(1);
    });
    let wall = started.elapsed();
    report.print(&args, &header, wall);
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/load-bench.json");
    let doc = report.json(&args, &header, wall);
    let written = std::fs::create_dir_all(path.parent().expect("parent"))
        .and_then(|()| std::fs::write(&path, serde_json::to_vec_pretty(&doc).expect("json")));
    match written {
        Ok(()) => println!("\nwrote {}", path.display()),
        Err(e) => eprintln!("\ncould not write {}: {e}", path.display()),
    }
    for (which, end) in [
        ("first", &report.first_end),
        ("restarted", &report.restart.end),
    ] {
        if !end.clean() {
            eprintln!(
                "the {which} server did not exit cleanly on SIGTERM: {}",
                end.exit_text()
            );
            std::process::exit(1);
        }
    }
}

/// Runs every phase on one server, stops it, then times a restart on the same file.
fn bench(runtime: &tokio::runtime::Runtime, args: &Args, data: &Path) -> Result<Report, String> {
    let server = Server::start(data)?;
    println!(
        "server: {} (listening {:.0} ms after spawn, idle RSS {} MiB)",
        server.base,
        ms(server.startup),
        fmt(mib(server.idle_rss_kib), 1)
    );
    let monitor = Monitor::start(server.pid());
    let outcome = runtime.block_on(run(&server.base, &monitor, args, data));
    let peak_rss_kib = procfs::status_kib(server.pid(), "VmHWM");
    drop(monitor);
    let (idle_rss_kib, startup) = (server.idle_rss_kib, server.startup);
    let first_end = server.stop();
    let phases = outcome.map_err(|e| format!("{e}\n{}", first_end.summary()))?;
    println!("restart: stopping the server and starting it again on the same file ...");
    let restart = restart(runtime, data, phases.total_images)?;
    Ok(Report {
        phases,
        first_start: Start {
            startup,
            rss_kib: idle_rss_kib,
        },
        peak_rss_kib,
        first_end,
        restart,
    })
}

/// All load phases against a running server, in order; the first failure ends the run.
async fn run(base: &str, monitor: &Monitor, args: &Args, data: &Path) -> Result<Phases, String> {
    let admin = login(base, "admin", ADMIN_PASSWORD).await?;
    let ingest = ingest_phases(base, monitor, args).await?;
    let stored = Arc::new(ingest.stored.clone());
    let (thumbnails, thumb_bytes) = thumbnail_phase(base, monitor, &admin, &stored).await?;
    let disk = Disk::measure(data, &ingest, thumb_bytes)?;
    let list = list_phases(base, monitor, args).await?;
    let fetch = fetch_phase(base, monitor, &admin, &stored, args.fetch_requests).await?;
    let big = big_fetch_phase(base, monitor, &admin).await?;
    let total_images = stored.len() + args.largest_list() + BIG_IMAGES;
    let status = status_phase(base, monitor, total_images).await?;
    Ok(Phases {
        ingest,
        disk,
        thumbnails,
        list,
        fetch,
        big,
        status,
        total_images,
    })
}

/// Starts the server again on the file the load phases left, checks it answers, stops it.
fn restart(
    runtime: &tokio::runtime::Runtime,
    data: &Path,
    total_images: usize,
) -> Result<Restart, String> {
    let server = Server::start(data)?;
    let start = Start {
        startup: server.startup,
        rss_kib: server.idle_rss_kib,
    };
    println!(
        "restart: listening {:.0} ms after spawn, RSS {} MiB",
        ms(start.startup),
        fmt(mib(start.rss_kib), 1)
    );
    let checked = runtime.block_on(check_status(&server.base, total_images));
    let end = server.stop();
    checked.map_err(|e| format!("after the restart: {e}\n{}", end.summary()))?;
    Ok(Restart { start, end })
}

// ---------------------------------------------------------------------------------------------
// Command line

#[derive(Debug, Clone)]
struct Args {
    ingest: usize,
    concurrency: Vec<usize>,
    /// Ascending, distinct.
    list_images: Vec<usize>,
    requests: usize,
    fetch_requests: usize,
    data_dir: Option<PathBuf>,
}

impl Args {
    /// Parses `--name V` and `--name=V`; ignores the `--bench` flag cargo passes.
    fn parse() -> Result<Self, String> {
        let mut args = Self {
            ingest: 400,
            concurrency: vec![1, 8, 32],
            list_images: vec![1_000, 10_000, 100_000],
            requests: 1_000,
            fetch_requests: 3_000,
            data_dir: None,
        };
        let mut words = std::env::args().skip(1);
        while let Some(word) = words.next() {
            let (name, inline) = match word.split_once('=') {
                Some((name, value)) => (name.to_string(), Some(value.to_string())),
                None => (word.clone(), None),
            };
            match name.as_str() {
                "--bench" => continue,
                "-h" | "--help" => {
                    println!("{USAGE}");
                    std::process::exit(0);
                }
                "--ingest" | "--concurrency" | "--list-images" | "--requests"
                | "--fetch-requests" | "--data-dir" => {}
                _ => return Err(format!("unknown argument {word:?}\n{USAGE}")),
            }
            let value = match inline {
                Some(value) => value,
                None => words
                    .next()
                    .ok_or_else(|| format!("{name} needs a value\n{USAGE}"))?,
            };
            match name.as_str() {
                "--ingest" => args.ingest = positive(&name, &value)?,
                "--concurrency" => args.concurrency = positive_list(&name, &value)?,
                "--list-images" => {
                    let mut sizes = positive_list(&name, &value)?;
                    sizes.sort_unstable();
                    sizes.dedup();
                    args.list_images = sizes;
                }
                "--requests" => args.requests = positive(&name, &value)?,
                "--fetch-requests" => args.fetch_requests = positive(&name, &value)?,
                _ => args.data_dir = Some(PathBuf::from(value)),
            }
        }
        Ok(args)
    }

    fn largest_list(&self) -> usize {
        self.list_images.last().copied().unwrap_or(0)
    }

    fn json(&self) -> Value {
        json!({
            "ingest": self.ingest,
            "concurrency": self.concurrency,
            "list_images": self.list_images,
            "requests": self.requests,
            "fetch_requests": self.fetch_requests,
        })
    }

    fn command_line(&self) -> String {
        let list = |v: &[usize]| v.iter().map(usize::to_string).collect::<Vec<_>>().join(",");
        format!(
            "--ingest {} --concurrency {} --list-images {} --requests {} --fetch-requests {}",
            self.ingest,
            list(&self.concurrency),
            list(&self.list_images),
            self.requests,
            self.fetch_requests
        )
    }
}

fn positive(name: &str, value: &str) -> Result<usize, String> {
    value
        .trim()
        .parse()
        .ok()
        .filter(|&n: &usize| n > 0)
        .ok_or_else(|| format!("{name}: expected a positive integer, got {value:?}"))
}

/// A comma-separated list of positive integers, at least one.
fn positive_list(name: &str, value: &str) -> Result<Vec<usize>, String> {
    value.split(',').map(|v| positive(name, v)).collect()
}

// ---------------------------------------------------------------------------------------------
// Latency statistics

/// Latencies of one measurement, sorted, and the wall-clock time the measurement took.
struct Stats {
    sorted: Vec<Duration>,
    wall: Duration,
}

impl Stats {
    fn new(mut samples: Vec<Duration>, wall: Duration) -> Self {
        samples.sort_unstable();
        Self {
            sorted: samples,
            wall,
        }
    }

    fn count(&self) -> usize {
        self.sorted.len()
    }

    /// Nearest-rank percentile, `p` in 0..=100.
    fn percentile(&self, p: f64) -> Duration {
        let n = self.sorted.len();
        if n == 0 {
            return Duration::ZERO;
        }
        let rank = ((p / 100.0) * n as f64).ceil() as usize;
        self.sorted[rank.clamp(1, n) - 1]
    }

    fn mean(&self) -> Duration {
        match self.sorted.len() {
            0 => Duration::ZERO,
            n => self.sorted.iter().sum::<Duration>() / n as u32,
        }
    }

    fn per_second(&self) -> f64 {
        self.count() as f64 / self.wall.as_secs_f64()
    }

    fn json(&self) -> Value {
        json!({
            "count": self.count(),
            "wall_s": self.wall.as_secs_f64(),
            "per_s": self.per_second(),
            "p50_ms": ms(self.percentile(50.0)),
            "p99_ms": ms(self.percentile(99.0)),
            "mean_ms": ms(self.mean()),
            "min_ms": ms(self.sorted.first().copied().unwrap_or_default()),
            "max_ms": ms(self.sorted.last().copied().unwrap_or_default()),
        })
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn mib(kib: Option<u64>) -> Option<f64> {
    kib.map(|k| k as f64 / 1024.0)
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

/// A figure with `decimals` places, or `n/a`.
fn fmt(value: Option<f64>, decimals: usize) -> String {
    value.map_or_else(|| "n/a".to_string(), |v| format!("{v:.decimals$}"))
}

/// `a / b`, `None` if either is missing or `b` is zero.
fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b != 0.0 => Some(a / b),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// The server's resources, from /proc

/// Readings of `/proc/PID/...`; each is `None` where there is no such file (not Linux) or it
/// cannot be read.
mod procfs {
    /// User plus system CPU time of the whole process (all its threads), in clock ticks.
    pub fn cpu_ticks(pid: u32) -> Option<u64> {
        let stat = read(pid, "stat")?;
        // The command name (field 2) may hold spaces; count from the `)` that closes it. The
        // state (field 3) comes first, so utime and stime (fields 14, 15) are the 12th and 13th.
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        let utime: u64 = fields.get(11)?.parse().ok()?;
        let stime: u64 = fields.get(12)?.parse().ok()?;
        Some(utime + stime)
    }

    pub fn ticks_per_second() -> f64 {
        #[cfg(unix)]
        {
            // SAFETY: sysconf only reads a configuration value.
            let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
            if ticks > 0 {
                return ticks as f64;
            }
        }
        100.0
    }

    /// A `kB` line of `/proc/PID/status` (`VmRSS`, `VmHWM`), in KiB.
    pub fn status_kib(pid: u32, key: &str) -> Option<u64> {
        let status = read(pid, "status")?;
        status.lines().find_map(|line| {
            let value = line.strip_prefix(key)?.strip_prefix(':')?;
            value.split_whitespace().next()?.parse().ok()
        })
    }

    /// Bytes the process caused to be sent to storage (`write_bytes` of `/proc/PID/io`).
    pub fn write_bytes(pid: u32) -> Option<u64> {
        let io = read(pid, "io")?;
        io.lines()
            .find_map(|line| line.strip_prefix("write_bytes:")?.trim().parse().ok())
    }

    /// The 1, 5 and 15 minute load averages of the machine.
    pub fn load_average() -> Option<String> {
        if !cfg!(target_os = "linux") {
            return None;
        }
        let text = std::fs::read_to_string("/proc/loadavg").ok()?;
        Some(
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" "),
        )
    }

    fn read(pid: u32, file: &str) -> Option<String> {
        if !cfg!(target_os = "linux") {
            return None;
        }
        std::fs::read_to_string(format!("/proc/{pid}/{file}")).ok()
    }
}

/// Watches the server process: a thread samples its RSS; `mark` and `usage_since` bracket a
/// measurement.
struct Monitor {
    pid: u32,
    /// Largest VmRSS (KiB) sampled since the last mark.
    peak_kib: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    sampler: Option<std::thread::JoinHandle<()>>,
}

/// The server's counters at the start of a measurement.
struct Mark {
    cpu_ticks: Option<u64>,
    written: Option<u64>,
    rss_kib: Option<u64>,
}

/// What the server used during a measurement.
#[derive(Debug, Clone, Copy, Default)]
struct Usage {
    cpu_ticks: Option<u64>,
    /// RSS at the start, KiB: the peak cannot be lower.
    start_rss_kib: Option<u64>,
    /// Largest RSS sampled, KiB.
    peak_rss_kib: Option<u64>,
    /// Bytes sent to storage.
    written: Option<u64>,
}

impl Monitor {
    fn start(pid: u32) -> Self {
        let peak_kib = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let sampler = {
            let (peak_kib, stop) = (peak_kib.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if let Some(kib) = procfs::status_kib(pid, "VmRSS") {
                        peak_kib.fetch_max(kib, Ordering::Relaxed);
                    }
                    std::thread::sleep(RSS_SAMPLE_EVERY);
                }
            })
        };
        Self {
            pid,
            peak_kib,
            stop,
            sampler: Some(sampler),
        }
    }

    /// Starts a measurement: reads the counters and restarts the RSS peak from the current RSS.
    fn mark(&self) -> Mark {
        let rss_kib = procfs::status_kib(self.pid, "VmRSS");
        self.peak_kib.store(rss_kib.unwrap_or(0), Ordering::Relaxed);
        Mark {
            cpu_ticks: procfs::cpu_ticks(self.pid),
            written: procfs::write_bytes(self.pid),
            rss_kib,
        }
    }

    fn usage_since(&self, mark: &Mark) -> Usage {
        if let Some(kib) = procfs::status_kib(self.pid, "VmRSS") {
            self.peak_kib.fetch_max(kib, Ordering::Relaxed);
        }
        let delta = |now: Option<u64>, then: Option<u64>| Some(now?.saturating_sub(then?));
        Usage {
            cpu_ticks: delta(procfs::cpu_ticks(self.pid), mark.cpu_ticks),
            start_rss_kib: mark.rss_kib,
            peak_rss_kib: Some(self.peak_kib.load(Ordering::Relaxed)).filter(|&k| k > 0),
            written: delta(procfs::write_bytes(self.pid), mark.written),
        }
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(sampler) = self.sampler.take() {
            let _ = sampler.join();
        }
    }
}

impl Usage {
    fn cpu_ms(&self) -> Option<f64> {
        self.cpu_ticks
            .map(|t| t as f64 * 1000.0 / procfs::ticks_per_second())
    }

    fn cpu_ms_per(&self, count: usize) -> Option<f64> {
        ratio(self.cpu_ms(), Some(count as f64))
    }

    fn json(&self, count: usize) -> Value {
        json!({
            "cpu_ms": self.cpu_ms(),
            "cpu_ms_per_request": self.cpu_ms_per(count),
            "start_rss_mib": mib(self.start_rss_kib),
            "peak_rss_mib": mib(self.peak_rss_kib),
            "written_bytes": self.written,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Test images

/// One upload ready to send: the JSON body, and the size and hash of the image inside it.
struct Upload {
    body: Bytes,
    image_bytes: usize,
    digest: blake3::Hash,
}

impl Upload {
    fn new(mime: &str, image: &[u8]) -> Self {
        let data = base64::engine::general_purpose::STANDARD.encode(image);
        let body = json!({
            "imageData": format!("data:{mime};base64,{data}"),
            "category": "clothes",
        });
        Self {
            body: Bytes::from(serde_json::to_vec(&body).expect("serialize upload")),
            image_bytes: image.len(),
            digest: blake3::hash(image),
        }
    }
}

/// A gradient under strong per-pixel noise, from a PRNG seeded with `seed`.
fn noisy_pixels(seed: u64) -> Vec<u8> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let (w, h) = (JPEG_WIDTH as usize, JPEG_HEIGHT as usize);
    let mut pixels = vec![0u8; w * h * 3];
    rng.fill_bytes(&mut pixels);
    for (i, p) in pixels.iter_mut().enumerate() {
        let (x, y, channel) = ((i / 3) % w, i / 3 / w, i % 3);
        let gradient = ((x + y * 2 + channel * 80) / 8) as u8;
        *p = gradient.wrapping_add(*p / 2);
    }
    pixels
}

fn encode_jpeg(pixels: &[u8], quality: u8) -> Vec<u8> {
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality)
        .encode(
            pixels,
            JPEG_WIDTH,
            JPEG_HEIGHT,
            image::ExtendedColorType::Rgb8,
        )
        .expect("encode JPEG");
    out
}

/// The JPEG quality whose output for the first image is closest to `JPEG_TARGET_BYTES`.
fn calibrate_quality() -> u8 {
    let pixels = noisy_pixels(0);
    let size = |q: u8| encode_jpeg(&pixels, q).len();
    // Largest quality whose output still fits the target (size grows with quality).
    let (mut lo, mut hi) = (1u8, 100u8);
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        if size(mid) <= JPEG_TARGET_BYTES {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    if lo < 100 && size(lo + 1).abs_diff(JPEG_TARGET_BYTES) < size(lo).abs_diff(JPEG_TARGET_BYTES) {
        lo + 1
    } else {
        lo
    }
}

/// `n` byte-distinct JPEGs from seeds `first_seed..`, as upload bodies, encoded on every core.
fn make_jpegs(first_seed: usize, n: usize, quality: u8) -> Vec<Upload> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = n.div_ceil(threads).max(1);
    let mut slots: Vec<Option<Upload>> = (0..n).map(|_| None).collect();
    std::thread::scope(|scope| {
        for (t, part) in slots.chunks_mut(chunk).enumerate() {
            scope.spawn(move || {
                for (k, slot) in part.iter_mut().enumerate() {
                    let seed = (first_seed + t * chunk + k) as u64;
                    let jpeg = encode_jpeg(&noisy_pixels(seed), quality);
                    *slot = Some(Upload::new("image/jpeg", &jpeg));
                }
            });
        }
    });
    let uploads: Vec<Upload> = slots
        .into_iter()
        .map(|u| u.expect("every JPEG generated"))
        .collect();
    assert_distinct(&uploads);
    uploads
}

/// An 8×8 PNG whose first two pixels spell `index`, so every index gives other bytes.
fn tiny_png(index: usize) -> Vec<u8> {
    let n = index as u64;
    let img = image::RgbImage::from_fn(8, 8, |x, y| match (x, y) {
        (0, 0) => image::Rgb([n as u8, (n >> 8) as u8, (n >> 16) as u8]),
        (1, 0) => image::Rgb([(n >> 24) as u8, (n >> 32) as u8, (n >> 40) as u8]),
        _ => image::Rgb([(x * 32) as u8, (y * 32) as u8, ((x + y) * 16) as u8]),
    });
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png)
        .expect("encode PNG");
    out.into_inner()
}

/// A `BIG_SIDE`² PNG of random RGB bytes from a PRNG seeded with `seed`: incompressible, so
/// about 3 bytes a pixel. Fails if it would not fit under the server's upload limit.
fn big_png(seed: u64) -> Result<Vec<u8>, String> {
    use image::ImageEncoder;
    use image::codecs::png::{CompressionType, FilterType, PngEncoder};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut pixels = vec![0u8; (BIG_SIDE * BIG_SIDE * 3) as usize];
    rng.fill_bytes(&mut pixels);
    let mut out = Vec::new();
    PngEncoder::new_with_quality(&mut out, CompressionType::Fast, FilterType::NoFilter)
        .write_image(&pixels, BIG_SIDE, BIG_SIDE, image::ExtendedColorType::Rgb8)
        .expect("encode PNG");
    let limit = imgvault::api::MAX_IMAGE_BYTES;
    if out.len() as u64 > limit {
        return Err(format!(
            "a {BIG_SIDE}x{BIG_SIDE} noise PNG is {} bytes, over the upload limit of {limit}",
            out.len()
        ));
    }
    Ok(out)
}

/// The server stores identical bytes once; the bench must not measure deduplication by accident.
fn assert_distinct(uploads: &[Upload]) {
    let distinct: HashSet<_> = uploads.iter().map(|u| u.digest).collect();
    assert_eq!(distinct.len(), uploads.len(), "generated images repeat");
}

/// An image the server acknowledged: where to fetch it and what must come back.
#[derive(Clone)]
struct Stored {
    filename: String,
    bytes: u64,
    /// The original's `ETag`: its blake3, quoted.
    etag: String,
}

/// Pairs uploads with the server's answers to them.
fn stored_images(uploads: &[Upload], posted: Vec<Posted>) -> Vec<Stored> {
    uploads
        .iter()
        .zip(posted)
        .map(|(upload, posted)| Stored {
            filename: posted.filename,
            bytes: upload.image_bytes as u64,
            etag: format!("\"{}\"", upload.digest.to_hex()),
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The server process

/// A temporary directory for the data file, kept on a disk (not `/tmp`, often a RAM disk).
struct DataDir {
    file: PathBuf,
    _dir: tempfile::TempDir,
}

impl DataDir {
    fn create(args: &Args) -> Result<Self, String> {
        let parent = args
            .data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
        std::fs::create_dir_all(&parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        let dir = tempfile::Builder::new()
            .prefix("load-bench-")
            .tempdir_in(&parent)
            .map_err(|e| format!("temporary directory in {}: {e}", parent.display()))?;
        Ok(Self {
            file: dir.path().join("imgvault.redb"),
            _dir: dir,
        })
    }
}

/// The imgvault binary serving a data file; killed if dropped without `stop`.
struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`
    base: String,
    log: Arc<ServerLog>,
    /// From spawning the process to reading its `listening on` line.
    startup: Duration,
    /// VmRSS right after `listening on`, before any request.
    idle_rss_kib: Option<u64>,
}

/// Counts of what the server wrote to stderr.
#[derive(Default)]
struct ServerLog {
    lines: AtomicUsize,
    warnings: AtomicUsize,
}

/// How a server run ended.
struct ServerEnd {
    /// (all stderr lines, lines at WARN or ERROR)
    log: (usize, usize),
    exit: Result<ExitStatus, String>,
}

impl ServerEnd {
    fn clean(&self) -> bool {
        self.exit.as_ref().is_ok_and(ExitStatus::success)
    }

    fn exit_text(&self) -> String {
        match &self.exit {
            Ok(status) => status.to_string(),
            Err(e) => e.clone(),
        }
    }

    fn summary(&self) -> String {
        format!(
            "server log: {} lines, {} at WARN/ERROR; exit on SIGTERM: {}",
            self.log.0,
            self.log.1,
            self.exit_text()
        )
    }

    fn json(&self) -> Value {
        json!({
            "stderr_lines": self.log.0,
            "stderr_warn_or_error_lines": self.log.1,
            "exit": self.exit_text(),
            "clean_exit": self.clean(),
        })
    }
}

impl Server {
    fn start(data: &Path) -> Result<Self, String> {
        let spawned = Instant::now();
        let mut child = Command::new(env!("CARGO_BIN_EXE_imgvault"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data"])
            .arg(data)
            .env("IMGVAULT_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env("RUST_LOG", "imgvault=info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", env!("CARGO_BIN_EXE_imgvault")))?;
        let address = watch_stdout(child.stdout.take().expect("piped stdout"));
        let log = watch_stderr(child.stderr.take().expect("piped stderr"));

        let mut server = Self {
            child,
            base: String::new(),
            log,
            startup: Duration::ZERO,
            idle_rss_kib: None,
        };
        server.base = match address.recv_timeout(STARTUP_TIMEOUT) {
            Ok(base) => base,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                return Err(format!("no `listening on` line within {STARTUP_TIMEOUT:?}"));
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(format!(
                    "the server exited before listening: {:?}",
                    server.child.wait()
                ));
            }
        };
        server.startup = spawned.elapsed();
        server.idle_rss_kib = procfs::status_kib(server.pid(), "VmRSS");
        if !server.base.starts_with("http://127.0.0.1:") {
            return Err(format!(
                "the server listens on {}, not 127.0.0.1",
                server.base
            ));
        }
        Ok(server)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then waits (bounded) for the process to exit.
    fn stop(mut self) -> ServerEnd {
        let exit = self.terminate();
        ServerEnd {
            log: (
                self.log.lines.load(Ordering::Relaxed),
                self.log.warnings.load(Ordering::Relaxed),
            ),
            exit,
        }
    }

    fn terminate(&mut self) -> Result<ExitStatus, String> {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status();
        if !sent.as_ref().is_ok_and(ExitStatus::success) {
            return Err(format!("kill -TERM {pid} failed: {sent:?}"));
        }
        let deadline = Instant::now() + SHUTDOWN_TIMEOUT;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return Ok(status),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Ok(None) => {
                    return Err(format!(
                        "still running {SHUTDOWN_TIMEOUT:?} after SIGTERM; killed"
                    ));
                }
                Err(e) => return Err(format!("waiting for the server: {e}")),
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Hands over the address of the `listening on` line, then keeps draining stdout so the server
/// never blocks on it.
fn watch_stdout(stdout: std::process::ChildStdout) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(pos) = line.find("listening on http://") {
                let addr = line[pos + "listening on ".len()..]
                    .split_whitespace()
                    .next();
                if let (Some(tx), Some(addr)) = (tx.take(), addr) {
                    let _ = tx.send(addr.to_string());
                }
            }
        }
    });
    rx
}

/// Counts every stderr line and echoes the first warnings and errors.
fn watch_stderr(stderr: std::process::ChildStderr) -> Arc<ServerLog> {
    let log = Arc::new(ServerLog::default());
    let counts = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            counts.lines.fetch_add(1, Ordering::Relaxed);
            if line.contains("WARN") || line.contains("ERROR") || line.contains("panicked") {
                let seen = counts.warnings.fetch_add(1, Ordering::Relaxed);
                if seen < ECHOED_SERVER_WARNINGS {
                    eprintln!("  [server] {line}");
                }
            }
        }
    });
    log
}

// ---------------------------------------------------------------------------------------------
// HTTP plumbing

fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(REQUEST_TIMEOUT)
        .build()
        .expect("http client")
}

/// A logged-in user: the session cookie to send, and the user's id (it is in file URLs).
#[derive(Clone)]
struct Session {
    cookie: String,
    user_id: String,
}

impl Session {
    /// `GET` of one of the user's files; `kind` is `images` (originals) or `thumbnails`.
    fn get_file(
        &self,
        client: &reqwest::Client,
        base: &str,
        kind: &str,
        filename: &str,
    ) -> reqwest::RequestBuilder {
        self.get(
            client,
            &format!("{base}/api/user/{}/{kind}/{filename}", self.user_id),
        )
    }

    fn get(&self, client: &reqwest::Client, url: &str) -> reqwest::RequestBuilder {
        client
            .get(url)
            .header(reqwest::header::COOKIE, &self.cookie)
    }
}

async fn login(base: &str, username: &str, password: &str) -> Result<Session, String> {
    let response = http_client()
        .post(format!("{base}/api/login"))
        .json(&json!({"username": username, "password": password}))
        .send()
        .await
        .map_err(|e| format!("login as {username}: {e}"))?;
    let cookie = response
        .headers()
        .get(reqwest::header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::to_string);
    let (_, answer) = json_answer(Instant::now(), response)
        .await
        .map_err(|e| format!("login as {username}: {e}"))?;
    let user_id = answer["user"]["user_id"].as_str().map(str::to_string);
    match (answer["success"] == true, cookie, user_id) {
        (true, Some(cookie), Some(user_id)) => Ok(Session { cookie, user_id }),
        _ => Err(format!(
            "login as {username}: no success, cookie or user id: {answer}"
        )),
    }
}

async fn register(base: &str, username: &str, password: &str) -> Result<Session, String> {
    let (_, answer) = exchange(
        http_client()
            .post(format!("{base}/api/register"))
            .json(&json!({
                "username": username,
                "email": format!("{username}@example.com"),
                "password": password,
            })),
    )
    .await
    .map_err(|e| format!("register {username}: {e}"))?;
    if answer["success"] != true {
        return Err(format!("register {username}: {answer}"));
    }
    login(base, username, password).await
}

/// Sends one request and reads the whole JSON answer; the duration covers exactly that.
async fn exchange(request: reqwest::RequestBuilder) -> Result<(Duration, Value), String> {
    let start = Instant::now();
    let response = request
        .send()
        .await
        .map_err(|e| format!("request failed: {e}"))?;
    json_answer(start, response).await
}

/// Reads a 200 answer's JSON body; the duration runs from `start` to the end of the body.
async fn json_answer(
    start: Instant,
    response: reqwest::Response,
) -> Result<(Duration, Value), String> {
    let status = response.status();
    let body = response
        .bytes()
        .await
        .map_err(|e| format!("reading the answer failed: {e}"))?;
    let elapsed = start.elapsed();
    let text = String::from_utf8_lossy(&body);
    if status != reqwest::StatusCode::OK {
        return Err(format!("HTTP {status}: {}", clip(&text)));
    }
    let value = serde_json::from_slice(&body)
        .map_err(|e| format!("answer is not JSON ({e}): {}", clip(&text)))?;
    Ok((elapsed, value))
}

/// A file answer: how long its body was (read piece by piece, not kept) and its `ETag`.
struct Fetched {
    len: u64,
    etag: String,
}

/// Sends one request for a file and reads the body as a stream; the duration covers exactly that.
async fn fetch_file(request: reqwest::RequestBuilder) -> Result<(Duration, Fetched), String> {
    let start = Instant::now();
    let mut response = request
        .send()
        .await
        .map_err(|e| format!("request failed: {e}"))?;
    let status = response.status();
    if status != reqwest::StatusCode::OK {
        let text = response.text().await.unwrap_or_default();
        return Err(format!("HTTP {status}: {}", clip(&text)));
    }
    let etag = response
        .headers()
        .get(reqwest::header::ETAG)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let mut len = 0u64;
    while let Some(piece) = response
        .chunk()
        .await
        .map_err(|e| format!("reading the body failed after {len} bytes: {e}"))?
    {
        len += piece.len() as u64;
    }
    Ok((start.elapsed(), Fetched { len, etag }))
}

/// Fetches an original and checks it is the image that was uploaded: same length, same `ETag`.
async fn fetch_original(
    request: reqwest::RequestBuilder,
    image: &Stored,
) -> Result<(Duration, ()), String> {
    let (latency, got) = fetch_file(request).await?;
    if got.len != image.bytes || got.etag != image.etag {
        return Err(format!(
            "{}: got {} bytes with ETag {}, expected {} bytes with ETag {}",
            image.filename, got.len, got.etag, image.bytes, image.etag
        ));
    }
    Ok((latency, ()))
}

fn clip(text: &str) -> String {
    text.chars().take(300).collect()
}

/// The outcome of `count` calls spread over concurrent workers.
struct Run<T> {
    stats: Stats,
    /// By call index; `None` where the call failed.
    values: Vec<Option<T>>,
    errors: Vec<String>,
}

impl<T> Run<T> {
    /// The value of every call, in call order; an error naming the phase and the first few
    /// causes if any call failed.
    fn require_all_ok(self, what: &str) -> Result<(Stats, Vec<T>), String> {
        if !self.errors.is_empty() {
            let shown: Vec<&str> = self.errors.iter().take(5).map(String::as_str).collect();
            return Err(format!(
                "{what}: {} of {} requests failed; first errors:\n  {}",
                self.errors.len(),
                self.values.len(),
                shown.join("\n  ")
            ));
        }
        let values = self.values.into_iter().flatten().collect();
        Ok((self.stats, values))
    }
}

/// Makes `count` calls of `call(worker, index)` with at most `concurrency` in flight; each worker
/// takes the next index until none is left. A call returns its own latency and a value.
async fn hammer<T, F, Fut>(concurrency: usize, count: usize, call: F) -> Run<T>
where
    T: Send + 'static,
    F: Fn(usize, usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(Duration, T), String>> + Send + 'static,
{
    let call = Arc::new(call);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency.clamp(1, count.max(1)))
        .map(|worker| {
            let (call, next) = (call.clone(), next.clone());
            tokio::spawn(async move {
                let mut done = Vec::new();
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    if index >= count {
                        break done;
                    }
                    done.push((index, call(worker, index).await));
                }
            })
        })
        .collect();
    let mut values: Vec<Option<T>> = (0..count).map(|_| None).collect();
    let mut samples = Vec::with_capacity(count);
    let mut errors = Vec::new();
    for worker in workers {
        for (index, outcome) in worker.await.expect("bench worker panicked") {
            match outcome {
                Ok((latency, value)) => {
                    samples.push(latency);
                    values[index] = Some(value);
                }
                Err(e) => errors.push(format!("#{index}: {e}")),
            }
        }
    }
    Run {
        stats: Stats::new(samples, started.elapsed()),
        values,
        errors,
    }
}

/// What the server answered to an upload.
struct Posted {
    task: String,
    filename: String,
}

/// Posts every upload to `/api/receive-image`, one client per worker, as `session`'s user or
/// anonymously, and checks each answer.
async fn post_uploads(
    base: &str,
    uploads: Arc<Vec<Upload>>,
    concurrency: usize,
    session: Option<Session>,
) -> Run<Posted> {
    let url = format!("{base}/api/receive-image");
    let clients: Vec<reqwest::Client> = (0..concurrency).map(|_| http_client()).collect();
    let count = uploads.len();
    hammer(concurrency, count, move |worker, index| {
        let mut request = clients[worker]
            .post(&url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(uploads[index].body.clone());
        if let Some(session) = &session {
            request = request.header(reqwest::header::COOKIE, &session.cookie);
        }
        let expected_size = uploads[index].image_bytes as u64;
        let logged_in = session.is_some();
        async move {
            let (latency, answer) = exchange(request).await?;
            check_upload(&answer, expected_size, logged_in)?;
            let field = |name: &str| {
                answer[name]
                    .as_str()
                    .map(str::to_string)
                    .ok_or_else(|| format!("no {name}: {answer}"))
            };
            let posted = Posted {
                task: field("taskId")?,
                filename: field("filename")?,
            };
            Ok((latency, posted))
        }
    })
    .await
}

fn check_upload(answer: &Value, expected_size: u64, logged_in: bool) -> Result<(), String> {
    if answer["success"] != true {
        return Err(format!("success is not true: {answer}"));
    }
    if answer["isLoggedIn"] != logged_in {
        return Err(format!("isLoggedIn is not {logged_in}: {answer}"));
    }
    if answer["fileSize"] != expected_size {
        return Err(format!("fileSize is not {expected_size}: {answer}"));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The phase runner

/// One measured phase: its latencies and what the server used meanwhile.
struct Measurement {
    name: String,
    concurrency: usize,
    stats: Stats,
    usage: Usage,
}

/// Runs `work` between two readings of the server's counters, checks that every call succeeded
/// and prints a one-line summary. Returns the measurement and the calls' values in call order.
async fn measure<T>(
    monitor: &Monitor,
    name: String,
    concurrency: usize,
    work: impl Future<Output = Run<T>>,
) -> Result<(Measurement, Vec<T>), String> {
    let mark = monitor.mark();
    let run = work.await;
    let usage = monitor.usage_since(&mark);
    let (stats, values) = run.require_all_ok(&name)?;
    let m = Measurement {
        name,
        concurrency,
        stats,
        usage,
    };
    println!(
        "  {}: {} at c={} in {:.1} s, {:.0}/s, p50 {:.2} ms, p99 {:.2} ms, server CPU {} ms/req",
        m.name,
        m.stats.count(),
        m.concurrency,
        m.stats.wall.as_secs_f64(),
        m.stats.per_second(),
        ms(m.stats.percentile(50.0)),
        ms(m.stats.percentile(99.0)),
        fmt(m.cpu_ms_per_request(), 3)
    );
    Ok((m, values))
}

impl Measurement {
    fn cpu_ms_per_request(&self) -> Option<f64> {
        self.usage.cpu_ms_per(self.stats.count())
    }

    fn p99_ms(&self) -> f64 {
        ms(self.stats.percentile(99.0))
    }

    fn json(&self) -> Value {
        json!({
            "name": self.name,
            "concurrency": self.concurrency,
            "latency": self.stats.json(),
            "server": self.usage.json(self.stats.count()),
        })
    }
}

/// How waiting for the background work of some uploads went.
struct Settled {
    after: Duration,
    /// The last uploads' tasks are no longer `processing`.
    drained: bool,
    /// Then the server's CPU use fell under `IDLE_CPU_MS` in an `IDLE_WINDOW`; `None` where CPU
    /// time cannot be read.
    idle: Option<bool>,
    failed_tasks: usize,
}

impl Settled {
    fn describe(&self) -> String {
        let state = match (self.drained, self.idle) {
            (false, _) => "thumbnails NOT drained",
            (true, Some(false)) => "thumbnails drained, server NOT idle",
            (true, Some(true)) => "thumbnails drained, server idle",
            (true, None) => "thumbnails drained",
        };
        let failed = match self.failed_tasks {
            0 => String::new(),
            n => format!(", {n} FAILED tasks"),
        };
        format!("{state} after {:.1} s{failed}", self.after.as_secs_f64())
    }

    fn json(&self) -> Value {
        json!({
            "settle_s": self.after.as_secs_f64(),
            "drained": self.drained,
            "idle": self.idle,
            "failed_tasks": self.failed_tasks,
        })
    }
}

/// Waits (bounded) for the background work of `posted`: polls the last uploads' tasks until none
/// is `processing` (the thumbnail queue is first-in first-out, so the last uploads finish last),
/// then waits for the server's CPU to go quiet, so that work left over from one phase (a queue
/// that overflowed into the data file, a final commit) is not measured in the next.
async fn settle(base: &str, monitor: &Monitor, posted: &[Posted]) -> Result<Settled, String> {
    let started = Instant::now();
    let deadline = started + SETTLE_TIMEOUT;
    let last: Vec<&str> = posted
        .iter()
        .rev()
        .take(SETTLE_PROBES)
        .map(|p| p.task.as_str())
        .collect();
    let (drained, failed_tasks) = wait_for_tasks(base, &last, deadline).await?;
    let idle = wait_idle(monitor, deadline).await;
    Ok(Settled {
        after: started.elapsed(),
        drained,
        idle,
        failed_tasks,
    })
}

/// Polls the tasks until none is `processing` or the deadline passes. Returns (none is
/// processing, tasks that failed).
async fn wait_for_tasks(
    base: &str,
    task_ids: &[&str],
    deadline: Instant,
) -> Result<(bool, usize), String> {
    let client = http_client();
    let mut pending = task_ids.to_vec();
    let mut failed = 0;
    while !pending.is_empty() && Instant::now() < deadline {
        let mut still = Vec::new();
        for id in pending {
            let (_, answer) = exchange(client.get(format!("{base}/api/task/{id}"))).await?;
            match answer["status"]["status"].as_str() {
                Some("processing") => still.push(id),
                Some("completed") => {}
                _ => {
                    eprintln!("  task {id} did not complete: {answer}");
                    failed += 1;
                }
            }
        }
        pending = still;
        if !pending.is_empty() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    Ok((pending.is_empty(), failed))
}

/// Waits until the server uses at most `IDLE_CPU_MS` of CPU in one `IDLE_WINDOW`, or the deadline
/// passes; `None` where CPU time cannot be read.
async fn wait_idle(monitor: &Monitor, deadline: Instant) -> Option<bool> {
    loop {
        let before = procfs::cpu_ticks(monitor.pid)?;
        tokio::time::sleep(IDLE_WINDOW).await;
        let used = procfs::cpu_ticks(monitor.pid)?.saturating_sub(before);
        if used as f64 * 1000.0 / procfs::ticks_per_second() <= IDLE_CPU_MS {
            return Some(true);
        }
        if Instant::now() >= deadline {
            return Some(false);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Ingest

struct Ingest {
    quality: u8,
    phases: Vec<IngestPhase>,
    /// Every ingested image, in upload order.
    stored: Vec<Stored>,
}

struct IngestPhase {
    requests: Measurement,
    image_bytes: u64,
    wire_bytes: u64,
    settled: Settled,
    /// From the first request to the thumbnail queue having drained.
    with_thumbnails: Usage,
}

impl Ingest {
    fn image_bytes(&self) -> u64 {
        self.phases.iter().map(|p| p.image_bytes).sum()
    }

    /// Bytes the server sent to storage over every ingest phase, thumbnails included.
    fn written(&self) -> Option<u64> {
        self.phases.iter().map(|p| p.with_thumbnails.written).sum()
    }
}

impl IngestPhase {
    fn images(&self) -> usize {
        self.requests.stats.count()
    }

    fn mb_per_s(&self, bytes: u64) -> f64 {
        mb(bytes) / self.requests.stats.wall.as_secs_f64()
    }

    fn written_per_image_byte(&self) -> Option<f64> {
        ratio(
            self.with_thumbnails.written.map(|w| w as f64),
            Some(self.image_bytes as f64),
        )
    }

    fn json(&self) -> Value {
        json!({
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
async fn ingest_phases(base: &str, monitor: &Monitor, args: &Args) -> Result<Ingest, String> {
    let quality = calibrate_quality();
    let mut ingest = Ingest {
        quality,
        phases: Vec::new(),
        stored: Vec::new(),
    };
    println!("ingest:");
    for (round, &concurrency) in args.concurrency.iter().enumerate() {
        let started = Instant::now();
        let uploads = make_jpegs(round * args.ingest, args.ingest, quality);
        println!(
            "  generated {} JPEGs {JPEG_WIDTH}x{JPEG_HEIGHT} at quality {quality} in {:.1} s",
            uploads.len(),
            started.elapsed().as_secs_f64()
        );
        let (phase, stored) = ingest_phase(base, monitor, uploads, concurrency).await?;
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
    concurrency: usize,
) -> Result<(IngestPhase, Vec<Stored>), String> {
    let uploads = Arc::new(uploads);
    let mark = monitor.mark();
    let name = format!("ingest c={concurrency}");
    let work = post_uploads(base, uploads.clone(), concurrency, None);
    let (requests, posted) = measure(monitor, name, concurrency, work).await?;
    let settled = settle(base, monitor, &posted).await?;
    let with_thumbnails = monitor.usage_since(&mark);
    println!("    {}", settled.describe());
    let phase = IngestPhase {
        requests,
        image_bytes: uploads.iter().map(|u| u.image_bytes as u64).sum(),
        wire_bytes: uploads.iter().map(|u| u.body.len() as u64).sum(),
        settled,
        with_thumbnails,
    };
    Ok((phase, stored_images(&uploads, posted)))
}

// ---------------------------------------------------------------------------------------------
// Thumbnails and the data file

/// Thumbnail bytes the data file holds for the ingested images.
#[derive(Default)]
struct ThumbBytes {
    /// Distinct stored thumbnails and their total size.
    stored: usize,
    bytes: u64,
    /// Images that are their own thumbnail (nothing stored for it).
    originals: usize,
}

/// `GET` every ingested image's thumbnail at c=16 and adds up the stored ones.
async fn thumbnail_phase(
    base: &str,
    monitor: &Monitor,
    admin: &Session,
    stored: &Arc<Vec<Stored>>,
) -> Result<(Measurement, ThumbBytes), String> {
    println!("thumbnails:");
    let (client, base_url) = (http_client(), base.to_string());
    let (admin, images) = (admin.clone(), stored.clone());
    let work = hammer(FETCH_CONCURRENCY, stored.len(), move |_, index| {
        let image = images[index].clone();
        let request = admin.get_file(&client, &base_url, "thumbnails", &image.filename);
        async move {
            let (latency, got) = fetch_file(request).await?;
            check_thumbnail(&got, &image)?;
            Ok((latency, got))
        }
    });
    let name = "thumbnail of each ingested".to_string();
    let (m, fetched) = measure(monitor, name, FETCH_CONCURRENCY, work).await?;
    Ok((m, thumb_bytes(stored, &fetched)))
}

/// A thumbnail is not empty, and one served as the original is exactly the original.
fn check_thumbnail(got: &Fetched, image: &Stored) -> Result<(), String> {
    if got.len == 0 || got.etag.is_empty() {
        return Err(format!(
            "thumbnail of {}: {} bytes, ETag {:?}",
            image.filename, got.len, got.etag
        ));
    }
    if got.etag == image.etag && got.len != image.bytes {
        return Err(format!(
            "thumbnail of {} has the original's ETag but {} bytes, not {}",
            image.filename, got.len, image.bytes
        ));
    }
    Ok(())
}

fn thumb_bytes(stored: &[Stored], fetched: &[Fetched]) -> ThumbBytes {
    let mut distinct: HashMap<&str, u64> = HashMap::new();
    let mut originals = 0;
    for (image, got) in stored.iter().zip(fetched) {
        if got.etag == image.etag {
            originals += 1;
        } else {
            distinct.insert(&got.etag, got.len);
        }
    }
    ThumbBytes {
        stored: distinct.len(),
        bytes: distinct.values().sum(),
        originals,
    }
}

/// The data file after ingest against what it holds.
struct Disk {
    /// Written during the ingest phases, thumbnails included.
    written: Option<u64>,
    image_bytes: u64,
    thumbs: ThumbBytes,
    /// The file's length.
    apparent: u64,
    /// Blocks allocated to it.
    allocated: Option<u64>,
}

impl Disk {
    fn measure(data: &Path, ingest: &Ingest, thumbs: ThumbBytes) -> Result<Self, String> {
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

    fn payload(&self) -> u64 {
        self.image_bytes + self.thumbs.bytes
    }

    /// `bytes` per byte of images, and per byte of images plus thumbnails.
    fn ratios(&self, bytes: Option<u64>) -> (Option<f64>, Option<f64>) {
        let bytes = bytes.map(|b| b as f64);
        (
            ratio(bytes, Some(self.image_bytes as f64)),
            ratio(bytes, Some(self.payload() as f64)),
        )
    }

    fn json(&self) -> Value {
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

// ---------------------------------------------------------------------------------------------
// List

/// The list measurements at one collection size.
struct ListSize {
    images: usize,
    fill: Option<Measurement>,
    settled: Settled,
    pages: Vec<ListRun>,
}

struct ListRun {
    label: &'static str,
    page: usize,
    pages: usize,
    m: Measurement,
}

/// Fills the list user's collection to each size in turn and measures its pages there.
async fn list_phases(base: &str, monitor: &Monitor, args: &Args) -> Result<Vec<ListSize>, String> {
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
fn list_growth(sizes: &[ListSize]) -> Vec<(String, f64)> {
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

// ---------------------------------------------------------------------------------------------
// Fetch

/// `GET` the ingested originals (~250 KB) at c=16, `requests` times round-robin.
async fn fetch_phase(
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

struct BigFetch {
    image_bytes: Vec<u64>,
    upload: Measurement,
    settled: Settled,
    fetch: Measurement,
}

impl BigFetch {
    fn peak_rss_mib(&self) -> Option<f64> {
        mib(self.fetch.usage.peak_rss_kib)
    }

    /// Fetch `i` reads image `i % BIG_IMAGES`.
    fn fetched_bytes(&self) -> u64 {
        (0..self.fetch.stats.count())
            .map(|i| self.image_bytes[i % self.image_bytes.len()])
            .sum()
    }

    fn within_target(&self) -> Option<bool> {
        self.peak_rss_mib().map(|m| m < BIG_RSS_TARGET_MIB)
    }

    fn json(&self) -> Value {
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
async fn big_fetch_phase(
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

// ---------------------------------------------------------------------------------------------
// Status

/// `GET /api/status` at c=16: the cost of the HTTP stack and one counter read.
async fn status_phase(base: &str, monitor: &Monitor, total: usize) -> Result<Measurement, String> {
    println!("status:");
    let (client, url) = (http_client(), format!("{base}/api/status"));
    let work = hammer(STATUS_CONCURRENCY, STATUS_REQUESTS, move |_, _| {
        let request = client.get(&url);
        async move {
            let (latency, answer) = exchange(request).await?;
            check_status_answer(&answer, total)?;
            Ok((latency, ()))
        }
    });
    let (m, _) = measure(monitor, "status".to_string(), STATUS_CONCURRENCY, work).await?;
    Ok(m)
}

/// One status request: the server answers and counts every image.
async fn check_status(base: &str, total: usize) -> Result<(), String> {
    let (_, answer) = exchange(http_client().get(format!("{base}/api/status"))).await?;
    check_status_answer(&answer, total)
}

fn check_status_answer(answer: &Value, total: usize) -> Result<(), String> {
    if answer["status"] != "running" || answer["total_images"] != total as u64 {
        return Err(format!(
            "unexpected status (total should be {total}): {answer}"
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Report

struct Header {
    /// `git describe --always --dirty`: a `-dirty` build has uncommitted changes.
    commit: String,
    nproc: usize,
    started_at: String,
    /// The machine's load average when the bench started; the bench shares the machine.
    load_at_start: Option<String>,
}

impl Header {
    fn collect() -> Self {
        let commit = Command::new("git")
            .args([
                "-C",
                env!("CARGO_MANIFEST_DIR"),
                "describe",
                "--always",
                "--dirty",
            ])
            .stderr(Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_else(|| "unknown".to_string());
        Self {
            commit,
            nproc: std::thread::available_parallelism().map_or(1, |n| n.get()),
            started_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            load_at_start: procfs::load_average(),
        }
    }

    fn print(&self) {
        println!(
            "imgvault load bench — commit {}, nproc {}, {}",
            self.commit, self.nproc, self.started_at
        );
    }
}

/// The load phases, all on the first server process.
struct Phases {
    ingest: Ingest,
    disk: Disk,
    thumbnails: Measurement,
    list: Vec<ListSize>,
    fetch: Measurement,
    big: BigFetch,
    status: Measurement,
    /// Images in the data file at the end.
    total_images: usize,
}

/// A server start: time to `listening on` and the RSS right then.
struct Start {
    startup: Duration,
    rss_kib: Option<u64>,
}

impl Start {
    fn json(&self) -> Value {
        json!({
            "to_listening_ms": ms(self.startup),
            "rss_mib": mib(self.rss_kib),
        })
    }
}

struct Restart {
    start: Start,
    end: ServerEnd,
}

struct Report {
    phases: Phases,
    first_start: Start,
    /// VmHWM of the first server at the end of the load phases.
    peak_rss_kib: Option<u64>,
    first_end: ServerEnd,
    restart: Restart,
}

fn print_table(title: &str, rows: &[&Measurement]) {
    println!();
    println!("--- {title}");
    println!(
        "{:<34} {:>6} {:>4} {:>9} {:>8} {:>8} {:>8} {:>10} {:>8}",
        "measurement",
        "count",
        "c",
        "per s",
        "p50 ms",
        "p99 ms",
        "mean ms",
        "CPU ms/req",
        "max RSS"
    );
    for m in rows {
        let s = &m.stats;
        println!(
            "{:<34} {:>6} {:>4} {:>9.1} {:>8.2} {:>8.2} {:>8.2} {:>10} {:>8}",
            m.name,
            s.count(),
            m.concurrency,
            s.per_second(),
            ms(s.percentile(50.0)),
            ms(s.percentile(99.0)),
            ms(s.mean()),
            fmt(m.cpu_ms_per_request(), 3),
            fmt(mib(m.usage.peak_rss_kib), 1) + " MiB",
        );
    }
}

impl Report {
    fn print(&self, args: &Args, header: &Header, wall: Duration) {
        println!();
        println!("=== imgvault load bench ===");
        println!("commit      {}", header.commit);
        println!("nproc       {}", header.nproc);
        println!("started     {}", header.started_at);
        println!("arguments   {}", args.command_line());
        println!("wall time   {:.1} s", wall.as_secs_f64());
        println!(
            "load avg    {} at start, {} at the end (1, 5, 15 min; the bench shares the machine)",
            header.load_at_start.as_deref().unwrap_or("n/a"),
            procfs::load_average().as_deref().unwrap_or("n/a")
        );
        self.print_ingest();
        self.print_disk();
        self.print_list();
        self.print_fetch();
        self.print_memory();
    }

    fn print_ingest(&self) {
        let ingest = &self.phases.ingest;
        let rows: Vec<&Measurement> = ingest.phases.iter().map(|p| &p.requests).collect();
        print_table(
            "ingest: ~250 KB JPEGs, anonymous POST /api/receive-image",
            &rows,
        );
        println!(
            "{:>4} {:>12} {:>10} {:>8} {:>24} {:>14}  thumbnails",
            "c", "images MB/s", "wire MB/s", "mean KB", "incl. thumbs: CPU ms/img", "written B/B"
        );
        for p in &ingest.phases {
            println!(
                "{:>4} {:>12.2} {:>10.2} {:>8.1} {:>24} {:>14}  {}",
                p.requests.concurrency,
                p.mb_per_s(p.image_bytes),
                p.mb_per_s(p.wire_bytes),
                p.image_bytes as f64 / p.images() as f64 / 1000.0,
                fmt(p.with_thumbnails.cpu_ms_per(p.images()), 2),
                fmt(p.written_per_image_byte(), 2),
                p.settled.describe()
            );
        }
        println!(
            "JPEG quality {}; written B/B: bytes sent to storage per image byte, thumbnails \
             included",
            ingest.quality
        );
    }

    fn print_disk(&self) {
        let d = &self.phases.disk;
        println!();
        println!("--- disk, after ingest and thumbnails");
        println!(
            "payload       {:.1} MB: images {:.1} MB ({} images), thumbnails {:.1} MB ({} \
             stored, {} images are their own thumbnail)",
            mb(d.payload()),
            mb(d.image_bytes),
            self.phases.ingest.stored.len(),
            mb(d.thumbs.bytes),
            d.thumbs.stored,
            d.thumbs.originals
        );
        println!(
            "{:<34} {:>10} {:>10} {:>18}",
            "", "MB", "÷ images", "÷ images+thumbs"
        );
        let row = |name: &str, bytes: Option<u64>| {
            let (images, payload) = d.ratios(bytes);
            println!(
                "{name:<36} {:>10} {:>10} {:>18}",
                fmt(bytes.map(mb), 1),
                fmt(images, 3),
                fmt(payload, 3)
            );
        };
        row("written during ingest (write_bytes)", d.written);
        row("data file, apparent size", Some(d.apparent));
        row("data file, allocated size", d.allocated);
    }

    fn print_list(&self) {
        let list = &self.phases.list;
        let rows: Vec<&Measurement> = list
            .iter()
            .flat_map(|s| s.pages.iter().map(|r| &r.m))
            .collect();
        print_table("list: GET /api/user/images, 20 per page", &rows);
        for size in list {
            match &size.fill {
                Some(f) => println!(
                    "fill to {:>7}: {} tiny PNGs at c={FILL_CONCURRENCY} in {:.1} s ({:.0}/s, CPU \
                     {} ms/img), {}",
                    size.images,
                    f.stats.count(),
                    f.stats.wall.as_secs_f64(),
                    f.stats.per_second(),
                    fmt(f.cpu_ms_per_request(), 3),
                    size.settled.describe()
                ),
                None => println!("fill to {:>7}: none needed", size.images),
            }
        }
        let growth = list_growth(list);
        if list.len() > 1 {
            let parts: Vec<String> = growth
                .iter()
                .map(|(kind, r)| format!("{kind} {r:.2}×"))
                .collect();
            println!(
                "p99 at {} / p99 at {}: {}",
                list[list.len() - 1].images,
                list[0].images,
                parts.join(", ")
            );
        }
    }

    fn print_fetch(&self) {
        let p = &self.phases;
        print_table(
            "fetch: files of the ingested images; big PNGs; status",
            &[
                &p.thumbnails,
                &p.fetch,
                &p.big.upload,
                &p.big.fetch,
                &p.status,
            ],
        );
        let big = &p.big;
        println!(
            "big fetch: {} images of {} bytes, {} clients × {} fetches; {}; server RSS {} MiB at \
             the start, max {} MiB (target < {BIG_RSS_TARGET_MIB} MiB: {})",
            big.image_bytes.len(),
            big.image_bytes
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join("/"),
            BIG_CLIENTS,
            BIG_FETCHES_PER_CLIENT,
            big.settled.describe(),
            fmt(mib(big.fetch.usage.start_rss_kib), 1),
            fmt(big.peak_rss_mib(), 1),
            match big.within_target() {
                Some(true) => "ok",
                Some(false) => "OVER",
                None => "n/a",
            }
        );
    }

    fn print_memory(&self) {
        println!();
        println!("--- memory and start-up");
        println!(
            "idle RSS after start-up      {} MiB (listening {:.0} ms after spawn, empty file)",
            fmt(mib(self.first_start.rss_kib), 1),
            ms(self.first_start.startup)
        );
        println!(
            "peak RSS (VmHWM), all phases {} MiB",
            fmt(mib(self.peak_rss_kib), 1)
        );
        println!(
            "restart on the full file     listening {:.0} ms after spawn, RSS {} MiB ({} images)",
            ms(self.restart.start.startup),
            fmt(mib(self.restart.start.rss_kib), 1),
            self.phases.total_images
        );
        println!("first server   {}", self.first_end.summary());
        println!("restarted      {}", self.restart.end.summary());
    }

    fn json(&self, args: &Args, header: &Header, wall: Duration) -> Value {
        let p = &self.phases;
        json!({
            "commit": header.commit,
            "nproc": header.nproc,
            "started_at": header.started_at,
            "wall_s": wall.as_secs_f64(),
            "load_average_at_start": header.load_at_start,
            "load_average_at_end": procfs::load_average(),
            "args": args.json(),
            "clock_ticks_per_s": procfs::ticks_per_second(),
            "ingest": {
                "jpeg_quality": p.ingest.quality,
                "phases": p.ingest.phases.iter().map(IngestPhase::json).collect::<Vec<_>>(),
            },
            "disk": p.disk.json(),
            "thumbnails": p.thumbnails.json(),
            "list": p.list.iter().map(|size| json!({
                "images": size.images,
                "fill": size.fill.as_ref().map(Measurement::json),
                "thumbnails": size.settled.json(),
                "pages": size.pages.iter().map(|r| json!({
                    "which": r.label,
                    "page": r.page,
                    "pages": r.pages,
                    "per_page": PER_PAGE,
                    "measurement": r.m.json(),
                })).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "list_p99_growth": list_growth(&p.list)
                .into_iter()
                .map(|(kind, r)| json!({"kind": kind, "p99_largest_over_smallest": r}))
                .collect::<Vec<_>>(),
            "fetch": p.fetch.json(),
            "big_fetch": p.big.json(),
            "status": p.status.json(),
            "memory": {
                "idle_rss_mib": mib(self.first_start.rss_kib),
                "peak_rss_mib": mib(self.peak_rss_kib),
            },
            "startup": {
                "empty_file": self.first_start.json(),
                "full_file": self.restart.start.json(),
                "images_in_full_file": p.total_images,
            },
            "server": {
                "first": self.first_end.json(),
                "restarted": self.restart.end.json(),
            },
        })
    }
}
