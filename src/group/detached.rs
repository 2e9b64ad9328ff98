//! Detached flights: `f` runs on the group's spawner while callers wait with
//! deadlines (`work_deadline`, `work_timeout`) or on a channel (`do_chan`),
//! and `cancel` can stop it.

use std::borrow::Borrow;
use std::hash::{BuildHasher, Hash};
use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;

use super::observer::Observer;
use super::table::{finish, FlightRef, Releases, Shard, Table};
use super::work::{recount_as_panic, reentrant_call, Group};
use crate::call::{Call, Flight, Reply};
use crate::cancel::CancelToken;
use crate::error::{Error, LeaderPanicked};
use crate::metrics::Outcome;
use crate::spawn::Abandon;
use crate::sync::{self, Arc, MutexGuard, Shared};

impl<K, V, S> Group<K, V, S>
where
    K: Send + 'static,
    V: Clone + Send + 'static,
    S: BuildHasher,
{
    /// Like [`work`](Self::work), but `f` runs on the group's spawner and this
    /// caller waits only until `deadline`.
    ///
    /// Every caller, the first included, waits until its own deadline and
    /// then returns [`Error::Timeout`]; the flight goes on for the others.
    /// When the last caller waiting with a deadline gives up, `f`'s
    /// [`CancelToken`] is cancelled and the key released in the same step,
    /// so a new caller starts a fresh flight rather than joining a cancelled
    /// one. A caller joins any running flight for `key`, inline or detached;
    /// it then leaves an inline flight at its deadline without disturbing it.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] at the deadline, [`Error::Cancelled`] after
    /// [`cancel`](Self::cancel), [`Error::Panicked`] if `f` panicked (the
    /// panic does not reach the spawner's thread), [`Error::Spawn`] if the
    /// spawner failed.
    ///
    /// # Panics
    ///
    /// If called for `key` from inside the `f` computing `key` on this thread:
    /// it could only wait for itself until the deadline.
    ///
    /// # Examples
    ///
    /// ```
    /// use singleflight_sync::{Error, Group};
    /// use std::time::{Duration, Instant};
    ///
    /// let group: Group<String, u32> = Group::new();
    /// let slow = group.work_deadline("k", Instant::now() + Duration::from_millis(10), |token| {
    ///     token.wait_timeout(Duration::from_secs(5)); // stops early once cancelled
    ///     1
    /// });
    /// assert!(matches!(slow, Err(Error::Timeout)));
    /// // The only caller gave up: the flight was cancelled and the key released.
    /// let fresh = group.work_timeout("k", Duration::from_secs(5), |_| 2).unwrap();
    /// assert_eq!((fresh.value, fresh.leader), (2, true));
    /// ```
    pub fn work_deadline<Q, F>(&self, key: &Q, deadline: Instant, f: F) -> Result<Flight<V>, Error>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
        F: FnOnce(&CancelToken) -> V + Send + 'static,
    {
        self.wait_detached(key, Some(deadline), f)
    }

    /// [`work_deadline`](Self::work_deadline) with a deadline `timeout` from
    /// now (an unrepresentable one means no deadline).
    ///
    /// # Errors
    ///
    /// As [`work_deadline`](Self::work_deadline).
    ///
    /// # Panics
    ///
    /// As [`work_deadline`](Self::work_deadline).
    ///
    /// # Examples
    ///
    /// ```
    /// use singleflight_sync::Group;
    /// use std::time::Duration;
    ///
    /// let group: Group<u64, String> = Group::new();
    /// let flight = group.work_timeout(&7, Duration::from_secs(5), |_| "seven".to_string());
    /// assert_eq!(flight.unwrap().value, "seven");
    /// ```
    pub fn work_timeout<Q, F>(&self, key: &Q, timeout: Duration, f: F) -> Result<Flight<V>, Error>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
        F: FnOnce(&CancelToken) -> V + Send + 'static,
    {
        self.wait_detached(key, Instant::now().checked_add(timeout), f)
    }

    #[track_caller]
    fn wait_detached<Q, F>(
        &self,
        key: &Q,
        deadline: Option<Instant>,
        f: F,
    ) -> Result<Flight<V>, Error>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
        F: FnOnce(&CancelToken) -> V + Send + 'static,
    {
        let (hash, index) = self.locate(key);
        let mut table = self.shards[index].table.lock();
        table.counts.calls += 1;
        let (id, call, leader) = match table.joinable(hash, key) {
            Some(entry) => {
                if entry.owner == sync::thread_token() {
                    drop(table);
                    reentrant_call(self.name, "work_deadline` or `work_timeout");
                }
                let call = entry
                    .call
                    .get_or_insert_with(|| Arc::new(Call::new(1)))
                    .clone();
                call.join();
                let id = entry.id;
                table.counts.shared += 1;
                drop(table);
                (id, call, false)
            }
            None => {
                let call = Arc::new(Call::new(0));
                call.join();
                let f = move |token: &CancelToken, _: FlightRef| f(token);
                let id = self.start(table, index, hash, key, call.clone(), f);
                (id, call, true)
            }
        };
        self.observer.joined(self.name);
        self.await_call(index, hash, id, &call, deadline)
            .map(|(value, shared)| Flight {
                value,
                shared,
                leader,
            })
    }

    /// Starts (or joins) the flight for `key` and returns a receiver that
    /// yields exactly one message: the flight's outcome for this caller.
    ///
    /// `f` runs on the group's spawner. The receiver works in
    /// [`crossbeam_channel::select!`] beside `after()` and other channels. It
    /// counts as a waiter until its message is sent, so giving up on it does
    /// not cancel the flight; dropping it drops its copy of the value when
    /// the flight ends, and nothing leaks.
    ///
    /// # Errors
    ///
    /// The message is [`Error::Panicked`] if `f` panicked,
    /// [`Error::Cancelled`] after [`cancel`](Self::cancel), [`Error::Spawn`]
    /// if the spawner failed.
    ///
    /// # Panics
    ///
    /// If called for `key` from inside the `f` computing `key` on this thread
    /// (inline or detached): its message could only come once this very `f`
    /// had returned.
    ///
    /// # Examples
    ///
    /// ```
    /// use crossbeam_channel::{after, select};
    /// use singleflight_sync::Group;
    /// use std::time::Duration;
    ///
    /// let group: Group<String, u32> = Group::new();
    /// let rx = group.do_chan("answer", |_| 42);
    /// select! {
    ///     recv(rx) -> msg => assert_eq!(msg.unwrap().unwrap().value, 42),
    ///     recv(after(Duration::from_secs(10))) -> _ => panic!("too slow"),
    /// }
    /// ```
    pub fn do_chan<Q, F>(&self, key: &Q, f: F) -> Receiver<Reply<V>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
        F: FnOnce(&CancelToken) -> V + Send + 'static,
    {
        self.do_chan_with(key, move |token, _| f(token))
    }

    /// [`do_chan`](Self::do_chan) for an `f` that is also told which
    /// flight it runs (for the cache, which asks at store time whether the
    /// flight was released meanwhile).
    pub(crate) fn do_chan_with<Q, F>(&self, key: &Q, f: F) -> Receiver<Reply<V>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
        F: FnOnce(&CancelToken, FlightRef) -> V + Send + 'static,
    {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let (hash, index) = self.locate(key);
        let mut table = self.shards[index].table.lock();
        table.counts.calls += 1;
        if let Some(entry) = table.joinable(hash, key) {
            if entry.owner == sync::thread_token() {
                drop(table);
                reentrant_call(self.name, "do_chan");
            }
            let call = entry.call.get_or_insert_with(|| Arc::new(Call::new(1)));
            call.join_reply(tx, false);
            table.counts.shared += 1;
            drop(table);
            self.observer.joined(self.name);
            return rx;
        }
        let call = Arc::new(Call::new(0));
        call.join_reply(tx, true);
        self.start(table, index, hash, key, call, f);
        self.observer.joined(self.name);
        rx
    }

    /// Puts a new detached flight for `key` in the map (its starter already
    /// counted in `call`), releases the shard and launches it. Returns its id.
    fn start<Q, F>(
        &self,
        table: MutexGuard<'_, Table<K, V>>,
        index: usize,
        hash: u64,
        key: &Q,
        call: Arc<Call<V>>,
        f: F,
    ) -> u64
    where
        Q: ToOwned<Owned = K> + ?Sized,
        F: FnOnce(&CancelToken, FlightRef) -> V + Send + 'static,
    {
        // A local, so that if `to_owned` panics the guard is dropped before
        // the parameters `call` and `f`: their drops (a cache's refresh
        // flag among them) must not run under the group's lock.
        let mut table = table;
        let token = CancelToken::new();
        let id = table.insert(
            hash,
            key.to_owned(),
            0,
            Some(call.clone()),
            Some(token.clone()),
        );
        drop(table);
        self.launch(index, hash, id, call, token, f);
        id
    }

    /// Hands a new detached flight to the spawner, making sure that however
    /// the spawner fails (an error, a panic, a job dropped unrun) the flight
    /// ends with [`Error::Spawn`] and leaves the map.
    fn launch<F>(
        &self,
        index: usize,
        hash: u64,
        id: u64,
        call: Arc<Call<V>>,
        token: CancelToken,
        f: F,
    ) where
        F: FnOnce(&CancelToken, FlightRef) -> V + Send + 'static,
    {
        let runner = Runner {
            shards: self.shards.clone(),
            index,
            hash,
            id,
            call,
            token,
            name: self.name,
            observer: self.observer.clone(),
            f,
        };
        self.spawner.launch(self.name, runner, Runner::run);
    }

    /// Cancels the flight for `key`: its [`CancelToken`] is cancelled, the key
    /// is released, and every caller still waiting gets
    /// [`Error::Cancelled`] at once. Returns whether there was a flight.
    ///
    /// An inline flight (one led by [`work`](Self::work)) has no token and a
    /// leader that waits for its own `f`: for it, `cancel` is
    /// [`forget`](Self::forget), and its waiters still get its value.
    ///
    /// # Examples
    ///
    /// ```
    /// use singleflight_sync::{Error, Group};
    ///
    /// let group: Group<String, u32> = Group::new();
    /// let rx = group.do_chan("k", |token| {
    ///     token.wait(); // runs until cancelled
    ///     0
    /// });
    /// assert!(group.cancel("k"));
    /// assert!(matches!(rx.recv().unwrap(), Err(Error::Cancelled)));
    /// assert!(!group.cancel("k"));
    /// ```
    pub fn cancel<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let (hash, index) = self.locate(key);
        let shard = &self.shards[index];
        let mut table = shard.table.lock();
        let Some(entry) = table.joinable(hash, key) else {
            return false;
        };
        entry.release(&Releases::of(shard));
        let detached = entry.token.clone().zip(entry.call.clone());
        if let Some((token, call)) = detached {
            // Outcome first, under the shard lock (the order is shard, then
            // call): once `f` sees the token it may end at once, and its
            // value must not overtake the cancellation. A flight whose value
            // was already published is released but not counted cancelled.
            let delivered = call.publish_error(Error::Cancelled);
            table.counts.cancellations += u64::from(delivered.is_some());
            drop(table);
            token.cancel();
            self.observer
                .ended_detached(self.name, None, delivered, Outcome::Cancelled);
        }
        true
    }
}

/// Everything a detached flight needs to run and end, on any thread.
struct Runner<K, V, F> {
    shards: Shared<[Shard<K, V>]>,
    index: usize,
    hash: u64,
    id: u64,
    call: Arc<Call<V>>,
    token: CancelToken,
    name: Option<&'static str>,
    observer: Observer<V>,
    f: F,
}

impl<K, V: Clone, F: FnOnce(&CancelToken, FlightRef) -> V> Runner<K, V, F> {
    fn run(self) {
        let shard = &self.shards[self.index];
        let flight = match shard.table.lock().by_id(self.hash, self.id) {
            Some(entry) => {
                entry.owner = sync::thread_token();
                match entry.is_released() {
                    false => {
                        FlightRef::unreleased_at(self.index, self.hash, self.id, shard.releases())
                    }
                    true => FlightRef::new(self.index, self.hash, self.id),
                }
            }
            None => FlightRef::new(self.index, self.hash, self.id),
        };
        let Runner { f, token, .. } = self;
        let start = self.observer.start();
        let result = panic::catch_unwind(AssertUnwindSafe(|| f(&token, flight)));
        let mut outcome = match &result {
            Ok(value) => self.observer.outcome(value),
            Err(_) => Outcome::Panic,
        };
        // Out of the map first, so no caller joins once the outcome is set.
        let _ = finish(shard.table.lock(), self.hash, self.id, outcome);
        let delivered = match result {
            Ok(value) => self.call.publish_owned(value, self.name),
            Err(payload) => {
                let cause = LeaderPanicked::from_payload(&*payload, self.name);
                self.call.publish_error(Error::Panicked(cause))
            }
        };
        if delivered.is_some_and(|d| d.clone_panicked) {
            outcome = recount_as_panic(shard, outcome);
        }
        // `None`: cancelled earlier, and reported then.
        self.observer
            .ended_detached(self.name, start, delivered, outcome);
    }
}

impl<K, V, F> Abandon for Runner<K, V, F> {
    /// Ends a flight that will never run: out of the map, token cancelled,
    /// every waiter told why.
    fn abandon(self, cause: io::Error) {
        let table = self.shards[self.index].table.lock();
        let _ = finish(table, self.hash, self.id, Outcome::Error);
        self.token.cancel();
        let delivered = self.call.publish_error(Error::Spawn(Shared::new(cause)));
        self.observer
            .ended_detached(self.name, None, delivered, Outcome::Error);
    }
}
