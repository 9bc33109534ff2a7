//! Group commit for uploads. Every acknowledged upload must be durable, and a durable redb commit
//! costs an fsync, so one commit per upload caps ingest at the disk's fsync rate. Uploads instead
//! go to one writer thread that takes whatever is waiting (up to a bound) and stores it in a single
//! commit; each upload's answer is sent only after the commit that holds it. The queue is bounded,
//! so a flood of uploads waits for room (back-pressure) instead of piling up in memory.

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use crate::store::records::{ImageRecord, TaskRecord};
use crate::store::{NewImage, Store, StoreError};

/// Uploads in one commit at most.
const MAX_BATCH: usize = 64;
/// Image bytes in one commit at most: bounds the transaction's dirty pages (memory).
const MAX_BATCH_BYTES: usize = 8 * 1024 * 1024;
/// Uploads waiting for the writer before senders wait.
const QUEUE_DEPTH: usize = 64;

struct Pending {
    image: ImageRecord,
    bytes: Bytes,
    task: TaskRecord,
    reply: oneshot::Sender<Result<(), StoreError>>,
}

/// The handle the request handlers share.
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
            .spawn(move || run(&store, rx))?;
        Ok(Self { tx })
    }

    /// Stores an upload with its `processing` task; returns once it is durable. `Conflict` if the
    /// user already has an image of that file name.
    pub async fn save(
        &self,
        image: ImageRecord,
        bytes: Bytes,
        task: TaskRecord,
    ) -> Result<(), StoreError> {
        let (reply, answer) = oneshot::channel();
        let pending = Pending {
            image,
            bytes,
            task,
            reply,
        };
        self.tx
            .send(pending)
            .await
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }
}

fn run(store: &Store, mut rx: mpsc::Receiver<Pending>) {
    while let Some(first) = rx.blocking_recv() {
        let mut size = first.bytes.len();
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH && size < MAX_BATCH_BYTES {
            match rx.try_recv() {
                Ok(next) => {
                    size += next.bytes.len();
                    batch.push(next);
                }
                Err(_) => break,
            }
        }
        let uploads: Vec<NewImage<'_>> = batch
            .iter()
            .map(|p| NewImage {
                image: &p.image,
                bytes: &p.bytes,
                task: &p.task,
            })
            .collect();
        let outcome = store.save_images(&uploads);
        drop(uploads);
        match outcome {
            Ok(outcomes) => {
                for (pending, outcome) in batch.into_iter().zip(outcomes) {
                    let _ = pending.reply.send(outcome);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, uploads = batch.len(), "a group commit failed");
                let why = e.to_string();
                for pending in batch {
                    let _ = pending.reply.send(Err(StoreError::Batch(why.clone())));
                }
            }
        }
    }
}
