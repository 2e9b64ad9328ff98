//! What every handle of a cache shares: its shards, clock and settings; how
//! an entry is stored; when one is due for a refresh, and the flag that lets
//! a failed refresh be tried again.

use std::cell::Cell;
use std::time::Duration;

use super::adapt::Adapter;
use super::clock::{nanos, Clock, SystemClock};
use super::hooks::{tell, Expiry, Listener, RemovalCause, Weigher};
use super::store::{AnyError, Cached, Extra, Gone, Slot, Store, SHARD_LIMIT, SWEEP};
use crate::cancel::CancelToken;
use crate::group::{FlightRef, Shard};
use crate::metrics::{CacheEvent, Metrics};
use crate::sync::{self, AtomicU64, AtomicUsize, Condvar, Mutex, MutexGuard, Ordering, Shared};

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
    /// The weight held by all entries, and its bound (`u64::MAX` without a
    /// weigher, when every entry weighs 0).
    pub(super) weight: AtomicU64,
    pub(super) max_weight: u64,
    /// Idle expiry, in clock nanoseconds.
    pub(super) time_to_idle: Option<u64>,
    /// Whether a hit may take the shortest path: no idle expiry to extend,
    /// no early refresh to weigh.
    pub(super) plain_hits: bool,
    pub(super) hooks: Hooks<K, V>,
    /// The fail-safe: how long past expiry a value is kept to answer for a
    /// failed reload (0: no fail-safe), and for how long such an answer is
    /// then served before the backend is tried again.
    pub(super) max_stale: u64,
    pub(super) throttle: u64,
    /// How long `get_or_load_entry_detached` callers wait for a load, with
    /// a stale value to fall back on (`soft`) or at all (`hard`).
    pub(super) soft_timeout: Option<Duration>,
    pub(super) hard_timeout: Option<Duration>,
    /// How long the last handle's drop waits for the detached loaders it
    /// cancelled.
    pub(super) drop_timeout: Duration,
    /// At most this many keys to one call of a batch's loader.
    pub(super) max_batch: usize,
    /// Steers the window/main split of every shard's policy.
    pub(super) adapter: Adapter,
    /// A request is fed to the adapter when its hash's bits under this mask
    /// (its top bits, or none: every request) are zero.
    pub(super) sample_mask: u64,
    /// The adapter's current window fraction, as `f64` bits.
    pub(super) window: AtomicU64,
    /// `TtlCache` handles on this cache (clones included; a detached
    /// refresh's own reference is not one): the last one's drop closes it.
    pub(super) handles: AtomicUsize,
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
    /// A load as [`Load`](Self::Load), whose loader run is counted here,
    /// under the store's lock: its leader skipped the recheck, whose lock
    /// counts it otherwise (see [`CacheShard::writes`]).
    Led(&'a [Shard<K, Loaded<V>>], FlightRef),
}

/// The user's hooks, each optional.
pub(super) struct Hooks<K, V> {
    pub(super) listener: Option<Listener<K, V>>,
    pub(super) weigher: Option<Weigher<K, V>>,
    pub(super) expiry: Option<Box<dyn Expiry<K, V>>>,
}

/// `repr(C)`, `writes` first: it shares the lock word's cache line, which
/// every call touches anyway.
#[repr(C, align(128))]
pub(super) struct CacheShard<K, V> {
    /// How many stores began in this shard: bumped by [`Inner::store`]
    /// under the lock, first thing, read without it. A leader that read it
    /// before a lookup that missed, and reads the same count once its flight
    /// is in the group's map, knows its recheck would miss too: any entry
    /// stored since, by an insert or by a load whose flight ended before
    /// this one began, bumped it before that. So it skips the recheck, and
    /// the shard's lock, on the common miss.
    writes: AtomicU64,
    pub(super) store: Mutex<Store<K, V>>,
}

impl<K, V> CacheShard<K, V> {
    pub(super) fn new(store: Store<K, V>) -> Self {
        CacheShard {
            writes: AtomicU64::new(0),
            store: Mutex::new(store),
        }
    }
}

/// The system clock is called directly, any other through the trait.
pub(super) enum ClockSource {
    System(SystemClock),
    Custom(Box<dyn Clock>),
}

impl ClockSource {
    #[inline]
    pub(super) fn now(&self) -> u64 {
        match self {
            // Straight to nanoseconds: no `Duration` to build and convert
            // back through `u128` on every hit.
            ClockSource::System(c) => c.now_nanos(),
            ClockSource::Custom(c) => nanos(c.now()),
        }
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

    /// The count of stores begun in `hash`'s shard (see
    /// [`CacheShard::writes`]); read before a lookup, then by its leader.
    #[inline]
    pub(super) fn writes(&self, hash: u64) -> u64 {
        self.shards[self.index_of(hash)]
            .writes
            .load(Ordering::Acquire)
    }

    /// Entries held now, in every shard (expired ones not yet reclaimed
    /// included). Never above `max`.
    pub(super) fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    /// Counts `n` entries gone from the cache.
    fn removed(&self, n: usize) {
        if n > 0 {
            self.len.fetch_sub(n, Ordering::Relaxed);
        }
    }

    /// The window fraction every shard's policy should use now, asked for
    /// by an eviction (which the adapter is told of: it sleeps while the
    /// cache evicts nothing).
    fn window(&self) -> f64 {
        self.adapter.evicting();
        f64::from_bits(self.window.load(Ordering::Relaxed))
    }

    /// Feeds the request hashed `hash` to the adapter, if it samples it
    /// and it is not one of the hits the adapter skips without its lock
    /// (most of a hitting cache's: see `adapt.rs`).
    #[inline(always)]
    pub(super) fn sample(&self, hash: u64) {
        // Inline only the mask test, which passes one request in 16 or
        // fewer: a hit's path stays short (at 100,000 entries and more, a
        // hit waits on memory, and every instruction in it costs: see the
        // README's `expiry_check` rows).
        if hash & self.sample_mask == 0 {
            self.adapt(hash);
        }
    }

    #[cold]
    #[inline(never)]
    fn adapt(&self, hash: u64) {
        if self.adapter.skips(hash) {
            return;
        }
        if let Some(window) = self.adapter.record(hash, self.len()) {
            self.window.store(window.to_bits(), Ordering::Relaxed);
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

    /// Takes `w` of the weight bound, if that much is free.
    fn reserve_weight(&self, w: u64) -> bool {
        self.weight
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n + w <= self.max_weight).then_some(n + w)
            })
            .is_ok()
    }

    /// Gives back to the cache-wide counts what `store` took out since it
    /// was last settled.
    pub(super) fn settle(&self, store: &mut Store<K, V>) {
        let (n, w) = std::mem::take(&mut store.freed);
        self.removed(n);
        if w > 0 {
            self.weight.fetch_sub(w, Ordering::Relaxed);
        }
    }

    /// Stores an entry for `key`: a loaded one only if its flight was not
    /// released (invalidated, cleared, or overtaken by an insert) since the
    /// load began; an inserted one always. A new key first takes room: free
    /// room under the bound, or else the victim of its own shard's policy,
    /// or (its shard being empty) of another shard's; with a weigher, as
    /// many victims as its weight needs. An entry heavier than `max_weight`
    /// is not stored (and the key's older entry is dropped). What it
    /// replaces or evicts goes to the listener, or is dropped, after the
    /// lock is released; the weigher and the expiry policy are called
    /// before it is taken.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn store(
        &self,
        key: K,
        hash: u64,
        value: Cached<V>,
        ttl: u64,
        delta: u64,
        writer: Writer<'_, K, V>,
        stale_until: Option<u64>,
    ) where
        K: Eq,
    {
        let now = self.clock.now();
        // A fail-safe answer stored again lives exactly its throttle.
        let (mut ttl, refresh) = match value {
            Cached::Value(_) if stale_until.is_none() => (self.jittered(ttl), self.refresh_after),
            _ => (ttl, None),
        };
        let index = self.index_of(hash);
        let mut weight = 0;
        if let Cached::Value(v) = &value {
            if let (Some(expiry), None) = (&self.hooks.expiry, stale_until) {
                ttl = self.expiry_ttl(&**expiry, index, hash, &key, v, ttl, now);
            }
            if let Some(weigher) = &self.hooks.weigher {
                weight = weigher(&key, v);
            }
        }
        let is_value = matches!(value, Cached::Value(_));
        let mut slot = Slot::new(key, hash, value, now.saturating_add(ttl));
        let mut extra = Extra {
            weight,
            refresh: refresh.map_or(u64::MAX, |r| now.saturating_add(r)),
            deadline: slot.expires,
            stale_until: match (is_value, stale_until) {
                (_, Some(until)) => until,
                (true, None) => slot.expires.saturating_add(self.max_stale),
                (false, None) => slot.expires,
            },
            ..Extra::default()
        };
        extra.set_delta(delta);
        slot.set_stale(stale_until.is_some());
        if let Some(idle) = self.time_to_idle {
            slot.expires = slot.expires.min(now.saturating_add(idle));
        }
        let mut gone = Gone::new();
        let shard = &self.shards[index];
        let mut store = shard.store.lock();
        // Before the entry can be seen, and before an insert releases a
        // load: see `CacheShard::writes`. Writers hold the lock.
        let writes = shard.writes.load(Ordering::Relaxed);
        shard
            .writes
            .store(writes.wrapping_add(1), Ordering::Release);
        if let Writer::Led(..) = writer {
            store.counts.loads += 1;
        }
        // Under this shard's lock, which `invalidate` and `clear` hold
        // while they release a key's flight: either the release comes
        // first and the value stays out, or the store does and they remove
        // it.
        match writer {
            Writer::Load(flights, flight) | Writer::Led(flights, flight)
                if flight.released(flights) =>
            {
                drop(store);
                drop(slot);
                return;
            }
            Writer::Load(..) | Writer::Led(..) => {}
            Writer::Insert(release) => release(&slot.key),
        }
        let found = store.find(hash, &slot.key);
        if u64::from(weight) > self.max_weight {
            store.counts.oversized += 1;
            if let Some(pos) = found {
                gone.push(store.remove(pos), RemovalCause::Replaced);
            }
            self.settle(&mut store);
            drop(store);
            drop(slot);
            self.dispose(gone);
            return;
        }
        let mut found = found;
        if let (Some(pos), true) = (found, store.with_extras()) {
            // The weight of a replacement: a lighter one gives back the
            // difference; a heavier one takes it, or else leaves by the
            // new-entry path below, which evicts for it.
            let old = u64::from(store.extra(pos).weight);
            let new = u64::from(weight);
            if new <= old || self.reserve_weight(new - old) {
                gone.push(store.replace(pos, slot, extra), RemovalCause::Replaced);
                // `replace` freed the old weight. Lighter: the new one stays
                // held out of it; heavier: the difference was taken above.
                store.freed.1 -= new.min(old);
                self.settle(&mut store);
                return self.stored(store, gone);
            }
            gone.push(store.remove(pos), RemovalCause::Replaced);
            found = None;
        }
        if let Some(pos) = found {
            gone.push(store.replace(pos, slot, extra), RemovalCause::Replaced);
        } else {
            store.sweep_expired(now, self.max_stale, SWEEP, &mut gone);
            self.settle(&mut store);
            // A shard's positions are `u32`s: one that holds as many as
            // they can name makes room in itself, bound or no bound.
            if store.len() >= SHARD_LIMIT || !self.reserve() {
                if weight == 0 {
                    // The common case: the new entry takes the victim's
                    // place, and no other slot moves.
                    match store.evict_into(self.window(), slot, extra) {
                        Ok(victim) => {
                            gone.push(victim, RemovalCause::Size);
                            self.settle(&mut store);
                            return self.stored(store, gone);
                        }
                        Err(back) => (slot, extra) = back,
                    }
                }
                match store.evict(self.window()) {
                    Some(victim) => {
                        gone.push(victim, RemovalCause::Size);
                        // Its room passes to the new entry.
                        store.freed.0 -= 1;
                    }
                    None => {
                        self.evict_elsewhere(index, &mut gone, &|| self.reserve(), true);
                    }
                }
                self.settle(&mut store);
            }
            let w = u64::from(weight);
            while w > 0 && !self.reserve_weight(w) {
                match store.evict(self.window()) {
                    Some(victim) => gone.push(victim, RemovalCause::Size),
                    None => {
                        let room = || self.reserve_weight(w);
                        if self.evict_elsewhere(index, &mut gone, &room, false) {
                            // The weight was freed meanwhile and is taken.
                            break;
                        }
                    }
                }
                self.settle(&mut store);
            }
            store.insert_new(slot, extra);
        }
        self.stored(store, gone)
    }

    /// Counts what a store took out, releases the shard, then tells the
    /// listener (or drops it all).
    fn stored(&self, mut store: MutexGuard<'_, Store<K, V>>, gone: Gone<K, V>) {
        let evicted = gone.count(RemovalCause::Size);
        let expired = gone.count(RemovalCause::Expired);
        store.counts.evictions += evicted;
        store.counts.expirations += expired;
        drop(store);
        if let Some(m) = &self.metrics {
            for _ in 0..evicted {
                m.cache_event(self.name, CacheEvent::Eviction);
            }
            for _ in 0..expired {
                m.cache_event(self.name, CacheEvent::Expiration);
            }
        }
        self.dispose(gone);
    }

    /// What an expiry policy says `key`'s new entry lives (in clock
    /// nanoseconds), told whether the key has an entry now. The shard is
    /// looked at, then released before the policy is called.
    #[allow(clippy::too_many_arguments)]
    #[cold]
    fn expiry_ttl(
        &self,
        expiry: &dyn Expiry<K, V>,
        index: usize,
        hash: u64,
        key: &K,
        value: &V,
        ttl: u64,
        now: u64,
    ) -> u64
    where
        K: Eq,
    {
        let remaining = {
            let mut store = self.shards[index].store.lock();
            store
                .find(hash, key)
                .map(|pos| store.slot(pos).expires.saturating_sub(now))
        };
        let ttl = Duration::from_nanos(ttl);
        nanos(match remaining {
            Some(left) => expiry.expire_after_update(key, value, ttl, Duration::from_nanos(left)),
            None => expiry.expire_after_create(key, value, ttl),
        })
    }

    /// Hands what left the cache to the eviction listener, one entry at a
    /// time (no lock is held); without one, drops it. Cached errors are not
    /// told.
    pub(super) fn dispose(&self, gone: Gone<K, V>) {
        match &self.hooks.listener {
            None => drop(gone),
            Some(listener) => {
                for (slot, cause) in gone.into_iter() {
                    if let (key, Cached::Value(v)) = slot.into_parts() {
                        tell(listener, key, v, cause);
                    }
                }
            }
        }
    }

    /// Makes room for a new entry in shard `own`, which is empty while the
    /// cache is full: another shard gives up its policy's victim. Other
    /// shards are only tried, never waited for while `own` is held (the
    /// only place a thread holds two shards), so no two threads can wait on
    /// each other; room freed meanwhile (`room` says) is taken instead.
    /// With `pass_room`, the victim's place in the entry count passes to the
    /// new entry. Returns whether `room` took the room (no victim needed).
    #[cold]
    fn evict_elsewhere(
        &self,
        own: usize,
        gone: &mut Gone<K, V>,
        room: &dyn Fn() -> bool,
        pass_room: bool,
    ) -> bool {
        loop {
            if room() {
                return true;
            }
            for step in 1..self.shards.len() {
                let other = (own + step) & self.mask;
                let Some(mut store) = self.shards[other].store.try_lock() else {
                    continue;
                };
                if let Some(victim) = store.evict(self.window()) {
                    // Counted by the caller, with its own.
                    gone.push(victim, RemovalCause::Size);
                    if pass_room {
                        store.freed.0 -= 1;
                    }
                    self.settle(&mut store);
                    return false;
                }
            }
            sync::yield_now();
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
    pub(super) fn refresh_due(&self, extra: &Extra, expires: u64, now: u64) -> bool {
        if now >= extra.refresh {
            return true;
        }
        match self.beta {
            Some(beta) if extra.delta() > 0 => {
                let gap = -(extra.delta() as f64) * beta * random_unit().ln();
                now as f64 + gap >= expires as f64
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
    /// The running detached loaders' tokens, by an id of their own.
    pub(super) tokens: Vec<(u64, CancelToken)>,
    pub(super) next: u64,
    /// Set by the cache's drop: loads that have not started skip.
    pub(super) closed: bool,
}
