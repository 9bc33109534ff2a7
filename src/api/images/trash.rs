//! The caller's trash: listing it and emptying it. Images get there by `DELETE` and by the batch
//! action `trash`, leave it by the batch actions `restore` and `delete_forever`, and are deleted
//! for good by the server `--trash-days` after they were trashed (`lib::purge_trash`).

use std::collections::HashMap;
use std::sync::Arc;

use serde::Serialize;
use warp::{Filter, Rejection, Reply};

use super::list::{ImageList, ImageView};
use crate::api::auth::{Caller, require_user};
use crate::api::{AppState, blocking, reject, with_state};

pub fn routes(
    state: Arc<AppState>,
) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    let list = warp::path!("api" / "user" / "trash")
        .and(warp::get())
        .and(with_state(state.clone()))
        .and(require_user(state.clone()))
        .and(warp::query::<HashMap<String, String>>())
        .and_then(list);
    let empty = warp::path!("api" / "user" / "trash" / "empty")
        .and(warp::post())
        .and(with_state(state.clone()))
        .and(require_user(state))
        .and_then(empty);
    list.or(empty)
}

/// The trash in the shape of the image list, most recently trashed first.
#[utoipa::path(
    get,
    path = "/api/user/trash",
    operation_id = "list_trash",
    tag = "images",
    params(
        ("page" = Option<u64>, Query, description = "From 1 (the default)."),
        ("per_page" = Option<u64>, Query, description = "1 to 100, 20 by default."),
    ),
    responses((status = 200, description = "A page of the trash; each image has `trashed_at`.", body = ImageList))
)]
async fn list(
    state: Arc<AppState>,
    caller: Caller,
    query: HashMap<String, String>,
) -> Result<impl Reply, Rejection> {
    let (page, per_page) = super::list::paging(&query);
    let user_id = caller.user.user_id;
    let found = blocking(move || Ok(state.store.list_trash(&user_id, page, per_page)?))
        .await
        .map_err(reject)?;
    Ok(warp::reply::json(&ImageList {
        pages: found.total.div_ceil(per_page),
        images: found.images.into_iter().map(ImageView::from).collect(),
        total: found.total,
        page,
        per_page,
        category: None,
        facets: None,
    }))
}

#[derive(Serialize, utoipa::ToSchema)]
struct Emptied {
    success: bool,
    message: &'static str,
    deleted: u64,
}

/// Deletes everything in the caller's trash for good.
#[utoipa::path(
    post,
    path = "/api/user/trash/empty",
    operation_id = "empty_trash",
    tag = "images",
    responses((status = 200, description = "Emptied.", body = Emptied))
)]
async fn empty(state: Arc<AppState>, caller: Caller) -> Result<impl Reply, Rejection> {
    let user_id = caller.user.user_id;
    let deleted = blocking(move || Ok(state.store.empty_trash(&user_id)?))
        .await
        .map_err(reject)?;
    if deleted > 0 {
        tracing::info!(deleted, "trash emptied");
    }
    Ok(warp::reply::json(&Emptied {
        success: true,
        message: "回收站已清空",
        deleted,
    }))
}
