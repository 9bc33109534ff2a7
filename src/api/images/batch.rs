//! One action on many of the caller's images at once: trash, restore, delete for good, move to a
//! category, add or remove tags. All in one commit; ids that are not the caller's images are
//! skipped with a reason and never touched.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use warp::{Filter, Rejection, Reply};

use crate::api::auth::{Caller, require_user};
use crate::api::error::ErrorReply;
use crate::api::{ApiError, AppState, blocking, body, reject, with_state};
use crate::domain::{Category, ImageId, Tags};
use crate::store::{BatchAction, MAX_BATCH_IDS};

/// 10,000 ids of about 40 bytes, quoted, and a list of tags.
const BATCH_BODY_LIMIT: u64 = 1024 * 1024;

pub fn routes(
    state: Arc<AppState>,
) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    warp::path!("api" / "user" / "images" / "batch")
        .and(warp::post())
        .and(with_state(state.clone()))
        .and(require_user(state.clone()))
        .and(body::json(
            state.throttles.bodies.clone(),
            BATCH_BODY_LIMIT,
            ApiError::BodyTooLarge,
        ))
        .and_then(batch)
}

#[derive(Deserialize, utoipa::ToSchema)]
struct BatchBody {
    #[schema(required = true)]
    ids: Option<Vec<ImageId>>,
    /// `trash`, `restore`, `delete_forever`, `set_category`, `add_tags` or `remove_tags`.
    #[schema(required = true)]
    action: Option<String>,
    /// For `set_category`: `clothes` or `char`.
    category: Option<String>,
    /// For `add_tags` and `remove_tags`.
    tags: Option<Vec<String>>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct SkippedView {
    id: ImageId,
    /// `not_found` (also another user's image), `repeated`, `unchanged`, `too_many_tags`,
    /// `in_trash` or `not_in_trash`.
    reason: &'static str,
}

#[derive(Serialize, utoipa::ToSchema)]
struct BatchDone {
    success: bool,
    changed: u64,
    skipped: Vec<SkippedView>,
}

fn bad(message: impl Into<String>) -> Rejection {
    reject(ApiError::BadRequest(message.into()))
}

/// One action on up to 10,000 of the caller's images, in one commit: `trash`, `restore`,
/// `delete_forever`, `set_category` (with `category`), `add_tags` or `remove_tags` (with `tags`).
#[utoipa::path(
    post,
    path = "/api/user/images/batch",
    operation_id = "batch_images",
    tag = "images",
    request_body = BatchBody,
    responses(
        (status = 200, description = "How many changed; ids skipped, with why.", body = BatchDone),
        (status = 400, description = "A field missing or bad, or over 10,000 ids.", body = ErrorReply),
    )
)]
async fn batch(
    state: Arc<AppState>,
    caller: Caller,
    body: BatchBody,
) -> Result<impl Reply, Rejection> {
    let ids = body.ids.ok_or_else(|| bad("缺少 ids 字段"))?;
    if ids.len() > MAX_BATCH_IDS {
        return Err(bad(format!("一次最多操作{MAX_BATCH_IDS}张图片")));
    }
    let tags = || -> Result<Tags, Rejection> {
        let raw = body.tags.as_ref().ok_or_else(|| bad("缺少 tags 字段"))?;
        let tags = Tags::parse(raw).map_err(|e| bad(e.0))?;
        if tags.is_empty() {
            return Err(bad("tags 不能为空"));
        }
        Ok(tags)
    };
    let action = match body.action.as_deref() {
        Some("set_category") => BatchAction::SetCategory(
            body.category
                .as_deref()
                .and_then(Category::parse)
                .ok_or_else(|| reject(ApiError::InvalidCategory))?,
        ),
        Some("add_tags") => BatchAction::AddTags(tags()?),
        Some("remove_tags") => BatchAction::RemoveTags(tags()?),
        Some("delete_forever") => BatchAction::DeleteForever,
        Some("trash") => BatchAction::Trash(crate::clock::now()),
        Some("restore") => BatchAction::Restore,
        Some(other) => return Err(bad(format!("未知的操作：{other}"))),
        None => return Err(bad("缺少 action 字段")),
    };
    let user_id = caller.user.user_id;
    let outcome = blocking(move || Ok(state.store.batch(&user_id, &ids, &action)?))
        .await
        .map_err(reject)?;
    if outcome.changed > 0 {
        tracing::info!(
            changed = outcome.changed,
            skipped = outcome.skipped.len(),
            "batch done"
        );
    }
    Ok(warp::reply::json(&BatchDone {
        success: true,
        changed: outcome.changed,
        skipped: outcome
            .skipped
            .into_iter()
            .map(|(id, reason)| SkippedView {
                id,
                reason: reason.as_str(),
            })
            .collect(),
    }))
}
