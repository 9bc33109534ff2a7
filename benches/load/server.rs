//! The imgvault release binary under test: its data directory, and the server (spawned and
//! stopped by `tests/common/server.rs`, the harness the tests use too) with the start-up figures the bench reports.

use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;

use serde_json::{Value, json};

use crate::Args;
use crate::procfs;
use crate::spawned::Spawned;

/// The admin password the server is started with; the bench logs in as admin with it.
pub(crate) const ADMIN_PASSWORD: &str = "bench-admin-pw";

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
    spawned: Spawned,
    /// `http://127.0.0.1:PORT`
    pub(crate) base: String,
    /// From spawning the process to reading its `listening on` line.
    pub(crate) startup: Duration,
    /// VmRSS right after `listening on`, before any request.
    pub(crate) idle_rss_kib: Option<u64>,
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
        // The bench's clients upload anonymously from one address, far past the quota a stranger
        // gets: this measures throughput, not the quota.
        let unlimited = [
            "--anonymous-images-per-minute",
            "100000000",
            "--anonymous-mb-per-minute",
            "100000000",
        ];
        let spawned = Spawned::start("server", data, &unlimited, ADMIN_PASSWORD)?;
        Ok(Self {
            base: spawned.base.clone(),
            startup: spawned.startup,
            idle_rss_kib: procfs::status_kib(spawned.pid(), "VmRSS"),
            spawned,
        })
    }

    pub(crate) fn pid(&self) -> u32 {
        self.spawned.pid()
    }

    /// SIGTERM, then waits (bounded) for the process to exit.
    pub(crate) fn stop(mut self) -> ServerEnd {
        let exit = self.spawned.stop();
        ServerEnd {
            log: self.spawned.log_counts(),
            exit,
        }
    }
}
