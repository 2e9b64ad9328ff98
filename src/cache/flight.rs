//! What a load's flight does once it leads, on the caller's thread or on the
//! spawner: look once more, run the loader, then store its value, or, with a
//! fail-safe, answer with the expired value it replaces when the loader
//! fails. And how every caller of that flight reads the answer.

use std::borrow::Borrow;
use std::panic::{self, AssertUnwindSafe};

use super::inner::{Inner, Loaded, Writer};
use super::store::{AnyError, Cached};
use crate::error::LeaderPanicked;
use crate::group::{FlightRef, Shard};
use crate::metrics::CacheEvent;
use crate::sync::Shared;

/// What a leader's last look found.
pub(super) enum Recheck<V> {
    /// Fresh, and (with a fail-safe) kept until the time given.
    Fresh(V, u64),
    /// Expired, kept by the fail-safe until the time given.
    Kept(V, u64),
    /// A fresh cached error (negative caching).
    Error(AnyError),
    Miss,
}

/// What a loading caller's own lookup found, which decides how its leader
/// looks again before it loads.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Looked {
    /// No entry, with the shard's store count read before the lookup
    /// ([`Inner::writes`]): if no store has begun there since, the leader's
    /// recheck would miss too, and is skipped.
    Miss(u64),
    /// Not known to be absent (a cached error, a kept value, or a caller
    /// that did not say): the leader looks again.
    Unsure,
    /// A value due for a refresh, which this caller was chosen to start.
    Refresh,
}

/// `true`: a refresh; `false`: a load whose leader looks again.
impl From<bool> for Looked {
    fn from(refresh: bool) -> Self {
        match refresh {
            true => Looked::Refresh,
            false => Looked::Unsure,
        }
    }
}

/// Counts a loader run that panicked before it was counted (its leader
/// skipped the recheck, and a panic never reaches the store that counts it).
struct CountOnUnwind<'a, K, V>(&'a Inner<K, V>, u64);

impl<K, V> Drop for CountOnUnwind<'_, K, V> {
    fn drop(&mut self) {
        self.0.load_started(self.1);
    }
}

/// The key of a load: borrowed from its caller (`&Q`, owned only to
/// store), or owned by a detached flight ([`OwnedKey`]).
pub(super) trait LoadKey<K> {
    type Q: Eq + ?Sized;
    fn get(&self) -> &Self::Q;
    fn into_owned(self) -> K;
}

impl<Q: Eq + ToOwned<Owned = K> + ?Sized, K> LoadKey<K> for &Q {
    type Q = Q;
    fn get(&self) -> &Q {
        self
    }
    fn into_owned(self) -> K {
        self.to_owned()
    }
}

/// A detached flight's own key.
struct OwnedKey<K>(K);

impl<K: Eq> LoadKey<K> for OwnedKey<K> {
    type Q = K;
    fn get(&self) -> &K {
        &self.0
    }
    fn into_owned(self) -> K {
        self.0
    }
}

/// What a [`get_or_optionally_load`](super::TtlCache::get_or_optionally_load)
/// flight hands its callers when its loader found nothing. Private, so no
/// other loader's error type matches it: their callers load again.
#[derive(Debug)]
pub(super) struct Absent;

/// What a flight hands its callers when the fail-safe answered: the kept
/// value was stored again (for the throttle) before the flight ended, so
/// each caller reads it from there.
#[derive(Debug)]
struct StaleServed;

/// A loader's panic, caught because a fail-safe value could answer for it.
#[derive(Debug)]
struct LoaderPanicked(#[allow(dead_code)] LeaderPanicked);

impl<K: Eq, V: Clone> Inner<K, V> {
    /// The leader's last look before it loads: a load that just ended has
    /// stored its value.
    pub(super) fn recheck<Q>(&self, hash: u64, key: &Q) -> Recheck<V>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        self.recheck_counting(hash, key, |_| false)
    }

    /// [`recheck`](Self::recheck), counting a loader run under the same
    /// lock when `loads` says what was found will be loaded: a miss into a
    /// full cache takes the shard's lock four times, and this saves one.
    #[inline]
    fn recheck_counting<Q>(
        &self,
        hash: u64,
        key: &Q,
        loads: impl FnOnce(&Recheck<V>) -> bool,
    ) -> Recheck<V>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        let now = self.clock.now();
        let mut store = self.shard_of(hash).lock();
        let found = match store.find(hash, key) {
            None => Recheck::Miss,
            Some(pos) => {
                let expires = store.slot(pos).expires;
                let kept_until = store.kept_until(pos, self.max_stale);
                match store.slot(pos).cached() {
                    Cached::Value(v) if now < expires => Recheck::Fresh(v.clone(), kept_until),
                    Cached::Value(v) if now < kept_until => Recheck::Kept(v.clone(), kept_until),
                    Cached::Error(e) if now < expires => Recheck::Error(e.clone()),
                    _ => Recheck::Miss,
                }
            }
        };
        if loads(&found) {
            store.counts.loads += 1;
        }
        found
    }

    /// Leads a load: unless this is a refresh, or its caller's lookup missed
    /// and nothing was stored in the shard since, looks once more; runs `f`;
    /// stores its value (or, with an error TTL, its error) before the flight
    /// ends. With a kept value and a failing `f` (an error or a panic), the
    /// kept value is stored again for the throttle, `mine` gets it, and
    /// the flight's callers are told to read it.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn lead<L: LoadKey<K>>(
        &self,
        flights: &[Shard<K, Loaded<V>>],
        flight: FlightRef,
        key: L,
        hash: u64,
        ttl: u64,
        looked: Looked,
        f: impl FnOnce() -> Loaded<V>,
        mine: &mut Option<V>,
    ) -> Loaded<V>
    where
        K: Borrow<L::Q>,
    {
        let refresh = looked == Looked::Refresh;
        // A refresh loads even when the entry is fresh; with a fail-safe,
        // the entry it refreshes is its fallback.
        let mut fallback = None;
        // Whether the loader run is counted already; if not, whoever takes
        // the shard's lock next for this load counts it (see `Writer::Led`).
        let mut counted = true;
        match looked {
            // This flight is in the group's map: see `CacheShard::writes`.
            Looked::Miss(writes) if self.writes(hash) == writes => counted = false,
            _ if !refresh || self.max_stale > 0 => {
                // The load is counted under the recheck's lock.
                let loads = |found: &Recheck<V>| refresh || !matches!(found, Recheck::Fresh(..));
                match self.recheck_counting(hash, key.get(), loads) {
                    Recheck::Fresh(v, _) if !refresh => return Ok(v),
                    Recheck::Fresh(v, until) | Recheck::Kept(v, until) => {
                        fallback = Some((v, until))
                    }
                    Recheck::Error(_) | Recheck::Miss => {}
                }
            }
            _ => self.load_started(hash),
        }
        // The load's duration serves only early refresh (XFetch): without
        // it, the clock is not read around the loader.
        let timed = self.beta.is_some();
        let start = if timed { self.clock.now() } else { 0 };
        let unwinding = (!counted).then(|| CountOnUnwind(self, hash));
        let loaded = match fallback {
            None => f(),
            Some(_) => panic::catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|payload| {
                let cause = LeaderPanicked::from_payload(&*payload, self.name);
                Err(Shared::new(LoaderPanicked(cause)) as AnyError)
            }),
        };
        // `f` returned: counted below.
        std::mem::forget(unwinding);
        let e = match loaded {
            Ok(v) => {
                let delta = match timed {
                    true => self.clock.now().saturating_sub(start),
                    false => 0,
                };
                let writer = match counted {
                    true => Writer::Load(flights, flight),
                    false => Writer::Led(flights, flight),
                };
                self.store(
                    key.into_owned(),
                    hash,
                    Cached::Value(v.clone()),
                    ttl,
                    delta,
                    writer,
                    None,
                );
                return Ok(v);
            }
            // "Nothing found" is shared, never stored, and not a failure.
            Err(e) if e.is::<Absent>() => {
                if !counted {
                    self.load_started(hash);
                }
                return Err(e);
            }
            Err(e) => e,
        };
        let writer = Writer::Load(flights, flight);
        let now = self.clock.now();
        let mut store = self.shard_of(hash).lock();
        store.counts.load_errors += 1;
        store.counts.loads += u64::from(!counted);
        // With a fail-safe, a failed refresh is throttled too: the entry is
        // not refreshed again before the throttle has passed.
        if refresh && self.max_stale > 0 {
            if let Some(pos) = store.find(hash, key.get()) {
                store.extra(pos).refresh = now.saturating_add(self.throttle);
            }
        }
        drop(store);
        if let Some((stale, until)) = fallback {
            // An entry still fresh (a refresh failed before its expiry)
            // stays as it is, its refresh held back above; an expired one
            // is stored again for the throttle.
            if !matches!(self.recheck(hash, key.get()), Recheck::Fresh(..)) {
                let life = self.throttle.min(until.saturating_sub(now)).max(1);
                let cached = Cached::Value(stale.clone());
                self.store(key.into_owned(), hash, cached, life, 0, writer, Some(until));
            }
            *mine = Some(stale);
            return Err(Shared::new(StaleServed) as AnyError);
        }
        match self.error_ttl {
            // A failed refresh keeps the current value.
            Some(error_ttl) if !refresh => {
                let cached = Cached::Error(e.clone());
                self.store(key.into_owned(), hash, cached, error_ttl, 0, writer, None);
            }
            _ => {}
        }
        Err(e)
    }

    /// [`lead`](Self::lead) for a detached flight, which owns its key.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn lead_owned(
        &self,
        flights: &[Shard<K, Loaded<V>>],
        flight: FlightRef,
        key: K,
        hash: u64,
        ttl: u64,
        refresh: bool,
        f: impl FnOnce() -> Loaded<V>,
    ) -> Loaded<V> {
        self.lead(
            flights,
            flight,
            OwnedKey(key),
            hash,
            ttl,
            refresh.into(),
            f,
            &mut None,
        )
    }

    /// What a caller of a load's flight answers with, and whether it is a
    /// fail-safe answer: the leader has its own copy (`mine`); a follower
    /// reads the value the fail-safe stored again. (Gone meanwhile, as when
    /// invalidated: the flight's `Err` is left, and the caller loads again.)
    pub(super) fn answer<Q>(
        &self,
        loaded: Loaded<V>,
        mine: Option<V>,
        hash: u64,
        key: &Q,
    ) -> (Loaded<V>, bool)
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        match loaded {
            Err(e) if e.is::<StaleServed>() => {
                if let Some(v) = mine {
                    self.fail_safe_answered(hash);
                    return (Ok(v), true);
                }
                match self.recheck(hash, key) {
                    Recheck::Fresh(v, _) => {
                        self.fail_safe_answered(hash);
                        (Ok(v), true)
                    }
                    _ => (Err(e), false),
                }
            }
            loaded => (loaded, false),
        }
    }

    fn fail_safe_answered(&self, hash: u64) {
        self.shard_of(hash).lock().counts.fail_safe_hits += 1;
        if let Some(m) = &self.metrics {
            m.cache_event(self.name, CacheEvent::FailSafeHit);
        }
    }
}
