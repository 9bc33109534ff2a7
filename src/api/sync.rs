//! Cloud sync over HTTP, both ends. `POST /api/cloud/sync` starts a sync of the caller's unsynced
//! images to the hub (`cloud::SyncJob` does the work, the task endpoint shows its progress). On a
//! hub, `POST /api/sync/user/{user_id}/manifest` says which images it still needs and
//! `POST /api/sync/user/{user_id}` receives them in the seed's SyncData shape: every file is
//! decoded, hashed, sniffed and probed like an upload, checked against its metadata, and stored
//! under the caller's hub account, deduplicated. Sending the same image twice stores it once.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use bytes::Bytes;
use serde::Serialize;
use warp::{Filter, Rejection, Reply};

use super::AppState;
use super::auth::{Caller, require_user};
use super::{ApiError, blocking, body, reject, with_state};
use crate::cloud::{self, ManifestReply, ManifestRequest, Refusal, SyncData, SyncImage, SyncReply};
use crate::domain::{BlobHash, Category};
use crate::store::records::{ImageRecord, SyncProgressRecord, TaskRecord, TaskStatus};
use crate::store::{NewImage, Store, StoreError};
use crate::{clock, media};

/// One sync request may carry far more than an upload: a batch of files as data URLs.
pub const SYNC_BODY_LIMIT: u64 = 64 * 1024 * 1024;
/// A manifest lists ids and hashes only: about 120 bytes an image.
const MANIFEST_BODY_LIMIT: u64 = 16 * 1024 * 1024;
/// Assumed throughput for the seed's `estimated_time`.
const ESTIMATE_BYTES_PER_SECOND: f64 = 5.0 * 1024.0 * 1024.0;

pub fn routes(
    state: Arc<AppState>,
) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    let start = warp::path!("api" / "cloud" / "sync")
        .and(warp::post())
        .and(with_state(state.clone()))
        .and(require_user(state.clone()))
        .and_then(start_sync);
    let manifest = warp::path!("api" / "sync" / "user" / String / "manifest")
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
    let receive = warp::path!("api" / "sync" / "user" / String)
        .and(warp::post())
        .and(with_state(state.clone()))
        .and(require_user(state))
        .and_then(own_account)
        .untuple_one()
        .and(body::json(bodies, SYNC_BODY_LIMIT, ApiError::BodyTooLarge))
        .and_then(receive);
    start.or(manifest).or(receive)
}

#[derive(Serialize)]
struct SyncStarted {
    success: bool,
    message: &'static str,
    sync_info: SyncInfo,
    #[serde(rename = "taskId")]
    task_id: String,
}

#[derive(Serialize)]
struct SyncInfo {
    user_id: String,
    image_count: u64,
    estimated_time: String,
}

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

    let (hub_session, images) = {
        let (state, user_id, hash) = (state.clone(), user_id.clone(), caller.token_hash);
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
            let token = cloud::unseal(&caller.token, s.nonce, &s.sealed)?;
            Some(cloud::HubLogin {
                user_id: s.hub_user_id,
                token,
            })
        })
        .ok_or_else(|| reject(ApiError::HubLoginNeeded))?;

    let now = clock::now();
    let task = TaskRecord {
        task_id: format!("t-{}", uuid::Uuid::new_v4()),
        user_id: user_id.clone(),
        image_id: String::new(),
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
            local_token_hash: caller.token_hash,
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
    user_id: String,
    state: Arc<AppState>,
    caller: Caller,
) -> Result<(Arc<AppState>, Caller), Rejection> {
    if caller.user.user_id == user_id {
        Ok((state, caller))
    } else {
        Err(reject(ApiError::Forbidden))
    }
}

#[derive(Serialize)]
struct Manifest {
    success: bool,
    #[serde(flatten)]
    reply: ManifestReply,
}

async fn manifest(
    state: Arc<AppState>,
    caller: Caller,
    request: ManifestRequest,
) -> Result<impl Reply, Rejection> {
    let user_id = caller.user.user_id;
    let reply = blocking(move || {
        let held = state.store.user_blobs(&user_id)?;
        let mut reply = ManifestReply::default();
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

#[derive(Serialize)]
struct Received {
    success: bool,
    message: String,
    #[serde(flatten)]
    reply: SyncReply,
}

async fn receive(
    state: Arc<AppState>,
    caller: Caller,
    data: SyncData,
) -> Result<impl Reply, Rejection> {
    let user_id = caller.user.user_id.clone();
    let store_state = state.clone();
    let (reply, queued) = blocking(move || ingest(&store_state.store, &user_id, data))
        .await
        .map_err(reject)?;
    for (task_id, blob) in queued {
        state.jobs.enqueue(Some(task_id), blob).await;
    }
    tracing::info!(
        user_id = %caller.user.user_id, accepted = reply.accepted.len(), refused = reply.refused.len(),
        stored = reply.stored, files = reply.received_files, bytes = reply.received_bytes,
        "sync batch received"
    );
    Ok(warp::reply::json(&Received {
        success: true,
        message: format!(
            "已接收 {} 张图片，拒绝 {} 张",
            reply.accepted.len(),
            reply.refused.len()
        ),
        reply,
    }))
}

/// Stores what a sync request carries. Returns the answer and the thumbnails to make.
pub(crate) fn ingest(
    store: &Store,
    user_id: &str,
    data: SyncData,
) -> Result<(SyncReply, Vec<(String, BlobHash)>), ApiError> {
    let held = store.user_blobs(user_id)?;
    let mut reply = SyncReply::default();
    let mut queued = Vec::new();
    // Files of this request by hash, so a later image with the same bytes needs no file.
    let mut decoded: HashMap<BlobHash, Bytes> = HashMap::new();
    let mut files = data.image_files;
    // Ids new in this request, with their bytes' hash: a repeat is the same image or a conflict.
    let mut new_ids: HashMap<String, BlobHash> = HashMap::new();
    let mut fresh = Vec::new();
    let mut repeats = Vec::new();
    for meta in data.images_metadata {
        let id = meta.id.clone();
        if let Some(blob) = new_ids.get(&id) {
            let same = meta
                .blake3
                .as_deref()
                .and_then(BlobHash::from_hex)
                .is_none_or(|h| h == *blob);
            if same {
                // Answered once the first copy's commit outcome is known.
                repeats.push(id);
            } else {
                reply.refused.push(Refusal {
                    id,
                    reason: "the same id twice with other content".into(),
                });
            }
            continue;
        }
        let file = files.remove(&meta.filename);
        match ingest_one(store, user_id, &held, &mut decoded, meta, file) {
            Ok(Ingested::New(new)) => {
                new_ids.insert(id, new.image.blob);
                fresh.push(new);
            }
            Ok(Ingested::AlreadyHeld) => reply.accepted.push(id),
            Err(reason) => reply.refused.push(Refusal { id, reason }),
        }
    }
    // Everything new in one durable commit.
    let uploads: Vec<NewImage<'_>> = fresh
        .iter()
        .map(|n| NewImage {
            image: &n.image,
            bytes: &n.bytes,
            task: &n.task,
        })
        .collect();
    let outcomes = if uploads.is_empty() {
        Vec::new()
    } else {
        store.save_images(&uploads)?
    };
    let mut refused_new: HashMap<String, String> = HashMap::new();
    for (new, outcome) in fresh.iter().zip(outcomes) {
        let id = new.image.id.clone();
        let reason = match outcome {
            Ok(()) => {
                reply.stored += 1;
                if let Some(bytes) = new.received {
                    reply.received_files += 1;
                    reply.received_bytes += bytes;
                }
                queued.push((new.task.task_id.clone(), new.image.blob));
                reply.accepted.push(id);
                continue;
            }
            Err(StoreError::Conflict) => "the file name is used by another image".to_string(),
            Err(e) => format!("hub storage error: {e}"),
        };
        refused_new.insert(id.clone(), reason.clone());
        reply.refused.push(Refusal { id, reason });
    }
    for id in repeats {
        match refused_new.get(&id) {
            Some(reason) => reply.refused.push(Refusal {
                id,
                reason: reason.clone(),
            }),
            None => reply.accepted.push(id),
        }
    }
    Ok((reply, queued))
}

/// An image checked and ready to store.
struct Fresh {
    image: ImageRecord,
    task: TaskRecord,
    bytes: Bytes,
    /// Bytes of the file this image came with, if it came with one.
    received: Option<u64>,
}

enum Ingested {
    New(Box<Fresh>),
    AlreadyHeld,
}

fn ingest_one(
    store: &Store,
    user_id: &str,
    held: &HashSet<BlobHash>,
    decoded: &mut HashMap<BlobHash, Bytes>,
    meta: SyncImage,
    file: Option<String>,
) -> Result<Ingested, String> {
    let internal = |e: StoreError| format!("hub storage error: {e}");
    if !safe_name(&meta.id, 100) {
        return Err("invalid image id".into());
    }
    if !safe_name(&meta.filename, 255) {
        return Err("invalid file name".into());
    }
    let claimed = meta
        .blake3
        .as_deref()
        .map(|h| BlobHash::from_hex(h).ok_or("invalid blake3 hash"));
    let claimed = claimed.transpose()?;
    if let Some(existing) = store.image(&meta.id).map_err(internal)? {
        return if existing.user_id == user_id && claimed.is_none_or(|h| h == existing.blob) {
            Ok(Ingested::AlreadyHeld)
        } else {
            Err("an image with this id already exists with other content".into())
        };
    }
    let (bytes, received) = match file {
        Some(data_url) => {
            let bytes = Bytes::from(
                media::data_url::decode(&data_url).map_err(|e| ApiError::from(e).to_string())?,
            );
            let len = bytes.len() as u64;
            (bytes, Some(len))
        }
        None => {
            let hash = claimed.ok_or("no file and no blake3 hash")?;
            if let Some(bytes) = decoded.get(&hash) {
                (bytes.clone(), None)
            } else if held.contains(&hash) {
                let bytes = store
                    .blob_bytes(&hash)
                    .map_err(internal)?
                    .ok_or("the file is missing")?;
                (bytes, None)
            } else {
                return Err("the file is missing".into());
            }
        }
    };
    let blob = BlobHash::of(&bytes);
    if claimed.is_some_and(|h| h != blob) {
        return Err("the file does not match its blake3 hash".into());
    }
    let probe = media::probe(&bytes).map_err(|e| e.to_string())?;
    if meta.file_size != bytes.len() as u64 {
        return Err(format!(
            "file_size {} does not match the file ({} bytes)",
            meta.file_size,
            bytes.len()
        ));
    }
    if (meta.image_width, meta.image_height) != (probe.width, probe.height) {
        return Err(format!(
            "dimensions {}x{} do not match the file ({}x{})",
            meta.image_width, meta.image_height, probe.width, probe.height
        ));
    }
    let category = Category::for_upload(
        meta.category
            .as_deref()
            .or_else(|| meta.context_info.get("category").and_then(|c| c.as_str())),
    );
    let mut context = meta.context_info.clone();
    context.remove("category");
    let now = clock::now();
    let mut image = ImageRecord {
        id: meta.id.clone(),
        user_id: user_id.to_string(),
        filename: meta.filename.clone(),
        category,
        kind: probe.kind,
        blob,
        original_url: meta.original_url,
        page_url: meta.page_url,
        page_title: meta.page_title,
        context_json: (!context.is_empty()).then(|| serde_json::Value::Object(context).to_string()),
        saved_at: clock::parse_display(&meta.saved_at).unwrap_or(now),
        file_size: bytes.len() as u64,
        width: probe.width,
        height: probe.height,
        cloud_synced: false,
        task_id: format!("t-{}", uuid::Uuid::new_v4()),
    };
    crate::ingest::cap_metadata(&mut image);
    let task = TaskRecord {
        task_id: image.task_id.clone(),
        user_id: user_id.to_string(),
        image_id: image.id.clone(),
        status: TaskStatus::Processing,
        error: None,
        created_at: now,
        updated_at: now,
    };
    decoded.insert(blob, bytes.clone());
    Ok(Ingested::New(Box::new(Fresh {
        image,
        task,
        bytes,
        received,
    })))
}

/// Ids and file names from another server end up in URLs and file names here: plain ASCII only.
fn safe_name(name: &str, max: usize) -> bool {
    !name.is_empty()
        && name.len() <= max
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}
