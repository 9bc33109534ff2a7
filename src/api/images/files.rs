//! An image's bytes, original or thumbnail: only to their owner, with the blob's blake3 hash as
//! `ETag` (so `If-None-Match` answers 304), byte ranges, and large blobs streamed chunk by chunk.

use std::sync::Arc;

use bytes::Bytes;
use warp::http::{HeaderValue, StatusCode, header};
use warp::{Filter, Rejection, Reply};

use crate::api::auth::{Caller, require_user};
use crate::api::error::ErrorReply;
use crate::api::{ApiError, AppState, blocking, blocking_stream, reject, with_state};
use crate::domain::{BlobHash, Category, UserId};
use crate::media::ImageKind;
use crate::store::records::ThumbRecord;
use crate::store::{BlobChunks, Store};
use crate::web::etag_matches;

pub fn routes(
    state: Arc<AppState>,
) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    let thumbnail = warp::path!("api" / "user" / UserId / "thumbnails" / String)
        .and(warp::get())
        .and(with_state(state.clone()))
        .and(require_user(state.clone()))
        .and(conditions())
        .and_then(thumbnail);
    let original = warp::path!("api" / "user" / UserId / "images" / String)
        .and(warp::get())
        .and(with_state(state.clone()))
        .and(require_user(state.clone()))
        .and(conditions())
        .and_then(original);
    let by_category = warp::path!("api" / "user" / UserId / "images" / String / String)
        .and(warp::get())
        .and(with_state(state.clone()))
        .and(require_user(state))
        .and(conditions())
        .and_then(by_category);
    thumbnail.or(original).or(by_category)
}

/// What the file routes answer, for the OpenAPI document.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
enum FileAnswers {
    /// The bytes, with the blob's hash as `ETag`; large files stream.
    #[response(status = 200, content_type = "image/*")]
    Whole(Vec<u8>),
    /// The `Range` asked for.
    #[response(status = 206, content_type = "image/*")]
    Part(Vec<u8>),
    /// The client's copy (`If-None-Match`) is current.
    #[response(status = 304)]
    NotModified,
    /// A `Range` outside the file.
    #[response(status = 416)]
    BadRange,
    /// Another user's files: `{"error": "权限不足"}`.
    #[response(status = 403)]
    Forbidden(ErrorReply),
    /// No such image, or in the trash without `trashed=1`: `{"error": "图片不存在"}`.
    #[response(status = 404)]
    NotFound(ErrorReply),
}

/// An image's bytes as saved (or as edited).
#[utoipa::path(
    get,
    path = "/api/user/{user_id}/images/{filename}",
    operation_id = "image_file",
    tag = "images",
    params(FilePath, FileQuery, RangeHeader),
    responses(FileAnswers)
)]
async fn original(
    user_id: UserId,
    filename: String,
    state: Arc<AppState>,
    caller: Caller,
    cond: Conditions,
) -> Result<warp::reply::Response, Rejection> {
    serve_file(state, caller, (user_id, None, filename), cond, false).await
}

/// The seed's path with the category: answered only when the image is in it.
#[utoipa::path(
    get,
    path = "/api/user/{user_id}/images/{category}/{filename}",
    operation_id = "image_file_in_category",
    tag = "images",
    params(
        ("user_id" = UserId, Path, description = "The caller's own id."),
        ("category" = String, Path, description = "`clothes` or `char`."),
        ("filename" = String, Path, description = "The image's `filename`."),
        FileQuery, RangeHeader,
    ),
    responses(FileAnswers)
)]
async fn by_category(
    user_id: UserId,
    category: String,
    filename: String,
    state: Arc<AppState>,
    caller: Caller,
    cond: Conditions,
) -> Result<warp::reply::Response, Rejection> {
    serve_file(
        state,
        caller,
        (user_id, Some(category), filename),
        cond,
        false,
    )
    .await
}

/// An image's thumbnail; the original until the thumbnail is made.
#[utoipa::path(
    get,
    path = "/api/user/{user_id}/thumbnails/{filename}",
    operation_id = "thumbnail_file",
    tag = "images",
    params(FilePath, FileQuery, RangeHeader),
    responses(FileAnswers)
)]
async fn thumbnail(
    user_id: UserId,
    filename: String,
    state: Arc<AppState>,
    caller: Caller,
    cond: Conditions,
) -> Result<warp::reply::Response, Rejection> {
    serve_file(state, caller, (user_id, None, filename), cond, true).await
}

/// The path of a file route, for the OpenAPI document.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
struct FilePath {
    /// The caller's own id.
    user_id: UserId,
    /// The image's `filename`.
    filename: String,
}

/// The byte range a file route serves, for the OpenAPI document (`conditions` reads it).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
struct RangeHeader {
    /// One byte range, `bytes=START-END` (with `If-Range` to make it conditional).
    #[param(rename = "Range")]
    range: Option<String>,
}

/// The query that lets a file route serve an image in the trash (the trash listing's URLs carry
/// it). Without it a trashed image is not found, as the seed's clients expect of a deleted one.
pub(super) const TRASHED_QUERY: &str = "trashed=1";

/// Blobs up to this size are answered in one piece; larger ones are streamed.
const STREAM_ABOVE: u64 = 512 * 1024;
const STREAM_PIECE: usize = 256 * 1024;

/// The request headers that shape a file answer: revalidation and byte ranges.
#[derive(Clone, Default)]
struct Conditions {
    if_none_match: Option<String>,
    range: Option<String>,
    if_range: Option<String>,
    /// Serve the image even if it is in the trash.
    trashed: bool,
}

fn conditions() -> impl Filter<Extract = (Conditions,), Error = Rejection> + Clone {
    warp::header::optional::<String>("if-none-match")
        .and(warp::header::optional::<String>("range"))
        .and(warp::header::optional::<String>("if-range"))
        // An absent query reads as empty here (no rejection to build and recover from, which
        // `query::raw` costs on every request without one); other parameters are ignored.
        .and(warp::query::<FileQuery>())
        .map(
            |if_none_match, range, if_range, query: FileQuery| Conditions {
                if_none_match,
                range,
                if_range,
                trashed: query.trashed.as_deref() == Some("1"),
            },
        )
}

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct FileQuery {
    /// `1` to serve an image in the trash (the trash listing's URLs carry it).
    trashed: Option<String>,
}

async fn serve_file(
    state: Arc<AppState>,
    caller: Caller,
    (user_id, category, filename): (UserId, Option<String>, String),
    conditions: Conditions,
    thumbnail: bool,
) -> Result<warp::reply::Response, Rejection> {
    let category = match category {
        Some(raw) => Some(Category::parse(&raw).ok_or_else(|| reject(ApiError::InvalidCategory))?),
        None => None,
    };
    if caller.user.user_id != user_id {
        return Err(reject(ApiError::Forbidden));
    }
    // An edit changes what a file name serves, and a thumbnail may be remade: both are
    // revalidated, which the blob hash as `ETag` answers with a bodiless 304.
    let cache = "private, no-cache";
    let max_side = state.jobs.max_side();
    let (lookup_state, cond) = (state.clone(), conditions.clone());
    let found = blocking(move || {
        let store = &lookup_state.store;
        let image = store
            .image_by_name(&user_id, &filename)?
            .filter(|img| category.is_none_or(|c| c == img.category))
            .filter(|img| cond.trashed || !img.is_trashed())
            .ok_or(ApiError::ImageNotFound)?;
        let target = if thumbnail {
            match store.thumbnail(&image.blob)? {
                Some(ThumbRecord::Ready {
                    blob,
                    kind,
                    max_side: made_for,
                    ..
                }) if made_for == max_side => (blob, kind),
                Some(ThumbRecord::Failed { .. }) => (image.blob, image.kind),
                _ => return Ok(Err(image)),
            }
        } else {
            (image.blob, image.kind)
        };
        Ok(Ok(open_blob(store, target, &cond)?))
    })
    .await
    .map_err(reject)?;
    let opened = match found {
        Ok(opened) => opened,
        Err(image) => {
            // No current thumbnail yet: make it now (sharing a generation already under way).
            let target = match state.jobs.thumbnail(image.blob).await {
                Ok(ThumbRecord::Ready { blob, kind, .. }) => (blob, kind),
                _ => (image.blob, image.kind),
            };
            blocking(move || open_blob(&state.store, target, &conditions))
                .await
                .map_err(reject)?
        }
    };
    Ok(opened.into_response(cache))
}

/// A blob ready to be sent: nothing (the client's copy is current), all of it, or a stream.
struct Opened {
    hash: BlobHash,
    kind: ImageKind,
    payload: Payload,
    /// `(first, last, size)` of a partial answer to a `Range` request.
    partial: Option<(u64, u64, u64)>,
}

enum Payload {
    NotModified,
    /// A range past the end: 416, with the size.
    Unsatisfiable(u64),
    Whole(Bytes),
    Stream(Box<BlobChunks>),
}

/// Opens a blob for sending (the requested range of it, if any), reading small ones whole.
/// Blocking.
fn open_blob(
    store: &Store,
    (hash, kind): (BlobHash, ImageKind),
    cond: &Conditions,
) -> Result<Opened, ApiError> {
    let tag = etag(hash);
    let mut partial = None;
    let payload = if etag_matches(cond.if_none_match.as_deref(), &tag) {
        Payload::NotModified
    } else {
        let mut blob = store
            .blob(&hash)?
            .ok_or_else(|| ApiError::Internal(format!("blob {} is missing", hash.to_hex())))?;
        let size = blob.record.size;
        // `If-Range` with another version means: send it all.
        let range = cond
            .range
            .as_deref()
            .filter(|_| cond.if_range.as_deref().is_none_or(|t| t.trim() == tag));
        match range.map(|r| parse_range(r, size)) {
            Some(Some(Ok((first, last)))) => {
                blob.restrict(first, last - first + 1);
                partial = Some((first, last, size));
                if last - first < STREAM_ABOVE {
                    Payload::Whole(blob.read_all()?)
                } else {
                    Payload::Stream(Box::new(blob))
                }
            }
            Some(Some(Err(()))) => Payload::Unsatisfiable(size),
            _ if size <= STREAM_ABOVE => Payload::Whole(blob.read_all()?),
            _ => Payload::Stream(Box::new(blob)),
        }
    };
    Ok(Opened {
        hash,
        kind,
        payload,
        partial,
    })
}

/// A single `bytes=` range as `(first, last)` inclusive; `Err` if it lies past the end, `None` if
/// it is not one we serve (malformed or several ranges: the whole file is sent, as HTTP allows).
fn parse_range(header: &str, size: u64) -> Option<Result<(u64, u64), ()>> {
    let spec = header.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (first, last) = spec.split_once('-')?;
    let (first, last) = (first.trim(), last.trim());
    let range = if first.is_empty() {
        let suffix: u64 = last.parse().ok()?;
        if suffix == 0 || size == 0 {
            return Some(Err(()));
        }
        (size.saturating_sub(suffix), size - 1)
    } else {
        let first: u64 = first.parse().ok()?;
        let last = if last.is_empty() {
            u64::MAX
        } else {
            last.parse().ok()?
        };
        if last < first {
            return None;
        }
        if first >= size {
            return Some(Err(()));
        }
        (first, last.min(size - 1))
    };
    Some(Ok(range))
}

fn etag(hash: BlobHash) -> String {
    format!("\"{}\"", hash.to_hex())
}

impl Opened {
    fn into_response(self, cache: &'static str) -> warp::reply::Response {
        let mut resp = match self.payload {
            Payload::NotModified => {
                let mut resp = warp::reply().into_response();
                *resp.status_mut() = StatusCode::NOT_MODIFIED;
                resp
            }
            Payload::Unsatisfiable(size) => {
                let mut resp = warp::reply().into_response();
                *resp.status_mut() = StatusCode::RANGE_NOT_SATISFIABLE;
                if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                    resp.headers_mut().insert(header::CONTENT_RANGE, v);
                }
                resp
            }
            Payload::Whole(bytes) => warp::http::Response::new(bytes.into()),
            Payload::Stream(blob) => {
                let size = blob.remaining();
                let mut resp =
                    warp::reply::stream(blocking_stream(*blob, |b| b.next_bytes(STREAM_PIECE)))
                        .into_response();
                resp.headers_mut()
                    .insert(header::CONTENT_LENGTH, HeaderValue::from(size));
                resp
            }
        };
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(self.kind.mime()),
        );
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
        h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        if let Ok(v) = HeaderValue::from_str(&etag(self.hash)) {
            h.insert(header::ETAG, v);
        }
        if let Some((first, last, size)) = self.partial {
            if let Ok(v) = HeaderValue::from_str(&format!("bytes {first}-{last}/{size}")) {
                h.insert(header::CONTENT_RANGE, v);
            }
            *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
        }
        resp
    }
}
