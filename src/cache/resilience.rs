//! Resilience when the backend fails or slows: the builder's fail-safe,
//! soft and hard timeouts and drop bound, and the entry-returning loaders
//! that say whether an answer is a stale one (`get_or_load_entry`, and
//! `get_or_load_entry_detached`, which honours the timeouts).

use std::borrow::Borrow;
use std::hash::{BuildHasher, Hash};
use std::time::{Duration, Instant};

use crossbeam_channel::RecvTimeoutError;

use super::lookup::{Lookup, Mode};
use super::store::{AnyError, Cached};
use super::{TtlCache, TtlCacheBuilder};
use crate::cancel::CancelToken;
use crate::error::TryError;
use crate::sync::Shared;

impl<K, V, S> TtlCacheBuilder<K, V, S> {
    /// The fail-safe: an expired value is kept (counting toward the bound)
    /// for up to `max_stale` past its TTL, and when the load that replaces
    /// it fails (an `Err`, or a panic, which is then caught), every caller
    /// of that load gets the kept value instead of the failure. The value is
    /// then served for the [`fail_safe_throttle`](Self::fail_safe_throttle)
    /// (never past `max_stale`) before the backend is tried again, so a
    /// downed backend sees at most one try per key per throttle. Fail-safe
    /// answers count in [`Stats::fail_safe_hits`](crate::Stats::fail_safe_hits);
    /// [`get_or_load_entry`](TtlCache::get_or_load_entry) tells them apart.
    /// With nothing kept, a failure reaches the callers as without it.
    /// `get` never returns an expired value, fail-safe or not.
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
    ///     .fail_safe(Duration::from_secs(3600))
    ///     .fail_safe_throttle(Duration::from_secs(5))
    ///     .clock(clock.clone())
    ///     .build()
    ///     .unwrap();
    /// cache.get_or_load("k", || 1);
    /// clock.advance(Duration::from_secs(10));
    /// // Expired, and the backend is down: the kept value answers.
    /// assert_eq!(cache.try_get_or_load("k", || Err("down")).unwrap(), 1);
    /// // For the throttle, the backend is not asked again.
    /// assert_eq!(cache.try_get_or_load("k", || -> Result<u32, &str> { unreachable!() }).unwrap(), 1);
    /// assert_eq!(cache.stats().fail_safe_hits, 2);
    /// ```
    pub fn fail_safe(mut self, max_stale: Duration) -> Self {
        self.resilience.max_stale = Some(max_stale);
        self
    }

    /// How long a fail-safe answer is served before the backend is tried
    /// again (default [`DEFAULT_FAIL_SAFE_THROTTLE`](crate::DEFAULT_FAIL_SAFE_THROTTLE), 30 s;
    /// not zero). See [`fail_safe`](Self::fail_safe).
    ///
    /// # Examples
    ///
    /// ```
    /// use singleflight_sync::TtlCache;
    /// use std::time::Duration;
    ///
    /// let zero = TtlCache::<String, u32>::builder()
    ///     .ttl(Duration::from_secs(10))
    ///     .fail_safe(Duration::from_secs(60))
    ///     .fail_safe_throttle(Duration::ZERO)
    ///     .build();
    /// assert_eq!(zero.unwrap_err().setting(), "fail_safe_throttle");
    /// ```
    pub fn fail_safe_throttle(mut self, throttle: Duration) -> Self {
        self.resilience.throttle = throttle;
        self
    }

    /// With a value kept by the [`fail_safe`](Self::fail_safe), callers of
    /// [`get_or_load_entry_detached`](TtlCache::get_or_load_entry_detached)
    /// wait at most this long for its load, then get the kept value; the load
    /// goes on on the spawner, and its value is stored when it arrives. Not
    /// zero; not above the hard timeout.
    ///
    /// # Examples
    ///
    /// See [`get_or_load_entry_detached`](TtlCache::get_or_load_entry_detached).
    pub fn soft_timeout(mut self, timeout: Duration) -> Self {
        self.resilience.soft_timeout = Some(timeout);
        self
    }

    /// Callers of [`get_or_load_entry_detached`](TtlCache::get_or_load_entry_detached)
    /// never wait longer than this for a load, kept value or not: past it they
    /// get the kept value, or [`TryError::Timeout`] when there is none. The
    /// load goes on on the spawner, and its value is stored when it arrives.
    /// Not zero.
    ///
    /// # Examples
    ///
    /// See [`get_or_load_entry_detached`](TtlCache::get_or_load_entry_detached).
    pub fn hard_timeout(mut self, timeout: Duration) -> Self {
        self.resilience.hard_timeout = Some(timeout);
        self
    }

    /// How long dropping the cache's last handle waits for the detached
    /// loaders it cancelled (default [`DEFAULT_DROP_TIMEOUT`](crate::DEFAULT_DROP_TIMEOUT),
    /// 1 s). See the cache's `Drop`.
    ///
    /// # Examples
    ///
    /// ```
    /// use singleflight_sync::TtlCache;
    /// use std::time::{Duration, Instant};
    ///
    /// let cache: TtlCache<String, u32> = TtlCache::builder()
    ///     .ttl(Duration::from_secs(60))
    ///     .drop_timeout(Duration::from_millis(50))
    ///     .build()
    ///     .unwrap();
    /// let start = Instant::now();
    /// drop(cache);
    /// assert!(start.elapsed() < Duration::from_secs(5));
    /// ```
    pub fn drop_timeout(mut self, timeout: Duration) -> Self {
        self.resilience.drop_timeout = timeout;
        self
    }
}

/// A value with where it came from: fresh (cached and within its TTL, or
/// just loaded), or stale (an expired value the fail-safe answered with).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry<V> {
    value: V,
    stale: bool,
}

impl<V> Entry<V> {
    /// The value.
    pub fn value(&self) -> &V {
        &self.value
    }

    /// The value, owned.
    pub fn into_value(self) -> V {
        self.value
    }

    /// Whether this is an expired value served by the fail-safe (its reload
    /// failed, or took longer than a timeout).
    pub fn is_stale(&self) -> bool {
        self.stale
    }
}

impl<K, V, S> TtlCache<K, V, S>
where
    K: Eq + Hash,
    V: Clone,
    S: BuildHasher,
{
    /// [`try_get_or_load`](Self::try_get_or_load), saying whether the answer
    /// is a fail-safe one ([`Entry::is_stale`]).
    ///
    /// # Errors
    ///
    /// As [`try_get_or_load`](Self::try_get_or_load), when no value is kept
    /// to answer for the failure.
    ///
    /// # Panics
    ///
    /// As [`get_or_load`](Self::get_or_load), unless a kept value answers
    /// for the panic.
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
    ///     .fail_safe(Duration::from_secs(60))
    ///     .clock(clock.clone())
    ///     .build()
    ///     .unwrap();
    /// let fresh = cache.get_or_load_entry("k", || Ok::<_, String>(1)).unwrap();
    /// assert!(!fresh.is_stale());
    /// clock.advance(Duration::from_secs(10));
    /// let stale = cache.get_or_load_entry("k", || Err("down".to_string())).unwrap();
    /// assert_eq!((*stale.value(), stale.is_stale()), (1, true));
    /// ```
    #[track_caller]
    pub fn get_or_load_entry<Q, E>(
        &self,
        key: &Q,
        f: impl FnOnce() -> Result<V, E>,
    ) -> Result<Entry<V>, Shared<E>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
        E: Send + Sync + 'static,
    {
        let (hash, _) = self.group.locate(key);
        match self.lookup(hash, key, Mode::TryLoad) {
            Lookup::Fresh(Cached::Value(value)) => {
                return Ok(Entry {
                    value,
                    stale: false,
                })
            }
            Lookup::Throttled(value) => return Ok(Entry { value, stale: true }),
            Lookup::Fresh(Cached::Error(e)) => {
                if let Ok(e) = e.downcast::<E>() {
                    return Err(e);
                }
            }
            // A refresh due is not taken here: this caller loads only when
            // it must, and its answer is the entry's.
            Lookup::Stale(value, stamp) => {
                drop(super::inner::RefreshFlag::new(&self.inner, hash, stamp));
                return Ok(Entry {
                    value,
                    stale: false,
                });
            }
            Lookup::Kept(_) | Lookup::Miss => {}
        }
        let (value, stale) = self.try_load_entry(key, hash, self.inner.ttl, false, f)?;
        Ok(Entry { value, stale })
    }
}

impl<K, V, S> TtlCache<K, V, S>
where
    K: Eq + Hash + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    S: BuildHasher,
{
    /// The resilient loader: like [`get_or_load_entry`](Self::get_or_load_entry),
    /// but the load runs on the cache's spawner (so `f` must be
    /// `Send + 'static`, and gets a [`CancelToken`] that the cache's drop
    /// cancels), and callers wait for it at most the
    /// [`soft_timeout`](TtlCacheBuilder::soft_timeout) when a value is kept
    /// to fall back on, and at most the
    /// [`hard_timeout`](TtlCacheBuilder::hard_timeout) in any case. A caller
    /// that stops waiting leaves the load running: its value is stored when
    /// it arrives. Without timeouts, callers wait for the load.
    ///
    /// # Errors
    ///
    /// [`TryError::Failed`] with `f`'s error, shared by the load's callers,
    /// when no value is kept to answer; [`TryError::Timeout`] at the hard
    /// timeout with no kept value; [`TryError::Panicked`] if `f` panicked
    /// with no kept value; [`TryError::Spawn`] if the spawner failed;
    /// [`TryError::Cancelled`] if the load was cancelled.
    ///
    /// # Panics
    ///
    /// If called for `key` from inside a loader computing `key` on this
    /// thread.
    ///
    /// # Examples
    ///
    /// ```
    /// use singleflight_sync::{ManualClock, TryError, TtlCache};
    /// use std::time::Duration;
    ///
    /// let clock = ManualClock::new();
    /// let cache: TtlCache<String, u32> = TtlCache::builder()
    ///     .ttl(Duration::from_secs(10))
    ///     .fail_safe(Duration::from_secs(600))
    ///     .soft_timeout(Duration::from_millis(20))
    ///     .hard_timeout(Duration::from_millis(200))
    ///     .clock(clock.clone())
    ///     .build()
    ///     .unwrap();
    /// let slow = |v| move |token: &singleflight_sync::CancelToken| {
    ///     token.wait_timeout(Duration::from_millis(500));
    ///     Ok::<_, String>(v)
    /// };
    /// // Nothing kept: the hard timeout ends the wait.
    /// let none = cache.get_or_load_entry_detached("k", slow(1));
    /// assert!(matches!(none, Err(TryError::Timeout)));
    /// while cache.get("k") != Some(1) {
    ///     std::thread::yield_now(); // the load went on and stored its value
    /// }
    /// clock.advance(Duration::from_secs(10));
    /// // Expired and kept: the soft timeout answers with the kept value.
    /// let kept = cache.get_or_load_entry_detached("k", slow(2)).unwrap();
    /// assert_eq!((*kept.value(), kept.is_stale()), (1, true));
    /// ```
    pub fn get_or_load_entry_detached<Q, E, F>(
        &self,
        key: &Q,
        f: F,
    ) -> Result<Entry<V>, TryError<E>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
        E: Send + Sync + 'static,
        F: FnOnce(&CancelToken) -> Result<V, E> + Send + 'static,
    {
        let (hash, _) = self.group.locate(key);
        let kept = match self.lookup(hash, key, Mode::TryLoad) {
            Lookup::Fresh(Cached::Value(value)) => {
                return Ok(Entry {
                    value,
                    stale: false,
                })
            }
            Lookup::Throttled(value) => return Ok(Entry { value, stale: true }),
            Lookup::Fresh(Cached::Error(e)) => match e.downcast::<E>() {
                Ok(e) => return Err(TryError::Failed(e)),
                Err(_) => None,
            },
            Lookup::Stale(value, stamp) => {
                self.refresh_detached_fallible(key, hash, stamp, f);
                return Ok(Entry {
                    value,
                    stale: false,
                });
            }
            Lookup::Kept(v) => Some(v),
            Lookup::Miss => None,
        };
        let wait = match (&kept, self.inner.soft_timeout, self.inner.hard_timeout) {
            (Some(_), Some(soft), _) => Some(soft),
            (_, _, hard) => hard,
        };
        let deadline = wait.and_then(|w| Instant::now().checked_add(w));
        let rx = self.spawn_load(key, hash, None, move |token| {
            f(token).map_err(|e| Shared::new(e) as AnyError)
        });
        let reply = match deadline {
            Some(deadline) => rx.recv_deadline(deadline),
            None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        // Dropping `rx` leaves the load running; it stores what it loads.
        let give_up = |kept: Option<V>, e: TryError<E>| match kept {
            Some(value) => Ok(Entry { value, stale: true }),
            None => Err(e),
        };
        match reply {
            Ok(Ok(flight)) => {
                let (loaded, stale) = self.inner.answer(flight.value, None, hash, key);
                match loaded {
                    Ok(value) => Ok(Entry { value, stale }),
                    Err(e) => match e.downcast::<E>() {
                        Ok(e) => give_up(kept, TryError::Failed(e)),
                        // Not this caller's type (another loader's error, or
                        // a fail-safe answer gone meanwhile): the kept value,
                        // or the flight's failure as a panic-free error.
                        Err(_) => give_up(kept, TryError::Cancelled),
                    },
                }
            }
            Ok(Err(e)) => give_up(kept, e.into()),
            Err(RecvTimeoutError::Timeout) => give_up(kept, TryError::Timeout),
            Err(RecvTimeoutError::Disconnected) => give_up(kept, TryError::Cancelled),
        }
    }

    fn refresh_detached_fallible<Q, E, F>(&self, key: &Q, hash: u64, stamp: u32, f: F)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
        E: Send + Sync + 'static,
        F: FnOnce(&CancelToken) -> Result<V, E> + Send + 'static,
    {
        self.refresh_detached(key, hash, stamp, move |token| {
            f(token).map_err(|e| Shared::new(e) as AnyError)
        });
    }
}
