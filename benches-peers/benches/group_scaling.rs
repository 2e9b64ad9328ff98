//! Issue 14's scaling rows: `Group::work` on distinct keys at 1, 2 and 4
//! threads, against the singleflight Rust users write by hand on a
//! `DashMap<u64, Arc<OnceLock<u64>>>`, in the same run.
//!
//! `cargo bench -p singleflight-benches-peers --bench group_scaling`
//! (criterion; `-- work_distinct` to run one kind). Ids, all in the
//! criterion group `group_scaling`:
//!
//! - `{work,dashmap}_distinct/threads_{1,2,4}/per_call`: `n` long-lived
//!   threads, each leading flights on keys of its own (a fresh key every
//!   call, so no call ever has a follower); the time is the wall time of a
//!   round (first thread starting to last one finishing) over all the calls
//!   of all the threads: per call, all threads together.
//! - `{work,dashmap}_distinct/threads_{1,2,4}/throughput`: the same
//!   workload, one iteration being one call by each thread, so criterion's
//!   `thrpt` is total calls per second.
//! - `{work,dashmap}_uncontended/{fresh_key,same_key}`: the bench thread
//!   alone, as `uncontended/*` in the library's `benches/group.rs`.
//!
//! Before each thread count's rows and after the last, the run prints a
//! short ping-pong (`common/pingpong.rs`): the cost of one cache-line
//! transfer between the two cores at that moment, the floor under a
//! two-thread call on lines the other core wrote last. On a VM it moves
//! with the host's placement of the virtual CPUs (34 to 160 ns within
//! minutes on the project's EPYC VM), and the two-thread rows move with
//! it. After each kind's rows at each thread count the run prints how many of
//! its workers were on a CPU at once, on average (their CPU time over the
//! wall time): on a shared machine a `threads_2` figure measures two cores
//! only when that is close to 2; near 1, the two threads took turns on one.
//!
//! Each shape runs ours and then the DashMap pattern back to back, so the
//! two see the same machine. Both split keys over 8 shards on 2 cores (four
//! per core, rounded up to a power of two, is both defaults); each hashes
//! with its own default: foldhash for `Group`, SipHash-1-3 (`RandomState`)
//! for `DashMap::new()`, which is what the hand-written pattern gets. The
//! 4-thread rows put four callers on however many cores there are: on the
//! 2-core project machine that is what oversubscription costs, not more
//! parallelism. Go's figures for the same shapes are `go/`'s benchmarks.

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex, OnceLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use dashmap::DashMap;
use singleflight_sync::Group;

#[path = "common/pingpong.rs"]
mod pingpong;

/// The hand-rolled singleflight: callers of one key share one `OnceLock`
/// while its entry is in the map; the caller whose closure ran removes the
/// entry when the value is in, so, like `Group`, nothing is remembered
/// after a flight and the next call runs `f` again.
#[derive(Default)]
struct DashFlights {
    map: DashMap<u64, Arc<OnceLock<u64>>>,
}

impl DashFlights {
    fn work(&self, key: &u64, f: impl FnOnce() -> u64) -> u64 {
        // The write guard `entry` returns must be gone before `get_or_init`
        // blocks, or a follower of this key would wait on the shard lock.
        let cell = Arc::clone(&self.map.entry(*key).or_default());
        let mut led = false;
        let value = *cell.get_or_init(|| {
            led = true;
            f()
        });
        // Only the leader removes, and only its own entry can be there: an
        // entry leaves the map only through its leader.
        if led {
            self.map.remove(key);
        }
        value
    }
}

/// What the scaling rows call: one flight on `key`, whose work is the key.
trait Flights: Send + Sync + 'static {
    fn call(&self, key: u64) -> u64;
}

impl Flights for Group<u64, u64> {
    fn call(&self, key: u64) -> u64 {
        self.work(&key, || key)
    }
}

impl Flights for DashFlights {
    fn call(&self, key: u64) -> u64 {
        self.work(&key, || key)
    }
}

// ---------------------------------------------------------------------------
// `n` persistent workers driven in timed rounds: `benches/common/pair.rs`
// for any number of threads, so the 1-, 2- and 4-thread rows are timed the
// same way (threads spawned once, so no figure includes a spawn).

struct Crew {
    shared: Arc<CrewShared>,
    workers: Vec<JoinHandle<()>>,
}

struct CrewShared {
    /// The workers and the bench thread.
    start: Barrier,
    done: Barrier,
    stop: AtomicBool,
    each: AtomicU64,
    /// Each worker's (first call began, last one ended).
    spans: Vec<Mutex<(Instant, Instant)>>,
    /// Over every round so far: the workers' CPU time in their calls, all
    /// together, and the rounds' wall time (ns), for `parallelism`.
    on_cpu: AtomicU64,
    wall: AtomicU64,
}

impl Crew {
    /// `threads` workers calling `flights` on keys of their own: worker `i`
    /// counts up from `i << 62`, so no two ever share a key.
    fn new<F: Flights>(threads: usize, flights: F) -> Self {
        assert!((1..=4).contains(&threads), "key ranges for up to 4 workers");
        let now = Instant::now();
        let shared = Arc::new(CrewShared {
            start: Barrier::new(threads + 1),
            done: Barrier::new(threads + 1),
            stop: AtomicBool::new(false),
            each: AtomicU64::new(0),
            spans: (0..threads).map(|_| Mutex::new((now, now))).collect(),
            on_cpu: AtomicU64::new(0),
            wall: AtomicU64::new(0),
        });
        let flights = Arc::new(flights);
        let workers = (0..threads)
            .map(|me| {
                let s = Arc::clone(&shared);
                let flights = Arc::clone(&flights);
                let mut next = (me as u64) << 62;
                thread::spawn(move || loop {
                    s.start.wait();
                    if s.stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let n = s.each.load(Ordering::Relaxed);
                    let began = Instant::now();
                    let cpu_began = thread_cpu_ns();
                    for _ in 0..n {
                        black_box(flights.call(black_box(next)));
                        next += 1;
                    }
                    let cpu = thread_cpu_ns() - cpu_began;
                    *s.spans[me].lock().expect("not poisoned") = (began, Instant::now());
                    s.on_cpu.fetch_add(cpu, Ordering::Relaxed);
                    s.done.wait();
                })
            })
            .collect();
        Crew { shared, workers }
    }

    fn threads(&self) -> u32 {
        self.workers.len() as u32
    }

    /// Each worker makes `iters` calls; returns the round's wall time, from
    /// the first worker starting to the last one finishing.
    fn round(&self, iters: u64) -> Duration {
        let s = &self.shared;
        s.each.store(iters, Ordering::Relaxed);
        s.start.wait();
        s.done.wait();
        let spans = s.spans.iter().map(|m| *m.lock().expect("not poisoned"));
        let (first, last) = spans
            .reduce(|a, b| (a.0.min(b.0), a.1.max(b.1)))
            .expect("at least one worker");
        let wall = last - first;
        s.wall.fetch_add(wall.as_nanos() as u64, Ordering::Relaxed);
        wall
    }

    /// How many workers were running at once, on average over the rounds
    /// so far: their CPU time over the wall time. On a shared machine a
    /// 2-thread figure means two cores only when this is close to 2.
    fn parallelism(&self) -> Option<f64> {
        let s = &self.shared;
        let wall = s.wall.load(Ordering::Relaxed);
        (cfg!(target_os = "linux") && wall > 0)
            .then(|| s.on_cpu.load(Ordering::Relaxed) as f64 / wall as f64)
    }
}

impl Drop for Crew {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        self.shared.start.wait();
        for w in self.workers.drain(..) {
            w.join().expect("a crew worker panicked");
        }
    }
}

/// The calling thread's CPU time (0 where there is no per-thread clock).
fn thread_cpu_ns() -> u64 {
    #[cfg(target_os = "linux")]
    {
        let mut t = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `t` is a valid, writable timespec.
        let ok = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) } == 0;
        assert!(ok, "clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed");
        t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
    }
    #[cfg(not(target_os = "linux"))]
    0
}

/// Whether this run measures (`cargo bench`) rather than checks that each
/// benchmark runs (`cargo test --benches`): the printed figures mean
/// something only then.
fn measuring() -> bool {
    std::env::args().any(|a| a == "--bench")
}

// ---------------------------------------------------------------------------

fn distinct_keys(c: &mut Criterion) {
    let mut bench = c.benchmark_group("group_scaling");
    for threads in [1, 2, 4] {
        floor(&format!("before threads_{threads}"));
        scaling_rows(&mut bench, "work_distinct", threads, Group::<u64, u64>::new);
        scaling_rows(
            &mut bench,
            "dashmap_distinct",
            threads,
            DashFlights::default,
        );
    }
    bench.finish();
    floor("after the distinct-key rows");
}

/// Prints what one cache-line transfer between two cores costs right now
/// (`examples/pingpong.rs`, shorter): on a VM it moves with the host's
/// placement of the virtual CPUs, and the two-thread rows move with it.
fn floor(when: &str) {
    let Some(cpus) = pingpong::two_cpus().filter(|_| measuring()) else {
        return;
    };
    let mut ns = pingpong::one_way_ns(200_000, 5, Some(cpus));
    let median = pingpong::median(&mut ns);
    println!(
        "group_scaling: ping-pong {when}: {median:.1} ns per one-way cache-line transfer \
         (median of 5 runs, min {:.1}, max {:.1})",
        ns[0], ns[4]
    );
}

/// The `per_call` and `throughput` rows of one kind at one thread count,
/// on one crew (and so one map) kept across both.
fn scaling_rows<F: Flights>(
    bench: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    kind: &str,
    threads: usize,
    flights: impl FnOnce() -> F,
) {
    let crew = Crew::new(threads, flights());
    let shape = format!("threads_{threads}");
    bench.throughput(Throughput::Elements(1));
    bench.bench_function(BenchmarkId::new(kind, format!("{shape}/per_call")), |b| {
        b.iter_custom(|iters| crew.round(iters) / crew.threads())
    });
    bench.throughput(Throughput::Elements(threads as u64));
    bench.bench_function(BenchmarkId::new(kind, format!("{shape}/throughput")), |b| {
        b.iter_custom(|iters| crew.round(iters))
    });
    if let Some(p) = crew.parallelism().filter(|_| measuring()) {
        println!(
            "group_scaling/{kind}/{shape}: {p:.2} of {threads} workers on a CPU at once \
             (their CPU time / wall time, over both rows' rounds)"
        );
    }
}

fn uncontended(c: &mut Criterion) {
    let mut bench = c.benchmark_group("group_scaling");

    let group: Group<u64, u64> = Group::new();
    let mut next = 0u64;
    bench.bench_function("work_uncontended/fresh_key", |b| {
        b.iter(|| {
            next = next.wrapping_add(1);
            group.call(black_box(next))
        })
    });
    let dash = DashFlights::default();
    let mut next = 0u64;
    bench.bench_function("dashmap_uncontended/fresh_key", |b| {
        b.iter(|| {
            next = next.wrapping_add(1);
            dash.call(black_box(next))
        })
    });

    let group: Group<u64, u64> = Group::new();
    bench.bench_function("work_uncontended/same_key", |b| {
        b.iter(|| group.call(black_box(42)))
    });
    let dash = DashFlights::default();
    bench.bench_function("dashmap_uncontended/same_key", |b| {
        b.iter(|| dash.call(black_box(42)))
    });

    bench.finish();
}

criterion_group! {
    name = benches;
    // The settings of the library's `benches/group.rs`.
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50);
    targets = uncontended, distinct_keys
}
criterion_main!(benches);
