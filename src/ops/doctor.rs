//! `imgvault doctor`: whether this installation is healthy, and what to do where it is not. It
//! takes the same flags and `IMGVAULT_*` variables as `serve`, so run with the service's
//! environment it looks at what the service uses. It changes nothing: the data file is opened
//! read-only (and not at all while a server holds it), the server is only asked `/api/status`.
//! The server holding the file is found through `/proc` (Linux), so that it is looked at where it
//! really listens even when doctor is given other flags.
//!
//! One line per finding, `ok`, `warn` or `FAIL`; the exit status is 1 when anything failed.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::time::{Duration, SystemTime};

use super::{OpsError, Outcome, human_bytes};
use crate::cli::ServeArgs;
use crate::clock::{self, DAY, Micros};
use crate::config::Config;
use crate::store::inspect::{InspectError, Inspection, RECENT_DAYS, inspect};
use crate::store::{SCHEMA_VERSION, disk};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Level {
    Ok,
    Warn,
    Fail,
}

#[derive(Debug)]
struct Finding {
    level: Level,
    topic: &'static str,
    text: String,
}

#[derive(Default)]
struct Report(Vec<Finding>);

impl Report {
    fn add(&mut self, level: Level, topic: &'static str, text: impl Into<String>) {
        self.0.push(Finding {
            level,
            topic,
            text: text.into(),
        });
    }
}

/// How long a probe of the server may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// Free space below this, beyond `--min-free-mb`, is worth a warning.
const FREE_WARNING: u64 = 1 << 30;
/// A clock this far behind the newest image's time has gone backwards.
const CLOCK_SLACK: Micros = 5 * 60 * clock::SECOND;

pub(super) fn run(args: ServeArgs) -> Result<Outcome, OpsError> {
    let config = args.into_config();
    let report = examine(&config);
    for finding in &report.0 {
        let label = match finding.level {
            Level::Ok => "ok  ",
            Level::Warn => "warn",
            Level::Fail => "FAIL",
        };
        println!("{label}  {}: {}", finding.topic, finding.text);
    }
    let worst = report.0.iter().map(|f| f.level).max().unwrap_or(Level::Ok);
    let count = |level| report.0.iter().filter(|f| f.level == level).count();
    println!(
        "{} problem(s), {} warning(s)",
        count(Level::Fail),
        count(Level::Warn)
    );
    Ok(match worst {
        Level::Fail => Outcome::Problems,
        _ => Outcome::Done,
    })
}

fn examine(config: &Config) -> Report {
    let mut report = Report::default();
    let now = clock::now();
    let (inspection, held) = data_file(config, now, &mut report);
    disk_space(config, inspection.as_ref(), &mut report);
    backups(config, &mut report);
    listen(config, held, &mut report);
    clock_check(now, inspection.as_ref(), &mut report);
    report
}

/// The data file: there, readable, held by a server or not, and its schema version.
fn data_file(config: &Config, now: Micros, report: &mut Report) -> (Option<Inspection>, bool) {
    let path = &config.data;
    let shown = path.display();
    let Ok(meta) = std::fs::metadata(path) else {
        report.add(
            Level::Warn,
            "data file",
            format!(
                "there is no data file at {shown} yet: the first `imgvault serve` creates it \
                 (if you have one elsewhere, set --data or IMGVAULT_DATA)"
            ),
        );
        return (None, false);
    };
    if !meta.is_file() {
        report.add(Level::Fail, "data file", format!("{shown} is not a file"));
        return (None, false);
    }
    let size = human_bytes(meta.len());
    match inspect(path, now) {
        Err(InspectError::Held) => {
            report.add(
                Level::Ok,
                "data file",
                format!("{shown} ({size}) is held by a running server; its schema is the server's"),
            );
            (None, true)
        }
        Err(InspectError::NeedsRepair) => {
            report.add(
                Level::Warn,
                "data file",
                format!(
                    "{shown} ({size}) was not closed cleanly (a crash or power cut); the next \
                     server start repairs it, which takes a moment on a large file"
                ),
            );
            (None, false)
        }
        Err(InspectError::Store(e)) => {
            report.add(
                Level::Fail,
                "data file",
                format!("{shown} cannot be read: {e} (check its permissions, or restore a backup)"),
            );
            (None, false)
        }
        Ok(found) => {
            report.add(
                Level::Ok,
                "data file",
                format!("{shown} ({size}) is readable, {} images", found.images),
            );
            schema(found.schema_version, report);
            (Some(found), false)
        }
    }
}

fn schema(version: Option<u64>, report: &mut Report) {
    match version {
        Some(v) if v == SCHEMA_VERSION => {
            report.add(Level::Ok, "schema", format!("version {v}, this build's"))
        }
        Some(v) if v < SCHEMA_VERSION => report.add(
            Level::Warn,
            "schema",
            format!(
                "version {v}: the next start upgrades it to {SCHEMA_VERSION}, and older \
                 builds cannot open it afterwards; take a backup first (`imgvault backup DIR`)"
            ),
        ),
        Some(v) => report.add(
            Level::Fail,
            "schema",
            format!(
                "version {v} was written by a newer imgvault (this build knows {SCHEMA_VERSION}); \
                 run the newer binary"
            ),
        ),
        None => report.add(
            Level::Fail,
            "schema",
            "the file has no schema version: it is not an imgvault data file, or its first start \
             never finished",
        ),
    }
}

/// Free space under the data file against `--min-free-mb`, and how long it lasts at the rate
/// images arrived lately.
fn disk_space(config: &Config, inspection: Option<&Inspection>, report: &mut Report) {
    let dir = match config.data.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let free = match disk::free_bytes(&dir) {
        Ok(free) => free,
        Err(e) => {
            report.add(
                Level::Fail,
                "disk",
                format!("free space under {} unknown: {e}", dir.display()),
            );
            return;
        }
    };
    let floor = config.min_free_bytes;
    let usable = free.saturating_sub(floor);
    let trend = inspection.filter(|i| i.recent_bytes > 0).map(|i| {
        let per_day = i.recent_bytes as f64 / RECENT_DAYS as f64;
        (per_day, usable as f64 / per_day)
    });
    let trend_text = match trend {
        Some((per_day, days)) => format!(
            "; at the last {RECENT_DAYS} days' rate ({}/day) that lasts about {} days",
            human_bytes(per_day as u64),
            days.floor() as u64
        ),
        None if inspection.is_some() => format!("; no images saved in the last {RECENT_DAYS} days"),
        None => String::new(),
    };
    let text = format!(
        "{} free under {} (uploads stop below {}, --min-free-mb){trend_text}",
        human_bytes(free),
        dir.display(),
        human_bytes(floor)
    );
    let level = if free < floor {
        Level::Fail
    } else if usable < FREE_WARNING || trend.is_some_and(|(_, days)| days < 30.0) {
        Level::Warn
    } else {
        Level::Ok
    };
    report.add(level, "disk", text);
}

/// The scheduled backups: configured, their directory there, and the newest one recent.
fn backups(config: &Config, report: &mut Report) {
    let Some(schedule) = &config.backups else {
        report.add(
            Level::Warn,
            "backups",
            "no scheduled backups: set --backup-dir (IMGVAULT_BACKUP_DIR) on another disk, \
             or take them yourself with `imgvault backup DIR`",
        );
        return;
    };
    let dir = schedule.dir.display();
    let newest = match crate::backups::newest(&schedule.dir) {
        Ok(newest) => newest,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            report.add(
                Level::Warn,
                "backups",
                format!("{dir} does not exist yet: the server creates it at start"),
            );
            return;
        }
        Err(e) => {
            report.add(Level::Fail, "backups", format!("{dir} cannot be read: {e}"));
            return;
        }
    };
    let Some((file, taken)) = newest else {
        report.add(
            Level::Warn,
            "backups",
            format!("no backup in {dir} yet (the running server takes one at start)"),
        );
        return;
    };
    let age = SystemTime::now()
        .duration_since(taken)
        .unwrap_or(Duration::ZERO);
    let text = format!(
        "newest is {} ({} old; one every {})",
        file.display(),
        human_duration(age),
        human_duration(schedule.every)
    );
    if age > schedule.every * 2 + Duration::from_secs(3600) {
        report.add(
            Level::Fail,
            "backups",
            format!(
                "{text}: backups have stopped; is the server running, and is there room in {dir}?"
            ),
        );
    } else {
        report.add(Level::Ok, "backups", text);
    }
}

/// Whether a server answers on the listen address, and whether other machines can reach it. The
/// server holding the data file is looked at where it really listens, when that can be found.
fn listen(config: &Config, held: bool, report: &mut Report) {
    let found = if held {
        holder(&config.data).and_then(|h| h.answering())
    } else {
        None
    };
    let addr = found.as_ref().map_or(config.listen, |f| f.addr);
    let local = reachable_here(addr);
    match found {
        Some(found) if found.addr != config.listen => report.add(
            Level::Ok,
            "server",
            format!(
                "an imgvault server (pid {}) answers at http://{local} ({} images); it listens on \
                 {}, not on {} (--listen, IMGVAULT_LISTEN)",
                found.pid, found.images, found.addr, config.listen
            ),
        ),
        Some(found) => report.add(
            Level::Ok,
            "server",
            format!(
                "an imgvault server (pid {}) answers at http://{local} ({} images)",
                found.pid, found.images
            ),
        ),
        None => listen_configured(config, held, local, report),
    }
    network(addr, held, local, report);
}

/// The server as the configuration says it listens: answering there, not running, or held by
/// something doctor could not look into (another user's process).
fn listen_configured(config: &Config, held: bool, local: SocketAddr, report: &mut Report) {
    let addr = config.listen;
    match probe(local) {
        Some(images) => report.add(
            Level::Ok,
            "server",
            format!("an imgvault server answers at http://{local} ({images} images)"),
        ),
        None if held => report.add(
            Level::Warn,
            "server",
            format!(
                "the data file is held, but no imgvault answers at http://{local}: another \
                 --listen address, or another program holds the file"
            ),
        ),
        None => match TcpListener::bind(addr) {
            Ok(_) => report.add(
                Level::Ok,
                "server",
                format!("not running; {addr} is free for `imgvault serve`"),
            ),
            Err(e) => report.add(
                Level::Fail,
                "server",
                format!(
                    "not running, and {addr} cannot be used: {e} (another program has the port?)"
                ),
            ),
        },
    }
}

/// Whether other machines can reach `addr`.
fn network(addr: SocketAddr, held: bool, local: SocketAddr, report: &mut Report) {
    if addr.ip().is_loopback() {
        report.add(
            Level::Warn,
            "network",
            format!(
                "{addr} is reachable from this machine only; for phones and other computers \
                 on the LAN use --listen 0.0.0.0:{}",
                addr.port()
            ),
        );
        return;
    }
    let Some(lan) = lan_address(addr.ip()) else {
        report.add(
            Level::Warn,
            "network",
            "this machine has no LAN address (no route to a private network)",
        );
        return;
    };
    let target = SocketAddr::new(lan, addr.port());
    if !addr.ip().is_unspecified() && addr.ip() != lan {
        report.add(
            Level::Ok,
            "network",
            format!("listening on {addr} (this machine's LAN address is {lan})"),
        );
    } else if TcpStream::connect_timeout(&target, PROBE_TIMEOUT).is_ok() {
        report.add(
            Level::Ok,
            "network",
            format!("reachable on the LAN at http://{target}"),
        );
    } else if held || probe(local).is_some() {
        report.add(
            Level::Fail,
            "network",
            format!("nothing answers at http://{target} although the server runs: a firewall?"),
        );
    } else {
        report.add(
            Level::Ok,
            "network",
            format!("once started, other machines reach it at http://{target}"),
        );
    }
}

/// Where this machine reaches a server listening on `addr` (loopback for an unspecified address).
fn reachable_here(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        ip if ip.is_unspecified() => SocketAddr::new(loopback_of(ip), addr.port()),
        _ => addr,
    }
}

fn loopback_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => IpAddr::from([127, 0, 0, 1]),
        IpAddr::V6(_) => IpAddr::from([0, 0, 0, 0, 0, 0, 0, 1]),
    }
}

/// The address this machine uses towards a private network: connecting a UDP socket sends
/// nothing, it only picks the route and so the local address.
fn lan_address(listen: IpAddr) -> Option<IpAddr> {
    let (bind, towards): (IpAddr, SocketAddr) = match listen {
        IpAddr::V4(_) => ([0, 0, 0, 0].into(), SocketAddr::from(([192, 168, 0, 1], 9))),
        IpAddr::V6(_) => (
            [0u16; 8].into(),
            SocketAddr::from(([0xfd00, 0, 0, 0, 0, 0, 0, 1], 9)),
        ),
    };
    let socket = UdpSocket::bind(SocketAddr::new(bind, 0)).ok()?;
    socket.connect(towards).ok()?;
    let ip = socket.local_addr().ok()?.ip();
    (!ip.is_unspecified() && !ip.is_loopback()).then_some(ip)
}

/// `total_images` of the imgvault answering `GET /api/status` at `addr`; `None` when nothing
/// answers, or something that is not imgvault.
fn probe(addr: SocketAddr) -> Option<u64> {
    let mut stream = TcpStream::connect_timeout(&addr, PROBE_TIMEOUT).ok()?;
    stream.set_read_timeout(Some(PROBE_TIMEOUT)).ok()?;
    stream.set_write_timeout(Some(PROBE_TIMEOUT)).ok()?;
    write!(
        stream,
        "GET /api/status HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut answer = Vec::new();
    stream.take(64 * 1024).read_to_end(&mut answer).ok()?;
    let text = String::from_utf8_lossy(&answer);
    let (_, body) = text.split_once("\r\n\r\n")?;
    let status: serde_json::Value = serde_json::from_str(body.trim()).ok()?;
    (status["status"] == "running").then_some(())?;
    status["total_images"].as_u64()
}

/// The process holding the data file and the TCP addresses it listens on, read from `/proc`
/// (Linux). `None` elsewhere, or when the holder is another user's process, whose open files only
/// root may list.
struct Holder {
    pid: u32,
    listening: Vec<SocketAddr>,
}

/// The holder's address that answers as imgvault (its metrics port, if any, does not).
struct Answering {
    pid: u32,
    addr: SocketAddr,
    images: u64,
}

impl Holder {
    fn answering(&self) -> Option<Answering> {
        self.listening.iter().find_map(|&addr| {
            probe(reachable_here(addr)).map(|images| Answering {
                pid: self.pid,
                addr,
                images,
            })
        })
    }
}

#[cfg(target_os = "linux")]
fn holder(data: &std::path::Path) -> Option<Holder> {
    let data = std::fs::canonicalize(data).ok()?;
    let me = std::process::id();
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        let mut holds = false;
        let mut sockets = std::collections::HashSet::new();
        for fd in fds.flatten() {
            let Ok(target) = std::fs::read_link(fd.path()) else {
                continue;
            };
            if target == data {
                holds = true;
            } else if let Some(inode) = target
                .to_str()
                .and_then(|t| t.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok())
            {
                sockets.insert(inode);
            }
        }
        if holds {
            let mut listening = Vec::new();
            for table in ["net/tcp", "net/tcp6"] {
                if let Ok(text) = std::fs::read_to_string(entry.path().join(table)) {
                    listening.extend(
                        text.lines()
                            .skip(1)
                            .filter_map(|line| listening_socket(line, &sockets)),
                    );
                }
            }
            return Some(Holder { pid, listening });
        }
    }
    None
}

#[cfg(not(target_os = "linux"))]
fn holder(_data: &std::path::Path) -> Option<Holder> {
    None
}

/// The local address of a line of `/proc/PID/net/tcp{,6}` if it is a listening socket (state
/// `0A`) whose inode is one of `sockets`. Addresses are hex of the kernel's 32-bit words in
/// native byte order, the port hex in host order.
fn listening_socket(line: &str, sockets: &std::collections::HashSet<u64>) -> Option<SocketAddr> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let (local, state, inode) = (fields.get(1)?, fields.get(3)?, fields.get(9)?);
    if *state != "0A" || !sockets.contains(&inode.parse::<u64>().ok()?) {
        return None;
    }
    let (ip, port) = local.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let words: Vec<[u8; 4]> = (0..ip.len() / 8)
        .map(|i| {
            let word = u32::from_str_radix(ip.get(i * 8..i * 8 + 8)?, 16).ok()?;
            Some(word.to_ne_bytes())
        })
        .collect::<Option<_>>()?;
    let ip = match words.as_slice() {
        [v4] => IpAddr::from(*v4),
        [a, b, c, d] => {
            let mut v6 = [0u8; 16];
            for (chunk, word) in v6.chunks_mut(4).zip([a, b, c, d]) {
                chunk.copy_from_slice(word);
            }
            IpAddr::from(v6)
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// The clock: plausible, and not behind the newest image (which a clock set back would be).
fn clock_check(now: Micros, inspection: Option<&Inspection>, report: &mut Report) {
    let shown = clock::display(now);
    if now < 1_704_067_200 * clock::SECOND {
        report.add(
            Level::Fail,
            "clock",
            format!("{shown} is before 2024: the clock is not set (no network time?)"),
        );
        return;
    }
    if let Some(newest) = inspection.and_then(|i| i.newest_saved_at)
        && newest > now + CLOCK_SLACK
    {
        report.add(
            Level::Fail,
            "clock",
            format!(
                "{shown} is behind the newest image ({}): the clock went backwards, so new \
                 images sort before old ones; set the time (NTP)",
                clock::display(newest)
            ),
        );
        return;
    }
    report.add(Level::Ok, "clock", format!("{shown} (local time)"));
}

/// `3 d 4 h`, `25 min`: durations as people read them.
fn human_duration(d: Duration) -> String {
    let secs = d.as_secs();
    let day = DAY as u64 / clock::SECOND as u64;
    match secs {
        s if s >= day => format!("{} d {} h", s / day, s % day / 3600),
        s if s >= 3600 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        s if s >= 60 => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(target_endian = "little")]
    fn proc_net_tcp_lines_give_the_listening_sockets_of_the_holder_only() {
        let ours = std::collections::HashSet::from([4242u64, 77]);
        let v4 = "   1: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  \
                  1000        0 4242 1 0000000000000000 100 0 0 10 0";
        assert_eq!(
            listening_socket(v4, &ours),
            Some("127.0.0.1:8080".parse().unwrap())
        );
        let any = "   2: 00000000:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000  \
                   1000        0 77 1 0000000000000000 100 0 0 10 0";
        assert_eq!(
            listening_socket(any, &ours),
            Some("0.0.0.0:80".parse().unwrap())
        );
        let v6 = "   0: 00000000000000000000000001000000:1F90 00000000000000000000000000000000:0000 \
                  0A 00000000:00000000 00:00000000 00000000  1000        0 4242 1 0000000000000000";
        assert_eq!(
            listening_socket(v6, &ours),
            Some("[::1]:8080".parse().unwrap())
        );
        // Another process's socket, a connection rather than a listener, and the header line.
        let theirs = v4.replace(" 4242 ", " 4243 ");
        assert_eq!(listening_socket(&theirs, &ours), None);
        let established = v4.replace(" 0A ", " 01 ");
        assert_eq!(listening_socket(&established, &ours), None);
        let header = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode";
        assert_eq!(listening_socket(header, &ours), None);
    }

    #[test]
    fn durations_read_like_people_say_them() {
        assert_eq!(human_duration(Duration::from_secs(59)), "59 s");
        assert_eq!(human_duration(Duration::from_secs(25 * 60)), "25 min");
        assert_eq!(human_duration(Duration::from_secs(26 * 3600)), "1 d 2 h");
    }

    #[test]
    fn schemas_older_newer_and_missing_are_told_apart() {
        let mut report = Report::default();
        schema(Some(SCHEMA_VERSION), &mut report);
        schema(Some(SCHEMA_VERSION - 1), &mut report);
        schema(Some(SCHEMA_VERSION + 1), &mut report);
        schema(None, &mut report);
        let levels: Vec<Level> = report.0.iter().map(|f| f.level).collect();
        assert_eq!(levels, [Level::Ok, Level::Warn, Level::Fail, Level::Fail]);
    }

    #[test]
    fn a_clock_behind_the_newest_image_fails() {
        let inspection = Inspection {
            schema_version: Some(SCHEMA_VERSION),
            images: 1,
            newest_saved_at: Some(1_800_000_000 * clock::SECOND),
            recent_bytes: 0,
        };
        let mut report = Report::default();
        clock_check(
            1_799_000_000 * clock::SECOND,
            Some(&inspection),
            &mut report,
        );
        clock_check(
            1_800_000_001 * clock::SECOND,
            Some(&inspection),
            &mut report,
        );
        clock_check(1_000 * clock::SECOND, None, &mut report);
        let levels: Vec<Level> = report.0.iter().map(|f| f.level).collect();
        assert_eq!(levels, [Level::Fail, Level::Ok, Level::Fail]);
    }
}
