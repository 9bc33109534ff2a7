//! Group commit. Every acknowledged upload must be durable, and a durable redb commit costs an
//! fsync, so one commit per upload caps ingest at the disk's fsync rate. Uploads instead go to one
//! writer thread that takes whatever is waiting (up to a bound) and stores it in a single commit;
//! each upload's answer is sent only after the commit that holds it. The queue is bounded, so a
//! flood of uploads waits for room (back-pressure) instead of piling up in memory.
//!
//! The media workers' results (a thumbnail and the end of the task that waited for it) go through
//! the same thread and share those commits. That halves the commits per image, and it keeps redb's
//! single write lock off the media threads: they run at a low CPU priority, and a starved thread
//! holding the write lock would stall every upload behind it.

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use crate::domain::Sha256;
use crate::store::records::{ImageRecord, TaskRecord};
use crate::store::{
    Batch, NewImage, NewKey, NewThumbnail, Store, StoreError, TaskEnd, WriteFailure,
};

/// Items in one commit at most.
const MAX_BATCH: usize = 64;
/// Image bytes in one commit at most: bounds the transaction's dirty pages (memory).
const MAX_BATCH_BYTES: usize = 8 * 1024 * 1024;
/// Items waiting for the writer before senders wait.
const QUEUE_DEPTH: usize = 64;
/// Quiet time after which the writer hands freed memory back to the system (see `release_memory`).
const IDLE_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

/// A media worker's result: the thumbnail it made for `source`, and the task it ends.
pub struct Derived {
    pub thumbnail: Option<NewThumbnail>,
    pub task_end: Option<TaskEnd>,
}

/// An upload for the writer: what `NewImage` borrows, owned.
pub struct Upload {
    pub image: ImageRecord,
    /// Empty for a capture of bytes the store holds (see `NewImage`).
    pub bytes: Bytes,
    pub task: TaskRecord,
    pub sha256: Option<Sha256>,
    pub key: Option<NewKey>,
}

impl Upload {
    pub fn plain(image: ImageRecord, bytes: Bytes, task: TaskRecord) -> Self {
        Self {
            image,
            bytes,
            task,
            sha256: None,
            key: None,
        }
    }
}

#[expect(
    clippy::large_enum_variant,
    reason = "at most QUEUE_DEPTH items wait, and every upload carries its record anyway"
)]
enum Item {
    Upload(Upload),
    Derived(Derived),
}

impl Item {
    fn size(&self) -> usize {
        match self {
            Item::Upload(upload) => upload.bytes.len(),
            Item::Derived(d) => d.thumbnail.as_ref().map_or(0, |t| t.bytes.len()),
        }
    }
}

struct Pending {
    item: Item,
    reply: oneshot::Sender<Result<(), StoreError>>,
}

/// The outcome to come of an upload handed over by `Writer::submit_blocking`.
pub struct Receipt(oneshot::Receiver<Result<(), StoreError>>);

impl Receipt {
    /// Waits until the upload's commit is durable (`Ok`) or failed; for blocking threads.
    pub fn wait_blocking(self) -> Result<(), StoreError> {
        self.0.blocking_recv().map_err(|_| StoreError::Closed)?
    }
}

/// The handle the request handlers and the media workers share; cloning it is cheap.
#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<Pending>,
}

impl Writer {
    /// Starts the writer thread. It ends when the last handle is dropped, after finishing what
    /// was queued.
    pub fn start(store: Arc<Store>) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
        std::thread::Builder::new()
            .name("imgvault-writer".into())
            .spawn(move || {
                // Without this thread no upload can be stored; a server that stays up without it
                // answers every upload with an error. A panic here (a bug, or one in the
                // database) may also leave the database's memory in a state no commit should
                // follow, while the file itself is intact (two-phase commit). So the process
                // ends, and the service manager's restart reopens the file cleanly.
                if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(&store, rx)))
                    .is_err()
                {
                    tracing::error!(
                        "the upload writer failed; exiting so that a restart reopens the data file"
                    );
                    std::process::exit(70);
                }
            })?;
        Ok(Self { tx })
    }

    /// Stores an upload with its `processing` task; returns once it is durable. `Conflict` if the
    /// user already has an image of that file name, `Missing` or `KeyUsed` as `NewImage` says.
    pub async fn save(&self, upload: Upload) -> Result<(), StoreError> {
        self.send(Item::Upload(upload)).await
    }

    /// Stores a media worker's result as derived data: it is committed (readable) when this
    /// returns, and durable with the next durable commit (see `Store::commit`).
    pub async fn save_derived(&self, derived: Derived) -> Result<(), StoreError> {
        self.send(Item::Derived(derived)).await
    }

    /// Hands an upload to the writer from a blocking thread without waiting for its commit: a hub
    /// reading a long sync stream keeps several in flight so that they share commits. Waits only
    /// for room in the queue.
    pub fn submit_blocking(&self, upload: Upload) -> Result<Receipt, StoreError> {
        let (reply, answer) = oneshot::channel();
        let item = Item::Upload(upload);
        self.tx
            .blocking_send(Pending { item, reply })
            .map_err(|_| StoreError::Closed)?;
        Ok(Receipt(answer))
    }

    async fn send(&self, item: Item) -> Result<(), StoreError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Pending { item, reply })
            .await
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }
}

fn run(store: &Store, mut rx: mpsc::Receiver<Pending>) {
    // Only for the idle timer; everything else on this thread blocks as it did.
    let timer = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a timer for the writer thread");
    let mut quiet = true;
    loop {
        let next = if quiet {
            rx.blocking_recv()
        } else {
            // The timeout is made inside the runtime: its timer needs the runtime's clock.
            match timer.block_on(async { tokio::time::timeout(IDLE_AFTER, rx.recv()).await }) {
                Ok(next) => next,
                Err(_) => {
                    release_memory();
                    quiet = true;
                    continue;
                }
            }
        };
        let Some(first) = next else { break };
        quiet = false;
        let mut size = first.item.size();
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH && size < MAX_BATCH_BYTES {
            match rx.try_recv() {
                Ok(next) => {
                    size += next.item.size();
                    batch.push(next);
                }
                Err(_) => break,
            }
        }
        if let Err(refused) = store.disk().admit() {
            let why = refused.to_string();
            let (uploads, derived) = batch
                .into_iter()
                .partition::<Vec<_>, _>(|p| matches!(p.item, Item::Upload(_)));
            for pending in uploads {
                let _ = pending.reply.send(Err(StoreError::NoSpace(why.clone())));
            }
            batch = derived;
            if batch.is_empty() {
                continue;
            }
        }
        let started = std::time::Instant::now();
        let outcome = store.commit(&batch_of(&batch));
        let uploads = batch
            .iter()
            .filter(|p| matches!(p.item, Item::Upload(_)))
            .count();
        crate::metrics::get().commit(uploads, started.elapsed());
        tracing::debug!(
            items = batch.len(),
            bytes = size,
            ms = started.elapsed().as_secs_f64() * 1e3,
            "group commit"
        );
        match outcome {
            Ok(outcomes) => {
                let mut outcomes = outcomes.into_iter();
                for pending in batch {
                    let answer = match pending.item {
                        Item::Upload(_) => outcomes.next().unwrap_or(Ok(())),
                        Item::Derived(_) => Ok(()),
                    };
                    let _ = pending.reply.send(answer);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, items = batch.len(), "a group commit failed");
                let why = e.to_string();
                let failure = e.write_failure();
                for pending in batch {
                    let answer = match failure {
                        Some(WriteFailure::NoSpace) => StoreError::NoSpace(why.clone()),
                        Some(WriteFailure::Io) => StoreError::WriteFailed(why.clone()),
                        None => StoreError::Batch(why.clone()),
                    };
                    let _ = pending.reply.send(Err(answer));
                }
                if failure.is_some() {
                    // Now, rather than in the next reader's way.
                    let _ = store.reopen();
                }
            }
        }
    }
}

/// Hands the heap's free pages back to the system. A burst of uploads leaves request bodies and
/// decoded images freed inside the heap, where glibc keeps them resident: after 2000 uploads at
/// 32 clients the server stayed at 75 MiB until this brought it to 32 MiB. It runs once per quiet
/// spell, so its cost (a walk over the free lists) never meets a busy server.
fn release_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free memory to the system; it is thread-safe.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// The store's view of the waiting items, uploads in arrival order (their outcomes come back in
/// that order).
fn batch_of(pending: &[Pending]) -> Batch<'_> {
    let mut batch = Batch::default();
    for p in pending {
        match &p.item {
            Item::Upload(upload) => batch.uploads.push(NewImage {
                image: &upload.image,
                bytes: &upload.bytes,
                task: &upload.task,
                sha256: upload.sha256,
                key: upload.key.as_ref(),
            }),
            Item::Derived(d) => {
                batch.thumbnails.extend(&d.thumbnail);
                batch.task_ends.extend(&d.task_end);
            }
        }
    }
    batch
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_support::{new_image, temp_store};

    #[tokio::test]
    async fn uploads_after_a_quiet_spell_are_still_stored() {
        let (_dir, store) = temp_store();
        let store = Arc::new(store);
        let writer = Writer::start(store.clone()).unwrap();
        let (first, first_task) = new_image("i-1", "u", 1, b"first");
        writer
            .save(Upload::plain(
                first,
                Bytes::from_static(b"first"),
                first_task,
            ))
            .await
            .unwrap();
        // Past the quiet time, so the writer releases memory and waits afresh.
        tokio::time::sleep(IDLE_AFTER + IDLE_AFTER / 4).await;
        let (second, second_task) = new_image("i-2", "u", 2, b"second");
        writer
            .save(Upload::plain(
                second,
                Bytes::from_static(b"second"),
                second_task,
            ))
            .await
            .unwrap();
        assert!(store.image(&"i-1".into()).unwrap().is_some());
        assert!(store.image(&"i-2".into()).unwrap().is_some());
    }
}
