//! The exact LRU and Belady's optimal: counts computed by hand, and checked
//! against slow reference implementations on many small random traces.

use std::collections::{HashMap, VecDeque};

use rand::{rngs::StdRng, Rng, SeedableRng};
use singleflight_replay::{lru_hits, next_uses, opt_hits, Lru, NEVER};

/// 1 2 3 1 4 1 2, by hand.
///
/// LRU, 2 slots: 1 m [1]; 2 m [2 1]; 3 m, out 1 [3 2]; 1 m, out 2 [1 3];
/// 4 m, out 3 [4 1]; 1 hit [1 4]; 2 m, out 4. One hit.
/// LRU, 3 slots: 1 2 3 m; 1 hit; 4 m, out 2; 1 hit; 2 m. Two hits.
///
/// OPT, 2 slots: 1 and 2 stored; 3 (never again) not stored; 1 hit; 4
/// (never again) not stored; 1 hit; 2 hit. Three hits: the three re-uses.
/// OPT, 1 slot: 1 kept from index 0 to 3 (3 and 2 bypassed), hit; 4
/// bypassed; 1 hit; 2 miss. Two hits.
const HAND: [u64; 7] = [1, 2, 3, 1, 4, 1, 2];

#[test]
fn lru_by_hand() {
    assert_eq!(lru_hits(&HAND, 1), 0);
    assert_eq!(lru_hits(&HAND, 2), 1);
    assert_eq!(lru_hits(&HAND, 3), 2);
    assert_eq!(lru_hits(&HAND, 4), 3);
}

#[test]
fn opt_by_hand() {
    assert_eq!(opt_hits(&HAND, 1), 2);
    assert_eq!(opt_hits(&HAND, 2), 3);
    assert_eq!(opt_hits(&HAND, 3), 3);
}

#[test]
fn next_uses_by_hand() {
    assert_eq!(next_uses(&HAND), [3, 6, NEVER, 5, NEVER, NEVER, NEVER]);
    assert!(next_uses(&[]).is_empty());
}

#[test]
fn a_loop_one_longer_than_lru_never_hits() {
    let trace: Vec<u64> = (0..10_000).map(|i| i % 101).collect();
    assert_eq!(lru_hits(&trace, 100), 0);
    // OPT misses about once per 100 requests after the first pass (the
    // classic (L - C) / (L - 1) miss ratio of a loop of L keys in C slots).
    let opt = opt_hits(&trace, 100);
    assert!((9_790..=9_810).contains(&opt), "opt {opt}");
}

#[test]
fn lru_reports_its_size() {
    let mut lru = Lru::new(3);
    assert!(lru.is_empty());
    for k in 0..10 {
        lru.access(k);
        assert!(lru.len() <= 3);
    }
    assert_eq!(lru.len(), 3);
    // 7, 8 and 9 are resident, 6 is not.
    assert!(lru.access(7) && lru.access(8) && lru.access(9));
    assert!(!lru.access(6));
}

/// A plain LRU: a queue, most recent at the back, searched linearly.
fn reference_lru(trace: &[u64], capacity: usize) -> u64 {
    let mut queue: VecDeque<u64> = VecDeque::new();
    let mut hits = 0;
    for &k in trace {
        if let Some(at) = queue.iter().position(|&q| q == k) {
            hits += 1;
            queue.remove(at);
        } else if queue.len() == capacity {
            queue.pop_front();
        }
        queue.push_back(k);
    }
    hits
}

/// The best hit count over every choice a cache may make: on a miss, store
/// the key in a free slot, store it in place of any resident key, or not
/// store it. Memoised on (position, resident set).
fn brute_force_best(trace: &[u64], capacity: usize) -> u64 {
    fn go(
        trace: &[u64],
        i: usize,
        resident: Vec<u64>,
        capacity: usize,
        memo: &mut HashMap<(usize, Vec<u64>), u64>,
    ) -> u64 {
        if i == trace.len() {
            return 0;
        }
        if let Some(&v) = memo.get(&(i, resident.clone())) {
            return v;
        }
        let k = trace[i];
        let best = if resident.contains(&k) {
            1 + go(trace, i + 1, resident.clone(), capacity, memo)
        } else {
            let mut best = go(trace, i + 1, resident.clone(), capacity, memo);
            let mut choices = Vec::new();
            if resident.len() < capacity {
                choices.push(None);
            } else {
                choices.extend((0..resident.len()).map(Some));
            }
            for out in choices {
                let mut next = resident.clone();
                if let Some(at) = out {
                    next.remove(at);
                }
                next.push(k);
                next.sort_unstable();
                best = best.max(go(trace, i + 1, next, capacity, memo));
            }
            best
        };
        memo.insert((i, resident), best);
        best
    }
    go(trace, 0, Vec::new(), capacity, &mut HashMap::new())
}

#[test]
fn lru_matches_the_reference_on_random_traces() {
    let mut rng = StdRng::seed_from_u64(11);
    for round in 0..300 {
        let alphabet = rng.gen_range(1..40);
        let len = rng.gen_range(0..400);
        let trace: Vec<u64> = (0..len).map(|_| rng.gen_range(0..alphabet)).collect();
        let capacity = rng.gen_range(1..20);
        assert_eq!(
            lru_hits(&trace, capacity),
            reference_lru(&trace, capacity),
            "round {round}, capacity {capacity}: {trace:?}"
        );
    }
}

#[test]
fn opt_matches_the_brute_force_optimum_on_small_traces() {
    let mut rng = StdRng::seed_from_u64(12);
    for round in 0..400 {
        let alphabet = rng.gen_range(1..7);
        let len = rng.gen_range(0..14);
        let trace: Vec<u64> = (0..len).map(|_| rng.gen_range(0..alphabet)).collect();
        let capacity = rng.gen_range(1..4);
        let opt = opt_hits(&trace, capacity);
        assert_eq!(
            opt,
            brute_force_best(&trace, capacity),
            "round {round}, capacity {capacity}: {trace:?}"
        );
        assert!(opt >= reference_lru(&trace, capacity));
    }
}
