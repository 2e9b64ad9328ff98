//! The cache type and what needs no loader: lookups (`get`), writes
//! (`insert`, `invalidate`, `clear`) and counts.

use crate::group::DefaultHashBuilder;
use std::borrow::Borrow;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::panic::{RefUnwindSafe, UnwindSafe};
use std::time::Duration;

use super::clock::nanos;
use super::hooks::RemovalCause;
use super::inner::{Inner, Loaded, Writer};
use super::store::{Cached, Gone, Store};
use crate::group::Group;
use crate::metrics::{CacheEvent, Stats};
use crate::sync::{Mutex, MutexGuard, Ordering, Shared};

/// A cache whose misses load through a [`Group`]: concurrent misses for a key
/// run the loader once, and its value is cached for a time.
///
/// - A fresh hit returns a clone; a miss loads, and the value is stored
///   **before** the load's flight is released, so a caller never finds a key
///   neither cached nor loading; the loading caller checks the cache once
///   more before it runs the loader (it skips the look when nothing was
///   stored in the key's shard since its own lookup missed).
/// - Each entry lives for the default TTL, or a per-call one, optionally
///   shortened by a random jitter so that entries loaded together do not all
///   expire together.
/// - Errors from [`try_get_or_load`](Self::try_get_or_load) reach every
///   caller of that load and are cached only if an error TTL is set.
/// - Bounded by `max_entries`, exactly, for the whole cache: `len()` never
///   exceeds it and a working set that fits never evicts. Every new entry is
///   stored; when the cache is full, an adaptive window TinyLFU decides what
///   leaves: new entries enter a small recency window, and what the window
///   pushes out replaces an older entry only if a frequency sketch says it is
///   asked for more often, so a skewed workload or a loop keeps its hot keys;
///   the window's share grows for workloads where recency pays (it is set by
///   simulating two splits on a sample of the keys). Expired entries go
///   lazily when looked up, and a few at every write. No background thread.
/// - With `refresh_after`, an entry older than that is refreshed once while
///   every other caller keeps getting the current value at once
///   (stale-while-revalidate), and optionally a little before, at random
///   (`early_refresh`, the XFetch rule).
/// - Cheap to [`Clone`]: a clone is another handle on the same entries and
///   loads. For a `static`, build it in a
///   [`LazyLock`](std::sync::LazyLock) (a builder cannot run in a `const`):
///
/// ```
/// use singleflight_sync::TtlCache;
/// use std::sync::LazyLock;
/// use std::time::Duration;
///
/// static USERS: LazyLock<TtlCache<u64, String>> =
///     LazyLock::new(|| TtlCache::new(Duration::from_secs(60)));
/// assert_eq!(USERS.get_or_load(&1, || "ada".into()), "ada");
/// let handle = USERS.clone();
/// assert_eq!(handle.get(&1).as_deref(), Some("ada"), "the same entries");
/// ```
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
pub struct TtlCache<K, V, S = DefaultHashBuilder> {
    pub(super) inner: Shared<Inner<K, V>>,
    pub(super) group: Group<K, Loaded<V>, S>,
}

/// Another handle on the same entries and loads (as moka's `Cache` clones):
/// an entry stored through one is read through every other, and a load led
/// through one is joined through any. It costs two reference counts. The
/// cache closes (see its `Drop`) when its last handle is dropped.
impl<K, V, S: Clone> Clone for TtlCache<K, V, S> {
    fn clone(&self) -> Self {
        self.inner.handles.fetch_add(1, Ordering::Relaxed);
        TtlCache {
            inner: self.inner.clone(),
            group: self.group.clone(),
        }
    }
}

/// A panic in a loader, `Hash`, `Eq`, `Clone`, `Drop`, a listener or a
/// weigher never leaves the cache half-updated (as for [`Group`]), so a cache
/// may be used across `catch_unwind` without `AssertUnwindSafe`.
impl<K, V, S: RefUnwindSafe> RefUnwindSafe for TtlCache<K, V, S> {}

impl<K, V, S: UnwindSafe> UnwindSafe for TtlCache<K, V, S> {}

/// Who looks: `get`, a caller that may load or refresh, or one that may
/// also be answered by a cached error (`try_get_or_load`). (A load's leader
/// checks once more with `Inner::recheck`, not counted again.)
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    Read,
    Load,
    TryLoad,
}

/// What a lookup found.
pub(super) enum Lookup<V> {
    /// A value, or (for `Mode::TryLoad`) a cached error.
    Fresh(Cached<V>),
    /// A value due for a refresh, which this caller was chosen to start.
    Stale(V, u32),
    /// A fail-safe answer: an expired value served for the throttle after
    /// its reload failed.
    Throttled(V),
    /// An expired value the fail-safe keeps: a miss, with something to
    /// answer if the load fails (or, past a soft timeout, takes too long).
    Kept(V),
    Miss,
}

impl<K, V, S> TtlCache<K, V, S>
where
    K: Eq,
    V: Clone,
    S: BuildHasher,
{
    #[inline]
    pub(super) fn shard(&self, hash: u64) -> &Mutex<Store<K, V>> {
        let index = (hash >> 32) as usize & self.inner.mask;
        &self.inner.shards[index].store
    }

    /// Looks `key` up; `refresh` says whether this caller may be chosen to
    /// refresh a stale entry.
    #[inline]
    pub(super) fn lookup<Q>(&self, hash: u64, key: &Q, mode: Mode) -> Lookup<V>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        let now = self.inner.clock.now();
        let mut store = self.shard(hash).lock();
        let pos = store.find(hash, key);
        // The common case first, with nothing to move or drop.
        if let Some(p) = pos {
            let slot = store.slot(p);
            if now < slot.expires && self.inner.plain_hits && slot.is_plain() {
                if let Some(v) = slot.value() {
                    let v = v.clone();
                    store.counts.hits += 1;
                    store.hit(p);
                    drop(store);
                    self.inner.sample(hash);
                    if let Some(m) = &self.inner.metrics {
                        m.cache_event(self.group.name(), CacheEvent::Hit);
                    }
                    return Lookup::Fresh(Cached::Value(v));
                }
            }
        }
        self.lookup_slow(store, hash, now, pos, mode)
    }

    #[cold]
    #[inline(never)]
    pub(super) fn lookup_slow(
        &self,
        mut store: MutexGuard<'_, Store<K, V>>,
        hash: u64,
        now: u64,
        pos: Option<usize>,
        mode: Mode,
    ) -> Lookup<V> {
        let (found, event, gone) = match pos {
            None => (Lookup::Miss, CacheEvent::Miss, None),
            Some(pos)
                if now >= store.slot(pos).expires
                    && now < store.kept_until(pos, self.inner.max_stale) =>
            {
                // Expired, kept by the fail-safe: a miss for every caller,
                // with a fallback for those that load.
                match store.slot(pos).cached() {
                    Cached::Value(v) if mode != Mode::Read => {
                        (Lookup::Kept(v.clone()), CacheEvent::Miss, None)
                    }
                    _ => (Lookup::Miss, CacheEvent::Miss, None),
                }
            }
            Some(pos) if now >= store.slot(pos).expires => {
                store.counts.expirations += 1;
                let mut gone = Gone::new();
                gone.push(store.remove(pos), RemovalCause::Expired);
                self.inner.settle(&mut store);
                (Lookup::Miss, CacheEvent::Miss, Some(gone))
            }
            Some(pos) => {
                if let Some(idle) = self.inner.time_to_idle {
                    let deadline = store.extra(pos).deadline;
                    store.slot(pos).expires = deadline.min(now.saturating_add(idle));
                }
                let refresh_at = store.refresh_at(pos);
                let may_refresh = matches!(mode, Mode::Load | Mode::TryLoad);
                let (plain, refreshing, expires) = {
                    let slot = store.slot(pos);
                    (slot.is_plain(), slot.is_refreshing(), slot.expires)
                };
                // Weighed only for a caller that may start the refresh (an
                // early refresh draws a random number).
                let due = may_refresh
                    && plain
                    && !refreshing
                    && store.with_extras()
                    && self.inner.refresh_due(store.extra(pos), expires, now);
                let slot = store.slot(pos);
                match slot.cached() {
                    // Only `try_get_or_load` can answer with a cached error;
                    // for every other caller it is no entry at all. Never
                    // refreshed: it expires and is loaded again.
                    Cached::Error(e) if mode == Mode::TryLoad => (
                        Lookup::Fresh(Cached::Error(e.clone())),
                        CacheEvent::NegativeHit,
                        None,
                    ),
                    Cached::Error(_) => (Lookup::Miss, CacheEvent::Miss, None),
                    Cached::Value(v) if slot.is_stale() => {
                        (Lookup::Throttled(v.clone()), CacheEvent::FailSafeHit, None)
                    }
                    Cached::Value(v) => {
                        if due {
                            // Cloned before the flag is set: a `V::clone`
                            // that panics leaves the entry refreshable.
                            let found = Lookup::Stale(v.clone(), slot.stamp());
                            slot.set_refreshing(true);
                            store.counts.refreshes += 1;
                            (found, CacheEvent::StaleHit, None)
                        } else if now >= refresh_at {
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
        store.record(hash, pos.filter(|_| gone.is_none()));
        match event {
            CacheEvent::Hit => store.counts.hits += 1,
            CacheEvent::StaleHit => store.counts.stale_hits += 1,
            CacheEvent::NegativeHit => store.counts.negative_hits += 1,
            CacheEvent::FailSafeHit => store.counts.fail_safe_hits += 1,
            _ => store.counts.misses += 1,
        }
        drop(store);
        self.inner.sample(hash);
        if let Some(m) = &self.inner.metrics {
            if gone.is_some() {
                m.cache_event(self.group.name(), CacheEvent::Expiration);
            }
            m.cache_event(self.group.name(), event);
        }
        if let Some(gone) = gone {
            self.inner.dispose(gone);
        }
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
            Lookup::Fresh(Cached::Value(v)) | Lookup::Stale(v, _) | Lookup::Throttled(v) => Some(v),
            _ => None,
        }
    }

    /// Stores `value` for `key` with the default TTL (and jitter), replacing
    /// any entry for it: `get` then returns it until it expires, is evicted
    /// or is replaced. A load of `key` running now leaves its (older) value
    /// out of the cache; its callers still get it. A full cache makes room by
    /// evicting an entry.
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
        let release = |key: &K| {
            self.group.forget(key);
        };
        self.inner.store(
            key,
            hash,
            Cached::Value(value),
            nanos(ttl),
            0,
            Writer::Insert(&release),
            None,
        );
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
        self.inner.len()
    }

    /// The total weight of the entries held (expired ones not yet reclaimed
    /// included), as the [`weigher`](crate::TtlCacheBuilder::weigher)
    /// weighed them; never above `max_weight`. 0 without a weigher.
    ///
    /// # Examples
    ///
    /// ```
    /// use singleflight_sync::TtlCache;
    /// use std::time::Duration;
    ///
    /// let cache: TtlCache<String, String> = TtlCache::builder()
    ///     .ttl(Duration::from_secs(60))
    ///     .weigher(|k: &String, v: &String| (k.len() + v.len()) as u32)
    ///     .max_weight(100)
    ///     .build()
    ///     .unwrap();
    /// cache.insert("ab".into(), "cde".into());
    /// assert_eq!(cache.weighted_size(), 5);
    /// ```
    pub fn weighted_size(&self) -> u64 {
        self.inner.weight.load(Ordering::Relaxed)
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
