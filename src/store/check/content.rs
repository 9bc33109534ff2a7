//! Contents: the per-user content and URL indexes recomputed from the live image records and
//! compared whole (kept by `store::content`), and the SHA-256 of every blob an image was captured
//! as: recorded (or waiting on the backlog), indexed both ways, and (in the chunk walk of
//! `blobs`) matching the bytes.

use super::*;
use crate::store::content::url_key;
use crate::store::records::codes;

type CaptureKey = (String, u8, [u8; 32], i64, String);

/// The content tables as the live records make them.
#[derive(Default, PartialEq, Eq)]
struct ContentTables {
    captures: BTreeSet<CaptureKey>,
    contents: BTreeMap<(String, u8, [u8; 32]), u64>,
    distinct: BTreeSet<(String, u8, i64, String)>,
    totals: BTreeMap<(String, u8), u64>,
    urls: BTreeMap<(String, Vec<u8>), u64>,
}

fn expected(images: &Images) -> ContentTables {
    let mut made = ContentTables::default();
    let mut newest: BTreeMap<(String, u8, [u8; 32]), (i64, String)> = BTreeMap::new();
    for image in images.sorted_live() {
        let user = image.user_id.to_string();
        let blob = image.captured_blob().0;
        for scope in [ALL_SCOPE, codes::category::to_code(image.category)] {
            made.captures.insert((
                user.clone(),
                scope,
                blob,
                image.saved_at,
                image.id.to_string(),
            ));
            *made
                .contents
                .entry((user.clone(), scope, blob))
                .or_default() += 1;
            let at = (image.saved_at, image.id.to_string());
            let slot = newest.entry((user.clone(), scope, blob)).or_default();
            if *slot < at {
                *slot = at;
            }
        }
        if let Some(url) = &image.original_url {
            *made.urls.entry((user, url_key(url))).or_default() += 1;
        }
    }
    for ((user, scope, _), (at, id)) in newest {
        *made.totals.entry((user.clone(), scope)).or_default() += 1;
        made.distinct.insert((user, scope, at, id));
    }
    made
}

fn stored(tx: &ReadTransaction) -> Result<ContentTables> {
    let mut have = ContentTables::default();
    for entry in tx.open_table(USER_CAPTURES)?.iter()? {
        let (key, _) = entry?;
        let (user, scope, blob, at, id) = key.value();
        have.captures
            .insert((user.to_string(), scope, *blob, at, id.to_string()));
    }
    for entry in tx.open_table(USER_CONTENTS)?.iter()? {
        let (key, n) = entry?;
        let (user, scope, blob) = key.value();
        have.contents
            .insert((user.to_string(), scope, *blob), n.value());
    }
    for entry in tx.open_table(USER_DISTINCT)?.iter()? {
        let (key, _) = entry?;
        let (user, scope, at, id) = key.value();
        have.distinct
            .insert((user.to_string(), scope, at, id.to_string()));
    }
    for entry in tx.open_table(USER_CONTENT_COUNTS)?.iter()? {
        let (key, n) = entry?;
        let (user, scope) = key.value();
        have.totals.insert((user.to_string(), scope), n.value());
    }
    for entry in tx.open_table(USER_URLS)?.iter()? {
        let (key, n) = entry?;
        let (user, url) = key.value();
        have.urls
            .insert((user.to_string(), url.to_vec()), n.value());
    }
    Ok(have)
}

/// How many entries of `have` and `want` differ (missing, extra or with another value).
fn differing<T: Ord>(have: &BTreeSet<T>, want: &BTreeSet<T>) -> usize {
    have.symmetric_difference(want).count()
}

fn differing_counts<K: Ord>(have: &BTreeMap<K, u64>, want: &BTreeMap<K, u64>) -> usize {
    let keys: BTreeSet<&K> = have.keys().chain(want.keys()).collect();
    keys.into_iter()
        .filter(|k| have.get(k) != want.get(k))
        .count()
}

/// The content and URL indexes, each compared whole with what the live records make; any
/// difference is repaired by building them all again.
pub(super) fn check_content_index(
    tx: &ReadTransaction,
    images: &Images,
    out: &mut Findings,
) -> Result<()> {
    let want = expected(images);
    let have = stored(tx)?;
    if have == want {
        return Ok(());
    }
    let fix = images.all_known();
    for (table, n) in [
        ("captures", differing(&have.captures, &want.captures)),
        ("content", differing_counts(&have.contents, &want.contents)),
        ("newest capture", differing(&have.distinct, &want.distinct)),
        (
            "content count",
            differing_counts(&have.totals, &want.totals),
        ),
        ("original URL", differing_counts(&have.urls, &want.urls)),
    ] {
        if n > 0 {
            out.found(
                format!("the {table} index has {n} entries that disagree with the image records"),
                fix.then_some(Fix::RebuildContent),
            );
        }
    }
    Ok(())
}

/// Every blob an image was captured as has its SHA-256 or is on the backlog; the SHA-256 index
/// and the blob records agree both ways; the backlog names only stored blobs without a SHA-256.
pub(super) fn check_sha256(
    tx: &ReadTransaction,
    images: &Images,
    blobs: &BTreeMap<[u8; 32], Option<BlobRecord>>,
    report: &mut CheckReport,
    out: &mut Findings,
) -> Result<()> {
    let backlog: BTreeSet<[u8; 32]> = tx
        .open_table(SHA256_BACKLOG)?
        .iter()?
        .map(|e| e.map(|(k, _)| *k.value()))
        .collect::<std::result::Result<_, _>>()?;
    report.sha256_backlog = backlog.len() as u64;
    let index: BTreeMap<[u8; 32], [u8; 32]> = tx
        .open_table(SHA256_BLOBS)?
        .iter()?
        .map(|e| e.map(|(k, v)| (*k.value(), *v.value())))
        .collect::<std::result::Result<_, _>>()?;
    let mut named = BTreeSet::new();
    for image in images.records.values() {
        let blob = image.captured_blob().0;
        if !named.insert(blob) {
            continue;
        }
        if let Some(Some(record)) = blobs.get(&blob)
            && record.sha256.is_none()
            && !backlog.contains(&blob)
        {
            out.found(
                format!(
                    "blob {}, which image {} was captured as, has no SHA-256",
                    short(&blob),
                    image.id
                ),
                Some(Fix::Backlog(blob)),
            );
        }
    }
    for (blob, record) in blobs {
        let Some(sha) = record.and_then(|r| r.sha256) else {
            continue;
        };
        if index.get(&sha) != Some(blob) {
            out.found(
                format!(
                    "the SHA-256 of blob {} is missing from its index",
                    short(blob)
                ),
                Some(Fix::IndexSha(sha, *blob)),
            );
        }
    }
    for (sha, blob) in &index {
        let recorded = blobs.get(blob).copied().flatten().and_then(|r| r.sha256);
        if recorded != Some(*sha) {
            out.found(
                format!(
                    "SHA-256 index entry {} points at blob {}, which does not have that hash",
                    short(sha),
                    short(blob)
                ),
                Some(Fix::UnindexSha(*sha)),
            );
        }
    }
    for blob in &backlog {
        match blobs.get(blob) {
            Some(Some(record)) if record.sha256.is_none() => {}
            Some(None) => {}
            _ => out.found(
                format!(
                    "the SHA-256 backlog names blob {}, which is gone or hashed",
                    short(blob)
                ),
                Some(Fix::Unbacklog(*blob)),
            ),
        }
    }
    Ok(())
}

#[derive(Debug)]
pub(super) enum Fix {
    /// Clears the content and URL indexes and builds them again from the live records.
    RebuildContent,
    Backlog([u8; 32]),
    Unbacklog([u8; 32]),
    /// SHA-256, blob.
    IndexSha([u8; 32], [u8; 32]),
    UnindexSha([u8; 32]),
    /// A blob whose bytes do not hash to its recorded SHA-256: the hash is dropped (and its index
    /// entry) and the blob goes on the backlog to be hashed again.
    Rehash([u8; 32]),
}

impl Repair for Fix {
    fn apply(&self, tx: &WriteTransaction) -> Result<()> {
        match self {
            Self::RebuildContent => {
                let mut content = crate::store::content::Tables::open(tx)?;
                content.clear()?;
                let images = tx.open_table(IMAGES)?;
                for entry in images.iter()? {
                    let image = ImageRecord::decode(entry?.1.value())?;
                    if !image.is_trashed() {
                        content.index(&image, 1)?;
                    }
                }
            }
            Self::Backlog(blob) => {
                tx.open_table(SHA256_BACKLOG)?.insert(blob, ())?;
            }
            Self::Unbacklog(blob) => {
                tx.open_table(SHA256_BACKLOG)?.remove(blob)?;
            }
            Self::IndexSha(sha, blob) => {
                tx.open_table(SHA256_BLOBS)?.insert(sha, blob)?;
            }
            Self::UnindexSha(sha) => {
                tx.open_table(SHA256_BLOBS)?.remove(sha)?;
            }
            Self::Rehash(blob) => {
                let mut blobs = tx.open_table(BLOBS)?;
                let record = blobs
                    .get(blob)?
                    .map(|v| BlobRecord::decode(v.value()))
                    .transpose()?;
                if let Some(mut record) = record {
                    if let Some(sha) = record.sha256.take() {
                        let mut index = tx.open_table(SHA256_BLOBS)?;
                        if index.get(&sha)?.is_some_and(|v| v.value() == blob) {
                            index.remove(&sha)?;
                        }
                    }
                    blobs.insert(blob, record.encode().as_slice())?;
                    tx.open_table(SHA256_BACKLOG)?.insert(blob, ())?;
                }
            }
        }
        Ok(())
    }
}
