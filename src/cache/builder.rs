//! `TtlCacheBuilder`: a cache's TTLs, bound, refresh policy, clock,
//! spawner, observer and hasher (the hooks are set in `options`; `build`
//! checks them all and makes the cache).

use crate::group::DefaultHashBuilder;
use std::hash::BuildHasher;
use std::io;
use std::time::Duration;

use super::clock::Clock;
use super::inner::{Hooks, Loaded};
use super::TtlCache;
use crate::group::{Group, GroupBuilder};
use crate::metrics::Metrics;
use crate::spawn::Job;
use crate::sync::Shared;

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
            max_weight: None,
            time_to_idle: None,
            hooks: Hooks {
                listener: None,
                weigher: None,
                expiry: None,
            },
            resilience: Resilience::default(),
            group: Group::builder(),
        }
    }
}

/// The fail-safe and timeout settings (see `options`).
#[derive(Clone, Copy, Debug)]
pub(super) struct Resilience {
    pub(super) max_stale: Option<Duration>,
    pub(super) throttle: Duration,
    pub(super) soft_timeout: Option<Duration>,
    pub(super) hard_timeout: Option<Duration>,
    pub(super) drop_timeout: Duration,
}

impl Default for Resilience {
    fn default() -> Self {
        Resilience {
            max_stale: None,
            throttle: DEFAULT_FAIL_SAFE_THROTTLE,
            soft_timeout: None,
            hard_timeout: None,
            drop_timeout: DEFAULT_DROP_TIMEOUT,
        }
    }
}

/// How long a fail-safe answer is served before the backend is tried
/// again, unless set with
/// [`fail_safe_throttle`](TtlCacheBuilder::fail_safe_throttle).
pub const DEFAULT_FAIL_SAFE_THROTTLE: Duration = Duration::from_secs(30);

/// How long the last handle's drop waits for the detached loaders it
/// cancelled, unless set with [`drop_timeout`](TtlCacheBuilder::drop_timeout).
pub const DEFAULT_DROP_TIMEOUT: Duration = Duration::from_secs(1);

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
    pub(super) ttl: Option<Duration>,
    pub(super) max_entries: usize,
    pub(super) jitter: f64,
    pub(super) error_ttl: Option<Duration>,
    pub(super) refresh_after: Option<Duration>,
    pub(super) beta: Option<f64>,
    pub(super) clock: Option<Box<dyn Clock>>,
    pub(super) metrics: Option<Shared<dyn Metrics>>,
    pub(super) name: Option<&'static str>,
    pub(super) max_weight: Option<u64>,
    pub(super) time_to_idle: Option<Duration>,
    pub(super) hooks: Hooks<K, V>,
    pub(super) resilience: Resilience,
    pub(super) group: GroupBuilder<K, Loaded<V>, S>,
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
    /// let first = cache.try_get_or_load("k", || Err("down".to_string()));
    /// assert_eq!(*first.clone().unwrap_err(), "down");
    /// assert_eq!(cache.try_get_or_load("k", || Ok(1)), first, "the error is cached");
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

    /// The clock that decides expiry (default [`SystemClock`](crate::SystemClock)).
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
    /// cache.get_or_load_detached("k", |_| 1);
    /// clock.advance(Duration::from_secs(30));
    /// assert_eq!(cache.get_or_load_detached("k", |_| 2), 1, "served; the refresh is queued");
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
            max_weight: self.max_weight,
            time_to_idle: self.time_to_idle,
            hooks: self.hooks,
            resilience: self.resilience,
            group: self.group.hasher(hasher),
        }
    }
}
