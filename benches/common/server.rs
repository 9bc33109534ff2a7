//! The imgvault binary as the benchmarks run it: `serve` on a data file at `127.0.0.1:0`, its
//! address read from the `listening on` line, its log counted (and the first warnings echoed), and
//! stopped with SIGTERM the way a service manager stops it. Shared by `benches/load`,
//! `benches/hostile` and `benches/sync.rs`, which add what each measures around it; each uses the
//! subset it needs. The binary is this crate's release build, or `IMGVAULT_BIN` when set, so the
//! same bench can measure another build (an older release) in the same sitting.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);
/// Server log lines at WARN or ERROR echoed to the terminal (all of them are counted).
const ECHOED_WARNINGS: usize = 20;

/// A running server; killed if dropped without `stop`.
pub struct Spawned {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    /// From spawning the process to reading its `listening on` line.
    pub startup: Duration,
    log: Arc<LogCounts>,
}

#[derive(Default)]
struct LogCounts {
    lines: AtomicUsize,
    warnings: AtomicUsize,
}

impl Spawned {
    /// Starts `imgvault serve` on `data` with `extra` arguments; `label` prefixes the echoed
    /// warnings. Returns once the server listens.
    pub fn start(
        label: &str,
        data: &Path,
        extra: &[&str],
        admin_password: &str,
    ) -> Result<Self, String> {
        let binary = binary();
        let spawned = Instant::now();
        let mut child = Command::new(&binary)
            .args(["serve", "--listen", "127.0.0.1:0", "--data"])
            .arg(data)
            .args(extra)
            .env("IMGVAULT_ADMIN_PASSWORD", admin_password)
            .env("RUST_LOG", "imgvault=info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {binary}: {e}"))?;
        let address = watch_stdout(child.stdout.take().expect("piped stdout"));
        let log = watch_stderr(child.stderr.take().expect("piped stderr"), label);
        let mut server = Self {
            child,
            base: String::new(),
            startup: Duration::ZERO,
            log,
        };
        server.base = match address.recv_timeout(STARTUP_TIMEOUT) {
            Ok(base) => base,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                return Err(format!(
                    "{label}: no `listening on` line within {STARTUP_TIMEOUT:?}"
                ));
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(format!(
                    "{label}: the server exited before listening: {:?}",
                    server.child.wait()
                ));
            }
        };
        server.startup = spawned.elapsed();
        if !server.base.starts_with("http://127.0.0.1:") {
            return Err(format!("{label} listens on {}, not 127.0.0.1", server.base));
        }
        Ok(server)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// How the process ended, if it has (without reaping a live one).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// (all stderr lines, lines at WARN or ERROR) so far.
    pub fn log_counts(&self) -> (usize, usize) {
        (
            self.log.lines.load(Ordering::Relaxed),
            self.log.warnings.load(Ordering::Relaxed),
        )
    }

    /// SIGTERM, then waits (bounded) for the process to exit; killed by `Drop` if it does not.
    pub fn stop(&mut self) -> Result<ExitStatus, String> {
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: signals our own child, which has not been reaped yet.
        if unsafe { libc::kill(pid, libc::SIGTERM) } != 0 {
            return Err(format!("SIGTERM to {pid} could not be sent"));
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

impl Drop for Spawned {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The binary under test: `IMGVAULT_BIN`, else this crate's build.
pub fn binary() -> String {
    std::env::var("IMGVAULT_BIN")
        .ok()
        .filter(|b| !b.is_empty())
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_imgvault").to_string())
}

/// Hands over the address of the `listening on` line, then keeps draining stdout so the server
/// never blocks on it.
fn watch_stdout(stdout: std::process::ChildStdout) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let Some((_, rest)) = line.split_once("listening on ") else {
                continue;
            };
            if let (Some(tx), Some(addr)) = (tx.take(), rest.split_whitespace().next()) {
                let _ = tx.send(addr.to_string());
            }
        }
    });
    rx
}

/// Counts every stderr line and echoes the first warnings and errors.
fn watch_stderr(stderr: std::process::ChildStderr, label: &str) -> Arc<LogCounts> {
    let log = Arc::new(LogCounts::default());
    let counts = log.clone();
    let label = label.to_string();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            counts.lines.fetch_add(1, Ordering::Relaxed);
            if ["WARN", "ERROR", "panicked"]
                .iter()
                .any(|w| line.contains(w))
                && counts.warnings.fetch_add(1, Ordering::Relaxed) < ECHOED_WARNINGS
            {
                eprintln!("  [{label}] {line}");
            }
        }
    });
    log
}

/// The `session=…` pair of a login answer's `Set-Cookie`, to send back as `Cookie`.
pub fn session_cookie(headers: &reqwest::header::HeaderMap) -> Option<String> {
    headers
        .get(reqwest::header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::to_string)
}
