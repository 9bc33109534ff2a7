//! Near-duplicates: a user's live images whose perceptual hashes (`PHASHES`, see `media::phash`)
//! are within a few bits of one image's, nearest first, and the user's groups of near-duplicates.
//!
//! Each user who asks gets a **hash index** in memory (`HashIndex`): every live image's hash in
//! time-index order, beside its id, about 60 bytes an image (6 MiB at 100,000). A similar-query
//! compares the seed's hash with every hash in turn (XOR and popcount, about 0.1 ms at 100,000),
//! which needs no tuning and answers any distance. The index is kept like a search catalog, by
//! the same cache (`cache::Catalogs`, its own budget) and the same snapshot rules: built from the
//! time index and the image records, extended by uploads at the newest end, rebuilt after any
//! other change of the user's images (the search epoch). Hashes arrive after their images (the
//! thumbnail is made in the background), so the index keeps the images it found without one,
//! with their blobs, and looks them up again once the store has added hashes since
//! (`Store::hash_generation`).
//!
//! Groups (`Store::duplicates`) are made by `phash::groups` (each around the image most of its
//! copies are near, never chained) and kept in the index until it changes, so paging through them
//! costs nothing more.

use std::ops::Bound;
use std::sync::{Arc, Mutex, PoisonError};

use redb::{ReadTransaction, ReadableTable};

use super::cache::{Cached, Use};
use super::catalog::Covers;
use super::{Result, Snapshot, StoreError, user_range};
use crate::clock::Micros;
use crate::domain::{BlobHash, ImageId, UserId};
use crate::media::phash;
use crate::media::phash::groups::{Groups, group};
use crate::store::Store;
use crate::store::records::{ImageRecord, PhashRecord, Record, ThumbRecord};
use crate::store::tables::{IMAGES, PHASHES, THUMBS, USER_IMAGES};

/// The largest `max_distance` a similar-query may ask: past it, unrelated photos match.
pub const MAX_DISTANCE: u32 = 32;
/// The largest distance groups are made at (their search needs `d / 4` small).
pub const MAX_CLUSTER_DISTANCE: u32 = 12;

/// What a similar-query found.
#[derive(Debug)]
pub enum Similar {
    /// No live image of that id.
    NotFound,
    /// Another user's image.
    NotOwner,
    /// The image has no hash yet: its thumbnail, or the background pass, has not reached it.
    Pending,
    /// The image does not decode, so it has no hash.
    Undecodable,
    /// The matches, nearest first (then newest first), with their distances.
    Found(Vec<(ImageRecord, u32)>),
}

/// A page of a user's groups of near-duplicates.
#[derive(Debug)]
pub struct DuplicatePage {
    /// Largest group first (then the one with the newest image first); each group's images newest
    /// first, at most the asked number of them.
    pub groups: Vec<DuplicateGroup>,
    /// Groups in all.
    pub total_groups: u64,
    /// Images in all the groups.
    pub total_images: u64,
    /// Live images without a hash yet (not in any group).
    pub pending: u64,
    /// False when the grouping stopped at its bound of work (see the module docs).
    pub complete: bool,
}

#[derive(Debug)]
pub struct DuplicateGroup {
    /// Images in the group (more than `images` holds when it was cut).
    pub size: u64,
    pub images: Vec<ImageRecord>,
}

/// One user's live images' perceptual hashes, in time-index order.
pub(in crate::store) struct HashIndex {
    epoch: u64,
    /// The hash generation up to which `pending` was looked up.
    hashes_seen: u64,
    saved_at: Vec<Micros>,
    /// Each image's id is `ids[previous end..its end]`.
    id_ends: Vec<u32>,
    ids: String,
    hashes: Vec<u64>,
    /// Whether `hashes[i]` is known.
    known: Vec<bool>,
    /// Images whose blob had no hash yet, by position, with the blob and whether its image does
    /// not decode (its thumbnail failed: it will get no hash unless the thumbnail is remade).
    pending: Vec<(u32, BlobHash, bool)>,
    /// The groups at the distance last asked for.
    groups: Mutex<Option<(u32, Arc<Groups>)>>,
}

/// The hash of `blob` if it has a current one.
fn hash_of(
    table: &impl ReadableTable<&'static [u8; 32], &'static [u8]>,
    blob: &BlobHash,
) -> Result<Option<u64>> {
    Ok(match table.get(&blob.0)? {
        Some(v) => Some(PhashRecord::decode(v.value())?)
            .filter(PhashRecord::is_current)
            .map(|r| r.hash()),
        None => None,
    })
}

/// Whether the thumbnail of `blob` failed: its image does not decode, so it has no hash.
fn failed(
    thumbs: &impl ReadableTable<&'static [u8; 32], &'static [u8]>,
    blob: &BlobHash,
) -> Result<bool> {
    Ok(match thumbs.get(&blob.0)? {
        Some(v) => matches!(ThumbRecord::decode(v.value())?, ThumbRecord::Failed { .. }),
        None => false,
    })
}

impl HashIndex {
    fn new(epoch: u64, hashes_seen: u64) -> Self {
        Self {
            epoch,
            hashes_seen,
            saved_at: Vec::new(),
            id_ends: Vec::new(),
            ids: String::new(),
            hashes: Vec::new(),
            known: Vec::new(),
            pending: Vec::new(),
            groups: Mutex::new(None),
        }
    }

    /// Appends the user's images in `range` of the time index.
    fn read_rows(
        &mut self,
        tx: &ReadTransaction,
        user: &str,
        after: Option<(Micros, String)>,
        room: &mut dyn FnMut(usize) -> bool,
    ) -> Result<bool> {
        let rows = tx.open_table(USER_IMAGES)?;
        let images = tx.open_table(IMAGES)?;
        let hashes = tx.open_table(PHASHES)?;
        let thumbs = tx.open_table(THUMBS)?;
        let range = match &after {
            Some((at, id)) => rows.range::<(&str, Micros, &str)>((
                Bound::Excluded((user, *at, id.as_str())),
                Bound::Included((user, Micros::MAX, "\u{10FFFF}")),
            ))?,
            None => rows.range(user_range(user))?,
        };
        for (n, entry) in range.enumerate() {
            let (key, _) = entry?;
            let (_, at, id) = key.value();
            let record = images.get(id)?.ok_or_else(|| {
                StoreError::Corrupt(format!("the time index points at missing image {id}"))
            })?;
            let blob = ImageRecord::blob_of(record.value())?;
            let position = u32::try_from(self.saved_at.len())
                .map_err(|_| StoreError::Corrupt("too many images for a hash index".into()))?;
            self.ids.push_str(id);
            self.id_ends.push(
                u32::try_from(self.ids.len())
                    .map_err(|_| StoreError::Corrupt("hash index ids past 4 GiB".into()))?,
            );
            self.saved_at.push(at);
            match hash_of(&hashes, &blob)? {
                Some(hash) => {
                    self.hashes.push(hash);
                    self.known.push(true);
                }
                None => {
                    self.hashes.push(0);
                    self.known.push(false);
                    self.pending.push((position, blob, failed(&thumbs, &blob)?));
                }
            }
            if n % 4096 == 4095 && !room(self.bytes()) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Looks up again the hashes of images that had none.
    fn refresh_pending(&mut self, tx: &ReadTransaction, generation: u64) -> Result<()> {
        if self.pending.is_empty() {
            self.hashes_seen = generation;
            return Ok(());
        }
        let hashes = tx.open_table(PHASHES)?;
        let thumbs = tx.open_table(THUMBS)?;
        let mut still = Vec::new();
        for (position, blob, _) in std::mem::take(&mut self.pending) {
            match hash_of(&hashes, &blob)? {
                Some(hash) => {
                    self.hashes[position as usize] = hash;
                    self.known[position as usize] = true;
                }
                None => still.push((position, blob, failed(&thumbs, &blob)?)),
            }
        }
        self.pending = still;
        self.hashes_seen = generation;
        self.forget_groups();
        Ok(())
    }

    fn id(&self, position: usize) -> &str {
        let start = position
            .checked_sub(1)
            .map_or(0, |p| self.id_ends[p] as usize);
        &self.ids[start..self.id_ends[position] as usize]
    }

    fn newest(&self) -> Option<(Micros, &str)> {
        let last = self.saved_at.len().checked_sub(1)?;
        Some((self.saved_at[last], self.id(last)))
    }

    fn rows_up_to(&self, key: (Micros, &str)) -> usize {
        let (mut lo, mut hi) = (0, self.saved_at.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            if (self.saved_at[mid], self.id(mid)) <= key {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// The first `rows` images within `max_distance` of `seed`, but `except`: at most `limit`,
    /// nearest first, then newest first.
    fn nearest(
        &self,
        rows: usize,
        seed: u64,
        max_distance: u32,
        except: &str,
        limit: usize,
    ) -> Vec<(String, u32)> {
        let rows = rows.min(self.hashes.len());
        let mut found: Vec<(u32, u32)> = self.hashes[..rows]
            .iter()
            .zip(&self.known[..rows])
            .enumerate()
            .filter_map(|(p, (&h, &known))| {
                let d = phash::distance(h, seed);
                (known && d <= max_distance).then_some((d, p as u32))
            })
            .filter(|&(_, p)| self.id(p as usize) != except)
            .collect();
        found.sort_unstable_by_key(|&(d, p)| (d, std::cmp::Reverse(p)));
        found.truncate(limit);
        found
            .into_iter()
            .map(|(d, p)| (self.id(p as usize).to_string(), d))
            .collect()
    }

    /// The groups at `max_distance` among the first `rows` images (see the module docs), and
    /// whether the search for them was complete. The last distance's groups are kept.
    fn groups(&self, rows: usize, max_distance: u32) -> (Vec<Vec<u32>>, bool) {
        let mut kept = self.groups.lock().unwrap_or_else(PoisonError::into_inner);
        let groups = match kept.as_ref() {
            Some((distance, groups)) if *distance == max_distance => groups.clone(),
            _ => {
                let made = Arc::new(group(&self.hashes, &self.known, max_distance));
                *kept = Some((max_distance, made.clone()));
                made
            }
        };
        drop(kept);
        let lists = groups
            .lists
            .iter()
            .map(|g| {
                g.iter()
                    .copied()
                    .filter(|&p| (p as usize) < rows)
                    .collect::<Vec<_>>()
            })
            .filter(|g| g.len() > 1)
            .collect();
        (lists, groups.complete)
    }

    /// Drops the groups kept (the index changed).
    fn forget_groups(&mut self) {
        *self
            .groups
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner) = None;
    }
}

impl Cached for HashIndex {
    const NAME: &'static str = "similar-image index";

    fn load(
        tx: &ReadTransaction,
        user: &str,
        snapshot: &Snapshot,
        room: &mut dyn FnMut(usize) -> bool,
    ) -> Result<Option<Self>> {
        let mut index = Self::new(snapshot.epoch, snapshot.hashes);
        if !index.read_rows(tx, user, None, room)? {
            return Ok(None);
        }
        index.saved_at.shrink_to_fit();
        index.id_ends.shrink_to_fit();
        index.ids.shrink_to_fit();
        index.hashes.shrink_to_fit();
        index.known.shrink_to_fit();
        index.pending.shrink_to_fit();
        Ok(room(index.bytes()).then_some(index))
    }

    fn covers(&self, snapshot: &Snapshot) -> Covers {
        if self.epoch < snapshot.epoch {
            return Covers::Stale;
        }
        if self.epoch > snapshot.epoch {
            return Covers::Newer;
        }
        if !self.pending.is_empty() && self.hashes_seen < snapshot.hashes {
            return Covers::Behind;
        }
        let Some((at, id)) = &snapshot.newest else {
            return Covers::Rows(0);
        };
        let wanted = (*at, id.as_str());
        match self.newest() {
            None => Covers::Behind,
            Some(newest) if newest == wanted => Covers::Rows(self.len()),
            Some(newest) if newest < wanted => Covers::Behind,
            Some(_) => Covers::Rows(self.rows_up_to(wanted)),
        }
    }

    fn extend(&mut self, tx: &ReadTransaction, user: &str, snapshot: &Snapshot) -> Result<()> {
        self.refresh_pending(tx, snapshot.hashes)?;
        let newest = self.newest().map(|(at, id)| (at, id.to_string()));
        let before = self.len();
        self.read_rows(tx, user, newest, &mut |_| true)?;
        if self.len() != before {
            self.forget_groups();
        }
        Ok(())
    }

    fn bytes(&self) -> usize {
        self.saved_at.len() * (8 + 4 + 8 + 1)
            + self.ids.len()
            + self.pending.len() * size_of::<(u32, BlobHash, bool)>()
            + self
                .groups
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .as_ref()
                .map_or(0, |(_, g)| {
                    g.lists.iter().map(|l| 24 + 4 * l.len()).sum::<usize>()
                })
    }

    fn len(&self) -> usize {
        self.saved_at.len()
    }
}

impl Store {
    /// Sets the memory the similar-image indexes of all users may hold together, in bytes.
    pub fn set_similar_budget(&self, bytes: usize) {
        self.hash_indexes.set_budget(bytes);
    }

    /// A read snapshot with every hash added before it, and `user`'s snapshot facts.
    fn hashed_snapshot(&self, user: &str) -> Result<(ReadTransaction, Snapshot)> {
        let hashes = self.hash_generation();
        let tx = self.read()?;
        let snapshot = Snapshot {
            hashes,
            ..Snapshot::read(&tx, user)?
        };
        Ok((tx, snapshot))
    }

    /// `owner`'s live images within `max_distance` bits of the image `image_id`'s hash, nearest
    /// first: at most `limit`, the image itself left out (other images of the same bytes are in,
    /// at distance 0).
    pub fn similar(
        &self,
        owner: &UserId,
        image_id: &ImageId,
        max_distance: u32,
        limit: usize,
    ) -> Result<Similar> {
        let user = owner.as_str();
        for _ in 0..2 {
            let (tx, snapshot) = self.hashed_snapshot(user)?;
            let images = tx.open_table(IMAGES)?;
            let Some(seed) = images.get(image_id.as_str())? else {
                return Ok(Similar::NotFound);
            };
            let seed = ImageRecord::decode(seed.value())?;
            if seed.is_trashed() {
                return Ok(Similar::NotFound);
            }
            if seed.user_id != *owner {
                return Ok(Similar::NotOwner);
            }
            let Some(hash) = hash_of(&tx.open_table(PHASHES)?, &seed.blob)? else {
                return Ok(if failed(&tx.open_table(THUMBS)?, &seed.blob)? {
                    Similar::Undecodable
                } else {
                    Similar::Pending
                });
            };
            let found = self
                .hash_indexes
                .with(&tx, user, &snapshot, |index, rows| {
                    index.nearest(rows, hash, max_distance, image_id.as_str(), limit)
                })?;
            let found = match found {
                Use::Found(found) => found,
                Use::Newer => continue,
                Use::TooBig => scan_nearest(&tx, user, hash, max_distance, image_id, limit)?,
            };
            let mut out = Vec::with_capacity(found.len());
            for (id, distance) in found {
                let record = images.get(id.as_str())?.ok_or_else(|| {
                    StoreError::Corrupt(format!("the hash index points at missing image {id}"))
                })?;
                out.push((ImageRecord::decode(record.value())?, distance));
            }
            return Ok(Similar::Found(out));
        }
        Ok(Similar::Pending)
    }

    /// Page `page` (1-based) of `owner`'s groups of live images within `max_distance` of each
    /// other (see the module docs), each group cut to `per_group` images. `None` when `owner`'s
    /// index does not fit its budget.
    pub fn duplicates(
        &self,
        owner: &UserId,
        max_distance: u32,
        page: u64,
        per_page: u64,
        per_group: usize,
    ) -> Result<Option<DuplicatePage>> {
        let user = owner.as_str();
        for _ in 0..2 {
            let (tx, snapshot) = self.hashed_snapshot(user)?;
            let found = self
                .hash_indexes
                .with(&tx, user, &snapshot, |index, rows| {
                    let (groups, complete) = index.groups(rows, max_distance);
                    let total_images: usize = groups.iter().map(Vec::len).sum();
                    let skip = usize::try_from(page.saturating_sub(1).saturating_mul(per_page))
                        .unwrap_or(usize::MAX);
                    let shown: Vec<(u64, Vec<String>)> = groups
                        .iter()
                        .skip(skip)
                        .take(usize::try_from(per_page).unwrap_or(usize::MAX))
                        .map(|g| {
                            let ids = g
                                .iter()
                                .take(per_group)
                                .map(|&p| index.id(p as usize).to_string())
                                .collect();
                            (g.len() as u64, ids)
                        })
                        .collect();
                    let pending = index
                        .pending
                        .iter()
                        .filter(|(p, _, failed)| (*p as usize) < rows && !failed)
                        .count();
                    (
                        shown,
                        groups.len() as u64,
                        total_images as u64,
                        pending as u64,
                        complete,
                    )
                })?;
            let (shown, total_groups, total_images, pending, complete) = match found {
                Use::Found(found) => found,
                Use::Newer => continue,
                Use::TooBig => return Ok(None),
            };
            let images = tx.open_table(IMAGES)?;
            let mut groups = Vec::with_capacity(shown.len());
            for (size, ids) in shown {
                let mut records = Vec::with_capacity(ids.len());
                for id in ids {
                    let record = images.get(id.as_str())?.ok_or_else(|| {
                        StoreError::Corrupt(format!("the hash index points at missing image {id}"))
                    })?;
                    records.push(ImageRecord::decode(record.value())?);
                }
                groups.push(DuplicateGroup {
                    size,
                    images: records,
                });
            }
            return Ok(Some(DuplicatePage {
                groups,
                total_groups,
                total_images,
                pending,
                complete,
            }));
        }
        Ok(None)
    }
}

/// `nearest` without an index, for a user whose index does not fit the budget: every row read,
/// only the best `limit` kept.
fn scan_nearest(
    tx: &ReadTransaction,
    user: &str,
    seed: u64,
    max_distance: u32,
    except: &ImageId,
    limit: usize,
) -> Result<Vec<(String, u32)>> {
    let rows = tx.open_table(USER_IMAGES)?;
    let images = tx.open_table(IMAGES)?;
    let hashes = tx.open_table(PHASHES)?;
    // (distance, reversed position) → id, the worst on top.
    let mut best: std::collections::BinaryHeap<((u32, std::cmp::Reverse<u64>), String)> =
        std::collections::BinaryHeap::new();
    for (position, entry) in rows.range(user_range(user))?.enumerate() {
        let (key, _) = entry?;
        let (_, _, id) = key.value();
        if id == except.as_str() {
            continue;
        }
        let Some(record) = images.get(id)? else {
            continue;
        };
        let blob = ImageRecord::blob_of(record.value())?;
        let Some(hash) = hash_of(&hashes, &blob)? else {
            continue;
        };
        let d = phash::distance(hash, seed);
        if d > max_distance {
            continue;
        }
        let key = (d, std::cmp::Reverse(position as u64));
        if best.len() < limit {
            best.push((key, id.to_string()));
        } else if best.peek().is_some_and(|(worst, _)| key < *worst) {
            best.pop();
            best.push((key, id.to_string()));
        }
    }
    Ok(best
        .into_sorted_vec()
        .into_iter()
        .map(|((d, _), id)| (id, d))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::ImageKind;
    use crate::store::records::PhashRecord;
    use crate::store::test_support::{add_user, jpeg_thumb, new_image, save_records, temp_store};
    use crate::store::{BatchAction, NewMedia};

    /// Saves `owner`'s image `id` (its bytes are its id) at `at`; with a hash, gives it one as its
    /// thumbnail would.
    fn image(store: &Store, id: &str, owner: &str, at: i64, hash: Option<u64>) -> BlobHash {
        save_records(store, &[new_image(id, owner, at, id.as_bytes())]);
        let blob = BlobHash::of(id.as_bytes());
        if let Some(hash) = hash {
            hashed(store, &blob, hash);
        }
        blob
    }

    fn hashed(store: &Store, blob: &BlobHash, hash: u64) {
        let thumb = format!("thumb of {blob:?}");
        store
            .put_thumbnail(
                blob,
                &jpeg_thumb(thumb.as_bytes()),
                thumb.as_bytes(),
                Some(hash),
            )
            .unwrap();
    }

    fn found(store: &Store, owner: &str, id: &str, max: u32) -> Vec<(String, u32)> {
        match store.similar(&owner.into(), &id.into(), max, 50).unwrap() {
            Similar::Found(found) => found
                .into_iter()
                .map(|(image, d)| (image.id.to_string(), d))
                .collect(),
            other => panic!("{other:?}"),
        }
    }

    fn pairs(list: &[(&str, u32)]) -> Vec<(String, u32)> {
        list.iter().map(|(id, d)| (id.to_string(), *d)).collect()
    }

    #[test]
    fn near_duplicates_come_nearest_first_and_follow_every_change() {
        let (_dir, store) = temp_store();
        add_user(&store, "u");
        add_user(&store, "v");
        let base = 0x0f0f_0f0f_0f0f_0f0fu64;
        image(&store, "a", "u", 1, Some(base));
        image(&store, "b", "u", 2, Some(base ^ 0b111)); // 3 bits
        image(&store, "c", "u", 3, Some(base ^ 0b1)); // 1 bit
        image(&store, "far", "u", 4, Some(!base)); // 64 bits
        image(&store, "other", "v", 5, Some(base)); // another user's, identical
        assert_eq!(found(&store, "u", "a", 10), pairs(&[("c", 1), ("b", 3)]));
        assert_eq!(found(&store, "u", "a", 2), pairs(&[("c", 1)]));
        assert_eq!(found(&store, "v", "other", 10), pairs(&[]));

        // An upload at the newest end extends the index; its hash comes later.
        image(&store, "d", "u", 6, None);
        assert_eq!(found(&store, "u", "a", 10), pairs(&[("c", 1), ("b", 3)]));
        hashed(&store, &BlobHash::of(b"d"), base ^ 0b11);
        assert_eq!(
            found(&store, "u", "a", 10),
            pairs(&[("c", 1), ("d", 2), ("b", 3)])
        );
        // Another record of the same bytes is a duplicate at distance 0.
        let (copy, task) = new_image("copy", "u", 7, b"a");
        store.save_image(&copy, b"a", &task).unwrap();
        assert_eq!(found(&store, "u", "a", 1), pairs(&[("copy", 0), ("c", 1)]));

        // Trash, restore and delete.
        store
            .batch(&"u".into(), &["c".into()], &BatchAction::Trash(10))
            .unwrap();
        assert_eq!(found(&store, "u", "a", 2), pairs(&[("copy", 0), ("d", 2)]));
        assert!(matches!(
            store.similar(&"u".into(), &"c".into(), 10, 50).unwrap(),
            Similar::NotFound
        ));
        store
            .batch(&"u".into(), &["c".into()], &BatchAction::Restore)
            .unwrap();
        assert_eq!(
            found(&store, "u", "a", 2),
            pairs(&[("copy", 0), ("c", 1), ("d", 2)])
        );
        store.delete_image(&"copy".into(), &"u".into()).unwrap();
        assert_eq!(found(&store, "u", "a", 1), pairs(&[("c", 1)]));

        // An edit gives the image new bytes, hashed as their thumbnail is made.
        let changed = store
            .change_media(
                &"c".into(),
                &"u".into(),
                &BlobHash::of(b"c"),
                Some(NewMedia {
                    bytes: b"c edited",
                    kind: ImageKind::Png,
                    width: 1,
                    height: 1,
                }),
            )
            .unwrap();
        assert!(matches!(changed, crate::store::ChangeOutcome::Changed(_)));
        assert_eq!(found(&store, "u", "a", 2), pairs(&[("d", 2)]));
        hashed(&store, &BlobHash::of(b"c edited"), !base);
        assert_eq!(found(&store, "u", "far", 0), pairs(&[("c", 0)]));

        assert!(matches!(
            store.similar(&"v".into(), &"a".into(), 10, 50).unwrap(),
            Similar::NotOwner
        ));
        assert!(matches!(
            store.similar(&"u".into(), &"nope".into(), 10, 50).unwrap(),
            Similar::NotFound
        ));
        assert!(store.check().unwrap().is_clean());
    }

    #[test]
    fn an_image_without_a_hash_is_pending_or_undecodable() {
        let (_dir, store) = temp_store();
        add_user(&store, "u");
        image(&store, "new", "u", 1, None);
        assert!(matches!(
            store.similar(&"u".into(), &"new".into(), 10, 50).unwrap(),
            Similar::Pending
        ));
        let broken = image(&store, "broken", "u", 2, None);
        store
            .put_thumbnail(
                &broken,
                &ThumbRecord::Failed { reason: "x".into() },
                &[],
                None,
            )
            .unwrap();
        assert!(matches!(
            store
                .similar(&"u".into(), &"broken".into(), 10, 50)
                .unwrap(),
            Similar::Undecodable
        ));
    }

    #[test]
    fn the_backlog_lists_thumbnailed_blobs_without_a_current_hash_until_hashed() {
        let (_dir, store) = temp_store();
        add_user(&store, "u");
        let old = image(&store, "old", "u", 1, None);
        store
            .put_thumbnail(&old, &jpeg_thumb(b"t1"), b"t1", None)
            .unwrap();
        let done = image(&store, "done", "u", 2, Some(5));
        let stale = image(&store, "stale", "u", 3, None);
        // Hashed by another algorithm than this build's.
        {
            let tx = store.write().unwrap();
            tx.open_table(PHASHES)
                .unwrap()
                .insert(&stale.0, PhashRecord::new(99, 1).encode().as_slice())
                .unwrap();
            crate::store::thumbs::put_in(&tx, &stale, &jpeg_thumb(b"t3"), b"t3", None).unwrap();
            tx.commit().unwrap();
        }
        let broken = image(&store, "broken", "u", 4, None);
        store
            .put_thumbnail(
                &broken,
                &ThumbRecord::Failed { reason: "x".into() },
                &[],
                None,
            )
            .unwrap();
        image(&store, "waiting", "u", 5, None);

        let mut listed: Vec<[u8; 32]> = store
            .phash_backlog(None, 10)
            .unwrap()
            .0
            .iter()
            .map(|b| b.0)
            .collect();
        listed.sort();
        let mut wanted = vec![old.0, stale.0];
        wanted.sort();
        assert_eq!(listed, wanted);
        // One at a time, going on after the last one looked at.
        let (first, _, last) = store.phash_backlog(None, 1).unwrap();
        let (second, _, _) = store.phash_backlog(last.as_ref(), 1).unwrap();
        assert_eq!(first.len() + second.len(), 2);
        assert_ne!(first, second);

        store.put_phashes(&[(old, 7), (stale, 8)]).unwrap();
        assert!(store.phash_backlog(None, 10).unwrap().0.is_empty());
        assert_eq!(store.phash(&old).unwrap().unwrap().hash(), 7);
        assert_eq!(store.phash(&done).unwrap().unwrap().hash(), 5);
        // A hash for a blob deleted meanwhile is dropped.
        store.delete_image(&"old".into(), &"u".into()).unwrap();
        store.put_phashes(&[(old, 9)]).unwrap();
        assert!(store.phash(&old).unwrap().is_none());
        assert!(store.check().unwrap().is_clean());
    }

    #[test]
    fn duplicates_are_paged_largest_group_first() {
        let (_dir, store) = temp_store();
        add_user(&store, "u");
        let base = 0xffff_0000_ffff_0000u64;
        for (id, at, hash) in [
            ("a1", 1, base),
            ("a2", 2, base ^ 0x3f),         // 6 bits from a1
            ("a3", 3, base ^ 0x3f ^ 0xfc0), // 6 from a2, 12 from a1: joined through a2
            ("b1", 4, !base),
            ("b2", 5, !base ^ 1),
            ("alone", 6, 0x1234_5678_1234_5678),
        ] {
            image(&store, id, "u", at, Some(hash));
        }
        image(&store, "unhashed", "u", 7, None);
        let page = store.duplicates(&"u".into(), 10, 1, 1, 2).unwrap().unwrap();
        assert_eq!(
            (page.total_groups, page.total_images, page.pending),
            (2, 5, 1)
        );
        assert!(page.complete);
        let ids = |g: &DuplicateGroup| -> Vec<String> {
            g.images.iter().map(|i| i.id.to_string()).collect()
        };
        assert_eq!(page.groups.len(), 1);
        assert_eq!(page.groups[0].size, 3);
        assert_eq!(ids(&page.groups[0]), ["a3", "a2"], "newest first, cut to 2");
        let second = store
            .duplicates(&"u".into(), 10, 2, 1, 10)
            .unwrap()
            .unwrap();
        assert_eq!(ids(&second.groups[0]), ["b2", "b1"]);
        // At 4 bits the chain falls apart.
        let strict = store
            .duplicates(&"u".into(), 4, 1, 10, 10)
            .unwrap()
            .unwrap();
        assert_eq!(strict.total_groups, 1);
        // Trashing changes the groups at once.
        store
            .batch(&"u".into(), &["b1".into()], &BatchAction::Trash(10))
            .unwrap();
        let after = store
            .duplicates(&"u".into(), 10, 1, 10, 10)
            .unwrap()
            .unwrap();
        assert_eq!((after.total_groups, after.total_images), (1, 3));
    }
}
