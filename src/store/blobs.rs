//! Content-addressed image bytes: stored once per blake3 hash in fixed-size chunks, with a reference
//! count in a separate small record so that sharing or releasing a blob never rewrites its bytes.

use bytes::{Bytes, BytesMut};
use redb::{ReadOnlyTable, ReadableTable, WriteTransaction};

use super::records::{BlobRecord, Record};
use super::stats::{self, BlobChange};
use super::tables::*;
use super::{Result, Store, StoreError};
use crate::domain::{BlobHash, Sha256};

/// Adds one reference to the blob of `bytes`, writing its chunks if the store does not hold it yet.
pub(super) fn add_ref(tx: &WriteTransaction, hash: &BlobHash, bytes: &[u8]) -> Result<()> {
    add_ref_hashed(tx, hash, bytes, None)
}

/// `add_ref` for a blob an image is captured as: its SHA-256 is recorded too, if it is not yet
/// (`sha256` when the caller computed it, else computed here from `bytes`). Empty `bytes` name a
/// blob that must be stored already (a capture by SHA-256): `Missing` if it is not.
pub(super) fn add_capture_ref(
    tx: &WriteTransaction,
    hash: &BlobHash,
    bytes: &[u8],
    sha256: Option<Sha256>,
) -> Result<()> {
    if bytes.is_empty() && tx.open_table(BLOBS)?.get(&hash.0)?.is_none() {
        return Err(StoreError::Missing);
    }
    add_ref_hashed(tx, hash, bytes, Some(sha256))
}

/// `add_ref`, recording the blob's SHA-256 when `sha256` is `Some` (its inner `None`: compute it).
fn add_ref_hashed(
    tx: &WriteTransaction,
    hash: &BlobHash,
    bytes: &[u8],
    sha256: Option<Option<Sha256>>,
) -> Result<()> {
    let mut blobs = tx.open_table(BLOBS)?;
    let existing = blobs
        .get(&hash.0)?
        .map(|v| BlobRecord::decode(v.value()))
        .transpose()?;
    let mut record = match existing {
        Some(mut record) => {
            record.refs += 1;
            stats::blob(tx, BlobChange::Shared(record.size))?;
            record
        }
        None => {
            let mut chunks = tx.open_table(BLOB_CHUNKS)?;
            let mut count = 0u32;
            for (i, chunk) in bytes.chunks(CHUNK_SIZE).enumerate() {
                chunks.insert((&hash.0, i as u32), chunk)?;
                count += 1;
            }
            stats::blob(tx, BlobChange::Stored(bytes.len() as u64))?;
            BlobRecord {
                size: bytes.len() as u64,
                chunks: count,
                refs: 1,
                chunk_size: CHUNK_SIZE as u32,
                sha256: None,
            }
        }
    };
    if let Some(known) = sha256
        && record.sha256.is_none()
        && !bytes.is_empty()
    {
        let sha = known.unwrap_or_else(|| Sha256::of(bytes));
        record.sha256 = Some(sha.0);
        tx.open_table(SHA256_BLOBS)?.insert(&sha.0, &hash.0)?;
        tx.open_table(SHA256_BACKLOG)?.remove(&hash.0)?;
    }
    blobs.insert(&hash.0, record.encode().as_slice())?;
    Ok(())
}

/// Records the SHA-256 computed for a blob of the backlog (`Store::hash_backlog`), unless it was
/// deleted or hashed meanwhile.
fn set_sha256(tx: &WriteTransaction, hash: &BlobHash, sha: &Sha256) -> Result<()> {
    tx.open_table(SHA256_BACKLOG)?.remove(&hash.0)?;
    let mut blobs = tx.open_table(BLOBS)?;
    let Some(mut record) = blobs
        .get(&hash.0)?
        .map(|v| BlobRecord::decode(v.value()))
        .transpose()?
    else {
        return Ok(());
    };
    if record.sha256.is_some() {
        return Ok(());
    }
    record.sha256 = Some(sha.0);
    blobs.insert(&hash.0, record.encode().as_slice())?;
    tx.open_table(SHA256_BLOBS)?.insert(&sha.0, &hash.0)?;
    Ok(())
}

/// Drops one reference; the blob's chunks are deleted with its last reference, and then `true`
/// says so (its thumbnail is the caller's to release: see `thumbs::release_for`).
pub(super) fn release(tx: &WriteTransaction, hash: &BlobHash) -> Result<bool> {
    let mut blobs = tx.open_table(BLOBS)?;
    let Some(mut record) = blobs
        .get(&hash.0)?
        .map(|v| BlobRecord::decode(v.value()))
        .transpose()?
    else {
        return Err(StoreError::Corrupt(format!(
            "image points at missing blob {}",
            hash.to_hex()
        )));
    };
    if record.refs > 1 {
        record.refs -= 1;
        blobs.insert(&hash.0, record.encode().as_slice())?;
        stats::blob(tx, BlobChange::Unshared(record.size))?;
        Ok(false)
    } else {
        blobs.remove(&hash.0)?;
        drop(blobs);
        stats::blob(tx, BlobChange::Released(record.size))?;
        if let Some(sha) = &record.sha256 {
            let mut index = tx.open_table(SHA256_BLOBS)?;
            // Another blob never has the same SHA-256; a check would have found it.
            if index.get(sha)?.is_some_and(|v| *v.value() == hash.0) {
                index.remove(sha)?;
            }
        }
        tx.open_table(SHA256_BACKLOG)?.remove(&hash.0)?;
        {
            let mut chunks = tx.open_table(BLOB_CHUNKS)?;
            for i in 0..record.chunks {
                chunks.remove((&hash.0, i))?;
            }
        }
        Ok(true)
    }
}

/// A blob opened for reading in one read transaction: its size and a cursor over its chunks, so
/// a large image is sent chunk by chunk rather than loaded whole.
pub struct BlobChunks {
    table: ReadOnlyTable<(&'static [u8; 32], u32), &'static [u8]>,
    hash: BlobHash,
    next: u32,
    /// Bytes of chunk `next` to skip (a range starting inside it).
    skip: usize,
    /// Bytes still to read.
    remaining: u64,
    pub record: BlobRecord,
}

impl BlobChunks {
    /// Limits reading to `len` bytes from `start` (an HTTP range); reads only the chunks it spans.
    pub fn restrict(&mut self, start: u64, len: u64) {
        let start = start.min(self.record.size);
        let chunk = u64::from(self.record.chunk_size.max(1));
        self.next = (start / chunk) as u32;
        self.skip = (start % chunk) as usize;
        self.remaining = len.min(self.record.size - start);
    }

    /// Bytes left to read.
    pub fn remaining(&self) -> u64 {
        self.remaining
    }

    /// Reads up to `max_bytes` (rounded up to whole chunks) of what is left; `None` at the end.
    pub fn next_bytes(&mut self, max_bytes: usize) -> Result<Option<Bytes>> {
        if self.remaining == 0 || self.next >= self.record.chunks {
            return Ok(None);
        }
        let want = (max_bytes as u64).min(self.remaining) as usize;
        let mut out = BytesMut::with_capacity(want.min(self.remaining as usize));
        while self.next < self.record.chunks && self.remaining > 0 && out.len() < max_bytes {
            let chunk = self.table.get((&self.hash.0, self.next))?.ok_or_else(|| {
                StoreError::Corrupt(format!(
                    "blob {} lacks chunk {}",
                    self.hash.to_hex(),
                    self.next
                ))
            })?;
            let bytes = chunk.value().get(self.skip..).unwrap_or_default();
            let take = bytes.len().min(self.remaining as usize);
            out.extend_from_slice(&bytes[..take]);
            self.remaining -= take as u64;
            self.skip = 0;
            self.next += 1;
        }
        Ok(Some(out.freeze()))
    }

    /// The whole remaining blob in one buffer.
    pub fn read_all(&mut self) -> Result<Bytes> {
        Ok(self.next_bytes(usize::MAX)?.unwrap_or_default())
    }
}

/// Blobs hashed per commit of the backlog pass, and bytes read per commit at most (beyond one
/// blob): what the pass holds in memory is one chunk, and a commit's worth of keys.
const BACKLOG_BATCH: usize = 64;
const BACKLOG_BATCH_BYTES: u64 = 64 * 1024 * 1024;

impl Store {
    /// Blobs whose SHA-256 is still to be computed (`SHA256_BACKLOG`).
    pub fn sha256_backlog(&self) -> Result<u64> {
        let tx = self.read()?;
        Ok(redb::ReadableTableMetadata::len(
            &tx.open_table(SHA256_BACKLOG)?,
        )?)
    }

    /// Computes the SHA-256 of a batch of the backlog's blobs, reading each chunk by chunk, and
    /// records them in one commit (as derived data: lost in a crash, the blobs are still on the
    /// backlog and hashed again). How many were taken off the backlog; 0 when it is empty.
    pub fn hash_backlog(&self) -> Result<usize> {
        let mut done = Vec::new();
        let mut gone = Vec::new();
        {
            let tx = self.read()?;
            let backlog = tx.open_table(SHA256_BACKLOG)?;
            let mut bytes = 0u64;
            for entry in backlog.iter()?.take(BACKLOG_BATCH) {
                let hash = BlobHash(*entry?.0.value());
                let Some(mut blob) = self.blob(&hash)? else {
                    gone.push(hash);
                    continue;
                };
                bytes += blob.record.size;
                let mut sha = ring::digest::Context::new(&ring::digest::SHA256);
                while let Some(piece) = blob.next_bytes(1)? {
                    sha.update(&piece);
                }
                let mut out = [0; 32];
                out.copy_from_slice(sha.finish().as_ref());
                done.push((hash, Sha256(out)));
                if bytes >= BACKLOG_BATCH_BYTES {
                    break;
                }
            }
        }
        if done.is_empty() && gone.is_empty() {
            return Ok(0);
        }
        let tx = self.write_derived()?;
        for hash in &gone {
            tx.open_table(SHA256_BACKLOG)?.remove(&hash.0)?;
        }
        for (hash, sha) in &done {
            set_sha256(&tx, hash, sha)?;
        }
        self.finish(tx)?;
        Ok(done.len() + gone.len())
    }

    /// Opens the blob `hash` for reading; `None` if the store does not hold it.
    pub fn blob(&self, hash: &BlobHash) -> Result<Option<BlobChunks>> {
        let tx = self.read()?;
        let Some(record) = tx.open_table(BLOBS)?.get(&hash.0)? else {
            return Ok(None);
        };
        let record = BlobRecord::decode(record.value())?;
        Ok(Some(BlobChunks {
            table: tx.open_table(BLOB_CHUNKS)?,
            hash: *hash,
            next: 0,
            skip: 0,
            remaining: record.size,
            record,
        }))
    }
}
