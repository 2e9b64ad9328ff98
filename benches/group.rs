//! The `Group` rows of the Performance table in DESIGN.md.
//!
//! `cargo bench --bench group` runs them all in about a minute on two cores.
//! Benchmarks that involve threads keep their threads alive across samples
//! (spawned the first time the benchmark runs, joined after it) and time
//! themselves with `iter_custom`, so no figure includes a thread spawn.
//!
//! Two figures are printed on their own lines, because criterion has no
//! column for them: the 256-follower wake ratio (group / bare Condvar, from
//! interleaved rounds) and the hot key's executions per 1000 calls.
//!
//! `two_threads/disjoint_shards` is not a row of the table: it is the same
//! workload as `two_threads/distinct_keys` with each thread's keys on shards
//! of its own, to tell the map's cost from cross-core cache-line traffic.

use std::hash::{BuildHasher, Hasher};
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread::{self, JoinHandle, Thread};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};

#[path = "common/pair.rs"]
mod pair_harness;
use pair_harness::Pair;
use parking_lot::{Condvar, Mutex};
use singleflight_sync::Group;

/// Spawns a benchmark's worker thread; a small stack, as 256 of them are
/// alive at once.
fn spawn(f: impl FnOnce() + Send + 'static) -> JoinHandle<()> {
    thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(f)
        .expect("spawn a benchmark thread")
}

/// Whether this run measures (`cargo bench`) rather than checks that each
/// benchmark runs (`cargo test --benches`, one iteration each): the printed
/// figures mean something only then.
fn measuring() -> bool {
    std::env::args().any(|a| a == "--bench")
}

fn median(samples: &mut [Duration]) -> Duration {
    samples.sort_unstable();
    samples[samples.len() / 2]
}

// ---------------------------------------------------------------------------
// 1, 2. One thread, nobody joins: the cost of leading a flight.

fn uncontended(c: &mut Criterion) {
    let mut bench = c.benchmark_group("uncontended");

    let group: Group<u64, u64> = Group::new();
    let mut next = 0u64;
    bench.bench_function("fresh_key", |b| {
        b.iter(|| {
            next = next.wrapping_add(1);
            let k = black_box(next);
            group.work(&k, || k)
        })
    });

    let group: Group<u64, u64> = Group::new();
    bench.bench_function("same_key", |b| {
        b.iter(|| {
            let k = black_box(42u64);
            group.work(&k, || k)
        })
    });

    // What an installed observer costs (two clock reads and a call per
    // flight); `same_key` above is the no-observer figure it is held to.
    let group: Group<u64, u64> = Group::builder().metrics(Arc::new(NoopMetrics)).build();
    bench.bench_function("same_key_with_observer", |b| {
        b.iter(|| {
            let k = black_box(42u64);
            group.work(&k, || k)
        })
    });

    bench.finish();
}

/// An observer that does nothing: what remains is the library's own cost of
/// having one.
#[derive(Debug)]
struct NoopMetrics;

impl singleflight_sync::Metrics for NoopMetrics {}

// ---------------------------------------------------------------------------
// 3. Two threads, each on its own keys: aggregate time per call.

/// The two workers of `two_threads`, on disjoint key ranges: worker 0
/// counts up from 0, worker 1 from 2^63.
fn pair<S: BuildHasher + Send + Sync + 'static>(group: Group<u64, u64, S>) -> Pair {
    let group = Arc::new(group);
    Pair::new([0u64, 1].map(|me| {
        let group = Arc::clone(&group);
        let mut next = me << 63;
        move |n: u64| {
            for _ in 0..n {
                let k = next;
                next += 1;
                black_box(group.work(&k, || k));
            }
        }
    }))
}

/// Hashes a `u64` key to itself, but for its top bit, which it moves to bit
/// 32: the lowest bit the group picks a shard with.
#[derive(Clone, Copy, Debug, Default)]
struct KeyIsHash;

struct KeyIsHashHasher(u64);

impl BuildHasher for KeyIsHash {
    type Hasher = KeyIsHashHasher;
    fn build_hasher(&self) -> KeyIsHashHasher {
        KeyIsHashHasher(0)
    }
}

impl Hasher for KeyIsHashHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, _: &[u8]) {
        unreachable!("only u64 keys")
    }
    fn write_u64(&mut self, key: u64) {
        self.0 = (key & !(1 << 63)) | ((key >> 63) << 32);
    }
}

fn two_threads(c: &mut Criterion) {
    let mut bench = c.benchmark_group("two_threads");
    // The Performance table's row: the default hasher spreads each thread's
    // keys over every shard, so the two threads write the same shards'
    // cache lines (no lock waits, but cross-core line transfers).
    let mut pair = None;
    bench.bench_function("distinct_keys", |b| {
        let pair = pair.get_or_insert_with(|| self::pair(Group::new()));
        b.iter_custom(|iters| pair.run(iters))
    });
    drop(pair);
    // Diagnostic: the same calls with each thread's keys on shards of its own
    // (worker 0's keys are below 2^63, worker 1's above, and `KeyIsHash` puts
    // that bit where the shard is picked), which isolates the map's cost from
    // cache-line sharing.
    let mut pair = None;
    bench.bench_function("disjoint_shards", |b| {
        let pair =
            pair.get_or_insert_with(|| self::pair(Group::builder().hasher(KeyIsHash).build()));
        b.iter_custom(|iters| pair.run(iters))
    });
    drop(pair);
    bench.finish();
}

// ---------------------------------------------------------------------------
// 4. Waking 256 blocked followers, against a bare parking_lot Condvar.

const FOLLOWERS: usize = 256;

/// Lets the time between a follower being counted and it actually parking
/// pass before the clock starts, so every follower is woken from sleep.
const SETTLE: Duration = Duration::from_millis(1);

/// How the bench thread learns that every follower has its value: the same
/// for the group and the baseline.
struct Countdown {
    left: AtomicUsize,
    bench_thread: Thread,
}

impl Countdown {
    fn new() -> Self {
        Countdown {
            left: AtomicUsize::new(0),
            bench_thread: thread::current(),
        }
    }

    fn arm(&self) {
        self.left.store(FOLLOWERS, Ordering::Relaxed);
    }

    fn arrive(&self) {
        if self.left.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.bench_thread.unpark();
        }
    }

    fn wait(&self) {
        // A stale unpark token from the last round only costs one extra
        // look at the count.
        while self.left.load(Ordering::Acquire) != 0 {
            thread::park();
        }
    }
}

/// Polls `count` until it reaches `FOLLOWERS`, then lets them settle.
fn await_followers(count: impl Fn() -> usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while count() < FOLLOWERS {
        assert!(
            Instant::now() < deadline,
            "wake_256: only {} of {FOLLOWERS} followers arrived",
            count()
        );
        thread::sleep(Duration::from_micros(50));
    }
    thread::sleep(SETTLE);
}

struct Crowd<S: AsRef<Common>> {
    shared: Arc<S>,
    followers: Vec<JoinHandle<()>>,
}

/// What the two crowds have in common.
struct Common {
    /// The followers and the bench thread.
    go: Barrier,
    stop: AtomicBool,
    countdown: Countdown,
    /// Every round's wake time, for the printed ratio.
    rounds: Mutex<Vec<Duration>>,
}

impl Common {
    fn new() -> Self {
        Common {
            go: Barrier::new(FOLLOWERS + 1),
            stop: AtomicBool::new(false),
            countdown: Countdown::new(),
            rounds: Mutex::new(Vec::new()),
        }
    }
}

impl<S: AsRef<Common> + Send + Sync + 'static> Crowd<S> {
    fn new(shared: S, follow: fn(&S)) -> Self {
        let shared = Arc::new(shared);
        let followers = (0..FOLLOWERS)
            .map(|_| {
                let s = Arc::clone(&shared);
                spawn(move || loop {
                    let common = (*s).as_ref();
                    common.go.wait();
                    if common.stop.load(Ordering::Relaxed) {
                        return;
                    }
                    follow(&s);
                    common.countdown.arrive();
                })
            })
            .collect();
        Crowd { shared, followers }
    }

    fn common(&self) -> &Common {
        (*self.shared).as_ref()
    }

    fn median_round(&self) -> Option<Duration> {
        let mut rounds = self.common().rounds.lock();
        (!rounds.is_empty()).then(|| median(&mut rounds))
    }
}

impl<S: AsRef<Common>> Drop for Crowd<S> {
    fn drop(&mut self) {
        let common = (*self.shared).as_ref();
        common.stop.store(true, Ordering::Relaxed);
        common.go.wait();
        for f in self.followers.drain(..) {
            f.join().expect("a follower panicked");
        }
    }
}

struct GroupCrowd {
    common: Common,
    group: Group<u64, u64>,
    round: AtomicU64,
}

impl AsRef<Common> for GroupCrowd {
    fn as_ref(&self) -> &Common {
        &self.common
    }
}

const KEY: u64 = 7;

fn group_follow(s: &GroupCrowd) {
    // The bench thread leads and holds the flight open until all 256 have
    // joined, so a follower never leads; if one did, the round would stall
    // and `await_followers` would say so.
    let v = s.group.work(&KEY, || u64::MAX);
    black_box(v);
}

impl Crowd<GroupCrowd> {
    fn round(&self) -> Duration {
        let s = &*self.shared;
        s.common.countdown.arm();
        let round = s.round.fetch_add(1, Ordering::Relaxed);
        let mut released = None;
        let v = s.group.work(&KEY, || {
            s.common.go.wait();
            await_followers(|| s.group.waiters(&KEY));
            released = Some(Instant::now());
            round
        });
        s.common.countdown.wait();
        let took = released.expect("the bench thread led").elapsed();
        black_box(v);
        s.common.rounds.lock().push(took);
        took
    }
}

struct CondvarCrowd {
    common: Common,
    state: Mutex<CondvarState>,
    cv: Condvar,
}

struct CondvarState {
    released: bool,
    waiting: usize,
    round: u64,
}

impl AsRef<Common> for CondvarCrowd {
    fn as_ref(&self) -> &Common {
        &self.common
    }
}

fn condvar_follow(s: &CondvarCrowd) {
    let mut state = s.state.lock();
    state.waiting += 1;
    while !state.released {
        s.cv.wait(&mut state);
    }
    state.waiting -= 1;
    let v = state.round;
    drop(state);
    black_box(v);
}

impl Crowd<CondvarCrowd> {
    fn round(&self) -> Duration {
        let s = &*self.shared;
        s.common.countdown.arm();
        {
            let mut state = s.state.lock();
            state.released = false;
            state.round += 1;
        }
        s.common.go.wait();
        await_followers(|| s.state.lock().waiting);
        let released = Instant::now();
        {
            // Notified under the lock, as `Call::publish` does.
            let mut state = s.state.lock();
            state.released = true;
            s.cv.notify_all();
        }
        s.common.countdown.wait();
        let took = released.elapsed();
        s.common.rounds.lock().push(took);
        took
    }
}

/// Both crowds at once (512 threads). Every iteration runs one round of each,
/// in alternating order, so the two benchmarks see the same conditions: on
/// a small VM the wake time drifts between regimes (bursts of rounds twice as
/// slow), and back-to-back benchmarks would compare different regimes.
struct Wake {
    group: Crowd<GroupCrowd>,
    condvar: Crowd<CondvarCrowd>,
    rounds: AtomicU64,
}

impl Wake {
    fn new() -> Self {
        let group = Crowd::new(
            GroupCrowd {
                common: Common::new(),
                group: Group::new(),
                round: AtomicU64::new(0),
            },
            group_follow,
        );
        let condvar = Crowd::new(
            CondvarCrowd {
                common: Common::new(),
                state: Mutex::new(CondvarState {
                    released: false,
                    waiting: 0,
                    round: 0,
                }),
                cv: Condvar::new(),
            },
            condvar_follow,
        );
        Wake {
            group,
            condvar,
            rounds: AtomicU64::new(0),
        }
    }

    /// One round of each: (group, condvar).
    fn pair(&self) -> (Duration, Duration) {
        if self.rounds.fetch_add(1, Ordering::Relaxed) % 2 == 0 {
            let g = self.group.round();
            (g, self.condvar.round())
        } else {
            let c = self.condvar.round();
            (self.group.round(), c)
        }
    }
}

fn wake_256(c: &mut Criterion) {
    let mut bench = c.benchmark_group("wake_256");
    // An iteration takes several milliseconds of wall time (2 x 256 threads
    // go through a barrier and join) of which one wake is measured.
    bench.sample_size(10);
    bench.warm_up_time(Duration::from_secs(1));
    bench.measurement_time(Duration::from_secs(8));

    let mut wake = None;
    bench.bench_function("group", |b| {
        let wake = wake.get_or_insert_with(Wake::new);
        b.iter_custom(|iters| (0..iters).map(|_| wake.pair().0).sum())
    });
    bench.bench_function("condvar_baseline", |b| {
        let wake = wake.get_or_insert_with(Wake::new);
        b.iter_custom(|iters| (0..iters).map(|_| wake.pair().1).sum())
    });
    bench.finish();

    let Some(wake) = wake.filter(|_| measuring()) else {
        return;
    };
    if let (Some(g), Some(c)) = (wake.group.median_round(), wake.condvar.median_round()) {
        println!(
            "wake_256: median of {} interleaved rounds each: group {g:.1?}, \
             condvar_baseline {c:.1?}, ratio {:.3} (target <= 1.2)",
            wake.rounds.load(Ordering::Relaxed),
            g.as_secs_f64() / c.as_secs_f64()
        );
    }
}

// ---------------------------------------------------------------------------
// 5. 64 threads on one hot key whose work takes 1 ms.

const HOT_THREADS: usize = 64;
const HOT: u64 = 1;

struct Hot {
    shared: Arc<HotShared>,
    workers: Vec<JoinHandle<()>>,
}

struct HotShared {
    group: Group<u64, u64>,
    start: Barrier,
    done: Barrier,
    stop: AtomicBool,
    /// Calls are numbered; a worker stops at the first number >= `budget`.
    tickets: AtomicU64,
    budget: AtomicU64,
    calls: AtomicU64,
    executions: AtomicU64,
}

impl Hot {
    fn new() -> Self {
        let shared = Arc::new(HotShared {
            group: Group::new(),
            start: Barrier::new(HOT_THREADS + 1),
            done: Barrier::new(HOT_THREADS + 1),
            stop: AtomicBool::new(false),
            tickets: AtomicU64::new(0),
            budget: AtomicU64::new(0),
            calls: AtomicU64::new(0),
            executions: AtomicU64::new(0),
        });
        let workers = (0..HOT_THREADS)
            .map(|_| {
                let s = Arc::clone(&shared);
                spawn(move || loop {
                    s.start.wait();
                    if s.stop.load(Ordering::Relaxed) {
                        return;
                    }
                    while s.tickets.fetch_add(1, Ordering::Relaxed)
                        < s.budget.load(Ordering::Relaxed)
                    {
                        let v = s.group.work(&HOT, || {
                            s.executions.fetch_add(1, Ordering::Relaxed);
                            thread::sleep(Duration::from_millis(1));
                            HOT
                        });
                        black_box(v);
                        s.calls.fetch_add(1, Ordering::Relaxed);
                    }
                    s.done.wait();
                })
            })
            .collect();
        Hot { shared, workers }
    }

    fn counts(&self) -> (u64, u64) {
        let s = &self.shared;
        (
            s.calls.load(Ordering::Relaxed),
            s.executions.load(Ordering::Relaxed),
        )
    }

    /// `iters` calls by the 64 threads together, timed from their release to
    /// the last one's return.
    fn run(&self, iters: u64) -> Duration {
        let s = &self.shared;
        s.tickets.store(0, Ordering::Relaxed);
        s.budget.store(iters, Ordering::Relaxed);
        let began = Instant::now();
        s.start.wait();
        s.done.wait();
        began.elapsed()
    }

    /// Runs freely for `window` after `warm_up`, and counts only the window:
    /// no start or tail (when fewer than 64 threads are still calling).
    fn steady(&self, warm_up: Duration, window: Duration) -> (u64, u64) {
        let s = &self.shared;
        s.tickets.store(0, Ordering::Relaxed);
        s.budget.store(u64::MAX, Ordering::Relaxed);
        s.start.wait();
        thread::sleep(warm_up);
        let before = self.counts();
        thread::sleep(window);
        let after = self.counts();
        s.budget.store(0, Ordering::Relaxed);
        s.done.wait();
        (after.0 - before.0, after.1 - before.1)
    }
}

impl Drop for Hot {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        self.shared.start.wait();
        for w in self.workers.drain(..) {
            w.join().expect("a hot-key worker panicked");
        }
    }
}

fn per_1000(calls: u64, executions: u64) -> f64 {
    executions as f64 * 1000.0 / calls as f64
}

fn hot_key(c: &mut Criterion) {
    let mut bench = c.benchmark_group("hot_key_64_threads");
    bench.sample_size(10);
    bench.warm_up_time(Duration::from_secs(1));
    bench.measurement_time(Duration::from_secs(4));
    let mut hot = None;
    bench.bench_function("work", |b| {
        let hot = hot.get_or_insert_with(Hot::new);
        b.iter_custom(|iters| hot.run(iters))
    });
    bench.finish();

    let Some(hot) = hot.filter(|_| measuring()) else {
        return;
    };
    let ideal = 1000.0 / HOT_THREADS as f64;
    let (calls, executions) = hot.counts();
    if calls > 0 {
        let got = per_1000(calls, executions);
        println!(
            "hot_key_64_threads: criterion samples: {executions} executions / {calls} calls \
             = {got:.3} per 1000 (ideal {ideal:.3}, {:+.2}%)",
            (got / ideal - 1.0) * 100.0
        );
    }
    let (calls, executions) = hot.steady(Duration::from_millis(300), Duration::from_secs(2));
    let got = per_1000(calls, executions);
    println!(
        "hot_key_64_threads: steady 2 s window: {executions} executions / {calls} calls \
         = {got:.3} per 1000 (ideal {ideal:.3}, {:+.2}%)",
        (got / ideal - 1.0) * 100.0
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50);
    targets = uncontended, two_threads, wake_256, hot_key
}
criterion_main!(benches);
