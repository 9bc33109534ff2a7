//! Brings a data file of any earlier schema version up to the current one when it is opened, so a
//! file written by any release opens in every later release. A file from a newer release is refused,
//! untouched, rather than misread.
//!
//! To change the format: bump `SCHEMA_VERSION` and append a step to `STEPS` that rewrites what
//! changed, inside the same transaction as the version bump.

use std::collections::HashMap;

use redb::{Database, ReadableTable, WriteTransaction};

use super::records::{BlobRecord, ImageRecord, Record};
use super::tables::*;
use super::{Result, StoreError};

/// The schema this build writes.
pub const SCHEMA_VERSION: u64 = 14;

pub(super) const VERSION_KEY: &str = "schema_version";

/// `STEPS[n]` migrates a file from version `n + 1` to `n + 2`.
type Step = fn(&WriteTransaction) -> Result<()>;
const STEPS: &[Step] = &[
    v1_to_v2, v2_to_v3, v3_to_v4, v4_to_v5, v5_to_v6, v6_to_v7, v7_to_v8, v8_to_v9, v9_to_v10,
    v10_to_v11, v11_to_v12, v12_to_v13, v13_to_v14,
];

/// Version 2 adds thumbnails: every image stored so far goes on the backlog to get one.
fn v1_to_v2(tx: &WriteTransaction) -> Result<()> {
    tx.open_table(THUMBS)?;
    let blobs: Vec<[u8; 32]> = {
        let images = tx.open_table(IMAGES)?;
        let mut out = Vec::new();
        for entry in images.iter()? {
            let (_, raw) = entry?;
            out.push(ImageRecord::decode(raw.value())?.blob.0);
        }
        out
    };
    let mut backlog = tx.open_table(THUMB_BACKLOG)?;
    for blob in &blobs {
        backlog.insert(blob, ())?;
    }
    Ok(())
}

/// Version 3 adds cloud sync: hub sessions and sync progress.
fn v2_to_v3(tx: &WriteTransaction) -> Result<()> {
    tx.open_table(HUB_SESSIONS)?;
    tx.open_table(SYNC_TASKS)?;
    Ok(())
}

/// Version 4 records each blob's chunk size (new blobs use smaller chunks that fit redb's pages).
/// Existing blob records are read as 32 KiB chunks and stay as they are; this step only marks the
/// file so that older builds, which cannot read the new records, refuse it.
fn v3_to_v4(_tx: &WriteTransaction) -> Result<()> {
    Ok(())
}

/// Version 5 adds each user's images by category (`USER_CATEGORY_IMAGES`) and their counts
/// (`USER_CATEGORY_COUNTS`), built here from the image records. Reads each record once; holds one
/// counter per user and category.
fn v4_to_v5(tx: &WriteTransaction) -> Result<()> {
    let mut counts: HashMap<(String, u8), u64> = HashMap::new();
    {
        let images = tx.open_table(IMAGES)?;
        let mut index = tx.open_table(USER_CATEGORY_IMAGES)?;
        for entry in images.iter()? {
            let (_, raw) = entry?;
            let image = ImageRecord::decode(raw.value())?;
            let key = super::images::category_key(&image);
            index.insert(key, ())?;
            *counts.entry((key.0.to_string(), key.1)).or_default() += 1;
        }
    }
    let mut table = tx.open_table(USER_CATEGORY_COUNTS)?;
    for ((user, code), n) in &counts {
        table.insert((user.as_str(), *code), *n)?;
    }
    Ok(())
}

/// Version 6 adds, on hubs, the last sync each account received.
fn v5_to_v6(tx: &WriteTransaction) -> Result<()> {
    tx.open_table(HUB_SYNCS)?;
    Ok(())
}

/// Version 7 shows images as oriented and colour-managed: every image stored so far is listed to
/// be looked at again in the background (`thumbnails::Jobs::revisit`). Keys only, no record read.
fn v6_to_v7(tx: &WriteTransaction) -> Result<()> {
    let ids: Vec<String> = {
        let images = tx.open_table(IMAGES)?;
        let mut out = Vec::new();
        for entry in images.iter()? {
            out.push(entry?.0.value().to_string());
        }
        out
    };
    let mut revisit = tx.open_table(REVISIT)?;
    for id in &ids {
        revisit.insert(id.as_str(), ())?;
    }
    Ok(())
}

pub(super) fn run(db: &Database) -> Result<()> {
    let tx = db.begin_write()?;
    let found = tx.open_table(META)?.get(VERSION_KEY)?.map(|v| v.value());
    match found {
        Some(v) if v == SCHEMA_VERSION => return Ok(()),
        Some(v) if v > SCHEMA_VERSION => {
            return Err(StoreError::TooNew {
                found: v,
                supported: SCHEMA_VERSION,
            });
        }
        Some(v) => {
            for (i, step) in STEPS.iter().enumerate().skip((v - 1) as usize) {
                tracing::info!(from = i + 1, to = i + 2, "migrating the data file");
                step(&tx)?;
            }
        }
        None => create_tables(&tx)?,
    }
    tx.open_table(META)?.insert(VERSION_KEY, SCHEMA_VERSION)?;
    tx.commit()?;
    Ok(())
}

/// Creates every table so read transactions never meet a missing one.
fn create_tables(tx: &WriteTransaction) -> Result<()> {
    for_every_table!(table => tx.open_table(table)?);
    tx.open_table(META)?
        .insert(super::images::TOTAL_IMAGES_KEY, 0)?;
    Ok(())
}

/// Version 8 adds tags: image records of version 2 carry them, indexed by `USER_TAG_IMAGES` and
/// counted in `USER_TAGS`. Images stored so far have none, so the tables start empty; the step marks
/// the file so that older builds, which cannot read version 2 records, refuse it.
fn v7_to_v8(tx: &WriteTransaction) -> Result<()> {
    tx.open_table(USER_TAG_IMAGES)?;
    tx.open_table(USER_TAGS)?;
    Ok(())
}

/// Version 9 adds the trash, edits and metadata sync: image records of version 3 (older ones are
/// read as live, unedited and seen by the hub), the trash index and the deletions the hub has not
/// seen. Nothing existing is rewritten; the bump keeps older builds, which cannot read version 3
/// records, from opening the file.
fn v8_to_v9(tx: &WriteTransaction) -> Result<()> {
    tx.open_table(USER_TRASH)?;
    tx.open_table(HUB_DELETIONS)?;
    Ok(())
}

/// Version 10 adds search: every live image's search row (`USER_SEARCH`) and each user's tag
/// counts per category (`USER_CATEGORY_TAGS`), built here from the image records. Reads each
/// record once; holds one counter per user, category and tag.
fn v9_to_v10(tx: &WriteTransaction) -> Result<()> {
    let mut counts: HashMap<(String, u8, String), u64> = HashMap::new();
    {
        let images = tx.open_table(IMAGES)?;
        let mut rows = tx.open_table(USER_SEARCH)?;
        for entry in images.iter()? {
            let (_, raw) = entry?;
            let image = ImageRecord::decode(raw.value())?;
            if image.is_trashed() {
                continue;
            }
            let row = super::search::record_of(&image);
            let code = super::records::codes::category::to_code(image.category);
            for tag in &row.tags {
                *counts
                    .entry((image.user_id.to_string(), code, tag.clone()))
                    .or_default() += 1;
            }
            rows.insert(
                (image.user_id.as_str(), image.saved_at, image.id.as_str()),
                row.encode().as_slice(),
            )?;
        }
    }
    let mut table = tx.open_table(USER_CATEGORY_TAGS)?;
    for ((user, code, tag), n) in &counts {
        table.insert((user.as_str(), *code, tag.as_str()), *n)?;
    }
    Ok(())
}

/// Version 11 adds API keys (`API_KEYS`, `USER_API_KEYS`); a file of an older version has none.
fn v10_to_v11(tx: &WriteTransaction) -> Result<()> {
    tx.open_table(API_KEYS)?;
    tx.open_table(USER_API_KEYS)?;
    Ok(())
}

/// Version 12 adds what the capture workflow needs: each user's contents and original URLs
/// (`store::content`), built here from the live image records as `index_live` would have kept
/// them, and a SHA-256 per blob an image was captured as. Hashing every blob's bytes here would
/// hold start-up for minutes on a large vault on a small machine (SHA-256 runs at about 150 MB/s
/// on a Raspberry Pi 4), so those blobs go on a backlog that the server works through in the
/// background (`Store::hash_backlog`); keys only, no byte read. Blob records of version 2 read
/// as version 3 without a hash, and are rewritten only when they change.
fn v11_to_v12(tx: &WriteTransaction) -> Result<()> {
    for_every_table!(table => tx.open_table(table)?);
    let mut content = super::content::Tables::open(tx)?;
    // Built from scratch, whatever the tables hold (a file brought back to version 11 by hand).
    content.clear()?;
    let images = tx.open_table(IMAGES)?;
    let blobs = tx.open_table(BLOBS)?;
    let mut backlog = tx.open_table(SHA256_BACKLOG)?;
    // One record at a time: what the step holds is the transaction's dirty pages.
    for entry in images.iter()? {
        let image = ImageRecord::decode(entry?.1.value())?;
        let blob = &image.captured_blob().0;
        let hashed = match blobs.get(blob)? {
            Some(raw) => BlobRecord::decode(raw.value())?.sha256.is_some(),
            None => false,
        };
        if !hashed {
            backlog.insert(blob, ())?;
        }
        if !image.is_trashed() {
            content.index(&image, 1)?;
        }
    }
    Ok(())
}

/// Version 13 adds perceptual hashes (`PHASHES`), one per source blob. The table starts empty:
/// the server hashes the blobs stored so far in the background (`thumbnails::Jobs::hash_backlog`),
/// which needs their pixels, too slow for a migration.
fn v12_to_v13(tx: &WriteTransaction) -> Result<()> {
    tx.open_table(PHASHES)?;
    Ok(())
}

/// Version 14 adds the stats page's figures (`store::stats`), built here in one pass over the
/// image records and the blob records.
fn v13_to_v14(tx: &WriteTransaction) -> Result<()> {
    super::stats::rebuild(tx)
}

#[cfg(test)]
mod tests {
    use super::super::Store;
    use super::super::test_support::{add_user, new_image, save_records};
    use super::*;
    use crate::domain::Category;

    #[test]
    fn a_version_4_file_opens_with_its_category_index_and_counts_complete() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.redb");
        {
            let store = Store::open(&path, 1 << 20).unwrap();
            add_user(&store, "u");
            add_user(&store, "v");
            for (id, owner, at, category) in [
                ("a", "u", 1, Category::Clothes),
                ("b", "u", 2, Category::Char),
                ("c", "u", 3, Category::Clothes),
                ("d", "v", 4, Category::Char),
            ] {
                let (image, task) = new_image(id, owner, at, id.as_bytes());
                let image = ImageRecord { category, ..image };
                store.save_image(&image, id.as_bytes(), &task).unwrap();
            }
        }
        // What version 4 wrote: the same tables, without the category index and its counts.
        {
            let db = Database::create(&path).unwrap();
            let tx = db.begin_write().unwrap();
            assert!(tx.delete_table(USER_CATEGORY_IMAGES).unwrap());
            assert!(tx.delete_table(USER_CATEGORY_COUNTS).unwrap());
            tx.open_table(META).unwrap().insert(VERSION_KEY, 4).unwrap();
            tx.commit().unwrap();
        }

        let store = Store::open(&path, 1 << 20).unwrap();
        let report = store.check().unwrap();
        assert_eq!(report.schema_version, SCHEMA_VERSION);
        assert!(report.is_clean(), "{:?}", report.problems);
        let list = |user: &str, category| {
            let page = store
                .list_images(&user.into(), Some(category), 1, 10)
                .unwrap();
            let ids: Vec<String> = page.images.iter().map(|i| i.id.to_string()).collect();
            (page.total, ids)
        };
        assert_eq!(
            list("u", Category::Clothes),
            (2, vec!["c".into(), "a".into()])
        );
        assert_eq!(list("u", Category::Char), (1, vec!["b".into()]));
        assert_eq!(list("v", Category::Char), (1, vec!["d".into()]));
        assert_eq!(list("v", Category::Clothes), (0, vec![]));
    }

    #[test]
    fn version_6_lists_every_image_for_another_look() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.redb");
        {
            let store = Store::open(&path, 1 << 20).unwrap();
            add_user(&store, "u");
            save_records(
                &store,
                &[new_image("a", "u", 1, b"a"), new_image("b", "u", 2, b"b")],
            );
        }
        // What version 6 wrote: no list of images to revisit.
        {
            let db = Database::create(&path).unwrap();
            let tx = db.begin_write().unwrap();
            assert!(tx.delete_table(REVISIT).unwrap());
            tx.open_table(META).unwrap().insert(VERSION_KEY, 6).unwrap();
            tx.commit().unwrap();
        }
        let store = Store::open(&path, 1 << 20).unwrap();
        let mut listed: Vec<String> = store
            .to_revisit(10)
            .unwrap()
            .iter()
            .map(|i| i.id.to_string())
            .collect();
        listed.sort();
        assert_eq!(listed, ["a", "b"]);
        assert!(store.check().unwrap().is_clean());
    }

    #[test]
    fn a_version_9_file_opens_with_its_search_rows_and_category_tag_counts_complete() {
        use crate::store::{CategoryFilter, SearchQuery};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.redb");
        {
            let store = Store::open(&path, 1 << 20).unwrap();
            add_user(&store, "u");
            for (id, at, category, title, tags) in [
                ("a", 1, Category::Clothes, "夏季碎花连衣裙", &["Summer"][..]),
                ("b", 2, Category::Char, "初音ミク", &["summer", "miku"][..]),
                ("c", 3, Category::Clothes, "连衣裙 trashed", &[][..]),
            ] {
                let (image, task) = new_image(id, "u", at, id.as_bytes());
                let image = ImageRecord {
                    category,
                    page_title: Some(title.into()),
                    tags: tags.iter().map(|t| t.to_string()).collect(),
                    ..image
                };
                store.save_image(&image, id.as_bytes(), &task).unwrap();
            }
            store.trash_image(&"c".into(), &"u".into(), 5).unwrap();
        }
        // What version 9 wrote: the same tables, without the search rows and the counts.
        {
            let db = Database::create(&path).unwrap();
            let tx = db.begin_write().unwrap();
            assert!(tx.delete_table(USER_SEARCH).unwrap());
            assert!(tx.delete_table(USER_CATEGORY_TAGS).unwrap());
            tx.open_table(META).unwrap().insert(VERSION_KEY, 9).unwrap();
            tx.commit().unwrap();
        }

        let store = Store::open(&path, 1 << 20).unwrap();
        let report = store.check().unwrap();
        assert_eq!(report.schema_version, SCHEMA_VERSION);
        assert!(report.is_clean(), "{:?}", report.problems);
        let search = |word: &str, category| {
            let query = SearchQuery {
                words: vec![word.into()],
                category,
                page: 1,
                per_page: 10,
                ..SearchQuery::default()
            };
            let page = store.search(&"u".into(), &query).unwrap();
            let ids: Vec<String> = page.images.iter().map(|i| i.id.to_string()).collect();
            (ids, page.facets.tags.len())
        };
        assert_eq!(search("连衣裙", CategoryFilter::Any), (vec!["a".into()], 1));
        assert_eq!(search("ミク", CategoryFilter::Any), (vec!["b".into()], 2));
        let clothes = SearchQuery {
            category: CategoryFilter::Only(Category::Clothes),
            page: 1,
            per_page: 10,
            ..SearchQuery::default()
        };
        let listed = store.search(&"u".into(), &clothes).unwrap();
        assert_eq!(listed.facets.tags[0].tag, "Summer");
        assert_eq!(listed.facets.tags[0].count, 1);
    }

    #[test]
    fn a_version_10_file_opens_with_its_contents_indexed_and_its_blobs_hashed_in_the_background() {
        use crate::domain::Sha256;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.redb");
        {
            let store = Store::open(&path, 1 << 20).unwrap();
            add_user(&store, "u");
            for (id, at, bytes, url) in [
                ("a", 1, b"same".as_slice(), Some("https://img/a")),
                ("b", 2, b"same".as_slice(), None),
                ("c", 3, b"other".as_slice(), None),
            ] {
                let (image, task) = new_image(id, "u", at, bytes);
                let image = ImageRecord {
                    original_url: url.map(str::to_string),
                    ..image
                };
                store.save_image(&image, bytes, &task).unwrap();
            }
            store.trash_image(&"c".into(), &"u".into(), 5).unwrap();
        }
        // What version 10 wrote: blob records of version 2 (no SHA-256), none of the new tables.
        {
            let db = Database::create(&path).unwrap();
            let tx = db.begin_write().unwrap();
            {
                let mut blobs = tx.open_table(BLOBS).unwrap();
                let mut old = Vec::new();
                for entry in blobs.iter().unwrap() {
                    let (hash, raw) = entry.unwrap();
                    let record = BlobRecord::decode(raw.value()).unwrap();
                    let mut v2 = vec![2u8];
                    v2.extend(
                        postcard::to_stdvec(&(
                            record.size,
                            record.chunks,
                            record.refs,
                            record.chunk_size,
                        ))
                        .unwrap(),
                    );
                    old.push((*hash.value(), v2));
                }
                for (hash, v2) in &old {
                    blobs.insert(hash, v2.as_slice()).unwrap();
                }
            }
            assert!(tx.delete_table(SHA256_BLOBS).unwrap());
            assert!(tx.delete_table(SHA256_BACKLOG).unwrap());
            assert!(tx.delete_table(USER_CAPTURES).unwrap());
            assert!(tx.delete_table(USER_CONTENTS).unwrap());
            assert!(tx.delete_table(USER_DISTINCT).unwrap());
            assert!(tx.delete_table(USER_CONTENT_COUNTS).unwrap());
            assert!(tx.delete_table(USER_URLS).unwrap());
            assert!(tx.delete_table(IDEMPOTENCY).unwrap());
            assert!(tx.delete_table(IDEMPOTENCY_TIMES).unwrap());
            assert!(tx.delete_table(API_KEYS).unwrap());
            assert!(tx.delete_table(USER_API_KEYS).unwrap());
            assert!(tx.delete_table(PHASHES).unwrap());
            tx.open_table(META)
                .unwrap()
                .insert(VERSION_KEY, 10)
                .unwrap();
            tx.commit().unwrap();
        }

        let store = Store::open(&path, 1 << 20).unwrap();
        let report = store.check().unwrap();
        assert_eq!(report.schema_version, SCHEMA_VERSION);
        assert!(report.is_clean(), "{:?}", report.problems);
        let user = "u".into();
        let page = store.list_contents(&user, None, 1, 10).unwrap();
        let shown: Vec<(String, u64)> = page
            .images
            .iter()
            .map(|(i, n)| (i.id.to_string(), *n))
            .collect();
        assert_eq!((page.total, shown), (1, vec![("b".into(), 2)]));
        let hashes = [Sha256::of(b"same"), Sha256::of(b"other")];
        let urls = ["https://img/a".to_string()];
        // The URL is known at once; the hashes once the background pass has been.
        let known = store.lookup(&user, &hashes, &urls).unwrap();
        assert_eq!((known.sha256.len(), known.urls), (0, vec![0]));
        assert_eq!(store.sha256_backlog().unwrap(), 2);
        assert_eq!(store.hash_backlog().unwrap(), 2);
        assert_eq!(store.hash_backlog().unwrap(), 0);
        assert_eq!(store.sha256_backlog().unwrap(), 0);
        // The trashed image's bytes are hashed too, but only live images are known.
        assert_eq!(store.lookup(&user, &hashes, &[]).unwrap().sha256, [0]);
        assert!(store.check().unwrap().is_clean());
        store.delete_image(&"c".into(), &user).unwrap();
        assert!(store.check().unwrap().is_clean());
    }

    #[test]
    fn a_version_12_file_opens_with_an_empty_hash_table_and_its_thumbnails_on_the_backlog() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.redb");
        let blob = {
            let store = Store::open(&path, 1 << 20).unwrap();
            add_user(&store, "u");
            let (image, task) = new_image("a", "u", 1, b"a");
            store.save_image(&image, b"a", &task).unwrap();
            let thumb = super::super::test_support::jpeg_thumb(b"t");
            store
                .put_thumbnail(&image.blob, &thumb, b"t", None)
                .unwrap();
            image.blob
        };
        // What version 12 wrote: no hash table.
        {
            let db = Database::create(&path).unwrap();
            let tx = db.begin_write().unwrap();
            assert!(tx.delete_table(PHASHES).unwrap());
            tx.open_table(META)
                .unwrap()
                .insert(VERSION_KEY, 12)
                .unwrap();
            tx.commit().unwrap();
        }
        let store = Store::open(&path, 1 << 20).unwrap();
        let report = store.check().unwrap();
        assert_eq!(report.schema_version, SCHEMA_VERSION);
        assert!(report.is_clean(), "{:?}", report.problems);
        assert_eq!((report.phashes, report.unhashed), (0, 1));
        assert_eq!(store.phash_backlog(None, 10).unwrap().0, vec![blob]);
    }

    #[test]
    fn a_version_13_file_opens_with_its_statistics_built_from_the_records() {
        use crate::store::stats::StatsQuery;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.redb");
        {
            let store = Store::open(&path, 1 << 20).unwrap();
            add_user(&store, "u");
            for (id, day, bytes, page) in [
                ("a", 2, b"same".as_slice(), Some("https://www.shop.cn/1")),
                ("b", 2, b"same".as_slice(), Some("https://shop.cn/2")),
                ("c", 4, b"other bytes".as_slice(), None),
            ] {
                let (image, task) = new_image(id, "u", day * crate::clock::DAY, bytes);
                let image = ImageRecord {
                    page_url: page.map(str::to_string),
                    ..image
                };
                store.save_image(&image, bytes, &task).unwrap();
            }
            store.trash_image(&"c".into(), &"u".into(), 5).unwrap();
        }
        // What version 13 wrote: no statistics tables.
        {
            let db = Database::create(&path).unwrap();
            let tx = db.begin_write().unwrap();
            assert!(tx.delete_table(STATS_DAYS).unwrap());
            assert!(tx.delete_table(STATS_CATEGORIES).unwrap());
            assert!(tx.delete_table(STATS_HOSTS).unwrap());
            assert!(tx.delete_table(STATS_TOTALS).unwrap());
            tx.open_table(META)
                .unwrap()
                .insert(VERSION_KEY, 13)
                .unwrap();
            tx.commit().unwrap();
        }
        let store = Store::open(&path, 1 << 20).unwrap();
        let report = store.check().unwrap();
        assert_eq!(report.schema_version, SCHEMA_VERSION);
        assert!(report.is_clean(), "{:?}", report.problems);
        let stats = |user: Option<&str>| {
            store
                .stats(&StatsQuery {
                    user: user.map(Into::into),
                    today: 4,
                    days: 5,
                    months: 1,
                    top_hosts: 10,
                })
                .unwrap()
        };
        let mine = stats(Some("u"));
        assert_eq!((mine.days[2].1.images, mine.days[2].1.bytes), (2, 8));
        assert_eq!(mine.days[4].1.images, 0);
        assert_eq!((mine.totals.trash.images, mine.totals.dedup_bytes), (1, 4));
        assert_eq!(mine.hosts[0].0, "shop.cn");
        assert_eq!(mine.hosts[0].1.images, 2);
        let server = stats(None);
        assert_eq!(server.totals.stored_bytes, 4 + 11);
        assert_eq!(server.totals.dedup_bytes, 4);
    }

    #[test]
    fn a_file_from_a_newer_build_is_refused_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.redb");
        {
            let db = Database::create(&path).unwrap();
            run(&db).unwrap();
            let tx = db.begin_write().unwrap();
            tx.open_table(META)
                .unwrap()
                .insert(VERSION_KEY, SCHEMA_VERSION + 1)
                .unwrap();
            tx.commit().unwrap();
        }
        let db = Database::create(&path).unwrap();
        assert!(matches!(
            run(&db),
            Err(StoreError::TooNew { found, .. }) if found == SCHEMA_VERSION + 1
        ));
    }

    #[test]
    fn opening_twice_keeps_the_version() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::create(dir.path().join("t.redb")).unwrap();
        run(&db).unwrap();
        run(&db).unwrap();
        let tx = db.begin_write().unwrap();
        let v = tx
            .open_table(META)
            .unwrap()
            .get(VERSION_KEY)
            .unwrap()
            .unwrap()
            .value();
        assert_eq!(v, SCHEMA_VERSION);
    }
}
