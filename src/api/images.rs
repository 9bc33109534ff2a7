//! Images over HTTP: the three upload routes, the paged list, the file routes and delete.
//!
//! Uploads are sniffed and probed from their bytes (the client's name and type are never trusted),
//! stored with their task in one commit, and only then acknowledged. File routes serve the blob
//! with its blake3 hash as `ETag`; large blobs are streamed chunk by chunk.
//!
//! Uploads without a session are owned by `admin` and held to a quota per client address (images
//! and bytes a minute, 429 past it), or refused when `--anonymous-uploads false`; a session's own
//! uploads are never counted.

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use warp::http::{HeaderValue, StatusCode, header};
use warp::{Filter, Rejection, Reply};

use super::AppState;
use super::auth::{Caller, optional_user, require_user};
use super::guard::client_addr;
use super::multipart::{self, Multipart};
use super::{ApiError, blocking, body, reject, with_state};
use crate::clock;
use crate::domain::{BlobHash, Category};
use crate::ingest::{Incoming, IngestError};
use crate::media::{self, ImageKind};
use crate::store::records::{ImageRecord, ThumbRecord};
use crate::store::{BlobChunks, DeleteOutcome, Store};
use crate::throttle::{self, Reservation};

use crate::media::MAX_IMAGE_BYTES;
/// A JSON upload carries the image as base64 (4/3 of its size) plus page metadata.
const MAX_JSON_UPLOAD: u64 = MAX_IMAGE_BYTES / 3 * 4 + 8 + 256 * 1024;
/// Form fields other than the file (the category) are tiny.
const MAX_FORM_FIELD: usize = 4 * 1024;
/// The most a whole upload form may hold: the file, the other fields and their heads.
const MAX_FORM: u64 =
    MAX_IMAGE_BYTES + (multipart::MAX_PARTS * (MAX_FORM_FIELD + multipart::MAX_HEAD)) as u64;
/// Blobs up to this size are answered in one piece; larger ones are streamed.
const STREAM_ABOVE: u64 = 512 * 1024;
const STREAM_PIECE: usize = 256 * 1024;

pub fn routes(
    state: Arc<AppState>,
) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    let receive = warp::path!("api" / "receive-image")
        .and(warp::post())
        .and(json_upload(state.clone()))
        .and_then(|state, who, body| upload_json(state, who, body, Route::Receive));
    let clipboard = warp::path!("api" / "upload-clipboard")
        .and(warp::post())
        .and(json_upload(state.clone()))
        .and_then(|state, who, body| upload_json(state, who, body, Route::Clipboard));
    let file = warp::path!("api" / "upload-file")
        .and(warp::post())
        .and(admitted(state.clone()))
        .and(warp::header::optional::<String>("content-type"))
        .and(warp::header::optional::<u64>("content-length"))
        .and(warp::body::stream())
        .and_then(upload_file);
    let list = warp::path!("api" / "user" / "images")
        .and(warp::get())
        .and(with_state(state.clone()))
        .and(require_user(state.clone()))
        .and(warp::query::<HashMap<String, String>>())
        .and_then(list);
    let original = warp::path!("api" / "user" / String / "images" / String)
        .and(warp::get())
        .map(|user_id, filename| (user_id, None, filename));
    let by_category = warp::path!("api" / "user" / String / "images" / String / String)
        .and(warp::get())
        .map(|user_id, category, filename| (user_id, Some(category), filename));
    let thumbnail = warp::path!("api" / "user" / String / "thumbnails" / String)
        .and(warp::get())
        .map(|user_id, filename| (user_id, None, filename))
        .and(with_state(state.clone()))
        .and(require_user(state.clone()))
        .and(conditions())
        .and_then(|target, state, caller, cond| serve_file(state, caller, target, cond, true));
    let originals = original
        .or(by_category)
        .unify()
        .and(with_state(state.clone()))
        .and(require_user(state.clone()))
        .and(conditions())
        .and_then(|target, state, caller, cond| serve_file(state, caller, target, cond, false));
    let delete = warp::path!("api" / "user" / "images" / String)
        .and(warp::delete())
        .and(with_state(state.clone()))
        .and(require_user(state))
        .and_then(delete);
    receive
        .or(clipboard)
        .or(file)
        .or(list)
        .or(thumbnail)
        .or(originals)
        .or(delete)
}

/// An upload let in before its body is read: the disk has room, and the uploader may upload.
fn admitted(
    state: Arc<AppState>,
) -> impl Filter<Extract = (Arc<AppState>, Uploader), Error = Rejection> + Clone {
    with_state(state.clone())
        .and(room_for_upload(state.clone()))
        .and(uploader(state))
}

/// `admitted`, then the JSON body of an upload, within the body budget.
fn json_upload(
    state: Arc<AppState>,
) -> impl Filter<Extract = (Arc<AppState>, Uploader, bytes::Bytes), Error = Rejection> + Clone {
    let bodies = state.throttles.bodies.clone();
    admitted(state).and(body::limited(
        bodies,
        MAX_JSON_UPLOAD,
        ApiError::FileTooLarge,
    ))
}

/// Who is uploading: a session's user, or an address without one.
struct Uploader {
    caller: Option<Caller>,
    address: IpAddr,
}

/// The uploader, with anonymous uploads checked against the switch and the address's quota before
/// any of the body is read.
fn uploader(state: Arc<AppState>) -> impl Filter<Extract = (Uploader,), Error = Rejection> + Clone {
    optional_user(state.clone())
        .and(client_addr(state.clone()))
        .and(with_state(state))
        .and_then(
            |caller: Option<Caller>, address: IpAddr, state: Arc<AppState>| async move {
                if caller.is_none() {
                    if !state.config.anonymous.enabled {
                        return Err(reject(ApiError::AnonymousUploadsOff));
                    }
                    let key = throttle::address_key(address);
                    let throttles = &state.throttles;
                    // Bytes are counted once known; an address already over its bytes waits here.
                    throttles
                        .anonymous_kib
                        .take(&key, 0)
                        .and_then(|()| throttles.anonymous_images.take(&key, 1))
                        .map_err(|wait| reject(anonymous_limited(address, wait)))?;
                }
                Ok(Uploader { caller, address })
            },
        )
}

fn anonymous_limited(address: IpAddr, wait: throttle::Wait) -> ApiError {
    tracing::info!(%address, retry_after = wait.secs(), "anonymous uploads limited");
    ApiError::TooManyRequests(wait.secs())
}

/// Refuses an upload with 507 before its body is read when the disk has no room for it (see
/// `store::disk`).
fn room_for_upload(state: Arc<AppState>) -> impl Filter<Extract = (), Error = Rejection> + Clone {
    warp::any()
        .and_then(move || {
            let admitted = state.store.disk().admit();
            async move { admitted.map_err(|e| reject(e.into())) }
        })
        .untuple_one()
}

#[derive(Clone, Copy)]
enum Route {
    Receive,
    Clipboard,
    File,
}

impl Route {
    /// The seed's answer to an upload that was not stored.
    fn refused(self, error: IngestError) -> ApiError {
        match error {
            IngestError::Store(e) if e.write_failure().is_none() => self.save_failed(e.to_string()),
            IngestError::NoFreeName => self.save_failed(error.to_string()),
            other => other.into(),
        }
    }

    fn save_failed(self, cause: String) -> ApiError {
        let message = match self {
            Route::Receive => "保存图片失败",
            Route::Clipboard => "保存剪切板图片失败",
            Route::File => "保存上传文件失败",
        };
        ApiError::SaveFailed { message, cause }
    }

    fn message(self, category: Category, logged_in: bool) -> String {
        match (self, logged_in) {
            (Route::Receive, true) => format!("图片已保存到 {category} 文件夹"),
            (Route::Receive, false) => {
                format!("图片已保存到默认目录的{category}文件夹，建议登录以便管理您的图片")
            }
            (Route::Clipboard, _) => format!("剪切板图片已保存到 {category} 文件夹"),
            (Route::File, _) => format!("文件已上传到 {category} 文件夹"),
        }
    }
}

/// Borrows the image data from the request body: at a few hundred KB it is the one field worth
/// not copying.
#[derive(Deserialize)]
struct JsonUpload<'a> {
    #[serde(
        rename = "imageData",
        borrow,
        default,
        deserialize_with = "optional_borrowed"
    )]
    image_data: Option<Cow<'a, str>>,
    #[serde(rename = "originalUrl")]
    original_url: Option<String>,
    /// Kept loose: a category of the wrong type falls back to `clothes` like an unknown one.
    category: Option<serde_json::Value>,
    #[serde(rename = "pageInfo")]
    page_info: Option<PageInfo>,
}

/// An optional string borrowed from the input when it has no escapes. serde borrows a `Cow` only
/// as a field of its own, never inside an `Option`, hence the wrapper.
fn optional_borrowed<'de, D>(deserializer: D) -> Result<Option<Cow<'de, str>>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    #[derive(Deserialize)]
    struct Text<'a>(#[serde(borrow)] Cow<'a, str>);
    Ok(Option::<Text<'de>>::deserialize(deserializer)?.map(|text| text.0))
}

#[derive(Deserialize, Default)]
struct PageInfo {
    url: Option<String>,
    title: Option<String>,
    #[serde(rename = "imageContext")]
    image_context: Option<serde_json::Value>,
}

/// What an upload says about its image besides the bytes.
#[derive(Default)]
struct UploadMeta {
    category: Option<String>,
    original_url: Option<String>,
    page: PageInfo,
    original_filename: Option<String>,
}

#[derive(Serialize)]
struct UploadReply {
    success: bool,
    #[serde(rename = "taskId")]
    task_id: String,
    #[serde(rename = "imageId")]
    image_id: String,
    filename: String,
    #[serde(rename = "fileSize")]
    file_size: u64,
    category: &'static str,
    #[serde(rename = "originalFilename", skip_serializing_if = "Option::is_none")]
    original_filename: Option<String>,
    #[serde(rename = "isLoggedIn")]
    is_logged_in: bool,
    message: String,
}

async fn upload_json(
    state: Arc<AppState>,
    who: Uploader,
    body: Bytes,
    route: Route,
) -> Result<warp::reply::Response, Rejection> {
    let req: JsonUpload = body::parse_json(&body)?;
    let missing = match route {
        Route::Clipboard => ApiError::EmptyClipboard,
        _ => ApiError::MissingImageData,
    };
    let data = req
        .image_data
        .filter(|d| !d.trim().is_empty())
        .ok_or_else(|| reject(missing))?;
    let page = req.page_info.unwrap_or_default();
    let mut original_url = req.original_url;
    let bytes = match image_url(&data) {
        Some(url) if matches!(route, Route::Receive) => {
            tracing::debug!(%url, "fetching image by URL");
            let bytes = state
                .fetcher
                .fetch(url, page.url.as_deref(), &state.throttles.bodies)
                .await
                .map_err(|e| {
                    tracing::info!(%url, error = %e, "image URL not fetched");
                    reject(e.into())
                })?;
            original_url.get_or_insert_with(|| url.to_string());
            bytes
        }
        Some(_) => {
            return Err(reject(ApiError::BadRequest(
                "剪切板上传需要base64图片数据；图片URL请发送到 /api/receive-image".into(),
            )));
        }
        None => Bytes::from(media::data_url::decode(&data).map_err(|e| reject(e.into()))?),
    };
    let meta = UploadMeta {
        category: req.category.and_then(|c| c.as_str().map(str::to_string)),
        original_url,
        page,
        original_filename: None,
    };
    // The request body is the largest thing this upload holds; it is not needed past this point.
    drop(body);
    save(state, who, bytes, meta, route).await
}

/// What `context_info` will show: the client's `imageContext`, plus the name of an uploaded file
/// (so a gallery can title it as its owner knows it).
fn context_json(
    context: Option<&serde_json::Value>,
    original_filename: Option<&str>,
) -> Option<String> {
    let Some(name) = original_filename else {
        return context.map(|v| v.to_string());
    };
    let mut map = match context {
        Some(serde_json::Value::Object(map)) => map.clone(),
        Some(other) => serde_json::Map::from_iter([("value".to_string(), other.clone())]),
        None => serde_json::Map::new(),
    };
    map.insert("original_filename".into(), name.into());
    Some(serde_json::Value::Object(map).to_string())
}

/// `imageData` that names an image to download rather than carrying it.
fn image_url(data: &str) -> Option<&str> {
    let data = data.trim();
    let scheme = data.get(..8)?.to_ascii_lowercase();
    (scheme.starts_with("http://") || scheme == "https://").then_some(data)
}

async fn upload_file(
    state: Arc<AppState>,
    who: Uploader,
    content_type: Option<String>,
    declared: Option<u64>,
    stream: impl futures_util::Stream<Item = Result<impl bytes::Buf, warp::Error>> + Send,
) -> Result<warp::reply::Response, Rejection> {
    let boundary = multipart::boundary(content_type.as_deref().unwrap_or("")).map_err(reject)?;
    let mut stream = std::pin::pin!(stream);
    let budget = match body::reserve(
        &state.throttles.bodies,
        declared.unwrap_or(0).min(MAX_FORM),
        &ApiError::FileTooLarge,
    ) {
        Ok(budget) => budget,
        Err(refused) => {
            body::discard(stream.as_mut(), MAX_FORM).await;
            return Err(reject(refused));
        }
    };
    let form = Multipart::new(stream.as_mut(), &boundary);
    let (bytes, meta) = match read_form(form, budget).await {
        Ok(read) => read,
        Err(refused) => {
            body::discard(stream, MAX_FORM).await;
            return Err(reject(refused));
        }
    };
    save(state, who, bytes, meta, Route::File).await
}

/// Reads the `file` and `category` parts, refusing a file over the limit as soon as it passes it.
/// The file's bytes keep their share of the body budget until dropped.
async fn read_form<S, B>(
    mut form: Multipart<S>,
    mut budget: Reservation,
) -> Result<(Bytes, UploadMeta), ApiError>
where
    S: futures_util::Stream<Item = Result<B, warp::Error>> + Unpin,
    B: bytes::Buf,
{
    let mut file: Option<Vec<u8>> = None;
    let mut meta = UploadMeta::default();
    while let Some(part) = form.next_part().await? {
        match part.name.as_str() {
            "file" if file.is_none() => {
                let name = part.filename.ok_or(ApiError::NoFile)?;
                if name.trim().is_empty() {
                    return Err(ApiError::EmptyFilename);
                }
                meta.original_filename = Some(name.chars().take(255).collect());
                let grow =
                    |len: usize| body::grow(&mut budget, len as u64, &ApiError::FileTooLarge);
                file = Some(
                    form.read_body(MAX_IMAGE_BYTES as usize, ApiError::FileTooLarge, grow)
                        .await?,
                );
            }
            "category" => {
                let raw = form
                    .read_body(MAX_FORM_FIELD, ApiError::BodyTooLarge, |_| Ok(()))
                    .await?;
                meta.category = Some(String::from_utf8_lossy(&raw).into_owned());
            }
            _ => {
                form.read_body(MAX_FORM_FIELD, ApiError::BodyTooLarge, |_| Ok(()))
                    .await?;
            }
        }
    }
    let bytes = file.ok_or(ApiError::NoFile)?;
    Ok((budget.hold(bytes), meta))
}

/// Probes, stores and queues an upload, then shapes the seed's answer.
async fn save(
    state: Arc<AppState>,
    who: Uploader,
    bytes: Bytes,
    meta: UploadMeta,
    route: Route,
) -> Result<warp::reply::Response, Rejection> {
    let category = Category::for_upload(meta.category.as_deref());
    let logged_in = who.caller.is_some();
    if !logged_in {
        let kib = (bytes.len() as u64).div_ceil(1024);
        state
            .throttles
            .anonymous_kib
            .take(&throttle::address_key(who.address), kib)
            .map_err(|wait| reject(anonymous_limited(who.address, wait)))?;
    }
    let owner = who
        .caller
        .map_or_else(|| state.default_user_id.clone(), |c| c.user.user_id);
    let original_filename = meta.original_filename.clone();
    let context_json = context_json(
        meta.page.image_context.as_ref(),
        meta.original_filename.as_deref(),
    );
    let incoming = Incoming {
        owner,
        category,
        original_url: meta.original_url,
        page_url: meta.page.url,
        page_title: meta.page.title,
        context_json,
        saved_at: None,
        filename: None,
        id: None,
    };
    let (image, task) = state
        .ingest
        .save(bytes, incoming)
        .await
        .map_err(|e| reject(route.refused(e)))?;
    let reply = UploadReply {
        success: true,
        task_id: task.task_id,
        image_id: image.id,
        filename: image.filename,
        file_size: image.file_size,
        category: category.as_str(),
        original_filename: match route {
            Route::File => original_filename,
            _ => None,
        },
        is_logged_in: logged_in,
        message: route.message(category, logged_in),
    };
    Ok(warp::reply::json(&reply).into_response())
}

/// The seed's image object.
#[derive(Serialize)]
struct ImageView {
    id: String,
    user_id: String,
    filename: String,
    original_url: Option<String>,
    page_url: Option<String>,
    page_title: Option<String>,
    saved_at: String,
    file_size: u64,
    image_width: u32,
    image_height: u32,
    context_info: serde_json::Map<String, serde_json::Value>,
    status: &'static str,
    cloud_synced: bool,
    preview_url: String,
    thumbnail_url: String,
}

impl From<ImageRecord> for ImageView {
    fn from(r: ImageRecord) -> Self {
        let context_info = r.context_info();
        Self {
            preview_url: format!("/api/user/{}/images/{}", r.user_id, r.filename),
            thumbnail_url: format!("/api/user/{}/thumbnails/{}", r.user_id, r.filename),
            id: r.id,
            user_id: r.user_id,
            filename: r.filename,
            original_url: r.original_url,
            page_url: r.page_url,
            page_title: r.page_title,
            saved_at: clock::display(r.saved_at),
            file_size: r.file_size,
            image_width: r.width,
            image_height: r.height,
            context_info,
            status: "saved",
            cloud_synced: r.cloud_synced,
        }
    }
}

#[derive(Serialize)]
struct ImageList {
    images: Vec<ImageView>,
    total: u64,
    page: u64,
    per_page: u64,
    pages: u64,
}

async fn list(
    state: Arc<AppState>,
    caller: Caller,
    query: HashMap<String, String>,
) -> Result<impl Reply, Rejection> {
    // Like the seed: unparsable numbers fall back to the defaults, per_page is kept within 1..=100.
    let number = |key: &str, default: u64| {
        query
            .get(key)
            .and_then(|v| v.trim().parse::<u64>().ok())
            .filter(|&n| n > 0)
            .unwrap_or(default)
    };
    let page = number("page", 1);
    let per_page = number("per_page", 20).min(100);
    let user_id = caller.user.user_id;
    // O(page) reads from the in-memory page marks and cached index pages, in place (see
    // `blocking`).
    let found = state
        .store
        .list_images(&user_id, page, per_page)
        .map_err(|e| reject(e.into()))?;
    Ok(warp::reply::json(&ImageList {
        pages: found.total.div_ceil(per_page),
        images: found.images.into_iter().map(ImageView::from).collect(),
        total: found.total,
        page,
        per_page,
    }))
}

/// The request headers that shape a file answer: revalidation and byte ranges.
#[derive(Clone, Default)]
struct Conditions {
    if_none_match: Option<String>,
    range: Option<String>,
    if_range: Option<String>,
}

fn conditions() -> impl Filter<Extract = (Conditions,), Error = Rejection> + Clone {
    warp::header::optional::<String>("if-none-match")
        .and(warp::header::optional::<String>("range"))
        .and(warp::header::optional::<String>("if-range"))
        .map(|if_none_match, range, if_range| Conditions {
            if_none_match,
            range,
            if_range,
        })
}

async fn serve_file(
    state: Arc<AppState>,
    caller: Caller,
    (user_id, category, filename): (String, Option<String>, String),
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
    // Originals never change under a file name; thumbnails may be remade, so they are revalidated.
    let cache = if thumbnail {
        "private, no-cache"
    } else {
        "private, max-age=31536000, immutable"
    };
    let max_side = state.jobs.max_side();
    let (lookup_state, cond) = (state.clone(), conditions.clone());
    let found = blocking(move || {
        let store = &lookup_state.store;
        let image = store
            .image_by_name(&user_id, &filename)?
            .filter(|img| category.is_none_or(|c| c == img.category))
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
                let mut resp = warp::reply::stream(stream_blob(*blob)).into_response();
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

/// `If-None-Match` holds a list of tags or `*`; weak tags compare by their opaque part.
fn etag_matches(header: Option<&str>, etag: &str) -> bool {
    header.is_some_and(|h| {
        h.split(',')
            .map(|t| t.trim().trim_start_matches("W/"))
            .any(|t| t == "*" || t == etag)
    })
}

/// The blob's bytes as a stream of pieces, each read on the blocking pool when the client is ready
/// for it, so a 10 MB image costs one piece of memory per download, not 10 MB.
fn stream_blob(
    blob: BlobChunks,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send + Sync + 'static {
    futures_util::stream::unfold(Some(blob), |blob| async move {
        let mut blob = blob?;
        let read = tokio::task::spawn_blocking(move || {
            let piece = blob.next_bytes(STREAM_PIECE);
            (blob, piece)
        })
        .await;
        match read {
            Ok((blob, Ok(Some(piece)))) => Some((Ok(piece), Some(blob))),
            Ok((_, Ok(None))) => None,
            Ok((_, Err(e))) => Some((Err(std::io::Error::other(e.to_string())), None)),
            Err(e) => Some((Err(std::io::Error::other(e.to_string())), None)),
        }
    })
}

#[derive(Serialize)]
struct Deleted {
    success: bool,
    message: &'static str,
    #[serde(rename = "imageId")]
    image_id: String,
}

async fn delete(
    image_id: String,
    state: Arc<AppState>,
    caller: Caller,
) -> Result<impl Reply, Rejection> {
    let id = image_id.clone();
    let outcome = blocking(move || Ok(state.store.delete_image(&id, &caller.user.user_id)?))
        .await
        .map_err(reject)?;
    match outcome {
        DeleteOutcome::Deleted => {
            tracing::info!(%image_id, "image deleted");
            Ok(warp::reply::json(&Deleted {
                success: true,
                message: "图片已删除",
                image_id,
            }))
        }
        DeleteOutcome::NotFound => Err(reject(ApiError::ImageNotFound)),
        DeleteOutcome::NotOwner => Err(reject(ApiError::Forbidden)),
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine;

    use super::*;

    #[test]
    fn image_data_with_json_escapes_is_unescaped_before_decoding() {
        // Some clients escape `/` (PHP's json_encode does); the field then cannot borrow.
        let bytes = [0xFFu8, 0xD8, 0xFF, 0xFB, 0xEF, 0xFF];
        let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
        assert!(b64.contains('/'));
        let body = format!(
            r#"{{"imageData": "data:image\/jpeg;base64,{}"}}"#,
            b64.replace('/', "\\/")
        );
        let req: JsonUpload = serde_json::from_str(&body).unwrap();
        let data = req.image_data.unwrap();
        assert!(matches!(data, Cow::Owned(_)));
        assert_eq!(media::data_url::decode(&data).unwrap(), bytes);
        let plain = format!(r#"{{"imageData": "{b64}"}}"#);
        let req: JsonUpload = serde_json::from_str(&plain).unwrap();
        assert!(matches!(req.image_data, Some(Cow::Borrowed(_))));
    }

    #[test]
    fn etags_match_lists_weak_tags_and_star() {
        assert!(etag_matches(Some("\"a\""), "\"a\""));
        assert!(etag_matches(Some("\"x\", W/\"a\""), "\"a\""));
        assert!(etag_matches(Some("*"), "\"a\""));
        assert!(!etag_matches(Some("\"b\""), "\"a\""));
        assert!(!etag_matches(None, "\"a\""));
    }
}
