//! Tasks: processing tasks are on the pending index, sync tasks off it (kept by `store::tasks` and
//! `store::sync`).

use super::*;

/// Tasks and the index of the pending ones.
pub(super) fn check_tasks(
    tx: &ReadTransaction,
    report: &mut CheckReport,
    out: &mut Findings,
) -> Result<()> {
    let mut processing = HashSet::new();
    let mut all = HashSet::new();
    for entry in tx.open_table(TASKS)?.iter()? {
        let (id, raw) = entry?;
        let id = id.value().to_string();
        match TaskRecord::decode(raw.value()) {
            Ok(task) if task.status == TaskStatus::Processing => {
                processing.insert(id.clone());
            }
            Ok(_) => {}
            Err(e) => out.unrepairable(format!("task {id}: {e}")),
        }
        all.insert(id);
    }
    report.tasks = all.len() as u64;
    // Cloud-sync tasks are processing without being media work: they stay off the pending index.
    for entry in tx.open_table(SYNC_TASKS)?.iter()? {
        let (id, raw) = entry?;
        let id = id.value().to_string();
        let decodes = SyncProgressRecord::decode(raw.value()).map(|_| ());
        if !all.contains(&id) {
            out.found(
                format!("sync progress of task {id}, which does not exist"),
                Some(Fix::RemoveSyncTask(id.clone())),
            );
        } else if let Err(e) = decodes {
            out.found(
                format!("sync progress of task {id}: {e}"),
                Some(Fix::RemoveSyncTask(id.clone())),
            );
        }
        processing.remove(&id);
    }
    let pending: HashSet<String> = tx
        .open_table(PENDING_TASKS)?
        .iter()?
        .map(|e| e.map(|(k, _)| k.value().to_string()))
        .collect::<std::result::Result<_, _>>()?;
    let mut missing: Vec<_> = processing.difference(&pending).collect();
    missing.sort();
    for id in missing {
        out.found(
            format!(
                "task {id} is processing but not in the pending index, so it would never resume"
            ),
            Some(Fix::AddPending(id.clone())),
        );
    }
    let mut stale: Vec<_> = pending.difference(&processing).collect();
    stale.sort();
    for id in stale {
        let why = if all.contains(id) {
            "is not processing"
        } else {
            "does not exist"
        };
        out.found(
            format!("pending index entry {id}: the task {why}"),
            Some(Fix::RemovePending(id.clone())),
        );
    }
    Ok(())
}

#[derive(Debug)]
pub(super) enum Fix {
    AddPending(String),
    RemovePending(String),
    RemoveSyncTask(String),
}

impl Repair for Fix {
    fn apply(&self, tx: &WriteTransaction) -> Result<()> {
        match self {
            Self::AddPending(id) => {
                tx.open_table(PENDING_TASKS)?.insert(id.as_str(), ())?;
            }
            Self::RemovePending(id) => {
                tx.open_table(PENDING_TASKS)?.remove(id.as_str())?;
            }
            Self::RemoveSyncTask(id) => {
                tx.open_table(SYNC_TASKS)?.remove(id.as_str())?;
            }
        }
        Ok(())
    }
}
