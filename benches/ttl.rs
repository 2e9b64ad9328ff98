//! The `TtlCache` rows of the Performance table in DESIGN.md that need no
//! peer: `TtlCache` alone, with the default and with a cheap hasher, and
//! its reads across expiry boundaries. The same workloads on moka's and
//! quick_cache's sync caches, in the same run as ours, are the member crate
//! `benches-peers/` (`cargo bench -p singleflight-benches-peers`), so
//! building this crate's benches never builds the peers.
//!
//! `cargo bench --bench ttl` takes about a minute on two cores (plus the
//! build). Criterion times (see `common/caches.rs`):
//!
//! - `hit/one_thread`, `hit/two_threads`: lookups of 10,000 cached `u64`
//!   keys in turn (two threads: aggregate time per hit). `ours_fast_hash` is
//!   `TtlCache` with a cheaper hasher than its default foldhash (a murmur3
//!   finaliser), to show what hashing costs;
//! - `miss_and_load`: a fresh key each call, loaded into a full cache.
//!
//! Two figures are not timings and are printed before criterion starts:
//!
//! - `hit_ratio`: a Zipf(0.99) trace of 1,000,000 requests over 100,000 keys
//!   replayed through the cache at two capacities, beside the best possible;
//! - `expiry_boundary`: read latencies on one hot key whose entry keeps
//!   expiring, without and with `refresh_after`.
//!
//! A filter (`cargo bench --bench ttl -- hit/`; criterion takes one) skips a
//! printed figure whose name does not contain it. Benchmarks that involve
//! threads keep their threads alive across samples and time themselves with
//! `iter_custom`, so no figure includes a thread spawn. The figures are only
//! as quiet as the machine: check the load before trusting a run.

use std::hash::{BuildHasher, Hasher};
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use criterion::{criterion_group, Criterion};

#[path = "common/caches.rs"]
mod caches;
use caches::{HIT_CAPACITY, HIT_KEYS, LONG_TTL};
use singleflight_sync::TtlCache;

/// A `TtlCache` with a cheap hasher (a murmur3 finaliser), to show how much
/// of a hit the default hasher (foldhash) costs.
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

// ---------------------------------------------------------------------------
// 1 to 4: hits, misses and the hit ratio (their workloads: `common/caches.rs`).

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

fn hit_one_thread(c: &mut Criterion) {
    let mut bench = c.benchmark_group("hit/one_thread");
    caches::hit_one_thread(&mut bench, "ours", caches::ours_preloaded);
    caches::hit_one_thread(&mut bench, "ours_fast_hash", ours_fast_hash_preloaded);
    bench.finish();
}

fn hit_two_threads(c: &mut Criterion) {
    let mut bench = c.benchmark_group("hit/two_threads");
    caches::hit_two_threads(&mut bench, "ours", caches::ours_preloaded);
    caches::hit_two_threads(&mut bench, "ours_fast_hash", ours_fast_hash_preloaded);
    bench.finish();
    caches::no_unexpected_loads();
}

fn miss_and_load(c: &mut Criterion) {
    let mut bench = c.benchmark_group("miss_and_load");
    let ours = caches::miss_and_load(&mut bench, "ours", caches::ours_for_misses);
    bench.finish();
    caches::print_entries_afterwards(&[("ours", ours)]);
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
                        Mode::RefreshDetached => {
                            let load = load.clone();
                            cache.get_or_load_detached(&HOT, move |_| load())
                        }
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

criterion_group! {
    name = benches;
    config = caches::config();
    targets = hit_one_thread, hit_two_threads, miss_and_load
}

fn main() {
    if caches::print_wanted("hit_ratio") {
        caches::print_hit_ratio(&[("ours", caches::replay_ours)]);
    }
    if caches::print_wanted("expiry_boundary") {
        expiry_boundary();
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
