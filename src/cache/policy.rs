//! Which entry a full shard evicts: an adaptive window TinyLFU, kept as a
//! plain data structure (no locks, clocks or threads inside) so tests and the
//! replay tool drive it deterministically.
//!
//! # What it does
//!
//! A new entry always enters a small **window**, ordered by recency (every
//! new entry is stored: the policy decides what leaves, never what comes
//! in). What the window pushes out becomes a *candidate* for the **main**
//! region, which is split into **probation** (a fifth of main) and
//! **protected**: the candidate and main's victim (probation's head) duel
//! by the frequency sketch (`sketch.rs`), and the loser leaves. A window
//! entry asked for again while in the window skips the duel: while the
//! window is small it moves on to probation as a proven entry (S3-FIFO's
//! rule, see `evict`). An entry referenced while in probation is promoted
//! to protected when the hand reaches it; protected's unreferenced
//! overflow is demoted back to probation's tail.
//!
//! - **The duel** keeps the incumbent unless the candidate's count is above
//!   the victim's by more than one (`duel`): the candidate's count includes
//!   the miss that brought it, and a count-min sketch overestimates by
//!   about one, so without the margin the equal keys of a loop churn the
//!   resident set on noise (the 1.5x loop at 100,000 entries fell from 63
//!   to 27% hit ratio with no margin; two counts of margin cost 0.2 to 1.7
//!   points on the 10,000-entry Zipf rows). A warm candidate also wins one
//!   duel in 128, so no crafted sequence pins the incumbents forever.
//! - **The window's share** is set from outside (`set_window`): the cache's
//!   adapter (`adapt.rs`) moves it by simulating the policy at two splits on
//!   a sample of the keys. A recency-biased workload grows the window until
//!   the cache behaves like LRU; a frequency-biased one, or a loop, shrinks
//!   it. No fixed split comes near: at 10,000 entries, a 1% window was 38
//!   points under LRU on the recency-biased row and 14 on the shifting hot
//!   set, a 20% window 13 under moka on the loop.
//! - **Order within a region** is kept by a CLOCK-style second chance
//!   instead of moving an entry on every hit: a hit only sets the entry's
//!   reference bit (written once, so a hot entry's line stays shared
//!   between cores), and the bit is looked at when the entry reaches the
//!   head of its queue. That is also when the sketch counts the lap in
//!   which the entry was used (`pass`), so a hit touches the entry's own
//!   line and nothing else: the sketch is written by misses and by the
//!   hand, never by a hit. Counting laps rather than hits is also what
//!   ranks best: counting every hit was 0.2 to 0.8 points lower on most of
//!   the 10,000 and 100,000-entry Zipf and scan rows.
//!
//! # What it does not do (measured, see the replay table in the README)
//!
//! Each shard runs its own policy over its share of the bound (8 shards by
//! default), and its window holds the newest entry until the next
//! eviction, which a loop never asks for again: at 1,000 entries that is
//! 8 slots, where moka (one policy, admission before insertion) stays
//! about half a point ahead on the loop row. Fewer shards for a small
//! cache cost more than they give: 4 or 2 at 1,000 entries took 0.6 and
//! 0.9 points off the loop's gap (with a one-entry window floor, since
//! dropped) but lost up to 0.4 and 0.7 on the other 1,000-entry rows (each
//! shard has a 16 KiB sketch at least, so fewer shards also remember
//! less). On the recency-biased rows the window at its largest is a
//! CLOCK, which approximates LRU to about half a point below it. Against
//! quick_cache's ghost queue on Zipf, the sketch's 16 bytes per entry limit
//! how long it can remember (a 4 times larger sketch closed most of the gap
//! at 10,000 entries), which costs 0.3 to 0.5 points at 10,000 entries and
//! 0.9 to 1.75 at 100,000 for skews up to 0.99.

use super::sketch::Sketch;

/// The window's share of a new policy, as Caffeine starts; the adapter
/// (`adapt.rs`) moves it from there.
pub(crate) const INITIAL_WINDOW: f64 = 0.01;

/// The most entries one eviction moves between regions (see `evict`).
const MOVES: u32 = 16;

/// The largest window share at which a window entry that was asked for
/// again moves on to main without a duel (see `Policy::evict`). Above it,
/// the window is most of the cache and serves as its LRU, and promoting its
/// used entries out of it cost 3.5 points on the shifting hot set at 1,000
/// entries (at a limit of 90%, where the adapter swings the window high);
/// limits of 40 to 75% were within a point of each other summed over the
/// replay tool's 16 rows at two seeds.
const PROMOTING: f64 = 0.6;

/// No entry (an empty list's ends, a list end's neighbour).
pub(crate) const NIL: u32 = POSITION;

/// The queue an entry is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Region {
    Window = 0,
    Probation = 1,
    Protected = 2,
}

/// The most entries one policy orders: a position takes 30 bits of a
/// node, the region the other two.
pub(crate) const MAX_ENTRIES: u32 = NIL - 1;

/// An entry's place in the policy: its neighbours in its queue and which
/// queue, in 8 bytes (the region in the top bits of `next`). Kept beside the
/// entries, not in them: only the hand and writes walk the queues, and a hit
/// reads the entry alone. Its reference bit is the owner's (see
/// [`Nodes::referenced`]), in the entry, where a hit sets it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Node {
    prev: u32,
    /// The next entry in the low 30 bits, the region in the top two.
    next: u32,
}

const POSITION: u32 = (1 << 30) - 1;

impl Default for Node {
    fn default() -> Self {
        Node::new(NIL, NIL, Region::Window)
    }
}

impl Node {
    fn new(prev: u32, next: u32, region: Region) -> Self {
        debug_assert!(prev <= NIL && next <= NIL);
        Node {
            prev,
            next: next | (region as u32) << 30,
        }
    }

    fn prev(self) -> u32 {
        self.prev
    }

    fn next(self) -> u32 {
        self.next & POSITION
    }

    pub(crate) fn region(self) -> Region {
        match self.next >> 30 {
            0 => Region::Window,
            1 => Region::Probation,
            _ => Region::Protected,
        }
    }

    fn set_prev(&mut self, prev: u32) {
        self.prev = prev;
    }

    fn set_next(&mut self, next: u32) {
        self.next = (self.next & !POSITION) | next;
    }
}

/// Where the policy finds the nodes, hashes and reference bits of the
/// entries it orders, by index.
pub(crate) trait Nodes {
    fn node(&mut self, i: u32) -> &mut Node;
    /// The hash the sketch counts the entry under.
    fn hash(&self, i: u32) -> u64;
    /// Whether entry `i` was asked for since the hand last passed it.
    fn referenced(&self, i: u32) -> bool;
    fn set_referenced(&mut self, i: u32, on: bool);
}

#[derive(Clone, Copy, Debug)]
struct List {
    head: u32,
    tail: u32,
    len: u32,
}

impl List {
    const EMPTY: List = List {
        head: NIL,
        tail: NIL,
        len: 0,
    };
}

/// The adaptive window TinyLFU for one shard. See the module docs.
pub(crate) struct Policy {
    lists: [List; 3],
    /// The shard's share of the cache's bound, which sizes the regions.
    capacity: u32,
    window_max: u32,
    protected_max: u32,
    /// Whether a window entry asked for again moves on to main without a
    /// duel (see `evict`): while the window is at most `PROMOTING` of the
    /// shard.
    promotes: bool,
    /// The smallest window (see `resize_window`): 0 for a cache's shard, 1
    /// for the adapter's miniatures (`with_window_floor`).
    least: u32,
    sketch: Sketch,
    /// Requests seen (wrapping): a cheap changing value for tie-breaking.
    tick: u32,
}

impl Policy {
    /// A policy for a shard holding about `capacity` entries.
    pub(crate) fn new(capacity: usize) -> Self {
        let capacity = capacity.clamp(1, u32::MAX as usize - 1) as u32;
        let mut policy = Policy {
            lists: [List::EMPTY; 3],
            capacity,
            window_max: 0,
            protected_max: 0,
            promotes: true,
            least: 0,
            sketch: Sketch::new(capacity as usize),
            tick: 0,
        };
        policy.set_window(INITIAL_WINDOW);
        policy
    }

    /// How many entries each region holds: window, probation, protected.
    #[cfg(test)]
    pub(crate) fn lens(&self) -> [u32; 3] {
        self.lists.map(|l| l.len)
    }

    /// The window's target size now.
    #[cfg(test)]
    pub(crate) fn window_max(&self) -> u32 {
        self.window_max
    }

    /// The same policy with a window of at least `least` entries. The
    /// adapter's miniatures keep one: one entry of a miniature is a few
    /// percent of it, and with empty windows allowed there its simulations
    /// stopped growing the window on a trace of keys that come back soon
    /// (`adapt.rs`'s `keys_that_come_back_soon_grow_the_window`).
    pub(crate) fn with_window_floor(mut self, least: u32) -> Self {
        self.least = least;
        let window = i64::from(self.window_max);
        self.resize_window(window);
        self
    }

    /// Sets the window to `fraction` of the capacity (the rest is main).
    /// The regions reach their new sizes as entries are evicted.
    pub(crate) fn set_window(&mut self, fraction: f64) {
        let window = (f64::from(self.capacity) * fraction).round() as i64;
        self.resize_window(window);
    }

    fn resize_window(&mut self, window: i64) {
        // At least one entry in main where there is room for two, so
        // frequency is never switched off. The window may be empty between
        // evictions: the newest entry still waits there until the next one
        // (which makes it the candidate), and a window kept at one entry
        // besides held one slot a shard that a loop never asks for again:
        // allowing 0 lifted the replay tool's 1,000-entry loop by 0.52
        // points (8 shards) and the 10,000-entry one by 0.06, and moved the
        // other rows by -0.04 to +0.06 at seeds 42, 7, 1 and 2 (the sum of
        // the 16 rows' gaps to the best peer rose by 0.64 to 0.78 a seed).
        // The adapter's miniatures keep a floor of one (`least`).
        let most = i64::from(self.capacity.saturating_sub(1)).max(1);
        self.window_max = window.clamp(i64::from(self.least), most) as u32;
        let main = self.capacity.saturating_sub(self.window_max);
        self.protected_max = main - main / 5;
        self.promotes = f64::from(self.window_max) <= PROMOTING * f64::from(self.capacity);
    }

    /// Counts a request for the entry hashed `hash`, for the sketch.
    #[inline]
    pub(crate) fn record(&mut self, hash: u64) {
        self.sketch.increment(hash);
        self.tick = self.tick.wrapping_add(1);
    }

    /// A hit on entry `i`: its reference bit, nothing else.
    ///
    /// The sketch is not told here: it counts an entry's hits as the laps in
    /// which it was used, when the hand finds the bit set (`pass`). A hot
    /// entry, found with its bit already set, writes nothing at all, and no
    /// hit touches the sketch's line. Against counting the same lap at its
    /// first hit (before), this was 0.01 to 0.15 points higher on the replay
    /// tool's 10,000 and 100,000-entry Zipf, scan and shift rows and 0.1
    /// lower on Zipf s=0.6 at 1,000; counting every hit (as Caffeine does)
    /// was 0.2 to 0.8 lower on those rows, the residents' counts then
    /// outweighing any newcomer's.
    #[inline]
    pub(crate) fn hit(&mut self, nodes: &mut impl Nodes, i: u32) {
        if !nodes.referenced(i) {
            nodes.set_referenced(i, true);
        }
    }

    /// A new entry `i` enters the window.
    pub(crate) fn insert(&mut self, nodes: &mut impl Nodes, i: u32) {
        *nodes.node(i) = Node::default();
        nodes.set_referenced(i, false);
        self.push_back(nodes, Region::Window, i);
    }

    /// Entry `i` leaves (removed, expired or evicted by its owner).
    pub(crate) fn remove(&mut self, nodes: &mut impl Nodes, i: u32) {
        self.unlink(nodes, i);
    }

    /// Entry `from` now lives at index `to` (its owner moved it), with the
    /// same node: its neighbours and list ends are pointed at `to`.
    pub(crate) fn moved(&mut self, nodes: &mut impl Nodes, from: u32, to: u32) {
        let node = *nodes.node(to);
        let list = &mut self.lists[node.region() as usize];
        match node.prev() {
            NIL => list.head = to,
            prev => nodes.node(prev).set_next(to),
        }
        match node.next() {
            NIL => list.tail = to,
            next => nodes.node(next).set_prev(to),
        }
        debug_assert_ne!(from, to);
    }

    /// Empties every queue (the owner has dropped all entries).
    pub(crate) fn clear(&mut self) {
        self.lists = [List::EMPTY; 3];
    }

    /// Chooses the entry to evict so that a new one fits, unlinks it and
    /// returns its index; `None` only when the policy holds no entry.
    ///
    /// The window first hands its overflow to probation; then the oldest
    /// candidate that arrived there duels main's victim (probation's head)
    /// by frequency, and the loser goes. With nothing to duel, the victim
    /// goes.
    ///
    /// A window entry that was asked for again while in the window (its bit
    /// set when it reaches the window's head) is no candidate: it moves on
    /// to probation with its bit set, admitted without a duel, and is
    /// promoted to protected when main's hand reaches it (S3-FIFO's rule for
    /// its small queue, here while the window is small: see `PROMOTING`).
    /// A reuse within the window is a surer sign than the sketch's counts,
    /// which at low skew are a count or two of noise apart. Against giving
    /// such entries a second chance in the window (and a duel when they
    /// leave it unused), this lifted the replay tool's shifting hot set at
    /// 1,000 entries by 0.7 points and its Zipf s=0.6 row by 0.2, and a
    /// 100,000-entry cache's Zipf rows (1,000,000 keys) by up to 0.65 and
    /// its scan row by 0.2; it cost 0.1 and 0.2 on the 10,000-entry Zipf
    /// s=1.2 and scan rows, and the others moved by under 0.1.
    pub(crate) fn evict(&mut self, nodes: &mut impl Nodes) -> Option<u32> {
        let mut candidate = NIL;
        // Bounded, like `demote_overflow`: after the adapter moves the split
        // by a quarter of the shard, the regions reach their sizes over many
        // evictions rather than in one long one under the shard's lock.
        let mut moves = 0;
        while self.lists[Region::Window as usize].len > self.window_max && moves < MOVES {
            moves += 1;
            let head = self.lists[Region::Window as usize].head;
            if self.promotes && head != NIL && nodes.referenced(head) {
                // The lap it was used in counts, and the bit stays for
                // probation's hand.
                self.sketch.increment(nodes.hash(head));
                self.unlink(nodes, head);
                self.push_back(nodes, Region::Probation, head);
                continue;
            }
            let Some(i) = self.second_chance(nodes, Region::Window) else {
                break;
            };
            self.unlink(nodes, i);
            self.push_back(nodes, Region::Probation, i);
            if candidate == NIL {
                candidate = i;
            }
        }
        self.demote_overflow(nodes);
        let victim = self.main_victim(nodes);
        let loser = match (victim, candidate) {
            (None, _) => {
                // Main is empty: only the window holds entries.
                let i = self.second_chance(nodes, Region::Window)?;
                Some(i)
            }
            (Some(v), c) if c == NIL || c == v => Some(v),
            (Some(v), c) => Some(self.duel(nodes, c, v)),
        }?;
        self.unlink(nodes, loser);
        Some(loser)
    }

    /// The loser of a duel between `candidate` and `victim`: the candidate,
    /// unless it is asked for clearly more often. A near tie keeps the
    /// incumbent, except that a warm candidate wins one in 128, so no
    /// crafted sequence can pin the incumbents forever (as Caffeine guards
    /// against hash flooding).
    fn duel(&mut self, nodes: &mut impl Nodes, candidate: u32, victim: u32) -> u32 {
        let c = self.sketch.frequency(nodes.hash(candidate));
        if c < 2 {
            // It could win neither way (by a margin over any count, nor by
            // luck): the victim's count is not read. That is most misses' case
            // (a key seen once), so most duels read one sketch line, not two.
            return candidate;
        }
        let v = self.sketch.frequency(nodes.hash(victim));
        let lucky = c >= 6 && (nodes.hash(candidate) ^ u64::from(self.tick)) & 127 == 0;
        // By more than one count: a count-min sketch overestimates by about
        // that much, and equal keys (a loop's) that win on noise churn the
        // resident set. On the replay tool's rows this margin lifted the
        // loops by 2.7 and 5 points, moved the others by -2.2 to +0.4.
        if c > v.saturating_add(1) || lucky {
            victim
        } else {
            candidate
        }
    }

    /// Probation's head after promoting the referenced entries in front of
    /// it to protected; protected's if probation is empty.
    fn main_victim(&mut self, nodes: &mut impl Nodes) -> Option<u32> {
        // Bounded: each pass promotes one entry or returns.
        for _ in 0..=self.lists[Region::Probation as usize].len {
            let head = self.lists[Region::Probation as usize].head;
            if head == NIL {
                break;
            }
            if !nodes.referenced(head) {
                return Some(head);
            }
            self.pass(nodes, head);
            self.unlink(nodes, head);
            self.push_back(nodes, Region::Protected, head);
            self.demote_overflow(nodes);
        }
        if self.lists[Region::Probation as usize].len > 0 {
            return Some(self.lists[Region::Probation as usize].head);
        }
        self.second_chance(nodes, Region::Protected)
    }

    /// Moves protected's unreferenced overflow to probation's tail.
    fn demote_overflow(&mut self, nodes: &mut impl Nodes) {
        for _ in 0..MOVES {
            if self.lists[Region::Protected as usize].len <= self.protected_max {
                return;
            }
            let Some(i) = self.second_chance(nodes, Region::Protected) else {
                return;
            };
            self.unlink(nodes, i);
            self.push_back(nodes, Region::Probation, i);
        }
    }

    /// The first entry from `region`'s head whose reference bit is clear,
    /// giving each referenced one a second chance (bit cleared, moved to the
    /// tail). Bounded by one lap: after it, the head's bit is clear.
    fn second_chance(&mut self, nodes: &mut impl Nodes, region: Region) -> Option<u32> {
        let lap = self.lists[region as usize].len;
        for _ in 0..lap {
            let head = self.lists[region as usize].head;
            if !nodes.referenced(head) {
                return Some(head);
            }
            self.pass(nodes, head);
            self.unlink(nodes, head);
            self.push_back(nodes, region, head);
        }
        let head = self.lists[region as usize].head;
        (head != NIL).then_some(head)
    }

    /// The hand passes entry `i` with its reference bit set: the bit is
    /// cleared, and the lap in which the entry was used reaches the sketch.
    fn pass(&mut self, nodes: &mut impl Nodes, i: u32) {
        nodes.set_referenced(i, false);
        self.sketch.increment(nodes.hash(i));
    }

    fn push_back(&mut self, nodes: &mut impl Nodes, region: Region, i: u32) {
        let list = &mut self.lists[region as usize];
        let tail = list.tail;
        *nodes.node(i) = Node::new(tail, NIL, region);
        match tail {
            NIL => list.head = i,
            tail => nodes.node(tail).set_next(i),
        }
        list.tail = i;
        list.len += 1;
    }

    fn unlink(&mut self, nodes: &mut impl Nodes, i: u32) {
        let node = *nodes.node(i);
        let list = &mut self.lists[node.region() as usize];
        match node.prev() {
            NIL => list.head = node.next(),
            prev => nodes.node(prev).set_next(node.next()),
        }
        match node.next() {
            NIL => list.tail = node.prev(),
            next => nodes.node(next).set_prev(node.prev()),
        }
        list.len -= 1;
        *nodes.node(i) = Node::new(NIL, NIL, node.region());
    }
}

#[cfg(test)]
mod tests;
