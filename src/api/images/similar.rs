//! Near-duplicates over HTTP: the caller's images that look like one of theirs, nearest first, and
//! the caller's groups of near-duplicates for the "find duplicates" page. Both come from the
//! caller's hash index (`store::search::similar`); another user's images are never in it.

use std::collections::HashMap;
use std::sync::Arc;

use serde::Serialize;
use warp::{Filter, Rejection, Reply};

use super::ImagePath;
use super::list::ImageView;
use crate::api::auth::{Caller, require_user};
use crate::api::error::ErrorReply;
use crate::api::{ApiError, AppState, blocking, reject, with_state};
use crate::store::{MAX_CLUSTER_DISTANCE, MAX_DISTANCE, Similar};

/// `max_distance` when none is given: at 10 bits the quality bench finds ≥ 95% of near-duplicates
/// at ≥ 95% precision (`benches/phash.rs`).
pub const DEFAULT_DISTANCE: u32 = 10;
/// Matches answered at most, and by default.
const MAX_LIMIT: usize = 200;
const DEFAULT_LIMIT: usize = 50;
/// Images shown per group at most, and by default.
const MAX_PER_GROUP: usize = 50;
const DEFAULT_PER_GROUP: usize = 12;

pub fn routes(
    state: Arc<AppState>,
) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    let similar = warp::path!("api" / "user" / "images" / String / "similar")
        .and(warp::get())
        .and(with_state(state.clone()))
        .and(require_user(state.clone()))
        .and(warp::query::<HashMap<String, String>>())
        .and_then(similar);
    let duplicates = warp::path!("api" / "user" / "duplicates")
        .and(warp::get())
        .and(with_state(state.clone()))
        .and(require_user(state))
        .and(warp::query::<HashMap<String, String>>())
        .and_then(duplicates);
    similar.or(duplicates)
}

/// The whole number `key` of `query` in `0..=max`, `default` when absent; a 400 naming the
/// parameter and its range otherwise.
fn number(
    query: &HashMap<String, String>,
    key: &str,
    min: u64,
    max: u64,
    default: u64,
) -> Result<u64, ApiError> {
    match query.get(key) {
        None => Ok(default),
        Some(raw) => raw
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|n| (min..=max).contains(n))
            .ok_or_else(|| ApiError::BadRequest(format!("{key} 必须是 {min} 到 {max} 之间的整数"))),
    }
}

#[derive(Serialize, utoipa::ToSchema)]
struct Match {
    #[serde(flatten)]
    image: ImageView,
    distance: u32,
}

#[derive(Serialize, utoipa::ToSchema)]
struct SimilarAnswer {
    images: Vec<Match>,
    max_distance: u32,
    /// True while the image has no hash yet (just uploaded): ask again shortly.
    pending: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<&'static str>,
}

/// The caller's images that look like this one (resized, recompressed, lightly cropped or
/// marked), nearest first, the image itself left out.
#[utoipa::path(
    get,
    path = "/api/user/images/{image_id}/similar",
    operation_id = "similar_images",
    tag = "capture",
    params(
        ImagePath,
        ("max_distance" = Option<u32>, Query, description = "The most bits of the 64-bit perceptual hash that may differ: 0 to 32, 10 by default."),
        ("limit" = Option<u32>, Query, description = "1 to 200, 50 by default."),
    ),
    responses(
        (status = 200, description = "The near-duplicates; `pending` while the image has no hash yet.", body = SimilarAnswer),
        (status = 403, description = "Another user's image.", body = ErrorReply),
        (status = 404, description = "No such image.", body = ErrorReply),
        (status = 422, description = "The image cannot be decoded to hash it.", body = ErrorReply),
    )
)]
async fn similar(
    id: String,
    state: Arc<AppState>,
    caller: Caller,
    query: HashMap<String, String>,
) -> Result<impl Reply, Rejection> {
    let max_distance = number(
        &query,
        "max_distance",
        0,
        u64::from(MAX_DISTANCE),
        u64::from(DEFAULT_DISTANCE),
    )
    .map_err(reject)? as u32;
    let limit = number(&query, "limit", 1, MAX_LIMIT as u64, DEFAULT_LIMIT as u64)
        .map_err(reject)? as usize;
    let owner = caller.user.user_id;
    let found = blocking(move || {
        Ok(state
            .store
            .similar(&owner, &id.as_str().into(), max_distance, limit)?)
    })
    .await
    .map_err(reject)?;
    let (images, pending, message) = match found {
        Similar::NotFound => return Err(reject(ApiError::ImageNotFound)),
        Similar::NotOwner => return Err(reject(ApiError::Forbidden)),
        Similar::Undecodable => return Err(reject(ApiError::NotHashable)),
        Similar::Pending => (
            Vec::new(),
            true,
            Some("图片仍在处理中，稍后即可查找相似图片"),
        ),
        Similar::Found(found) => (
            found
                .into_iter()
                .map(|(image, distance)| Match {
                    image: image.into(),
                    distance,
                })
                .collect(),
            false,
            None,
        ),
    };
    Ok(warp::reply::json(&SimilarAnswer {
        images,
        max_distance,
        pending,
        message,
    }))
}

#[derive(Serialize, utoipa::ToSchema)]
struct GroupView {
    /// Images in the group; `images` holds at most `per_group` of them, newest first.
    size: u64,
    images: Vec<ImageView>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct DuplicatesAnswer {
    groups: Vec<GroupView>,
    total_groups: u64,
    total_images: u64,
    page: u64,
    per_page: u64,
    pages: u64,
    max_distance: u32,
    /// Images not yet hashed, so in no group yet.
    pending: u64,
    /// False when the grouping stopped at its bound of work: some groups may be missing.
    complete: bool,
}

/// The caller's images grouped by near-duplicates, largest groups first.
#[utoipa::path(
    get,
    path = "/api/user/duplicates",
    operation_id = "list_duplicates",
    tag = "capture",
    params(
        ("max_distance" = Option<u32>, Query, description = "As for `/similar`: 0 to 32, 10 by default."),
        ("page" = Option<u64>, Query, description = "From 1 (the default)."),
        ("per_page" = Option<u64>, Query, description = "Groups a page: 1 to 100, 20 by default."),
        ("per_group" = Option<u64>, Query, description = "Images shown a group: 1 to 50, 12 by default."),
    ),
    responses(
        (status = 200, description = "A page of groups.", body = DuplicatesAnswer),
        (status = 400, description = "A parameter out of its range.", body = ErrorReply),
    )
)]
async fn duplicates(
    state: Arc<AppState>,
    caller: Caller,
    query: HashMap<String, String>,
) -> Result<impl Reply, Rejection> {
    let max_distance = number(
        &query,
        "max_distance",
        0,
        u64::from(MAX_CLUSTER_DISTANCE),
        u64::from(DEFAULT_DISTANCE),
    )
    .map_err(reject)? as u32;
    let page = number(&query, "page", 1, u64::from(u32::MAX), 1).map_err(reject)?;
    let per_page = number(&query, "per_page", 1, 100, 20).map_err(reject)?;
    let per_group = number(
        &query,
        "per_group",
        1,
        MAX_PER_GROUP as u64,
        DEFAULT_PER_GROUP as u64,
    )
    .map_err(reject)? as usize;
    let owner = caller.user.user_id;
    let found = blocking(move || {
        Ok(state
            .store
            .duplicates(&owner, max_distance, page, per_page, per_group)?)
    })
    .await
    .map_err(reject)?
    .ok_or_else(|| reject(ApiError::IndexTooLarge))?;
    Ok(warp::reply::json(&DuplicatesAnswer {
        pages: found.total_groups.div_ceil(per_page),
        groups: found
            .groups
            .into_iter()
            .map(|g| GroupView {
                size: g.size,
                images: g.images.into_iter().map(ImageView::from).collect(),
            })
            .collect(),
        total_groups: found.total_groups,
        total_images: found.total_images,
        page,
        per_page,
        max_distance,
        pending: found.pending,
        complete: found.complete,
    }))
}
