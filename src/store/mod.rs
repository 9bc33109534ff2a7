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
mod content;
pub mod disk;
mod idempotency;
mod images;
pub mod inspect;
mod keys;
mod migrate;
mod paging;
pub mod records;
pub mod revisit;
mod search;
mod sessions;
pub mod stats;
mod sync;
pub mod tables;
mod tasks;
mod thumbs;
mod users;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use redb::{
    Database, Durability, ReadTransaction, ReadableDatabase, StorageError, TransactionError,
    WriteTransaction,
};

use crate::clock;

pub use batch::{Batch, NewThumbnail, TaskEnd};
pub use blobs::BlobChunks;
pub use content::{ContentPage, Known, MAX_SOURCES};
pub use idempotency::{KEEP_KEYS, NewKey};
pub use images::{
    BatchAction, BatchOutcome, ChangeOutcome, DeleteOutcome, ImagePage, MAX_BATCH_IDS, NewImage,
    NewMedia, Skipped, SyncUpdate, TagCount,
};
pub use keys::LAST_USED_GRAIN;
pub use migrate::SCHEMA_VERSION;
pub use search::{
    CategoryFilter, DuplicatePage, FACET_TAGS, Facets, MAX_CLUSTER_DISTANCE, MAX_DISTANCE,
    SearchPage, SearchQuery, Similar, Sort,
};

/// Default page cache: small enough for a 1 GB Raspberry Pi, large enough for the index pages a
/// gallery touches. Blob chunks pass through it too, but each is read once per request and the
/// kernel's file cache holds them just as well, so a larger cache mostly holds image bytes.
pub const DEFAULT_CACHE_BYTES: usize = 16 * 1024 * 1024;

/// Default memory of the search catalogs of all users together: a quarter of the default
/// `--memory-mb` (the server sets it from the flag; see `store::search`).
pub const DEFAULT_SEARCH_BUDGET: usize = 50 * 1024 * 1024;

/// Default memory of the similar-image indexes of all users together: a tenth of the default
/// `--memory-mb`, about 300,000 images (see `store::search::similar`).
pub const DEFAULT_SIMILAR_BUDGET: usize = 20 * 1024 * 1024;

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
    /// A capture of bytes that are not stored (any more): nothing was written.
    #[error("the image's bytes are not stored")]
    Missing,
    /// The upload's `Idempotency-Key` names a capture stored already: nothing was written.
    #[error("the idempotency key was used already")]
    KeyUsed,
    /// The commit shared with other uploads failed; nothing of it was written.
    #[error("the commit failed: {0}")]
    Batch(String),
    #[error("the server is shutting down")]
    Closed,
    /// No room for the write: the disk (or the quota) is full, or free space is below the floor.
    /// Nothing was written.
    #[error("no space to store it: {0}")]
    NoSpace(String),
    /// The data file could not be written (an I/O error). Nothing was written.
    #[error("the data file could not be written: {0}")]
    WriteFailed(String),
    /// The data file is being reopened after an I/O error, or could not be reopened yet.
    #[error("the data file is unavailable: {0}")]
    Unavailable(String),
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

/// What kind of storage failure an error is, for answering it (507) and for recovering from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteFailure {
    /// The disk or the quota is full.
    NoSpace,
    /// Any other I/O error on the data file, or the file is being reopened after one.
    Io,
}

impl StoreError {
    /// `Some` if the data file could not be written (or read) for a reason of the disk, not of
    /// the data.
    pub fn write_failure(&self) -> Option<WriteFailure> {
        let io = match self {
            StoreError::NoSpace(_) => return Some(WriteFailure::NoSpace),
            StoreError::WriteFailed(_) | StoreError::Unavailable(_) => {
                return Some(WriteFailure::Io);
            }
            StoreError::Db(redb::Error::PreviousIo) => return Some(WriteFailure::Io),
            StoreError::Db(redb::Error::Io(e)) | StoreError::Io(e) => e,
            _ => return None,
        };
        let no_space = matches!(io.kind(), std::io::ErrorKind::StorageFull)
            || io.raw_os_error() == Some(libc::EDQUOT)
            || io.raw_os_error() == Some(libc::EFBIG);
        Some(if no_space {
            WriteFailure::NoSpace
        } else {
            WriteFailure::Io
        })
    }
}

/// An open data file. Cheap to share behind an `Arc`; redb serialises writers internally.
///
/// After an I/O error redb fails every later operation until the database is opened again, so the
/// `Database` sits behind a lock that transactions hold only while they begin (a transaction owns
/// what it needs of the database): `reopen` takes the lock exclusively, so a caller sees either
/// the old database or the new one, never a half-made swap.
pub struct Store {
    db: RwLock<Option<Database>>,
    path: PathBuf,
    cache_bytes: usize,
    /// Set when an operation met an I/O error: the next transaction reopens the file first.
    stale: AtomicBool,
    /// When reopening last failed; the next try waits `REOPEN_PAUSE`.
    reopen_failed: Mutex<Option<(Instant, String)>>,
    /// Free space under the data file.
    disk: disk::DiskGuard,
    /// The image total last read, for `/api/status` while the file is unavailable.
    last_total: AtomicU64,
    /// Sessions of logins made while the disk was full.
    held_sessions: sessions::Held,
    /// When the last durable commit began (µs); derived data is made durable at most this stale.
    last_durable: AtomicI64,
    /// Where deep pages of each user's images start (see `paging`).
    marks: paging::PageMarks,
    /// The search catalogs of the users who searched (see `search`).
    catalogs: search::Catalogs,
    /// The similar-image indexes of the users who asked (see `search::similar`).
    hash_indexes: search::Catalogs<search::HashIndex>,
    /// Counts commits that added perceptual hashes, so hash indexes look again for those missing.
    hash_generation: AtomicU64,
}

/// Derived data (thumbnails, task completions) may lag on disk by this much: losing it in a crash
/// only means remaking it, and not syncing each one keeps fsyncs for uploads.
const DERIVED_LAG: clock::Micros = clock::SECOND;

/// Pause between tries to reopen a data file that could not be reopened.
const REOPEN_PAUSE: Duration = Duration::from_secs(1);
/// How long a reopen waits for the old database to let go of the file: a write transaction that
/// began before the error closes it when it ends.
const RELEASE_WAIT: Duration = Duration::from_secs(5);

impl Store {
    /// Opens (or creates) the data file at `path` and brings its schema up to date.
    pub fn open(path: &Path, cache_bytes: usize) -> Result<Self> {
        let db = Database::builder()
            .set_cache_size(cache_bytes)
            .create(path)?;
        migrate::run(&db)?;
        Ok(Self {
            db: RwLock::new(Some(db)),
            path: path.to_path_buf(),
            cache_bytes,
            stale: AtomicBool::new(false),
            reopen_failed: Mutex::new(None),
            disk: disk::DiskGuard::new(path),
            last_total: AtomicU64::new(0),
            held_sessions: sessions::Held::default(),
            last_durable: AtomicI64::new(clock::now()),
            marks: paging::PageMarks::default(),
            catalogs: search::Catalogs::new(DEFAULT_SEARCH_BUDGET),
            hash_indexes: search::Catalogs::new(DEFAULT_SIMILAR_BUDGET),
            hash_generation: AtomicU64::new(0),
        })
    }

    /// How many commits so far added perceptual hashes (read before a snapshot begins).
    fn hash_generation(&self) -> u64 {
        self.hash_generation.load(Ordering::Acquire)
    }

    /// Notes a commit that added perceptual hashes (called after it).
    fn hashes_added(&self) {
        self.hash_generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Free space under the data file.
    pub fn disk(&self) -> &disk::DiskGuard {
        &self.disk
    }

    /// Whether the next transaction reopens the file first (after an I/O error).
    pub fn needs_reopen(&self) -> bool {
        self.stale.load(Ordering::Acquire)
    }

    /// Why the store cannot take writes now, if it cannot: the disk is (nearly) full, or the data
    /// file is waiting to be reopened after an I/O error.
    pub fn degraded(&self) -> Option<String> {
        if let Some((_, why)) = &*self
            .reopen_failed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
        {
            return Some(format!("the data file could not be reopened: {why}"));
        }
        if self.stale.load(Ordering::Acquire) {
            return Some("the data file met an I/O error and is being reopened".into());
        }
        self.disk.trouble()
    }

    /// Begins a transaction on the open database, reopening it first if an I/O error left it
    /// unusable.
    fn begin<T>(&self, begin: impl Fn(&Database) -> Result<T, TransactionError>) -> Result<T> {
        for first in [true, false] {
            if self.stale.load(Ordering::Acquire) {
                self.reopen()?;
            }
            let outcome = {
                let db = self.db.read().unwrap_or_else(PoisonError::into_inner);
                match db.as_ref() {
                    Some(db) => begin(db),
                    None => Err(TransactionError::Storage(StorageError::PreviousIo)),
                }
            };
            match outcome {
                Err(TransactionError::Storage(StorageError::PreviousIo)) if first => {
                    self.stale.store(true, Ordering::Release);
                }
                other => return other.map_err(|e| self.failed(e.into())),
            }
        }
        unreachable!("the second round returns")
    }

    /// Notes what an error says about the file, and passes it on: after an I/O error the next
    /// transaction reopens the file, and a full disk holds uploads back until there is room.
    pub(crate) fn failed(&self, e: StoreError) -> StoreError {
        match e.write_failure() {
            Some(WriteFailure::NoSpace) => {
                self.disk.note_full();
                self.stale.store(true, Ordering::Release);
            }
            Some(WriteFailure::Io) if !matches!(e, StoreError::Unavailable(_)) => {
                self.stale.store(true, Ordering::Release);
            }
            _ => {}
        }
        e
    }

    /// Commits `tx`, noting an I/O failure (see `failed`).
    fn finish(&self, tx: WriteTransaction) -> Result<()> {
        tx.commit().map_err(|e| self.failed(e.into()))
    }

    /// Closes the database and opens the file again, which clears redb's memory of an I/O error
    /// (and repairs the file if a commit was cut short). Does nothing if another caller already
    /// did it. Readers wait on the lock meanwhile; a failed reopen is tried again by the next
    /// transaction, at most once per `REOPEN_PAUSE`.
    pub fn reopen(&self) -> Result<()> {
        let mut slot = self.db.write().unwrap_or_else(PoisonError::into_inner);
        if !self.stale.load(Ordering::Acquire) {
            return Ok(());
        }
        let mut failed = self
            .reopen_failed
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some((at, why)) = &*failed
            && at.elapsed() < REOPEN_PAUSE
        {
            return Err(StoreError::Unavailable(why.clone()));
        }
        if let Some(old) = slot.take() {
            // A write transaction begun before the error keeps the file until it ends.
            let _ = old.close();
        }
        let started = Instant::now();
        let opened = loop {
            match Database::builder()
                .set_cache_size(self.cache_bytes)
                .create(&self.path)
            {
                Err(redb::DatabaseError::DatabaseAlreadyOpen)
                    if started.elapsed() < RELEASE_WAIT =>
                {
                    std::thread::sleep(Duration::from_millis(10));
                }
                other => break other,
            }
        };
        match opened {
            Ok(db) => {
                tracing::warn!(
                    ms = started.elapsed().as_millis() as u64,
                    "the data file was reopened after an I/O error"
                );
                *slot = Some(db);
                *failed = None;
                self.stale.store(false, Ordering::Release);
                Ok(())
            }
            Err(e) => {
                let why = e.to_string();
                tracing::error!(error = %why, "the data file could not be reopened");
                *failed = Some((Instant::now(), why.clone()));
                Err(StoreError::Unavailable(why))
            }
        }
    }

    fn read(&self) -> Result<ReadTransaction> {
        self.begin(|db| db.begin_read())
    }

    /// A write transaction with two-phase commit: imgvault stores bytes from anonymous clients,
    /// and redb advises 2PC for databases holding untrusted input.
    fn write(&self) -> Result<WriteTransaction> {
        let mut tx = self.begin(|db| db.begin_write())?;
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
        let mut tx = self.begin(|db| db.begin_write())?;
        tx.set_durability(Durability::None)
            .map_err(|e| StoreError::Corrupt(format!("durability: {e}")))?;
        Ok(tx)
    }

    /// Makes everything committed so far durable (at shutdown).
    pub fn flush(&self) -> Result<()> {
        self.finish(self.write()?)
    }

    /// Moves pages toward the front of the file and cuts off its free end (redb's compaction).
    /// Needs the file to itself: no transaction may be open, so a server cannot do it while it
    /// serves. Each step is a commit, so an interrupted compaction leaves a good file (redb
    /// repairs it at the next open).
    pub fn compact(&mut self) -> Result<()> {
        let db = self.db.get_mut().unwrap_or_else(PoisonError::into_inner);
        db.as_mut()
            .ok_or_else(|| StoreError::Unavailable("closed after an I/O error".into()))?
            .compact()?;
        Ok(())
    }

    /// How the pages of the file are used. Takes the write lock for a moment (redb counts pages
    /// only in a write transaction), which is then aborted.
    pub fn space(&self) -> Result<Space> {
        let tx = self.begin(|db| db.begin_write())?;
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

    /// Stores `made` in one commit, each image's bytes being its id.
    pub fn save_records(store: &Store, made: &[(records::ImageRecord, records::TaskRecord)]) {
        let uploads: Vec<NewImage<'_>> = made
            .iter()
            .map(|(image, task)| NewImage::plain(image, image.id.as_str().as_bytes(), task))
            .collect();
        for outcome in store.save_images(&uploads).unwrap() {
            outcome.unwrap();
        }
    }

    /// Creates the account `id` (username and e-mail made from it), so images it owns pass
    /// `check`.
    pub fn add_user(store: &Store, id: &str) {
        let record = records::UserRecord {
            user_id: id.into(),
            username: id.to_uppercase(),
            email: format!("{id}@x.org"),
            password_hash: "h".into(),
            created_at: 1,
            last_login: None,
            cloud_sync_enabled: false,
        };
        store
            .create_user(&record, &id.to_lowercase(), &record.email.to_lowercase())
            .unwrap();
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
            task_id: format!("t-{id}").into(),
            tags: Vec::new(),
            trashed_at: None,
            original: None,
            hub_stale: false,
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
