//! Load benchmark for imgvault: starts the real release binary on `127.0.0.1:0` with a fresh data
//! file in a temporary directory and measures it over HTTP, the way the browser extension and the
//! web UI use it.
//!
//! Phases, in order:
//! 1. **ingest**: N byte-distinct JPEGs of about 250 KB (640×480 noise from a seeded PRNG),
//!    pre-encoded as the extension's JSON body (`imageData` as a base64 data URL), posted
//!    anonymously to `POST /api/receive-image` by C concurrent clients. Reports images/s, MB/s
//!    (image bytes and bytes on the wire) and p50/p99 latency.
//! 2. **fill**: tiny distinct 8×8 PNGs posted the same way at c=16 until admin (the owner of
//!    anonymous uploads) has M images; reports how long that took. Then the bench waits (bounded)
//!    for the server's background thumbnail queue to drain, so that the list figures are taken on
//!    an idle server.
//! 3. **list**: logged in as admin, `GET /api/user/images?page=P&per_page=20` for the first, the
//!    middle and the last page, R sequential requests each on one keep-alive connection, then the
//!    first page again at c=16. Reports p50, p99, mean latency and req/s.
//! 4. **status**: `GET /api/status`, 2,000 requests at c=16, a baseline for the HTTP stack.
//!
//! Every answer is checked (status 200, `success`, `fileSize`, `total`, page length); a single bad
//! answer aborts the run with a non-zero exit after the server is stopped. A latency is one HTTP
//! exchange, from sending the request to having read the whole body; percentiles are nearest-rank
//! over the sorted samples. Client and server share the machine, so on a small box the figures
//! include the bench's own CPU use. The report is printed and also written as JSON to
//! `target/load-bench.json` under the crate root.
//!
//! ```text
//! cargo bench --bench load
//! cargo bench --bench load -- --ingest 400 --concurrency 8 --list-images 10000 --requests 300
//! ```

use std::collections::HashSet;
use std::future::Future;
use std::io::{BufRead, BufReader, Cursor};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use base64::Engine;
use bytes::Bytes;
use rand::{RngCore, SeedableRng};
use serde_json::{Value, json};

const USAGE: &str = "usage: cargo bench --bench load -- [--ingest N] [--concurrency C] \
                     [--list-images M] [--requests R]
  --ingest N        ~250 KB JPEGs to ingest (default 400)
  --concurrency C   concurrent clients during ingest (default 8)
  --list-images M   images admin owns during the list phase (default 10000)
  --requests R      requests per list measurement (default 300)";

const ADMIN_PASSWORD: &str = "bench-admin-pw";
const PER_PAGE: usize = 20;
const FILL_CONCURRENCY: usize = 16;
const LIST_CONCURRENCY: usize = 16;
const LIST_WARMUP: usize = 5;
const STATUS_CONCURRENCY: usize = 16;
const STATUS_REQUESTS: usize = 2_000;
const JPEG_WIDTH: u32 = 640;
const JPEG_HEIGHT: u32 = 480;
const JPEG_TARGET_BYTES: usize = 250_000;
/// Task ids polled to tell when the background thumbnail queue has drained.
const SETTLE_PROBES: usize = 16;
const SETTLE_TIMEOUT: Duration = Duration::from_secs(300);
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

    let started = Instant::now();
    let (uploads, quality) = make_jpegs(args.ingest);
    let mean_bytes =
        uploads.iter().map(|u| u.image_bytes).sum::<usize>() as f64 / args.ingest as f64;
    println!(
        "generated {} JPEGs {JPEG_WIDTH}x{JPEG_HEIGHT} at quality {quality}: mean {:.1} KB, in {:.1} s",
        args.ingest,
        mean_bytes / 1000.0,
        started.elapsed().as_secs_f64()
    );

    let server = Server::start().unwrap_or_else(|e| {
        eprintln!("load bench: {e}");
        std::process::exit(1);
    });
    println!("server: {}", server.base);

    let outcome = runtime.block_on(run(&server.base, &args, uploads));
    let log = server.log.snapshot();
    let exit = server.stop();
    let report = match outcome {
        Ok(report) => report,
        Err(e) => {
            eprintln!("\nLOAD BENCH FAILED: {e}");
            eprintln!("server log: {} lines, {} at WARN/ERROR", log.0, log.1);
            std::process::exit(1);
        }
    };
    let exit_text = match &exit {
        Ok(status) => status.to_string(),
        Err(e) => e.clone(),
    };

    report.print(&header, quality, log, &exit_text);
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/load-bench.json");
    let doc = report.json(&header, quality, log, &exit_text);
    let written = std::fs::create_dir_all(path.parent().expect("parent"))
        .and_then(|()| std::fs::write(&path, serde_json::to_vec_pretty(&doc).expect("json")));
    match written {
        Ok(()) => println!("\nwrote {}", path.display()),
        Err(e) => eprintln!("\ncould not write {}: {e}", path.display()),
    }
    if !exit.as_ref().is_ok_and(ExitStatus::success) {
        eprintln!("the server did not exit cleanly on SIGTERM: {exit_text}");
        std::process::exit(1);
    }
}

/// All phases against a running server, in order; the first failure ends the run.
async fn run(base: &str, args: &Args, uploads: Vec<Upload>) -> Result<Report, String> {
    let ingest = ingest_phase(base, args, uploads).await?;
    let total = args.list_images.max(args.ingest);
    let fill = fill_phase(base, args.ingest, total).await?;
    let list = list_phase(base, total, args.requests).await?;
    let status = status_phase(base, total).await?;
    Ok(Report {
        args: *args,
        ingest,
        fill,
        list,
        status,
    })
}

// ---------------------------------------------------------------------------------------------
// Command line

#[derive(Debug, Clone, Copy)]
struct Args {
    ingest: usize,
    concurrency: usize,
    list_images: usize,
    requests: usize,
}

impl Args {
    /// Parses `--name N` and `--name=N`; ignores the `--bench` flag cargo passes.
    fn parse() -> Result<Self, String> {
        let mut args = Self {
            ingest: 400,
            concurrency: 8,
            list_images: 10_000,
            requests: 300,
        };
        let mut words = std::env::args().skip(1);
        while let Some(word) = words.next() {
            let (name, inline) = match word.split_once('=') {
                Some((name, value)) => (name.to_string(), Some(value.to_string())),
                None => (word.clone(), None),
            };
            let slot = match name.as_str() {
                "--bench" => continue,
                "-h" | "--help" => {
                    println!("{USAGE}");
                    std::process::exit(0);
                }
                "--ingest" => &mut args.ingest,
                "--concurrency" => &mut args.concurrency,
                "--list-images" => &mut args.list_images,
                "--requests" => &mut args.requests,
                _ => return Err(format!("unknown argument {word:?}\n{USAGE}")),
            };
            let value = match inline {
                Some(value) => value,
                None => words
                    .next()
                    .ok_or_else(|| format!("{name} needs a value\n{USAGE}"))?,
            };
            *slot = value
                .parse()
                .ok()
                .filter(|&n: &usize| n > 0)
                .ok_or_else(|| format!("{name}: expected a positive integer, got {value:?}"))?;
        }
        Ok(args)
    }
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

// ---------------------------------------------------------------------------------------------
// Test images

/// One upload ready to send: the JSON body, and the size of the image inside it.
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

/// `n` byte-distinct JPEGs as upload bodies, encoded on every core; returns them and the quality.
fn make_jpegs(n: usize) -> (Vec<Upload>, u8) {
    let quality = calibrate_quality();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = n.div_ceil(threads).max(1);
    let mut slots: Vec<Option<Upload>> = (0..n).map(|_| None).collect();
    std::thread::scope(|scope| {
        for (t, part) in slots.chunks_mut(chunk).enumerate() {
            scope.spawn(move || {
                for (k, slot) in part.iter_mut().enumerate() {
                    let jpeg = encode_jpeg(&noisy_pixels((t * chunk + k) as u64), quality);
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
    (uploads, quality)
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

/// The server stores identical bytes once; the bench must not measure deduplication by accident.
fn assert_distinct(uploads: &[Upload]) {
    let distinct: HashSet<_> = uploads.iter().map(|u| u.digest).collect();
    assert_eq!(distinct.len(), uploads.len(), "generated images repeat");
}

// ---------------------------------------------------------------------------------------------
// The server process

/// The imgvault binary running on a fresh data file; stopped (or killed) when dropped.
struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`
    base: String,
    log: Arc<ServerLog>,
    _dir: tempfile::TempDir,
}

/// Counts of what the server wrote to stderr.
#[derive(Default)]
struct ServerLog {
    lines: AtomicUsize,
    warnings: AtomicUsize,
}

impl ServerLog {
    /// (all lines, lines at WARN or ERROR)
    fn snapshot(&self) -> (usize, usize) {
        (
            self.lines.load(Ordering::Relaxed),
            self.warnings.load(Ordering::Relaxed),
        )
    }
}

impl Server {
    fn start() -> Result<Self, String> {
        let dir = tempfile::tempdir().map_err(|e| format!("temporary directory: {e}"))?;
        let mut child = Command::new(env!("CARGO_BIN_EXE_imgvault"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data"])
            .arg(dir.path().join("imgvault.redb"))
            .env("IMGVAULT_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env("RUST_LOG", "imgvault=info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", env!("CARGO_BIN_EXE_imgvault")))?;
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");

        // stdout: hand over the address, then keep draining so the server never blocks on it.
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
        // stderr: count everything, echo the first warnings and errors.
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

        let mut server = Self {
            child,
            base: String::new(),
            log,
            _dir: dir,
        };
        server.base = match rx.recv_timeout(STARTUP_TIMEOUT) {
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
        if !server.base.starts_with("http://127.0.0.1:") {
            return Err(format!(
                "the server listens on {}, not 127.0.0.1",
                server.base
            ));
        }
        Ok(server)
    }

    /// SIGTERM, then waits (bounded) for the process to exit.
    fn stop(mut self) -> Result<ExitStatus, String> {
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

// ---------------------------------------------------------------------------------------------
// HTTP plumbing

fn http_client(cookies: bool) -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(cookies)
        .no_proxy()
        .timeout(REQUEST_TIMEOUT)
        .build()
        .expect("http client")
}

/// Sends one request and reads the whole answer; the duration covers exactly that.
async fn exchange(request: reqwest::RequestBuilder) -> Result<(Duration, Value), String> {
    let start = Instant::now();
    let response = request
        .send()
        .await
        .map_err(|e| format!("request failed: {e}"))?;
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
    /// Turns any failed call into an error naming the phase and the first few causes.
    fn require_all_ok(self, what: &str) -> Result<Self, String> {
        if self.errors.is_empty() {
            return Ok(self);
        }
        let shown: Vec<&str> = self.errors.iter().take(5).map(String::as_str).collect();
        Err(format!(
            "{what}: {} of {} requests failed; first errors:\n  {}",
            self.errors.len(),
            self.values.len(),
            shown.join("\n  ")
        ))
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

/// Posts every upload anonymously to `/api/receive-image`, one client per worker, and checks each
/// answer. Returns the run with the task id of every upload.
async fn post_uploads(base: &str, uploads: Arc<Vec<Upload>>, concurrency: usize) -> Run<String> {
    let url = format!("{base}/api/receive-image");
    let clients: Vec<reqwest::Client> = (0..concurrency).map(|_| http_client(false)).collect();
    let count = uploads.len();
    hammer(concurrency, count, move |worker, index| {
        let request = clients[worker]
            .post(&url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(uploads[index].body.clone());
        let expected_size = uploads[index].image_bytes as u64;
        async move {
            let (latency, answer) = exchange(request).await?;
            if answer["success"] != true {
                return Err(format!("success is not true: {answer}"));
            }
            if answer["isLoggedIn"] != false {
                return Err(format!(
                    "anonymous upload has isLoggedIn != false: {answer}"
                ));
            }
            if answer["fileSize"] != expected_size {
                return Err(format!("fileSize is not {expected_size}: {answer}"));
            }
            let task = answer["taskId"]
                .as_str()
                .ok_or_else(|| format!("no taskId: {answer}"))?;
            Ok((latency, task.to_string()))
        }
    })
    .await
}

// ---------------------------------------------------------------------------------------------
// Phases

struct Ingest {
    stats: Stats,
    concurrency: usize,
    image_bytes: usize,
    wire_bytes: usize,
}

impl Ingest {
    fn mean_image_bytes(&self) -> f64 {
        self.image_bytes as f64 / self.stats.count() as f64
    }

    fn image_mb_per_s(&self) -> f64 {
        self.image_bytes as f64 / 1e6 / self.stats.wall.as_secs_f64()
    }

    fn wire_mb_per_s(&self) -> f64 {
        self.wire_bytes as f64 / 1e6 / self.stats.wall.as_secs_f64()
    }
}

async fn ingest_phase(base: &str, args: &Args, uploads: Vec<Upload>) -> Result<Ingest, String> {
    let image_bytes = uploads.iter().map(|u| u.image_bytes).sum();
    let wire_bytes = uploads.iter().map(|u| u.body.len()).sum();
    println!(
        "ingest: posting {} images at c={} ...",
        uploads.len(),
        args.concurrency
    );
    let run = post_uploads(base, Arc::new(uploads), args.concurrency)
        .await
        .require_all_ok("ingest")?;
    Ok(Ingest {
        stats: run.stats,
        concurrency: args.concurrency,
        image_bytes,
        wire_bytes,
    })
}

struct Fill {
    /// `None` when the ingested images already reach the list size.
    stats: Option<Stats>,
    settle: Duration,
    settled: bool,
    failed_tasks: usize,
}

/// Tops admin's collection up from `have` to `want` images with tiny PNGs, then waits for the
/// background thumbnail queue to drain.
async fn fill_phase(base: &str, have: usize, want: usize) -> Result<Fill, String> {
    let count = want.saturating_sub(have);
    let mut last_tasks = Vec::new();
    let stats = if count == 0 {
        None
    } else {
        let uploads: Vec<Upload> = (0..count)
            .map(|i| Upload::new("image/png", &tiny_png(i)))
            .collect();
        assert_distinct(&uploads);
        println!("fill: posting {count} tiny PNGs at c={FILL_CONCURRENCY} ...");
        let run = post_uploads(base, Arc::new(uploads), FILL_CONCURRENCY)
            .await
            .require_all_ok("fill")?;
        println!(
            "fill: {want} images reached in {:.1} s",
            run.stats.wall.as_secs_f64()
        );
        last_tasks = run
            .values
            .iter()
            .rev()
            .take(SETTLE_PROBES)
            .flatten()
            .cloned()
            .collect();
        Some(run.stats)
    };
    let started = Instant::now();
    let (settled, failed_tasks) = settle(base, &last_tasks).await?;
    let settle = started.elapsed();
    println!(
        "fill: background thumbnails {} after {:.1} s",
        if settled { "drained" } else { "STILL BUSY" },
        settle.as_secs_f64()
    );
    Ok(Fill {
        stats,
        settle,
        settled,
        failed_tasks,
    })
}

/// Polls the given upload tasks until none is `processing` (or the time is up). The thumbnail
/// queue is first-in first-out, so the last uploads finish last. Returns (settled, failed tasks).
async fn settle(base: &str, task_ids: &[String]) -> Result<(bool, usize), String> {
    let client = http_client(false);
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    let mut pending: Vec<&String> = task_ids.iter().collect();
    let mut failed = 0;
    while Instant::now() < deadline {
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
        if pending.is_empty() {
            return Ok((true, failed));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok((false, failed))
}

struct ListRun {
    label: &'static str,
    page: usize,
    pages: usize,
    concurrency: usize,
    stats: Stats,
}

/// Logs in as admin and measures the first, middle and last page, then the first page at c=16.
async fn list_phase(base: &str, total: usize, requests: usize) -> Result<Vec<ListRun>, String> {
    let admin = http_client(true);
    let (_, answer) = exchange(
        admin
            .post(format!("{base}/api/login"))
            .json(&json!({"username": "admin", "password": ADMIN_PASSWORD})),
    )
    .await
    .map_err(|e| format!("admin login: {e}"))?;
    if answer["success"] != true {
        return Err(format!("admin login: {answer}"));
    }

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
        let call = {
            let (admin, url) = (admin.clone(), url.clone());
            move |_worker: usize, _index: usize| {
                let request = admin.get(&url);
                async move {
                    let (latency, answer) = exchange(request).await?;
                    check_page(&answer, page, total)?;
                    Ok((latency, ()))
                }
            }
        };
        hammer(1, LIST_WARMUP, call.clone())
            .await
            .require_all_ok(&format!("list page {page} warm-up"))?;
        let run = hammer(concurrency, requests, call)
            .await
            .require_all_ok(&format!("list page {page}"))?;
        println!(
            "list: page {page}/{pages} at c={concurrency}: p50 {:.2} ms",
            ms(run.stats.percentile(50.0))
        );
        runs.push(ListRun {
            label,
            page,
            pages,
            concurrency,
            stats: run.stats,
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

/// `GET /api/status` at c=16: the cost of the HTTP stack and one counter read.
async fn status_phase(base: &str, total: usize) -> Result<Stats, String> {
    let client = http_client(false);
    let url = format!("{base}/api/status");
    let run = hammer(STATUS_CONCURRENCY, STATUS_REQUESTS, move |_, _| {
        let request = client.get(&url);
        async move {
            let (latency, answer) = exchange(request).await?;
            if answer["status"] != "running" || answer["total_images"] != total as u64 {
                return Err(format!(
                    "unexpected status (total should be {total}): {answer}"
                ));
            }
            Ok((latency, ()))
        }
    })
    .await
    .require_all_ok("status")?;
    println!(
        "status: {:.0} req/s at c={STATUS_CONCURRENCY}",
        run.stats.per_second()
    );
    Ok(run.stats)
}

// ---------------------------------------------------------------------------------------------
// Report

struct Header {
    commit: String,
    nproc: usize,
    started_at: String,
}

impl Header {
    fn collect() -> Self {
        let commit = Command::new("git")
            .args([
                "-C",
                env!("CARGO_MANIFEST_DIR"),
                "rev-parse",
                "--short",
                "HEAD",
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
        }
    }

    fn print(&self) {
        println!(
            "imgvault load bench — commit {}, nproc {}, {}",
            self.commit, self.nproc, self.started_at
        );
    }
}

struct Report {
    args: Args,
    ingest: Ingest,
    fill: Fill,
    list: Vec<ListRun>,
    status: Stats,
}

impl Report {
    fn print(&self, header: &Header, quality: u8, log: (usize, usize), exit: &str) {
        let a = &self.args;
        println!();
        println!("=== imgvault load bench ===");
        println!("commit      {}", header.commit);
        println!("nproc       {}", header.nproc);
        println!("started     {}", header.started_at);
        println!(
            "arguments   --ingest {} --concurrency {} --list-images {} --requests {}",
            a.ingest, a.concurrency, a.list_images, a.requests
        );
        println!();
        println!(
            "{:<34} {:>6} {:>4} {:>9} {:>9} {:>9} {:>9}",
            "measurement", "count", "c", "req/s", "p50 ms", "p99 ms", "mean ms"
        );
        let row = |name: &str, concurrency: usize, s: &Stats| {
            println!(
                "{name:<34} {:>6} {concurrency:>4} {:>9.1} {:>9.2} {:>9.2} {:>9.2}",
                s.count(),
                s.per_second(),
                ms(s.percentile(50.0)),
                ms(s.percentile(99.0)),
                ms(s.mean())
            );
        };
        let i = &self.ingest;
        row(
            &format!("ingest jpeg ~{:.0} KB", i.mean_image_bytes() / 1000.0),
            i.concurrency,
            &i.stats,
        );
        if let Some(fill) = &self.fill.stats {
            row("fill png 8x8", FILL_CONCURRENCY, fill);
        }
        for l in &self.list {
            let name = format!("list {} page {}/{}", l.label, l.page, l.pages);
            row(&name, l.concurrency, &l.stats);
        }
        row("status", STATUS_CONCURRENCY, &self.status);
        println!();
        println!(
            "ingest      {:.1} images/s, {:.2} MB/s of images ({:.2} MB/s on the wire), \
             mean image {:.1} KB (JPEG quality {quality}), {:.1} s",
            i.stats.per_second(),
            i.image_mb_per_s(),
            i.wire_mb_per_s(),
            i.mean_image_bytes() / 1000.0,
            i.stats.wall.as_secs_f64()
        );
        let total = a.list_images.max(a.ingest);
        match &self.fill.stats {
            Some(s) => println!(
                "fill        {} images added in {:.1} s to reach {total}",
                s.count(),
                s.wall.as_secs_f64()
            ),
            None => println!("fill        none needed ({total} images)"),
        }
        println!(
            "settle      background thumbnails {} after {:.1} s, {} failed tasks seen",
            if self.fill.settled {
                "drained"
            } else {
                "NOT drained"
            },
            self.fill.settle.as_secs_f64(),
            self.fill.failed_tasks
        );
        println!(
            "server      {} stderr lines, {} at WARN/ERROR; exit on SIGTERM: {exit}",
            log.0, log.1
        );
    }

    fn json(&self, header: &Header, quality: u8, log: (usize, usize), exit: &str) -> Value {
        let a = &self.args;
        let i = &self.ingest;
        json!({
            "commit": header.commit,
            "nproc": header.nproc,
            "started_at": header.started_at,
            "args": {
                "ingest": a.ingest,
                "concurrency": a.concurrency,
                "list_images": a.list_images,
                "requests": a.requests,
            },
            "ingest": {
                "images": i.stats.count(),
                "concurrency": i.concurrency,
                "jpeg_quality": quality,
                "mean_image_bytes": i.mean_image_bytes(),
                "image_bytes": i.image_bytes,
                "wire_bytes": i.wire_bytes,
                "images_per_s": i.stats.per_second(),
                "image_mb_per_s": i.image_mb_per_s(),
                "wire_mb_per_s": i.wire_mb_per_s(),
                "latency": i.stats.json(),
            },
            "fill": {
                "target_images": a.list_images.max(a.ingest),
                "concurrency": FILL_CONCURRENCY,
                "latency": self.fill.stats.as_ref().map(Stats::json),
                "settle_s": self.fill.settle.as_secs_f64(),
                "settled": self.fill.settled,
                "failed_tasks": self.fill.failed_tasks,
            },
            "list": self.list.iter().map(|l| json!({
                "page": l.page,
                "pages": l.pages,
                "which": l.label,
                "per_page": PER_PAGE,
                "concurrency": l.concurrency,
                "latency": l.stats.json(),
            })).collect::<Vec<_>>(),
            "status": {
                "concurrency": STATUS_CONCURRENCY,
                "latency": self.status.json(),
            },
            "server": {
                "stderr_lines": log.0,
                "stderr_warn_or_error_lines": log.1,
                "exit": exit,
            },
        })
    }
}
