//! What the bench watches while an attack runs: a visitor polling `/api/status` on a new
//! connection every 50 ms, and the status codes (or failures) the attack's requests got.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const PROBE_EVERY: Duration = Duration::from_millis(50);
/// A probe that gets no answer within this counts as failed.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// A running status probe; `finish` stops it and returns what it saw.
pub struct Probe {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Latencies>,
}

/// Latencies of the probes that were answered 200, and how many were not.
#[derive(Default)]
pub struct Latencies {
    pub sorted: Vec<Duration>,
    pub failed: usize,
}

impl Probe {
    pub fn start(base: &str) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let url = format!("{base}/api/status");
        // No pooled connections: each probe connects as a new visitor would.
        let client = reqwest::Client::builder()
            .no_proxy()
            .pool_max_idle_per_host(0)
            .timeout(PROBE_TIMEOUT)
            .build()
            .expect("http client");
        let task = {
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut seen = Latencies::default();
                while !stop.load(Ordering::Relaxed) {
                    let start = Instant::now();
                    let answered = match client.get(&url).send().await {
                        Ok(r) if r.status() == reqwest::StatusCode::OK => r.bytes().await.is_ok(),
                        _ => false,
                    };
                    let took = start.elapsed();
                    if answered {
                        seen.sorted.push(took);
                    } else {
                        seen.failed += 1;
                    }
                    tokio::time::sleep(PROBE_EVERY.saturating_sub(took)).await;
                }
                seen.sorted.sort_unstable();
                seen
            })
        };
        Self { stop, task }
    }

    pub async fn finish(self) -> Latencies {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap_or_default()
    }
}

impl Latencies {
    /// Nearest-rank percentile in ms, `p` in 0..=100.
    pub fn percentile_ms(&self, p: f64) -> Option<f64> {
        let n = self.sorted.len();
        if n == 0 {
            return None;
        }
        let rank = ((p / 100.0) * n as f64).ceil() as usize;
        Some(self.sorted[rank.clamp(1, n) - 1].as_secs_f64() * 1e3)
    }
}

/// How many requests ended how: a status code, or the kind of failure.
#[derive(Default, Clone)]
pub struct Tally(BTreeMap<String, usize>);

impl Tally {
    pub fn add(&mut self, outcome: impl Into<String>) {
        *self.0.entry(outcome.into()).or_default() += 1;
    }

    pub fn status(&mut self, status: u16) {
        self.add(status.to_string());
    }

    /// A reqwest failure, by kind.
    pub fn error(&mut self, e: &reqwest::Error) {
        self.add(if e.is_timeout() {
            "timeout"
        } else if e.is_connect() {
            "connect failed"
        } else {
            "broken"
        });
    }

    pub fn count(&self, outcome: &str) -> usize {
        self.0.get(outcome).copied().unwrap_or(0)
    }

    pub fn total(&self) -> usize {
        self.0.values().sum()
    }

    pub fn merge(&mut self, other: Tally) {
        for (outcome, n) in other.0 {
            *self.0.entry(outcome).or_default() += n;
        }
    }
}

impl std::fmt::Display for Tally {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_empty() {
            return f.write_str("nothing");
        }
        let parts: Vec<String> = self.0.iter().map(|(k, n)| format!("{k}×{n}")).collect();
        f.write_str(&parts.join(", "))
    }
}
