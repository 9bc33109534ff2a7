//! Entry points for `tests/fuzz.rs` into code that is not public otherwise. Not an API: hidden from
//! the docs, kept to what the fuzz targets need, and each one runs the same code as the server.

use std::future::Future;

use crate::store::Store;
use crate::sync::{SyncData, SyncReply};

pub use super::multipart::MAX_PARTS;

/// A sync request body received by a hub, as `POST /api/sync/user/{id}` handles it after
/// authentication: parsed as `SyncData` and ingested into `store` for `user_id`. Thumbnail jobs
/// are not queued. `Err` says why the body was refused as a whole.
pub fn sync_batch(store: &Store, user_id: &str, body: &[u8]) -> Result<SyncReply, String> {
    let data: SyncData = super::body::parse_json(body).map_err(|r| format!("{r:?}"))?;
    crate::sync::receive(store, &user_id.into(), data)
        .map(|(reply, _)| reply)
        .map_err(|e| e.to_string())
}

/// One part as the multipart reader gave it: its field name, file name and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub name: String,
    pub filename: Option<String>,
    pub body: Vec<u8>,
}

/// Reads a whole `multipart/form-data` body as `POST /api/upload-file` does, the body arriving in
/// pieces of `chunk` bytes, each part's body limited to `limit` bytes. `Err` is the message of the
/// 4xx the route would answer.
pub fn multipart_form(
    body: &[u8],
    boundary: &str,
    chunk: usize,
    limit: usize,
) -> Result<Vec<Part>, String> {
    let pieces: Vec<Result<bytes::Bytes, std::convert::Infallible>> = body
        .chunks(chunk.max(1))
        .map(|c| Ok(bytes::Bytes::copy_from_slice(c)))
        .collect();
    let mut form = super::multipart::Multipart::new(futures_util::stream::iter(pieces), boundary);
    let read = async {
        let mut parts = Vec::new();
        while let Some(head) = form.next_part().await? {
            let body = form
                .read_body(limit, super::ApiError::FileTooLarge, |_| Ok(()))
                .await?;
            parts.push(Part {
                name: head.name,
                filename: head.filename,
                body,
            });
        }
        Ok::<_, super::ApiError>(parts)
    };
    // The stream is always ready, so the reader never waits: one poll finishes it.
    let mut read = std::pin::pin!(read);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match read.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(outcome) => outcome.map_err(|e| e.to_string()),
        std::task::Poll::Pending => Err("the multipart reader waited on a ready stream".into()),
    }
}
