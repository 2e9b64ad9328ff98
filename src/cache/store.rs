//! One `TtlCache` shard's entries: a dense slab of slots with a hash index,
//! ordered for eviction by the adaptive window TinyLFU of `policy`, and
//! amortised expiry sweeping. A plain data structure: the shard's lock, the
//! clock and the cache-wide bound live in the caller.

use std::borrow::Borrow;

use hashbrown::HashTable;

use super::hooks::RemovalCause;
use super::policy::{Node, Nodes, Policy, INITIAL_WINDOW, MAX_ENTRIES};
pub(crate) use super::slot::{AnyError, Cached, Extra, Slot};
use super::slot::{ERROR, REFERENCED, STALE, STAMP};
use crate::metrics::CacheCounts;

/// The hash a shard uses inside: its half of the key's hash, spread over 64
/// bits for the index's buckets and tags.
#[inline]
fn spread(short: u32) -> u64 {
    u64::from(short).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ u64::from(short)
}

/// The slab and its nodes as the policy sees them.
struct Arena<'a, K, V> {
    slots: &'a mut [Slot<K, V>],
    links: &'a mut [Node],
}

impl<K, V> Nodes for Arena<'_, K, V> {
    #[inline]
    fn node(&mut self, i: u32) -> &mut Node {
        &mut self.links[i as usize]
    }
    #[inline]
    fn hash(&self, i: u32) -> u64 {
        spread(self.slots[i as usize].short)
    }
    #[inline]
    fn referenced(&self, i: u32) -> bool {
        self.slots[i as usize].flag(REFERENCED)
    }
    #[inline]
    fn set_referenced(&mut self, i: u32, on: bool) {
        self.slots[i as usize].set_flag(REFERENCED, on);
    }
}

#[repr(C)]
pub(crate) struct Store<K, V> {
    /// First, so `hits` shares the lock word's cache line.
    pub(crate) counts: CacheCounts,
    index: HashTable<u32>,
    slots: Vec<Slot<K, V>>,
    /// Each slot's place in the policy, in step with `slots`.
    links: Vec<Node>,
    policy: Policy,
    /// This shard's share of the bound: the slab grows to it in one step
    /// rather than doubling past it.
    share: usize,
    sweep: usize,
    /// No slot expires before this: while `now` is below it a write skips
    /// the sweep (see `sweep_expired`). Lowered by every new expiry, and
    /// raised at the end of each lap of the sweep to the least expiry it
    /// passed.
    floor: u64,
    /// The least expiry seen in the sweep's current lap, and of the slots
    /// stored or moved since it began.
    lap_min: u64,
    next_stamp: u32,
    /// The window fraction the policy was last given.
    window: f64,
    /// One per slot, in step with `slots`, when the cache has a weigher or a
    /// time to idle; empty otherwise.
    extras: Vec<Extra>,
    with_extras: bool,
    /// Entries and weight taken out since the owner last settled them with
    /// the cache-wide counts (see `Inner::settle`).
    pub(crate) freed: (usize, u64),
}

/// Slots taken out under a shard's lock, to drop after it: the one a write
/// usually evicts is kept inline, so a miss into a full cache allocates
/// nothing for it; more (expired ones swept on the way) go to the heap.
pub(crate) struct Gone<K, V> {
    first: Option<(Slot<K, V>, RemovalCause)>,
    more: Vec<(Slot<K, V>, RemovalCause)>,
}

impl<K, V> Gone<K, V> {
    pub(crate) fn new() -> Self {
        Gone {
            first: None,
            more: Vec::new(),
        }
    }

    pub(crate) fn push(&mut self, slot: Slot<K, V>, cause: RemovalCause) {
        match self.first {
            None => self.first = Some((slot, cause)),
            Some(_) => self.more.push((slot, cause)),
        }
    }

    pub(crate) fn len(&self) -> usize {
        usize::from(self.first.is_some()) + self.more.len()
    }

    pub(crate) fn first_mut(&mut self) -> Option<&mut (Slot<K, V>, RemovalCause)> {
        self.first.as_mut()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &(Slot<K, V>, RemovalCause)> {
        self.first.iter().chain(&self.more)
    }

    pub(crate) fn into_iter(self) -> impl Iterator<Item = (Slot<K, V>, RemovalCause)> {
        self.first.into_iter().chain(self.more)
    }

    /// How many left for `cause`.
    pub(crate) fn count(&self, cause: RemovalCause) -> u64 {
        self.iter().filter(|(_, c)| *c == cause).count() as u64
    }
}

/// The most entries one shard holds: the policy names its positions in 30
/// bits.
pub(crate) const SHARD_LIMIT: usize = MAX_ENTRIES as usize;

/// How many slots a write looks at for expired entries, on top of its own.
pub(crate) const SWEEP: usize = 4;

impl<K, V> Store<K, V> {
    pub(crate) fn new(share: usize, with_extras: bool) -> Self {
        Store {
            extras: Vec::new(),
            with_extras,
            freed: (0, 0),
            index: HashTable::new(),
            slots: Vec::new(),
            links: Vec::new(),
            policy: Policy::new(share),
            share,
            sweep: 0,
            floor: u64::MAX,
            lap_min: u64::MAX,
            next_stamp: 0,
            window: INITIAL_WINDOW,
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
            .find(spread(hash as u32), |&p| {
                slots[p as usize].key.borrow() == key
            })
            .map(|&p| p as usize)
    }

    #[inline]
    pub(crate) fn slot(&mut self, pos: usize) -> &mut Slot<K, V> {
        &mut self.slots[pos]
    }

    /// Records a request for `hash` for the policy; a found slot at `pos`
    /// gets its reference bit.
    #[inline]
    pub(crate) fn record(&mut self, hash: u64, pos: Option<usize>) {
        match pos {
            Some(pos) => self.hit(pos),
            None => self.policy.record(spread(hash as u32)),
        }
    }

    /// A hit on the slot at `pos`: its reference bit, written only if clear
    /// (see `Policy::hit`), so a hot slot's line stays shared.
    #[inline]
    pub(crate) fn hit(&mut self, pos: usize) {
        let slot = &mut self.slots[pos];
        if !slot.flag(REFERENCED) {
            slot.set_flag(REFERENCED, true);
        }
    }

    /// Takes the slot at `pos` out.
    pub(crate) fn remove(&mut self, pos: usize) -> Slot<K, V> {
        let mut arena = Arena {
            slots: &mut self.slots,
            links: &mut self.links,
        };
        self.policy.remove(&mut arena, pos as u32);
        self.take_out(pos)
    }

    /// Until when the slot at `pos` may be kept: its expiry, or with a
    /// fail-safe's `grace`, its stale limit.
    #[inline]
    pub(crate) fn kept_until(&self, pos: usize, grace: u64) -> u64 {
        match grace {
            0 => self.slots[pos].expires,
            _ => self.extras[pos].stale_until,
        }
    }

    /// When the slot at `pos` is due for a refresh (`u64::MAX`: never before
    /// it expires).
    #[inline]
    pub(crate) fn refresh_at(&self, pos: usize) -> u64 {
        match self.with_extras {
            true => self.extras[pos].refresh,
            false => u64::MAX,
        }
    }

    /// The extras of the slot at `pos`; only with `with_extras`.
    #[inline]
    pub(crate) fn extra(&mut self, pos: usize) -> &mut Extra {
        &mut self.extras[pos]
    }

    pub(crate) fn with_extras(&self) -> bool {
        self.with_extras
    }

    /// Takes the slot at `pos` out of the index and the slab (the policy has
    /// let go of it); the last slot moves into its place.
    fn take_out(&mut self, pos: usize) -> Slot<K, V> {
        let last = self.slots.len() - 1;
        self.freed.0 += 1;
        if self.with_extras {
            self.freed.1 += u64::from(self.extras.swap_remove(pos).weight);
        }
        let short = self.slots[pos].short;
        if let Ok(entry) = self.index.find_entry(spread(short), |&p| p as usize == pos) {
            entry.remove();
        }
        let gone = self.slots.swap_remove(pos);
        self.links.swap_remove(pos);
        if pos != last {
            // It may land behind the sweep's cursor, where this lap will
            // not pass it.
            self.lap_min = self.lap_min.min(self.slots[pos].expires);
            let moved = spread(self.slots[pos].short);
            if let Some(p) = self.index.find_mut(moved, |&p| p as usize == last) {
                *p = pos as u32;
            }
            let mut arena = Arena {
                slots: &mut self.slots,
                links: &mut self.links,
            };
            self.policy.moved(&mut arena, last as u32, pos as u32);
        }
        gone
    }

    /// Puts `slot` in place of the slot at `pos` (the same key), keeping its
    /// place in the policy as a use of it; returns the old slot.
    pub(crate) fn replace(&mut self, pos: usize, mut slot: Slot<K, V>, extra: Extra) -> Slot<K, V> {
        if self.with_extras {
            let old = std::mem::replace(&mut self.extras[pos], extra);
            self.freed.1 += u64::from(old.weight);
        }
        // A new stamp, the new slot's own `STALE` and `ERROR`, and the old
        // one's place in the policy, as a use of it.
        slot.meta = (slot.meta & (STALE | ERROR)) | REFERENCED | self.stamp();
        self.lower_floor(slot.expires);
        std::mem::replace(&mut self.slots[pos], slot)
    }

    /// Adds the slot of a key not in the shard. The caller has made room.
    pub(crate) fn insert_new(&mut self, mut slot: Slot<K, V>, extra: Extra) {
        if self.with_extras {
            self.extras.push(extra);
        }
        slot.meta = (slot.meta & !STAMP) | self.stamp();
        self.lower_floor(slot.expires);
        let pos = self.slots.len();
        if pos == self.slots.capacity() {
            // Straight to the share once past half of it, not to the next
            // power of two: the bound is known, and memory is per entry.
            // Past the share (a shard may hold more than its share while
            // others hold less): first by four standard deviations of how
            // a full cache's entries spread over its shards (`4 * sqrt`),
            // which holds nearly every shard that passes its share; then by
            // an eighth. Doubling there left half a shard's slab unused, and
            // an eighth at once still left 2 bytes an entry of a
            // 1,000,000-entry cache unused.
            let slack = 4 * self.share.isqrt();
            let want = if pos >= self.share + slack {
                pos + (pos / 8).max(4)
            } else if pos >= self.share {
                self.share + slack
            } else if pos * 2 >= self.share {
                self.share
            } else {
                pos * 2
            };
            self.slots.reserve_exact(want.max(4) - pos);
            self.links.reserve_exact(want.max(4) - pos);
        }
        let short = slot.short;
        self.slots.push(slot);
        self.links.push(Node::default());
        self.enter(short, pos);
    }

    /// The policy's victim, taken out; `None` when the shard is empty.
    /// `window` is the cache's current window fraction (see `adapt.rs`).
    pub(crate) fn evict(&mut self, window: f64) -> Option<Slot<K, V>> {
        let pos = self.victim(window)?;
        Some(self.take_out(pos))
    }

    /// The position the policy lets go of, at the cache's current window
    /// fraction `window`; `None` when the shard is empty.
    fn victim(&mut self, window: f64) -> Option<usize> {
        if window != self.window {
            self.window = window;
            self.policy.set_window(window);
        }
        let mut arena = Arena {
            slots: &mut self.slots,
            links: &mut self.links,
        };
        self.policy.evict(&mut arena).map(|pos| pos as usize)
    }

    /// Evicts the policy's victim and puts `slot` (of a key not in the
    /// shard) in its place, so no other slot moves and nothing else is
    /// re-indexed; returns the victim, or gives `slot` back when the shard
    /// is empty. The victim's room passes to the new entry.
    pub(crate) fn evict_into(
        &mut self,
        window: f64,
        mut slot: Slot<K, V>,
        extra: Extra,
    ) -> Result<Slot<K, V>, (Slot<K, V>, Extra)> {
        let Some(pos) = self.victim(window) else {
            return Err((slot, extra));
        };
        let old = self.slots[pos].short;
        if let Ok(entry) = self.index.find_entry(spread(old), |&p| p as usize == pos) {
            entry.remove();
        }
        if self.with_extras {
            self.freed.1 += u64::from(std::mem::replace(&mut self.extras[pos], extra).weight);
        }
        slot.meta = (slot.meta & !STAMP) | self.stamp();
        self.lower_floor(slot.expires);
        let short = slot.short;
        let victim = std::mem::replace(&mut self.slots[pos], slot);
        self.enter(short, pos);
        Ok(victim)
    }

    /// Indexes the new slot at `pos` (its key's hash has the low half
    /// `short`) and gives it to the policy's window.
    fn enter(&mut self, short: u32, pos: usize) {
        let slots = &self.slots;
        self.index.insert_unique(spread(short), pos as u32, |&p| {
            spread(slots[p as usize].short)
        });
        let mut arena = Arena {
            slots: &mut self.slots,
            links: &mut self.links,
        };
        self.policy.insert(&mut arena, pos as u32);
    }

    fn stamp(&mut self) -> u32 {
        self.next_stamp = self.next_stamp.wrapping_add(1) & STAMP;
        self.next_stamp
    }

    /// Removes expired slots among the next `budget` the sweep cursor passes
    /// (kept `grace` past expiry, for a fail-safe). Nothing to look at while
    /// `now` is below the floor: in a cache whose entries outlive its churn
    /// (the common case: a miss evicts long before anything expires) a
    /// write reads no slot but its own.
    pub(crate) fn sweep_expired(
        &mut self,
        now: u64,
        grace: u64,
        budget: usize,
        gone: &mut Gone<K, V>,
    ) {
        if now < self.floor {
            return;
        }
        for _ in 0..budget {
            if self.slots.is_empty() {
                break;
            }
            if self.sweep >= self.slots.len() {
                // A lap is done (the cursor reached the end, or the shard
                // shrank under it): every slot was passed, or lowered
                // `lap_min` when it was stored or moved behind the cursor.
                self.sweep = 0;
                self.floor = self.lap_min;
                self.lap_min = u64::MAX;
                if now < self.floor {
                    return;
                }
            }
            let pos = self.sweep;
            let until = self.kept_until(pos, grace);
            if until <= now {
                // The last slot moves into `pos`: look at `pos` again.
                gone.push(self.remove(pos), RemovalCause::Expired);
                continue;
            }
            self.lap_min = self.lap_min.min(self.slots[pos].expires);
            self.sweep = pos + 1;
        }
        if self.slots.is_empty() {
            self.floor = u64::MAX;
            self.lap_min = u64::MAX;
        }
    }

    /// A slot expiring at `expires` is stored or moved: the floor and the
    /// current lap must count it.
    fn lower_floor(&mut self, expires: u64) {
        self.floor = self.floor.min(expires);
        self.lap_min = self.lap_min.min(expires);
    }

    /// Empties the shard; returns what it held, to drop outside the lock.
    pub(crate) fn clear(&mut self) -> Vec<Slot<K, V>> {
        self.index.clear();
        self.links.clear();
        self.floor = u64::MAX;
        self.lap_min = u64::MAX;
        self.policy.clear();
        self.sweep = 0;
        self.freed.0 += self.slots.len();
        self.freed.1 += self
            .extras
            .drain(..)
            .map(|e| u64::from(e.weight))
            .sum::<u64>();
        std::mem::take(&mut self.slots)
    }

    /// The slots, for a walk over the shard (`iter`, `retain`).
    pub(crate) fn slots(&self) -> &[Slot<K, V>] {
        &self.slots
    }

    /// The position of the slot whose contents are stamped `stamp`, its key's
    /// hash having the low half `short`.
    pub(crate) fn find_stamp(&self, short: u32, stamp: u32) -> Option<usize> {
        let slots = &self.slots;
        self.index
            .find(spread(short), |&p| slots[p as usize].stamp() == stamp)
            .map(|&p| p as usize)
    }

    /// Lets a later caller refresh the slot stamped `stamp`, if it is still
    /// here (a refresh that stored a new slot has nothing to clear).
    pub(crate) fn clear_refreshing(&mut self, hash: u64, stamp: u32) {
        let slots = &mut self.slots;
        if let Some(&p) = self
            .index
            .find(spread(hash as u32), |&p| slots[p as usize].stamp() == stamp)
        {
            slots[p as usize].set_refreshing(false);
        }
    }
}

#[cfg(test)]
#[path = "store/tests.rs"]
mod tests;
