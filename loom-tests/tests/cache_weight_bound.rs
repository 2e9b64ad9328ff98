//! Model 8: the weight bound across two cache shards.
//!
//! A cache of two shards (`max_entries` 128) bounded to a weight of 3 holds
//! key X (weight 2) in one shard. Thread A inserts key Y (weight 2) into the
//! other, empty, shard: it must make room in X's shard. Thread B removes X
//! at the same time. Whichever way they interleave, the weight held never
//! exceeds 3, Y is stored, and when both are done the cache's weight is
//! exactly Y's: A either evicted X itself or found the room B freed, and
//! took Y's weight once (the stress test once caught it taking it twice).
//!
//! Keys are placed by a fixed hasher, so every iteration sees the same
//! shards; a `ManualClock` that never moves.

#![cfg(loom)]

mod common;

use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use common::{assert_reached, Tally};
use loom::sync::Arc;
use loom::thread;
use singleflight_sync::{ManualClock, TtlCache};

type Fixed = BuildHasherDefault<DefaultHasher>;

/// The first two keys from 0 whose hashes pick different shards of two
/// (the cache picks by bit 32 of the hash).
fn keys_in_two_shards() -> (u32, u32) {
    let shard = |k: u32| (Fixed::default().hash_one(k) >> 32) & 1;
    let x = 0;
    let y = (1..).find(|&k| shard(k) != shard(x)).expect("some key lands elsewhere");
    (x, y)
}

#[test]
fn a_new_entry_takes_its_weight_once_whoever_frees_the_room() {
    static EVICTED: Tally = Tally::new(0);
    static REMOVED: Tally = Tally::new(0);

    common::model(|| {
        let (x, y) = keys_in_two_shards();
        let cache: Arc<TtlCache<u32, u32, Fixed>> = Arc::new(
            TtlCache::builder()
                .ttl(Duration::from_secs(60))
                .max_entries(128)
                .weigher(|_, v: &u32| *v)
                .max_weight(3)
                .clock(ManualClock::new())
                .hasher(Fixed::default())
                .build()
                .expect("a valid configuration"),
        );
        cache.insert(x, 2);
        let remover = {
            let cache = cache.clone();
            thread::spawn(move || {
                let removed = cache.remove(&x).is_some();
                assert!(cache.weighted_size() <= 3, "weight {}", cache.weighted_size());
                removed
            })
        };
        cache.insert(y, 2);
        assert!(cache.weighted_size() <= 3, "weight {}", cache.weighted_size());
        assert_eq!(cache.get(&y), Some(2), "insert then get");
        let removed = remover.join().unwrap();
        assert_eq!(cache.get(&x), None);
        assert_eq!(cache.weighted_size(), 2, "Y's weight, taken once");
        assert_eq!(cache.len(), 1);
        if removed {
            REMOVED.fetch_add(1, Relaxed);
        } else {
            EVICTED.fetch_add(1, Relaxed);
        }
    });

    assert_reached(&[
        (&REMOVED, "B removed X before A evicted it"),
        (&EVICTED, "A evicted X (B found nothing to remove)"),
    ]);
}
