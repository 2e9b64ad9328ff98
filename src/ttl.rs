//! `TtlCache`: results kept for a time, loaded through a `Group`.

use std::borrow::Borrow;
use std::cell::Cell;
use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::time::Duration;

use crate::clock::{nanos, Clock, SystemClock};
use crate::detached::Job;
use crate::error::{ConfigError, LeaderPanicked};
use crate::group::{Group, GroupBuilder};
use crate::metrics::{CacheEvent, Metrics, Stats};
use crate::store::{AnyError, Cached, Slot, Store};
use crate::sync::{self, Condvar, Mutex, MutexGuard, Shared};

/// What a load flight hands its callers: the value, or the loader's error.
type Loaded<V> = Result<V, AnyError>;

/// A cache whose misses load through a [`Group`]: concurrent misses for a key
/// run the loader once, and its value is cached for a time.
///
/// - A fresh hit returns a clone; a miss loads, and the value is stored
///   **before** the load's flight is released, so a caller never finds a key
///   neither cached nor loading; the loading caller checks the cache once
///   more before it runs the loader.
/// - Each entry lives for the default TTL, or a per-call one, optionally
///   shortened by a random jitter so that entries loaded together do not all
///   expire together.
/// - Errors from [`try_get_or_load`](Self::try_get_or_load) reach every
///   caller of that load and are cached only if an error TTL is set.
/// - Bounded by `max_entries`; a full cache admits a new key only if it is
///   asked for more often than the entry it would evict (a frequency sketch,
///   as in TinyLFU), so a skewed workload keeps its hot keys. Expired entries
///   go lazily when looked up, and a few at every write. No background thread.
/// - With `refresh_after`, an entry older than that is refreshed once while
///   every other caller keeps getting the current value at once
///   (stale-while-revalidate), and optionally a little before, at random
///   (`early_refresh`, the XFetch rule).
///
/// # Examples
///
/// ```
/// use singleflight_sync::TtlCache;
/// use std::time::Duration;
///
/// let cache: TtlCache<String, String> = TtlCache::new(Duration::from_secs(30));
/// let name = cache.get_or_load("user:42", || "Ada".to_string());
/// assert_eq!(name, "Ada");
/// // Cached: the loader does not run again.
/// assert_eq!(cache.get_or_load("user:42", || unreachable!()), "Ada");
/// ```
pub struct TtlCache<K, V, S = RandomState> {
    inner: Shared<Inner<K, V>>,
    group: Group<K, Loaded<V>, S>,
}

struct Inner<K, V> {
    shards: Box<[CacheShard<K, V>]>,
    /// Picks the shard from the same middle hash bits as the group does.
    mask: usize,
    clock: ClockSource,
    ttl: u64,
    error_ttl: Option<u64>,
    refresh_after: Option<u64>,
    jitter: f64,
    beta: Option<f64>,
    /// Detached refreshes not yet finished; the cache's drop waits for them.
    /// Detached refresh loaders running now; the cache's drop waits for them.
    loaders: Mutex<Loaders>,
    loaders_done: Condvar,
    metrics: Option<Shared<dyn Metrics>>,
    name: Option<&'static str>,
}

#[repr(align(128))]
struct CacheShard<K, V> {
    store: Mutex<Store<K, V>>,
}

/// The system clock is called directly, any other through the trait.
enum ClockSource {
    System(SystemClock),
    Custom(Box<dyn Clock>),
}

impl ClockSource {
    #[inline]
    fn now(&self) -> u64 {
        nanos(match self {
            ClockSource::System(c) => c.now(),
            ClockSource::Custom(c) => c.now(),
        })
    }
}

/// Who looks: `get` (counted), a caller that may load or refresh (counted),
/// one that may also be answered by a cached error (`try_get_or_load`), or
/// a load's leader checking once more (not counted again).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Read,
    Load,
    TryLoad,
    Recheck,
}

/// What a lookup found.
enum Lookup<V> {
    /// A value, or (for `Mode::TryLoad` and `Mode::Recheck`) a cached error.
    Fresh(Cached<V>),
    /// A value due for a refresh, which this caller was chosen to start.
    Stale(V, u64),
    Miss,
}

impl<K, V> TtlCache<K, V> {
    /// A cache with a default TTL of `ttl` and the defaults of
    /// [`builder`](Self::builder) otherwise.
    ///
    /// # Panics
    ///
    /// If `ttl` is zero.
    ///
    /// # Examples
    ///
    /// ```
    /// use singleflight_sync::TtlCache;
    /// use std::time::Duration;
    ///
    /// let cache: TtlCache<String, u32> = TtlCache::new(Duration::from_secs(60));
    /// assert_eq!(cache.get_or_load("k", || 1), 1);
    /// assert!(std::panic::catch_unwind(|| TtlCache::<String, u32>::new(Duration::ZERO)).is_err());
    /// ```
    pub fn new(ttl: Duration) -> Self {
        Self::builder()
            .ttl(ttl)
            .build()
            .unwrap_or_else(|e| panic!("TtlCache::new: {e}"))
    }

    /// Starts a [`TtlCacheBuilder`].
    ///
    /// # Examples
    ///
    /// ```
    /// use singleflight_sync::TtlCache;
    /// use std::time::Duration;
    ///
    /// let cache: TtlCache<String, u32> = TtlCache::builder()
    ///     .ttl(Duration::from_secs(60))
    ///     .max_entries(1_000)
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(cache.get_or_load("k", || 1), 1);
    /// // The TTL has no default.
    /// assert_eq!(TtlCache::<String, u32>::builder().build().unwrap_err().setting(), "ttl");
    /// ```
    pub fn builder() -> TtlCacheBuilder<K, V> {
        TtlCacheBuilder {
            ttl: None,
            max_entries: DEFAULT_MAX_ENTRIES,
            jitter: 0.0,
            error_ttl: None,
            refresh_after: None,
            beta: None,
            clock: None,
            metrics: None,
            name: None,
            group: Group::builder(),
        }
    }
}

/// The default bound: a cache is never unbounded unless asked to be large.
pub const DEFAULT_MAX_ENTRIES: usize = 100_000;

impl<K, V, S> TtlCache<K, V, S>
where
    K: Eq,
    V: Clone,
    S: BuildHasher,
{
    #[inline]
    fn shard(&self, hash: u64) -> &Mutex<Store<K, V>> {
        let index = (hash >> 32) as usize & self.inner.mask;
        &self.inner.shards[index].store
    }

    /// Looks `key` up; `refresh` says whether this caller may be chosen to
    /// refresh a stale entry.
    #[inline]
    fn lookup<Q>(&self, hash: u64, key: &Q, mode: Mode) -> Lookup<V>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        let now = self.inner.clock.now();
        let mut store = self.shard(hash).lock();
        let pos = store.find(hash, key);
        if mode == Mode::Recheck {
            return match pos {
                Some(pos) if now < store.slot(pos).expires => {
                    Lookup::Fresh(store.slot(pos).value.clone())
                }
                _ => Lookup::Miss,
            };
        }
        store.touch(hash, pos);
        // The common case first, with nothing to move or drop.
        if let Some(p) = pos {
            let slot = store.slot(p);
            if now < slot.expires && now < slot.refresh && self.inner.beta.is_none() {
                if let Cached::Value(v) = &slot.value {
                    let v = v.clone();
                    store.counts.hits += 1;
                    drop(store);
                    if let Some(m) = &self.inner.metrics {
                        m.cache_event(self.group.name(), CacheEvent::Hit);
                    }
                    return Lookup::Fresh(Cached::Value(v));
                }
            }
        }
        self.lookup_slow(store, now, pos, mode)
    }

    #[cold]
    #[inline(never)]
    fn lookup_slow(
        &self,
        mut store: MutexGuard<'_, Store<K, V>>,
        now: u64,
        pos: Option<usize>,
        mode: Mode,
    ) -> Lookup<V> {
        let (found, event, gone) = match pos {
            None => (Lookup::Miss, CacheEvent::Miss, None),
            Some(pos) if now >= store.slot(pos).expires => {
                store.counts.expirations += 1;
                (Lookup::Miss, CacheEvent::Miss, Some(store.remove(pos)))
            }
            Some(pos) => {
                let slot = store.slot(pos);
                match &slot.value {
                    // Only `try_get_or_load` can answer with a cached error;
                    // for every other caller it is no entry at all. Never
                    // refreshed: it expires and is loaded again.
                    Cached::Error(e) if mode == Mode::TryLoad => (
                        Lookup::Fresh(Cached::Error(e.clone())),
                        CacheEvent::NegativeHit,
                        None,
                    ),
                    Cached::Error(_) => (Lookup::Miss, CacheEvent::Miss, None),
                    Cached::Value(v) => {
                        let may_refresh = matches!(mode, Mode::Load | Mode::TryLoad);
                        if may_refresh && !slot.refreshing && self.inner.refresh_due(slot, now) {
                            // Cloned before the flag is set: a `V::clone`
                            // that panics leaves the entry refreshable.
                            let found = Lookup::Stale(v.clone(), slot.stamp);
                            slot.refreshing = true;
                            store.counts.refreshes += 1;
                            (found, CacheEvent::StaleHit, None)
                        } else if now >= slot.refresh {
                            let found = Lookup::Fresh(Cached::Value(v.clone()));
                            (found, CacheEvent::StaleHit, None)
                        } else {
                            (
                                Lookup::Fresh(Cached::Value(v.clone())),
                                CacheEvent::Hit,
                                None,
                            )
                        }
                    }
                }
            }
        };
        match event {
            CacheEvent::Hit => store.counts.hits += 1,
            CacheEvent::StaleHit => store.counts.stale_hits += 1,
            CacheEvent::NegativeHit => store.counts.negative_hits += 1,
            _ => store.counts.misses += 1,
        }
        drop(store);
        if let Some(m) = &self.inner.metrics {
            if gone.is_some() {
                m.cache_event(self.group.name(), CacheEvent::Expiration);
            }
            m.cache_event(self.group.name(), event);
        }
        drop(gone);
        found
    }

    /// The value cached for `key`, if fresh. Never loads or refreshes.
    ///
    /// # Examples
    ///
    /// ```
    /// let cache = singleflight_sync::TtlCache::<String, u8>::new(std::time::Duration::from_secs(1));
    /// assert_eq!(cache.get("k"), None);
    /// cache.insert("k".into(), 1);
    /// assert_eq!(cache.get("k"), Some(1));
    /// ```
    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let (hash, _) = self.group.locate(key);
        match self.lookup(hash, key, Mode::Read) {
            Lookup::Fresh(Cached::Value(v)) | Lookup::Stale(v, _) => Some(v),
            _ => None,
        }
    }

    /// Stores `value` for `key` with the default TTL (and jitter), replacing
    /// any entry for it. Like a load's value, a new key is subject to
    /// admission when its shard is full: it is kept only if asked for more
    /// often than the entry it would evict.
    ///
    /// # Examples
    ///
    /// ```
    /// use singleflight_sync::{ManualClock, TtlCache};
    /// use std::time::Duration;
    ///
    /// let clock = ManualClock::new();
    /// let cache: TtlCache<String, u32> = TtlCache::builder()
    ///     .ttl(Duration::from_secs(60))
    ///     .clock(clock.clone())
    ///     .build()
    ///     .unwrap();
    /// cache.insert("k".to_string(), 1);
    /// cache.insert("k".to_string(), 2);
    /// assert_eq!(cache.get_or_load("k", || unreachable!()), 2);
    /// clock.advance(Duration::from_secs(60));
    /// assert_eq!(cache.get("k"), None);
    /// ```
    pub fn insert(&self, key: K, value: V)
    where
        K: Hash,
    {
        self.insert_with_ttl(key, value, Duration::from_nanos(self.inner.ttl));
    }

    /// Stores `value` for `key`, to expire after `ttl` (and jitter); as
    /// [`insert`](Self::insert) otherwise.
    ///
    /// # Examples
    ///
    /// ```
    /// use singleflight_sync::{ManualClock, TtlCache};
    /// use std::time::Duration;
    ///
    /// let clock = ManualClock::new();
    /// let cache: TtlCache<String, u32> = TtlCache::builder()
    ///     .ttl(Duration::from_secs(60))
    ///     .clock(clock.clone())
    ///     .build()
    ///     .unwrap();
    /// cache.insert_with_ttl("short".to_string(), 1, Duration::from_secs(5));
    /// cache.insert("long".to_string(), 2);
    /// clock.advance(Duration::from_secs(5));
    /// assert_eq!((cache.get("short"), cache.get("long")), (None, Some(2)));
    /// ```
    pub fn insert_with_ttl(&self, key: K, value: V, ttl: Duration)
    where
        K: Hash,
    {
        let (hash, _) = self.group.locate(&key);
        // No generation: an insert has no load to race, so nothing that
        // happened before it can make its value stale.
        self.inner.store(
            self.shard(hash),
            key,
            hash,
            Cached::Value(value),
            nanos(ttl),
            0,
            None,
        );
    }

    /// Removes `key`'s entry, and makes a load running for it now leave its
    /// value out of the cache (its callers still get it) and stop taking new
    /// callers. Returns whether an entry was removed.
    ///
    /// A load of another key in the same shard that is running now also
    /// leaves its value out: a rare, harmless miss later, never a stale hit.
    ///
    /// # Examples
    ///
    /// ```
    /// use singleflight_sync::TtlCache;
    /// use std::time::Duration;
    ///
    /// let cache: TtlCache<String, u32> = TtlCache::new(Duration::from_secs(60));
    /// cache.insert("k".to_string(), 1);
    /// assert!(cache.invalidate("k"));
    /// assert!(!cache.invalidate("k"), "already gone");
    /// // Invalidated while loading: the caller gets the value, the cache does not.
    /// let v = cache.get_or_load("k", || {
    ///     cache.invalidate("k");
    ///     2
    /// });
    /// assert_eq!((v, cache.get("k")), (2, None));
    /// ```
    pub fn invalidate<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let (hash, _) = self.group.locate(key);
        let mut store = self.shard(hash).lock();
        store.generation += 1;
        let gone = store.find(hash, key).map(|pos| store.remove(pos));
        drop(store);
        self.group.forget(key);
        gone.is_some()
    }

    /// Removes every entry; loads running now leave their values out.
    ///
    /// # Examples
    ///
    /// ```
    /// use singleflight_sync::TtlCache;
    /// use std::time::Duration;
    ///
    /// let cache: TtlCache<String, u32> = TtlCache::new(Duration::from_secs(60));
    /// cache.insert("a".to_string(), 1);
    /// cache.insert("b".to_string(), 2);
    /// cache.clear();
    /// assert!(cache.is_empty());
    /// let v = cache.get_or_load("a", || {
    ///     cache.clear();
    ///     3
    /// });
    /// assert_eq!((v, cache.get("a")), (3, None), "a load running during clear is not kept");
    /// ```
    pub fn clear(&self) {
        for shard in self.inner.shards.iter() {
            let gone = shard.store.lock().clear();
            drop(gone);
        }
        self.group.release_all();
    }

    /// How many callers are waiting for the load of `key` that is running now
    /// (0 when none is).
    ///
    /// # Examples
    ///
    /// ```
    /// use singleflight_sync::TtlCache;
    /// use std::time::Duration;
    ///
    /// let cache: TtlCache<String, u32> = TtlCache::new(Duration::from_secs(60));
    /// assert_eq!(cache.waiters("k"), 0);
    /// // Whichever caller loads waits for the other to join its load.
    /// let load = || {
    ///     cache.get_or_load("k", || {
    ///         while cache.waiters("k") == 0 {
    ///             std::thread::yield_now();
    ///         }
    ///         7
    ///     })
    /// };
    /// std::thread::scope(|s| {
    ///     let other = s.spawn(load);
    ///     assert_eq!((load(), other.join().unwrap()), (7, 7));
    /// });
    /// assert_eq!(cache.stats().loads, 1);
    /// ```
    pub fn waiters<Q>(&self, key: &Q) -> usize
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.group.waiters(key)
    }

    /// A snapshot of the cache's counters and its load group's (see
    /// [`Stats`]). Kept per shard under the locks lookups take anyway.
    ///
    /// # Examples
    ///
    /// ```
    /// let cache = singleflight_sync::TtlCache::<String, u8>::new(std::time::Duration::from_secs(9));
    /// cache.get_or_load("k", || 1);
    /// cache.get_or_load("k", || 1);
    /// let stats = cache.stats();
    /// assert_eq!((stats.hits, stats.misses, stats.loads), (1, 1, 1));
    /// ```
    pub fn stats(&self) -> Stats {
        let mut stats = self.group.stats();
        for shard in self.inner.shards.iter() {
            stats.add_cache(&shard.store.lock().counts);
        }
        stats
    }

    /// The number of entries held, expired ones not yet reclaimed included.
    ///
    /// # Examples
    ///
    /// ```
    /// use singleflight_sync::{ManualClock, TtlCache};
    /// use std::time::Duration;
    ///
    /// let clock = ManualClock::new();
    /// let cache: TtlCache<String, u32> = TtlCache::builder()
    ///     .ttl(Duration::from_secs(60))
    ///     .clock(clock.clone())
    ///     .build()
    ///     .unwrap();
    /// cache.insert("a".to_string(), 1);
    /// cache.insert("b".to_string(), 2);
    /// clock.advance(Duration::from_secs(60));
    /// assert_eq!(cache.len(), 2, "expired, not yet reclaimed");
    /// assert_eq!(cache.get("a"), None);
    /// assert_eq!(cache.len(), 1, "the lookup reclaimed `a`");
    /// ```
    pub fn len(&self) -> usize {
        self.inner.shards.iter().map(|s| s.store.lock().len()).sum()
    }

    /// Whether [`len`](Self::len) is 0.
    ///
    /// # Examples
    ///
    /// ```
    /// use singleflight_sync::TtlCache;
    /// use std::time::Duration;
    ///
    /// let cache: TtlCache<String, u32> = TtlCache::new(Duration::from_secs(60));
    /// assert!(cache.is_empty());
    /// cache.insert("k".to_string(), 1);
    /// assert!(!cache.is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<K, V, S> TtlCache<K, V, S>
where
    K: Eq + Hash,
    V: Clone,
    S: BuildHasher,
{
    /// The cached value for `key`, or `f`'s, loaded once for all concurrent
    /// callers and cached for the default TTL.
    ///
    /// Past `refresh_after`, the first caller to see the entry refreshes it
    /// here, with its own `f` (which may borrow, so it cannot move to another
    /// thread), and gets the new value; every other caller gets the current
    /// value at once.
    ///
    /// # Panics
    ///
    /// If `f` panics: the panic unwinds in the caller that ran it, the
    /// callers waiting for that load panic with a
    /// [`LeaderPanicked`](crate::LeaderPanicked) payload, and nothing is
    /// cached. The next call loads again.
    ///
    /// # Examples
    ///
    /// ```
    /// use singleflight_sync::TtlCache;
    /// use std::time::Duration;
    ///
    /// let db = vec![("ada", 36), ("alan", 41)];
    /// let cache: TtlCache<String, Option<u32>> = TtlCache::new(Duration::from_secs(60));
    /// let age = cache.get_or_load("alan", || db.iter().find(|r| r.0 == "alan").map(|r| r.1));
    /// assert_eq!(age, Some(41));
    /// ```
    #[track_caller]
    pub fn get_or_load<Q>(&self, key: &Q, f: impl FnOnce() -> V) -> V
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        self.load_inline(key, self.inner.ttl, f)
    }

    /// [`get_or_load`](Self::get_or_load), caching a loaded value for `ttl`
    /// instead of the default.
    ///
    /// # Panics
    ///
    /// As [`get_or_load`](Self::get_or_load).
    ///
    /// # Examples
    ///
    /// ```
    /// use singleflight_sync::{ManualClock, TtlCache};
    /// use std::time::Duration;
    ///
    /// let clock = ManualClock::new();
    /// let cache: TtlCache<String, u32> = TtlCache::builder()
    ///     .ttl(Duration::from_secs(60))
    ///     .clock(clock.clone())
    ///     .build()
    ///     .unwrap();
    /// let ttl = Duration::from_secs(1);
    /// assert_eq!(cache.get_or_load_with_ttl("hot", ttl, || 1), 1);
    /// assert_eq!(cache.get_or_load_with_ttl("hot", ttl, || 2), 1);
    /// clock.advance(ttl);
    /// assert_eq!(cache.get_or_load_with_ttl("hot", ttl, || 3), 3, "expired: loaded again");
    /// ```
    #[track_caller]
    pub fn get_or_load_with_ttl<Q>(&self, key: &Q, ttl: Duration, f: impl FnOnce() -> V) -> V
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        self.load_inline(key, nanos(ttl), f)
    }

    #[track_caller]
    fn load_inline<Q>(&self, key: &Q, ttl: u64, f: impl FnOnce() -> V) -> V
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let (hash, _) = self.group.locate(key);
        let refresh = match self.lookup(hash, key, Mode::Load) {
            Lookup::Fresh(Cached::Value(v)) => return v,
            Lookup::Stale(_, stamp) => Some(RefreshFlag::new(&self.inner, hash, stamp)),
            Lookup::Fresh(Cached::Error(_)) | Lookup::Miss => None,
        };
        self.load_value(key, hash, ttl, refresh.is_some(), f)
    }

    /// [`load`](Self::load) for an infallible loader. Joining a load that
    /// failed (a `try_get_or_load`'s error, or a detached refresh that
    /// panicked) leaves this caller without a value: that flight has ended,
    /// so it loads again, joining a newer load or leading one with its own
    /// `f`, which is then counted and cached like any load.
    fn load_value<Q>(&self, key: &Q, hash: u64, ttl: u64, refresh: bool, f: impl FnOnce() -> V) -> V
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let mut f = Some(f);
        loop {
            let loaded = self.load(key, hash, ttl, refresh, || {
                Ok((f.take().expect("a flight runs its loader once"))())
            });
            match loaded {
                Ok(v) => return v,
                Err(_) if f.is_some() => continue,
                Err(_) => unreachable!("this caller's own loader cannot fail"),
            }
        }
    }

    /// Like [`get_or_load`](Self::get_or_load) for a loader that can fail.
    ///
    /// # Errors
    ///
    /// `f`'s error, shared by every caller of that load. It is not cached
    /// unless the cache has an `error_ttl`, in which case it is served for
    /// that long. A failed refresh keeps (and returns) the current value.
    /// A caller that joins a load whose loader has another error type (or a
    /// detached refresh that panicked) loads again, joining a newer load or
    /// leading one with its own `f`.
    ///
    /// # Panics
    ///
    /// As [`get_or_load`](Self::get_or_load).
    ///
    /// # Examples
    ///
    /// ```
    /// use singleflight_sync::TtlCache;
    /// use std::time::Duration;
    ///
    /// let cache: TtlCache<String, u32> = TtlCache::new(Duration::from_secs(60));
    /// let r: Result<u32, String> = cache.try_get_or_load("k", || Err("timeout".into()));
    /// assert_eq!(r, Err("timeout".to_string()));
    /// // Not cached: the next call loads again.
    /// assert_eq!(cache.try_get_or_load::<_, String>("k", || Ok(5)), Ok(5));
    /// ```
    #[track_caller]
    pub fn try_get_or_load<Q, E>(&self, key: &Q, f: impl FnOnce() -> Result<V, E>) -> Result<V, E>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
        E: Clone + Send + Sync + 'static,
    {
        let (hash, _) = self.group.locate(key);
        let (refresh, current) = match self.lookup(hash, key, Mode::TryLoad) {
            Lookup::Fresh(Cached::Value(v)) => return Ok(v),
            Lookup::Fresh(Cached::Error(e)) => match e.downcast_ref::<E>() {
                Some(e) => return Err(e.clone()),
                None => (None, None),
            },
            Lookup::Stale(v, stamp) => (Some(RefreshFlag::new(&self.inner, hash, stamp)), Some(v)),
            Lookup::Miss => (None, None),
        };
        let mut f = Some(f);
        let loaded = loop {
            let loaded = self.load(key, hash, self.inner.ttl, refresh.is_some(), || {
                (f.take().expect("a flight runs its loader once"))()
                    .map_err(|e| Shared::new(e) as AnyError)
            });
            match loaded {
                // Joined a load that failed in a way this caller cannot
                // share (another error type, a refresh's panic): that
                // flight has ended, so load again, as `load_value` does.
                Err(e) if f.is_some() && e.downcast_ref::<E>().is_none() => continue,
                loaded => break loaded,
            }
        };
        drop(refresh);
        match loaded {
            Ok(v) => Ok(v),
            Err(_) if current.is_some() => Ok(current.expect("checked just above")),
            Err(e) => Err(e
                .downcast_ref::<E>()
                .expect("an error not of this caller's type was retried above")
                .clone()),
        }
    }

    /// Loads through the group. The flight's leader looks in the cache once
    /// more (a load that just ended has stored its value), unless this is a
    /// refresh, then runs `f` and stores the result before the flight ends.
    fn load<Q>(
        &self,
        key: &Q,
        hash: u64,
        ttl: u64,
        refresh: bool,
        f: impl FnOnce() -> Loaded<V>,
    ) -> Loaded<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        self.group.work(key, || {
            if !refresh {
                if let Lookup::Fresh(Cached::Value(v)) = self.lookup(hash, key, Mode::Recheck) {
                    return Ok(v);
                }
            }
            let shard = self.shard(hash);
            let generation = self.inner.load_started(shard);
            let start = self.inner.clock.now();
            let loaded = f();
            let delta = self.inner.clock.now().saturating_sub(start);
            let (cached, ttl) = match &loaded {
                Ok(v) => (Cached::Value(v.clone()), ttl),
                Err(e) => {
                    shard.lock().counts.load_errors += 1;
                    match self.inner.error_ttl {
                        // A failed refresh keeps the current value.
                        Some(error_ttl) if !refresh => (Cached::Error(e.clone()), error_ttl),
                        _ => return loaded,
                    }
                }
            };
            self.inner.store(
                shard,
                key.to_owned(),
                hash,
                cached,
                ttl,
                delta,
                Some(generation),
            );
            loaded
        })
    }
}

impl<K, V, S> TtlCache<K, V, S>
where
    K: Eq + Hash + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    S: BuildHasher,
{
    /// Like [`get_or_load`](Self::get_or_load), but a refresh runs on the
    /// cache's spawner, so no caller waits for it: the caller that finds the
    /// entry stale starts it and, like everyone else, gets the current value.
    /// A miss still loads on the caller's thread, as nobody has a value to
    /// return meanwhile.
    ///
    /// # Panics
    ///
    /// As [`get_or_load`](Self::get_or_load) for a miss. A refresh that
    /// panics keeps the current value: the panic is caught on the spawner's
    /// thread and counted as a failed load ([`Stats::load_errors`]). A
    /// caller that joins that refresh (its entry expired meanwhile) loads
    /// for itself rather than inherit a panic its own loader never raised.
    ///
    /// # Examples
    ///
    /// ```
    /// use singleflight_sync::{ManualClock, TtlCache};
    /// use std::time::Duration;
    ///
    /// let clock = ManualClock::new();
    /// let cache: TtlCache<String, u32> = TtlCache::builder()
    ///     .ttl(Duration::from_secs(60))
    ///     .refresh_after(Duration::from_secs(30))
    ///     .clock(clock.clone())
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(cache.get_or_load_detached("k", || 1), 1, "a miss loads here");
    /// clock.advance(Duration::from_secs(30));
    /// assert_eq!(cache.get_or_load_detached("k", || 2), 1, "stale: served, refresh started");
    /// // The refresh runs on a thread of its own.
    /// while cache.get("k") != Some(2) {
    ///     std::thread::yield_now();
    /// }
    /// ```
    pub fn get_or_load_detached<Q, F>(&self, key: &Q, f: F) -> V
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
        F: FnOnce() -> V + Send + 'static,
    {
        let (hash, _) = self.group.locate(key);
        match self.lookup(hash, key, Mode::Load) {
            Lookup::Fresh(Cached::Value(v)) => v,
            Lookup::Stale(v, stamp) => {
                self.refresh_detached(key, hash, stamp, f);
                v
            }
            _ => self.load_value(key, hash, self.inner.ttl, false, f),
        }
    }

    fn refresh_detached<Q, F>(&self, key: &Q, hash: u64, stamp: u64, f: F)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
        F: FnOnce() -> V + Send + 'static,
    {
        let flag = RefreshFlag::new(&self.inner, hash, stamp);
        let (inner, owned, ttl) = (self.inner.clone(), key.to_owned(), self.inner.ttl);
        // The receiver is dropped at once: nobody waits, the flight goes on,
        // and its value is dropped after it is stored.
        drop(self.group.do_chan(key, move |_| {
            let _flag = flag;
            let Some(_running) = Running::enter(&inner) else {
                return Err(Shared::new(io::Error::other("the cache was dropped")) as AnyError);
            };
            let shard = inner.shard_of(hash);
            let generation = inner.load_started(shard);
            let start = inner.clock.now();
            // Caught here, not by the group: a caller whose entry expired
            // meanwhile may join this flight, and must load for itself
            // rather than inherit a panic its own loader never raised.
            let v = match panic::catch_unwind(AssertUnwindSafe(f)) {
                Ok(v) => v,
                Err(payload) => {
                    shard.lock().counts.load_errors += 1;
                    let cause = LeaderPanicked::from_payload(&*payload, inner.name);
                    return Err(Shared::new(RefreshPanicked(cause)) as AnyError);
                }
            };
            let delta = inner.clock.now().saturating_sub(start);
            inner.store(
                shard,
                owned,
                hash,
                Cached::Value(v.clone()),
                ttl,
                delta,
                Some(generation),
            );
            Ok(v)
        }));
    }
}

impl<K, V> Inner<K, V> {
    /// Counts a loader run; returns the shard's generation at its start.
    fn load_started(&self, shard: &Mutex<Store<K, V>>) -> u64 {
        let mut store = shard.lock();
        store.counts.loads += 1;
        store.generation
    }

    fn shard_of(&self, hash: u64) -> &Mutex<Store<K, V>> {
        let index = (hash >> 32) as usize & self.mask;
        &self.shards[index].store
    }

    /// Whether a caller at `now` should refresh `slot`: past
    /// `refresh_after`, or chosen early by XFetch, which refreshes when
    /// `now - delta * beta * ln(rand) >= expiry` (`delta`: the last load's
    /// duration), more likely the closer expiry is and the slower the load.
    #[inline]
    fn refresh_due(&self, slot: &Slot<K, V>, now: u64) -> bool {
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

    /// Stores an entry; a loaded one (`generation` is `Some`) only if the
    /// shard was not invalidated since its load began. What it replaces or
    /// evicts is dropped after the lock is released.
    #[allow(clippy::too_many_arguments)]
    fn store(
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
    fn jittered(&self, ttl: u64) -> u64 {
        if self.jitter == 0.0 {
            return ttl;
        }
        (ttl as f64 * (1.0 - self.jitter * random_unit())) as u64
    }
}

/// A uniform random number in (0, 1], from a per-thread xorshift: cheap, and
/// good enough to spread expiries and pick early refreshers.
fn random_unit() -> f64 {
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

/// What the callers that joined a detached refresh get when its loader
/// panicked. Private, so it never downcasts to a caller's error type: each of
/// them loads again for itself.
#[derive(Debug)]
struct RefreshPanicked(#[allow(dead_code)] LeaderPanicked);

/// Clears a slot's `refreshing` flag when a refresh ends without replacing
/// the slot (it failed, panicked, was invalidated, or joined another load),
/// so a later caller can try again.
struct RefreshFlag<K, V> {
    inner: Shared<Inner<K, V>>,
    hash: u64,
    stamp: u64,
}

impl<K, V> RefreshFlag<K, V> {
    fn new(inner: &Shared<Inner<K, V>>, hash: u64, stamp: u64) -> Self {
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
struct Loaders {
    running: usize,
    /// Set by the cache's drop: refreshes that have not started skip.
    closed: bool,
}

std::thread_local! {
    /// The cache (its `Inner`'s address) whose refresh loader this thread is
    /// running, if any, so that dropping that cache from inside the loader
    /// does not wait for itself.
    static LOADING: Cell<usize> = const { Cell::new(0) };
}

/// A detached refresh loader, counted while it runs.
struct Running<K, V> {
    inner: Shared<Inner<K, V>>,
    outer: usize,
}

impl<K, V> Running<K, V> {
    /// `None` once the cache is dropped: the refresh then skips its loader.
    fn enter(inner: &Shared<Inner<K, V>>) -> Option<Self> {
        let mut loaders = inner.loaders.lock();
        if loaders.closed {
            return None;
        }
        loaders.running += 1;
        let outer = LOADING.with(|l| l.replace(Shared::as_ptr(inner) as usize));
        Some(Running {
            inner: inner.clone(),
            outer,
        })
    }
}

impl<K, V> Drop for Running<K, V> {
    fn drop(&mut self) {
        LOADING.with(|l| l.set(self.outer));
        let mut loaders = self.inner.loaders.lock();
        loaders.running -= 1;
        self.inner.loaders_done.notify_all();
    }
}

impl<K, V, S> Drop for TtlCache<K, V, S> {
    /// Waits for the detached refresh loaders of this cache that are running
    /// (their closures take no cancel token); a refresh that has not started
    /// yet skips its loader, so no loader runs once the drop returns. A drop
    /// from inside one of this cache's own refresh loaders (it held the last
    /// handle) does not wait for that loader.
    fn drop(&mut self) {
        let me = usize::from(LOADING.with(|l| l.get()) == Shared::as_ptr(&self.inner) as usize);
        let mut loaders = self.inner.loaders.lock();
        loaders.closed = true;
        while loaders.running > me {
            loaders = self.inner.loaders_done.wait(loaders);
        }
    }
}

impl<K, V, S> fmt::Debug for TtlCache<K, V, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TtlCache")
            .field("name", &self.group.name())
            .field(
                "entries",
                &self
                    .inner
                    .shards
                    .iter()
                    .map(|s| s.store.lock().len())
                    .sum::<usize>(),
            )
            .field("ttl", &Duration::from_nanos(self.inner.ttl))
            .finish_non_exhaustive()
    }
}

/// Configures a [`TtlCache`]; made by [`TtlCache::builder`].
///
/// # Examples
///
/// ```
/// use singleflight_sync::TtlCache;
/// use std::time::Duration;
///
/// let cache: TtlCache<String, Vec<u8>> = TtlCache::builder()
///     .name("avatars")
///     .ttl(Duration::from_secs(300))
///     .max_entries(10_000)
///     .jitter(0.1)
///     .refresh_after(Duration::from_secs(240))
///     .error_ttl(Duration::from_secs(5))
///     .build()
///     .unwrap();
/// assert!(cache.is_empty());
///
/// let err = TtlCache::<String, u8>::builder()
///     .ttl(Duration::from_secs(1))
///     .refresh_after(Duration::from_secs(2))
///     .build()
///     .unwrap_err();
/// assert_eq!(err.setting(), "refresh_after");
/// ```
pub struct TtlCacheBuilder<K, V, S = RandomState> {
    ttl: Option<Duration>,
    max_entries: usize,
    jitter: f64,
    error_ttl: Option<Duration>,
    refresh_after: Option<Duration>,
    beta: Option<f64>,
    clock: Option<Box<dyn Clock>>,
    metrics: Option<Shared<dyn Metrics>>,
    name: Option<&'static str>,
    group: GroupBuilder<K, Loaded<V>, S>,
}

impl<K, V, S> TtlCacheBuilder<K, V, S> {
    /// The default time an entry lives (required; not zero).
    ///
    /// # Examples
    ///
    /// ```
    /// use singleflight_sync::TtlCache;
    /// use std::time::Duration;
    ///
    /// let cache: TtlCache<String, u32> = TtlCache::builder().ttl(Duration::from_secs(60)).build().unwrap();
    /// assert!(format!("{cache:?}").contains("ttl: 60s"));
    /// let zero = TtlCache::<String, u32>::builder().ttl(Duration::ZERO).build();
    /// assert_eq!(zero.unwrap_err().setting(), "ttl");
    /// ```
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// The most entries the cache holds (default
    /// [`DEFAULT_MAX_ENTRIES`]; at least 1).
    ///
    /// # Examples
    ///
    /// ```
    /// use singleflight_sync::TtlCache;
    /// use std::time::Duration;
    ///
    /// let cache: TtlCache<u32, u32> = TtlCache::builder()
    ///     .ttl(Duration::from_secs(60))
    ///     .max_entries(100)
    ///     .build()
    ///     .unwrap();
    /// for k in 0..1_000 {
    ///     cache.insert(k, k);
    /// }
    /// assert!(cache.len() <= 100);
    /// ```
    pub fn max_entries(mut self, max_entries: usize) -> Self {
        self.max_entries = max_entries;
        self
    }

    /// Shortens each value's TTL by a random fraction of up to `jitter` (in
    /// `0.0..1.0`; default 0), so entries loaded together expire apart.
    /// With `refresh_after`, keep `ttl * (1 - jitter)` above it, or some
    /// entries expire before their refresh is due.
    ///
    /// # Examples
    ///
    /// ```
    /// use singleflight_sync::{ManualClock, TtlCache};
    /// use std::time::Duration;
    ///
    /// let clock = ManualClock::new();
    /// let cache: TtlCache<u32, u32> = TtlCache::builder()
    ///     .ttl(Duration::from_secs(100))
    ///     .jitter(0.5)
    ///     .clock(clock.clone())
    ///     .build()
    ///     .unwrap();
    /// (0..10).for_each(|k| cache.insert(k, k));
    /// clock.advance(Duration::from_secs(49));
    /// assert!((0..10).all(|k| cache.get(&k).is_some()), "each lives at least half the TTL");
    /// clock.advance(Duration::from_secs(51));
    /// assert!((0..10).all(|k| cache.get(&k).is_none()), "and never longer than the TTL");
    /// ```
    pub fn jitter(mut self, jitter: f64) -> Self {
        self.jitter = jitter;
        self
    }

    /// Caches errors of [`TtlCache::try_get_or_load`] for `ttl` (negative
    /// caching; off by default).
    ///
    /// A cached error answers `try_get_or_load` callers (with the same error
    /// type) and counts in [`Stats::negative_hits`], neither a hit nor a
    /// miss. For [`TtlCache::get`] and the infallible loaders, which cannot
    /// return it, it is a miss: `get` returns `None`, `get_or_load` loads and
    /// replaces it. A cached error is never refreshed early; it expires.
    ///
    /// # Examples
    ///
    /// ```
    /// use singleflight_sync::{ManualClock, TtlCache};
    /// use std::time::Duration;
    ///
    /// let clock = ManualClock::new();
    /// let cache: TtlCache<String, u32> = TtlCache::builder()
    ///     .ttl(Duration::from_secs(60))
    ///     .error_ttl(Duration::from_secs(5))
    ///     .clock(clock.clone())
    ///     .build()
    ///     .unwrap();
    /// let down = Err("down".to_string());
    /// assert_eq!(cache.try_get_or_load("k", || down.clone()), down);
    /// assert_eq!(cache.try_get_or_load("k", || Ok(1)), down, "the error is cached");
    /// clock.advance(Duration::from_secs(5));
    /// assert_eq!(cache.try_get_or_load::<_, String>("k", || Ok(2)), Ok(2), "expired");
    /// ```
    pub fn error_ttl(mut self, ttl: Duration) -> Self {
        self.error_ttl = Some(ttl);
        self
    }

    /// Refreshes an entry this long after it was loaded, while serving the
    /// current value (stale-while-revalidate). Must be below the TTL.
    ///
    /// # Examples
    ///
    /// ```
    /// use singleflight_sync::{ManualClock, TtlCache};
    /// use std::time::Duration;
    ///
    /// let clock = ManualClock::new();
    /// let cache: TtlCache<String, u32> = TtlCache::builder()
    ///     .ttl(Duration::from_secs(60))
    ///     .refresh_after(Duration::from_secs(30))
    ///     .clock(clock.clone())
    ///     .build()
    ///     .unwrap();
    /// cache.get_or_load("k", || 1);
    /// clock.advance(Duration::from_secs(30));
    /// assert_eq!(cache.get("k"), Some(1), "`get` serves it and never refreshes");
    /// assert_eq!(cache.get_or_load("k", || 2), 2, "the first loading caller refreshes");
    /// assert_eq!(cache.stats().refreshes, 1);
    /// ```
    pub fn refresh_after(mut self, after: Duration) -> Self {
        self.refresh_after = Some(after);
        self
    }

    /// Refreshes early, at random, by the XFetch rule with this `beta` (1.0
    /// is the usual choice; larger refreshes earlier; off by default).
    ///
    /// # Examples
    ///
    /// ```
    /// use singleflight_sync::{ManualClock, TtlCache};
    /// use std::time::Duration;
    ///
    /// let clock = ManualClock::new();
    /// let cache: TtlCache<String, u32> = TtlCache::builder()
    ///     .ttl(Duration::from_secs(60))
    ///     .early_refresh(1.0)
    ///     .clock(clock.clone())
    ///     .build()
    ///     .unwrap();
    /// cache.get_or_load("k", || {
    ///     clock.advance(Duration::from_secs(10)); // a slow load
    ///     1
    /// });
    /// clock.advance(Duration::from_secs(59)); // 1 s before expiry
    /// // Each caller refreshes with a chance of 1 - e^(-1 s / (10 s * beta)), 90% here.
    /// (0..20).for_each(|_| drop(cache.get_or_load("k", || 2)));
    /// assert_eq!((cache.get("k"), cache.stats().refreshes), (Some(2), 1));
    /// ```
    pub fn early_refresh(mut self, beta: f64) -> Self {
        self.beta = Some(beta);
        self
    }

    /// The clock that decides expiry (default [`SystemClock`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use singleflight_sync::{ManualClock, TtlCache};
    /// use std::time::Duration;
    ///
    /// let clock = ManualClock::new();
    /// let cache: TtlCache<String, u32> = TtlCache::builder()
    ///     .ttl(Duration::from_secs(10))
    ///     .clock(clock.clone())
    ///     .build()
    ///     .unwrap();
    /// cache.insert("k".to_string(), 1);
    /// clock.advance(Duration::from_secs(10));
    /// assert_eq!(cache.get("k"), None, "expired by the manual clock, with no sleep");
    /// ```
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Some(Box::new(clock));
        self
    }

    /// Where [`TtlCache::get_or_load_detached`] runs refreshes; see
    /// [`GroupBuilder::spawner`].
    ///
    /// # Examples
    ///
    /// A hook that queues refreshes, run here when the caller chooses:
    ///
    /// ```
    /// use singleflight_sync::{ManualClock, TtlCache};
    /// use std::sync::mpsc;
    /// use std::time::Duration;
    ///
    /// let (queue, jobs) = mpsc::channel();
    /// let clock = ManualClock::new();
    /// let cache: TtlCache<String, u32> = TtlCache::builder()
    ///     .ttl(Duration::from_secs(60))
    ///     .refresh_after(Duration::from_secs(30))
    ///     .clock(clock.clone())
    ///     .spawner(move |job| queue.send(job).map_err(|_| std::io::Error::other("closed")))
    ///     .build()
    ///     .unwrap();
    /// cache.get_or_load_detached("k", || 1);
    /// clock.advance(Duration::from_secs(30));
    /// assert_eq!(cache.get_or_load_detached("k", || 2), 1, "served; the refresh is queued");
    /// jobs.recv().unwrap()();
    /// assert_eq!(cache.get("k"), Some(2));
    /// ```
    pub fn spawner<F>(mut self, spawner: F) -> Self
    where
        F: Fn(Job) -> io::Result<()> + Send + Sync + 'static,
    {
        self.group = self.group.spawner(spawner);
        self
    }

    /// A label for panic messages and metrics.
    ///
    /// # Examples
    ///
    /// ```
    /// use singleflight_sync::TtlCache;
    /// use std::time::Duration;
    ///
    /// let cache: TtlCache<String, u32> = TtlCache::builder()
    ///     .name("users")
    ///     .ttl(Duration::from_secs(60))
    ///     .build()
    ///     .unwrap();
    /// assert!(format!("{cache:?}").contains(r#"name: Some("users")"#));
    /// ```
    pub fn name(mut self, name: &'static str) -> Self {
        self.group = self.group.name(name);
        self.name = Some(name);
        self
    }

    /// An observer told of every lookup's result, every eviction and
    /// expiry, and every load's flight (see [`Metrics`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use singleflight_sync::{CacheEvent, Metrics, TtlCache};
    /// use std::sync::{Arc, Mutex};
    /// use std::time::Duration;
    ///
    /// #[derive(Debug, Default)]
    /// struct Events(Mutex<Vec<&'static str>>);
    /// impl Metrics for Events {
    ///     fn cache_event(&self, _group: Option<&'static str>, event: CacheEvent) {
    ///         self.0.lock().unwrap().push(event.as_str());
    ///     }
    /// }
    ///
    /// let events = Arc::new(Events::default());
    /// let cache: TtlCache<String, u32> = TtlCache::builder()
    ///     .ttl(Duration::from_secs(60))
    ///     .metrics(events.clone())
    ///     .build()
    ///     .unwrap();
    /// cache.get_or_load("k", || 1);
    /// cache.get_or_load("k", || 1);
    /// assert_eq!(*events.0.lock().unwrap(), ["miss", "hit"]);
    /// ```
    pub fn metrics<M: Metrics>(mut self, metrics: std::sync::Arc<M>) -> Self {
        self.group = self.group.metrics(metrics.clone());
        self.metrics = Some(metrics);
        self
    }

    /// The hasher for keys (default [`RandomState`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use singleflight_sync::TtlCache;
    /// use std::hash::{BuildHasherDefault, DefaultHasher};
    /// use std::time::Duration;
    ///
    /// let cache: TtlCache<String, u32, BuildHasherDefault<DefaultHasher>> = TtlCache::builder()
    ///     .ttl(Duration::from_secs(60))
    ///     .hasher(BuildHasherDefault::default())
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(cache.get_or_load("k", || 1), 1);
    /// ```
    pub fn hasher<S2: BuildHasher>(self, hasher: S2) -> TtlCacheBuilder<K, V, S2> {
        TtlCacheBuilder {
            ttl: self.ttl,
            max_entries: self.max_entries,
            jitter: self.jitter,
            error_ttl: self.error_ttl,
            refresh_after: self.refresh_after,
            beta: self.beta,
            clock: self.clock,
            metrics: self.metrics,
            name: self.name,
            group: self.group.hasher(hasher),
        }
    }

    /// Makes the cache.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the setting, if the TTL is missing or zero,
    /// `max_entries` is 0, `jitter` is outside `0.0..1.0`, `error_ttl` is
    /// zero, `refresh_after` is zero or not below the TTL, or the
    /// `early_refresh` beta is negative or not a number.
    ///
    /// # Examples
    ///
    /// ```
    /// use singleflight_sync::TtlCache;
    /// use std::time::Duration;
    ///
    /// let ok = TtlCache::<String, u32>::builder().ttl(Duration::from_secs(60)).build();
    /// assert!(ok.unwrap().is_empty());
    /// let err = TtlCache::<String, u32>::builder()
    ///     .ttl(Duration::from_secs(60))
    ///     .jitter(1.0)
    ///     .build()
    ///     .unwrap_err();
    /// assert_eq!(err.setting(), "jitter");
    /// ```
    pub fn build(self) -> Result<TtlCache<K, V, S>, ConfigError> {
        let ttl = match self.ttl {
            None => {
                return Err(ConfigError::new(
                    "ttl",
                    "not set; every cache needs a default TTL",
                ))
            }
            Some(ttl) if ttl.is_zero() => {
                return Err(ConfigError::new("ttl", "must be above zero"))
            }
            Some(ttl) => ttl,
        };
        if self.max_entries == 0 {
            return Err(ConfigError::new("max_entries", "must be at least 1"));
        }
        if !(0.0..1.0).contains(&self.jitter) {
            return Err(ConfigError::new(
                "jitter",
                format!("{} is outside 0.0..1.0", self.jitter),
            ));
        }
        if self.error_ttl.is_some_and(|t| t.is_zero()) {
            return Err(ConfigError::new(
                "error_ttl",
                "must be above zero (leave it unset to cache no errors)",
            ));
        }
        if let Some(after) = self.refresh_after {
            if after.is_zero() || after >= ttl {
                return Err(ConfigError::new(
                    "refresh_after",
                    format!("{after:?} must be above zero and below the TTL ({ttl:?})"),
                ));
            }
        }
        if let Some(beta) = self.beta {
            if beta.is_nan() || beta < 0.0 {
                return Err(ConfigError::new(
                    "early_refresh",
                    format!("beta {beta} must be a number >= 0"),
                ));
            }
        }
        // Never more shards than entries, so per-shard bounds add up to
        // exactly `max_entries`.
        let count = sync::default_shards().min(1 << self.max_entries.ilog2());
        let per = self.max_entries / count;
        let extra = self.max_entries % count;
        let shards = (0..count)
            .map(|i| CacheShard {
                store: Mutex::new(Store::new(per + usize::from(i < extra))),
            })
            .collect();
        let inner = Inner {
            shards,
            mask: count - 1,
            clock: match self.clock {
                Some(clock) => ClockSource::Custom(clock),
                None => ClockSource::System(SystemClock),
            },
            ttl: nanos(ttl),
            error_ttl: self.error_ttl.map(nanos),
            refresh_after: self.refresh_after.map(nanos),
            jitter: self.jitter,
            beta: self.beta,
            loaders: Mutex::new(Loaders::default()),
            loaders_done: Condvar::new(),
            metrics: self.metrics,
            name: self.name,
        };
        Ok(TtlCache {
            inner: Shared::new(inner),
            group: self.group.error_if(Result::is_err).build(),
        })
    }
}

impl<K, V, S: fmt::Debug> fmt::Debug for TtlCacheBuilder<K, V, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TtlCacheBuilder")
            .field("ttl", &self.ttl)
            .field("max_entries", &self.max_entries)
            .field("jitter", &self.jitter)
            .field("error_ttl", &self.error_ttl)
            .field("refresh_after", &self.refresh_after)
            .field("early_refresh", &self.beta)
            .field("clock", &self.clock)
            .field("metrics", &self.metrics)
            .field("group", &self.group)
            .finish()
    }
}
