//! HTTP only: the seed's endpoints as warp filters, one module per resource. Handlers read like a
//! sentence (authenticate, validate, call the store, shape the answer); they never open a table and
//! never format an error themselves (`error` does).

pub(crate) mod admin;
mod auth;
pub(crate) mod body;
mod cors;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
mod guard;
mod idempotency;
mod images;
mod keys;
mod multipart;
pub mod openapi;
mod stats;
mod status;
mod sync;
mod tasks;

use std::convert::Infallible;
use std::sync::Arc;

use crate::domain::UserId;
use warp::filters::BoxedFilter;
use warp::{Filter, Rejection, Reply};

pub use error::ApiError;
pub use idempotency::InFlight;

/// What every request handler shares.
pub struct AppState {
    pub store: Arc<crate::store::Store>,
    pub config: crate::config::Config,
    pub jobs: Arc<crate::thumbnails::Jobs>,
    /// The way uploads come in: checked, named, stored and queued for a thumbnail.
    pub ingest: crate::ingest::Ingest,
    /// Downloads images sent to `/api/receive-image` as URLs.
    pub fetcher: crate::fetch::Fetcher,
    /// The hub for cloud sync, when `--cloud-url` is set.
    pub hub: Option<crate::sync::Hub>,
    /// The running cloud sync of each user: user id → task id.
    pub syncs: Arc<crate::sync::Running>,
    /// Owner of uploads sent without a session: the `admin` account.
    pub default_user_id: UserId,
    /// Rate limits and the gates on memory-hungry work.
    pub throttles: crate::throttle::Throttles,
    /// The uploads in progress under an `Idempotency-Key`, one at a time per key.
    pub in_flight: InFlight,
    /// The session cookie's name (read by `auth`, which sets it, and by `guard`'s CSRF check):
    /// `--cookie-name`, or one derived from the data file (`cookie_name`). Static because warp's
    /// cookie filter wants it so; it is made once per server.
    pub cookie: &'static str,
    /// Pairing codes waiting for the browser extension to trade them for a key.
    pub pairings: keys::Pairings,
}

/// The session cookie's name, unless `--cookie-name` names it: `imgvault_` and 8 hex digits of
/// the data file's absolute path. Browsers send a host's cookies to every port, so two servers on
/// one host (a local server and its hub) need different names; each has its own data file, and a
/// name taken from it stays the same across restarts, whatever the port.
pub fn cookie_name(configured: Option<&str>, data: &std::path::Path) -> &'static str {
    let name = configured.map_or_else(
        || {
            let path = std::fs::canonicalize(data).unwrap_or_else(|_| data.to_path_buf());
            let hash = blake3::hash(path.as_os_str().as_encoded_bytes());
            format!("imgvault_{}", &hash.to_hex()[..8])
        },
        str::to_string,
    );
    Box::leak(name.into_boxed_str())
}

/// Every route of the server, with CORS, request logging and the JSON error mapping applied.
pub fn routes(
    state: Arc<AppState>,
) -> impl Filter<Extract = (impl Reply,), Error = Infallible> + Clone {
    let api = boxed(status::routes(state.clone()))
        .or(boxed(auth::routes(state.clone())))
        .or(boxed(images::routes(state.clone())))
        .or(boxed(tasks::routes(state.clone())))
        .or(boxed(sync::routes(state.clone())))
        .or(boxed(admin::routes(state.clone())))
        .or(boxed(keys::routes(state.clone())))
        .or(boxed(stats::routes(state.clone())))
        .or(boxed(openapi::routes(state.clone())))
        .or(boxed(crate::web::routes()));
    let api = boxed(api);
    warp::header::headers_cloned()
        .and(
            cors::preflight(state.clone())
                .or(guard::csrf(state.clone())
                    .and(auth::keys(state.clone()))
                    .and(api))
                .recover(error::recover),
        )
        .map(move |headers, reply| cors::decorate(&state, &headers, reply))
        .with(warp::reply::with::header(
            "x-content-type-options",
            "nosniff",
        ))
        .with(warp::log::custom(log_request))
}

/// A route group behind one pointer. warp's `or` clones the alternatives it has not tried yet on
/// every request, so an unboxed tree costs every request a copy of every later route (and an atomic
/// increment for each `Arc` they hold); boxed, it costs one of each per group, and a small
/// allocation for the future of each group tried.
fn boxed<F, R>(routes: F) -> BoxedFilter<(warp::reply::Response,)>
where
    F: Filter<Extract = (R,), Error = Rejection> + Clone + Send + Sync + 'static,
    R: Reply + 'static,
{
    routes.map(Reply::into_response).boxed()
}

fn log_request(info: warp::log::Info<'_>) {
    let status = info.status().as_u16();
    crate::metrics::get().request(info.method().as_str(), info.path(), status, info.elapsed());
    let ms = info.elapsed().as_secs_f64() * 1000.0;
    if status >= 500 {
        tracing::warn!(method = %info.method(), path = info.path(), status, ms, "request failed");
    } else {
        tracing::debug!(method = %info.method(), path = info.path(), status, ms, "request");
    }
}

fn with_state(
    state: Arc<AppState>,
) -> impl Filter<Extract = (Arc<AppState>,), Error = Infallible> + Clone {
    warp::any().map(move || state.clone())
}

/// Runs blocking work (redb writes and scans, argon2, hashing) on the blocking pool, off the
/// async workers.
///
/// Not for the small reads most requests make (the session, a page of the image list, the status
/// counter): they touch a few pages that redb's cache holds, and the hop to the pool and back (two
/// thread wake-ups) costs more CPU than the read itself. Those run in place.
async fn blocking<T, F>(f: F) -> Result<T, ApiError>
where
    F: FnOnce() -> Result<T, ApiError> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f).await?
}

/// An answer's body read from `source` piece by piece on the blocking pool, each piece only when
/// the client is ready for it, so a large answer holds one piece in memory, not all of it. `next`
/// gives the next piece, `None` at the end; `source` is dropped when the body ends.
fn blocking_stream<S, E>(
    source: S,
    next: impl Fn(&mut S) -> Result<Option<bytes::Bytes>, E> + Copy + Send + Sync + 'static,
) -> impl futures_util::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send + Sync + 'static
where
    S: Send + Sync + 'static,
    E: std::fmt::Display + Send + 'static,
{
    futures_util::stream::unfold(Some(source), move |source| async move {
        let mut source = source?;
        let read = tokio::task::spawn_blocking(move || {
            let piece = next(&mut source);
            (source, piece)
        })
        .await;
        match read {
            Ok((source, Ok(Some(piece)))) => Some((Ok(piece), Some(source))),
            Ok((_, Ok(None))) => None,
            Ok((_, Err(e))) => Some((Err(std::io::Error::other(e.to_string())), None)),
            Err(e) => Some((Err(std::io::Error::other(e.to_string())), None)),
        }
    })
}

fn reject(e: ApiError) -> Rejection {
    warp::reject::custom(e)
}
