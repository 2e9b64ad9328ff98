use std::collections::{BTreeSet, HashMap};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;

impl Index {
    /// Checks the placement invariant: the count of live cells, every
    /// position indexed once, and every bucket a cell went past full of cells
    /// displaced at least as far as it was there.
    fn check(&self) {
        let mut seen = std::collections::HashSet::new();
        let mut live = 0;
        for (bucket, b) in self.buckets.iter().enumerate() {
            for cell in 0..CELLS {
                if b.pos[cell] == EMPTY {
                    continue;
                }
                live += 1;
                assert!(seen.insert(b.pos[cell]), "position indexed twice");
                let tag = b.tags[cell];
                let mut past = self.home(tag);
                for d in 0..self.displacement(bucket, tag) {
                    let p = &self.buckets[past];
                    assert_eq!(p.vacant(), 0, "a cell went past bucket {past} with room");
                    assert!(
                        self.least_displaced(past).1 >= d,
                        "a cell went past bucket {past} with a less displaced cell"
                    );
                    past = self.next(past);
                }
            }
        }
        assert_eq!(live, self.len);
        assert!(self.len <= self.limit || self.buckets.is_empty());
    }

    /// Live cells in each bucket, and the sum of their displacements: what
    /// a lookup's cost follows.
    fn shape(&self) -> (Vec<u32>, usize) {
        let mut total = 0;
        let counts = self
            .buckets
            .iter()
            .enumerate()
            .map(|(bucket, b)| {
                for cell in 0..CELLS {
                    if b.pos[cell] != EMPTY {
                        total += self.displacement(bucket, b.tags[cell]);
                    }
                }
                CELLS as u32 - b.vacant().count_ones()
            })
            .collect();
        (counts, total)
    }
}

/// The positions `find` offers to `eq` for `short` when `eq` accepts none.
fn offered(index: &Index, short: u32) -> Vec<u32> {
    let mut seen = Vec::new();
    let found = index.find(short, |p| {
        seen.push(p);
        false
    });
    assert_eq!(found, None);
    seen.sort_unstable();
    seen
}

#[test]
fn a_bucket_is_one_cache_line() {
    assert_eq!(std::mem::size_of::<Bucket>(), 64);
    assert_eq!(std::mem::align_of::<Bucket>(), 64);
}

#[test]
fn a_new_index_holds_nothing_and_finds_nothing() {
    let mut index = Index::new();
    assert_eq!(index.bytes(), 0);
    assert!(index.is_empty());
    let mut calls = 0;
    assert_eq!(
        index.find(7, |_| {
            calls += 1;
            true
        }),
        None
    );
    assert_eq!(calls, 0);
    assert!(!index.remove(7, 0));
    assert!(!index.repoint(7, 0, 1));
    index.reserve(0);
    assert_eq!(index.bytes(), 0, "reserving nothing allocates nothing");
    index.reserve(1);
    assert_eq!(index.bytes(), 64);
    assert_eq!(index.find(7, |_| true), None, "reserved but empty");
}

/// Random inserts, removes, repoints, finds and clears against a map from
/// position to `short`; `tags` is how many distinct `short`s are drawn from
/// (0: any u32), so a small one makes long runs of equal tags and long
/// chains of full buckets.
fn model(seed: u64, size: usize, tags: u32, ops: usize) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut index = Index::new();
    let mut model: HashMap<u32, u32> = HashMap::new();
    let mut by_short: HashMap<u32, BTreeSet<u32>> = HashMap::new();
    let mut live: Vec<u32> = Vec::new();
    let mut next_pos = 0u32;
    let draw = |rng: &mut StdRng| match (tags, rng.gen_range(0..tags.max(1))) {
        (0, _) => rng.gen::<u32>(),
        // 0 is an empty cell's tag; u32::MAX an empty cell's position.
        (_, 1) => 0,
        (_, k) => u32::MAX - k.wrapping_mul(0x0101_0101),
    };
    for op in 0..ops {
        let r = rng.gen_range(0..100);
        if r < 45 && live.len() < size || live.is_empty() {
            let short = draw(&mut rng);
            index.insert(short, next_pos);
            model.insert(next_pos, short);
            by_short.entry(short).or_default().insert(next_pos);
            live.push(next_pos);
            next_pos += 1;
        } else if r < 70 {
            let pos = live.swap_remove(rng.gen_range(0..live.len()));
            let short = model.remove(&pos).unwrap();
            by_short.get_mut(&short).unwrap().remove(&pos);
            assert!(index.remove(short, pos));
            assert!(!index.remove(short, pos), "removed twice");
        } else if r < 80 {
            let i = rng.gen_range(0..live.len());
            let (from, to) = (live[i], next_pos);
            next_pos += 1;
            let short = model.remove(&from).unwrap();
            assert!(!index.repoint(short.wrapping_add(1), from, to));
            assert!(index.repoint(short, from, to));
            let set = by_short.get_mut(&short).unwrap();
            set.remove(&from);
            set.insert(to);
            model.insert(to, short);
            live[i] = to;
        } else if r < 99 {
            let pos = live[rng.gen_range(0..live.len())];
            let short = model[&pos];
            assert_eq!(index.find(short, |p| p == pos), Some(pos));
            // Any short, present or not: `eq` sees exactly its positions.
            for short in [short, draw(&mut rng)] {
                let want: Vec<u32> = by_short
                    .get(&short)
                    .map_or(Vec::new(), |s| s.iter().copied().collect());
                assert_eq!(offered(&index, short), want);
            }
        } else if rng.gen_range(0..10) == 0 {
            index.clear();
            model.clear();
            by_short.clear();
            live.clear();
            assert_eq!(index.bytes(), 0);
        }
        assert_eq!(index.len(), model.len());
        if op % 97 == 0 {
            index.check();
        }
    }
    index.check();
    for (&pos, &short) in &model {
        assert_eq!(index.find(short, |p| p == pos), Some(pos));
    }
}

#[test]
fn matches_a_hash_map_with_distinct_tags() {
    for (seed, size) in [(1, 8), (2, 100), (3, 1_000), (4, 20_000)] {
        model(seed, size, 0, 40_000);
    }
}

#[test]
fn matches_a_hash_map_with_colliding_tags() {
    // 3 tags: every entry of a tag shares one home, chains of many full
    // buckets. 50: runs of equal tags inside each bucket.
    for (seed, size, tags) in [(5, 300, 3), (6, 2_000, 50), (7, 5_000, 1)] {
        model(seed, size, tags, 20_000);
    }
}

#[test]
fn at_its_growth_threshold_it_finds_everything_and_removes_to_nothing() {
    let mut rng = StdRng::seed_from_u64(8);
    for n in [6, 1_000, 50_000] {
        let mut index = Index::new();
        index.reserve(n);
        let bytes = index.bytes();
        // Fill to the last entry before growth, past what was asked.
        let limit = index.limit;
        let shorts: Vec<u32> = (0..limit).map(|_| rng.gen()).collect();
        for (pos, &short) in shorts.iter().enumerate() {
            index.insert(short, pos as u32);
        }
        assert_eq!(index.bytes(), bytes, "filled to its limit without growing");
        index.check();
        for (pos, &short) in shorts.iter().enumerate() {
            assert_eq!(index.find(short, |p| p == pos as u32), Some(pos as u32));
        }
        let mut order: Vec<usize> = (0..limit).collect();
        for i in (1..order.len()).rev() {
            order.swap(i, rng.gen_range(0..=i));
        }
        for &pos in &order {
            assert!(index.remove(shorts[pos], pos as u32));
        }
        assert!(index.is_empty());
        assert!(
            index.buckets.iter().all(|b| b.vacant().count_ones() == 8),
            "every cell empty again"
        );
        index.check();
    }
}

#[test]
fn removal_leaves_the_shape_of_a_table_that_never_held_the_key() {
    let mut rng = StdRng::seed_from_u64(9);
    let n = 20_000;
    let mut index = Index::new();
    index.reserve(n);
    let shorts: Vec<u32> = (0..n).map(|_| rng.gen()).collect();
    for (pos, &short) in shorts.iter().enumerate() {
        index.insert(short, pos as u32);
    }
    // Churn, as a full cache does: one out, one in.
    let mut live: Vec<(u32, u32)> = shorts
        .iter()
        .enumerate()
        .map(|(p, &s)| (s, p as u32))
        .collect();
    for pos in n as u32..3 * n as u32 {
        let (short, old) = live.swap_remove(rng.gen_range(0..live.len()));
        assert!(index.remove(short, old));
        let short = rng.gen();
        index.insert(short, pos);
        live.push((short, pos));
    }
    index.check();
    let mut fresh = Index::new();
    fresh.reserve(n);
    assert_eq!(fresh.buckets.len(), index.buckets.len());
    for &(short, pos) in &live {
        fresh.insert(short, pos);
    }
    // Per-bucket counts and total displacement depend only on which homes
    // are in the table, not on the order of arrival or on past removals.
    assert_eq!(index.shape(), fresh.shape());
}

#[test]
fn reserve_then_fill_costs_under_eleven_bytes_an_entry() {
    let mut rng = StdRng::seed_from_u64(10);
    for n in [1_000, 125_000, 1_000_000] {
        let mut index = Index::new();
        index.reserve(n);
        let bytes = index.bytes();
        for pos in 0..n as u32 {
            index.insert(rng.gen(), pos);
        }
        assert_eq!(index.bytes(), bytes, "reserve(n) holds n entries");
        let per_entry = bytes as f64 / n as f64;
        assert!(per_entry <= 11.0, "{n} entries: {per_entry} bytes each");
        assert!(per_entry >= 8.0 / 0.80 - 0.1, "{n}: under the load limit?");
    }
}

#[test]
fn growth_without_reserve_keeps_every_entry() {
    let mut index = Index::new();
    let mut grown = 0;
    let mut bytes = 0;
    for pos in 0..10_000u32 {
        index.insert(pos.wrapping_mul(0x2545_F491), pos);
        if index.bytes() != bytes {
            bytes = index.bytes();
            grown += 1;
        }
    }
    index.check();
    assert!(grown > 5, "grew in steps of half, not all at once");
    assert!(bytes < 10_000 * 18, "{bytes} bytes: grew past 1.5x");
    for pos in 0..10_000u32 {
        assert_eq!(
            index.find(pos.wrapping_mul(0x2545_F491), |p| p == pos),
            Some(pos)
        );
    }
}

#[test]
fn clear_frees_and_the_index_works_after() {
    let mut index = Index::new();
    index.reserve(1_000);
    for pos in 0..1_000 {
        index.insert(pos * 7, pos);
    }
    index.clear();
    assert_eq!((index.len(), index.bytes()), (0, 0));
    assert_eq!(index.find(7, |_| true), None);
    index.insert(7, 3);
    assert_eq!(index.find(7, |_| true), Some(3));
}

#[test]
fn repoint_moves_only_the_named_position() {
    let mut index = Index::new();
    for pos in 0..20 {
        index.insert(42, pos);
    }
    assert!(index.repoint(42, 5, 100));
    assert!(!index.repoint(42, 5, 101), "5 is gone");
    assert!(!index.repoint(43, 6, 101), "6 is not under 43");
    let mut want: Vec<u32> = (0..20).filter(|&p| p != 5).chain([100]).collect();
    want.sort_unstable();
    assert_eq!(offered(&index, 42), want);
    index.check();
}

#[test]
fn find_returns_the_first_accepted_in_probe_order() {
    let mut index = Index::new();
    for pos in 0..30 {
        index.insert(9, pos);
    }
    let mut order = Vec::new();
    let found = index.find(9, |p| {
        order.push(p);
        order.len() == 12
    });
    assert_eq!(found, order.last().copied());
    assert_eq!(order.len(), 12, "stopped at the first accepted");
}
