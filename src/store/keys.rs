//! API keys: what lets a browser extension, a script or another device act for a user without
//! the user's session cookie. Stored under the hash of the key, like sessions, so a copied data
//! file holds no usable key; listed and revoked by their id through a per-user index.

use redb::ReadableTable;

use super::records::{ApiKeyRecord, Record, UserRecord};
use super::tables::*;
use super::{Result, Store};
use crate::clock::{Micros, SECOND};
use crate::domain::{KeyId, UserId};

/// How stale a key's `last_used_at` may get before a request writes it again: keys used many
/// times a minute cost one small write a minute, not one per request.
pub const LAST_USED_GRAIN: Micros = 60 * SECOND;

impl Store {
    /// Stores a new key of `key.user_id` under `hash`. `false`, and nothing written, when the user
    /// has `max_per_user` keys already.
    pub fn create_key(
        &self,
        hash: &[u8; 32],
        key: &ApiKeyRecord,
        max_per_user: usize,
    ) -> Result<bool> {
        let tx = self.write()?;
        {
            let mut index = tx.open_table(USER_API_KEYS)?;
            let user = key.user_id.as_str();
            if index
                .range((user, "")..)?
                .take_while(|e| e.as_ref().is_ok_and(|(k, _)| k.value().0 == user))
                .count()
                >= max_per_user
            {
                return Ok(false);
            }
            index.insert((user, key.id.as_str()), hash)?;
            tx.open_table(API_KEYS)?
                .insert(hash, key.encode().as_slice())?;
        }
        self.finish(tx)?;
        Ok(true)
    }

    /// The user's keys, oldest first.
    pub fn user_keys(&self, user: &UserId) -> Result<Vec<ApiKeyRecord>> {
        let tx = self.read()?;
        let index = tx.open_table(USER_API_KEYS)?;
        let keys = tx.open_table(API_KEYS)?;
        let mut out = Vec::new();
        for entry in index.range((user.as_str(), "")..)? {
            let (key, hash) = entry?;
            if key.value().0 != user.as_str() {
                break;
            }
            if let Some(raw) = keys.get(&hash.value())? {
                out.push(ApiKeyRecord::decode(raw.value())?);
            }
        }
        out.sort_by_key(|k| k.created_at);
        Ok(out)
    }

    /// Revokes the user's key `id`: from the commit on, no request carrying it is let in. `false`
    /// when the user has no such key.
    pub fn revoke_key(&self, user: &UserId, id: &KeyId) -> Result<bool> {
        let tx = self.write()?;
        let found = {
            let mut index = tx.open_table(USER_API_KEYS)?;
            let hash: Option<[u8; 32]> = index
                .remove((user.as_str(), id.as_str()))?
                .map(|h| *h.value());
            if let Some(hash) = &hash {
                tx.open_table(API_KEYS)?.remove(hash)?;
            }
            hash.is_some()
        };
        self.finish(tx)?;
        Ok(found)
    }

    /// The key stored under `hash` and its user; `None` for an unknown or revoked key, or one
    /// whose user is gone. Two point reads, cheap enough for every request that carries a key.
    pub fn key_user(&self, hash: &[u8; 32]) -> Result<Option<(ApiKeyRecord, UserRecord)>> {
        let tx = self.read()?;
        let Some(raw) = tx.open_table(API_KEYS)?.get(hash)? else {
            return Ok(None);
        };
        let key = ApiKeyRecord::decode(raw.value())?;
        let users = tx.open_table(USERS)?;
        let Some(user) = users.get(key.user_id.as_str())? else {
            return Ok(None);
        };
        let user = UserRecord::decode(user.value())?;
        Ok(Some((key, user)))
    }

    /// Notes that the key under `hash` was used at `at`, unless it was noted less than
    /// `LAST_USED_GRAIN` before. Written like derived data: a crash may lose the last minute of it.
    pub fn touch_key(&self, hash: &[u8; 32], at: Micros) -> Result<()> {
        let tx = self.write_derived()?;
        {
            let mut keys = tx.open_table(API_KEYS)?;
            let Some(mut key) = keys
                .get(hash)?
                .map(|raw| ApiKeyRecord::decode(raw.value()))
                .transpose()?
            else {
                return Ok(());
            };
            if key
                .last_used_at
                .is_some_and(|last| at - last < LAST_USED_GRAIN)
            {
                return Ok(());
            }
            key.last_used_at = Some(at);
            keys.insert(hash, key.encode().as_slice())?;
        }
        self.finish(tx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::KeyScope;
    use crate::store::test_support::{add_user, temp_store};

    fn key(user: &str, id: &str, at: Micros) -> ApiKeyRecord {
        ApiKeyRecord {
            id: id.into(),
            user_id: user.into(),
            name: format!("key {id}"),
            scope: KeyScope::Capture,
            created_at: at,
            last_used_at: None,
        }
    }

    #[test]
    fn keys_are_found_by_hash_listed_by_user_and_revoked_at_once() {
        let (_dir, store) = temp_store();
        add_user(&store, "alice");
        add_user(&store, "bob");
        let (alice, bob) = (UserId::from("alice"), UserId::from("bob"));
        assert!(
            store
                .create_key(&[1; 32], &key(alice.as_str(), "k-a1", 2), 2)
                .unwrap()
        );
        assert!(
            store
                .create_key(&[2; 32], &key(alice.as_str(), "k-a2", 1), 2)
                .unwrap()
        );
        assert!(
            !store
                .create_key(&[3; 32], &key(alice.as_str(), "k-a3", 3), 2)
                .unwrap(),
            "over the limit"
        );
        assert!(store.key_user(&[3; 32]).unwrap().is_none());
        assert!(
            store
                .create_key(&[4; 32], &key(bob.as_str(), "k-b1", 1), 2)
                .unwrap()
        );

        let listed: Vec<String> = store
            .user_keys(&alice)
            .unwrap()
            .into_iter()
            .map(|k| k.id.into_string())
            .collect();
        assert_eq!(listed, ["k-a2", "k-a1"], "oldest first, only alice's");
        let (found, user) = store.key_user(&[1; 32]).unwrap().unwrap();
        assert_eq!(
            (found.id.as_str(), user.user_id.as_str()),
            ("k-a1", alice.as_str())
        );

        assert!(
            !store.revoke_key(&bob, &"k-a1".into()).unwrap(),
            "not bob's to revoke"
        );
        assert!(store.key_user(&[1; 32]).unwrap().is_some());
        assert!(store.revoke_key(&alice, &"k-a1".into()).unwrap());
        assert!(store.key_user(&[1; 32]).unwrap().is_none());
        assert_eq!(store.user_keys(&alice).unwrap().len(), 1);
    }

    #[test]
    fn last_use_is_written_at_most_once_a_grain() {
        let (_dir, store) = temp_store();
        add_user(&store, "alice");
        let alice = UserId::from("alice");
        store
            .create_key(&[1; 32], &key(alice.as_str(), "k-1", 0), 5)
            .unwrap();
        store.touch_key(&[1; 32], 1_000).unwrap();
        store
            .touch_key(&[1; 32], 1_000 + LAST_USED_GRAIN - 1)
            .unwrap();
        let last = |s: &Store| s.key_user(&[1; 32]).unwrap().unwrap().0.last_used_at;
        assert_eq!(last(&store), Some(1_000));
        store.touch_key(&[1; 32], 1_000 + LAST_USED_GRAIN).unwrap();
        assert_eq!(last(&store), Some(1_000 + LAST_USED_GRAIN));
        store.touch_key(&[9; 32], 5).unwrap();
    }
}
