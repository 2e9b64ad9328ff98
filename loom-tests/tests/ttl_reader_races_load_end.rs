//! Model 6: a `TtlCache` reader races the end of a load.
//!
//! One caller misses and loads key K through `get_or_load`; a second caller
//! asks for K once the first one's loader has started, so its lookup, its
//! join and the load's store and flight end interleave every way loom finds.
//! Whatever the order, the second caller must see the cached value, join the
//! load's flight, or (if it missed just before the store and came to the
//! group just after the flight ended) lead a flight whose leader finds the
//! stored value on its re-check: the loaders run once in total, never twice.
//!
//! The cache reads a `ManualClock` that never moves (loom does not model
//! time), and holds one entry in one shard (`max_entries(1)`).

#![cfg(loom)]

mod common;

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use common::{assert_reached, Gate, Tally, KEY};
use loom::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use loom::sync::Arc;
use loom::thread;
use singleflight_sync::{ManualClock, TtlCache};

#[test]
fn reader_races_the_end_of_a_load() {
    // Interleavings in which the second caller: found the value cached;
    // joined the load's flight; led a flight of its own and found the value
    // on the re-check.
    static HIT: Tally = Tally::new(0);
    static JOINED: Tally = Tally::new(0);
    static RECHECKED: Tally = Tally::new(0);

    common::model(|| {
        let cache: Arc<TtlCache<u32, u32>> = Arc::new(
            TtlCache::builder()
                .ttl(Duration::from_secs(60))
                .max_entries(1)
                .clock(ManualClock::new())
                .build()
                .expect("a valid configuration"),
        );
        let runs = Arc::new(AtomicUsize::new(0));
        let loading = Gate::new();

        let reader = {
            let (cache, runs, loading) = (cache.clone(), runs.clone(), loading.clone());
            thread::spawn(move || {
                loading.wait();
                cache.get_or_load(&KEY, || {
                    runs.fetch_add(1, SeqCst);
                    2
                })
            })
        };
        let loaded = cache.get_or_load(&KEY, || {
            runs.fetch_add(1, SeqCst);
            loading.open();
            1
        });
        let read = reader.join().unwrap();

        assert_eq!(loaded, 1, "the first caller did not get its own load");
        assert_eq!(read, 1, "the second caller ran a load of its own");
        assert_eq!(
            runs.load(SeqCst),
            1,
            "the loaders ran {} times",
            runs.load(SeqCst)
        );

        let stats = cache.stats();
        assert_eq!(stats.loads, 1);
        assert_eq!(
            stats.calls, stats.misses,
            "every miss, and only a miss, loads"
        );
        assert_eq!(stats.hits + stats.misses, 2, "{stats:?}");
        let way = match (stats.hits, stats.shared, stats.executions) {
            // It found the stored value and never came to the group.
            (1, 0, 1) => &HIT,
            // It missed, and joined the load's flight.
            (0, 1, 1) => &JOINED,
            // It missed, came to the group after the load's flight ended,
            // and its flight's leader found the value before loading.
            (0, 0, 2) => &RECHECKED,
            _ => panic!("no way the second caller could have gone: {stats:?}"),
        };
        way.fetch_add(1, Relaxed);

        assert_eq!(cache.waiters(&KEY), 0);
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.get(&KEY), Some(1));
    });

    assert_reached(&[
        (&HIT, "the second caller found the value cached"),
        (&JOINED, "the second caller joined the load"),
        (
            &RECHECKED,
            "the second caller's flight found the value on its re-check",
        ),
    ]);
}
