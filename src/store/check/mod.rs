//! `imgvault check`: proves that the data file agrees with itself, and repairs what can be
//! recomputed from the records.
//!
//! Every write keeps records, indexes, counters and reference counts in step inside one
//! transaction, so a disagreement means a bug, a damaged disk or a hand-edited file. The check reads
//! everything in one read transaction: every blob's chunks are hashed against its key, every
//! reference count and counter is recounted from the records, and every index entry is matched with
//! its record both ways. Repair only rewrites what is derived from records (counters, reference
//! counts, index entries) and removes what nothing refers to (orphan blobs, chunks, sessions,
//! thumbnails). It never deletes an image record: an image whose bytes are gone is reported for
//! restoring from a backup.
//!
//! Each aggregate's checks and its fixes (`Fix`, applied through `Repair`) are in its own file here
//! (`users`, `images`, `content`, `blobs`, `thumbs`, `tasks`, `sessions`, `stats`); this file runs them in
//! order and holds the report.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

use redb::{ReadTransaction, ReadableTable, ReadableTableMetadata, WriteTransaction};

use crate::domain::BlobHash;
use crate::store::images::TOTAL_IMAGES_KEY;
use crate::store::migrate::{SCHEMA_VERSION, VERSION_KEY};
use crate::store::records::{
    BlobRecord, HubSessionRecord, HubSyncRecord, ImageRecord, PhashRecord, Record, SessionRecord,
    StatsTotals, SyncProgressRecord, TaskRecord, TaskStatus, ThumbRecord, UserRecord,
};
use crate::store::tables::*;
use crate::store::{Result, Store};

mod blobs;
mod content;
mod images;
mod sessions;
mod stats;
mod tasks;
mod thumbs;
mod users;

use blobs::check_blobs;
use content::check_content_index;
use images::{
    Images, check_category_index, check_image_indexes, check_search_index, check_tag_index,
    load_images,
};
use sessions::check_sessions;
use stats::check_stats;
use tasks::check_tasks;
use thumbs::check_thumbnails;
use users::{check_user_counts, check_users};

/// What `check` found: the size of the file's contents and every disagreement.
#[derive(Debug, Default)]
pub struct CheckReport {
    pub schema_version: u64,
    pub users: u64,
    pub images: u64,
    pub blobs: u64,
    /// Bytes of all blobs (images and thumbnails), each counted once however many images share it.
    pub blob_bytes: u64,
    pub thumbnails: u64,
    /// Blobs whose SHA-256 the server is still to compute (stored before schema 12).
    pub sha256_backlog: u64,
    /// Perceptual hashes (`PHASHES`).
    pub phashes: u64,
    /// Sources with a thumbnail but no current perceptual hash: work left for the server's
    /// background pass, not a problem.
    pub unhashed: u64,
    pub sessions: u64,
    pub tasks: u64,
    pub problems: Vec<Problem>,
}

impl CheckReport {
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }

    pub fn repairable(&self) -> usize {
        self.problems.iter().filter(|p| p.fix.is_some()).count()
    }
}

/// One disagreement in the data file.
#[derive(Debug, Clone)]
pub struct Problem {
    /// What is wrong, in one line.
    pub what: String,
    /// How `repair` fixes it; `None` when nothing in the file can (only a backup can).
    fix: Option<Arc<dyn Repair>>,
}

impl Problem {
    pub fn is_repairable(&self) -> bool {
        self.fix.is_some()
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.fix {
            Some(_) => write!(f, "{} (repairable)", self.what),
            None => write!(
                f,
                "{} (not repairable here: restore from a backup)",
                self.what
            ),
        }
    }
}

/// What `repair` did, and the check of the file afterwards.
#[derive(Debug)]
pub struct RepairReport {
    pub fixed: Vec<String>,
    pub after: CheckReport,
}

/// One change that makes derived facts agree with the records again. Each aggregate's file defines
/// its own fixes beside the checks that find them, so an index added to an aggregate changes only
/// that file.
trait Repair: fmt::Debug + Send + Sync {
    fn apply(&self, tx: &WriteTransaction) -> Result<()>;
}

impl Store {
    /// Checks the whole file in one read transaction. Reads every byte of every blob.
    pub fn check(&self) -> Result<CheckReport> {
        check_in(&self.read()?)
    }

    /// Fixes every repairable problem in one write transaction and checks again. Safe while the
    /// store is in use: the write transaction is opened first, so nothing changes between the
    /// check it is based on and the fixes.
    pub fn repair(&self) -> Result<RepairReport> {
        let tx = self.write()?;
        let before = check_in(&self.read()?)?;
        let mut fixed = Vec::new();
        for problem in &before.problems {
            if let Some(fix) = &problem.fix {
                fix.apply(&tx)?;
                fixed.push(problem.what.clone());
            }
        }
        self.finish(tx)?;
        Ok(RepairReport {
            fixed,
            after: self.check()?,
        })
    }
}

fn short(hash: &[u8; 32]) -> String {
    BlobHash(*hash).to_hex()[..16].to_string()
}

/// Collects problems; each call reads like the line it prints.
#[derive(Default)]
struct Findings(Vec<Problem>);

impl Findings {
    /// A problem `fix` repairs, when there is one.
    fn found(&mut self, what: String, fix: Option<impl Repair + 'static>) {
        let fix = fix.map(|f| Arc::new(f) as Arc<dyn Repair>);
        self.0.push(Problem { what, fix });
    }

    /// A problem nothing in the file can repair.
    fn unrepairable(&mut self, what: String) {
        self.0.push(Problem { what, fix: None });
    }
}

fn check_in(tx: &ReadTransaction) -> Result<CheckReport> {
    let mut report = CheckReport::default();
    let mut out = Findings::default();

    let meta = tx.open_table(META)?;
    report.schema_version = meta.get(VERSION_KEY)?.map_or(0, |v| v.value());
    if report.schema_version != SCHEMA_VERSION {
        out.unrepairable(format!(
            "schema version is {}, expected {SCHEMA_VERSION}",
            report.schema_version
        ));
    }
    let stored_total = meta.get(TOTAL_IMAGES_KEY)?.map_or(0, |v| v.value());
    drop(meta);

    let users = check_users(tx, &mut out)?;
    report.users = users.len() as u64;
    let images = load_images(tx, &users, &mut out)?;
    report.images = images.count();
    let live = images.live_count();
    if stored_total != live {
        out.found(
            format!("image total is {stored_total}, but the file holds {live} images"),
            Some(images::Fix::SetTotal(live)),
        );
    }
    check_user_counts(tx, &images, &mut out)?;
    check_image_indexes(tx, &images, &mut out)?;
    check_category_index(tx, &images, &mut out)?;
    check_tag_index(tx, &images, &mut out)?;
    check_search_index(tx, &images, &mut out)?;
    check_content_index(tx, &images, &mut out)?;
    check_tasks(tx, &mut report, &mut out)?;
    check_sessions(tx, &users, &mut report, &mut out)?;
    let blob_use = check_blobs(tx, &images, &mut report, &mut out)?;
    // Last: its repair rebuilds from reference counts the earlier repairs may have fixed.
    check_stats(tx, &images, &blob_use, &mut out)?;
    report.problems = out.0;
    Ok(report)
}
#[cfg(test)]
mod tests {
    use super::super::test_support::{add_user as user, jpeg_thumb, new_image, temp_store};
    use super::*;

    fn save(store: &Store, id: &str, owner: &str, bytes: &[u8]) -> ImageRecord {
        let (image, task) = new_image(id, owner, 10, bytes);
        store.save_image(&image, bytes, &task).unwrap();
        image
    }

    /// Two users, three images (two sharing bytes, one of four chunks) and a thumbnail.
    fn populated() -> (tempfile::TempDir, Store, ImageRecord, ImageRecord) {
        let (dir, store) = temp_store();
        user(&store, "u1");
        user(&store, "u2");
        let shared = save(&store, "a", "u1", b"shared bytes");
        save(&store, "b", "u2", b"shared bytes");
        let big = save(&store, "c", "u1", &vec![9u8; 100_000]);
        let thumb = jpeg_thumb(b"thumb");
        store
            .put_thumbnail(&shared.blob, &thumb, b"thumb", Some(42))
            .unwrap();
        (dir, store, shared, big)
    }

    fn lines(report: &CheckReport) -> String {
        report.problems.iter().map(|p| format!("{p}\n")).collect()
    }

    #[test]
    fn a_consistent_file_has_no_problems() {
        let (_dir, store, _, _) = populated();
        let report = store.check().unwrap();
        assert!(report.is_clean(), "{}", lines(&report));
        assert_eq!(
            (report.users, report.images, report.blobs, report.thumbnails),
            (2, 3, 3, 1)
        );
        assert_eq!(report.blob_bytes, 12 + 100_000 + 5);
        assert_eq!((report.tasks, report.sessions), (3, 0));
    }

    #[test]
    fn planted_counter_index_and_orphan_problems_are_found_and_repaired() {
        let (_dir, store, shared, _) = populated();
        let tx = store.write().unwrap();
        {
            tx.open_table(USER_IMAGE_COUNTS)
                .unwrap()
                .insert("u1", 99)
                .unwrap();
            tx.open_table(META)
                .unwrap()
                .insert(TOTAL_IMAGES_KEY, 0)
                .unwrap();
            let mut blobs = tx.open_table(BLOBS).unwrap();
            let mut record =
                BlobRecord::decode(blobs.get(&shared.blob.0).unwrap().unwrap().value()).unwrap();
            record.refs = 5;
            blobs
                .insert(&shared.blob.0, record.encode().as_slice())
                .unwrap();
            tx.open_table(IMAGE_NAMES)
                .unwrap()
                .insert(("u1", "ghost.png"), "i-ghost")
                .unwrap();
            tx.open_table(BLOB_CHUNKS)
                .unwrap()
                .insert((&[7u8; 32], 0), b"stray".as_slice())
                .unwrap();
            tx.open_table(PENDING_TASKS).unwrap().remove("t-a").unwrap();
            let session = SessionRecord {
                user_id: "nobody".into(),
                created_at: 1,
                expires_at: i64::MAX,
                remember_me: false,
            };
            tx.open_table(SESSIONS)
                .unwrap()
                .insert(&[1u8; 32], session.encode().as_slice())
                .unwrap();
            tx.open_table(USERNAMES).unwrap().remove("u2").unwrap();
        }
        tx.commit().unwrap();

        let report = store.check().unwrap();
        let text = lines(&report);
        for expected in [
            "image count of user u1 is 99, but the user has 2 images",
            "image total is 0, but the file holds 3 images",
            "has reference count 5, but 2 images and thumbnails use it",
            "name index entry u1/ghost.png points at image i-ghost",
            "1 chunks belong to blob 0707070707070707, which has no record",
            "task t-a is processing but not in the pending index",
            "a session belongs to user nobody",
            "username \"u2\" of user u2 is missing from its index",
        ] {
            assert!(text.contains(expected), "{expected:?} not in\n{text}");
        }
        assert_eq!(report.problems.len(), 8, "{text}");
        assert_eq!(report.repairable(), 8);

        let repaired = store.repair().unwrap();
        assert_eq!(repaired.fixed.len(), 8);
        assert!(repaired.after.is_clean(), "{}", lines(&repaired.after));
        assert_eq!(store.user_image_count(&"u1".into()).unwrap(), 2);
        assert_eq!(store.total_images().unwrap(), 3);
        assert_eq!(store.blob(&shared.blob).unwrap().unwrap().record.refs, 2);
        assert_eq!(store.pending_tasks().unwrap().len(), 3);
        assert_eq!(store.user_by_username("u2").unwrap().unwrap().user_id, "u2");
    }

    #[test]
    fn planted_tag_index_and_count_problems_are_found_and_repaired() {
        use crate::domain::Tags;
        use crate::store::records::TagRecord;
        let (_dir, store, _, _) = populated();
        let tags = Tags::parse(["Red", "linen"]).unwrap();
        store.set_tags(&"c".into(), &"u1".into(), &tags).unwrap();
        store
            .set_tags(&"a".into(), &"u1".into(), &Tags::parse(["RED"]).unwrap())
            .unwrap();
        assert!(store.check().unwrap().is_clean());
        let tx = store.write().unwrap();
        {
            let mut index = tx.open_table(USER_TAG_IMAGES).unwrap();
            assert!(index.remove(("u1", "linen", 10, "c")).unwrap().is_some());
            index.insert(("u2", "red", 10, "b"), ()).unwrap();
            let mut counts = tx.open_table(USER_TAGS).unwrap();
            assert!(counts.remove(("u1", "red")).unwrap().is_some());
            let ghost = TagRecord {
                count: 4,
                shown: "Ghost".into(),
            };
            counts
                .insert(("u2", "ghost"), ghost.encode().as_slice())
                .unwrap();
        }
        tx.commit().unwrap();

        let report = store.check().unwrap();
        let text = lines(&report);
        for expected in [
            "image c is missing from the index of its tag \"linen\"",
            "tag \"red\" index entry of user u2 points at image b, which does not carry it",
            "count of tag \"red\" of user u1 is missing, but 2 images carry it",
            "count of tag \"ghost\" of user u2 is 4, but no image carries it",
        ] {
            assert!(text.contains(expected), "{expected:?} not in\n{text}");
        }
        assert_eq!(report.problems.len(), 4, "{text}");
        let repaired = store.repair().unwrap();
        assert_eq!(repaired.fixed.len(), 4);
        assert!(repaired.after.is_clean(), "{}", lines(&repaired.after));
        let tagged = |tag: &str| {
            let page = store
                .list_tagged_images(&"u1".into(), &Tags::parse([tag]).unwrap(), None, 1, 10)
                .unwrap();
            let ids: Vec<String> = page.images.iter().map(|i| i.id.to_string()).collect();
            (page.total, ids)
        };
        assert_eq!(tagged("red"), (2, vec!["c".into(), "a".into()]));
        assert_eq!(tagged("linen"), (1, vec!["c".into()]));
        let offered = store.tags(&"u1".into(), "", 10).unwrap();
        // Recounted from the records: the spelling of the first image in time order (a, then c).
        assert_eq!(offered[0].tag, "RED");
        assert!(store.tags(&"u2".into(), "", 10).unwrap().is_empty());
    }

    #[test]
    fn planted_search_row_and_category_tag_count_problems_are_found_and_repaired() {
        use crate::domain::Tags;
        use crate::store::SearchQuery;
        let (_dir, store, _, _) = populated();
        let tags = Tags::parse(["Red"]).unwrap();
        store.set_tags(&"c".into(), &"u1".into(), &tags).unwrap();
        let search = |user: &str, word: &str| {
            let query = SearchQuery {
                words: vec![word.into()],
                page: 1,
                per_page: 10,
                ..SearchQuery::default()
            };
            let page = store.search(&user.into(), &query).unwrap();
            let ids: Vec<String> = page.images.iter().map(|i| i.id.to_string()).collect();
            ids
        };
        assert_eq!(search("u1", "red"), ["c"]);
        let tx = store.write().unwrap();
        {
            let mut rows = tx.open_table(USER_SEARCH).unwrap();
            assert!(rows.remove(("u1", 10, "c")).unwrap().is_some());
            let stale = crate::store::search::record_of(&load(&tx, "a"));
            let mut wrong = stale.clone();
            wrong.text = "planted".into();
            rows.insert(("u1", 10, "a"), wrong.encode().as_slice())
                .unwrap();
            rows.insert(("u2", 5, "i-ghost"), stale.encode().as_slice())
                .unwrap();
            let mut counts = tx.open_table(USER_CATEGORY_TAGS).unwrap();
            assert!(counts.remove(("u1", 0, "red")).unwrap().is_some());
            counts.insert(("u2", 1, "ghost"), 3).unwrap();
        }
        tx.commit().unwrap();

        let report = store.check().unwrap();
        let text = lines(&report);
        for expected in [
            "image c is missing from the search rows",
            "search row of image a does not match its record",
            "search row of user u2 points at image i-ghost, which is not there",
            "clothes count of tag \"red\" of user u1 is 0, but 1 images carry it",
            "char count of tag \"ghost\" of user u2 is 3, but no such image carries it",
        ] {
            assert!(text.contains(expected), "{expected:?} not in\n{text}");
        }
        assert_eq!(report.problems.len(), 5, "{text}");
        let repaired = store.repair().unwrap();
        assert_eq!(repaired.fixed.len(), 5);
        assert!(repaired.after.is_clean(), "{}", lines(&repaired.after));
        // The repair bumped the epoch, so no catalog built before it answers.
        assert_eq!(search("u1", "red"), ["c"]);
        assert!(search("u1", "planted").is_empty());
        assert!(search("u2", "a").is_empty());
    }

    #[test]
    fn planted_content_url_and_sha256_problems_are_found_and_repaired() {
        use crate::domain::Sha256;
        let (_dir, store, shared, big) = populated();
        let real = Sha256::of(b"shared bytes");
        let tx = store.write().unwrap();
        {
            let mut captures = tx.open_table(USER_CAPTURES).unwrap();
            let key = ("u1", ALL_SCOPE, &shared.blob.0, 10, "a");
            assert!(captures.remove(key).unwrap().is_some());
            tx.open_table(USER_CONTENTS)
                .unwrap()
                .insert(("u2", ALL_SCOPE, &shared.blob.0), 7)
                .unwrap();
            tx.open_table(USER_URLS)
                .unwrap()
                .insert(("u1", b"https://ghost".as_slice()), 1)
                .unwrap();
            let mut index = tx.open_table(SHA256_BLOBS).unwrap();
            assert!(
                index
                    .remove(&Sha256::of(&vec![9u8; 100_000]).0)
                    .unwrap()
                    .is_some()
            );
            drop(index);
            // A wrong hash recorded for the shared bytes.
            let mut blobs = tx.open_table(BLOBS).unwrap();
            let mut record =
                BlobRecord::decode(blobs.get(&shared.blob.0).unwrap().unwrap().value()).unwrap();
            assert_eq!(record.sha256, Some(real.0));
            record.sha256 = Some([1; 32]);
            blobs
                .insert(&shared.blob.0, record.encode().as_slice())
                .unwrap();
        }
        tx.commit().unwrap();

        let report = store.check().unwrap();
        let text = lines(&report);
        for expected in [
            "the captures index has 1 entries that disagree with the image records",
            "the content index has 1 entries that disagree",
            "the original URL index has 1 entries that disagree",
            &format!(
                "the SHA-256 of blob {} is missing from its index",
                short(&big.blob.0)
            ),
            &format!(
                "the SHA-256 of blob {} is missing from its index",
                short(&shared.blob.0)
            ),
            &format!("SHA-256 index entry {} points at blob", short(&real.0)),
            "its bytes do not hash to its recorded SHA-256",
        ] {
            assert!(text.contains(expected), "{expected:?} not in\n{text}");
        }
        assert_eq!(report.problems.len(), 7, "{text}");
        let repaired = store.repair().unwrap();
        assert!(repaired.after.is_clean(), "{}", lines(&repaired.after));
        assert_eq!(repaired.after.sha256_backlog, 1);
        let known = |user: &str| {
            let found = store.lookup(&user.into(), &[real], &[]).unwrap();
            found.sha256.len()
        };
        assert_eq!(known("u1"), 0, "not known until hashed again");
        assert_eq!(store.hash_backlog().unwrap(), 1);
        assert_eq!((known("u1"), known("u2")), (1, 1));
        let page = store.list_contents(&"u1".into(), None, 1, 10).unwrap();
        assert_eq!(page.total, 2);
        assert!(store.check().unwrap().is_clean());
    }

    fn load(tx: &WriteTransaction, id: &str) -> ImageRecord {
        let images = tx.open_table(IMAGES).unwrap();
        ImageRecord::decode(images.get(id).unwrap().unwrap().value()).unwrap()
    }

    #[test]
    fn planted_category_index_and_count_problems_are_found_and_repaired() {
        use crate::domain::Category;
        let (_dir, store, _, _) = populated();
        let tx = store.write().unwrap();
        {
            let mut index = tx.open_table(USER_CATEGORY_IMAGES).unwrap();
            assert!(index.remove(("u1", 0, 10, "c")).unwrap().is_some());
            index.insert(("u2", 1, 5, "i-ghost"), ()).unwrap();
            tx.open_table(USER_CATEGORY_COUNTS)
                .unwrap()
                .insert(("u2", 0), 7)
                .unwrap();
        }
        tx.commit().unwrap();

        let report = store.check().unwrap();
        let text = lines(&report);
        for expected in [
            "image c is missing from its user's clothes index",
            "char index entry of user u2 points at image i-ghost, which is not there",
            "clothes count of user u2 is 7, but the user has 1 such images",
        ] {
            assert!(text.contains(expected), "{expected:?} not in\n{text}");
        }
        assert_eq!(report.problems.len(), 3, "{text}");
        assert_eq!(report.repairable(), 3);

        let repaired = store.repair().unwrap();
        assert_eq!(repaired.fixed.len(), 3);
        assert!(repaired.after.is_clean(), "{}", lines(&repaired.after));
        let list = |user: &str, category| {
            let page = store
                .list_images(&user.into(), Some(category), 1, 10)
                .unwrap();
            let ids: Vec<String> = page.images.iter().map(|i| i.id.to_string()).collect();
            (page.total, ids)
        };
        assert_eq!(
            list("u1", Category::Clothes),
            (2, vec!["c".into(), "a".into()])
        );
        assert_eq!(list("u2", Category::Clothes), (1, vec!["b".into()]));
        assert_eq!(list("u2", Category::Char), (0, vec![]));
    }

    #[test]
    fn lost_or_damaged_bytes_are_reported_and_their_images_kept() {
        let (_dir, store, shared, big) = populated();
        let tx = store.write().unwrap();
        {
            tx.open_table(BLOBS).unwrap().remove(&big.blob.0).unwrap();
            let mut chunks = tx.open_table(BLOB_CHUNKS).unwrap();
            for i in 0..4 {
                chunks.remove((&big.blob.0, i)).unwrap();
            }
            chunks
                .insert((&shared.blob.0, 0), b"SHARED bytes".as_slice())
                .unwrap();
        }
        tx.commit().unwrap();

        let report = store.check().unwrap();
        let text = lines(&report);
        assert!(
            text.contains("image c (u1/c.png): its bytes (blob")
                && text.contains("are missing (not repairable here: restore from a backup)"),
            "{text}"
        );
        assert!(text.contains("its bytes do not hash to its key"), "{text}");
        // The SHA-256 index still names the lost blob: the one thing here the file can repair.
        assert!(text.contains("SHA-256 index entry"), "{text}");
        // So do the server's stored bytes.
        assert!(
            text.contains("the statistics disagree with the records: the totals of the server"),
            "{text}"
        );
        assert_eq!(report.repairable(), 2, "{text}");
        let repaired = store.repair().unwrap();
        assert_eq!(repaired.fixed.len(), 2);
        assert_eq!(repaired.after.problems.len(), 2);
        assert!(store.image(&"c".into()).unwrap().is_some());
    }

    #[test]
    fn a_blob_nothing_uses_is_removed_with_its_chunks_and_thumbnail() {
        let (_dir, store, shared, _) = populated();
        let tx = store.write().unwrap();
        {
            let mut images = tx.open_table(IMAGES).unwrap();
            images.remove("a").unwrap();
            images.remove("b").unwrap();
            drop(images);
            tx.open_table(IMAGE_NAMES)
                .unwrap()
                .remove(("u1", "a.png"))
                .unwrap();
            tx.open_table(IMAGE_NAMES)
                .unwrap()
                .remove(("u2", "b.png"))
                .unwrap();
            let mut times = tx.open_table(USER_IMAGES).unwrap();
            times.remove(("u1", 10, "a")).unwrap();
            times.remove(("u2", 10, "b")).unwrap();
        }
        tx.commit().unwrap();
        let report = store.check().unwrap();
        let text = lines(&report);
        assert!(text.contains("is used by no image or thumbnail"), "{text}");
        assert!(text.contains("thumbnail of blob"), "{text}");
        let repaired = store.repair().unwrap();
        assert!(repaired.after.is_clean(), "{}", lines(&repaired.after));
        assert!(store.blob(&shared.blob).unwrap().is_none());
        assert!(store.blob(&BlobHash::of(b"thumb")).unwrap().is_none());
        assert!(store.thumbnail(&shared.blob).unwrap().is_none());
        assert!(store.phash(&shared.blob).unwrap().is_none());
        assert_eq!(store.total_images().unwrap(), 1);
    }

    #[test]
    fn damaged_or_orphan_perceptual_hashes_are_found_and_removed() {
        let (_dir, store, shared, _) = populated();
        assert_eq!(store.check().unwrap().phashes, 1);
        let orphan = [3u8; 32];
        let tx = store.write().unwrap();
        {
            let mut hashes = tx.open_table(PHASHES).unwrap();
            hashes.insert(&shared.blob.0, [9u8, 1].as_slice()).unwrap();
            hashes
                .insert(&orphan, PhashRecord::new(1, 5).encode().as_slice())
                .unwrap();
        }
        tx.commit().unwrap();
        let report = store.check().unwrap();
        let text = lines(&report);
        assert!(text.contains("perceptual hash of blob"), "{text}");
        assert!(text.contains("which no image uses"), "{text}");
        assert_eq!(report.repairable(), 2, "{text}");
        let repaired = store.repair().unwrap();
        assert!(repaired.after.is_clean(), "{}", lines(&repaired.after));
        assert_eq!(repaired.after.phashes, 0);
        assert_eq!(repaired.after.unhashed, 1, "left for the background pass");
    }

    #[test]
    fn sync_tasks_stay_off_the_pending_index_and_orphan_hub_sessions_go() {
        let (_dir, store, _, _) = populated();
        let task = TaskRecord {
            task_id: "t-sync".into(),
            user_id: "u1".into(),
            image_id: "".into(),
            status: TaskStatus::Processing,
            error: None,
            created_at: 1,
            updated_at: 1,
        };
        store
            .create_sync_task(&task, &SyncProgressRecord::default())
            .unwrap();
        assert!(store.check().unwrap().is_clean());
        let tx = store.write().unwrap();
        {
            let hub = HubSessionRecord {
                hub_user_id: "h".into(),
                nonce: [0; 12],
                sealed: vec![1, 2, 3],
                expires_at: i64::MAX,
            };
            tx.open_table(HUB_SESSIONS)
                .unwrap()
                .insert(&[9u8; 32], hub.encode().as_slice())
                .unwrap();
            tx.open_table(SYNC_TASKS)
                .unwrap()
                .insert("t-gone", SyncProgressRecord::default().encode().as_slice())
                .unwrap();
        }
        tx.commit().unwrap();
        let report = store.check().unwrap();
        let text = lines(&report);
        assert_eq!(report.problems.len(), 2, "{text}");
        assert!(
            text.contains("a hub session belongs to no live local session"),
            "{text}"
        );
        assert!(
            text.contains("sync progress of task t-gone, which does not exist"),
            "{text}"
        );
        assert!(store.repair().unwrap().after.is_clean());
        assert!(store.sync_progress(&"t-sync".into()).unwrap().is_some());
    }
}
