//! Thumbnails of source blobs: one per distinct image, shared by every image record with the same
//! bytes, released together with their source. A thumbnail that would not be smaller than its
//! source is the source itself: its record points at the source blob and holds no reference.

use redb::{ReadableTable, WriteTransaction};

use super::blobs;
use super::records::{PhashRecord, Record, ThumbRecord};
use super::tables::*;
use super::{Result, Store};
use crate::domain::BlobHash;

/// Drops one reference to `blob`, and its thumbnail with its last reference.
pub(super) fn release_with_thumbnail(tx: &WriteTransaction, blob: &BlobHash) -> Result<()> {
    if blobs::release(tx, blob)? {
        release_for(tx, blob)?;
    }
    Ok(())
}

/// Removes the thumbnail of `source` (called when the source's last reference goes).
pub(super) fn release_for(tx: &WriteTransaction, source: &BlobHash) -> Result<()> {
    let old = tx
        .open_table(THUMBS)?
        .remove(&source.0)?
        .map(|v| v.value().to_vec());
    tx.open_table(THUMB_BACKLOG)?.remove(&source.0)?;
    tx.open_table(PHASHES)?.remove(&source.0)?;
    if let Some(ThumbRecord::Ready { blob, .. }) =
        old.map(|raw| ThumbRecord::decode(&raw)).transpose()?
    {
        if blob != *source {
            // A thumbnail's bytes may be some image's too, with a thumbnail of their own.
            release_with_thumbnail(tx, &blob)?;
        }
    }
    Ok(())
}

/// Writes a thumbnail outcome inside `tx`, with the source's perceptual hash when the thumbnail's
/// decode made one (see `Store::put_thumbnail`).
pub(super) fn put_in(
    tx: &WriteTransaction,
    source: &BlobHash,
    record: &ThumbRecord,
    bytes: &[u8],
    phash: Option<u64>,
) -> Result<()> {
    if tx.open_table(BLOBS)?.get(&source.0)?.is_none() {
        return Ok(());
    }
    let kept = match phash {
        Some(_) => None,
        None => tx
            .open_table(PHASHES)?
            .get(&source.0)?
            .map(|v| v.value().to_vec()),
    };
    release_for(tx, source)?;
    let hash = phash.map(|h| PhashRecord::new(crate::media::phash::ALGORITHM, h).encode());
    if let Some(hash) = hash.or(kept) {
        tx.open_table(PHASHES)?.insert(&source.0, hash.as_slice())?;
    }
    if let ThumbRecord::Ready { blob, .. } = record {
        if blob != source {
            blobs::add_ref(tx, blob, bytes)?;
        }
    }
    tx.open_table(THUMBS)?
        .insert(&source.0, record.encode().as_slice())?;
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
    /// `Ready`), replacing an older one, in a commit of its own. Does nothing if the source was
    /// deleted meanwhile. The server stores thumbnails through its writer instead (`Store::commit`).
    pub fn put_thumbnail(
        &self,
        source: &BlobHash,
        record: &ThumbRecord,
        bytes: &[u8],
        phash: Option<u64>,
    ) -> Result<()> {
        let tx = self.write_derived()?;
        put_in(&tx, source, record, bytes, phash)?;
        self.finish(tx)?;
        if phash.is_some() {
            self.hashes_added();
        }
        Ok(())
    }

    /// The perceptual hash of `source`, if it has one.
    pub fn phash(&self, source: &BlobHash) -> Result<Option<PhashRecord>> {
        let tx = self.read()?;
        let table = tx.open_table(PHASHES)?;
        let found = table.get(&source.0)?;
        found.map(|v| PhashRecord::decode(v.value())).transpose()
    }

    /// Stores perceptual hashes made apart from a thumbnail (the background pass over blobs
    /// stored before hashes existed), in one commit; those of blobs deleted meanwhile are dropped.
    pub fn put_phashes(&self, hashes: &[(BlobHash, u64)]) -> Result<()> {
        let tx = self.write_derived()?;
        {
            let blobs = tx.open_table(BLOBS)?;
            let mut table = tx.open_table(PHASHES)?;
            for (source, hash) in hashes {
                if blobs.get(&source.0)?.is_some() {
                    let record = PhashRecord::new(crate::media::phash::ALGORITHM, *hash);
                    table.insert(&source.0, record.encode().as_slice())?;
                }
            }
        }
        self.finish(tx)?;
        self.hashes_added();
        Ok(())
    }

    /// Up to `limit` source blobs after `after` (in hash order) whose thumbnail is made but whose
    /// perceptual hash is missing or of an older algorithm, with how many thumbnails were looked
    /// at and the last one's hash (where the next call goes on). Blobs whose image does not decode
    /// have no hash and are not listed.
    pub fn phash_backlog(
        &self,
        after: Option<&BlobHash>,
        limit: usize,
    ) -> Result<(Vec<BlobHash>, u64, Option<BlobHash>)> {
        let tx = self.read()?;
        let thumbs = tx.open_table(THUMBS)?;
        let hashes = tx.open_table(PHASHES)?;
        let range = match after {
            Some(after) => thumbs.range::<&[u8; 32]>((
                std::ops::Bound::Excluded(&after.0),
                std::ops::Bound::Unbounded,
            ))?,
            None => thumbs.range::<&[u8; 32]>(..)?,
        };
        let (mut out, mut seen, mut last) = (Vec::new(), 0u64, None);
        for entry in range {
            let (key, value) = entry?;
            let source = BlobHash(*key.value());
            seen += 1;
            last = Some(source);
            if matches!(
                ThumbRecord::decode(value.value())?,
                ThumbRecord::Failed { .. }
            ) {
                continue;
            }
            let current = match hashes.get(&source.0)? {
                Some(v) => PhashRecord::decode(v.value())?.is_current(),
                None => false,
            };
            if !current {
                out.push(source);
                if out.len() >= limit {
                    break;
                }
            }
        }
        Ok((out, seen, last))
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

#[cfg(test)]
mod tests {
    use super::super::DeleteOutcome;
    use super::super::test_support::{new_image, temp_store};
    use super::*;
    use crate::media::ImageKind;

    #[test]
    fn a_thumbnail_that_is_its_source_holds_no_reference_and_goes_with_it() {
        let (_dir, store) = temp_store();
        let (image, task) = new_image("i-1", "u", 1, b"tiny");
        store.save_image(&image, b"tiny", &task).unwrap();
        let itself = ThumbRecord::Ready {
            blob: image.blob,
            kind: ImageKind::Png,
            width: 1,
            height: 1,
            max_side: 512,
        };
        store
            .put_thumbnail(&image.blob, &itself, &[], Some(7))
            .unwrap();
        assert_eq!(store.blob(&image.blob).unwrap().unwrap().record.refs, 1);
        assert_eq!(store.thumbnail(&image.blob).unwrap(), Some(itself));
        // Remade (here: the same again), the record is replaced without touching the count.
        store
            .put_thumbnail(
                &image.blob,
                &store.thumbnail(&image.blob).unwrap().unwrap(),
                &[],
                None,
            )
            .unwrap();
        assert_eq!(
            store.phash(&image.blob).unwrap().map(|p| p.hash()),
            Some(7),
            "a thumbnail remade without a hash keeps the one it had"
        );
        assert_eq!(store.blob(&image.blob).unwrap().unwrap().record.refs, 1);
        assert_eq!(
            store.delete_image(&"i-1".into(), &"u".into()).unwrap(),
            DeleteOutcome::Deleted
        );
        assert!(store.blob(&image.blob).unwrap().is_none());
        assert!(store.thumbnail(&image.blob).unwrap().is_none());
        assert!(store.phash(&image.blob).unwrap().is_none());
        assert!(store.check().unwrap().is_clean());
    }
}
