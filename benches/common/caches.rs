//! The cache workloads, shared by `benches/ttl.rs` (the library's own
//! `TtlCache` figures) and `benches-peers/benches/ttl.rs` (the same
//! workloads on `TtlCache`, moka and quick_cache in one run). Each cache is
//! called through [`Peer`], so both benches time the same work:
//!
//! - `hit/one_thread`, `hit/two_threads`: lookups of 10,000 cached `u64`
//!   keys in turn (two threads: aggregate time per hit);
//! - `miss_and_load`: a fresh key each call, loaded into a full cache;
//! - `hit_ratio` (printed before criterion starts, not timed): a Zipf(0.99)
//!   trace of 1,000,000 requests over 100,000 keys replayed through each
//!   cache at two capacities.
//!
//! Benchmarks that involve threads keep their threads alive across samples
//! and time themselves with `iter_custom`, so no figure includes a thread
//! spawn.
#![allow(dead_code)] // each bench uses its own subset

use std::hash::BuildHasher;
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use criterion::Criterion;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use singleflight_sync::TtlCache;

#[path = "pair.rs"]
pub mod pair_harness;
use pair_harness::Pair;

/// Long enough that nothing expires during a benchmark.
pub const LONG_TTL: Duration = Duration::from_secs(3600);

/// Loader calls where a hit was expected; checked after the hit benchmarks.
pub static UNEXPECTED_LOADS: AtomicU64 = AtomicU64::new(0);

/// What a cache's hit path returns when the key was missing after all:
/// counted, so [`no_unexpected_loads`] fails the run.
pub fn unexpected_load(key: u64) -> u64 {
    UNEXPECTED_LOADS.fetch_add(1, Ordering::Relaxed);
    key
}

/// One cache under test, called the way a service would call it.
pub trait Peer: Send + Sync + 'static {
    /// A lookup of a key known to be cached.
    fn hit(&self, key: u64) -> u64;
    /// A lookup that loads `key` (whose value is the key) if it is missing.
    fn load(&self, key: u64) -> u64;
    fn entries(&self) -> u64;
}

impl<S: BuildHasher + Send + Sync + 'static> Peer for TtlCache<u64, u64, S> {
    #[inline]
    fn hit(&self, key: u64) -> u64 {
        self.get_or_load(&key, || unexpected_load(key))
    }

    #[inline]
    fn load(&self, key: u64) -> u64 {
        self.get_or_load(&key, || key)
    }

    fn entries(&self) -> u64 {
        self.len() as u64
    }
}

/// Every bench's criterion settings.
pub fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50)
}

pub type Bench<'a> = criterion::BenchmarkGroup<'a, criterion::measurement::WallTime>;

// ---------------------------------------------------------------------------
// 1, 2. Hits: 10,000 cached keys, looked up in turn.

pub const HIT_KEYS: u64 = 10_000;
/// Every cache's bound in the hit benchmarks: ten times the keys, so no
/// cache evicts any of them.
pub const HIT_CAPACITY: u64 = 100_000;

pub fn ours_preloaded() -> TtlCache<u64, u64> {
    let cache = TtlCache::builder()
        .ttl(LONG_TTL)
        .max_entries(HIT_CAPACITY as usize)
        .build()
        .expect("a valid configuration");
    (0..HIT_KEYS).for_each(|k| cache.insert(k, k));
    cache
}

/// Checks that a preloaded cache holds every key, so a "hit" benchmark
/// measures hits.
pub fn all_cached<C: Peer>(name: &str, cache: C) -> C {
    let before = UNEXPECTED_LOADS.load(Ordering::Relaxed);
    (0..HIT_KEYS).for_each(|k| assert_eq!(cache.hit(k), k));
    assert_eq!(
        UNEXPECTED_LOADS.load(Ordering::Relaxed),
        before,
        "{name}: a preloaded key was missing"
    );
    cache
}

/// Adds `name` to a `hit/one_thread` group.
pub fn hit_one_thread<C: Peer>(bench: &mut Bench<'_>, name: &str, make: fn() -> C) {
    // Made when criterion runs the benchmark, not when a filter skips it.
    let mut cache = None;
    let mut next = 0u64;
    bench.bench_function(name, |b| {
        let cache = cache.get_or_insert_with(|| all_cached(name, make()));
        b.iter(|| {
            next += 1;
            if next == HIT_KEYS {
                next = 0;
            }
            cache.hit(black_box(next))
        })
    });
}

/// The two workers of `hit/two_threads`: they walk the same keys half a lap
/// apart, so they share the cache (and its locks), never a key at once.
fn pair<C: Peer>(cache: C) -> Pair {
    let cache = Arc::new(cache);
    Pair::new([0u64, 1].map(|me| {
        let cache = Arc::clone(&cache);
        let mut next = me * HIT_KEYS / 2;
        move |n: u64| {
            for _ in 0..n {
                next += 1;
                if next == HIT_KEYS {
                    next = 0;
                }
                black_box(cache.hit(black_box(next)));
            }
        }
    }))
}

/// Adds `name` to a `hit/two_threads` group.
pub fn hit_two_threads<C: Peer>(bench: &mut Bench<'_>, name: &str, make: fn() -> C) {
    let mut pair = None;
    bench.bench_function(name, |b| {
        let pair = pair.get_or_insert_with(|| self::pair(all_cached(name, make())));
        b.iter_custom(|iters| pair.run(iters))
    });
}

/// Fails the run if any hit benchmark's lookup missed.
pub fn no_unexpected_loads() {
    let unexpected = UNEXPECTED_LOADS.load(Ordering::Relaxed);
    assert_eq!(unexpected, 0, "hit benchmarks: {unexpected} lookups missed");
}

// ---------------------------------------------------------------------------
// 3. Misses: a fresh key each call, loaded and stored in a full cache.

pub const MISS_CAPACITY: u64 = 100_000;

/// Adds `name` to a `miss_and_load` group. Returns the entries held
/// afterwards, if criterion ran the benchmark.
pub fn miss_and_load<C: Peer>(bench: &mut Bench<'_>, name: &str, make: fn() -> C) -> Option<u64> {
    let mut cache = None;
    let mut next = MISS_CAPACITY;
    bench.bench_function(name, |b| {
        let cache = cache.get_or_insert_with(|| {
            // Full before the clock starts, so every sample pays for an
            // eviction (or a rejection), and memory stays flat.
            let cache = make();
            (0..MISS_CAPACITY).for_each(|k| {
                cache.load(k);
            });
            cache
        });
        b.iter(|| {
            next += 1;
            cache.load(black_box(next))
        })
    });
    cache.map(|c| c.entries())
}

pub fn ours_for_misses() -> TtlCache<u64, u64> {
    TtlCache::<u64, u64>::builder()
        .ttl(LONG_TTL)
        .max_entries(MISS_CAPACITY as usize)
        .build()
        .expect("a valid configuration")
}

/// Prints how many entries each cache held after `miss_and_load`, if any
/// of them ran.
pub fn print_entries_afterwards(held: &[(&str, Option<u64>)]) {
    if held.iter().all(|(_, n)| n.is_none()) {
        return;
    }
    let held: Vec<String> = held
        .iter()
        .map(|(name, n)| format!("{name} {}", n.map_or("-".to_string(), |n| n.to_string())))
        .collect();
    println!(
        "miss_and_load: entries afterwards (bound {MISS_CAPACITY}): {}",
        held.join(", ")
    );
}

// ---------------------------------------------------------------------------
// 4. Hit ratio on a skewed trace (printed, not timed).

pub const TRACE_KEYS: usize = 100_000;
pub const TRACE_LEN: usize = 1_000_000;
pub const ZIPF_S: f64 = 0.99;
pub const SEED: u64 = 0x5EED_CAC4E;
pub const CAPACITIES: [usize; 2] = [1_000, 10_000];

/// Zipf(`s`) over ranks 1..=`n`, sampled by inverting its CDF (exact, and
/// fast enough for a million draws). Rank r becomes key r - 1.
pub struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    pub fn new(n: usize, s: f64) -> Self {
        let mut total = 0.0;
        let cdf = (1..=n)
            .map(|r| {
                total += (r as f64).powf(-s);
                total
            })
            .collect();
        Zipf { cdf }
    }

    pub fn sample(&self, rng: &mut StdRng) -> u64 {
        let u = rng.gen::<f64>() * self.cdf[self.cdf.len() - 1];
        self.cdf
            .partition_point(|&c| c <= u)
            .min(self.cdf.len() - 1) as u64
    }

    /// The share of requests that go to the `k` most popular keys: the hit
    /// ratio of a cache of `k` entries that always held exactly those.
    pub fn top_share(&self, k: usize) -> f64 {
        self.cdf[k - 1] / self.cdf[self.cdf.len() - 1]
    }
}

/// Replays a trace through one cache of `capacity` entries; returns its hit
/// ratio.
pub type Replay = fn(&[u64], usize) -> f64;

pub fn replay_ours(trace: &[u64], capacity: usize) -> f64 {
    let cache: TtlCache<u64, u64> = TtlCache::builder()
        .ttl(LONG_TTL)
        .max_entries(capacity)
        .build()
        .expect("a valid configuration");
    let mut misses = 0u64;
    for &k in trace {
        cache.get_or_load(&k, || {
            misses += 1;
            k
        });
    }
    1.0 - misses as f64 / trace.len() as f64
}

/// Replays the Zipf trace through each `(name, replay)` at each capacity
/// and prints one row per capacity, beside the best possible ratio.
pub fn print_hit_ratio(caches: &[(&str, Replay)]) {
    let zipf = Zipf::new(TRACE_KEYS, ZIPF_S);
    let mut rng = StdRng::seed_from_u64(SEED);
    let trace: Vec<u64> = (0..TRACE_LEN).map(|_| zipf.sample(&mut rng)).collect();
    println!(
        "hit_ratio: Zipf({ZIPF_S}) trace, {TRACE_LEN} requests over {TRACE_KEYS} keys \
         (StdRng seed {SEED:#x}); cold start included"
    );
    let names: String = caches
        .iter()
        .map(|(name, _)| format!(" | {name:>11}"))
        .collect();
    println!("hit_ratio: capacity{names} | top-N share");
    for capacity in CAPACITIES {
        let ratios: String = caches
            .iter()
            .map(|(_, replay)| format!(" | {:>10.2}%", replay(&trace, capacity) * 100.0))
            .collect();
        println!(
            "hit_ratio: {capacity:>8}{ratios} | {:>10.2}%",
            zipf.top_share(capacity) * 100.0
        );
    }
    println!(
        "hit_ratio: \"top-N share\": the requests for the capacity's most popular keys, \
         the ratio of a cache that always held exactly those"
    );
}

// ---------------------------------------------------------------------------

/// Criterion's FILTER arguments: what `cargo bench --bench ttl -- <filter>`
/// passed, without the flags and the values of the flags that take one.
fn filters() -> Vec<String> {
    const VALUED: &[&str] = &[
        "--color",
        "-c",
        "--save-baseline",
        "-s",
        "--baseline",
        "-b",
        "--baseline-lenient",
        "--load-baseline",
        "--sample-size",
        "--warm-up-time",
        "--measurement-time",
        "--nresamples",
        "--noise-threshold",
        "--confidence-level",
        "--significance-level",
        "--profile-time",
        "--output-format",
        "--plotting-backend",
        "--format",
    ];
    let args: Vec<String> = std::env::args().skip(1).collect();
    args.iter()
        .enumerate()
        .filter(|&(i, a)| {
            !a.starts_with('-') && (i == 0 || !VALUED.contains(&args[i - 1].as_str()))
        })
        .map(|(_, a)| a.clone())
        .collect()
}

/// Whether to print the figure `name` before criterion starts: only under
/// `cargo bench` (which passes `--bench`; `cargo test --benches` does not,
/// and then only criterion's one-pass check of each benchmark runs), and
/// only if a filter, when given, is part of `name`.
pub fn print_wanted(name: &str) -> bool {
    let benching = std::env::args().any(|a| a == "--bench");
    let filters = filters();
    benching && (filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str())))
}
