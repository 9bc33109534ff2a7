//! Blobs: reference counts recounted from the images and thumbnails, and every chunk hashed
//! against its blob's key and, where recorded, its SHA-256 (kept by `store::blobs`).

use super::*;

/// Blob records, reference counts, thumbnails and chunks. A blob is referenced once by every
/// image record using it (live or trashed, as what it serves or as its original before an edit)
/// and once by every thumbnail made of it.
pub(super) fn check_blobs(
    tx: &ReadTransaction,
    images: &Images,
    report: &mut CheckReport,
    out: &mut Findings,
) -> Result<BlobUse> {
    let mut expected_refs: HashMap<[u8; 32], u64> = HashMap::new();
    let mut used_sources: HashMap<[u8; 32], &ImageRecord> = HashMap::new();
    for image in images.records.values() {
        for blob in image.blobs() {
            *expected_refs.entry(blob.0).or_default() += 1;
            used_sources.entry(blob.0).or_insert(image);
        }
    }
    let blobs = load_blobs(tx, out)?;
    super::content::check_sha256(tx, images, &blobs, report, out)?;
    check_thumbnails(tx, &used_sources, &blobs, &mut expected_refs, report, out)?;
    for (hash, image) in &used_sources {
        if !blobs.contains_key(hash) {
            let sharing = expected_refs.get(hash).copied().unwrap_or(1);
            let more = match sharing {
                0 | 1 => String::new(),
                n => format!(" and {} more", n - 1),
            };
            out.unrepairable(format!(
                "image {} ({}/{}){more}: its bytes (blob {}) are missing",
                image.id,
                image.user_id,
                image.filename,
                short(hash)
            ));
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
    check_chunks(tx, &blobs, fix, out)?;
    Ok(blobs
        .iter()
        .filter_map(|(hash, record)| {
            let refs = expected_refs.get(hash).copied().unwrap_or(0);
            record.filter(|_| refs > 0).map(|r| (r.size, refs))
        })
        .collect())
}

/// The size and the reference count the records give each stored blob they use (what the blob
/// records hold once repaired).
pub(super) type BlobUse = Vec<(u64, u64)>;
/// Every blob record; `None` for one that does not decode (reported here).
pub(super) fn load_blobs(
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
                out.unrepairable(format!("blob {}: {e}", short(&hash)));
                blobs.insert(hash, None);
            }
        }
    }
    Ok(blobs)
}
/// Walks every chunk once, in key order: each blob's chunks must be numbered `0..chunks`, add up
/// to its size and hash to its key; chunks of no blob, or past a blob's end, are orphans.
pub(super) fn check_chunks(
    tx: &ReadTransaction,
    blobs: &BTreeMap<[u8; 32], Option<BlobRecord>>,
    fix_orphans: bool,
    out: &mut Findings,
) -> Result<()> {
    struct Walk {
        hash: [u8; 32],
        hasher: blake3::Hasher,
        /// For a blob with a recorded SHA-256.
        sha256: Option<ring::digest::Context>,
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
            out.unrepairable(format!(
                "blob {} lacks chunks: {} of {} present",
                short(&walk.hash),
                walk.present,
                record.chunks
            ));
        } else if walk.size != record.size {
            out.unrepairable(format!(
                "blob {} holds {} bytes, its record says {}",
                short(&walk.hash),
                walk.size,
                record.size
            ));
        } else if *walk.hasher.finalize().as_bytes() != walk.hash {
            out.unrepairable(format!(
                "blob {}: its bytes do not hash to its key",
                short(&walk.hash)
            ));
        } else if let (Some(sha), Some(recorded)) = (walk.sha256, record.sha256)
            && sha.finish().as_ref() != recorded.as_slice()
        {
            out.found(
                format!(
                    "blob {}: its bytes do not hash to its recorded SHA-256",
                    short(&walk.hash)
                ),
                Some(super::content::Fix::Rehash(walk.hash)),
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
                sha256: blobs
                    .get(hash)
                    .copied()
                    .flatten()
                    .and_then(|r| r.sha256)
                    .map(|_| ring::digest::Context::new(&ring::digest::SHA256)),
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
        if let Some(sha) = &mut w.sha256 {
            sha.update(bytes.value());
        }
    }
    if let Some(done) = walk.take() {
        finish(done, out);
    }
    for (hash, record) in blobs {
        match record {
            Some(record) if record.chunks > 0 && !seen.contains(hash) => out.unrepairable(format!(
                "blob {}: all {} chunks are missing",
                short(hash),
                record.chunks
            )),
            _ => {}
        }
    }
    Ok(())
}
#[derive(Debug)]
pub(super) enum Fix {
    SetRefs([u8; 32], u64),
    /// A blob nothing refers to: its record and its chunks.
    RemoveBlob([u8; 32]),
    RemoveChunks([u8; 32], Vec<u32>),
}

impl Repair for Fix {
    fn apply(&self, tx: &WriteTransaction) -> Result<()> {
        match self {
            Self::SetRefs(hash, n) => {
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
            Self::RemoveBlob(hash) => {
                let record = tx
                    .open_table(BLOBS)?
                    .remove(hash)?
                    .map(|v| BlobRecord::decode(v.value()))
                    .transpose()?;
                let mut chunks = tx.open_table(BLOB_CHUNKS)?;
                for i in 0..record.map_or(0, |r| r.chunks) {
                    chunks.remove((hash, i))?;
                }
                if let Some(sha) = record.and_then(|r| r.sha256) {
                    tx.open_table(SHA256_BLOBS)?.remove(&sha)?;
                }
                tx.open_table(SHA256_BACKLOG)?.remove(hash)?;
            }
            Self::RemoveChunks(hash, indexes) => {
                let mut chunks = tx.open_table(BLOB_CHUNKS)?;
                for &i in indexes {
                    chunks.remove((hash, i))?;
                }
            }
        }
        Ok(())
    }
}
