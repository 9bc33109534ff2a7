//! Cloud sync over HTTP, both ends; the work is in `crate::sync`. `POST /api/cloud/sync` starts a
//! sync of the caller's unsynced images to the hub (`sync::SyncJob`; the task endpoint shows its
//! progress). On a hub, `POST /api/sync/user/{user_id}/manifest` says which images it still needs
//! and `POST /api/sync/user/{user_id}` receives them in the seed's SyncData shape
//! (`sync::receive`, read as a stream), and `GET /api/user/{user_id}/sync/status` reports the last
//! sync received, in the original project's cloud-server shapes.

use std::collections::HashSet;
use std::sync::Arc;

use serde::Serialize;
use warp::{Filter, Rejection, Reply};

use super::AppState;
use super::auth::{Caller, require_user};
use super::error::ErrorReply;
use super::{ApiError, blocking, body, reject, with_state};
use crate::clock;
use crate::domain::{BlobHash, ImageId, TaskId, UserId};
use crate::store::records::{HubSyncRecord, SyncProgressRecord, TaskRecord, TaskStatus};
use crate::store::{BatchAction, MAX_BATCH_IDS};
use crate::sync::{self as cloud, ManifestReply, ManifestRequest, SyncReply};

/// What a sync request being received holds besides its metadata: the image being decoded, the
/// images handed to the writer and not yet committed, and read-ahead. Taken from the bodies budget
/// (`Throttles::bodies`) when the request starts; its metadata is added as it is read.
const RECEIVE_WORKING_SET: u64 =
    crate::media::MAX_IMAGE_BYTES + cloud::IN_FLIGHT_BYTES + 1024 * 1024;
/// A manifest lists ids and hashes only: about 120 bytes an image.
const MANIFEST_BODY_LIMIT: u64 = 16 * 1024 * 1024;
/// Assumed throughput for the seed's `estimated_time`.
const ESTIMATE_BYTES_PER_SECOND: f64 = 5.0 * 1024.0 * 1024.0;

/// The operations of this module in the OpenAPI document (`openapi`).
#[derive(utoipa::OpenApi)]
#[openapi(paths(start_sync, manifest, receive, sync_status))]
pub(super) struct Doc;

pub fn routes(
    state: Arc<AppState>,
) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    let start = warp::path!("api" / "cloud" / "sync")
        .and(warp::post())
        .and(with_state(state.clone()))
        .and(require_user(state.clone()))
        .and_then(start_sync);
    let manifest = warp::path!("api" / "sync" / "user" / UserId / "manifest")
        .and(warp::post())
        .and(with_state(state.clone()))
        .and(require_user(state.clone()))
        .and_then(own_account)
        .untuple_one()
        .and(body::json(
            state.throttles.bodies.clone(),
            MANIFEST_BODY_LIMIT,
            ApiError::BodyTooLarge,
        ))
        .and_then(manifest);
    let bodies = state.throttles.bodies.clone();
    let receive = warp::path!("api" / "sync" / "user" / UserId)
        .and(warp::post())
        .and(with_state(state.clone()))
        .and(require_user(state.clone()))
        .and_then(own_account)
        .untuple_one()
        .and(body::streamed(
            bodies,
            state.config.limits.sync_body_bytes,
            RECEIVE_WORKING_SET,
            ApiError::BodyTooLarge,
        ))
        .and_then(receive);
    let status = warp::path!("api" / "user" / UserId / "sync" / "status")
        .and(warp::get())
        .and(with_state(state.clone()))
        .and(require_user(state))
        .and_then(own_account)
        .untuple_one()
        .and_then(sync_status);
    start.or(manifest).or(receive).or(status)
}

#[derive(Serialize, utoipa::ToSchema)]
struct SyncStarted {
    success: bool,
    message: &'static str,
    sync_info: SyncInfo,
    #[serde(rename = "taskId")]
    task_id: TaskId,
}

#[derive(Serialize, utoipa::ToSchema)]
struct SyncInfo {
    user_id: UserId,
    image_count: u64,
    estimated_time: String,
}

/// Starts sending the caller's unsynced images to the hub (`--cloud-url`), in the background.
#[utoipa::path(
    post,
    path = "/api/cloud/sync",
    operation_id = "start_cloud_sync",
    tag = "sync",
    security(("session" = [])),
    responses(
        (status = 200, description = "Started, or already running: follow `taskId` on `/api/task/{task_id}`.", body = SyncStarted),
        (status = 400, description = "Cloud sync is off on this server, or the hub login is missing.", body = ErrorReply),
    )
)]
async fn start_sync(state: Arc<AppState>, caller: Caller) -> Result<impl Reply, Rejection> {
    let Some(hub) = &state.hub else {
        return Err(reject(ApiError::CloudSyncDisabled));
    };
    let user_id = caller.user.user_id.clone();
    let running = state.syncs.task_of(&user_id);
    if let Some(task_id) = running {
        let progress = {
            let (state, task_id) = (state.clone(), task_id.clone());
            blocking(move || Ok(state.store.sync_progress(&task_id)?))
                .await
                .map_err(reject)?
                .unwrap_or_default()
        };
        return Ok(warp::reply::json(&SyncStarted {
            success: true,
            message: "同步任务正在进行中",
            sync_info: SyncInfo {
                user_id,
                image_count: progress.total,
                estimated_time: "进行中".into(),
            },
            task_id,
        }));
    }

    // A key has no session, so no hub login sealed under one.
    let (token_hash, token) = caller
        .session()
        .map(|(hash, token)| (hash, token.to_string()))
        .ok_or_else(|| reject(ApiError::HubLoginNeeded))?;
    let (hub_session, images) = {
        let (state, user_id, hash) = (state.clone(), user_id.clone(), token_hash);
        blocking(move || {
            Ok((
                state.store.hub_session(&hash)?,
                state.store.unsynced_images(&user_id)?,
            ))
        })
        .await
        .map_err(reject)?
    };
    let login = hub_session
        .and_then(|s| {
            let sealed = cloud::unseal(&token, s.nonce, &s.sealed)?;
            // Sealed before cookie names varied: a bare token of the cookie `session`.
            let cookie = match sealed.contains('=') || sealed.is_empty() {
                true => sealed,
                false => format!("session={sealed}"),
            };
            Some(cloud::HubLogin {
                user_id: s.hub_user_id,
                cookie,
            })
        })
        .ok_or_else(|| reject(ApiError::HubLoginNeeded))?;

    let now = clock::now();
    let task = TaskRecord {
        task_id: TaskId::random(),
        user_id: user_id.clone(),
        image_id: ImageId::from(""),
        status: TaskStatus::Processing,
        error: None,
        created_at: now,
        updated_at: now,
    };
    if let Err(task_id) = state.syncs.start(&user_id, &task.task_id) {
        // Another request started one in the meantime.
        return Ok(warp::reply::json(&SyncStarted {
            success: true,
            message: "同步任务正在进行中",
            sync_info: SyncInfo {
                user_id,
                image_count: images.len() as u64,
                estimated_time: "进行中".into(),
            },
            task_id,
        }));
    }
    let progress = SyncProgressRecord {
        total: images.len() as u64,
        ..Default::default()
    };
    let created = {
        let (state, task, progress) = (state.clone(), task.clone(), progress.clone());
        blocking(move || Ok(state.store.create_sync_task(&task, &progress)?)).await
    };
    if let Err(e) = created {
        state.syncs.end(&user_id);
        return Err(reject(e));
    }
    let bytes: u64 = images.iter().map(|i| i.file_size).sum();
    let image_count = images.len() as u64;
    tracing::info!(%user_id, images = image_count, bytes, task_id = %task.task_id, "cloud sync started");
    tokio::spawn(
        cloud::SyncJob {
            store: state.store.clone(),
            hub: hub.clone(),
            running: state.syncs.clone(),
            user: caller.user,
            login,
            local_token_hash: token_hash,
            task_id: task.task_id.clone(),
            images,
        }
        .run(),
    );
    let seconds = (bytes as f64 * 4.0 / 3.0 / ESTIMATE_BYTES_PER_SECOND).max(0.1);
    Ok(warp::reply::json(&SyncStarted {
        success: true,
        message: "同步任务已启动",
        sync_info: SyncInfo {
            user_id,
            image_count,
            estimated_time: format!("{seconds:.1}秒"),
        },
        task_id: task.task_id,
    }))
}

/// Only the account itself may sync into its hub account; checked before the body is read.
async fn own_account(
    user_id: UserId,
    state: Arc<AppState>,
    caller: Caller,
) -> Result<(Arc<AppState>, Caller), Rejection> {
    if caller.user.user_id == user_id {
        Ok((state, caller))
    } else {
        Err(reject(ApiError::Forbidden))
    }
}

#[derive(Serialize, utoipa::ToSchema)]
struct Manifest {
    success: bool,
    #[serde(flatten)]
    reply: ManifestReply,
}

/// On a hub: which of the sender's images and blobs it still needs, and deletions to mirror.
#[utoipa::path(
    post,
    path = "/api/sync/user/{user_id}/manifest",
    operation_id = "sync_manifest",
    tag = "sync",
    params(("user_id" = UserId, Path, description = "The caller's own account.")),
    request_body = ManifestRequest,
    responses(
        (status = 200, description = "What the hub needs.", body = Manifest),
        (status = 403, description = "Another account's id.", body = ErrorReply),
    )
)]
async fn manifest(
    state: Arc<AppState>,
    caller: Caller,
    request: ManifestRequest,
) -> Result<impl Reply, Rejection> {
    let user_id = caller.user.user_id;
    let reply = blocking(move || {
        // Deleted for good on the sender: deleted here too, from this account only. Ids it does
        // not hold (never sent, or deleted before) are done as well.
        let deleted = match request.deleted.len() {
            0 => None,
            _ => {
                let ids = &request.deleted[..request.deleted.len().min(MAX_BATCH_IDS)];
                let done = state
                    .store
                    .batch(&user_id, ids, &BatchAction::DeleteForever)?;
                if done.changed > 0 {
                    tracing::info!(%user_id, deleted = done.changed, "sync deleted images");
                }
                Some(ids.to_vec())
            }
        };
        let held = state.store.user_blobs(&user_id)?;
        let mut reply = ManifestReply {
            deleted,
            ..ManifestReply::default()
        };
        let mut seen = HashSet::new();
        for entry in request.images {
            let have = state
                .store
                .image(&entry.id)?
                .is_some_and(|i| i.user_id == user_id);
            if !have {
                reply.needed.push(entry.id);
            }
            if BlobHash::from_hex(&entry.blake3).is_some_and(|h| held.contains(&h))
                && seen.insert(entry.blake3.clone())
            {
                reply.have_blobs.push(entry.blake3);
            }
        }
        Ok(reply)
    })
    .await
    .map_err(reject)?;
    Ok(warp::reply::json(&Manifest {
        success: true,
        reply,
    }))
}

#[derive(Serialize, utoipa::ToSchema)]
struct Received {
    success: bool,
    message: String,
    #[serde(flatten)]
    reply: SyncReply,
    /// What the original project's cloud server answers, for its local servers.
    sync_result: SyncResult,
}

/// The original cloud server's account of one sync (`server_sample/server.py`).
#[derive(Serialize, utoipa::ToSchema)]
struct SyncResult {
    sync_id: String,
    cloud_user_id: UserId,
    total_images: u64,
    saved_files: u64,
    failed_files: u64,
    total_size: u64,
    /// Virtual try-on history and favourites are not kept here; they are read past, never stored.
    vton_synced: u64,
    vton_failed: u64,
    favorites_synced: u64,
    favorites_failed: u64,
    #[schema(value_type = Option<Object>)]
    sync_timestamp: Option<serde_json::Value>,
    server_timestamp: String,
    status: &'static str,
}

/// On a hub: one batch of images (the seed's SyncData, files as base64), streamed.
#[utoipa::path(
    post,
    path = "/api/sync/user/{user_id}",
    operation_id = "sync_receive",
    tag = "sync",
    params(("user_id" = UserId, Path, description = "The caller's own account.")),
    request_body = crate::sync::SyncData,
    responses(
        (status = 200, description = "What the hub stored and refused.", body = Received),
        (status = 403, description = "Another account's id.", body = ErrorReply),
        (status = 413, description = "Over `--sync-body-mb`.", body = ErrorReply),
    )
)]
async fn receive(
    state: Arc<AppState>,
    caller: Caller,
    body: body::Streamed,
) -> Result<impl Reply, Rejection> {
    let user_id = caller.user.user_id.clone();
    let worker = state.clone();
    let received = tokio::task::spawn_blocking(move || {
        let body::Streamed {
            reader,
            mut reservation,
        } = body;
        let input = std::io::BufReader::with_capacity(64 * 1024, reader);
        let received = cloud::receive(
            input,
            &worker.store,
            &worker.ingest,
            &user_id,
            &mut |metadata| {
                body::grow(
                    &mut reservation,
                    RECEIVE_WORKING_SET + metadata,
                    &ApiError::BodyTooLarge,
                )
                .map_err(|e| match e {
                    ApiError::Busy(_) => cloud::ReceiveError::Busy,
                    _ => cloud::ReceiveError::TooLarge("the sync request's metadata".into()),
                })
            },
        )?;
        let last = HubSyncRecord {
            sync_id: uuid::Uuid::new_v4().to_string(),
            at: clock::now(),
            images: received.total_images,
            accepted: received.reply.accepted.len() as u64,
            refused: received.reply.refused.len() as u64,
            total_size: received.total_size,
        };
        // What was received is stored already; a record that cannot be written costs only the
        // status route's `last_sync`.
        if let Err(e) = worker.store.record_hub_sync(&user_id, &last) {
            tracing::warn!(%user_id, error = %e, "could not record the received sync");
        }
        Ok((received, last))
    })
    .await
    .map_err(|e| reject(ApiError::Internal(e.to_string())))?
    .map_err(|e| {
        tracing::info!(user_id = %caller.user.user_id, error = %e, "sync request refused");
        reject(match e {
            cloud::ReceiveError::Malformed(why) => {
                ApiError::BadRequest(format!("同步数据无效: {why}"))
            }
            cloud::ReceiveError::TooLarge(_) => ApiError::BodyTooLarge,
            cloud::ReceiveError::Busy => ApiError::Busy(2),
            cloud::ReceiveError::Store(e) => e.into(),
        })
    })?;
    let (received, last) = received;
    let reply = received.reply;
    tracing::info!(
        user_id = %caller.user.user_id, accepted = reply.accepted.len(), refused = reply.refused.len(),
        stored = reply.stored, files = reply.received_files, bytes = reply.received_bytes,
        "sync request received"
    );
    let failed = reply.refused.len() as u64;
    let sync_result = SyncResult {
        sync_id: last.sync_id,
        cloud_user_id: caller.user.user_id.clone(),
        total_images: received.total_images,
        saved_files: reply.accepted.len() as u64,
        failed_files: failed,
        total_size: received.total_size,
        vton_synced: 0,
        vton_failed: 0,
        favorites_synced: 0,
        favorites_failed: 0,
        sync_timestamp: received.sync_timestamp,
        server_timestamp: clock::iso(clock::now()),
        status: if failed == 0 { "completed" } else { "partial" },
    };
    Ok(warp::reply::json(&Received {
        success: true,
        message: format!(
            "已接收 {} 张图片，拒绝 {} 张",
            reply.accepted.len(),
            reply.refused.len()
        ),
        reply,
        sync_result,
    }))
}

#[derive(Serialize, utoipa::ToSchema)]
struct SyncStatus {
    success: bool,
    user_id: UserId,
    cloud_user_id: UserId,
    sync_statistics: SyncStatistics,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_sync: Option<LastSync>,
}

/// What a hub account holds (the original cloud server's figures).
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = HubStatistics)]
struct SyncStatistics {
    total_images: u64,
    total_vton_history: u64,
    total_favorites: u64,
}

#[derive(Serialize, utoipa::ToSchema)]
struct LastSync {
    sync_id: String,
    sync_type: &'static str,
    sync_timestamp: String,
    images_count: u64,
    total_size: u64,
    status: &'static str,
    error_message: Option<String>,
}

/// On a hub: the original cloud server's `GET /api/user/{id}/sync/status`, for the account's
/// owner only: what the account holds and the last sync it sent.
#[utoipa::path(
    get,
    path = "/api/user/{user_id}/sync/status",
    operation_id = "hub_sync_status",
    tag = "sync",
    params(("user_id" = UserId, Path, description = "The caller's own account.")),
    responses(
        (status = 200, description = "The account's images and its last sync.", body = SyncStatus),
        (status = 403, description = "Another account's id.", body = ErrorReply),
    )
)]
async fn sync_status(state: Arc<AppState>, caller: Caller) -> Result<impl Reply, Rejection> {
    let user_id = caller.user.user_id;
    let (images, last) = {
        let user_id = user_id.clone();
        blocking(move || {
            Ok((
                state.store.user_image_count(&user_id)?,
                state.store.last_hub_sync(&user_id)?,
            ))
        })
        .await
        .map_err(reject)?
    };
    Ok(warp::reply::json(&SyncStatus {
        success: true,
        cloud_user_id: user_id.clone(),
        user_id,
        sync_statistics: SyncStatistics {
            total_images: images,
            total_vton_history: 0,
            total_favorites: 0,
        },
        last_sync: last.map(|s| LastSync {
            sync_id: s.sync_id,
            sync_type: "full",
            sync_timestamp: clock::display(s.at),
            images_count: s.accepted,
            total_size: s.total_size,
            status: if s.refused == 0 {
                "completed"
            } else {
                "partial"
            },
            error_message: (s.refused > 0).then(|| format!("{} 个文件同步失败", s.refused)),
        }),
    }))
}
