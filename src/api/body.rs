//! Request bodies read under a byte limit that is enforced while the bytes arrive: an oversize body is
//! refused as soon as it passes the limit (or at once, from its `Content-Length`), never after it was
//! buffered whole.

use bytes::{Buf, Bytes};
use futures_util::{Stream, StreamExt};
use serde::de::DeserializeOwned;
use warp::{Filter, Rejection};

use super::{ApiError, reject};

/// The body as bytes, at most `limit` of them; `too_large` otherwise.
pub fn limited(
    limit: u64,
    too_large: ApiError,
) -> impl Filter<Extract = (Bytes,), Error = Rejection> + Clone {
    warp::header::optional::<u64>("content-length")
        .and(warp::body::stream())
        .and_then(move |declared: Option<u64>, stream| {
            let too_large = too_large.clone();
            async move {
                if declared.is_some_and(|n| n > limit) {
                    return Err(reject(too_large));
                }
                collect(stream, limit, declared.unwrap_or(0))
                    .await
                    .map_err(|e| reject(e.unwrap_or(too_large)))
            }
        })
}

/// A JSON body of type `T`, at most `limit` bytes.
pub fn json<T: DeserializeOwned + Send>(
    limit: u64,
    too_large: ApiError,
) -> impl Filter<Extract = (T,), Error = Rejection> + Clone {
    limited(limit, too_large).and_then(|bytes: Bytes| async move {
        serde_json::from_slice::<T>(&bytes)
            .map_err(|e| reject(ApiError::BadRequest(format!("请求体不是有效的JSON: {e}"))))
    })
}

/// Collects `stream` up to `limit` bytes. `Err(None)` when the limit is passed, `Err(Some(_))`
/// when the connection fails mid-body.
async fn collect<S, B>(stream: S, limit: u64, hint: u64) -> Result<Bytes, Option<ApiError>>
where
    S: Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let mut out = Vec::with_capacity(usize::try_from(hint).unwrap_or(0).min(limit));
    let mut stream = std::pin::pin!(stream);
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|e| Some(ApiError::BadRequest(format!("读取请求体失败: {e}"))))?;
        if !append_within(&mut out, chunk, limit) {
            return Err(None);
        }
    }
    Ok(out.into())
}

/// Appends `chunk` to `out` unless that would make `out` longer than `limit`; `false` then.
pub(super) fn append_within(out: &mut Vec<u8>, mut chunk: impl Buf, limit: usize) -> bool {
    if out.len().saturating_add(chunk.remaining()) > limit {
        return false;
    }
    while chunk.has_remaining() {
        let piece = chunk.chunk();
        out.extend_from_slice(piece);
        let n = piece.len();
        chunk.advance(n);
    }
    true
}
