//! Images: the image total, and every index entry (by name, by time) matches its record both ways
//! (kept by `store::images`).

use super::*;

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
    let mut sorted: Vec<&ImageRecord> = images.records.values().collect();
    sorted.sort_by(|a, b| (&a.user_id, a.saved_at, &a.id).cmp(&(&b.user_id, b.saved_at, &b.id)));
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
    for image in &sorted {
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
            img.user_id.as_str() == user && img.saved_at == saved_at
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
    Ok(())
}

#[derive(Debug)]
pub(super) enum Fix {
    SetTotal(u64),
    AddName(String, String, String),
    RemoveName(String, String),
    AddTimeIndex(String, i64, String),
    RemoveTimeIndex(String, i64, String),
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
        }
        Ok(())
    }
}
