//! Login sessions, keyed by the hash of their token so a copied data file holds no usable session.

use super::records::{HubSessionRecord, Record, SessionRecord, UserRecord};
use super::tables::*;
use super::{Result, Store};
use crate::clock::Micros;

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
        let Some(raw) = sessions.get(token_hash)? else {
            return Ok(None);
        };
        let session = SessionRecord::decode(raw.value())?;
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
        let tx = self.write()?;
        let existed = tx.open_table(SESSIONS)?.remove(token_hash)?.is_some();
        tx.open_table(HUB_SESSIONS)?.remove(token_hash)?;
        self.finish(tx)?;
        Ok(existed)
    }

    /// Removes every session that expired before `now`; returns how many.
    pub fn purge_expired_sessions(&self, now: Micros) -> Result<usize> {
        let tx = self.write()?;
        let removed = {
            let mut sessions = tx.open_table(SESSIONS)?;
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
        Ok(removed)
    }
}
