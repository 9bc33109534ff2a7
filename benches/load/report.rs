//! The report: the header, the tables printed at the end of a run and the same figures as JSON
//! (`target/load-bench.json`).

use std::time::Duration;

use serde_json::{Value, json};

use crate::measure::Measurement;
use crate::phases::Phases;
use crate::phases::fetch::{BIG_CLIENTS, BIG_FETCHES_PER_CLIENT, BIG_RSS_TARGET_MIB};
use crate::phases::ingest::IngestPhase;
use crate::phases::list::{FILL_CONCURRENCY, PER_PAGE, list_growth};
use crate::procfs;
use crate::server::ServerEnd;
use crate::stats::{fmt, mb, mib, ms};
use crate::{Args, QUIET_RSS_AFTER};

pub(crate) struct Header {
    /// `git describe --always --dirty`: a `-dirty` build has uncommitted changes.
    commit: String,
    nproc: usize,
    started_at: String,
    /// The machine's load average when the bench started; the bench shares the machine.
    load_at_start: Option<String>,
}

impl Header {
    pub(crate) fn collect() -> Self {
        Self {
            commit: crate::spawned::commit(),
            nproc: std::thread::available_parallelism().map_or(1, |n| n.get()),
            started_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            load_at_start: procfs::load_average(),
        }
    }

    pub(crate) fn print(&self) {
        println!(
            "imgvault load bench — commit {}, nproc {}, {}",
            self.commit, self.nproc, self.started_at
        );
    }
}

/// A server start: time to `listening on` and the RSS right then.
pub(crate) struct Start {
    pub(crate) startup: Duration,
    pub(crate) rss_kib: Option<u64>,
}

impl Start {
    fn json(&self) -> Value {
        json!({
            "to_listening_ms": ms(self.startup),
            "rss_mib": mib(self.rss_kib),
        })
    }
}

pub(crate) struct Restart {
    pub(crate) start: Start,
    pub(crate) end: ServerEnd,
}

pub(crate) struct Report {
    pub(crate) phases: Phases,
    pub(crate) first_start: Start,
    /// VmHWM of the first server at the end of the load phases.
    pub(crate) peak_rss_kib: Option<u64>,
    pub(crate) first_end: ServerEnd,
    pub(crate) restart: Restart,
}

fn print_table(title: &str, rows: &[&Measurement]) {
    println!();
    println!("--- {title}");
    println!(
        "{:<34} {:>6} {:>4} {:>9} {:>8} {:>8} {:>8} {:>10} {:>8}",
        "measurement",
        "count",
        "c",
        "per s",
        "p50 ms",
        "p99 ms",
        "mean ms",
        "CPU ms/req",
        "max RSS"
    );
    for m in rows {
        let s = &m.stats;
        println!(
            "{:<34} {:>6} {:>4} {:>9.1} {:>8.2} {:>8.2} {:>8.2} {:>10} {:>8}",
            m.name,
            s.count(),
            m.concurrency,
            s.per_second(),
            ms(s.percentile(50.0)),
            ms(s.percentile(99.0)),
            ms(s.mean()),
            fmt(m.cpu_ms_per_request(), 3),
            fmt(mib(m.usage.peak_rss_kib), 1) + " MiB",
        );
    }
}

impl Report {
    pub(crate) fn print(&self, args: &Args, header: &Header, wall: Duration) {
        println!();
        println!("=== imgvault load bench ===");
        println!("commit      {}", header.commit);
        println!("nproc       {}", header.nproc);
        println!("started     {}", header.started_at);
        println!("arguments   {}", args.command_line());
        println!("wall time   {:.1} s", wall.as_secs_f64());
        println!(
            "load avg    {} at start, {} at the end (1, 5, 15 min; the bench shares the machine)",
            header.load_at_start.as_deref().unwrap_or("n/a"),
            procfs::load_average().as_deref().unwrap_or("n/a")
        );
        self.print_ingest();
        self.print_disk();
        self.print_list();
        self.print_fetch();
        self.print_memory();
    }

    fn print_ingest(&self) {
        let ingest = &self.phases.ingest;
        let rows: Vec<&Measurement> = ingest.phases.iter().map(|p| &p.requests).collect();
        print_table(
            "ingest: ~250 KB JPEGs, anonymous POST /api/receive-image (JSON) or /api/upload-file \
             (multipart)",
            &rows,
        );
        println!(
            "{:>10} {:>4} {:>12} {:>10} {:>8} {:>24} {:>14}  thumbnails",
            "route",
            "c",
            "images MB/s",
            "wire MB/s",
            "mean KB",
            "incl. thumbs: CPU ms/img",
            "written B/B"
        );
        for p in &ingest.phases {
            println!(
                "{:>10} {:>4} {:>12.2} {:>10.2} {:>8.1} {:>24} {:>14}  {}",
                p.route.name(),
                p.requests.concurrency,
                p.mb_per_s(p.image_bytes),
                p.mb_per_s(p.wire_bytes),
                p.image_bytes as f64 / p.images() as f64 / 1000.0,
                fmt(p.with_thumbnails.cpu_ms_per(p.images()), 2),
                fmt(p.written_per_image_byte(), 2),
                p.settled.describe()
            );
        }
        println!(
            "JPEG quality {}; written B/B: bytes sent to storage per image byte, thumbnails \
             included",
            ingest.quality
        );
    }

    fn print_disk(&self) {
        let d = &self.phases.disk;
        println!();
        println!("--- disk, after ingest and thumbnails");
        println!(
            "payload       {:.1} MB: images {:.1} MB ({} images), thumbnails {:.1} MB ({} \
             stored, {} images are their own thumbnail)",
            mb(d.payload()),
            mb(d.image_bytes),
            self.phases.ingest.stored.len(),
            mb(d.thumbs.bytes),
            d.thumbs.stored,
            d.thumbs.originals
        );
        println!(
            "{:<34} {:>10} {:>10} {:>18}",
            "", "MB", "÷ images", "÷ images+thumbs"
        );
        let row = |name: &str, bytes: Option<u64>| {
            let (images, payload) = d.ratios(bytes);
            println!(
                "{name:<36} {:>10} {:>10} {:>18}",
                fmt(bytes.map(mb), 1),
                fmt(images, 3),
                fmt(payload, 3)
            );
        };
        row("written during ingest (write_bytes)", d.written);
        row("data file, apparent size", Some(d.apparent));
        row("data file, allocated size", d.allocated);
    }

    fn print_list(&self) {
        let list = &self.phases.list;
        let rows: Vec<&Measurement> = list
            .iter()
            .flat_map(|s| s.pages.iter().map(|r| &r.m))
            .collect();
        print_table("list: GET /api/user/images, 20 per page", &rows);
        for size in list {
            match &size.fill {
                Some(f) => println!(
                    "fill to {:>7}: {} tiny PNGs at c={FILL_CONCURRENCY} in {:.1} s ({:.0}/s, CPU \
                     {} ms/img), {}",
                    size.images,
                    f.stats.count(),
                    f.stats.wall.as_secs_f64(),
                    f.stats.per_second(),
                    fmt(f.cpu_ms_per_request(), 3),
                    size.settled.describe()
                ),
                None => println!("fill to {:>7}: none needed", size.images),
            }
        }
        let growth = list_growth(list);
        if list.len() > 1 {
            let parts: Vec<String> = growth
                .iter()
                .map(|(kind, r)| format!("{kind} {r:.2}×"))
                .collect();
            println!(
                "p99 at {} / p99 at {}: {}",
                list[list.len() - 1].images,
                list[0].images,
                parts.join(", ")
            );
        }
    }

    fn print_fetch(&self) {
        let p = &self.phases;
        print_table(
            "fetch: files of the ingested images; big PNGs; status",
            &[
                &p.thumbnails,
                &p.fetch,
                &p.big.upload,
                &p.big.fetch,
                &p.status,
            ],
        );
        let big = &p.big;
        println!(
            "big fetch: {} images of {} bytes, {} clients × {} fetches; {}; server RSS {} MiB at \
             the start, max {} MiB (target < {BIG_RSS_TARGET_MIB} MiB: {})",
            big.image_bytes.len(),
            big.image_bytes
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join("/"),
            BIG_CLIENTS,
            BIG_FETCHES_PER_CLIENT,
            big.settled.describe(),
            fmt(mib(big.fetch.usage.start_rss_kib), 1),
            fmt(big.peak_rss_mib(), 1),
            match big.within_target() {
                Some(true) => "ok",
                Some(false) => "OVER",
                None => "n/a",
            }
        );
    }

    fn print_memory(&self) {
        println!();
        println!("--- memory and start-up");
        println!(
            "idle RSS after start-up      {} MiB (listening {:.0} ms after spawn, empty file)",
            fmt(mib(self.first_start.rss_kib), 1),
            ms(self.first_start.startup)
        );
        println!(
            "RSS after ingest, quiet      {} MiB (the ingest phases settled, then {:.1} s)",
            fmt(mib(self.phases.quiet_rss_kib), 1),
            QUIET_RSS_AFTER.as_secs_f64()
        );
        println!(
            "peak RSS (VmHWM), all phases {} MiB",
            fmt(mib(self.peak_rss_kib), 1)
        );
        println!(
            "restart on the full file     listening {:.0} ms after spawn, RSS {} MiB ({} images)",
            ms(self.restart.start.startup),
            fmt(mib(self.restart.start.rss_kib), 1),
            self.phases.total_images
        );
        println!("first server   {}", self.first_end.summary());
        println!("restarted      {}", self.restart.end.summary());
    }

    pub(crate) fn json(&self, args: &Args, header: &Header, wall: Duration) -> Value {
        let p = &self.phases;
        json!({
            "commit": header.commit,
            "nproc": header.nproc,
            "started_at": header.started_at,
            "wall_s": wall.as_secs_f64(),
            "load_average_at_start": header.load_at_start,
            "load_average_at_end": procfs::load_average(),
            "args": args.json(),
            "clock_ticks_per_s": procfs::ticks_per_second(),
            "ingest": {
                "jpeg_quality": p.ingest.quality,
                "phases": p.ingest.phases.iter().map(IngestPhase::json).collect::<Vec<_>>(),
            },
            "disk": p.disk.json(),
            "thumbnails": p.thumbnails.json(),
            "list": p.list.iter().map(|size| json!({
                "images": size.images,
                "fill": size.fill.as_ref().map(Measurement::json),
                "thumbnails": size.settled.json(),
                "pages": size.pages.iter().map(|r| json!({
                    "which": r.label,
                    "page": r.page,
                    "pages": r.pages,
                    "per_page": PER_PAGE,
                    "measurement": r.m.json(),
                })).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "list_p99_growth": list_growth(&p.list)
                .into_iter()
                .map(|(kind, r)| json!({"kind": kind, "p99_largest_over_smallest": r}))
                .collect::<Vec<_>>(),
            "fetch": p.fetch.json(),
            "big_fetch": p.big.json(),
            "status": p.status.json(),
            "memory": {
                "idle_rss_mib": mib(self.first_start.rss_kib),
                "quiet_after_ingest_rss_mib": mib(p.quiet_rss_kib),
                "peak_rss_mib": mib(self.peak_rss_kib),
            },
            "startup": {
                "empty_file": self.first_start.json(),
                "full_file": self.restart.start.json(),
                "images_in_full_file": p.total_images,
            },
            "server": {
                "first": self.first_end.json(),
                "restarted": self.restart.end.json(),
            },
        })
    }
}
