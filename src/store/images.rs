//! Image records with their indexes and counters. Every change to an image touches the record, the
//! name, time and category indexes, the blob's reference count and the counters (per user, per
//! user and category, and the total) in one transaction, so the counters can be read in O(1) and
//! always agree with the records.

use std::ops::{Bound, RangeInclusive};

use redb::{ReadTransaction, ReadableTable, WriteTransaction};

use super::idempotency::NewKey;
use super::records::{ImageRecord, OriginalMedia, Record, TagRecord, TaskRecord, codes};
use super::tables::*;
use super::{Batch, Result, Store, StoreError};
use super::{blobs, content, idempotency, paging, search, stats, thumbs};
use crate::clock::Micros;
use crate::domain::{BlobHash, Category, ImageId, Sha256, Tags, UserId};

pub(super) const TOTAL_IMAGES_KEY: &str = "total_images";

/// One page of a user's images, newest first.
#[derive(Debug)]
pub struct ImagePage {
    pub images: Vec<ImageRecord>,
    /// All of the user's images (of the category, when the page is of one), not just this page.
    pub total: u64,
}

#[derive(Debug, PartialEq, Eq)]
pub enum DeleteOutcome {
    Deleted,
    NotFound,
    NotOwner,
}

/// What became of a change to one image's record.
#[derive(Debug, PartialEq)]
pub enum ChangeOutcome {
    Changed(Box<ImageRecord>),
    NotFound,
    NotOwner,
    /// The image already is as the change would make it (a revert of an unedited image).
    Unchanged,
    /// The image's bytes are no longer the ones the change was made from (another edit won).
    Conflict,
}

/// New bytes for an image: an edit of what it shows.
#[derive(Debug, Clone, Copy)]
pub struct NewMedia<'a> {
    pub bytes: &'a [u8],
    pub kind: crate::media::ImageKind,
    pub width: u32,
    pub height: u32,
}

/// One of a user's tags and how many of their images carry it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagCount {
    pub tag: String,
    pub count: u64,
}

/// Adds (`delta` 1) or takes away (-1) `image`'s entries in the tag index and counts, overall and
/// in its category.
fn index_tags(tx: &WriteTransaction, image: &ImageRecord, delta: i64) -> Result<()> {
    if image.tags.is_empty() {
        return Ok(());
    }
    let user = image.user_id.as_str();
    let mut index = tx.open_table(USER_TAG_IMAGES)?;
    let mut counts = tx.open_table(USER_TAGS)?;
    for shown in &image.tags {
        let folded = crate::text::fold(shown);
        let key = (user, folded.as_str(), image.saved_at, image.id.as_str());
        let current = counts
            .get((user, folded.as_str()))?
            .map(|v| TagRecord::decode(v.value()))
            .transpose()?;
        if delta > 0 {
            index.insert(key, ())?;
            let record = match current {
                Some(record) => TagRecord {
                    count: record.count + 1,
                    ..record
                },
                None => TagRecord {
                    count: 1,
                    shown: shown.clone(),
                },
            };
            counts.insert((user, folded.as_str()), record.encode().as_slice())?;
        } else {
            index.remove(key)?;
            match current {
                Some(record) if record.count > 1 => {
                    let record = TagRecord {
                        count: record.count - 1,
                        ..record
                    };
                    counts.insert((user, folded.as_str()), record.encode().as_slice())?;
                }
                _ => {
                    counts.remove((user, folded.as_str()))?;
                }
            }
        }
    }
    count_in_category(tx, image, delta)
}

/// Adds `delta` to the counts of `image`'s tags in its category (`USER_CATEGORY_TAGS`), removed
/// at zero.
fn count_in_category(tx: &WriteTransaction, image: &ImageRecord, delta: i64) -> Result<()> {
    let mut counts = tx.open_table(USER_CATEGORY_TAGS)?;
    let code = codes::category::to_code(image.category);
    for shown in &image.tags {
        let folded = crate::text::fold(shown);
        let key = (image.user_id.as_str(), code, folded.as_str());
        let have = counts.get(key)?.map_or(0, |v| v.value());
        match have.checked_add_signed(delta).unwrap_or(0) {
            0 => counts.remove(key)?,
            n => counts.insert(key, n)?,
        };
    }
    Ok(())
}

/// Every key of `user_id`'s images with the tag folded as `folded`, oldest first.
fn tag_range<'a>(
    user_id: &'a str,
    folded: &'a str,
) -> RangeInclusive<(&'a str, &'a str, Micros, &'static str)> {
    (user_id, folded, i64::MIN, "")..=(user_id, folded, i64::MAX, "\u{10FFFF}")
}

/// Adds `delta` to the counters `image` is counted in: its user's, its user's in its category, and
/// the total. A counter that reaches zero is removed.
fn bump(tx: &WriteTransaction, image: &ImageRecord, delta: i64) -> Result<()> {
    let apply = |v: u64| v.checked_add_signed(delta).unwrap_or(0);
    let user_id = image.user_id.as_str();
    let mut counts = tx.open_table(USER_IMAGE_COUNTS)?;
    let user = counts.get(user_id)?.map_or(0, |v| v.value());
    match apply(user) {
        0 => counts.remove(user_id)?,
        n => counts.insert(user_id, n)?,
    };
    drop(counts);
    bump_category(tx, image, delta)?;
    let mut meta = tx.open_table(META)?;
    let total = meta.get(TOTAL_IMAGES_KEY)?.map_or(0, |v| v.value());
    meta.insert(TOTAL_IMAGES_KEY, apply(total))?;
    Ok(())
}

/// Adds `delta` to the count of `image`'s user's images in its category, removed at zero.
fn bump_category(tx: &WriteTransaction, image: &ImageRecord, delta: i64) -> Result<()> {
    let mut by_category = tx.open_table(USER_CATEGORY_COUNTS)?;
    let key = (
        image.user_id.as_str(),
        codes::category::to_code(image.category),
    );
    let in_category = by_category.get(key)?.map_or(0, |v| v.value());
    match in_category.checked_add_signed(delta).unwrap_or(0) {
        0 => by_category.remove(key)?,
        n => by_category.insert(key, n)?,
    };
    Ok(())
}

/// The most images one batch may name: one commit, about 2 s of work on a small machine.
pub const MAX_BATCH_IDS: usize = 10_000;

/// What a batch does to each of its images.
#[derive(Debug, Clone)]
pub enum BatchAction {
    SetCategory(Category),
    /// Appends those not there yet, after the image's own.
    AddTags(Tags),
    RemoveTags(Tags),
    /// Moves live images to the trash at that time.
    Trash(Micros),
    /// Brings trashed images back.
    Restore,
    /// Live or trashed.
    DeleteForever,
}

/// Why a batch left one of its images alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skipped {
    /// No image of the caller's has that id (another user's is reported alike).
    NotFound,
    /// The id came earlier in the same batch.
    Repeated,
    /// The image already is as the action would make it.
    Unchanged,
    /// Adding the tags would take the image past `MAX_TAGS`.
    TooManyTags,
    /// Only `restore` and `delete_forever` act on a trashed image.
    InTrash,
    /// `restore` of an image that is not in the trash.
    NotInTrash,
}

impl Skipped {
    pub fn as_str(self) -> &'static str {
        match self {
            Skipped::NotFound => "not_found",
            Skipped::Repeated => "repeated",
            Skipped::Unchanged => "unchanged",
            Skipped::TooManyTags => "too_many_tags",
            Skipped::InTrash => "in_trash",
            Skipped::NotInTrash => "not_in_trash",
        }
    }
}

#[derive(Debug, Default)]
pub struct BatchOutcome {
    pub changed: u64,
    pub skipped: Vec<(ImageId, Skipped)>,
}

/// What a hub learns of one of its images at a sync: the state its owner's server has now.
#[derive(Debug, Clone)]
pub struct SyncUpdate {
    pub id: ImageId,
    pub tags: Tags,
    pub category: Category,
    /// `Some` when it is in the sender's trash (since then).
    pub trashed_at: Option<Micros>,
}

/// An upload to store: its record, bytes and `processing` task.
#[derive(Clone, Copy)]
pub struct NewImage<'a> {
    pub image: &'a ImageRecord,
    /// Empty for a new capture of bytes the store holds (`Missing` if it does not).
    pub bytes: &'a [u8],
    pub task: &'a TaskRecord,
    /// The SHA-256 of `bytes`, when the caller computed it (off the writer); else it is computed
    /// in the commit if the blob is new.
    pub sha256: Option<Sha256>,
    /// The `Idempotency-Key` the capture came with, stored in the same commit.
    pub key: Option<&'a NewKey>,
}

impl<'a> NewImage<'a> {
    /// An upload with nothing but its record, bytes and task.
    pub fn plain(image: &'a ImageRecord, bytes: &'a [u8], task: &'a TaskRecord) -> Self {
        Self {
            image,
            bytes,
            task,
            sha256: None,
            key: None,
        }
    }
}

/// Writes one upload inside `tx`. Checks the name, the bytes of a capture without bytes, and the
/// idempotency key first, so a `Conflict`, `Missing` or `KeyUsed` writes nothing.
pub(super) fn save_in(tx: &WriteTransaction, upload: &NewImage<'_>) -> Result<()> {
    let NewImage {
        image, bytes, task, ..
    } = *upload;
    let mut names = tx.open_table(IMAGE_NAMES)?;
    let name_key = (image.user_id.as_str(), image.filename.as_str());
    if names.get(name_key)?.is_some() {
        return Err(StoreError::Conflict);
    }
    if bytes.is_empty() && tx.open_table(BLOBS)?.get(&image.blob.0)?.is_none() {
        return Err(StoreError::Missing);
    }
    if let Some(key) = upload.key {
        idempotency::put_in(tx, image.user_id.as_str(), key)?;
    }
    names.insert(name_key, image.id.as_str())?;
    drop(names);
    blobs::add_capture_ref(tx, &image.blob, bytes, upload.sha256)?;
    tx.open_table(IMAGES)?
        .insert(image.id.as_str(), image.encode().as_slice())?;
    index_live(tx, image, 1)?;
    tx.open_table(TASKS)?
        .insert(task.task_id.as_str(), task.encode().as_slice())?;
    tx.open_table(PENDING_TASKS)?
        .insert(task.task_id.as_str(), ())?;
    Ok(())
}

/// `image`'s key in `USER_CATEGORY_IMAGES`.
pub(super) fn category_key(image: &ImageRecord) -> (&str, u8, Micros, &str) {
    (
        image.user_id.as_str(),
        codes::category::to_code(image.category),
        image.saved_at,
        image.id.as_str(),
    )
}

/// Adds (`delta` 1) or takes away (-1) a live image's entries in everything that lists, finds or
/// counts live images: the time, category, tag, content and URL indexes, the search rows, the
/// counters and the statistics. The one place those are kept, for every way an image arrives, changes or leaves
/// (trash, restore, delete). The record itself is the caller's to write. A change in place (tags,
/// category) keeps them itself and rewrites the search row with `search::reindex`.
pub(super) fn index_live(tx: &WriteTransaction, image: &ImageRecord, delta: i64) -> Result<()> {
    let (user, at, id) = (image.user_id.as_str(), image.saved_at, image.id.as_str());
    if delta > 0 {
        let newest_end = paging::before_insert(tx, user, at, id)?;
        tx.open_table(USER_IMAGES)?.insert((user, at, id), ())?;
        tx.open_table(USER_CATEGORY_IMAGES)?
            .insert(category_key(image), ())?;
        search::add(tx, image, newest_end)?;
    } else {
        tx.open_table(USER_IMAGES)?.remove((user, at, id))?;
        tx.open_table(USER_CATEGORY_IMAGES)?
            .remove(category_key(image))?;
        paging::bump_epoch(tx, user)?;
        search::remove(tx, image)?;
    }
    index_tags(tx, image, delta)?;
    // Before `content::index`: it reads the user's captures of the content as they were.
    stats::live(tx, image, delta)?;
    content::index(tx, image, delta)?;
    bump(tx, image, delta)
}

/// `image`'s key in `USER_TRASH`; `None` when it is live.
fn trash_key(image: &ImageRecord) -> Option<(&str, Micros, &str)> {
    image
        .trashed_at
        .map(|at| (image.user_id.as_str(), at, image.id.as_str()))
}

/// Removes an image record for good with its indexes (the trash's, when trashed), its share of the
/// counters and its blob references. One the hub holds is remembered for the next sync.
pub(super) fn remove(tx: &WriteTransaction, image: &ImageRecord) -> Result<()> {
    tx.open_table(IMAGES)?.remove(image.id.as_str())?;
    tx.open_table(REVISIT)?.remove(image.id.as_str())?;
    tx.open_table(IMAGE_NAMES)?
        .remove((image.user_id.as_str(), image.filename.as_str()))?;
    match trash_key(image) {
        Some(key) => {
            tx.open_table(USER_TRASH)?.remove(key)?;
            stats::trash(tx, image, -1)?;
        }
        None => index_live(tx, image, -1)?,
    }
    if image.cloud_synced {
        tx.open_table(HUB_DELETIONS)?.insert(
            (image.user_id.as_str(), image.id.as_str()),
            crate::clock::now(),
        )?;
    }
    for blob in image.blobs() {
        thumbs::release_with_thumbnail(tx, blob)?;
    }
    Ok(())
}

/// Moves a live image to the trash at `at`: out of every live index and count, into the trash's.
fn trash(tx: &WriteTransaction, image: &mut ImageRecord, at: Micros) -> Result<()> {
    index_live(tx, image, -1)?;
    image.trashed_at = Some(at);
    let key = trash_key(image).expect("just trashed");
    tx.open_table(USER_TRASH)?.insert(key, ())?;
    stats::trash(tx, image, 1)?;
    changed_for_hub(image);
    Ok(())
}

/// Brings a trashed image back where it was, as it was.
fn restore(tx: &WriteTransaction, image: &mut ImageRecord) -> Result<()> {
    if let Some(key) = trash_key(image) {
        tx.open_table(USER_TRASH)?.remove(key)?;
        stats::trash(tx, image, -1)?;
    }
    image.trashed_at = None;
    index_live(tx, image, 1)?;
    changed_for_hub(image);
    Ok(())
}

/// Marks a change the hub must hear of, when it holds the image.
fn changed_for_hub(image: &mut ImageRecord) {
    if image.cloud_synced {
        image.hub_stale = true;
    }
}

/// Every key of `user_id`'s images in the category stored as `code`, oldest first.
fn category_range(user_id: &str, code: u8) -> RangeInclusive<(&str, u8, Micros, &str)> {
    (user_id, code, i64::MIN, "")..=(user_id, code, i64::MAX, "\u{10FFFF}")
}

/// Every key of `user_id`'s trashed images, longest in the trash first.
fn trash_range(user_id: &str) -> RangeInclusive<(&str, Micros, &str)> {
    (user_id, i64::MIN, "")..=(user_id, i64::MAX, "\u{10FFFF}")
}

/// Every image record of `user_id`, live and trashed.
pub(super) fn every_image_of(tx: &WriteTransaction, user_id: &UserId) -> Result<Vec<ImageRecord>> {
    let user = user_id.as_str();
    let records = tx.open_table(IMAGES)?;
    let mut ids = Vec::new();
    for entry in tx
        .open_table(USER_IMAGES)?
        .range((user, i64::MIN, "")..=(user, i64::MAX, "\u{10FFFF}"))?
    {
        ids.push(entry?.0.value().2.to_string());
    }
    for entry in tx.open_table(USER_TRASH)?.range(trash_range(user))? {
        ids.push(entry?.0.value().2.to_string());
    }
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(raw) = records.get(id.as_str())? {
            out.push(ImageRecord::decode(raw.value())?);
        }
    }
    Ok(out)
}

/// The records of `ids`, in that order. `index` names the index the ids came from, for the error
/// when one points at no record.
pub(super) fn records(
    images: &impl ReadableTable<&'static str, &'static [u8]>,
    ids: &[String],
    index: &str,
) -> Result<Vec<ImageRecord>> {
    let mut out = Vec::with_capacity(ids.len());
    for image_id in ids {
        let record = images.get(image_id.as_str())?.ok_or_else(|| {
            StoreError::Corrupt(format!("{index} index points at missing image {image_id}"))
        })?;
        out.push(ImageRecord::decode(record.value())?);
    }
    Ok(out)
}

/// The record of `image_id`, read inside a write transaction.
pub(super) fn record_in(tx: &WriteTransaction, image_id: &ImageId) -> Result<Option<ImageRecord>> {
    tx.open_table(IMAGES)?
        .get(image_id.as_str())?
        .map(|v| ImageRecord::decode(v.value()))
        .transpose()
}

/// Writes `image`'s record over the stored one (its indexes are the caller's).
pub(super) fn put_record(tx: &WriteTransaction, image: &ImageRecord) -> Result<()> {
    tx.open_table(IMAGES)?
        .insert(image.id.as_str(), image.encode().as_slice())?;
    Ok(())
}

impl Store {
    /// Stores an uploaded image, its bytes (deduplicated) and its `processing` task, in one commit.
    /// `Conflict` if the user already has an image of that file name; nothing is written then.
    pub fn save_image(&self, image: &ImageRecord, bytes: &[u8], task: &TaskRecord) -> Result<()> {
        let tx = self.write()?;
        save_in(&tx, &NewImage::plain(image, bytes, task))?;
        self.finish(tx)?;
        Ok(())
    }

    /// Stores several uploads in one durable commit (one fsync for all). Each gets its own
    /// outcome: one upload's name conflict does not affect the others. If the commit fails, all
    /// fail and nothing is written.
    pub fn save_images(&self, uploads: &[NewImage<'_>]) -> Result<Vec<Result<()>>> {
        self.commit(&Batch {
            uploads: uploads.to_vec(),
            ..Batch::default()
        })
    }

    pub fn image(&self, image_id: &ImageId) -> Result<Option<ImageRecord>> {
        let tx = self.read()?;
        let images = tx.open_table(IMAGES)?;
        let found = images.get(image_id.as_str())?;
        found.map(|v| ImageRecord::decode(v.value())).transpose()
    }

    /// The image `filename` of `user_id`, if that user has one by that name.
    pub fn image_by_name(&self, user_id: &UserId, filename: &str) -> Result<Option<ImageRecord>> {
        let tx = self.read()?;
        let Some(id) = tx
            .open_table(IMAGE_NAMES)?
            .get((user_id.as_str(), filename))?
        else {
            return Ok(None);
        };
        let images = tx.open_table(IMAGES)?;
        let found = images.get(id.value())?;
        match found {
            Some(v) => Ok(Some(ImageRecord::decode(v.value())?)),
            None => Err(StoreError::Corrupt(format!(
                "name index points at missing image {}",
                id.value()
            ))),
        }
    }

    /// Moves `owner`'s image to the trash at `at`, in one commit: it leaves every list, search and
    /// count and keeps its bytes until it is deleted for good. One already in the trash stays as
    /// it is (`Deleted`: asking twice is answered alike).
    pub fn trash_image(
        &self,
        image_id: &ImageId,
        owner: &UserId,
        at: Micros,
    ) -> Result<DeleteOutcome> {
        let tx = self.write()?;
        let Some(mut image) = record_in(&tx, image_id)? else {
            return Ok(DeleteOutcome::NotFound);
        };
        if image.user_id != *owner {
            return Ok(DeleteOutcome::NotOwner);
        }
        if !image.is_trashed() {
            trash(&tx, &mut image, at)?;
            put_record(&tx, &image)?;
            self.finish(tx)?;
        }
        Ok(DeleteOutcome::Deleted)
    }

    /// Deletes `owner`'s image for good, live or trashed: record, indexes, counters and blob
    /// references in one commit; the bytes go with their last reference.
    pub fn delete_image(&self, image_id: &ImageId, owner: &UserId) -> Result<DeleteOutcome> {
        let tx = self.write()?;
        let Some(image) = record_in(&tx, image_id)? else {
            return Ok(DeleteOutcome::NotFound);
        };
        if image.user_id != *owner {
            return Ok(DeleteOutcome::NotOwner);
        }
        remove(&tx, &image)?;
        self.finish(tx)?;
        Ok(DeleteOutcome::Deleted)
    }

    /// Page `page` of `user_id`'s trash, most recently trashed first, with the trash's size.
    pub fn list_trash(&self, user_id: &UserId, page: u64, per_page: u64) -> Result<ImagePage> {
        let tx = self.read()?;
        let index = tx.open_table(USER_TRASH)?;
        let skip = page.saturating_sub(1).saturating_mul(per_page);
        let (mut total, mut ids) = (0u64, Vec::new());
        for entry in index.range(trash_range(user_id.as_str()))?.rev() {
            let (key, _) = entry?;
            if total >= skip && (ids.len() as u64) < per_page {
                ids.push(key.value().2.to_string());
            }
            total += 1;
        }
        let images = records(&tx.open_table(IMAGES)?, &ids, "trash")?;
        Ok(ImagePage { images, total })
    }

    /// Deletes every image in `user_id`'s trash for good, in one commit; how many went.
    pub fn empty_trash(&self, user_id: &UserId) -> Result<u64> {
        self.purge_trash(Some(user_id), i64::MAX)
    }

    /// Deletes for good every trashed image (of `user_id`, or of everyone) trashed before
    /// `before`, in one commit; how many went.
    pub fn purge_trash(&self, user_id: Option<&UserId>, before: Micros) -> Result<u64> {
        let tx = self.write()?;
        let doomed = {
            let index = tx.open_table(USER_TRASH)?;
            let range = match user_id {
                Some(user) => index.range(trash_range(user.as_str()))?,
                None => index.range::<(&str, Micros, &str)>(..)?,
            };
            let mut ids = Vec::new();
            for entry in range {
                let (key, _) = entry?;
                let (_, at, id) = key.value();
                if at < before {
                    ids.push(id.to_string());
                }
            }
            records(&tx.open_table(IMAGES)?, &ids, "trash")?
        };
        for image in &doomed {
            remove(&tx, image)?;
        }
        if doomed.is_empty() {
            return Ok(0);
        }
        self.finish(tx)?;
        Ok(doomed.len() as u64)
    }

    /// Replaces the tags of `owner`'s image `image_id`, keeping the tag index and counts in step, in
    /// one commit. The answer carries the changed record.
    pub fn set_tags(
        &self,
        image_id: &ImageId,
        owner: &UserId,
        tags: &Tags,
    ) -> Result<ChangeOutcome> {
        let tx = self.write()?;
        let Some(mut image) = record_in(&tx, image_id)?.filter(|i| !i.is_trashed()) else {
            return Ok(ChangeOutcome::NotFound);
        };
        if image.user_id != *owner {
            return Ok(ChangeOutcome::NotOwner);
        }
        let tags: Vec<String> = tags.iter().map(|t| t.as_str().to_string()).collect();
        if tags != image.tags {
            index_tags(&tx, &image, -1)?;
            image.tags = tags;
            index_tags(&tx, &image, 1)?;
            search::reindex(&tx, &image)?;
            changed_for_hub(&mut image);
            put_record(&tx, &image)?;
        }
        self.finish(tx)?;
        Ok(ChangeOutcome::Changed(Box::new(image)))
    }

    /// Makes `owner`'s live image `image_id` show `media` (an edit), or its original again
    /// (`None`: a revert), in one commit, if it still shows the blob `from`. The first edit keeps
    /// the upload as `original`; later edits replace the edited bytes, whose blob is released;
    /// bytes equal to the original's are a revert. Every live index is refreshed (the size and
    /// dimensions change).
    pub fn change_media(
        &self,
        image_id: &ImageId,
        owner: &UserId,
        from: &BlobHash,
        media: Option<NewMedia<'_>>,
    ) -> Result<ChangeOutcome> {
        let tx = self.write()?;
        let Some(mut image) = record_in(&tx, image_id)?.filter(|i| !i.is_trashed()) else {
            return Ok(ChangeOutcome::NotFound);
        };
        if image.user_id != *owner {
            return Ok(ChangeOutcome::NotOwner);
        }
        if image.blob != *from {
            return Ok(ChangeOutcome::Conflict);
        }
        let hash = media.map(|m| BlobHash::of(m.bytes));
        if hash == Some(image.blob) || (media.is_none() && image.original.is_none()) {
            return Ok(ChangeOutcome::Unchanged);
        }
        index_live(&tx, &image, -1)?;
        let reverting = match (&image.original, hash) {
            (Some(original), Some(hash)) => original.blob == hash,
            (Some(_), None) => true,
            (None, _) => false,
        };
        if reverting {
            let original = image.original.take().expect("reverting an edited image");
            thumbs::release_with_thumbnail(&tx, &image.blob)?;
            image.blob = original.blob;
            image.kind = original.kind;
            image.width = original.width;
            image.height = original.height;
            image.file_size = original.file_size;
        } else {
            let media = media.expect("an edit has new bytes");
            let hash = hash.expect("an edit has a hash");
            match &image.original {
                Some(_) => thumbs::release_with_thumbnail(&tx, &image.blob)?,
                None => {
                    image.original = Some(OriginalMedia {
                        blob: image.blob,
                        kind: image.kind,
                        width: image.width,
                        height: image.height,
                        file_size: image.file_size,
                    })
                }
            }
            blobs::add_ref(&tx, &hash, media.bytes)?;
            image.blob = hash;
            image.kind = media.kind;
            image.width = media.width;
            image.height = media.height;
            image.file_size = media.bytes.len() as u64;
        }
        // Its sizes are now the shown ones, whatever an older version recorded.
        tx.open_table(REVISIT)?.remove(image.id.as_str())?;
        index_live(&tx, &image, 1)?;
        changed_for_hub(&mut image);
        put_record(&tx, &image)?;
        self.finish(tx)?;
        Ok(ChangeOutcome::Changed(Box::new(image)))
    }

    /// Applies `action` to each of `owner`'s images among `ids`, in one commit: all of it is stored
    /// or, on a store error, none. Ids that are not `owner`'s images are skipped and never touched.
    pub fn batch(
        &self,
        owner: &UserId,
        ids: &[ImageId],
        action: &BatchAction,
    ) -> Result<BatchOutcome> {
        let tx = self.write()?;
        let mut outcome = BatchOutcome::default();
        let mut seen = std::collections::HashSet::new();
        for id in ids {
            if !seen.insert(id) {
                outcome.skipped.push((id.clone(), Skipped::Repeated));
                continue;
            }
            let found = record_in(&tx, id)?;
            let Some(mut image) = found.filter(|image| image.user_id == *owner) else {
                outcome.skipped.push((id.clone(), Skipped::NotFound));
                continue;
            };
            let skipped = match action {
                BatchAction::DeleteForever => {
                    remove(&tx, &image)?;
                    None
                }
                BatchAction::Trash(_) | BatchAction::Restore if image.is_trashed() => {
                    match action {
                        BatchAction::Restore => {
                            restore(&tx, &mut image)?;
                            None
                        }
                        _ => Some(Skipped::Unchanged),
                    }
                }
                BatchAction::Trash(at) => {
                    trash(&tx, &mut image, *at)?;
                    None
                }
                BatchAction::Restore => Some(Skipped::NotInTrash),
                _ if image.is_trashed() => Some(Skipped::InTrash),
                BatchAction::SetCategory(category) if *category == image.category => {
                    Some(Skipped::Unchanged)
                }
                BatchAction::SetCategory(category) => {
                    let mut index = tx.open_table(USER_CATEGORY_IMAGES)?;
                    index.remove(category_key(&image))?;
                    bump_category(&tx, &image, -1)?;
                    count_in_category(&tx, &image, -1)?;
                    content::index(&tx, &image, -1)?;
                    stats::category(&tx, &image, -1)?;
                    image.category = *category;
                    index.insert(category_key(&image), ())?;
                    bump_category(&tx, &image, 1)?;
                    count_in_category(&tx, &image, 1)?;
                    content::index(&tx, &image, 1)?;
                    stats::category(&tx, &image, 1)?;
                    search::reindex(&tx, &image)?;
                    changed_for_hub(&mut image);
                    None
                }
                BatchAction::AddTags(more) | BatchAction::RemoveTags(more) => {
                    let mut tags = Tags::parse(&image.tags)
                        .map_err(|e| StoreError::Corrupt(format!("image {id}'s tags: {e}")))?;
                    let before = tags.clone();
                    let grown = match action {
                        BatchAction::AddTags(_) => tags.extend(more).is_ok(),
                        _ => {
                            tags.remove(more);
                            true
                        }
                    };
                    if !grown {
                        Some(Skipped::TooManyTags)
                    } else if tags == before {
                        Some(Skipped::Unchanged)
                    } else {
                        index_tags(&tx, &image, -1)?;
                        image.tags = tags.iter().map(|t| t.as_str().to_string()).collect();
                        index_tags(&tx, &image, 1)?;
                        search::reindex(&tx, &image)?;
                        changed_for_hub(&mut image);
                        None
                    }
                }
            };
            match skipped {
                Some(reason) => outcome.skipped.push((id.clone(), reason)),
                None => {
                    if !matches!(action, BatchAction::DeleteForever) {
                        put_record(&tx, &image)?;
                    }
                    outcome.changed += 1;
                }
            }
        }
        self.finish(tx)?;
        Ok(outcome)
    }

    /// Brings `owner`'s images named in `updates` to the state they describe (tags, category, in
    /// the trash or not), in one commit. Ids that are not `owner`'s images are left alone; how
    /// many changed.
    pub fn apply_sync_updates(&self, owner: &UserId, updates: &[SyncUpdate]) -> Result<u64> {
        let tx = self.write()?;
        let mut changed = 0;
        for update in updates {
            let Some(mut image) = record_in(&tx, &update.id)?.filter(|i| i.user_id == *owner)
            else {
                continue;
            };
            let before = image.clone();
            let tags: Vec<String> = update.tags.iter().map(|t| t.as_str().to_string()).collect();
            let live_change = tags != image.tags || update.category != image.category;
            if live_change && !image.is_trashed() {
                index_live(&tx, &image, -1)?;
            }
            image.tags = tags;
            image.category = update.category;
            if live_change && !image.is_trashed() {
                index_live(&tx, &image, 1)?;
            }
            match (image.trashed_at, update.trashed_at) {
                (None, Some(at)) => trash(&tx, &mut image, at)?,
                (Some(_), None) => restore(&tx, &mut image)?,
                _ => {}
            }
            if image != before {
                put_record(&tx, &image)?;
                changed += 1;
            }
        }
        self.finish(tx)?;
        Ok(changed)
    }

    /// `user_id`'s tags whose folded form starts with `prefix` folded, most used first (then in
    /// folded order), at most `limit`.
    pub fn tags(&self, user_id: &UserId, prefix: &str, limit: usize) -> Result<Vec<TagCount>> {
        let tx = self.read()?;
        let counts = tx.open_table(USER_TAGS)?;
        let folded = crate::text::fold(prefix.trim());
        let user = user_id.as_str();
        let mut found = Vec::new();
        for entry in counts.range((user, folded.as_str())..)? {
            let (key, value) = entry?;
            let (owner, tag) = key.value();
            if owner != user || !tag.starts_with(folded.as_str()) {
                break;
            }
            let record = TagRecord::decode(value.value())?;
            found.push((tag.to_string(), record));
        }
        found.sort_by(|a, b| b.1.count.cmp(&a.1.count).then_with(|| a.0.cmp(&b.0)));
        Ok(found
            .into_iter()
            .take(limit)
            .map(|(_, record)| TagCount {
                tag: record.shown,
                count: record.count,
            })
            .collect())
    }

    /// Page `page` of `user_id`'s images carrying every one of `tags` (and of `category`, if
    /// given), newest first. Walks the index of the least used of the tags, so it costs that tag's
    /// images, not the collection; with one tag and no category no record is read before the page.
    pub fn list_tagged_images(
        &self,
        user_id: &UserId,
        tags: &Tags,
        category: Option<Category>,
        page: u64,
        per_page: u64,
    ) -> Result<ImagePage> {
        let tx = self.read()?;
        let user = user_id.as_str();
        let counts = tx.open_table(USER_TAGS)?;
        let mut rarest: Option<(&str, u64)> = None;
        for tag in tags.iter() {
            let count = match counts.get((user, tag.folded()))? {
                Some(v) => TagRecord::decode(v.value())?.count,
                None => 0,
            };
            if rarest.is_none_or(|(_, least)| count < least) {
                rarest = Some((tag.folded(), count));
            }
        }
        let Some((walked, count)) = rarest else {
            return self.list_images(user_id, category, page, per_page);
        };
        let skip = page.saturating_sub(1).saturating_mul(per_page);
        let index = tx.open_table(USER_TAG_IMAGES)?;
        let images = tx.open_table(IMAGES)?;
        let range = index.range(tag_range(user, walked))?.rev();
        if tags.len() == 1 && category.is_none() {
            let mut ids = Vec::new();
            for entry in range.skip(skip as usize).take(per_page as usize) {
                ids.push(entry?.0.value().3.to_string());
            }
            let images = records(&images, &ids, "tag")?;
            return Ok(ImagePage {
                images,
                total: count,
            });
        }
        let (mut total, mut page_images) = (0u64, Vec::new());
        for entry in range {
            let (key, _) = entry?;
            let image_id = key.value().3;
            let record = images.get(image_id)?.ok_or_else(|| {
                StoreError::Corrupt(format!("tag index points at missing image {image_id}"))
            })?;
            let image = ImageRecord::decode(record.value())?;
            let carries = |folded: &str| image.tags.iter().any(|t| crate::text::fold(t) == folded);
            if category.is_some_and(|c| c != image.category)
                || !tags.iter().all(|t| carries(t.folded()))
            {
                continue;
            }
            if total >= skip && (page_images.len() as u64) < per_page {
                page_images.push(image);
            }
            total += 1;
        }
        Ok(ImagePage {
            images: page_images,
            total,
        })
    }

    /// Every image in the file, in id order.
    pub fn all_images(&self) -> Result<Vec<ImageRecord>> {
        let tx = self.read()?;
        let images = tx.open_table(IMAGES)?;
        let mut out = Vec::new();
        for entry in images.iter()? {
            out.push(ImageRecord::decode(entry?.1.value())?);
        }
        Ok(out)
    }

    /// Page `page` (1-based) of `user_id`'s images, newest first, of one `category` or of all.
    /// The total is a counter read.
    ///
    /// Of all images: near the newest end it walks the time index to the page; deeper, it starts
    /// from the mark below the page (`paging`), so any page costs at most `STRIDE` steps plus its
    /// own records. Of one category: it walks the category index from its newest end, so a page
    /// costs its offset in index keys (no record is read before the page).
    pub fn list_images(
        &self,
        user_id: &UserId,
        category: Option<Category>,
        page: u64,
        per_page: u64,
    ) -> Result<ImagePage> {
        self.list_in(&self.read()?, user_id, category, page, per_page)
    }

    /// `list_images` in the snapshot `tx`.
    pub(super) fn list_in(
        &self,
        tx: &ReadTransaction,
        user_id: &UserId,
        category: Option<Category>,
        page: u64,
        per_page: u64,
    ) -> Result<ImagePage> {
        match category {
            None => self.list_all_images(tx, user_id, page, per_page),
            Some(category) => Self::list_category_images(tx, user_id, category, page, per_page),
        }
    }

    fn list_category_images(
        tx: &ReadTransaction,
        user_id: &UserId,
        category: Category,
        page: u64,
        per_page: u64,
    ) -> Result<ImagePage> {
        let key = (user_id.as_str(), codes::category::to_code(category));
        let total = tx
            .open_table(USER_CATEGORY_COUNTS)?
            .get(key)?
            .map_or(0, |v| v.value());
        let skip = page.saturating_sub(1).saturating_mul(per_page);
        if skip >= total {
            return Ok(ImagePage {
                images: Vec::new(),
                total,
            });
        }
        let take = per_page.min(total - skip);
        let index = tx.open_table(USER_CATEGORY_IMAGES)?;
        let mut ids = Vec::with_capacity(take as usize);
        for entry in index
            .range(category_range(key.0, key.1))?
            .rev()
            .skip(skip as usize)
            .take(take as usize)
        {
            ids.push(entry?.0.value().3.to_string());
        }
        let images = records(&tx.open_table(IMAGES)?, &ids, "category")?;
        Ok(ImagePage { images, total })
    }

    /// Shows `visit` up to `limit` of `user_id`'s images in `category`, newest first, starting
    /// just after `after`: the `(saved_at, id)` of the last image a previous call showed (`None`
    /// starts at the newest). Returns how many it showed; fewer than `limit` means the end.
    ///
    /// One record is decoded at a time and dropped after `visit`, so a page costs what `visit`
    /// keeps, not `limit` records. Each call is its own short read transaction: a caller paging
    /// through a large collection holds no snapshot open between pages, and an image that exists
    /// throughout is shown exactly once (one saved or deleted meanwhile may or may not be).
    pub fn visit_category_images(
        &self,
        user_id: &UserId,
        category: Category,
        after: Option<(Micros, &ImageId)>,
        limit: usize,
        mut visit: impl FnMut(&ImageRecord),
    ) -> Result<usize> {
        let tx = self.read()?;
        let (user, code) = (user_id.as_str(), codes::category::to_code(category));
        let index = tx.open_table(USER_CATEGORY_IMAGES)?;
        let images = tx.open_table(IMAGES)?;
        let range = match after {
            Some((at, id)) => index.range((
                Bound::Included((user, code, i64::MIN, "")),
                Bound::Excluded((user, code, at, id.as_str())),
            ))?,
            None => index.range(category_range(user, code))?,
        };
        let mut shown = 0;
        for entry in range.rev().take(limit) {
            let (key, _) = entry?;
            let image_id = key.value().3;
            let record = images.get(image_id)?.ok_or_else(|| {
                StoreError::Corrupt(format!("category index points at missing image {image_id}"))
            })?;
            visit(&ImageRecord::decode(record.value())?);
            shown += 1;
        }
        Ok(shown)
    }

    fn list_all_images(
        &self,
        tx: &ReadTransaction,
        user_id: &UserId,
        page: u64,
        per_page: u64,
    ) -> Result<ImagePage> {
        let user_id = user_id.as_str();
        let total = tx
            .open_table(USER_IMAGE_COUNTS)?
            .get(user_id)?
            .map_or(0, |v| v.value());
        let skip = page.saturating_sub(1).saturating_mul(per_page);
        if skip >= total {
            return Ok(ImagePage {
                images: Vec::new(),
                total,
            });
        }
        let index = tx.open_table(USER_IMAGES)?;
        let images = tx.open_table(IMAGES)?;
        let take = per_page.min(total - skip);
        let everything = (user_id, i64::MIN, "")..=(user_id, i64::MAX, "\u{10FFFF}");
        let mut ids = Vec::with_capacity(take as usize);
        // Oldest-first positions of the page's last and first image.
        let (lo, hi) = (total - skip - take, total - 1 - skip);
        let mark = if skip < 2 * paging::STRIDE {
            None
        } else {
            let epoch = paging::epoch(&tx.open_table(META)?, user_id)?;
            self.marks.mark_at_or_below(&index, user_id, epoch, lo)?
        };
        match mark {
            Some((at_pos, (at, id))) => {
                let from = (user_id, at, id.as_str())..=(user_id, i64::MAX, "\u{10FFFF}");
                for entry in index
                    .range(from)?
                    .skip((lo - at_pos) as usize)
                    .take(take as usize)
                {
                    ids.push(entry?.0.value().2.to_string());
                }
                ids.reverse();
            }
            None => {
                for entry in index
                    .range(everything)?
                    .rev()
                    .skip(skip as usize)
                    .take(take as usize)
                {
                    ids.push(entry?.0.value().2.to_string());
                }
            }
        }
        debug_assert!(hi >= lo);
        let images = records(&images, &ids, "time")?;
        Ok(ImagePage { images, total })
    }

    /// Images in the whole file: one counter read.
    pub fn total_images(&self) -> Result<u64> {
        let tx = self.read()?;
        let meta = tx.open_table(META)?;
        let total = meta.get(TOTAL_IMAGES_KEY)?.map_or(0, |v| v.value());
        self.last_total
            .store(total, std::sync::atomic::Ordering::Relaxed);
        Ok(total)
    }

    /// The image total last read by `total_images`, for when the file cannot be read.
    pub fn last_total_images(&self) -> u64 {
        self.last_total.load(std::sync::atomic::Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::super::records::BlobRecord;
    use super::super::test_support::{add_user, new_image, save_records, temp_store};
    use super::*;
    use crate::domain::BlobHash;

    fn image(id: &str, user: &str, saved_at: i64, bytes: &[u8]) -> (ImageRecord, TaskRecord) {
        new_image(id, user, saved_at, bytes)
    }

    fn blob_record(store: &Store, bytes: &[u8]) -> Option<BlobRecord> {
        store.blob(&BlobHash::of(bytes)).unwrap().map(|b| b.record)
    }

    fn ids(page: ImagePage) -> Vec<ImageId> {
        page.images.into_iter().map(|i| i.id).collect()
    }

    /// Every page, at two page sizes, against the whole list walked from the newest end.
    fn assert_pages_match(store: &Store, user: &str) {
        let all = ids(store.list_images(&user.into(), None, 1, u64::MAX).unwrap());
        for per_page in [20u64, 7] {
            let pages = (all.len() as u64).div_ceil(per_page);
            for page in 1..=pages {
                let skip = ((page - 1) * per_page) as usize;
                let want = &all[skip..(skip + per_page as usize).min(all.len())];
                let got = ids(store
                    .list_images(&user.into(), None, page, per_page)
                    .unwrap());
                assert_eq!(got, want, "page {page} of {per_page}");
            }
        }
    }

    fn save_many(store: &Store, user: &str, times: impl Iterator<Item = i64>) {
        let made: Vec<_> = times
            .map(|t| {
                image(
                    &format!("{user}-{t}"),
                    user,
                    t,
                    format!("{user}{t}").as_bytes(),
                )
            })
            .collect();
        save_records(store, &made);
    }

    #[test]
    fn deep_pages_are_exact_through_appends_deletes_and_inserts_among_older_images() {
        let (_dir, store) = temp_store();
        save_many(&store, "u", (0..1500).map(|i| i * 10));
        save_many(&store, "v", 0..30);
        assert_pages_match(&store, "u");
        // Appends keep the marks; the next deep page extends them.
        save_many(&store, "u", (1500..2100).map(|i| i * 10));
        assert_pages_match(&store, "u");
        // Deletes and older inserts move positions: the epoch changes and marks are rebuilt.
        for i in (0..2100).step_by(97) {
            let id = format!("u-{}", i * 10);
            assert_eq!(
                store.delete_image(&id.into(), &"u".into()).unwrap(),
                DeleteOutcome::Deleted
            );
        }
        assert_pages_match(&store, "u");
        save_many(&store, "u", (0..300).map(|i| i * 10 + 5));
        assert_pages_match(&store, "u");
        assert_pages_match(&store, "v");
    }

    #[test]
    fn a_group_commit_keeps_each_uploads_outcome_apart() {
        let (_dir, store) = temp_store();
        let (first, t1) = image("i-1", "u", 1, b"same");
        store.save_image(&first, b"same", &t1).unwrap();
        let (dup_name, t2) = image("i-1", "u", 2, b"other");
        let dup_name = ImageRecord {
            id: "i-2".into(),
            ..dup_name
        };
        let (second, t3) = image("i-3", "u", 3, b"same");
        let (third, t4) = image("i-4", "v", 4, b"new");
        let outcomes = store
            .save_images(&[
                NewImage::plain(&dup_name, b"other", &t2),
                NewImage::plain(&second, b"same", &t3),
                NewImage::plain(&third, b"new", &t4),
            ])
            .unwrap();
        assert!(matches!(outcomes[0], Err(StoreError::Conflict)));
        assert!(outcomes[1].is_ok() && outcomes[2].is_ok());
        assert!(store.image(&"i-2".into()).unwrap().is_none());
        assert!(blob_record(&store, b"other").is_none());
        assert_eq!(blob_record(&store, b"same").unwrap().refs, 2);
        assert_eq!(store.total_images().unwrap(), 3);
        assert_eq!(
            store.list_images(&"u".into(), None, 1, 10).unwrap().total,
            2
        );
    }

    #[test]
    fn identical_bytes_share_one_blob_until_the_last_reference_goes() {
        let (_dir, store) = temp_store();
        let bytes = vec![7u8; 100_000];
        for (id, user) in [("a", "u1"), ("b", "u2")] {
            let (img, task) = image(id, user, 1, &bytes);
            store.save_image(&img, &bytes, &task).unwrap();
        }
        let rec = blob_record(&store, &bytes).unwrap();
        assert_eq!((rec.refs, rec.size, rec.chunks), (2, 100_000, 4));
        assert_eq!(store.total_images().unwrap(), 2);

        assert_eq!(
            store.delete_image(&"a".into(), &"u2".into()).unwrap(),
            DeleteOutcome::NotOwner
        );
        assert_eq!(
            store.delete_image(&"a".into(), &"u1".into()).unwrap(),
            DeleteOutcome::Deleted
        );
        assert_eq!(blob_record(&store, &bytes).unwrap().refs, 1);
        let mut chunks = store.blob(&BlobHash::of(&bytes)).unwrap().unwrap();
        assert_eq!(chunks.read_all().unwrap().as_ref(), bytes.as_slice());

        assert_eq!(
            store.delete_image(&"b".into(), &"u2".into()).unwrap(),
            DeleteOutcome::Deleted
        );
        assert!(blob_record(&store, &bytes).is_none());
        assert_eq!(store.total_images().unwrap(), 0);
        assert_eq!(store.user_image_count(&"u1".into()).unwrap(), 0);
        assert_eq!(
            store.delete_image(&"b".into(), &"u2".into()).unwrap(),
            DeleteOutcome::NotFound
        );
    }

    #[test]
    fn pages_are_newest_first_and_counted() {
        let (_dir, store) = temp_store();
        for i in 0..25u8 {
            let (img, task) = image(&format!("i{i:02}"), "u", i64::from(i), &[i]);
            store.save_image(&img, &[i], &task).unwrap();
        }
        let (other, task) = image("x", "v", 100, b"x");
        store.save_image(&other, b"x", &task).unwrap();

        let first = store.list_images(&"u".into(), None, 1, 10).unwrap();
        assert_eq!(first.total, 25);
        let ids: Vec<_> = first.images.iter().map(|i| i.id.as_str()).collect();
        assert_eq!(ids[0], "i24");
        assert_eq!(ids[9], "i15");
        let last = store.list_images(&"u".into(), None, 3, 10).unwrap();
        assert_eq!(last.images.len(), 5);
        assert_eq!(last.images[4].id, "i00");
        assert!(
            store
                .list_images(&"u".into(), None, 4, 10)
                .unwrap()
                .images
                .is_empty()
        );
    }

    /// Images of "u" at times 0..n, every third one `char`, the rest `clothes`.
    fn save_mixed(store: &Store, n: i64) {
        for t in 0..n {
            let category = if t % 3 == 0 {
                Category::Char
            } else {
                Category::Clothes
            };
            let (img, task) = image(&format!("i{t:03}"), "u", t, &t.to_le_bytes());
            let img = ImageRecord { category, ..img };
            store.save_image(&img, &t.to_le_bytes(), &task).unwrap();
        }
    }

    #[test]
    fn a_category_is_paged_newest_first_with_its_own_total() {
        let (_dir, store) = temp_store();
        save_mixed(&store, 30);
        let (other, task) = image("x", "v", 100, b"x");
        store.save_image(&other, b"x", &task).unwrap();

        let all = store.list_images(&"u".into(), None, 1, 100).unwrap();
        for category in Category::ALL {
            let want: Vec<ImageId> = all
                .images
                .iter()
                .filter(|i| i.category == category)
                .map(|i| i.id.clone())
                .collect();
            assert_eq!(want.len(), if category == Category::Char { 10 } else { 20 });
            let mut got = Vec::new();
            for page in 1..=4 {
                let found = store
                    .list_images(&"u".into(), Some(category), page, 7)
                    .unwrap();
                assert_eq!(found.total, want.len() as u64);
                got.extend(ids(found));
            }
            assert_eq!(got, want, "{category}");
        }
        assert_eq!(
            ids(store
                .list_images(&"v".into(), Some(Category::Clothes), 1, 10)
                .unwrap()),
            ["x"]
        );
        assert_eq!(
            store
                .list_images(&"v".into(), Some(Category::Char), 1, 10)
                .unwrap()
                .total,
            0
        );
    }

    #[test]
    fn paging_a_category_after_a_cursor_shows_each_image_once_through_changes() {
        let (_dir, store) = temp_store();
        save_mixed(&store, 30);
        let user: UserId = "u".into();
        let page = |after: Option<&(i64, ImageId)>, category| {
            let mut seen = Vec::new();
            let shown = store
                .visit_category_images(
                    &user,
                    category,
                    after.map(|(at, id)| (*at, id)),
                    8,
                    |image| seen.push((image.saved_at, image.id.clone())),
                )
                .unwrap();
            assert_eq!(shown, seen.len());
            seen
        };
        let first = page(None, Category::Clothes);
        let first_ids: Vec<&str> = first.iter().map(|(_, id)| id.as_str()).collect();
        assert_eq!(
            first_ids,
            [
                "i029", "i028", "i026", "i025", "i023", "i022", "i020", "i019"
            ]
        );
        // Between pages: a newer image, a deleted one not yet shown, one older than the cursor.
        let (newer, task) = image("i100", "u", 100, b"newer");
        store.save_image(&newer, b"newer", &task).unwrap();
        assert_eq!(
            store.delete_image(&"i017".into(), &user).unwrap(),
            DeleteOutcome::Deleted
        );
        let (older, task) = image("i-old", "u", -1, b"older");
        store.save_image(&older, b"older", &task).unwrap();

        let mut rest = Vec::new();
        let mut last = first.last().cloned();
        loop {
            let next = page(last.as_ref(), Category::Clothes);
            let Some(end) = next.last() else { break };
            last = Some(end.clone());
            rest.extend(next.into_iter().map(|(_, id)| id.to_string()));
        }
        let want: Vec<String> = (1..19)
            .rev()
            .filter(|t| t % 3 != 0 && *t != 17)
            .map(|t| format!("i{t:03}"))
            .chain(["i-old".to_string()])
            .collect();
        assert_eq!(rest, want);
        assert!(page(Some(&(0, "i000".into())), Category::Char).is_empty());
    }

    #[test]
    fn deleting_an_image_leaves_its_category_and_the_other_counts_in_step() {
        let (_dir, store) = temp_store();
        add_user(&store, "u");
        save_mixed(&store, 6);
        let user: UserId = "u".into();
        let total = |c| store.list_images(&user, Some(c), 1, 10).unwrap().total;
        assert_eq!((total(Category::Clothes), total(Category::Char)), (4, 2));
        for id in ["i000", "i003"] {
            assert_eq!(
                store.delete_image(&id.into(), &user).unwrap(),
                DeleteOutcome::Deleted
            );
        }
        assert_eq!((total(Category::Clothes), total(Category::Char)), (4, 0));
        assert!(
            store
                .list_images(&user, Some(Category::Char), 1, 10)
                .unwrap()
                .images
                .is_empty()
        );
        assert_eq!(store.user_image_count(&user).unwrap(), 4);
        assert!(store.check().unwrap().is_clean());
    }

    #[test]
    fn a_taken_file_name_writes_nothing() {
        let (_dir, store) = temp_store();
        let (img, task) = image("a", "u", 1, b"one");
        store.save_image(&img, b"one", &task).unwrap();
        let (mut dup, mut task2) = image("b", "u", 2, b"two");
        dup.filename = img.filename.clone();
        task2.task_id = "t-other".into();
        assert!(matches!(
            store.save_image(&dup, b"two", &task2),
            Err(StoreError::Conflict)
        ));
        assert_eq!(store.total_images().unwrap(), 1);
        assert!(blob_record(&store, b"two").is_none());
        assert!(store.task(&"t-other".into()).unwrap().is_none());
    }

    fn tagged(
        id: &str,
        saved_at: i64,
        category: Category,
        tags: &[&str],
    ) -> (ImageRecord, TaskRecord) {
        let (mut record, task) = image(id, "tagger", saved_at, id.as_bytes());
        record.category = category;
        record.tags = tags.iter().map(|t| t.to_string()).collect();
        (record, task)
    }

    fn shown(tags: Vec<TagCount>) -> Vec<(String, u64)> {
        tags.into_iter().map(|t| (t.tag, t.count)).collect()
    }

    #[test]
    fn tags_filter_count_and_complete_and_follow_every_change() {
        let (_dir, store) = temp_store();
        let user: UserId = "tagger".into();
        save_records(
            &store,
            &[
                tagged("a", 1, Category::Clothes, &["Denim", "summer"]),
                tagged("b", 2, Category::Char, &["denim"]),
                tagged("c", 3, Category::Clothes, &["ＤＥＮＩＭ", "Summer", "red"]),
                tagged("d", 4, Category::Clothes, &[]),
            ],
        );
        let tags = |list: &[&str]| Tags::parse(list).unwrap();
        let page = |list: &[&str], category| {
            ids(store
                .list_tagged_images(&user, &tags(list), category, 1, 20)
                .unwrap())
        };
        // Folded alike, whatever the spelling; newest first.
        assert_eq!(page(&["denim"], None), ["c", "b", "a"]);
        assert_eq!(page(&["DENIM", "summer"], None), ["c", "a"]);
        assert_eq!(page(&["denim"], Some(Category::Char)), ["b"]);
        assert_eq!(page(&["denim", "nothing"], None), Vec::<ImageId>::new());
        let second = store
            .list_tagged_images(&user, &tags(&["denim"]), None, 2, 2)
            .unwrap();
        assert_eq!(second.total, 3);
        assert_eq!(ids(second), ["a"]);
        let counted = store
            .list_tagged_images(
                &user,
                &tags(&["summer", "denim"]),
                Some(Category::Clothes),
                1,
                1,
            )
            .unwrap();
        assert_eq!((counted.total, ids(counted)), (2, vec!["c".into()]));
        // The first spelling is the one offered; most used first.
        assert_eq!(
            shown(store.tags(&user, "", 10).unwrap()),
            [("Denim".into(), 3), ("summer".into(), 2), ("red".into(), 1)]
        );
        assert_eq!(
            shown(store.tags(&user, "S", 10).unwrap()),
            [("summer".into(), 2)]
        );
        assert_eq!(
            shown(store.tags(&user, "", 1).unwrap()),
            [("Denim".into(), 3)]
        );
        assert!(
            store
                .tags(&"someone else".into(), "", 10)
                .unwrap()
                .is_empty()
        );

        // Replacing tags moves the image between indexes and counts.
        let outcome = store
            .set_tags(&"a".into(), &user, &tags(&["red", "Linen"]))
            .unwrap();
        let ChangeOutcome::Changed(changed) = outcome else {
            panic!("{outcome:?}")
        };
        assert_eq!(changed.tags, ["red", "Linen"]);
        assert_eq!(
            store.image(&"a".into()).unwrap().unwrap().tags,
            ["red", "Linen"]
        );
        assert_eq!(page(&["denim"], None), ["c", "b"]);
        assert_eq!(page(&["red"], None), ["c", "a"]);
        assert_eq!(page(&["summer"], None), ["c"]);
        assert_eq!(
            shown(store.tags(&user, "", 10).unwrap()),
            [
                ("Denim".into(), 2),
                ("red".into(), 2),
                ("Linen".into(), 1),
                ("summer".into(), 1)
            ]
        );
        assert_eq!(
            store
                .set_tags(&"a".into(), &"other".into(), &tags(&[]))
                .unwrap(),
            ChangeOutcome::NotOwner
        );
        assert_eq!(
            store.set_tags(&"zz".into(), &user, &tags(&[])).unwrap(),
            ChangeOutcome::NotFound
        );
        // Deleting an image takes its tags with it; a tag no image carries is gone.
        store.delete_image(&"c".into(), &user).unwrap();
        store.set_tags(&"a".into(), &user, &tags(&[])).unwrap();
        assert_eq!(page(&["red"], None), Vec::<ImageId>::new());
        assert_eq!(
            shown(store.tags(&user, "", 10).unwrap()),
            [("Denim".into(), 1)]
        );
    }

    #[test]
    fn a_batch_leaves_every_index_and_counter_as_check_recounts_them() {
        let (_dir, store) = temp_store();
        add_user(&store, "tagger");
        save_records(
            &store,
            &[
                tagged("a", 1, Category::Clothes, &["Denim"]),
                tagged("b", 2, Category::Clothes, &[]),
                tagged("c", 3, Category::Char, &["denim", "red"]),
            ],
        );
        let user: UserId = "tagger".into();
        let named: Vec<ImageId> = ["a", "b", "c", "zz"].map(ImageId::from).to_vec();
        let clean = |what: &str| {
            let report = store.check().unwrap();
            assert!(report.is_clean(), "after {what}: {:?}", report.problems);
        };
        let done = store
            .batch(&user, &named, &BatchAction::SetCategory(Category::Char))
            .unwrap();
        assert_eq!(done.changed, 2);
        clean("set_category");
        let tags = Tags::parse(["RED", "wool"]).unwrap();
        assert_eq!(
            store
                .batch(&user, &named, &BatchAction::AddTags(tags.clone()))
                .unwrap()
                .changed,
            3
        );
        clean("add_tags");
        assert_eq!(
            store
                .batch(&user, &named, &BatchAction::RemoveTags(tags))
                .unwrap()
                .changed,
            3
        );
        clean("remove_tags");
        let gone = store
            .batch(&user, &named[..2], &BatchAction::DeleteForever)
            .unwrap();
        assert_eq!(gone.changed, 2);
        clean("delete_forever");
        let left = store
            .list_images(&user, Some(Category::Char), 1, 10)
            .unwrap();
        assert_eq!((left.total, ids(left)), (1, vec!["c".into()]));
        assert_eq!(store.image(&"c".into()).unwrap().unwrap().tags, ["denim"]);
    }

    #[test]
    fn the_trash_takes_images_out_of_every_list_and_count_and_gives_them_back_as_they_were() {
        let (_dir, store) = temp_store();
        add_user(&store, "tagger");
        let shared = b"the same bytes";
        let (a, task_a) = image("a", "tagger", 1, shared);
        let (b, task_b) = image("b", "tagger", 2, shared);
        let a = ImageRecord {
            tags: vec!["Denim".into()],
            ..a
        };
        store.save_image(&a, shared, &task_a).unwrap();
        store.save_image(&b, shared, &task_b).unwrap();
        let (c, task_c) = tagged("c", 3, Category::Char, &[]);
        save_records(&store, &[(c, task_c)]);
        let user: UserId = "tagger".into();
        let clean = |what: &str| {
            let report = store.check().unwrap();
            assert!(report.is_clean(), "after {what}: {:?}", report.problems);
        };
        let live = |store: &Store| {
            let page = store.list_images(&user, None, 1, 10).unwrap();
            (page.total, ids(page))
        };
        let before = live(&store);
        assert_eq!(before.0, 3);

        assert_eq!(
            store.trash_image(&"a".into(), &user, 100).unwrap(),
            DeleteOutcome::Deleted
        );
        clean("trash");
        assert_eq!(live(&store), (2, vec!["c".into(), "b".into()]));
        assert_eq!(store.total_images().unwrap(), 2);
        assert_eq!(store.user_image_count(&user).unwrap(), 2);
        assert_eq!(store.tags(&user, "", 10).unwrap(), Vec::new());
        let clothes = store
            .list_images(&user, Some(Category::Clothes), 1, 10)
            .unwrap();
        assert_eq!(clothes.total, 1);
        let trash = store.list_trash(&user, 1, 10).unwrap();
        assert_eq!((trash.total, trash.images[0].trashed_at), (1, Some(100)));
        // Trashing again changes nothing; tags of a trashed image cannot be changed.
        assert_eq!(
            store.trash_image(&"a".into(), &user, 200).unwrap(),
            DeleteOutcome::Deleted
        );
        assert_eq!(
            store.list_trash(&user, 1, 10).unwrap().images[0].trashed_at,
            Some(100)
        );
        assert_eq!(
            store
                .set_tags(&"a".into(), &user, &Tags::parse(["x"]).unwrap())
                .unwrap(),
            ChangeOutcome::NotFound
        );
        assert_eq!(
            store
                .batch(
                    &user,
                    &["a".into()],
                    &BatchAction::SetCategory(Category::Char)
                )
                .unwrap()
                .skipped,
            [("a".into(), Skipped::InTrash)]
        );

        // Restore: back in its place, with its tags.
        let restored = store
            .batch(&user, &["a".into(), "b".into()], &BatchAction::Restore)
            .unwrap();
        assert_eq!(restored.changed, 1);
        assert_eq!(restored.skipped, [("b".into(), Skipped::NotInTrash)]);
        clean("restore");
        assert_eq!(live(&store), before);
        assert_eq!(store.tags(&user, "", 10).unwrap()[0].count, 1);
        assert_eq!(store.list_trash(&user, 1, 10).unwrap().total, 0);

        // The blob both share outlives one of them being purged from the trash.
        let all: Vec<ImageId> = ["a", "b", "c"].map(ImageId::from).to_vec();
        assert_eq!(
            store
                .batch(&user, &all[..2], &BatchAction::Trash(300))
                .unwrap()
                .changed,
            2
        );
        clean("batch trash");
        assert_eq!(blob_record(&store, shared).unwrap().refs, 2);
        store.trash_image(&"c".into(), &user, 500).unwrap();
        assert_eq!(store.purge_trash(None, 400).unwrap(), 2);
        clean("purge");
        assert!(blob_record(&store, shared).is_none());
        assert_eq!(store.list_trash(&user, 1, 10).unwrap().total, 1);
        assert_eq!(store.empty_trash(&user).unwrap(), 1);
        clean("empty");
        assert_eq!(store.total_images().unwrap(), 0);
        assert!(store.image(&"c".into()).unwrap().is_none());
    }
}
