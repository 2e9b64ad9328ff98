//! One `TtlCache` shard's entries: a dense slab of slots with a hash index,
//! ordered for eviction by the adaptive window TinyLFU of `policy`, and
//! amortised expiry sweeping. A plain data structure: the shard's lock, the
//! clock and the cache-wide bound live in the caller.

use std::any::Any;
use std::borrow::Borrow;
use std::mem::ManuallyDrop;
use std::ptr;

use hashbrown::HashTable;

use super::hooks::RemovalCause;
use super::policy::{Node, Nodes, Policy, INITIAL_WINDOW, MAX_ENTRIES};
use crate::metrics::CacheCounts;
use crate::sync::Shared;

/// A cached error, type-erased so one cache can serve loaders with different
/// error types; `try_get_or_load` downcasts it back.
pub(crate) type AnyError = Shared<dyn Any + Send + Sync>;

/// What a slot holds: a value, or (with negative caching) a load's error.
/// A slot lends it out as `Cached<&V, &AnyError>`.
#[derive(Clone)]
pub(crate) enum Cached<V, E = AnyError> {
    Value(V),
    Error(E),
}

/// A slot's value or its error, in the room of the larger of `V` and one
/// pointer: for a `u64` value, 8 bytes where an enum took 24 (the error's
/// pointer is fat, and the tag pads). Which one is live is the slot's
/// `ERROR` flag.
union Payload<V> {
    value: ManuallyDrop<V>,
    error: ManuallyDrop<Box<AnyError>>,
}

/// `Slot::meta`: a hit since the policy's hand last passed.
const REFERENCED: u32 = 1 << 31;
/// A refresh of this entry is running.
const REFRESHING: u32 = 1 << 30;
/// A fail-safe answer: an expired value kept because its reload failed.
const STALE: u32 = 1 << 29;
/// The payload is an error.
const ERROR: u32 = 1 << 28;
/// The low bits: the stamp naming this slot's contents.
const STAMP: u32 = ERROR - 1;

/// One entry: what a hit reads (key, value, expiry and flags) and nothing
/// else. For `u64` keys and values it is 32 bytes, aligned so a hit reads
/// one cache line of it and two slots share a line. The entry's place in
/// the policy (`Node`) and its optional settings (`Extra`) live in arrays
/// beside the slab, in step with it.
#[repr(C, align(32))]
pub(crate) struct Slot<K, V> {
    pub(crate) key: K,
    payload: Payload<V>,
    /// Times in clock nanoseconds.
    pub(crate) expires: u64,
    /// The low half of the key's hash: the index and the sketch need no
    /// more, and the shard was chosen by the high half.
    short: u32,
    /// The flags above and the stamp.
    meta: u32,
}

impl<K, V> Slot<K, V> {
    pub(crate) fn new(key: K, hash: u64, value: Cached<V>, expires: u64) -> Self {
        let (payload, meta) = match value {
            Cached::Value(v) => (
                Payload {
                    value: ManuallyDrop::new(v),
                },
                0,
            ),
            Cached::Error(e) => (
                Payload {
                    error: ManuallyDrop::new(Box::new(e)),
                },
                ERROR,
            ),
        };
        Slot {
            key,
            payload,
            expires,
            short: hash as u32,
            meta,
        }
    }

    /// The value, or the error.
    #[inline]
    pub(crate) fn cached(&self) -> Cached<&V, &AnyError> {
        // SAFETY: `ERROR` says which field was written, and neither is
        // moved out while the slot lives (see `into_parts` and `drop`).
        unsafe {
            if self.meta & ERROR == 0 {
                Cached::Value(&self.payload.value)
            } else {
                Cached::Error(&self.payload.error)
            }
        }
    }

    /// The value, unless the slot holds an error.
    #[inline]
    pub(crate) fn value(&self) -> Option<&V> {
        match self.cached() {
            Cached::Value(v) => Some(v),
            Cached::Error(_) => None,
        }
    }

    /// The key and what the slot held.
    pub(crate) fn into_parts(self) -> (K, Cached<V>) {
        let this = ManuallyDrop::new(self);
        // SAFETY: `this` is never used or dropped again, so each field is
        // read out exactly once; `ERROR` says which payload field is live.
        unsafe {
            let key = ptr::read(&this.key);
            let cached = if this.meta & ERROR == 0 {
                Cached::Value(ManuallyDrop::into_inner(ptr::read(&this.payload.value)))
            } else {
                Cached::Error(*ManuallyDrop::into_inner(ptr::read(&this.payload.error)))
            };
            (key, cached)
        }
    }

    /// The low half of the key's hash (see [`Store::find_stamp`]).
    pub(crate) fn short(&self) -> u32 {
        self.short
    }

    /// Names this slot's contents: a refresh clears only its own slot's
    /// flag, and a walk removes only the contents it judged.
    pub(crate) fn stamp(&self) -> u32 {
        self.meta & STAMP
    }

    fn flag(&self, flag: u32) -> bool {
        self.meta & flag != 0
    }

    fn set_flag(&mut self, flag: u32, on: bool) {
        if on {
            self.meta |= flag;
        } else {
            self.meta &= !flag;
        }
    }

    /// A fail-safe answer (see `STALE`).
    pub(crate) fn is_stale(&self) -> bool {
        self.flag(STALE)
    }

    pub(crate) fn set_stale(&mut self, on: bool) {
        self.set_flag(STALE, on);
    }

    pub(crate) fn is_refreshing(&self) -> bool {
        self.flag(REFRESHING)
    }

    pub(crate) fn set_refreshing(&mut self, on: bool) {
        self.set_flag(REFRESHING, on);
    }

    /// Whether a hit may answer from this slot without looking further: a
    /// value, not a fail-safe answer.
    #[inline]
    pub(crate) fn is_plain(&self) -> bool {
        self.meta & (ERROR | STALE) == 0
    }
}

impl<K, V> Drop for Slot<K, V> {
    fn drop(&mut self) {
        // SAFETY: `ERROR` says which field is live; it is dropped once, here
        // (`into_parts` reads the slot out without dropping it).
        unsafe {
            if self.meta & ERROR == 0 {
                ManuallyDrop::drop(&mut self.payload.value);
            } else {
                ManuallyDrop::drop(&mut self.payload.error);
            }
        }
    }
}

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

/// What an entry needs only with a weigher, a time to idle, a fail-safe or
/// a refresh: kept beside the slab, not in the slot, so a cache without them
/// pays nothing.
#[derive(Clone, Copy)]
pub(crate) struct Extra {
    pub(crate) weight: u32,
    /// How long the load that made this entry took, in microseconds
    /// (saturating), for early refresh.
    pub(crate) delta_micros: u32,
    /// When a refresh is due (`u64::MAX`: never before expiry).
    pub(crate) refresh: u64,
    /// When the entry's time to live ends: a hit moves `expires` to
    /// `now + time_to_idle`, never past this.
    pub(crate) deadline: u64,
    /// With a fail-safe: until when the value may be served stale, counted
    /// from its first expiry (a throttled stale answer keeps it).
    pub(crate) stale_until: u64,
}

impl Default for Extra {
    fn default() -> Self {
        Extra {
            weight: 0,
            delta_micros: 0,
            refresh: u64::MAX,
            deadline: u64::MAX,
            stale_until: u64::MAX,
        }
    }
}

impl Extra {
    /// How long this entry's load took, in nanoseconds.
    pub(crate) fn delta(&self) -> u64 {
        u64::from(self.delta_micros) * 1_000
    }

    pub(crate) fn set_delta(&mut self, nanos: u64) {
        self.delta_micros = u32::try_from(nanos / 1_000).unwrap_or(u32::MAX);
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
        std::mem::replace(&mut self.slots[pos], slot)
    }

    /// Adds the slot of a key not in the shard. The caller has made room.
    pub(crate) fn insert_new(&mut self, mut slot: Slot<K, V>, extra: Extra) {
        if self.with_extras {
            self.extras.push(extra);
        }
        slot.meta = (slot.meta & !STAMP) | self.stamp();
        let pos = self.slots.len();
        if pos == self.slots.capacity() {
            // Straight to the share once past half of it, not to the next
            // power of two: the bound is known, and memory is per entry.
            // Past the share (a shard may hold more than its share while
            // others hold less), by an eighth: doubling there left half a
            // shard's slab unused, and an eighth still amortises.
            let want = if pos >= self.share {
                pos + (pos / 8).max(4)
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

    /// The policy's victim, taken out; `None` when the shard is empty.
    /// `window` is the cache's current window fraction (see `adapt.rs`).
    pub(crate) fn evict(&mut self, window: f64) -> Option<Slot<K, V>> {
        if window != self.window {
            self.window = window;
            self.policy.set_window(window);
        }
        let mut arena = Arena {
            slots: &mut self.slots,
            links: &mut self.links,
        };
        let pos = self.policy.evict(&mut arena)?;
        Some(self.take_out(pos as usize))
    }

    fn stamp(&mut self) -> u32 {
        self.next_stamp = self.next_stamp.wrapping_add(1) & STAMP;
        self.next_stamp
    }

    /// Removes expired slots among the next `budget` the sweep cursor passes
    /// (kept `grace` past expiry, for a fail-safe).
    pub(crate) fn sweep_expired(
        &mut self,
        now: u64,
        grace: u64,
        budget: usize,
        gone: &mut Gone<K, V>,
    ) {
        for _ in 0..budget {
            if self.slots.is_empty() {
                break;
            }
            let pos = self.sweep % self.slots.len();
            if self.kept_until(pos, grace) <= now {
                // The last slot moves into `pos`: look at `pos` again.
                gone.push(self.remove(pos), RemovalCause::Expired);
            } else {
                self.sweep = pos + 1;
            }
        }
    }

    /// Empties the shard; returns what it held, to drop outside the lock.
    pub(crate) fn clear(&mut self) -> Vec<Slot<K, V>> {
        self.index.clear();
        self.links.clear();
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
mod tests {
    use super::*;

    #[test]
    fn a_u64_slot_is_half_a_cache_line() {
        assert_eq!(std::mem::size_of::<Slot<u64, u64>>(), 32);
        assert_eq!(std::mem::align_of::<Slot<u64, u64>>(), 32);
        assert_eq!(std::mem::size_of::<Node>(), 8);
    }

    #[test]
    fn a_slot_gives_back_its_value_or_its_error() {
        let slot: Slot<String, String> = Slot::new("k".into(), 1, Cached::Value("v".into()), 0);
        assert!(slot.is_plain());
        assert_eq!(slot.value().map(String::as_str), Some("v"));
        let (key, cached) = slot.into_parts();
        assert!(matches!((key.as_str(), cached), ("k", Cached::Value(v)) if v == "v"));
        let error: AnyError = Shared::new(7u8);
        let slot: Slot<String, String> = Slot::new("k".into(), 1, Cached::Error(error.clone()), 0);
        assert!(!slot.is_plain());
        assert!(slot.value().is_none());
        assert_eq!(Shared::strong_count(&error), 2);
        drop(slot);
        assert_eq!(
            Shared::strong_count(&error),
            1,
            "the error was dropped once"
        );
    }

    #[test]
    fn removing_keeps_the_index_and_the_policy_in_step() {
        let mut store: Store<u64, u64> = Store::new(8, false);
        let hash = |k: u64| k.wrapping_mul(0x2545_F491_4F6C_DD1D);
        for k in 0..8 {
            store.insert_new(
                Slot::new(k, hash(k), Cached::Value(k), u64::MAX),
                Extra::default(),
            );
        }
        let pos = store.find(hash(3), &3).unwrap();
        assert_eq!(store.remove(pos).key, 3);
        for k in (0..8).filter(|&k| k != 3) {
            let pos = store.find(hash(k), &k).expect("still indexed");
            assert_eq!(store.slot(pos).key, k);
        }
        let mut evicted = Vec::new();
        while let Some(slot) = store.evict(INITIAL_WINDOW) {
            evicted.push(slot.key);
        }
        evicted.sort_unstable();
        assert_eq!(evicted, [0, 1, 2, 4, 5, 6, 7]);
        assert_eq!(store.len(), 0);
    }
}
