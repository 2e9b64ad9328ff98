//! A group shard's map of running flights.

use std::borrow::Borrow;

use hashbrown::HashTable;

use crate::call::Call;
use crate::cancel::CancelToken;
use crate::metrics::{GroupCounts, Outcome};
use crate::sync::{Arc, AtomicU64, Mutex, MutexGuard, Ordering};

/// Padded to a cache line pair so two shards' locks never share a line.
#[repr(align(128))]
pub(crate) struct Shard<K, V> {
    pub(crate) table: Mutex<Table<K, V>>,
    /// How many times a flight of this shard was released (see
    /// [`Entry::release`]), written under the table's lock and read without
    /// it: a flight that saw this count while it was joinable, and sees it
    /// unchanged, was not released since, so the cache's store asks that
    /// without taking the group's lock (see [`FlightRef::released`]).
    releases: AtomicU64,
}

impl<K, V> Shard<K, V> {
    pub(crate) fn new() -> Self {
        Shard {
            table: Mutex::new(Table::new()),
            releases: AtomicU64::new(0),
        }
    }

    /// The release count now (see [`releases`](Self::releases)), for a
    /// [`FlightRef`] of a flight the caller holds the lock on and knows
    /// unreleased.
    #[inline]
    pub(crate) fn releases(&self) -> u64 {
        self.releases.load(Ordering::SeqCst)
    }
}

/// A shard's flights: the first one inline, in the shard's own cache lines,
/// more in a table beside it.
///
/// `repr(C)` keeps what an uncontended call touches (the lock word before
/// it, `calls` and `executions` at the head of the counters, `next_id`, the
/// inline flight) within the shard's 128 bytes: on two cores, each line a
/// call writes is a line that may have to cross from the other core, and a
/// flight kept inline writes no line of the table's (its control bytes and
/// buckets live in an allocation of their own).
#[repr(C)]
pub(crate) struct Table<K, V> {
    pub(crate) counts: GroupCounts,
    /// Flight ids are unique per shard, which is all a lookup by id needs.
    next_id: u64,
    /// The shard's first flight, when no other is running; a second flight
    /// while this one runs goes to `entries`.
    first: Option<Entry<K, V>>,
    entries: HashTable<Entry<K, V>>,
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
    /// Set by `forget` or `cancel` (through [`release`](Self::release)): new
    /// callers no longer join this flight, but its runner still finds it by
    /// id and still serves its waiters.
    released: bool,
    /// Made by the first waiter; `None` for an inline flight nobody joined.
    pub(crate) call: Option<Arc<Call<V>>>,
    /// A detached flight's token; `None` for an inline flight.
    pub(crate) token: Option<CancelToken>,
}

impl<K, V> Entry<K, V> {
    /// Releases this flight, counting it in its shard's `releases` (which
    /// the caller passes, holding the shard's lock): the only way to set
    /// `released`, so no release can go uncounted.
    pub(crate) fn release(&mut self, releases: &Releases<'_>) {
        if !self.released {
            self.released = true;
            releases.bump();
        }
    }

    /// Whether the flight was released.
    pub(crate) fn is_released(&self) -> bool {
        self.released
    }
}

/// A shard's release count, lent to code that holds the shard's lock.
pub(crate) struct Releases<'a>(&'a AtomicU64);

impl<'a> Releases<'a> {
    /// `shard`'s count; to be used only while holding its table's lock.
    pub(crate) fn of<K, V>(shard: &'a Shard<K, V>) -> Self {
        Releases(&shard.releases)
    }

    fn bump(&self) {
        // Every writer holds the table's lock: a load and a store suffice.
        // SeqCst, with the load in `FlightRef::released`: a release that
        // has happened is seen by every check that comes after it in the
        // single order of SeqCst operations, as it was under the lock.
        self.0
            .store(self.0.load(Ordering::Relaxed) + 1, Ordering::SeqCst);
    }
}

impl<K, V> Table<K, V> {
    pub(super) fn new() -> Self {
        Table {
            counts: GroupCounts::default(),
            next_id: 0,
            first: None,
            entries: HashTable::new(),
        }
    }

    /// How many flights are running, released ones included.
    pub(super) fn len(&self) -> usize {
        usize::from(self.first.is_some()) + self.entries.len()
    }

    /// Whether the inline flight is one a new caller for `key` would join.
    #[inline]
    fn first_joinable<Q>(&self, hash: u64, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        matches!(&self.first, Some(e) if !e.released && e.hash == hash && e.key.borrow() == key)
    }

    /// The flight a new caller for `key` would join, if any.
    #[inline]
    pub(crate) fn joinable<Q>(&mut self, hash: u64, key: &Q) -> Option<&mut Entry<K, V>>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        if self.first_joinable(hash, key) {
            return self.first.as_mut();
        }
        if self.entries.is_empty() {
            return None;
        }
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
        if self.first_joinable(hash, key) {
            return Ok(self.first.as_mut().expect("checked just above"));
        }
        let id = self.next_id;
        let new = |key: &Q| Entry {
            key: key.to_owned(),
            hash,
            id,
            owner,
            released: false,
            call: None,
            token: None,
        };
        if self.entries.is_empty() {
            // The uncontended case: no table probe at all.
            self.put(hash, new(key));
        } else {
            match self
                .entries
                .entry(hash, |e| !e.released && e.key.borrow() == key, |e| e.hash)
            {
                hashbrown::hash_table::Entry::Occupied(found) => return Ok(found.into_mut()),
                hashbrown::hash_table::Entry::Vacant(slot) => match self.first {
                    None => self.first = Some(new(key)),
                    Some(_) => {
                        slot.insert(new(key));
                    }
                },
            }
        }
        self.next_id += 1;
        self.counts.executions += 1;
        Err(id)
    }

    /// Stores a new flight: inline if that place is free.
    fn put(&mut self, hash: u64, entry: Entry<K, V>) {
        match self.first {
            None => self.first = Some(entry),
            Some(_) => {
                self.entries.insert_unique(hash, entry, |e| e.hash);
            }
        }
    }

    /// Takes the flight `id` out, if it is here.
    pub(super) fn remove(&mut self, hash: u64, id: u64) -> Option<Entry<K, V>> {
        if self.first.as_ref().is_some_and(|e| e.id == id) {
            return self.first.take();
        }
        match self.entries.find_entry(hash, |e| e.id == id) {
            Ok(found) => Some(found.remove().0),
            Err(_) => None,
        }
    }

    pub(super) fn release_all(&mut self, releases: &Releases<'_>) {
        for entry in self.first.iter_mut().chain(self.entries.iter_mut()) {
            entry.release(releases);
        }
    }

    /// The flight `id`, joinable or not.
    pub(crate) fn by_id(&mut self, hash: u64, id: u64) -> Option<&mut Entry<K, V>> {
        if self.first.as_ref().is_some_and(|e| e.id == id) {
            return self.first.as_mut();
        }
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
        self.put(hash, entry);
        id
    }
}

/// Names one flight, so that code running in it (the cache's loader) can
/// ask, under its own lock, whether the flight was released since it began.
/// Only code running in the flight holds one, so the flight is in its
/// shard's map for as long as its `FlightRef` is used.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FlightRef {
    index: usize,
    hash: u64,
    id: u64,
    /// The shard's release count when the flight was last known
    /// unreleased; [`UNKNOWN`] when it was not looked at.
    releases: u64,
}

/// A [`FlightRef`]'s release count when none was taken: never reached by a
/// real count, so [`FlightRef::released`] always takes the lock.
const UNKNOWN: u64 = u64::MAX;

impl FlightRef {
    /// A flight whose release is checked under its shard's lock.
    pub(crate) fn new(index: usize, hash: u64, id: u64) -> Self {
        FlightRef {
            index,
            hash,
            id,
            releases: UNKNOWN,
        }
    }

    /// A flight the caller found unreleased, under its shard's lock, when
    /// the shard's release count was `releases` ([`Shard::releases`]).
    pub(crate) fn unreleased_at(index: usize, hash: u64, id: u64, releases: u64) -> Self {
        FlightRef {
            index,
            hash,
            id,
            releases,
        }
    }

    /// Its shard's index, its key's hash and its id.
    pub(crate) fn parts(self) -> (usize, u64, u64) {
        (self.index, self.hash, self.id)
    }

    /// Whether the flight was released (by `forget`, `cancel` or
    /// `release_all`), or has ended. With no release in its shard since it
    /// was known unreleased, the answer needs no lock: the miss of a cache
    /// asks this while it holds the cache shard's lock, and a second lock
    /// there cost as much as the rest of the check.
    #[inline]
    pub(crate) fn released<K, V>(self, shards: &[Shard<K, V>]) -> bool {
        let shard = &shards[self.index];
        if shard.releases.load(Ordering::SeqCst) == self.releases {
            // Checked against the map in tests: the flight is there and
            // unreleased.
            debug_assert!(!self.released_locked(shard));
            return false;
        }
        self.released_locked(shard)
    }

    #[cold]
    fn released_locked<K, V>(self, shard: &Shard<K, V>) -> bool {
        let mut table = shard.table.lock();
        table.by_id(self.hash, self.id).is_none_or(|e| e.released)
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
    let Some(entry) = table.remove(hash, id) else {
        unreachable!("only its own runner removes a flight from the map")
    };
    match outcome {
        Outcome::Error => table.counts.errors += 1,
        Outcome::Panic => table.counts.panics += 1,
        Outcome::Value | Outcome::Cancelled => {}
    }
    drop(table);
    entry.call
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
    fn an_uncontended_call_writes_only_the_shards_own_lines() {
        use super::{Shard, Table};
        type T = Table<u64, u64>;
        let table = std::mem::offset_of!(Shard<u64, u64>, table);
        // parking_lot's mutex is its lock byte followed by the data.
        let data = table + size_of::<crate::sync::Mutex<T>>() - size_of::<T>();
        let counts_end = data + std::mem::offset_of!(T, counts) + 2 * 8;
        assert!(
            counts_end <= 64,
            "calls and executions end at byte {counts_end}"
        );
        let first_end =
            data + std::mem::offset_of!(T, first) + size_of::<Option<Entry<u64, u64>>>();
        assert!(
            first_end <= 128,
            "the inline flight ends at byte {first_end}"
        );
        assert_eq!(std::mem::align_of::<Shard<u64, u64>>(), 128);
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
