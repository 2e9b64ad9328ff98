//! `TtlCacheBuilder`: a cache's TTLs, bound, refresh policy, clock,
//! spawner, observer and hasher, checked when it is built.

use crate::group::DefaultHashBuilder;
use std::fmt;
use std::hash::BuildHasher;
use std::io;
use std::time::Duration;

use super::adapt::Adapter;
use super::clock::{nanos, Clock, SystemClock};
use super::inner::{CacheShard, ClockSource, Inner, Loaded, Loaders};
use super::store::Store;
use super::TtlCache;
use crate::error::ConfigError;
use crate::group::{Group, GroupBuilder};
use crate::metrics::Metrics;
use crate::spawn::Job;
use crate::sync::{self, AtomicU64, AtomicUsize, Condvar, Mutex, Shared};

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
            max_batch: usize::MAX,
            group: Group::builder(),
        }
    }
}

/// The default bound: a cache is never unbounded unless asked to be large.
pub const DEFAULT_MAX_ENTRIES: usize = 100_000;

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
pub struct TtlCacheBuilder<K, V, S = DefaultHashBuilder> {
    ttl: Option<Duration>,
    max_entries: usize,
    jitter: f64,
    error_ttl: Option<Duration>,
    refresh_after: Option<Duration>,
    beta: Option<f64>,
    clock: Option<Box<dyn Clock>>,
    metrics: Option<Shared<dyn Metrics>>,
    name: Option<&'static str>,
    /// Set by `max_batch` (in `many.rs`).
    pub(super) max_batch: usize,
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
    /// type) and counts in [`Stats::negative_hits`](crate::Stats::negative_hits), neither a hit nor a
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

    /// The hasher for keys (default [`DefaultHashBuilder`](crate::DefaultHashBuilder)).
    /// `std::collections::hash_map::RandomState` (SipHash) resists HashDoS.
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
            max_batch: self.max_batch,
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
        if self.max_batch == 0 {
            return Err(ConfigError::new("max_batch", "must be at least 1"));
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
        // The bound is kept for the whole cache, so shards are only for
        // concurrency; each policy sees its shard's share of the traffic, so
        // small caches get few shards (a shard of under 64 entries decides
        // evictions on too little).
        let count = sync::default_shards().min(1 << (self.max_entries / 64).max(1).ilog2());
        let share = self.max_entries.div_ceil(count);
        let shards = (0..count)
            .map(|_| CacheShard {
                store: Mutex::new(Store::new(share)),
            })
            .collect();
        let adapter = Adapter::new(self.max_entries);
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
            len: AtomicUsize::new(0),
            max: self.max_entries,
            max_batch: self.max_batch,
            sample_shift: adapter.shift(),
            window: AtomicU64::new(adapter.window().to_bits()),
            adapter: Mutex::new(adapter),
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
            .field("max_batch", &self.max_batch)
            .field("clock", &self.clock)
            .field("metrics", &self.metrics)
            .field("group", &self.group)
            .finish()
    }
}
