//! Accounts and sessions over HTTP: register, login, auth check, logout, profile, and the filters
//! that tell other routes who is calling.
//!
//! The session cookie holds a random token; the store keeps only its hash. Passwords are hashed
//! and checked on the blocking pool, and an unknown username costs as much time as a wrong password.
//!
//! A password hash costs 19 MiB and a core for a fraction of a second, so hashes run a few at a
//! time (`Throttles::hashes`; a long queue gets 503), and attempts are rate limited per client
//! address and per user name (429 with `Retry-After`). Every name is limited alike, existing or
//! not, so the limit tells nothing about which accounts exist; a correct login gives its attempt
//! back, so people who know their password never meet the limit.

use std::net::IpAddr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use warp::http::header::SET_COOKIE;
use warp::{Filter, Rejection, Reply};

use super::AppState;
use super::error::ErrorReply;
use super::guard::{bearer, client_addr};
use super::{ApiError, blocking, body, reject, with_state};
use crate::domain::{Email, KeyScope, Password, UserId, Username, portable};
use crate::store::StoreError;
use crate::store::records::{HubSessionRecord, SessionRecord, UserRecord};
use crate::sync as cloud;
use crate::throttle::{self, Closed};
use crate::{clock, secrets};

const REMEMBER_FOR: clock::Micros = 7 * clock::DAY;
const SESSION_FOR: clock::Micros = clock::DAY;
/// Account requests are small; anything larger is not a form a person filled in.
const ACCOUNT_BODY_LIMIT: u64 = 64 * 1024;

/// The caller of a request that carried a live session or a valid API key.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user: UserRecord,
    /// How the caller proved who they are.
    pub(super) via: Via,
}

#[derive(Debug, Clone)]
pub(super) enum Via {
    Session {
        token_hash: [u8; 32],
        /// The session token itself: the key to this session's sealed hub token.
        token: String,
    },
    /// An API key (`Authorization: Bearer`): what it may do was checked before routing (`keys`).
    Key,
}

impl Caller {
    /// The session's token hash and token; `None` for a key, which has no session.
    pub(super) fn session(&self) -> Option<([u8; 32], &str)> {
        match &self.via {
            Via::Session { token_hash, token } => Some((*token_hash, token)),
            Via::Key => None,
        }
    }
}

/// The logged-in caller, or `None`. Unknown, expired and logged-out tokens are `None`. A request
/// with an API key is its key's user (the cookie, if any, is not looked at); `keys` has already
/// refused a bad key.
pub fn optional_user(
    state: Arc<AppState>,
) -> impl Filter<Extract = (Option<Caller>,), Error = Rejection> + Clone {
    warp::header::optional::<String>("authorization")
        .and(warp::cookie::optional::<String>(state.cookie))
        .and(with_state(state))
        .and_then(
            |authorization: Option<String>, token: Option<String>, state: Arc<AppState>| async move {
                if let Some(key) = authorization.as_deref().and_then(bearer) {
                    let (_, user) = key_user(&state, key)?.ok_or_else(|| reject(ApiError::BadKey))?;
                    return Ok(Some(Caller { user, via: Via::Key }));
                }
                let Some(token) = token.filter(|t| !t.is_empty()) else {
                    return Ok::<_, Rejection>(None);
                };
                let token_hash = secrets::token_hash(&token);
                // Two point reads, in place (see `blocking`).
                let found = state
                    .store
                    .session_user(&token_hash, clock::now())
                    .map_err(|e| reject(e.into()))?;
                Ok(found.map(|(_, user)| Caller {
                    user,
                    via: Via::Session { token_hash, token },
                }))
            },
        )
}

/// The logged-in caller; 401 `需要登录` without one.
pub fn require_user(
    state: Arc<AppState>,
) -> impl Filter<Extract = (Caller,), Error = Rejection> + Clone {
    optional_user(state).and_then(|caller: Option<Caller>| async move {
        caller.ok_or_else(|| reject(ApiError::NeedLogin))
    })
}

/// The caller of a logged-in session; 401 without one, 403 for an API key (what only a person at
/// the web UI may do: manage keys).
pub fn require_session(
    state: Arc<AppState>,
) -> impl Filter<Extract = (Caller,), Error = Rejection> + Clone {
    require_user(state).and_then(|caller: Caller| async move {
        match caller.via {
            Via::Session { .. } => Ok(caller),
            Via::Key => Err(reject(ApiError::KeyScope)),
        }
    })
}

/// The key's record and user; `None` for a malformed, unknown or revoked key. A point read or two,
/// in place like the session's.
fn key_user(
    state: &AppState,
    key: &str,
) -> Result<Option<(crate::store::records::ApiKeyRecord, UserRecord)>, Rejection> {
    if !secrets::is_api_key(key) {
        return Ok(None);
    }
    state
        .store
        .key_user(&secrets::token_hash(key))
        .map_err(|e| reject(e.into()))
}

/// Lets a request with an API key through only if the key is valid (401 otherwise, on every route,
/// even those open to anonymous callers: a bad key is never taken for no key) and its scope allows
/// the route (403). Runs before routing; notes the key's use at most once a minute.
pub fn keys(state: Arc<AppState>) -> impl Filter<Extract = (), Error = Rejection> + Clone {
    warp::header::optional::<String>("authorization")
        .and(warp::method())
        .and(warp::path::full())
        .and(with_state(state))
        .and_then(
            |authorization: Option<String>,
             method: warp::http::Method,
             path: warp::path::FullPath,
             state: Arc<AppState>| async move {
                let Some(key) = authorization.as_deref().and_then(bearer) else {
                    return Ok(());
                };
                let Some((record, _)) = key_user(&state, key)? else {
                    tracing::info!(path = path.as_str(), "unknown or revoked API key refused");
                    return Err(reject(ApiError::BadKey));
                };
                if !key_allows(record.scope, &method, path.as_str()) {
                    tracing::info!(key_id = %record.id, scope = record.scope.as_str(), %method, path = path.as_str(), "API key used beyond its scope");
                    return Err(reject(ApiError::KeyScope));
                }
                let now = clock::now();
                if record
                    .last_used_at
                    .is_none_or(|last| now - last >= crate::store::LAST_USED_GRAIN)
                {
                    let hash = secrets::token_hash(key);
                    let store = state.store.clone();
                    // Fire and forget: the request does not wait for a note of its own use.
                    tokio::task::spawn_blocking(move || {
                        if let Err(e) = store.touch_key(&hash, now) {
                            tracing::debug!(error = %e, "API key use not noted");
                        }
                    });
                }
                Ok(())
            },
        )
        .untuple_one()
}

/// What a key of `scope` may ask. A capture key: upload, look up what is saved, follow tasks, and
/// the public routes; a read key: also every read of its owner's data; a full key: everything a
/// session may. No key manages keys. Paths outside `/api/` are the web UI's files, public alike.
pub fn key_allows(scope: KeyScope, method: &warp::http::Method, path: &str) -> bool {
    use warp::http::Method;
    if path == "/api/keys" || path.starts_with("/api/keys/") {
        return false;
    }
    // The web UI's files are public; `/metrics` is read like the API.
    if !path.starts_with("/api/") && path != "/metrics" {
        return true;
    }
    let read = matches!(*method, Method::GET | Method::HEAD);
    let capture = match *method {
        Method::POST => matches!(
            path,
            "/api/receive-image"
                | "/api/upload-clipboard"
                | "/api/upload-file"
                | "/api/images/lookup"
        ),
        _ => {
            read && (matches!(path, "/api/status" | "/api/auth/check")
                || path.starts_with("/api/task/"))
        }
    };
    match scope {
        KeyScope::Capture => capture,
        KeyScope::Read => capture || (read && !path.starts_with("/api/admin/")),
        KeyScope::Full => true,
    }
}

/// The operations of this module in the OpenAPI document (`openapi`).
#[derive(utoipa::OpenApi)]
#[openapi(paths(register, login, check, logout, profile))]
pub(super) struct Doc;

pub fn routes(
    state: Arc<AppState>,
) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    let register = warp::path!("api" / "register")
        .and(warp::post())
        .and(with_state(state.clone()))
        .and(client_addr(state.clone()))
        .and(body::json(
            state.throttles.bodies.clone(),
            ACCOUNT_BODY_LIMIT,
            ApiError::BodyTooLarge,
        ))
        .and_then(register);
    let login = warp::path!("api" / "login")
        .and(warp::post())
        .and(with_state(state.clone()))
        .and(client_addr(state.clone()))
        .and(body::json(
            state.throttles.bodies.clone(),
            ACCOUNT_BODY_LIMIT,
            ApiError::BodyTooLarge,
        ))
        .and_then(login);
    let check = warp::path!("api" / "auth" / "check")
        .and(warp::get())
        .and(optional_user(state.clone()))
        .map(check);
    let logout = warp::path!("api" / "logout")
        .and(warp::post())
        .and(with_state(state.clone()))
        .and(require_session(state.clone()))
        .and_then(logout);
    let profile = warp::path!("api" / "user" / "profile")
        .and(warp::get())
        .and(with_state(state.clone()))
        .and(require_user(state))
        .and_then(profile);
    register.or(login).or(check).or(logout).or(profile)
}

#[derive(Deserialize, utoipa::ToSchema)]
struct RegisterRequest {
    username: Option<String>,
    email: Option<String>,
    password: Option<String>,
    /// Sent by a local server creating its user's hub account: the id it knows the user by.
    local_user_id: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct Registered {
    success: bool,
    user_id: UserId,
    /// The original project's cloud server answers with this name; the same id.
    cloud_user_id: UserId,
    message: &'static str,
}

/// An attempt at a password, counted against its address and, for logins, its user name.
struct Attempt<'a> {
    state: &'a AppState,
    address: IpAddr,
    account: Option<[u8; 16]>,
}

impl<'a> Attempt<'a> {
    /// Counts the attempt; 429 when the address or the name has no attempts left.
    fn start(
        state: &'a AppState,
        address: IpAddr,
        username: Option<&str>,
    ) -> Result<Self, ApiError> {
        let throttles = &state.throttles;
        let address = throttle::address_key(address);
        let too_many = |wait: throttle::Wait| {
            tracing::info!(%address, retry_after = wait.secs(), "password attempts limited");
            ApiError::TooManyRequests(wait.secs())
        };
        throttles
            .attempts_by_address
            .take(&address, 1)
            .map_err(too_many)?;
        let account = username.map(throttle::account_key);
        if let Some(key) = &account {
            throttles.logins_by_account.take(key, 1).map_err(too_many)?;
        }
        Ok(Self {
            state,
            address,
            account,
        })
    }

    /// A correct password: the attempt does not count.
    fn succeeded(self) {
        let throttles = &self.state.throttles;
        throttles.attempts_by_address.give_back(&self.address, 1);
        if let Some(key) = &self.account {
            throttles.logins_by_account.give_back(key, 1);
        }
    }
}

/// A turn at hashing a password; 503 when too many are queued already.
async fn hash_turn(state: &AppState) -> Result<tokio::sync::OwnedSemaphorePermit, ApiError> {
    state.throttles.hashes.enter(1).await.map_err(|e| match e {
        Closed::Busy | Closed::TooLarge => ApiError::Busy(2),
    })
}

/// Creates an account.
#[utoipa::path(
    post,
    path = "/api/register",
    tag = "account",
    security(()),
    request_body = RegisterRequest,
    responses(
        (status = 200, description = "Registered.", body = Registered),
        (status = 400, description = "A field missing or invalid, or the name or email taken.", body = ErrorReply),
        (status = 429, description = "Too many attempts from this address.", body = ErrorReply),
    )
)]
async fn register(
    state: Arc<AppState>,
    address: IpAddr,
    req: RegisterRequest,
) -> Result<impl Reply, Rejection> {
    let field = |f: Option<String>| f.filter(|s| !s.trim().is_empty());
    let (Some(username), Some(email), Some(password)) =
        (field(req.username), field(req.email), field(req.password))
    else {
        return Err(reject(ApiError::MissingRegistrationFields));
    };
    let invalid = |e: crate::domain::Invalid| reject(ApiError::BadRequest(e.0.to_string()));
    // A local server creating its user's hub account: that user was accepted under the local
    // server's rules (the original project's are looser than the seed's), and keeps its id here
    // when the id is usable and free, so that the local server can address syncs by it.
    let local_id = req.local_user_id.filter(|id| !id.trim().is_empty());
    let (username, email, password) = match &local_id {
        None => (
            Username::parse(&username).map_err(invalid)?,
            Email::parse(&email).map_err(invalid)?,
            Password::parse(&password).map_err(invalid)?,
        ),
        Some(_) => (
            Username::relayed(&username).map_err(invalid)?,
            Email::relayed(&email).map_err(invalid)?,
            Password::relayed(&password).map_err(invalid)?,
        ),
    };
    Attempt::start(&state, address, None).map_err(reject)?;
    let turn = hash_turn(&state).await.map_err(reject)?;

    let hub_account = (
        username.as_str().to_string(),
        email.as_str().to_string(),
        password.expose().to_string(),
    );
    let user_id = blocking({
        let state = state.clone();
        move || {
            let hash = secrets::hash_password(password.expose());
            drop(turn);
            let mut user = UserRecord::new(&username, &email, hash);
            // A taken id is refused like a taken name, as the original does: the local server
            // would otherwise sync into someone else's account.
            if let Some(id) = local_id
                .map(UserId::from)
                .filter(|id| portable(id.as_str(), 100))
            {
                user.user_id = id;
            }
            match state
                .store
                .create_user(&user, &username.key(), &email.key())
            {
                Ok(()) => Ok(user.user_id),
                Err(StoreError::Conflict) => Err(ApiError::UserExists),
                Err(e) => Err(e.into()),
            }
        }
    })
    .await
    .map_err(reject)?;
    tracing::info!(%user_id, "user registered");
    if let Some(hub) = &state.hub {
        let (username, email, password) = hub_account;
        match hub.register(&username, &email, &password, &user_id).await {
            Ok(()) => tracing::info!(%user_id, "user registered on the hub"),
            Err(e) => tracing::warn!(%user_id, error = %e, "registration on the hub failed"),
        }
    }
    Ok(warp::reply::json(&Registered {
        success: true,
        cloud_user_id: user_id.clone(),
        user_id,
        message: "注册成功",
    }))
}

#[derive(Deserialize, utoipa::ToSchema)]
struct LoginRequest {
    username: Option<String>,
    password: Option<String>,
    #[serde(default)]
    remember_me: Option<serde_json::Value>,
}

/// `remember_me` as clients send it: `true`, `"true"`, `1` or `"on"`.
fn truthy(v: Option<&serde_json::Value>) -> bool {
    use serde_json::Value;
    match v {
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_f64().is_some_and(|n| n != 0.0),
        Some(Value::String(s)) => matches!(s.as_str(), "true" | "1" | "on" | "yes"),
        _ => false,
    }
}

#[derive(Serialize, utoipa::ToSchema)]
struct LoggedIn {
    success: bool,
    user: LoginUser,
    /// What the original project's cloud server answers to its local servers.
    cloud_user: CloudUser,
    message: &'static str,
}

#[derive(Serialize, utoipa::ToSchema)]
struct CloudUser {
    user_id: UserId,
    username: String,
    email: String,
    /// The id a local server addresses this account's syncs by: the account's own.
    local_user_id: UserId,
}

#[derive(Serialize, utoipa::ToSchema)]
struct LoginUser {
    user_id: UserId,
    username: String,
    email: String,
}

/// Logs in: sets the session cookie.
#[utoipa::path(
    post,
    path = "/api/login",
    tag = "account",
    security(()),
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Logged in; `Set-Cookie` carries the session.", body = LoggedIn),
        (status = 401, description = "Wrong name or password.", body = ErrorReply),
        (status = 429, description = "Too many attempts for this address or name.", body = ErrorReply),
    )
)]
async fn login(
    state: Arc<AppState>,
    address: IpAddr,
    req: LoginRequest,
) -> Result<impl Reply, Rejection> {
    let remember = truthy(req.remember_me.as_ref());
    let cookie_name = state.cookie;
    let username = req.username.unwrap_or_default().trim().to_lowercase();
    let password = req.password.unwrap_or_default();
    let attempt = Attempt::start(&state, address, Some(&username)).map_err(reject)?;
    let turn = hash_turn(&state).await.map_err(reject)?;
    let user = blocking({
        let state = state.clone();
        let password = password.clone();
        move || {
            let _turn = turn;
            let Some(user) = state.store.user_by_username(&username)? else {
                secrets::verify_against_nothing(&password);
                return Err(ApiError::BadCredentials);
            };
            if !secrets::verify_password(&user.password_hash, &password) {
                return Err(ApiError::BadCredentials);
            }
            Ok(user)
        }
    })
    .await
    .map_err(reject)?;
    attempt.succeeded();
    let now = clock::now();
    let (token, token_hash) = secrets::new_session_token();
    let expires_at = now + if remember { REMEMBER_FOR } else { SESSION_FOR };
    let hub = hub_login(&state, &user, &password, remember)
        .await
        .map(|login| {
            let (nonce, sealed) = cloud::seal(&token, &login.cookie);
            HubSessionRecord {
                hub_user_id: login.user_id,
                nonce,
                sealed,
                expires_at,
            }
        });
    let user = blocking(move || {
        let session = SessionRecord {
            user_id: user.user_id.clone(),
            created_at: now,
            expires_at,
            remember_me: remember,
        };
        Ok(state
            .store
            .login(&user.user_id, &token_hash, &session, hub.as_ref(), now)?)
    })
    .await
    .map_err(reject)?;
    tracing::info!(user_id = %user.user_id, remember, "user logged in");
    let max_age = if remember {
        format!("; Max-Age={}", REMEMBER_FOR / clock::SECOND)
    } else {
        String::new()
    };
    let cookie = format!("{cookie_name}={token}; HttpOnly; SameSite=Lax; Path=/{max_age}");
    let reply = warp::reply::json(&LoggedIn {
        success: true,
        cloud_user: CloudUser {
            user_id: user.user_id.clone(),
            username: user.username.clone(),
            email: user.email.clone(),
            local_user_id: user.user_id.clone(),
        },
        user: LoginUser {
            user_id: user.user_id,
            username: user.username,
            email: user.email,
        },
        message: "登录成功",
    });
    Ok(warp::reply::with_header(reply, SET_COOKIE, cookie))
}

/// Logs the user in on the hub too, creating the account there first if the hub does not know it
/// (registered while the hub was down). `None`, logged, when the hub is off or refuses.
async fn hub_login(
    state: &AppState,
    user: &UserRecord,
    password: &str,
    remember: bool,
) -> Option<cloud::HubLogin> {
    let hub = state.hub.as_ref()?;
    let first = hub.login(&user.username, password, remember).await;
    let login = match first {
        Err(cloud::HubError::Refused(_)) => {
            match hub
                .register(&user.username, &user.email, password, &user.user_id)
                .await
            {
                Ok(()) => hub.login(&user.username, password, remember).await,
                Err(e) => Err(e),
            }
        }
        other => other,
    };
    match login {
        Ok(login) => {
            tracing::info!(user_id = %user.user_id, "logged in on the hub");
            Some(login)
        }
        Err(e) => {
            tracing::warn!(user_id = %user.user_id, error = %e, "login on the hub failed; cloud sync is off for this session");
            None
        }
    }
}

/// Whether the caller is logged in (a session or an API key), and as whom.
#[utoipa::path(
    get,
    path = "/api/auth/check",
    operation_id = "auth_check",
    tag = "account",
    security((), ("session" = []), ("key" = [])),
    responses((status = 200, description = "The answer, logged in or not.", body = AuthCheck))
)]
fn check(caller: Option<Caller>) -> warp::reply::Json {
    warp::reply::json(&match caller {
        Some(c) => AuthCheck {
            authenticated: true,
            user: Some(UserView::of(&c.user, None)),
        },
        None => AuthCheck {
            authenticated: false,
            user: None,
        },
    })
}

#[derive(Serialize, utoipa::ToSchema)]
struct AuthCheck {
    authenticated: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<UserView>,
}

/// The seed's user object. `image_count` appears only in the profile.
#[derive(Serialize, utoipa::ToSchema)]
struct UserView {
    user_id: UserId,
    username: String,
    email: String,
    created_at: String,
    last_login: Option<String>,
    cloud_sync_enabled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    image_count: Option<u64>,
}

impl UserView {
    fn of(user: &UserRecord, image_count: Option<u64>) -> Self {
        Self {
            user_id: user.user_id.clone(),
            username: user.username.clone(),
            email: user.email.clone(),
            created_at: clock::display(user.created_at),
            last_login: user.last_login.map(clock::display),
            cloud_sync_enabled: user.cloud_sync_enabled,
            image_count,
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
struct Done {
    success: bool,
    message: &'static str,
}

/// Ends the session (its cookie); API keys are revoked in `/api/keys`.
#[utoipa::path(
    post,
    path = "/api/logout",
    tag = "account",
    security(("session" = [])),
    responses((status = 200, description = "Logged out.", body = Done))
)]
async fn logout(state: Arc<AppState>, caller: Caller) -> Result<impl Reply, Rejection> {
    let cookie = state.cookie;
    let (token_hash, _) = caller.session().ok_or_else(|| reject(ApiError::KeyScope))?;
    blocking(move || Ok(state.store.delete_session(&token_hash)?))
        .await
        .map_err(reject)?;
    let reply = warp::reply::json(&Done {
        success: true,
        message: "登出成功",
    });
    Ok(warp::reply::with_header(
        reply,
        SET_COOKIE,
        format!("{cookie}=; HttpOnly; SameSite=Lax; Path=/; Max-Age=0"),
    ))
}

#[derive(Serialize, utoipa::ToSchema)]
struct Profile {
    success: bool,
    user: UserView,
}

/// The caller's account, with how many images it holds.
#[utoipa::path(
    get,
    path = "/api/user/profile",
    tag = "account",
    responses((status = 200, description = "The caller's account.", body = Profile))
)]
async fn profile(state: Arc<AppState>, caller: Caller) -> Result<impl Reply, Rejection> {
    let user_id = caller.user.user_id.clone();
    let count = blocking(move || Ok(state.store.user_image_count(&user_id)?))
        .await
        .map_err(reject)?;
    Ok(warp::reply::json(&Profile {
        success: true,
        user: UserView::of(&caller.user, Some(count)),
    }))
}
