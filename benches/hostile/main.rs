//! Hostile-input benchmark for imgvault: replays the attacks of issue 16 against the release
//! binary, each on a server started for it on a fresh data file (so each peak is its own), and
//! prints per attack the server's peak RSS (`VmHWM` of `/proc/PID/status`), the latency of a
//! visitor polling `/api/status` every 50 ms on a new connection meanwhile (p50, p99, max and
//! the polls that got no 200 within 5 s), and what the attack got (status codes, figures).
//!
//! ```text
//! cargo bench --bench hostile
//! IMGVAULT_BIN=path/to/older/imgvault cargo bench --bench hostile -- --quick
//! cargo bench --bench hostile -- --only 1,4 --scale 2
//! ```
//!
//! The server runs with its defaults, as an attacker finds it (only `IMGVAULT_ADMIN_PASSWORD` is
//! set, so the bench can log in as `admin`). The attacks, at `--scale 1`:
//! 1. 150 concurrent logins to `admin` with wrong passwords.
//! 2. Password guessing from one client for 5 s, one request after another.
//! 3. 20 anonymous uploads of a tiny PNG with 1 MB each of page title, page URL, original URL and
//!    `imageContext` alt and caption, then 4 concurrent calls of admin's first list page.
//! 4. Decompression bombs, 6 at once: an 8000×8000 RGBA PNG, a 16000×4000 GIF and an 8000×8000
//!    WebP, two byte-distinct copies of each, each padded with a 700 KB junk chunk; then the
//!    bench waits (at most 120 s) for their background tasks, which make the thumbnails.
//! 5. One multipart upload whose part carries a 50 MiB header line before a tiny PNG.
//! 6. 500 connections: half send nothing, half a request line cut in the middle; held for
//!    `--hold` seconds (default 32, past the 30 s timeouts), noting when the server closes each.
//! 7. 50 JSON uploads declaring 14 MB each, all bytes but the last sent, held as in 6.
//! 8. CSRF: a logged-in user's cookie on a `text/plain` body holding upload JSON, from a foreign
//!    `Origin` (what a page on another site, or on another port of the same host, can send).
//! 9. Login CSRF: a login body in JSON sent as `application/x-www-form-urlencoded` from a
//!    foreign `Origin`: does the answer log the browser into the attacker's account?
//! 10. Anonymous disk fill: 8 clients post byte-distinct ~1 MB PNGs for 5 s.
//! 11. Disk full: not replayed (it needs a small file system, hence root); the integration tests
//!     cover it.
//! 12. SSRF message: an anonymous upload by URL of `http://localhost:9/`: is `127.0.0.1` named?
//!
//! `--scale F` (or `HOSTILE_SCALE`) multiplies the counts, sizes and durations (not the bomb
//! dimensions, not the hold); `--quick` (or `HOSTILE_QUICK=1`) is scale 0.2 and a 3 s hold, for a
//! smoke run of a few seconds per attack. `--only 1,4` runs some attacks. Nothing is asserted:
//! the bench exits non-zero only when a server could not start or died during an attack. Peak
//! RSS includes the idle server (about 10 MiB) and the database cache; the bench runs on the
//! same machine, so latencies include its own CPU use. Data files live in a temporary directory
//! under `target/`.

#[path = "../../tests/common/server.rs"]
mod spawned;

mod attacks;
mod payloads;
mod probe;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::attacks::{ATTACKS, Context, Payloads};
use crate::probe::{PROBE_TIMEOUT, Probe};
use crate::spawned::Spawned;

pub const ADMIN_PASSWORD: &str = "hostile-admin-pw";

/// Replays attacks on the release binary and reports what each cost the server (peak RSS, the
/// latency of a well-behaved client meanwhile) and how it answered.
#[derive(clap::Parser)]
#[command(
    bin_name = "cargo bench --bench hostile --",
    after_help = "Environment: IMGVAULT_BIN, the binary under test (default: this crate's release build)"
)]
struct Cli {
    /// Scale 0.2 and a 3 s hold, a smoke run of a few seconds per attack.
    #[arg(long, env = "HOSTILE_QUICK", value_parser = clap::builder::FalseyValueParser::new())]
    quick: bool,
    /// Multiply counts, sizes and durations [default: 1, or 0.2 with --quick].
    #[arg(long, env = "HOSTILE_SCALE", value_parser = positive_f64)]
    scale: Option<f64>,
    /// Seconds to hold idle connections and stalled bodies [default: 32, or 3 with --quick].
    #[arg(long, value_parser = positive_f64)]
    hold: Option<f64>,
    /// Run only these attacks (1-12).
    #[arg(
        long,
        value_delimiter = ',',
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=12)
    )]
    only: Vec<usize>,
    /// Passed by `cargo bench`.
    #[arg(long, hide = true)]
    bench: bool,
}

pub struct Args {
    pub scale: f64,
    pub hold: Duration,
    /// Empty: all of them.
    only: Vec<usize>,
}

impl Args {
    fn from_command_line() -> Self {
        let cli = <Cli as clap::Parser>::parse();
        let (scale, hold) = if cli.quick { (0.2, 3.0) } else { (1.0, 32.0) };
        Self {
            scale: cli.scale.unwrap_or(scale),
            hold: Duration::from_secs_f64(cli.hold.unwrap_or(hold)),
            only: cli.only,
        }
    }

    /// `n` times the scale, at least 1.
    pub fn scaled(&self, n: usize) -> usize {
        ((n as f64 * self.scale).round() as usize).max(1)
    }

    pub fn scaled_secs(&self, secs: f64) -> Duration {
        Duration::from_secs_f64(secs * self.scale)
    }
}

fn positive_f64(value: &str) -> Result<f64, String> {
    value
        .trim()
        .parse()
        .ok()
        .filter(|v: &f64| *v > 0.0 && v.is_finite())
        .ok_or_else(|| "expected a positive number".to_string())
}

/// One row of the report.
struct Row {
    number: usize,
    name: &'static str,
    peak_rss_kib: Option<u64>,
    probe: Option<probe::Latencies>,
    outcome: String,
    /// The server exited during the attack.
    died: bool,
}

fn main() {
    let args = Args::from_command_line();
    // reqwest is built without a default TLS provider; it wants one even for plain HTTP.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    raise_fd_limit();

    let binary = spawned::binary();
    println!("hostile bench: {binary}");
    println!(
        "scale {}, hold {:.0} s; bench at {}",
        args.scale,
        args.hold.as_secs_f64(),
        spawned::commit()
    );
    let built = Instant::now();
    let payloads = Payloads::build();
    println!(
        "payloads built in {:.1} s: PNG bomb {} KB, GIF bomb {} KB, WebP bomb {} KB",
        built.elapsed().as_secs_f64(),
        payloads.png_bomb.len() / 1000,
        payloads.gif_bomb.len() / 1000,
        payloads.webp_bomb.len() / 1000,
    );

    let parent = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target");
    let started = Instant::now();
    let mut rows = Vec::new();
    let mut failed = false;
    for attack in ATTACKS {
        if !args.only.is_empty() && !args.only.contains(&attack.number) {
            continue;
        }
        println!("\n{}. {}", attack.number, attack.name);
        if attack.number == 11 {
            rows.push(Row {
                number: 11,
                name: attack.name,
                peak_rss_kib: None,
                probe: None,
                outcome:
                    "not replayed: needs a small file system (root); see the integration tests"
                        .to_string(),
                died: false,
            });
            continue;
        }
        let dir = match tempfile::Builder::new()
            .prefix("hostile-bench-")
            .tempdir_in(&parent)
        {
            Ok(dir) => dir,
            Err(e) => {
                eprintln!("temporary directory in {}: {e}", parent.display());
                std::process::exit(1);
            }
        };
        let data = dir.path().join("imgvault.redb");
        let mut server = match Spawned::start("server", &data, &[], ADMIN_PASSWORD) {
            Ok(server) => server,
            Err(e) => {
                eprintln!("HOSTILE BENCH FAILED: {e}");
                std::process::exit(1);
            }
        };
        let context = Context {
            base: server.base.clone(),
            addr: server.base.trim_start_matches("http://").to_string(),
            pid: server.pid(),
            args: &args,
            payloads: &payloads,
        };
        let (probe, outcome) = runtime.block_on(async {
            let probe = Probe::start(&context.base);
            let outcome = (attack.run)(&context).await;
            (probe.finish().await, outcome)
        });
        let peak_rss_kib = status_kib(server.pid(), "VmHWM");
        let died = server.exited();
        let mut outcome = outcome.unwrap_or_else(|e| format!("bench error: {e}"));
        if let Some(status) = died {
            outcome = format!("SERVER DIED ({status}); {outcome}");
            failed = true;
        } else if let Err(e) = server.stop().map(|s| s.success().then_some(()).ok_or(s)) {
            outcome = format!("{outcome}; unclean exit on SIGTERM: {e:?}");
        }
        let row = Row {
            number: attack.number,
            name: attack.name,
            peak_rss_kib,
            probe: Some(probe),
            outcome,
            died: died.is_some(),
        };
        println!(
            "   peak RSS {}, /api/status {}\n   {}",
            rss_text(row.peak_rss_kib),
            probe_text(row.probe.as_ref()),
            row.outcome
        );
        rows.push(row);
    }
    print_table(&rows, &binary, started.elapsed());
    if failed || rows.iter().any(|r| r.died) {
        eprintln!("\nHOSTILE BENCH: a server died during an attack");
        std::process::exit(1);
    }
}

fn print_table(rows: &[Row], binary: &str, wall: Duration) {
    println!("\n{binary}, {:.0} s in all\n", wall.as_secs_f64());
    println!("| # | attack | peak RSS | /api/status p50 / p99 / max ms | outcome |");
    println!("|---|---|---:|---|---|");
    for row in rows {
        println!(
            "| {} | {} | {} | {} | {} |",
            row.number,
            row.name,
            rss_text(row.peak_rss_kib),
            probe_text(row.probe.as_ref()),
            row.outcome.replace('|', "/")
        );
    }
}

fn rss_text(kib: Option<u64>) -> String {
    kib.map_or("n/a".to_string(), |k| {
        format!("{:.0} MiB", k as f64 / 1024.0)
    })
}

fn probe_text(probe: Option<&probe::Latencies>) -> String {
    let Some(p) = probe else {
        return String::new();
    };
    let ms = |v: Option<f64>| v.map_or("–".to_string(), |v| format!("{v:.1}"));
    let polls = p.failed + p.sorted.len();
    let failed = match p.failed {
        0 => format!(" ({polls} polls)"),
        n => format!(" ({n} of {polls} polls failed, {PROBE_TIMEOUT:?} limit)"),
    };
    format!(
        "{} / {} / {}{failed}",
        ms(p.percentile_ms(50.0)),
        ms(p.percentile_ms(99.0)),
        ms(p.percentile_ms(100.0))
    )
}

/// A `kB` line of `/proc/PID/status` (`VmHWM`), in KiB; `None` off Linux.
pub fn status_kib(pid: u32, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|line| {
        let value = line.strip_prefix(key)?.strip_prefix(':')?;
        value.split_whitespace().next()?.parse().ok()
    })
}

/// Attack 6 holds hundreds of sockets; the soft limit may be lower than the hard one.
fn raise_fd_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: reads and sets this process's own limit through valid pointers.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}
