//! One progress line on standard error for long commands (backups, imports, exports), redrawn in
//! place a few times a second. Drawn only when standard error is a terminal, so logs and scripts
//! never see it.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use super::human_bytes;

const REDRAW_EVERY: Duration = Duration::from_millis(100);

#[derive(Clone, Copy)]
pub enum Unit {
    Bytes,
    Files,
}

pub struct Progress {
    label: String,
    total: Option<u64>,
    unit: Unit,
    done: u64,
    drawn_at: Option<Instant>,
    enabled: bool,
}

impl Progress {
    /// A progress line saying `label`, counting `unit`s up to `total` if it is known.
    pub fn new(label: impl Into<String>, total: Option<u64>, unit: Unit) -> Self {
        Self {
            label: label.into(),
            total,
            unit,
            done: 0,
            drawn_at: None,
            enabled: std::io::stderr().is_terminal(),
        }
    }

    pub fn set(&mut self, done: u64) {
        self.done = done;
        if self.enabled && self.drawn_at.is_none_or(|at| at.elapsed() >= REDRAW_EVERY) {
            self.draw();
        }
    }

    pub fn add(&mut self, n: u64) {
        self.set(self.done + n);
    }

    /// Clears the line, so what is printed next starts clean.
    pub fn finish(&mut self) {
        if self.enabled && self.drawn_at.is_some() {
            eprint!("\r\x1b[K");
            let _ = std::io::stderr().flush();
        }
        self.enabled = false;
    }

    fn amount(&self, n: u64) -> String {
        match self.unit {
            Unit::Bytes => human_bytes(n),
            Unit::Files => n.to_string(),
        }
    }

    fn draw(&mut self) {
        self.drawn_at = Some(Instant::now());
        let line = match self.total {
            Some(total) if total > 0 => {
                let percent = (self.done.saturating_mul(100) / total).min(100);
                let filled = (percent / 5) as usize;
                format!(
                    "{} [{}{}] {percent:>3}% {} / {}",
                    self.label,
                    "#".repeat(filled),
                    " ".repeat(20 - filled),
                    self.amount(self.done),
                    self.amount(total.max(self.done)),
                )
            }
            _ => format!("{} {}", self.label, self.amount(self.done)),
        };
        eprint!("\r\x1b[K{line}");
        let _ = std::io::stderr().flush();
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}
