//! Naming and recording new images: the one place that makes image ids, the seed's file names and
//! processing tasks, shared by the upload routes and `imgvault import`, so an imported image is
//! indistinguishable from an uploaded one.
//!
//! The caller has already sniffed and probed the bytes; nothing here looks at pixels or HTTP.

use crate::clock::{self, Micros};
use crate::domain::{BlobHash, Category};
use crate::media::Probe;
use crate::store::records::{ImageRecord, TaskRecord, TaskStatus};
use crate::store::{Store, StoreError};

/// Everything about a new image besides its bytes.
#[derive(Debug, Clone)]
pub struct Incoming {
    pub owner: String,
    pub category: Category,
    pub probe: Probe,
    pub original_url: Option<String>,
    pub page_url: Option<String>,
    pub page_title: Option<String>,
    /// `pageInfo.imageContext` as JSON text.
    pub context_json: Option<String>,
    /// When it was saved; `None` is now.
    pub saved_at: Option<Micros>,
    /// A file name to keep if the owner has no image by that name yet (imports of an export);
    /// `None`, or a taken name, gets a fresh one.
    pub filename: Option<String>,
}

/// File names tried before giving up. A generated name repeats only if two images of one user
/// share a second and 32 random bits.
pub const NAME_TRIES: usize = 4;

/// The records of a new image of `size` bytes with hash `blob`, for try number `attempt` at a free
/// file name: the first try keeps `new.filename` if there is one, every other try makes a name.
pub fn records(
    new: &Incoming,
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
            new.probe.kind.ext()
        ),
    };
    let image = ImageRecord {
        id: format!("i-{uuid}"),
        user_id: new.owner.clone(),
        filename,
        category: new.category,
        kind: new.probe.kind,
        blob,
        original_url: new.original_url.clone(),
        page_url: new.page_url.clone(),
        page_title: new.page_title.clone(),
        context_json: new.context_json.clone(),
        saved_at,
        file_size: size,
        width: new.probe.width,
        height: new.probe.height,
        cloud_synced: false,
        task_id: format!("t-{}", uuid::Uuid::new_v4()),
    };
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
    bytes: &[u8],
) -> Result<(ImageRecord, TaskRecord), StoreError> {
    let blob = BlobHash::of(bytes);
    for attempt in 0..NAME_TRIES {
        let (image, task) = records(new, blob, bytes.len() as u64, attempt);
        match store.save_image(&image, bytes, &task) {
            Ok(()) => return Ok((image, task)),
            Err(StoreError::Conflict) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(StoreError::Conflict)
}
