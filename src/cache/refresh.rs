//! Refreshes that run on the spawner (`get_or_load_detached`), and the
//! cache's drop, which waits for the refreshes it started.

use std::borrow::Borrow;
use std::cell::Cell;
use std::hash::{BuildHasher, Hash};
use std::io;
use std::panic::{self, AssertUnwindSafe};

use super::inner::{Inner, RefreshFlag, Writer};
use super::lookup::{Lookup, Mode};
use super::store::{AnyError, Cached};
use super::TtlCache;
use crate::error::LeaderPanicked;
use crate::sync::Shared;

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
    /// thread and counted as a failed load ([`Stats::load_errors`](crate::Stats::load_errors)). A
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

    fn refresh_detached<Q, F>(&self, key: &Q, hash: u64, stamp: u32, f: F)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
        F: FnOnce() -> V + Send + 'static,
    {
        let flag = RefreshFlag::new(&self.inner, hash, stamp);
        let (inner, owned, ttl) = (self.inner.clone(), key.to_owned(), self.inner.ttl);
        let flights = self.group.shards.clone();
        // The receiver is dropped at once: nobody waits, the flight goes on,
        // and its value is dropped after it is stored.
        drop(self.group.do_chan_with(key, move |_, flight| {
            let _flag = flag;
            let Some(_running) = Running::enter(&inner) else {
                return Err(Shared::new(io::Error::other("the cache was dropped")) as AnyError);
            };
            inner.load_started(hash);
            let start = inner.clock.now();
            // Caught here, not by the group: a caller whose entry expired
            // meanwhile may join this flight, and must load for itself
            // rather than inherit a panic its own loader never raised.
            let v = match panic::catch_unwind(AssertUnwindSafe(f)) {
                Ok(v) => v,
                Err(payload) => {
                    inner.shard_of(hash).lock().counts.load_errors += 1;
                    let cause = LeaderPanicked::from_payload(&*payload, inner.name);
                    return Err(Shared::new(RefreshPanicked(cause)) as AnyError);
                }
            };
            let delta = inner.clock.now().saturating_sub(start);
            let writer = Writer::Load(&flights, flight);
            inner.store(owned, hash, Cached::Value(v.clone()), ttl, delta, writer);
            Ok(v)
        }));
    }
}

/// What the callers that joined a detached refresh get when its loader
/// panicked. Private, so it never downcasts to a caller's error type: each of
/// them loads again for itself.
#[derive(Debug)]
struct RefreshPanicked(#[allow(dead_code)] LeaderPanicked);

std::thread_local! {
    /// The cache (its `Inner`'s address) whose refresh loader this thread is
    /// running, if any, so that dropping that cache from inside the loader
    /// does not wait for itself.
    static LOADING: Cell<usize> = const { Cell::new(0) };
}

/// A detached refresh loader, counted while it runs.
pub(super) struct Running<K, V> {
    inner: Shared<Inner<K, V>>,
    outer: usize,
}

impl<K, V> Running<K, V> {
    /// `None` once the cache is dropped: the refresh then skips its loader.
    pub(super) fn enter(inner: &Shared<Inner<K, V>>) -> Option<Self> {
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
