//! `get_or_load_many_detached`: a batch whose due refreshes run on the
//! cache's spawner, in one call of the loader, while every caller gets the
//! current values at once.

use std::any::Any;
use std::collections::HashMap;
use std::convert::Infallible;
use std::hash::{BuildHasher, Hash};
use std::panic::{self, AssertUnwindSafe};

use super::hooks::RemovalCause;
use super::inner::{Loaded, RefreshFlag, Writer};
use super::many::{Found, NotFound};
use super::refresh::Running;
use super::store::{AnyError, Cached, Gone};
use super::TtlCache;
use crate::cancel::CancelToken;
use crate::group::FlightRef;
use crate::sync::Shared;

/// What the callers that joined a detached batch refresh get when its
/// loader panicked, or the cache was dropped before it ran. Private, so it
/// never downcasts to a caller's error type: each of them loads for itself.
#[derive(Debug)]
struct RefreshFailed;

impl<K, V, S> TtlCache<K, V, S>
where
    K: Eq + Hash + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    S: BuildHasher,
{
    /// Like [`get_or_load_many`](Self::get_or_load_many), but the entries due
    /// for a refresh are refreshed on the cache's spawner, by **one** call
    /// of `load` for all of them, so no caller waits for it: this caller, like
    /// everyone else, gets their current values at once. Misses still load
    /// here, with `load`, as nobody has a value to return meanwhile.
    ///
    /// `load` is called with the keys of the refresh on the spawner's thread
    /// (hence `Clone + Send + 'static`, and keys passed as `&K`). A refresh
    /// that fails or panics keeps the current values (counted in
    /// [`Stats::load_errors`](crate::Stats::load_errors)); one whose answer
    /// leaves a key out removes that entry (or, with an `error_ttl`,
    /// replaces it by a not-found entry). A key being loaded already is
    /// not refreshed again.
    ///
    /// # Panics
    ///
    /// As [`get_or_load_many`](Self::get_or_load_many), for the misses.
    ///
    /// # Examples
    ///
    /// ```
    /// use singleflight_sync::{ManualClock, TtlCache};
    /// use std::time::Duration;
    ///
    /// let clock = ManualClock::new();
    /// let cache: TtlCache<u64, u64> = TtlCache::builder()
    ///     .ttl(Duration::from_secs(60))
    ///     .refresh_after(Duration::from_secs(30))
    ///     .clock(clock.clone())
    ///     .build()
    ///     .unwrap();
    /// let version = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(1));
    /// let load = {
    ///     let version = version.clone();
    ///     move |ids: &[&u64]| {
    ///         let v = version.load(std::sync::atomic::Ordering::SeqCst);
    ///         ids.iter().map(|&&id| (id, id * 10 + v)).collect::<Vec<_>>()
    ///     }
    /// };
    /// assert_eq!(cache.get_or_load_many_detached(&[1, 2], load.clone()), [Some(11), Some(21)]);
    /// clock.advance(Duration::from_secs(30));
    /// version.store(2, std::sync::atomic::Ordering::SeqCst);
    /// // Due: served as they are, refreshed on a thread of its own.
    /// assert_eq!(cache.get_or_load_many_detached(&[1, 2], load), [Some(11), Some(21)]);
    /// while cache.get(&2) != Some(22) {
    ///     std::thread::yield_now();
    /// }
    /// ```
    #[track_caller]
    pub fn get_or_load_many_detached<'q, A, F>(
        &self,
        keys: impl IntoIterator<Item = &'q K>,
        load: F,
    ) -> Vec<Option<V>>
    where
        K: 'q,
        F: FnMut(&[&K]) -> A + Clone + Send + 'static,
        A: IntoIterator<Item = (K, V)>,
    {
        let keys: Vec<&K> = keys.into_iter().collect();
        let shares = |_: &(dyn Any + Send + Sync)| false;
        let mut flags = Vec::new();
        let mut found: Vec<Found<V>> = keys
            .iter()
            .map(|key| self.look_up_for_batch(*key, &shares, &mut flags))
            .collect();
        let mut due = Vec::with_capacity(flags.len());
        for (p, found) in found.iter_mut().enumerate() {
            if !matches!(found, Found::Refresh(_)) {
                continue;
            }
            if let Found::Refresh(v) = std::mem::replace(found, Found::Pending) {
                *found = Found::Value(v);
                due.push(keys[p].clone());
            }
        }
        let mut load = load;
        if !due.is_empty() {
            self.refresh_many_detached(due, flags, load.clone());
        }
        self.resolve(&keys, found, Vec::new(), shares, |ids| {
            Ok::<_, Infallible>(load(ids))
        })
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

    /// Refreshes `keys` on the spawner, one call of `load`; `flags` are
    /// dropped when it ends, so an entry it did not replace can be
    /// refreshed again.
    fn refresh_many_detached<A, F>(&self, keys: Vec<K>, flags: Vec<RefreshFlag<K, V>>, mut load: F)
    where
        F: FnMut(&[&K]) -> A + Send + 'static,
        A: IntoIterator<Item = (K, V)>,
    {
        let inner = self.inner.clone();
        let shards = self.group.shards.clone();
        let job = move |keys: &[K], hashes: &[u64], flights: &[FlightRef]| {
            let _flags = flags;
            let failed = || -> Vec<Option<Loaded<V>>> {
                let e = Shared::new(RefreshFailed) as AnyError;
                keys.iter().map(|_| Some(Err(e.clone()))).collect()
            };
            // The job takes no token: the one the drop cancels goes unread.
            let Some(_running) = Running::enter(&inner, &CancelToken::new()) else {
                return failed();
            };
            for &hash in hashes {
                inner.load_started(hash);
            }
            let start = inner.clock.now();
            let asked: Vec<&K> = keys.iter().collect();
            let Ok(answer) = panic::catch_unwind(AssertUnwindSafe(|| load(&asked))) else {
                for &hash in hashes {
                    inner.shard_of(hash).lock().counts.load_errors += 1;
                }
                return failed();
            };
            let delta = inner.clock.now().saturating_sub(start);
            let mut answer: HashMap<K, V> = answer.into_iter().collect();
            let mut out = Vec::with_capacity(keys.len());
            for (i, key) in keys.iter().enumerate() {
                let (hash, writer) = (hashes[i], Writer::Load(&shards, flights[i]));
                match (answer.remove(key), inner.error_ttl) {
                    (Some(v), _) => {
                        let cached = Cached::Value(v.clone());
                        inner.store(key.clone(), hash, cached, inner.ttl, delta, writer, None);
                        out.push(Some(Ok(v)));
                    }
                    (None, Some(error_ttl)) => {
                        let cached = Cached::Error(Shared::new(NotFound) as AnyError);
                        inner.store(key.clone(), hash, cached, error_ttl, delta, writer, None);
                        out.push(None);
                    }
                    (None, None) => {
                        // Gone from the backend: gone from here, unless the
                        // key was invalidated or written since (as `store`).
                        let mut store = inner.shard_of(hash).lock();
                        let mut gone = Gone::new();
                        if !flights[i].released(&shards) {
                            if let Some(pos) = store.find(hash, key) {
                                gone.push(store.remove(pos), RemovalCause::Invalidated);
                            }
                        }
                        inner.settle(&mut store);
                        drop(store);
                        inner.dispose(gone);
                        out.push(None);
                    }
                }
            }
            out
        };
        self.group.start_many_detached(keys, job);
    }
}
