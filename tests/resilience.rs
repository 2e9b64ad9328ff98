//! Issue 16: the fail-safe under an outage, soft and hard timeouts against a
//! slow backend, and the drop bound with a hung loader.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::{wait_for, watchdog};
use rand::{rngs::StdRng, Rng, SeedableRng};
use singleflight_sync::*;

const LIMIT: Duration = Duration::from_secs(120);
const MS: Duration = Duration::from_millis(1);

/// A backend that can be down, recording each call's key and clock time.
struct Backend {
    down: AtomicBool,
    version: AtomicU64,
    calls: Mutex<Vec<(u64, Duration)>>,
    clock: ManualClock,
}

impl Backend {
    fn new(clock: &ManualClock) -> Arc<Self> {
        Arc::new(Backend {
            down: AtomicBool::new(false),
            version: AtomicU64::new(1),
            calls: Mutex::default(),
            clock: clock.clone(),
        })
    }

    fn fetch(&self, key: u64) -> Result<u64, String> {
        self.calls.lock().unwrap().push((key, self.clock.now()));
        if self.down.load(Ordering::SeqCst) {
            return Err(format!("backend down for {key}"));
        }
        Ok(key * 1_000 + self.version.load(Ordering::SeqCst))
    }

    fn calls(&self) -> usize {
        self.calls.lock().unwrap().len()
    }
}

struct Outage {
    errors: usize,
    calls_in_outage: usize,
    requests: usize,
    stale_answers: usize,
}

/// 64 threads over 1,000 keys with a TTL of 100 ms; the backend fails every
/// call for 2 s of the manual clock, stepped 50 ms at a time with every
/// thread's requests in between; then it recovers.
fn outage(cache: Arc<TtlCache<u64, u64>>, backend: Arc<Backend>, clock: ManualClock) -> Outage {
    const THREADS: usize = 64;
    const KEYS: u64 = 1_000;
    const STEPS: u32 = 40;
    for k in 0..KEYS {
        let b = &backend;
        assert_eq!(
            cache.try_get_or_load(&k, || b.fetch(k)).unwrap(),
            k * 1_000 + 1
        );
    }
    backend.calls.lock().unwrap().clear();
    backend.down.store(true, Ordering::SeqCst);
    // The outage begins as every entry expires.
    clock.advance(100 * MS);
    let errors = AtomicUsize::new(0);
    let stale = AtomicUsize::new(0);
    let requests = AtomicUsize::new(0);
    let step = Barrier::new(THREADS + 1);
    thread::scope(|s| {
        for t in 0..THREADS {
            let (cache, backend, step) = (&cache, &backend, &step);
            let (errors, stale, requests) = (&errors, &stale, &requests);
            s.spawn(move || {
                let mut rng = StdRng::seed_from_u64(t as u64);
                for _ in 0..STEPS {
                    step.wait();
                    for _ in 0..40 {
                        let k = rng.gen_range(0..KEYS);
                        requests.fetch_add(1, Ordering::Relaxed);
                        match cache.get_or_load_entry(&k, || backend.fetch(k)) {
                            Ok(entry) => {
                                assert_eq!(
                                    *entry.value(),
                                    k * 1_000 + 1,
                                    "the value from before the outage"
                                );
                                stale.fetch_add(usize::from(entry.is_stale()), Ordering::Relaxed);
                            }
                            Err(e) => {
                                assert_eq!(*e, format!("backend down for {k}"));
                                errors.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                    step.wait();
                }
            });
        }
        for _ in 0..STEPS {
            step.wait();
            step.wait();
            clock.advance(50 * MS);
        }
    });
    let calls_in_outage = backend.calls();
    Outage {
        errors: errors.into_inner(),
        calls_in_outage,
        requests: requests.into_inner(),
        stale_answers: stale.into_inner(),
    }
}

fn cache_with(clock: &ManualClock, fail_safe: bool) -> Arc<TtlCache<u64, u64>> {
    let builder = TtlCache::builder()
        .ttl(100 * MS)
        .max_entries(10_000)
        .clock(clock.clone());
    let builder = match fail_safe {
        true => builder
            .fail_safe(Duration::from_secs(3600))
            .fail_safe_throttle(500 * MS),
        false => builder,
    };
    Arc::new(builder.build().unwrap())
}

#[test]
fn with_fail_safe_an_outage_reaches_no_caller_and_the_backend_is_throttled() {
    watchdog(LIMIT, || {
        let clock = ManualClock::new();
        let backend = Backend::new(&clock);
        let cache = cache_with(&clock, true);
        let o = outage(cache.clone(), backend.clone(), clock.clone());
        assert_eq!(o.errors, 0, "no error reaches a caller during the outage");
        assert!(
            o.stale_answers > o.requests / 2,
            "{} of {} stale",
            o.stale_answers,
            o.requests
        );
        // At most one backend call per key per throttle period.
        let mut by_key: HashMap<u64, Vec<Duration>> = HashMap::new();
        for &(k, at) in backend.calls.lock().unwrap().iter() {
            by_key.entry(k).or_default().push(at);
        }
        for (k, times) in &by_key {
            for pair in times.windows(2) {
                assert!(pair[1] - pair[0] >= 500 * MS, "key {k} tried at {pair:?}");
            }
            assert!(
                times.len() <= 5,
                "key {k}: {} tries in 2 s with a 500 ms throttle",
                times.len()
            );
        }
        assert_eq!(
            o.calls_in_outage,
            by_key.values().map(Vec::len).sum::<usize>()
        );
        assert!(cache.stats().fail_safe_hits >= o.stale_answers as u64);

        // Recovery: the first successful load replaces the stale value.
        backend.down.store(false, Ordering::SeqCst);
        backend.version.store(2, Ordering::SeqCst);
        clock.advance(500 * MS);
        for k in 0..1_000 {
            let entry = cache.get_or_load_entry(&k, || backend.fetch(k)).unwrap();
            assert_eq!(
                (*entry.value(), entry.is_stale()),
                (k * 1_000 + 2, false),
                "key {k}"
            );
            assert_eq!(cache.get(&k), Some(k * 1_000 + 2));
        }
    });
}

#[test]
fn without_fail_safe_every_flights_error_reaches_its_callers() {
    watchdog(LIMIT, || {
        let clock = ManualClock::new();
        let backend = Backend::new(&clock);
        let cache = cache_with(&clock, false);
        let o = outage(cache.clone(), backend.clone(), clock);
        // Every request found its key expired and failed with its flight.
        assert_eq!(o.errors, o.requests);
        assert_eq!(o.stale_answers, 0);
        assert!(o.calls_in_outage >= 1_000 && o.calls_in_outage <= o.requests);
        assert_eq!(cache.stats().fail_safe_hits, 0);
        assert_eq!(cache.stats().load_errors, o.calls_in_outage as u64);
    });
}

#[test]
fn a_panicking_loader_is_answered_by_the_kept_value_until_max_stale() {
    let clock = ManualClock::new();
    let cache: TtlCache<String, u32> = TtlCache::builder()
        .ttl(Duration::from_secs(1))
        .fail_safe(Duration::from_secs(10))
        .fail_safe_throttle(Duration::from_secs(4))
        .clock(clock.clone())
        .build()
        .unwrap();
    cache.get_or_load("k", || 1);
    clock.advance(Duration::from_secs(1));
    let got = cache.get_or_load("k", || panic!("backend exploded"));
    assert_eq!(got, 1, "the kept value answers for a panic");
    assert_eq!(cache.get("k"), Some(1), "served for the throttle");
    clock.advance(Duration::from_secs(4));
    assert_eq!(cache.get("k"), None, "the throttle passed: expired again");
    assert_eq!(cache.try_get_or_load("k", || Err("down")).unwrap(), 1);
    // 1 s TTL + 10 s of fail-safe: past that, nothing is kept.
    clock.advance(Duration::from_secs(6));
    assert_eq!(
        *cache.try_get_or_load("k", || Err("down")).unwrap_err(),
        "down"
    );
    let stats = cache.stats();
    assert_eq!((stats.fail_safe_hits, stats.load_errors), (3, 3));
}

#[test]
fn followers_of_a_failed_load_get_the_kept_value_too() {
    watchdog(LIMIT, || {
        const CALLERS: usize = 8;
        let clock = ManualClock::new();
        let cache: TtlCache<String, u32> = TtlCache::builder()
            .ttl(Duration::from_secs(1))
            .fail_safe(Duration::from_secs(60))
            .clock(clock.clone())
            .build()
            .unwrap();
        cache.get_or_load("k", || 1);
        clock.advance(Duration::from_secs(1));
        let runs = AtomicUsize::new(0);
        let answers: Vec<_> = thread::scope(|s| {
            let hs: Vec<_> = (0..CALLERS)
                .map(|_| {
                    s.spawn(|| {
                        cache.get_or_load_entry("k", || {
                            runs.fetch_add(1, Ordering::Relaxed);
                            wait_for("the followers", || cache.waiters("k") == CALLERS - 1);
                            Err::<u32, _>("down")
                        })
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap().unwrap()).collect()
        });
        assert_eq!(runs.load(Ordering::Relaxed), 1);
        assert!(
            answers.iter().all(|e| *e.value() == 1 && e.is_stale()),
            "{answers:?}"
        );
        assert_eq!(cache.stats().fail_safe_hits, CALLERS as u64);
    });
}

/// A loader that takes 2 s unless its token is cancelled first.
fn slow(
    value: u32,
    runs: &Arc<AtomicUsize>,
) -> impl FnOnce(&CancelToken) -> Result<u32, String> + Send + 'static {
    let runs = runs.clone();
    move |token| {
        runs.fetch_add(1, Ordering::SeqCst);
        token.wait_timeout(Duration::from_secs(2));
        Ok(value)
    }
}

#[test]
fn a_soft_timeout_answers_with_the_kept_value_and_the_load_goes_on() {
    watchdog(LIMIT, || {
        let clock = ManualClock::new();
        let cache: Arc<TtlCache<String, u32>> = Arc::new(
            TtlCache::builder()
                .ttl(Duration::from_secs(10))
                .fail_safe(Duration::from_secs(600))
                .soft_timeout(50 * MS)
                .clock(clock.clone())
                .build()
                .unwrap(),
        );
        cache.insert("k".into(), 1);
        clock.advance(Duration::from_secs(10));
        let runs = Arc::new(AtomicUsize::new(0));
        let waited: Vec<(Entry<u32>, Duration)> = thread::scope(|s| {
            let hs: Vec<_> = (0..4)
                .map(|_| {
                    let (cache, runs) = (cache.clone(), runs.clone());
                    s.spawn(move || {
                        let start = Instant::now();
                        let entry = cache
                            .get_or_load_entry_detached("k", slow(2, &runs))
                            .unwrap();
                        (entry, start.elapsed())
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for (entry, took) in &waited {
            assert_eq!((*entry.value(), entry.is_stale()), (1, true));
            // About 50 ms, far from the backend's 2 s.
            assert!(*took < Duration::from_millis(1_500), "waited {took:?}");
        }
        assert_eq!(
            runs.load(Ordering::SeqCst),
            1,
            "one load for the four callers"
        );
        wait_for("the load to store its value", || cache.get("k") == Some(2));
        assert_eq!(cache.stats().loads, 1);
    });
}

#[test]
fn a_hard_timeout_bounds_the_wait_with_nothing_kept() {
    watchdog(LIMIT, || {
        let cache: TtlCache<String, u32> = TtlCache::builder()
            .ttl(Duration::from_secs(60))
            .soft_timeout(20 * MS)
            .hard_timeout(100 * MS)
            .build()
            .unwrap();
        let runs = Arc::new(AtomicUsize::new(0));
        let start = Instant::now();
        let r = cache.get_or_load_entry_detached("k", slow(7, &runs));
        assert!(matches!(r, Err(TryError::Timeout)), "{r:?}");
        assert!(start.elapsed() < Duration::from_millis(1_500));
        wait_for("the load to finish and store", || cache.get("k") == Some(7));
        // A fast load answers at once, fresh.
        let fresh = cache
            .get_or_load_entry_detached("other", |_| Ok::<_, String>(3))
            .unwrap();
        assert_eq!((*fresh.value(), fresh.is_stale()), (3, false));
        let failed = cache.get_or_load_entry_detached("bad", |_| Err::<u32, _>("no".to_string()));
        assert!(matches!(failed, Err(TryError::Failed(e)) if *e == "no"));
    });
}

#[test]
fn dropping_the_cache_cancels_its_loaders_and_returns_within_the_bound() {
    watchdog(LIMIT, || {
        let clock = ManualClock::new();
        let cache: TtlCache<String, u32> = TtlCache::builder()
            .ttl(Duration::from_secs(60))
            .refresh_after(Duration::from_secs(30))
            .drop_timeout(200 * MS)
            .clock(clock.clone())
            .build()
            .unwrap();
        cache.insert("polite".into(), 0);
        cache.insert("hung".into(), 0);
        clock.advance(Duration::from_secs(30));
        let (started, running) = mpsc::channel();
        let cancelled = Arc::new(AtomicBool::new(false));
        let saw = cancelled.clone();
        let tx = started.clone();
        cache.get_or_load_detached("polite", move |token| {
            tx.send(()).unwrap();
            saw.store(
                token.wait_timeout(Duration::from_secs(60)),
                Ordering::SeqCst,
            );
            1
        });
        // A loader that ignores its token and hangs until the test lets go.
        let (release, hang) = mpsc::channel::<()>();
        let hang = Mutex::new(hang);
        cache.get_or_load_detached("hung", move |_| {
            started.send(()).unwrap();
            let _ = hang.lock().unwrap().recv();
            2
        });
        running.recv().unwrap();
        running.recv().unwrap();
        let start = Instant::now();
        drop(cache);
        let took = start.elapsed();
        assert!(
            took < Duration::from_secs(10),
            "drop took {took:?} with a hung loader"
        );
        wait_for("the polite loader to see its token cancelled", || {
            cancelled.load(Ordering::SeqCst)
        });
        drop(release);
    });
}

#[test]
fn no_loader_starts_after_the_drop_returns() {
    watchdog(LIMIT, || {
        let clock = ManualClock::new();
        let (queue, jobs) = mpsc::channel::<Job>();
        let cache: TtlCache<String, u32> = TtlCache::builder()
            .ttl(Duration::from_secs(60))
            .refresh_after(Duration::from_secs(30))
            .clock(clock.clone())
            .spawner(move |job| queue.send(job).map_err(|_| std::io::Error::other("closed")))
            .build()
            .unwrap();
        cache.insert("k".into(), 0);
        clock.advance(Duration::from_secs(30));
        let ran = Arc::new(AtomicBool::new(false));
        let r = ran.clone();
        assert_eq!(
            cache.get_or_load_detached("k", move |_| {
                r.store(true, Ordering::SeqCst);
                1
            }),
            0
        );
        drop(cache);
        // The queued refresh runs now, after the drop: it skips its loader.
        jobs.recv().unwrap()();
        assert!(!ran.load(Ordering::SeqCst));
    });
}

#[test]
fn resilience_settings_are_checked() {
    let base = || TtlCache::<String, u32>::builder().ttl(Duration::from_secs(1));
    assert_eq!(
        base()
            .fail_safe(Duration::ZERO)
            .build()
            .unwrap_err()
            .setting(),
        "fail_safe"
    );
    assert_eq!(
        base()
            .soft_timeout(Duration::ZERO)
            .build()
            .unwrap_err()
            .setting(),
        "soft_timeout"
    );
    assert_eq!(
        base()
            .hard_timeout(Duration::ZERO)
            .build()
            .unwrap_err()
            .setting(),
        "hard_timeout"
    );
    let inverted = base()
        .soft_timeout(Duration::from_secs(2))
        .hard_timeout(Duration::from_secs(1));
    assert_eq!(inverted.build().unwrap_err().setting(), "soft_timeout");
}
