//! What the capture workflow asks of the caller's own collection: which images a page shows are
//! in it already (`POST /api/images/lookup`, by the SHA-256 of their bytes or their original
//! URL), and every page an image was captured on (`GET /api/user/images/{id}/sources`).
//!
//! Both answer only from the caller's live images (`store::content`): another user's images, and
//! trashed ones, are never known, so a lookup tells nothing about what anyone else stored. An
//! anonymous lookup would be such an oracle on the admin's collection (anonymous uploads are the
//! admin's), hence 401.

use std::collections::HashSet;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use warp::{Filter, Rejection, Reply};

use super::ImagePath;
use crate::api::auth::{Caller, require_user};
use crate::api::error::ErrorReply;
use crate::api::{ApiError, AppState, blocking, body, reject, with_state};
use crate::clock;
use crate::domain::{ImageId, Sha256};
use crate::store::records::ImageRecord;

/// The most hashes, and the most URLs, one lookup may ask about.
pub const MAX_LOOKUP: usize = 500;
/// A lookup's body at most: room for 500 hashes and 500 URLs of nearly 2 KiB each.
const MAX_LOOKUP_BODY: u64 = 1024 * 1024;

pub fn routes(
    state: Arc<AppState>,
) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    let lookup = warp::path!("api" / "images" / "lookup")
        .and(warp::post())
        .and(with_state(state.clone()))
        .and(require_user(state.clone()))
        .and(body::json(
            state.throttles.bodies.clone(),
            MAX_LOOKUP_BODY,
            ApiError::BodyTooLarge,
        ))
        .and_then(lookup);
    let sources = warp::path!("api" / "user" / "images" / ImageId / "sources")
        .and(warp::get())
        .and(with_state(state.clone()))
        .and(require_user(state))
        .and_then(sources);
    lookup.or(sources)
}

#[derive(Deserialize, utoipa::ToSchema)]
struct LookupRequest {
    /// SHA-256 hashes (64 hex digits) of image bytes; at most 500.
    #[serde(default)]
    sha256: Vec<String>,
    /// Image URLs (`originalUrl` as captured); at most 500.
    #[serde(default)]
    urls: Vec<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct LookupReply {
    known: KnownView,
}

#[derive(Serialize, utoipa::ToSchema)]
struct KnownView {
    /// Lower-case hex, in the order asked, each once.
    sha256: Vec<String>,
    /// As asked, in that order, each once.
    urls: Vec<String>,
}

/// The request's hashes, parsed; 400 for more than `MAX_LOOKUP` of either list or a hash that is
/// not 64 hex digits.
fn parse_lookup(req: &LookupRequest) -> Result<Vec<Sha256>, ApiError> {
    if req.sha256.len() > MAX_LOOKUP || req.urls.len() > MAX_LOOKUP {
        return Err(ApiError::BadRequest(format!(
            "sha256 和 urls 各最多 {MAX_LOOKUP} 项"
        )));
    }
    req.sha256
        .iter()
        .enumerate()
        .map(|(i, hex)| {
            Sha256::from_hex(hex.trim()).ok_or_else(|| {
                ApiError::BadRequest(format!("sha256 第 {} 项不是64位十六进制字符", i + 1))
            })
        })
        .collect()
}

/// Which of these hashes and URLs the caller has saved already (live images only): the
/// extension's "already saved".
#[utoipa::path(
    post,
    path = "/api/images/lookup",
    operation_id = "lookup_images",
    tag = "capture",
    request_body = LookupRequest,
    responses(
        (status = 200, description = "The known ones, in the order asked.", body = LookupReply),
        (status = 400, description = "Over 500 of either, or a hash that is not 64 hex digits.", body = ErrorReply),
    )
)]
async fn lookup(
    state: Arc<AppState>,
    caller: Caller,
    req: LookupRequest,
) -> Result<impl Reply, Rejection> {
    let mut hashes = parse_lookup(&req).map_err(reject)?;
    let mut seen = HashSet::new();
    hashes.retain(|h| seen.insert(*h));
    let mut seen = HashSet::new();
    let mut urls = req.urls;
    // A URL longer than any stored one (`ingest::MAX_URL`) is known to no one.
    urls.retain(|u| u.len() <= crate::ingest::MAX_URL && seen.insert(u.clone()));
    let user_id = caller.user.user_id;
    let reply = blocking(move || {
        let known = state.store.lookup(&user_id, &hashes, &urls)?;
        Ok(LookupReply {
            known: KnownView {
                sha256: known.sha256.iter().map(|&i| hashes[i].to_hex()).collect(),
                urls: known.urls.iter().map(|&i| urls[i].clone()).collect(),
            },
        })
    })
    .await
    .map_err(reject)?;
    Ok(warp::reply::json(&reply))
}

/// One capture of an image's bytes: where it was seen.
#[derive(Serialize, utoipa::ToSchema)]
struct SourceView {
    image_id: ImageId,
    page_url: Option<String>,
    page_title: Option<String>,
    original_url: Option<String>,
    saved_at: String,
}

impl From<ImageRecord> for SourceView {
    fn from(image: ImageRecord) -> Self {
        Self {
            image_id: image.id,
            page_url: image.page_url,
            page_title: image.page_title,
            original_url: image.original_url,
            saved_at: clock::display(image.saved_at),
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
struct Sources {
    /// Newest first, at most `store::MAX_SOURCES`.
    sources: Vec<SourceView>,
}

/// The caller's live captures of the same bytes as their live image `image_id`, the image itself
/// included; 404 for an image that is not the caller's or is in the trash.
#[utoipa::path(
    get,
    path = "/api/user/images/{image_id}/sources",
    operation_id = "image_sources",
    tag = "capture",
    params(ImagePath),
    responses(
        (status = 200, description = "Every page the image's bytes were captured on.", body = Sources),
        (status = 404, description = "Not the caller's image, or in the trash.", body = ErrorReply),
    )
)]
async fn sources(
    image_id: ImageId,
    state: Arc<AppState>,
    caller: Caller,
) -> Result<impl Reply, Rejection> {
    let found = blocking(move || {
        let image = state
            .store
            .image(&image_id)?
            .filter(|i| i.user_id == caller.user.user_id && !i.is_trashed())
            .ok_or(ApiError::ImageNotFound)?;
        Ok(state.store.sources(&image)?)
    })
    .await
    .map_err(reject)?;
    Ok(warp::reply::json(&Sources {
        sources: found.into_iter().map(SourceView::from).collect(),
    }))
}
