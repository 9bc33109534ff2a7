//! Brings a data file of any earlier schema version up to the current one when it is opened, so a
//! file written by any release opens in every later release. A file from a newer release is refused,
//! untouched, rather than misread.
//!
//! To change the format: bump `SCHEMA_VERSION` and append a step to `STEPS` that rewrites what
//! changed, inside the same transaction as the version bump.

use redb::{Database, ReadableTable, WriteTransaction};

use super::records::{ImageRecord, Record};
use super::tables::*;
use super::{Result, StoreError};

/// The schema this build writes.
pub const SCHEMA_VERSION: u64 = 4;

pub(super) const VERSION_KEY: &str = "schema_version";

/// `STEPS[n]` migrates a file from version `n + 1` to `n + 2`.
type Step = fn(&WriteTransaction) -> Result<()>;
const STEPS: &[Step] = &[v1_to_v2, v2_to_v3, v3_to_v4];

/// Version 2 adds thumbnails: every image stored so far goes on the backlog to get one.
fn v1_to_v2(tx: &WriteTransaction) -> Result<()> {
    tx.open_table(THUMBS)?;
    let blobs: Vec<[u8; 32]> = {
        let images = tx.open_table(IMAGES)?;
        let mut out = Vec::new();
        for entry in images.iter()? {
            let (_, raw) = entry?;
            out.push(ImageRecord::decode(raw.value())?.blob.0);
        }
        out
    };
    let mut backlog = tx.open_table(THUMB_BACKLOG)?;
    for blob in &blobs {
        backlog.insert(blob, ())?;
    }
    Ok(())
}

/// Version 3 adds cloud sync: hub sessions and sync progress.
fn v2_to_v3(tx: &WriteTransaction) -> Result<()> {
    tx.open_table(HUB_SESSIONS)?;
    tx.open_table(SYNC_TASKS)?;
    Ok(())
}

/// Version 4 records each blob's chunk size (new blobs use smaller chunks that fit redb's pages).
/// Existing blob records are read as 32 KiB chunks and stay as they are; this step only marks the
/// file so that older builds, which cannot read the new records, refuse it.
fn v3_to_v4(_tx: &WriteTransaction) -> Result<()> {
    Ok(())
}

pub(super) fn run(db: &Database) -> Result<()> {
    let tx = db.begin_write()?;
    let found = tx.open_table(META)?.get(VERSION_KEY)?.map(|v| v.value());
    match found {
        Some(v) if v == SCHEMA_VERSION => return Ok(()),
        Some(v) if v > SCHEMA_VERSION => {
            return Err(StoreError::TooNew {
                found: v,
                supported: SCHEMA_VERSION,
            });
        }
        Some(v) => {
            for (i, step) in STEPS.iter().enumerate().skip((v - 1) as usize) {
                tracing::info!(from = i + 1, to = i + 2, "migrating the data file");
                step(&tx)?;
            }
        }
        None => create_tables(&tx)?,
    }
    tx.open_table(META)?.insert(VERSION_KEY, SCHEMA_VERSION)?;
    tx.commit()?;
    Ok(())
}

/// Creates every table so read transactions never meet a missing one.
fn create_tables(tx: &WriteTransaction) -> Result<()> {
    tx.open_table(META)?
        .insert(super::images::TOTAL_IMAGES_KEY, 0)?;
    tx.open_table(USERS)?;
    tx.open_table(USERNAMES)?;
    tx.open_table(EMAILS)?;
    tx.open_table(USER_IMAGE_COUNTS)?;
    tx.open_table(SESSIONS)?;
    tx.open_table(IMAGES)?;
    tx.open_table(IMAGE_NAMES)?;
    tx.open_table(USER_IMAGES)?;
    tx.open_table(TASKS)?;
    tx.open_table(PENDING_TASKS)?;
    tx.open_table(BLOBS)?;
    tx.open_table(BLOB_CHUNKS)?;
    tx.open_table(THUMBS)?;
    tx.open_table(THUMB_BACKLOG)?;
    tx.open_table(HUB_SESSIONS)?;
    tx.open_table(SYNC_TASKS)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_from_a_newer_build_is_refused_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.redb");
        {
            let db = Database::create(&path).unwrap();
            run(&db).unwrap();
            let tx = db.begin_write().unwrap();
            tx.open_table(META)
                .unwrap()
                .insert(VERSION_KEY, SCHEMA_VERSION + 1)
                .unwrap();
            tx.commit().unwrap();
        }
        let db = Database::create(&path).unwrap();
        assert!(matches!(
            run(&db),
            Err(StoreError::TooNew { found, .. }) if found == SCHEMA_VERSION + 1
        ));
    }

    #[test]
    fn opening_twice_keeps_the_version() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::create(dir.path().join("t.redb")).unwrap();
        run(&db).unwrap();
        run(&db).unwrap();
        let tx = db.begin_write().unwrap();
        let v = tx
            .open_table(META)
            .unwrap()
            .get(VERSION_KEY)
            .unwrap()
            .unwrap()
            .value();
        assert_eq!(v, SCHEMA_VERSION);
    }
}
