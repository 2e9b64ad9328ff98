//! How the split between the window (recency) and main (frequency) adapts
//! to the workload: two miniature simulations of the cache, run side by
//! side on a sample of the keys, one with a smaller window than the cache
//! has now and one with a larger; every period the cache's window moves
//! toward the one that missed less.
//!
//! Both miniatures see exactly the same requests, so comparing them is a
//! paired measurement: the noise of the workload itself cancels, which a
//! hill climber on the cache's own hit rate (Caffeine's approach, which
//! compares one period with the next) cannot do at small sizes. A loop
//! larger than the cache drives the window down (frequency admission keeps
//! a fixed part of the loop resident); a stream whose keys come back soon
//! after their first use drives it up until the cache behaves like LRU.
//!
//! A plain data structure, like the policy it simulates: the cache feeds
//! it the hashes of sampled requests and applies the fraction it returns.

use hashbrown::HashTable;

use super::policy::{Node, Nodes, Policy, INITIAL_WINDOW};

/// The smallest miniature worth simulating, and the largest needed: past
/// a few thousand entries, a bigger sample measures nothing new.
const SMALLEST: usize = 32;
const LARGEST: usize = 4096;

/// Periods are this many times a miniature's capacity, in sampled requests.
/// On the replay tool's rows, 1 against 2 brought the shifting and
/// recency-biased rows 0.3 to 4.6 points closer to LRU, for 0.1 to 0.6
/// points on the Zipf rows; 10 (the sketch's aging period, Caffeine's
/// sample) took most of a million requests to reach a recency-biased
/// trace's best split.
const PERIOD: usize = 1;

/// How far apart the two miniatures' windows start, as a fraction of the
/// capacity, and the bounds of that gap as it grows with a streak of moves
/// the same way and shrinks when the direction turns.
const GAP: f64 = 0.05;
const GAP_MIN: f64 = 0.01;
const GAP_MAX: f64 = 0.25;

/// How much of the smaller window's lead (its extra misses) carries over
/// from one period to the next. A period is short (one miniature's worth of
/// sampled requests, see [`PERIOD`]), so one period's difference is mostly
/// noise; 0.9 (a memory of about ten periods) against 0.5 (two) took the
/// replay tool's 1,000-entry Zipf and scan rows from 0.3 to 0.8 points under
/// quick_cache to level with it or above, where the noisy lead had kept
/// pushing the window away from its best split; 0.95 reacted too slowly on
/// the shifting hot set, 0 (no memory) lost up to 3.7 points.
const CARRY: f64 = 0.9;

/// One miniature cache: the real policy, over the sampled keys, at the
/// sampled share of the capacity.
struct Miniature {
    policy: Policy,
    index: HashTable<u32>,
    entries: Vec<(Node, u64, bool)>,
    capacity: usize,
    misses: u64,
}

struct Entries<'a>(&'a mut [(Node, u64, bool)]);

impl Nodes for Entries<'_> {
    fn node(&mut self, i: u32) -> &mut Node {
        &mut self.0[i as usize].0
    }
    fn hash(&self, i: u32) -> u64 {
        self.0[i as usize].1
    }
    fn referenced(&self, i: u32) -> bool {
        self.0[i as usize].2
    }
    fn set_referenced(&mut self, i: u32, on: bool) {
        self.0[i as usize].2 = on;
    }
}

impl Miniature {
    fn new(capacity: usize, window: f64) -> Self {
        let mut policy = Policy::new(capacity);
        policy.set_window(window);
        Miniature {
            policy,
            index: HashTable::new(),
            entries: Vec::with_capacity(capacity),
            capacity,
            misses: 0,
        }
    }

    fn access(&mut self, hash: u64) {
        // Sampled hashes share their top bits (all zero), which hashbrown
        // takes for its tags: turn the varying low bits up.
        let hash = hash.rotate_right(32) ^ hash;
        let entries = &self.entries;
        if let Some(&i) = self.index.find(hash, |&i| entries[i as usize].1 == hash) {
            self.policy.hit(&mut Entries(&mut self.entries), i);
            return;
        }
        self.misses += 1;
        self.policy.record(hash);
        let i = if self.entries.len() < self.capacity {
            self.entries.push((Node::default(), hash, false));
            (self.entries.len() - 1) as u32
        } else {
            let gone = self
                .policy
                .evict(&mut Entries(&mut self.entries))
                .expect("a full miniature has a victim");
            let old = self.entries[gone as usize].1;
            if let Ok(found) = self.index.find_entry(old, |&i| i == gone) {
                found.remove();
            }
            self.entries[gone as usize].1 = hash;
            gone
        };
        let entries = &self.entries;
        self.index
            .insert_unique(hash, i, |&j| entries[j as usize].1);
        self.policy.insert(&mut Entries(&mut self.entries), i);
    }
}

/// The two miniatures and the window fraction they steer.
pub(crate) struct Adapter {
    smaller: Miniature,
    larger: Miniature,
    /// The cache's window, as a fraction of its capacity.
    window: f64,
    gap: f64,
    /// Consecutive moves in one direction (negative: shrinking).
    streak: i32,
    seen: usize,
    period: usize,
    /// The smaller window's extra misses, smoothed (see `record`).
    lead: f64,
    /// A request is sampled when its hash's top bits are zero.
    shift: u32,
}

impl Adapter {
    /// An adapter for a cache bound to `capacity` entries.
    pub(crate) fn new(capacity: usize) -> Self {
        let target = (capacity / 16).clamp(SMALLEST.min(capacity), LARGEST);
        // Sample one request in 2^k, so the miniatures see keys in the
        // proportion they hold entries.
        let k = (capacity / target.max(1)).max(1).ilog2();
        let size = (capacity >> k).max(1);
        let window = INITIAL_WINDOW;
        Adapter {
            smaller: Miniature::new(size, (window - GAP).max(0.0)),
            larger: Miniature::new(size, window + GAP),
            window,
            gap: GAP,
            streak: 0,
            seen: 0,
            period: size * PERIOD,
            lead: 0.0,
            shift: 64 - k,
        }
    }

    /// Whether the request hashed `hash` is one the miniatures see.
    #[cfg(test)]
    pub(crate) fn samples(&self, hash: u64) -> bool {
        self.shift == 64 || hash >> self.shift == 0
    }

    /// The shift [`samples`](Self::samples) uses, for a caller that decides
    /// without the adapter's lock.
    pub(crate) fn shift(&self) -> u32 {
        self.shift
    }

    /// The window fraction the cache should use now.
    pub(crate) fn window(&self) -> f64 {
        self.window
    }

    /// Feeds a sampled request to both miniatures; at the end of a period,
    /// returns the new window fraction if it moved.
    pub(crate) fn record(&mut self, hash: u64) -> Option<f64> {
        self.smaller.access(hash);
        self.larger.access(hash);
        self.seen += 1;
        if self.seen < self.period {
            return None;
        }
        self.seen = 0;
        let (small, large) = (self.smaller.misses, self.larger.misses);
        self.smaller.misses = 0;
        self.larger.misses = 0;
        // How many more misses the smaller window had, smoothed over the
        // last few periods (see `CARRY`): short periods react fast, the
        // smoothing keeps one noisy period from turning the window.
        self.lead = self.lead * CARRY + (small as f64 - large as f64);
        let direction = if self.lead > 0.5 {
            1
        } else if self.lead < -0.5 {
            -1
        } else {
            0
        };
        let before = self.window;
        if direction != 0 {
            if self.streak.signum() == direction {
                self.gap = (self.gap * 1.5).min(GAP_MAX);
            } else {
                self.gap = (self.gap * 0.5).max(GAP_MIN);
            }
            self.streak = if self.streak.signum() == direction {
                self.streak + direction
            } else {
                direction
            };
            self.window = (self.window + f64::from(direction) * self.gap).clamp(0.0, 1.0);
        } else {
            // A tie says the two splits are too close to tell apart (or the
            // miniatures too small): look further out.
            self.gap = (self.gap * 1.5).min(GAP_MAX);
        }
        self.smaller
            .policy
            .set_window((self.window - self.gap).max(0.0));
        self.larger
            .policy
            .set_window((self.window + self.gap).min(1.0));
        (self.window != before).then_some(self.window)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(key: u64) -> u64 {
        // Keys spread over the whole range, so sampling by the top bits
        // takes an unbiased share.
        key.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(17) ^ 0x5555
    }

    fn run(adapter: &mut Adapter, keys: impl Iterator<Item = u64>) {
        for key in keys {
            let h = hash(key);
            if adapter.samples(h) {
                adapter.record(h);
            }
        }
    }

    #[test]
    fn a_loop_keeps_the_window_small() {
        let mut adapter = Adapter::new(1_000);
        run(&mut adapter, (0..400).flat_map(|_| 0..1_500u64));
        assert!(adapter.window() < 0.2, "window {}", adapter.window());
    }

    #[test]
    fn keys_that_come_back_soon_grow_the_window() {
        // Each key is asked for twice, the second time 1,000 requests later:
        // only recency can catch that, frequency never sees it twice before
        // it is gone from a small window.
        let mut adapter = Adapter::new(1_000);
        let keys = (0..600_000u64).map(|i| {
            if i % 2 == 0 || i < 1_601 {
                i
            } else {
                i - 1_601
            }
        });
        run(&mut adapter, keys);
        // From its 1% start, by at least a streak of the smallest moves.
        assert!(adapter.window() > 0.15, "window {}", adapter.window());
    }

    #[test]
    fn tiny_caches_sample_every_request() {
        let adapter = Adapter::new(10);
        assert!(adapter.samples(u64::MAX));
        assert_eq!(adapter.smaller.capacity, 10);
    }
}
