//! Loads that run on the spawner: the refreshes of `get_or_load_detached`
//! and `try_get_or_load_detached`, and the whole loads of
//! `get_or_load_entry_detached`; each loader gets a `CancelToken`, which
//! the cache's drop cancels, waiting for them a bounded time.

use std::borrow::Borrow;
use std::cell::Cell;
use std::hash::{BuildHasher, Hash};
use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::time::Instant;

use crossbeam_channel::Receiver;

use super::inner::{Inner, Loaded, RefreshFlag};
use super::lookup::{Lookup, Mode};
use super::store::{AnyError, Cached};
use super::TtlCache;
use crate::call::Reply;
use crate::cancel::CancelToken;
use crate::error::LeaderPanicked;
use crate::sync::{Ordering, Shared};

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
    /// `f` gets a [`CancelToken`]: a refresh's token is cancelled when the
    /// cache's last handle is dropped (see `Drop`), so a long loader can stop
    /// early; a miss loaded here gets a token that is never cancelled.
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
    /// assert_eq!(cache.get_or_load_detached("k", |_| 1), 1, "a miss loads here");
    /// clock.advance(Duration::from_secs(30));
    /// assert_eq!(cache.get_or_load_detached("k", |_| 2), 1, "stale: served, refresh started");
    /// // The refresh runs on a thread of its own.
    /// while cache.get("k") != Some(2) {
    ///     std::thread::yield_now();
    /// }
    /// ```
    pub fn get_or_load_detached<Q, F>(&self, key: &Q, f: F) -> V
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
        F: FnOnce(&CancelToken) -> V + Send + 'static,
    {
        let (hash, _) = self.group.locate(key);
        match self.lookup(hash, key, Mode::Load) {
            Lookup::Fresh(Cached::Value(v)) | Lookup::Throttled(v) => v,
            Lookup::Stale(v, stamp) => {
                self.refresh_detached(key, hash, stamp, move |token| Ok(f(token)));
                v
            }
            _ => self.load_value(key, hash, self.inner.ttl, false, || f(&CancelToken::new())),
        }
    }

    /// [`get_or_load_detached`](Self::get_or_load_detached) for a loader
    /// that can fail: a miss loads here as
    /// [`try_get_or_load`](Self::try_get_or_load) does; a refresh runs on
    /// the spawner, and if it fails the current value stays (until it
    /// expires) and the error is counted in
    /// [`Stats::load_errors`](crate::Stats::load_errors).
    ///
    /// # Errors
    ///
    /// For a miss, `f`'s error, shared by every caller of that load (as
    /// [`try_get_or_load`](Self::try_get_or_load)). A refresh's error reaches
    /// no caller.
    ///
    /// # Panics
    ///
    /// As [`get_or_load_detached`](Self::get_or_load_detached).
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
    /// assert!(cache.try_get_or_load_detached("k", |_| Err::<u32, _>("down")).is_err());
    /// assert_eq!(cache.try_get_or_load_detached("k", |_| Ok::<_, &str>(1)).unwrap(), 1);
    /// clock.advance(Duration::from_secs(30));
    /// // Stale: served at once; the refresh fails on its thread and the value stays.
    /// assert_eq!(cache.try_get_or_load_detached("k", |_| Err("down")).unwrap(), 1);
    /// while cache.stats().load_errors < 2 {
    ///     std::thread::yield_now();
    /// }
    /// assert_eq!(cache.get("k"), Some(1));
    /// ```
    pub fn try_get_or_load_detached<Q, E, F>(&self, key: &Q, f: F) -> Result<V, Shared<E>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
        E: Send + Sync + 'static,
        F: FnOnce(&CancelToken) -> Result<V, E> + Send + 'static,
    {
        let (hash, _) = self.group.locate(key);
        let here = |f: F| move || f(&CancelToken::new());
        match self.lookup(hash, key, Mode::TryLoad) {
            Lookup::Fresh(Cached::Value(v)) | Lookup::Throttled(v) => Ok(v),
            Lookup::Fresh(Cached::Error(e)) => match e.downcast::<E>() {
                Ok(e) => Err(e),
                Err(_) => self.try_load_value(key, hash, self.inner.ttl, false, here(f)),
            },
            Lookup::Stale(v, stamp) => {
                self.refresh_detached(key, hash, stamp, move |token| {
                    f(token).map_err(|e| Shared::new(e) as AnyError)
                });
                Ok(v)
            }
            Lookup::Kept(_) | Lookup::Miss => {
                self.try_load_value(key, hash, self.inner.ttl, false, here(f))
            }
        }
    }

    pub(super) fn refresh_detached<Q, F>(&self, key: &Q, hash: u64, stamp: u32, f: F)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
        F: FnOnce(&CancelToken) -> Result<V, AnyError> + Send + 'static,
    {
        let flag = RefreshFlag::new(&self.inner, hash, stamp);
        // The receiver is dropped at once: nobody waits, the flight goes on,
        // and its value is dropped after it is stored.
        drop(self.spawn_load(key, hash, Some(flag), move |token| {
            // Caught here, not by the group: a caller whose entry expired
            // meanwhile may join this flight, and must load for itself
            // rather than inherit a panic its own loader never raised.
            panic::catch_unwind(AssertUnwindSafe(|| f(token))).unwrap_or_else(|payload| {
                let cause = LeaderPanicked::from_payload(&*payload, None);
                Err(Shared::new(RefreshPanicked(cause)) as AnyError)
            })
        }));
    }

    /// Starts a load of `key` on the spawner (or joins the one running),
    /// led as any load is (`Inner::lead`), and answers on the receiver. A
    /// refresh (with the entry's `RefreshFlag`) keeps the current value when
    /// it fails; its flag is let go only when the flight's work is done, the
    /// new value stored, so no second refresh starts in between.
    pub(super) fn spawn_load<Q, F>(
        &self,
        key: &Q,
        hash: u64,
        refresh: Option<RefreshFlag<K, V>>,
        f: F,
    ) -> Receiver<Reply<Loaded<V>>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
        F: FnOnce(&CancelToken) -> Loaded<V> + Send + 'static,
    {
        let (inner, owned, ttl) = (self.inner.clone(), key.to_owned(), self.inner.ttl);
        let flights = self.group.shards.clone();
        self.group.do_chan_with(key, move |token, flight| {
            let _flag = refresh;
            let refresh = _flag.is_some();
            let Some(_running) = Running::enter(&inner, token) else {
                return Err(Shared::new(io::Error::other("the cache was dropped")) as AnyError);
            };
            let load = || f(token);
            inner.lead_owned(&flights, flight, owned, hash, ttl, refresh, load)
        })
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

/// A detached loader, counted (with its token) while it runs.
pub(super) struct Running<K, V> {
    inner: Shared<Inner<K, V>>,
    outer: usize,
    id: u64,
}

impl<K, V> Running<K, V> {
    /// `None` once the cache is dropped: the load then skips its loader.
    pub(super) fn enter(inner: &Shared<Inner<K, V>>, token: &CancelToken) -> Option<Self> {
        let mut loaders = inner.loaders.lock();
        if loaders.closed {
            return None;
        }
        loaders.next += 1;
        let id = loaders.next;
        loaders.tokens.push((id, token.clone()));
        let outer = LOADING.with(|l| l.replace(Shared::as_ptr(inner) as usize));
        Some(Running {
            inner: inner.clone(),
            outer,
            id,
        })
    }
}

impl<K, V> Drop for Running<K, V> {
    fn drop(&mut self) {
        LOADING.with(|l| l.set(self.outer));
        let mut loaders = self.inner.loaders.lock();
        loaders.tokens.retain(|(id, _)| *id != self.id);
        self.inner.loaders_done.notify_all();
    }
}

impl<K, V, S> Drop for TtlCache<K, V, S> {
    /// Dropping a clone only lets go of it. The last handle's drop closes
    /// the cache: a detached load (a refresh, or a load of
    /// `get_or_load_entry_detached`) that has not started skips its loader;
    /// the running ones have their [`CancelToken`] cancelled, and the drop
    /// waits for them to return for at most the builder's `drop_timeout`
    /// (1 s by default), then returns even if a loader hangs. A loader that
    /// ignores its token keeps its own thread until it returns; what it
    /// loads is dropped with the last reference to the cache's entries. A
    /// drop from inside one of this cache's own detached loaders (it held
    /// the last handle) does not wait for that loader.
    fn drop(&mut self) {
        if self.inner.handles.fetch_sub(1, Ordering::AcqRel) != 1 {
            return;
        }
        let me = usize::from(LOADING.with(|l| l.get()) == Shared::as_ptr(&self.inner) as usize);
        let deadline = Instant::now().checked_add(self.inner.drop_timeout);
        let mut loaders = self.inner.loaders.lock();
        loaders.closed = true;
        for (_, token) in &loaders.tokens {
            token.cancel();
        }
        while loaders.tokens.len() > me {
            match deadline {
                Some(deadline) if Instant::now() >= deadline => break,
                Some(deadline) => loaders = self.inner.loaders_done.wait_until(loaders, deadline),
                None => loaders = self.inner.loaders_done.wait(loaders),
            }
        }
    }
}
