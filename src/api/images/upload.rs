//! The three upload routes: JSON with a data URL or an image URL (`receive-image`,
//! `upload-clipboard`) and multipart (`upload-file`). Each is let in, or refused, before its body
//! is read (disk room, the anonymous quota), and then handed to `Ingest::save`.

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::Arc;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use warp::{Filter, Rejection, Reply};

use crate::api::auth::{Caller, optional_user};
use crate::api::error::ErrorReply;
use crate::api::guard::client_addr;
use crate::api::multipart::{self, Multipart};
use crate::api::{ApiError, AppState, body, idempotency, reject, with_state};
use crate::domain::{Category, ImageId, Sha256, Tags, TaskId};
use crate::ingest::{Incoming, IngestError, Keyed};
use crate::media::{self, MAX_IMAGE_BYTES};
use crate::store::StoreError;
use crate::store::records::{IdempotencyRecord, ImageRecord, TaskRecord};
use crate::throttle::{self, Reservation};

pub fn routes(
    state: Arc<AppState>,
) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    let receive = warp::path!("api" / "receive-image")
        .and(warp::post())
        .and(idempotency_key())
        .and(json_upload(state.clone()))
        .and_then(receive_image);
    let clipboard = warp::path!("api" / "upload-clipboard")
        .and(warp::post())
        .and(idempotency_key())
        .and(json_upload(state.clone()))
        .and_then(upload_clipboard);
    let file = warp::path!("api" / "upload-file")
        .and(warp::post())
        .and(idempotency_key())
        .and(admitted(state))
        .and(warp::header::optional::<String>("content-type"))
        .and(warp::header::optional::<u64>("content-length"))
        .and(warp::body::stream())
        .and_then(upload_file);
    receive.or(clipboard).or(file)
}

/// The headers an upload reads, for the OpenAPI document (`idempotency_key` reads them).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
struct UploadHeaders {
    /// Names the upload so that a retry stores it once: a replay gets the first answer, the same
    /// key with another body a 409. At most 128 printable ASCII characters; kept 7 days, per user.
    #[param(rename = "Idempotency-Key")]
    idempotency_key: Option<String>,
}

/// The form `upload-file` reads, for the OpenAPI document (`read_form` reads it).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct UploadForm {
    /// The image: PNG, JPEG, GIF, WebP or AVIF, at most 10 MB.
    #[schema(value_type = String, content_media_type = "application/octet-stream")]
    file: Vec<u8>,
    /// `clothes` (the default) or `char`.
    category: Option<String>,
    /// Tags, comma-separated or the field repeated.
    tags: Option<String>,
}

/// Saves an image the browser extension captured: its bytes as a data URL, an image URL for the
/// server to fetch, or (logged in) the SHA-256 of bytes the caller has stored already.
#[utoipa::path(
    post,
    path = "/api/receive-image",
    operation_id = "receive_image",
    tag = "upload",
    security((), ("session" = []), ("key" = [])),
    params(UploadHeaders),
    request_body = JsonUpload,
    responses(UploadAnswers)
)]
async fn receive_image(
    key: Option<String>,
    state: Arc<AppState>,
    who: Uploader,
    body: Bytes,
) -> Result<warp::reply::Response, Rejection> {
    upload_json(state, who, body, Route::Receive, key).await
}

/// Saves an image pasted from the clipboard, as a data URL.
#[utoipa::path(
    post,
    path = "/api/upload-clipboard",
    tag = "upload",
    security((), ("session" = []), ("key" = [])),
    params(UploadHeaders),
    request_body = JsonUpload,
    responses(UploadAnswers)
)]
async fn upload_clipboard(
    key: Option<String>,
    state: Arc<AppState>,
    who: Uploader,
    body: Bytes,
) -> Result<warp::reply::Response, Rejection> {
    upload_json(state, who, body, Route::Clipboard, key).await
}

/// What the upload routes answer, for the OpenAPI document.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
enum UploadAnswers {
    /// Saved (or, for a replayed `Idempotency-Key`, saved before); the thumbnail follows in the
    /// background (`/api/task/{task_id}`).
    #[response(status = 200)]
    Saved(#[to_schema] UploadReply),
    /// No image, a format or image that is not taken, or a bad field.
    #[response(status = 400)]
    Bad(ErrorReply),
    /// Anonymous uploads are off, or an API key is bad.
    #[response(status = 401)]
    NoLogin(ErrorReply),
    /// The `Idempotency-Key` was used with another body.
    #[response(status = 409)]
    KeyReused(ErrorReply),
    /// Over 10 MB.
    #[response(status = 413)]
    TooLarge(ErrorReply),
    /// Over the anonymous quota of the address; `Retry-After` says when to try again.
    #[response(status = 429)]
    TooMany(ErrorReply),
    /// The disk is full (or below `--min-free-mb`); nothing was stored.
    #[response(status = 507)]
    NoSpace(ErrorReply),
}

const MAX_JSON_UPLOAD: u64 = MAX_IMAGE_BYTES / 3 * 4 + 8 + 256 * 1024;
/// Form fields other than the file (the category) are tiny.
const MAX_FORM_FIELD: usize = 4 * 1024;
/// The most a whole upload form may hold: the file, the other fields and their heads.
const MAX_FORM: u64 =
    MAX_IMAGE_BYTES + (multipart::MAX_PARTS * (MAX_FORM_FIELD + multipart::MAX_HEAD)) as u64;
/// The upload's `Idempotency-Key`, checked before anything else of the request (400 if bad).
fn idempotency_key() -> impl Filter<Extract = (Option<String>,), Error = Rejection> + Clone {
    warp::header::headers_cloned().and_then(|headers: warp::http::HeaderMap| async move {
        idempotency::key_of(&headers).map_err(reject)
    })
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
    fn name(self) -> &'static str {
        match self {
            Route::Receive => "receive-image",
            Route::Clipboard => "upload-clipboard",
            Route::File => "upload-file",
        }
    }

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
#[derive(Deserialize, utoipa::ToSchema)]
struct JsonUpload<'a> {
    #[serde(
        rename = "imageData",
        borrow,
        default,
        deserialize_with = "optional_borrowed"
    )]
    /// The image as a `data:image/...;base64,` URL, or an `http(s)` URL for the server to fetch
    /// (`receive-image` only). At most 10 MB decoded.
    #[schema(value_type = Option<String>)]
    image_data: Option<Cow<'a, str>>,
    #[serde(rename = "originalUrl")]
    original_url: Option<String>,
    /// `clothes` (the default) or `char`. Kept loose: a category of the wrong type falls back to
    /// `clothes` like an unknown one.
    #[schema(value_type = Option<String>)]
    category: Option<serde_json::Value>,
    #[serde(rename = "pageInfo")]
    page_info: Option<PageInfo>,
    /// Tags to give the image: an array of strings; one invalid tag refuses the upload.
    #[schema(value_type = Option<Vec<String>>)]
    tags: Option<serde_json::Value>,
    /// `receive-image` without `imageData`: the SHA-256 (hex) of bytes the caller has stored.
    sha256: Option<String>,
}

/// What an upload's image comes as.
enum Payload {
    Bytes(Bytes),
    /// An image URL for the server to download (`receive-image`).
    Url(String),
    /// The SHA-256 of bytes the caller has stored (`receive-image`, logged in).
    Known(Sha256),
}

/// An upload's `tags`: absent, null or an array of valid tags.
fn json_tags(raw: Option<serde_json::Value>) -> Result<Tags, ApiError> {
    let bad = |e: crate::domain::Invalid| ApiError::BadRequest(e.0.to_string());
    match raw {
        None | Some(serde_json::Value::Null) => Ok(Tags::default()),
        Some(serde_json::Value::Array(items)) => {
            let texts: Option<Vec<&str>> = items.iter().map(|v| v.as_str()).collect();
            let texts =
                texts.ok_or_else(|| ApiError::BadRequest("tags 必须是字符串数组".into()))?;
            Tags::parse(texts).map_err(bad)
        }
        Some(_) => Err(ApiError::BadRequest("tags 必须是字符串数组".into())),
    }
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

#[derive(Deserialize, Default, utoipa::ToSchema)]
struct PageInfo {
    url: Option<String>,
    title: Option<String>,
    /// What the page shows about the image (alt text, size shown, ...), kept as sent.
    #[serde(rename = "imageContext")]
    #[schema(value_type = Option<Object>)]
    image_context: Option<serde_json::Value>,
}

/// What an upload says about its image besides the bytes.
#[derive(Default)]
struct UploadMeta {
    category: Option<String>,
    original_url: Option<String>,
    page: PageInfo,
    original_filename: Option<String>,
    tags: Tags,
}

#[derive(Serialize, utoipa::ToSchema)]
struct UploadReply {
    success: bool,
    #[serde(rename = "taskId")]
    task_id: TaskId,
    #[serde(rename = "imageId")]
    image_id: ImageId,
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
    key: Option<String>,
) -> Result<warp::reply::Response, Rejection> {
    let req: JsonUpload = body::parse_json(&body)?;
    let tags = json_tags(req.tags).map_err(reject)?;
    let page = req.page_info.unwrap_or_default();
    let mut original_url = req.original_url;
    let data = req.image_data.filter(|d| !d.trim().is_empty());
    let payload = match (data, route) {
        (Some(data), _) => match image_url(&data) {
            Some(url) if matches!(route, Route::Receive) => {
                original_url.get_or_insert_with(|| url.to_string());
                Payload::Url(url.to_string())
            }
            Some(_) => {
                return Err(reject(ApiError::BadRequest(
                    "剪切板上传需要base64图片数据；图片URL请发送到 /api/receive-image".into(),
                )));
            }
            None => Payload::Bytes(Bytes::from(
                media::data_url::decode(&data).map_err(|e| reject(e.into()))?,
            )),
        },
        (None, Route::Receive) if req.sha256.is_some() => {
            let hex = req.sha256.as_deref().unwrap_or_default();
            Payload::Known(Sha256::from_hex(hex.trim()).ok_or_else(|| {
                reject(ApiError::BadRequest("sha256 应为64位十六进制字符".into()))
            })?)
        }
        (None, Route::Clipboard) => return Err(reject(ApiError::EmptyClipboard)),
        (None, _) => return Err(reject(ApiError::MissingImageData)),
    };
    let meta = UploadMeta {
        category: req.category.and_then(|c| c.as_str().map(str::to_string)),
        original_url,
        page,
        original_filename: None,
        tags,
    };
    // The request body is the largest thing this upload holds; it is not needed past this point.
    drop(body);
    save(state, who, payload, meta, route, key).await
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

/// Saves an uploaded file (a multipart form).
#[utoipa::path(
    post,
    path = "/api/upload-file",
    tag = "upload",
    security((), ("session" = []), ("key" = [])),
    params(UploadHeaders),
    request_body(content = UploadForm, content_type = "multipart/form-data"),
    responses(UploadAnswers)
)]
async fn upload_file(
    key: Option<String>,
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
    save(state, who, Payload::Bytes(bytes), meta, Route::File, key).await
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
            // Repeated, or one field of comma-separated tags; one invalid tag refuses the upload.
            "tags" => {
                let raw = form
                    .read_body(MAX_FORM_FIELD, ApiError::BodyTooLarge, |_| Ok(()))
                    .await?;
                let listed = Tags::parse_list(&String::from_utf8_lossy(&raw))
                    .map_err(|e| ApiError::BadRequest(e.0.to_string()))?;
                meta.tags
                    .extend(&listed)
                    .map_err(|e| ApiError::BadRequest(e.0.to_string()))?;
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

/// What an upload under `Idempotency-Key` asks to store, for telling its replays from other
/// requests (see `idempotency::Fingerprint`).
fn fingerprint(route: Route, payload: &Payload, meta: &UploadMeta) -> [u8; 32] {
    let mut print = idempotency::Fingerprint::default();
    print.field(route.name().as_bytes());
    match payload {
        Payload::Bytes(bytes) => print.field(b"bytes").field(blake3::hash(bytes).as_bytes()),
        Payload::Url(url) => print.field(b"url").field(url.as_bytes()),
        Payload::Known(sha) => print.field(b"sha256").field(&sha.0),
    };
    let context = meta.page.image_context.as_ref().map(|v| v.to_string());
    print
        .optional(meta.category.as_deref())
        .optional(meta.original_url.as_deref())
        .optional(meta.page.url.as_deref())
        .optional(meta.page.title.as_deref())
        .optional(context.as_deref())
        .optional(meta.original_filename.as_deref())
        .field(&(meta.tags.len() as u64).to_le_bytes());
    for tag in meta.tags.iter() {
        print.field(tag.as_str().as_bytes());
    }
    print.finish()
}

/// A JSON answer from its text.
fn json_response(body: String) -> warp::reply::Response {
    let mut response = warp::http::Response::new(body.into());
    response.headers_mut().insert(
        warp::http::header::CONTENT_TYPE,
        warp::http::HeaderValue::from_static("application/json"),
    );
    response
}

/// Stores an upload (under its idempotency key, if it has one: a replay gets the stored answer)
/// and shapes the seed's answer.
async fn save(
    state: Arc<AppState>,
    who: Uploader,
    payload: Payload,
    meta: UploadMeta,
    route: Route,
    key: Option<String>,
) -> Result<warp::reply::Response, Rejection> {
    let category = Category::for_upload(meta.category.as_deref());
    let logged_in = who.caller.is_some();
    if matches!(payload, Payload::Known(_)) && !logged_in {
        return Err(reject(ApiError::NeedLogin));
    }
    // Anonymous uploads are the admin's: so are their keys.
    let owner = who
        .caller
        .map_or_else(|| state.default_user_id.clone(), |c| c.user.user_id);
    let keyed = key.map(|key| {
        let print = fingerprint(route, &payload, &meta);
        (key, print)
    });
    let _turn = match &keyed {
        Some((key, print)) => {
            let turn = state.in_flight.turn(&owner, key).await.map_err(reject)?;
            let stored = state
                .store
                .idempotency_key(&owner, key)
                .map_err(|e| reject(e.into()))?;
            if let Some(stored) = stored {
                return replayed(&stored, print);
            }
            Some(turn)
        }
        None => None,
    };
    let content = match payload {
        Payload::Bytes(bytes) => Content::Bytes(bytes),
        Payload::Url(url) => {
            tracing::debug!(%url, "fetching image by URL");
            let bytes = state
                .fetcher
                .fetch(&url, meta.page.url.as_deref(), &state.throttles.bodies)
                .await
                .map_err(|e| {
                    tracing::info!(%url, error = %e, "image URL not fetched");
                    reject(e.into())
                })?;
            Content::Bytes(bytes)
        }
        Payload::Known(sha) => {
            let found = state
                .store
                .capture_by_sha256(&owner, &sha)
                .map_err(|e| reject(e.into()))?;
            Content::Known(Box::new(
                found.ok_or_else(|| reject(ApiError::UnknownContent))?,
            ))
        }
    };
    if let (Content::Bytes(bytes), false) = (&content, logged_in) {
        let kib = (bytes.len() as u64).div_ceil(1024);
        state
            .throttles
            .anonymous_kib
            .take(&throttle::address_key(who.address), kib)
            .map_err(|wait| reject(anonymous_limited(who.address, wait)))?;
    }
    let original_filename = match route {
        Route::File => meta.original_filename.clone(),
        _ => None,
    };
    let context_json = context_json(
        meta.page.image_context.as_ref(),
        meta.original_filename.as_deref(),
    );
    let incoming = Incoming {
        owner: owner.clone(),
        category,
        original_url: meta.original_url,
        page_url: meta.page.url,
        page_title: meta.page.title,
        context_json,
        saved_at: None,
        filename: None,
        id: None,
        tags: meta.tags,
        size: None,
    };
    let answer = |image: &ImageRecord, task: &TaskRecord| {
        let reply = UploadReply {
            success: true,
            task_id: task.task_id.clone(),
            image_id: image.id.clone(),
            filename: image.filename.clone(),
            file_size: image.file_size,
            category: category.as_str(),
            original_filename: original_filename.clone(),
            is_logged_in: logged_in,
            message: route.message(category, logged_in),
        };
        serde_json::to_string(&reply).expect("plain structs serialize")
    };
    let with_key = keyed.as_ref().map(|(key, print)| Keyed {
        key: key.clone(),
        fingerprint: *print,
        answer: &answer,
    });
    let saved = match &content {
        Content::Bytes(bytes) => state.ingest.save(bytes.clone(), incoming, with_key).await,
        Content::Known(capture) => state.ingest.save_known(capture, incoming, with_key).await,
    };
    drop(content);
    match saved {
        Ok((image, task)) => Ok(json_response(answer(&image, &task))),
        // The capture's bytes were deleted between the lookup and the commit.
        Err(IngestError::Store(StoreError::Missing)) => Err(reject(ApiError::UnknownContent)),
        // Stored meanwhile under the key (the turn makes this a backstop): that capture's answer.
        Err(IngestError::Store(StoreError::KeyUsed)) => {
            let (key, print) = keyed.as_ref().expect("only a keyed upload stores a key");
            match state.store.idempotency_key(&owner, key) {
                Ok(Some(stored)) => replayed(&stored, print),
                Ok(None) => Err(reject(ApiError::IdempotencyKeyBusy)),
                Err(e) => Err(reject(e.into())),
            }
        }
        Err(e) => Err(reject(route.refused(e))),
    }
}

/// What an upload whose key names a stored capture is answered: that capture's answer, if it is a
/// replay of the same request; 409 if it is another one.
fn replayed(
    stored: &IdempotencyRecord,
    print: &[u8; 32],
) -> Result<warp::reply::Response, Rejection> {
    if stored.fingerprint != *print {
        return Err(reject(ApiError::IdempotencyKeyReused));
    }
    tracing::debug!(image_id = %stored.image_id, "upload replayed");
    Ok(idempotency::replay(stored))
}

/// An upload's image, ready to store.
enum Content {
    Bytes(Bytes),
    /// The caller's newest capture of the bytes, to capture again.
    Known(Box<ImageRecord>),
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
}
