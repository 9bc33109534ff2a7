//! Administration over HTTP: `GET /api/admin/backup` sends the `admin` account a consistent
//! snapshot of the data file, so a running server can be backed up from another machine
//! (`imgvault backup OUT --server URL`) without stopping it; `GET /metrics` gives it the
//! Prometheus counters (`crate::metrics`), which `--metrics-listen` also serves on an address of
//! their own without a login, for a scraper on a trusted network.
//!
//! The snapshot is written next to the data file on the blocking pool (uploads go on meanwhile),
//! then streamed from an open handle; the file itself is unlinked as soon as it is open, so nothing
//! is left behind when the download ends or breaks off.

use std::convert::Infallible;
use std::io::Read;
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::Semaphore;
use warp::http::{HeaderValue, StatusCode, header};
use warp::{Filter, Rejection, Reply};

use super::AppState;
use super::auth::{Caller, require_user};
use super::error::ErrorReply;
use super::{ApiError, blocking, blocking_stream, reject, with_state};

/// One snapshot at a time: each needs as much free disk as the data file.
static SNAPSHOTS: Semaphore = Semaphore::const_new(1);
const PIECE: usize = 256 * 1024;

pub fn routes(
    state: Arc<AppState>,
) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    let backup = warp::path!("api" / "admin" / "backup")
        .and(warp::get())
        .and(with_state(state.clone()))
        .and(require_user(state.clone()))
        .and_then(backup);
    let metrics = warp::path!("metrics")
        .and(warp::get())
        .and(with_state(state.clone()))
        .and(require_user(state))
        .and_then(metrics);
    backup.or(metrics)
}

/// The operations of this module in the OpenAPI document (`openapi`).
#[derive(utoipa::OpenApi)]
#[openapi(paths(backup, metrics))]
pub(super) struct Doc;

/// The Prometheus counters (the `admin` account only; `--metrics-listen` serves them on an
/// address of their own without a login).
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "metrics",
    tag = "admin",
    responses(
        (status = 200, description = "Prometheus text format 0.0.4.", content_type = "text/plain"),
        (status = 403, description = "Not the `admin` account.", body = ErrorReply),
    )
)]
async fn metrics(state: Arc<AppState>, caller: Caller) -> Result<impl Reply, Rejection> {
    if caller.user.user_id != state.default_user_id {
        return Err(reject(ApiError::Forbidden));
    }
    Ok(metrics_reply(&state))
}

/// `GET /metrics` alone, without a login: what `--metrics-listen` serves.
pub fn metrics_only(
    state: Arc<AppState>,
) -> impl Filter<Extract = (impl Reply,), Error = Infallible> + Clone {
    warp::path!("metrics")
        .and(warp::get())
        .map(move || metrics_reply(&state))
        .or(warp::any().map(|| {
            warp::reply::with_status("only /metrics is served here\n", StatusCode::NOT_FOUND)
        }))
}

/// The counters with the gauges read now: a counter read, a `stat` and a `statvfs`.
fn metrics_reply(state: &AppState) -> impl Reply + use<> {
    let store = &state.store;
    let gauges = crate::metrics::Gauges {
        images: store
            .total_images()
            .unwrap_or_else(|_| store.last_total_images()),
        thumbnail_queue: state.jobs.queued(),
        data_file_bytes: std::fs::metadata(&state.config.data).map_or(0, |m| m.len()),
        disk_free_bytes: crate::store::disk::free_bytes(
            state
                .config
                .data
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(std::path::Path::new(".")),
        )
        .unwrap_or(0),
        resident_bytes: crate::metrics::resident_bytes(),
    };
    warp::reply::with_header(
        crate::metrics::get().render(&gauges),
        header::CONTENT_TYPE,
        "text/plain; version=0.0.4; charset=utf-8",
    )
}

/// A consistent copy of the data file, taken while the server runs (the `admin` account only).
#[utoipa::path(
    get,
    path = "/api/admin/backup",
    operation_id = "admin_backup",
    tag = "admin",
    responses(
        (status = 200, description = "The snapshot, a redb file.", content_type = "application/octet-stream"),
        (status = 403, description = "Not the `admin` account.", body = ErrorReply),
    )
)]
async fn backup(state: Arc<AppState>, caller: Caller) -> Result<warp::reply::Response, Rejection> {
    if caller.user.user_id != state.default_user_id {
        return Err(reject(ApiError::Forbidden));
    }
    let permit = SNAPSHOTS
        .acquire()
        .await
        .map_err(|e| reject(ApiError::Internal(e.to_string())))?;
    let started = std::time::Instant::now();
    let name = crate::backups::file_name_now();
    let (file, size) = blocking(move || {
        let target = state
            .config
            .data
            .with_file_name(format!(".imgvault-download-{}.redb", uuid::Uuid::new_v4()));
        let stats = state
            .store
            .snapshot(&target, &mut |_| {})
            .map_err(|e| ApiError::Internal(format!("backup snapshot: {e}")))?;
        let opened = std::fs::File::open(&target);
        // Unlinked at once: the open handle keeps the bytes readable until the stream ends.
        crate::atomic_file::discard(&target);
        let file = opened.map_err(|e| ApiError::Internal(format!("backup snapshot: {e}")))?;
        Ok((file, stats.file_size))
    })
    .await
    .map_err(reject)?;
    tracing::info!(
        bytes = size,
        ms = started.elapsed().as_millis() as u64,
        "backup snapshot taken for download"
    );

    let mut resp = warp::reply::stream(blocking_stream((file, permit), |(file, _permit)| {
        let mut piece = vec![0u8; PIECE];
        let n = file.read(&mut piece)?;
        piece.truncate(n);
        Ok::<_, std::io::Error>((n > 0).then(|| Bytes::from(piece)))
    }))
    .into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(resp)
}
