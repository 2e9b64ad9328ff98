//! The cache's loaders that run on the caller's thread: `get_or_load`,
//! `get_or_load_with_ttl`, `try_get_or_load`.

use std::borrow::Borrow;
use std::hash::{BuildHasher, Hash};
use std::time::Duration;

use super::clock::nanos;
use super::inner::{Loaded, RefreshFlag, Writer};
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
    pub(super) fn load_value<Q>(
        &self,
        key: &Q,
        hash: u64,
        ttl: u64,
        refresh: bool,
        f: impl FnOnce() -> V,
    ) -> V
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
        self.group
            .work_with(key, |flight| {
                if !refresh {
                    if let Lookup::Fresh(Cached::Value(v)) = self.lookup(hash, key, Mode::Recheck) {
                        return Ok(v);
                    }
                }
                self.inner.load_started(hash);
                let start = self.inner.clock.now();
                let loaded = f();
                let delta = self.inner.clock.now().saturating_sub(start);
                let (cached, ttl) = match &loaded {
                    Ok(v) => (Cached::Value(v.clone()), ttl),
                    Err(e) => {
                        self.shard(hash).lock().counts.load_errors += 1;
                        match self.inner.error_ttl {
                            // A failed refresh keeps the current value.
                            Some(error_ttl) if !refresh => (Cached::Error(e.clone()), error_ttl),
                            _ => return loaded,
                        }
                    }
                };
                let writer = Writer::Load(&self.group.shards, flight);
                self.inner
                    .store(key.to_owned(), hash, cached, ttl, delta, writer);
                loaded
            })
            .value
    }
}
