//! `GET /api/status`: liveness and the image total, answered from one counter.

use std::sync::Arc;

use serde::Serialize;
use warp::{Filter, Rejection, Reply};

use super::{reject, with_state};
use crate::{AppState, clock};

#[derive(Serialize)]
struct StatusReply {
    status: &'static str,
    timestamp: String,
    total_images: u64,
}

pub fn routes(
    state: Arc<AppState>,
) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    warp::path!("api" / "status")
        .and(warp::get())
        .and(with_state(state))
        .and_then(|state: Arc<AppState>| async move {
            // One counter read, in place (see `blocking`).
            let total_images = state.store.total_images().map_err(|e| reject(e.into()))?;
            Ok::<_, Rejection>(warp::reply::json(&StatusReply {
                status: "running",
                timestamp: clock::iso(clock::now()),
                total_images,
            }))
        })
}
