//! Images: every index entry (by name, by time, pending tasks) matches its record both ways.

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
                if !users.contains_key(&image.user_id) {
                    out.found(
                        format!(
                            "image {id} belongs to user {}, who does not exist",
                            image.user_id
                        ),
                        None,
                    );
                }
                images.records.insert(id, image);
            }
            Err(e) => {
                out.found(format!("image {id}: {e}"), None);
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
            Some(id) if id.value() == image.id => {}
            Some(id) => out.found(
                format!(
                    "images {} and {} of user {} share the file name {}",
                    image.id,
                    id.value(),
                    image.user_id,
                    image.filename
                ),
                None,
            ),
            None => out.found(
                format!(
                    "file name {} of image {} is missing from the name index",
                    image.filename, image.id
                ),
                Some(Fix::AddName(
                    image.user_id.clone(),
                    image.filename.clone(),
                    image.id.clone(),
                )),
            ),
        }
    }
    for entry in names.iter()? {
        let (key, id) = entry?;
        let (user, filename) = key.value();
        let id = id.value();
        let fits = images.entry_fits(id, |img| img.user_id == user && img.filename == filename);
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
                    image.user_id.clone(),
                    image.saved_at,
                    image.id.clone(),
                )),
            );
        }
    }
    for entry in times.iter()? {
        let (key, _) = entry?;
        let (user, saved_at, id) = key.value();
        let fits = images.entry_fits(id, |img| img.user_id == user && img.saved_at == saved_at);
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
