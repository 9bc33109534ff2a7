//! `POST /api/cloud/sync`. Syncing to a hub is not built yet, so this answers with the seed's
//! "disabled" reply whatever `--cloud-url` says (the server warns about that at start-up).

use std::sync::Arc;

use warp::{Filter, Rejection, Reply};

use super::auth::require_user;
use super::{ApiError, reject};
use crate::AppState;

pub fn routes(
    state: Arc<AppState>,
) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    warp::path!("api" / "cloud" / "sync")
        .and(warp::post())
        .and(require_user(state))
        .and_then(|_user| async move {
            Err::<warp::reply::Response, _>(reject(ApiError::CloudSyncDisabled))
        })
}
