//! Any page of a user's images at the same cost. The seed pages by offset (`page`, `per_page`) and
//! redb cannot skip to the n-th key of a range, so walking the time index to a deep page costs the
//! offset. Instead, every `STRIDE`-th key of each user's time index, counted from the oldest, is
//! kept in memory; a page starts at the mark just below it and walks at most `STRIDE` keys.
//!
//! Counting from the oldest keeps marks valid while uploads arrive, because new images go to the
//! newest end. Anything else that moves positions (a delete, an image inserted among older ones by
//! sync or import, a repair) bumps the user's order epoch in the data file in the same transaction,
//! and marks are only used with the epoch they were built under, read from the same snapshot as the
//! page. So a page is exact for its snapshot whatever runs beside it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use redb::{ReadOnlyTable, ReadableTable, WriteTransaction};

use super::Result;
use super::tables::*;

/// Keys between marks: the most a page walks before its first image.
pub(super) const STRIDE: u64 = 256;

type IndexKey = (i64, String);
type TimeIndex = ReadOnlyTable<(&'static str, i64, &'static str), ()>;

/// The marks of every user who paged deep since the server started.
#[derive(Default)]
pub(super) struct PageMarks {
    per_user: Mutex<HashMap<String, Arc<Marks>>>,
}

struct Marks {
    epoch: u64,
    /// `keys[k]` is the key at oldest-first position `k * STRIDE`.
    keys: Vec<IndexKey>,
}

fn epoch_key(user_id: &str) -> String {
    format!("order_epoch:{user_id}")
}

/// The user's order epoch as of this snapshot.
pub(super) fn epoch(meta: &ReadOnlyTable<&'static str, u64>, user_id: &str) -> Result<u64> {
    Ok(meta
        .get(epoch_key(user_id).as_str())?
        .map_or(0, |v| v.value()))
}

/// Marks every position of `user_id`'s time index as moved.
pub(super) fn bump_epoch(tx: &WriteTransaction, user_id: &str) -> Result<()> {
    let mut meta = tx.open_table(META)?;
    let key = epoch_key(user_id);
    let next = meta.get(key.as_str())?.map_or(0, |v| v.value()) + 1;
    meta.insert(key.as_str(), next)?;
    Ok(())
}

/// Before inserting `(saved_at, id)` into the user's time index: an insert anywhere but at the
/// newest end moves positions, so it bumps the epoch. Returns whether it goes at the newest end.
pub(super) fn before_insert(
    tx: &WriteTransaction,
    user_id: &str,
    saved_at: i64,
    id: &str,
) -> Result<bool> {
    let newest = {
        let index = tx.open_table(USER_IMAGES)?;
        let mut range = index.range((user_id, i64::MIN, "")..=(user_id, i64::MAX, "\u{10FFFF}"))?;
        match range.next_back() {
            Some(entry) => {
                let (key, _) = entry?;
                let (_, at, last_id) = key.value();
                Some((at, last_id.to_string()))
            }
            None => None,
        }
    };
    let newest_end = newest.is_none_or(|(at, last_id)| (saved_at, id) > (at, last_id.as_str()));
    if !newest_end {
        bump_epoch(tx, user_id)?;
    }
    Ok(newest_end)
}

impl PageMarks {
    /// The mark at or below oldest-first position `pos`: its position and key, or `None` if the
    /// index is shorter. Builds or extends the user's marks from `index` (the caller's snapshot)
    /// when they do not reach `pos`.
    pub(super) fn mark_at_or_below(
        &self,
        index: &TimeIndex,
        user_id: &str,
        epoch: u64,
        pos: u64,
    ) -> Result<Option<(u64, IndexKey)>> {
        let wanted = (pos / STRIDE) as usize;
        let cached = self
            .per_user
            .lock()
            .expect("page marks lock")
            .get(user_id)
            .filter(|m| m.epoch == epoch)
            .cloned();
        if let Some(key) = cached.as_ref().and_then(|m| m.keys.get(wanted)) {
            return Ok(Some((wanted as u64 * STRIDE, key.clone())));
        }
        // Extend the marks valid for this epoch from their last one, or build them from the start.
        let mut keys = cached.map(|m| m.keys.clone()).unwrap_or_default();
        let last = keys.last().cloned();
        let base = (keys.len() as u64).saturating_sub(1) * STRIDE;
        let end = (user_id, i64::MAX, "\u{10FFFF}");
        let range = match &last {
            Some((at, id)) => index.range((user_id, *at, id.as_str())..=end)?,
            None => index.range((user_id, i64::MIN, "")..=end)?,
        };
        for (n, entry) in range.enumerate() {
            let (key, _) = entry?;
            // Extending, the range starts at the last mark itself.
            if n == 0 && last.is_some() {
                continue;
            }
            if (base + n as u64) % STRIDE == 0 {
                let (_, at, id) = key.value();
                keys.push((at, id.to_string()));
            }
        }
        let found = keys
            .get(wanted)
            .map(|k| (wanted as u64 * STRIDE, k.clone()));
        self.per_user
            .lock()
            .expect("page marks lock")
            .insert(user_id.to_string(), Arc::new(Marks { epoch, keys }));
        Ok(found)
    }
}
