//! The `TtlCache` rows of the Performance table in DESIGN.md, measured
//! against moka's and quick_cache's sync caches in the same run.
//!
//! `cargo bench --bench ttl` takes about a minute and a half on two cores
//! (plus the build). Criterion times:
//!
//! - `hit/one_thread`, `hit/two_threads`: lookups of 10,000 cached `u64`
//!   keys in turn (two threads: aggregate time per hit). `ours_fast_hash` is
//!   `TtlCache` with a cheap hasher instead of the default SipHash, to show
//!   what hashing costs (moka hashes with SipHash too, quick_cache with
//!   foldhash);
//! - `miss_and_load`: a fresh key each call, loaded into a full cache.
//!
//! Two figures are not timings and are printed before criterion starts:
//!
//! - `hit_ratio`: a Zipf(0.99) trace of 1,000,000 requests over 100,000 keys
//!   replayed through each cache at two capacities;
//! - `expiry_boundary`: read latencies on one hot key whose entry keeps
//!   expiring, without and with `refresh_after`.
//!
//! A filter (`cargo bench --bench ttl -- hit/`; criterion takes one) skips a
//! printed figure whose name does not contain it. Benchmarks that involve
//! threads keep their threads alive across samples and time themselves with
//! `iter_custom`, so no figure includes a thread spawn. The figures are only
//! as quiet as the machine: check the load before trusting a run.

use std::convert::Infallible;
use std::hash::{BuildHasher, Hasher};
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use criterion::{criterion_group, Criterion};

#[path = "common/pair.rs"]
mod pair_harness;
use pair_harness::Pair;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use singleflight_sync::TtlCache;

type Moka = moka::sync::Cache<u64, u64>;
type Quick = quick_cache::sync::Cache<u64, u64>;

/// Long enough that nothing expires during a benchmark.
const LONG_TTL: Duration = Duration::from_secs(3600);

/// Loader calls where a hit was expected; checked after the hit benchmarks.
static UNEXPECTED_LOADS: AtomicU64 = AtomicU64::new(0);

/// A `TtlCache` with a cheap hasher (a murmur3 finaliser), to show how much
/// of a hit the default `RandomState` (SipHash-1-3) costs. moka also hashes
/// with `RandomState`; quick_cache uses foldhash.
#[derive(Clone, Copy, Debug, Default)]
struct Mix;

#[derive(Default)]
struct MixHasher(u64);

impl Hasher for MixHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01B3);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 ^= n;
    }

    fn finish(&self) -> u64 {
        let mut x = self.0;
        x ^= x >> 33;
        x = x.wrapping_mul(0xFF51_AFD7_ED55_8CCD);
        x ^= x >> 33;
        x = x.wrapping_mul(0xC4CE_B9FE_1A85_EC53);
        x ^ (x >> 33)
    }
}

impl BuildHasher for Mix {
    type Hasher = MixHasher;

    fn build_hasher(&self) -> MixHasher {
        MixHasher::default()
    }
}

/// One cache under test, called the way a service would call it.
trait Peer: Send + Sync + 'static {
    /// A lookup of a key known to be cached.
    fn hit(&self, key: u64) -> u64;
    /// A lookup that loads `key` (whose value is the key) if it is missing.
    fn load(&self, key: u64) -> u64;
    fn entries(&self) -> u64;
}

impl<S: BuildHasher + Send + Sync + 'static> Peer for TtlCache<u64, u64, S> {
    #[inline]
    fn hit(&self, key: u64) -> u64 {
        self.get_or_load(&key, || {
            UNEXPECTED_LOADS.fetch_add(1, Ordering::Relaxed);
            key
        })
    }

    #[inline]
    fn load(&self, key: u64) -> u64 {
        self.get_or_load(&key, || key)
    }

    fn entries(&self) -> u64 {
        self.len() as u64
    }
}

impl Peer for Moka {
    #[inline]
    fn hit(&self, key: u64) -> u64 {
        self.get(&key).unwrap_or_else(|| {
            UNEXPECTED_LOADS.fetch_add(1, Ordering::Relaxed);
            key
        })
    }

    #[inline]
    fn load(&self, key: u64) -> u64 {
        self.get_with(key, || key)
    }

    fn entries(&self) -> u64 {
        self.run_pending_tasks();
        self.entry_count()
    }
}

impl Peer for Quick {
    #[inline]
    fn hit(&self, key: u64) -> u64 {
        self.get(&key).unwrap_or_else(|| {
            UNEXPECTED_LOADS.fetch_add(1, Ordering::Relaxed);
            key
        })
    }

    #[inline]
    fn load(&self, key: u64) -> u64 {
        match self.get_or_insert_with(&key, || Ok::<_, Infallible>(key)) {
            Ok(v) => v,
            Err(never) => match never {},
        }
    }

    fn entries(&self) -> u64 {
        self.len() as u64
    }
}

// ---------------------------------------------------------------------------
// 1, 2. Hits: 10,000 cached keys, looked up in turn.

const HIT_KEYS: u64 = 10_000;
/// Every cache's bound in the hit benchmarks: ten times the keys, so no
/// cache evicts any of them.
const HIT_CAPACITY: u64 = 100_000;

fn ours_preloaded() -> TtlCache<u64, u64> {
    let cache = TtlCache::builder()
        .ttl(LONG_TTL)
        .max_entries(HIT_CAPACITY as usize)
        .build()
        .expect("a valid configuration");
    (0..HIT_KEYS).for_each(|k| cache.insert(k, k));
    cache
}

fn ours_fast_hash_preloaded() -> TtlCache<u64, u64, Mix> {
    let cache = TtlCache::builder()
        .ttl(LONG_TTL)
        .max_entries(HIT_CAPACITY as usize)
        .hasher(Mix)
        .build()
        .expect("a valid configuration");
    (0..HIT_KEYS).for_each(|k| cache.insert(k, k));
    cache
}

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

/// Checks that a preloaded cache holds every key, so a "hit" benchmark
/// measures hits.
fn all_cached<C: Peer>(name: &str, cache: C) -> C {
    let before = UNEXPECTED_LOADS.load(Ordering::Relaxed);
    (0..HIT_KEYS).for_each(|k| assert_eq!(cache.hit(k), k));
    assert_eq!(
        UNEXPECTED_LOADS.load(Ordering::Relaxed),
        before,
        "{name}: a preloaded key was missing"
    );
    cache
}

type Bench<'a> = criterion::BenchmarkGroup<'a, criterion::measurement::WallTime>;

fn hit_one_thread(c: &mut Criterion) {
    let mut bench = c.benchmark_group("hit/one_thread");
    fn run<C: Peer>(bench: &mut Bench<'_>, name: &str, make: fn() -> C) {
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
    run(&mut bench, "ours", ours_preloaded);
    run(&mut bench, "ours_fast_hash", ours_fast_hash_preloaded);
    run(&mut bench, "moka", moka_preloaded);
    run(&mut bench, "quick_cache", quick_preloaded);
    bench.finish();
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

fn hit_two_threads(c: &mut Criterion) {
    let mut bench = c.benchmark_group("hit/two_threads");
    fn run<C: Peer>(bench: &mut Bench<'_>, name: &str, make: fn() -> C) {
        let mut pair = None;
        bench.bench_function(name, |b| {
            let pair = pair.get_or_insert_with(|| self::pair(all_cached(name, make())));
            b.iter_custom(|iters| pair.run(iters))
        });
    }
    run(&mut bench, "ours", ours_preloaded);
    run(&mut bench, "ours_fast_hash", ours_fast_hash_preloaded);
    run(&mut bench, "moka", moka_preloaded);
    run(&mut bench, "quick_cache", quick_preloaded);
    bench.finish();

    let unexpected = UNEXPECTED_LOADS.load(Ordering::Relaxed);
    assert_eq!(unexpected, 0, "hit benchmarks: {unexpected} lookups missed");
}

// ---------------------------------------------------------------------------
// 3. Misses: a fresh key each call, loaded and stored in a full cache.

const MISS_CAPACITY: u64 = 100_000;

fn miss_and_load(c: &mut Criterion) {
    let mut bench = c.benchmark_group("miss_and_load");
    /// Returns the entries held afterwards, if criterion ran the benchmark.
    fn run<C: Peer>(bench: &mut Bench<'_>, name: &str, make: fn() -> C) -> Option<u64> {
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
    let ours = run(&mut bench, "ours", || {
        TtlCache::<u64, u64>::builder()
            .ttl(LONG_TTL)
            .max_entries(MISS_CAPACITY as usize)
            .build()
            .expect("a valid configuration")
    });
    let moka = run(&mut bench, "moka", || Moka::new(MISS_CAPACITY));
    let quick = run(&mut bench, "quick_cache", || {
        Quick::new(MISS_CAPACITY as usize)
    });
    bench.finish();
    if ours.is_none() && moka.is_none() && quick.is_none() {
        return;
    }
    let show = |n: Option<u64>| n.map_or("-".to_string(), |n| n.to_string());
    println!(
        "miss_and_load: entries afterwards (bound {MISS_CAPACITY}): \
         ours {}, moka {}, quick_cache {}",
        show(ours),
        show(moka),
        show(quick)
    );
}

// ---------------------------------------------------------------------------
// 4. Hit ratio on a skewed trace (printed, not timed).

const TRACE_KEYS: usize = 100_000;
const TRACE_LEN: usize = 1_000_000;
const ZIPF_S: f64 = 0.99;
const SEED: u64 = 0x5EED_CAC4E;

/// Zipf(`s`) over ranks 1..=`n`, sampled by inverting its CDF (exact, and
/// fast enough for a million draws). Rank r becomes key r - 1.
struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    fn new(n: usize, s: f64) -> Self {
        let mut total = 0.0;
        let cdf = (1..=n)
            .map(|r| {
                total += (r as f64).powf(-s);
                total
            })
            .collect();
        Zipf { cdf }
    }

    fn sample(&self, rng: &mut StdRng) -> u64 {
        let u = rng.gen::<f64>() * self.cdf[self.cdf.len() - 1];
        self.cdf
            .partition_point(|&c| c <= u)
            .min(self.cdf.len() - 1) as u64
    }

    /// The share of requests that go to the `k` most popular keys: the hit
    /// ratio of a cache of `k` entries that always held exactly those.
    fn top_share(&self, k: usize) -> f64 {
        self.cdf[k - 1] / self.cdf[self.cdf.len() - 1]
    }
}

/// How often moka is told to apply its buffered reads and writes during a
/// replay (it also does so by itself when 64 are buffered): frequent enough
/// that it never holds much more than its capacity.
const MOKA_MAINTENANCE_EVERY: usize = 64;

fn replay_ours(trace: &[u64], capacity: usize) -> f64 {
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

fn hit_ratio() {
    let zipf = Zipf::new(TRACE_KEYS, ZIPF_S);
    let mut rng = StdRng::seed_from_u64(SEED);
    let trace: Vec<u64> = (0..TRACE_LEN).map(|_| zipf.sample(&mut rng)).collect();
    println!(
        "hit_ratio: Zipf({ZIPF_S}) trace, {TRACE_LEN} requests over {TRACE_KEYS} keys \
         (StdRng seed {SEED:#x}); cold start included"
    );
    println!("hit_ratio: capacity |   ours |   moka | quick_cache | ours - moka | top-N share");
    for capacity in [1_000, 10_000] {
        let ours = replay_ours(&trace, capacity);
        let moka = replay_moka(&trace, capacity);
        let quick = replay_quick(&trace, capacity);
        println!(
            "hit_ratio: {capacity:>8} | {:>5.2}% | {:>5.2}% | {:>10.2}% | {:>+8.2} pts | {:>9.2}%",
            ours * 100.0,
            moka * 100.0,
            quick * 100.0,
            (ours - moka) * 100.0,
            zipf.top_share(capacity) * 100.0,
        );
    }
    println!(
        "hit_ratio: \"top-N share\": the requests for the capacity's most popular keys, \
         the ratio of a cache that always held exactly those; moka is told to run its \
         pending tasks every {MOKA_MAINTENANCE_EVERY} requests"
    );
}

// ---------------------------------------------------------------------------
// 5. Read latency on a hot key across expiry boundaries (printed, not timed).

const BOUNDARY_TTL: Duration = Duration::from_millis(50);
const BOUNDARY_REFRESH: Duration = Duration::from_millis(30);
const BOUNDARY_LOAD: Duration = Duration::from_millis(5);
const BOUNDARY_RUN: Duration = Duration::from_secs(1);
const BOUNDARY_READERS: usize = 2;
const HOT: u64 = 7;

/// A log-linear latency histogram: 16 buckets per power of two (values are
/// reported to within 1/16), exact below 16 ns.
struct Histogram {
    counts: Vec<u64>,
    max: u64,
}

impl Histogram {
    fn new() -> Self {
        Histogram {
            counts: vec![0; 64 * 16],
            max: 0,
        }
    }

    fn bucket(ns: u64) -> usize {
        if ns < 16 {
            return ns as usize;
        }
        let top = 63 - ns.leading_zeros() as usize;
        (top - 3) * 16 + ((ns >> (top - 4)) & 15) as usize
    }

    /// The smallest value that falls in `bucket`.
    fn floor(bucket: usize) -> u64 {
        if bucket < 16 {
            return bucket as u64;
        }
        (16 + (bucket % 16) as u64) << (bucket / 16 - 1)
    }

    #[inline]
    fn record(&mut self, ns: u64) {
        self.counts[Self::bucket(ns)] += 1;
        self.max = self.max.max(ns);
    }

    fn merge(&mut self, other: &Histogram) {
        self.counts
            .iter_mut()
            .zip(&other.counts)
            .for_each(|(a, b)| *a += b);
        self.max = self.max.max(other.max);
    }

    fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    fn quantile(&self, q: f64) -> Duration {
        let rank = ((self.total() as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (bucket, &n) in self.counts.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Duration::from_nanos(Self::floor(bucket));
            }
        }
        Duration::from_nanos(self.max)
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    NoRefresh,
    RefreshInline,
    RefreshDetached,
}

/// Reads slower than this are logged one by one, for the stall figures.
const SLOW: Duration = Duration::from_micros(10);

/// How soon after a load ends a read that waited for it returns, at most,
/// on a busy machine.
const WAKE: Duration = Duration::from_millis(2);

/// What the readers of one configuration saw.
struct Boundary {
    histogram: Histogram,
    /// Every read slower than `SLOW`: when it began, how long it took.
    slow: Vec<(Instant, Duration)>,
    /// Every load: when it began and ended.
    loads: Vec<(Instant, Instant)>,
    /// The readers' running time, summed.
    reader_time: Duration,
}

impl Boundary {
    /// The slow reads that waited for a load (or ran it): those that
    /// overlap a load and return just after it ends. The other slow reads
    /// were descheduled, or were unlucky with a page fault or an interrupt.
    fn waited(&self) -> (Vec<u64>, Vec<u64>) {
        self.slow.iter().fold(
            (vec![], vec![]),
            |(mut waited, mut other), &(began, took)| {
                let ended = began + took;
                let on_load = self
                    .loads
                    .iter()
                    .any(|&(_, done)| began < done && ended >= done && ended - done <= WAKE);
                if on_load { &mut waited } else { &mut other }.push(took.as_nanos() as u64);
                (waited, other)
            },
        )
    }

    /// The share of the readers' time spent in `reads`.
    fn share(&self, reads: &[u64]) -> f64 {
        reads.iter().sum::<u64>() as f64 / self.reader_time.as_nanos() as f64
    }

    /// The p99 wait of a request arriving at a uniformly random moment (an
    /// open-loop client) given the stalls `waited`: one arriving `u` into a
    /// stall of length `L` waits `L - u`, so the p99 is the `w` where the
    /// stalls' time above `w`, the sum of `max(0, L - w)`, is 1% of the
    /// readers' time. A hammering reader makes one slow read per stall
    /// however long it lasts, so closed-loop percentiles cannot show this.
    /// `None`: the stalls fill less than 1% of the time.
    fn arrival_p99(&self, waited: &[u64]) -> Option<Duration> {
        let budget = self.reader_time.as_nanos() as f64 * 0.01;
        let above = |w: f64| -> f64 { waited.iter().map(|&l| (l as f64 - w).max(0.0)).sum() };
        if above(0.0) < budget {
            return None;
        }
        let (mut lo, mut hi) = (0.0, waited.iter().copied().max().unwrap_or(0) as f64);
        for _ in 0..64 {
            let mid = (lo + hi) / 2.0;
            if above(mid) > budget {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        Some(Duration::from_nanos(lo as u64))
    }
}

fn boundary_run(mode: Mode) -> Boundary {
    let mut builder = TtlCache::<u64, u64>::builder().ttl(BOUNDARY_TTL);
    if mode != Mode::NoRefresh {
        builder = builder.refresh_after(BOUNDARY_REFRESH);
    }
    let cache = Arc::new(builder.build().expect("a valid configuration"));
    let loads = Arc::new(Mutex::new(Vec::new()));
    let load = {
        let loads = Arc::clone(&loads);
        move || {
            let began = Instant::now();
            thread::sleep(BOUNDARY_LOAD);
            let mut loads = loads.lock().expect("not poisoned");
            loads.push((began, Instant::now()));
            loads.len() as u64
        }
    };
    // Loaded before the readers start: the cold miss is not a boundary.
    cache.get_or_load(&HOT, load.clone());
    loads.lock().expect("not poisoned").clear();
    let stop = Arc::new(AtomicBool::new(false));
    let start = Arc::new(Barrier::new(BOUNDARY_READERS + 1));
    let readers: Vec<_> = (0..BOUNDARY_READERS)
        .map(|_| {
            let (cache, load, stop, start) = (
                Arc::clone(&cache),
                load.clone(),
                Arc::clone(&stop),
                Arc::clone(&start),
            );
            thread::spawn(move || {
                let mut histogram = Histogram::new();
                let mut slow = Vec::new();
                start.wait();
                let began = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    let v = match mode {
                        Mode::RefreshDetached => cache.get_or_load_detached(&HOT, load.clone()),
                        _ => cache.get_or_load(&HOT, load.clone()),
                    };
                    let took = t.elapsed();
                    black_box(v);
                    histogram.record(took.as_nanos() as u64);
                    if took >= SLOW {
                        slow.push((t, took));
                    }
                }
                (histogram, slow, began.elapsed())
            })
        })
        .collect();
    start.wait();
    thread::sleep(BOUNDARY_RUN);
    stop.store(true, Ordering::Relaxed);
    let mut out = Boundary {
        histogram: Histogram::new(),
        slow: Vec::new(),
        loads: Vec::new(),
        reader_time: Duration::ZERO,
    };
    for r in readers {
        let (histogram, slow, time) = r.join().expect("a reader panicked");
        out.histogram.merge(&histogram);
        out.slow.extend(slow);
        out.reader_time += time;
    }
    // Waits for a detached refresh still running, so its load is listed.
    drop(cache);
    out.loads = std::mem::take(&mut *loads.lock().expect("not poisoned"));
    out
}

fn expiry_boundary() {
    println!(
        "expiry_boundary: {BOUNDARY_READERS} threads reading one key for {BOUNDARY_RUN:?}; \
         ttl {BOUNDARY_TTL:?}, load {BOUNDARY_LOAD:?}, refresh_after {BOUNDARY_REFRESH:?} \
         where set; latencies to within 1/16"
    );
    println!(
        "expiry_boundary: {:<35} | {:>8} | {:>5} | {:>7} | {:>7} | {:>7} | {:>7} | {:>16} | {:>11} | {:>7}",
        "configuration", "reads", "loads", "p50", "p99", "p99.9", "max",
        "waited: n, max", "arrival p99", "noise"
    );
    for (mode, name) in [
        (Mode::NoRefresh, "no refresh_after, get_or_load"),
        (Mode::RefreshInline, "refresh_after, get_or_load"),
        (Mode::RefreshDetached, "refresh_after, get_or_load_detached"),
    ] {
        let run = boundary_run(mode);
        let h = &run.histogram;
        let (waited, other) = run.waited();
        let waited_max = Duration::from_nanos(waited.iter().copied().max().unwrap_or(0));
        println!(
            "expiry_boundary: {name:<35} | {:>8} | {:>5} | {:>7.1?} | {:>7.1?} | {:>7.1?} | {:>7.1?} | {:>16} | {:>11} | {:>6.2}%",
            h.total(),
            run.loads.len(),
            h.quantile(0.5),
            h.quantile(0.99),
            h.quantile(0.999),
            Duration::from_nanos(h.max),
            format!("{}, {waited_max:.1?}", waited.len()),
            match run.arrival_p99(&waited) {
                Some(p) => format!("{p:.1?}"),
                None => format!("< {SLOW:?}"),
            },
            run.share(&other) * 100.0,
        );
    }
    println!(
        "expiry_boundary: \"waited\": reads that ran or waited for a load (returned within \
         {WAKE:?} of one ending); \"arrival p99\": from those, the p99 wait of a request \
         arriving at a random moment; \"noise\": the readers' time in other reads over \
         {SLOW:?} (descheduled: the machine's load, not the cache)"
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

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50);
    targets = hit_one_thread, hit_two_threads, miss_and_load
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` does not, and
    // then only criterion's one-pass check of each benchmark runs.
    let benching = std::env::args().any(|a| a == "--bench");
    let filters = filters();
    let wanted =
        |name: &str| filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str()));
    if benching && wanted("hit_ratio") {
        hit_ratio();
    }
    if benching && wanted("expiry_boundary") {
        expiry_boundary();
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
