//! Batches: many keys in one call (`work_many`), each key its own flight.
//!
//! A batch joins the flights already running for some of its keys and leads
//! one flight for each of the others; one call of `f` answers all of those
//! (or one per `max_batch` keys). Single-key callers and other batches join
//! a batch's flights like any other. A key the answer leaves out ends its
//! flight with [`Error::NotFound`]: a batch that joined it reports the key as
//! absent, a `work` caller calls again (running its own `f`, as it does after
//! a cancelled flight), a deadline or channel caller gets the error.
//!
//! A batch runs its own `f` before it waits for the flights it joined, so
//! two batches that each lead a key the other joined never wait for each
//! other.

use std::borrow::Borrow;
use std::hash::{BuildHasher, Hash};
use std::panic::{self, AssertUnwindSafe};

use hashbrown::HashTable;

use super::table::{finish, FlightRef};
use super::work::{recount_as_panic, reentrant_call, Group};
use crate::call::{Call, Delivered};
use crate::error::{Error, LeaderPanicked};
use crate::metrics::Outcome;
use crate::sync::{self, Arc, Shared};

/// One flight a batch leads, until it ends.
#[derive(Clone, Copy)]
struct Led {
    /// The key's position in the caller's list.
    pos: usize,
    index: usize,
    hash: u64,
    id: u64,
    ended: bool,
}

/// A flight a batch joined.
struct Joined<V> {
    pos: usize,
    index: usize,
    hash: u64,
    id: u64,
    call: Arc<Call<V>>,
}

/// The flights a batch leads. Dropped while unwinding (`f`, a `Hash`, an
/// `Eq` or a `Clone` panicked, or a re-entrant call was refused half-way
/// through the keys) it ends every flight not ended yet: out of the map,
/// each of its waiters told of the panic. So no key is ever left in flight.
struct Leading<'g, K, V, S> {
    group: &'g Group<K, V, S>,
    flights: Vec<Led>,
    /// The panic's message, once it is known.
    cause: Option<LeaderPanicked>,
}

impl<K, V, S> Drop for Leading<'_, K, V, S> {
    fn drop(&mut self) {
        let name = self.group.name;
        for led in self.flights.iter_mut().filter(|led| !led.ended) {
            led.ended = true;
            let table = self.group.shards[led.index].table.lock();
            let call = finish(table, led.hash, led.id, Outcome::Panic);
            let cause = self.cause.clone().unwrap_or_else(|| {
                LeaderPanicked::from_payload(&"the batch leading this key panicked", name)
            });
            let delivered = call
                .and_then(|call| call.publish_error(Error::Panicked(cause)))
                .unwrap_or_default();
            self.group.observer.ended(
                name,
                None,
                delivered.waiters + 1,
                delivered.waiters,
                delivered.shared,
                Outcome::Panic,
            );
        }
    }
}

/// For each position, the first position holding an equal key: a key asked
/// for twice is one flight.
fn firsts<Q: Eq + ?Sized>(keys: &[&Q], hashes: &[(u64, usize)]) -> Vec<usize> {
    let mut seen: HashTable<usize> = HashTable::with_capacity(keys.len());
    let mut firsts = Vec::with_capacity(keys.len());
    for (pos, key) in keys.iter().enumerate() {
        let hash = hashes[pos].0;
        match seen.find(hash, |&j| keys[j] == *key) {
            Some(&j) => firsts.push(j),
            None => {
                seen.insert_unique(hash, pos, |&j| hashes[j].0);
                firsts.push(pos);
            }
        }
    }
    firsts
}

impl<K, V: Clone, S: BuildHasher> Group<K, V, S> {
    /// The batch core: one answer per key of `keys` (in order; `None`: not
    /// found). `run` is called with the distinct keys this caller leads (at
    /// most `max_batch` a call) and the flights they run in, and answers
    /// each, in order; it runs inside those flights (the cache stores its
    /// values there, before they are released).
    ///
    /// A joined flight that was cancelled or could not be spawned has
    /// released its key: that key is asked for again, in another round.
    #[track_caller]
    pub(crate) fn many_with<Q>(
        &self,
        keys: &[&Q],
        max_batch: usize,
        mut run: impl FnMut(&[&Q], &[FlightRef]) -> Vec<Option<V>>,
    ) -> Vec<Option<V>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        assert!(
            max_batch > 0,
            "singleflight: a batch's max_batch must be at least 1"
        );
        let located: Vec<(u64, usize)> = keys.iter().map(|k| self.locate(*k)).collect();
        let firsts = firsts(keys, &located);
        let mut out: Vec<Option<V>> = keys.iter().map(|_| None).collect();
        let mut pending: Vec<usize> = (0..keys.len()).filter(|&p| firsts[p] == p).collect();
        let mut failure: Option<LeaderPanicked> = None;
        let me = sync::thread_token();
        let mut first_round = true;
        while !pending.is_empty() {
            let mut leading = Leading {
                group: self,
                flights: Vec::new(),
                cause: None,
            };
            let mut joined = Vec::new();
            for pos in pending.drain(..) {
                let (hash, index) = located[pos];
                let mut table = self.shards[index].table.lock();
                table.counts.calls += u64::from(first_round);
                let entry = match table.joinable_or_insert(hash, keys[pos], me) {
                    Ok(entry) => entry,
                    Err(id) => {
                        drop(table);
                        leading.flights.push(Led {
                            pos,
                            index,
                            hash,
                            id,
                            ended: false,
                        });
                        continue;
                    }
                };
                if entry.owner == me {
                    drop(table);
                    reentrant_call(self.name, "work_many");
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
                joined.push(Joined {
                    pos,
                    index,
                    hash,
                    id,
                    call,
                });
            }
            first_round = false;
            self.lead_many(&mut leading, keys, max_batch, &mut run, &mut out);
            drop(leading);
            // Only now, with every flight this caller leads ended: waiting
            // before would let two batches wait for each other.
            for j in joined {
                match self.await_call(j.index, j.hash, j.id, &j.call, None) {
                    Ok((value, _)) => out[j.pos] = Some(value),
                    Err(Error::NotFound) => {}
                    Err(Error::Panicked(cause)) => {
                        failure.get_or_insert(cause);
                    }
                    // Cancelled or unspawnable: the key is free again.
                    Err(_) => pending.push(j.pos),
                }
            }
        }
        if let Some(cause) = failure {
            panic::panic_any(cause);
        }
        for (pos, &first) in firsts.iter().enumerate() {
            if first != pos {
                out[pos] = out[first].clone();
            }
        }
        out
    }

    /// Runs the flights `leading` holds, `max_batch` keys to a call of
    /// `run`, and ends each with its answer.
    fn lead_many<Q>(
        &self,
        leading: &mut Leading<'_, K, V, S>,
        keys: &[&Q],
        max_batch: usize,
        run: &mut impl FnMut(&[&Q], &[FlightRef]) -> Vec<Option<V>>,
        out: &mut [Option<V>],
    ) where
        Q: ?Sized,
    {
        let mut done = 0;
        while done < leading.flights.len() {
            let end = leading.flights.len().min(done.saturating_add(max_batch));
            let chunk = &leading.flights[done..end];
            let asked: Vec<&Q> = chunk.iter().map(|led| keys[led.pos]).collect();
            let refs: Vec<FlightRef> = chunk
                .iter()
                .map(|led| FlightRef::new(led.index, led.hash, led.id))
                .collect();
            let start = self.observer.start();
            let answers = match panic::catch_unwind(AssertUnwindSafe(|| run(&asked, &refs))) {
                Ok(answers) => answers,
                Err(payload) => {
                    leading.cause = Some(LeaderPanicked::from_payload(&*payload, self.name));
                    panic::resume_unwind(payload)
                }
            };
            assert_eq!(answers.len(), asked.len(), "one answer per key asked");
            for (i, answer) in (done..end).zip(answers) {
                out[leading.flights[i].pos] = self.end_led(leading, i, answer, start);
            }
            done = end;
        }
    }

    /// Ends one led flight with its answer, and returns the leader's copy.
    fn end_led(
        &self,
        leading: &mut Leading<'_, K, V, S>,
        i: usize,
        answer: Option<V>,
        start: Option<std::time::Instant>,
    ) -> Option<V> {
        let led = leading.flights[i];
        let outcome = match &answer {
            Some(value) => self.observer.outcome(value),
            None => Outcome::Value,
        };
        let call = finish(
            self.shards[led.index].table.lock(),
            led.hash,
            led.id,
            outcome,
        );
        leading.flights[i].ended = true;
        let shared = call.is_some();
        let report = |delivered: Delivered, outcome| {
            let waiters = delivered.waiters;
            self.observer
                .ended(self.name, start, waiters + 1, waiters, shared, outcome);
        };
        let Some(value) = answer else {
            let delivered = call.and_then(|call| call.publish_error(Error::NotFound));
            report(delivered.unwrap_or_default(), outcome);
            return None;
        };
        let published = match call {
            Some(call) => call.publish_copy(&value, self.name),
            None => Ok(Delivered::default()),
        };
        match published {
            Ok(delivered) => {
                report(delivered, outcome);
                Some(value)
            }
            Err((delivered, payload)) => {
                report(
                    delivered,
                    recount_as_panic(&self.shards[led.index], outcome),
                );
                let _ = panic::catch_unwind(AssertUnwindSafe(|| drop(value)));
                leading.cause = Some(LeaderPanicked::from_payload(&*payload, self.name));
                panic::resume_unwind(payload)
            }
        }
    }

    /// Lines a batch's answer up with the keys asked: the value for each,
    /// or `None` where the answer has none. Keys not asked for are dropped;
    /// a key answered twice keeps its first value.
    pub(crate) fn align<Q>(
        &self,
        asked: &[&Q],
        answer: impl IntoIterator<Item = (K, V)>,
    ) -> Vec<Option<V>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        align(&self.hasher, asked, answer)
    }
}

/// See [`Group::align`]; for any value type (the cache lines up its own).
pub(crate) fn align<K, T, Q, S>(
    hasher: &S,
    asked: &[&Q],
    answer: impl IntoIterator<Item = (K, T)>,
) -> Vec<Option<T>>
where
    K: Borrow<Q>,
    Q: Hash + Eq + ?Sized,
    S: BuildHasher,
{
    let mut index: HashTable<usize> = HashTable::with_capacity(asked.len());
    for (i, key) in asked.iter().enumerate() {
        let hash = hasher.hash_one(key);
        // The core hands over distinct keys.
        index.insert_unique(hash, i, |&j| hasher.hash_one(asked[j]));
    }
    let mut out: Vec<Option<T>> = asked.iter().map(|_| None).collect();
    for (key, value) in answer {
        let key: &Q = key.borrow();
        if let Some(&i) = index.find(hasher.hash_one(key), |&i| asked[i] == key) {
            out[i].get_or_insert(value);
        }
    }
    out
}

impl<K, V: Clone, S: BuildHasher> Group<K, V, S> {
    /// Runs `f` once for all the keys in `keys` that nobody is computing,
    /// joins the flights already running for the others, and returns one
    /// answer per key, in the order asked: `Some(value)`, or `None` where
    /// `f`'s answer (and the flight joined) had no value for that key.
    ///
    /// Each key is its own flight, as if [`work`](Self::work) had been
    /// called for it: while `f` runs, single-key callers and other batches
    /// asking for one of its keys join that key's flight and get the same
    /// value. `f` gets the distinct keys this caller leads (never empty; `f`
    /// is not called when every key was joined) and answers with
    /// `(key, value)` pairs in any order, a `HashMap<K, V>`, a `Vec` or an
    /// iterator over rows: pairs for keys not asked for are dropped, and a
    /// key answered twice keeps its first value. A key asked for twice is
    /// one flight, and gets its value at both positions. Nothing is
    /// remembered once the call returns.
    ///
    /// The answer comes back in the order of `keys`, rather than as a map:
    /// the caller keeps its own keys (nothing is cloned into a map, and
    /// `K` need not be `Clone`), zips them with the answers, and reads a
    /// missing key as `None` at its position.
    ///
    /// A key whose answer is missing ends its flight "not found": a
    /// [`work`](Self::work) caller that joined it calls again (running its
    /// own `f` unless a newer flight is there to join), a
    /// [`work_deadline`](Self::work_deadline) or [`do_chan`](Self::do_chan)
    /// caller gets [`Error::NotFound`], another batch gets `None`.
    ///
    /// This caller runs `f` first and only then waits for the flights it
    /// joined, so two batches that overlap never wait for each other.
    ///
    /// In [`stats`](Self::stats) and to the observer, each distinct key is
    /// one call: a flight led, or a flight joined.
    ///
    /// `f` is `FnMut` for one rare case: a joined flight that was cancelled
    /// or could not be spawned (a [`do_chan`](Self::do_chan) flight)
    /// releases its key, and `f` is called once more for such keys, once
    /// the others are done. Otherwise it is called exactly once, or not at
    /// all when every key was joined.
    ///
    /// # Panics
    ///
    /// - If `f` panics, the panic unwinds in this caller once every flight it
    ///   leads has ended: every caller waiting on one of those keys panics
    ///   with a [`LeaderPanicked`] payload; callers of its other keys are
    ///   untouched, and no key is left in flight.
    /// - If a flight this caller joined panicked, this caller panics with
    ///   that flight's [`LeaderPanicked`] payload, once its own flights
    ///   have ended.
    /// - If one of `keys` is being computed by this same thread (a
    ///   re-entrant call from inside an `f`), as [`work`](Self::work) does.
    ///
    /// # Examples
    ///
    /// ```
    /// use singleflight_sync::Group;
    /// use std::collections::HashMap;
    ///
    /// let group: Group<u64, String> = Group::new();
    /// let names = group.work_many(&[1, 2, 3], |ids| {
    ///     // One `SELECT id, name FROM users WHERE id IN (..)`; no user 3.
    ///     assert_eq!(ids, [&1, &2, &3]);
    ///     HashMap::from([(1, "Ada".to_string()), (2, "Alan".to_string())])
    /// });
    /// assert_eq!(names, [Some("Ada".to_string()), Some("Alan".to_string()), None]);
    /// assert_eq!(group.in_flight(), 0);
    /// ```
    #[track_caller]
    pub fn work_many<'q, Q, A>(
        &self,
        keys: impl IntoIterator<Item = &'q Q>,
        f: impl FnMut(&[&Q]) -> A,
    ) -> Vec<Option<V>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized + 'q,
        A: IntoIterator<Item = (K, V)>,
    {
        self.work_many_split(keys, usize::MAX, f)
    }

    /// [`work_many`](Self::work_many), with the keys this caller leads
    /// split into calls of `f` of at most `max_batch` keys each (a backend
    /// that takes at most so many ids a request). The calls run one after
    /// the other on this thread; every key's flight is joinable from the
    /// start, and a later call's keys wait for it.
    ///
    /// # Panics
    ///
    /// If `max_batch` is 0; otherwise as [`work_many`](Self::work_many).
    ///
    /// # Examples
    ///
    /// ```
    /// use singleflight_sync::Group;
    ///
    /// let group: Group<u32, u32> = Group::new();
    /// let mut calls = Vec::new();
    /// let squares = group.work_many_split(&[1, 2, 3, 4, 5], 2, |ns| {
    ///     calls.push(ns.len());
    ///     ns.iter().map(|&&n| (n, n * n)).collect::<Vec<_>>()
    /// });
    /// assert_eq!(squares, [Some(1), Some(4), Some(9), Some(16), Some(25)]);
    /// assert_eq!(calls, [2, 2, 1]);
    /// ```
    #[track_caller]
    pub fn work_many_split<'q, Q, A>(
        &self,
        keys: impl IntoIterator<Item = &'q Q>,
        max_batch: usize,
        mut f: impl FnMut(&[&Q]) -> A,
    ) -> Vec<Option<V>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized + 'q,
        A: IntoIterator<Item = (K, V)>,
    {
        let keys: Vec<&Q> = keys.into_iter().collect();
        self.many_with(&keys, max_batch, |asked, _| self.align(asked, f(asked)))
    }
}

impl<K, T: Clone, E, S: BuildHasher> Group<K, Result<T, Shared<E>>, S> {
    /// [`work_many`](Self::work_many) for a fallible `f`, in a group whose
    /// values are `Result<T, Arc<E>>`: an error is shared with every caller
    /// of the keys that call of `f` was asked for, as an `Arc<E>` (so `E`
    /// need not be `Clone`), and is never remembered.
    ///
    /// A single-key [`work`](Self::work) caller that joined one of those keys
    /// gets `Err` of the same `Arc`.
    ///
    /// # Errors
    ///
    /// The first error among the keys asked for: `f`'s own, or that of a
    /// flight this caller joined. The other keys' flights still end with
    /// their values.
    ///
    /// # Panics
    ///
    /// As [`work_many`](Self::work_many).
    ///
    /// # Examples
    ///
    /// ```
    /// use singleflight_sync::Group;
    /// use std::sync::Arc;
    ///
    /// #[derive(Debug)]
    /// struct Down; // not `Clone`
    ///
    /// let group: Group<u64, Result<u64, Arc<Down>>> = Group::new();
    /// let ok = group.try_work_many(&[1, 2], |ids| Ok::<_, Down>(ids.iter().map(|&&i| (i, i * 10)).collect::<Vec<_>>()));
    /// assert_eq!(ok.unwrap(), [Some(10), Some(20)]);
    /// let down = group.try_work_many(&[1, 2], |_| Err::<Vec<(u64, u64)>, _>(Down));
    /// assert!(matches!(down, Err(e) if matches!(*e, Down)));
    /// ```
    #[track_caller]
    pub fn try_work_many<'q, Q, A>(
        &self,
        keys: impl IntoIterator<Item = &'q Q>,
        mut f: impl FnMut(&[&Q]) -> Result<A, E>,
    ) -> Result<Vec<Option<T>>, Shared<E>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized + 'q,
        A: IntoIterator<Item = (K, T)>,
    {
        let keys: Vec<&Q> = keys.into_iter().collect();
        let answers = self.many_with(&keys, usize::MAX, |asked, _| match f(asked) {
            Ok(answer) => self.align(asked, answer.into_iter().map(|(k, t)| (k, Ok(t)))),
            Err(e) => {
                let e = Shared::new(e);
                asked.iter().map(|_| Some(Err(e.clone()))).collect()
            }
        });
        answers.into_iter().map(Option::transpose).collect()
    }
}
