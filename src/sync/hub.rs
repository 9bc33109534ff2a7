//! The HTTP client for the hub at `--cloud-url`: account calls, the manifest and batches.

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
    pub user_id: UserId,
    pub token: String,
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
                user_id: user_id.into(),
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
