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
//! The simulation is a plain data structure, like the policy it simulates,
//! behind one lock: the cache feeds it the hashes of sampled requests and
//! applies the fraction it returns.
//!
//! # What a sampled hit costs
//!
//! One request in 16 is sampled (up to about 65,000 entries; fewer above),
//! and most of a hitting cache's sampled requests are hits in both
//! miniatures, which only set a reference bit. Those are served without
//! the lock ([`Quiet`]): the keys resident in both miniatures are filed in
//! a small table of atomics with where their two reference bits are, and
//! the bits themselves are atomics, so such a request sets them and counts
//! against the period's remaining credit, with no lock taken and no
//! miniature's index looked at. A key is unfiled when either miniature
//! evicts it, and the period's last request always takes the lock, so a
//! single-threaded replay steers the window exactly as if every sampled
//! request were fed (the replay tool's table is unchanged to the last
//! digit, seeds 42 and 7).
//!
//! A cache that neither grows nor evicts over a whole period holds its
//! working set: its split decides nothing, and the adapter sleeps until the
//! next eviction (see [`Adapter::evicting`]). Awake, the miniatures would
//! keep paying for misses there: they hold a sample of the keys at the
//! same sample of the size, and when the sample happens to hold a few more
//! keys than their room (about half the time at 1,000 entries: 1,000 keys
//! sampled 1 in 16 give 62 keys, plus or minus 8, for 62 entries) they miss
//! while the cache does not.
//!
//! Measured with `perf record` on the engine bench's
//! `hit_random_1000/ours_get` (`--profile-time 4`, six alternating runs
//! each, a fresh hasher seed each run): the adapter's functions took 5 to
//! 11% of the samples before, none after (the sleeping check is one load,
//! inlined, on the sampled hits). With the adapter kept awake, the lock-free
//! hits alone took it to 0.2 to 2.1% in the runs whose sample fit the
//! miniatures, and 5.6 to 7.8% (from 9 to 13.6%) in those where it did not.

use crate::sync::hint::{AtomicBool, Ordering};

use hashbrown::HashTable;

use super::policy::{Node, Nodes, Policy, INITIAL_WINDOW};
use crate::sync::Mutex;

mod quiet;
use quiet::{mixed, Quiet, DORMANT, EVICTED};

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
/// the same way and shrinks when the direction turns. A smallest gap of 3%
/// against 1% (with empty windows allowed, see `policy.rs`) lifted the
/// replay tool's 10,000-entry scan row by 0.5 points at seed 42, the
/// 1,000-entry shift and Zipf s=0.6 rows by 0.03 to 0.16 at seeds 7, 1 and
/// 2, and moved no row down by more than 0.03; 2% and 4% did less.
const GAP: f64 = 0.05;
const GAP_MIN: f64 = 0.03;
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
/// sampled share of the capacity. Its reference bits are in [`Quiet`],
/// where a skipped hit sets them without the lock.
struct Miniature {
    policy: Policy,
    index: HashTable<u32>,
    entries: Vec<(Node, u64)>,
    /// Where its reference bits start in [`Quiet::refs`].
    side: usize,
    capacity: usize,
    misses: u64,
}

/// A miniature's entries as the policy sees them.
struct Entries<'a>(&'a mut [(Node, u64)], &'a [AtomicBool]);

impl Nodes for Entries<'_> {
    fn node(&mut self, i: u32) -> &mut Node {
        &mut self.0[i as usize].0
    }
    fn hash(&self, i: u32) -> u64 {
        self.0[i as usize].1
    }
    fn referenced(&self, i: u32) -> bool {
        self.1[i as usize].load(Ordering::Relaxed)
    }
    fn set_referenced(&mut self, i: u32, on: bool) {
        self.1[i as usize].store(on, Ordering::Relaxed);
    }
}

impl Miniature {
    /// A miniature of `capacity` entries whose bits start at `side` in
    /// [`Quiet::refs`].
    fn new(capacity: usize, window: f64, side: usize) -> Self {
        let mut policy = Policy::new(capacity).with_window_floor(1);
        policy.set_window(window);
        Miniature {
            policy,
            index: HashTable::new(),
            entries: Vec::with_capacity(capacity),
            side,
            capacity,
            misses: 0,
        }
    }

    /// A request for the key filed under `hash` (already [`mixed`]);
    /// returns where its reference bit is in [`Quiet::refs`] now that it is
    /// resident.
    fn access(&mut self, hash: u64, quiet: &Quiet) -> usize {
        let refs = &quiet.refs[self.side..self.side + self.capacity];
        let entries = &self.entries;
        if let Some(&i) = self.index.find(hash, |&i| entries[i as usize].1 == hash) {
            self.policy.hit(&mut Entries(&mut self.entries, refs), i);
            return self.side + i as usize;
        }
        self.misses += 1;
        self.policy.record(hash);
        let i = if self.entries.len() < self.capacity {
            self.entries.push((Node::default(), hash));
            (self.entries.len() - 1) as u32
        } else {
            let gone = self
                .policy
                .evict(&mut Entries(&mut self.entries, refs))
                .expect("a full miniature has a victim");
            let old = self.entries[gone as usize].1;
            quiet.unfile(old);
            if let Ok(found) = self.index.find_entry(old, |&i| i == gone) {
                found.remove();
            }
            self.entries[gone as usize].1 = hash;
            gone
        };
        let entries = &self.entries;
        self.index
            .insert_unique(hash, i, |&j| entries[j as usize].1);
        self.policy.insert(&mut Entries(&mut self.entries, refs), i);
        self.side + i as usize
    }
}

/// The adapter a cache holds: the simulation behind its lock, and the
/// table that lets most sampled hits skip both (see the module docs).
pub(crate) struct Adapter {
    steer: Mutex<Steer>,
    quiet: Quiet,
    /// A request is sampled when its hash's top bits are zero.
    shift: u32,
    /// The window fraction the adapter starts from.
    start: f64,
}

/// The two miniatures and the window fraction they steer.
struct Steer {
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
    /// The credit last handed to [`Quiet`]: what it has left of it is
    /// what was skipped since.
    granted: usize,
    /// The cache's entries when the last period ended.
    len: usize,
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
        let steer = Steer {
            smaller: Miniature::new(size, (window - GAP).max(0.0), 0),
            larger: Miniature::new(size, window + GAP, size),
            window,
            gap: GAP,
            streak: 0,
            seen: 0,
            period: size * PERIOD,
            lead: 0.0,
            granted: 0,
            len: 0,
        };
        Adapter {
            steer: Mutex::new(steer),
            quiet: Quiet::new(size),
            shift: 64 - k,
            start: window,
        }
    }

    /// Whether the request hashed `hash` is one the miniatures see.
    #[cfg(test)]
    pub(crate) fn samples(&self, hash: u64) -> bool {
        self.shift == 64 || hash >> self.shift == 0
    }

    /// The shift `samples` uses, for a caller that decides
    /// without the adapter's lock.
    pub(crate) fn shift(&self) -> u32 {
        self.shift
    }

    /// The window fraction a new cache starts with.
    pub(crate) fn window(&self) -> f64 {
        self.start
    }

    /// Whether the sampled request hashed `hash` was served without the
    /// lock: a hit in both miniatures, which only sets their reference bits
    /// (see [`Quiet`]). If not, the caller feeds it to [`record`](Self::record).
    ///
    /// While the cache evicts nothing the split it steers changes nothing,
    /// and every request is skipped (see [`evicting`](Self::evicting)).
    #[inline]
    pub(crate) fn skips(&self, hash: u64) -> bool {
        self.quiet.credit.1.load(Ordering::Relaxed) == DORMANT || self.quiet.hits(mixed(hash))
    }

    /// Tells the adapter that the cache is choosing a victim. A cache that
    /// evicts nothing for a whole period (it holds its working set) puts the
    /// adapter to sleep, and the next eviction wakes it: the miniatures,
    /// which hold a sample of the keys at a sample of the size, would
    /// otherwise keep missing (and pay for it on the cache's hits) when the
    /// sample holds a few more keys than they have room for.
    #[inline]
    pub(crate) fn evicting(&self) {
        let state = &self.quiet.credit.1;
        // Written once a period at most: the line stays shared.
        if state.load(Ordering::Relaxed) != EVICTED {
            state.store(EVICTED, Ordering::Relaxed);
        }
    }

    /// Feeds a sampled request to both miniatures; at the end of a period,
    /// returns the new window fraction if it moved. A request that finds
    /// the adapter busy (another thread feeding it) is dropped: a sample
    /// lost to contention changes nothing that matters.
    ///
    /// `len` is how many entries the cache holds now: a cache that neither
    /// grew nor evicted over a period puts the adapter to sleep (see
    /// [`evicting`](Self::evicting)).
    pub(crate) fn record(&self, hash: u64, len: usize) -> Option<f64> {
        let mut steer = self.steer.try_lock()?;
        steer.record(mixed(hash), len, &self.quiet)
    }
}

impl Steer {
    /// See [`Adapter::record`]; `hash` is [`mixed`].
    fn record(&mut self, hash: u64, len: usize, quiet: &Quiet) -> Option<f64> {
        // The requests skipped since the last call count toward the period
        // (each was a hit that changed nothing, so the order of the skipped
        // and the fed requests does not matter).
        let left = quiet.credit.0.load(Ordering::Relaxed).min(self.granted);
        self.seen += self.granted - left;
        let small = self.smaller.access(hash, quiet);
        let large = self.larger.access(hash, quiet);
        quiet.file(hash, small, large);
        let moved = self.count();
        if self.seen == 0 {
            // A period ended: sleep if the cache took in nothing new in it
            // (filling, it grows; full, it evicts).
            let state = &quiet.credit.1;
            let idle = state.load(Ordering::Relaxed) & EVICTED == 0 && len == self.len;
            state.store(if idle { DORMANT } else { 0 }, Ordering::Relaxed);
            self.len = len;
        }
        // Skips may take the period up to its last request, which comes
        // here to end it.
        self.granted = self.period - 1 - self.seen;
        quiet.credit.0.store(self.granted, Ordering::Relaxed);
        moved
    }

    /// Counts a fed request; at the end of a period, moves the window and
    /// returns it if it moved.
    fn count(&mut self) -> Option<f64> {
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
            // As a full cache that misses: it evicts all the time.
            adapter.evicting();
            if adapter.samples(h) && !adapter.skips(h) {
                adapter.record(h, 0);
            }
        }
    }

    fn window(adapter: &Adapter) -> f64 {
        adapter.steer.lock().window
    }

    #[test]
    fn a_loop_keeps_the_window_small() {
        let mut adapter = Adapter::new(1_000);
        run(&mut adapter, (0..400).flat_map(|_| 0..1_500u64));
        assert!(window(&adapter) < 0.2, "window {}", window(&adapter));
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
        assert!(window(&adapter) > 0.15, "window {}", window(&adapter));
    }

    #[test]
    fn hits_served_without_the_lock_steer_exactly_as_fed_ones() {
        // A skewed stream over more keys than the cache: the miniatures
        // both hit and miss, and their hands clear bits. Served from
        // `Quiet` or fed to both miniatures, every period ends the same.
        let keys = |seed: u64| {
            let mut x = seed;
            (0..400_000).map(move |_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                // Squaring a uniform draw skews it toward small keys.
                let u = (x >> 11) as f64 / (1u64 << 53) as f64;
                (u * u * 3_000.0) as u64
            })
        };
        let (quiet, fed) = (Adapter::new(1_000), Adapter::new(1_000));
        let mut served = 0;
        let mut moves = 0;
        for (a, b) in keys(7).zip(keys(7)) {
            let (ha, hb) = (hash(a), hash(b));
            quiet.evicting();
            fed.evicting();
            if !quiet.samples(ha) {
                continue;
            }
            let moved_quiet = if quiet.skips(ha) {
                served += 1;
                None
            } else {
                quiet.record(ha, 0)
            };
            // `fed` steers off the same requests, each through the lock:
            // its windows move at the same periods, which the quiet one
            // ends only on a fed request.
            let moved_fed = fed.record(hb, 0);
            if moved_fed.is_some() {
                moves += 1;
            }
            assert_eq!(window(&quiet), window(&fed));
            if moved_quiet.is_some() {
                assert_eq!(moved_quiet, moved_fed);
            }
        }
        assert!(served > 1_000, "{served} hits served without the lock");
        assert!(moves > 0, "the window never moved");
    }

    #[test]
    fn a_cache_that_evicts_nothing_puts_the_adapter_to_sleep() {
        let adapter = Adapter::new(10);
        // Thirteen keys in a miniature of ten: it keeps missing, which a
        // cache that holds them all would pay for on its hits.
        let period = adapter.steer.lock().period as u64;
        // The first period sees the cache grow to its ten entries; the
        // second, nothing new. Keys not resident in both are fed.
        let mut fed = 0;
        for key in 0..2 * period {
            if !adapter.skips(hash(key % 13)) {
                fed += 1;
                adapter.record(hash(key % 13), 10);
            }
        }
        assert!(fed > 3, "{fed} fed");
        // Asleep: every request skipped, resident in the miniatures or not.
        assert!((0..13).all(|key| adapter.skips(hash(key))));
        adapter.evicting();
        assert!(
            !(0..13).all(|key| adapter.skips(hash(key))),
            "an eviction wakes it"
        );
    }

    #[test]
    fn tiny_caches_sample_every_request() {
        let adapter = Adapter::new(10);
        assert!(adapter.samples(u64::MAX));
        assert_eq!(adapter.steer.lock().smaller.capacity, 10);
    }
}
