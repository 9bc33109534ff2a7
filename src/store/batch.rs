//! One commit for everything the server's writer thread has waiting: uploads, and the thumbnails
//! and task ends the media workers produced. A durable commit costs an fsync and every commit
//! rewrites the leaf pages it touches, so sharing commits is what keeps ingest fast and the bytes
//! written per image close to the image's size.

use super::images::{NewImage, save_in};
use super::records::ThumbRecord;
use redb::ReadableTable;

use super::tables::BLOBS;
use super::{Result, Store, StoreError, tasks, thumbs};
use crate::clock::Micros;
use crate::domain::{BlobHash, TaskId};

/// A thumbnail outcome to store for `source`; `bytes` are the thumbnail's when it is `Ready` and
/// not the source itself (empty otherwise).
pub struct NewThumbnail {
    pub source: BlobHash,
    pub record: ThumbRecord,
    pub bytes: Vec<u8>,
    /// The source's perceptual hash, made from the same decode (none when it does not decode).
    pub phash: Option<u64>,
}

/// The end of an upload's `processing` task: completed, or failed with the reason.
pub struct TaskEnd {
    pub task_id: TaskId,
    pub outcome: Result<(), String>,
    pub at: Micros,
}

/// What one commit stores. Thumbnails are written before task ends, so a task is never
/// `completed` in a state where its thumbnail is missing.
#[derive(Default)]
pub struct Batch<'a> {
    pub uploads: Vec<NewImage<'a>>,
    pub thumbnails: Vec<&'a NewThumbnail>,
    pub task_ends: Vec<&'a TaskEnd>,
}

impl Store {
    /// Stores `batch` in one commit: durable when it holds an upload (an upload is acknowledged
    /// only once it survives a power cut), otherwise as derived data (`write_derived`). Returns
    /// each upload's outcome: a name conflict, missing bytes or a used idempotency key refuses
    /// that upload alone. Any other failure fails
    /// the whole batch and writes nothing.
    pub fn commit(&self, batch: &Batch<'_>) -> Result<Vec<Result<()>>> {
        self.commit_batch(batch).map_err(|e| self.failed(e))
    }

    fn commit_batch(&self, batch: &Batch<'_>) -> Result<Vec<Result<()>>> {
        let tx = if batch.uploads.is_empty() {
            self.write_derived()?
        } else {
            self.write()?
        };
        let mut outcomes = Vec::with_capacity(batch.uploads.len());
        // (bytes, whether they were stored already) of each upload stored, for the metrics.
        let mut stored = Vec::with_capacity(batch.uploads.len());
        for upload in &batch.uploads {
            let blob = &upload.image.blob.0;
            let existed = tx.open_table(BLOBS)?.get(blob)?.is_some();
            outcomes.push(match save_in(&tx, upload) {
                Err(e @ (StoreError::Conflict | StoreError::Missing | StoreError::KeyUsed)) => {
                    Err(e)
                }
                Err(e) => return Err(e),
                Ok(()) => {
                    stored.push((upload.image.file_size, existed));
                    Ok(())
                }
            });
        }
        for thumb in &batch.thumbnails {
            thumbs::put_in(&tx, &thumb.source, &thumb.record, &thumb.bytes, thumb.phash)?;
        }
        for end in &batch.task_ends {
            let outcome = end.outcome.as_ref().map_err(String::as_str).copied();
            tasks::finish_in(&tx, end.task_id.as_str(), outcome, end.at)?;
        }
        self.finish(tx)?;
        for (bytes, existed) in stored {
            crate::metrics::get().upload(bytes, existed);
        }
        if batch.thumbnails.iter().any(|t| t.phash.is_some()) {
            self.hashes_added();
        }
        Ok(outcomes)
    }
}

#[cfg(test)]
mod tests {
    use super::super::records::TaskStatus;
    use super::super::test_support::{jpeg_thumb, new_image, temp_store};
    use super::*;

    #[test]
    fn one_commit_stores_an_upload_beside_an_earlier_uploads_thumbnail_and_task_end() {
        let (_dir, store) = temp_store();
        let (earlier, earlier_task) = new_image("i-1", "u", 1, b"earlier");
        store
            .save_image(&earlier, b"earlier", &earlier_task)
            .unwrap();
        let (taken, taken_task) = new_image("i-1", "u", 2, b"taken name");
        let taken = super::super::records::ImageRecord {
            id: "i-2".into(),
            ..taken
        };
        let (next, next_task) = new_image("i-3", "u", 3, b"next");
        let thumb = jpeg_thumb(b"thumb");
        let outcomes = store
            .commit(&Batch {
                uploads: vec![
                    NewImage::plain(&taken, b"taken name", &taken_task),
                    NewImage::plain(&next, b"next", &next_task),
                ],
                thumbnails: vec![&NewThumbnail {
                    source: earlier.blob,
                    record: thumb.clone(),
                    bytes: b"thumb".to_vec(),
                    phash: Some(3),
                }],
                task_ends: vec![&TaskEnd {
                    task_id: earlier_task.task_id.clone(),
                    outcome: Ok(()),
                    at: 5,
                }],
            })
            .unwrap();
        assert!(matches!(outcomes[..], [Err(StoreError::Conflict), Ok(())]));
        assert!(store.image(&"i-2".into()).unwrap().is_none());
        assert!(store.image(&"i-3".into()).unwrap().is_some());
        assert_eq!(store.thumbnail(&earlier.blob).unwrap(), Some(thumb));
        assert_eq!(
            store.phash(&earlier.blob).unwrap().map(|p| p.hash()),
            Some(3)
        );
        assert_eq!(
            store
                .blob(&BlobHash::of(b"thumb"))
                .unwrap()
                .unwrap()
                .record
                .refs,
            1
        );
        let ended = store.task(&earlier_task.task_id).unwrap().unwrap();
        assert_eq!((ended.status, ended.updated_at), (TaskStatus::Completed, 5));
        let pending = store.task(&next_task.task_id).unwrap().unwrap();
        assert_eq!(pending.status, TaskStatus::Processing);
        // The test has no user records; everything else must be consistent.
        let report = store.check().unwrap();
        let others: Vec<_> = report
            .problems
            .iter()
            .filter(|p| !p.what.ends_with("who does not exist"))
            .collect();
        assert!(others.is_empty(), "{others:?}");
    }

    #[test]
    fn a_thumbnail_for_a_source_deleted_meanwhile_is_dropped() {
        let (_dir, store) = temp_store();
        let gone = BlobHash::of(b"gone");
        let thumb = ThumbRecord::Failed { reason: "x".into() };
        let outcomes = store
            .commit(&Batch {
                thumbnails: vec![&NewThumbnail {
                    source: gone,
                    record: thumb,
                    bytes: Vec::new(),
                    phash: Some(3),
                }],
                ..Batch::default()
            })
            .unwrap();
        assert!(outcomes.is_empty());
        assert!(store.thumbnail(&gone).unwrap().is_none());
        assert!(store.phash(&gone).unwrap().is_none());
    }
}
