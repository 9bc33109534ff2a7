//! Post-upload processing on a bounded pool of threads, off the async workers: an upload's task is
//! `processing` until its image has been decoded in full (under the decode limits) and `completed`
//! or `failed` after. The queue is bounded, so a burst of uploads waits for room instead of
//! starting a decode per request.
//!
//! Tasks that a previous run left `processing` are queued again at start-up; on shutdown the
//! workers finish the image in hand and leave the rest pending for the next start.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use tokio::sync::mpsc;

use crate::clock;
use crate::domain::BlobHash;
use crate::media::{self, ImageKind};
use crate::store::Store;

/// How many jobs may wait before uploads feel back-pressure.
const QUEUE_DEPTH: usize = 1024;

struct Job {
    task_id: String,
    blob: BlobHash,
    kind: ImageKind,
}

/// Handle to the worker pool.
pub struct Jobs {
    /// `None` once shut down; dropping the last sender closes the queue and wakes idle workers.
    tx: Mutex<Option<mpsc::Sender<Job>>>,
    stopping: Arc<AtomicBool>,
    workers: Mutex<Vec<JoinHandle<()>>>,
}

impl Jobs {
    /// Starts `workers` threads working on `store`.
    pub fn start(store: Arc<Store>, workers: usize) -> Self {
        let (tx, rx) = mpsc::channel::<Job>(QUEUE_DEPTH);
        let rx = Arc::new(Mutex::new(rx));
        let stopping = Arc::new(AtomicBool::new(false));
        let handles = (0..workers.max(1))
            .map(|i| {
                let (rx, store, stopping) = (rx.clone(), store.clone(), stopping.clone());
                std::thread::Builder::new()
                    .name(format!("imgvault-media-{i}"))
                    .spawn(move || work(&rx, &store, &stopping))
                    .expect("spawn a media worker thread")
            })
            .collect();
        Self {
            tx: Mutex::new(Some(tx)),
            stopping,
            workers: Mutex::new(handles),
        }
    }

    /// Queues a task; waits (asynchronously) while the queue is full.
    pub async fn enqueue(&self, task_id: String, blob: BlobHash, kind: ImageKind) {
        let job = Job {
            task_id,
            blob,
            kind,
        };
        let tx = self.tx.lock().expect("jobs lock").clone();
        let sent = match tx {
            Some(tx) => tx.send(job).await.is_ok(),
            None => false,
        };
        if !sent {
            tracing::debug!("media workers stopped; the task stays pending until the next start");
        }
    }

    /// Queues every task a previous run left `processing`.
    pub async fn resume_pending(&self, store: Arc<Store>) {
        let pending = tokio::task::spawn_blocking(move || {
            let tasks = store.pending_tasks()?;
            let mut jobs = Vec::with_capacity(tasks.len());
            for task in tasks {
                if let Some(image) = store.image(&task.image_id)? {
                    jobs.push((task.task_id, image.blob, image.kind));
                } else {
                    store.finish_task(&task.task_id, Err("图片已删除".into()), clock::now())?;
                }
            }
            Ok::<_, crate::store::StoreError>(jobs)
        })
        .await;
        match pending {
            Ok(Ok(jobs)) => {
                if !jobs.is_empty() {
                    tracing::info!(count = jobs.len(), "resuming unfinished tasks");
                }
                for (task_id, blob, kind) in jobs {
                    self.enqueue(task_id, blob, kind).await;
                }
            }
            Ok(Err(e)) => tracing::error!(error = %e, "could not list unfinished tasks"),
            Err(e) => tracing::error!(error = %e, "could not list unfinished tasks"),
        }
    }

    /// Stops taking jobs and waits for each worker to finish the one in hand.
    pub fn shutdown(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.tx.lock().expect("jobs lock").take();
        let handles = std::mem::take(&mut *self.workers.lock().expect("workers lock"));
        for h in handles {
            let _ = h.join();
        }
    }
}

fn work(rx: &Mutex<mpsc::Receiver<Job>>, store: &Store, stopping: &AtomicBool) {
    loop {
        let job = match rx.lock() {
            Ok(mut rx) => rx.blocking_recv(),
            Err(_) => return,
        };
        let Some(job) = job else { return };
        if stopping.load(Ordering::SeqCst) {
            return;
        }
        let outcome = process(store, &job);
        if let Err(reason) = &outcome {
            tracing::warn!(task_id = %job.task_id, %reason, "image processing failed");
        }
        if let Err(e) = store.finish_task(&job.task_id, outcome, clock::now()) {
            tracing::error!(task_id = %job.task_id, error = %e, "could not record the task's end");
        }
    }
}

/// Decodes the stored image in full; an image that does not decode fails its task.
fn process(store: &Store, job: &Job) -> Result<(), String> {
    let mut blob = store
        .blob(&job.blob)
        .map_err(|e| format!("读取图片失败: {e}"))?
        .ok_or_else(|| "图片已删除".to_string())?;
    let bytes = blob.read_all().map_err(|e| format!("读取图片失败: {e}"))?;
    media::decode(&bytes, job.kind)
        .map(|_| ())
        .map_err(|e| format!("图片解码失败: {e}"))
}
