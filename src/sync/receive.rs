//! The hub's side of a sync: every image of a batch is checked like an upload (its file decoded,
//! hashed, sniffed and probed, and checked against its metadata) and stored under the sender's
//! hub account with the sender's id and file name, deduplicated: sending the same image twice
//! stores it once. What is new in a batch is stored in one durable commit.

use std::collections::{HashMap, HashSet};

use bytes::Bytes;

use super::wire::{Refusal, SyncData, SyncImage, SyncReply};
use crate::domain::{BlobHash, Category, ImageId, TaskId, UserId};
use crate::ingest::{self, Incoming};
use crate::store::records::{ImageRecord, TaskRecord};
use crate::store::{NewImage, Store, StoreError};
use crate::{clock, media};

/// Stores what a sync request carries. Returns the answer and the thumbnails to make.
pub fn receive(
    store: &Store,
    user_id: &UserId,
    data: SyncData,
) -> Result<(SyncReply, Vec<(TaskId, BlobHash)>), StoreError> {
    let held = store.user_blobs(user_id)?;
    let mut reply = SyncReply::default();
    let mut queued = Vec::new();
    // Files of this request by hash, so a later image with the same bytes needs no file.
    let mut decoded: HashMap<BlobHash, Bytes> = HashMap::new();
    let mut files = data.image_files;
    // Ids new in this request, with their bytes' hash: a repeat is the same image or a conflict.
    let mut new_ids: HashMap<ImageId, BlobHash> = HashMap::new();
    let mut fresh = Vec::new();
    let mut repeats = Vec::new();
    for meta in data.images_metadata {
        let id = meta.id.clone();
        if let Some(blob) = new_ids.get(&id) {
            let same = meta
                .blake3
                .as_deref()
                .and_then(BlobHash::from_hex)
                .is_none_or(|h| h == *blob);
            if same {
                // Answered once the first copy's commit outcome is known.
                repeats.push(id);
            } else {
                reply.refused.push(Refusal {
                    id,
                    reason: "the same id twice with other content".into(),
                });
            }
            continue;
        }
        let file = files.remove(&meta.filename);
        match ingest_one(store, user_id, &held, &mut decoded, meta, file) {
            Ok(Ingested::New(new)) => {
                new_ids.insert(id, new.image.blob);
                fresh.push(new);
            }
            Ok(Ingested::AlreadyHeld) => reply.accepted.push(id),
            Err(reason) => reply.refused.push(Refusal { id, reason }),
        }
    }
    // Everything new in one durable commit.
    let uploads: Vec<NewImage<'_>> = fresh
        .iter()
        .map(|n| NewImage {
            image: &n.image,
            bytes: &n.bytes,
            task: &n.task,
        })
        .collect();
    let outcomes = if uploads.is_empty() {
        Vec::new()
    } else {
        store.save_images(&uploads)?
    };
    let mut refused_new: HashMap<ImageId, String> = HashMap::new();
    for (new, outcome) in fresh.iter().zip(outcomes) {
        let id = new.image.id.clone();
        let reason = match outcome {
            Ok(()) => {
                reply.stored += 1;
                if let Some(bytes) = new.received {
                    reply.received_files += 1;
                    reply.received_bytes += bytes;
                }
                queued.push((new.task.task_id.clone(), new.image.blob));
                reply.accepted.push(id);
                continue;
            }
            Err(StoreError::Conflict) => "the file name is used by another image".to_string(),
            Err(e) => format!("hub storage error: {e}"),
        };
        refused_new.insert(id.clone(), reason.clone());
        reply.refused.push(Refusal { id, reason });
    }
    for id in repeats {
        match refused_new.get(&id) {
            Some(reason) => reply.refused.push(Refusal {
                id,
                reason: reason.clone(),
            }),
            None => reply.accepted.push(id),
        }
    }
    Ok((reply, queued))
}

/// An image checked and ready to store.
struct Fresh {
    image: ImageRecord,
    task: TaskRecord,
    bytes: Bytes,
    /// Bytes of the file this image came with, if it came with one.
    received: Option<u64>,
}

enum Ingested {
    New(Box<Fresh>),
    AlreadyHeld,
}

fn ingest_one(
    store: &Store,
    user_id: &UserId,
    held: &HashSet<BlobHash>,
    decoded: &mut HashMap<BlobHash, Bytes>,
    meta: SyncImage,
    file: Option<String>,
) -> Result<Ingested, String> {
    let internal = |e: StoreError| format!("hub storage error: {e}");
    if !safe_name(meta.id.as_str(), 100) {
        return Err("invalid image id".into());
    }
    if !safe_name(&meta.filename, 255) {
        return Err("invalid file name".into());
    }
    let claimed = meta
        .blake3
        .as_deref()
        .map(|h| BlobHash::from_hex(h).ok_or("invalid blake3 hash"));
    let claimed = claimed.transpose()?;
    if let Some(existing) = store.image(&meta.id).map_err(internal)? {
        return if existing.user_id == *user_id && claimed.is_none_or(|h| h == existing.blob) {
            Ok(Ingested::AlreadyHeld)
        } else {
            Err("an image with this id already exists with other content".into())
        };
    }
    let (bytes, received) = match file {
        Some(data_url) => {
            let bytes = Bytes::from(media::data_url::decode(&data_url).map_err(|e| e.to_string())?);
            let len = bytes.len() as u64;
            (bytes, Some(len))
        }
        None => {
            let hash = claimed.ok_or("no file and no blake3 hash")?;
            if let Some(bytes) = decoded.get(&hash) {
                (bytes.clone(), None)
            } else if held.contains(&hash) {
                let bytes = store
                    .blob_bytes(&hash)
                    .map_err(internal)?
                    .ok_or("the file is missing")?;
                (bytes, None)
            } else {
                return Err("the file is missing".into());
            }
        }
    };
    let blob = BlobHash::of(&bytes);
    if claimed.is_some_and(|h| h != blob) {
        return Err("the file does not match its blake3 hash".into());
    }
    let probe = media::probe(&bytes).map_err(|e| e.to_string())?;
    if meta.file_size != bytes.len() as u64 {
        return Err(format!(
            "file_size {} does not match the file ({} bytes)",
            meta.file_size,
            bytes.len()
        ));
    }
    if (meta.image_width, meta.image_height) != (probe.width, probe.height) {
        return Err(format!(
            "dimensions {}x{} do not match the file ({}x{})",
            meta.image_width, meta.image_height, probe.width, probe.height
        ));
    }
    let category = Category::for_upload(
        meta.category
            .as_deref()
            .or_else(|| meta.context_info.get("category").and_then(|c| c.as_str())),
    );
    let mut context = meta.context_info.clone();
    context.remove("category");
    let new = Incoming {
        owner: user_id.clone(),
        category,
        original_url: meta.original_url,
        page_url: meta.page_url,
        page_title: meta.page_title,
        context_json: (!context.is_empty()).then(|| serde_json::Value::Object(context).to_string()),
        saved_at: clock::parse_display(&meta.saved_at),
        filename: Some(meta.filename),
        id: Some(meta.id),
    };
    // The sender's name is kept: a taken one is refused when the batch is committed.
    let (image, task) = ingest::records(&new, &probe, blob, bytes.len() as u64, 0);
    decoded.insert(blob, bytes.clone());
    Ok(Ingested::New(Box::new(Fresh {
        image,
        task,
        bytes,
        received,
    })))
}

/// Ids and file names from another server end up in URLs and file names here: plain ASCII only.
fn safe_name(name: &str, max: usize) -> bool {
    !name.is_empty()
        && name.len() <= max
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}
