//! Files that appear whole or not at all. A backup or export is written under a temporary name in
//! its target directory, flushed to disk, then renamed over the final name, so a crash, a full disk
//! or a killed process never leaves a partial file where a good one is expected (and a good file
//! already there stays until its replacement is complete).

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

/// Names of files being written start with this, so leftovers of a killed process are recognisable.
pub const PARTIAL_PREFIX: &str = ".imgvault-partial-";

/// A fresh temporary name in the directory of `target`, unique to this call.
pub fn partial_path(target: &Path) -> PathBuf {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let unique = uuid::Uuid::new_v4().simple().to_string();
    target.with_file_name(format!("{PARTIAL_PREFIX}{}-{name}", &unique[..12]))
}

/// Makes the finished temporary file `partial` durable and gives it the name `target`, replacing
/// what was there. The directory is synced too, so the new name survives a power cut.
pub fn commit(partial: &Path, target: &Path) -> io::Result<()> {
    File::open(partial)?.sync_all()?;
    std::fs::rename(partial, target)?;
    sync_dir(target)
}

/// Removes a temporary file after a failure; a file that is already gone is not an error.
pub fn discard(partial: &Path) {
    match std::fs::remove_file(partial) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            tracing::warn!(path = %partial.display(), error = %e, "could not remove a partial file");
        }
        _ => {}
    }
}

/// Runs `write` on a temporary path next to `target` and commits the result under `target`; on
/// any error the temporary file is removed and `target` is left as it was.
pub fn write_with<T, E: From<io::Error>>(
    target: &Path,
    write: impl FnOnce(&Path) -> Result<T, E>,
) -> Result<T, E> {
    let partial = partial_path(target);
    let result = write(&partial).and_then(|v| {
        commit(&partial, target)?;
        Ok(v)
    });
    if result.is_err() {
        discard(&partial);
    }
    result
}

#[cfg(unix)]
fn sync_dir(file: &Path) -> io::Result<()> {
    let dir = match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
}

/// Directories cannot be opened for syncing on every platform; the rename itself is still atomic.
#[cfg(not(unix))]
fn sync_dir(_file: &Path) -> io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_write_leaves_the_old_file_and_no_partial() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.bin");
        std::fs::write(&target, b"old").unwrap();
        let failed: io::Result<()> = write_with(&target, |p| {
            std::fs::write(p, b"half")?;
            Err(io::Error::other("disk full"))
        });
        assert!(failed.is_err());
        assert_eq!(std::fs::read(&target).unwrap(), b"old");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);

        write_with(&target, |p| std::fs::write(p, b"new")).unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"new");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
