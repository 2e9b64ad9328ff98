//! The cache API of issue 15: the eviction listener, weights, idle expiry,
//! TTLs from the value, map methods, errors shared without `E: Clone`, and
//! handles.

mod common;

use std::collections::HashMap;
use std::io;
use std::panic::{self, RefUnwindSafe, UnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::{expect_panic, panic_text, wait_for, watchdog, Counts, Tracked};
use rand::{rngs::StdRng, Rng, SeedableRng};
use singleflight_sync::*;

const MINUTE: Duration = Duration::from_secs(60);
const LIMIT: Duration = Duration::from_secs(60);

type Log<K, V> = Arc<Mutex<Vec<(K, V, RemovalCause)>>>;

fn logging<K: Send + 'static, V: Send + 'static>(
    builder: TtlCacheBuilder<K, V>,
) -> (TtlCacheBuilder<K, V>, Log<K, V>) {
    let log: Log<K, V> = Arc::default();
    let sink = log.clone();
    let builder =
        builder.eviction_listener(move |k, v, cause| sink.lock().unwrap().push((k, v, cause)));
    (builder, log)
}

fn take<K: Clone, V: Clone>(log: &Log<K, V>) -> Vec<(K, V, RemovalCause)> {
    std::mem::take(&mut *log.lock().unwrap())
}

#[test]
fn the_listener_is_told_every_departure_with_its_exact_cause() {
    use RemovalCause::*;
    let clock = ManualClock::new();
    let (builder, log) = logging(
        TtlCache::<u32, u32>::builder()
            .ttl(Duration::from_secs(10))
            .max_entries(2)
            .clock(clock.clone()),
    );
    let cache = builder.build().unwrap();

    cache.insert(1, 10);
    cache.insert(1, 11);
    assert_eq!(take(&log), [(1, 10, Replaced)]);

    assert_eq!(cache.remove(&1), Some(11));
    assert!(!cache.invalidate(&1));
    assert_eq!(take(&log), [(1, 11, Invalidated)]);

    // A third key into a cache of two: exactly one leaves for size.
    cache.insert(1, 1);
    cache.insert(2, 2);
    cache.insert(3, 3);
    let told = take(&log);
    assert_eq!(told.len(), 1, "{told:?}");
    assert_eq!(told[0].2, Size);
    assert_eq!(cache.len(), 2);

    // Expired: told when a lookup reclaims it.
    clock.advance(Duration::from_secs(10));
    let survivor = [1, 2, 3].into_iter().find(|k| *k != told[0].0).unwrap();
    assert_eq!(cache.get(&survivor), None);
    assert_eq!(take(&log), [(survivor, survivor, Expired)]);

    // ... or when a write's sweep does.
    cache.insert(7, 7);
    let swept = take(&log);
    assert_eq!(swept.len(), 1, "{swept:?}");
    assert_eq!(swept[0].2, Expired);

    // A load that replaces an entry (a refresh is a load too).
    cache.insert(8, 8);
    cache.invalidate_if(|k, _| *k == 7);
    assert_eq!(take(&log), [(7, 7, Invalidated)]);
    cache.clear();
    assert_eq!(take(&log), [(8, 8, Invalidated)]);
    assert_eq!(cache.len(), 0);
    let stats = cache.stats();
    assert_eq!((stats.evictions, stats.expirations), (1, 2));
}

#[test]
fn every_entry_is_told_exactly_once_and_dropped_exactly_once() {
    watchdog(LIMIT, || {
        let counts = Arc::new(Counts::default());
        let told: Arc<Mutex<Vec<u64>>> = Arc::default();
        let sink = told.clone();
        let cache: Arc<TtlCache<u64, Tracked>> = Arc::new(
            TtlCache::builder()
                .ttl(Duration::from_millis(2))
                .max_entries(32)
                .eviction_listener(move |k, v: Tracked, _| {
                    assert_eq!(k, v.tag >> 32, "the listener gets the entry's own key");
                    sink.lock().unwrap().push(v.tag);
                })
                .build()
                .unwrap(),
        );
        // Each value's tag is unique: key in the high half, a serial below.
        let serial = Arc::new(AtomicUsize::new(0));
        let inserted: Vec<Vec<u64>> = thread::scope(|s| {
            let hs: Vec<_> = (0..4u64)
                .map(|t| {
                    let (cache, counts, serial) = (cache.clone(), counts.clone(), serial.clone());
                    s.spawn(move || {
                        let mut rng = StdRng::seed_from_u64(t);
                        let mut inserted = Vec::new();
                        let make = |k: u64| {
                            Tracked::new(
                                k << 32 | serial.fetch_add(1, Ordering::Relaxed) as u64,
                                &counts,
                            )
                        };
                        for _ in 0..5_000 {
                            let k = rng.gen_range(0..100);
                            match rng.gen_range(0..4) {
                                0 => {
                                    let v = make(k);
                                    inserted.push(v.tag);
                                    cache.insert(k, v);
                                }
                                1 => drop(cache.remove(&k)),
                                2 => drop(cache.get_or_load(&k, || make(k))),
                                _ => drop(cache.get(&k)),
                            }
                        }
                        inserted
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        cache.clear();
        let mut told = told.lock().unwrap().clone();
        let all = told.len();
        told.sort_unstable();
        told.dedup();
        assert_eq!(told.len(), all, "an entry was told twice");
        assert!(all <= serial.load(Ordering::Relaxed));
        // An insert always stores, so every inserted value left and was told.
        for tag in inserted.into_iter().flatten() {
            assert!(
                told.binary_search(&tag).is_ok(),
                "inserted value {tag:#x} never told"
            );
        }
        drop(cache);
        // Every original and every clone dropped exactly once.
        assert_eq!(
            counts.drops(),
            serial.load(Ordering::Relaxed) + counts.clones()
        );
    });
}

#[test]
fn a_panicking_listener_loses_nothing_and_poisons_nothing() {
    watchdog(LIMIT, || {
        let counts = Arc::new(Counts::default());
        let told = Arc::new(AtomicUsize::new(0));
        let seen = told.clone();
        let cache: TtlCache<u64, Tracked> = TtlCache::builder()
            .ttl(MINUTE)
            .max_entries(4)
            .eviction_listener(move |k, _, _| {
                seen.fetch_add(1, Ordering::Relaxed);
                assert!(k % 2 == 0, "listener refuses odd key {k}");
            })
            .build()
            .unwrap();
        for k in 0..100 {
            cache.insert(k, Tracked::new(k, &counts));
            assert!(cache.get(&k).is_some(), "insert then get, key {k}");
        }
        assert_eq!(cache.len(), 4);
        cache.clear();
        assert_eq!(told.load(Ordering::Relaxed), 100);
        assert!(cache.is_empty());
        // Still usable: no lock was poisoned.
        assert_eq!(cache.get_or_load(&1, || Tracked::new(1, &counts)).tag, 1);
        drop(cache);
        assert_eq!(counts.drops(), 101 + counts.clones());
    });
}

/// The weigher used by the weight tests: the value's length.
#[allow(clippy::ptr_arg)] // a weigher takes `&V`, here `&Vec<u8>`
fn bytes(_: &u64, v: &Vec<u8>) -> u32 {
    v.len() as u32
}

#[test]
fn the_weight_bound_holds_after_every_operation() {
    const MAX: u64 = 5_000;
    let cache: TtlCache<u64, Vec<u8>> = TtlCache::builder()
        .ttl(MINUTE)
        .weigher(bytes)
        .max_weight(MAX)
        .build()
        .unwrap();
    let mut rng = StdRng::seed_from_u64(3);
    let mut oversized = 0;
    for step in 0..20_000 {
        let k = rng.gen_range(0..200);
        let len = if rng.gen_ratio(1, 100) {
            6_000
        } else {
            rng.gen_range(0..400)
        };
        match rng.gen_range(0..5) {
            0 | 1 => {
                cache.insert(k, vec![0; len]);
                if len as u64 > MAX {
                    oversized += 1;
                    assert_eq!(cache.get(&k), None, "step {step}: too heavy to store");
                } else {
                    assert_eq!(
                        cache.get(&k).map(|v| v.len()),
                        Some(len),
                        "step {step}: insert then get"
                    );
                }
            }
            2 => drop(cache.get_or_load(&k, || vec![1; len])),
            3 => drop(cache.remove(&k)),
            _ => drop(cache.get(&k)),
        }
        let held: u64 = cache.iter().map(|(k, v)| u64::from(bytes(&k, &v))).sum();
        assert!(held <= MAX, "step {step}: {held} held");
        assert!(cache.weighted_size() <= MAX, "step {step}");
        assert_eq!(
            cache.weighted_size(),
            held,
            "step {step}: the count follows the entries"
        );
    }
    assert!(cache.stats().oversized >= oversized);
}

#[test]
fn the_weight_bound_holds_under_concurrent_writers() {
    const MAX: u64 = 20_000;
    watchdog(LIMIT, || {
        let cache: Arc<TtlCache<u64, Vec<u8>>> = Arc::new(
            TtlCache::builder()
                .ttl(MINUTE)
                .max_entries(10_000)
                .weigher(bytes)
                .max_weight(MAX)
                .build()
                .unwrap(),
        );
        thread::scope(|s| {
            for t in 0..4u64 {
                let cache = cache.clone();
                s.spawn(move || {
                    let mut rng = StdRng::seed_from_u64(t + 10);
                    for _ in 0..20_000 {
                        let k = rng.gen_range(0..2_000);
                        let len = rng.gen_range(1..600);
                        if rng.gen_bool(0.5) {
                            cache.insert(k, vec![0; len]);
                        } else {
                            cache.get_or_load(&k, || vec![0; len]);
                        }
                        assert!(cache.weighted_size() <= MAX);
                        assert!(cache.len() <= 10_000);
                    }
                });
            }
        });
        let held: u64 = cache.iter().map(|(k, v)| u64::from(bytes(&k, &v))).sum();
        assert_eq!(cache.weighted_size(), held);
        assert!(cache.stats().evictions > 0, "the bound was reached");
    });
}

#[test]
fn a_panicking_weigher_stores_nothing_and_the_cache_goes_on() {
    let cache: TtlCache<u64, Vec<u8>> = TtlCache::builder()
        .ttl(MINUTE)
        .weigher(|k, v: &Vec<u8>| {
            assert!(*k != 13, "unlucky key");
            v.len() as u32
        })
        .max_weight(100)
        .build()
        .unwrap();
    let payload = expect_panic(|| cache.get_or_load(&13, || vec![1]));
    assert!(panic_text(&*payload).contains("unlucky key"));
    assert_eq!((cache.len(), cache.weighted_size()), (0, 0));
    assert_eq!(cache.get_or_load(&1, || vec![1, 2]), vec![1, 2]);
    assert_eq!(cache.weighted_size(), 2);
}

#[test]
fn weights_refuse_bad_settings() {
    let no_bound = TtlCache::<u64, Vec<u8>>::builder()
        .ttl(MINUTE)
        .weigher(bytes)
        .build();
    assert_eq!(no_bound.unwrap_err().setting(), "weigher");
    let zero = TtlCache::<u64, Vec<u8>>::builder()
        .ttl(MINUTE)
        .weigher(bytes)
        .max_weight(0)
        .build();
    assert_eq!(zero.unwrap_err().setting(), "max_weight");
    let idle = TtlCache::<u64, u64>::builder()
        .ttl(MINUTE)
        .time_to_idle(Duration::ZERO)
        .build();
    assert_eq!(idle.unwrap_err().setting(), "time_to_idle");
}

#[test]
fn idle_entries_expire_and_reads_never_pass_the_ttl() {
    let clock = ManualClock::new();
    let (builder, log) = logging(
        TtlCache::<&str, u32>::builder()
            .ttl(Duration::from_secs(30))
            .time_to_idle(Duration::from_secs(10))
            .clock(clock.clone()),
    );
    let cache = builder.build().unwrap();
    cache.insert("read", 1);
    cache.insert("idle", 2);
    assert_eq!(cache.get_or_load(&"loaded", || 3), 3);
    for _ in 0..2 {
        clock.advance(Duration::from_secs(9));
        assert_eq!(cache.get("read"), Some(1));
        assert_eq!(cache.get_or_load(&"loaded", || unreachable!()), 3);
    }
    assert_eq!(cache.get("idle"), None, "not read for 18 s");
    clock.advance(Duration::from_secs(9));
    assert_eq!(
        cache.get("read"),
        Some(1),
        "27 s: within the TTL, read every 9 s"
    );
    clock.advance(Duration::from_secs(3));
    assert_eq!(
        cache.get("read"),
        None,
        "30 s: the TTL ends it, reads or not"
    );
    let causes: Vec<_> = take(&log).into_iter().map(|(k, _, c)| (k, c)).collect();
    assert_eq!(
        causes,
        [
            ("idle", RemovalCause::Expired),
            ("read", RemovalCause::Expired)
        ]
    );
}

/// TTL from the value: the create, update and default paths.
struct FromValue {
    calls: Mutex<Vec<String>>,
}

impl Expiry<String, (u32, u64)> for FromValue {
    fn expire_after_create(&self, key: &String, v: &(u32, u64), ttl: Duration) -> Duration {
        self.calls
            .lock()
            .unwrap()
            .push(format!("create {key} {ttl:?}"));
        Duration::from_secs(v.1)
    }
    fn expire_after_update(
        &self,
        key: &String,
        v: &(u32, u64),
        ttl: Duration,
        left: Duration,
    ) -> Duration {
        self.calls
            .lock()
            .unwrap()
            .push(format!("update {key} {ttl:?} {left:?}"));
        Duration::from_secs(v.1)
    }
}

#[test]
fn the_expiry_policy_sets_each_entrys_ttl_from_its_value() {
    let clock = ManualClock::new();
    let policy = Arc::new(FromValue {
        calls: Mutex::default(),
    });
    struct Shared(Arc<FromValue>);
    impl Expiry<String, (u32, u64)> for Shared {
        fn expire_after_create(&self, k: &String, v: &(u32, u64), ttl: Duration) -> Duration {
            self.0.expire_after_create(k, v, ttl)
        }
        fn expire_after_update(
            &self,
            k: &String,
            v: &(u32, u64),
            ttl: Duration,
            left: Duration,
        ) -> Duration {
            self.0.expire_after_update(k, v, ttl, left)
        }
    }
    let cache: TtlCache<String, (u32, u64)> = TtlCache::builder()
        .ttl(MINUTE)
        .expiry(Shared(policy.clone()))
        .clock(clock.clone())
        .build()
        .unwrap();
    cache.get_or_load("a", || (1, 5));
    cache.get_or_load_with_ttl("b", Duration::from_secs(7), || (2, 100));
    cache.insert("c".into(), (3, 2));
    clock.advance(Duration::from_secs(1));
    cache.insert("c".into(), (4, 20));
    assert_eq!(
        *policy.calls.lock().unwrap(),
        [
            "create a 60s",
            "create b 7s",
            "create c 60s",
            "update c 60s 1s"
        ]
    );
    clock.advance(Duration::from_secs(4));
    assert_eq!(cache.get("a"), None, "5 s from its value");
    assert_eq!(
        cache.get("b"),
        Some((2, 100)),
        "the value's 100 s, not the call's 7 s"
    );
    assert_eq!(cache.get("c"), Some((4, 20)), "the update's own TTL");
    clock.advance(Duration::from_secs(96));
    assert_eq!((cache.get("b"), cache.get("c")), (None, None));
}

#[test]
fn an_insert_inside_a_loader_is_not_overwritten_by_the_load() {
    let clock = ManualClock::new();
    let cache: TtlCache<String, u32> = TtlCache::builder()
        .ttl(MINUTE)
        .clock(clock.clone())
        .build()
        .unwrap();
    let v = cache.get_or_load("token", || {
        cache.insert_with_ttl("token".into(), 2, Duration::from_secs(5));
        1
    });
    assert_eq!(v, 1, "the load's callers get the load's value");
    assert_eq!(cache.get("token"), Some(2), "the insert wins");
    clock.advance(Duration::from_secs(5));
    assert_eq!(cache.get("token"), None, "with its own TTL");
}

#[test]
fn map_methods_see_fresh_values_only() {
    let clock = ManualClock::new();
    let cache: TtlCache<String, u32> = TtlCache::builder()
        .ttl(Duration::from_secs(10))
        .error_ttl(Duration::from_secs(10))
        .clock(clock.clone())
        .build()
        .unwrap();
    cache.insert("a".into(), 1);
    cache.insert("b".into(), 2);
    let _ = cache.try_get_or_load("err", || Err::<u32, _>("down"));
    assert!(
        cache.contains_key("a") && !cache.contains_key("err"),
        "a cached error is no value"
    );
    let mut all: Vec<_> = cache.iter().collect();
    all.sort();
    assert_eq!(all, [("a".into(), 1), ("b".into(), 2)]);
    assert_eq!(cache.retain(|k, _| k == "a"), 1);
    assert_eq!(cache.iter().count(), 1);
    clock.advance(Duration::from_secs(10));
    assert!(!cache.contains_key("a"));
    assert_eq!(cache.iter().count(), 0, "expired entries are not shown");
    assert_eq!(
        cache.remove("a"),
        None,
        "an expired entry has no value to return"
    );
    assert_eq!(cache.stats().hits, 0, "none of these is a lookup");
}

#[test]
fn retain_may_use_the_cache_from_its_predicate() {
    watchdog(LIMIT, || {
        let cache: TtlCache<u32, u32> = TtlCache::new(MINUTE);
        for k in 0..100 {
            cache.insert(k, k);
        }
        // The predicate runs with no lock held: reading and writing the
        // cache from it neither deadlocks nor removes what it wrote.
        let left = cache.retain(|k, _| {
            assert_eq!(cache.get(k), Some(*k));
            if *k == 3 {
                cache.insert(3, 33);
            }
            k % 10 != 3
        });
        assert_eq!(left, 9, "3 was replaced meanwhile, so it stays");
        assert_eq!(cache.get(&3), Some(33));
        assert_eq!(cache.len(), 91);
    });
}

#[test]
fn a_load_that_finds_nothing_is_shared_and_not_stored() {
    watchdog(LIMIT, || {
        const CALLERS: usize = 8;
        let cache: TtlCache<String, u32> = TtlCache::builder()
            .ttl(MINUTE)
            .error_ttl(MINUTE)
            .build()
            .unwrap();
        let runs = AtomicUsize::new(0);
        let found: Vec<Option<u32>> = thread::scope(|s| {
            let handles: Vec<_> = (0..CALLERS)
                .map(|_| {
                    s.spawn(|| {
                        cache.get_or_optionally_load("ghost", || {
                            runs.fetch_add(1, Ordering::Relaxed);
                            wait_for("the other callers to join", || {
                                cache.waiters("ghost") == CALLERS - 1
                            });
                            None
                        })
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(found, vec![None; CALLERS]);
        assert_eq!(runs.load(Ordering::Relaxed), 1, "one load for all callers");
        assert_eq!(cache.len(), 0, "nothing stored, even with an error TTL");
        let stats = cache.stats();
        assert_eq!((stats.loads, stats.load_errors), (1, 0));
        assert_eq!(cache.get_or_optionally_load("ghost", || Some(5)), Some(5));
        assert_eq!(cache.get("ghost"), Some(5));
    });
}

/// An error type that cannot be cloned, as a database driver's.
#[derive(Debug)]
struct DbError(io::Error);

impl std::fmt::Display for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "db: {}", self.0)
    }
}

impl std::error::Error for DbError {}

fn down() -> DbError {
    DbError(io::Error::new(io::ErrorKind::ConnectionRefused, "down"))
}

#[test]
fn a_non_clone_error_goes_through_every_fallible_entry_point() {
    watchdog(LIMIT, || {
        let clock = ManualClock::new();
        let cache: TtlCache<String, u32> = TtlCache::builder()
            .ttl(MINUTE)
            .refresh_after(Duration::from_secs(30))
            .clock(clock.clone())
            .build()
            .unwrap();
        let kind = |e: Arc<DbError>| e.0.kind();
        assert_eq!(
            cache.try_get_or_load("a", || Err(down())).map_err(kind),
            Err(io::ErrorKind::ConnectionRefused)
        );
        assert_eq!(
            cache
                .try_get_or_load_with_ttl("a", MINUTE, || Err(down()))
                .map_err(kind),
            Err(io::ErrorKind::ConnectionRefused)
        );
        assert_eq!(
            cache
                .try_get_or_load_detached("a", |_| Err(down()))
                .map_err(kind),
            Err(io::ErrorKind::ConnectionRefused)
        );
        assert_eq!(
            cache
                .try_get_or_load_detached("a", |_| Ok::<_, DbError>(1))
                .unwrap(),
            1
        );
        clock.advance(Duration::from_secs(30));
        // A failed detached refresh keeps the value and counts the error.
        assert_eq!(
            cache
                .try_get_or_load_detached("a", |_| Err(down()))
                .unwrap(),
            1
        );
        wait_for("the refresh to fail", || cache.stats().load_errors == 4);
        assert_eq!(cache.get("a"), Some(1));

        // Shared between every caller of one flight: one `Arc`, no clone of E.
        let group: Group<String, Result<u32, Arc<DbError>>> = Group::new();
        let barrier = Barrier::new(4);
        let errors: Vec<Arc<DbError>> = thread::scope(|s| {
            let hs: Vec<_> = (0..4)
                .map(|_| {
                    s.spawn(|| {
                        barrier.wait();
                        group
                            .try_work("k", || {
                                wait_for("the followers", || group.waiters("k") == 3);
                                Err(down())
                            })
                            .unwrap_err()
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(
            errors.iter().all(|e| Arc::ptr_eq(e, &errors[0])),
            "one error, shared"
        );

        let deadline = Instant::now() + MINUTE;
        match group.try_work_deadline("d", deadline, |_| Err(down())) {
            Err(TryError::Failed(e)) => assert_eq!(e.to_string(), "db: down"),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            group
                .try_work_timeout("d", MINUTE, |_| Ok::<_, DbError>(2))
                .unwrap(),
            2
        );
        match group.try_work_timeout("slow", Duration::from_millis(10), |token| {
            token.wait_timeout(MINUTE);
            Ok::<_, DbError>(0)
        }) {
            Err(TryError::Timeout) => {}
            other => panic!("{other:?}"),
        }
        group.cancel("slow");
        let rx = group.do_chan("c", |_| Err(Arc::new(down())));
        match rx.recv().unwrap().into_result() {
            Err(TryError::Failed(e)) => assert_eq!(e.0.kind(), io::ErrorKind::ConnectionRefused),
            other => panic!("{other:?}"),
        }
        let panicked =
            group.try_work_timeout("p", MINUTE, |_| -> Result<u32, DbError> { panic!("boom") });
        match panicked {
            Err(e @ TryError::Panicked(_)) => assert!(e.to_string().contains("boom"), "{e}"),
            other => panic!("{other:?}"),
        }
    });
}

#[test]
fn handles_are_cheap_clones_of_one_cache() {
    fn unwind_safe<T: UnwindSafe + RefUnwindSafe>(_: &T) {}
    watchdog(LIMIT, || {
        let cache: TtlCache<String, u32> = TtlCache::new(MINUTE);
        unwind_safe(&cache);
        let other = cache.clone();
        other.insert("k".into(), 1);
        assert_eq!(cache.get("k"), Some(1), "one set of entries");
        let caught = panic::catch_unwind(|| cache.get_or_load("p", || panic!("loader")));
        assert!(caught.is_err());
        // One set of flights: a load led through one handle is joined
        // through the other.
        let runs = AtomicUsize::new(0);
        thread::scope(|s| {
            let a = s.spawn(|| {
                cache.get_or_load("shared", || {
                    runs.fetch_add(1, Ordering::Relaxed);
                    wait_for("the clone's caller to join", || {
                        cache.waiters("shared") == 1
                    });
                    7
                })
            });
            wait_for("the load to start", || runs.load(Ordering::Relaxed) == 1);
            assert_eq!(other.get_or_load("shared", || 8), 7);
            assert_eq!(a.join().unwrap(), 7);
        });
        assert_eq!(runs.load(Ordering::Relaxed), 1);
        drop(other);
        assert_eq!(cache.get("k"), Some(1), "dropping a clone closes nothing");
        let stats: HashMap<&str, u64> = [("loads", cache.stats().loads)].into();
        assert_eq!(stats["loads"], 2);

        let group: Group<String, u32> = Group::new();
        let g2 = group.clone();
        thread::scope(|s| {
            let a = s.spawn(|| {
                group.work("k", || {
                    wait_for("the clone to join", || group.waiters("k") == 1);
                    3
                })
            });
            wait_for("the flight", || group.in_flight() == 1);
            assert_eq!(g2.work("k", || 4), 3);
            assert_eq!(a.join().unwrap(), 3);
        });
    });
}
