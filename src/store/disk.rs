//! Free space under the data file. A database that meets a full disk mid-commit loses nothing
//! (the commit fails whole), but redb then refuses every later operation until it is reopened, and
//! each reopen after a failed commit repairs the file, which reads all of it. So uploads are held
//! back *before* the disk fills: below a floor of free space (`--min-free-mb`), and after a write
//! failed for lack of space until space has come back. Reads and logins need no room and go on.
//!
//! An upload's check asks the kernel afresh: a `statvfs` costs microseconds, an upload
//! milliseconds. A report (`/api/status`, polled by monitors and answered tens of thousands of times
//! a second) takes a reading up to `REPORT_STALENESS` old instead: the path walk of a `statvfs` was
//! a third of that route's cost.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::StoreError;

/// After a write failed for lack of space, uploads resume once this much more is free than was
/// free then (or the floor is met, if that is higher).
const RESUME_MARGIN: u64 = 8 * 1024 * 1024;
/// ...or after this long regardless: a quota (EDQUOT) that was raised shows in no `statvfs`.
const RETRY_AFTER_FULL: Duration = Duration::from_secs(60);
/// How old a reading of free space a report may show.
const REPORT_STALENESS: Duration = Duration::from_millis(500);

pub struct DiskGuard {
    /// The directory holding the data file.
    dir: PathBuf,
    min_free: AtomicU64,
    full: Mutex<Option<Full>>,
    /// The latest reading: free bytes, and when it was taken in microseconds since `epoch` (0:
    /// never; a reading is never taken at the epoch itself, which is before the guard exists).
    recent_free: AtomicU64,
    recent_at: AtomicU64,
    epoch: Instant,
}

/// A write that failed for lack of space.
#[derive(Clone, Copy)]
struct Full {
    free_then: u64,
    at: Instant,
}

impl DiskGuard {
    pub(super) fn new(data: &Path) -> Self {
        let dir = match data.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        Self {
            dir,
            min_free: AtomicU64::new(0),
            full: Mutex::new(None),
            recent_free: AtomicU64::new(0),
            recent_at: AtomicU64::new(0),
            // Back-dated so that no reading is taken at 0, the "never" mark. Just after boot it
            // cannot be; a reading at 0 then only means the next report takes a new one.
            epoch: Instant::now()
                .checked_sub(Duration::from_secs(1))
                .unwrap_or_else(Instant::now),
        }
    }

    /// Sets the free-space floor below which uploads are refused.
    pub fn set_min_free(&self, bytes: u64) {
        self.min_free.store(bytes, Ordering::Relaxed);
    }

    /// Bytes an unprivileged process may still write on the data file's file system.
    pub fn free_bytes(&self) -> std::io::Result<u64> {
        let free = free_bytes(&self.dir)?;
        self.recent_free.store(free, Ordering::Relaxed);
        self.recent_at.store(self.since_epoch(), Ordering::Release);
        Ok(free)
    }

    /// `free_bytes`, or the latest reading if it is at most `REPORT_STALENESS` old.
    fn recent_free_bytes(&self) -> std::io::Result<u64> {
        let at = self.recent_at.load(Ordering::Acquire);
        let fresh = u64::try_from(REPORT_STALENESS.as_micros()).unwrap_or(u64::MAX);
        if at != 0 && self.since_epoch().saturating_sub(at) <= fresh {
            return Ok(self.recent_free.load(Ordering::Relaxed));
        }
        self.free_bytes()
    }

    fn since_epoch(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    /// `Ok` if a new upload may be written; `NoSpace` saying why not otherwise.
    pub fn admit(&self) -> Result<(), StoreError> {
        match self.refusal(self.free_bytes()) {
            None => Ok(()),
            Some(why) => Err(StoreError::NoSpace(why)),
        }
    }

    /// Why uploads are refused, as of a reading at most `REPORT_STALENESS` old.
    pub fn trouble(&self) -> Option<String> {
        self.refusal(self.recent_free_bytes())
    }

    fn refusal(&self, free: std::io::Result<u64>) -> Option<String> {
        const MIB: u64 = 1024 * 1024;
        // A file system that cannot say how full it is is not kept from writing.
        let free = free.ok()?;
        let min_free = self.min_free.load(Ordering::Relaxed);
        let mut full = self.full.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(f) = *full {
            let enough = free >= min_free.max(f.free_then.saturating_add(RESUME_MARGIN));
            if enough || f.at.elapsed() >= RETRY_AFTER_FULL {
                *full = None;
            } else {
                return Some(format!(
                    "the disk ran full ({} MiB free); writes wait for space",
                    free / MIB
                ));
            }
        }
        (free < min_free).then(|| {
            format!(
                "{} MiB free, below the floor of {} MiB (--min-free-mb)",
                free / MIB,
                min_free / MIB
            )
        })
    }

    /// Records that a write failed for lack of space.
    pub(super) fn note_full(&self) {
        let free_then = self.free_bytes().unwrap_or(0);
        *self.full.lock().unwrap_or_else(|e| e.into_inner()) = Some(Full {
            free_then,
            at: Instant::now(),
        });
    }
}

/// Bytes an unprivileged process may still write on the file system holding `dir`.
pub fn free_bytes(dir: &Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    // SAFETY: an all-zero statvfs is a valid value of this plain C struct.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is a NUL-terminated string and `stat` a valid, writable statvfs.
    if unsafe { libc::statvfs(path.as_ptr(), &mut stat) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    #[allow(
        clippy::unnecessary_cast,
        reason = "the field types differ between platforms"
    )]
    Ok(stat.f_bavail as u64 * stat.f_frsize as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statvfs_is_cheap() {
        let dir = tempfile::tempdir().unwrap();
        let guard = DiskGuard::new(&dir.path().join("d.redb"));
        assert!(guard.free_bytes().unwrap() > 0);
        let rounds = 10_000u32;
        let started = Instant::now();
        for _ in 0..rounds {
            std::hint::black_box(guard.free_bytes().unwrap());
        }
        let each = started.elapsed() / rounds;
        eprintln!("statvfs: {each:?} each");
        // Even a loaded CI machine stays far under this; an upload costs milliseconds.
        assert!(each < Duration::from_micros(100), "{each:?}");
    }

    #[test]
    fn a_floor_above_the_free_space_refuses_and_a_full_disk_waits_for_room() {
        let dir = tempfile::tempdir().unwrap();
        let guard = DiskGuard::new(&dir.path().join("d.redb"));
        assert!(guard.admit().is_ok());
        guard.set_min_free(u64::MAX);
        assert!(matches!(guard.admit(), Err(StoreError::NoSpace(_))));
        guard.set_min_free(0);
        guard.note_full();
        // No space came back since the failure.
        assert!(matches!(guard.admit(), Err(StoreError::NoSpace(_))));
        guard.full.lock().unwrap().as_mut().unwrap().free_then = 0;
        assert!(guard.admit().is_ok());
    }

    #[test]
    fn a_report_shows_the_latest_reading_and_an_upload_takes_a_new_one() {
        let dir = tempfile::tempdir().unwrap();
        let guard = DiskGuard::new(&dir.path().join("d.redb"));
        guard.set_min_free(1);
        assert!(guard.admit().is_ok());
        // A reading that says the disk is full, as if taken just now.
        guard.recent_free.store(0, Ordering::Relaxed);
        assert!(
            guard.trouble().is_some(),
            "the report uses the recent reading"
        );
        assert!(guard.admit().is_ok(), "an upload asks the kernel");
        assert!(guard.trouble().is_none(), "and the report then shows it");
        // An old reading is not used.
        guard.recent_free.store(0, Ordering::Relaxed);
        guard.recent_at.store(1, Ordering::Release);
        assert!(guard.trouble().is_none());
    }
}
