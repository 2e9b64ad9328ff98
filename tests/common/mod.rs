//! Helpers shared by the integration tests.
#![allow(dead_code)] // each test file uses its own subset

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

/// Runs `f` on its own thread and fails the test if it has not finished
/// within `limit`: a deadlock becomes a failure instead of a hung CI job.
pub fn watchdog<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    let worker = thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(limit) {
        Ok(value) => {
            worker.join().unwrap();
            value
        }
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("watchdog: not finished after {limit:?}: deadlock?")
        }
        // The worker panicked before sending: show its panic.
        Err(mpsc::RecvTimeoutError::Disconnected) => match worker.join() {
            Err(payload) => std::panic::resume_unwind(payload),
            Ok(()) => unreachable!("the worker sends before it returns"),
        },
    }
}

/// Spins (yielding) until `cond` holds; panics after 10 s so a test cannot
/// hang on it.
pub fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "gave up waiting for {what}"
        );
        thread::yield_now();
    }
}

/// Counts how often values are created by `clone` and how often any copy is
/// dropped, so a test can prove "cloned once per follower, dropped once".
#[derive(Debug, Default)]
pub struct Counts {
    pub clones: AtomicUsize,
    pub drops: AtomicUsize,
}

impl Counts {
    pub fn clones(&self) -> usize {
        self.clones.load(Ordering::SeqCst)
    }
    pub fn drops(&self) -> usize {
        self.drops.load(Ordering::SeqCst)
    }
}

#[derive(Debug)]
pub struct Tracked {
    pub tag: u64,
    counts: Arc<Counts>,
}

impl Tracked {
    pub fn new(tag: u64, counts: &Arc<Counts>) -> Self {
        Tracked {
            tag,
            counts: counts.clone(),
        }
    }
}

impl Clone for Tracked {
    fn clone(&self) -> Self {
        self.counts.clones.fetch_add(1, Ordering::SeqCst);
        Tracked {
            tag: self.tag,
            counts: self.counts.clone(),
        }
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.counts.drops.fetch_add(1, Ordering::SeqCst);
    }
}

/// Runs `f`, expecting it to panic, and returns the payload.
pub fn expect_panic<R>(f: impl FnOnce() -> R) -> Box<dyn std::any::Any + Send> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(_) => panic!("expected a panic"),
        Err(payload) => payload,
    }
}

/// The text of a `panic!` payload.
pub fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        panic!("payload is not a string")
    }
}

/// A thread that invalidates the keys `base..base + 64` of `cache` in turn,
/// as fast as it can, until [`stop`](Self::stop): the "another key is
/// invalidated at that moment" of the cache's invalidation tests.
pub struct Invalidator {
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: thread::JoinHandle<u64>,
}

impl Invalidator {
    pub fn start<S>(cache: &Arc<singleflight_sync::TtlCache<u64, u64, S>>, base: u64) -> Self
    where
        S: std::hash::BuildHasher + Send + Sync + 'static,
    {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (cache, flag) = (cache.clone(), stop.clone());
        let thread = thread::spawn(move || {
            let mut i = 0u64;
            while !flag.load(Ordering::Relaxed) {
                cache.invalidate(&(base + i % 64));
                i += 1;
            }
            i
        });
        Invalidator { stop, thread }
    }

    /// Stops the thread; returns how many invalidations it made.
    pub fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}
