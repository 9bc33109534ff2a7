//! The one data file: every user, session, image, task and image byte lives in a single redb
//! database, so a backup is one file and every change is one ACID transaction.
//!
//! This layer speaks in records and plain values, never in HTTP types. Its methods block (redb does
//! file I/O), so async callers run them on the blocking pool. Every method that changes data commits
//! durably (fsync, two-phase commit) before it returns: when it says `Ok`, the change survives a
//! power cut.

pub mod backup;
mod batch;
mod blobs;
pub mod check;
mod images;
mod migrate;
mod paging;
pub mod records;
mod sessions;
mod sync;
pub mod tables;
mod tasks;
mod thumbs;
mod users;

use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};

use redb::{Database, Durability, ReadTransaction, ReadableDatabase, WriteTransaction};

use crate::clock;

pub use batch::{Batch, NewThumbnail, TaskEnd};
pub use blobs::BlobChunks;
pub use images::{DeleteOutcome, ImagePage, NewImage};
pub use migrate::SCHEMA_VERSION;

/// Default page cache: small enough for a 1 GB Raspberry Pi, large enough for the index pages a
/// gallery touches. Blob chunks pass through it too, but each is read once per request and the
/// kernel's file cache holds them just as well, so a larger cache mostly holds image bytes.
pub const DEFAULT_CACHE_BYTES: usize = 16 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Db(#[from] redb::Error),
    #[error("the data file is damaged: {0}")]
    Corrupt(String),
    #[error(
        "the data file has schema version {found}, newer than this build understands ({supported}); \
         run a newer imgvault"
    )]
    TooNew { found: u64, supported: u64 },
    #[error("the data file is in use by another process (is an imgvault server running on it?)")]
    InUse,
    #[error("already exists")]
    Conflict,
    /// The commit shared with other uploads failed; nothing of it was written.
    #[error("the commit failed: {0}")]
    Batch(String),
    #[error("the server is shutting down")]
    Closed,
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                StoreError::Db(e.into())
            }
        }
    )*};
}
from_redb!(
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::CompactionError
);

impl From<redb::DatabaseError> for StoreError {
    fn from(e: redb::DatabaseError) -> Self {
        match e {
            redb::DatabaseError::DatabaseAlreadyOpen => StoreError::InUse,
            other => StoreError::Db(other.into()),
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// An open data file. Cheap to share behind an `Arc`; redb serialises writers internally.
pub struct Store {
    db: Database,
    /// When the last durable commit began (µs); derived data is made durable at most this stale.
    last_durable: AtomicI64,
    /// Where deep pages of each user's images start (see `paging`).
    marks: paging::PageMarks,
}

/// Derived data (thumbnails, task completions) may lag on disk by this much: losing it in a crash
/// only means remaking it, and not syncing each one keeps fsyncs for uploads.
const DERIVED_LAG: clock::Micros = clock::SECOND;

impl Store {
    /// Opens (or creates) the data file at `path` and brings its schema up to date.
    pub fn open(path: &Path, cache_bytes: usize) -> Result<Self> {
        let db = Database::builder()
            .set_cache_size(cache_bytes)
            .create(path)?;
        migrate::run(&db)?;
        Ok(Self {
            db,
            last_durable: AtomicI64::new(clock::now()),
            marks: paging::PageMarks::default(),
        })
    }

    fn read(&self) -> Result<ReadTransaction> {
        Ok(self.db.begin_read()?)
    }

    /// A write transaction with two-phase commit: imgvault stores bytes from anonymous clients,
    /// and redb advises 2PC for databases holding untrusted input.
    fn write(&self) -> Result<WriteTransaction> {
        let mut tx = self.db.begin_write()?;
        tx.set_two_phase_commit(true);
        self.last_durable.store(clock::now(), Ordering::Relaxed);
        Ok(tx)
    }

    /// A write transaction for data that can be made again from what is durable (thumbnails, the
    /// end of a task): it reaches the disk with the next durable commit, or durably itself when
    /// none happened for `DERIVED_LAG`. A crash loses at most that much of it, and the work is
    /// redone at the next start because its task is still pending.
    fn write_derived(&self) -> Result<WriteTransaction> {
        let now = clock::now();
        if now - self.last_durable.load(Ordering::Relaxed) >= DERIVED_LAG {
            return self.write();
        }
        let mut tx = self.db.begin_write()?;
        tx.set_durability(Durability::None)
            .map_err(|e| StoreError::Corrupt(format!("durability: {e}")))?;
        Ok(tx)
    }

    /// Makes everything committed so far durable (at shutdown).
    pub fn flush(&self) -> Result<()> {
        self.write()?.commit()?;
        Ok(())
    }

    /// Moves pages toward the front of the file and cuts off its free end (redb's compaction).
    /// Needs the file to itself: no transaction may be open, so a server cannot do it while it
    /// serves. Each step is a commit, so an interrupted compaction leaves a good file (redb
    /// repairs it at the next open).
    pub fn compact(&mut self) -> Result<()> {
        self.db.compact()?;
        Ok(())
    }

    /// How the pages of the file are used. Takes the write lock for a moment (redb counts pages
    /// only in a write transaction), which is then aborted.
    pub fn space(&self) -> Result<Space> {
        let tx = self.db.begin_write()?;
        let stats = tx.stats()?;
        let chunks = redb::ReadableTableMetadata::stats(&tx.open_table(tables::BLOB_CHUNKS)?)?;
        tx.abort()?;
        let page = stats.page_size() as u64;
        Ok(Space {
            allocated: stats.allocated_pages() * page,
            stored: stats.stored_bytes(),
            metadata: stats.metadata_bytes(),
            fragmented: stats.fragmented_bytes(),
            fragmented_in_chunks: chunks.fragmented_bytes(),
        })
    }
}

/// Bytes in the data file's pages, as redb accounts them.
#[derive(Debug, Clone, Copy, Default)]
pub struct Space {
    /// Pages in use by tables (the rest of the file is free pages and headers).
    pub allocated: u64,
    /// Keys and values.
    pub stored: u64,
    /// Page headers and branch pages.
    pub metadata: u64,
    /// Unused room inside allocated pages.
    pub fragmented: u64,
    /// The part of `fragmented` in the pages of image bytes.
    pub fragmented_in_chunks: u64,
}

#[cfg(test)]
pub(crate) mod test_support {
    use super::*;

    pub fn temp_store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.redb"), 1 << 20).unwrap();
        (dir, store)
    }

    /// A ready 1×1 JPEG thumbnail stored as `bytes`, made for 512 px.
    pub fn jpeg_thumb(bytes: &[u8]) -> records::ThumbRecord {
        records::ThumbRecord::Ready {
            blob: crate::domain::BlobHash::of(bytes),
            kind: crate::media::ImageKind::Jpeg,
            width: 1,
            height: 1,
            max_side: 512,
        }
    }

    /// A 1×1 PNG record of `bytes` (named `{id}.png`) owned by `owner`, with its `processing` task.
    pub fn new_image(
        id: &str,
        owner: &str,
        saved_at: i64,
        bytes: &[u8],
    ) -> (records::ImageRecord, records::TaskRecord) {
        let image = records::ImageRecord {
            id: id.into(),
            user_id: owner.into(),
            filename: format!("{id}.png"),
            category: crate::domain::Category::Clothes,
            kind: crate::media::ImageKind::Png,
            blob: crate::domain::BlobHash::of(bytes),
            original_url: None,
            page_url: None,
            page_title: None,
            context_json: None,
            saved_at,
            file_size: bytes.len() as u64,
            width: 1,
            height: 1,
            cloud_synced: false,
            task_id: format!("t-{id}"),
        };
        let task = records::TaskRecord {
            task_id: image.task_id.clone(),
            user_id: owner.into(),
            image_id: id.into(),
            status: records::TaskStatus::Processing,
            error: None,
            created_at: saved_at,
            updated_at: saved_at,
        };
        (image, task)
    }
}
