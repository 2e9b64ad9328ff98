//! What every handle of a cache shares: its shards, clock and settings; how
//! an entry is stored; when one is due for a refresh, and the flag that lets
//! a failed refresh be tried again.

use std::cell::Cell;

use super::clock::{nanos, Clock, SystemClock};
use super::store::{AnyError, Cached, Slot, Store};
use crate::metrics::{CacheEvent, Metrics};
use crate::sync::{self, Condvar, Mutex, Shared};

/// What a load flight hands its callers: the value, or the loader's error.
pub(super) type Loaded<V> = Result<V, AnyError>;

pub(super) struct Inner<K, V> {
    pub(super) shards: Box<[CacheShard<K, V>]>,
    /// Picks the shard from the same middle hash bits as the group does.
    pub(super) mask: usize,
    pub(super) clock: ClockSource,
    pub(super) ttl: u64,
    pub(super) error_ttl: Option<u64>,
    pub(super) refresh_after: Option<u64>,
    pub(super) jitter: f64,
    pub(super) beta: Option<f64>,
    /// Detached refreshes not yet finished; the cache's drop waits for them.
    /// Detached refresh loaders running now; the cache's drop waits for them.
    pub(super) loaders: Mutex<Loaders>,
    pub(super) loaders_done: Condvar,
    pub(super) metrics: Option<Shared<dyn Metrics>>,
    pub(super) name: Option<&'static str>,
}

#[repr(align(128))]
pub(super) struct CacheShard<K, V> {
    pub(super) store: Mutex<Store<K, V>>,
}

/// The system clock is called directly, any other through the trait.
pub(super) enum ClockSource {
    System(SystemClock),
    Custom(Box<dyn Clock>),
}

impl ClockSource {
    #[inline]
    pub(super) fn now(&self) -> u64 {
        nanos(match self {
            ClockSource::System(c) => c.now(),
            ClockSource::Custom(c) => c.now(),
        })
    }
}

impl<K, V> Inner<K, V> {
    /// Counts a loader run; returns the shard's generation at its start.
    pub(super) fn load_started(&self, shard: &Mutex<Store<K, V>>) -> u64 {
        let mut store = shard.lock();
        store.counts.loads += 1;
        store.generation
    }

    pub(super) fn shard_of(&self, hash: u64) -> &Mutex<Store<K, V>> {
        let index = (hash >> 32) as usize & self.mask;
        &self.shards[index].store
    }

    /// Stores an entry; a loaded one (`generation` is `Some`) only if the
    /// shard was not invalidated since its load began. What it replaces or
    /// evicts is dropped after the lock is released.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn store(
        &self,
        shard: &Mutex<Store<K, V>>,
        key: K,
        hash: u64,
        value: Cached<V>,
        ttl: u64,
        delta: u64,
        generation: Option<u64>,
    ) where
        K: Eq,
    {
        let now = self.clock.now();
        let (ttl, refresh) = match value {
            Cached::Value(_) => (self.jittered(ttl), self.refresh_after),
            Cached::Error(_) => (ttl, None),
        };
        let mut slot = Slot::new(key, hash, value, now.saturating_add(ttl));
        slot.refresh = refresh.map_or(u64::MAX, |r| now.saturating_add(r));
        slot.delta = delta;
        let mut store = shard.lock();
        if generation.is_some_and(|g| g != store.generation) {
            drop(store);
            drop(slot);
            return;
        }
        let (inserted, dropped) = store.insert(slot, now);
        drop(store);
        if let Some(m) = &self.metrics {
            for _ in 0..inserted.evicted {
                m.cache_event(self.name, CacheEvent::Eviction);
            }
            for _ in 0..inserted.expired {
                m.cache_event(self.name, CacheEvent::Expiration);
            }
        }
        drop(dropped);
    }

    /// `ttl` shortened by up to `jitter` of itself, at random.
    pub(super) fn jittered(&self, ttl: u64) -> u64 {
        if self.jitter == 0.0 {
            return ttl;
        }
        (ttl as f64 * (1.0 - self.jitter * random_unit())) as u64
    }
}

impl<K, V> Inner<K, V> {
    /// Whether a caller at `now` should refresh `slot`: past
    /// `refresh_after`, or chosen early by XFetch, which refreshes when
    /// `now - delta * beta * ln(rand) >= expiry` (`delta`: the last load's
    /// duration), more likely the closer expiry is and the slower the load.
    #[inline]
    pub(super) fn refresh_due(&self, slot: &Slot<K, V>, now: u64) -> bool {
        if now >= slot.refresh {
            return true;
        }
        match self.beta {
            Some(beta) if slot.delta > 0 => {
                let gap = -(slot.delta as f64) * beta * random_unit().ln();
                now as f64 + gap >= slot.expires as f64
            }
            _ => false,
        }
    }
}

/// A uniform random number in (0, 1], from a per-thread xorshift: cheap, and
/// good enough to spread expiries and pick early refreshers.
pub(super) fn random_unit() -> f64 {
    std::thread_local! {
        static STATE: Cell<u64> = Cell::new(
            (sync::thread_token() as u64 ^ nanos(SystemClock.now())).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1
        );
    }
    STATE.with(|s| {
        let mut x = s.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.set(x);
        ((x >> 11) + 1) as f64 / (1u64 << 53) as f64
    })
}

/// Clears a slot's `refreshing` flag when a refresh ends without replacing
/// the slot (it failed, panicked, was invalidated, or joined another load),
/// so a later caller can try again.
pub(super) struct RefreshFlag<K, V> {
    pub(super) inner: Shared<Inner<K, V>>,
    pub(super) hash: u64,
    pub(super) stamp: u64,
}

impl<K, V> RefreshFlag<K, V> {
    pub(super) fn new(inner: &Shared<Inner<K, V>>, hash: u64, stamp: u64) -> Self {
        RefreshFlag {
            inner: inner.clone(),
            hash,
            stamp,
        }
    }
}

impl<K, V> Drop for RefreshFlag<K, V> {
    fn drop(&mut self) {
        // The stamp names one slot's contents, so no key comparison is
        // needed (nor `Eq`, which `Drop` could not ask for).
        let mut store = self.inner.shard_of(self.hash).lock();
        store.clear_refreshing(self.hash, self.stamp);
    }
}

#[derive(Default)]
pub(super) struct Loaders {
    pub(super) running: usize,
    /// Set by the cache's drop: refreshes that have not started skip.
    pub(super) closed: bool,
}
