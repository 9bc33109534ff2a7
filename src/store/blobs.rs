//! Content-addressed image bytes: stored once per blake3 hash in fixed-size chunks, with a reference
//! count in a separate small record so that sharing or releasing a blob never rewrites its bytes.

use bytes::{Bytes, BytesMut};
use redb::{ReadOnlyTable, ReadableTable, WriteTransaction};

use super::records::{BlobRecord, Record};
use super::tables::*;
use super::{Result, Store, StoreError};
use crate::domain::BlobHash;

/// Adds one reference to the blob of `bytes`, writing its chunks if the store does not hold it yet.
pub(super) fn add_ref(tx: &WriteTransaction, hash: &BlobHash, bytes: &[u8]) -> Result<()> {
    let mut blobs = tx.open_table(BLOBS)?;
    let existing = blobs
        .get(&hash.0)?
        .map(|v| BlobRecord::decode(v.value()))
        .transpose()?;
    let record = match existing {
        Some(mut record) => {
            record.refs += 1;
            record
        }
        None => {
            let mut chunks = tx.open_table(BLOB_CHUNKS)?;
            let mut count = 0u32;
            for (i, chunk) in bytes.chunks(CHUNK_SIZE).enumerate() {
                chunks.insert((&hash.0, i as u32), chunk)?;
                count += 1;
            }
            BlobRecord {
                size: bytes.len() as u64,
                chunks: count,
                refs: 1,
                chunk_size: CHUNK_SIZE as u32,
            }
        }
    };
    blobs.insert(&hash.0, record.encode().as_slice())?;
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
        Ok(false)
    } else {
        blobs.remove(&hash.0)?;
        drop(blobs);
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

impl Store {
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
