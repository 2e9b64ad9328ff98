//! `Group`: one execution per key at a time, the flights its callers lead
//! on their own threads (`work`), and what needs no flight (`forget`,
//! `waiters`, `stats`).

use std::borrow::Borrow;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::panic::{self, AssertUnwindSafe, RefUnwindSafe, UnwindSafe};
use std::time::Instant;

use super::observer::Observer;
use super::table::{finish, Entry, FlightRef, Releases, Shard};
use crate::call::{Call, Delivered, Flight, Share};
use crate::error::{Error, LeaderPanicked};
use crate::metrics::{Outcome, Stats};
use crate::spawn::Spawner;
use crate::sync::{self, Arc, Shared};

/// The hasher a [`Group`] and a [`TtlCache`](crate::TtlCache) use unless
/// told otherwise: [foldhash](https://docs.rs/foldhash)'s fast hasher, which
/// is hashbrown's default too, seeded at random once per process.
///
/// It hashes a `u64` key in about a nanosecond, against about 15 for
/// SipHash (`std`'s `RandomState`). The trade: SipHash is designed to resist
/// HashDoS, an attacker who chooses keys so they collide and turn a table's
/// lookups linear; foldhash's per-process seed makes such keys hard to find
/// from outside, but it makes no cryptographic claim. A group or cache keyed
/// by values that a hostile client picks freely (raw request paths, header
/// values) can take `std::collections::hash_map::RandomState` with
/// [`GroupBuilder::hasher`](crate::GroupBuilder::hasher) or
/// [`TtlCacheBuilder::hasher`](crate::TtlCacheBuilder::hasher).
pub type DefaultHashBuilder = foldhash::fast::RandomState;

/// Suppresses duplicate work: while a call for a key is running, every other
/// call for that key waits for it and receives a clone of its value.
///
/// The first caller for a key (the *leader*) runs `f` on its own thread;
/// callers that arrive while it runs (*followers*) block and get a clone of
/// the same value. Nothing is remembered once the flight ends: the next call
/// runs `f` again. For results kept for a time, put a cache in front.
///
/// Keys are looked up by reference (`&Q` where `K: Borrow<Q>`), so a
/// `Group<String, V>` takes `&str`; only a leader makes an owned key. The map
/// is sharded and `f` never runs under a lock, so distinct keys never wait
/// for each other.
///
/// Fallible work is `V = Result<T, Arc<E>>`, with
/// [`try_work`](Self::try_work) and its deadline variants: one error, in an
/// `Arc`, goes to every caller of that flight (so `E` need not be `Clone`) and
/// is never remembered. (`V = Result<T, E>` with `E: Clone` works with
/// [`work`](Self::work) too.)
///
/// `Group` is `Send + Sync` when `K`, `V` and `S` are `Send` (and `S: Sync`).
/// It is cheap to [`Clone`]: a clone is another handle on the same flights
/// (a flight led through one handle is joined through any other), so hand
/// one to each thread, or keep one in a `static` with
/// [`LazyLock`](std::sync::LazyLock):
///
/// ```
/// use singleflight_sync::Group;
/// use std::sync::LazyLock;
///
/// static REPORTS: LazyLock<Group<String, u64>> = LazyLock::new(Group::new);
/// assert_eq!(REPORTS.work("daily", || 7), 7);
/// ```
///
/// # Examples
///
/// ```
/// use singleflight_sync::Group;
///
/// let group: Group<String, u64> = Group::new();
/// let v = group.work("user:42", || 42);
/// assert_eq!(v, 42);
/// assert_eq!(group.in_flight(), 0);
/// ```
pub struct Group<K, V, S = DefaultHashBuilder> {
    /// Shared so a detached flight's runner can take its entry out of the map
    /// when it ends, whichever thread it runs on.
    pub(crate) shards: Shared<[Shard<K, V>]>,
    /// `(hash >> 32) & mask` picks the shard: middle bits, which hashbrown
    /// uses neither for a bucket index (low bits) nor for its tags (the top
    /// seven), so sharding costs the tables nothing.
    pub(super) mask: usize,
    pub(super) hasher: S,
    pub(crate) name: Option<&'static str>,
    pub(crate) spawner: Spawner,
    pub(crate) observer: Observer<V>,
}

/// A panic in `f`, `Hash`, `Eq`, `Clone`, `Drop` or a spawner never leaves a group
/// half-updated (the point of the crate's panic handling, and tested), so a
/// group may be used across `catch_unwind` without `AssertUnwindSafe`.
impl<K, V, S: RefUnwindSafe> RefUnwindSafe for Group<K, V, S> {}

impl<K, V, S: UnwindSafe> UnwindSafe for Group<K, V, S> {}

/// Another handle on the same flights, sharing the counters, spawner and
/// observer; it costs a reference count, not a copy of the map.
impl<K, V, S: Clone> Clone for Group<K, V, S> {
    fn clone(&self) -> Self {
        Group {
            shards: self.shards.clone(),
            mask: self.mask,
            hasher: self.hasher.clone(),
            name: self.name,
            spawner: self.spawner.clone(),
            observer: self.observer.clone(),
        }
    }
}

impl<K, V> Default for Group<K, V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K, V, S> Group<K, V, S> {
    /// The name given with [`GroupBuilder::name`](crate::GroupBuilder::name), if any.
    ///
    /// # Examples
    ///
    /// ```
    /// use singleflight_sync::Group;
    ///
    /// let named: Group<String, u32> = Group::builder().name("users").build();
    /// assert_eq!(named.name(), Some("users"));
    /// assert_eq!(Group::<String, u32>::new().name(), None);
    /// ```
    pub fn name(&self) -> Option<&'static str> {
        self.name
    }

    /// The number of flights running now, forgotten ones included until their
    /// `f` returns. 0 when the group is idle.
    ///
    /// # Examples
    ///
    /// ```
    /// let group = singleflight_sync::Group::<u8, u8>::new();
    /// let inside = group.work(&1, || group.in_flight() as u8);
    /// assert_eq!(inside, 1);
    /// assert_eq!(group.in_flight(), 0);
    /// ```
    pub fn in_flight(&self) -> usize {
        self.shards.iter().map(|s| s.table.lock().len()).sum()
    }

    /// A snapshot of the group's counters (see [`Stats`]; the cache fields
    /// are 0). The counters are kept per shard under the locks calls take
    /// anyway: they cost no atomic and never contend.
    ///
    /// # Examples
    ///
    /// ```
    /// let group = singleflight_sync::Group::<String, u8>::new();
    /// group.work("a", || 1);
    /// group.work("a", || 1);
    /// let stats = group.stats();
    /// assert_eq!((stats.calls, stats.executions, stats.shared), (2, 2, 0));
    /// ```
    pub fn stats(&self) -> Stats {
        let mut stats = Stats::default();
        for shard in self.shards.iter() {
            stats.add_group(&shard.table.lock().counts);
        }
        stats
    }
}

impl<K, V, S: BuildHasher> Group<K, V, S> {
    /// The key's hash and the index of its shard.
    #[inline]
    pub(crate) fn locate<Q: Hash + ?Sized>(&self, key: &Q) -> (u64, usize) {
        let hash = self.hasher.hash_one(key);
        (hash, (hash >> 32) as usize & self.mask)
    }

    /// How many callers are waiting for the running flight for `key` (0 when
    /// there is none, or nobody joined it). A detached flight's caller that
    /// started it counts as waiting.
    ///
    /// # Examples
    ///
    /// ```
    /// let group = singleflight_sync::Group::<String, u8>::new();
    /// assert_eq!(group.waiters("k"), 0);
    /// ```
    pub fn waiters<Q>(&self, key: &Q) -> usize
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let (hash, index) = self.locate(key);
        let mut table = self.shards[index].table.lock();
        match table.joinable(hash, key) {
            Some(Entry {
                call: Some(call), ..
            }) => call.waiting(),
            _ => 0,
        }
    }

    /// Releases `key`: the next call starts a new flight. Callers already
    /// waiting still get the old flight's value, and the old flight's end
    /// never removes the new flight. Returns whether a flight was released.
    ///
    /// # Examples
    ///
    /// ```
    /// let group = singleflight_sync::Group::<String, u8>::new();
    /// let v = group.work("k", || {
    ///     assert!(group.forget("k"));
    ///     // Released: this is a new flight, not a re-entrant call.
    ///     group.work("k", || 2) + 1
    /// });
    /// assert_eq!(v, 3);
    /// assert!(!group.forget("k"));
    /// ```
    pub fn forget<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.release_if(key, |_| true)
    }

    /// Like [`forget`](Self::forget), but only for a flight that nobody has
    /// joined. Returns whether it released one.
    ///
    /// # Examples
    ///
    /// ```
    /// let group = singleflight_sync::Group::<String, u8>::new();
    /// group.work("k", || {
    ///     assert!(group.forget_unshared("k"));
    ///     assert!(!group.forget_unshared("k"));
    ///     1
    /// });
    /// ```
    pub fn forget_unshared<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        // A detached flight's starter is counted in its call: it is not a
        // follower, so such a flight is unshared while `joined` is 1.
        self.release_if(key, |entry| {
            entry.call.as_ref().is_none_or(|call| call.joined() <= 1)
        })
    }

    /// Releases every joinable flight whose key falls in the cache shard
    /// `index` of a cache with shard mask `mask` (for `TtlCache::clear`):
    /// both pick shards from the same hash bits, and a group has at least as
    /// many shards, so those keys are in the group shards `j` with
    /// `j & mask == index`. (A group with fewer shards releases them all.)
    pub(crate) fn release_cache_shard(&self, index: usize, mask: usize) {
        let all = self.mask < mask;
        for (j, shard) in self.shards.iter().enumerate() {
            if all || j & mask == index {
                shard.table.lock().release_all(&Releases::of(shard));
            }
        }
    }

    fn release_if<Q>(&self, key: &Q, allowed: impl FnOnce(&Entry<K, V>) -> bool) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let (hash, index) = self.locate(key);
        let shard = &self.shards[index];
        let mut table = shard.table.lock();
        match table.joinable(hash, key) {
            Some(entry) if allowed(entry) => {
                entry.release(&Releases::of(shard));
                true
            }
            _ => false,
        }
    }
}

impl<K, V: Clone, S> Group<K, V, S> {
    /// Waits on a flight's call until it ends or `deadline` passes. A waiter
    /// whose deadline passes leaves under the shard lock, so that when the
    /// last one leaves a detached flight, cancelling its token and releasing
    /// its key are one step that no new caller can slip into.
    pub(crate) fn await_call(
        &self,
        index: usize,
        hash: u64,
        id: u64,
        call: &Call<V>,
        deadline: Option<Instant>,
    ) -> Share<V> {
        if let Some(share) = call.wait(deadline) {
            return share;
        }
        let shard = &self.shards[index];
        let mut table = shard.table.lock();
        let (remaining, shared) = match call.leave() {
            Ok(share) => return share,
            Err(left) => left,
        };
        table.counts.timeouts += 1;
        let mut cancelled = false;
        if remaining == 0 {
            if let Some(entry) = table.by_id(hash, id) {
                if let Some(token) = entry.token.clone() {
                    entry.release(&Releases::of(shard));
                    token.cancel();
                    cancelled = true;
                }
            }
        }
        if cancelled {
            table.counts.cancellations += 1;
            // Settles the outcome, so the late value is dropped unreported.
            call.publish_error(Error::Cancelled);
        }
        drop(table);
        if let Some(m) = &self.observer.metrics {
            m.waiter_timed_out(self.name, shared);
            if cancelled {
                self.observer
                    .ended(self.name, None, 0, 0, shared, Outcome::Cancelled);
            }
        }
        Err(Error::Timeout)
    }
}

impl<K, V: Clone, S: BuildHasher> Group<K, V, S> {
    /// Runs `f` once for every caller that asks for `key` while it runs, and
    /// returns its value to each of them.
    ///
    /// The leader gets the value `f` returned, moved; each follower gets one
    /// clone; with no follower, `V` is never cloned.
    ///
    /// # Panics
    ///
    /// - If `f` panics, the panic unwinds in the leader as usual; the key is
    ///   released and every follower panics too, with a [`LeaderPanicked`]
    ///   payload carrying the leader's message. The next call starts afresh.
    /// - If called for `key` from inside the `f` that is computing `key` on
    ///   this same thread (a re-entrant call, which would wait for itself
    ///   forever), it panics at once with a message that says so.
    /// - A panic in `K`'s `Hash`, `Eq` or `ToOwned`, or in `V::clone`,
    ///   unwinds in the caller whose call ran it; no entry is left behind
    ///   and no other caller hangs. If the leader's clone for its followers
    ///   panics, the followers panic with a [`LeaderPanicked`] payload, the
    ///   leader's call resumes the clone's panic, and the flight counts as a
    ///   panic in [`stats`](Self::stats) and to the observer.
    /// - A `V` whose `Drop` panics when a copy nobody received is dropped (a
    ///   [`do_chan`](Self::do_chan) receiver dropped before the flight
    ///   ended): the copy is dropped after the outcome is published and the
    ///   locks released, and its panic is contained there; it reaches no
    ///   caller.
    ///
    /// A `work` caller that joined a detached flight (one started by
    /// [`work_deadline`](Self::work_deadline) or [`do_chan`](Self::do_chan))
    /// which is then cancelled, or could not be spawned, does not fail: the
    /// key is released by then, so it calls again, running its own `f` if no
    /// newer flight is there to join.
    ///
    /// # Examples
    ///
    /// ```
    /// use singleflight_sync::Group;
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::thread;
    ///
    /// let group: Group<String, String> = Group::new();
    /// let runs = AtomicUsize::new(0);
    /// thread::scope(|s| {
    ///     for _ in 0..4 {
    ///         s.spawn(|| {
    ///             let page = group.work("/index.html", || {
    ///                 runs.fetch_add(1, Ordering::Relaxed);
    ///                 "<h1>hello</h1>".to_string()
    ///             });
    ///             assert_eq!(page, "<h1>hello</h1>");
    ///         });
    ///     }
    /// });
    /// // Between 1 and 4 runs, depending on how the threads overlapped.
    /// assert!((1..=4).contains(&runs.load(Ordering::Relaxed)));
    /// ```
    #[track_caller]
    pub fn work<Q>(&self, key: &Q, f: impl FnOnce() -> V) -> V
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        self.work_shared(key, f).value
    }

    /// Like [`work`](Self::work), and also says whether this caller led the
    /// flight and whether its value was shared.
    ///
    /// # Panics
    ///
    /// As [`work`](Self::work).
    ///
    /// # Examples
    ///
    /// ```
    /// let group = singleflight_sync::Group::<String, u8>::new();
    /// let flight = group.work_shared("k", || 7);
    /// assert_eq!((flight.value, flight.leader, flight.shared), (7, true, false));
    /// ```
    #[track_caller]
    pub fn work_shared<Q>(&self, key: &Q, f: impl FnOnce() -> V) -> Flight<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        self.work_with(key, |_| f())
    }

    /// [`work_shared`](Self::work_shared) for an `f` that is also told
    /// which flight it runs (for the cache, which asks at store time whether
    /// the flight was released meanwhile).
    #[track_caller]
    pub(crate) fn work_with<Q>(&self, key: &Q, f: impl FnOnce(FlightRef) -> V) -> Flight<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let (hash, index) = self.locate(key);
        let me = sync::thread_token();
        let mut first = true;
        let shard = &self.shards[index];
        loop {
            let mut table = shard.table.lock();
            table.counts.calls += u64::from(std::mem::take(&mut first));
            let entry = match table.joinable_or_insert(hash, key, me) {
                Ok(entry) => entry,
                Err(id) => {
                    // Taken under the lock the new flight was put in with.
                    let flight = FlightRef::unreleased_at(index, hash, id, shard.releases());
                    drop(table);
                    return self.lead(flight, f);
                }
            };
            if entry.owner == me {
                drop(table);
                reentrant_call(self.name, "work");
            }
            let id = entry.id;
            let call = entry
                .call
                .get_or_insert_with(|| Arc::new(Call::new(1)))
                .clone();
            call.join();
            table.counts.shared += 1;
            drop(table);
            self.observer.joined(self.name);
            match self.await_call(index, hash, id, &call, None) {
                Ok((value, shared)) => {
                    return Flight {
                        value,
                        shared,
                        leader: false,
                    }
                }
                Err(Error::Panicked(cause)) => panic::panic_any(cause),
                // A cancelled or unspawnable detached flight has released
                // its key: call again, joining a newer flight or leading one.
                Err(_) => continue,
            }
        }
    }

    fn lead(&self, flight: FlightRef, f: impl FnOnce(FlightRef) -> V) -> Flight<V> {
        let (index, hash, id) = flight.parts();
        let start = self.observer.start();
        // Catching (rather than a drop guard) lets the followers see the
        // leader's message; the leader's own panic resumes unchanged.
        let result = panic::catch_unwind(AssertUnwindSafe(|| f(flight)));
        let outcome = match &result {
            Ok(value) => self.observer.outcome(value),
            Err(_) => Outcome::Panic,
        };
        let call = finish(self.shards[index].table.lock(), hash, id, outcome);
        match result {
            // Nobody joined: nothing to publish (the common case, kept
            // apart so it builds no `Delivered` to read back).
            Ok(value) if call.is_none() => {
                self.observer.ended(self.name, start, 1, 0, false, outcome);
                Flight {
                    value,
                    shared: false,
                    leader: true,
                }
            }
            Ok(value) => {
                let shared = call.is_some();
                let published = match call {
                    Some(call) => call.publish_copy(&value, self.name),
                    None => Ok(Delivered::default()),
                };
                let (delivered, clone_panic) = match published {
                    Ok(delivered) => (delivered, None),
                    Err((delivered, payload)) => (delivered, Some(payload)),
                };
                let outcome = match clone_panic {
                    Some(_) => self.recount_as_panic(index, outcome),
                    None => outcome,
                };
                self.observer.ended(
                    self.name,
                    start,
                    delivered.waiters + 1,
                    delivered.waiters,
                    shared,
                    outcome,
                );
                if let Some(payload) = clone_panic {
                    // Dropped before unwinding: a `Drop` that panicked during
                    // the unwind would abort the process.
                    let _ = panic::catch_unwind(AssertUnwindSafe(|| drop(value)));
                    panic::resume_unwind(payload);
                }
                Flight {
                    value,
                    shared,
                    leader: true,
                }
            }
            Err(payload) => {
                let cause = LeaderPanicked::from_payload(&*payload, self.name);
                let delivered = call
                    .and_then(|call| call.publish_error(Error::Panicked(cause)))
                    .unwrap_or_default();
                self.observer.ended(
                    self.name,
                    start,
                    delivered.waiters + 1,
                    delivered.waiters,
                    delivered.shared,
                    Outcome::Panic,
                );
                panic::resume_unwind(payload)
            }
        }
    }
}

impl<K, V, S> Group<K, V, S> {
    /// A flight whose value was counted (as `was`) when it left the map, but
    /// whose copies for the waiters could not be made because `V::clone`
    /// panicked: it counts as a panic instead.
    #[cold]
    pub(crate) fn recount_as_panic(&self, index: usize, was: Outcome) -> Outcome {
        recount_as_panic(&self.shards[index], was)
    }
}

/// See [`Group::recount_as_panic`]; for a detached runner, which holds the
/// shards but not the group.
#[cold]
pub(crate) fn recount_as_panic<K, V>(shard: &Shard<K, V>, was: Outcome) -> Outcome {
    let mut table = shard.table.lock();
    if was == Outcome::Error {
        table.counts.errors -= 1;
    }
    table.counts.panics += 1;
    Outcome::Panic
}

/// Panics for a call that would wait for the flight its own thread is
/// running; `entry` names the method called.
#[cold]
#[track_caller]
pub(crate) fn reentrant_call(name: Option<&'static str>, entry: &str) -> ! {
    let group = name.map(|n| format!(" `{n}`")).unwrap_or_default();
    panic!(
        "singleflight: re-entrant call: `{entry}` was called for a key from inside the `f` \
         that is computing that same key on this thread (group{group}); it would wait \
         for itself forever"
    )
}

impl<K, V, S> fmt::Debug for Group<K, V, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Group")
            .field("name", &self.name)
            .field("shards", &self.shards.len())
            .field("in_flight", &self.in_flight())
            .field("spawner", &self.spawner)
            .finish_non_exhaustive()
    }
}
