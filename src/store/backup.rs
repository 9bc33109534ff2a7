//! Consistent copies of the data file, taken while it is in use.
//!
//! Copying the file itself while a server writes to it can give a torn copy. A snapshot instead
//! reads every table in one read transaction (redb keeps that state intact however long the copy
//! takes, while the server keeps committing) and writes the entries into a new redb file under a
//! temporary name, which is flushed and renamed only when complete. The result is an ordinary data
//! file of the same schema version: restoring it means starting a server on it.

use std::path::Path;

use redb::{
    Database, Key, ReadTransaction, ReadableDatabase, ReadableTable, ReadableTableMetadata,
    TableDefinition, TableError, Value,
};

use super::migrate::{SCHEMA_VERSION, VERSION_KEY};
use super::tables::*;
use super::{Result, Store, StoreError};
use crate::atomic_file;

/// Page cache of the file being written: it is written once, front to back.
const SNAPSHOT_CACHE_BYTES: usize = 16 * 1024 * 1024;
/// Bytes copied per commit into the new file, so memory stays bounded for any size of data file.
const BATCH_BYTES: usize = 32 * 1024 * 1024;

/// What a snapshot copied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SnapshotStats {
    pub schema_version: u64,
    /// Table entries copied.
    pub entries: u64,
    /// Bytes of keys and values copied (the file is somewhat larger).
    pub bytes: u64,
    /// Size of the file written.
    pub file_size: u64,
}

impl Store {
    /// Writes a consistent copy of the whole data file to `out` (replacing a file there only once
    /// the copy is complete and on disk). Writers are not blocked while it runs. `progress` is told
    /// the bytes copied so far, often.
    pub fn snapshot(&self, out: &Path, progress: &mut dyn FnMut(u64)) -> Result<SnapshotStats> {
        let tx = self.read()?;
        write_snapshot(&tx, out, progress)
    }
}

/// A snapshot of the data file at `data`, which no server may hold (`InUse` otherwise). The file is
/// opened read-only: an older schema is copied as it is, not upgraded. A file that was not closed
/// cleanly (a crash, a power cut) cannot be opened read-only; it is repaired first, as `serve`
/// would at its next start, which changes no record.
pub fn snapshot_file(
    data: &Path,
    out: &Path,
    progress: &mut dyn FnMut(u64),
) -> Result<SnapshotStats> {
    match open_read_only(data) {
        Ok(db) => write_snapshot(&db.begin_read()?, out, progress),
        Err(StoreError::Db(redb::Error::RepairAborted)) => {
            tracing::warn!(
                file = %data.display(),
                "the data file was not closed cleanly; repairing it before the backup"
            );
            let db = Database::builder()
                .set_cache_size(SNAPSHOT_CACHE_BYTES)
                .open(data)?;
            write_snapshot(&db.begin_read()?, out, progress)
        }
        Err(e) => Err(e),
    }
}

/// The facts `imgvault` prints about a data file, read without changing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileSummary {
    pub schema_version: u64,
    pub users: u64,
    pub images: u64,
    pub blobs: u64,
}

/// Opens the data file at `path` read-only and summarises it; refuses a file that is not an
/// imgvault data file or is newer than this build.
pub fn inspect(path: &Path) -> Result<FileSummary> {
    let db = open_read_only(path)?;
    let tx = db.begin_read()?;
    let schema_version = schema_version(&tx)?;
    let count = |def: TableDefinition<&str, &[u8]>| -> Result<u64> {
        match tx.open_table(def) {
            Ok(t) => Ok(t.len()?),
            Err(TableError::TableDoesNotExist(_)) => Ok(0),
            Err(e) => Err(e.into()),
        }
    };
    let images = count(IMAGES)?;
    let users = count(USERS)?;
    let blobs = tx.open_table(BLOBS)?.len()?;
    Ok(FileSummary {
        schema_version,
        users,
        images,
        blobs,
    })
}

fn open_read_only(path: &Path) -> Result<redb::ReadOnlyDatabase> {
    if !path.is_file() {
        return Err(StoreError::Io(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("no data file at {}", path.display()),
        )));
    }
    Ok(Database::builder()
        .set_cache_size(SNAPSHOT_CACHE_BYTES)
        .open_read_only(path)?)
}

/// The schema version recorded in the file; refuses files that are not imgvault's or too new.
fn schema_version(tx: &ReadTransaction) -> Result<u64> {
    let meta = match tx.open_table(META) {
        Ok(meta) => meta,
        Err(TableError::TableDoesNotExist(_)) => {
            return Err(StoreError::Corrupt("not an imgvault data file".into()));
        }
        Err(e) => return Err(e.into()),
    };
    let version = meta
        .get(VERSION_KEY)?
        .map(|v| v.value())
        .ok_or_else(|| StoreError::Corrupt("no schema version recorded".into()))?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::TooNew {
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    Ok(version)
}

fn write_snapshot(
    src: &ReadTransaction,
    out: &Path,
    progress: &mut dyn FnMut(u64),
) -> Result<SnapshotStats> {
    let schema_version = schema_version(src)?;
    atomic_file::write_with(out, |partial| {
        let mut db = Database::builder()
            .set_cache_size(SNAPSHOT_CACHE_BYTES)
            .create(partial)?;
        let mut stats = SnapshotStats {
            schema_version,
            ..SnapshotStats::default()
        };
        let mut copy = Copier {
            src,
            dst: &db,
            stats: &mut stats,
            progress,
        };
        for_every_table!(table => copy.table(table)?);
        let mut last = db.begin_write()?;
        last.set_two_phase_commit(true);
        last.commit()?;
        // redb doubles a growing file and leaves the new tail sparse; nothing else holds the copy,
        // so it can be compacted, which trims that tail: the backup is about its data's size.
        db.compact()?;
        drop(db);
        stats.file_size = std::fs::metadata(partial)?.len();
        Ok(stats)
    })
}

struct Copier<'a> {
    src: &'a ReadTransaction,
    dst: &'a Database,
    stats: &'a mut SnapshotStats,
    progress: &'a mut dyn FnMut(u64),
}

impl Copier<'_> {
    /// Copies one table entry by entry, committing every `BATCH_BYTES`. A table the source lacks
    /// (an older schema) is left out of the copy too.
    fn table<K: Key + 'static, V: Value + 'static>(
        &mut self,
        def: TableDefinition<K, V>,
    ) -> Result<()> {
        let table = match self.src.open_table(def) {
            Ok(t) => t,
            Err(TableError::TableDoesNotExist(_)) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        let mut entries = table.iter()?;
        loop {
            let tx = self.dst.begin_write()?;
            let mut batch = 0usize;
            let finished = {
                let mut out = tx.open_table(def)?;
                loop {
                    if batch >= BATCH_BYTES {
                        break false;
                    }
                    let Some(entry) = entries.next() else {
                        break true;
                    };
                    let (key, value) = entry?;
                    let (key, value) = (key.value(), value.value());
                    let size =
                        K::as_bytes(&key).as_ref().len() + V::as_bytes(&value).as_ref().len();
                    out.insert(key, value)?;
                    batch += size;
                    self.stats.entries += 1;
                    self.stats.bytes += size as u64;
                    (self.progress)(self.stats.bytes);
                }
            };
            tx.commit()?;
            if finished {
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::records::ImageRecord;
    use super::super::test_support::{new_image, temp_store};
    use super::*;
    use crate::domain::Category;

    fn save(store: &Store, id: &str, bytes: &[u8]) {
        let (image, task) = new_image(id, "u", 1, bytes);
        let image = ImageRecord {
            category: Category::Char,
            ..image
        };
        store.save_image(&image, bytes, &task).unwrap();
    }

    fn table_names(db: &impl ReadableDatabase) -> Vec<String> {
        use redb::TableHandle;
        let tx = db.begin_read().unwrap();
        let mut names: Vec<_> = tx
            .list_tables()
            .unwrap()
            .map(|t| t.name().to_string())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_snapshot_copies_every_table_and_entry_and_nothing_written_after_it() {
        let (dir, store) = temp_store();
        save(&store, "a", &vec![1u8; 100_000]);
        save(&store, "b", b"small");
        let out = dir.path().join("copy.redb");
        let mut reported = 0;
        let stats = store.snapshot(&out, &mut |b| reported = b).unwrap();
        assert_eq!(stats.schema_version, SCHEMA_VERSION);
        assert_eq!(reported, stats.bytes);
        assert!(stats.bytes > 100_000);
        save(&store, "c", b"after the snapshot");

        let copy = Store::open(&out, 1 << 20).unwrap();
        assert_eq!(copy.total_images().unwrap(), 2);
        assert!(copy.image(&"c".into()).unwrap().is_none());
        let image = copy.image(&"a".into()).unwrap().unwrap();
        let bytes = copy.blob(&image.blob).unwrap().unwrap().read_all().unwrap();
        assert_eq!(bytes.as_ref(), vec![1u8; 100_000].as_slice());
        assert_eq!(
            table_names(copy.db.read().unwrap().as_ref().unwrap()),
            table_names(store.db.read().unwrap().as_ref().unwrap())
        );
        assert!(matches!(inspect(&out), Err(StoreError::InUse)));
        drop(copy);
        let summary = inspect(&out).unwrap();
        assert_eq!((summary.images, summary.blobs), (2, 2));
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            !names
                .iter()
                .any(|n| n.starts_with(atomic_file::PARTIAL_PREFIX)),
            "{names:?}"
        );
    }

    #[test]
    fn a_snapshot_is_compacted_to_about_the_size_of_its_data() {
        let (dir, store) = temp_store();
        for i in 0..60u32 {
            // 60 distinct blobs of 200 KB: without compaction the copy would be about 1.5× its data.
            let bytes: Vec<u8> = (0..200_000u32)
                .map(|n| (n.wrapping_mul(2_654_435_761) ^ i.wrapping_mul(40_503) >> 3) as u8)
                .collect();
            save(&store, &format!("i-{i}"), &bytes);
        }
        let out = dir.path().join("copy.redb");
        let stats = store.snapshot(&out, &mut |_| {}).unwrap();
        let on_disk = std::fs::metadata(&out).unwrap().len();
        assert_eq!(stats.file_size, on_disk);
        assert!(
            on_disk < stats.bytes + stats.bytes / 8 + (1 << 20),
            "{on_disk} bytes of file for {} bytes of data",
            stats.bytes
        );
    }

    #[test]
    fn a_file_held_by_a_store_is_refused_and_a_stopped_one_is_copied() {
        let (dir, store) = temp_store();
        save(&store, "a", b"bytes");
        let data = dir.path().join("t.redb");
        let out = dir.path().join("copy.redb");
        assert!(matches!(
            snapshot_file(&data, &out, &mut |_| {}),
            Err(StoreError::InUse)
        ));
        assert!(!out.exists());
        drop(store);
        let stats = snapshot_file(&data, &out, &mut |_| {}).unwrap();
        assert_eq!(stats.schema_version, SCHEMA_VERSION);
        assert_eq!(inspect(&out).unwrap().images, 1);
    }
}
