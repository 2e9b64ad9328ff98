//! One `TtlCache` shard's entries: a slab of slots with a hash index, CLOCK
//! eviction guarded by a frequency sketch, and amortised expiry sweeping.

use std::any::Any;
use std::borrow::Borrow;

use hashbrown::HashTable;

use super::sketch::Sketch;
use crate::metrics::CacheCounts;
use crate::sync::Shared;

/// A cached error, type-erased so one cache can serve loaders with different
/// error types; `try_get_or_load` downcasts it back.
pub(crate) type AnyError = Shared<dyn Any + Send + Sync>;

/// What a slot holds: a value, or (with negative caching) a load's error.
#[derive(Clone)]
pub(crate) enum Cached<V> {
    Value(V),
    Error(AnyError),
}

pub(crate) struct Slot<K, V> {
    pub(crate) key: K,
    hash: u64,
    pub(crate) value: Cached<V>,
    /// Times in clock nanoseconds.
    pub(crate) expires: u64,
    /// When a refresh is due (`u64::MAX`: never before expiry).
    pub(crate) refresh: u64,
    /// How long the load that made this slot took (for early refresh).
    pub(crate) delta: u64,
    /// Names this slot's contents; a refresh clears only its own slot's flag.
    pub(crate) stamp: u64,
    pub(crate) refreshing: bool,
    /// The CLOCK reference bit: asked for since the hand last passed.
    referenced: bool,
}

impl<K, V> Slot<K, V> {
    pub(crate) fn new(key: K, hash: u64, value: Cached<V>, expires: u64) -> Self {
        Slot {
            key,
            hash,
            value,
            expires,
            refresh: u64::MAX,
            delta: 0,
            stamp: 0,
            refreshing: false,
            referenced: false,
        }
    }
}

/// Why an insert changed the size it did, for the counters.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Inserted {
    pub(crate) stored: bool,
    pub(crate) evicted: usize,
    pub(crate) expired: usize,
}

#[repr(C)]
pub(crate) struct Store<K, V> {
    /// First, so `hits` shares the lock word's cache line.
    pub(crate) counts: CacheCounts,
    index: HashTable<u32>,
    slots: Vec<Slot<K, V>>,
    capacity: usize,
    hand: usize,
    sweep: usize,
    sketch: Sketch,
    /// Bumped by `invalidate` and `clear`: a load that started before keeps
    /// its value out of the cache.
    pub(crate) generation: u64,
    next_stamp: u64,
}

/// How many slots a write looks at for expired entries, on top of its own.
const SWEEP: usize = 4;

impl<K, V> Store<K, V> {
    pub(crate) fn new(capacity: usize) -> Self {
        Store {
            index: HashTable::new(),
            slots: Vec::new(),
            capacity,
            hand: 0,
            sweep: 0,
            sketch: Sketch::new(capacity),
            generation: 0,
            next_stamp: 0,
            counts: CacheCounts::default(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    /// The position of `key`'s slot.
    #[inline]
    pub(crate) fn find<Q>(&self, hash: u64, key: &Q) -> Option<usize>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        let slots = &self.slots;
        self.index
            .find(hash, |&p| slots[p as usize].key.borrow() == key)
            .map(|&p| p as usize)
    }

    #[inline]
    pub(crate) fn slot(&mut self, pos: usize) -> &mut Slot<K, V> {
        &mut self.slots[pos]
    }

    /// Records a request for `hash`: the sketch counts it (once the shard is
    /// half full, when admission decisions draw near, as in Caffeine), and a
    /// slot at `pos` gets its reference bit.
    #[inline]
    pub(crate) fn touch(&mut self, hash: u64, pos: Option<usize>) {
        if self.slots.len() * 2 >= self.capacity {
            self.sketch.increment(hash);
        }
        if let Some(pos) = pos {
            // Written only when it changes, so a hot slot's line stays
            // shared between the cores that read it.
            if !self.slots[pos].referenced {
                self.slots[pos].referenced = true;
            }
        }
    }

    /// Takes the slot at `pos` out.
    pub(crate) fn remove(&mut self, pos: usize) -> Slot<K, V> {
        let last = self.slots.len() - 1;
        let hash = self.slots[pos].hash;
        if let Ok(entry) = self.index.find_entry(hash, |&p| p as usize == pos) {
            entry.remove();
        }
        if pos != last {
            let moved = self.slots[last].hash;
            if let Some(p) = self.index.find_mut(moved, |&p| p as usize == last) {
                *p = pos as u32;
            }
        }
        self.slots.swap_remove(pos)
    }

    /// Stores `slot`, replacing the key's old slot. A new key in a full
    /// shard first takes an expired slot's place, or else the CLOCK victim's
    /// if the sketch says the new key is asked for more often; otherwise it
    /// is not stored. Also sweeps a few slots for expired entries.
    pub(crate) fn insert(&mut self, mut slot: Slot<K, V>, now: u64) -> (Inserted, Vec<Slot<K, V>>)
    where
        K: Eq,
    {
        let mut out = Inserted::default();
        let mut dropped = self.sweep_expired(now, SWEEP);
        out.expired = dropped.len();
        slot.stamp = self.next_stamp;
        self.next_stamp += 1;
        if let Some(pos) = self.find(slot.hash, &slot.key) {
            dropped.push(std::mem::replace(&mut self.slots[pos], slot));
            out.stored = true;
            self.counts.expirations += out.expired as u64;
            return (out, dropped);
        }
        if self.slots.len() >= self.capacity {
            let victim = self.victim(now);
            let expired = self.slots[victim].expires <= now;
            if !expired
                && self.sketch.frequency(slot.hash)
                    <= self.sketch.frequency(self.slots[victim].hash)
            {
                dropped.push(slot);
                self.counts.expirations += out.expired as u64;
                return (out, dropped);
            }
            out.evicted += usize::from(!expired);
            out.expired += usize::from(expired);
            dropped.push(self.remove(victim));
        }
        let pos = self.slots.len();
        let hash = slot.hash;
        self.slots.push(slot);
        let slots = &self.slots;
        self.index
            .insert_unique(hash, pos as u32, |&p| slots[p as usize].hash);
        out.stored = true;
        self.counts.evictions += out.evicted as u64;
        self.counts.expirations += out.expired as u64;
        (out, dropped)
    }

    /// The CLOCK hand's choice: the first slot that is expired or has not
    /// been asked for since the hand last passed it.
    fn victim(&mut self, now: u64) -> usize {
        let len = self.slots.len();
        for _ in 0..2 * len {
            let pos = self.hand % len;
            self.hand = pos + 1;
            let slot = &mut self.slots[pos];
            if slot.expires <= now || !slot.referenced {
                return pos;
            }
            slot.referenced = false;
        }
        // Every bit was cleared on the first lap, so the second finds one.
        self.hand % len
    }

    /// Removes expired slots among the next `budget` the sweep cursor passes.
    pub(crate) fn sweep_expired(&mut self, now: u64, budget: usize) -> Vec<Slot<K, V>> {
        let mut gone = Vec::new();
        for _ in 0..budget {
            if self.slots.is_empty() {
                break;
            }
            let pos = self.sweep % self.slots.len();
            if self.slots[pos].expires <= now {
                // The last slot moves into `pos`: look at `pos` again.
                gone.push(self.remove(pos));
            } else {
                self.sweep = pos + 1;
            }
        }
        gone
    }

    /// Empties the shard; returns what it held, to drop outside the lock.
    pub(crate) fn clear(&mut self) -> Vec<Slot<K, V>> {
        self.index.clear();
        self.hand = 0;
        self.sweep = 0;
        self.generation += 1;
        std::mem::take(&mut self.slots)
    }
}

impl<K, V> Store<K, V> {
    /// Lets a later caller refresh the slot stamped `stamp`, if it is still
    /// here (a refresh that stored a new slot has nothing to clear).
    pub(crate) fn clear_refreshing(&mut self, hash: u64, stamp: u64) {
        let slots = &mut self.slots;
        if let Some(&p) = self.index.find(hash, |&p| slots[p as usize].stamp == stamp) {
            slots[p as usize].refreshing = false;
        }
    }
}
