//! Tags: replacing one image's tags, and the caller's tags by prefix for autocomplete. Listing by
//! tag is `list`'s `tag` parameter. Matching goes by the folded form (`text::fold`); what is shown
//! is what the owner wrote.

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use warp::{Filter, Rejection, Reply};

use super::ImagePath;
use crate::api::auth::{Caller, require_user};
use crate::api::error::ErrorReply;
use crate::api::{ApiError, AppState, blocking, body, reject, with_state};
use crate::domain::{ImageId, Tags};
use crate::store::{ChangeOutcome, TagCount};

/// A tags body: 64 tags of 64 characters of 4 bytes, escaped, with room to spare.
const TAGS_BODY_LIMIT: u64 = 64 * 1024;
/// Tags offered by autocomplete unless `limit` says otherwise, and the most it may say.
const DEFAULT_SUGGESTIONS: usize = 20;
const MAX_SUGGESTIONS: usize = 100;

pub fn routes(
    state: Arc<AppState>,
) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    let set = warp::path!("api" / "user" / "images" / ImageId / "tags")
        .and(warp::put())
        .and(with_state(state.clone()))
        .and(require_user(state.clone()))
        .and(body::json(
            state.throttles.bodies.clone(),
            TAGS_BODY_LIMIT,
            ApiError::BodyTooLarge,
        ))
        .and_then(set_tags);
    let suggest = warp::path!("api" / "user" / "tags")
        .and(warp::get())
        .and(with_state(state.clone()))
        .and(require_user(state))
        .and(warp::query::<HashMap<String, String>>())
        .and_then(suggest);
    set.or(suggest)
}

#[derive(Deserialize, utoipa::ToSchema)]
struct TagsBody {
    /// At most 64 tags of at most 64 characters.
    #[schema(required = true)]
    tags: Option<Vec<String>>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct TagsSet {
    success: bool,
    #[serde(rename = "imageId")]
    image_id: ImageId,
    tags: Vec<String>,
}

/// Replaces an image's tags (an empty list clears them).
#[utoipa::path(
    put,
    path = "/api/user/images/{image_id}/tags",
    operation_id = "set_tags",
    tag = "images",
    params(ImagePath),
    request_body = TagsBody,
    responses(
        (status = 200, description = "The tags as stored.", body = TagsSet),
        (status = 400, description = "`tags` missing, or a tag too long, or too many.", body = ErrorReply),
        (status = 403, description = "Another user's image.", body = ErrorReply),
        (status = 404, description = "No such image.", body = ErrorReply),
    )
)]
async fn set_tags(
    image_id: ImageId,
    state: Arc<AppState>,
    caller: Caller,
    body: TagsBody,
) -> Result<impl Reply, Rejection> {
    let raw = body
        .tags
        .ok_or_else(|| reject(ApiError::BadRequest("缺少 tags 字段".into())))?;
    let tags = Tags::parse(&raw).map_err(|e| reject(ApiError::BadRequest(e.0.to_string())))?;
    let id = image_id.clone();
    let outcome = blocking(move || Ok(state.store.set_tags(&id, &caller.user.user_id, &tags)?))
        .await
        .map_err(reject)?;
    match outcome {
        ChangeOutcome::Changed(image) => Ok(warp::reply::json(&TagsSet {
            success: true,
            image_id,
            tags: image.tags,
        })),
        ChangeOutcome::NotFound => Err(reject(ApiError::ImageNotFound)),
        ChangeOutcome::NotOwner => Err(reject(ApiError::Forbidden)),
        ChangeOutcome::Unchanged | ChangeOutcome::Conflict => {
            unreachable!("setting tags always applies")
        }
    }
}

/// A tag and how many images carry it: an autocomplete suggestion, or a search's facet.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct TagCountView {
    tag: String,
    count: u64,
}

impl From<TagCount> for TagCountView {
    fn from(TagCount { tag, count }: TagCount) -> Self {
        Self { tag, count }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
struct Suggestions {
    tags: Vec<TagCountView>,
}

/// The caller's tags starting with `prefix`, most used first: autocomplete.
#[utoipa::path(
    get,
    path = "/api/user/tags",
    operation_id = "suggest_tags",
    tag = "images",
    params(
        ("prefix" = Option<String>, Query, description = "What the tag starts with (≤ 64 characters; compared case- and width-insensitively)."),
        ("limit" = Option<u64>, Query, description = "How many, 20 by default, at most 100."),
    ),
    responses((status = 200, description = "The matching tags with their image counts.", body = Suggestions))
)]
async fn suggest(
    state: Arc<AppState>,
    caller: Caller,
    query: HashMap<String, String>,
) -> Result<impl Reply, Rejection> {
    let prefix = query.get("prefix").cloned().unwrap_or_default();
    if prefix.chars().count() > crate::domain::MAX_TAG_CHARS {
        return Err(reject(ApiError::BadRequest(
            "prefix 不能超过64个字符".into(),
        )));
    }
    let limit = query
        .get("limit")
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or(DEFAULT_SUGGESTIONS)
        .min(MAX_SUGGESTIONS);
    let found = blocking(move || Ok(state.store.tags(&caller.user.user_id, &prefix, limit)?))
        .await
        .map_err(reject)?;
    Ok(warp::reply::json(&Suggestions {
        tags: found.into_iter().map(TagCountView::from).collect(),
    }))
}
