//! A cache-miss storm, with and without a `Group` in front of the backend.
//!
//! 64 threads ask a slow backend (20 ms a call) for a few hot keys for two
//! seconds. Without coalescing every request is a backend call; with a
//! `Group`, concurrent requests for one key share a single call.
//!
//! Run: `cargo run --release --example stampede`

use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use singleflight_sync::Group;

const THREADS: usize = 64;
const KEYS: u64 = 8;
const LATENCY: Duration = Duration::from_millis(20);
const RUN_FOR: Duration = Duration::from_secs(2);

/// The slow thing everyone wants: counts its calls and its peak concurrency.
#[derive(Default)]
struct Backend {
    calls: AtomicUsize,
    running: AtomicUsize,
    peak: AtomicUsize,
}

impl Backend {
    fn fetch(&self, key: u64) -> String {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let now = self.running.fetch_add(1, Ordering::Relaxed) + 1;
        self.peak.fetch_max(now, Ordering::Relaxed);
        thread::sleep(LATENCY);
        self.running.fetch_sub(1, Ordering::Relaxed);
        format!("row {key}")
    }
}

struct Outcome {
    requests: usize,
    calls: usize,
    peak: usize,
}

fn run(coalesce: bool) -> Outcome {
    let backend = Backend::default();
    let group: Group<u64, String> = Group::new();
    let requests = AtomicUsize::new(0);
    let stop = Instant::now() + RUN_FOR;
    thread::scope(|s| {
        for t in 0..THREADS {
            let (backend, group, requests) = (&backend, &group, &requests);
            s.spawn(move || {
                let mut i = t as u64;
                while Instant::now() < stop {
                    let key = i % KEYS;
                    let row = if coalesce {
                        group.work(&key, || backend.fetch(key))
                    } else {
                        backend.fetch(key)
                    };
                    assert_eq!(row, format!("row {key}"));
                    requests.fetch_add(1, Ordering::Relaxed);
                    i += 1;
                }
            });
        }
    });
    Outcome {
        requests: requests.into_inner(),
        calls: backend.calls.into_inner(),
        peak: backend.peak.into_inner(),
    }
}

fn main() {
    println!(
        "{THREADS} threads, {KEYS} hot keys, backend latency {LATENCY:?}, {RUN_FOR:?} per mode\n"
    );
    println!(
        "{:<14} {:>9} {:>14} {:>11} {:>13}",
        "mode", "requests", "backend calls", "calls saved", "peak backend"
    );
    for (name, coalesce) in [("no coalescing", false), ("Group::work", true)] {
        let o = run(coalesce);
        let saved = 100.0 * (1.0 - o.calls as f64 / o.requests as f64);
        println!(
            "{name:<14} {:>9} {:>14} {:>10.1}% {:>13}",
            o.requests, o.calls, saved, o.peak
        );
    }
}
