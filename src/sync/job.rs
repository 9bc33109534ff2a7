//! A sync of one user's unsynced images to the hub. It asks the hub first which images it still
//! needs (the manifest step), then sends the rest in batches of the seed's SyncData shape, a few MB
//! each. Each batch the hub acknowledges sets `cloud_synced` on its images in one commit, so a
//! crash or an outage resumes where it stopped and sends nothing twice. A file the hub already
//! holds for this user, or one already sent in this sync, travels as metadata only. Local data is
//! never changed except for those flags.
//!
//! Images the hub holds that changed here since (tags, category, trash: `hub_stale`) go again as
//! metadata only, and images deleted here are named in the manifest for the hub to delete.
//!
//! A hub without the manifest step (the original project's cloud server) gets every live image
//! with its file, in the same batches; it answers with counts, so a batch it stored only partly is sent
//! again one image at a time to learn which ones it took.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use base64::Engine;

use super::hub::{BatchAnswer, Hub, HubError, HubLogin};
use super::wire::{
    ManifestEntry, ManifestRequest, Refusal, SyncData, SyncImage, SyncReply, SyncStatistics,
    SyncUser,
};
use crate::clock;
use crate::domain::{BlobHash, ImageId, TaskId, UserId};
use crate::store::Store;
use crate::store::records::{ImageRecord, SyncProgressRecord, UserRecord};

/// Raw image bytes per sync request; base64 makes the body about 4/3 of this.
pub const BATCH_BYTES: u64 = 4 * 1024 * 1024;
/// Images per sync request, whatever their size.
pub const BATCH_IMAGES: usize = 200;
/// How many refusal reasons a task keeps.
const KEEP_REFUSALS: usize = 20;

/// The syncs running now: user id → the task id of that user's sync. One per user at a time.
#[derive(Default)]
pub struct Running(std::sync::Mutex<HashMap<UserId, TaskId>>);

impl Running {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<UserId, TaskId>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The task of `user_id`'s running sync.
    pub fn task_of(&self, user_id: &UserId) -> Option<TaskId> {
        self.map().get(user_id).cloned()
    }

    /// Records `task_id` as `user_id`'s running sync; `Err` with the task already running.
    pub fn start(&self, user_id: &UserId, task_id: &TaskId) -> Result<(), TaskId> {
        let mut map = self.map();
        if let Some(running) = map.get(user_id) {
            return Err(running.clone());
        }
        map.insert(user_id.clone(), task_id.clone());
        Ok(())
    }

    pub fn end(&self, user_id: &UserId) {
        self.map().remove(user_id);
    }
}

/// How far a batch got.
#[derive(PartialEq)]
enum Sent {
    /// The hub answered for every image.
    Whole,
    /// The original's hub stored some of a batch's files, without saying which.
    Partly,
}

/// One running sync of one user's images.
pub struct SyncJob {
    pub store: Arc<Store>,
    pub hub: Hub,
    pub running: Arc<Running>,
    pub user: UserRecord,
    pub login: HubLogin,
    pub local_token_hash: [u8; 32],
    pub task_id: TaskId,
    pub images: Vec<ImageRecord>,
}

impl SyncJob {
    /// Runs to the end, recording progress on the task as it goes.
    pub async fn run(self) {
        let mut progress = SyncProgressRecord {
            total: self.images.len() as u64,
            ..Default::default()
        };
        let outcome = self.sync(&mut progress).await;
        let (outcome, log) = match outcome {
            Ok(()) => (Ok(()), None),
            Err(e) => (Err(e.to_string()), Some(e)),
        };
        if let Some(HubError::Expired) = log {
            let store = self.store.clone();
            let hash = self.local_token_hash;
            let _ = tokio::task::spawn_blocking(move || store.drop_hub_session(&hash)).await;
        }
        match &log {
            None => tracing::info!(
                user_id = %self.user.user_id, synced = progress.synced, files = progress.files_sent,
                bytes = progress.bytes_sent, missing = progress.missing, refused = progress.refused_count,
                "cloud sync finished"
            ),
            Some(e) => {
                tracing::warn!(user_id = %self.user.user_id, error = %e, synced = progress.synced, "cloud sync failed")
            }
        }
        self.record(&progress, Some(outcome)).await;
        self.running.end(&self.user.user_id);
    }

    async fn sync(&self, progress: &mut SyncProgressRecord) -> Result<(), HubError> {
        let deleted = {
            let (store, user_id) = (self.store.clone(), self.user.user_id.clone());
            tokio::task::spawn_blocking(move || store.hub_deletions(&user_id))
                .await
                .map_err(|e| HubError::Network(e.to_string()))?
                .map_err(|e| HubError::Network(format!("local store: {e}")))?
        };
        let manifest = ManifestRequest {
            images: self
                .images
                .iter()
                .map(|i| ManifestEntry {
                    id: i.id.clone(),
                    blake3: i.blob.to_hex(),
                })
                .collect(),
            deleted,
        };
        let (needed, mut on_hub) = match self.hub.manifest(&self.login, &manifest).await? {
            Some(answer) => {
                if let Some(done) = answer.deleted {
                    let (store, user_id) = (self.store.clone(), self.user.user_id.clone());
                    tokio::task::spawn_blocking(move || {
                        store.forget_hub_deletions(&user_id, &done)
                    })
                    .await
                    .map_err(|e| HubError::Network(e.to_string()))?
                    .map_err(|e| HubError::Network(format!("local store: {e}")))?;
                }
                // Changes to images it holds go again, as metadata (their bytes are on the hub).
                let needed: HashSet<ImageId> = answer
                    .needed
                    .into_iter()
                    .chain(
                        self.images
                            .iter()
                            .filter(|i| i.hub_stale)
                            .map(|i| i.id.clone()),
                    )
                    .collect();
                let on_hub: HashSet<BlobHash> = answer
                    .have_blobs
                    .iter()
                    .filter_map(|h| BlobHash::from_hex(h))
                    .collect();
                (needed, Some(on_hub))
            }
            // The original's hub: every live image it lacks goes, each with its file. It keeps no
            // tags or trash, so changes to images it holds have nothing to carry.
            None => (
                self.images
                    .iter()
                    .filter(|i| !i.cloud_synced && !i.is_trashed())
                    .map(|i| i.id.clone())
                    .collect(),
                None,
            ),
        };
        // The hub already holds these as they are (or cannot take them): record that, send
        // nothing.
        let held: Vec<ImageId> = self
            .images
            .iter()
            .filter(|i| !needed.contains(&i.id))
            .map(|i| i.id.clone())
            .collect();
        if !held.is_empty() {
            progress.synced += self.mark(held).await? as u64;
            self.record(progress, None).await;
        }

        let pending: Vec<&ImageRecord> = self
            .images
            .iter()
            .filter(|i| needed.contains(&i.id))
            .collect();
        let mut pending = pending.into_iter().peekable();
        while pending.peek().is_some() {
            let mut batch = Vec::new();
            let mut batch_bytes = 0u64;
            while let Some(image) = pending.peek() {
                if !batch.is_empty()
                    && (batch.len() >= BATCH_IMAGES || batch_bytes + image.file_size > BATCH_BYTES)
                {
                    break;
                }
                batch_bytes += image.file_size;
                batch.push(pending.next().expect("peeked"));
            }
            if self.send(&batch, &mut on_hub, progress).await? == Sent::Partly {
                // The original's hub says how many files it stored, not which: one at a time,
                // each answer is exact. It replaces what it got before, so resending is safe.
                for image in batch {
                    self.send(&[image], &mut on_hub, progress).await?;
                }
            }
        }
        Ok(())
    }

    /// Sends one batch and records what the hub confirmed. `on_hub` holds the blobs an imgvault
    /// hub already has, so their files are not sent; `None` for the original's hub, which needs
    /// every file.
    async fn send(
        &self,
        images: &[&ImageRecord],
        on_hub: &mut Option<HashSet<BlobHash>>,
        progress: &mut SyncProgressRecord,
    ) -> Result<Sent, HubError> {
        let mut batch = Vec::new();
        let mut files = HashMap::new();
        let mut batch_bytes = 0u64;
        let mut missing = 0u64;
        let mut categories = BTreeSet::new();
        for image in images {
            if !on_hub
                .as_ref()
                .is_some_and(|held| held.contains(&image.blob))
            {
                let store = self.store.clone();
                let blob = image.blob;
                let bytes = tokio::task::spawn_blocking(move || store.blob_bytes(&blob))
                    .await
                    .map_err(|e| HubError::Network(e.to_string()))?;
                let Ok(Some(bytes)) = bytes else {
                    tracing::warn!(image_id = %image.id, "image bytes missing; not synced");
                    missing += 1;
                    continue;
                };
                batch_bytes += bytes.len() as u64;
                let data_url = format!(
                    "data:{};base64,{}",
                    image.kind.mime(),
                    base64::engine::general_purpose::STANDARD.encode(&bytes)
                );
                files.insert(image.filename.clone(), data_url);
                // Later images with the same bytes travel as metadata only.
                if let Some(held) = on_hub {
                    held.insert(image.blob);
                }
            }
            categories.insert(image.category.as_str().to_string());
            batch.push(SyncImage::of(image));
        }
        progress.missing += missing;
        if batch.is_empty() {
            return Ok(Sent::Whole);
        }
        let ids: Vec<ImageId> = batch.iter().map(|i| i.id.clone()).collect();
        let data = SyncData {
            user_info: SyncUser {
                user_id: self.user.user_id.clone(),
                username: self.user.username.clone(),
                email: self.user.email.clone(),
                created_at: clock::display(self.user.created_at),
                last_login: self.user.last_login.map(clock::display),
                cloud_sync_enabled: true,
            },
            sync_statistics: SyncStatistics {
                total_metadata_records: batch.len() as u64,
                total_files_found: files.len() as u64,
                total_files_missing: missing,
                total_size: batch_bytes,
                categories: categories.into_iter().collect(),
            },
            images_metadata: batch,
            image_files: files,
            sync_timestamp: clock::iso(clock::now()),
        };
        let files_sent = data.image_files.len() as u64;
        let body = serde_json::to_vec(&data).expect("plain JSON");
        let body_len = body.len() as u64;
        let answer = self.hub.send_batch(&self.login, body).await?;
        progress.batches += 1;
        progress.files_sent += files_sent;
        progress.bytes_sent += body_len;
        crate::metrics::get().sync_batch(body_len);
        let reply = match answer {
            BatchAnswer::Ids(reply) => reply,
            BatchAnswer::Counts { failed: 0, .. } => SyncReply {
                accepted: ids,
                ..SyncReply::default()
            },
            BatchAnswer::Counts { .. } if ids.len() > 1 => return Ok(Sent::Partly),
            BatchAnswer::Counts { .. } => SyncReply {
                refused: vec![Refusal {
                    id: ids.into_iter().next().expect("one id"),
                    reason: "the hub did not store the file".into(),
                }],
                ..SyncReply::default()
            },
        };
        progress.synced += self.mark(reply.accepted).await? as u64;
        progress.refused_count += reply.refused.len() as u64;
        for r in reply.refused {
            tracing::warn!(image_id = %r.id, reason = %r.reason, "the hub refused an image");
            if progress.refused.len() < KEEP_REFUSALS {
                progress.refused.push((r.id.into_string(), r.reason));
            }
        }
        self.record(progress, None).await;
        Ok(Sent::Whole)
    }

    async fn mark(&self, ids: Vec<ImageId>) -> Result<usize, HubError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.mark_synced(&ids))
            .await
            .map_err(|e| HubError::Network(e.to_string()))?
            .map_err(|e| HubError::Network(format!("local store: {e}")))
    }

    async fn record(&self, progress: &SyncProgressRecord, outcome: Option<Result<(), String>>) {
        let store = self.store.clone();
        let (task_id, progress) = (self.task_id.clone(), progress.clone());
        let result = tokio::task::spawn_blocking(move || {
            store.update_sync_task(&task_id, &progress, outcome, clock::now())
        })
        .await;
        if !matches!(result, Ok(Ok(()))) {
            tracing::warn!(task_id = %self.task_id, "could not record sync progress");
        }
    }
}
