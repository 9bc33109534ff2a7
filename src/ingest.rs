//! How a new image enters the vault: the one place that makes image ids, the seed's file names and
//! processing tasks, shared by the upload routes, `imgvault import` and the images a hub receives by
//! sync (which keep their sender's id and file name), so an image is the same whichever way it came.
//!
//! `Ingest::save` is an upload's whole way in: the bytes are probed and their decode cost checked
//! (on the blocking pool), hashed, named, stored durably by the group-commit writer with their
//! task, and queued for a thumbnail. Nothing here knows HTTP; `api` turns an `IngestError` into
//! the seed's answer. `imgvault import`, which runs with no server, probes for itself and stores
//! through `save` in commits of its own.
//!
//! Page metadata comes from whatever page the image was on, so it is capped here, on the way into
//! every record (uploads, imports, images received by sync): URLs at 8 KiB, the title at 2 KiB,
//! `imageContext` at 8 KiB of JSON. Longer input is truncated, not refused: a capture should not
//! fail because a page has an absurd title. A record's metadata thus stays under 32 KiB, and a
//! list page of 100 images under a few MiB.

use std::sync::Arc;

use bytes::Bytes;

use crate::clock::{self, Micros};
use crate::domain::{BlobHash, Category, ImageId, Sha256, Tags, TaskId, UserId};
use crate::media::{self, MediaError, Probe};
use crate::store::records::{IdempotencyRecord, ImageRecord, TaskRecord, TaskStatus};
use crate::store::{NewKey, Store, StoreError};
use crate::thumbnails::Jobs;
use crate::writer::{Receipt, Upload, Writer};

/// The way uploads come in (see the module docs).
#[derive(Clone)]
pub struct Ingest {
    writer: Writer,
    jobs: Arc<Jobs>,
    /// Bytes a thumbnail may take to make (`--memory-mb`'s decode budget).
    decode_budget: u64,
}

/// Why an upload was not stored.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The bytes are no image we store, or one too costly to decode.
    #[error(transparent)]
    Image(#[from] MediaError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("no free file name after {NAME_TRIES} tries")]
    NoFreeName,
    /// The check of the bytes panicked (a decoder bug); the server goes on.
    #[error("checking the image failed: {0}")]
    CheckFailed(String),
}

impl Ingest {
    pub fn new(writer: Writer, jobs: Arc<Jobs>, decode_budget: u64) -> Self {
        Self {
            writer,
            jobs,
            decode_budget,
        }
    }

    /// Stores `bytes` as a new image described by `new`, durably, and queues its thumbnail. With
    /// a `key`, the key is stored in the same commit (`KeyUsed` if it is stored already).
    pub async fn save(
        &self,
        bytes: Bytes,
        new: Incoming,
        key: Option<Keyed<'_>>,
    ) -> Result<(ImageRecord, TaskRecord), IngestError> {
        let checker = self.clone();
        let (bytes, probe, blob, sha256) = tokio::task::spawn_blocking(move || {
            let probe = checker.check(&bytes)?;
            let blob = BlobHash::of(&bytes);
            let sha256 = Sha256::of(&bytes);
            Ok::<_, MediaError>((bytes, probe, blob, sha256))
        })
        .await
        .map_err(|e| IngestError::CheckFailed(e.to_string()))??;
        let shape = Shape {
            kind: probe.kind,
            width: probe.width,
            height: probe.height,
        };
        self.store(bytes, Some(sha256), blob, shape, new, key).await
    }

    /// Stores a new image described by `new` on the bytes `capture` was captured as, which the
    /// store holds: a capture of the same image on another page, sent as its SHA-256 instead of
    /// its bytes. `Missing` if the bytes were deleted meanwhile.
    pub async fn save_known(
        &self,
        capture: &ImageRecord,
        new: Incoming,
        key: Option<Keyed<'_>>,
    ) -> Result<(ImageRecord, TaskRecord), IngestError> {
        let shape = match &capture.original {
            Some(original) => Shape {
                kind: original.kind,
                width: original.width,
                height: original.height,
            },
            None => Shape {
                kind: capture.kind,
                width: capture.width,
                height: capture.height,
            },
        };
        let size = capture
            .original
            .as_ref()
            .map_or(capture.file_size, |o| o.file_size);
        let mut new = new;
        new.size = Some(size);
        let blob = *capture.captured_blob();
        self.store(Bytes::new(), None, blob, shape, new, key).await
    }

    async fn store(
        &self,
        bytes: Bytes,
        sha256: Option<Sha256>,
        blob: BlobHash,
        shape: Shape,
        new: Incoming,
        key: Option<Keyed<'_>>,
    ) -> Result<(ImageRecord, TaskRecord), IngestError> {
        let size = new.size.unwrap_or(bytes.len() as u64);
        for attempt in 0..NAME_TRIES {
            let (image, task) = records(&new, shape, blob, size, attempt);
            let key = key.as_ref().map(|k| k.record(&image, &task));
            let upload = Upload {
                image: image.clone(),
                bytes: bytes.clone(),
                task: task.clone(),
                sha256,
                key,
            };
            match self.writer.save(upload).await {
                Ok(()) => {
                    tracing::info!(image_id = %image.id, user_id = %image.user_id, size = image.file_size, "image saved");
                    self.jobs.enqueue(Some(task.task_id.clone()), image.blob);
                    return Ok((image, task));
                }
                Err(StoreError::Conflict) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(IngestError::NoFreeName)
    }
}

/// What a new image's record says of its bytes besides their size.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub kind: media::ImageKind,
    pub width: u32,
    pub height: u32,
}

impl From<&Probe> for Shape {
    fn from(probe: &Probe) -> Self {
        Self {
            kind: probe.kind,
            width: probe.width,
            height: probe.height,
        }
    }
}

/// An `Idempotency-Key` to store with an upload, and how to make the answer its replays get.
pub struct Keyed<'a> {
    pub key: String,
    /// What the request asked to store (see `IdempotencyRecord::fingerprint`).
    pub fingerprint: [u8; 32],
    /// The answer's JSON body for the stored image and task (its status is 200).
    pub answer: &'a (dyn Fn(&ImageRecord, &TaskRecord) -> String + Send + Sync),
}

impl Keyed<'_> {
    fn record(&self, image: &ImageRecord, task: &TaskRecord) -> NewKey {
        NewKey {
            key: self.key.clone(),
            record: IdempotencyRecord {
                fingerprint: self.fingerprint,
                created_at: clock::now(),
                image_id: image.id.clone(),
                status: 200,
                answer: (self.answer)(image, task),
            },
        }
    }
}

impl Ingest {
    /// What every way in checks of an image's bytes: they are an image we keep, and its thumbnail
    /// can be made within the decode budget (one that cannot is refused now rather than stored
    /// with a thumbnail that will never exist). CPU work: for blocking threads.
    pub fn check(&self, bytes: &[u8]) -> Result<Probe, MediaError> {
        let probe = media::probe(bytes)?;
        media::cost::check(bytes, &probe, self.jobs.max_side(), self.decode_budget)?;
        Ok(probe)
    }

    /// For a hub taking in a sync stream on a blocking thread: hands checked bytes to the writer
    /// under `new`'s id and file name, without waiting for the commit (see `Submitted`). The name
    /// is kept: one the owner already uses fails as `Conflict`, it is not renamed.
    pub fn submit_blocking(
        &self,
        new: &Incoming,
        probe: &Probe,
        bytes: Bytes,
    ) -> Result<Submitted, StoreError> {
        let blob = BlobHash::of(&bytes);
        let sha256 = Some(Sha256::of(&bytes));
        let (image, task) = records(new, probe.into(), blob, bytes.len() as u64, 0);
        let receipt = self.writer.submit_blocking(Upload {
            image: image.clone(),
            bytes,
            task: task.clone(),
            sha256,
            key: None,
        })?;
        Ok(Submitted {
            image,
            task,
            receipt,
            jobs: self.jobs.clone(),
        })
    }
}

/// An image handed to the writer whose commit is still to come.
pub struct Submitted {
    pub image: ImageRecord,
    pub task: TaskRecord,
    receipt: Receipt,
    jobs: Arc<Jobs>,
}

impl Submitted {
    /// Waits for the commit; once the image is durable, queues its thumbnail.
    pub fn wait_blocking(self) -> Result<(ImageRecord, TaskRecord), StoreError> {
        self.receipt.wait_blocking()?;
        tracing::info!(image_id = %self.image.id, user_id = %self.image.user_id, size = self.image.file_size, "image saved");
        self.jobs
            .enqueue(Some(self.task.task_id.clone()), self.image.blob);
        Ok((self.image, self.task))
    }
}

/// Everything about a new image besides its bytes and what they are.
#[derive(Debug, Clone)]
pub struct Incoming {
    pub owner: UserId,
    pub category: Category,
    pub original_url: Option<String>,
    pub page_url: Option<String>,
    pub page_title: Option<String>,
    /// `pageInfo.imageContext` as JSON text.
    pub context_json: Option<String>,
    /// When it was saved; `None` is now.
    pub saved_at: Option<Micros>,
    /// A file name to keep if the owner has no image by that name yet (imports of an export,
    /// images received by sync); `None`, or a taken name, gets a fresh one.
    pub filename: Option<String>,
    /// An id to keep (images received by sync keep their sender's); `None` makes one.
    pub id: Option<ImageId>,
    pub tags: Tags,
    /// The size to record when no bytes come with the image (`Ingest::save_known`).
    pub size: Option<u64>,
}

/// Longest URL kept (`original_url`, `page_url`), in bytes.
pub const MAX_URL: usize = 8 * 1024;
/// Longest page title kept, in bytes.
pub const MAX_TITLE: usize = 2 * 1024;
/// Longest `imageContext` kept, in bytes of JSON text.
pub const MAX_CONTEXT: usize = 8 * 1024;
/// Strings inside an over-long `imageContext` are cut to this many bytes first.
const MAX_CONTEXT_STRING: usize = 1024;

/// Truncates `image`'s page metadata to the caps above.
pub fn cap_metadata(image: &mut ImageRecord) {
    for (field, cap) in [
        (&mut image.original_url, MAX_URL),
        (&mut image.page_url, MAX_URL),
        (&mut image.page_title, MAX_TITLE),
    ] {
        if let Some(text) = field {
            truncate(text, cap);
        }
    }
    if let Some(context) = &mut image.context_json {
        if context.len() > MAX_CONTEXT {
            *context = cap_context(context);
        }
    }
}

/// Cuts `text` to at most `cap` bytes, at a character boundary.
fn truncate(text: &mut String, cap: usize) {
    if text.len() > cap {
        let mut end = cap;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
}

/// An over-long `imageContext` made to fit: long strings cut, then the object's entries kept in
/// order while they fit, with `"truncated": true` added. Anything that is not a JSON object (or
/// not JSON) is kept as a cut string under `value`.
fn cap_context(json: &str) -> String {
    use serde_json::{Map, Value};
    fn cut_strings(value: &mut Value) {
        match value {
            Value::String(s) => truncate(s, MAX_CONTEXT_STRING),
            Value::Array(items) => items.iter_mut().for_each(cut_strings),
            Value::Object(map) => map.values_mut().for_each(cut_strings),
            _ => {}
        }
    }
    let mut value = match serde_json::from_str::<Value>(json) {
        Ok(Value::Object(map)) => Value::Object(map),
        _ => {
            let mut text = json.to_string();
            truncate(&mut text, MAX_CONTEXT_STRING);
            Value::Object(Map::from_iter([("value".to_string(), Value::String(text))]))
        }
    };
    cut_strings(&mut value);
    let Value::Object(map) = value else {
        unreachable!("made an object above")
    };
    let mut kept = Map::new();
    let mut size = "{\"truncated\":true}".len();
    for (key, value) in map {
        let entry = serde_json::to_string(&key).unwrap_or_default().len()
            + serde_json::to_string(&value).unwrap_or_default().len()
            + 2;
        if size + entry > MAX_CONTEXT {
            break;
        }
        size += entry;
        kept.insert(key, value);
    }
    kept.insert("truncated".into(), Value::Bool(true));
    Value::Object(kept).to_string()
}

/// File names tried before giving up. A generated name repeats only if two images of one user
/// share a second and 32 random bits.
pub const NAME_TRIES: usize = 4;

/// The records of a new image of `size` bytes with hash `blob`, for try number `attempt` at a free
/// file name: the first try keeps `new.filename` if there is one, every other try makes a name.
pub fn records(
    new: &Incoming,
    shape: Shape,
    blob: BlobHash,
    size: u64,
    attempt: usize,
) -> (ImageRecord, TaskRecord) {
    let now = clock::now();
    let saved_at = new.saved_at.unwrap_or(now);
    let uuid = uuid::Uuid::new_v4();
    let filename = match &new.filename {
        Some(name) if attempt == 0 => name.clone(),
        _ => format!(
            "{}_{}_{}.{}",
            new.category,
            clock::filename_stamp(saved_at),
            &uuid.simple().to_string()[..8],
            shape.kind.ext()
        ),
    };
    let mut image = ImageRecord {
        // The file name carries the start of the id, as the seed's names do.
        id: new.id.clone().unwrap_or_else(|| format!("i-{uuid}").into()),
        user_id: new.owner.clone(),
        filename,
        category: new.category,
        kind: shape.kind,
        blob,
        original_url: new.original_url.clone(),
        page_url: new.page_url.clone(),
        page_title: new.page_title.clone(),
        context_json: new.context_json.clone(),
        saved_at,
        file_size: size,
        width: shape.width,
        height: shape.height,
        cloud_synced: false,
        task_id: TaskId::random(),
        tags: new.tags.iter().map(|t| t.as_str().to_string()).collect(),
        trashed_at: None,
        original: None,
        hub_stale: false,
    };
    cap_metadata(&mut image);
    let task = TaskRecord {
        task_id: image.task_id.clone(),
        user_id: new.owner.clone(),
        image_id: image.id.clone(),
        status: TaskStatus::Processing,
        error: None,
        created_at: now,
        updated_at: now,
    };
    (image, task)
}

/// Stores `bytes` as a new image with its `processing` task (so the media workers make its
/// thumbnail at the server's next start) in one commit of its own: for the command line, where no
/// server's group-commit writer runs. `Conflict` only if no free file name was found.
pub fn save(
    store: &Store,
    new: &Incoming,
    probe: &Probe,
    bytes: &[u8],
) -> Result<(ImageRecord, TaskRecord), StoreError> {
    let blob = BlobHash::of(bytes);
    for attempt in 0..NAME_TRIES {
        let (image, task) = records(new, probe.into(), blob, bytes.len() as u64, attempt);
        match store.save_image(&image, bytes, &task) {
            Ok(()) => return Ok((image, task)),
            Err(StoreError::Conflict) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(StoreError::Conflict)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_keeps_whole_characters() {
        let mut text = "图".repeat(1000);
        truncate(&mut text, 2048);
        assert!(text.len() <= 2048 && text.len() > 2040);
        assert!(text.chars().all(|c| c == '图'));
    }

    #[test]
    fn an_over_long_context_keeps_what_fits_and_says_it_was_cut() {
        let big = serde_json::json!({
            "alt": "a".repeat(5000),
            "caption": "short",
            "many": (0..2000).map(|i| i.to_string()).collect::<Vec<_>>(),
            "late": "b",
        })
        .to_string();
        let capped = cap_context(&big);
        assert!(capped.len() <= MAX_CONTEXT, "{}", capped.len());
        let value: serde_json::Value = serde_json::from_str(&capped).unwrap();
        assert_eq!(value["alt"].as_str().unwrap().len(), MAX_CONTEXT_STRING);
        assert_eq!(value["caption"], "short");
        assert_eq!(value["truncated"], true);
        let text = cap_context(&"x".repeat(20_000));
        assert!(text.len() <= MAX_CONTEXT);
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&text).unwrap()["value"]
                .as_str()
                .unwrap()
                .len(),
            MAX_CONTEXT_STRING
        );
    }
}
