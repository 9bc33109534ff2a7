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

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

use redb::{ReadTransaction, ReadableTable, ReadableTableMetadata, WriteTransaction};

use super::images::TOTAL_IMAGES_KEY;
use super::migrate::{SCHEMA_VERSION, VERSION_KEY};
use super::records::{
    BlobRecord, HubSessionRecord, ImageRecord, Record, SessionRecord, SyncProgressRecord,
    TaskRecord, TaskStatus, ThumbRecord, UserRecord,
};
use super::tables::*;
use super::{Result, Store};
use crate::domain::BlobHash;

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
    fix: Option<Fix>,
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

/// One change that makes a derived fact agree with the records again.
#[derive(Debug, Clone)]
enum Fix {
    SetTotal(u64),
    /// Zero removes the counter, as image deletion does.
    SetUserCount(String, u64),
    SetRefs([u8; 32], u64),
    /// A blob nothing refers to: its record and its chunks.
    RemoveBlob([u8; 32]),
    RemoveChunks([u8; 32], Vec<u32>),
    AddUsername(String, String),
    RemoveUsername(String),
    AddEmail(String, String),
    RemoveEmail(String),
    AddName(String, String, String),
    RemoveName(String, String),
    AddTimeIndex(String, i64, String),
    RemoveTimeIndex(String, i64, String),
    AddPending(String),
    RemovePending(String),
    RemoveSession([u8; 32]),
    RemoveHubSession([u8; 32]),
    RemoveSyncTask(String),
    /// Drops a thumbnail record; when its source is still used it goes on the backlog to be remade.
    RemoveThumb([u8; 32], bool),
    RemoveBacklog([u8; 32]),
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
                apply(&tx, fix)?;
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

/// Collects problems; `found(what, fix)` reads like the line it prints.
#[derive(Default)]
struct Findings(Vec<Problem>);

impl Findings {
    fn found(&mut self, what: String, fix: Option<Fix>) {
        self.0.push(Problem { what, fix });
    }
}

fn check_in(tx: &ReadTransaction) -> Result<CheckReport> {
    let mut report = CheckReport::default();
    let mut out = Findings::default();

    let meta = tx.open_table(META)?;
    report.schema_version = meta.get(VERSION_KEY)?.map_or(0, |v| v.value());
    if report.schema_version != SCHEMA_VERSION {
        out.found(
            format!(
                "schema version is {}, expected {SCHEMA_VERSION}",
                report.schema_version
            ),
            None,
        );
    }
    let stored_total = meta.get(TOTAL_IMAGES_KEY)?.map_or(0, |v| v.value());
    drop(meta);

    let users = check_users(tx, &mut out)?;
    report.users = users.len() as u64;
    let images = load_images(tx, &users, &mut out)?;
    report.images = images.count();
    if stored_total != report.images {
        out.found(
            format!(
                "image total is {stored_total}, but the file holds {} images",
                report.images
            ),
            Some(Fix::SetTotal(report.images)),
        );
    }
    check_user_counts(tx, &images, &mut out)?;
    check_image_indexes(tx, &images, &mut out)?;
    check_tasks(tx, &mut report, &mut out)?;
    check_sessions(tx, &users, &mut report, &mut out)?;
    check_blobs(tx, &images, &mut report, &mut out)?;
    report.problems = out.0;
    Ok(report)
}

/// The image records that decode, and the ids of those that do not.
struct Images {
    records: HashMap<String, ImageRecord>,
    undecodable: HashSet<String>,
}

impl Images {
    fn count(&self) -> u64 {
        (self.records.len() + self.undecodable.len()) as u64
    }

    /// Whether counters and reference counts can be recounted for sure. With an image that does
    /// not decode they cannot, and lowering one could free bytes that image still needs.
    fn all_known(&self) -> bool {
        self.undecodable.is_empty()
    }

    /// Whether an index entry naming `id` can stand: it is an image that does not decode (so it
    /// cannot be compared) or one that `fits`.
    fn entry_fits(&self, id: &str, fits: impl FnOnce(&ImageRecord) -> bool) -> bool {
        self.undecodable.contains(id) || self.records.get(id).is_some_and(fits)
    }
}

fn load_images(
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

/// Per-user image counters against the records.
fn check_user_counts(tx: &ReadTransaction, images: &Images, out: &mut Findings) -> Result<()> {
    let mut counted: BTreeMap<&str, u64> = BTreeMap::new();
    for image in images.records.values() {
        *counted.entry(image.user_id.as_str()).or_default() += 1;
    }
    let stored: BTreeMap<String, u64> = tx
        .open_table(USER_IMAGE_COUNTS)?
        .iter()?
        .map(|e| e.map(|(k, v)| (k.value().to_string(), v.value())))
        .collect::<std::result::Result<_, _>>()?;
    let fix = images.all_known();
    for (user, &n) in &counted {
        let have = stored.get(*user).copied().unwrap_or(0);
        if have != n {
            out.found(
                format!("image count of user {user} is {have}, but the user has {n} images"),
                fix.then(|| Fix::SetUserCount(user.to_string(), n)),
            );
        }
    }
    for (user, &have) in &stored {
        if !counted.contains_key(user.as_str()) {
            out.found(
                format!("image count of user {user} is {have}, but the user has no images"),
                fix.then(|| Fix::SetUserCount(user.clone(), 0)),
            );
        }
    }
    Ok(())
}

/// Blob records, reference counts, thumbnails and chunks. A blob is referenced once by every
/// image record using it and once by every thumbnail made of it.
fn check_blobs(
    tx: &ReadTransaction,
    images: &Images,
    report: &mut CheckReport,
    out: &mut Findings,
) -> Result<()> {
    let mut expected_refs: HashMap<[u8; 32], u64> = HashMap::new();
    let mut used_sources: HashMap<[u8; 32], &ImageRecord> = HashMap::new();
    for image in images.records.values() {
        *expected_refs.entry(image.blob.0).or_default() += 1;
        used_sources.entry(image.blob.0).or_insert(image);
    }
    let blobs = load_blobs(tx, out)?;
    check_thumbnails(tx, &used_sources, &blobs, &mut expected_refs, report, out)?;
    for (hash, image) in &used_sources {
        if !blobs.contains_key(hash) {
            let sharing = expected_refs.get(hash).copied().unwrap_or(1);
            let more = match sharing {
                0 | 1 => String::new(),
                n => format!(" and {} more", n - 1),
            };
            out.found(
                format!(
                    "image {} ({}/{}){more}: its bytes (blob {}) are missing",
                    image.id,
                    image.user_id,
                    image.filename,
                    short(hash)
                ),
                None,
            );
        }
    }
    report.blobs = blobs.len() as u64;
    report.blob_bytes = blobs.values().flatten().map(|b| b.size).sum();
    let fix = images.all_known();
    for (hash, record) in &blobs {
        let Some(record) = record else { continue };
        let expected = expected_refs.get(hash).copied().unwrap_or(0);
        if expected == 0 {
            out.found(
                format!(
                    "blob {} ({} bytes) is used by no image or thumbnail",
                    short(hash),
                    record.size
                ),
                fix.then_some(Fix::RemoveBlob(*hash)),
            );
        } else if record.refs != expected {
            out.found(
                format!(
                    "blob {} has reference count {}, but {expected} images and thumbnails use it",
                    short(hash),
                    record.refs
                ),
                fix.then_some(Fix::SetRefs(*hash, expected)),
            );
        }
    }
    check_chunks(tx, &blobs, fix, out)
}

/// Users and both of their unique indexes. Returns every user id (a record that does not decode
/// still counts as present, so nothing pointing at it is removed).
fn check_users(
    tx: &ReadTransaction,
    out: &mut Findings,
) -> Result<HashMap<String, Option<UserRecord>>> {
    let mut users = HashMap::new();
    for entry in tx.open_table(USERS)?.iter()? {
        let (id, raw) = entry?;
        let id = id.value().to_string();
        match UserRecord::decode(raw.value()) {
            Ok(user) => users.insert(id, Some(user)),
            Err(e) => {
                out.found(format!("user {id}: {e}"), None);
                users.insert(id, None)
            }
        };
    }
    let usernames = string_index(tx, USERNAMES)?;
    let emails = string_index(tx, EMAILS)?;
    let mut ids: Vec<_> = users.keys().cloned().collect();
    ids.sort();
    for id in &ids {
        let Some(Some(user)) = users.get(id) else {
            continue;
        };
        for (kind, index, key, add) in [
            (
                "username",
                &usernames,
                user.username.to_lowercase(),
                Fix::AddUsername as fn(String, String) -> Fix,
            ),
            ("email", &emails, user.email.to_lowercase(), Fix::AddEmail),
        ] {
            match index.get(&key) {
                Some(owner) if owner == id => {}
                Some(owner) => out.found(
                    format!("{kind} {key:?} of user {id} is indexed for user {owner}"),
                    None,
                ),
                None => out.found(
                    format!("{kind} {key:?} of user {id} is missing from its index"),
                    Some(add(key.clone(), id.clone())),
                ),
            }
        }
    }
    for (kind, index, remove) in [
        (
            "username",
            &usernames,
            Fix::RemoveUsername as fn(String) -> Fix,
        ),
        ("email", &emails, Fix::RemoveEmail),
    ] {
        for (key, id) in index {
            let fits = match users.get(id) {
                None => false,
                Some(None) => true,
                Some(Some(user)) => match kind {
                    "username" => user.username.to_lowercase() == *key,
                    _ => user.email.to_lowercase() == *key,
                },
            };
            if !fits {
                out.found(
                    format!(
                        "{kind} index entry {key:?} points at user {id}, who has no such {kind}"
                    ),
                    Some(remove(key.clone())),
                );
            }
        }
    }
    Ok(users)
}

fn string_index(
    tx: &ReadTransaction,
    def: redb::TableDefinition<&str, &str>,
) -> Result<BTreeMap<String, String>> {
    let mut map = BTreeMap::new();
    for entry in tx.open_table(def)?.iter()? {
        let (k, v) = entry?;
        map.insert(k.value().to_string(), v.value().to_string());
    }
    Ok(map)
}

/// The name index and the time index, matched with the image records both ways.
fn check_image_indexes(tx: &ReadTransaction, images: &Images, out: &mut Findings) -> Result<()> {
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

/// Tasks and the index of the pending ones.
fn check_tasks(tx: &ReadTransaction, report: &mut CheckReport, out: &mut Findings) -> Result<()> {
    let mut processing = HashSet::new();
    let mut all = HashSet::new();
    for entry in tx.open_table(TASKS)?.iter()? {
        let (id, raw) = entry?;
        let id = id.value().to_string();
        match TaskRecord::decode(raw.value()) {
            Ok(task) if task.status == TaskStatus::Processing => {
                processing.insert(id.clone());
            }
            Ok(_) => {}
            Err(e) => out.found(format!("task {id}: {e}"), None),
        }
        all.insert(id);
    }
    report.tasks = all.len() as u64;
    // Cloud-sync tasks are processing without being media work: they stay off the pending index.
    for entry in tx.open_table(SYNC_TASKS)?.iter()? {
        let (id, raw) = entry?;
        let id = id.value().to_string();
        let decodes = SyncProgressRecord::decode(raw.value()).map(|_| ());
        if !all.contains(&id) {
            out.found(
                format!("sync progress of task {id}, which does not exist"),
                Some(Fix::RemoveSyncTask(id.clone())),
            );
        } else if let Err(e) = decodes {
            out.found(
                format!("sync progress of task {id}: {e}"),
                Some(Fix::RemoveSyncTask(id.clone())),
            );
        }
        processing.remove(&id);
    }
    let pending: HashSet<String> = tx
        .open_table(PENDING_TASKS)?
        .iter()?
        .map(|e| e.map(|(k, _)| k.value().to_string()))
        .collect::<std::result::Result<_, _>>()?;
    let mut missing: Vec<_> = processing.difference(&pending).collect();
    missing.sort();
    for id in missing {
        out.found(
            format!(
                "task {id} is processing but not in the pending index, so it would never resume"
            ),
            Some(Fix::AddPending(id.clone())),
        );
    }
    let mut stale: Vec<_> = pending.difference(&processing).collect();
    stale.sort();
    for id in stale {
        let why = if all.contains(id) {
            "is not processing"
        } else {
            "does not exist"
        };
        out.found(
            format!("pending index entry {id}: the task {why}"),
            Some(Fix::RemovePending(id.clone())),
        );
    }
    Ok(())
}

fn check_sessions(
    tx: &ReadTransaction,
    users: &HashMap<String, Option<UserRecord>>,
    report: &mut CheckReport,
    out: &mut Findings,
) -> Result<()> {
    let sessions = tx.open_table(SESSIONS)?;
    report.sessions = sessions.len()?;
    let mut kept = HashSet::new();
    for entry in sessions.iter()? {
        let (hash, raw) = entry?;
        let hash = *hash.value();
        match SessionRecord::decode(raw.value()) {
            Ok(s) if users.contains_key(&s.user_id) => {
                kept.insert(hash);
            }
            Ok(s) => out.found(
                format!(
                    "a session belongs to user {}, who does not exist",
                    s.user_id
                ),
                Some(Fix::RemoveSession(hash)),
            ),
            Err(e) => out.found(format!("a session: {e}"), Some(Fix::RemoveSession(hash))),
        }
    }
    // A hub session lives and ends with the local session it belongs to.
    for entry in tx.open_table(HUB_SESSIONS)?.iter()? {
        let (hash, raw) = entry?;
        let hash = *hash.value();
        if !kept.contains(&hash) {
            out.found(
                "a hub session belongs to no live local session".into(),
                Some(Fix::RemoveHubSession(hash)),
            );
        } else if let Err(e) = HubSessionRecord::decode(raw.value()) {
            out.found(
                format!("a hub session: {e}"),
                Some(Fix::RemoveHubSession(hash)),
            );
        }
    }
    Ok(())
}

/// Every blob record; `None` for one that does not decode (reported here).
fn load_blobs(
    tx: &ReadTransaction,
    out: &mut Findings,
) -> Result<BTreeMap<[u8; 32], Option<BlobRecord>>> {
    let mut blobs = BTreeMap::new();
    for entry in tx.open_table(BLOBS)?.iter()? {
        let (hash, raw) = entry?;
        let hash = *hash.value();
        match BlobRecord::decode(raw.value()) {
            Ok(record) => {
                blobs.insert(hash, Some(record));
            }
            Err(e) => {
                out.found(format!("blob {}: {e}", short(&hash)), None);
                blobs.insert(hash, None);
            }
        }
    }
    Ok(blobs)
}

/// Thumbnails belong to sources some image uses, and hold a reference on their own blob.
fn check_thumbnails(
    tx: &ReadTransaction,
    used_sources: &HashMap<[u8; 32], &ImageRecord>,
    blobs: &BTreeMap<[u8; 32], Option<BlobRecord>>,
    expected_refs: &mut HashMap<[u8; 32], u64>,
    report: &mut CheckReport,
    out: &mut Findings,
) -> Result<()> {
    for entry in tx.open_table(THUMBS)?.iter()? {
        let (source, raw) = entry?;
        let source = *source.value();
        report.thumbnails += 1;
        let used = used_sources.contains_key(&source);
        if !used {
            out.found(
                format!("thumbnail of blob {}, which no image uses", short(&source)),
                Some(Fix::RemoveThumb(source, false)),
            );
            continue;
        }
        match ThumbRecord::decode(raw.value()) {
            // A thumbnail that is its source holds no reference of its own.
            Ok(ThumbRecord::Ready { blob, .. }) if blob.0 == source => {}
            Ok(ThumbRecord::Ready { blob, .. }) if blobs.contains_key(&blob.0) => {
                *expected_refs.entry(blob.0).or_default() += 1;
            }
            Ok(ThumbRecord::Ready { blob, .. }) => out.found(
                format!(
                    "thumbnail of blob {} points at missing blob {}",
                    short(&source),
                    short(&blob.0)
                ),
                Some(Fix::RemoveThumb(source, true)),
            ),
            Ok(ThumbRecord::Failed { .. }) => {}
            Err(e) => out.found(
                format!("thumbnail of blob {}: {e}", short(&source)),
                Some(Fix::RemoveThumb(source, true)),
            ),
        }
    }
    for entry in tx.open_table(THUMB_BACKLOG)?.iter()? {
        let (source, _) = entry?;
        let source = *source.value();
        if !used_sources.contains_key(&source) {
            out.found(
                format!(
                    "thumbnail backlog entry for blob {}, which no image uses",
                    short(&source)
                ),
                Some(Fix::RemoveBacklog(source)),
            );
        }
    }
    Ok(())
}

/// Walks every chunk once, in key order: each blob's chunks must be numbered `0..chunks`, add up
/// to its size and hash to its key; chunks of no blob, or past a blob's end, are orphans.
fn check_chunks(
    tx: &ReadTransaction,
    blobs: &BTreeMap<[u8; 32], Option<BlobRecord>>,
    fix_orphans: bool,
    out: &mut Findings,
) -> Result<()> {
    struct Walk {
        hash: [u8; 32],
        hasher: blake3::Hasher,
        next: u32,
        present: u32,
        size: u64,
        gap: bool,
        orphans: Vec<u32>,
    }
    let mut seen: HashSet<[u8; 32]> = HashSet::new();
    let finish = |walk: Walk, out: &mut Findings| {
        let record = blobs.get(&walk.hash).copied().flatten();
        if !walk.orphans.is_empty() {
            let what = match record {
                Some(_) => format!(
                    "blob {} has {} chunks past its end",
                    short(&walk.hash),
                    walk.orphans.len()
                ),
                None if blobs.contains_key(&walk.hash) => return,
                None => format!(
                    "{} chunks belong to blob {}, which has no record",
                    walk.orphans.len(),
                    short(&walk.hash)
                ),
            };
            let fix = fix_orphans.then(|| Fix::RemoveChunks(walk.hash, walk.orphans.clone()));
            out.found(what, fix);
        }
        let Some(record) = record else { return };
        if walk.gap || walk.next != record.chunks {
            out.found(
                format!(
                    "blob {} lacks chunks: {} of {} present",
                    short(&walk.hash),
                    walk.present,
                    record.chunks
                ),
                None,
            );
        } else if walk.size != record.size {
            out.found(
                format!(
                    "blob {} holds {} bytes, its record says {}",
                    short(&walk.hash),
                    walk.size,
                    record.size
                ),
                None,
            );
        } else if *walk.hasher.finalize().as_bytes() != walk.hash {
            out.found(
                format!(
                    "blob {}: its bytes do not hash to its key",
                    short(&walk.hash)
                ),
                None,
            );
        }
    };
    let chunks = tx.open_table(BLOB_CHUNKS)?;
    let mut walk: Option<Walk> = None;
    for entry in chunks.iter()? {
        let (key, bytes) = entry?;
        let (hash, index) = key.value();
        if walk.as_ref().is_none_or(|w| w.hash != *hash) {
            if let Some(done) = walk.take() {
                finish(done, out);
            }
            seen.insert(*hash);
            walk = Some(Walk {
                hash: *hash,
                hasher: blake3::Hasher::new(),
                next: 0,
                present: 0,
                size: 0,
                gap: false,
                orphans: Vec::new(),
            });
        }
        let w = walk.as_mut().expect("a walk was just started");
        let within = blobs
            .get(hash)
            .copied()
            .flatten()
            .is_some_and(|r| index < r.chunks);
        if !within {
            w.orphans.push(index);
            continue;
        }
        if index != w.next {
            w.gap = true;
        }
        w.next = index + 1;
        w.present += 1;
        w.size += bytes.value().len() as u64;
        w.hasher.update(bytes.value());
    }
    if let Some(done) = walk.take() {
        finish(done, out);
    }
    for (hash, record) in blobs {
        match record {
            Some(record) if record.chunks > 0 && !seen.contains(hash) => out.found(
                format!(
                    "blob {}: all {} chunks are missing",
                    short(hash),
                    record.chunks
                ),
                None,
            ),
            _ => {}
        }
    }
    Ok(())
}

fn apply(tx: &WriteTransaction, fix: &Fix) -> Result<()> {
    match fix {
        Fix::SetTotal(n) => {
            tx.open_table(META)?.insert(TOTAL_IMAGES_KEY, *n)?;
        }
        Fix::SetUserCount(user, 0) => {
            tx.open_table(USER_IMAGE_COUNTS)?.remove(user.as_str())?;
        }
        Fix::SetUserCount(user, n) => {
            tx.open_table(USER_IMAGE_COUNTS)?
                .insert(user.as_str(), *n)?;
        }
        Fix::SetRefs(hash, n) => {
            let mut blobs = tx.open_table(BLOBS)?;
            let record = blobs
                .get(hash)?
                .map(|v| BlobRecord::decode(v.value()))
                .transpose()?;
            if let Some(mut record) = record {
                record.refs = *n;
                blobs.insert(hash, record.encode().as_slice())?;
            }
        }
        Fix::RemoveBlob(hash) => {
            let record = tx
                .open_table(BLOBS)?
                .remove(hash)?
                .map(|v| BlobRecord::decode(v.value()))
                .transpose()?;
            let mut chunks = tx.open_table(BLOB_CHUNKS)?;
            for i in 0..record.map_or(0, |r| r.chunks) {
                chunks.remove((hash, i))?;
            }
        }
        Fix::RemoveChunks(hash, indexes) => {
            let mut chunks = tx.open_table(BLOB_CHUNKS)?;
            for &i in indexes {
                chunks.remove((hash, i))?;
            }
        }
        Fix::AddUsername(key, id) => {
            tx.open_table(USERNAMES)?
                .insert(key.as_str(), id.as_str())?;
        }
        Fix::RemoveUsername(key) => {
            tx.open_table(USERNAMES)?.remove(key.as_str())?;
        }
        Fix::AddEmail(key, id) => {
            tx.open_table(EMAILS)?.insert(key.as_str(), id.as_str())?;
        }
        Fix::RemoveEmail(key) => {
            tx.open_table(EMAILS)?.remove(key.as_str())?;
        }
        Fix::AddName(user, filename, id) => {
            tx.open_table(IMAGE_NAMES)?
                .insert((user.as_str(), filename.as_str()), id.as_str())?;
        }
        Fix::RemoveName(user, filename) => {
            tx.open_table(IMAGE_NAMES)?
                .remove((user.as_str(), filename.as_str()))?;
        }
        Fix::AddTimeIndex(user, at, id) => {
            tx.open_table(USER_IMAGES)?
                .insert((user.as_str(), *at, id.as_str()), ())?;
            super::paging::bump_epoch(tx, user)?;
        }
        Fix::RemoveTimeIndex(user, at, id) => {
            tx.open_table(USER_IMAGES)?
                .remove((user.as_str(), *at, id.as_str()))?;
            super::paging::bump_epoch(tx, user)?;
        }
        Fix::AddPending(id) => {
            tx.open_table(PENDING_TASKS)?.insert(id.as_str(), ())?;
        }
        Fix::RemovePending(id) => {
            tx.open_table(PENDING_TASKS)?.remove(id.as_str())?;
        }
        Fix::RemoveSession(hash) => {
            tx.open_table(SESSIONS)?.remove(hash)?;
        }
        Fix::RemoveHubSession(hash) => {
            tx.open_table(HUB_SESSIONS)?.remove(hash)?;
        }
        Fix::RemoveSyncTask(id) => {
            tx.open_table(SYNC_TASKS)?.remove(id.as_str())?;
        }
        Fix::RemoveThumb(source, remake) => {
            tx.open_table(THUMBS)?.remove(source)?;
            if *remake {
                tx.open_table(THUMB_BACKLOG)?.insert(source, ())?;
            }
        }
        Fix::RemoveBacklog(source) => {
            tx.open_table(THUMB_BACKLOG)?.remove(source)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{jpeg_thumb, new_image, temp_store};
    use super::*;

    fn user(store: &Store, id: &str) {
        let record = UserRecord {
            user_id: id.into(),
            username: id.to_uppercase(),
            email: format!("{id}@x.org"),
            password_hash: "h".into(),
            created_at: 1,
            last_login: None,
            cloud_sync_enabled: false,
        };
        store
            .create_user(&record, &id.to_lowercase(), &record.email.to_lowercase())
            .unwrap();
    }

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
        store.put_thumbnail(&shared.blob, &thumb, b"thumb").unwrap();
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
        assert_eq!(store.user_image_count("u1").unwrap(), 2);
        assert_eq!(store.total_images().unwrap(), 3);
        assert_eq!(store.blob(&shared.blob).unwrap().unwrap().record.refs, 2);
        assert_eq!(store.pending_tasks().unwrap().len(), 3);
        assert_eq!(store.user_by_username("u2").unwrap().unwrap().user_id, "u2");
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
        assert_eq!(report.repairable(), 0, "{text}");
        let repaired = store.repair().unwrap();
        assert!(repaired.fixed.is_empty());
        assert_eq!(repaired.after.problems.len(), 2);
        assert!(store.image("c").unwrap().is_some());
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
        assert_eq!(store.total_images().unwrap(), 1);
    }

    #[test]
    fn sync_tasks_stay_off_the_pending_index_and_orphan_hub_sessions_go() {
        let (_dir, store, _, _) = populated();
        let task = TaskRecord {
            task_id: "t-sync".into(),
            user_id: "u1".into(),
            image_id: String::new(),
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
        assert!(store.sync_progress("t-sync").unwrap().is_some());
    }
}
