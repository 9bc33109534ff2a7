//! Request bodies read under a byte limit that is enforced while the bytes arrive: nothing past the
//! limit is ever buffered.
//!
//! An oversize body is still read to its end (and thrown away) up to a drain cap (64 MiB, or the
//! route's limit plus 16 MiB for routes that take more), because an HTTP client that is still
//! writing when the server answers and closes usually loses the answer to a broken pipe; draining
//! lets it see the 413 and its JSON. Bodies declared larger than the cap are refused at once,
//! before any byte is read.
//!
//! All bodies being read share one budget (`Throttles::bodies`, 30% of `--memory-mb`): a body
//! takes its declared length from it before its first byte is read (a chunked body takes more as
//! it grows) and gives it back when the last copy of its bytes is dropped. A body that does not
//! fit while others are in flight gets 503 with `Retry-After`; one larger than the whole budget,
//! 413.

use bytes::{Buf, Bytes};
use futures_util::{Stream, StreamExt};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use warp::{Filter, Rejection};

use super::{ApiError, reject};
use crate::throttle::{Closed, Gate, Reservation, append_within};

/// `bytes` of `budget`, or 503 (busy) / `too_large` (more than the whole budget).
pub(crate) fn reserve(
    gate: &Gate,
    bytes: u64,
    too_large: &ApiError,
) -> Result<Reservation, ApiError> {
    let mut reservation = Reservation::new(gate);
    grow(&mut reservation, bytes, too_large)?;
    Ok(reservation)
}

/// Makes `reservation` cover `bytes`, or 503 / `too_large`.
pub(crate) fn grow(
    reservation: &mut Reservation,
    bytes: u64,
    too_large: &ApiError,
) -> Result<(), ApiError> {
    reservation.grow_to(bytes).map_err(|e| match e {
        Closed::TooLarge => too_large.clone(),
        Closed::Busy => ApiError::Busy(1),
    })
}

/// Largest oversize body read to its end (and discarded) so the client gets a clean 413.
const DRAIN_CAP: u64 = 64 * 1024 * 1024;
/// How far past a large route limit a body is still drained.
const DRAIN_SLACK: u64 = 16 * 1024 * 1024;

fn drain_cap(limit: u64) -> u64 {
    DRAIN_CAP.max(limit.saturating_add(DRAIN_SLACK))
}

/// The body as bytes, at most `limit` of them; `too_large` otherwise. The bytes hold their share
/// of `budget` until dropped.
pub fn limited(
    budget: Gate,
    limit: u64,
    too_large: ApiError,
) -> impl Filter<Extract = (Bytes,), Error = Rejection> + Clone {
    warp::header::optional::<u64>("content-length")
        .and(warp::body::stream())
        .and_then(move |declared: Option<u64>, stream| {
            let too_large = too_large.clone();
            let budget = budget.clone();
            async move {
                if declared.is_some_and(|n| n > drain_cap(limit)) {
                    return Err(reject(too_large));
                }
                let stream = std::pin::pin!(stream);
                let declared = declared.unwrap_or(0);
                let reservation = match reserve(&budget, declared.min(limit), &too_large) {
                    Ok(reservation) => reservation,
                    Err(refused) => {
                        drain(stream, 0, drain_cap(limit)).await;
                        return Err(reject(refused));
                    }
                };
                collect(stream, limit, declared, reservation)
                    .await
                    .map_err(|e| reject(e.unwrap_or(too_large)))
            }
        })
}

/// A JSON body of type `T`, at most `limit` bytes.
pub fn json<T: DeserializeOwned + Send>(
    budget: Gate,
    limit: u64,
    too_large: ApiError,
) -> impl Filter<Extract = (T,), Error = Rejection> + Clone {
    limited(budget, limit, too_large).and_then(|bytes: Bytes| async move { parse_json(&bytes) })
}

/// `bytes` as JSON of type `T`, which may borrow from them (large strings are then not copied).
pub fn parse_json<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, Rejection> {
    serde_json::from_slice::<T>(bytes)
        .map_err(|e| reject(ApiError::BadRequest(format!("请求体不是有效的JSON: {e}"))))
}

/// Collects `stream` up to `limit` bytes, growing `reservation` past the declared length if the
/// body runs longer. `Err(None)` when the limit is passed, `Err(Some(_))` when the connection
/// fails mid-body or the budget runs out.
async fn collect<S, B>(
    mut stream: std::pin::Pin<&mut S>,
    limit: u64,
    hint: u64,
    mut reservation: Reservation,
) -> Result<Bytes, Option<ApiError>>
where
    S: Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let mut out = Vec::with_capacity(usize::try_from(hint).unwrap_or(0).min(limit));
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|e| Some(ApiError::BadRequest(format!("读取请求体失败: {e}"))))?;
        let grown = out.len().saturating_add(chunk.remaining()).min(limit) as u64;
        if let Err(refused) = grow(&mut reservation, grown, &ApiError::BodyTooLarge) {
            drain(stream, out.len() as u64, drain_cap(limit as u64)).await;
            return Err(Some(refused));
        }
        if !append_within(&mut out, chunk, limit) {
            drain(stream, out.len() as u64, drain_cap(limit as u64)).await;
            return Err(None);
        }
    }
    Ok(reservation.hold(out))
}

/// Reads and discards a refused body, up to `limit` plus the drain slack, so its client sees the
/// answer rather than a broken pipe.
pub(crate) async fn discard<S, B>(stream: std::pin::Pin<&mut S>, limit: u64)
where
    S: Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    drain(stream, 0, drain_cap(limit)).await;
}

/// Reads and discards what is left of an oversize body, up to `cap` bytes in all.
async fn drain<S, B>(mut stream: std::pin::Pin<&mut S>, mut seen: u64, cap: u64)
where
    S: Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    while seen <= cap {
        match stream.next().await {
            Some(Ok(chunk)) => seen += chunk.remaining() as u64,
            _ => return,
        }
    }
}

/// A body too large to hold, for blocking code to read as a stream (`std::io::Read`): a hub's
/// sync request, which may carry a whole collection. The body is pumped from the connection a few
/// chunks ahead of the reader; past `limit` the reader gets an error of kind `FileTooLarge`.
/// `reservation` is the request's share of the bodies budget: the memory its reader may hold.
pub struct Streamed {
    pub reader: ChannelReader,
    pub reservation: Reservation,
}

/// Chunks read ahead of a `Streamed` body's reader.
const READ_AHEAD: usize = 4;

/// A `Streamed` body of at most `limit` bytes whose reader holds at most `working_set` bytes.
/// A declared length over the limit is refused without handing the body to a reader (drained
/// first when it is within the drain cap).
pub fn streamed(
    budget: Gate,
    limit: u64,
    working_set: u64,
    too_large: ApiError,
) -> impl Filter<Extract = (Streamed,), Error = Rejection> + Clone {
    warp::header::optional::<u64>("content-length")
        .and(warp::body::stream())
        .and_then(move |declared: Option<u64>, stream| {
            let (budget, too_large) = (budget.clone(), too_large.clone());
            async move {
                if let Some(declared) = declared.filter(|&n| n > limit) {
                    if declared <= drain_cap(limit) {
                        drain(std::pin::pin!(stream), 0, declared).await;
                    }
                    return Err(reject(too_large));
                }
                let reservation = match reserve(&budget, working_set, &too_large) {
                    Ok(reservation) => reservation,
                    Err(refused) => {
                        let stream = std::pin::pin!(stream);
                        drain(stream, 0, DRAIN_CAP).await;
                        return Err(reject(refused));
                    }
                };
                let (tx, rx) = tokio::sync::mpsc::channel(READ_AHEAD);
                tokio::spawn(pump(stream, tx, limit));
                Ok(Streamed {
                    reader: ChannelReader {
                        rx,
                        chunk: Bytes::new(),
                    },
                    reservation,
                })
            }
        })
}

/// Moves a body's chunks to its reader; past `limit` sends the error instead. When the reader is
/// gone (it finished, or refused the body) the rest is discarded up to the drain cap, so the
/// client sees the answer rather than a broken pipe.
async fn pump<S, B>(stream: S, tx: tokio::sync::mpsc::Sender<std::io::Result<Bytes>>, limit: u64)
where
    S: Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    let mut stream = std::pin::pin!(stream);
    let mut seen = 0u64;
    while let Some(chunk) = stream.next().await {
        let item = match chunk {
            Ok(mut chunk) => {
                seen += chunk.remaining() as u64;
                if seen > limit {
                    let _ = tx
                        .send(Err(std::io::Error::new(
                            std::io::ErrorKind::FileTooLarge,
                            format!("the body is larger than {limit} bytes"),
                        )))
                        .await;
                    break;
                }
                Ok(chunk.copy_to_bytes(chunk.remaining()))
            }
            Err(e) => Err(std::io::Error::other(format!("读取请求体失败: {e}"))),
        };
        if tx.send(item).await.is_err() {
            break;
        }
    }
    drain(stream, 0, DRAIN_CAP).await;
}

/// The reading end of a `Streamed` body. Blocks: for blocking threads only.
pub struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<std::io::Result<Bytes>>,
    chunk: Bytes,
}

impl std::io::Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.chunk.is_empty() {
            match self.rx.blocking_recv() {
                Some(next) => self.chunk = next?,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk[..n]);
        self.chunk.advance(n);
        Ok(n)
    }
}
