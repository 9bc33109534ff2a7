//! The HTTP client for the hub at `--cloud-url`: account calls, the manifest and batches.
//!
//! The hub may be another imgvault or the original project's sample cloud server
//! (`server_sample/server.py`), which keeps no sessions, answers a login with `cloud_user`, files a
//! user's images under the local id it was registered with, has no manifest route and answers a
//! batch with counts (`sync_result`) rather than ids. Both are told apart by what they answer:
//! `HubLogin::cookie` is empty for a hub without sessions, `manifest` is `None` for one without
//! the route, and `BatchAnswer` says which kind of answer came.

use std::time::Duration;

use super::wire::{ManifestReply, ManifestRequest, SyncReply};
use crate::domain::UserId;

/// Account calls (register, login) are small; a slow hub must not hold a local login for long.
const ACCOUNT_TIMEOUT: Duration = Duration::from_secs(10);

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
    /// The id sync requests are addressed to.
    pub user_id: UserId,
    /// The session cookie as `name=value`, for the `Cookie` header; empty for a hub that keeps
    /// no sessions (the original's).
    pub cookie: String,
}

/// A hub's answer to one batch.
pub enum BatchAnswer {
    /// imgvault's: which images it accepted, and why it refused the others.
    Ids(SyncReply),
    /// The original's: how many files it stored and how many it did not, not which.
    Counts { saved: u64, failed: u64 },
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

    /// Creates the account on the hub, asking for this server's id for it (`local_user_id`, which
    /// the original's hub files images under). An account the hub already has is not an error.
    pub async fn register(
        &self,
        username: &str,
        email: &str,
        password: &str,
        local_user_id: &UserId,
    ) -> Result<(), HubError> {
        let body = serde_json::json!({
            "username": username,
            "email": email,
            "password": password,
            "local_user_id": local_user_id,
        });
        let (status, _, answer) = self.account_call("register", &body).await?;
        if status.is_success() || answer["error"] == "用户名或邮箱已存在" {
            return Ok(());
        }
        Err(HubError::Refused(error_text(status, &answer)))
    }

    /// Logs in on the hub: an imgvault answers `user` and sets a session cookie; the original's
    /// answers `cloud_user` and keeps no session.
    pub async fn login(
        &self,
        username: &str,
        password: &str,
        remember: bool,
    ) -> Result<HubLogin, HubError> {
        let body = serde_json::json!({"username": username, "password": password, "remember_me": remember});
        let (status, headers, answer) = self.account_call("login", &body).await?;
        let cookie = headers
            .get_all(reqwest::header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|c| c.split(';').next())
            .find(|pair| pair.split_once('=').is_some_and(|(_, v)| !v.is_empty()))
            .map(str::to_string);
        let success = status.is_success() && answer["success"] != false;
        let original = &answer["cloud_user"];
        let login = match (success, answer["user"]["user_id"].as_str(), cookie) {
            (true, Some(user_id), Some(cookie)) => Some(HubLogin {
                user_id: user_id.into(),
                cookie,
            }),
            _ if success && original.is_object() => original["local_user_id"]
                .as_str()
                .or(original["user_id"].as_str())
                .map(|user_id| HubLogin {
                    user_id: user_id.into(),
                    cookie: String::new(),
                }),
            _ => None,
        };
        login.ok_or_else(|| HubError::Refused(error_text(status, &answer)))
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

    /// Which of these images the hub still needs; `None` when the hub has no manifest route (the
    /// original's), which then needs every image with its file.
    pub async fn manifest(
        &self,
        login: &HubLogin,
        request: &ManifestRequest,
    ) -> Result<Option<ManifestReply>, HubError> {
        let url = format!("{}/sync/user/{}/manifest", self.base, login.user_id);
        let body = serde_json::to_vec(request).expect("plain JSON");
        match self.post(&url, login, body).await {
            Err(HubError::Status(status))
                if status.starts_with("404") || status.starts_with("405") =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
            Ok(answer) => serde_json::from_value(answer)
                .map(Some)
                .map_err(|e| HubError::Status(format!("unreadable answer: {e}"))),
        }
    }

    pub async fn send_batch(
        &self,
        login: &HubLogin,
        body: Vec<u8>,
    ) -> Result<BatchAnswer, HubError> {
        let url = format!("{}/sync/user/{}", self.base, login.user_id);
        let answer = self.post(&url, login, body).await?;
        if answer.get("accepted").is_some() {
            return serde_json::from_value(answer)
                .map(BatchAnswer::Ids)
                .map_err(|e| HubError::Status(format!("unreadable answer: {e}")));
        }
        let counts = &answer["sync_result"];
        match (answer["success"].as_bool(), counts["saved_files"].as_u64()) {
            (Some(true), Some(saved)) => Ok(BatchAnswer::Counts {
                saved,
                failed: counts["failed_files"].as_u64().unwrap_or(0),
            }),
            _ => Err(HubError::Status(format!(
                "unreadable answer: {}",
                error_text(reqwest::StatusCode::OK, &answer)
            ))),
        }
    }

    async fn post(
        &self,
        url: &str,
        login: &HubLogin,
        body: Vec<u8>,
    ) -> Result<serde_json::Value, HubError> {
        let exchange = async {
            let mut request = self
                .client
                .post(url)
                .header(reqwest::header::CONTENT_TYPE, "application/json");
            if !login.cookie.is_empty() {
                request = request.header(reqwest::header::COOKIE, &login.cookie);
            }
            let resp = request.body(body).send().await.map_err(network)?;
            let status = resp.status();
            let bytes = resp.bytes().await.map_err(network)?;
            if status == reqwest::StatusCode::UNAUTHORIZED {
                return Err(HubError::Expired);
            }
            let answer: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
            if !status.is_success() {
                return Err(HubError::Status(error_text(status, &answer)));
            }
            Ok(answer)
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
