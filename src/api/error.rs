//! The one place an error becomes an HTTP answer. Each `ApiError` knows its status and the seed's
//! Chinese message; `recover` turns every rejection, ours and warp's own, into the JSON body the seed
//! documents, so no request ever gets an HTML page, an empty body or a panic message.

use std::convert::Infallible;

use serde::Serialize;
use warp::http::StatusCode;
use warp::reject::Reject;
use warp::{Rejection, Reply};

use crate::fetch::FetchError;
use crate::store::{StoreError, WriteFailure};

#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    #[error("需要登录")]
    NeedLogin,
    #[error("权限不足")]
    Forbidden,
    /// An `Authorization: Bearer` key that is malformed, unknown or revoked.
    #[error("API 密钥无效或已被撤销")]
    BadKey,
    /// An API key used for what its scope does not allow (or to manage keys).
    #[error("API 密钥的权限不足以执行此操作")]
    KeyScope,
    #[error("API 密钥不存在")]
    KeyNotFound,
    /// A pairing code that is unknown, expired or used already.
    #[error("配对码无效或已过期，请在网页上重新获取")]
    BadPairingCode,
    #[error("用户名、邮箱和密码不能为空")]
    MissingRegistrationFields,
    #[error("用户名或邮箱已存在")]
    UserExists,
    #[error("用户名或密码错误")]
    BadCredentials,
    #[error("缺少图片数据")]
    MissingImageData,
    #[error("剪切板中没有图片数据")]
    EmptyClipboard,
    #[error("没有选择文件")]
    NoFile,
    #[error("文件名为空")]
    EmptyFilename,
    #[cfg_attr(
        avif,
        error("不支持的文件格式，请上传 PNG、JPG、JPEG、GIF、WebP 或 AVIF 格式的图片")
    )]
    #[cfg_attr(
        not(avif),
        error("不支持的文件格式，请上传 PNG、JPG、JPEG、GIF 或 WebP 格式的图片")
    )]
    UnsupportedFormat,
    /// A format imgvault takes, in a variant it does not (`media::Variant`, named in Chinese).
    #[cfg_attr(
        avif,
        error("不支持的文件格式：{0}。请上传 PNG、JPG、JPEG、GIF、WebP 或 AVIF 格式的图片")
    )]
    #[cfg_attr(
        not(avif),
        error("不支持的文件格式：{0}。请上传 PNG、JPG、JPEG、GIF 或 WebP 格式的图片")
    )]
    UnsupportedVariant(&'static str),
    /// A file that starts as an image of a supported format but ends before the image does.
    #[error("图片文件已损坏或不完整：数据在图片结束之前中断")]
    DamagedImage,
    /// A file with a supported format's signature whose structure is not that format's.
    #[error("图片文件已损坏或不完整：不是有效的 {0} 文件")]
    MalformedImage(&'static str),
    /// An image over a limit, named with the limit it is over.
    #[error("图片尺寸过大：{width}×{height} 像素，{limit}")]
    ImageTooLarge {
        width: u32,
        height: u32,
        limit: SizeLimit,
    },
    #[error("文件大小不能超过10MB")]
    FileTooLarge,
    #[error("请求体过大")]
    BodyTooLarge,
    #[error("无效的分类")]
    InvalidCategory,
    /// A `category` query parameter that is not `all`, `clothes` or `char` (the file-path
    /// listings).
    #[error("无效的分类参数")]
    InvalidCategoryParam,
    #[error("任务不存在")]
    TaskNotFound,
    #[error("图片不存在")]
    ImageNotFound,
    /// An edit or revert of an image whose bytes changed after it was read (another edit).
    #[error("图片已被修改，请刷新后重试")]
    ImageChanged,
    /// A similar-image search from an image that does not decode, so has no perceptual hash.
    #[error("图片无法解码，无法查找相似图片")]
    NotHashable,
    /// The caller's similar-image index does not fit its memory budget (`--memory-mb`).
    #[error("图片过多，无法在内存预算内查找重复图片，请调高 --memory-mb")]
    IndexTooLarge,
    #[error("云端同步功能已禁用")]
    CloudSyncDisabled,
    /// Sync is on, but this session holds no (working) login on the hub.
    #[error("云端账户未登录或登录已过期，请重新登录后再同步")]
    HubLoginNeeded,
    /// A capture sent as a SHA-256 the caller has no live image of (whoever else has one).
    #[error("服务器上没有您的这张图片，请发送图片数据")]
    UnknownContent,
    /// An `Idempotency-Key` header that is empty, too long or not printable ASCII.
    #[error("Idempotency-Key 无效：应为1到128个可打印ASCII字符")]
    BadIdempotencyKey,
    /// An `Idempotency-Key` already used for a different upload.
    #[error("该 Idempotency-Key 已用于另一个不同的上传请求")]
    IdempotencyKeyReused,
    /// An upload under an `Idempotency-Key` whose first request is still being stored.
    #[error("相同 Idempotency-Key 的上传正在处理中，请稍后重试")]
    IdempotencyKeyBusy,
    /// A request that could not be understood; the text says what was wrong.
    #[error("{0}")]
    BadRequest(String),
    /// An image URL we will not fetch: not http(s), or an address inside the server's network.
    #[error("无法从该URL获取图片：{0}")]
    UrlRefused(String),
    /// The image's server could not be reached or did not give the image.
    #[error("获取图片失败：{0}")]
    FetchFailed(String),
    #[error("获取图片超时（{0} 秒）")]
    FetchTimeout(u64),
    /// Too many attempts from this address or at this account; try again after the given seconds.
    #[error("请求过于频繁，请 {0} 秒后再试")]
    TooManyRequests(u64),
    /// The server is at one of its limits (bodies or password checks in flight); retry shortly.
    #[error("服务器繁忙，请 {0} 秒后再试")]
    Busy(u64),
    /// Uploads without a session are switched off (`--anonymous-uploads false`).
    #[error("匿名上传已关闭，请登录后再上传")]
    AnonymousUploadsOff,
    /// A cookie-authenticated state change from a page that is not ours, or not sent as JSON.
    #[error("跨站请求被拒绝：{0}")]
    CrossSite(&'static str),
    /// Something failed on our side. The cause is logged, never sent.
    #[error("服务器内部错误")]
    Internal(String),
    /// The disk under the data file is full (or below `--min-free-mb`): nothing was stored.
    #[error("服务器磁盘空间不足，未能保存，请释放空间后重试")]
    InsufficientStorage(String),
    /// The data file could not be written (an I/O error): nothing was stored.
    #[error("服务器存储写入失败，未能保存，请稍后重试")]
    StorageFailed(String),
    /// A failure while saving, answered with the seed's route-specific message.
    #[error("{message}")]
    SaveFailed {
        message: &'static str,
        cause: String,
    },
}

impl Reject for ApiError {}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        use ApiError::*;
        match self {
            NeedLogin | BadCredentials | AnonymousUploadsOff | BadKey => StatusCode::UNAUTHORIZED,
            TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
            CrossSite(_) => StatusCode::FORBIDDEN,
            Forbidden | KeyScope => StatusCode::FORBIDDEN,
            TaskNotFound | ImageNotFound | KeyNotFound | UnknownContent => StatusCode::NOT_FOUND,
            ImageChanged | IdempotencyKeyReused | IdempotencyKeyBusy => StatusCode::CONFLICT,
            NotHashable => StatusCode::UNPROCESSABLE_ENTITY,
            IndexTooLarge => StatusCode::SERVICE_UNAVAILABLE,
            FileTooLarge | BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Internal(_) | SaveFailed { .. } => StatusCode::INTERNAL_SERVER_ERROR,
            InsufficientStorage(_) | StorageFailed(_) => StatusCode::INSUFFICIENT_STORAGE,
            FetchFailed(_) => StatusCode::BAD_GATEWAY,
            FetchTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
            MissingRegistrationFields
            | UserExists
            | MissingImageData
            | EmptyClipboard
            | NoFile
            | EmptyFilename
            | UnsupportedFormat
            | UnsupportedVariant(_)
            | DamagedImage
            | MalformedImage(_)
            | ImageTooLarge { .. }
            | InvalidCategory
            | InvalidCategoryParam
            | UrlRefused(_)
            | HubLoginNeeded
            | CloudSyncDisabled
            | BadPairingCode
            | BadIdempotencyKey
            | BadRequest(_) => StatusCode::BAD_REQUEST,
        }
    }

    /// The seed answers file and task lookups with a bare `{"error": ...}`, everything else with
    /// `{"success": false, "error": ...}`.
    fn has_success_field(&self) -> bool {
        !matches!(
            self,
            ApiError::Forbidden | ApiError::TaskNotFound | ApiError::ImageNotFound
        )
    }

    /// Seconds a client should wait before trying again, for errors that pass with time.
    fn retry_after(&self) -> Option<u64> {
        match self {
            ApiError::TooManyRequests(secs) | ApiError::Busy(secs) => Some(*secs),
            ApiError::IdempotencyKeyBusy => Some(5),
            ApiError::InsufficientStorage(_) | ApiError::StorageFailed(_) => {
                Some(STORAGE_RETRY_AFTER)
            }
            _ => None,
        }
    }

    pub fn into_response(self) -> warp::reply::Response {
        match &self {
            ApiError::Internal(cause) => tracing::error!(%cause, "internal error"),
            ApiError::SaveFailed { message, cause } => tracing::error!(%cause, "{message}"),
            ApiError::InsufficientStorage(cause) => tracing::warn!(%cause, "not stored: no space"),
            ApiError::StorageFailed(cause) => tracing::error!(%cause, "not stored: I/O error"),
            _ => {}
        }
        let body = ErrorReply {
            success: self.has_success_field().then_some(false),
            error: self.to_string(),
        };
        let mut response =
            warp::reply::with_status(warp::reply::json(&body), self.status()).into_response();
        if let Some(secs) = self.retry_after() {
            response
                .headers_mut()
                .insert(warp::http::header::RETRY_AFTER, secs.max(1).into());
        }
        response
    }
}

/// Every error answer. `success` is `false`, and absent from the seed's file and task lookups
/// (`{"error": ...}` alone there).
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorReply {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub success: Option<bool>,
    /// What went wrong, in Chinese as the seed words it.
    pub error: String,
}

/// The limit an image is over, as its refusal names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SizeLimit {
    /// The most pixels on a side.
    Side(u32),
    /// The most pixels in all.
    Pixels(u64),
    /// The most bytes its pixels may take decoded (many channels, or 16 bits a sample).
    Decoded(u64),
    /// What decoding it would take (bytes), over what one decode may have (`--memory-mb`).
    Memory { cost: u64, budget: u64 },
}

impl SizeLimit {
    /// The fixed limit a `width`×`height` image refused as too large is over.
    fn of(width: u32, height: u32) -> Self {
        use crate::media::{MAX_DECODE_BYTES, MAX_PIXELS, MAX_SIDE};
        if width.max(height) > MAX_SIDE {
            SizeLimit::Side(MAX_SIDE)
        } else if u64::from(width) * u64::from(height) > MAX_PIXELS {
            SizeLimit::Pixels(MAX_PIXELS)
        } else {
            SizeLimit::Decoded(MAX_DECODE_BYTES)
        }
    }
}

impl std::fmt::Display for SizeLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const MIB: u64 = 1024 * 1024;
        match self {
            SizeLimit::Side(max) => write!(f, "单边最大 {max} 像素"),
            SizeLimit::Pixels(max) => write!(f, "总像素最多 {max}"),
            SizeLimit::Decoded(max) => write!(f, "解码后最多 {} MB", max / MIB),
            SizeLimit::Memory { cost, budget } => write!(
                f,
                "解码需要约 {} MB 内存，超过上限 {} MB",
                cost.div_ceil(MIB),
                budget / MIB
            ),
        }
    }
}

/// Seconds a client is told to wait after a 507: freeing disk space is a person's job, and a
/// reopened data file needs a moment.
const STORAGE_RETRY_AFTER: u64 = 30;

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e.write_failure() {
            Some(WriteFailure::NoSpace) => ApiError::InsufficientStorage(e.to_string()),
            Some(WriteFailure::Io) => ApiError::StorageFailed(e.to_string()),
            None => ApiError::Internal(e.to_string()),
        }
    }
}

impl From<FetchError> for ApiError {
    fn from(e: FetchError) -> Self {
        match e {
            FetchError::BadUrl(why) => ApiError::UrlRefused(why),
            // The resolved address stays in the log: echoing it would map the server's network
            // for whoever asks.
            FetchError::Blocked { host, .. } => ApiError::UrlRefused(format!(
                "{host} 指向内网或本机地址（服务器以 --allow-private-fetch 启动时才允许）"
            )),
            FetchError::TooLarge { .. } => ApiError::FileTooLarge,
            FetchError::Timeout(limit) => ApiError::FetchTimeout(limit.as_secs()),
            FetchError::Status(status) => ApiError::FetchFailed(format!("图片服务器返回 {status}")),
            FetchError::TooManyRedirects => {
                ApiError::FetchFailed(format!("重定向超过 {} 次", crate::fetch::MAX_REDIRECTS))
            }
            FetchError::Network(why) => ApiError::FetchFailed(why),
            FetchError::Busy => ApiError::Busy(1),
        }
    }
}

impl From<crate::media::data_url::DataUrlError> for ApiError {
    fn from(e: crate::media::data_url::DataUrlError) -> Self {
        match e {
            crate::media::data_url::DataUrlError::NotBase64 => ApiError::UnsupportedFormat,
            crate::media::data_url::DataUrlError::TooLarge => ApiError::FileTooLarge,
        }
    }
}

impl From<crate::media::MediaError> for ApiError {
    fn from(e: crate::media::MediaError) -> Self {
        use crate::media::MediaError;
        match e {
            MediaError::TooLarge { width, height } => ApiError::ImageTooLarge {
                width,
                height,
                limit: SizeLimit::of(width, height),
            },
            MediaError::OverBudget {
                width,
                height,
                cost,
                budget,
            } => ApiError::ImageTooLarge {
                width,
                height,
                limit: SizeLimit::Memory { cost, budget },
            },
            MediaError::UnknownFormat | MediaError::Encode(_) => ApiError::UnsupportedFormat,
            MediaError::Malformed(kind) => ApiError::MalformedImage(kind.name()),
            MediaError::Unsupported(variant) => ApiError::UnsupportedVariant(variant.zh()),
            MediaError::Damaged(_) => ApiError::DamagedImage,
        }
    }
}

impl From<crate::ingest::IngestError> for ApiError {
    fn from(e: crate::ingest::IngestError) -> Self {
        use crate::ingest::IngestError;
        match e {
            IngestError::Image(e) => e.into(),
            IngestError::Store(e) => e.into(),
            IngestError::NoFreeName | IngestError::CheckFailed(_) => {
                ApiError::Internal(e.to_string())
            }
        }
    }
}

impl From<tokio::task::JoinError> for ApiError {
    fn from(e: tokio::task::JoinError) -> Self {
        ApiError::Internal(format!("blocking task failed: {e}"))
    }
}

/// Maps every rejection to the seed's JSON error shape.
pub async fn recover(rejection: Rejection) -> Result<warp::reply::Response, Infallible> {
    let error = if let Some(e) = rejection.find::<ApiError>() {
        e.clone()
    } else if rejection.is_not_found() {
        return Ok(not_found());
    } else if rejection.find::<warp::reject::PayloadTooLarge>().is_some() {
        ApiError::BodyTooLarge
    } else if let Some(e) = rejection.find::<warp::reject::InvalidQuery>() {
        ApiError::BadRequest(format!("查询参数无效: {e}"))
    } else if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        return Ok(json_status(
            "请求方法不允许",
            StatusCode::METHOD_NOT_ALLOWED,
        ));
    } else if let Some(e) = rejection.find::<warp::reject::UnsupportedMediaType>() {
        ApiError::BadRequest(format!("不支持的请求类型: {e}"))
    } else if let Some(e) = rejection.find::<warp::reject::InvalidHeader>() {
        ApiError::BadRequest(format!("请求头无效: {e}"))
    } else if let Some(e) = rejection.find::<warp::reject::MissingHeader>() {
        ApiError::BadRequest(format!("缺少请求头: {e}"))
    } else if let Some(e) = rejection.find::<warp::reject::LengthRequired>() {
        ApiError::BadRequest(format!("{e}"))
    } else {
        ApiError::Internal(format!("unhandled rejection: {rejection:?}"))
    };
    Ok(error.into_response())
}

fn json_status(message: &str, status: StatusCode) -> warp::reply::Response {
    warp::reply::with_status(
        warp::reply::json(&ErrorReply {
            success: Some(false),
            error: message.to_string(),
        }),
        status,
    )
    .into_response()
}

pub fn not_found() -> warp::reply::Response {
    json_status("接口不存在", StatusCode::NOT_FOUND)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_too_large_refusal_names_the_limit_that_was_passed() {
        let refusal = |width, height, limit| {
            ApiError::ImageTooLarge {
                width,
                height,
                limit,
            }
            .to_string()
        };
        assert_eq!(
            refusal(20_000, 10, SizeLimit::of(20_000, 10)),
            "图片尺寸过大：20000×10 像素，单边最大 16384 像素"
        );
        assert_eq!(
            refusal(9000, 9000, SizeLimit::of(9000, 9000)),
            "图片尺寸过大：9000×9000 像素，总像素最多 64000000"
        );
        assert_eq!(
            refusal(6000, 6000, SizeLimit::of(6000, 6000)),
            "图片尺寸过大：6000×6000 像素，解码后最多 256 MB"
        );
        let memory = SizeLimit::Memory {
            cost: 124 * 1024 * 1024 + 1,
            budget: 60 * 1024 * 1024,
        };
        assert_eq!(
            refusal(4032, 3024, memory),
            "图片尺寸过大：4032×3024 像素，解码需要约 125 MB 内存，超过上限 60 MB"
        );
    }
}
