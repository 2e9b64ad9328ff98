//! `TtlCache::get_or_load_many` and `try_get_or_load_many`: fresh hits at
//! once, running loads joined, one load call for the rest, each value
//! stored before its flight is released.

mod common;

use common::{expect_panic, panic_text, wait_for, watchdog};
use singleflight_sync::{LeaderPanicked, ManualClock, TtlCache};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(60);
const TTL: Duration = Duration::from_secs(60);

fn value_of(key: u64) -> u64 {
    key * 3 + 2
}

fn rows(ids: &[&u64]) -> Vec<(u64, u64)> {
    ids.iter().map(|&&id| (id, value_of(id))).collect()
}

fn cache() -> TtlCache<u64, u64> {
    TtlCache::new(TTL)
}

#[test]
fn overlapping_batches_load_each_key_once_and_then_hit() {
    watchdog(LIMIT, || {
        const THREADS: u64 = 6;
        const KEYS: u64 = THREADS * 10 + 10;
        let cache = Arc::new(cache());
        let loads: Arc<Vec<AtomicUsize>> =
            Arc::new((0..KEYS).map(|_| AtomicUsize::new(0)).collect());
        let joins = (THREADS * 20 - KEYS) as usize;
        let start = Arc::new(Barrier::new(THREADS as usize));
        let all_joined = Arc::new(AtomicBool::new(false));
        let threads: Vec<_> = (0..THREADS)
            .map(|t| {
                let (cache, loads, start, all_joined) = (
                    cache.clone(),
                    loads.clone(),
                    start.clone(),
                    all_joined.clone(),
                );
                thread::spawn(move || {
                    let keys: Vec<u64> = (t * 10..t * 10 + 20).collect();
                    start.wait();
                    let got = cache.get_or_load_many(&keys, |ids| {
                        wait_for("every ask to join", || {
                            all_joined.load(Ordering::SeqCst)
                                || ((0..KEYS).map(|k| cache.waiters(&k)).sum::<usize>() == joins
                                    && !all_joined.swap(true, Ordering::SeqCst))
                        });
                        for &&id in ids {
                            loads[id as usize].fetch_add(1, Ordering::SeqCst);
                        }
                        rows(ids)
                    });
                    let want: Vec<Option<u64>> = keys.iter().map(|&k| Some(value_of(k))).collect();
                    assert_eq!(got, want, "thread {t}");
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        for (key, n) in loads.iter().enumerate() {
            assert_eq!(n.load(Ordering::SeqCst), 1, "key {key} loaded once");
        }
        assert_eq!(cache.in_flight(), 0);
        assert_eq!(cache.stats().loads, KEYS);
        // Everything is cached now: no load at all.
        let all: Vec<u64> = (0..KEYS).collect();
        let got =
            cache.get_or_load_many(&all, |_| -> Vec<(u64, u64)> { unreachable!("all cached") });
        assert!(got.iter().zip(&all).all(|(v, &k)| *v == Some(value_of(k))));
    });
}

#[test]
fn fresh_hits_are_served_and_only_misses_loaded() {
    watchdog(LIMIT, || {
        let cache = cache();
        cache.insert(2, 200);
        let mut asked = Vec::new();
        let got = cache.get_or_load_many(&[1, 2, 3, 1], |ids| {
            asked.extend(ids.iter().map(|&&id| id));
            rows(ids)
        });
        assert_eq!(asked, [1, 3], "2 is cached, 1 asked twice is one key");
        assert_eq!(got, [Some(5), Some(200), Some(11), Some(5)]);
        assert_eq!((cache.get(&1), cache.get(&3)), (Some(5), Some(11)));
        assert_eq!(cache.stats().loads, 2);
    });
}

#[test]
fn single_key_callers_join_a_batch_load_and_find_its_values_stored() {
    watchdog(LIMIT, || {
        let cache = Arc::new(cache());
        let single = {
            let cache = cache.clone();
            thread::spawn(move || {
                wait_for("the batch", || cache.in_flight() == 3);
                cache.get_or_load(&2, || unreachable!("the batch is loading key 2"))
            })
        };
        let got = cache.get_or_load_many(&[1, 2, 3], |ids| {
            wait_for("the single-key caller", || cache.waiters(&2) == 1);
            rows(ids)
        });
        assert_eq!(got, [Some(5), Some(8), Some(11)]);
        assert_eq!(single.join().unwrap(), 8);
        assert_eq!(cache.in_flight(), 0);
        assert_eq!(cache.stats().loads, 3);
    });
}

#[test]
fn a_batch_joins_a_single_key_load() {
    watchdog(LIMIT, || {
        let cache = Arc::new(cache());
        let started = Arc::new(Barrier::new(2));
        let single = {
            let (cache, started) = (cache.clone(), started.clone());
            thread::spawn(move || {
                cache.get_or_load(&2, || {
                    started.wait();
                    wait_for("the batch to join", || cache.waiters(&2) == 1);
                    77
                })
            })
        };
        started.wait();
        let got = cache.get_or_load_many(&[1, 2], |ids| {
            assert_eq!(ids, [&1]);
            rows(ids)
        });
        assert_eq!(got, [Some(5), Some(77)]);
        assert_eq!(single.join().unwrap(), 77);
    });
}

#[test]
fn a_missing_key_is_not_cached_without_error_ttl() {
    watchdog(LIMIT, || {
        let cache = Arc::new(cache());
        let single = {
            let cache = cache.clone();
            thread::spawn(move || {
                wait_for("the batch", || cache.in_flight() == 2);
                // Joins 2, which the batch has no value for: loads it itself.
                cache.get_or_load(&2, || 1234)
            })
        };
        let got = cache.get_or_load_many(&[1, 2], |ids| {
            wait_for("the single-key caller", || cache.waiters(&2) == 1);
            rows(ids)
                .into_iter()
                .filter(|r| r.0 != 2)
                .collect::<Vec<_>>()
        });
        assert_eq!(got, [Some(5), None]);
        assert_eq!(single.join().unwrap(), 1234);
        assert_eq!(cache.in_flight(), 0);
        // The single-key caller's own load was cached.
        assert_eq!(cache.get(&2), Some(1234));
        // A key nobody has: not cached, asked again next time.
        let mut calls = 0;
        for _ in 0..2 {
            let got = cache.get_or_load_many(&[9], |_| {
                calls += 1;
                Vec::<(u64, u64)>::new()
            });
            assert_eq!(got, [None]);
        }
        assert_eq!(calls, 2);
        assert_eq!(cache.len(), 2);
    });
}

#[test]
fn a_missing_key_is_remembered_for_error_ttl() {
    watchdog(LIMIT, || {
        let clock = ManualClock::new();
        let error_ttl = Duration::from_secs(5);
        let cache: TtlCache<u64, u64> = TtlCache::builder()
            .ttl(TTL)
            .error_ttl(error_ttl)
            .clock(clock.clone())
            .build()
            .unwrap();
        let mut calls = 0;
        let mut batch = |keys: &[u64]| {
            cache.get_or_load_many(keys, |ids| {
                calls += 1;
                rows(ids)
                    .into_iter()
                    .filter(|r| r.0 != 9)
                    .collect::<Vec<_>>()
            })
        };
        assert_eq!(batch(&[9, 1]), [None, Some(5)]);
        assert_eq!(
            batch(&[9, 1]),
            [None, Some(5)],
            "both answered from the cache"
        );
        assert_eq!(cache.stats().negative_hits, 1);
        // Single-key calls see no entry, and load.
        assert_eq!(cache.get(&9), None);
        clock.advance(error_ttl);
        assert_eq!(batch(&[9]), [None]);
        assert_eq!(calls, 2, "loaded again once the negative entry expired");
        assert_eq!(cache.get_or_load(&9, || 99), 99);
        assert_eq!(
            cache.get_or_load_many(&[9], |_| Vec::<(u64, u64)>::new()),
            [Some(99)]
        );
    });
}

#[derive(Debug, Clone, PartialEq)]
struct Down(&'static str);

#[test]
fn an_error_reaches_exactly_the_callers_of_that_load() {
    watchdog(LIMIT, || {
        let cache = Arc::new(cache());
        let single = {
            let cache = cache.clone();
            thread::spawn(move || {
                wait_for("the batch", || cache.in_flight() >= 2);
                cache.try_get_or_load(&2, || -> Result<u64, Down> { unreachable!("joined") })
            })
        };
        let other_batch = {
            let cache = cache.clone();
            thread::spawn(move || {
                wait_for("the batch", || cache.in_flight() >= 2);
                // Joins 1 (which fails) and loads 3 (which does not).
                cache.try_get_or_load_many(&[1, 3], |ids| {
                    assert_eq!(ids, [&3]);
                    Ok::<_, Down>(rows(ids))
                })
            })
        };
        let r = cache.try_get_or_load_many(&[1, 2], |_| {
            wait_for("every caller", || {
                cache.waiters(&1) == 1 && cache.waiters(&2) == 1
            });
            Err::<Vec<(u64, u64)>, _>(Down("backend down"))
        });
        let e = r.unwrap_err();
        assert_eq!(*e, Down("backend down"));
        assert_eq!(single.join().unwrap(), Err(Arc::new(Down("backend down"))));
        let other = other_batch.join().unwrap().unwrap_err();
        assert!(Arc::ptr_eq(&e, &other), "the same error, shared");
        assert_eq!(cache.in_flight(), 0);
        // Nothing of the failed call is cached; the other batch's 3 is.
        assert_eq!(
            (cache.get(&1), cache.get(&2), cache.get(&3)),
            (None, None, Some(11))
        );
        assert_eq!(cache.stats().load_errors, 2);
    });
}

#[test]
fn an_error_is_cached_for_error_ttl_and_shared_as_one_arc() {
    watchdog(LIMIT, || {
        let cache: TtlCache<u64, u64> = TtlCache::builder()
            .ttl(TTL)
            .error_ttl(Duration::from_secs(5))
            .build()
            .unwrap();
        let first = cache
            .try_get_or_load_many(&[1, 2], |_| Err::<Vec<(u64, u64)>, _>(Down("x")))
            .unwrap_err();
        let again = cache
            .try_get_or_load_many(&[2], |_| -> Result<Vec<(u64, u64)>, Down> {
                unreachable!("cached")
            })
            .unwrap_err();
        assert!(Arc::ptr_eq(&first, &again));
        // The infallible batch treats a cached error as no entry.
        assert_eq!(cache.get_or_load_many(&[1], rows), [Some(5)]);
    });
}

#[test]
fn a_panic_reaches_exactly_the_callers_of_that_load_and_caches_nothing() {
    watchdog(LIMIT, || {
        let cache = Arc::new(cache());
        let single = {
            let cache = cache.clone();
            thread::spawn(move || {
                wait_for("the batch", || cache.in_flight() >= 2);
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    cache.get_or_load(&2, || unreachable!("joined"))
                }))
            })
        };
        let unrelated = {
            let cache = cache.clone();
            thread::spawn(move || cache.get_or_load_many(&[5], rows))
        };
        let payload = expect_panic(|| {
            cache.get_or_load_many(&[1, 2], |_| -> Vec<(u64, u64)> {
                wait_for("the follower", || cache.waiters(&2) == 1);
                panic!("backend down")
            })
        });
        assert_eq!(panic_text(&*payload), "backend down");
        let follower = single.join().unwrap().unwrap_err();
        assert_eq!(
            follower.downcast_ref::<LeaderPanicked>().unwrap().message(),
            "backend down"
        );
        assert_eq!(unrelated.join().unwrap(), [Some(17)]);
        assert_eq!(cache.in_flight(), 0);
        assert_eq!((cache.get(&1), cache.get(&2)), (None, None));
        assert_eq!(cache.get_or_load_many(&[1, 2], rows), [Some(5), Some(8)]);
    });
}

#[test]
fn an_invalidate_during_the_load_keeps_that_key_out_and_only_that_key() {
    watchdog(LIMIT, || {
        let cache = cache();
        let got = cache.get_or_load_many(&[1, 2], |ids| {
            assert!(!cache.invalidate(&1), "nothing stored yet");
            rows(ids)
        });
        assert_eq!(got, [Some(5), Some(8)], "the callers still get the values");
        assert_eq!((cache.get(&1), cache.get(&2)), (None, Some(8)));
    });
}

#[test]
fn max_batch_splits_the_missing_keys_and_every_key_is_joinable_at_once() {
    watchdog(LIMIT, || {
        let cache: Arc<TtlCache<u64, u64>> =
            Arc::new(TtlCache::builder().ttl(TTL).max_batch(3).build().unwrap());
        cache.insert(4, 40);
        let late = {
            let cache = cache.clone();
            thread::spawn(move || {
                wait_for("the batch", || cache.in_flight() == 7);
                cache.get_or_load(&8, || {
                    unreachable!("key 8, in the last call, is joinable at once")
                })
            })
        };
        let mut sizes = Vec::new();
        let keys: Vec<u64> = (1..=8).collect();
        let got = cache.get_or_load_many(&keys, |ids| {
            if sizes.is_empty() {
                wait_for("the late caller", || cache.waiters(&8) == 1);
            }
            sizes.push(ids.len());
            rows(ids)
        });
        assert_eq!(sizes, [3, 3, 1], "7 missing keys, 3 to a call");
        let want: Vec<Option<u64>> = keys
            .iter()
            .map(|&k| Some(if k == 4 { 40 } else { value_of(k) }))
            .collect();
        assert_eq!(got, want);
        assert_eq!(late.join().unwrap(), value_of(8));
        assert_eq!(cache.in_flight(), 0);
    });
}

#[test]
fn stress_random_overlapping_batches_single_calls_and_evictions() {
    watchdog(LIMIT, || {
        use rand::{Rng, SeedableRng};
        const KEYS: u64 = 64;
        // Small: evictions happen all the time.
        let cache: Arc<TtlCache<u64, u64>> = Arc::new(
            TtlCache::builder()
                .ttl(TTL)
                .max_entries(24)
                .max_batch(5)
                .build()
                .unwrap(),
        );
        let running: Arc<Vec<AtomicUsize>> =
            Arc::new((0..KEYS).map(|_| AtomicUsize::new(0)).collect());
        let total = Arc::new(AtomicUsize::new(0));
        let load = {
            let (running, total) = (running.clone(), total.clone());
            move |id: u64| {
                let was = running[id as usize].fetch_add(1, Ordering::SeqCst);
                assert_eq!(was, 0, "key {id} loaded twice at once");
                total.fetch_add(1, Ordering::SeqCst);
                thread::yield_now();
                running[id as usize].fetch_sub(1, Ordering::SeqCst);
                value_of(id)
            }
        };
        let threads: Vec<_> = (0..8u64)
            .map(|t| {
                let (cache, load) = (cache.clone(), load.clone());
                thread::spawn(move || {
                    let mut rng = rand::rngs::StdRng::seed_from_u64(100 + t);
                    for round in 0..300 {
                        let k = rng.gen_range(0..KEYS);
                        // No invalidations here: an invalidated key's load
                        // stops taking callers, so a second one may start
                        // while it runs (tested on its own above).
                        match round % 6 {
                            0 => assert_eq!(cache.get_or_load(&k, || load(k)), value_of(k)),
                            _ => {
                                let keys: Vec<u64> = (0..rng.gen_range(1..16))
                                    .map(|_| rng.gen_range(0..KEYS))
                                    .collect();
                                let got = cache.get_or_load_many(&keys, |ids| {
                                    ids.iter()
                                        .map(|&&id| (id, load(id)))
                                        .collect::<HashMap<_, _>>()
                                });
                                for (k, v) in keys.iter().zip(got) {
                                    assert_eq!(v, Some(value_of(*k)), "key {k}");
                                }
                            }
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(cache.in_flight(), 0);
        assert!(cache.len() <= 24);
        let stats = cache.stats();
        assert_eq!(
            total.load(Ordering::SeqCst) as u64,
            stats.loads,
            "every load counted once"
        );
        assert!(
            stats.loads <= stats.executions,
            "at most one load per flight"
        );
    });
}

#[test]
fn a_batch_refreshes_entries_due_here_and_keeps_them_if_the_refresh_fails() {
    watchdog(LIMIT, || {
        let clock = ManualClock::new();
        let cache: TtlCache<u64, u64> = TtlCache::builder()
            .ttl(TTL)
            .refresh_after(Duration::from_secs(30))
            .clock(clock.clone())
            .build()
            .unwrap();
        assert_eq!(cache.get_or_load_many(&[1, 2], rows), [Some(5), Some(8)]);
        clock.advance(Duration::from_secs(30));
        // 1 and 2 are due: refreshed in the same call as the miss 3.
        let mut asked = Vec::new();
        let got = cache.get_or_load_many(&[1, 2, 3], |ids| {
            asked.push(ids.iter().map(|&&id| id).collect::<Vec<_>>());
            ids.iter().map(|&&id| (id, id + 1000)).collect::<Vec<_>>()
        });
        assert_eq!(asked, [vec![1, 2, 3]]);
        assert_eq!(got, [Some(1001), Some(1002), Some(1003)], "the new values");
        assert_eq!(cache.get(&1), Some(1001));
        clock.advance(Duration::from_secs(30));
        // A refresh that fails keeps (and returns) the current values, and
        // can be tried again by the next caller.
        let failed = cache.try_get_or_load_many(&[1, 2], |_| Err::<Vec<(u64, u64)>, _>(Down("x")));
        assert_eq!(failed.unwrap(), [Some(1001), Some(1002)]);
        let again = cache.try_get_or_load_many(&[1], |ids| {
            Ok::<_, Down>(ids.iter().map(|&&id| (id, id + 2000)).collect::<Vec<_>>())
        });
        assert_eq!(again.unwrap(), [Some(2001)]);
        // A refresh whose answer leaves the key out: the entry goes.
        let gone = cache.get_or_load_many(&[2], |_| Vec::<(u64, u64)>::new());
        assert_eq!(gone, [None]);
        assert_eq!(cache.get(&2), None);
        assert_eq!(cache.in_flight(), 0);
    });
}

/// A cache whose spawner queues each job, for the test to run when it likes.
fn queued(
    clock: &ManualClock,
) -> (
    TtlCache<u64, u64>,
    std::sync::mpsc::Receiver<singleflight_sync::Job>,
) {
    let (queue, jobs) = std::sync::mpsc::channel();
    let cache = TtlCache::builder()
        .ttl(TTL)
        .refresh_after(Duration::from_secs(30))
        .clock(clock.clone())
        .spawner(move |job| queue.send(job).map_err(|_| std::io::Error::other("closed")))
        .build()
        .unwrap();
    (cache, jobs)
}

/// A loader that records each call and answers `id * 10 + version`.
#[derive(Clone, Default)]
struct Versioned {
    version: Arc<AtomicUsize>,
    calls: Arc<std::sync::Mutex<Vec<Vec<u64>>>>,
}

impl Versioned {
    fn load(&self) -> impl FnMut(&[&u64]) -> Vec<(u64, u64)> + Clone + Send + 'static {
        let this = self.clone();
        move |ids: &[&u64]| {
            this.calls
                .lock()
                .unwrap()
                .push(ids.iter().map(|&&id| id).collect());
            let v = this.version.load(Ordering::SeqCst) as u64;
            ids.iter().map(|&&id| (id, id * 10 + v)).collect()
        }
    }

    fn calls(&self) -> Vec<Vec<u64>> {
        self.calls.lock().unwrap().clone()
    }
}

#[test]
fn a_detached_batch_refreshes_due_entries_in_one_call_on_the_spawner() {
    watchdog(LIMIT, || {
        let clock = ManualClock::new();
        let (cache, jobs) = queued(&clock);
        let backend = Versioned::default();
        backend.version.store(1, Ordering::SeqCst);
        assert_eq!(
            cache.get_or_load_many_detached(&[1, 2, 3], backend.load()),
            [Some(11), Some(21), Some(31)]
        );
        assert_eq!(
            backend.calls(),
            [vec![1, 2, 3]],
            "misses load here, in one call"
        );
        clock.advance(Duration::from_secs(30));
        backend.version.store(2, Ordering::SeqCst);
        // 1 and 2 are due: served as they are; 4 is a miss, loaded here.
        let got = cache.get_or_load_many_detached(&[1, 2, 4], backend.load());
        assert_eq!(got, [Some(11), Some(21), Some(42)]);
        assert_eq!(cache.in_flight(), 2, "the refresh's two flights, queued");
        // Another caller meanwhile: current values, no second refresh.
        assert_eq!(
            cache.get_or_load_many_detached(&[1, 2], backend.load()),
            [Some(11), Some(21)]
        );
        let job = jobs.try_recv().expect("one refresh job");
        assert!(jobs.try_recv().is_err(), "only one");
        job();
        assert_eq!(backend.calls(), [vec![1, 2, 3], vec![4], vec![1, 2]]);
        assert_eq!(
            (cache.get(&1), cache.get(&2), cache.get(&3)),
            (Some(12), Some(22), Some(31))
        );
        assert_eq!(cache.in_flight(), 0);
    });
}

#[test]
fn a_detached_batch_refresh_that_panics_or_cannot_start_keeps_the_current_values() {
    watchdog(LIMIT, || {
        let clock = ManualClock::new();
        let (cache, jobs) = queued(&clock);
        assert_eq!(cache.get_or_load_many(&[1, 2], rows), [Some(5), Some(8)]);
        clock.advance(Duration::from_secs(30));
        let panicking = |_: &[&u64]| -> Vec<(u64, u64)> { panic!("backend down") };
        assert_eq!(
            cache.get_or_load_many_detached(&[1, 2], panicking),
            [Some(5), Some(8)]
        );
        jobs.try_recv().unwrap()();
        assert_eq!((cache.get(&1), cache.get(&2)), (Some(5), Some(8)), "kept");
        assert_eq!(cache.stats().load_errors, 2);
        assert_eq!(cache.in_flight(), 0);
        // The flags were cleared: the next caller refreshes again.
        let backend = Versioned::default();
        cache.get_or_load_many_detached(&[1, 2], backend.load());
        jobs.try_recv().expect("a new refresh")();
        assert_eq!(cache.get(&1), Some(10));

        // A spawner that fails: nothing left in flight, values kept.
        let failing: TtlCache<u64, u64> = TtlCache::builder()
            .ttl(TTL)
            .refresh_after(Duration::from_secs(30))
            .clock(clock.clone())
            .spawner(|_job| Err(std::io::Error::other("no threads")))
            .build()
            .unwrap();
        assert_eq!(failing.get_or_load_many(&[1], rows), [Some(5)]);
        clock.advance(Duration::from_secs(30));
        assert_eq!(
            failing.get_or_load_many_detached(&[1], backend.load()),
            [Some(5)]
        );
        assert_eq!(failing.in_flight(), 0);
        assert_eq!(failing.get(&1), Some(5));
    });
}

#[test]
fn a_detached_batch_refresh_whose_answer_leaves_a_key_out_removes_it() {
    watchdog(LIMIT, || {
        let clock = ManualClock::new();
        let (cache, jobs) = queued(&clock);
        assert_eq!(cache.get_or_load_many(&[1, 2], rows), [Some(5), Some(8)]);
        clock.advance(Duration::from_secs(30));
        let only_one = |ids: &[&u64]| {
            rows(ids)
                .into_iter()
                .filter(|r| r.0 == 1)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            cache.get_or_load_many_detached(&[1, 2], only_one),
            [Some(5), Some(8)]
        );
        jobs.try_recv().unwrap()();
        assert_eq!((cache.get(&1), cache.get(&2)), (Some(5), None));
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.in_flight(), 0);
    });
}

#[test]
fn a_detached_batch_refresh_whose_job_is_dropped_unrun_leaves_nothing_in_flight() {
    watchdog(LIMIT, || {
        let clock = ManualClock::new();
        let cache: TtlCache<u64, u64> = TtlCache::builder()
            .ttl(TTL)
            .refresh_after(Duration::from_secs(30))
            .clock(clock.clone())
            .spawner(|job| {
                drop(job);
                Ok(())
            })
            .build()
            .unwrap();
        assert_eq!(cache.get_or_load_many(&[1, 2], rows), [Some(5), Some(8)]);
        clock.advance(Duration::from_secs(30));
        let never = |_: &[&u64]| -> Vec<(u64, u64)> { unreachable!("the job is dropped") };
        assert_eq!(
            cache.get_or_load_many_detached(&[1, 2], never),
            [Some(5), Some(8)]
        );
        assert_eq!(cache.in_flight(), 0);
        assert_eq!(
            cache.stats().errors,
            2,
            "each flight ended as a spawn error"
        );
        // The flags were cleared with the dropped job: an inline batch refreshes.
        assert_eq!(
            cache.get_or_load_many(&[1], |ids| vec![(*ids[0], 50)]),
            [Some(50)]
        );
    });
}
