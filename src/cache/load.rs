//! The cache's loaders that run on the caller's thread: `get_or_load`,
//! `get_or_load_with_ttl`, `get_or_optionally_load`, `try_get_or_load`,
//! `try_get_or_load_with_ttl`.

use std::borrow::Borrow;
use std::hash::{BuildHasher, Hash};
use std::time::Duration;

use super::clock::nanos;
use super::flight::{Absent, Looked};
use super::inner::{Loaded, RefreshFlag};
use super::lookup::{Lookup, Mode};
use super::store::{AnyError, Cached};
use super::TtlCache;
use crate::sync::Shared;

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
        // Before the lookup: see `Looked::Miss`.
        let writes = self.inner.writes(hash);
        let (looked, _refresh) = match self.lookup(hash, key, Mode::Load) {
            Lookup::Fresh(Cached::Value(v)) | Lookup::Throttled(v) => return v,
            Lookup::Stale(_, stamp) => (
                Looked::Refresh,
                Some(RefreshFlag::new(&self.inner, hash, stamp)),
            ),
            Lookup::Miss => (Looked::Miss(writes), None),
            Lookup::Fresh(Cached::Error(_)) | Lookup::Kept(_) => (Looked::Unsure, None),
        };
        self.load_value(key, hash, ttl, looked, f)
    }

    /// [`load`](Self::load) for an infallible loader. Joining a load that
    /// failed (a `try_get_or_load`'s error, or a detached refresh that
    /// panicked) leaves this caller without a value: that flight has ended,
    /// so it loads again, joining a newer load or leading one with its own
    /// `f`, which is then counted and cached like any load.
    pub(super) fn load_value<Q>(
        &self,
        key: &Q,
        hash: u64,
        ttl: u64,
        refresh: impl Into<Looked>,
        f: impl FnOnce() -> V,
    ) -> V
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let (looked, mut f) = (refresh.into(), Some(f));
        loop {
            let (loaded, _) = self.load(key, hash, ttl, looked, || {
                Ok((f.take().expect("a flight runs its loader once"))())
            });
            match loaded {
                Ok(v) => return v,
                Err(_) if f.is_some() => continue,
                Err(_) => unreachable!("this caller's own loader cannot fail"),
            }
        }
    }

    /// Like [`get_or_load`](Self::get_or_load) for a loader that may find
    /// nothing: `Some(v)` is cached as any load; `None` is shared with every
    /// caller of that load and nothing is stored (the next call loads
    /// again), and it is not counted as a failed load. For "not found"
    /// answers that should be remembered, cache an `Option<V>` with
    /// [`get_or_load`](Self::get_or_load) instead.
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
    /// let users = [(1, "ada")];
    /// let find = |id: u64| users.iter().find(|u| u.0 == id).map(|u| u.1.to_string());
    /// let cache: TtlCache<u64, String> = TtlCache::new(Duration::from_secs(60));
    /// assert_eq!(cache.get_or_optionally_load(&1, || find(1)).as_deref(), Some("ada"));
    /// assert_eq!(cache.get_or_optionally_load(&2, || find(2)), None);
    /// assert_eq!((cache.len(), cache.stats().loads), (1, 2), "the miss was not stored");
    /// ```
    #[track_caller]
    pub fn get_or_optionally_load<Q>(&self, key: &Q, f: impl FnOnce() -> Option<V>) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let (hash, _) = self.group.locate(key);
        let writes = self.inner.writes(hash);
        let (looked, _refresh) = match self.lookup(hash, key, Mode::Load) {
            Lookup::Fresh(Cached::Value(v)) | Lookup::Throttled(v) => return Some(v),
            Lookup::Stale(_, stamp) => (
                Looked::Refresh,
                Some(RefreshFlag::new(&self.inner, hash, stamp)),
            ),
            Lookup::Miss => (Looked::Miss(writes), None),
            Lookup::Fresh(Cached::Error(_)) | Lookup::Kept(_) => (Looked::Unsure, None),
        };
        let found = self.try_load_value(key, hash, self.inner.ttl, looked, || f().ok_or(Absent));
        found.ok()
    }

    /// Like [`get_or_load`](Self::get_or_load) for a loader that can fail.
    ///
    /// The error is put in an `Arc` once and every caller of that load gets
    /// a clone of the `Arc`, so `E` need not be `Clone` (as moka shares
    /// loader errors): a database or `io::Error`-carrying error type works as
    /// it is.
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
    /// use std::{io, time::Duration};
    ///
    /// let cache: TtlCache<String, u32> = TtlCache::new(Duration::from_secs(60));
    /// let r = cache.try_get_or_load("k", || Err(io::Error::new(io::ErrorKind::TimedOut, "db")));
    /// assert_eq!(r.unwrap_err().kind(), io::ErrorKind::TimedOut);
    /// // Not cached: the next call loads again.
    /// assert_eq!(cache.try_get_or_load("k", || Ok::<_, io::Error>(5)).unwrap(), 5);
    /// ```
    #[track_caller]
    pub fn try_get_or_load<Q, E>(
        &self,
        key: &Q,
        f: impl FnOnce() -> Result<V, E>,
    ) -> Result<V, Shared<E>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
        E: Send + Sync + 'static,
    {
        self.try_load_inline(key, self.inner.ttl, f)
    }

    /// [`try_get_or_load`](Self::try_get_or_load), caching a loaded value
    /// for `ttl` instead of the default (a cached error keeps the
    /// `error_ttl`).
    ///
    /// # Errors
    ///
    /// As [`try_get_or_load`](Self::try_get_or_load).
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
    /// let short = Duration::from_secs(1);
    /// assert_eq!(cache.try_get_or_load_with_ttl("k", short, || Ok::<_, String>(1)).unwrap(), 1);
    /// clock.advance(short);
    /// assert_eq!(cache.get("k"), None, "expired after its own TTL");
    /// ```
    #[track_caller]
    pub fn try_get_or_load_with_ttl<Q, E>(
        &self,
        key: &Q,
        ttl: Duration,
        f: impl FnOnce() -> Result<V, E>,
    ) -> Result<V, Shared<E>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
        E: Send + Sync + 'static,
    {
        self.try_load_inline(key, nanos(ttl), f)
    }

    #[track_caller]
    fn try_load_inline<Q, E>(
        &self,
        key: &Q,
        ttl: u64,
        f: impl FnOnce() -> Result<V, E>,
    ) -> Result<V, Shared<E>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
        E: Send + Sync + 'static,
    {
        let (hash, _) = self.group.locate(key);
        let writes = self.inner.writes(hash);
        let (looked, refresh, current) = match self.lookup(hash, key, Mode::TryLoad) {
            Lookup::Fresh(Cached::Value(v)) | Lookup::Throttled(v) => return Ok(v),
            Lookup::Fresh(Cached::Error(e)) => match e.downcast::<E>() {
                Ok(e) => return Err(e),
                Err(_) => (Looked::Unsure, None, None),
            },
            Lookup::Stale(v, stamp) => (
                Looked::Refresh,
                Some(RefreshFlag::new(&self.inner, hash, stamp)),
                Some(v),
            ),
            Lookup::Miss => (Looked::Miss(writes), None, None),
            Lookup::Kept(_) => (Looked::Unsure, None, None),
        };
        let loaded = self.try_load_value(key, hash, ttl, looked, f);
        drop(refresh);
        match loaded {
            Err(_) if current.is_some() => Ok(current.expect("checked just above")),
            loaded => loaded,
        }
    }

    /// [`load`](Self::load) for a loader with error type `E`. Joining a load
    /// that failed in a way this caller cannot share (another error type, a
    /// refresh's panic) leaves it without an answer: that flight has ended,
    /// so it loads again, as [`load_value`](Self::load_value) does.
    pub(super) fn try_load_value<Q, E>(
        &self,
        key: &Q,
        hash: u64,
        ttl: u64,
        refresh: impl Into<Looked>,
        f: impl FnOnce() -> Result<V, E>,
    ) -> Result<V, Shared<E>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
        E: Send + Sync + 'static,
    {
        self.try_load_entry(key, hash, ttl, refresh, f)
            .map(|(v, _)| v)
    }

    /// [`try_load_value`](Self::try_load_value), also saying whether the
    /// value is a fail-safe answer.
    pub(super) fn try_load_entry<Q, E>(
        &self,
        key: &Q,
        hash: u64,
        ttl: u64,
        refresh: impl Into<Looked>,
        f: impl FnOnce() -> Result<V, E>,
    ) -> Result<(V, bool), Shared<E>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
        E: Send + Sync + 'static,
    {
        let (looked, mut f) = (refresh.into(), Some(f));
        loop {
            let (loaded, stale) = self.load(key, hash, ttl, looked, || {
                (f.take().expect("a flight runs its loader once"))()
                    .map_err(|e| Shared::new(e) as AnyError)
            });
            match loaded {
                Ok(v) => return Ok((v, stale)),
                Err(e) => match e.downcast::<E>() {
                    Ok(e) => return Err(e),
                    Err(_) if f.is_some() => continue,
                    Err(_) => unreachable!("this caller's own loader fails with its own type"),
                },
            }
        }
    }

    /// Loads through the group (see `Inner::lead`); returns the flight's
    /// answer for this caller and whether it is a fail-safe one.
    pub(super) fn load<Q>(
        &self,
        key: &Q,
        hash: u64,
        ttl: u64,
        looked: Looked,
        f: impl FnOnce() -> Loaded<V>,
    ) -> (Loaded<V>, bool)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let mut mine = None;
        let flight = self.group.work_with(key, |flight| {
            self.inner.lead(
                &self.group.shards,
                flight,
                key,
                hash,
                ttl,
                looked,
                f,
                &mut mine,
            )
        });
        self.inner.answer(flight.value, mine, hash, key)
    }
}
