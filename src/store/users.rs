//! Accounts: creation with unique username and email, lookups, and login bookkeeping.

use redb::ReadableTable;

use super::records::{HubSessionRecord, Record, SessionRecord, UserRecord};
use super::tables::*;
use super::{Result, Store, StoreError};
use crate::clock::Micros;

impl Store {
    /// Stores a new account. `Conflict` if the username or email (compared case-insensitively by
    /// the caller's keys) is taken; nothing is written then.
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
            if names.get(username_key)?.is_some() || emails.get(email_key)?.is_some() {
                return Err(StoreError::Conflict);
            }
            names.insert(username_key, user.user_id.as_str())?;
            emails.insert(email_key, user.user_id.as_str())?;
            tx.open_table(USERS)?
                .insert(user.user_id.as_str(), user.encode().as_slice())?;
        }
        tx.commit()?;
        Ok(())
    }

    pub fn user(&self, user_id: &str) -> Result<Option<UserRecord>> {
        let tx = self.read()?;
        let users = tx.open_table(USERS)?;
        users
            .get(user_id)?
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

    /// How many images the user owns: one counter read, kept in step by every image write.
    pub fn user_image_count(&self, user_id: &str) -> Result<u64> {
        let tx = self.read()?;
        let counts = tx.open_table(USER_IMAGE_COUNTS)?;
        Ok(counts.get(user_id)?.map_or(0, |v| v.value()))
    }

    /// Records a successful login and opens its session (with its hub session when the hub
    /// accepted the login too), in one commit. Returns the updated user.
    pub fn login(
        &self,
        user_id: &str,
        token_hash: &[u8; 32],
        session: &SessionRecord,
        hub: Option<&HubSessionRecord>,
        at: Micros,
    ) -> Result<UserRecord> {
        let tx = self.write()?;
        let user = {
            let mut users = tx.open_table(USERS)?;
            let mut user = match users.get(user_id)? {
                Some(v) => UserRecord::decode(v.value())?,
                None => return Err(StoreError::Corrupt(format!("user {user_id} vanished"))),
            };
            user.last_login = Some(at);
            user.cloud_sync_enabled = hub.is_some();
            users.insert(user_id, user.encode().as_slice())?;
            tx.open_table(SESSIONS)?
                .insert(token_hash, session.encode().as_slice())?;
            if let Some(hub) = hub {
                tx.open_table(HUB_SESSIONS)?
                    .insert(token_hash, hub.encode().as_slice())?;
            }
            user
        };
        tx.commit()?;
        Ok(user)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::temp_store;
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
        assert!(store.user("u2").unwrap().is_none());
        assert_eq!(
            store.user_by_username("ann").unwrap().unwrap().user_id,
            "u1"
        );
    }
}
