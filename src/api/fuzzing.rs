//! Entry points for `tests/fuzz.rs` into code that is not public otherwise. Not an API: hidden from
//! the docs, kept to what the fuzz targets need, and each one runs the same code as the server.

use std::future::Future;

use crate::domain::UserId;
use crate::store::Store;
use crate::sync::SyncReply;

pub use super::multipart::MAX_PARTS;

/// A hub's sync receiver on a real data file, with the server's writer and thumbnail workers, for
/// `POST /api/sync/user/{id}` bodies handled as the route handles them after authentication.
pub struct SyncHub {
    runtime: tokio::runtime::Runtime,
    store: std::sync::Arc<Store>,
    ingest: crate::ingest::Ingest,
}

impl SyncHub {
    pub fn new(store: std::sync::Arc<Store>) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a runtime");
        let ingest = runtime.block_on(async {
            let writer = crate::writer::Writer::start(store.clone()).expect("the writer thread");
            let budget = 64 * 1024 * 1024;
            let jobs =
                crate::thumbnails::Jobs::start(store.clone(), writer.clone(), 1, 512, budget);
            crate::ingest::Ingest::new(writer, jobs, budget)
        });
        Self {
            runtime,
            store,
            ingest,
        }
    }

    /// Receives `body` for `user_id`, read in pieces of `chunk` bytes. `Err` says why the body
    /// was refused as a whole.
    pub fn sync_batch(
        &self,
        user_id: &str,
        body: &[u8],
        chunk: usize,
    ) -> Result<SyncReply, String> {
        let (store, ingest, user_id) = (
            self.store.clone(),
            self.ingest.clone(),
            UserId::from(user_id),
        );
        let pieces: Vec<u8> = body.to_vec();
        let received = self.runtime.block_on(async move {
            tokio::task::spawn_blocking(move || {
                let input = std::io::BufReader::with_capacity(chunk.max(1), pieces.as_slice());
                crate::sync::receive(input, &store, &ingest, &user_id, &mut |_| Ok(()))
            })
            .await
            .expect("the receiver ran")
        });
        received.map(|r| r.reply).map_err(|e| e.to_string())
    }
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
