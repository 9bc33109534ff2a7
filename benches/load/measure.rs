//! Measuring a phase: a `Monitor` brackets the requests with the server's counters
//! (`Measurement`), and `settle` waits for the server's background work to finish so that one
//! phase's leftovers are not counted in the next.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::client::{Posted, Run, exchange, http_client};
use crate::procfs;
use crate::stats::{Stats, fmt, mib, ms, ratio};

/// Task ids polled to tell when the background thumbnail queue has drained.
const SETTLE_PROBES: usize = 16;
const SETTLE_TIMEOUT: Duration = Duration::from_secs(300);
/// The server counts as idle when it uses at most this much CPU in one window.
const IDLE_WINDOW: Duration = Duration::from_millis(500);
const IDLE_CPU_MS: f64 = 20.0;
const RSS_SAMPLE_EVERY: Duration = Duration::from_millis(20);

/// Watches the server process: a thread samples its RSS; `mark` and `usage_since` bracket a
/// measurement.
pub(crate) struct Monitor {
    pid: u32,
    /// Largest VmRSS (KiB) sampled since the last mark.
    peak_kib: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    sampler: Option<std::thread::JoinHandle<()>>,
}

/// The server's counters at the start of a measurement.
pub(crate) struct Mark {
    cpu_ticks: Option<u64>,
    written: Option<u64>,
    rss_kib: Option<u64>,
}

/// What the server used during a measurement.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Usage {
    cpu_ticks: Option<u64>,
    /// RSS at the start, KiB: the peak cannot be lower.
    pub(crate) start_rss_kib: Option<u64>,
    /// Largest RSS sampled, KiB.
    pub(crate) peak_rss_kib: Option<u64>,
    /// Bytes sent to storage.
    pub(crate) written: Option<u64>,
}

impl Monitor {
    pub(crate) fn start(pid: u32) -> Self {
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
    pub(crate) fn mark(&self) -> Mark {
        let rss_kib = procfs::status_kib(self.pid, "VmRSS");
        self.peak_kib.store(rss_kib.unwrap_or(0), Ordering::Relaxed);
        Mark {
            cpu_ticks: procfs::cpu_ticks(self.pid),
            written: procfs::write_bytes(self.pid),
            rss_kib,
        }
    }

    pub(crate) fn usage_since(&self, mark: &Mark) -> Usage {
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

    pub(crate) fn cpu_ms_per(&self, count: usize) -> Option<f64> {
        ratio(self.cpu_ms(), Some(count as f64))
    }

    pub(crate) fn json(&self, count: usize) -> Value {
        json!({
            "cpu_ms": self.cpu_ms(),
            "cpu_ms_per_request": self.cpu_ms_per(count),
            "start_rss_mib": mib(self.start_rss_kib),
            "peak_rss_mib": mib(self.peak_rss_kib),
            "written_bytes": self.written,
        })
    }
}

/// One measured phase: its latencies and what the server used meanwhile.
pub(crate) struct Measurement {
    pub(crate) name: String,
    pub(crate) concurrency: usize,
    pub(crate) stats: Stats,
    pub(crate) usage: Usage,
}

/// Runs `work` between two readings of the server's counters, checks that every call succeeded
/// and prints a one-line summary. Returns the measurement and the calls' values in call order.
pub(crate) async fn measure<T>(
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
    pub(crate) fn cpu_ms_per_request(&self) -> Option<f64> {
        self.usage.cpu_ms_per(self.stats.count())
    }

    pub(crate) fn p99_ms(&self) -> f64 {
        ms(self.stats.percentile(99.0))
    }

    pub(crate) fn json(&self) -> Value {
        json!({
            "name": self.name,
            "concurrency": self.concurrency,
            "latency": self.stats.json(),
            "server": self.usage.json(self.stats.count()),
        })
    }
}

/// How waiting for the background work of some uploads went.
pub(crate) struct Settled {
    after: Duration,
    /// The last uploads' tasks are no longer `processing`.
    drained: bool,
    /// Then the server's CPU use fell under `IDLE_CPU_MS` in an `IDLE_WINDOW`; `None` where CPU
    /// time cannot be read.
    idle: Option<bool>,
    failed_tasks: usize,
}

impl Settled {
    pub(crate) fn describe(&self) -> String {
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

    pub(crate) fn json(&self) -> Value {
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
pub(crate) async fn settle(
    base: &str,
    monitor: &Monitor,
    posted: &[Posted],
) -> Result<Settled, String> {
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
