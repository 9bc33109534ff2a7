//! Processing tasks of uploads: created `processing` with their image, finished once by the media
//! worker, and listed at start-up when a previous run stopped before finishing them.

use redb::{ReadableTable, WriteTransaction};

use super::records::{Record, TaskRecord, TaskStatus};
use super::tables::*;
use super::{Result, Store};
use crate::clock::Micros;
use crate::domain::TaskId;

/// Ends a pending task inside `tx` (see `Store::finish_task`).
pub(super) fn finish_in(
    tx: &WriteTransaction,
    task_id: &str,
    outcome: Result<(), &str>,
    at: Micros,
) -> Result<()> {
    if tx.open_table(PENDING_TASKS)?.remove(task_id)?.is_none() {
        return Ok(());
    }
    let mut tasks = tx.open_table(TASKS)?;
    let mut task = match tasks.get(task_id)? {
        Some(v) => TaskRecord::decode(v.value())?,
        None => return Ok(()),
    };
    task.updated_at = at;
    match outcome {
        Ok(()) => task.status = TaskStatus::Completed,
        Err(reason) => {
            task.status = TaskStatus::Failed;
            task.error = Some(reason.to_string());
        }
    }
    tasks.insert(task_id, task.encode().as_slice())?;
    Ok(())
}

impl Store {
    pub fn task(&self, task_id: &TaskId) -> Result<Option<TaskRecord>> {
        let tx = self.read()?;
        let tasks = tx.open_table(TASKS)?;
        let found = tasks.get(task_id.as_str())?;
        found.map(|v| TaskRecord::decode(v.value())).transpose()
    }

    /// Marks a task `completed` (`Ok`) or `failed` with its reason, in a commit of its own. A
    /// task that is no longer pending is left as it is.
    pub fn finish_task(
        &self,
        task_id: &TaskId,
        outcome: Result<(), String>,
        at: Micros,
    ) -> Result<()> {
        let tx = self.write_derived()?;
        finish_in(
            &tx,
            task_id.as_str(),
            outcome.as_ref().map_err(String::as_str).copied(),
            at,
        )?;
        self.finish(tx)?;
        Ok(())
    }

    /// Every task still `processing`, oldest id order; read from the small pending index.
    pub fn pending_tasks(&self) -> Result<Vec<TaskRecord>> {
        let tx = self.read()?;
        let pending = tx.open_table(PENDING_TASKS)?;
        let tasks = tx.open_table(TASKS)?;
        let mut out = Vec::new();
        for entry in pending.iter()? {
            let (id, _) = entry?;
            if let Some(task) = tasks.get(id.value())? {
                out.push(TaskRecord::decode(task.value())?);
            }
        }
        Ok(out)
    }
}
