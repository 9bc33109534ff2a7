//! The search catalogs of the users who searched, within one memory budget: least recently used
//! out first, one build at a time, and a catalog that cannot fit alone is not kept at all (its
//! user is searched by `scan`). The similar-image indexes (`similar::HashIndex`) are kept the same
//! way, in a budget of their own: anything `Cached`.
//!
//! A catalog is read under its slot's read lock (many queries at once) and extended or rebuilt
//! under its write lock; queries of a user whose catalog is being built wait for it rather than
//! build their own.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

use redb::ReadTransaction;

use super::Result;
use super::Snapshot;
use super::catalog::{Catalog, Covers};

/// A per-user structure built from a read snapshot and kept in memory while it is used.
pub(in crate::store) trait Cached: Sized {
    /// What the log calls it.
    const NAME: &'static str;

    /// Builds `user`'s from the snapshot `tx`. `room` is told its size as it grows; when it
    /// answers `false`, the build stops and gives `None`.
    fn load(
        tx: &ReadTransaction,
        user: &str,
        snapshot: &Snapshot,
        room: &mut dyn FnMut(usize) -> bool,
    ) -> Result<Option<Self>>;

    fn covers(&self, snapshot: &Snapshot) -> Covers;

    /// Brings it up to `snapshot` when it `covers` it as `Behind`.
    fn extend(&mut self, tx: &ReadTransaction, user: &str, snapshot: &Snapshot) -> Result<()>;

    /// Bytes of memory it holds.
    fn bytes(&self) -> usize;

    /// Images in it.
    fn len(&self) -> usize;
}

impl Cached for Catalog {
    const NAME: &'static str = "search catalog";

    fn load(
        tx: &ReadTransaction,
        user: &str,
        snapshot: &Snapshot,
        room: &mut dyn FnMut(usize) -> bool,
    ) -> Result<Option<Self>> {
        Catalog::load(tx, user, snapshot.epoch, room)
    }

    fn covers(&self, snapshot: &Snapshot) -> Covers {
        Catalog::covers(self, snapshot)
    }

    fn extend(&mut self, tx: &ReadTransaction, user: &str, _: &Snapshot) -> Result<()> {
        Catalog::extend(self, tx, user)
    }

    fn bytes(&self) -> usize {
        Catalog::bytes(self)
    }

    fn len(&self) -> usize {
        Catalog::len(self)
    }
}

const MIB: f64 = 1024.0 * 1024.0;

/// What became of a query put to a catalog.
pub(super) enum Use<T> {
    Found(T),
    /// The catalog is of a later epoch than the query's snapshot: a fresh snapshot can use it.
    Newer,
    /// The user's catalog does not fit the budget.
    TooBig,
}

pub(in crate::store) struct Catalogs<C = Catalog> {
    budget: AtomicUsize,
    slots: Mutex<Slots<C>>,
    /// Held by the one build running.
    building: Mutex<()>,
}

struct Slots<C> {
    by_user: HashMap<String, Held<C>>,
    /// Counts uses, for least recently used.
    clock: u64,
}

impl<C> Default for Slots<C> {
    fn default() -> Self {
        Self {
            by_user: HashMap::new(),
            clock: 0,
        }
    }
}

struct Held<C> {
    slot: Arc<Slot<C>>,
    used: u64,
}

struct Slot<C> {
    catalog: RwLock<Option<C>>,
    /// `Catalog::bytes` of what `catalog` holds, readable without its lock.
    bytes: AtomicUsize,
    /// The epoch at which the user's catalog was found too big: not tried again within it
    /// (uploads only make it bigger).
    too_big: Mutex<Option<u64>>,
}

impl<C> Default for Slot<C> {
    fn default() -> Self {
        Self {
            catalog: RwLock::new(None),
            bytes: AtomicUsize::new(0),
            too_big: Mutex::new(None),
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<C: Cached> Catalogs<C> {
    pub(in crate::store) fn new(budget: usize) -> Self {
        Self {
            budget: AtomicUsize::new(budget),
            slots: Mutex::default(),
            building: Mutex::default(),
        }
    }

    pub(super) fn set_budget(&self, bytes: usize) {
        self.budget.store(bytes, Ordering::Relaxed);
        self.make_room("", 0);
    }

    /// Bytes held by the catalogs kept.
    #[cfg(test)]
    pub(super) fn held(&self) -> usize {
        let slots = lock(&self.slots);
        slots
            .by_user
            .values()
            .map(|h| h.slot.bytes.load(Ordering::Relaxed))
            .sum()
    }

    /// The users whose catalogs are kept, in order.
    #[cfg(test)]
    pub(super) fn kept(&self) -> Vec<String> {
        let slots = lock(&self.slots);
        let mut users: Vec<String> = slots
            .by_user
            .iter()
            .filter(|(_, h)| h.slot.bytes.load(Ordering::Relaxed) > 0)
            .map(|(user, _)| user.clone())
            .collect();
        users.sort();
        users
    }

    /// `user`'s slot, made if missing, marked as just used.
    fn slot(&self, user: &str) -> Arc<Slot<C>> {
        let mut slots = lock(&self.slots);
        slots.clock += 1;
        let now = slots.clock;
        let held = slots
            .by_user
            .entry(user.to_string())
            .or_insert_with(|| Held {
                slot: Arc::default(),
                used: now,
            });
        held.used = now;
        held.slot.clone()
    }

    /// Whether a catalog of `bytes` for `user` fits, once the least recently used catalogs of
    /// other users are dropped as needed.
    fn make_room(&self, user: &str, bytes: usize) -> bool {
        let budget = self.budget.load(Ordering::Relaxed);
        let mut slots = lock(&self.slots);
        loop {
            let others: usize = slots
                .by_user
                .iter()
                .filter(|(owner, _)| owner.as_str() != user)
                .map(|(_, held)| held.slot.bytes.load(Ordering::Relaxed))
                .sum();
            if others.saturating_add(bytes) <= budget {
                return true;
            }
            let oldest = slots
                .by_user
                .iter()
                .filter(|(owner, held)| {
                    owner.as_str() != user && held.slot.bytes.load(Ordering::Relaxed) > 0
                })
                .min_by_key(|(_, held)| held.used)
                .map(|(owner, _)| owner.clone());
            match oldest {
                Some(owner) => {
                    slots.by_user.remove(&owner);
                }
                None => return bytes <= budget,
            }
        }
    }

    /// Runs `query` on `user`'s catalog as of `snapshot` (read from `tx`): with the number of its
    /// images the snapshot holds. Builds the catalog, or extends it with newer uploads, first if
    /// needed.
    pub(super) fn with<T>(
        &self,
        tx: &ReadTransaction,
        user: &str,
        snapshot: &Snapshot,
        query: impl FnOnce(&C, usize) -> T,
    ) -> Result<Use<T>> {
        let slot = self.slot(user);
        let mut query = Some(query);
        loop {
            {
                let held = slot.catalog.read().unwrap_or_else(PoisonError::into_inner);
                if let Some(catalog) = held.as_ref() {
                    match catalog.covers(snapshot) {
                        Covers::Rows(rows) => {
                            let query = query.take().expect("a query runs once");
                            return Ok(Use::Found(query(catalog, rows)));
                        }
                        Covers::Newer => return Ok(Use::Newer),
                        Covers::Behind | Covers::Stale => {}
                    }
                }
            }
            let mut held = slot.catalog.write().unwrap_or_else(PoisonError::into_inner);
            match held.as_ref().map(|c| c.covers(snapshot)) {
                // Another query brought it up to date meanwhile.
                Some(Covers::Rows(_) | Covers::Newer) => continue,
                Some(Covers::Behind) => {
                    held.as_mut()
                        .expect("a catalog")
                        .extend(tx, user, snapshot)?;
                }
                Some(Covers::Stale) | None => {
                    if *lock(&slot.too_big) == Some(snapshot.epoch) {
                        return Ok(Use::TooBig);
                    }
                    *held = None;
                    slot.bytes.store(0, Ordering::Relaxed);
                    let _one_build = lock(&self.building);
                    let started = std::time::Instant::now();
                    let mut room = |bytes| self.make_room(user, bytes);
                    *held = C::load(tx, user, snapshot, &mut room)?;
                    if let Some(catalog) = held.as_ref() {
                        tracing::info!(
                            user,
                            images = catalog.len(),
                            mib = format!("{:.1}", catalog.bytes() as f64 / MIB),
                            ms = started.elapsed().as_millis() as u64,
                            "{} built",
                            C::NAME
                        );
                    }
                }
            }
            let bytes = held.as_ref().map_or(0, C::bytes);
            if held.is_none() || !self.make_room(user, bytes) {
                tracing::info!(
                    user,
                    budget_mib = format!("{:.1}", self.budget.load(Ordering::Relaxed) as f64 / MIB),
                    "the {} does not fit its budget: searching row by row",
                    C::NAME
                );
                *held = None;
                slot.bytes.store(0, Ordering::Relaxed);
                *lock(&slot.too_big) = Some(snapshot.epoch);
                return Ok(Use::TooBig);
            }
            slot.bytes.store(bytes, Ordering::Relaxed);
        }
    }
}
