//! Thumbnails of source blobs: one per distinct image, shared by every image record with the same
//! bytes, released together with their source.

use redb::{ReadableTable, WriteTransaction};

use super::blobs;
use super::records::{Record, ThumbRecord};
use super::tables::*;
use super::{Result, Store};
use crate::domain::BlobHash;

/// Removes the thumbnail of `source` (called when the source's last reference goes).
pub(super) fn release_for(tx: &WriteTransaction, source: &BlobHash) -> Result<()> {
    let old = tx
        .open_table(THUMBS)?
        .remove(&source.0)?
        .map(|v| v.value().to_vec());
    tx.open_table(THUMB_BACKLOG)?.remove(&source.0)?;
    if let Some(ThumbRecord::Ready { blob, .. }) =
        old.map(|raw| ThumbRecord::decode(&raw)).transpose()?
    {
        blobs::release(tx, &blob)?;
    }
    Ok(())
}

impl Store {
    pub fn thumbnail(&self, source: &BlobHash) -> Result<Option<ThumbRecord>> {
        let tx = self.read()?;
        let thumbs = tx.open_table(THUMBS)?;
        let found = thumbs.get(&source.0)?;
        found.map(|v| ThumbRecord::decode(v.value())).transpose()
    }

    /// Stores the outcome of making `source`'s thumbnail (`bytes` are the thumbnail's when it is
    /// `Ready`), replacing an older one. Does nothing if the source was deleted meanwhile.
    pub fn put_thumbnail(
        &self,
        source: &BlobHash,
        record: &ThumbRecord,
        bytes: &[u8],
    ) -> Result<()> {
        let tx = self.write_derived()?;
        {
            if tx.open_table(BLOBS)?.get(&source.0)?.is_none() {
                return Ok(());
            }
            release_for(&tx, source)?;
            if let ThumbRecord::Ready { blob, .. } = record {
                blobs::add_ref(&tx, blob, bytes)?;
            }
            tx.open_table(THUMBS)?
                .insert(&source.0, record.encode().as_slice())?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Source blobs waiting for a thumbnail with no upload task behind them.
    pub fn thumb_backlog(&self) -> Result<Vec<BlobHash>> {
        let tx = self.read()?;
        let backlog = tx.open_table(THUMB_BACKLOG)?;
        let mut out = Vec::new();
        for entry in backlog.iter()? {
            out.push(BlobHash(*entry?.0.value()));
        }
        Ok(out)
    }
}
