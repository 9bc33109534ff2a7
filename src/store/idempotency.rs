//! Captures stored under an `Idempotency-Key`: the record of each is written in the commit that
//! stores its image (`images::save_in`), so a capture is either stored with its key or not at
//! all, and a replay after any crash finds it. Keys are scoped to their user and kept
//! `KEEP_KEYS`, then purged with the trash (`Store::purge_keys`).

use redb::{ReadableTable, WriteTransaction};

use super::records::{IdempotencyRecord, Record};
use super::tables::*;
use super::{Result, Store, StoreError};
use crate::clock::{self, Micros};
use crate::domain::UserId;

/// How long a key is remembered, at least.
pub const KEEP_KEYS: Micros = 7 * clock::DAY;

/// A key to store with an upload, and its record.
#[derive(Debug, Clone)]
pub struct NewKey {
    pub key: String,
    pub record: IdempotencyRecord,
}

/// Stores `key` for `user` inside `tx`; `KeyUsed` (nothing written) if the user has it already.
pub(super) fn put_in(tx: &WriteTransaction, user: &str, key: &NewKey) -> Result<()> {
    let mut keys = tx.open_table(IDEMPOTENCY)?;
    if keys.get((user, key.key.as_str()))?.is_some() {
        return Err(StoreError::KeyUsed);
    }
    keys.insert((user, key.key.as_str()), key.record.encode().as_slice())?;
    tx.open_table(IDEMPOTENCY_TIMES)?
        .insert((key.record.created_at, user, key.key.as_str()), ())?;
    Ok(())
}

/// Removes every key of `user` (their account is deleted).
pub(super) fn remove_user(tx: &WriteTransaction, user: &str) -> Result<()> {
    let mut doomed = Vec::new();
    {
        let keys = tx.open_table(IDEMPOTENCY)?;
        for entry in keys.range((user, "")..)? {
            let (key, value) = entry?;
            let (owner, name) = key.value();
            if owner != user {
                break;
            }
            let at = IdempotencyRecord::decode(value.value())?.created_at;
            doomed.push((at, name.to_string()));
        }
    }
    let mut keys = tx.open_table(IDEMPOTENCY)?;
    let mut times = tx.open_table(IDEMPOTENCY_TIMES)?;
    for (at, name) in &doomed {
        keys.remove((user, name.as_str()))?;
        times.remove((*at, user, name.as_str()))?;
    }
    Ok(())
}

impl Store {
    /// The capture `user_id` stored under `key`, if any.
    pub fn idempotency_key(
        &self,
        user_id: &UserId,
        key: &str,
    ) -> Result<Option<IdempotencyRecord>> {
        let tx = self.read()?;
        let found = tx.open_table(IDEMPOTENCY)?.get((user_id.as_str(), key))?;
        found
            .map(|v| IdempotencyRecord::decode(v.value()))
            .transpose()
    }

    /// Forgets the keys stored before `before`, in one commit; how many.
    pub fn purge_keys(&self, before: Micros) -> Result<u64> {
        let tx = self.write()?;
        let mut doomed = Vec::new();
        {
            let times = tx.open_table(IDEMPOTENCY_TIMES)?;
            for entry in times.range((i64::MIN, "", "")..(before, "", ""))? {
                let (key, _) = entry?;
                let (at, user, name) = key.value();
                doomed.push((at, user.to_string(), name.to_string()));
            }
        }
        if doomed.is_empty() {
            return Ok(0);
        }
        {
            let mut keys = tx.open_table(IDEMPOTENCY)?;
            let mut times = tx.open_table(IDEMPOTENCY_TIMES)?;
            for (at, user, name) in &doomed {
                keys.remove((user.as_str(), name.as_str()))?;
                times.remove((*at, user.as_str(), name.as_str()))?;
            }
        }
        self.finish(tx)?;
        Ok(doomed.len() as u64)
    }
}
