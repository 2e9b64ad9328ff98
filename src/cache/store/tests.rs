use super::*;
use crate::sync::Shared;

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
fn the_sweep_skips_until_something_can_have_expired_and_then_finds_it() {
    let mut store: Store<u64, u64> = Store::new(64, false);
    let hash = |k: u64| k.wrapping_mul(0x2545_F491_4F6C_DD1D);
    let put = |store: &mut Store<u64, u64>, k: u64, expires: u64| {
        store.insert_new(
            Slot::new(k, hash(k), Cached::Value(k), expires),
            Extra::default(),
        );
    };
    for k in 0..32 {
        put(&mut store, k, if k % 4 == 0 { 100 } else { 1_000 });
    }
    assert_eq!(store.floor, 100);
    let mut gone = Gone::new();
    store.sweep_expired(99, 0, SWEEP, &mut gone);
    assert_eq!(
        (gone.len(), store.sweep),
        (0, 0),
        "below the floor: nothing read"
    );
    // Past the floor, writes' sweeps find every expired slot, and the
    // floor rises to what is left.
    for _ in 0..64 {
        store.sweep_expired(500, 0, SWEEP, &mut gone);
    }
    assert_eq!(gone.len(), 8);
    assert_eq!(store.len(), 24);
    assert_eq!(store.floor, 1_000);
    // A new, shorter-lived slot lowers it again, and is found.
    put(&mut store, 99, 600);
    assert_eq!(store.floor, 600);
    for _ in 0..64 {
        store.sweep_expired(700, 0, SWEEP, &mut gone);
    }
    assert_eq!(gone.len(), 9);
    assert!(store.find(hash(99), &99).is_none());
}

#[test]
fn a_new_slot_takes_the_victims_place() {
    let mut store: Store<u64, u64> = Store::new(8, false);
    let hash = |k: u64| k.wrapping_mul(0x2545_F491_4F6C_DD1D);
    let slot = |k: u64| Slot::new(k, hash(k), Cached::Value(k), u64::MAX);
    for k in 0..8 {
        store.insert_new(slot(k), Extra::default());
    }
    let mut held: Vec<u64> = (0..8).collect();
    for k in 8..40 {
        let victim = match store.evict_into(INITIAL_WINDOW, slot(k), Extra::default()) {
            Ok(victim) => victim.key,
            Err(_) => panic!("a full shard has a victim"),
        };
        held.retain(|&h| h != victim);
        held.push(k);
        assert_eq!(store.len(), 8);
        assert_eq!(store.policy.lens().iter().sum::<u32>(), 8);
        assert!(store.find(hash(victim), &victim).is_none());
        for &h in &held {
            let pos = store.find(hash(h), &h).expect("still indexed");
            assert_eq!(store.slot(pos).key, h);
        }
    }
    let mut empty: Store<u64, u64> = Store::new(8, false);
    assert!(empty
        .evict_into(INITIAL_WINDOW, slot(1), Extra::default())
        .is_err());
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

#[test]
fn a_shard_that_shrinks_under_the_sweep_still_has_its_expired_slots_found() {
    let mut store: Store<u64, u64> = Store::new(64, false);
    let hash = |k: u64| k.wrapping_mul(0x2545_F491_4F6C_DD1D);
    for k in 0..32 {
        let expires = if k < 8 { 100 } else { 1_000 };
        store.insert_new(
            Slot::new(k, hash(k), Cached::Value(k), expires),
            Extra::default(),
        );
    }
    // A slot that expires soon, taken out: the floor stays low, so the
    // sweep runs before anything has expired.
    store.insert_new(
        Slot::new(99, hash(99), Cached::Value(99), 10),
        Extra::default(),
    );
    let pos = store.find(hash(99), &99).unwrap();
    store.remove(pos);
    let mut gone = Gone::new();
    // Part of a lap: the cursor moves to the middle.
    for _ in 0..5 {
        store.sweep_expired(50, 0, SWEEP, &mut gone);
    }
    assert_eq!(gone.len(), 0);
    assert_eq!(store.sweep, 20);
    // Evictions shrink the shard below the cursor.
    while store.len() > 12 {
        store.evict(INITIAL_WINDOW).expect("a victim");
    }
    let short_lived = (0..8)
        .filter(|&k| store.find(hash(k), &k).is_some())
        .count();
    for _ in 0..64 {
        store.sweep_expired(500, 0, SWEEP, &mut gone);
    }
    assert_eq!(gone.len(), short_lived, "every expired slot left");
    assert!(store.slots().iter().all(|s| s.expires == 1_000));
    assert_eq!(store.floor, 1_000);
}

#[test]
fn a_slab_grows_to_its_share_then_by_the_spread_of_shards_then_by_an_eighth() {
    let share = 10_000;
    let mut store: Store<u64, u64> = Store::new(share, false);
    let hash = |k: u64| k.wrapping_mul(0x2545_F491_4F6C_DD1D);
    let mut capacities = Vec::new();
    for k in 0..12_000u64 {
        store.insert_new(
            Slot::new(k, hash(k), Cached::Value(k), u64::MAX),
            Extra::default(),
        );
        let c = store.slots.capacity();
        assert_eq!(store.links.capacity(), c, "the links grow with the slots");
        if capacities.last() != Some(&c) {
            capacities.push(c);
        }
    }
    // Doubling until past half the share (8,192), then the share, then
    // 4 * sqrt(share) past it (400), then an eighth of what it holds.
    let past: Vec<usize> = capacities
        .iter()
        .copied()
        .filter(|&c| c > share / 2)
        .collect();
    assert_eq!(past, [8_192, share, share + 400, 11_700, 11_700 + 1_462]);
    assert!(capacities.windows(2).all(|w| w[1] > w[0]));
}
