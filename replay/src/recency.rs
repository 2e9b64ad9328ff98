//! A recency-biased stream: most requests re-reference a key chosen by its
//! distance down the LRU stack (the order of last use), drawn from a
//! geometric distribution; the rest are new keys or uniform old ones. The
//! LRU stack is kept exactly with a Fenwick tree over request times, each
//! key marked at its last use, so finding the `d`-th most recent key is
//! O(log n).
//!
//! An exact LRU of `c` keys hits a re-reference exactly when its stack
//! distance is at most `c`: on this stream recency is the whole signal, and
//! a policy that trusts frequency alone falls below LRU.

use rand::Rng;

/// Counts of marked positions, with prefix sums and order statistics.
struct Fenwick {
    tree: Vec<u32>,
}

impl Fenwick {
    fn new(len: usize) -> Self {
        Fenwick {
            tree: vec![0; len + 1],
        }
    }

    fn add(&mut self, pos: usize, delta: i32) {
        let mut i = pos + 1;
        while i < self.tree.len() {
            self.tree[i] = self.tree[i].wrapping_add_signed(delta);
            i += i & i.wrapping_neg();
        }
    }

    /// The position of the `k`-th marked one from the left (1-based `k`,
    /// at most the number marked).
    fn kth(&self, mut k: u32) -> usize {
        let mut pos = 0;
        let mut step = (self.tree.len() - 1).next_power_of_two();
        while step > 0 {
            let next = pos + step;
            if next < self.tree.len() && self.tree[next] < k {
                pos = next;
                k -= self.tree[next];
            }
            step /= 2;
        }
        pos
    }
}

/// `requests` keys: each, with probability `reuse`, the key at LRU-stack
/// distance `d` >= 1 (1 is the key requested last), `d` geometric with mean
/// `mean` (a distance past the stack's depth asks for a new key); otherwise,
/// with probability `fresh`, a new key, else a uniformly chosen old one. Keys
/// are numbered in order of first use.
pub(crate) fn recency(
    requests: usize,
    reuse: f64,
    mean: f64,
    fresh: f64,
    rng: &mut impl Rng,
) -> Vec<u64> {
    const NOT_YET: usize = usize::MAX;
    let mut trace: Vec<u64> = Vec::with_capacity(requests);
    let mut stack = Fenwick::new(requests);
    let mut last_use: Vec<usize> = Vec::new();
    // ln(1 - p) for the inverse-transform geometric draw; -inf when mean is 1,
    // so every distance is 1.
    let ln_q = (1.0 - 1.0 / mean).ln();
    for now in 0..requests {
        let depth = last_use.len();
        let old = if depth > 0 && rng.gen::<f64>() < reuse {
            let u = 1.0 - rng.gen::<f64>(); // in (0, 1]
            let d = 1.0 + (u.ln() / ln_q).floor();
            (d <= depth as f64).then(|| {
                let pos = stack.kth((depth as f64 - d) as u32 + 1);
                trace[pos]
            })
        } else if depth > 0 && rng.gen::<f64>() >= fresh {
            Some(rng.gen_range(0..depth as u64))
        } else {
            None
        };
        let key = old.unwrap_or_else(|| {
            last_use.push(NOT_YET);
            depth as u64
        });
        let last = &mut last_use[key as usize];
        if *last != NOT_YET {
            stack.add(*last, -1);
        }
        stack.add(now, 1);
        *last = now;
        trace.push(key);
    }
    trace
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::StdRng, SeedableRng};

    #[test]
    fn distance_one_repeats_the_last_key() {
        let mut rng = StdRng::seed_from_u64(3);
        let trace = recency(1_000, 1.0, 1.0, 0.0, &mut rng);
        assert!(trace.iter().all(|&k| k == 0));
    }

    #[test]
    fn kth_walks_the_marks() {
        let mut f = Fenwick::new(10);
        for p in [1, 4, 5, 9] {
            f.add(p, 1);
        }
        assert_eq!([1, 2, 3, 4].map(|k| f.kth(k)), [1, 4, 5, 9]);
        f.add(4, -1);
        assert_eq!([1, 2, 3].map(|k| f.kth(k)), [1, 5, 9]);
    }
}
