//! Thumbnail generation in the background, bounded: at most `workers` images are decoded at once
//! (a semaphore shared by the queue workers and by requests that need a thumbnail now), on
//! dedicated threads at a lower CPU priority, never on the async workers. Their memory is bounded
//! too: each decode first takes what `media::cost` says it will allocate from one budget of
//! decoded bytes (`Limits::decode_budget`, a semaphore counting KiB), so decodes running together
//! never hold more than the budget; an image costing more than the whole budget is not decoded
//! (uploads refuse it; one that came another way gets a failed thumbnail).
//! The queue is bounded too; an upload never waits for room in it: when it is full the task simply stays on the pending list in the data file,
//! and the workers list pending work again once the queue has drained.
//!
//! An upload's task stays `processing` until its thumbnail exists, then becomes `completed`, or
//! `failed` with the reason when the image does not decode. Requests for one image's thumbnail
//! while it is being made wait for that single generation. Work left by a previous run (pending
//! tasks, the thumbnail backlog of older data files) is queued again at start-up; on shutdown the
//! images in hand are finished and the rest stays pending for the next start.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::{OnceCell, Semaphore, mpsc};
use tokio::task::JoinHandle;

use crate::clock;
use crate::domain::{BlobHash, TaskId};
use crate::media::{self, MediaError, thumbnail};
use crate::store::records::{ImageRecord, ThumbRecord};
use crate::store::revisit::Revisited;
use crate::store::{NewThumbnail, TaskEnd};
use crate::store::{Store, StoreError};
use crate::writer::{Derived, Writer};

/// Jobs held in memory; beyond this, work waits in the data file's pending list.
const QUEUE_DEPTH: usize = 1024;

/// A thumbnail to make, and the upload task waiting for it, if any.
struct Job {
    task_id: Option<TaskId>,
    source: BlobHash,
}

/// The thumbnail of a source, or why none could be read or written (a store failure: the task is
/// failed, the thumbnail route falls back to the original).
pub type Outcome = Result<ThumbRecord, String>;

pub struct Jobs {
    store: Arc<Store>,
    writer: Writer,
    max_side: u32,
    workers: u32,
    permits: Arc<Semaphore>,
    /// The decode budget, in KiB.
    decode: Arc<Semaphore>,
    decode_kib: u64,
    pool: Pool,
    inflight: Mutex<HashMap<BlobHash, Arc<OnceCell<Outcome>>>>,
    /// `None` once shut down.
    tx: Mutex<Option<mpsc::Sender<Job>>>,
    rx: tokio::sync::Mutex<mpsc::Receiver<Job>>,
    stopping: AtomicBool,
    /// Work was left out of a full queue: list pending work again when it drains.
    overflowed: AtomicBool,
    handles: Mutex<Vec<JoinHandle<()>>>,
}

impl Jobs {
    /// Starts `workers` queue workers making thumbnails with a longest side of `max_side`, whose
    /// decodes together allocate at most `decode_budget` bytes.
    pub fn start(
        store: Arc<Store>,
        writer: Writer,
        workers: usize,
        max_side: u32,
        decode_budget: u64,
    ) -> Arc<Self> {
        let workers = workers.clamp(1, 64) as u32;
        let decode_kib = (decode_budget / 1024).clamp(1, u64::from(u32::MAX));
        let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
        let jobs = Arc::new(Self {
            store,
            writer,
            max_side,
            workers,
            permits: Arc::new(Semaphore::new(workers as usize)),
            decode: Arc::new(Semaphore::new(decode_kib as usize)),
            decode_kib,
            pool: Pool::start(workers as usize),
            inflight: Mutex::new(HashMap::new()),
            tx: Mutex::new(Some(tx)),
            rx: tokio::sync::Mutex::new(rx),
            stopping: AtomicBool::new(false),
            overflowed: AtomicBool::new(false),
            handles: Mutex::new(Vec::new()),
        });
        let handles = (0..workers)
            .map(|_| tokio::spawn(work(jobs.clone())))
            .collect();
        *jobs.handles.lock().expect("handles lock") = handles;
        jobs
    }

    /// Runs `work` on the media threads with the whole decode budget to itself, passed as its
    /// allowance: for a decode outside the thumbnail queue (an edit) that must not add to what
    /// the queue's decodes hold. Waits for those running to finish (the budget's semaphore is
    /// fair, so later thumbnails wait behind it). `None` when shutting down.
    pub async fn with_whole_budget<T: Send + 'static>(
        &self,
        work: impl FnOnce(u64) -> T + Send + 'static,
    ) -> Option<T> {
        let _granted = self
            .decode
            .clone()
            .acquire_many_owned(self.decode_kib as u32)
            .await
            .ok()?;
        let budget = self.decode_kib * 1024;
        self.pool.run(move || work(budget)).await
    }

    pub fn max_side(&self) -> u32 {
        self.max_side
    }

    /// Queues the thumbnail of `source` for the upload task `task_id`. Never waits: with the
    /// queue full, the work stays pending in the data file and is listed again later.
    pub fn enqueue(&self, task_id: Option<TaskId>, source: BlobHash) {
        let tx = self.tx.lock().expect("jobs lock").clone();
        let Some(tx) = tx else {
            tracing::debug!("shutting down; the task stays pending until the next start");
            return;
        };
        if let Err(mpsc::error::TrySendError::Full(_)) = tx.try_send(Job { task_id, source }) {
            self.overflowed.store(true, Ordering::SeqCst);
        }
    }

    /// Thumbnails waiting in the queue (not those still pending in the data file after it
    /// overflowed).
    pub fn queued(&self) -> usize {
        let tx = self.tx.lock().expect("jobs lock");
        tx.as_ref()
            .map_or(0, |tx| tx.max_capacity() - tx.capacity())
    }

    fn queue_is_empty(&self) -> bool {
        let tx = self.tx.lock().expect("jobs lock");
        tx.as_ref()
            .is_some_and(|tx| tx.capacity() == tx.max_capacity())
    }

    /// The thumbnail of `source`: the stored one if it is current, otherwise made now. Concurrent
    /// callers for the same source share one generation.
    pub async fn thumbnail(&self, source: BlobHash) -> Outcome {
        self.thumbnail_for(source, None).await.0
    }

    /// `thumbnail`, for the upload task `task` if any. Also says whether the task's end was
    /// stored in the thumbnail's commit, which only the caller that ran the generation can do.
    async fn thumbnail_for(&self, source: BlobHash, task: Option<&TaskId>) -> (Outcome, bool) {
        let cell = self
            .inflight
            .lock()
            .expect("inflight lock")
            .entry(source)
            .or_default()
            .clone();
        let mut task_ended = false;
        let outcome = cell
            .get_or_init(|| self.generate(source, task, &mut task_ended))
            .await
            .clone();
        let mut inflight = self.inflight.lock().expect("inflight lock");
        if inflight.get(&source).is_some_and(|c| Arc::ptr_eq(c, &cell)) {
            inflight.remove(&source);
        }
        (outcome, task_ended)
    }

    /// Makes and stores the thumbnail of `source` unless a current one exists: the store is read
    /// on the blocking pool, the pixels are worked on the low-priority media threads, and the
    /// result, with the end of `task`, is stored by the writer.
    async fn generate(
        &self,
        source: BlobHash,
        task: Option<&TaskId>,
        task_ended: &mut bool,
    ) -> Outcome {
        let Ok(_permit) = self.permits.clone().acquire_owned().await else {
            return Err("shutting down".to_string());
        };
        let (store, max_side) = (self.store.clone(), self.max_side);
        let loaded = tokio::task::spawn_blocking(move || load(&store, source, max_side))
            .await
            .unwrap_or_else(|e| Err(e.to_string()))?;
        let (record, thumbnail) = match loaded {
            Loaded::Current(record) => (record, None),
            Loaded::Source(bytes, cost) => {
                let (record, bytes, phash) = match cost {
                    Ok((_, cost)) if cost.div_ceil(1024) <= self.decode_kib => {
                        let kib = cost.div_ceil(1024) as u32;
                        let Ok(_granted) = self.decode.clone().acquire_many_owned(kib).await else {
                            return Err("shutting down".to_string());
                        };
                        let started = std::time::Instant::now();
                        let made = self
                            .pool
                            .run(move || render(source, &bytes, max_side, cost))
                            .await
                            .ok_or_else(|| "thumbnail worker failed".to_string())?;
                        let ready = matches!(made.0, ThumbRecord::Ready { .. });
                        crate::metrics::get().thumbnail(ready, started.elapsed());
                        made
                    }
                    Ok((probe, cost)) => failed(&MediaError::OverBudget {
                        width: probe.width,
                        height: probe.height,
                        cost,
                        budget: self.decode_kib * 1024,
                    }),
                    Err(e) => failed(&e),
                };
                let made = NewThumbnail {
                    source,
                    record: record.clone(),
                    bytes,
                    phash,
                };
                (record, Some(made))
            }
        };
        let task_end = task.map(|task_id| TaskEnd {
            task_id: task_id.clone(),
            outcome: task_result(&Ok(record.clone())),
            at: clock::now(),
        });
        if thumbnail.is_none() && task_end.is_none() {
            return Ok(record);
        }
        let ends_task = task_end.is_some();
        self.writer
            .save_derived(Derived {
                thumbnail,
                task_end,
            })
            .await
            .map_err(|e| e.to_string())?;
        *task_ended = ends_task;
        Ok(record)
    }

    /// Queues what a previous run left: tasks still `processing` and the thumbnail backlog.
    pub async fn resume(&self) {
        let store = self.store.clone();
        let found = tokio::task::spawn_blocking(move || {
            let mut jobs = Vec::new();
            for task in store.pending_tasks()? {
                match store.image(&task.image_id)? {
                    Some(image) => jobs.push((Some(task.task_id), image.blob)),
                    None => {
                        store.finish_task(&task.task_id, Err("图片已删除".into()), clock::now())?
                    }
                }
            }
            jobs.extend(store.thumb_backlog()?.into_iter().map(|b| (None, b)));
            Ok::<_, StoreError>(jobs)
        })
        .await;
        match found {
            Ok(Ok(jobs)) => {
                if !jobs.is_empty() {
                    tracing::info!(count = jobs.len(), "queueing unfinished thumbnails");
                }
                for (task_id, source) in jobs {
                    self.enqueue(task_id, source);
                }
            }
            Ok(Err(e)) => tracing::error!(error = %e, "could not list unfinished work"),
            Err(e) => tracing::error!(error = %e, "could not list unfinished work"),
        }
    }

    /// Works through the images a schema-7 migration listed for another look (`store::revisit`),
    /// a batch at a time on the media threads, beside the thumbnail work: each image's bytes are
    /// probed again, its record corrected to the size it is shown at, and its thumbnail made again
    /// where the pipeline would now make a different one (a colour profile or EXIF, an original
    /// reused that should not be, or one that failed). Stops at shutdown; the rest waits in the
    /// data file for the next start.
    pub async fn revisit(self: Arc<Self>) {
        let (mut resized, mut remade) = (0, 0);
        loop {
            if self.stopping.load(Ordering::SeqCst) {
                return;
            }
            let store = self.store.clone();
            let listed = tokio::task::spawn_blocking(move || store.to_revisit(REVISIT_BATCH)).await;
            let images = match listed {
                Ok(Ok(images)) if images.is_empty() => break,
                Ok(Ok(images)) => images,
                Ok(Err(e)) => {
                    return tracing::error!(error = %e, "could not list images to revisit");
                }
                Err(e) => return tracing::error!(error = %e, "could not list images to revisit"),
            };
            let Ok(_permit) = self.permits.acquire().await else {
                return;
            };
            let (store, max_side) = (self.store.clone(), self.max_side);
            let Some(found) = self
                .pool
                .run(move || {
                    images
                        .iter()
                        .map(|image| look_again(&store, image, max_side))
                        .collect::<Vec<_>>()
                })
                .await
            else {
                return;
            };
            let store = self.store.clone();
            let saved = {
                let found = found.clone();
                tokio::task::spawn_blocking(move || store.revisited(&found)).await
            };
            if !matches!(saved, Ok(Ok(()))) {
                return tracing::error!("could not record revisited images");
            }
            for seen in &found {
                resized += usize::from(seen.size.is_some());
                if let Some(source) = seen.remake {
                    remade += 1;
                    self.enqueue(None, source);
                }
            }
        }
        if resized + remade > 0 {
            tracing::info!(
                resized,
                remade,
                "images stored by an older version: sizes corrected, thumbnails queued again"
            );
        }
    }

    /// Makes the perceptual hashes of images stored before hashes existed (or hashed by an older
    /// algorithm): a batch of blobs at a time from `Store::phash_backlog`, each decoded like its
    /// thumbnail (on the media threads, under a worker permit and the decode budget, one blob's
    /// bytes in memory at a time) and the batch's hashes stored in one commit. What is stored is
    /// the progress: after a restart the pass goes on with the blobs still without a hash. Logs
    /// its progress every `PROGRESS_EVERY`; stops at shutdown.
    pub async fn hash_backlog(self: Arc<Self>) {
        let started = std::time::Instant::now();
        let mut logged = started;
        let (mut after, mut hashed, mut failed, mut looked) = (None, 0u64, 0u64, 0u64);
        loop {
            if self.stopping.load(Ordering::SeqCst) {
                return;
            }
            let store = self.store.clone();
            let listed = tokio::task::spawn_blocking(move || {
                store.phash_backlog(after.as_ref(), HASH_BATCH)
            })
            .await;
            let (blobs, seen, last) = match listed {
                Ok(Ok(listed)) => listed,
                Ok(Err(e)) => return tracing::error!(error = %e, "could not list images to hash"),
                Err(e) => return tracing::error!(error = %e, "could not list images to hash"),
            };
            looked += seen;
            if blobs.is_empty() {
                break;
            }
            after = last;
            let mut made = Vec::with_capacity(blobs.len());
            for source in blobs {
                match self.hash_of(source).await {
                    Some(Ok(hash)) => made.push((source, hash)),
                    Some(Err(reason)) => {
                        failed += 1;
                        tracing::debug!(%reason, "no perceptual hash for a stored image");
                    }
                    None => return,
                }
            }
            if !made.is_empty() {
                let store = self.store.clone();
                let count = made.len() as u64;
                let saved = tokio::task::spawn_blocking(move || store.put_phashes(&made)).await;
                if !matches!(saved, Ok(Ok(()))) {
                    return tracing::error!("could not store perceptual hashes");
                }
                hashed += count;
            }
            if logged.elapsed() >= PROGRESS_EVERY {
                logged = std::time::Instant::now();
                tracing::info!(
                    hashed,
                    failed,
                    looked,
                    "hashing stored images for similar search"
                );
            }
        }
        if hashed + failed > 0 {
            tracing::info!(
                hashed,
                failed,
                seconds = started.elapsed().as_secs(),
                "stored images hashed for similar search"
            );
        }
    }

    /// The perceptual hash of `source`, decoded as its thumbnail is; `None` when shutting down.
    async fn hash_of(&self, source: BlobHash) -> Option<Result<u64, String>> {
        let _permit = self.permits.acquire().await.ok()?;
        let (store, max_side) = (self.store.clone(), self.max_side);
        let loaded = tokio::task::spawn_blocking(move || {
            let bytes = match store.blob(&source) {
                Ok(Some(mut blob)) => blob.read_all().map_err(|e| e.to_string())?,
                Ok(None) => return Err("图片已删除".to_string()),
                Err(e) => return Err(e.to_string()),
            };
            let probe = media::probe(&bytes).map_err(|e| e.to_string())?;
            let cost = media::cost::plan(&bytes, &probe, max_side).bytes;
            Ok((bytes, probe.kind, cost))
        })
        .await;
        let (bytes, kind, cost) = match loaded {
            Ok(Ok(loaded)) => loaded,
            Ok(Err(reason)) => return Some(Err(reason)),
            Err(e) => return Some(Err(e.to_string())),
        };
        let kib = cost.div_ceil(1024);
        if kib > self.decode_kib {
            return Some(Err("over the decode budget".to_string()));
        }
        let _granted = self
            .decode
            .clone()
            .acquire_many_owned(kib as u32)
            .await
            .ok()?;
        let hashed = self
            .pool
            .run(move || {
                thumbnail::shown(&bytes, kind, max_side, cost)
                    .map(|image| media::phash::hash(&image))
                    .map_err(|e| e.to_string())
            })
            .await;
        Some(hashed.unwrap_or_else(|| Err("hashing worker failed".to_string())))
    }

    /// Stops taking jobs and waits until no image is being processed.
    pub async fn shutdown(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.tx.lock().expect("jobs lock").take();
        // Holding every permit means no generation is running or can start.
        if let Ok(all) = self.permits.acquire_many(self.workers).await {
            all.forget();
        }
        self.permits.close();
        for handle in std::mem::take(&mut *self.handles.lock().expect("handles lock")) {
            handle.abort();
        }
    }
}

/// Threads that decode and encode at a lower CPU priority than the request handlers, so that on a
/// small machine a burst of thumbnails uses the idle CPU and does not slow down upload answers.
struct Pool {
    tx: std::sync::mpsc::Sender<Box<dyn FnOnce() + Send>>,
}

impl Pool {
    fn start(threads: usize) -> Self {
        let (tx, rx) = std::sync::mpsc::channel::<Box<dyn FnOnce() + Send>>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("imgvault-media-{i}"))
                .spawn(move || {
                    lower_priority();
                    loop {
                        let job = rx.lock().expect("pool lock").recv();
                        match job {
                            // A panicking decoder must not take the thread with it.
                            Ok(job) => {
                                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                            }
                            Err(_) => return,
                        }
                    }
                });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "could not start a media thread");
            }
        }
        Self { tx }
    }

    /// Runs `f` on a pool thread; `None` if it panicked or the pool is gone.
    async fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
        let (done, result) = tokio::sync::oneshot::channel();
        let job = Box::new(move || {
            let _ = done.send(f());
        });
        self.tx.send(job).ok()?;
        result.await.ok()
    }
}

/// Nice 10 for the calling thread (Linux schedules threads separately); elsewhere a no-op.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority only reads its integer arguments; `who = 0` is the calling thread.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, 0, 10);
    }
}

async fn work(jobs: Arc<Jobs>) {
    loop {
        let job = jobs.rx.lock().await.recv().await;
        let Some(job) = job else { return };
        if jobs.stopping.load(Ordering::SeqCst) {
            return;
        }
        let (outcome, task_ended) = jobs.thumbnail_for(job.source, job.task_id.as_ref()).await;
        if jobs.overflowed.load(Ordering::SeqCst)
            && jobs.queue_is_empty()
            && jobs.overflowed.swap(false, Ordering::SeqCst)
        {
            tracing::debug!("queue drained; listing pending work again");
            let again = jobs.clone();
            tokio::spawn(async move { again.resume().await });
        }
        let Some(task_id) = job.task_id else { continue };
        let result = task_result(&outcome);
        if let Err(reason) = &result {
            tracing::warn!(%task_id, %reason, "image processing failed");
        }
        if task_ended {
            continue;
        }
        // Another caller made the thumbnail, or it could not be made or stored.
        let end = Derived {
            thumbnail: None,
            task_end: Some(TaskEnd {
                task_id,
                outcome: result,
                at: clock::now(),
            }),
        };
        if let Err(e) = jobs.writer.save_derived(end).await {
            tracing::error!(error = %e, "could not record the end of a task");
        }
    }
}

/// A task ends `completed` once its thumbnail exists, `failed` when the image does not decode or
/// its thumbnail could not be stored.
fn task_result(outcome: &Outcome) -> Result<(), String> {
    match outcome {
        Ok(ThumbRecord::Ready { .. }) => Ok(()),
        Ok(ThumbRecord::Failed { reason }) => Err(reason.clone()),
        Err(reason) => Err(reason.clone()),
    }
}

/// Images looked at again per batch (`Jobs::revisit`).
const REVISIT_BATCH: usize = 32;
/// Blobs hashed per commit by the background pass (`Jobs::hash_backlog`).
const HASH_BATCH: usize = 32;
/// How often the background hashing pass logs its progress.
const PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// What looking at `image` again finds (nothing, if its bytes cannot be read or probed).
fn look_again(store: &Store, image: &ImageRecord, max_side: u32) -> Revisited {
    let mut seen = Revisited {
        image_id: image.id.clone(),
        size: None,
        remake: None,
    };
    let bytes = match store.blob(&image.blob) {
        Ok(Some(mut blob)) => blob.read_all(),
        _ => return seen,
    };
    let Ok(bytes) = bytes else {
        return seen;
    };
    let Ok(probe) = media::probe(&bytes) else {
        return seen;
    };
    if (probe.width, probe.height) != (image.width, image.height) {
        seen.size = Some((probe.width, probe.height));
    }
    let remake = match store.thumbnail(&image.blob) {
        Ok(Some(ThumbRecord::Ready { blob, .. })) if blob == image.blob => {
            !reusable(&probe, &bytes, max_side)
        }
        Ok(Some(ThumbRecord::Ready { .. })) => probe.metadata,
        Ok(Some(ThumbRecord::Failed { .. })) => true,
        Ok(None) | Err(_) => false,
    };
    seen.remake = remake.then_some(image.blob);
    seen
}

/// What `generate` finds in the store.
enum Loaded {
    /// A thumbnail for the current setting, or the verdict that the source does not decode.
    Current(ThumbRecord),
    /// The source's bytes, to make its thumbnail from, and what that will allocate.
    Source(Bytes, Result<(media::Probe, u64), MediaError>),
}

fn load(store: &Store, source: BlobHash, max_side: u32) -> Result<Loaded, String> {
    let err = |e: StoreError| e.to_string();
    match store.thumbnail(&source).map_err(err)? {
        Some(ready @ ThumbRecord::Ready { max_side: m, .. }) if m == max_side => {
            return Ok(Loaded::Current(ready));
        }
        Some(failed @ ThumbRecord::Failed { .. }) => return Ok(Loaded::Current(failed)),
        _ => {}
    }
    let Some(mut blob) = store.blob(&source).map_err(err)? else {
        return Err("图片已删除".into());
    };
    let bytes = blob.read_all().map_err(err)?;
    let cost = media::probe(&bytes).map(|p| (p, media::cost::plan(&bytes, &p, max_side).bytes));
    Ok(Loaded::Source(bytes, cost))
}

/// The thumbnail record of the image `bytes` (whose hash is `source`), with the thumbnail's own
/// bytes when it needs a blob of its own, and the image's perceptual hash. CPU work only, for the
/// media threads.
fn render(
    source: BlobHash,
    bytes: &[u8],
    max_side: u32,
    allowance: u64,
) -> (ThumbRecord, Vec<u8>, Option<u64>) {
    let made = media::probe(bytes).and_then(|probe| {
        thumbnail::make_within(bytes, probe.kind, max_side, allowance).map(|t| (probe, t))
    });
    match made {
        // A small image, shown as stored and carrying nothing personal, that its thumbnail would
        // not make smaller: the original is the better thumbnail, and a second copy only costs
        // space.
        Ok((probe, t)) if reusable(&probe, bytes, max_side) && t.bytes.len() >= bytes.len() => (
            ThumbRecord::Ready {
                blob: source,
                kind: probe.kind,
                width: probe.width,
                height: probe.height,
                max_side,
            },
            Vec::new(),
            Some(t.phash),
        ),
        Ok((_, t)) => (
            ThumbRecord::Ready {
                blob: BlobHash::of(&t.bytes),
                kind: t.kind,
                width: t.width,
                height: t.height,
                max_side,
            },
            t.bytes,
            Some(t.phash),
        ),
        Err(e) => failed(&e),
    }
}

/// Whether an original may serve as its own thumbnail: it fits, needs no turning, carries no
/// EXIF, XMP or colour profile, and every client shows its format.
fn reusable(probe: &media::Probe, bytes: &[u8], max_side: u32) -> bool {
    let shown_everywhere = match probe.kind {
        media::ImageKind::Jpeg => {
            media::jpeg::frame_header(bytes).is_some_and(|f| f.shown_everywhere())
        }
        media::ImageKind::Avif => false,
        _ => true,
    };
    probe.width.max(probe.height) <= max_side
        && probe.orientation == image::metadata::Orientation::NoTransforms
        && !probe.metadata
        && shown_everywhere
}

fn failed(e: &MediaError) -> (ThumbRecord, Vec<u8>, Option<u64>) {
    (
        ThumbRecord::Failed {
            reason: format!("图片解码失败: {e}"),
        },
        Vec::new(),
        None,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_support::{add_user, new_image, temp_store};

    /// A `w`×`h` JPEG whose EXIF says to turn it by 90° clockwise to show it (orientation 6).
    fn turned_jpeg(w: u32, h: u32) -> Vec<u8> {
        let img = image::RgbImage::from_fn(w, h, |x, _| image::Rgb([(x * 4) as u8, 90, 200]));
        let mut plain = std::io::Cursor::new(Vec::new());
        img.write_to(&mut plain, image::ImageFormat::Jpeg).unwrap();
        let plain = plain.into_inner();
        let mut exif = b"Exif\0\0MM\0\x2a\0\0\0\x08\0\x01".to_vec();
        exif.extend_from_slice(&[0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 6, 0, 0, 0, 0, 0, 0]);
        let mut out = plain[..2].to_vec();
        out.extend_from_slice(&[0xFF, 0xE1]);
        out.extend_from_slice(&((exif.len() + 2) as u16).to_be_bytes());
        out.extend_from_slice(&exif);
        out.extend_from_slice(&plain[2..]);
        out
    }

    #[test]
    fn a_turned_photo_stored_with_its_header_size_is_corrected_and_its_thumbnail_remade() {
        let (_dir, store) = temp_store();
        add_user(&store, "u");
        let bytes = turned_jpeg(64, 48);
        let (mut image, task) = new_image("i-1", "u", 1, &bytes);
        (image.kind, image.width, image.height) = (media::ImageKind::Jpeg, 64, 48);
        store.save_image(&image, &bytes, &task).unwrap();
        // What the pipeline used to do with a small JPEG: serve the original as its thumbnail.
        let reused = ThumbRecord::Ready {
            blob: image.blob,
            kind: media::ImageKind::Jpeg,
            width: 64,
            height: 48,
            max_side: 512,
        };
        store
            .put_thumbnail(&image.blob, &reused, &bytes, None)
            .unwrap();

        let seen = look_again(&store, &image, 512);
        assert_eq!(seen.size, Some((48, 64)));
        assert_eq!(seen.remake, Some(image.blob));

        let (mut upright, _) = new_image("i-2", "u", 2, b"x");
        upright.blob = image.blob;
        (upright.width, upright.height) = (48, 64);
        let seen = look_again(&store, &upright, 512);
        assert_eq!(seen.size, None, "already the size it is shown at");
    }
}
