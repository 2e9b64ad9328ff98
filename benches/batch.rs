//! Batch loading (issue 18): 64 threads each ask for random sets of 20
//! keys out of 10,000, against a backend whose every call costs a fixed
//! latency plus a cost per row (both slept: a database's time is waiting
//! on it, not CPU). Four ways to ask:
//!
//! - `per_key`: one backend call per key, through `Group::work` (so
//!   concurrent askers of one key share its call);
//! - `naive_batch`: each thread calls the backend with its whole set;
//! - `coalesced_batch`: `Group::work_many`: keys other threads are fetching
//!   are joined, one call for the rest;
//! - `cached_batch`: `TtlCache::get_or_load_many` (60 s TTL, room for every
//!   key): the same, and what was fetched is kept.
//!
//! Criterion times one round: every thread makes one request (the threads
//! are spawned once per sample and run all its rounds, so the spawns are
//! spread over many rounds). Before it, the bench prints what a fixed run
//! (64 threads x 25 requests, released together, same seeds for every mode)
//! cost the backend: calls and rows fetched. Counts are exact; they vary a
//! little between runs with how the threads overlap.
//!
//! `cargo bench --bench batch -- --measurement-time 3 --warm-up-time 1`

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};

use criterion::{criterion_group, Criterion};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use singleflight_sync::{Group, TtlCache};

const THREADS: usize = 64;
const PER_REQUEST: usize = 20;
const KEYS: u64 = 10_000;
const PER_CALL: Duration = Duration::from_micros(200);
const PER_ROW: Duration = Duration::from_micros(10);

/// The backend: answers any set of ids, and counts what it was asked.
#[derive(Default)]
struct Backend {
    calls: AtomicU64,
    rows: AtomicU64,
}

impl Backend {
    fn fetch(&self, ids: &[&u64]) -> Vec<(u64, u64)> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.rows.fetch_add(ids.len() as u64, Ordering::Relaxed);
        thread::sleep(PER_CALL + PER_ROW * ids.len() as u32);
        ids.iter().map(|&&id| (id, value_of(id))).collect()
    }

    fn counts(&self) -> (u64, u64) {
        (
            self.calls.load(Ordering::Relaxed),
            self.rows.load(Ordering::Relaxed),
        )
    }
}

fn value_of(id: u64) -> u64 {
    id.wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// A request: 20 distinct keys, uniform over the 10,000.
fn request(rng: &mut StdRng) -> Vec<u64> {
    let mut keys = Vec::with_capacity(PER_REQUEST);
    while keys.len() < PER_REQUEST {
        let k = rng.gen_range(0..KEYS);
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    keys
}

/// The ways to ask, each a function from a request to its values.
struct Modes {
    backend: Backend,
    group: Group<u64, u64>,
    cache: TtlCache<u64, u64>,
}

impl Modes {
    fn new() -> Self {
        Modes {
            backend: Backend::default(),
            group: Group::new(),
            cache: TtlCache::builder()
                .ttl(Duration::from_secs(60))
                .max_entries(KEYS as usize)
                .build()
                .expect("a valid cache"),
        }
    }

    fn ask(&self, mode: &str, keys: &[u64]) -> Vec<Option<u64>> {
        let backend = &self.backend;
        match mode {
            "per_key" => keys
                .iter()
                .map(|k| Some(self.group.work(k, || backend.fetch(&[k])[0].1)))
                .collect(),
            "naive_batch" => {
                let ids: Vec<&u64> = keys.iter().collect();
                let rows = backend.fetch(&ids);
                keys.iter()
                    .map(|k| rows.iter().find(|r| r.0 == *k).map(|r| r.1))
                    .collect()
            }
            "coalesced_batch" => self.group.work_many(keys, |ids| backend.fetch(ids)),
            "cached_batch" => self.cache.get_or_load_many(keys, |ids| backend.fetch(ids)),
            _ => unreachable!("no mode {mode}"),
        }
    }
}

const MODES: [&str; 4] = ["per_key", "naive_batch", "coalesced_batch", "cached_batch"];

/// Every thread makes `rounds` requests; returns the time it took.
fn run(modes: &Modes, mode: &str, rounds: u64, seed: u64, check: bool) -> Duration {
    let start_line = Barrier::new(THREADS + 1);
    thread::scope(|s| {
        let threads: Vec<_> = (0..THREADS)
            .map(|t| {
                let start_line = &start_line;
                s.spawn(move || {
                    let mut rng = StdRng::seed_from_u64(seed ^ (t as u64) << 20);
                    start_line.wait();
                    for _ in 0..rounds {
                        let keys = request(&mut rng);
                        let got = black_box(modes.ask(mode, &keys));
                        if check {
                            for (k, v) in keys.iter().zip(got) {
                                assert_eq!(v, Some(value_of(*k)), "{mode}: key {k}");
                            }
                        }
                    }
                })
            })
            .collect();
        start_line.wait();
        let start = Instant::now();
        for t in threads {
            t.join().expect("a benchmark thread");
        }
        start.elapsed()
    })
}

/// The calls/rows table: one fixed run per mode, on fresh state.
fn print_counts() {
    const ROUNDS: u64 = 25;
    println!(
        "\nbatch: {THREADS} threads x {ROUNDS} requests of {PER_REQUEST} random keys out of {KEYS}; \
         backend call {PER_CALL:?} + {PER_ROW:?} a row"
    );
    println!(
        "{:<16} {:>9} {:>14} {:>13} {:>13} {:>12}",
        "mode", "requests", "backend calls", "rows fetched", "calls/request", "rows/request"
    );
    for mode in MODES {
        let modes = Modes::new();
        run(&modes, mode, ROUNDS, 7, true);
        let (calls, rows) = modes.backend.counts();
        let requests = THREADS as u64 * ROUNDS;
        println!(
            "{mode:<16} {requests:>9} {calls:>14} {rows:>13} {:>13.2} {:>12.2}",
            calls as f64 / requests as f64,
            rows as f64 / requests as f64
        );
        assert_eq!(modes.group.in_flight(), 0);
    }
    println!();
}

fn rounds(c: &mut Criterion) {
    let mut bench = c.benchmark_group("batch_64_threads");
    bench.sample_size(10);
    for mode in MODES {
        let modes = Modes::new();
        let mut seed = 0;
        bench.bench_function(mode, |b| {
            b.iter_custom(|iters| {
                seed += 1;
                run(&modes, mode, iters, seed, false)
            })
        });
    }
    bench.finish();
}

criterion_group!(benches, rounds);

fn main() {
    print_counts();
    benches();
    Criterion::default().configure_from_args().final_summary();
}
