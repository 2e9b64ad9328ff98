//! `TtlCache`: loads once, stores before release, errors, invalidation,
//! bounds and expiry, with a manual clock so nothing sleeps on TTLs.

mod common;

use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Barrier, Mutex};
use std::thread;
use std::time::Duration;

use common::{expect_panic, wait_for, watchdog};
use singleflight_sync::{LeaderPanicked, ManualClock, TtlCache};

const LONG: Duration = Duration::from_secs(20);
const MINUTE: Duration = Duration::from_secs(60);

fn cache_with(clock: &ManualClock) -> TtlCache<String, u32> {
    TtlCache::builder()
        .ttl(MINUTE)
        .clock(clock.clone())
        .build()
        .unwrap()
}

#[test]
fn concurrent_misses_load_once() {
    const CALLERS: usize = 8;
    watchdog(LONG, || {
        let cache: Arc<TtlCache<String, u32>> = Arc::new(TtlCache::new(MINUTE));
        let loads = Arc::new(AtomicUsize::new(0));
        let start = Arc::new(Barrier::new(CALLERS));
        let handles: Vec<_> = (0..CALLERS)
            .map(|_| {
                let (cache, loads, start) = (cache.clone(), loads.clone(), start.clone());
                thread::spawn(move || {
                    start.wait();
                    cache.get_or_load("k", || {
                        loads.fetch_add(1, Ordering::SeqCst);
                        thread::sleep(Duration::from_millis(100));
                        7
                    })
                })
            })
            .collect();
        for h in handles {
            assert_eq!(h.join().unwrap(), 7);
        }
        assert_eq!(loads.load(Ordering::SeqCst), 1);
        assert_eq!(cache.get("k"), Some(7));
    });
}

/// A key whose second `hash` call (the one a missing caller makes on its way
/// into the load's flight) waits for a signal: it holds a caller exactly at
/// the boundary, after it found no entry and before it joins a flight.
#[derive(Clone)]
struct Boundary {
    id: u32,
    hashes: Arc<AtomicUsize>,
    gate: Arc<Mutex<Option<mpsc::Receiver<()>>>>,
}

impl Hash for Boundary {
    fn hash<H: Hasher>(&self, state: &mut H) {
        if self.hashes.fetch_add(1, Ordering::SeqCst) == 1 {
            if let Some(gate) = self.gate.lock().unwrap().take() {
                gate.recv().unwrap();
            }
        }
        self.id.hash(state);
    }
}

impl PartialEq for Boundary {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

impl Eq for Boundary {}

#[test]
fn a_caller_at_the_boundary_finds_the_stored_value_instead_of_loading() {
    watchdog(LONG, || {
        let cache: Arc<TtlCache<Boundary, u32>> = Arc::new(TtlCache::new(MINUTE));
        let (open, gate) = mpsc::channel();
        let late = Boundary {
            id: 1,
            hashes: Arc::new(AtomicUsize::new(0)),
            gate: Arc::new(Mutex::new(Some(gate))),
        };
        let loads = Arc::new(AtomicUsize::new(0));
        let (c, l, k) = (cache.clone(), loads.clone(), late.clone());
        // Misses, then stops at the boundary.
        let waiter = thread::spawn(move || {
            c.get_or_load(&k, || {
                l.fetch_add(1, Ordering::SeqCst);
                2
            })
        });
        wait_for("the late caller at the boundary", || {
            late.hashes.load(Ordering::SeqCst) == 2
        });
        // A whole load starts and ends meanwhile.
        let plain = Boundary {
            id: 1,
            hashes: Arc::new(AtomicUsize::new(5)),
            gate: Arc::new(Mutex::new(None)),
        };
        let first = cache.get_or_load(&plain, || {
            loads.fetch_add(1, Ordering::SeqCst);
            1
        });
        assert_eq!(first, 1);
        open.send(()).unwrap();
        // It leads a new flight, which looks in the cache first.
        assert_eq!(waiter.join().unwrap(), 1, "found the stored value");
        assert_eq!(loads.load(Ordering::SeqCst), 1, "no second load");
    });
}

#[test]
fn errors_are_shared_by_one_load_and_not_cached() {
    const CALLERS: usize = 8;
    watchdog(LONG, || {
        let cache: Arc<TtlCache<String, u32>> = Arc::new(TtlCache::new(MINUTE));
        let loads = Arc::new(AtomicUsize::new(0));
        let start = Arc::new(Barrier::new(CALLERS));
        let handles: Vec<_> = (0..CALLERS)
            .map(|_| {
                let (cache, loads, start) = (cache.clone(), loads.clone(), start.clone());
                thread::spawn(move || {
                    start.wait();
                    cache.try_get_or_load("k", || {
                        loads.fetch_add(1, Ordering::SeqCst);
                        thread::sleep(Duration::from_millis(100));
                        Err::<u32, _>(format!("backend {}", 503))
                    })
                })
            })
            .collect();
        for h in handles {
            assert_eq!(
                h.join().unwrap(),
                Err(std::sync::Arc::new("backend 503".to_string()))
            );
        }
        assert_eq!(
            loads.load(Ordering::SeqCst),
            1,
            "one execution for eight callers"
        );
        assert_eq!(cache.get("k"), None);
        assert!(cache.is_empty(), "errors are not cached by default");
        assert_eq!(cache.try_get_or_load::<_, String>("k", || Ok(1)), Ok(1));
    });
}

#[test]
fn with_error_ttl_the_error_is_served_until_it_expires() {
    let clock = ManualClock::new();
    let cache: TtlCache<String, u32> = TtlCache::builder()
        .ttl(MINUTE)
        .error_ttl(Duration::from_secs(5))
        .clock(clock.clone())
        .build()
        .unwrap();
    let loads = AtomicUsize::new(0);
    let failing = || {
        loads.fetch_add(1, Ordering::SeqCst);
        Err::<u32, _>("down")
    };
    assert_eq!(
        cache.try_get_or_load("k", failing),
        Err(std::sync::Arc::new("down"))
    );
    clock.advance(Duration::from_secs(4));
    assert_eq!(
        cache.try_get_or_load("k", failing),
        Err(std::sync::Arc::new("down")),
        "served from the cache"
    );
    assert_eq!(loads.load(Ordering::SeqCst), 1);
    assert_eq!(cache.get("k"), None, "an error is not a value");
    clock.advance(Duration::from_secs(1));
    assert_eq!(
        cache.try_get_or_load::<_, &str>("k", || Ok(9)),
        Ok(9),
        "expired: loads again"
    );
}

#[test]
fn invalidate_during_a_load_wins() {
    let cache: TtlCache<String, u32> = TtlCache::new(MINUTE);
    let v = cache.get_or_load("k", || {
        cache.invalidate("k");
        5
    });
    assert_eq!(v, 5, "the load's callers still get its value");
    assert_eq!(cache.get("k"), None, "but it is not stored");
    assert_eq!(cache.get_or_load("k", || 6), 6);
    assert!(cache.invalidate("k"));
    assert!(!cache.invalidate("k"));
}

#[test]
fn clear_empties_and_keeps_running_loads_out() {
    let cache: TtlCache<String, u32> = TtlCache::new(MINUTE);
    for i in 0..100 {
        cache.insert(format!("k{i}"), i);
    }
    assert_eq!(cache.len(), 100);
    let v = cache.get_or_load("x", || {
        cache.clear();
        1
    });
    assert_eq!(v, 1);
    assert!(cache.is_empty());
}

#[test]
fn entries_expire_after_their_ttl() {
    let clock = ManualClock::new();
    let cache = cache_with(&clock);
    cache.insert("a".into(), 1);
    cache.insert_with_ttl("b".into(), 2, Duration::from_secs(1));
    assert_eq!(
        cache.get_or_load_with_ttl("c", Duration::from_secs(2), || 3),
        3
    );
    clock.advance(Duration::from_secs(1));
    assert_eq!(
        (cache.get("a"), cache.get("b"), cache.get("c")),
        (Some(1), None, Some(3))
    );
    clock.advance(Duration::from_secs(1));
    assert_eq!(cache.get("c"), None);
    clock.advance(Duration::from_secs(58));
    assert_eq!(cache.get("a"), None);
    assert_eq!(
        cache.get_or_load("a", || 10),
        10,
        "past its TTL a caller loads"
    );
}

#[test]
fn never_more_than_max_entries() {
    for max in [1, 7, 64, 1000] {
        let cache: TtlCache<u64, u64> = TtlCache::builder()
            .ttl(MINUTE)
            .max_entries(max)
            .build()
            .unwrap();
        for k in 0..(max as u64 * 5) {
            cache.get_or_load(&k, || k);
            cache.get_or_load(&(k / 2), || k / 2);
            assert!(
                cache.len() <= max,
                "{} entries with max_entries = {max}",
                cache.len()
            );
        }
        assert!(!cache.is_empty());
    }
}

#[test]
fn expired_entries_are_reclaimed_by_later_writes_without_a_thread() {
    const OLD: u64 = 100_000;
    let clock = ManualClock::new();
    let cache: TtlCache<u64, u64> = TtlCache::builder()
        .ttl(MINUTE)
        .max_entries(1_000_000)
        .clock(clock.clone())
        .build()
        .unwrap();
    for k in 0..OLD {
        cache.insert(k, k);
    }
    assert_eq!(cache.len(), OLD as usize);
    clock.advance(MINUTE);
    // Each write sweeps a few slots of its shard: 50,000 writes on other
    // keys are enough for 100,000 expired entries, spread over the shards.
    const NEW: u64 = 50_000;
    for k in OLD..OLD + NEW {
        cache.get_or_load(&k, || k);
    }
    assert_eq!(
        cache.len(),
        NEW as usize,
        "every expired entry was reclaimed"
    );
}

/// A plain LRU of `capacity` keys, to compare eviction against.
fn lru_hits(trace: &[u64], capacity: usize) -> usize {
    let mut order = std::collections::VecDeque::new();
    let mut present = std::collections::HashSet::new();
    let mut hits = 0;
    for &k in trace {
        if present.contains(&k) {
            hits += 1;
            let at = order.iter().position(|&x| x == k).unwrap();
            order.remove(at);
        } else if present.len() == capacity {
            let old = order.pop_front().unwrap();
            present.remove(&old);
        }
        present.insert(k);
        order.push_back(k);
    }
    hits
}

#[test]
fn eviction_keeps_hot_keys_better_than_lru() {
    use rand::{Rng, SeedableRng};
    const KEYS: usize = 10_000;
    const CAPACITY: usize = 200;
    // Zipf(0.99) by inverse transform over the harmonic weights.
    let weights: Vec<f64> = (1..=KEYS).map(|r| 1.0 / (r as f64).powf(0.99)).collect();
    let total: f64 = weights.iter().sum();
    let mut cdf = Vec::with_capacity(KEYS);
    let mut acc = 0.0;
    for w in &weights {
        acc += w / total;
        cdf.push(acc);
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let trace: Vec<u64> = (0..100_000)
        .map(|_| {
            let u: f64 = rng.gen();
            cdf.partition_point(|&c| c < u) as u64
        })
        .collect();
    let cache: TtlCache<u64, u64> = TtlCache::builder()
        .ttl(MINUTE)
        .max_entries(CAPACITY)
        .build()
        .unwrap();
    let mut misses = 0;
    for &k in &trace {
        cache.get_or_load(&k, || {
            misses += 1;
            k
        });
    }
    let ours = trace.len() - misses;
    let lru = lru_hits(&trace, CAPACITY);
    assert!(ours > lru, "hits: ours {ours}, LRU {lru}");
    // The admission lets a rare newcomer in at random (1 in 128 duels, so
    // an attack cannot pin the cache), which may have just pushed one hot
    // key out; it comes back at its next request.
    let resident = (0..10).filter(|hot| cache.get(hot) == Some(*hot)).count();
    assert!(
        resident >= 9,
        "only {resident} of the 10 hottest keys are cached"
    );
}

#[test]
fn a_panicking_loader_caches_nothing_and_followers_get_the_payload() {
    watchdog(LONG, || {
        let cache: Arc<TtlCache<String, u32>> = Arc::new(
            TtlCache::builder()
                .ttl(MINUTE)
                .name("profiles")
                .build()
                .unwrap(),
        );
        let (go_tx, go) = mpsc::channel::<()>();
        let (in_tx, in_loader) = mpsc::channel::<()>();
        let c = cache.clone();
        let leader = thread::spawn(move || {
            expect_panic(|| {
                c.get_or_load("k", || {
                    in_tx.send(()).unwrap();
                    go.recv().unwrap();
                    panic!("db gone")
                })
            })
        });
        in_loader.recv().unwrap();
        let c = cache.clone();
        let follower = thread::spawn(move || expect_panic(|| c.get_or_load("k", || 0)));
        wait_for("the follower to join", || cache.waiters("k") == 1);
        go_tx.send(()).unwrap();
        assert_eq!(common::panic_text(&*leader.join().unwrap()), "db gone");
        let payload = follower.join().unwrap();
        let cause = payload
            .downcast_ref::<LeaderPanicked>()
            .expect("the follower joined the load");
        assert_eq!(cause.message(), "db gone");
        assert_eq!(cause.group(), Some("profiles"));
        assert_eq!(cache.get("k"), None, "nothing cached");
        assert_eq!(cache.get_or_load("k", || 3), 3, "the next call loads again");
    });
}

#[test]
fn bad_settings_are_refused_with_the_setting_named() {
    let base = || TtlCache::<String, u32>::builder().ttl(MINUTE);
    let cases = [
        (
            TtlCache::<String, u32>::builder().build().unwrap_err(),
            "ttl",
        ),
        (base().ttl(Duration::ZERO).build().unwrap_err(), "ttl"),
        (base().max_entries(0).build().unwrap_err(), "max_entries"),
        (base().jitter(1.0).build().unwrap_err(), "jitter"),
        (base().jitter(-0.1).build().unwrap_err(), "jitter"),
        (base().jitter(f64::NAN).build().unwrap_err(), "jitter"),
        (
            base().error_ttl(Duration::ZERO).build().unwrap_err(),
            "error_ttl",
        ),
        (
            base().refresh_after(MINUTE).build().unwrap_err(),
            "refresh_after",
        ),
        (
            base().refresh_after(Duration::ZERO).build().unwrap_err(),
            "refresh_after",
        ),
        (
            base().early_refresh(-1.0).build().unwrap_err(),
            "early_refresh",
        ),
        (
            base().early_refresh(f64::NAN).build().unwrap_err(),
            "early_refresh",
        ),
    ];
    for (err, setting) in cases {
        assert_eq!(err.setting(), setting);
        assert!(err.to_string().contains(&format!("`{setting}`")), "{err}");
    }
    let payload = expect_panic(|| TtlCache::<String, u32>::new(Duration::ZERO));
    assert!(common::panic_text(&*payload).contains("ttl"));
}

#[test]
fn an_infallible_caller_joining_a_failed_fallible_load_runs_its_own_loader() {
    watchdog(LONG, || {
        let cache: Arc<TtlCache<String, u32>> = Arc::new(TtlCache::new(MINUTE));
        let (go_tx, go) = mpsc::channel::<()>();
        let (in_tx, in_loader) = mpsc::channel::<()>();
        let c = cache.clone();
        let failing = thread::spawn(move || {
            c.try_get_or_load("k", || {
                in_tx.send(()).unwrap();
                go.recv().unwrap();
                Err::<u32, _>("down")
            })
        });
        in_loader.recv().unwrap();
        let c = cache.clone();
        let infallible = thread::spawn(move || c.get_or_load("k", || 8));
        wait_for("the infallible caller to join", || cache.waiters("k") == 1);
        go_tx.send(()).unwrap();
        assert_eq!(failing.join().unwrap(), Err(std::sync::Arc::new("down")));
        assert_eq!(infallible.join().unwrap(), 8);
    });
}
