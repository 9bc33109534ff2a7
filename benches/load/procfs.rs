//! The server's resources, read from `/proc/PID/...`: CPU time, RSS, bytes written, and the
//! machine's load average. Each reading is `None` where there is no such file (not Linux) or it
//! cannot be read.

/// User plus system CPU time of the whole process (all its threads), in clock ticks.
pub(crate) fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = read(pid, "stat")?;
    // The command name (field 2) may hold spaces; count from the `)` that closes it. The
    // state (field 3) comes first, so utime and stime (fields 14, 15) are the 12th and 13th.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

pub(crate) fn ticks_per_second() -> f64 {
    #[cfg(unix)]
    {
        // SAFETY: sysconf only reads a configuration value.
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        if ticks > 0 {
            return ticks as f64;
        }
    }
    100.0
}

/// A `kB` line of `/proc/PID/status` (`VmRSS`, `VmHWM`), in KiB.
pub(crate) fn status_kib(pid: u32, key: &str) -> Option<u64> {
    let status = read(pid, "status")?;
    status.lines().find_map(|line| {
        let value = line.strip_prefix(key)?.strip_prefix(':')?;
        value.split_whitespace().next()?.parse().ok()
    })
}

/// Bytes the process caused to be sent to storage (`write_bytes` of `/proc/PID/io`).
pub(crate) fn write_bytes(pid: u32) -> Option<u64> {
    let io = read(pid, "io")?;
    io.lines()
        .find_map(|line| line.strip_prefix("write_bytes:")?.trim().parse().ok())
}

/// The 1, 5 and 15 minute load averages of the machine.
pub(crate) fn load_average() -> Option<String> {
    if !cfg!(target_os = "linux") {
        return None;
    }
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    Some(
        text.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
    )
}

fn read(pid: u32, file: &str) -> Option<String> {
    if !cfg!(target_os = "linux") {
        return None;
    }
    std::fs::read_to_string(format!("/proc/{pid}/{file}")).ok()
}
