//! An exact LRU: a hash map from key to slot, and an intrusive doubly linked
//! list threaded through a `Vec` of slots, so every access is O(1).

use crate::keymap::{key_map, KeyMap};

/// No slot: the end of the list.
const NIL: u32 = u32::MAX;

struct Node {
    key: u64,
    prev: u32,
    next: u32,
}

/// A least-recently-used cache of `u64` keys holding at most `capacity`.
///
/// ```
/// use singleflight_replay::Lru;
/// let mut lru = Lru::new(2);
/// assert!(!lru.access(1));
/// assert!(!lru.access(2));
/// assert!(lru.access(1)); // now 2 is the least recently used
/// assert!(!lru.access(3)); // evicts 2
/// assert!(!lru.access(2));
/// assert_eq!(lru.len(), 2);
/// ```
pub struct Lru {
    capacity: usize,
    slots: KeyMap<u32>,
    nodes: Vec<Node>,
    /// Most recently used.
    head: u32,
    /// Least recently used: the next victim.
    tail: u32,
}

impl std::fmt::Debug for Lru {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lru")
            .field("capacity", &self.capacity)
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

impl Lru {
    /// An empty LRU of `capacity` keys.
    ///
    /// # Panics
    ///
    /// If `capacity` is 0 or does not fit in a `u32` slot index.
    pub fn new(capacity: usize) -> Self {
        assert!(
            capacity > 0 && capacity < NIL as usize,
            "Lru capacity {capacity} is outside 1..{NIL}"
        );
        Lru {
            capacity,
            slots: key_map(capacity),
            nodes: Vec::with_capacity(capacity),
            head: NIL,
            tail: NIL,
        }
    }

    /// How many keys it holds.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether it holds no key.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Requests `key`: `true` on a hit, which makes it the most recent;
    /// `false` on a miss, which stores it, evicting the least recent when
    /// full.
    pub fn access(&mut self, key: u64) -> bool {
        if let Some(&slot) = self.slots.get(&key) {
            self.unlink(slot);
            self.push_front(slot);
            return true;
        }
        let slot = if self.nodes.len() < self.capacity {
            self.nodes.push(Node {
                key,
                prev: NIL,
                next: NIL,
            });
            (self.nodes.len() - 1) as u32
        } else {
            let victim = self.tail;
            self.unlink(victim);
            let old = std::mem::replace(&mut self.nodes[victim as usize].key, key);
            self.slots.remove(&old);
            victim
        };
        self.slots.insert(key, slot);
        self.push_front(slot);
        false
    }

    fn unlink(&mut self, slot: u32) {
        let Node { prev, next, .. } = self.nodes[slot as usize];
        match prev {
            NIL => self.head = next,
            p => self.nodes[p as usize].next = next,
        }
        match next {
            NIL => self.tail = prev,
            n => self.nodes[n as usize].prev = prev,
        }
    }

    fn push_front(&mut self, slot: u32) {
        let old_head = self.head;
        let node = &mut self.nodes[slot as usize];
        node.prev = NIL;
        node.next = old_head;
        match old_head {
            NIL => self.tail = slot,
            h => self.nodes[h as usize].prev = slot,
        }
        self.head = slot;
    }
}

/// The hits of an exact LRU of `capacity` keys on `trace`.
///
/// # Panics
///
/// As [`Lru::new`].
pub fn lru_hits(trace: &[u64], capacity: usize) -> u64 {
    let mut lru = Lru::new(capacity);
    trace.iter().filter(|&&k| lru.access(k)).count() as u64
}
