//! Detached flights and deadlines (issue 4's figures).
//!
//! `cargo bench --bench deadlines` (about half a minute):
//!
//! - `do_chan/std_thread` and `do_chan/rayon_pool`: a detached flight on a
//!   fresh key, start to received message, on the default thread-per-flight
//!   spawner and on a 2-thread rayon pool; `do_chan/rayon_handoff` is the
//!   pool's own hand-off (spawn a job that sends on a channel, receive it),
//!   the baseline the pool row is held to ("a few microseconds above").
//! - `follower_wait/plain` and `follower_wait/deadline`: a leader and a
//!   follower on two persistent threads, one flight per iteration; the
//!   follower joins with `work` or with `work_timeout`, so the difference is
//!   what a deadline adds to a follower's wait.
//! - `deadline_lateness`: not a cost but how late a caller whose flight never
//!   ends returns after its deadline (criterion's "time" is the lateness).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use singleflight_sync::Group;

fn pool_group(pool: &Arc<rayon::ThreadPool>) -> Group<u64, u64> {
    let pool = pool.clone();
    Group::builder()
        .spawner(move |job| {
            pool.spawn(job);
            Ok(())
        })
        .build()
}

fn do_chan(c: &mut Criterion) {
    let mut bench = c.benchmark_group("do_chan");
    let threads: Group<u64, u64> = Group::new();
    let pool = Arc::new(
        rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap(),
    );
    let pooled = pool_group(&pool);
    let next = AtomicU64::new(0);
    bench.bench_function("std_thread", |b| {
        b.iter(|| {
            let k = next.fetch_add(1, Ordering::Relaxed);
            threads
                .do_chan(&k, move |_| k)
                .recv()
                .unwrap()
                .unwrap()
                .value
        })
    });
    bench.bench_function("rayon_pool", |b| {
        b.iter(|| {
            let k = next.fetch_add(1, Ordering::Relaxed);
            pooled
                .do_chan(&k, move |_| k)
                .recv()
                .unwrap()
                .unwrap()
                .value
        })
    });
    bench.bench_function("rayon_handoff", |b| {
        b.iter(|| {
            let k = next.fetch_add(1, Ordering::Relaxed);
            let (tx, rx) = crossbeam_channel::bounded(1);
            pool.spawn(move || tx.send(k).unwrap());
            rx.recv().unwrap()
        })
    });
    bench.finish();
}

/// One flight per round: the leader's `f` waits until the follower has
/// joined, then returns; the round ends when both have their value.
fn follower_round(group: &Arc<Group<u64, u64>>, rounds: u64, deadline: bool) -> Duration {
    let start_line = Arc::new(Barrier::new(2));
    let follower = {
        let (group, start_line) = (group.clone(), start_line.clone());
        thread::spawn(move || {
            for round in 0..rounds {
                start_line.wait();
                // The leader has its flight running for `round` now.
                while group.in_flight() == 0 {
                    std::hint::spin_loop();
                }
                let v = if deadline {
                    group
                        .work_timeout(&round, Duration::from_secs(10), |_| u64::MAX)
                        .unwrap()
                        .value
                } else {
                    group.work(&round, || u64::MAX)
                };
                assert_eq!(v, round, "the follower joined the leader's flight");
            }
        })
    };
    let begin = Instant::now();
    for round in 0..rounds {
        group.work(&round, || {
            start_line.wait();
            while group.waiters(&round) == 0 {
                std::hint::spin_loop();
            }
            round
        });
    }
    follower.join().unwrap();
    begin.elapsed()
}

fn follower_wait(c: &mut Criterion) {
    let mut bench = c.benchmark_group("follower_wait");
    let group: Arc<Group<u64, u64>> = Arc::new(Group::builder().shards(1).build());
    bench.bench_function("plain", |b| {
        b.iter_custom(|iters| follower_round(&group, iters, false))
    });
    bench.bench_function("deadline", |b| {
        b.iter_custom(|iters| follower_round(&group, iters, true))
    });
    bench.finish();
}

fn deadline_lateness(c: &mut Criterion) {
    let pool = Arc::new(
        rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap(),
    );
    let group = pool_group(&pool);
    let next = AtomicU64::new(0);
    c.bench_function("deadline_lateness", |b| {
        b.iter_custom(|iters| {
            let mut late = Duration::ZERO;
            for _ in 0..iters {
                let k = next.fetch_add(1, Ordering::Relaxed);
                let deadline = Instant::now() + Duration::from_micros(200);
                // The flight ends only when cancelled: by this caller leaving.
                let r = group.work_deadline(&k, deadline, |token| {
                    token.wait();
                    0
                });
                late += Instant::now().saturating_duration_since(deadline);
                assert!(r.is_err());
            }
            late
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30);
    targets = do_chan, follower_wait, deadline_lateness
}
criterion_main!(benches);
