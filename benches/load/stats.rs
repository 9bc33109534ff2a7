//! Latency statistics of a measurement, and the units the figures are shown in.

use std::time::Duration;

use serde_json::{Value, json};

/// Latencies of one measurement, sorted, and the wall-clock time the measurement took.
pub(crate) struct Stats {
    sorted: Vec<Duration>,
    pub(crate) wall: Duration,
}

impl Stats {
    pub(crate) fn new(mut samples: Vec<Duration>, wall: Duration) -> Self {
        samples.sort_unstable();
        Self {
            sorted: samples,
            wall,
        }
    }

    pub(crate) fn count(&self) -> usize {
        self.sorted.len()
    }

    /// Nearest-rank percentile, `p` in 0..=100.
    pub(crate) fn percentile(&self, p: f64) -> Duration {
        let n = self.sorted.len();
        if n == 0 {
            return Duration::ZERO;
        }
        let rank = ((p / 100.0) * n as f64).ceil() as usize;
        self.sorted[rank.clamp(1, n) - 1]
    }

    pub(crate) fn mean(&self) -> Duration {
        match self.sorted.len() {
            0 => Duration::ZERO,
            n => self.sorted.iter().sum::<Duration>() / n as u32,
        }
    }

    pub(crate) fn per_second(&self) -> f64 {
        self.count() as f64 / self.wall.as_secs_f64()
    }

    pub(crate) fn json(&self) -> Value {
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

pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

pub(crate) fn mib(kib: Option<u64>) -> Option<f64> {
    kib.map(|k| k as f64 / 1024.0)
}

pub(crate) fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

/// A figure with `decimals` places, or `n/a`.
pub(crate) fn fmt(value: Option<f64>, decimals: usize) -> String {
    value.map_or_else(|| "n/a".to_string(), |v| format!("{v:.decimals$}"))
}

/// `a / b`, `None` if either is missing or `b` is zero.
pub(crate) fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b != 0.0 => Some(a / b),
        _ => None,
    }
}
