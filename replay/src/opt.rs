//! Belady's optimal (MIN), the ceiling of every row: on a miss, keep
//! whichever of the resident keys and the requested one is wanted again
//! soonest, and drop the one wanted farthest in the future.
//!
//! The requested key is a candidate too (it may be dropped at once, never
//! stored): MIN with bypass, the optimum over every policy that may refuse
//! admission, which moka's TinyLFU and quick_cache's ghosts do. Without
//! bypass it would be the optimum only for caches that store every miss, and
//! could fall below an admission policy.

use std::collections::BTreeSet;

use crate::keymap::key_map;

/// The next-use index of a key that is never requested again.
pub const NEVER: usize = usize::MAX;

/// For each request `i`, the index of the next request for the same key, or
/// [`NEVER`]: one backward pass.
///
/// ```
/// use singleflight_replay::{next_uses, NEVER};
/// assert_eq!(next_uses(&[1, 2, 1, 1]), [2, NEVER, 3, NEVER]);
/// ```
pub fn next_uses(trace: &[u64]) -> Vec<usize> {
    let mut next = vec![NEVER; trace.len()];
    let mut seen = key_map::<usize>(1024);
    for (i, &key) in trace.iter().enumerate().rev() {
        if let Some(later) = seen.insert(key, i) {
            next[i] = later;
        }
    }
    next
}

/// The hits of Belady's optimal (with bypass) holding at most `capacity`
/// keys, in O(n log capacity).
///
/// ```
/// // 1 2 3 1 4 1 2 in two slots: keep 1 and 2, never store 3 or 4.
/// assert_eq!(singleflight_replay::opt_hits(&[1, 2, 3, 1, 4, 1, 2], 2), 3);
/// ```
///
/// # Panics
///
/// If `capacity` is 0.
pub fn opt_hits(trace: &[u64], capacity: usize) -> u64 {
    assert!(capacity > 0, "OPT capacity must be at least 1");
    let next = next_uses(trace);
    // Each resident key's next use, and the same pairs ordered by next use
    // (keys break ties among the never-again, so every pair is distinct).
    let mut resident = key_map::<usize>(capacity);
    let mut by_next: BTreeSet<(usize, u64)> = BTreeSet::new();
    let mut hits = 0;
    for (&key, &wanted) in trace.iter().zip(&next) {
        if let Some(due) = resident.get_mut(&key) {
            hits += 1;
            by_next.remove(&(*due, key));
            *due = wanted;
            by_next.insert((wanted, key));
            continue;
        }
        if resident.len() == capacity {
            let &(farthest, victim) = by_next.last().expect("a full cache has a farthest key");
            if wanted >= farthest {
                continue;
            }
            by_next.remove(&(farthest, victim));
            resident.remove(&victim);
        }
        resident.insert(key, wanted);
        by_next.insert((wanted, key));
    }
    hits
}
