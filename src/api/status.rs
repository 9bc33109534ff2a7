//! `GET /api/status`: liveness and the image total, answered from one counter.

use std::sync::Arc;

use serde::Serialize;
use warp::{Filter, Rejection, Reply};

use super::AppState;
use super::{reject, with_state};
use crate::clock;

/// The seed pins `status` to `running`; the state of the storage is told beside it.
#[derive(Serialize, utoipa::ToSchema)]
struct StatusReply {
    status: &'static str,
    timestamp: String,
    total_images: u64,
    /// `true` while writes are refused (disk full or below `--min-free-mb`, or the data file is
    /// being reopened after an I/O error); reads and logins go on.
    degraded: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    degraded_reason: Option<String>,
}

/// The operations of this module in the OpenAPI document (`openapi`).
#[derive(utoipa::OpenApi)]
#[openapi(paths(status))]
pub(super) struct Doc;

pub fn routes(
    state: Arc<AppState>,
) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    warp::path!("api" / "status")
        .and(warp::get())
        .and(with_state(state))
        .and_then(status)
}

/// Whether the server runs, and how many images it holds.
#[utoipa::path(
    get,
    path = "/api/status",
    operation_id = "server_status",
    tag = "status",
    security(()),
    responses((status = 200, description = "The server is running.", body = StatusReply))
)]
async fn status(state: Arc<AppState>) -> Result<impl Reply, Rejection> {
    // One counter read, in place (see `blocking`).
    let store = &state.store;
    // A reopen may take a while (it repairs the file); status answers meanwhile.
    let total = if store.needs_reopen() {
        Ok(store.last_total_images())
    } else {
        store.total_images()
    };
    let (total_images, unreadable) = match total {
        Ok(total) => (total, None),
        Err(e) if e.write_failure().is_some() => (store.last_total_images(), Some(e.to_string())),
        Err(e) => return Err(reject(e.into())),
    };
    let degraded_reason = store.degraded().or(unreadable);
    Ok(warp::reply::json(&StatusReply {
        status: "running",
        timestamp: clock::iso(clock::now()),
        total_images,
        degraded: degraded_reason.is_some(),
        degraded_reason,
    }))
}
