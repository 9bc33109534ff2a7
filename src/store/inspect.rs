//! A look at a data file without changing it, for `imgvault doctor`: its schema version and how
//! fast it grows. Opened read-only, so an older file is not migrated, a file that was not closed
//! cleanly is not repaired, and a file a server holds is reported as held rather than waited for.

use std::path::Path;

use redb::{ReadOnlyDatabase, ReadableDatabase, ReadableTable};

use super::migrate::VERSION_KEY;
use super::records::{ImageRecord, Record};
use super::tables::*;
use super::{Result, StoreError};
use crate::clock::{DAY, Micros};

/// What a data file says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inspection {
    /// `None` for a file with no schema version (not an imgvault file, or never finished).
    pub schema_version: Option<u64>,
    pub images: u64,
    /// When the newest image was saved: a clock now earlier than this went backwards.
    pub newest_saved_at: Option<Micros>,
    /// Bytes of the images saved in the `RECENT_DAYS` before `now`, live or trashed.
    pub recent_bytes: u64,
}

/// The window `Inspection::recent_bytes` covers.
pub const RECENT_DAYS: i64 = 30;

/// Why a file could not be looked at.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    /// A server (or another command) holds the file.
    #[error("the data file is in use by another process")]
    Held,
    /// The file was not closed cleanly; opening it for writing (a server start) repairs it.
    #[error("the data file was not closed cleanly and needs the repair a server start does")]
    NeedsRepair,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Reads `path` without changing it. Reads every image record once (about 100 ms for 100,000).
pub fn inspect(path: &Path, now: Micros) -> std::result::Result<Inspection, InspectError> {
    let db = match ReadOnlyDatabase::open(path) {
        Ok(db) => db,
        Err(redb::DatabaseError::DatabaseAlreadyOpen) => return Err(InspectError::Held),
        Err(redb::DatabaseError::RepairAborted) => return Err(InspectError::NeedsRepair),
        Err(e) => return Err(StoreError::from(redb::Error::from(e)).into()),
    };
    Ok(read(&db, now)?)
}

fn read(db: &ReadOnlyDatabase, now: Micros) -> Result<Inspection> {
    let tx = db.begin_read().map_err(redb::Error::from)?;
    let schema_version = match tx.open_table(META) {
        Ok(meta) => meta.get(VERSION_KEY)?.map(|v| v.value()),
        Err(redb::TableError::TableDoesNotExist(_)) => None,
        Err(e) => return Err(redb::Error::from(e).into()),
    };
    let mut found = Inspection {
        schema_version,
        images: 0,
        newest_saved_at: None,
        recent_bytes: 0,
    };
    let images = match tx.open_table(IMAGES) {
        Ok(images) => images,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(found),
        Err(e) => return Err(redb::Error::from(e).into()),
    };
    let since = now - RECENT_DAYS * DAY;
    for entry in images.iter()? {
        let (_, raw) = entry?;
        let image = ImageRecord::decode(raw.value())?;
        found.images += 1;
        found.newest_saved_at = found.newest_saved_at.max(Some(image.saved_at));
        if image.saved_at >= since {
            found.recent_bytes += image.file_size;
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_support::{add_user, temp_store};

    #[test]
    fn a_file_is_read_as_it_is_and_a_held_one_is_reported_held() {
        let (dir, store) = temp_store();
        add_user(&store, "u");
        let path = dir.path().join("t.redb");
        assert!(matches!(inspect(&path, 0), Err(InspectError::Held)));
        drop(store);
        let found = inspect(&path, 10 * DAY).unwrap();
        assert_eq!(found.schema_version, Some(super::super::SCHEMA_VERSION));
        assert_eq!(
            (found.images, found.newest_saved_at, found.recent_bytes),
            (0, None, 0)
        );
    }
}
