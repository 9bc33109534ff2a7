//! Editing an image in place: `POST /api/user/images/{id}/edit` turns, mirrors and crops what the
//! image shows (`media::edit`), and `POST /api/user/images/{id}/revert` brings back the upload as
//! it was first stored, which an edited image keeps (`ImageRecord::original`). The id, file name
//! and URLs stay; what they serve changes, with a new thumbnail made before the answer.
//!
//! An edit decodes a whole image, so it runs on the media threads with the whole decode budget to
//! itself (`Jobs::with_whole_budget`): edits and thumbnails together never hold more than the
//! budget, and an image that would cost more is refused like such an upload.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use warp::{Filter, Rejection, Reply};

use super::ImagePath;
use super::list::ImageView;
use crate::api::auth::{Caller, require_user};
use crate::api::error::ErrorReply;
use crate::api::{ApiError, AppState, blocking, body, reject, with_state};
use crate::domain::ImageId;
use crate::media::edit::{self, Crop, Edit, EditError, Flip, Rotation};
use crate::store::{ChangeOutcome, NewMedia};

/// An edit request is a few numbers.
const EDIT_BODY_LIMIT: u64 = 4 * 1024;

pub fn routes(
    state: Arc<AppState>,
) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    let edit = warp::path!("api" / "user" / "images" / ImageId / "edit")
        .and(warp::post())
        .and(with_state(state.clone()))
        .and(require_user(state.clone()))
        .and(body::json(
            state.throttles.bodies.clone(),
            EDIT_BODY_LIMIT,
            ApiError::BodyTooLarge,
        ))
        .and_then(edit);
    let revert = warp::path!("api" / "user" / "images" / ImageId / "revert")
        .and(warp::post())
        .and(with_state(state.clone()))
        .and(require_user(state))
        .and_then(revert);
    edit.or(revert)
}

#[derive(Deserialize, utoipa::ToSchema)]
struct EditBody {
    /// Clockwise, in degrees: 90, 180 or 270.
    #[schema(value_type = Option<u32>)]
    rotate: Option<serde_json::Value>,
    /// `h` (left to right) or `v` (top to bottom), after turning.
    #[schema(value_type = Option<String>)]
    flip: Option<serde_json::Value>,
    /// The part to keep, in pixels of the image as turned and flipped.
    #[schema(value_type = Option<CropBody>)]
    crop: Option<serde_json::Value>,
}

#[derive(Deserialize, utoipa::ToSchema)]
struct CropBody {
    x: u32,
    y: u32,
    width: u32,
    height: u32,
}

#[derive(Serialize, utoipa::ToSchema)]
struct Edited {
    success: bool,
    message: &'static str,
    image: ImageView,
}

fn bad(message: impl Into<String>) -> Rejection {
    reject(ApiError::BadRequest(message.into()))
}

/// The edit a body asks for, or why it is not one.
fn parse(body: EditBody) -> Result<Edit, Rejection> {
    let rotate = match body.rotate {
        None | Some(serde_json::Value::Null) => Rotation::None,
        Some(value) => value
            .as_u64()
            .and_then(|d| u32::try_from(d).ok())
            .and_then(Rotation::from_degrees)
            .ok_or_else(|| bad("rotate 只能是 90、180 或 270"))?,
    };
    let flip = match body.flip {
        None | Some(serde_json::Value::Null) => None,
        Some(value) => match value.as_str() {
            Some("h") => Some(Flip::H),
            Some("v") => Some(Flip::V),
            _ => return Err(bad("flip 只能是 \"h\" 或 \"v\"")),
        },
    };
    let crop = match body.crop {
        None | Some(serde_json::Value::Null) => None,
        Some(value) => {
            let c: CropBody = serde_json::from_value(value)
                .map_err(|_| bad("crop 需要 x、y、width、height 四个非负整数"))?;
            Some(Crop {
                x: c.x,
                y: c.y,
                width: c.width,
                height: c.height,
            })
        }
    };
    Ok(Edit { rotate, flip, crop })
}

fn edit_error(e: EditError) -> Rejection {
    match e {
        EditError::Media(crate::media::MediaError::Encode(why)) => {
            reject(ApiError::Internal(format!("encoding an edit: {why}")))
        }
        EditError::Media(media) => reject(media.into()),
        other => bad(other.zh().unwrap_or("无法编辑该图片")),
    }
}

/// Turns, mirrors and crops an image in place (its URLs stay; what they serve changes).
#[utoipa::path(
    post,
    path = "/api/user/images/{image_id}/edit",
    operation_id = "edit_image",
    tag = "images",
    params(ImagePath),
    request_body = EditBody,
    responses(
        (status = 200, description = "Edited; the image as it is now.", body = Edited),
        (status = 400, description = "A bad edit, or one that changes nothing.", body = ErrorReply),
        (status = 403, description = "Another user's image.", body = ErrorReply),
        (status = 404, description = "No such image (or in the trash).", body = ErrorReply),
    )
)]
async fn edit(
    image_id: ImageId,
    state: Arc<AppState>,
    caller: Caller,
    body: EditBody,
) -> Result<impl Reply, Rejection> {
    let wanted = parse(body)?;
    let owner = caller.user.user_id;
    let (id, reader, who) = (image_id.clone(), state.clone(), owner.clone());
    let (image, bytes) = blocking(move || {
        let image = reader
            .store
            .image(&id)?
            .filter(|i| !i.is_trashed())
            .ok_or(ApiError::ImageNotFound)?;
        if image.user_id != who {
            return Err(ApiError::Forbidden);
        }
        let bytes = reader
            .store
            .blob_bytes(&image.blob)?
            .ok_or_else(|| ApiError::Internal(format!("bytes of image {id} are missing")))?;
        Ok((image, bytes))
    })
    .await
    .map_err(reject)?;
    let made = state
        .jobs
        .with_whole_budget(move |allowance| edit::apply(&bytes, &wanted, allowance))
        .await
        .ok_or_else(|| reject(ApiError::Internal("the media threads stopped".into())))?
        .map_err(edit_error)?;
    tracing::info!(
        %image_id, lossless = made.lossless, bytes = made.bytes.len(), kind = made.kind.name(),
        "image edited"
    );
    let outcome = {
        let (state, id, from) = (state.clone(), image_id.clone(), image.blob);
        blocking(move || {
            let media = NewMedia {
                bytes: &made.bytes,
                kind: made.kind,
                width: made.width,
                height: made.height,
            };
            Ok(state.store.change_media(&id, &owner, &from, Some(media))?)
        })
        .await
        .map_err(reject)?
    };
    answer(&state, outcome, "图片已编辑").await
}

/// Brings back an edited image as it was first uploaded.
#[utoipa::path(
    post,
    path = "/api/user/images/{image_id}/revert",
    operation_id = "revert_image",
    tag = "images",
    params(ImagePath),
    responses(
        (status = 200, description = "Reverted; the image as it is now.", body = Edited),
        (status = 400, description = "The image was never edited.", body = ErrorReply),
        (status = 403, description = "Another user's image.", body = ErrorReply),
        (status = 404, description = "No such image (or in the trash).", body = ErrorReply),
    )
)]
async fn revert(
    image_id: ImageId,
    state: Arc<AppState>,
    caller: Caller,
) -> Result<impl Reply, Rejection> {
    let owner = caller.user.user_id;
    let (id, reader) = (image_id.clone(), state.clone());
    let outcome = blocking(move || {
        let Some(image) = reader.store.image(&id)? else {
            return Ok(ChangeOutcome::NotFound);
        };
        Ok(reader.store.change_media(&id, &owner, &image.blob, None)?)
    })
    .await
    .map_err(reject)?;
    if outcome == ChangeOutcome::Unchanged {
        return Err(bad("图片未被编辑过，无需还原"));
    }
    answer(&state, outcome, "图片已还原").await
}

/// The answer to a stored edit or revert, once the image's new thumbnail is made.
async fn answer(
    state: &AppState,
    outcome: ChangeOutcome,
    message: &'static str,
) -> Result<warp::reply::Json, Rejection> {
    match outcome {
        ChangeOutcome::Changed(image) => {
            // The gallery shows the thumbnail next: make it now rather than on that request.
            let _ = state.jobs.thumbnail(image.blob).await;
            Ok(warp::reply::json(&Edited {
                success: true,
                message,
                image: ImageView::from(*image),
            }))
        }
        ChangeOutcome::NotFound => Err(reject(ApiError::ImageNotFound)),
        ChangeOutcome::NotOwner => Err(reject(ApiError::Forbidden)),
        ChangeOutcome::Conflict => Err(reject(ApiError::ImageChanged)),
        ChangeOutcome::Unchanged => Err(bad("图片没有变化")),
    }
}
