//! The imgvault release binary under test: its data directory, spawning it, watching its output
//! and stopping it with SIGTERM.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::Args;
use crate::procfs;

/// The admin password the server is started with; the bench logs in as admin with it.
pub(crate) const ADMIN_PASSWORD: &str = "bench-admin-pw";
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);
/// Server log lines at WARN or ERROR echoed to the terminal (all of them are counted).
const ECHOED_SERVER_WARNINGS: usize = 20;

/// A temporary directory for the data file, kept on a disk (not `/tmp`, often a RAM disk).
pub(crate) struct DataDir {
    pub(crate) file: PathBuf,
    _dir: tempfile::TempDir,
}

impl DataDir {
    pub(crate) fn create(args: &Args) -> Result<Self, String> {
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
pub(crate) struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub(crate) base: String,
    log: Arc<ServerLog>,
    /// From spawning the process to reading its `listening on` line.
    pub(crate) startup: Duration,
    /// VmRSS right after `listening on`, before any request.
    pub(crate) idle_rss_kib: Option<u64>,
}

/// Counts of what the server wrote to stderr.
#[derive(Default)]
struct ServerLog {
    lines: AtomicUsize,
    warnings: AtomicUsize,
}

/// How a server run ended.
pub(crate) struct ServerEnd {
    /// (all stderr lines, lines at WARN or ERROR)
    log: (usize, usize),
    exit: Result<ExitStatus, String>,
}

impl ServerEnd {
    pub(crate) fn clean(&self) -> bool {
        self.exit.as_ref().is_ok_and(ExitStatus::success)
    }

    pub(crate) fn exit_text(&self) -> String {
        match &self.exit {
            Ok(status) => status.to_string(),
            Err(e) => e.clone(),
        }
    }

    pub(crate) fn summary(&self) -> String {
        format!(
            "server log: {} lines, {} at WARN/ERROR; exit on SIGTERM: {}",
            self.log.0,
            self.log.1,
            self.exit_text()
        )
    }

    pub(crate) fn json(&self) -> Value {
        json!({
            "stderr_lines": self.log.0,
            "stderr_warn_or_error_lines": self.log.1,
            "exit": self.exit_text(),
            "clean_exit": self.clean(),
        })
    }
}

impl Server {
    pub(crate) fn start(data: &Path) -> Result<Self, String> {
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

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then waits (bounded) for the process to exit.
    pub(crate) fn stop(mut self) -> ServerEnd {
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
