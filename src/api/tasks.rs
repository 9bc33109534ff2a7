//! `GET /api/task/{task_id}`: the processing state of an upload. Open to anonymous callers, as the
//! seed says: task ids are random UUIDs, known only to whoever uploaded.

use std::sync::Arc;

use serde::Serialize;
use warp::{Filter, Rejection, Reply};

use super::{ApiError, blocking, reject, with_state};
use crate::store::records::TaskRecord;
use crate::{AppState, clock};

#[derive(Serialize)]
struct TaskReply {
    status: TaskView,
}

#[derive(Serialize)]
struct TaskView {
    task_id: String,
    user_id: String,
    status: &'static str,
    created_at: String,
    updated_at: String,
    image_id: String,
    /// Why processing failed; only present on failed tasks.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
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
        }
    }
}

pub fn routes(
    state: Arc<AppState>,
) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    warp::path!("api" / "task" / String)
        .and(warp::get())
        .and(with_state(state))
        .and_then(|task_id: String, state: Arc<AppState>| async move {
            let task = blocking(move || state.store.task(&task_id)?.ok_or(ApiError::TaskNotFound))
                .await
                .map_err(reject)?;
            Ok::<_, Rejection>(warp::reply::json(&TaskReply {
                status: task.into(),
            }))
        })
}
