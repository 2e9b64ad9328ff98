//! A group shard's map of running flights.

use std::borrow::Borrow;

use hashbrown::HashTable;

use crate::call::Call;
use crate::cancel::CancelToken;
use crate::metrics::{GroupCounts, Outcome};
use crate::sync::{Arc, Mutex, MutexGuard};

/// Padded to a cache line pair so two shards' locks never share a line.
#[repr(align(128))]
pub(crate) struct Shard<K, V> {
    pub(crate) table: Mutex<Table<K, V>>,
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
    /// Set by `forget` or `cancel`: new callers no longer join this flight,
    /// but its runner still finds it by id and still serves its waiters.
    pub(crate) released: bool,
    /// Made by the first waiter; `None` for an inline flight nobody joined.
    pub(crate) call: Option<Arc<Call<V>>>,
    /// A detached flight's token; `None` for an inline flight.
    pub(crate) token: Option<CancelToken>,
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

    pub(super) fn release_all(&mut self) {
        for entry in self.first.iter_mut().chain(self.entries.iter_mut()) {
            entry.released = true;
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
#[derive(Clone, Copy, Debug)]
pub(crate) struct FlightRef {
    index: usize,
    hash: u64,
    id: u64,
}

impl FlightRef {
    pub(crate) fn new(index: usize, hash: u64, id: u64) -> Self {
        FlightRef { index, hash, id }
    }

    /// Whether the flight was released (by `forget`, `cancel` or
    /// `release_all`), or has ended.
    pub(crate) fn released<K, V>(self, shards: &[Shard<K, V>]) -> bool {
        let mut table = shards[self.index].table.lock();
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
