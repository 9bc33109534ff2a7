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
//!    `POST /api/receive-image` by C concurrent clients. Then one phase per `--multipart` value
//!    (default `32`) posts fresh JPEGs the way the web UI's file picker does, as multipart form
//!    data to `POST /api/upload-file`. After each phase the bench waits (bounded) for the
//!    background thumbnail queue to drain (see "settling" below), and reports the server's CPU
//!    and disk writes both for the requests alone and with the thumbnails included.
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
//! VmHWM at the end; idle RSS is read right after `listening on`, before any request, and the
//! quiet RSS 1.5 s after the ingest phases settled (what the server keeps between bursts). The
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
//!
//! The code: `main.rs` parses the arguments and runs the phases in order; `phases/` has one
//! module per phase. `server.rs` spawns and stops the binary, `client.rs` makes and checks the
//! HTTP requests, `measure.rs` brackets each measurement with the server's counters (read by
//! `procfs.rs`) and waits for the server to settle, `images.rs` generates the uploads, and
//! `stats.rs` and `report.rs` turn the samples into the printed tables and the JSON.

mod client;
mod images;
mod measure;
mod phases;
mod procfs;
mod report;
mod server;
#[path = "../../tests/common/server.rs"]
mod spawned;
mod stats;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::client::login;
use crate::measure::Monitor;
use crate::phases::Phases;
use crate::phases::disk::Disk;
use crate::phases::fetch::{BIG_IMAGES, big_fetch_phase, fetch_phase};
use crate::phases::ingest::ingest_phases;
use crate::phases::list::list_phases;
use crate::phases::status::{check_status, status_phase};
use crate::phases::thumbnails::thumbnail_phase;
use crate::report::{Header, Report, Restart, Start};
use crate::server::{ADMIN_PASSWORD, DataDir, Server};
use crate::stats::{fmt, mib, ms};

/// How long after the settled ingest phases the quiet RSS is read: past the server's one quiet
/// second after which it releases freed memory.
pub(crate) const QUIET_RSS_AFTER: Duration = Duration::from_millis(1500);

fn main() {
    let args = Args::from_command_line();
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
    let outcome = runtime.block_on(run(&server.base, server.pid(), &monitor, args, data));
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
async fn run(
    base: &str,
    pid: u32,
    monitor: &Monitor,
    args: &Args,
    data: &Path,
) -> Result<Phases, String> {
    let admin = login(base, "admin", ADMIN_PASSWORD).await?;
    let ingest = ingest_phases(base, monitor, args).await?;
    // The ingest phases end settled (thumbnails made, CPU quiet); the server gives freed memory
    // back after a quiet second (`writer::IDLE_AFTER`), so this reads what it keeps between bursts.
    tokio::time::sleep(QUIET_RSS_AFTER).await;
    let quiet_rss_kib = procfs::status_kib(pid, "VmRSS");
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
        quiet_rss_kib,
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

/// Ingest, list and fetch throughput, latency and memory of the release binary, the way the
/// browser extension and the web UI use it.
#[derive(Debug, Clone, clap::Parser)]
#[command(bin_name = "cargo bench --bench load --")]
pub(crate) struct Args {
    /// ~250 KB JPEGs to ingest per concurrency.
    #[arg(long, default_value_t = 400, value_parser = positive())]
    pub(crate) ingest: usize,
    /// Concurrent clients of each JSON ingest phase.
    #[arg(long, value_delimiter = ',', default_value = "1,8,32", value_parser = positive())]
    pub(crate) concurrency: Vec<usize>,
    /// Concurrent clients of each multipart ingest phase.
    #[arg(long, value_delimiter = ',', default_value = "32", value_parser = positive())]
    pub(crate) multipart: Vec<usize>,
    /// List sizes, filled in turn (ascending and distinct once parsed).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "1000,10000,100000",
        value_parser = positive()
    )]
    pub(crate) list_images: Vec<usize>,
    /// Requests per list measurement.
    #[arg(long, default_value_t = 1_000, value_parser = positive())]
    pub(crate) requests: usize,
    /// Requests of the original-fetch phase.
    #[arg(long, default_value_t = 3_000, value_parser = positive())]
    fetch_requests: usize,
    /// Where the temporary data directory goes [default: target/ of the crate].
    #[arg(long)]
    pub(crate) data_dir: Option<PathBuf>,
    /// Passed by `cargo bench`.
    #[arg(long, hide = true)]
    bench: bool,
}

impl Args {
    fn from_command_line() -> Self {
        let mut args = <Self as clap::Parser>::parse();
        args.list_images.sort_unstable();
        args.list_images.dedup();
        args
    }

    fn largest_list(&self) -> usize {
        self.list_images.last().copied().unwrap_or(0)
    }

    pub(crate) fn json(&self) -> Value {
        json!({
            "ingest": self.ingest,
            "concurrency": self.concurrency,
            "multipart": self.multipart,
            "list_images": self.list_images,
            "requests": self.requests,
            "fetch_requests": self.fetch_requests,
        })
    }

    pub(crate) fn command_line(&self) -> String {
        let list = |v: &[usize]| v.iter().map(usize::to_string).collect::<Vec<_>>().join(",");
        format!(
            "--ingest {} --concurrency {} --multipart {} --list-images {} --requests {} \
             --fetch-requests {}",
            self.ingest,
            list(&self.concurrency),
            list(&self.multipart),
            list(&self.list_images),
            self.requests,
            self.fetch_requests
        )
    }
}

fn positive() -> clap::builder::RangedU64ValueParser<usize> {
    clap::builder::RangedU64ValueParser::new().range(1..)
}
