//! The one way the imgvault binary is started as a server, for the integration tests and the
//! benchmarks alike: `serve` on a data file at `127.0.0.1:0`, its address read from the
//! `listening on` line (never a sleep), its stderr read line by line (counted, and echoed as the
//! caller asks), and stopped with SIGTERM the way a service manager stops it.
//!
//! `tests/common/mod.rs` wraps it in `TestApp`; `benches/load`, `benches/hostile`,
//! `benches/sync.rs` and `benches/sync_stream.rs` include this file with
//! `#[path = "../../tests/common/server.rs"]` (or `../tests/…`) and add what each measures around
//! it. Each uses the subset it needs.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);
/// Server log lines at WARN or ERROR a benchmark echoes to the terminal (all of them are counted).
const ECHOED_WARNINGS: usize = 20;

/// Which server log lines go to the caller's stderr.
#[derive(Clone, Copy)]
pub enum Echo {
    /// None: the server writes to the caller's stderr itself (and nothing is counted).
    Inherit,
    /// The first `n` lines at WARN or ERROR (or a panic), prefixed with the label.
    Warnings(usize),
}

/// How to start the server.
#[derive(Clone)]
pub struct Launch {
    /// Names the server in echoed log lines and errors.
    pub label: String,
    pub binary: PathBuf,
    pub data: PathBuf,
    /// After `serve --listen 127.0.0.1:0 --data DATA`.
    pub args: Vec<String>,
    pub admin_password: String,
    /// Extra environment, besides `IMGVAULT_ADMIN_PASSWORD` and `RUST_LOG`.
    pub env: Vec<(String, String)>,
    /// `RUST_LOG`.
    pub log_filter: String,
    pub echo: Echo,
}

impl Launch {
    /// The defaults of the benchmarks: `binary()`, INFO logs counted and the first warnings
    /// echoed under `label`.
    pub fn bench(label: &str, data: &Path, extra: &[&str], admin_password: &str) -> Self {
        Self {
            label: label.to_string(),
            binary: binary().into(),
            data: data.to_path_buf(),
            args: extra.iter().map(|a| a.to_string()).collect(),
            admin_password: admin_password.to_string(),
            env: Vec::new(),
            log_filter: "imgvault=info".to_string(),
            echo: Echo::Warnings(ECHOED_WARNINGS),
        }
    }
}

/// A `/proc/PID/status` line's figure (in kB) in MiB.
pub fn status_mib(status: &str, key: &str) -> Option<f64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map(|kib| kib / 1024.0)
}

/// A running server; killed if dropped while it still runs.
pub struct Spawned {
    child: Child,
    /// `http://127.0.0.1:PORT`, no trailing slash.
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
    /// Starts `imgvault serve` on `data` with `extra` arguments, the way the benchmarks do
    /// (`Launch::bench`). Returns once the server listens.
    pub fn start(
        label: &str,
        data: &Path,
        extra: &[&str],
        admin_password: &str,
    ) -> Result<Self, String> {
        Self::launch(Launch::bench(label, data, extra, admin_password))
    }

    /// Starts the server as `launch` says. Blocks until it listens (at most a minute).
    pub fn launch(launch: Launch) -> Result<Self, String> {
        let Launch {
            label,
            binary,
            data,
            args,
            admin_password,
            env,
            log_filter,
            echo,
        } = launch;
        let spawned = Instant::now();
        let mut child = Command::new(&binary)
            .args(["serve", "--listen", "127.0.0.1:0", "--data"])
            .arg(&data)
            .args(&args)
            .env("IMGVAULT_ADMIN_PASSWORD", admin_password)
            .env("RUST_LOG", log_filter)
            .env("NO_COLOR", "1")
            .envs(env)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(match echo {
                Echo::Inherit => Stdio::inherit(),
                Echo::Warnings(_) => Stdio::piped(),
            })
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
        let address = watch_stdout(child.stdout.take().expect("piped stdout"));
        let log = match (child.stderr.take(), echo) {
            (Some(stderr), Echo::Warnings(n)) => watch_stderr(stderr, &label, n),
            _ => Arc::default(),
        };
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

    /// `/proc/PID/{file}`; panics if the server has died (an unreaped zombie still has one).
    pub fn proc_file(&self, file: &str) -> String {
        let pid = self.pid();
        let read = |file: &str| {
            std::fs::read_to_string(format!("/proc/{pid}/{file}"))
                .unwrap_or_else(|e| panic!("/proc/{pid}/{file}: {e}"))
        };
        let stat = read("stat");
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, r)| r.split_whitespace().next());
        assert!(
            !matches!(state, Some("Z" | "X")),
            "the server (pid {pid}) has exited unexpectedly"
        );
        if file == "stat" { stat } else { read(file) }
    }

    /// User plus system CPU time so far.
    pub fn cpu_seconds(&self) -> f64 {
        let stat = self.proc_file("stat");
        // Fields after the command name, which ends at the last ')': state is the first,
        // utime and stime the 12th and 13th.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map_or("", |(_, rest)| rest)
            .split_whitespace()
            .collect();
        let ticks = |i: usize| -> f64 { fields.get(i).and_then(|f| f.parse().ok()).unwrap_or(0.0) };
        // SAFETY: sysconf only reads a configuration value.
        let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        (ticks(11) + ticks(12)) / per_second
    }

    /// Peak resident set size (VmHWM) in MiB.
    pub fn peak_rss_mib(&self) -> f64 {
        status_mib(&self.proc_file("status"), "VmHWM:").expect("VmHWM in /proc/PID/status")
    }

    /// Resident set size (VmRSS) in MiB.
    pub fn rss_mib(&self) -> f64 {
        status_mib(&self.proc_file("status"), "VmRSS:").expect("VmRSS in /proc/PID/status")
    }

    /// Resets VmHWM to the current RSS; false if the kernel does not allow it.
    pub fn reset_peak_rss(&self) -> bool {
        std::fs::write(format!("/proc/{}/clear_refs", self.pid()), "5").is_ok()
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

    /// Sends SIGTERM and returns at once.
    pub fn terminate(&self) -> Result<(), String> {
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: signals our own child, which has not been reaped yet (`Child` reaps only in
        // `wait`/`try_wait`, after which a caller no longer signals it).
        if unsafe { libc::kill(pid, libc::SIGTERM) } != 0 {
            return Err(format!("SIGTERM to {pid} could not be sent"));
        }
        Ok(())
    }

    /// Waits at most `limit` for the process to exit; `None` if it is still running then.
    pub fn wait_exit(&mut self, limit: Duration) -> Result<Option<ExitStatus>, String> {
        let deadline = Instant::now() + limit;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return Ok(Some(status)),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Ok(None) => return Ok(None),
                Err(e) => return Err(format!("waiting for the server: {e}")),
            }
        }
    }

    /// SIGTERM, then waits (bounded) for the process to exit; killed by `Drop` if it does not.
    pub fn stop(&mut self) -> Result<ExitStatus, String> {
        self.terminate()?;
        match self.wait_exit(SHUTDOWN_TIMEOUT)? {
            Some(status) => Ok(status),
            None => Err(format!(
                "still running {SHUTDOWN_TIMEOUT:?} after SIGTERM; killed"
            )),
        }
    }

    /// SIGKILL, as a power cut would, and reaps the process.
    pub fn kill(&mut self) {
        self.child.kill().expect("kill imgvault");
        self.child.wait().expect("wait for imgvault");
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

/// The binary a benchmark measures: `IMGVAULT_BIN`, else this crate's build.
pub fn binary() -> String {
    std::env::var("IMGVAULT_BIN")
        .ok()
        .filter(|b| !b.is_empty())
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_imgvault").to_string())
}

/// The source a benchmark was built from, for its report: `git describe --always --dirty` (a
/// `-dirty` build has uncommitted changes), or `unknown` outside a git checkout.
pub fn commit() -> String {
    Command::new("git")
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
        .unwrap_or_else(|| "unknown".to_string())
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

/// Counts every stderr line and echoes the first `echoed` warnings and errors.
fn watch_stderr(stderr: std::process::ChildStderr, label: &str, echoed: usize) -> Arc<LogCounts> {
    let log = Arc::new(LogCounts::default());
    let counts = log.clone();
    let label = label.to_string();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            counts.lines.fetch_add(1, Ordering::Relaxed);
            if ["WARN", "ERROR", "panicked"]
                .iter()
                .any(|w| line.contains(w))
                && counts.warnings.fetch_add(1, Ordering::Relaxed) < echoed
            {
                eprintln!("  [{label}] {line}");
            }
        }
    });
    log
}

/// The `name=value` pair of a login answer's session cookie (named `imgvault_` and a hash of the
/// data file's path unless `--cookie-name` says otherwise), to send back as `Cookie`.
pub fn session_cookie(headers: &reqwest::header::HeaderMap) -> Option<String> {
    headers
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .find(|pair| pair.split_once('=').is_some_and(|(_, v)| !v.is_empty()))
        .map(str::to_string)
}
