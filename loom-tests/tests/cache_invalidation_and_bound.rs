//! Model 7: the cache's per-key invalidation and its exact bound.
//!
//! - An `invalidate` of K that starts while K's loader runs wins, whichever
//!   way it interleaves with the load's store: afterwards K is not cached
//!   (the load's value stayed out, or was removed).
//! - An `invalidate` of another key, in the same shard, never discards K's
//!   load.
//! - Two inserts of new keys into a cache of one entry: `len()` never
//!   exceeds 1, seen from either thread, and exactly one key is kept.
//!
//! One cache shard (`max_entries` under 128), a `ManualClock` that never
//! moves (loom does not model time).

#![cfg(loom)]

mod common;

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use common::{assert_reached, Gate, Tally, KEY};
use loom::sync::Arc;
use loom::thread;
use singleflight_sync::{ManualClock, TtlCache};

fn cache(max: usize) -> Arc<TtlCache<u32, u32>> {
    Arc::new(
        TtlCache::builder()
            .ttl(Duration::from_secs(60))
            .max_entries(max)
            .clock(ManualClock::new())
            .build()
            .expect("a valid configuration"),
    )
}

/// Loads `KEY` while another thread, once the loader has started, runs
/// `during`; returns what `during` returned.
fn during_the_load<T: Send + 'static>(
    cache: &Arc<TtlCache<u32, u32>>,
    during: impl FnOnce(&TtlCache<u32, u32>) -> T + Send + 'static,
) -> T {
    let loading = Gate::new();
    let other = {
        let (cache, loading) = (cache.clone(), loading.clone());
        thread::spawn(move || {
            loading.wait();
            during(&cache)
        })
    };
    let loaded = cache.get_or_load(&KEY, || {
        loading.open();
        1
    });
    assert_eq!(loaded, 1, "the loader's caller gets its value");
    other.join().unwrap()
}

#[test]
fn an_invalidate_during_the_load_wins() {
    // Interleavings in which the invalidate: found the stored value and
    // removed it; came before the store, which then stayed out.
    static REMOVED: Tally = Tally::new(0);
    static KEPT_OUT: Tally = Tally::new(0);

    common::model(|| {
        let cache = cache(4);
        let removed = during_the_load(&cache, |cache| cache.invalidate(&KEY));
        assert_eq!(cache.get(&KEY), None, "a load overtaken by invalidate was cached");
        assert_eq!(cache.len(), 0);
        assert_eq!(cache.stats().loads, 1);
        if removed {
            REMOVED.fetch_add(1, Relaxed);
        } else {
            KEPT_OUT.fetch_add(1, Relaxed);
        }
    });

    assert_reached(&[
        (&REMOVED, "the invalidate removed the stored value"),
        (&KEPT_OUT, "the invalidate kept the load's value out"),
    ]);
}

#[test]
fn an_invalidate_of_another_key_keeps_the_load() {
    common::model(|| {
        let cache = cache(4);
        let removed = during_the_load(&cache, |cache| cache.invalidate(&(KEY + 1)));
        assert!(!removed, "the other key was never cached");
        assert_eq!(cache.get(&KEY), Some(1), "another key's invalidate discarded the load");
        assert_eq!(cache.len(), 1);
    });
}

#[test]
fn two_new_keys_never_exceed_a_bound_of_one() {
    common::model(|| {
        let cache = cache(1);
        let other = {
            let cache = cache.clone();
            thread::spawn(move || {
                cache.insert(KEY + 1, 2);
                assert!(cache.len() <= 1, "len {} over the bound", cache.len());
            })
        };
        cache.insert(KEY, 1);
        assert!(cache.len() <= 1, "len {} over the bound", cache.len());
        other.join().unwrap();
        assert_eq!(cache.len(), 1);
        let kept = [cache.get(&KEY), cache.get(&(KEY + 1))];
        assert_eq!(kept.iter().flatten().count(), 1, "{kept:?}");
    });
}
