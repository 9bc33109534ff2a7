//! What a user's live images hold, by content rather than by record: which of their images were
//! captured as the same bytes (for provenance and for collapsing identical captures in the
//! gallery), and which original image URLs they have (for "already saved" lookups). The entries
//! are added and removed by `images::index_live` with every other live index, so a trashed image
//! is in none of them.
//!
//! A content is the blob an image was captured as (`ImageRecord::captured_blob`). Each of the
//! user's contents is kept twice: in the scope of all their images and in the scope of the
//! image's category, so that `distinct` pages of one category cost what those of all images do.

use redb::{ReadTransaction, ReadableTable, WriteTransaction};

use super::records::{ImageRecord, codes};
use super::tables::*;
use super::{Result, Store, StoreError};
use crate::clock::Micros;
use crate::domain::{Category, Sha256, UserId};

/// URLs up to this many bytes are their own key in `USER_URLS`; longer ones are hashed.
pub const MAX_URL_KEY: usize = 128;

/// Most captures `Store::sources` lists (the newest).
pub const MAX_SOURCES: usize = 500;

/// `url`'s key in `USER_URLS`.
pub fn url_key(url: &str) -> Vec<u8> {
    if url.len() <= MAX_URL_KEY {
        return url.as_bytes().to_vec();
    }
    let mut key = Vec::with_capacity(33);
    key.push(0xFF);
    key.extend_from_slice(blake3::hash(url.as_bytes()).as_bytes());
    key
}

/// The scopes `image` is indexed in: all images, and its category.
fn scopes(image: &ImageRecord) -> [u8; 2] {
    [ALL_SCOPE, codes::category::to_code(image.category)]
}

/// The scope of a listing of `category`, or of all images.
pub(super) fn scope_of(category: Option<Category>) -> u8 {
    category.map_or(ALL_SCOPE, codes::category::to_code)
}

type CaptureKey<'a> = (&'a str, u8, &'a [u8; 32], Micros, &'a str);

/// Every key of `user`'s captures of `blob` in `scope`, oldest first.
fn captures_range<'a>(
    user: &'a str,
    scope: u8,
    blob: &'a [u8; 32],
) -> std::ops::RangeInclusive<CaptureKey<'a>> {
    (user, scope, blob, i64::MIN, "")..=(user, scope, blob, i64::MAX, "\u{10FFFF}")
}

/// The newest of `user`'s captures of `blob` in `scope`: its time and id.
fn newest_capture(
    captures: &impl ReadableTable<CaptureKey<'static>, ()>,
    user: &str,
    scope: u8,
    blob: &[u8; 32],
) -> Result<Option<(Micros, String)>> {
    Ok(
        match captures
            .range(captures_range(user, scope, blob))?
            .next_back()
        {
            Some(entry) => {
                let (key, _) = entry?;
                let (_, _, _, at, id) = key.value();
                Some((at, id.to_string()))
            }
            None => None,
        },
    )
}

/// Adds (`delta` 1) or takes away (-1) a live image's entries in the content tables and the URL
/// index. Called by `images::index_live` only (and by what rebuilds the tables).
pub(super) fn index(tx: &WriteTransaction, image: &ImageRecord, delta: i64) -> Result<()> {
    Tables::open(tx)?.index(image, delta)
}

/// The content tables and the URL index, open in one write transaction: what a pass over many
/// images (a migration, a repair) opens once.
pub(super) struct Tables<'tx> {
    captures: redb::Table<'tx, CaptureKey<'static>, ()>,
    contents: redb::Table<'tx, (&'static str, u8, &'static [u8; 32]), u64>,
    distinct: redb::Table<'tx, (&'static str, u8, Micros, &'static str), ()>,
    totals: redb::Table<'tx, (&'static str, u8), u64>,
    urls: redb::Table<'tx, (&'static str, &'static [u8]), u64>,
}

impl<'tx> Tables<'tx> {
    pub(super) fn open(tx: &'tx WriteTransaction) -> Result<Self> {
        Ok(Self {
            captures: tx.open_table(USER_CAPTURES)?,
            contents: tx.open_table(USER_CONTENTS)?,
            distinct: tx.open_table(USER_DISTINCT)?,
            totals: tx.open_table(USER_CONTENT_COUNTS)?,
            urls: tx.open_table(USER_URLS)?,
        })
    }

    /// Empties every table (before they are built again from the records).
    pub(super) fn clear(&mut self) -> Result<()> {
        self.captures.retain(|_, _| false)?;
        self.contents.retain(|_, _| false)?;
        self.distinct.retain(|_, _| false)?;
        self.totals.retain(|_, _| false)?;
        self.urls.retain(|_, _| false)?;
        Ok(())
    }

    /// See `index`.
    pub(super) fn index(&mut self, image: &ImageRecord, delta: i64) -> Result<()> {
        let Self {
            captures,
            contents,
            distinct,
            totals,
            urls,
        } = self;
        let user = image.user_id.as_str();
        let blob = &image.captured_blob().0;
        let me = (image.saved_at, image.id.as_str());
        for scope in scopes(image) {
            let had = contents.get((user, scope, blob))?.map_or(0, |v| v.value());
            let key = (user, scope, blob, me.0, me.1);
            let mut total_delta = 0i64;
            if delta > 0 {
                let newest_before = if had > 0 {
                    newest_capture(&*captures, user, scope, blob)?
                } else {
                    None
                };
                captures.insert(key, ())?;
                contents.insert((user, scope, blob), had + 1)?;
                match newest_before {
                    None => {
                        distinct.insert((user, scope, me.0, me.1), ())?;
                        total_delta = 1;
                    }
                    Some((at, id)) if (at, id.as_str()) < me => {
                        distinct.remove((user, scope, at, id.as_str()))?;
                        distinct.insert((user, scope, me.0, me.1), ())?;
                    }
                    Some(_) => {}
                }
            } else {
                captures.remove(key)?;
                let was_newest = distinct.remove((user, scope, me.0, me.1))?.is_some();
                if had <= 1 {
                    contents.remove((user, scope, blob))?;
                    total_delta = -1;
                } else {
                    contents.insert((user, scope, blob), had - 1)?;
                    if was_newest {
                        let (at, id) = newest_capture(&*captures, user, scope, blob)?.ok_or_else(|| {
                            StoreError::Corrupt(format!(
                                "content count of user {user} says {had} captures, the index has none"
                            ))
                        })?;
                        distinct.insert((user, scope, at, id.as_str()), ())?;
                    }
                }
            }
            if total_delta != 0 {
                let have = totals.get((user, scope))?.map_or(0, |v| v.value());
                match have.checked_add_signed(total_delta).unwrap_or(0) {
                    0 => totals.remove((user, scope))?,
                    n => totals.insert((user, scope), n)?,
                };
            }
        }
        if let Some(url) = &image.original_url {
            let key = url_key(url);
            let have = urls.get((user, key.as_slice()))?.map_or(0, |v| v.value());
            match have.checked_add_signed(delta).unwrap_or(0) {
                0 => urls.remove((user, key.as_slice()))?,
                n => urls.insert((user, key.as_slice()), n)?,
            };
        }
        Ok(())
    }
}

/// One page of a user's contents: the newest capture of each, with how many captures it has.
#[derive(Debug)]
pub struct ContentPage {
    pub images: Vec<(ImageRecord, u64)>,
    /// The user's contents (in the category, when the page is of one).
    pub total: u64,
}

/// What a lookup found among a user's live images.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Known {
    /// Indexes of the SHA-256 hashes asked about that are known.
    pub sha256: Vec<usize>,
    /// Indexes of the URLs asked about that are known.
    pub urls: Vec<usize>,
}

/// The tables a lookup by SHA-256 reads.
struct ByHash {
    blobs: redb::ReadOnlyTable<&'static [u8; 32], &'static [u8; 32]>,
    contents: redb::ReadOnlyTable<(&'static str, u8, &'static [u8; 32]), u64>,
}

impl ByHash {
    fn open(tx: &ReadTransaction) -> Result<Self> {
        Ok(Self {
            blobs: tx.open_table(SHA256_BLOBS)?,
            contents: tx.open_table(USER_CONTENTS)?,
        })
    }

    /// The blob whose SHA-256 is `sha256`, if `user` has a live capture of it.
    fn owned_blob(&self, user: &str, sha256: &[u8; 32]) -> Result<Option<[u8; 32]>> {
        let Some(blob) = self.blobs.get(sha256)?.map(|v| *v.value()) else {
            return Ok(None);
        };
        let held = self.contents.get((user, ALL_SCOPE, &blob))?.is_some();
        Ok(held.then_some(blob))
    }
}

impl Store {
    /// Which of `sha256` (hashes of image bytes) and `urls` (original image URLs) `user_id` has
    /// among their live images. Point reads only: two per hash, one per URL.
    pub fn lookup(&self, user_id: &UserId, sha256: &[Sha256], urls: &[String]) -> Result<Known> {
        let tx = self.read()?;
        let user = user_id.as_str();
        let mut known = Known::default();
        let by_hash = ByHash::open(&tx)?;
        for (i, hash) in sha256.iter().enumerate() {
            if by_hash.owned_blob(user, &hash.0)?.is_some() {
                known.sha256.push(i);
            }
        }
        let table = tx.open_table(USER_URLS)?;
        for (i, url) in urls.iter().enumerate() {
            if table.get((user, url_key(url).as_slice()))?.is_some() {
                known.urls.push(i);
            }
        }
        Ok(known)
    }

    /// `user_id`'s newest live capture of the bytes whose SHA-256 is `sha256`; `None` when they
    /// have none (whoever else does).
    pub fn capture_by_sha256(
        &self,
        user_id: &UserId,
        sha256: &Sha256,
    ) -> Result<Option<ImageRecord>> {
        let tx = self.read()?;
        let user = user_id.as_str();
        let Some(blob) = ByHash::open(&tx)?.owned_blob(user, &sha256.0)? else {
            return Ok(None);
        };
        let captures = tx.open_table(USER_CAPTURES)?;
        let Some(entry) = captures
            .range(captures_range(user, ALL_SCOPE, &blob))?
            .next_back()
        else {
            return Ok(None);
        };
        let (key, _) = entry?;
        let id = key.value().4.to_string();
        super::images::records(&tx.open_table(IMAGES)?, &[id], "capture")
            .map(|mut found| found.pop())
    }

    /// The live captures of the same bytes as `image` (its owner's, the image included if live),
    /// newest first, at most `MAX_SOURCES`.
    pub fn sources(&self, image: &ImageRecord) -> Result<Vec<ImageRecord>> {
        let tx = self.read()?;
        let user = image.user_id.as_str();
        let blob = &image.captured_blob().0;
        let mut ids = Vec::new();
        for entry in tx
            .open_table(USER_CAPTURES)?
            .range(captures_range(user, ALL_SCOPE, blob))?
            .rev()
            .take(MAX_SOURCES)
        {
            ids.push(entry?.0.value().4.to_string());
        }
        super::images::records(&tx.open_table(IMAGES)?, &ids, "capture")
    }

    /// Page `page` (1-based) of `user_id`'s contents (of one `category`, or of all), each as its
    /// newest live capture with the number of captures, newest first. Walks the index of newest
    /// captures from its newest end: a page costs its offset in index keys, then its own records
    /// and counts.
    pub fn list_contents(
        &self,
        user_id: &UserId,
        category: Option<Category>,
        page: u64,
        per_page: u64,
    ) -> Result<ContentPage> {
        let tx = self.read()?;
        let (user, scope) = (user_id.as_str(), scope_of(category));
        let total = tx
            .open_table(USER_CONTENT_COUNTS)?
            .get((user, scope))?
            .map_or(0, |v| v.value());
        let skip = page.saturating_sub(1).saturating_mul(per_page);
        if skip >= total {
            return Ok(ContentPage {
                images: Vec::new(),
                total,
            });
        }
        let mut ids = Vec::new();
        for entry in tx
            .open_table(USER_DISTINCT)?
            .range((user, scope, i64::MIN, "")..=(user, scope, i64::MAX, "\u{10FFFF}"))?
            .rev()
            .skip(skip as usize)
            .take(per_page.min(total - skip) as usize)
        {
            ids.push(entry?.0.value().3.to_string());
        }
        let records = super::images::records(&tx.open_table(IMAGES)?, &ids, "distinct")?;
        let contents = tx.open_table(USER_CONTENTS)?;
        let mut images = Vec::with_capacity(records.len());
        for image in records {
            let captures = contents
                .get((user, scope, &image.captured_blob().0))?
                .map_or(1, |v| v.value());
            images.push((image, captures));
        }
        Ok(ContentPage { images, total })
    }
}

#[cfg(test)]
mod tests {
    use super::super::records::{IdempotencyRecord, Record};
    use super::super::test_support::{add_user, new_image, temp_store};
    use super::super::{BatchAction, NewImage, NewKey, NewMedia};
    use super::*;
    use crate::domain::{BlobHash, ImageId};
    use crate::media::ImageKind;

    const X: &[u8] = b"bytes seen on two pages";
    const Y: &[u8] = b"other bytes";

    fn save(store: &Store, id: &str, owner: &str, at: i64, bytes: &[u8], url: Option<&str>) {
        let (image, task) = new_image(id, owner, at, bytes);
        let image = ImageRecord {
            original_url: url.map(str::to_string),
            page_url: Some(format!("https://page/{id}")),
            ..image
        };
        store.save_image(&image, bytes, &task).unwrap();
    }

    fn listed(store: &Store, user: &str, category: Option<Category>) -> (u64, Vec<(String, u64)>) {
        let page = store.list_contents(&user.into(), category, 1, 10).unwrap();
        let shown = page
            .images
            .into_iter()
            .map(|(image, n)| (image.id.to_string(), n))
            .collect();
        (page.total, shown)
    }

    fn known(store: &Store, user: &str, hashes: &[&[u8]], urls: &[&str]) -> Known {
        let hashes: Vec<Sha256> = hashes.iter().map(|b| Sha256::of(b)).collect();
        let urls: Vec<String> = urls.iter().map(|u| u.to_string()).collect();
        store.lookup(&user.into(), &hashes, &urls).unwrap()
    }

    fn sources(store: &Store, id: &str) -> Vec<String> {
        let image = store.image(&id.into()).unwrap().unwrap();
        store
            .sources(&image)
            .unwrap()
            .into_iter()
            .map(|i| i.id.to_string())
            .collect()
    }

    fn clean(store: &Store, what: &str) {
        let report = store.check().unwrap();
        assert!(report.is_clean(), "after {what}: {:?}", report.problems);
    }

    #[test]
    fn contents_urls_and_sources_follow_every_change_and_never_cross_users() {
        let (_dir, store) = temp_store();
        add_user(&store, "u");
        add_user(&store, "v");
        save(&store, "a", "u", 1, X, Some("https://img/1"));
        save(&store, "b", "u", 2, X, Some("https://img/2"));
        save(&store, "c", "u", 3, Y, None);
        save(&store, "d", "v", 4, X, None);
        let long = format!("https://img/{}", "x".repeat(MAX_URL_KEY));
        save(&store, "e", "v", 5, b"e", Some(&long));
        let u = "u";
        store
            .batch(
                &u.into(),
                &["b".into()],
                &BatchAction::SetCategory(Category::Char),
            )
            .unwrap();
        clean(&store, "saves");

        let found = known(
            &store,
            u,
            &[X, b"never stored"],
            &["https://img/1", "https://nope"],
        );
        assert_eq!(
            found,
            Known {
                sha256: vec![0],
                urls: vec![0]
            }
        );
        // v has no image of Y, whoever else does; nor u's URLs.
        assert_eq!(
            known(&store, "v", &[Y, X], &["https://img/1", &long]),
            Known {
                sha256: vec![1],
                urls: vec![1]
            }
        );
        let w = known(&store, "w", &[X, Y], &["https://img/1"]);
        assert_eq!(w, Known::default());

        assert_eq!(
            listed(&store, u, None),
            (2, vec![("c".into(), 1), ("b".into(), 2)])
        );
        assert_eq!(
            listed(&store, u, Some(Category::Clothes)),
            (2, vec![("c".into(), 1), ("a".into(), 1)])
        );
        assert_eq!(
            listed(&store, u, Some(Category::Char)),
            (1, vec![("b".into(), 1)])
        );
        assert_eq!(sources(&store, "a"), ["b", "a"]);
        let second = store.list_contents(&u.into(), None, 2, 1).unwrap();
        assert_eq!((second.total, second.images[0].0.id.as_str()), (2, "b"));
        assert_eq!(
            store
                .capture_by_sha256(&u.into(), &Sha256::of(X))
                .unwrap()
                .unwrap()
                .id,
            ImageId::from("b")
        );
        assert!(
            store
                .capture_by_sha256(&"w".into(), &Sha256::of(X))
                .unwrap()
                .is_none()
        );

        // The trash takes b out of everything; a restore brings it back.
        store.trash_image(&"b".into(), &u.into(), 10).unwrap();
        clean(&store, "trash");
        assert_eq!(
            listed(&store, u, None),
            (2, vec![("c".into(), 1), ("a".into(), 1)])
        );
        assert_eq!(listed(&store, u, Some(Category::Char)), (0, vec![]));
        assert_eq!(sources(&store, "a"), ["a"]);
        assert_eq!(known(&store, u, &[], &["https://img/2"]), Known::default());
        store
            .batch(&u.into(), &["b".into()], &BatchAction::Restore)
            .unwrap();
        clean(&store, "restore");
        assert_eq!(
            listed(&store, u, None),
            (2, vec![("c".into(), 1), ("b".into(), 2)])
        );
        assert_eq!(sources(&store, "b"), ["b", "a"]);

        // Back into the category of a: one content of two captures there too.
        store
            .batch(
                &u.into(),
                &["b".into()],
                &BatchAction::SetCategory(Category::Clothes),
            )
            .unwrap();
        clean(&store, "set category");
        assert_eq!(
            listed(&store, u, Some(Category::Clothes)),
            (2, vec![("c".into(), 1), ("b".into(), 2)])
        );
        assert_eq!(listed(&store, u, Some(Category::Char)), (0, vec![]));

        // An edit keeps the image in the content it was captured as.
        let c = store.image(&"c".into()).unwrap().unwrap();
        let edited = NewMedia {
            bytes: b"edited",
            kind: ImageKind::Png,
            width: 1,
            height: 1,
        };
        store
            .change_media(&"c".into(), &u.into(), &c.blob, Some(edited))
            .unwrap();
        clean(&store, "edit");
        assert_eq!(known(&store, u, &[Y, b"edited"], &[]).sha256, [0]);
        assert_eq!(listed(&store, u, None).0, 2);

        // Deleting the newest capture leaves the older one as the content's.
        store.delete_image(&"b".into(), &u.into()).unwrap();
        clean(&store, "delete");
        assert_eq!(
            listed(&store, u, None),
            (2, vec![("c".into(), 1), ("a".into(), 1)])
        );
        store.delete_image(&"a".into(), &u.into()).unwrap();
        clean(&store, "delete the last");
        assert_eq!(known(&store, u, &[X], &["https://img/1"]), Known::default());
        assert_eq!(known(&store, "v", &[X], &[]).sha256, [0]);
        assert_eq!(listed(&store, u, None), (1, vec![("c".into(), 1)]));
    }

    #[test]
    fn a_capture_without_bytes_needs_them_stored_and_writes_nothing_otherwise() {
        let (_dir, store) = temp_store();
        add_user(&store, "u");
        let (stored, task) = new_image("a", "u", 1, X);
        store.save_image(&stored, X, &task).unwrap();
        let (again, again_task) = new_image("b", "u", 2, X);
        let (missing, missing_task) = new_image("c", "u", 3, b"not stored");
        let outcomes = store
            .save_images(&[
                NewImage::plain(&again, b"", &again_task),
                NewImage::plain(&missing, b"", &missing_task),
            ])
            .unwrap();
        assert!(outcomes[0].is_ok());
        assert!(matches!(outcomes[1], Err(StoreError::Missing)));
        assert!(store.image(&"c".into()).unwrap().is_none());
        assert!(store.blob(&BlobHash::of(b"not stored")).unwrap().is_none());
        let blob = store.blob(&BlobHash::of(X)).unwrap().unwrap();
        assert_eq!(blob.record.refs, 2);
        assert_eq!(blob.record.sha256, Some(Sha256::of(X).0));
        assert_eq!(listed(&store, "u", None), (1, vec![("b".into(), 2)]));
        clean(&store, "captures");
    }

    #[test]
    fn a_key_is_stored_with_its_image_once_per_user_and_purged_when_old() {
        let (_dir, store) = temp_store();
        add_user(&store, "u");
        add_user(&store, "v");
        let key = |image: &ImageRecord, at| NewKey {
            key: "k-1".into(),
            record: IdempotencyRecord {
                fingerprint: [1; 32],
                created_at: at,
                image_id: image.id.clone(),
                status: 200,
                answer: format!("{{\"imageId\":\"{}\"}}", image.id),
            },
        };
        let upload = |id: &str, owner: &str, at: i64| {
            let (image, task) = new_image(id, owner, at, id.as_bytes());
            let key = key(&image, at);
            let outcome = store
                .save_images(&[NewImage {
                    key: Some(&key),
                    ..NewImage::plain(&image, id.as_bytes(), &task)
                }])
                .unwrap()
                .remove(0);
            (outcome, key)
        };
        let (first, stored) = upload("a", "u", 10);
        first.unwrap();
        let (again, _) = upload("b", "u", 20);
        assert!(matches!(again, Err(StoreError::KeyUsed)));
        assert!(store.image(&"b".into()).unwrap().is_none());
        upload("c", "v", 30).0.unwrap();
        assert_eq!(
            store.idempotency_key(&"u".into(), "k-1").unwrap(),
            Some(stored.record)
        );
        assert_eq!(store.purge_keys(30).unwrap(), 1);
        assert!(store.idempotency_key(&"u".into(), "k-1").unwrap().is_none());
        assert!(store.idempotency_key(&"v".into(), "k-1").unwrap().is_some());
        // The bytes of the record stay readable as stored.
        let raw = store.idempotency_key(&"v".into(), "k-1").unwrap().unwrap();
        assert_eq!(IdempotencyRecord::decode(&raw.encode()).unwrap(), raw);
        assert_eq!(store.delete_user(&"v".into()).unwrap(), Some(1));
        assert!(store.idempotency_key(&"v".into(), "k-1").unwrap().is_none());
        clean(&store, "keys");
    }
}
