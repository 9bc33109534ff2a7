//! `GET /api/task/{task_id}`: the processing state of an upload, or the progress and outcome of a
//! cloud sync. Open to anonymous callers, as the seed says: task ids are random UUIDs, known only
//! to whoever started them.

use std::sync::Arc;

use serde::Serialize;
use warp::{Filter, Rejection, Reply};

use super::AppState;
use super::error::ErrorReply;
use super::{ApiError, blocking, reject, with_state};
use crate::clock;
use crate::domain::{ImageId, TaskId, UserId};
use crate::store::records::{SyncProgressRecord, TaskRecord};

#[derive(Serialize, utoipa::ToSchema)]
struct TaskReply {
    status: TaskView,
}

#[derive(Serialize, utoipa::ToSchema)]
struct TaskView {
    task_id: TaskId,
    user_id: UserId,
    status: &'static str,
    created_at: String,
    updated_at: String,
    image_id: ImageId,
    /// Why processing failed; only present on failed tasks.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    /// Cloud-sync tasks only.
    #[serde(skip_serializing_if = "Option::is_none")]
    progress: Option<SyncProgressView>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct SyncProgressView {
    total_images: u64,
    synced_images: u64,
    files_sent: u64,
    bytes_sent: u64,
    batches: u64,
    total_files_missing: u64,
    refused_count: u64,
    refused: Vec<RefusedView>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct RefusedView {
    id: ImageId,
    reason: String,
}

impl From<SyncProgressRecord> for SyncProgressView {
    fn from(p: SyncProgressRecord) -> Self {
        Self {
            total_images: p.total,
            synced_images: p.synced,
            files_sent: p.files_sent,
            bytes_sent: p.bytes_sent,
            batches: p.batches,
            total_files_missing: p.missing,
            refused_count: p.refused_count,
            refused: p
                .refused
                .into_iter()
                .map(|(id, reason)| RefusedView {
                    id: id.into(),
                    reason,
                })
                .collect(),
        }
    }
}

impl From<TaskRecord> for TaskView {
    fn from(t: TaskRecord) -> Self {
        Self {
            status: t.status.as_str(),
            created_at: clock::display(t.created_at),
            updated_at: clock::display(t.updated_at),
            task_id: t.task_id,
            user_id: t.user_id,
            image_id: t.image_id,
            error: t.error,
            progress: None,
        }
    }
}

pub fn routes(
    state: Arc<AppState>,
) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    warp::path!("api" / "task" / TaskId)
        .and(warp::get())
        .and(with_state(state))
        .and_then(task)
}

/// The operations of this module in the OpenAPI document (`openapi`).
#[derive(utoipa::OpenApi)]
#[openapi(paths(task))]
pub(super) struct Doc;

/// An upload's processing (its thumbnail), or a cloud sync's progress and outcome.
#[utoipa::path(
    get,
    path = "/api/task/{task_id}",
    operation_id = "task_status",
    tag = "status",
    security(()),
    params(("task_id" = TaskId, Path, description = "As the upload or `/api/cloud/sync` answered.")),
    responses(
        (status = 200, description = "The task.", body = TaskReply),
        (status = 404, description = "No such task: `{\"error\": \"任务不存在\"}`.", body = ErrorReply),
    )
)]
async fn task(task_id: TaskId, state: Arc<AppState>) -> Result<impl Reply, Rejection> {
    let (task, progress) = blocking(move || {
        let task = state.store.task(&task_id)?.ok_or(ApiError::TaskNotFound)?;
        Ok((task, state.store.sync_progress(&task_id)?))
    })
    .await
    .map_err(reject)?;
    let mut view = TaskView::from(task);
    view.progress = progress.map(Into::into);
    Ok(warp::reply::json(&TaskReply { status: view }))
}
