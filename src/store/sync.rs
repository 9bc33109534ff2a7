//! What cloud sync keeps in the data file: the hub session of each local login, which images the
//! hub holds (`cloud_synced`, set batch by batch so an interrupted sync resumes where it stopped)
//! and which of those changed since (`hub_stale`), images deleted here that the hub still holds
//! (`HUB_DELETIONS`), the progress of sync tasks, and on a hub the last sync each account sent.

use std::collections::HashSet;

use bytes::Bytes;
use redb::ReadableTable;

use super::records::{
    HubSessionRecord, HubSyncRecord, ImageRecord, Record, SyncProgressRecord, TaskRecord,
    TaskStatus,
};
use super::tables::*;
use super::{Result, Store, StoreError};
use crate::clock::Micros;
use crate::domain::{BlobHash, ImageId, TaskId, UserId};

impl Store {
    /// On a hub: records the sync `user_id` just sent, replacing the one before.
    pub fn record_hub_sync(&self, user_id: &UserId, sync: &HubSyncRecord) -> Result<()> {
        let tx = self.write()?;
        tx.open_table(HUB_SYNCS)?
            .insert(user_id.as_str(), sync.encode().as_slice())?;
        self.finish(tx)?;
        Ok(())
    }

    /// On a hub: the last sync `user_id` sent, if any.
    pub fn last_hub_sync(&self, user_id: &UserId) -> Result<Option<HubSyncRecord>> {
        let tx = self.read()?;
        let table = tx.open_table(HUB_SYNCS)?;
        let found = table.get(user_id.as_str())?;
        found.map(|v| HubSyncRecord::decode(v.value())).transpose()
    }

    pub fn hub_session(&self, token_hash: &[u8; 32]) -> Result<Option<HubSessionRecord>> {
        let tx = self.read()?;
        let table = tx.open_table(HUB_SESSIONS)?;
        let found = table.get(token_hash)?;
        found
            .map(|v| HubSessionRecord::decode(v.value()))
            .transpose()
    }

    /// Forgets a hub session the hub no longer accepts.
    pub fn drop_hub_session(&self, token_hash: &[u8; 32]) -> Result<()> {
        let tx = self.write()?;
        tx.open_table(HUB_SESSIONS)?.remove(token_hash)?;
        self.finish(tx)?;
        Ok(())
    }

    /// What the next sync of `user_id` sends, oldest first: live images the hub does not hold,
    /// and images it holds (live or trashed) that changed since (`hub_stale`).
    pub fn unsynced_images(&self, user_id: &UserId) -> Result<Vec<ImageRecord>> {
        let mut out: Vec<ImageRecord> = self
            .user_images(user_id)?
            .into_iter()
            .filter(|i| !i.cloud_synced || i.hub_stale)
            .collect();
        let tx = self.read()?;
        let images = tx.open_table(IMAGES)?;
        let user = user_id.as_str();
        for entry in tx
            .open_table(USER_TRASH)?
            .range((user, i64::MIN, "")..=(user, i64::MAX, "\u{10FFFF}"))?
        {
            let (key, _) = entry?;
            let id = key.value().2;
            let raw = images.get(id)?.ok_or_else(|| {
                StoreError::Corrupt(format!("trash index points at missing image {id}"))
            })?;
            let image = ImageRecord::decode(raw.value())?;
            if image.cloud_synced && image.hub_stale {
                out.push(image);
            }
        }
        out.sort_by(|a, b| (a.saved_at, &a.id).cmp(&(b.saved_at, &b.id)));
        Ok(out)
    }

    /// Images of `user_id` deleted for good here that the hub may still hold.
    pub fn hub_deletions(&self, user_id: &UserId) -> Result<Vec<ImageId>> {
        let tx = self.read()?;
        let user = user_id.as_str();
        let mut out = Vec::new();
        for entry in tx
            .open_table(HUB_DELETIONS)?
            .range((user, "")..=(user, "\u{10FFFF}"))?
        {
            out.push(ImageId::from(entry?.0.value().1));
        }
        Ok(out)
    }

    /// Forgets deletions the hub has carried out.
    pub fn forget_hub_deletions(&self, user_id: &UserId, ids: &[ImageId]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let tx = self.write()?;
        {
            let mut table = tx.open_table(HUB_DELETIONS)?;
            for id in ids {
                table.remove((user_id.as_str(), id.as_str()))?;
            }
        }
        self.finish(tx)?;
        Ok(())
    }

    /// Every image of `user_id`, oldest first.
    pub fn user_images(&self, user_id: &UserId) -> Result<Vec<ImageRecord>> {
        let tx = self.read()?;
        let index = tx.open_table(USER_IMAGES)?;
        let images = tx.open_table(IMAGES)?;
        let mut out = Vec::new();
        for entry in index
            .range((user_id.as_str(), i64::MIN, "")..=(user_id.as_str(), i64::MAX, "\u{10FFFF}"))?
        {
            let (key, _) = entry?;
            let (_, _, image_id) = key.value();
            let record = images.get(image_id)?.ok_or_else(|| {
                StoreError::Corrupt(format!("time index points at missing image {image_id}"))
            })?;
            out.push(ImageRecord::decode(record.value())?);
        }
        Ok(out)
    }

    /// The blobs `user_id`'s images use, live or trashed, edited or original: what the hub may
    /// reuse without being sent the bytes.
    pub fn user_blobs(&self, user_id: &UserId) -> Result<HashSet<BlobHash>> {
        let tx = self.read()?;
        let images = tx.open_table(IMAGES)?;
        let user = user_id.as_str();
        let mut ids = Vec::new();
        for entry in tx
            .open_table(USER_IMAGES)?
            .range((user, i64::MIN, "")..=(user, i64::MAX, "\u{10FFFF}"))?
        {
            ids.push(entry?.0.value().2.to_string());
        }
        for entry in tx
            .open_table(USER_TRASH)?
            .range((user, i64::MIN, "")..=(user, i64::MAX, "\u{10FFFF}"))?
        {
            ids.push(entry?.0.value().2.to_string());
        }
        let mut out = HashSet::new();
        for id in ids {
            if let Some(raw) = images.get(id.as_str())? {
                out.extend(ImageRecord::decode(raw.value())?.blobs().copied());
            }
        }
        Ok(out)
    }

    /// A whole blob in memory; `None` if the store does not hold it.
    pub fn blob_bytes(&self, hash: &BlobHash) -> Result<Option<Bytes>> {
        self.blob(hash)?.map(|mut b| b.read_all()).transpose()
    }

    /// Sets `cloud_synced` on these images in one commit. Ids that no longer exist are skipped
    /// (deleted while the batch was on its way).
    pub fn mark_synced(&self, image_ids: &[ImageId]) -> Result<usize> {
        let tx = self.write()?;
        let mut marked = 0;
        {
            let mut images = tx.open_table(IMAGES)?;
            for id in image_ids {
                let record = images
                    .get(id.as_str())?
                    .map(|v| ImageRecord::decode(v.value()))
                    .transpose()?;
                if let Some(mut image) = record.filter(|i| !i.cloud_synced || i.hub_stale) {
                    image.cloud_synced = true;
                    image.hub_stale = false;
                    images.insert(id.as_str(), image.encode().as_slice())?;
                    marked += 1;
                }
            }
        }
        self.finish(tx)?;
        Ok(marked)
    }

    /// Opens a sync task, `processing`. Sync tasks are not media work: they stay off the pending
    /// list that the media workers resume.
    pub fn create_sync_task(&self, task: &TaskRecord, progress: &SyncProgressRecord) -> Result<()> {
        let tx = self.write()?;
        tx.open_table(TASKS)?
            .insert(task.task_id.as_str(), task.encode().as_slice())?;
        tx.open_table(SYNC_TASKS)?
            .insert(task.task_id.as_str(), progress.encode().as_slice())?;
        self.finish(tx)?;
        Ok(())
    }

    pub fn sync_progress(&self, task_id: &TaskId) -> Result<Option<SyncProgressRecord>> {
        let tx = self.read()?;
        let table = tx.open_table(SYNC_TASKS)?;
        let found = table.get(task_id.as_str())?;
        found
            .map(|v| SyncProgressRecord::decode(v.value()))
            .transpose()
    }

    /// Records progress; with `outcome`, also ends the task `completed` or `failed`.
    pub fn update_sync_task(
        &self,
        task_id: &TaskId,
        progress: &SyncProgressRecord,
        outcome: Option<Result<(), String>>,
        at: Micros,
    ) -> Result<()> {
        let task_id = task_id.as_str();
        let tx = self.write()?;
        {
            tx.open_table(SYNC_TASKS)?
                .insert(task_id, progress.encode().as_slice())?;
            let mut tasks = tx.open_table(TASKS)?;
            let task = tasks
                .get(task_id)?
                .map(|v| TaskRecord::decode(v.value()))
                .transpose()?;
            if let Some(mut task) = task {
                task.updated_at = at;
                if let Some(outcome) = outcome {
                    (task.status, task.error) = match outcome {
                        Ok(()) => (TaskStatus::Completed, None),
                        Err(why) => (TaskStatus::Failed, Some(why)),
                    };
                }
                tasks.insert(task_id, task.encode().as_slice())?;
            }
        }
        self.finish(tx)?;
        Ok(())
    }

    /// Ends sync tasks a previous run left `processing` (it stopped mid-sync); returns how many.
    /// What they synced stays synced; the next sync sends the rest.
    pub fn abandon_sync_tasks(&self, at: Micros) -> Result<usize> {
        let ids: Vec<TaskId> = {
            let tx = self.read()?;
            let table = tx.open_table(SYNC_TASKS)?;
            let mut ids = Vec::new();
            for entry in table.iter()? {
                ids.push(entry?.0.value().into());
            }
            ids
        };
        let mut ended = 0;
        for id in ids {
            if self
                .task(&id)?
                .is_some_and(|t| t.status == TaskStatus::Processing)
            {
                let progress = self.sync_progress(&id)?.unwrap_or_default();
                self.update_sync_task(
                    &id,
                    &progress,
                    Some(Err("服务器重启，同步中断；再次同步将从中断处继续".into())),
                    at,
                )?;
                ended += 1;
            }
        }
        Ok(ended)
    }
}
