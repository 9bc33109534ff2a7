//! Backups that `serve` takes by itself: a snapshot into the backup directory every interval, named
//! by its UTC time, keeping the newest few. Snapshots run on the blocking pool and read in their
//! own transaction, so requests never wait for them.
//!
//! The schedule survives restarts: the next backup is due one interval after the newest one in the
//! directory, so a server restarted often does not back up at every start, and one stopped for a
//! week backs up as soon as it starts.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use chrono::NaiveDateTime;
use tokio::task::JoinHandle;

use crate::atomic_file::{self, PARTIAL_PREFIX};
use crate::config::BackupSchedule;
use crate::store::{Store, StoreError};

/// The running schedule; dropping it stops the schedule (a snapshot under way still completes).
pub struct Scheduled(Option<JoinHandle<()>>);

impl Drop for Scheduled {
    fn drop(&mut self) {
        if let Some(task) = self.0.take() {
            task.abort();
        }
    }
}

/// Starts taking backups as `schedule` says (nothing if it is `None`). Fails at once if the backup
/// directory cannot be created, so a typo is seen at start-up rather than a day later.
pub fn start(store: Arc<Store>, schedule: Option<BackupSchedule>) -> std::io::Result<Scheduled> {
    let Some(schedule) = schedule else {
        return Ok(Scheduled(None));
    };
    std::fs::create_dir_all(&schedule.dir)?;
    remove_leftovers(&schedule.dir);
    tracing::info!(
        dir = %schedule.dir.display(),
        every = ?schedule.every,
        keep = schedule.keep,
        "scheduled backups on"
    );
    Ok(Scheduled(Some(tokio::spawn(run(store, schedule)))))
}

async fn run(store: Arc<Store>, schedule: BackupSchedule) {
    let schedule = Arc::new(schedule);
    let mut next = tokio::time::Instant::now() + first_delay(&schedule);
    loop {
        tokio::time::sleep_until(next).await;
        let started = tokio::time::Instant::now();
        let (store, job) = (store.clone(), schedule.clone());
        match tokio::task::spawn_blocking(move || take_backup(&store, &job)).await {
            Ok(Ok((path, size, removed))) => tracing::info!(
                file = %path.display(),
                bytes = size,
                ms = started.elapsed().as_millis() as u64,
                removed,
                "backup written"
            ),
            Ok(Err(e)) => tracing::error!(error = %e, "scheduled backup failed"),
            Err(e) => tracing::error!(error = %e, "scheduled backup failed"),
        }
        next = (started + schedule.every).max(tokio::time::Instant::now());
    }
}

/// Takes one backup and rotates; returns its path, size and how many old backups went.
fn take_backup(
    store: &Store,
    schedule: &BackupSchedule,
) -> Result<(PathBuf, u64, usize), StoreError> {
    let path = schedule.dir.join(file_name_now());
    let stats = store.snapshot(&path, &mut |_| {})?;
    let removed = rotate(&schedule.dir, schedule.keep)?;
    Ok((path, stats.file_size, removed))
}

/// The name of a backup taken now, `imgvault-YYYYMMDD-HHMMSS.redb` in UTC: names sort by time
/// and do not jump with daylight saving.
pub fn file_name_now() -> String {
    format!(
        "imgvault-{}.redb",
        chrono::Utc::now().format("%Y%m%d-%H%M%S")
    )
}

/// When the first backup is due: one interval after the newest backup there, or now.
fn first_delay(schedule: &BackupSchedule) -> Duration {
    let Some((_, newest)) = newest(&schedule.dir).ok().flatten() else {
        return Duration::ZERO;
    };
    let due = newest + schedule.every;
    due.duration_since(SystemTime::now())
        .unwrap_or(Duration::ZERO)
}

/// The newest backup in `dir` and when it was taken (by its name); `None` when there is none.
pub fn newest(dir: &Path) -> std::io::Result<Option<(PathBuf, SystemTime)>> {
    Ok(backups_in(dir)?
        .last()
        .and_then(|name| Some((dir.join(name), taken_at(name)?))))
}

/// The names of the backups in `dir`, oldest first (their names sort by time).
fn backups_in(dir: &Path) -> std::io::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if taken_at(&name).is_some() {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

/// The time in a backup's name `imgvault-YYYYMMDD-HHMMSS.redb`; `None` for any other name.
fn taken_at(name: &str) -> Option<SystemTime> {
    let stamp = name.strip_prefix("imgvault-")?.strip_suffix(".redb")?;
    if stamp.len() != 15 {
        return None;
    }
    let at = NaiveDateTime::parse_from_str(stamp, "%Y%m%d-%H%M%S").ok()?;
    Some(SystemTime::from(at.and_utc()))
}

/// Deletes all but the newest `keep` backups; returns how many went.
fn rotate(dir: &Path, keep: usize) -> std::io::Result<usize> {
    let names = backups_in(dir)?;
    let excess = names.len().saturating_sub(keep.max(1));
    for name in &names[..excess] {
        std::fs::remove_file(dir.join(name))?;
    }
    Ok(excess)
}

/// Temporary files of a backup that a killed process never finished.
fn remove_leftovers(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry
            .file_name()
            .to_string_lossy()
            .starts_with(PARTIAL_PREFIX)
        {
            tracing::info!(file = %entry.path().display(), "removing an unfinished backup");
            atomic_file::discard(&entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_backup_names_are_rotated_and_the_newest_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "imgvault-20260101-000000.redb",
            "imgvault-20260301-000000.redb",
            "imgvault-20260201-000000.redb",
            "imgvault-latest.redb",
            "notes.txt",
        ] {
            std::fs::write(dir.path().join(name), b"x").unwrap();
        }
        assert_eq!(rotate(dir.path(), 2).unwrap(), 1);
        let mut left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                "imgvault-20260201-000000.redb",
                "imgvault-20260301-000000.redb",
                "imgvault-latest.redb",
                "notes.txt"
            ]
        );
    }

    #[test]
    fn the_next_backup_is_due_one_interval_after_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        let schedule = BackupSchedule {
            dir: dir.path().to_path_buf(),
            every: Duration::from_secs(3600),
            keep: 3,
        };
        assert_eq!(first_delay(&schedule), Duration::ZERO);
        std::fs::write(dir.path().join(file_name_now()), b"x").unwrap();
        let delay = first_delay(&schedule);
        assert!(delay > Duration::from_secs(3590) && delay <= Duration::from_secs(3600));
        assert_eq!(
            taken_at("imgvault-19700101-000100.redb"),
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(60))
        );
        assert_eq!(taken_at("imgvault-1970-01-01.redb"), None);
        assert!(taken_at(&file_name_now()).is_some());
    }
}
