//! `Idempotency-Key` on the upload routes: a client that may send a capture more than once (the
//! extension's offline queue, a retry after a lost answer) names it with a key, and the server
//! stores it once. The key's record is written in the commit that stores the image
//! (`store::idempotency`), so after any crash a capture is either stored with its key or not at
//! all; a replay of a stored capture gets its first answer, and the same key with another request
//! gets 409. Here: the header's bounds, the fingerprint of a request, and the turn that keeps two
//! requests with one key from being stored side by side (the second waits for the first).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use warp::http::{HeaderMap, StatusCode};

use super::ApiError;
use crate::domain::UserId;
use crate::store::records::IdempotencyRecord;

/// The longest key, in characters.
pub const MAX_KEY: usize = 128;
/// How long a request waits for another with its key to be stored.
const WAIT: Duration = Duration::from_secs(60);

/// The request's `Idempotency-Key`: `None` without one, 400 for an empty one, a longer one than
/// `MAX_KEY` or one with anything but printable ASCII.
pub fn key_of(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let bytes = value.as_bytes();
    if bytes.is_empty() || bytes.len() > MAX_KEY || !bytes.iter().all(|b| (0x20..0x7F).contains(b))
    {
        return Err(ApiError::BadIdempotencyKey);
    }
    // Printable ASCII is UTF-8.
    Ok(Some(String::from_utf8_lossy(bytes).into_owned()))
}

/// A hash of what an upload asks to store, built field by field (each length-prefixed, so no two
/// requests run together alike): a replay must give the same one.
#[derive(Default)]
pub struct Fingerprint(blake3::Hasher);

impl Fingerprint {
    pub fn field(&mut self, value: &[u8]) -> &mut Self {
        self.0.update(&(value.len() as u64).to_le_bytes());
        self.0.update(value);
        self
    }

    pub fn optional(&mut self, value: Option<&str>) -> &mut Self {
        match value {
            Some(text) => self.field(b"1").field(text.as_bytes()),
            None => self.field(b"0"),
        }
    }

    pub fn finish(&self) -> [u8; 32] {
        *self.0.finalize().as_bytes()
    }
}

/// What a stored capture's replay is answered.
pub fn replay(record: &IdempotencyRecord) -> warp::reply::Response {
    let status = StatusCode::from_u16(record.status).unwrap_or(StatusCode::OK);
    let mut response = warp::http::Response::new(record.answer.clone().into());
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        warp::http::header::CONTENT_TYPE,
        warp::http::HeaderValue::from_static("application/json"),
    );
    headers.insert(
        "idempotent-replayed",
        warp::http::HeaderValue::from_static("true"),
    );
    response
}

type Slot = Arc<tokio::sync::Mutex<()>>;

/// The keys whose uploads are in progress: each one's lock, and how many requests hold or wait
/// for it. An entry lives while one does, so the map holds at most one per request in flight.
#[derive(Default)]
pub struct InFlight {
    held: Mutex<HashMap<(UserId, String), (Slot, usize)>>,
}

/// A request's turn at a key: while it is held, no other request with the key is stored.
pub struct Turn<'a> {
    in_flight: &'a InFlight,
    key: (UserId, String),
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl InFlight {
    /// Waits for the turn at `user`'s `key`; 409 when another request keeps it past `WAIT`.
    pub async fn turn(&self, user: &UserId, key: &str) -> Result<Turn<'_>, ApiError> {
        let key = (user.clone(), key.to_string());
        let slot = {
            let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
            let entry = held.entry(key.clone()).or_default();
            entry.1 += 1;
            entry.0.clone()
        };
        // Made before waiting, so a request dropped while it waits (the client went away) still
        // gives its place back.
        let mut turn = Turn {
            in_flight: self,
            key,
            guard: None,
        };
        let guard = tokio::time::timeout(WAIT, slot.lock_owned())
            .await
            .map_err(|_| ApiError::IdempotencyKeyBusy)?;
        turn.guard = Some(guard);
        Ok(turn)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.held.lock().unwrap().len()
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        let mut held = self
            .in_flight
            .held
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        self.guard.take();
        if let Some(entry) = held.get_mut(&self.key) {
            entry.1 -= 1;
            if entry.1 == 0 {
                held.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use futures_util::FutureExt;

    use super::*;

    #[test]
    fn keys_are_bounded_printable_ascii() {
        let with = |value: &[u8]| {
            let mut headers = HeaderMap::new();
            headers.insert(
                "idempotency-key",
                warp::http::HeaderValue::from_bytes(value).unwrap(),
            );
            key_of(&headers)
        };
        assert_eq!(key_of(&HeaderMap::new()).unwrap(), None);
        assert_eq!(with(b"abc-1 2").unwrap().as_deref(), Some("abc-1 2"));
        assert!(with(&[b'k'; MAX_KEY]).unwrap().is_some());
        assert!(matches!(
            with(&[b'k'; MAX_KEY + 1]),
            Err(ApiError::BadIdempotencyKey)
        ));
        assert!(with(b"").is_err());
        assert!(with(b"tab\there").is_err());
        assert!(with("键".as_bytes()).is_err());
    }

    #[test]
    fn fields_do_not_run_together() {
        let one = Fingerprint::default().field(b"ab").field(b"c").finish();
        let two = Fingerprint::default().field(b"a").field(b"bc").finish();
        assert_ne!(one, two);
        let none = Fingerprint::default().optional(None).finish();
        let empty = Fingerprint::default().optional(Some("")).finish();
        assert_ne!(none, empty);
    }

    #[tokio::test]
    async fn a_second_request_waits_for_the_first_and_no_entry_outlives_them() {
        let in_flight = InFlight::default();
        let user: UserId = "u".into();
        let first = in_flight.turn(&user, "k").await.unwrap();
        let other_user = in_flight.turn(&"v".into(), "k").await.unwrap();
        let mut second = std::pin::pin!(in_flight.turn(&user, "k"));
        assert!(second.as_mut().now_or_never().is_none());
        drop(first);
        let second = second.await.unwrap();
        assert_eq!(in_flight.len(), 2);
        drop(second);
        drop(other_user);
        assert_eq!(in_flight.len(), 0);
        // A waiter dropped before its turn leaves nothing behind either.
        let first = in_flight.turn(&user, "k").await.unwrap();
        {
            let mut waiting = std::pin::pin!(in_flight.turn(&user, "k"));
            assert!(waiting.as_mut().now_or_never().is_none());
        }
        drop(first);
        assert_eq!(in_flight.len(), 0);
    }
}
