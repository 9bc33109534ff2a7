//! Thumbnails: each belongs to a source blob that an image uses, and points at a blob that exists
//! (kept by `store::thumbs`). Perceptual hashes likewise belong to a used source and decode.

use super::*;

/// Thumbnails belong to sources some image uses, and hold a reference on their own blob.
pub(super) fn check_thumbnails(
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
    let hashes = tx.open_table(PHASHES)?;
    for entry in hashes.iter()? {
        let (source, raw) = entry?;
        let source = *source.value();
        report.phashes += 1;
        if !used_sources.contains_key(&source) {
            out.found(
                format!(
                    "perceptual hash of blob {}, which no image uses",
                    short(&source)
                ),
                Some(Fix::ForgetPhash(source)),
            );
        } else if let Err(e) = PhashRecord::decode(raw.value()) {
            // Removed, the server's background pass makes it again.
            out.found(
                format!("perceptual hash of blob {}: {e}", short(&source)),
                Some(Fix::ForgetPhash(source)),
            );
        }
    }
    for entry in tx.open_table(THUMBS)?.iter()? {
        let (source, raw) = entry?;
        let ready = matches!(
            ThumbRecord::decode(raw.value()),
            Ok(ThumbRecord::Ready { .. })
        );
        let current = match hashes.get(source.value())? {
            Some(v) => PhashRecord::decode(v.value()).is_ok_and(|r| r.is_current()),
            None => false,
        };
        if ready && !current {
            report.unhashed += 1;
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

#[derive(Debug)]
pub(super) enum Fix {
    /// Drops a thumbnail record; when its source is still used it goes on the backlog to be remade.
    RemoveThumb([u8; 32], bool),
    RemoveBacklog([u8; 32]),
    ForgetPhash([u8; 32]),
}

impl Repair for Fix {
    fn apply(&self, tx: &WriteTransaction) -> Result<()> {
        match self {
            Self::RemoveThumb(source, remake) => {
                tx.open_table(THUMBS)?.remove(source)?;
                if *remake {
                    tx.open_table(THUMB_BACKLOG)?.insert(source, ())?;
                }
            }
            Self::RemoveBacklog(source) => {
                tx.open_table(THUMB_BACKLOG)?.remove(source)?;
            }
            Self::ForgetPhash(source) => {
                tx.open_table(PHASHES)?.remove(source)?;
            }
        }
        Ok(())
    }
}
