//! The `TtlCache` rows of the Performance table in DESIGN.md, measured
//! against moka's and quick_cache's sync caches in the same run: the
//! workloads of the library's `benches/ttl.rs` (`benches/common/caches.rs`,
//! included here), each on all three caches.
//!
//! `cargo bench -p singleflight-benches-peers` takes about a minute and a
//! half on two cores (plus the build). Criterion times:
//!
//! - `hit/one_thread`, `hit/two_threads`: lookups of 10,000 cached `u64`
//!   keys in turn (two threads: aggregate time per hit). All three hash with
//!   their defaults: foldhash for ours and quick_cache, SipHash-1-3 for moka
//!   (the library's bench shows ours with a cheaper hasher still);
//! - `miss_and_load`: a fresh key each call, loaded into a full cache.
//!
//! Printed before criterion starts, not timed: `hit_ratio`, a Zipf(0.99)
//! trace of 1,000,000 requests over 100,000 keys replayed through each cache
//! at two capacities. A filter (`-- hit/`) skips it unless its name
//! contains the filter.
//!
//! Each cache is called through its own loading API: `TtlCache::get_or_load`,
//! moka's `get_with`, quick_cache's `get_or_insert_with`. The figures are
//! only as quiet as the machine: check the load before trusting a run.

use std::convert::Infallible;

use criterion::{criterion_group, Criterion};

#[path = "../../benches/common/caches.rs"]
mod caches;
use caches::{HIT_CAPACITY, HIT_KEYS, MISS_CAPACITY};

#[path = "common/peers.rs"]
mod peers;
use peers::{Moka, Quick};

// ---------------------------------------------------------------------------
// 1, 2, 3. Hits and misses.

fn moka_preloaded() -> Moka {
    let cache = Moka::new(HIT_CAPACITY);
    (0..HIT_KEYS).for_each(|k| cache.insert(k, k));
    cache.run_pending_tasks();
    cache
}

fn quick_preloaded() -> Quick {
    let cache = Quick::new(HIT_CAPACITY as usize);
    (0..HIT_KEYS).for_each(|k| cache.insert(k, k));
    cache
}

fn hit_one_thread(c: &mut Criterion) {
    let mut bench = c.benchmark_group("hit/one_thread");
    caches::hit_one_thread(&mut bench, "ours", caches::ours_preloaded);
    caches::hit_one_thread(&mut bench, "moka", moka_preloaded);
    caches::hit_one_thread(&mut bench, "quick_cache", quick_preloaded);
    bench.finish();
}

fn hit_two_threads(c: &mut Criterion) {
    let mut bench = c.benchmark_group("hit/two_threads");
    caches::hit_two_threads(&mut bench, "ours", caches::ours_preloaded);
    caches::hit_two_threads(&mut bench, "moka", moka_preloaded);
    caches::hit_two_threads(&mut bench, "quick_cache", quick_preloaded);
    bench.finish();
    caches::no_unexpected_loads();
}

fn miss_and_load(c: &mut Criterion) {
    let mut bench = c.benchmark_group("miss_and_load");
    let ours = caches::miss_and_load(&mut bench, "ours", caches::ours_for_misses);
    let moka = caches::miss_and_load(&mut bench, "moka", || Moka::new(MISS_CAPACITY));
    let quick = caches::miss_and_load(&mut bench, "quick_cache", || {
        Quick::new(MISS_CAPACITY as usize)
    });
    bench.finish();
    caches::print_entries_afterwards(&[("ours", ours), ("moka", moka), ("quick_cache", quick)]);
}

// ---------------------------------------------------------------------------
// 4. Hit ratio on a skewed trace (printed, not timed).

/// How often moka is told to apply its buffered reads and writes during a
/// replay (it also does so by itself when 64 are buffered): frequent enough
/// that it never holds much more than its capacity.
const MOKA_MAINTENANCE_EVERY: usize = 64;

fn replay_moka(trace: &[u64], capacity: usize) -> f64 {
    let cache = Moka::new(capacity as u64);
    let mut misses = 0u64;
    for (i, &k) in trace.iter().enumerate() {
        cache.get_with(k, || {
            misses += 1;
            k
        });
        if i % MOKA_MAINTENANCE_EVERY == 0 {
            cache.run_pending_tasks();
        }
    }
    1.0 - misses as f64 / trace.len() as f64
}

fn replay_quick(trace: &[u64], capacity: usize) -> f64 {
    let cache = Quick::new(capacity);
    let mut misses = 0u64;
    for &k in trace {
        let _ = cache.get_or_insert_with(&k, || {
            misses += 1;
            Ok::<_, Infallible>(k)
        });
    }
    1.0 - misses as f64 / trace.len() as f64
}

// ---------------------------------------------------------------------------

criterion_group! {
    name = benches;
    config = caches::config();
    targets = hit_one_thread, hit_two_threads, miss_and_load
}

fn main() {
    if caches::print_wanted("hit_ratio") {
        caches::print_hit_ratio(&[
            ("ours", caches::replay_ours),
            ("moka", replay_moka),
            ("quick_cache", replay_quick),
        ]);
        println!(
            "hit_ratio: moka is told to run its pending tasks every \
             {MOKA_MAINTENANCE_EVERY} requests"
        );
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
