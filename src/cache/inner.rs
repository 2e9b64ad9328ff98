//! What every handle of a cache shares: its shards, clock and settings; how
//! an entry is stored; when one is due for a refresh, and the flag that lets
//! a failed refresh be tried again.

use std::cell::Cell;

use super::adapt::Adapter;
use super::clock::{nanos, Clock, SystemClock};
use super::store::{AnyError, Cached, Gone, Slot, Store, SHARD_LIMIT, SWEEP};
use crate::group::{FlightRef, Shard};
use crate::metrics::{CacheEvent, Metrics};
use crate::sync::{self, AtomicU64, AtomicUsize, Condvar, Mutex, Ordering, Shared};

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
    /// Detached refresh loaders running now; the cache's drop waits for them.
    pub(super) loaders: Mutex<Loaders>,
    pub(super) loaders_done: Condvar,
    pub(super) metrics: Option<Shared<dyn Metrics>>,
    pub(super) name: Option<&'static str>,
    /// Entries held in all shards; `store` takes room before it adds one,
    /// so this never exceeds `max`.
    pub(super) len: AtomicUsize,
    pub(super) max: usize,
    /// At most this many keys to one call of a batch's loader.
    pub(super) max_batch: usize,
    /// Steers the window/main split of every shard's policy.
    pub(super) adapter: Mutex<Adapter>,
    /// A request is fed to the adapter when its hash's top bits are zero
    /// (`64`: every request).
    pub(super) sample_shift: u32,
    /// The adapter's current window fraction, as `f64` bits.
    pub(super) window: AtomicU64,
}

/// Who stores an entry, which decides whether it may.
pub(super) enum Writer<'a, K, V> {
    /// A load, in the flight named: it stores unless that flight was
    /// released since it began.
    Load(&'a [Shard<K, Loaded<V>>], FlightRef),
    /// An insert: it always stores, and releases (with this function) a
    /// load running for the key, so the older value it loads cannot
    /// overwrite this one.
    Insert(&'a dyn Fn(&K)),
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
    /// Counts a loader run.
    pub(super) fn load_started(&self, hash: u64) {
        self.shard_of(hash).lock().counts.loads += 1;
    }

    #[inline]
    pub(super) fn index_of(&self, hash: u64) -> usize {
        (hash >> 32) as usize & self.mask
    }

    #[inline]
    pub(super) fn shard_of(&self, hash: u64) -> &Mutex<Store<K, V>> {
        &self.shards[self.index_of(hash)].store
    }

    /// Entries held now, in every shard (expired ones not yet reclaimed
    /// included). Never above `max`.
    pub(super) fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    /// Counts `n` entries gone from the cache.
    pub(super) fn removed(&self, n: usize) {
        if n > 0 {
            self.len.fetch_sub(n, Ordering::Relaxed);
        }
    }

    /// The window fraction every shard's policy should use now.
    fn window(&self) -> f64 {
        f64::from_bits(self.window.load(Ordering::Relaxed))
    }

    /// Feeds the request hashed `hash` to the adapter, if it samples it.
    #[inline]
    pub(super) fn sample(&self, hash: u64) {
        if self.sample_shift == 64 || hash >> self.sample_shift == 0 {
            self.adapt(hash);
        }
    }

    #[cold]
    fn adapt(&self, hash: u64) {
        // A sample lost to contention changes nothing that matters.
        if let Some(mut adapter) = self.adapter.try_lock() {
            if let Some(window) = adapter.record(hash) {
                self.window.store(window.to_bits(), Ordering::Relaxed);
            }
        }
    }

    /// Takes room for one more entry, if the cache is below its bound.
    fn reserve(&self) -> bool {
        self.len
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < self.max).then_some(n + 1)
            })
            .is_ok()
    }

    /// Stores an entry for `key`: a loaded one only if its flight was not
    /// released (invalidated, cleared, or overtaken by an insert) since the
    /// load began; an inserted one always. A new key first takes room: free
    /// room under the bound, or else the victim of its own shard's policy,
    /// or (its shard being empty) of another shard's. What it replaces or
    /// evicts is dropped after the lock is released.
    pub(super) fn store(
        &self,
        key: K,
        hash: u64,
        value: Cached<V>,
        ttl: u64,
        delta: u64,
        writer: Writer<'_, K, V>,
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
        slot.set_delta(delta);
        let index = self.index_of(hash);
        let mut gone = Gone::new();
        let mut store = self.shards[index].store.lock();
        // Under this shard's lock, which `invalidate` and `clear` hold
        // while they release a key's flight: either the release comes
        // first and the value stays out, or the store does and they remove
        // it.
        match writer {
            Writer::Load(flights, flight) if flight.released(flights) => {
                drop(store);
                drop(slot);
                return;
            }
            Writer::Load(..) => {}
            Writer::Insert(release) => release(&slot.key),
        }
        let (mut evicted, mut expired) = (0, 0);
        if let Some(pos) = store.find(hash, &slot.key) {
            gone.push(store.replace(pos, slot));
        } else {
            store.sweep_expired(now, SWEEP, &mut gone);
            self.removed(gone.len());
            // A shard's positions are `u32`s: one that holds as many as
            // they can name makes room in itself, bound or no bound.
            if store.len() >= SHARD_LIMIT || !self.reserve() {
                match store.evict(self.window()) {
                    Some(victim) => gone.push(victim),
                    None => self.evict_elsewhere(index, &mut gone),
                }
            }
            evicted = gone.iter().filter(|s| s.expires > now).count();
            expired = gone.len() - evicted;
            store.insert_new(slot);
        }
        store.counts.evictions += evicted as u64;
        store.counts.expirations += expired as u64;
        drop(store);
        if let Some(m) = &self.metrics {
            for _ in 0..evicted {
                m.cache_event(self.name, CacheEvent::Eviction);
            }
            for _ in 0..expired {
                m.cache_event(self.name, CacheEvent::Expiration);
            }
        }
        drop(gone);
    }

    /// Makes room for a new entry in shard `own`, which is empty while the
    /// cache is full: another shard gives up its policy's victim. Other
    /// shards are only tried, never waited for while `own` is held (the
    /// only place a thread holds two shards), so no two threads can wait on
    /// each other; room freed meanwhile is taken instead.
    #[cold]
    fn evict_elsewhere(&self, own: usize, gone: &mut Gone<K, V>) {
        loop {
            if self.reserve() {
                return;
            }
            for step in 1..self.shards.len() {
                let other = (own + step) & self.mask;
                let Some(mut store) = self.shards[other].store.try_lock() else {
                    continue;
                };
                if let Some(victim) = store.evict(self.window()) {
                    // Counted by the caller, with its own.
                    gone.push(victim);
                    return;
                }
            }
            std::thread::yield_now();
        }
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
            Some(beta) if slot.delta() > 0 => {
                let gap = -(slot.delta() as f64) * beta * random_unit().ln();
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
    pub(super) stamp: u32,
}

impl<K, V> RefreshFlag<K, V> {
    pub(super) fn new(inner: &Shared<Inner<K, V>>, hash: u64, stamp: u32) -> Self {
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
