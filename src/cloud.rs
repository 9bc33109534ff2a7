//! Cloud sync, the client side: talking to the hub (another imgvault, see DECISIONS.md) and
//! sending a user's unsynced images to it.
//!
//! A sync asks the hub first which images it still needs (the manifest step), then sends the rest
//! in batches of the seed's SyncData shape, a few MB each. Each batch the hub acknowledges sets
//! `cloud_synced` on its images in one commit, so a crash or an outage resumes where it stopped and
//! sends nothing twice. A file the hub already holds for this user, or one already sent in this
//! sync, travels as metadata only. Local data is never changed except for those flags.
//!
//! The hub's session token is kept sealed (ChaCha20-Poly1305) under a key derived from the local
//! session token, which the data file never holds, so a copy of the file cannot act on the hub.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use ring::aead;
use serde::{Deserialize, Serialize};

use crate::clock;
use crate::domain::BlobHash;
use crate::store::Store;
use crate::store::records::{ImageRecord, SyncProgressRecord, UserRecord};

/// Raw image bytes per sync request; base64 makes the body about 4/3 of this.
pub const BATCH_BYTES: u64 = 4 * 1024 * 1024;
/// Images per sync request, whatever their size.
pub const BATCH_IMAGES: usize = 200;
/// Account calls (register, login) are small; a slow hub must not hold a local login for long.
const ACCOUNT_TIMEOUT: Duration = Duration::from_secs(10);
/// How many refusal reasons a task keeps.
const KEEP_REFUSALS: usize = 20;

/// Why talking to the hub failed, with the seed's words for each.
#[derive(Debug, Clone, thiserror::Error)]
pub enum HubError {
    #[error("同步请求超时")]
    Timeout,
    #[error("网络请求失败: {0}")]
    Network(String),
    #[error("云端响应错误: {0}")]
    Status(String),
    /// The hub refused our session: the user must log in again to open a new one.
    #[error("云端登录已过期，请重新登录后再同步")]
    Expired,
    #[error("云端拒绝了登录: {0}")]
    Refused(String),
}

/// A connection to the hub at `--cloud-url` (e.g. `http://hub:8081/api`).
#[derive(Clone)]
pub struct Hub {
    base: String,
    client: reqwest::Client,
    timeout: Duration,
}

/// What the hub answers to a login.
pub struct HubLogin {
    pub user_id: String,
    pub token: String,
}

#[derive(Serialize, Deserialize)]
pub struct ManifestEntry {
    pub id: String,
    pub blake3: String,
}

#[derive(Serialize, Deserialize)]
pub struct ManifestRequest {
    pub images: Vec<ManifestEntry>,
}

#[derive(Serialize, Deserialize, Default)]
pub struct ManifestReply {
    /// Ids the hub does not hold yet.
    pub needed: Vec<String>,
    /// Of the hashes asked about, those the hub already holds for this user.
    pub have_blobs: Vec<String>,
}

/// The seed's SyncData, plus a `blake3` and `category` per image (extra fields the seed's own
/// hub ignores) so the hub can verify each file and reuse bytes it holds.
#[derive(Serialize, Deserialize)]
pub struct SyncData {
    #[serde(default)]
    pub user_info: SyncUser,
    pub images_metadata: Vec<SyncImage>,
    #[serde(default)]
    pub image_files: HashMap<String, String>,
    #[serde(default)]
    pub sync_timestamp: String,
    #[serde(default)]
    pub sync_statistics: SyncStatistics,
}

/// Informational: the hub files images under the account that is logged in, not this one.
#[derive(Serialize, Deserialize, Default)]
#[serde(default)]
pub struct SyncUser {
    pub user_id: String,
    pub username: String,
    pub email: String,
    pub created_at: String,
    pub last_login: Option<String>,
    pub cloud_sync_enabled: bool,
}

#[derive(Serialize, Deserialize, Clone)]
pub struct SyncImage {
    pub id: String,
    #[serde(default)]
    pub user_id: String,
    pub filename: String,
    pub original_url: Option<String>,
    pub page_url: Option<String>,
    pub page_title: Option<String>,
    pub saved_at: String,
    pub file_size: u64,
    pub image_width: u32,
    pub image_height: u32,
    #[serde(default)]
    pub context_info: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub cloud_synced: bool,
    #[serde(default)]
    pub blake3: Option<String>,
    #[serde(default)]
    pub category: Option<String>,
}

impl SyncImage {
    pub fn of(image: &ImageRecord) -> Self {
        Self {
            id: image.id.clone(),
            user_id: image.user_id.clone(),
            filename: image.filename.clone(),
            original_url: image.original_url.clone(),
            page_url: image.page_url.clone(),
            page_title: image.page_title.clone(),
            saved_at: clock::display(image.saved_at),
            file_size: image.file_size,
            image_width: image.width,
            image_height: image.height,
            context_info: image.context_info(),
            status: "saved".into(),
            cloud_synced: image.cloud_synced,
            blake3: Some(image.blob.to_hex()),
            category: Some(image.category.as_str().into()),
        }
    }
}

#[derive(Serialize, Deserialize, Default)]
#[serde(default)]
pub struct SyncStatistics {
    pub total_metadata_records: u64,
    pub total_files_found: u64,
    pub total_files_missing: u64,
    pub total_size: u64,
    pub categories: Vec<String>,
}

/// The hub's answer to one batch.
#[derive(Serialize, Deserialize, Default)]
pub struct SyncReply {
    #[serde(default)]
    pub accepted: Vec<String>,
    #[serde(default)]
    pub refused: Vec<Refusal>,
    #[serde(default)]
    pub stored: u64,
    #[serde(default)]
    pub received_files: u64,
    #[serde(default)]
    pub received_bytes: u64,
}

#[derive(Serialize, Deserialize, Clone)]
pub struct Refusal {
    pub id: String,
    pub reason: String,
}

impl Hub {
    pub fn new(base: &str, timeout: Duration) -> reqwest::Result<Self> {
        let client = crate::fetch::client_builder()
            .connect_timeout(ACCOUNT_TIMEOUT)
            .build()?;
        Ok(Self {
            base: base.trim_end_matches('/').to_string(),
            client,
            timeout,
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// Creates the account on the hub. An account the hub already has is not an error.
    pub async fn register(
        &self,
        username: &str,
        email: &str,
        password: &str,
    ) -> Result<(), HubError> {
        let body = serde_json::json!({"username": username, "email": email, "password": password});
        let (status, _, answer) = self.account_call("register", &body).await?;
        if status.is_success() || answer["error"] == "用户名或邮箱已存在" {
            return Ok(());
        }
        Err(HubError::Refused(error_text(status, &answer)))
    }

    /// Logs in on the hub, returning its user id and session token.
    pub async fn login(
        &self,
        username: &str,
        password: &str,
        remember: bool,
    ) -> Result<HubLogin, HubError> {
        let body = serde_json::json!({"username": username, "password": password, "remember_me": remember});
        let (status, headers, answer) = self.account_call("login", &body).await?;
        let token = headers
            .get_all(reqwest::header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|c| c.strip_prefix("session="))
            .and_then(|c| c.split(';').next())
            .map(str::to_string);
        match (
            status.is_success(),
            answer["user"]["user_id"].as_str(),
            token,
        ) {
            (true, Some(user_id), Some(token)) if !token.is_empty() => Ok(HubLogin {
                user_id: user_id.to_string(),
                token,
            }),
            _ => Err(HubError::Refused(error_text(status, &answer))),
        }
    }

    async fn account_call(
        &self,
        route: &str,
        body: &serde_json::Value,
    ) -> Result<
        (
            reqwest::StatusCode,
            reqwest::header::HeaderMap,
            serde_json::Value,
        ),
        HubError,
    > {
        let exchange = async {
            let resp = self
                .client
                .post(format!("{}/{route}", self.base))
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.to_string())
                .send()
                .await
                .map_err(network)?;
            let (status, headers) = (resp.status(), resp.headers().clone());
            let bytes = resp.bytes().await.map_err(network)?;
            Ok((
                status,
                headers,
                serde_json::from_slice(&bytes).unwrap_or_default(),
            ))
        };
        tokio::time::timeout(ACCOUNT_TIMEOUT, exchange)
            .await
            .map_err(|_| HubError::Timeout)?
    }

    pub async fn manifest(
        &self,
        login: &HubLogin,
        request: &ManifestRequest,
    ) -> Result<ManifestReply, HubError> {
        let url = format!("{}/sync/user/{}/manifest", self.base, login.user_id);
        self.post(
            &url,
            login,
            serde_json::to_vec(request).expect("plain JSON"),
        )
        .await
    }

    pub async fn send_batch(&self, login: &HubLogin, body: Vec<u8>) -> Result<SyncReply, HubError> {
        let url = format!("{}/sync/user/{}", self.base, login.user_id);
        self.post(&url, login, body).await
    }

    async fn post<T: serde::de::DeserializeOwned>(
        &self,
        url: &str,
        login: &HubLogin,
        body: Vec<u8>,
    ) -> Result<T, HubError> {
        let exchange = async {
            let resp = self
                .client
                .post(url)
                .header(reqwest::header::COOKIE, format!("session={}", login.token))
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body)
                .send()
                .await
                .map_err(network)?;
            let status = resp.status();
            let bytes = resp.bytes().await.map_err(network)?;
            if status == reqwest::StatusCode::UNAUTHORIZED {
                return Err(HubError::Expired);
            }
            let answer: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
            if !status.is_success() {
                return Err(HubError::Status(error_text(status, &answer)));
            }
            serde_json::from_value(answer)
                .map_err(|e| HubError::Status(format!("unreadable answer: {e}")))
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| HubError::Timeout)?
    }
}

fn network(e: reqwest::Error) -> HubError {
    if e.is_timeout() {
        HubError::Timeout
    } else {
        let mut text = e.to_string();
        let mut cause = std::error::Error::source(&e);
        while let Some(c) = cause {
            text.push_str(": ");
            text.push_str(&c.to_string());
            cause = c.source();
        }
        HubError::Network(text)
    }
}

fn error_text(status: reqwest::StatusCode, answer: &serde_json::Value) -> String {
    match answer["error"].as_str() {
        Some(e) => format!("{status} {e}"),
        None => status.to_string(),
    }
}

fn seal_key(local_token: &str) -> aead::LessSafeKey {
    let key = blake3::derive_key(
        "imgvault 2026-11 hub session token seal",
        local_token.as_bytes(),
    );
    aead::LessSafeKey::new(
        aead::UnboundKey::new(&aead::CHACHA20_POLY1305, &key).expect("32-byte key"),
    )
}

/// Encrypts the hub's token under the local session token.
pub fn seal(local_token: &str, hub_token: &str) -> ([u8; 12], Vec<u8>) {
    let mut nonce = [0u8; 12];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut nonce);
    let mut sealed = hub_token.as_bytes().to_vec();
    seal_key(local_token)
        .seal_in_place_append_tag(
            aead::Nonce::assume_unique_for_key(nonce),
            aead::Aad::empty(),
            &mut sealed,
        )
        .expect("in-memory encryption");
    (nonce, sealed)
}

/// The hub's token, if `local_token` is the one it was sealed under and nothing was altered.
pub fn unseal(local_token: &str, nonce: [u8; 12], sealed: &[u8]) -> Option<String> {
    let mut buf = sealed.to_vec();
    let plain = seal_key(local_token)
        .open_in_place(
            aead::Nonce::assume_unique_for_key(nonce),
            aead::Aad::empty(),
            &mut buf,
        )
        .ok()?;
    String::from_utf8(plain.to_vec()).ok()
}

/// The syncs running now: user id → the task id of that user's sync. One per user at a time.
#[derive(Default)]
pub struct Running(std::sync::Mutex<HashMap<String, String>>);

impl Running {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The task of `user_id`'s running sync.
    pub fn task_of(&self, user_id: &str) -> Option<String> {
        self.map().get(user_id).cloned()
    }

    /// Records `task_id` as `user_id`'s running sync; `Err` with the task already running.
    pub fn start(&self, user_id: &str, task_id: &str) -> Result<(), String> {
        let mut map = self.map();
        if let Some(running) = map.get(user_id) {
            return Err(running.clone());
        }
        map.insert(user_id.to_string(), task_id.to_string());
        Ok(())
    }

    pub fn end(&self, user_id: &str) {
        self.map().remove(user_id);
    }
}

/// One running sync of one user's images.
pub struct SyncJob {
    pub store: Arc<Store>,
    pub hub: Hub,
    pub running: Arc<Running>,
    pub user: UserRecord,
    pub login: HubLogin,
    pub local_token_hash: [u8; 32],
    pub task_id: String,
    pub images: Vec<ImageRecord>,
}

impl SyncJob {
    /// Runs to the end, recording progress on the task as it goes.
    pub async fn run(self) {
        let mut progress = SyncProgressRecord {
            total: self.images.len() as u64,
            ..Default::default()
        };
        let outcome = self.sync(&mut progress).await;
        let (outcome, log) = match outcome {
            Ok(()) => (Ok(()), None),
            Err(e) => (Err(e.to_string()), Some(e)),
        };
        if let Some(HubError::Expired) = log {
            let store = self.store.clone();
            let hash = self.local_token_hash;
            let _ = tokio::task::spawn_blocking(move || store.drop_hub_session(&hash)).await;
        }
        match &log {
            None => tracing::info!(
                user_id = %self.user.user_id, synced = progress.synced, files = progress.files_sent,
                bytes = progress.bytes_sent, missing = progress.missing, refused = progress.refused_count,
                "cloud sync finished"
            ),
            Some(e) => {
                tracing::warn!(user_id = %self.user.user_id, error = %e, synced = progress.synced, "cloud sync failed")
            }
        }
        self.record(&progress, Some(outcome)).await;
        self.running.end(&self.user.user_id);
    }

    async fn sync(&self, progress: &mut SyncProgressRecord) -> Result<(), HubError> {
        let hub = &self.hub;
        let manifest = ManifestRequest {
            images: self
                .images
                .iter()
                .map(|i| ManifestEntry {
                    id: i.id.clone(),
                    blake3: i.blob.to_hex(),
                })
                .collect(),
        };
        let answer = hub.manifest(&self.login, &manifest).await?;
        let needed: HashSet<String> = answer.needed.into_iter().collect();
        let mut on_hub: HashSet<BlobHash> = answer
            .have_blobs
            .iter()
            .filter_map(|h| BlobHash::from_hex(h))
            .collect();
        // The hub already holds these: record that, send nothing.
        let held: Vec<String> = self
            .images
            .iter()
            .filter(|i| !needed.contains(&i.id))
            .map(|i| i.id.clone())
            .collect();
        if !held.is_empty() {
            progress.synced += self.mark(held).await? as u64;
            self.record(progress, None).await;
        }

        let pending: Vec<&ImageRecord> = self
            .images
            .iter()
            .filter(|i| needed.contains(&i.id))
            .collect();
        let mut pending = pending.into_iter().peekable();
        while pending.peek().is_some() {
            let mut batch = Vec::new();
            let mut files = HashMap::new();
            let mut batch_bytes = 0u64;
            let mut missing = 0u64;
            let mut categories = BTreeSet::new();
            while let Some(image) = pending.peek() {
                if !batch.is_empty()
                    && (batch.len() >= BATCH_IMAGES || batch_bytes + image.file_size > BATCH_BYTES)
                {
                    break;
                }
                let image = pending.next().expect("peeked");
                if !on_hub.contains(&image.blob) {
                    let store = self.store.clone();
                    let blob = image.blob;
                    let bytes = tokio::task::spawn_blocking(move || store.blob_bytes(&blob))
                        .await
                        .map_err(|e| HubError::Network(e.to_string()))?;
                    let Ok(Some(bytes)) = bytes else {
                        tracing::warn!(image_id = %image.id, "image bytes missing; not synced");
                        missing += 1;
                        continue;
                    };
                    batch_bytes += bytes.len() as u64;
                    let data_url = format!(
                        "data:{};base64,{}",
                        image.kind.mime(),
                        base64::engine::general_purpose::STANDARD.encode(&bytes)
                    );
                    files.insert(image.filename.clone(), data_url);
                    // Later images with the same bytes travel as metadata only.
                    on_hub.insert(image.blob);
                }
                categories.insert(image.category.as_str().to_string());
                batch.push(SyncImage::of(image));
            }
            progress.missing += missing;
            if batch.is_empty() {
                continue;
            }
            let data = SyncData {
                user_info: SyncUser {
                    user_id: self.user.user_id.clone(),
                    username: self.user.username.clone(),
                    email: self.user.email.clone(),
                    created_at: clock::display(self.user.created_at),
                    last_login: self.user.last_login.map(clock::display),
                    cloud_sync_enabled: true,
                },
                sync_statistics: SyncStatistics {
                    total_metadata_records: batch.len() as u64,
                    total_files_found: files.len() as u64,
                    total_files_missing: missing,
                    total_size: batch_bytes,
                    categories: categories.into_iter().collect(),
                },
                images_metadata: batch,
                image_files: files,
                sync_timestamp: clock::iso(clock::now()),
            };
            let files_sent = data.image_files.len() as u64;
            let body = serde_json::to_vec(&data).expect("plain JSON");
            let body_len = body.len() as u64;
            let reply = hub.send_batch(&self.login, body).await?;
            progress.batches += 1;
            progress.files_sent += files_sent;
            progress.bytes_sent += body_len;
            progress.synced += self.mark(reply.accepted).await? as u64;
            progress.refused_count += reply.refused.len() as u64;
            for r in reply.refused {
                tracing::warn!(image_id = %r.id, reason = %r.reason, "the hub refused an image");
                if progress.refused.len() < KEEP_REFUSALS {
                    progress.refused.push((r.id, r.reason));
                }
            }
            self.record(progress, None).await;
        }
        Ok(())
    }

    async fn mark(&self, ids: Vec<String>) -> Result<usize, HubError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.mark_synced(&ids))
            .await
            .map_err(|e| HubError::Network(e.to_string()))?
            .map_err(|e| HubError::Network(format!("local store: {e}")))
    }

    async fn record(&self, progress: &SyncProgressRecord, outcome: Option<Result<(), String>>) {
        let store = self.store.clone();
        let (task_id, progress) = (self.task_id.clone(), progress.clone());
        let result = tokio::task::spawn_blocking(move || {
            store.update_sync_task(&task_id, &progress, outcome, clock::now())
        })
        .await;
        if !matches!(result, Ok(Ok(()))) {
            tracing::warn!(task_id = %self.task_id, "could not record sync progress");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_token_opens_only_with_its_local_token() {
        let (nonce, sealed) = seal("local-token-a", "hub-token");
        assert!(!sealed.windows(9).any(|w| w == b"hub-token"));
        assert_eq!(
            unseal("local-token-a", nonce, &sealed).as_deref(),
            Some("hub-token")
        );
        assert_eq!(unseal("local-token-b", nonce, &sealed), None);
        let mut tampered = sealed.clone();
        tampered[0] ^= 1;
        assert_eq!(unseal("local-token-a", nonce, &tampered), None);
    }
}
