//! Batch loaders: `get_or_load_many`, `try_get_or_load_many`, and the
//! builder's `max_batch`.
//!
//! Fresh entries answer at once; the other keys go through the group's
//! batch core, which joins the loads running for some and leads a flight
//! for each of the rest. Inside those flights, the loader runs once (or once
//! per `max_batch` keys) and each value is stored before its flight is
//! released, under the same rule as a single-key load (`Writer::Load`: not
//! if the flight was released meanwhile). A key the loader's answer leaves
//! out is "not found": its flight ends so, and with an `error_ttl` the cache
//! remembers that for so long. An entry due for a refresh is refreshed in
//! the same call, as `get_or_load` refreshes on the caller's thread.

use std::any::Any;
use std::borrow::Borrow;
use std::convert::Infallible;
use std::hash::{BuildHasher, Hash};

use super::flight::Recheck;
use super::inner::{Loaded, RefreshFlag, Writer};
use super::lookup::{Lookup, Mode};
use super::store::{AnyError, Cached};
use super::{TtlCache, TtlCacheBuilder};
use crate::group::FlightRef;
use crate::sync::Shared;

/// What a negative entry holds for a key a batch's answer left out.
pub(super) struct NotFound;

/// One key's answer so far.
pub(super) enum Found<V> {
    Value(V),
    /// Not found: the loader's answer, or a cached negative entry, has none.
    Absent,
    /// A load failed with an error this caller shares.
    Failed(AnyError),
    /// Due for a refresh, which this caller runs: the current value, kept
    /// if the refresh fails.
    Refresh(V),
    /// Not answered yet.
    Pending,
}

impl<K, V, S> TtlCacheBuilder<K, V, S> {
    /// Splits a batch's missing keys into calls of its loader of at most
    /// `max_batch` keys each (a backend that takes at most so many ids a
    /// request, or a statement with at most so many parameters). The calls
    /// run one after the other, on the caller's thread; every key's flight
    /// can be joined from the start. Unlimited by default.
    ///
    /// # Examples
    ///
    /// ```
    /// use singleflight_sync::TtlCache;
    /// use std::time::Duration;
    ///
    /// let cache: TtlCache<u32, u32> = TtlCache::builder()
    ///     .ttl(Duration::from_secs(60))
    ///     .max_batch(2)
    ///     .build()
    ///     .unwrap();
    /// let mut calls = Vec::new();
    /// let got = cache.get_or_load_many(&[1, 2, 3], |ids| {
    ///     calls.push(ids.len());
    ///     ids.iter().map(|&&id| (id, id * 10)).collect::<Vec<_>>()
    /// });
    /// assert_eq!(got, [Some(10), Some(20), Some(30)]);
    /// assert_eq!(calls, [2, 1]);
    /// let zero = TtlCache::<u32, u32>::builder().ttl(Duration::from_secs(1)).max_batch(0).build();
    /// assert_eq!(zero.unwrap_err().setting(), "max_batch");
    /// ```
    pub fn max_batch(mut self, max_batch: usize) -> Self {
        self.max_batch = max_batch;
        self
    }
}

impl<K, V, S> TtlCache<K, V, S> {
    /// The number of loads running now (single-key and batch ones, one per
    /// key; refreshes included). 0 when the cache is idle.
    ///
    /// # Examples
    ///
    /// ```
    /// let cache = singleflight_sync::TtlCache::<u64, usize>::new(std::time::Duration::from_secs(9));
    /// let inside = cache.get_or_load_many(&[1, 2], |ids| {
    ///     ids.iter().map(|&&id| (id, cache.in_flight())).collect::<Vec<_>>()
    /// });
    /// assert_eq!(inside, [Some(2), Some(2)]);
    /// assert_eq!(cache.in_flight(), 0);
    /// ```
    pub fn in_flight(&self) -> usize {
        self.group.in_flight()
    }
}

impl<K, V, S> TtlCache<K, V, S>
where
    K: Eq + Hash,
    V: Clone,
    S: BuildHasher,
{
    /// The values for `keys`, in the order asked: cached ones at once, the
    /// others loaded by **one** call of `load` for the keys nobody is
    /// loading (or one per [`max_batch`](TtlCacheBuilder::max_batch) keys),
    /// joining the loads already running for the rest, and cached for the
    /// default TTL.
    ///
    /// Each missing key is its own load: while `load` runs, single-key
    /// callers ([`get_or_load`](Self::get_or_load) and its kin) and other
    /// batches asking for one of its keys wait for it and get the same
    /// value. Each value is stored before its key's load ends. `load` gets
    /// the distinct keys to load, and answers with `(key, value)` pairs in
    /// any order (a `HashMap<K, V>`, a `Vec`, an iterator over rows).
    ///
    /// A key the answer leaves out is **not found**: `None` at its position.
    /// Without an [`error_ttl`](TtlCacheBuilder::error_ttl), nothing is
    /// cached for it; with one, the cache remembers it as not found for that
    /// long, and batches answer `None` for it without loading (single-key
    /// calls and [`get`](Self::get) treat it as no entry). A single-key
    /// caller that joined such a key's load loads it again with its own
    /// loader.
    ///
    /// An entry due for a refresh (past `refresh_after`, or chosen early)
    /// is refreshed here, as [`get_or_load`](Self::get_or_load) does: its
    /// key goes to the same call of `load`, and this caller gets the new
    /// value. If that call fails, the current value is kept (and
    /// returned); if its answer leaves the key out, the entry is removed
    /// (or, with an `error_ttl`, replaced by a not-found entry).
    ///
    /// [`Stats::loads`](crate::Stats::loads) counts one load per key loaded.
    ///
    /// # Panics
    ///
    /// If `load` panics: the panic unwinds in this caller, every caller
    /// waiting for one of the keys of that call panics with a
    /// [`LeaderPanicked`](crate::LeaderPanicked) payload, nothing of that
    /// call is cached, and no key is left loading. If a load this caller
    /// joined panicked, it panics with that load's payload.
    ///
    /// # Examples
    ///
    /// ```
    /// use singleflight_sync::TtlCache;
    /// use std::collections::HashMap;
    /// use std::time::Duration;
    ///
    /// let db = HashMap::from([(1, "Ada"), (2, "Alan"), (3, "Grace")]);
    /// let cache: TtlCache<u64, String> = TtlCache::new(Duration::from_secs(60));
    /// cache.insert(1, "Ada".to_string());
    /// let users = cache.get_or_load_many(&[1, 2, 4], |ids| {
    ///     // `SELECT id, name FROM users WHERE id IN (2, 4)`: 1 is cached.
    ///     assert_eq!(ids, [&2, &4]);
    ///     ids.iter()
    ///         .filter_map(|&&id| db.get(&id).map(|name| (id, name.to_string())))
    ///         .collect::<HashMap<_, _>>()
    /// });
    /// assert_eq!(users, [Some("Ada".into()), Some("Alan".into()), None]);
    /// assert_eq!(cache.get(&2).as_deref(), Some("Alan"));
    /// ```
    #[track_caller]
    pub fn get_or_load_many<'q, Q, A>(
        &self,
        keys: impl IntoIterator<Item = &'q Q>,
        mut load: impl FnMut(&[&Q]) -> A,
    ) -> Vec<Option<V>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized + 'q,
        A: IntoIterator<Item = (K, V)>,
    {
        let keys: Vec<&Q> = keys.into_iter().collect();
        let found = self.load_many(&keys, |_| false, |asked| Ok::<_, Infallible>(load(asked)));
        found
            .into_iter()
            .map(|found| match found {
                Found::Value(v) => Some(v),
                Found::Absent => None,
                Found::Failed(_) | Found::Pending | Found::Refresh(_) => {
                    unreachable!("an infallible batch shares no error and answers every key")
                }
            })
            .collect()
    }

    /// [`get_or_load_many`](Self::get_or_load_many) for a loader that can
    /// fail. An error is shared, as an `Arc<E>` (`E` need not be `Clone`),
    /// with every caller waiting for one of the keys of that call of `load`.
    ///
    /// # Errors
    ///
    /// The first error among the keys asked for: `load`'s, or that of a load
    /// of the same error type this caller joined (a single-key
    /// [`try_get_or_load`](Self::try_get_or_load) included). The other keys
    /// are still cached. An error is cached only with an
    /// [`error_ttl`](TtlCacheBuilder::error_ttl), for that long, for every
    /// key of the call that failed. A joined load that failed with another
    /// error type (or panicked while refreshing) is loaded again.
    ///
    /// # Panics
    ///
    /// As [`get_or_load_many`](Self::get_or_load_many).
    ///
    /// # Examples
    ///
    /// ```
    /// use singleflight_sync::TtlCache;
    /// use std::time::Duration;
    ///
    /// #[derive(Debug)]
    /// struct Down; // not `Clone`
    ///
    /// let cache: TtlCache<u64, u64> = TtlCache::new(Duration::from_secs(60));
    /// let r = cache.try_get_or_load_many(&[1, 2], |_| Err::<Vec<(u64, u64)>, _>(Down));
    /// assert!(matches!(r, Err(e) if matches!(*e, Down)));
    /// // Not cached: the next call loads again.
    /// let r = cache.try_get_or_load_many(&[1, 2], |ids| {
    ///     Ok::<_, Down>(ids.iter().map(|&&id| (id, id + 100)).collect::<Vec<_>>())
    /// });
    /// assert_eq!(r.unwrap(), [Some(101), Some(102)]);
    /// ```
    #[track_caller]
    pub fn try_get_or_load_many<'q, Q, A, E>(
        &self,
        keys: impl IntoIterator<Item = &'q Q>,
        load: impl FnMut(&[&Q]) -> Result<A, E>,
    ) -> Result<Vec<Option<V>>, Shared<E>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized + 'q,
        A: IntoIterator<Item = (K, V)>,
        E: Send + Sync + 'static,
    {
        let keys: Vec<&Q> = keys.into_iter().collect();
        let found = self.load_many(&keys, |e| e.is::<E>(), load);
        let mut out = Vec::with_capacity(found.len());
        for found in found {
            match found {
                Found::Value(v) => out.push(Some(v)),
                Found::Absent => out.push(None),
                Found::Failed(e) => {
                    return Err(e
                        .downcast::<E>()
                        .unwrap_or_else(|_| unreachable!("only errors of type `E` are shared")))
                }
                Found::Pending | Found::Refresh(_) => unreachable!("every key is answered"),
            }
        }
        Ok(out)
    }

    /// The batch loader: every key answered, in order. `shares` says which
    /// errors (cached, or from a load joined) this caller returns; a joined
    /// load that failed otherwise is loaded again.
    #[track_caller]
    fn load_many<Q, A, E>(
        &self,
        keys: &[&Q],
        shares: impl Fn(&(dyn Any + Send + Sync)) -> bool,
        load: impl FnMut(&[&Q]) -> Result<A, E>,
    ) -> Vec<Found<V>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
        A: IntoIterator<Item = (K, V)>,
        E: Send + Sync + 'static,
    {
        let mut flags = Vec::new();
        let found: Vec<Found<V>> = keys
            .iter()
            .map(|key| self.look_up_for_batch(key, &shares, &mut flags))
            .collect();
        self.resolve(keys, found, flags, shares, load)
    }

    /// Answers every key `found` has not answered yet: due refreshes (whose
    /// `flags` are held until every key is answered, so a refresh that ends
    /// without replacing its entry hands the turn to a later caller) and
    /// misses, through the group's batch core.
    #[track_caller]
    pub(super) fn resolve<Q, A, E>(
        &self,
        keys: &[&Q],
        mut found: Vec<Found<V>>,
        flags: Vec<RefreshFlag<K, V>>,
        shares: impl Fn(&(dyn Any + Send + Sync)) -> bool,
        mut load: impl FnMut(&[&Q]) -> Result<A, E>,
    ) -> Vec<Found<V>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
        A: IntoIterator<Item = (K, V)>,
        E: Send + Sync + 'static,
    {
        let refreshing: Vec<&Q> = (0..keys.len())
            .filter(|&p| matches!(found[p], Found::Refresh(_)))
            .map(|p| keys[p])
            .collect();
        loop {
            let missing: Vec<usize> = (0..keys.len())
                .filter(|&p| matches!(found[p], Found::Pending | Found::Refresh(_)))
                .collect();
            if missing.is_empty() {
                drop(flags);
                return found;
            }
            let asked: Vec<&Q> = missing.iter().map(|&p| keys[p]).collect();
            let loaded = self
                .group
                .many_with(&asked, self.inner.max_batch, |asked, flights| {
                    self.load_batch(asked, flights, &refreshing, &mut load)
                });
            for (p, loaded) in missing.into_iter().zip(loaded) {
                let current = match std::mem::replace(&mut found[p], Found::Pending) {
                    Found::Refresh(v) => Some(v),
                    _ => None,
                };
                found[p] = match (loaded, current) {
                    (Some(Ok(v)), _) => Found::Value(v),
                    (None, _) => Found::Absent,
                    // A failed refresh keeps the current value.
                    (Some(Err(_)), Some(v)) => Found::Value(v),
                    (Some(Err(e)), None) if shares(&*e) => Found::Failed(e),
                    // Another caller's failure, not this caller's to share:
                    // that load has ended, so this key is asked for again.
                    (Some(Err(_)), None) => Found::Pending,
                };
            }
        }
    }

    /// One key's cached answer for a batch, if fresh; an entry this caller
    /// is to refresh adds its flag to `flags`.
    pub(super) fn look_up_for_batch<Q>(
        &self,
        key: &Q,
        shares: &impl Fn(&(dyn Any + Send + Sync)) -> bool,
        flags: &mut Vec<RefreshFlag<K, V>>,
    ) -> Found<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let (hash, _) = self.group.locate(key);
        match self.lookup(hash, key, Mode::TryLoad) {
            Lookup::Fresh(Cached::Value(v)) | Lookup::Throttled(v) => Found::Value(v),
            Lookup::Fresh(Cached::Error(e)) if e.is::<NotFound>() => Found::Absent,
            Lookup::Fresh(Cached::Error(e)) if shares(&*e) => Found::Failed(e),
            Lookup::Fresh(Cached::Error(_)) | Lookup::Kept(_) | Lookup::Miss => Found::Pending,
            Lookup::Stale(v, stamp) => {
                flags.push(RefreshFlag::new(&self.inner, hash, stamp));
                Found::Refresh(v)
            }
        }
    }

    /// Runs inside the flights of `asked` (distinct keys): answers from the
    /// cache what a load that just ended stored (except for the keys this
    /// caller is `refreshing`), loads the rest with one call of `load`, and
    /// stores each answer before the flights end.
    fn load_batch<Q, A, E>(
        &self,
        asked: &[&Q],
        flights: &[FlightRef],
        refreshing: &[&Q],
        load: &mut impl FnMut(&[&Q]) -> Result<A, E>,
    ) -> Vec<Option<Loaded<V>>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
        A: IntoIterator<Item = (K, V)>,
        E: Send + Sync + 'static,
    {
        let hashes: Vec<u64> = asked.iter().map(|k| self.group.locate(*k).0).collect();
        let mut answers: Vec<Option<Loaded<V>>> = asked.iter().map(|_| None).collect();
        let mut to_load = Vec::with_capacity(asked.len());
        let refresh: Vec<bool> = asked.iter().map(|key| refreshing.contains(key)).collect();
        for (i, key) in asked.iter().enumerate() {
            if refresh[i] {
                to_load.push(i);
                continue;
            }
            match self.inner.recheck(hashes[i], *key) {
                Recheck::Fresh(v, _) => answers[i] = Some(Ok(v)),
                Recheck::Error(e) if e.is::<NotFound>() => {}
                _ => to_load.push(i),
            }
        }
        if to_load.is_empty() {
            return answers;
        }
        let keys: Vec<&Q> = to_load.iter().map(|&i| asked[i]).collect();
        for &i in &to_load {
            self.inner.load_started(hashes[i]);
        }
        let start = self.inner.clock.now();
        let result = load(&keys);
        let delta = self.inner.clock.now().saturating_sub(start);
        let writer = |i: usize| Writer::Load(&self.group.shards, flights[i]);
        match result {
            Ok(answer) => {
                let answer = answer.into_iter().map(|(k, v)| (k, Ok(v)));
                for (&i, got) in to_load.iter().zip(self.group.align(&keys, answer)) {
                    let (cached, ttl) = match &got {
                        Some(Ok(v)) => (Cached::Value(v.clone()), self.inner.ttl),
                        _ => match self.inner.error_ttl {
                            Some(error_ttl) => {
                                (Cached::Error(Shared::new(NotFound) as AnyError), error_ttl)
                            }
                            None => {
                                if refresh[i] {
                                    // Gone from the backend: gone from here.
                                    self.invalidate(asked[i]);
                                }
                                continue;
                            }
                        },
                    };
                    let key = asked[i].to_owned();
                    self.inner
                        .store(key, hashes[i], cached, ttl, delta, writer(i), None);
                    answers[i] = got;
                }
            }
            Err(e) => {
                let e = Shared::new(e) as AnyError;
                for &i in &to_load {
                    self.shard(hashes[i]).lock().counts.load_errors += 1;
                    // A failed refresh keeps the current value.
                    if let Some(error_ttl) = self.inner.error_ttl.filter(|_| !refresh[i]) {
                        let (key, cached) = (asked[i].to_owned(), Cached::Error(e.clone()));
                        self.inner
                            .store(key, hashes[i], cached, error_ttl, delta, writer(i), None);
                    }
                    answers[i] = Some(Err(e.clone()));
                }
            }
        }
        answers
    }
}
