//! Counters for monitoring, in the Prometheus text format on `/metrics`: requests and their
//! latency per route, uploads, thumbnails, sync, group commits, and the process's and data file's
//! size at scrape time.
//!
//! One process-wide set of atomics, as every Prometheus client keeps one registry: the places that
//! count (the request log, the writer, the media workers, sync) are far apart, and threading a
//! handle through each of them would buy nothing. Recording is a few relaxed atomic additions;
//! label values come from fixed lists (route templates, not paths; reasons named in code), so the
//! output stays the same size whatever clients send.

use std::fmt::Write as _;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Every route the server answers, as a template: `*` stands for one path segment. Literal
/// routes come before templates that would also match them. What matches none is `other`.
const ROUTES: &[&str] = &[
    "/api/status",
    "/api/auth/check",
    "/api/register",
    "/api/login",
    "/api/logout",
    "/api/user/profile",
    "/api/receive-image",
    "/api/upload-clipboard",
    "/api/upload-file",
    "/api/images/lookup",
    "/api/user/images",
    "/api/user/images/batch",
    "/api/user/images/*",
    "/api/user/images/*/edit",
    "/api/user/images/*/revert",
    "/api/user/images/*/tags",
    "/api/user/images/*/sources",
    "/api/user/images/*/similar",
    "/api/user/tags",
    "/api/user/stats",
    "/api/user/trash",
    "/api/user/trash/empty",
    "/api/user/duplicates",
    "/api/user/file-paths",
    "/api/user/*/file-paths",
    "/api/user/*/images/*",
    "/api/user/*/images/*/*",
    "/api/user/*/thumbnails/*",
    "/api/user/*/sync/status",
    "/api/task/*",
    "/api/cloud/sync",
    "/api/sync/user/*/manifest",
    "/api/sync/user/*",
    "/api/admin/backup",
    "/api/keys",
    "/api/keys/pairing-code",
    "/api/keys/pair",
    "/api/keys/*",
    "/api/openapi.json",
    "/metrics",
    "/extension.zip",
];
const OTHER_API: usize = ROUTES.len();
const STATIC: usize = ROUTES.len() + 1;
const ROUTE_COUNT: usize = ROUTES.len() + 2;

const METHODS: [&str; 5] = ["GET", "POST", "PUT", "DELETE", "other"];
const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// Upper bounds of the latency histograms, in seconds.
const LATENCY_BOUNDS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];
/// Upper bounds of the group-commit size histogram, in uploads.
const BATCH_BOUNDS: [f64; 8] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0];

/// Why an upload was refused, for `imgvault_upload_refusals_total{reason}`, by its status:
/// 400 a bad image or field, 401/403 no right to upload, 409 an idempotency key in conflict, 413
/// too large, 429 over a rate limit, 503 a memory limit, 507 no disk space.
const REFUSALS: [(&str, &[u16]); 8] = [
    ("invalid", &[400, 404, 415]),
    ("unauthorized", &[401, 403]),
    ("conflict", &[409]),
    ("too_large", &[413]),
    ("rate_limited", &[429]),
    ("busy", &[503]),
    ("no_space", &[507]),
    ("other", &[]),
];

/// The three upload routes, whose refusals are counted by reason.
const UPLOAD_ROUTES: [&str; 3] = [
    "/api/receive-image",
    "/api/upload-clipboard",
    "/api/upload-file",
];

/// A histogram of fixed bounds: a counter per bucket, the sum and the count.
struct Histogram<const N: usize> {
    bounds: &'static [f64; N],
    buckets: [AtomicU64; N],
    /// The sum in millionths (of seconds, or of whatever is counted).
    sum_micros: AtomicU64,
    count: AtomicU64,
}

impl<const N: usize> Histogram<N> {
    const fn new(bounds: &'static [f64; N]) -> Self {
        Self {
            bounds,
            buckets: [const { AtomicU64::new(0) }; N],
            sum_micros: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    fn observe(&self, value: f64) {
        if let Some(i) = self.bounds.iter().position(|&b| value <= b) {
            self.buckets[i].fetch_add(1, Relaxed);
        }
        self.sum_micros
            .fetch_add((value * 1e6).round() as u64, Relaxed);
        self.count.fetch_add(1, Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (bound, bucket) in self.bounds.iter().zip(&self.buckets) {
            cumulative += bucket.load(Relaxed);
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {cumulative}"
            );
        }
        let count = self.count.load(Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}");
        let braces = |s: &str| {
            if s.is_empty() {
                String::new()
            } else {
                format!("{{{s}}}")
            }
        };
        let sum = self.sum_micros.load(Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum{} {sum}", braces(labels));
        let _ = writeln!(out, "{name}_count{} {count}", braces(labels));
    }
}

struct RouteStats {
    /// Requests by method and status class.
    requests: [[AtomicU64; CLASSES.len()]; METHODS.len()],
    latency: Histogram<{ LATENCY_BOUNDS.len() }>,
}

/// Every counter of the process.
pub struct Metrics {
    routes: [RouteStats; ROUTE_COUNT],
    uploads_stored: AtomicU64,
    uploads_deduplicated: AtomicU64,
    upload_bytes: AtomicU64,
    refusals: [AtomicU64; REFUSALS.len()],
    thumbnails_made: AtomicU64,
    thumbnails_failed: AtomicU64,
    thumbnail_seconds: Histogram<{ LATENCY_BOUNDS.len() }>,
    sync_batches: AtomicU64,
    sync_bytes: AtomicU64,
    commit_uploads: Histogram<{ BATCH_BOUNDS.len() }>,
    commit_seconds: Histogram<{ LATENCY_BOUNDS.len() }>,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(|| Metrics {
    routes: std::array::from_fn(|_| RouteStats {
        requests: std::array::from_fn(|_| std::array::from_fn(|_| AtomicU64::new(0))),
        latency: Histogram::new(&LATENCY_BOUNDS),
    }),
    uploads_stored: AtomicU64::new(0),
    uploads_deduplicated: AtomicU64::new(0),
    upload_bytes: AtomicU64::new(0),
    refusals: std::array::from_fn(|_| AtomicU64::new(0)),
    thumbnails_made: AtomicU64::new(0),
    thumbnails_failed: AtomicU64::new(0),
    thumbnail_seconds: Histogram::new(&LATENCY_BOUNDS),
    sync_batches: AtomicU64::new(0),
    sync_bytes: AtomicU64::new(0),
    commit_uploads: Histogram::new(&BATCH_BOUNDS),
    commit_seconds: Histogram::new(&LATENCY_BOUNDS),
});

/// The process's counters.
pub fn get() -> &'static Metrics {
    &METRICS
}

/// `ROUTES` split into segments once.
static TEMPLATES: LazyLock<Vec<Vec<&'static str>>> =
    LazyLock::new(|| ROUTES.iter().map(|r| r.split('/').collect()).collect());

/// The index in `ROUTES` of the template `path` matches; `OTHER_API` or `STATIC` otherwise. Runs
/// on every request: the path is split once and compared segment by segment, templates of another
/// length skipped at once.
fn route_of(path: &str) -> usize {
    const MOST: usize = 8;
    let path = path
        .strip_suffix('/')
        .filter(|p| !p.is_empty())
        .unwrap_or(path);
    let fallback = if path.starts_with("/api/") {
        OTHER_API
    } else {
        STATIC
    };
    let mut segments = [""; MOST];
    let mut n = 0;
    for segment in path.split('/') {
        if n == MOST {
            return fallback;
        }
        segments[n] = segment;
        n += 1;
    }
    let segments = &segments[..n];
    TEMPLATES
        .iter()
        .position(|t| t.len() == n && t.iter().zip(segments).all(|(t, s)| *t == "*" || t == s))
        .unwrap_or(fallback)
}

fn route_name(index: usize) -> &'static str {
    match index {
        OTHER_API => "other",
        STATIC => "static",
        i => ROUTES[i],
    }
}

impl Metrics {
    /// One answered request.
    pub fn request(&self, method: &str, path: &str, status: u16, elapsed: Duration) {
        let index = route_of(path);
        let route = &self.routes[index];
        let method = METHODS
            .iter()
            .position(|m| *m == method)
            .unwrap_or(METHODS.len() - 1);
        let class = usize::from((status / 100).clamp(1, 5)) - 1;
        route.requests[method][class].fetch_add(1, Relaxed);
        route.latency.observe(elapsed.as_secs_f64());
        if status >= 400 && UPLOAD_ROUTES.contains(&route_name(index)) {
            let reason = REFUSALS
                .iter()
                .position(|(_, statuses)| statuses.contains(&status))
                .unwrap_or(REFUSALS.len() - 1);
            self.refusals[reason].fetch_add(1, Relaxed);
        }
    }

    /// An upload of `bytes` stored: `deduplicated` when its bytes were stored already.
    pub fn upload(&self, bytes: u64, deduplicated: bool) {
        let counter = match deduplicated {
            true => &self.uploads_deduplicated,
            false => &self.uploads_stored,
        };
        counter.fetch_add(1, Relaxed);
        self.upload_bytes.fetch_add(bytes, Relaxed);
    }

    /// A thumbnail made (or failed) in `took`.
    pub fn thumbnail(&self, made: bool, took: Duration) {
        match made {
            true => &self.thumbnails_made,
            false => &self.thumbnails_failed,
        }
        .fetch_add(1, Relaxed);
        self.thumbnail_seconds.observe(took.as_secs_f64());
    }

    /// A sync batch sent to the hub with `bytes` of image files.
    pub fn sync_batch(&self, bytes: u64) {
        self.sync_batches.fetch_add(1, Relaxed);
        self.sync_bytes.fetch_add(bytes, Relaxed);
    }

    /// A group commit of `uploads` uploads that took `took`.
    pub fn commit(&self, uploads: usize, took: Duration) {
        self.commit_uploads.observe(uploads as f64);
        self.commit_seconds.observe(took.as_secs_f64());
    }

    /// The whole text exposition, with `gauges` read at scrape time.
    pub fn render(&self, gauges: &Gauges) -> String {
        let mut out = String::with_capacity(32 * 1024);
        header(
            &mut out,
            "imgvault_http_requests_total",
            "counter",
            "Requests answered, by route template, method and status class.",
        );
        for (i, route) in self.routes.iter().enumerate() {
            for (m, by_class) in route.requests.iter().enumerate() {
                for (c, n) in by_class.iter().enumerate() {
                    let n = n.load(Relaxed);
                    if n > 0 {
                        let _ = writeln!(
                            out,
                            "imgvault_http_requests_total{{route=\"{}\",method=\"{}\",status=\"{}\"}} {n}",
                            route_name(i),
                            METHODS[m],
                            CLASSES[c]
                        );
                    }
                }
            }
        }
        header(
            &mut out,
            "imgvault_http_request_duration_seconds",
            "histogram",
            "Time from a request's head to its answer, by route template.",
        );
        for (i, route) in self.routes.iter().enumerate() {
            if route.latency.count.load(Relaxed) > 0 {
                route.latency.render(
                    &mut out,
                    "imgvault_http_request_duration_seconds",
                    &format!("route=\"{}\"", route_name(i)),
                );
            }
        }
        header(
            &mut out,
            "imgvault_uploads_total",
            "counter",
            "Uploads stored, by whether their bytes were new or stored already.",
        );
        let _ = writeln!(
            out,
            "imgvault_uploads_total{{bytes=\"new\"}} {}",
            self.uploads_stored.load(Relaxed)
        );
        let _ = writeln!(
            out,
            "imgvault_uploads_total{{bytes=\"deduplicated\"}} {}",
            self.uploads_deduplicated.load(Relaxed)
        );
        counter(
            &mut out,
            "imgvault_upload_bytes_total",
            "Bytes of the images uploaded and stored.",
            self.upload_bytes.load(Relaxed),
        );
        header(
            &mut out,
            "imgvault_upload_refusals_total",
            "counter",
            "Uploads refused, by reason.",
        );
        for ((reason, _), n) in REFUSALS.iter().zip(&self.refusals) {
            let _ = writeln!(
                out,
                "imgvault_upload_refusals_total{{reason=\"{reason}\"}} {}",
                n.load(Relaxed)
            );
        }
        header(
            &mut out,
            "imgvault_thumbnails_total",
            "counter",
            "Thumbnails made, and sources that could not be made into one.",
        );
        let _ = writeln!(
            out,
            "imgvault_thumbnails_total{{outcome=\"made\"}} {}",
            self.thumbnails_made.load(Relaxed)
        );
        let _ = writeln!(
            out,
            "imgvault_thumbnails_total{{outcome=\"failed\"}} {}",
            self.thumbnails_failed.load(Relaxed)
        );
        header(
            &mut out,
            "imgvault_thumbnail_duration_seconds",
            "histogram",
            "Time to make one thumbnail (decode, resize, encode).",
        );
        self.thumbnail_seconds
            .render(&mut out, "imgvault_thumbnail_duration_seconds", "");
        gauge(
            &mut out,
            "imgvault_thumbnail_queue",
            "Images waiting in the thumbnail queue.",
            gauges.thumbnail_queue as f64,
        );
        counter(
            &mut out,
            "imgvault_sync_batches_total",
            "Batches sent to the hub by cloud sync.",
            self.sync_batches.load(Relaxed),
        );
        counter(
            &mut out,
            "imgvault_sync_bytes_total",
            "Bytes of image files sent to the hub.",
            self.sync_bytes.load(Relaxed),
        );
        header(
            &mut out,
            "imgvault_commit_uploads",
            "histogram",
            "Uploads stored per group commit.",
        );
        self.commit_uploads
            .render(&mut out, "imgvault_commit_uploads", "");
        header(
            &mut out,
            "imgvault_commit_duration_seconds",
            "histogram",
            "Time of one group commit, fsync included.",
        );
        self.commit_seconds
            .render(&mut out, "imgvault_commit_duration_seconds", "");
        gauge(
            &mut out,
            "imgvault_images",
            "Live images on the server.",
            gauges.images as f64,
        );
        gauge(
            &mut out,
            "imgvault_data_file_bytes",
            "Size of the data file.",
            gauges.data_file_bytes as f64,
        );
        gauge(
            &mut out,
            "imgvault_disk_free_bytes",
            "Free space on the data file's disk.",
            gauges.disk_free_bytes as f64,
        );
        gauge(
            &mut out,
            "imgvault_process_resident_memory_bytes",
            "Resident memory of the server process.",
            gauges.resident_bytes as f64,
        );
        out
    }
}

/// What is read at scrape time rather than counted.
#[derive(Debug, Default, Clone)]
pub struct Gauges {
    pub images: u64,
    pub thumbnail_queue: usize,
    pub data_file_bytes: u64,
    pub disk_free_bytes: u64,
    pub resident_bytes: u64,
}

/// Resident memory of this process (`VmRSS`), 0 where `/proc` does not say.
pub fn resident_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
            let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kib * 1024)
        })
        .unwrap_or(0)
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn counter(out: &mut String, name: &str, help: &str, value: u64) {
    header(out, name, "counter", help);
    let _ = writeln!(out, "{name} {value}");
}

fn gauge(out: &mut String, name: &str, help: &str, value: f64) {
    header(out, name, "gauge", help);
    let _ = writeln!(out, "{name} {value}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_to_their_templates_and_nothing_else_makes_a_label() {
        let name = |p| route_name(route_of(p));
        assert_eq!(name("/api/status"), "/api/status");
        assert_eq!(name("/api/user/images/batch"), "/api/user/images/batch");
        assert_eq!(name("/api/user/images/i-123"), "/api/user/images/*");
        assert_eq!(name("/api/user/images/i-1/edit"), "/api/user/images/*/edit");
        assert_eq!(
            name("/api/user/u1/images/clothes/a.png"),
            "/api/user/*/images/*/*"
        );
        assert_eq!(name("/api/keys/pair"), "/api/keys/pair");
        assert_eq!(name("/api/keys/k-1"), "/api/keys/*");
        assert_eq!(name("/api/whatever/../x"), "other");
        assert_eq!(name("/assets/app.js"), "static");
        assert_eq!(name("/"), "static");
    }

    #[test]
    fn histograms_are_cumulative_and_every_family_is_rendered() {
        let metrics = get();
        metrics.request("GET", "/api/status", 200, Duration::from_micros(700));
        metrics.request("GET", "/api/status", 503, Duration::from_millis(30));
        metrics.commit(3, Duration::from_millis(4));
        let text = metrics.render(&Gauges::default());
        assert!(text.contains(
            "imgvault_http_request_duration_seconds_bucket{route=\"/api/status\",le=\"0.001\"}"
        ));
        assert!(text.contains(
            "imgvault_http_requests_total{route=\"/api/status\",method=\"GET\",status=\"5xx\"}"
        ));
        assert!(text.contains("imgvault_commit_uploads_bucket{le=\"4\"}"));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let value = line.rsplit(' ').next().unwrap();
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
    }
}
