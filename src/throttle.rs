//! The server's answers to "too much": per-key rate limits (login and register attempts, anonymous
//! uploads) and gates on work that costs memory (password hashes, request bodies in flight).
//!
//! Every structure here is bounded itself: a flood of new keys (addresses, user names) can make a
//! limiter forget old keys, never grow without end.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::Config;

/// Login and register attempts from one address: 10 at once, then 10 a minute. Someone who
/// mistypes a password a few times never meets it.
const ATTEMPTS_BURST: u64 = 10;
const ATTEMPTS_PER_MINUTE: u64 = 10;
/// Failed logins at one user name, from anywhere: 20 at once, then 10 a minute. The same for
/// names that exist and names that do not, so the limit says nothing about which exist.
const ACCOUNT_BURST: u64 = 20;
const ACCOUNT_PER_MINUTE: u64 = 10;
/// Pairing codes a user may ask for in a burst, and then per minute.
const PAIRING_BURST: u64 = 5;
const PAIRING_PER_MINUTE: u64 = 2;
/// How many password checks may queue behind the running ones, per running one, and for how long.
const HASH_QUEUE_PER_PERMIT: usize = 8;
const HASH_MAX_WAIT: Duration = Duration::from_secs(10);

/// The limits of one running server, built from its configuration.
pub struct Throttles {
    /// Login and register attempts per client address.
    pub attempts_by_address: RateLimiter<IpAddr>,
    /// Failed logins per user name (hashed, so long names cost nothing to keep).
    pub logins_by_account: RateLimiter<[u8; 16]>,
    /// Anonymous uploads per client address: images, and KiB of image bytes.
    pub anonymous_images: RateLimiter<IpAddr>,
    pub anonymous_kib: RateLimiter<IpAddr>,
    /// Pairing codes asked for, per user.
    pub pairing_codes: RateLimiter<crate::domain::UserId>,
    /// Password hashes computed at once.
    pub hashes: Gate,
    /// KiB of request bodies held at once.
    pub bodies: Gate,
}

impl Throttles {
    pub fn new(config: &Config) -> Self {
        let limits = &config.limits;
        let anonymous = &config.anonymous;
        let hash_permits = limits.hash_permits.max(1);
        let anonymous_kib = (anonymous.bytes_per_minute / 1024).max(1);
        Self {
            attempts_by_address: RateLimiter::per_minute(ATTEMPTS_BURST, ATTEMPTS_PER_MINUTE),
            logins_by_account: RateLimiter::per_minute(ACCOUNT_BURST, ACCOUNT_PER_MINUTE),
            anonymous_images: RateLimiter::per_minute(
                anonymous.images_per_minute.into(),
                anonymous.images_per_minute.into(),
            ),
            anonymous_kib: RateLimiter::per_minute(anonymous_kib, anonymous_kib),
            pairing_codes: RateLimiter::per_minute(PAIRING_BURST, PAIRING_PER_MINUTE),
            hashes: Gate::new(
                u32::try_from(hash_permits).unwrap_or(u32::MAX),
                hash_permits * HASH_QUEUE_PER_PERMIT,
                HASH_MAX_WAIT,
            ),
            bodies: Gate::new(
                u32::try_from(limits.body_budget / 1024).unwrap_or(u32::MAX),
                0,
                Duration::ZERO,
            ),
        }
    }
}

/// The key a user name is limited under.
pub fn account_key(username: &str) -> [u8; 16] {
    let hash = blake3::hash(username.trim().to_lowercase().as_bytes());
    let mut key = [0; 16];
    key.copy_from_slice(&hash.as_bytes()[..16]);
    key
}

/// Keys a limiter keeps at most; past it, the keys whose buckets are full again are forgotten, and
/// if that is not enough, the map starts over. 64k keys are a few MiB.
const MAX_KEYS: usize = 64 * 1024;

/// A token bucket per key: `burst` tokens, refilled at `per_second`. A cost larger than what is left
/// may still be taken once the bucket is full (the bucket goes into debt), so one large upload is
/// never refused forever.
pub struct RateLimiter<K> {
    burst: f64,
    per_second: f64,
    buckets: Mutex<HashMap<K, Bucket>>,
}

#[derive(Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl<K: Hash + Eq + Clone> RateLimiter<K> {
    /// `burst` at once, then `per_minute` each minute.
    pub fn per_minute(burst: u64, per_minute: u64) -> Self {
        Self {
            burst: burst as f64,
            per_second: per_minute as f64 / 60.0,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes `cost` tokens from `key`'s bucket, or says how long until it could.
    pub fn take(&self, key: &K, cost: u64) -> Result<(), Wait> {
        self.take_at(key, cost, Instant::now())
    }

    /// Gives back what `take` took, for attempts that turned out not to count (a correct password).
    pub fn give_back(&self, key: &K, cost: u64) {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(bucket) = buckets.get_mut(key) {
            bucket.tokens = (bucket.tokens + cost as f64).min(self.burst);
        }
    }

    fn take_at(&self, key: &K, cost: u64, now: Instant) -> Result<(), Wait> {
        let cost = cost as f64;
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= MAX_KEYS && !buckets.contains_key(key) {
            self.forget_full(&mut buckets, now);
        }
        let bucket = buckets.entry(key.clone()).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        bucket.tokens = self.refilled(*bucket, now);
        bucket.at = now;
        let full = bucket.tokens >= self.burst;
        if bucket.tokens >= cost || full {
            bucket.tokens -= cost;
            return Ok(());
        }
        let short = cost.min(self.burst) - bucket.tokens;
        Err(Wait(Duration::from_secs_f64(short / self.per_second)))
    }

    fn refilled(&self, bucket: Bucket, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        (bucket.tokens + elapsed * self.per_second).min(self.burst)
    }

    fn forget_full(&self, buckets: &mut HashMap<K, Bucket>, now: Instant) {
        buckets.retain(|_, b| self.refilled(*b, now) < self.burst);
        if buckets.len() >= MAX_KEYS {
            tracing::warn!(
                keys = buckets.len(),
                "rate limiter full of active keys; starting over"
            );
            buckets.clear();
        }
    }
}

/// How long to wait before a refused attempt could pass.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Wait(pub Duration);

impl Wait {
    /// Whole seconds for a `Retry-After` header, at least one.
    pub fn secs(self) -> u64 {
        self.0.as_secs_f64().ceil().max(1.0) as u64
    }
}

/// The key a client address is limited under: the address itself, or for IPv6 its /64, which is
/// what one household or one attacker gets.
pub fn address_key(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V4(_) => addr,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// A counted resource (password hashes, bytes of request bodies) with a bound on how many may
/// wait for it: past that, callers are turned away at once rather than queued without end.
#[derive(Clone)]
pub struct Gate {
    permits: Arc<Semaphore>,
    total: u32,
    waiting: Arc<AtomicUsize>,
    max_waiting: usize,
    max_wait: Duration,
}

/// Why a gate did not open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    /// More is asked than the gate will ever hold.
    TooLarge,
    /// Full, and waiting was not allowed or took too long.
    Busy,
}

impl Gate {
    /// A gate of `total` units; at most `max_waiting` callers wait, each at most `max_wait`.
    pub fn new(total: u32, max_waiting: usize, max_wait: Duration) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(total as usize)),
            total,
            waiting: Arc::new(AtomicUsize::new(0)),
            max_waiting,
            max_wait,
        }
    }

    pub fn total(&self) -> u32 {
        self.total
    }

    /// `units`, now if free, else after waiting in the bounded queue.
    pub async fn enter(&self, units: u32) -> Result<OwnedSemaphorePermit, Closed> {
        if units > self.total {
            return Err(Closed::TooLarge);
        }
        if let Ok(permit) = self.permits.clone().try_acquire_many_owned(units) {
            return Ok(permit);
        }
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.max_waiting {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(Closed::Busy);
        }
        let acquired = tokio::time::timeout(
            self.max_wait,
            self.permits.clone().acquire_many_owned(units),
        )
        .await;
        self.waiting.fetch_sub(1, Ordering::AcqRel);
        match acquired {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(Closed::Busy),
        }
    }

    /// `units` if free now; never waits.
    pub fn try_enter(&self, units: u32) -> Result<OwnedSemaphorePermit, Closed> {
        if units > self.total {
            return Err(Closed::TooLarge);
        }
        self.permits
            .clone()
            .try_acquire_many_owned(units)
            .map_err(|_| Closed::Busy)
    }
}

/// A share of a byte budget (a `Gate` counted in KiB), grown as the bytes it covers turn out
/// longer than first thought, and given back when dropped.
pub struct Reservation {
    gate: Gate,
    permit: Option<OwnedSemaphorePermit>,
    bytes: u64,
}

impl Reservation {
    /// Nothing of `gate` yet.
    pub fn new(gate: &Gate) -> Self {
        Self {
            gate: gate.clone(),
            permit: None,
            bytes: 0,
        }
    }

    /// Makes the reservation cover at least `bytes`; never waits.
    pub fn grow_to(&mut self, bytes: u64) -> Result<(), Closed> {
        let held = self.bytes.div_ceil(1024);
        let wanted = bytes.div_ceil(1024);
        if wanted <= held {
            return Ok(());
        }
        let more = u32::try_from(wanted - held).unwrap_or(u32::MAX);
        let permit = self.gate.try_enter(more)?;
        match &mut self.permit {
            Some(held) => held.merge(permit),
            None => self.permit = Some(permit),
        }
        self.bytes = bytes;
        Ok(())
    }

    /// `bytes` as `Bytes` that keep this reservation until the last copy is dropped.
    pub fn hold(self, bytes: Vec<u8>) -> bytes::Bytes {
        struct Held {
            bytes: Vec<u8>,
            _budget: Reservation,
        }
        impl AsRef<[u8]> for Held {
            fn as_ref(&self) -> &[u8] {
                &self.bytes
            }
        }
        bytes::Bytes::from_owner(Held {
            bytes,
            _budget: self,
        })
    }
}

/// Appends `chunk` to `out` unless that would make `out` longer than `limit`; `false` then.
pub fn append_within(out: &mut Vec<u8>, mut chunk: impl bytes::Buf, limit: usize) -> bool {
    if out.len().saturating_add(chunk.remaining()) > limit {
        return false;
    }
    while chunk.has_remaining() {
        let piece = chunk.chunk();
        out.extend_from_slice(piece);
        let n = piece.len();
        chunk.advance(n);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_refuses_past_its_burst_and_refills_with_time() {
        let limiter = RateLimiter::per_minute(3, 60);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(limiter.take_at(&"a", 1, t0).is_ok());
        }
        let wait = limiter.take_at(&"a", 1, t0).unwrap_err();
        assert_eq!(wait.secs(), 1);
        assert!(limiter.take_at(&"b", 1, t0).is_ok(), "keys are separate");
        assert!(
            limiter
                .take_at(&"a", 1, t0 + Duration::from_millis(1100))
                .is_ok()
        );
    }

    #[test]
    fn a_full_bucket_lends_one_large_cost_then_makes_the_key_wait() {
        let limiter = RateLimiter::per_minute(10, 60);
        let t0 = Instant::now();
        assert!(limiter.take_at(&1, 25, t0).is_ok());
        let wait = limiter.take_at(&1, 1, t0).unwrap_err();
        assert_eq!(wait.secs(), 16, "15 of debt plus the one asked for");
    }

    #[test]
    fn given_back_tokens_count_again() {
        let limiter = RateLimiter::per_minute(1, 1);
        let t0 = Instant::now();
        limiter.take_at(&"x", 1, t0).unwrap();
        limiter.give_back(&"x", 1);
        assert!(limiter.take_at(&"x", 1, t0).is_ok());
    }

    #[test]
    fn the_key_map_stays_bounded() {
        let limiter = RateLimiter::per_minute(5, 60);
        let t0 = Instant::now();
        for i in 0..(MAX_KEYS as u64 + 10) {
            let _ = limiter.take_at(&i, 1, t0);
        }
        assert!(limiter.buckets.lock().unwrap().len() <= MAX_KEYS);
    }

    #[test]
    fn ipv6_addresses_are_limited_by_their_64_prefix() {
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(address_key(a), address_key(b));
        assert_ne!(address_key(a), address_key(c));
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(address_key(mapped), "10.0.0.1".parse::<IpAddr>().unwrap());
    }

    #[tokio::test]
    async fn a_gate_turns_away_callers_past_its_queue() {
        let gate = Gate::new(1, 1, Duration::from_millis(50));
        let held = gate.enter(1).await.unwrap();
        assert_eq!(gate.try_enter(1).unwrap_err(), Closed::Busy);
        assert_eq!(gate.enter(2).await.unwrap_err(), Closed::TooLarge);
        // One waiter may queue; it times out while the permit is held.
        assert_eq!(gate.enter(1).await.unwrap_err(), Closed::Busy);
        drop(held);
        assert!(gate.enter(1).await.is_ok());
    }

    #[test]
    fn a_reservation_grows_in_kib_and_is_given_back_with_its_bytes() {
        let gate = Gate::new(10, 0, Duration::ZERO);
        let mut reservation = Reservation::new(&gate);
        reservation.grow_to(1).unwrap();
        reservation.grow_to(1024).unwrap();
        assert_eq!(gate.permits.available_permits(), 9);
        reservation.grow_to(4000).unwrap();
        assert_eq!(gate.permits.available_permits(), 6);
        assert_eq!(reservation.grow_to(20 * 1024), Err(Closed::TooLarge));
        let other = gate.try_enter(5).unwrap();
        assert_eq!(reservation.grow_to(6 * 1024), Err(Closed::Busy));
        drop(other);
        let bytes = reservation.hold(vec![1, 2, 3]);
        let copy = bytes.clone();
        drop(bytes);
        assert_eq!(gate.permits.available_permits(), 6);
        drop(copy);
        assert_eq!(gate.permits.available_permits(), 10);
    }
}
