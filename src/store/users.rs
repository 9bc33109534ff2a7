//! Accounts: creation with unique username and email, lookups, and login bookkeeping.

use redb::{ReadableTable, WriteTransaction};

use super::records::{HubSessionRecord, Record, SessionRecord, TaskRecord, UserRecord};
use super::tables::*;
use super::{Result, Store, StoreError, WriteFailure};
use crate::clock::Micros;
use crate::domain::UserId;

impl Store {
    /// Stores a new account. `Conflict` if the username or email (compared case-insensitively by
    /// the caller's keys) or the user id is taken; nothing is written then.
    pub fn create_user(
        &self,
        user: &UserRecord,
        username_key: &str,
        email_key: &str,
    ) -> Result<()> {
        let tx = self.write()?;
        {
            let mut names = tx.open_table(USERNAMES)?;
            let mut emails = tx.open_table(EMAILS)?;
            let mut users = tx.open_table(USERS)?;
            if names.get(username_key)?.is_some()
                || emails.get(email_key)?.is_some()
                || users.get(user.user_id.as_str())?.is_some()
            {
                return Err(StoreError::Conflict);
            }
            names.insert(username_key, user.user_id.as_str())?;
            emails.insert(email_key, user.user_id.as_str())?;
            users.insert(user.user_id.as_str(), user.encode().as_slice())?;
        }
        self.finish(tx)?;
        Ok(())
    }

    pub fn user(&self, user_id: &UserId) -> Result<Option<UserRecord>> {
        let tx = self.read()?;
        let users = tx.open_table(USERS)?;
        users
            .get(user_id.as_str())?
            .map(|v| UserRecord::decode(v.value()))
            .transpose()
    }

    pub fn user_by_username(&self, username_key: &str) -> Result<Option<UserRecord>> {
        let tx = self.read()?;
        let Some(id) = tx.open_table(USERNAMES)?.get(username_key)? else {
            return Ok(None);
        };
        let users = tx.open_table(USERS)?;
        let record = users.get(id.value())?;
        record.map(|v| UserRecord::decode(v.value())).transpose()
    }

    /// Every account, in username order.
    pub fn users(&self) -> Result<Vec<UserRecord>> {
        let tx = self.read()?;
        let users = tx.open_table(USERS)?;
        let mut out = Vec::new();
        for entry in users.iter()? {
            out.push(UserRecord::decode(entry?.1.value())?);
        }
        out.sort_by_key(|u| u.username.to_lowercase());
        Ok(out)
    }

    /// Replaces the password hash of `user_id` and ends every session of that user, in one commit.
    /// Returns how many sessions were ended, or `None` if there is no such user.
    pub fn set_password(&self, user_id: &UserId, password_hash: &str) -> Result<Option<usize>> {
        let tx = self.write()?;
        let ended = {
            let mut users = tx.open_table(USERS)?;
            let mut user = match users.get(user_id.as_str())? {
                Some(v) => UserRecord::decode(v.value())?,
                None => return Ok(None),
            };
            user.password_hash = password_hash.to_string();
            users.insert(user_id.as_str(), user.encode().as_slice())?;
            drop(users);
            // Inside the transaction, so the sweep cannot write one of them back meanwhile.
            end_sessions(&tx, user_id)? + self.held_sessions.end(user_id)
        };
        self.finish(tx)?;
        Ok(Some(ended))
    }

    /// Deletes an account with its sessions, its images (their bytes go with their last
    /// reference) and its tasks, in one commit. Returns how many images went, or `None` if there
    /// is no such user.
    pub fn delete_user(&self, user_id: &UserId) -> Result<Option<u64>> {
        let tx = self.write()?;
        let removed = {
            let user = match tx.open_table(USERS)?.remove(user_id.as_str())? {
                Some(v) => UserRecord::decode(v.value())?,
                None => return Ok(None),
            };
            tx.open_table(USERNAMES)?
                .remove(user.username.to_lowercase().as_str())?;
            tx.open_table(EMAILS)?
                .remove(user.email.to_lowercase().as_str())?;
            end_sessions(&tx, user_id)?;
            self.held_sessions.end(user_id);
            let images = super::images::every_image_of(&tx, user_id)?;
            for image in &images {
                super::images::remove(&tx, image)?;
            }
            // There is no account left to sync them for.
            let mut deletions = tx.open_table(HUB_DELETIONS)?;
            deletions.retain_in(
                (user_id.as_str(), "")..=(user_id.as_str(), "\u{10FFFF}"),
                |_, _| false,
            )?;
            drop(deletions);
            super::idempotency::remove_user(&tx, user_id.as_str())?;
            let task_ids: Vec<String> = {
                let mut tasks = tx.open_table(TASKS)?;
                let mut ids = Vec::new();
                for entry in tasks.extract_if(|_, raw| {
                    TaskRecord::decode(raw).is_ok_and(|t| t.user_id == *user_id)
                })? {
                    ids.push(entry?.0.value().to_string());
                }
                ids
            };
            tx.open_table(HUB_SYNCS)?.remove(user_id.as_str())?;
            let mut pending = tx.open_table(PENDING_TASKS)?;
            let mut sync = tx.open_table(SYNC_TASKS)?;
            for id in &task_ids {
                pending.remove(id.as_str())?;
                sync.remove(id.as_str())?;
            }
            images.len() as u64
        };
        self.finish(tx)?;
        Ok(Some(removed))
    }

    /// How many images the user owns: one counter read, kept in step by every image write.
    pub fn user_image_count(&self, user_id: &UserId) -> Result<u64> {
        let tx = self.read()?;
        let counts = tx.open_table(USER_IMAGE_COUNTS)?;
        Ok(counts.get(user_id.as_str())?.map_or(0, |v| v.value()))
    }

    /// Records a successful login and opens its session (with its hub session when the hub
    /// accepted the login too), in one commit. Returns the updated user.
    ///
    /// When the disk is full the session is held in memory instead (see `sessions::Held`): the
    /// login works until the server restarts, without its hub session and its last-login time.
    pub fn login(
        &self,
        user_id: &UserId,
        token_hash: &[u8; 32],
        session: &SessionRecord,
        hub: Option<&HubSessionRecord>,
        at: Micros,
    ) -> Result<UserRecord> {
        match self.login_durably(user_id, token_hash, session, hub, at) {
            Err(e) if e.write_failure() == Some(WriteFailure::NoSpace) => {
                let Some(mut user) = self.user(user_id)? else {
                    return Err(e);
                };
                if !self.held_sessions.hold(*token_hash, session.clone()) {
                    return Err(e);
                }
                tracing::warn!(%user_id, "disk full: this login's session is held in memory");
                user.cloud_sync_enabled = false;
                Ok(user)
            }
            outcome => outcome,
        }
    }

    fn login_durably(
        &self,
        user_id: &UserId,
        token_hash: &[u8; 32],
        session: &SessionRecord,
        hub: Option<&HubSessionRecord>,
        at: Micros,
    ) -> Result<UserRecord> {
        let tx = self.write()?;
        let user = {
            let mut users = tx.open_table(USERS)?;
            let mut user = match users.get(user_id.as_str())? {
                Some(v) => UserRecord::decode(v.value())?,
                None => return Err(StoreError::Corrupt(format!("user {user_id} vanished"))),
            };
            user.last_login = Some(at);
            user.cloud_sync_enabled = hub.is_some();
            users.insert(user_id.as_str(), user.encode().as_slice())?;
            tx.open_table(SESSIONS)?
                .insert(token_hash, session.encode().as_slice())?;
            if let Some(hub) = hub {
                tx.open_table(HUB_SESSIONS)?
                    .insert(token_hash, hub.encode().as_slice())?;
            }
            user
        };
        self.finish(tx)?;
        Ok(user)
    }
}

/// Removes every session of `user_id`, with their hub sessions; returns how many.
fn end_sessions(tx: &WriteTransaction, user_id: &UserId) -> Result<usize> {
    let mut ended = Vec::new();
    {
        let mut sessions = tx.open_table(SESSIONS)?;
        for entry in sessions
            .extract_if(|_, raw| SessionRecord::decode(raw).is_ok_and(|s| s.user_id == *user_id))?
        {
            ended.push(*entry?.0.value());
        }
    }
    let mut hub = tx.open_table(HUB_SESSIONS)?;
    for token_hash in &ended {
        hub.remove(token_hash)?;
    }
    Ok(ended.len())
}

#[cfg(test)]
mod tests {
    use super::super::sessions::Held;
    use super::super::test_support::{new_image, temp_store};
    use super::*;

    fn user(id: &str, name: &str) -> UserRecord {
        UserRecord {
            user_id: id.into(),
            username: name.into(),
            email: format!("{name}@x.org"),
            password_hash: "h".into(),
            created_at: 1,
            last_login: None,
            cloud_sync_enabled: false,
        }
    }

    #[test]
    fn usernames_and_emails_are_unique() {
        let (_dir, store) = temp_store();
        store
            .create_user(&user("u1", "ann"), "ann", "ann@x.org")
            .unwrap();
        assert!(matches!(
            store.create_user(&user("u2", "ann"), "ann", "other@x.org"),
            Err(StoreError::Conflict)
        ));
        assert!(matches!(
            store.create_user(&user("u3", "bob"), "bob", "ann@x.org"),
            Err(StoreError::Conflict)
        ));
        assert!(store.user(&"u2".into()).unwrap().is_none());
        assert_eq!(
            store.user_by_username("ann").unwrap().unwrap().user_id,
            "u1"
        );
    }

    #[test]
    fn a_new_password_ends_sessions_and_deleting_a_user_takes_its_images() {
        use crate::domain::BlobHash;

        let (_dir, store) = temp_store();
        store
            .create_user(&user("u1", "ann"), "ann", "ann@x.org")
            .unwrap();
        store
            .create_user(&user("u2", "bob"), "bob", "bob@x.org")
            .unwrap();
        let session = SessionRecord {
            user_id: "u1".into(),
            created_at: 1,
            expires_at: i64::MAX,
            remember_me: false,
        };
        store
            .login(&"u1".into(), &[1; 32], &session, None, 2)
            .unwrap();
        assert_eq!(store.set_password(&"u1".into(), "new").unwrap(), Some(1));
        assert_eq!(
            store.user(&"u1".into()).unwrap().unwrap().password_hash,
            "new"
        );
        assert!(store.session_user(&[1; 32], 3).unwrap().is_none());
        assert_eq!(store.set_password(&"nobody".into(), "x").unwrap(), None);

        for (id, owner, bytes) in [
            ("a", "u1", b"shared"),
            ("b", "u2", b"shared"),
            ("c", "u1", b"single"),
        ] {
            let (image, task) = new_image(id, owner, 1, bytes);
            store.save_image(&image, bytes, &task).unwrap();
        }
        assert_eq!(store.delete_user(&"u1".into()).unwrap(), Some(2));
        assert!(store.user_by_username("ann").unwrap().is_none());
        assert_eq!(store.total_images().unwrap(), 1);
        assert!(store.blob(&BlobHash::of(b"single")).unwrap().is_none());
        assert_eq!(
            store
                .blob(&BlobHash::of(b"shared"))
                .unwrap()
                .unwrap()
                .record
                .refs,
            1
        );
        assert!(store.task(&"t-a".into()).unwrap().is_none());
        assert_eq!(store.pending_tasks().unwrap().len(), 1);
        assert!(store.check().unwrap().is_clean());
        assert_eq!(store.delete_user(&"u1".into()).unwrap(), None);
        let names: Vec<_> = store
            .users()
            .unwrap()
            .into_iter()
            .map(|u| u.username)
            .collect();
        assert_eq!(names, ["bob"]);
    }

    #[test]
    fn sessions_held_in_memory_are_written_by_the_sweep_and_end_like_others() {
        let (_dir, store) = temp_store();
        store
            .create_user(&user("u1", "ann"), "ann", "ann@x.org")
            .unwrap();
        let session = |expires_at| SessionRecord {
            user_id: "u1".into(),
            created_at: 1,
            expires_at,
            remember_me: false,
        };
        let now = 1_000;
        assert!(store.held_sessions.hold([1; 32], session(now + 10)));
        assert!(store.held_sessions.hold([2; 32], session(now + 10)));
        assert!(store.held_sessions.hold([3; 32], session(now - 1)));
        assert!(store.session_user(&[1; 32], now).unwrap().is_some());
        assert!(
            store.session_user(&[3; 32], now).unwrap().is_none(),
            "expired"
        );

        // The sweep writes the live ones and lets go of all of them.
        store.purge_expired_sessions(now).unwrap();
        assert!(store.held_sessions.map().is_empty());
        assert!(store.session_user(&[1; 32], now).unwrap().is_some());
        assert!(store.delete_session(&[1; 32]).unwrap());
        assert!(store.session_user(&[1; 32], now).unwrap().is_none());

        // A held session ends with a logout or a new password, like a written one.
        assert!(store.held_sessions.hold([4; 32], session(now + 10)));
        assert!(store.delete_session(&[4; 32]).unwrap());
        assert!(store.session_user(&[4; 32], now).unwrap().is_none());
        assert!(store.held_sessions.hold([5; 32], session(now + 10)));
        assert_eq!(
            store.set_password(&"u1".into(), "h2").unwrap(),
            Some(2),
            "[2] on disk, [5] held"
        );
        assert!(store.session_user(&[5; 32], now).unwrap().is_none());
        assert!(store.session_user(&[2; 32], now).unwrap().is_none());

        for i in 0..Held::MAX {
            assert!(store.held_sessions.hold(
                (i as u64 + 10).to_le_bytes().repeat(4).try_into().unwrap(),
                session(now + 10)
            ));
        }
        assert!(
            !store.held_sessions.hold([6; 32], session(now + 10)),
            "bounded"
        );
    }
}
