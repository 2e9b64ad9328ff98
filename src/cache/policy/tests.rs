//! The policy's unit tests, driven through a bare arena of nodes.

use super::*;

/// Entries as bare nodes with their hash and reference bit.
struct Arena(Vec<(Node, u64, bool)>);
impl Nodes for Arena {
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

fn hash(key: u64) -> u64 {
    key.wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// Runs `keys` through a policy of `capacity`, returning the hits.
fn replay(capacity: usize, keys: impl Iterator<Item = u64>) -> usize {
    let mut policy = Policy::new(capacity);
    let mut arena = Arena(Vec::new());
    let mut index = std::collections::HashMap::new();
    let mut keys_of = Vec::new();
    let mut hits = 0;
    for key in keys {
        if let Some(&i) = index.get(&key) {
            hits += 1;
            policy.hit(&mut arena, i);
            continue;
        }
        policy.record(hash(key));
        let i = if index.len() < capacity {
            arena.0.push((Node::default(), hash(key), false));
            keys_of.push(key);
            arena.0.len() as u32 - 1
        } else {
            let gone = policy
                .evict(&mut arena)
                .expect("a full policy has a victim");
            index.remove(&keys_of[gone as usize]);
            keys_of[gone as usize] = key;
            arena.0[gone as usize].1 = hash(key);
            gone
        };
        index.insert(key, i);
        policy.insert(&mut arena, i);
        let lens = policy.lens();
        assert_eq!(lens.iter().sum::<u32>() as usize, index.len());
    }
    hits
}

/// A policy of four entries, 0 to 3 in the window, 0 hit ten times.
fn four_with_a_hit(window: f64) -> (Policy, Arena) {
    let mut policy = Policy::new(4);
    policy.set_window(window);
    let mut arena = Arena((0..4).map(|k| (Node::default(), hash(k), false)).collect());
    for i in 0..4 {
        policy.insert(&mut arena, i);
    }
    for _ in 0..10 {
        policy.hit(&mut arena, 0);
    }
    assert_eq!(policy.sketch.frequency(hash(0)), 0, "hits write no count");
    (policy, arena)
}

#[test]
fn a_hit_sets_only_its_bit_and_the_hand_counts_the_lap() {
    // A small window (one entry of four): entry 0, used while in it,
    // moves on to probation with its bit without a duel, and is
    // promoted to protected there; each hand that passed it counted.
    let (mut policy, mut arena) = four_with_a_hit(INITIAL_WINDOW);
    let gone = policy
        .evict(&mut arena)
        .expect("a full policy has a victim");
    assert_ne!(gone, 0);
    assert_eq!(arena.0[0].0.region(), Region::Protected);
    assert!(!arena.0[0].2);
    assert_eq!(policy.sketch.frequency(hash(0)), 2);
}

#[test]
fn a_large_window_gives_its_used_entries_a_second_chance() {
    // Three of four entries: the window is the cache's LRU, and keeps
    // entry 0 (moved to its tail, one lap counted).
    let (mut policy, mut arena) = four_with_a_hit(1.0);
    let gone = policy
        .evict(&mut arena)
        .expect("a full policy has a victim");
    assert_ne!(gone, 0);
    assert_eq!(arena.0[0].0.region(), Region::Window);
    assert!(!arena.0[0].2);
    assert_eq!(policy.sketch.frequency(hash(0)), 1);
}

#[test]
fn a_working_set_that_fits_is_all_hits_after_the_first_pass() {
    let hits = replay(100, (0..5).flat_map(|_| 0..100u64));
    assert_eq!(hits, 400);
}

#[test]
fn a_loop_larger_than_the_cache_keeps_a_fixed_part_of_it() {
    // LRU gets no hit at all here; frequency admission keeps most of a
    // capacity's worth of the loop resident.
    let hits = replay(100, (0..50).flat_map(|_| 0..150u64));
    assert!(hits > 50 * 50, "{hits}");
}

#[test]
fn every_entry_is_in_exactly_one_queue() {
    let mut policy = Policy::new(10);
    let mut arena = Arena((0..10).map(|k| (Node::default(), hash(k), false)).collect());
    for i in 0..10 {
        policy.insert(&mut arena, i);
    }
    for _ in 0..5 {
        let gone = policy.evict(&mut arena).unwrap();
        policy.insert(&mut arena, gone);
    }
    assert_eq!(policy.lens().iter().sum::<u32>(), 10);
    policy.remove(&mut arena, 3);
    assert_eq!(policy.lens().iter().sum::<u32>(), 9);
    // 1% of 10 entries rounds to an empty window.
    assert_eq!(policy.window_max(), 0);
}

#[test]
fn a_one_entry_policy_evicts_its_only_entry() {
    let mut policy = Policy::new(1);
    let mut arena = Arena(vec![(Node::default(), hash(1), false)]);
    policy.insert(&mut arena, 0);
    assert_eq!(policy.evict(&mut arena), Some(0));
    assert_eq!(policy.evict(&mut arena), None);
}
