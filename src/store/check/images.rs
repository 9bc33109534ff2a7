//! Images: the image total, every index entry (by name, by time, by category, by tag, in the
//! trash, the search rows) matches its record both ways, and the per-category and per-tag counts
//! match the records (all kept by `store::images`). Trashed images are in the name and trash
//! indexes only.

use super::*;
use crate::store::images::category_key;
use crate::store::records::{Record, TagRecord, codes};
use crate::store::search::{bump_epoch as bump_search_epoch, record_of};

/// The image records that decode, and the ids of those that do not.
pub(super) struct Images {
    pub(super) records: HashMap<String, ImageRecord>,
    pub(super) undecodable: HashSet<String>,
}

impl Images {
    pub(super) fn count(&self) -> u64 {
        (self.records.len() + self.undecodable.len()) as u64
    }

    /// Whether counters and reference counts can be recounted for sure. With an image that does
    /// not decode they cannot, and lowering one could free bytes that image still needs.
    pub(super) fn all_known(&self) -> bool {
        self.undecodable.is_empty()
    }

    /// The records in index order: by user, then save time, then id.
    pub(super) fn sorted(&self) -> Vec<&ImageRecord> {
        let mut sorted: Vec<&ImageRecord> = self.records.values().collect();
        sorted
            .sort_by(|a, b| (&a.user_id, a.saved_at, &a.id).cmp(&(&b.user_id, b.saved_at, &b.id)));
        sorted
    }

    /// The records that are not in the trash, in index order: those the live indexes and
    /// counters hold.
    pub(super) fn sorted_live(&self) -> Vec<&ImageRecord> {
        let mut sorted = self.sorted();
        sorted.retain(|i| !i.is_trashed());
        sorted
    }

    /// Images the live counters count: those not in the trash, and those that do not decode
    /// (which could be either).
    pub(super) fn live_count(&self) -> u64 {
        let live = self.records.values().filter(|i| !i.is_trashed()).count();
        (live + self.undecodable.len()) as u64
    }

    /// Whether an index entry naming `id` can stand: it is an image that does not decode (so it
    /// cannot be compared) or one that `fits`.
    pub(super) fn entry_fits(&self, id: &str, fits: impl FnOnce(&ImageRecord) -> bool) -> bool {
        self.undecodable.contains(id) || self.records.get(id).is_some_and(fits)
    }
}
pub(super) fn load_images(
    tx: &ReadTransaction,
    users: &HashMap<String, Option<UserRecord>>,
    out: &mut Findings,
) -> Result<Images> {
    let mut images = Images {
        records: HashMap::new(),
        undecodable: HashSet::new(),
    };
    for entry in tx.open_table(IMAGES)?.iter()? {
        let (id, raw) = entry?;
        let id = id.value().to_string();
        match ImageRecord::decode(raw.value()) {
            Ok(image) => {
                if !users.contains_key(image.user_id.as_str()) {
                    out.unrepairable(format!(
                        "image {id} belongs to user {}, who does not exist",
                        image.user_id
                    ));
                }
                images.records.insert(id, image);
            }
            Err(e) => {
                out.unrepairable(format!("image {id}: {e}"));
                images.undecodable.insert(id);
            }
        }
    }
    Ok(images)
}
/// The name index and the time index, matched with the image records both ways.
pub(super) fn check_image_indexes(
    tx: &ReadTransaction,
    images: &Images,
    out: &mut Findings,
) -> Result<()> {
    let names = tx.open_table(IMAGE_NAMES)?;
    let sorted = images.sorted();
    for image in &sorted {
        let key = (image.user_id.as_str(), image.filename.as_str());
        match names.get(key)? {
            Some(id) if id.value() == image.id.as_str() => {}
            Some(id) => out.unrepairable(format!(
                "images {} and {} of user {} share the file name {}",
                image.id,
                id.value(),
                image.user_id,
                image.filename
            )),
            None => out.found(
                format!(
                    "file name {} of image {} is missing from the name index",
                    image.filename, image.id
                ),
                Some(Fix::AddName(
                    image.user_id.to_string(),
                    image.filename.clone(),
                    image.id.to_string(),
                )),
            ),
        }
    }
    for entry in names.iter()? {
        let (key, id) = entry?;
        let (user, filename) = key.value();
        let id = id.value();
        let fits = images.entry_fits(id, |img| {
            img.user_id.as_str() == user && img.filename == filename
        });
        if !fits {
            out.found(
                format!("name index entry {user}/{filename} points at image {id}, which is not that image"),
                Some(Fix::RemoveName(user.to_string(), filename.to_string())),
            );
        }
    }

    let times = tx.open_table(USER_IMAGES)?;
    for image in sorted.iter().filter(|i| !i.is_trashed()) {
        let key = (image.user_id.as_str(), image.saved_at, image.id.as_str());
        if times.get(key)?.is_none() {
            out.found(
                format!("image {} is missing from its user's time index", image.id),
                Some(Fix::AddTimeIndex(
                    image.user_id.to_string(),
                    image.saved_at,
                    image.id.to_string(),
                )),
            );
        }
    }
    for entry in times.iter()? {
        let (key, _) = entry?;
        let (user, saved_at, id) = key.value();
        let fits = images.entry_fits(id, |img| {
            img.user_id.as_str() == user && img.saved_at == saved_at && !img.is_trashed()
        });
        if !fits {
            out.found(
                format!("time index entry of user {user} points at image {id}, which is not there"),
                Some(Fix::RemoveTimeIndex(
                    user.to_string(),
                    saved_at,
                    id.to_string(),
                )),
            );
        }
    }

    let trash = tx.open_table(USER_TRASH)?;
    for image in &sorted {
        let Some(at) = image.trashed_at else { continue };
        let key = (image.user_id.as_str(), at, image.id.as_str());
        if trash.get(key)?.is_none() {
            out.found(
                format!("trashed image {} is missing from the trash index", image.id),
                Some(Fix::AddTrashIndex(
                    image.user_id.to_string(),
                    at,
                    image.id.to_string(),
                )),
            );
        }
    }
    for entry in trash.iter()? {
        let (key, _) = entry?;
        let (user, at, id) = key.value();
        let fits = images.entry_fits(id, |img| {
            img.user_id.as_str() == user && img.trashed_at == Some(at)
        });
        if !fits {
            out.found(
                format!(
                    "trash entry of user {user} points at image {id}, which is not in the trash"
                ),
                Some(Fix::RemoveTrashIndex(user.to_string(), at, id.to_string())),
            );
        }
    }
    Ok(())
}

/// The name a category code is shown by: the category's, or the bare code when no category is
/// stored as it.
fn category_name(code: u8) -> String {
    codes::category::from_code(code).map_or_else(|| format!("code {code}"), |c| c.to_string())
}

/// The category index matched with the image records both ways, and the per-user, per-category
/// counts against the records.
pub(super) fn check_category_index(
    tx: &ReadTransaction,
    images: &Images,
    out: &mut Findings,
) -> Result<()> {
    let index = tx.open_table(USER_CATEGORY_IMAGES)?;
    let mut counted: BTreeMap<(&str, u8), u64> = BTreeMap::new();
    for image in images.sorted_live() {
        let key = category_key(image);
        *counted.entry((key.0, key.1)).or_default() += 1;
        if index.get(key)?.is_none() {
            out.found(
                format!(
                    "image {} is missing from its user's {} index",
                    image.id, image.category
                ),
                Some(Fix::AddCategoryIndex(
                    key.0.to_string(),
                    key.1,
                    key.2,
                    key.3.to_string(),
                )),
            );
        }
    }
    for entry in index.iter()? {
        let (key, _) = entry?;
        let (user, code, saved_at, id) = key.value();
        let fits = images.entry_fits(id, |img| {
            !img.is_trashed() && category_key(img) == (user, code, saved_at, id)
        });
        if !fits {
            out.found(
                format!(
                    "{} index entry of user {user} points at image {id}, which is not there",
                    category_name(code)
                ),
                Some(Fix::RemoveCategoryIndex(
                    user.to_string(),
                    code,
                    saved_at,
                    id.to_string(),
                )),
            );
        }
    }

    let stored: BTreeMap<(String, u8), u64> = tx
        .open_table(USER_CATEGORY_COUNTS)?
        .iter()?
        .map(|e| {
            e.map(|(k, v)| {
                let (user, code) = k.value();
                ((user.to_string(), code), v.value())
            })
        })
        .collect::<std::result::Result<_, _>>()?;
    // As for the per-user counts: an image that does not decode could be in any category.
    let fix = images.all_known();
    for (&(user, code), &n) in &counted {
        let have = stored.get(&(user.to_string(), code)).copied().unwrap_or(0);
        if have != n {
            out.found(
                format!(
                    "{} count of user {user} is {have}, but the user has {n} such images",
                    category_name(code)
                ),
                fix.then(|| Fix::SetCategoryCount(user.to_string(), code, n)),
            );
        }
    }
    for ((user, code), &have) in &stored {
        if !counted.contains_key(&(user.as_str(), *code)) {
            out.found(
                format!(
                    "{} count of user {user} is {have}, but the user has no such images",
                    category_name(*code)
                ),
                fix.then(|| Fix::SetCategoryCount(user.clone(), *code, 0)),
            );
        }
    }
    Ok(())
}

/// The tag index matched with the image records' tags both ways, and each user's tag counts
/// against the records.
pub(super) fn check_tag_index(
    tx: &ReadTransaction,
    images: &Images,
    out: &mut Findings,
) -> Result<()> {
    let index = tx.open_table(USER_TAG_IMAGES)?;
    // (user, folded tag) → how many images carry it, and the oldest one's spelling.
    let mut counted: BTreeMap<(String, String), (u64, String)> = BTreeMap::new();
    let mut expected: HashSet<(String, String, i64, String)> = HashSet::new();
    for image in images.sorted_live() {
        for shown in &image.tags {
            let folded = crate::text::fold(shown);
            let user = image.user_id.to_string();
            let count = counted
                .entry((user.clone(), folded.clone()))
                .or_insert_with(|| (0, shown.clone()));
            count.0 += 1;
            let key = (user, folded, image.saved_at, image.id.to_string());
            let present = index.get((key.0.as_str(), key.1.as_str(), key.2, key.3.as_str()))?;
            if present.is_none() {
                out.found(
                    format!(
                        "image {} is missing from the index of its tag {shown:?}",
                        image.id
                    ),
                    Some(Fix::AddTagIndex(
                        key.0.clone(),
                        key.1.clone(),
                        key.2,
                        key.3.clone(),
                    )),
                );
            }
            expected.insert(key);
        }
    }
    for entry in index.iter()? {
        let (key, _) = entry?;
        let (user, folded, saved_at, id) = key.value();
        let owned = (
            user.to_string(),
            folded.to_string(),
            saved_at,
            id.to_string(),
        );
        if !images.undecodable.contains(id) && !expected.contains(&owned) {
            out.found(
                format!("tag {folded:?} index entry of user {user} points at image {id}, which does not carry it"),
                Some(Fix::RemoveTagIndex(owned.0, owned.1, saved_at, owned.3)),
            );
        }
    }
    let fix = images.all_known();
    let mut stored = BTreeMap::new();
    for entry in tx.open_table(USER_TAGS)?.iter()? {
        let (key, value) = entry?;
        let (user, folded) = key.value();
        let count = TagRecord::decode(value.value()).map_or(u64::MAX, |r| r.count);
        stored.insert((user.to_string(), folded.to_string()), count);
    }
    for ((user, folded), (n, shown)) in &counted {
        let have = stored.get(&(user.clone(), folded.clone())).copied();
        if have != Some(*n) {
            let have = have.map_or("missing".to_string(), |h| h.to_string());
            out.found(
                format!(
                    "count of tag {folded:?} of user {user} is {have}, but {n} images carry it"
                ),
                fix.then(|| Fix::SetTagCount(user.clone(), folded.clone(), *n, shown.clone())),
            );
        }
    }
    for ((user, folded), have) in &stored {
        if !counted.contains_key(&(user.clone(), folded.clone())) {
            out.found(
                format!(
                    "count of tag {folded:?} of user {user} is {have}, but no image carries it"
                ),
                fix.then(|| Fix::SetTagCount(user.clone(), folded.clone(), 0, String::new())),
            );
        }
    }
    Ok(())
}

/// The search rows matched with the live image records both ways (each row must be what
/// `search::record_of` makes of its record), and each user's tag counts per category against the
/// records.
pub(super) fn check_search_index(
    tx: &ReadTransaction,
    images: &Images,
    out: &mut Findings,
) -> Result<()> {
    let rows = tx.open_table(USER_SEARCH)?;
    let mut counted: BTreeMap<(String, u8, String), u64> = BTreeMap::new();
    for image in images.sorted_live() {
        let row = record_of(image);
        let code = codes::category::to_code(image.category);
        for tag in &row.tags {
            *counted
                .entry((image.user_id.to_string(), code, tag.clone()))
                .or_default() += 1;
        }
        let want = row.encode();
        let key = (image.user_id.as_str(), image.saved_at, image.id.as_str());
        let what = match rows.get(key)? {
            Some(have) if have.value() == want.as_slice() => continue,
            Some(_) => format!("search row of image {} does not match its record", image.id),
            None => format!("image {} is missing from the search rows", image.id),
        };
        out.found(
            what,
            Some(Fix::PutSearchRow(
                key.0.to_string(),
                key.1,
                key.2.to_string(),
                want,
            )),
        );
    }
    for entry in rows.iter()? {
        let (key, _) = entry?;
        let (user, saved_at, id) = key.value();
        let fits = images.entry_fits(id, |img| {
            !img.is_trashed() && img.user_id.as_str() == user && img.saved_at == saved_at
        });
        if !fits {
            out.found(
                format!("search row of user {user} points at image {id}, which is not there"),
                Some(Fix::RemoveSearchRow(
                    user.to_string(),
                    saved_at,
                    id.to_string(),
                )),
            );
        }
    }

    let mut stored = BTreeMap::new();
    for entry in tx.open_table(USER_CATEGORY_TAGS)?.iter()? {
        let (key, value) = entry?;
        let (user, code, tag) = key.value();
        stored.insert((user.to_string(), code, tag.to_string()), value.value());
    }
    let fix = images.all_known();
    for (key, &n) in &counted {
        let have = stored.get(key).copied().unwrap_or(0);
        if have != n {
            let (user, code, tag) = key;
            out.found(
                format!(
                    "{} count of tag {tag:?} of user {user} is {have}, but {n} images carry it",
                    category_name(*code)
                ),
                fix.then(|| Fix::SetCategoryTagCount(user.clone(), *code, tag.clone(), n)),
            );
        }
    }
    for ((user, code, tag), have) in &stored {
        if !counted.contains_key(&(user.clone(), *code, tag.clone())) {
            out.found(
                format!(
                    "{} count of tag {tag:?} of user {user} is {have}, but no such image carries it",
                    category_name(*code)
                ),
                fix.then(|| Fix::SetCategoryTagCount(user.clone(), *code, tag.clone(), 0)),
            );
        }
    }
    Ok(())
}

#[derive(Debug)]
pub(super) enum Fix {
    SetTotal(u64),
    AddName(String, String, String),
    RemoveName(String, String),
    AddTimeIndex(String, i64, String),
    RemoveTimeIndex(String, i64, String),
    AddTrashIndex(String, i64, String),
    RemoveTrashIndex(String, i64, String),
    AddCategoryIndex(String, u8, i64, String),
    RemoveCategoryIndex(String, u8, i64, String),
    /// Zero removes the counter, as image deletion does.
    SetCategoryCount(String, u8, u64),
    AddTagIndex(String, String, i64, String),
    RemoveTagIndex(String, String, i64, String),
    /// User, folded tag, count (zero removes it) and the spelling to show.
    SetTagCount(String, String, u64, String),
    /// User, saved_at, image id and the row's bytes.
    PutSearchRow(String, i64, String, Vec<u8>),
    RemoveSearchRow(String, i64, String),
    /// User, category code, folded tag, count (zero removes it).
    SetCategoryTagCount(String, u8, String, u64),
}

impl Repair for Fix {
    fn apply(&self, tx: &WriteTransaction) -> Result<()> {
        match self {
            Self::SetTotal(n) => {
                tx.open_table(META)?.insert(TOTAL_IMAGES_KEY, *n)?;
            }
            Self::AddName(user, filename, id) => {
                tx.open_table(IMAGE_NAMES)?
                    .insert((user.as_str(), filename.as_str()), id.as_str())?;
            }
            Self::RemoveName(user, filename) => {
                tx.open_table(IMAGE_NAMES)?
                    .remove((user.as_str(), filename.as_str()))?;
            }
            Self::AddTimeIndex(user, at, id) => {
                tx.open_table(USER_IMAGES)?
                    .insert((user.as_str(), *at, id.as_str()), ())?;
                crate::store::paging::bump_epoch(tx, user)?;
            }
            Self::RemoveTimeIndex(user, at, id) => {
                tx.open_table(USER_IMAGES)?
                    .remove((user.as_str(), *at, id.as_str()))?;
                crate::store::paging::bump_epoch(tx, user)?;
            }
            Self::AddTrashIndex(user, at, id) => {
                tx.open_table(USER_TRASH)?
                    .insert((user.as_str(), *at, id.as_str()), ())?;
            }
            Self::RemoveTrashIndex(user, at, id) => {
                tx.open_table(USER_TRASH)?
                    .remove((user.as_str(), *at, id.as_str()))?;
            }
            Self::AddCategoryIndex(user, code, at, id) => {
                tx.open_table(USER_CATEGORY_IMAGES)?
                    .insert((user.as_str(), *code, *at, id.as_str()), ())?;
            }
            Self::RemoveCategoryIndex(user, code, at, id) => {
                tx.open_table(USER_CATEGORY_IMAGES)?.remove((
                    user.as_str(),
                    *code,
                    *at,
                    id.as_str(),
                ))?;
            }
            Self::SetCategoryCount(user, code, 0) => {
                tx.open_table(USER_CATEGORY_COUNTS)?
                    .remove((user.as_str(), *code))?;
            }
            Self::SetCategoryCount(user, code, n) => {
                tx.open_table(USER_CATEGORY_COUNTS)?
                    .insert((user.as_str(), *code), *n)?;
            }
            Self::AddTagIndex(user, folded, at, id) => {
                tx.open_table(USER_TAG_IMAGES)?
                    .insert((user.as_str(), folded.as_str(), *at, id.as_str()), ())?;
            }
            Self::RemoveTagIndex(user, folded, at, id) => {
                tx.open_table(USER_TAG_IMAGES)?.remove((
                    user.as_str(),
                    folded.as_str(),
                    *at,
                    id.as_str(),
                ))?;
            }
            Self::SetTagCount(user, folded, 0, _) => {
                tx.open_table(USER_TAGS)?
                    .remove((user.as_str(), folded.as_str()))?;
            }
            Self::SetTagCount(user, folded, n, shown) => {
                let mut counts = tx.open_table(USER_TAGS)?;
                // Keep the spelling already shown, if there is one.
                let shown = counts
                    .get((user.as_str(), folded.as_str()))?
                    .and_then(|v| TagRecord::decode(v.value()).ok())
                    .map_or_else(|| shown.clone(), |r| r.shown);
                let record = TagRecord { count: *n, shown };
                counts.insert((user.as_str(), folded.as_str()), record.encode().as_slice())?;
            }
            Self::PutSearchRow(user, at, id, row) => {
                tx.open_table(USER_SEARCH)?
                    .insert((user.as_str(), *at, id.as_str()), row.as_slice())?;
                bump_search_epoch(tx, user)?;
            }
            Self::RemoveSearchRow(user, at, id) => {
                tx.open_table(USER_SEARCH)?
                    .remove((user.as_str(), *at, id.as_str()))?;
                bump_search_epoch(tx, user)?;
            }
            Self::SetCategoryTagCount(user, code, tag, 0) => {
                tx.open_table(USER_CATEGORY_TAGS)?
                    .remove((user.as_str(), *code, tag.as_str()))?;
            }
            Self::SetCategoryTagCount(user, code, tag, n) => {
                tx.open_table(USER_CATEGORY_TAGS)?
                    .insert((user.as_str(), *code, tag.as_str()), *n)?;
            }
        }
        Ok(())
    }
}
