//! Two persistent worker threads driven in timed rounds, for the benchmarks
//! that measure two threads at once (`benches/group.rs`, and the cache
//! workloads in `common/caches.rs` that `benches/ttl.rs` and
//! `benches-peers/` share).
//! Threads are spawned once, so no figure includes a spawn; a round's time
//! runs from the first worker starting to the last one finishing.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

pub struct Pair {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
}

struct Shared {
    /// The two workers and the bench thread.
    start: Barrier,
    done: Barrier,
    stop: AtomicBool,
    each: AtomicU64,
    /// Each worker's (first operation began, last one ended).
    spans: [Mutex<(Instant, Instant)>; 2],
}

impl Pair {
    /// `work[i](n)` is worker `i`'s round: `n` operations.
    pub fn new<W: FnMut(u64) + Send + 'static>(work: [W; 2]) -> Self {
        let now = Instant::now();
        let shared = Arc::new(Shared {
            start: Barrier::new(3),
            done: Barrier::new(3),
            stop: AtomicBool::new(false),
            each: AtomicU64::new(0),
            spans: [Mutex::new((now, now)), Mutex::new((now, now))],
        });
        let workers = work
            .into_iter()
            .enumerate()
            .map(|(me, mut round)| {
                let s = Arc::clone(&shared);
                thread::spawn(move || loop {
                    s.start.wait();
                    if s.stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let n = s.each.load(Ordering::Relaxed);
                    let began = Instant::now();
                    round(n);
                    *s.spans[me].lock().expect("not poisoned") = (began, Instant::now());
                    s.done.wait();
                })
            })
            .collect();
        Pair { shared, workers }
    }

    /// Each worker makes `iters` operations; returns the time for `iters`
    /// operations by the pair as a whole: wall time / 2 (aggregate per call).
    pub fn run(&self, iters: u64) -> Duration {
        let s = &self.shared;
        s.each.store(iters, Ordering::Relaxed);
        s.start.wait();
        s.done.wait();
        let a = *s.spans[0].lock().expect("not poisoned");
        let b = *s.spans[1].lock().expect("not poisoned");
        (a.1.max(b.1) - a.0.min(b.0)) / 2
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        self.shared.start.wait();
        for w in self.workers.drain(..) {
            w.join().expect("a pair worker panicked");
        }
    }
}
