//! Login sessions, keyed by the hash of their token so a copied data file holds no usable session.
//!
//! A login while the disk is full cannot commit its session, yet logging in must keep working
//! then: such sessions are held in memory (`Held`) until the periodic sweep can write them, or the
//! server stops.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use super::records::{HubSessionRecord, Record, SessionRecord, UserRecord};
use super::tables::*;
use super::{Result, Store};
use crate::clock::Micros;
use crate::domain::UserId;

impl Store {
    /// The live session for `token_hash` and its user; `None` if unknown, expired, or its user is
    /// gone.
    pub fn session_user(
        &self,
        token_hash: &[u8; 32],
        now: Micros,
    ) -> Result<Option<(SessionRecord, UserRecord)>> {
        let tx = self.read()?;
        let sessions = tx.open_table(SESSIONS)?;
        let session = match sessions.get(token_hash)? {
            Some(raw) => SessionRecord::decode(raw.value())?,
            None => match self.held_sessions.get(token_hash) {
                Some(held) => held,
                None => return Ok(None),
            },
        };
        if session.expires_at <= now {
            return Ok(None);
        }
        let users = tx.open_table(USERS)?;
        let Some(user) = users.get(session.user_id.as_str())? else {
            return Ok(None);
        };
        let user = UserRecord::decode(user.value())?;
        Ok(Some((session, user)))
    }

    /// Ends a session on the server. Returns whether it existed.
    pub fn delete_session(&self, token_hash: &[u8; 32]) -> Result<bool> {
        let held = self.held_sessions.release(token_hash);
        // A session just written by the sweep is on disk too.
        let on_disk = (|| -> Result<bool> {
            let tx = self.write()?;
            let existed = tx.open_table(SESSIONS)?.remove(token_hash)?.is_some();
            tx.open_table(HUB_SESSIONS)?.remove(token_hash)?;
            self.finish(tx)?;
            Ok(existed)
        })();
        match on_disk {
            Err(_) if held => Ok(true),
            on_disk => Ok(on_disk? || held),
        }
    }

    /// Removes every session that expired before `now`, and writes the sessions held in memory
    /// (see `Held`) now that it can; returns how many expired.
    pub fn purge_expired_sessions(&self, now: Micros) -> Result<usize> {
        let tx = self.write()?;
        // Locked from here to the commit: a logout or a password change meanwhile waits, and then
        // finds the session on disk rather than having it written back after it ended.
        let mut held = self.held_sessions.map();
        let removed = {
            let mut sessions = tx.open_table(SESSIONS)?;
            for (token_hash, session) in held.iter() {
                if session.expires_at > now {
                    sessions.insert(token_hash, session.encode().as_slice())?;
                }
            }
            let mut removed = 0;
            for entry in sessions
                .extract_if(|_, v| SessionRecord::decode(v).map_or(true, |s| s.expires_at <= now))?
            {
                entry?;
                removed += 1;
            }
            let mut hub = tx.open_table(HUB_SESSIONS)?;
            for entry in hub.extract_if(|_, v| {
                HubSessionRecord::decode(v).map_or(true, |s| s.expires_at <= now)
            })? {
                entry?;
            }
            removed
        };
        self.finish(tx)?;
        held.clear();
        Ok(removed)
    }
}

/// Sessions opened while the disk was full, waiting to be written.
#[derive(Default)]
pub(super) struct Held(Mutex<HashMap<[u8; 32], SessionRecord>>);

impl Held {
    /// Logins held at most: past it a login on a full disk gets the disk's error.
    pub(super) const MAX: usize = 1024;

    pub(super) fn map(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], SessionRecord>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Holds a session; false when `MAX` are held already.
    pub(super) fn hold(&self, token_hash: [u8; 32], session: SessionRecord) -> bool {
        let mut map = self.map();
        if map.len() >= Self::MAX {
            return false;
        }
        map.insert(token_hash, session);
        true
    }

    fn get(&self, token_hash: &[u8; 32]) -> Option<SessionRecord> {
        self.map().get(token_hash).cloned()
    }

    /// Ends a held session; whether it was held.
    fn release(&self, token_hash: &[u8; 32]) -> bool {
        self.map().remove(token_hash).is_some()
    }

    /// Ends every held session of `user_id`; returns how many.
    pub(super) fn end(&self, user_id: &UserId) -> usize {
        let mut map = self.map();
        let before = map.len();
        map.retain(|_, s| s.user_id != *user_id);
        before - map.len()
    }
}
