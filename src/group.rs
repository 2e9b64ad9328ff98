//! `Group`: one execution per key at a time.

use std::borrow::Borrow;
use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::marker::PhantomData;
use std::panic::{self, AssertUnwindSafe, RefUnwindSafe, UnwindSafe};

use hashbrown::HashTable;

use std::time::{Duration, Instant};

use crate::call::{Call, Delivered, Share};
use crate::cancel::CancelToken;
use crate::detached::Spawner;
use crate::error::{Error, LeaderPanicked};
use crate::metrics::{FlightEnd, GroupCounts, Metrics, Outcome, Stats};
use crate::sync::{self, Arc, Mutex, MutexGuard, Shared};

/// What a caller of [`Group::work_shared`] receives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Flight<V> {
    /// The flight's value: moved to the leader, cloned for each follower.
    pub value: V,
    /// Whether the value went to more than one caller. Always `true` for a
    /// follower; `true` for the leader when anyone joined its flight (as in
    /// Go's `x/sync/singleflight`).
    pub shared: bool,
    /// Whether this caller ran `f`.
    pub leader: bool,
}

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
/// Fallible work is `V = Result<T, E>` with `E: Clone`: an error goes to every
/// caller of that flight and is never remembered.
///
/// `Group` is `Send + Sync` when `K`, `V` and `S` are `Send` (and `S: Sync`);
/// share it with an `Arc` or a `static`.
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
pub struct Group<K, V, S = RandomState> {
    /// Shared so a detached flight's runner can take its entry out of the map
    /// when it ends, whichever thread it runs on.
    pub(crate) shards: Shared<[Shard<K, V>]>,
    /// `(hash >> 32) & mask` picks the shard: middle bits, which hashbrown
    /// uses neither for a bucket index (low bits) nor for its tags (the top
    /// seven), so sharding costs the tables nothing.
    mask: usize,
    hasher: S,
    pub(crate) name: Option<&'static str>,
    pub(crate) spawner: Spawner,
    pub(crate) observer: Observer<V>,
}

/// What a group reports to, and how it tells an error value from a value.
pub(crate) struct Observer<V> {
    pub(crate) metrics: Option<Shared<dyn Metrics>>,
    pub(crate) error_if: Option<fn(&V) -> bool>,
}

impl<V> Clone for Observer<V> {
    fn clone(&self) -> Self {
        Observer {
            metrics: self.metrics.clone(),
            error_if: self.error_if,
        }
    }
}

impl<V> Observer<V> {
    /// The clock is read only when someone will be told.
    #[inline]
    pub(crate) fn start(&self) -> Option<Instant> {
        self.metrics.as_ref().map(|_| Instant::now())
    }

    /// How a value counts. A panicking `error_if` counts it as a value: it
    /// must not keep the flight from ending.
    #[inline]
    pub(crate) fn outcome(&self, value: &V) -> Outcome {
        let Some(is_error) = self.error_if else {
            return Outcome::Value;
        };
        match panic::catch_unwind(AssertUnwindSafe(|| is_error(value))) {
            Ok(true) => Outcome::Error,
            _ => Outcome::Value,
        }
    }

    /// Tells the observer a flight ended, if there is one.
    pub(crate) fn ended(
        &self,
        name: Option<&'static str>,
        start: Option<Instant>,
        callers: usize,
        waiters: usize,
        shared: bool,
        outcome: Outcome,
    ) {
        if let Some(m) = &self.metrics {
            let duration = start.map_or(Duration::ZERO, |s| s.elapsed());
            m.flight_ended(
                name,
                &FlightEnd {
                    duration,
                    callers,
                    waiters,
                    shared,
                    outcome,
                },
            );
        }
    }

    /// [`ended`](Self::ended) for a detached or cancelled flight, whose
    /// every caller was a waiter.
    pub(crate) fn ended_detached(
        &self,
        name: Option<&'static str>,
        start: Option<Instant>,
        delivered: Option<Delivered>,
        outcome: Outcome,
    ) {
        if let Some(d) = delivered {
            self.ended(name, start, d.waiters, d.waiters, d.shared, outcome);
        }
    }

    #[inline]
    pub(crate) fn joined(&self, name: Option<&'static str>) {
        if let Some(m) = &self.metrics {
            m.waiter_joined(name);
        }
    }
}

/// Padded to a cache line pair so two shards' locks never share a line.
#[repr(align(128))]
pub(crate) struct Shard<K, V> {
    pub(crate) table: Mutex<Table<K, V>>,
}

/// `repr(C)` keeps what every call touches (the lock word before it, the
/// table's header, `next_id`, then `calls` and `executions` at the head of
/// the counters) within the shard's first 64 bytes: on two cores, each line a
/// call writes is a line that may have to cross from the other core.
#[repr(C)]
pub(crate) struct Table<K, V> {
    entries: HashTable<Entry<K, V>>,
    /// Flight ids are unique per shard, which is all `find_entry` by id needs.
    next_id: u64,
    pub(crate) counts: GroupCounts,
}

/// One running flight, as the map holds it.
pub(crate) struct Entry<K, V> {
    key: K,
    /// Stored so a resize never calls the user's `Hash` (which may panic).
    hash: u64,
    pub(crate) id: u64,
    /// The thread running `f`, to refuse a re-entrant call instead of
    /// deadlocking on it; 0 for a detached flight not started yet.
    pub(crate) owner: usize,
    /// Set by `forget` or `cancel`: new callers no longer join this flight,
    /// but its runner still finds it by id and still serves its waiters.
    pub(crate) released: bool,
    /// Made by the first waiter; `None` for an inline flight nobody joined.
    pub(crate) call: Option<Arc<Call<V>>>,
    /// A detached flight's token; `None` for an inline flight.
    pub(crate) token: Option<CancelToken>,
}

impl<K, V> Group<K, V> {
    /// Creates an empty group with the default hasher and shard count.
    ///
    /// # Examples
    ///
    /// ```
    /// let group = singleflight_sync::Group::<u64, String>::new();
    /// assert_eq!(group.in_flight(), 0);
    /// ```
    pub fn new() -> Self {
        Self::builder().build()
    }

    /// Starts a [`GroupBuilder`] to set a name, a hasher or a shard count.
    ///
    /// # Examples
    ///
    /// ```
    /// use singleflight_sync::Group;
    ///
    /// let group: Group<String, Vec<u8>> = Group::builder().name("thumbnails").build();
    /// assert_eq!(group.name(), Some("thumbnails"));
    /// ```
    pub fn builder() -> GroupBuilder<K, V> {
        GroupBuilder {
            name: None,
            hasher: RandomState::new(),
            shards: None,
            spawner: Spawner::default(),
            observer: Observer {
                metrics: None,
                error_if: None,
            },
            _types: PhantomData,
        }
    }
}

/// A panic in `f`, `Hash`, `Eq`, `Clone`, `Drop` or a spawner never leaves a group
/// half-updated (the point of the crate's panic handling, and tested), so a
/// group may be used across `catch_unwind` without `AssertUnwindSafe`.
impl<K, V, S: RefUnwindSafe> RefUnwindSafe for Group<K, V, S> {}
impl<K, V, S: UnwindSafe> UnwindSafe for Group<K, V, S> {}

impl<K, V> Default for Group<K, V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K, V, S> Group<K, V, S> {
    /// The name given with [`GroupBuilder::name`], if any.
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
        self.shards
            .iter()
            .map(|s| s.table.lock().entries.len())
            .sum()
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

    /// Releases every joinable flight (for `TtlCache::clear`).
    pub(crate) fn release_all(&self) {
        for shard in self.shards.iter() {
            shard.table.lock().release_all();
        }
    }

    fn release_if<Q>(&self, key: &Q, allowed: impl FnOnce(&Entry<K, V>) -> bool) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let (hash, index) = self.locate(key);
        let mut table = self.shards[index].table.lock();
        match table.joinable(hash, key) {
            Some(entry) if allowed(entry) => {
                entry.released = true;
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
        let mut table = self.shards[index].table.lock();
        let (remaining, shared) = match call.leave() {
            Ok(share) => return share,
            Err(left) => left,
        };
        table.counts.timeouts += 1;
        let mut cancelled = false;
        if remaining == 0 {
            if let Some(entry) = table.by_id(hash, id) {
                if let Some(token) = &entry.token {
                    entry.released = true;
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

impl<K, V> Table<K, V> {
    /// The flight a new caller for `key` would join, if any.
    #[inline]
    pub(crate) fn joinable<Q>(&mut self, hash: u64, key: &Q) -> Option<&mut Entry<K, V>>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        self.entries
            .find_mut(hash, |e| !e.released && e.key.borrow() == key)
    }

    /// The flight a new caller for `key` would join, or, when there is none,
    /// a new inline flight for it led by `owner` (`Err` with its id). One
    /// probe serves both.
    #[inline]
    pub(crate) fn joinable_or_insert<Q>(
        &mut self,
        hash: u64,
        key: &Q,
        owner: usize,
    ) -> Result<&mut Entry<K, V>, u64>
    where
        K: Borrow<Q>,
        Q: Eq + ToOwned<Owned = K> + ?Sized,
    {
        match self
            .entries
            .entry(hash, |e| !e.released && e.key.borrow() == key, |e| e.hash)
        {
            hashbrown::hash_table::Entry::Occupied(found) => Ok(found.into_mut()),
            hashbrown::hash_table::Entry::Vacant(slot) => {
                let id = self.next_id;
                slot.insert(Entry {
                    key: key.to_owned(),
                    hash,
                    id,
                    owner,
                    released: false,
                    call: None,
                    token: None,
                });
                self.next_id += 1;
                self.counts.executions += 1;
                Err(id)
            }
        }
    }

    fn release_all(&mut self) {
        for entry in self.entries.iter_mut() {
            entry.released = true;
        }
    }

    /// The flight `id`, joinable or not.
    pub(crate) fn by_id(&mut self, hash: u64, id: u64) -> Option<&mut Entry<K, V>> {
        self.entries.find_mut(hash, |e| e.id == id)
    }

    /// Adds a flight for `key` and returns its id.
    pub(crate) fn insert(
        &mut self,
        hash: u64,
        key: K,
        owner: usize,
        call: Option<Arc<Call<V>>>,
        token: Option<CancelToken>,
    ) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.counts.executions += 1;
        let entry = Entry {
            key,
            hash,
            id,
            owner,
            released: false,
            call,
            token,
        };
        self.entries.insert_unique(hash, entry, |e| e.hash);
        id
    }
}

/// Takes the flight `id` out of the map and hands back its waiters' `Call`.
/// Only a flight's runner (or the caller whose spawn of it failed) does this,
/// once. The key is dropped after the lock is released.
pub(crate) fn finish<K, V>(
    mut table: MutexGuard<'_, Table<K, V>>,
    hash: u64,
    id: u64,
    outcome: Outcome,
) -> Option<Arc<Call<V>>> {
    let entry = match table.entries.find_entry(hash, |e| e.id == id) {
        Ok(found) => found.remove().0,
        Err(_) => unreachable!("only its own runner removes a flight from the map"),
    };
    match outcome {
        Outcome::Error => table.counts.errors += 1,
        Outcome::Panic => table.counts.panics += 1,
        Outcome::Value | Outcome::Cancelled => {}
    }
    drop(table);
    entry.call
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
        let (hash, index) = self.locate(key);
        let me = sync::thread_token();
        let mut first = true;
        loop {
            let mut table = self.shards[index].table.lock();
            table.counts.calls += u64::from(std::mem::take(&mut first));
            let entry = match table.joinable_or_insert(hash, key, me) {
                Ok(entry) => entry,
                Err(id) => {
                    drop(table);
                    return self.lead(index, hash, id, f);
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

    fn lead(&self, index: usize, hash: u64, id: u64, f: impl FnOnce() -> V) -> Flight<V> {
        let start = self.observer.start();
        // Catching (rather than a drop guard) lets the followers see the
        // leader's message; the leader's own panic resumes unchanged.
        let result = panic::catch_unwind(AssertUnwindSafe(f));
        let outcome = match &result {
            Ok(value) => self.observer.outcome(value),
            Err(_) => Outcome::Panic,
        };
        let call = finish(self.shards[index].table.lock(), hash, id, outcome);
        match result {
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

/// Configures a [`Group`]; made by [`Group::builder`].
///
/// # Examples
///
/// ```
/// use singleflight_sync::Group;
/// use std::collections::hash_map::RandomState;
///
/// let group: Group<u64, u64> = Group::builder()
///     .name("prices")
///     .hasher(RandomState::new())
///     .shards(16)
///     .build();
/// assert_eq!(group.work(&1, || 2), 2);
/// ```
pub struct GroupBuilder<K, V, S = RandomState> {
    name: Option<&'static str>,
    hasher: S,
    shards: Option<usize>,
    pub(crate) spawner: Spawner,
    observer: Observer<V>,
    _types: PhantomData<fn() -> (K, V)>,
}

impl<K, V, S> GroupBuilder<K, V, S> {
    /// A label for panic messages, errors and metrics. Never a key: keys are
    /// unbounded, names are not.
    ///
    /// # Examples
    ///
    /// ```
    /// use singleflight_sync::Group;
    ///
    /// let group: Group<String, u32> = Group::builder().name("users").build();
    /// assert_eq!(group.name(), Some("users"));
    /// assert!(format!("{group:?}").contains(r#"name: Some("users")"#));
    /// ```
    pub fn name(mut self, name: &'static str) -> Self {
        self.name = Some(name);
        self
    }

    /// The hasher that picks a key's shard and bucket (default:
    /// [`RandomState`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use singleflight_sync::Group;
    /// use std::hash::{BuildHasherDefault, DefaultHasher};
    ///
    /// let group: Group<String, u32, BuildHasherDefault<DefaultHasher>> =
    ///     Group::builder().hasher(BuildHasherDefault::default()).build();
    /// assert_eq!(group.work("k", || 1), 1);
    /// assert_eq!(group.stats().calls, 1);
    /// ```
    pub fn hasher<S2: BuildHasher>(self, hasher: S2) -> GroupBuilder<K, V, S2> {
        GroupBuilder {
            name: self.name,
            hasher,
            shards: self.shards,
            spawner: self.spawner,
            observer: self.observer,
            _types: PhantomData,
        }
    }

    /// How many independently locked shards the map has, rounded up to a
    /// power of two (default: four per core, at least 4, at most 256).
    ///
    /// # Panics
    ///
    /// If `shards` is 0 or above 65,536.
    ///
    /// # Examples
    ///
    /// ```
    /// use singleflight_sync::Group;
    ///
    /// let group: Group<u64, u64> = Group::builder().shards(3).build();
    /// assert!(format!("{group:?}").contains("shards: 4"), "rounded up to a power of two");
    /// assert!(std::panic::catch_unwind(|| Group::<u64, u64>::builder().shards(0)).is_err());
    /// ```
    pub fn shards(mut self, shards: usize) -> Self {
        assert!(
            (1..=1 << 16).contains(&shards),
            "GroupBuilder::shards: {shards} is not a shard count (1..=65536)"
        );
        self.shards = Some(shards.next_power_of_two());
        self
    }

    /// An observer told of every flight's end and every waiter (see
    /// [`Metrics`]). Without one, the group reads no clock and allocates
    /// nothing for metrics.
    ///
    /// # Examples
    ///
    /// ```
    /// use singleflight_sync::{FlightEnd, Group, Metrics};
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::sync::Arc;
    ///
    /// #[derive(Debug, Default)]
    /// struct Flights(AtomicUsize);
    /// impl Metrics for Flights {
    ///     fn flight_ended(&self, _group: Option<&'static str>, _flight: &FlightEnd) {
    ///         self.0.fetch_add(1, Ordering::Relaxed);
    ///     }
    /// }
    ///
    /// let flights = Arc::new(Flights::default());
    /// let group: Group<String, u32> = Group::builder().metrics(flights.clone()).build();
    /// group.work("k", || 1);
    /// assert_eq!(flights.0.load(Ordering::Relaxed), 1);
    /// ```
    pub fn metrics<M: Metrics>(mut self, metrics: std::sync::Arc<M>) -> Self {
        self.observer.metrics = Some(metrics);
        self
    }

    /// How to tell an error from a value, for [`Stats::errors`] and the
    /// observer's [`Outcome::Error`]: for `V = Result<T, E>`, pass
    /// `Result::is_err`. Default: no value is an error. If `is_error`
    /// panics, the value counts as a value (the flight still ends normally).
    ///
    /// # Examples
    ///
    /// ```
    /// use singleflight_sync::Group;
    ///
    /// let group: Group<String, Result<u32, String>> =
    ///     Group::builder().error_if(Result::is_err).build();
    /// let _ = group.work("k", || Err("down".to_string()));
    /// assert_eq!(group.stats().errors, 1);
    /// ```
    pub fn error_if(mut self, is_error: fn(&V) -> bool) -> Self {
        self.observer.error_if = Some(is_error);
        self
    }

    /// Makes the group.
    ///
    /// # Examples
    ///
    /// ```
    /// use singleflight_sync::Group;
    ///
    /// let group: Group<String, u32> = Group::builder().build();
    /// assert_eq!((group.name(), group.in_flight()), (None, 0));
    /// assert_eq!(group.work("k", || 1), 1);
    /// ```
    pub fn build(self) -> Group<K, V, S> {
        let count = self.shards.unwrap_or_else(sync::default_shards);
        let shards = (0..count)
            .map(|_| Shard {
                table: Mutex::new(Table {
                    entries: HashTable::new(),
                    next_id: 0,
                    counts: GroupCounts::default(),
                }),
            })
            .collect();
        Group {
            shards,
            mask: count - 1,
            hasher: self.hasher,
            name: self.name,
            spawner: self.spawner,
            observer: self.observer,
        }
    }
}

impl<K, V, S: fmt::Debug> fmt::Debug for GroupBuilder<K, V, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GroupBuilder")
            .field("name", &self.name)
            .field("hasher", &self.hasher)
            .field("shards", &self.shards)
            .field("spawner", &self.spawner)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::Entry;
    use crate::call::Call;
    use std::mem::size_of;

    /// DESIGN.md: one in-flight call costs at most 128 bytes beyond K and V.
    /// A flight nobody joined is its map entry alone; one with followers adds
    /// a `Call` (behind an `Arc`: two counters more).
    #[test]
    fn what_every_call_touches_shares_the_shards_first_line() {
        use super::{Shard, Table};
        let table = std::mem::offset_of!(Shard<u64, u64>, table);
        // parking_lot's mutex is its lock byte followed by the data.
        let data = size_of::<crate::sync::Mutex<Table<u64, u64>>>() - size_of::<Table<u64, u64>>();
        let hot_end = table + data + std::mem::offset_of!(Table<u64, u64>, counts) + 2 * 8;
        assert!(hot_end <= 64, "the hot fields end at byte {hot_end}");
    }

    #[test]
    fn an_in_flight_call_fits_in_128_bytes_beyond_k_and_v() {
        let entry = size_of::<Entry<(), ()>>();
        let call = 2 * size_of::<usize>() + size_of::<Call<()>>();
        println!("entry {entry} B, call {call} B");
        assert!(entry <= 64, "entry {entry} B");
        assert!(entry + call <= 128, "entry {entry} B + call {call} B");
    }
}
