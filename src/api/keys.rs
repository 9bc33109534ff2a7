//! API keys over HTTP: a logged-in session creates, lists and revokes its user's keys, and hands
//! a browser extension a short pairing code that the extension trades for a capture key, so that
//! nobody copies a long key by hand.
//!
//! What a key may do once made is `auth`'s concern (`auth::keys`); here keys are only managed.
//! Keys are managed by sessions alone (`auth::key_allows` refuses every key here), so a leaked
//! key cannot make itself more keys. Pairing codes live in memory for five minutes: a restart
//! forgets them, and a person asks for a new one.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use std::sync::Arc;

use rand::Rng;
use serde::{Deserialize, Serialize};
use warp::{Filter, Rejection, Reply};

use super::auth::{Caller, require_session};
use super::error::ErrorReply;
use super::guard::client_addr;
use super::{ApiError, AppState, blocking, body, reject, with_state};
use crate::clock::{self, Micros};
use crate::domain::{KeyId, KeyScope, UserId, key_name};
use crate::store::records::ApiKeyRecord;
use crate::throttle;

/// Keys one user may hold: far more than devices and scripts anyone has, few enough that a
/// runaway script cannot fill the data file with them.
pub const MAX_KEYS_PER_USER: usize = 100;
const KEY_BODY_LIMIT: u64 = 4 * 1024;

/// The operations of this module in the OpenAPI document (`openapi`).
#[derive(utoipa::OpenApi)]
#[openapi(paths(create, list, revoke, pairing_code, pair))]
pub(super) struct Doc;

pub fn routes(
    state: Arc<AppState>,
) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    let create = warp::path!("api" / "keys")
        .and(warp::post())
        .and(with_state(state.clone()))
        .and(require_session(state.clone()))
        .and(body::json(
            state.throttles.bodies.clone(),
            KEY_BODY_LIMIT,
            ApiError::BodyTooLarge,
        ))
        .and_then(create);
    let list = warp::path!("api" / "keys")
        .and(warp::get())
        .and(with_state(state.clone()))
        .and(require_session(state.clone()))
        .and_then(list);
    let revoke = warp::path!("api" / "keys" / KeyId)
        .and(warp::delete())
        .and(with_state(state.clone()))
        .and(require_session(state.clone()))
        .and_then(revoke);
    let pairing_code = warp::path!("api" / "keys" / "pairing-code")
        .and(warp::post())
        .and(with_state(state.clone()))
        .and(require_session(state.clone()))
        .and_then(pairing_code);
    let pair = warp::path!("api" / "keys" / "pair")
        .and(warp::post())
        .and(with_state(state.clone()))
        .and(client_addr(state.clone()))
        .and(body::json(
            state.throttles.bodies.clone(),
            KEY_BODY_LIMIT,
            ApiError::BodyTooLarge,
        ))
        .and_then(pair);
    pairing_code.or(pair).or(create).or(list).or(revoke)
}

#[derive(Deserialize, utoipa::ToSchema)]
struct CreateRequest {
    name: Option<String>,
    scope: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct Created {
    success: bool,
    id: KeyId,
    /// The key itself, shown this once.
    key: String,
    name: String,
    scope: &'static str,
    created_at: String,
}

#[derive(Serialize, utoipa::ToSchema)]
struct KeyView {
    id: KeyId,
    name: String,
    scope: &'static str,
    created_at: String,
    last_used_at: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct KeyList {
    keys: Vec<KeyView>,
}

/// Creates an API key; the answer holds the key itself, shown this once.
#[utoipa::path(
    post,
    path = "/api/keys",
    operation_id = "create_key",
    tag = "keys",
    security(("session" = [])),
    request_body = CreateRequest,
    responses(
        (status = 200, description = "The new key.", body = Created),
        (status = 400, description = "A bad name or scope, or 100 keys already.", body = ErrorReply),
    )
)]
async fn create(
    state: Arc<AppState>,
    caller: Caller,
    req: CreateRequest,
) -> Result<impl Reply, Rejection> {
    let invalid = |e: crate::domain::Invalid| reject(ApiError::BadRequest(e.0.to_string()));
    let name = key_name(req.name.as_deref().unwrap_or("")).map_err(invalid)?;
    let scope = KeyScope::parse(req.scope.as_deref().unwrap_or("")).map_err(invalid)?;
    let created = make_key(state, caller.user.user_id, name, scope).await?;
    Ok(warp::reply::json(&created))
}

/// Stores a new key for `user` and answers it, the secret included.
async fn make_key(
    state: Arc<AppState>,
    user: UserId,
    name: String,
    scope: KeyScope,
) -> Result<Created, Rejection> {
    let (key, hash) = crate::secrets::new_api_key();
    let record = ApiKeyRecord {
        id: KeyId::random(),
        user_id: user,
        name,
        scope,
        created_at: clock::now(),
        last_used_at: None,
    };
    let stored = {
        let record = record.clone();
        blocking(move || Ok(state.store.create_key(&hash, &record, MAX_KEYS_PER_USER)?))
            .await
            .map_err(reject)?
    };
    if !stored {
        return Err(reject(ApiError::BadRequest(format!(
            "API 密钥数量已达上限（{MAX_KEYS_PER_USER} 个），请先撤销不用的密钥"
        ))));
    }
    tracing::info!(user_id = %record.user_id, key_id = %record.id, scope = scope.as_str(), "API key created");
    Ok(Created {
        success: true,
        id: record.id,
        key,
        name: record.name,
        scope: scope.as_str(),
        created_at: clock::display(record.created_at),
    })
}

/// The caller's keys (never the keys themselves).
#[utoipa::path(
    get,
    path = "/api/keys",
    operation_id = "list_keys",
    tag = "keys",
    security(("session" = [])),
    responses((status = 200, description = "The keys, newest first.", body = KeyList))
)]
async fn list(state: Arc<AppState>, caller: Caller) -> Result<impl Reply, Rejection> {
    let user = caller.user.user_id;
    let keys = blocking(move || Ok(state.store.user_keys(&user)?))
        .await
        .map_err(reject)?;
    Ok(warp::reply::json(&KeyList {
        keys: keys
            .into_iter()
            .map(|k| KeyView {
                id: k.id,
                name: k.name,
                scope: k.scope.as_str(),
                created_at: clock::display(k.created_at),
                last_used_at: k.last_used_at.map(clock::display),
            })
            .collect(),
    }))
}

#[derive(Serialize, utoipa::ToSchema)]
struct Revoked {
    success: bool,
    message: &'static str,
}

/// Revokes a key: it is refused from the next request on.
#[utoipa::path(
    delete,
    path = "/api/keys/{key_id}",
    operation_id = "revoke_key",
    tag = "keys",
    security(("session" = [])),
    params(("key_id" = KeyId, Path, description = "The key's `id`.")),
    responses(
        (status = 200, description = "Revoked.", body = Revoked),
        (status = 404, description = "The caller has no such key.", body = ErrorReply),
    )
)]
async fn revoke(id: KeyId, state: Arc<AppState>, caller: Caller) -> Result<impl Reply, Rejection> {
    let user = caller.user.user_id;
    let found = {
        let (user, id) = (user.clone(), id.clone());
        blocking(move || Ok(state.store.revoke_key(&user, &id)?))
            .await
            .map_err(reject)?
    };
    if !found {
        return Err(reject(ApiError::KeyNotFound));
    }
    tracing::info!(user_id = %user, key_id = %id, "API key revoked");
    Ok(warp::reply::json(&Revoked {
        success: true,
        message: "API 密钥已撤销",
    }))
}

#[derive(Serialize, utoipa::ToSchema)]
struct PairingCode {
    success: bool,
    /// `XXXX-XXXX`, to be typed into the extension's options page.
    code: String,
    expires_at: String,
}

/// A short code to type into the extension, which trades it for a capture key (`/api/keys/pair`).
#[utoipa::path(
    post,
    path = "/api/keys/pairing-code",
    operation_id = "create_pairing_code",
    tag = "keys",
    security(("session" = [])),
    responses(
        (status = 200, description = "The code, valid for 5 minutes, once.", body = PairingCode),
        (status = 429, description = "Too many codes asked for.", body = ErrorReply),
    )
)]
async fn pairing_code(state: Arc<AppState>, caller: Caller) -> Result<impl Reply, Rejection> {
    let user = caller.user.user_id;
    state
        .throttles
        .pairing_codes
        .take(&user, 1)
        .map_err(|wait| reject(ApiError::TooManyRequests(wait.secs())))?;
    let (code, expires_at) = state.pairings.issue(&user).map_err(reject)?;
    Ok(warp::reply::json(&PairingCode {
        success: true,
        code,
        expires_at: clock::display(expires_at),
    }))
}

#[derive(Deserialize, utoipa::ToSchema)]
struct PairRequest {
    code: Option<String>,
    /// What to call the key; "浏览器扩展" when not given.
    name: Option<String>,
}

/// Trades a pairing code for a capture-scope key (what the extension does).
#[utoipa::path(
    post,
    path = "/api/keys/pair",
    operation_id = "pair_extension",
    tag = "keys",
    security(()),
    request_body = PairRequest,
    responses(
        (status = 200, description = "The new key.", body = Created),
        (status = 400, description = "The code is unknown, expired or used.", body = ErrorReply),
        (status = 429, description = "Too many attempts from this address.", body = ErrorReply),
    )
)]
async fn pair(
    state: Arc<AppState>,
    address: IpAddr,
    req: PairRequest,
) -> Result<impl Reply, Rejection> {
    // A code is a credential: guessing one is limited like guessing a password.
    let address = throttle::address_key(address);
    state
        .throttles
        .attempts_by_address
        .take(&address, 1)
        .map_err(|wait| reject(ApiError::TooManyRequests(wait.secs())))?;
    let name = match req.name.as_deref().filter(|n| !n.trim().is_empty()) {
        Some(name) => key_name(name).map_err(|e| reject(ApiError::BadRequest(e.0.into())))?,
        None => "浏览器扩展".to_string(),
    };
    let Some(user) = req.code.as_deref().and_then(|c| state.pairings.redeem(c)) else {
        tracing::info!(%address, "pairing code refused");
        return Err(reject(ApiError::BadPairingCode));
    };
    state.throttles.attempts_by_address.give_back(&address, 1);
    let created = make_key(state, user, name, KeyScope::Capture).await?;
    Ok(warp::reply::json(&created))
}

/// Pairing codes waiting to be redeemed, in memory.
pub struct Pairings {
    pending: Mutex<HashMap<String, Pending>>,
}

struct Pending {
    user: UserId,
    expires: Instant,
}

/// How long a pairing code may be redeemed.
pub const PAIRING_TTL: Duration = Duration::from_secs(5 * 60);
/// Codes waiting at once, all users together; past it new codes wait for old ones to expire.
const MAX_PENDING: usize = 1_000;
/// Codes one user may have waiting: asking again makes a new one and drops the oldest beyond it.
const MAX_PENDING_PER_USER: usize = 3;
/// Crockford's base 32: no I, L, O or U, so a code read aloud or off a phone is typed right.
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

impl Default for Pairings {
    fn default() -> Self {
        Self {
            pending: Mutex::new(HashMap::new()),
        }
    }
}

impl Pairings {
    /// A new code for `user` (8 characters, 40 bits) and when it expires.
    pub fn issue(&self, user: &UserId) -> Result<(String, Micros), ApiError> {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        pending.retain(|_, p| p.expires > now);
        let mut mine: Vec<(String, Instant)> = pending
            .iter()
            .filter(|(_, p)| p.user == *user)
            .map(|(code, p)| (code.clone(), p.expires))
            .collect();
        mine.sort_by_key(|(_, expires)| *expires);
        for (code, _) in mine
            .iter()
            .take((mine.len() + 1).saturating_sub(MAX_PENDING_PER_USER))
        {
            pending.remove(code);
        }
        if pending.len() >= MAX_PENDING {
            return Err(ApiError::Busy(PAIRING_TTL.as_secs()));
        }
        let mut rng = rand::rng();
        let code = loop {
            let code: String = (0..8)
                .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
                .collect();
            if !pending.contains_key(&code) {
                break code;
            }
        };
        let expires_at = clock::now() + PAIRING_TTL.as_micros() as Micros;
        pending.insert(
            code.clone(),
            Pending {
                user: user.clone(),
                expires: now + PAIRING_TTL,
            },
        );
        Ok((format!("{}-{}", &code[..4], &code[4..]), expires_at))
    }

    /// The user of `code` if it is waiting and not expired; it cannot be redeemed again.
    pub fn redeem(&self, code: &str) -> Option<UserId> {
        let code = normalise(code)?;
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        let found = pending.remove(&code)?;
        (found.expires > Instant::now()).then_some(found.user)
    }

    #[cfg(test)]
    fn is_pending(&self, code: &str) -> bool {
        let pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        normalise(code).is_some_and(|code| pending.contains_key(&code))
    }
}

/// A code as typed: any case, with or without the dash or spaces, `O` for `0` and `I`/`L` for
/// `1`. `None` for anything that cannot be a code.
fn normalise(typed: &str) -> Option<String> {
    if typed.len() > 32 {
        return None;
    }
    let code: String = typed
        .chars()
        .filter(|c| !matches!(c, '-' | ' '))
        .map(|c| match c.to_ascii_uppercase() {
            'O' => '0',
            'I' | 'L' => '1',
            c => c,
        })
        .collect();
    (code.len() == 8 && code.bytes().all(|b| ALPHABET.contains(&b))).then_some(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_is_redeemed_once_however_it_is_typed() {
        let pairings = Pairings::default();
        let alice = UserId::from("alice");
        let (code, _) = pairings.issue(&alice).unwrap();
        assert_eq!(code.len(), 9);
        assert!(pairings.is_pending(&code));
        let typed = code.to_lowercase().replace('-', " ");
        assert_eq!(pairings.redeem(&typed), Some(alice));
        assert_eq!(pairings.redeem(&code), None, "used once");
        assert_eq!(pairings.redeem("not a code"), None);
        assert_eq!(pairings.redeem(&"A".repeat(10_000)), None);
    }

    #[test]
    fn an_expired_code_is_refused() {
        let pairings = Pairings::default();
        let (code, _) = pairings.issue(&UserId::from("alice")).unwrap();
        for pending in pairings.pending.lock().unwrap().values_mut() {
            pending.expires = Instant::now() - Duration::from_secs(1);
        }
        assert_eq!(pairings.redeem(&code), None);
    }

    #[test]
    fn a_user_holds_a_few_codes_at_most() {
        let pairings = Pairings::default();
        let alice = UserId::from("alice");
        let codes: Vec<String> = (0..5).map(|_| pairings.issue(&alice).unwrap().0).collect();
        let live = codes.iter().filter(|c| pairings.is_pending(c)).count();
        assert_eq!(live, MAX_PENDING_PER_USER);
        assert!(pairings.redeem(&codes[4]).is_some(), "the newest is kept");
    }
}
