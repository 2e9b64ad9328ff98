//! `Group::work_many`: many keys, each its own flight, one call of `f` for
//! the keys nobody is computing.

mod common;

use common::{expect_panic, panic_text, wait_for, watchdog};
use singleflight_sync::{Error, Group, LeaderPanicked};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(60);

fn value_of(key: u64) -> u64 {
    key * 7 + 1
}

/// Waiters on every key in `keys`, summed.
fn waiting(group: &Group<u64, u64>, keys: impl IntoIterator<Item = u64>) -> usize {
    keys.into_iter().map(|k| group.waiters(&k)).sum()
}

#[test]
fn overlapping_batches_load_each_key_once_and_answer_every_key() {
    watchdog(LIMIT, || {
        // Thread t asks for [10t, 10t + 20): each key but the first and last
        // ten is asked by two threads. Every `f` waits until every ask that
        // did not lead has joined, so all batches overlap, whatever order
        // they registered in.
        const THREADS: u64 = 8;
        let group: Arc<Group<u64, u64>> = Arc::new(Group::new());
        let loads: Arc<Vec<AtomicUsize>> = Arc::new(
            (0..THREADS * 10 + 10)
                .map(|_| AtomicUsize::new(0))
                .collect(),
        );
        let calls = Arc::new(AtomicUsize::new(0));
        let joins = (THREADS * 20 - (THREADS * 10 + 10)) as usize;
        let start = Arc::new(Barrier::new(THREADS as usize));
        let all_joined = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let threads: Vec<_> = (0..THREADS)
            .map(|t| {
                let (group, loads, calls, start, all_joined) = (
                    group.clone(),
                    loads.clone(),
                    calls.clone(),
                    start.clone(),
                    all_joined.clone(),
                );
                thread::spawn(move || {
                    let keys: Vec<u64> = (t * 10..t * 10 + 20).collect();
                    start.wait();
                    let got = group.work_many(&keys, |ids| {
                        calls.fetch_add(1, Ordering::SeqCst);
                        // Once every ask has joined, the first flights
                        // to end leave the map: the first `f` to see it
                        // tells the others.
                        wait_for("every ask to join", || {
                            all_joined.load(Ordering::SeqCst)
                                || (waiting(&group, 0..THREADS * 10 + 10) == joins
                                    && !all_joined.swap(true, Ordering::SeqCst))
                        });
                        ids.iter()
                            .map(|&&id| {
                                loads[id as usize].fetch_add(1, Ordering::SeqCst);
                                (id, value_of(id))
                            })
                            .collect::<HashMap<_, _>>()
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
        assert!(calls.load(Ordering::SeqCst) <= THREADS as usize);
        assert_eq!(group.in_flight(), 0);
        let stats = group.stats();
        assert_eq!(stats.executions, THREADS * 10 + 10);
        assert_eq!(stats.shared, joins as u64);
    });
}

#[test]
fn a_single_key_caller_joins_a_batch_flight() {
    watchdog(LIMIT, || {
        let group: Arc<Group<u64, u64>> = Arc::new(Group::new());
        let single = {
            let group = group.clone();
            thread::spawn(move || {
                wait_for("the batch to start", || group.in_flight() == 3);
                group.work_shared(&2, || unreachable!("the batch is computing key 2"))
            })
        };
        let got = group.work_many(&[1, 2, 3], |ids| {
            wait_for("the single-key caller", || group.waiters(&2) == 1);
            ids.iter()
                .map(|&&id| (id, value_of(id)))
                .collect::<Vec<_>>()
        });
        assert_eq!(got, [Some(8), Some(15), Some(22)]);
        let flight = single.join().unwrap();
        assert_eq!(
            (flight.value, flight.leader, flight.shared),
            (15, false, true)
        );
        assert_eq!(group.in_flight(), 0);
    });
}

#[test]
fn a_batch_joins_a_single_key_flight_and_leads_the_rest() {
    watchdog(LIMIT, || {
        let group: Arc<Group<u64, u64>> = Arc::new(Group::new());
        let release = Arc::new(Barrier::new(2));
        let single = {
            let (group, release) = (group.clone(), release.clone());
            thread::spawn(move || {
                group.work(&2, || {
                    release.wait();
                    wait_for("the batch to join", || group.waiters(&2) == 1);
                    100
                })
            })
        };
        release.wait();
        let got = group.work_many(&[1, 2, 3], |ids| {
            assert_eq!(ids, [&1, &3], "key 2 is joined, not loaded");
            ids.iter()
                .map(|&&id| (id, value_of(id)))
                .collect::<Vec<_>>()
        });
        assert_eq!(got, [Some(8), Some(100), Some(22)]);
        assert_eq!(single.join().unwrap(), 100);
        assert_eq!(group.in_flight(), 0);
    });
}

#[test]
fn duplicate_keys_are_one_flight_and_nothing_is_remembered() {
    watchdog(LIMIT, || {
        let group: Group<String, usize> = Group::new();
        let mut calls = 0;
        let got = group.work_many(["a", "b", "a", "a"], |ids| {
            calls += 1;
            assert_eq!(ids, ["a", "b"]);
            let calls = calls;
            ids.iter()
                .map(|id| (id.to_string(), id.len() + calls))
                .collect::<Vec<_>>()
        });
        assert_eq!(got, [Some(2), Some(2), Some(2), Some(2)]);
        // Nothing remembered: the next batch runs `f` again.
        let again = group.work_many(["b"], |ids| {
            ids.iter().map(|id| (id.to_string(), 9)).collect::<Vec<_>>()
        });
        assert_eq!(again, [Some(9)]);
        // Every key joined nobody: no call of `f` for an empty request.
        let none: Vec<Option<usize>> = group
            .work_many(Vec::<&str>::new(), |_| -> Vec<(String, usize)> {
                unreachable!("nothing to compute")
            });
        assert!(none.is_empty());
        assert_eq!(group.in_flight(), 0);
    });
}

#[test]
fn a_key_missing_from_the_answer_is_not_found_for_each_kind_of_caller() {
    watchdog(LIMIT, || {
        let group: Arc<Group<u64, u64>> = Arc::new(Group::new());
        let own_runs = Arc::new(AtomicUsize::new(0));
        let single = {
            let (group, own_runs) = (group.clone(), own_runs.clone());
            thread::spawn(move || {
                wait_for("the batch to start", || group.in_flight() == 3);
                group.work(&2, || {
                    own_runs.fetch_add(1, Ordering::SeqCst);
                    42
                })
            })
        };
        let other_batch = {
            let group = group.clone();
            thread::spawn(move || {
                wait_for("the batch to start", || group.in_flight() == 3);
                group.work_many(&[2, 3], |_| -> Vec<(u64, u64)> {
                    unreachable!("both joined")
                })
            })
        };
        wait_for("the batch to start", || group.in_flight() == 0);
        let rx = {
            let got = group.work_many(&[1, 2, 3], |ids| {
                wait_for("the other callers", || {
                    group.waiters(&2) == 2 && group.waiters(&3) == 1
                });
                ids.iter()
                    .filter(|&&&id| id != 2)
                    .map(|&&id| (id, value_of(id)))
                    .collect::<Vec<_>>()
            });
            assert_eq!(got, [Some(8), None, Some(22)]);
            assert_eq!(other_batch.join().unwrap(), [None, Some(22)]);
            // The single-key caller had no value from the batch: it ran its
            // own. Joined here, so the flight count below is the holder's.
            assert_eq!(single.join().unwrap(), 42);
            assert_eq!(own_runs.load(Ordering::SeqCst), 1);
            assert_eq!(group.in_flight(), 0);
            // A channel caller of a missing key, joining a batch flight.
            let g = group.clone();
            let holder = thread::spawn(move || {
                g.work_many(&[5], |ids| {
                    wait_for("the channel caller", || g.waiters(&5) == 1);
                    assert_eq!(ids, [&5]);
                    Vec::<(u64, u64)>::new()
                })
            });
            wait_for("the holder's flight", || group.in_flight() == 1);
            let rx = group.do_chan(&5, |_| unreachable!("joined"));
            assert_eq!(holder.join().unwrap(), [None]);
            rx
        };
        assert!(matches!(rx.recv().unwrap(), Err(Error::NotFound)));
        assert_eq!(group.in_flight(), 0);
    });
}

#[test]
fn an_error_reaches_exactly_the_callers_of_that_batch() {
    watchdog(LIMIT, || {
        #[derive(Debug)]
        struct Down(&'static str); // not Clone
        type G = Group<u64, Result<u64, Arc<Down>>>;
        let group: Arc<G> = Arc::new(Group::new());
        let single = {
            let group = group.clone();
            thread::spawn(move || {
                wait_for("the batch", || group.in_flight() >= 2);
                group.work(&2, || unreachable!("joined"))
            })
        };
        // Set inside the `f` that leads 3: 3 is in flight then.
        let three_led = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let overlapping = {
            let (group, three_led) = (group.clone(), three_led.clone());
            thread::spawn(move || {
                wait_for("the batch", || group.in_flight() >= 2);
                // Leads 3 (which succeeds), joins 1 (which fails).
                group.try_work_many(&[3, 1], |ids| {
                    three_led.store(true, Ordering::SeqCst);
                    wait_for("the bystander", || group.waiters(&3) == 1);
                    Ok::<_, Down>(ids.iter().map(|&&i| (i, i)).collect::<Vec<_>>())
                })
            })
        };
        let bystander = {
            let group = group.clone();
            thread::spawn(move || {
                wait_for("the overlapping batch to lead 3", || {
                    three_led.load(Ordering::SeqCst)
                });
                group.work(&3, || unreachable!("joined"))
            })
        };
        wait_for("the batch", || group.in_flight() == 0);
        let r = group.try_work_many(&[1, 2], |_| {
            wait_for("every caller", || {
                group.waiters(&2) == 1 && group.waiters(&1) == 1
            });
            Err::<Vec<(u64, u64)>, _>(Down("backend down"))
        });
        let e = r.unwrap_err();
        assert_eq!(e.0, "backend down");
        let single = single.join().unwrap().unwrap_err();
        assert!(Arc::ptr_eq(&e, &single), "the same error, shared");
        let overlapping = overlapping.join().unwrap().unwrap_err();
        assert!(Arc::ptr_eq(&e, &overlapping));
        assert_eq!(
            bystander.join().unwrap().unwrap(),
            3,
            "key 3 is not touched"
        );
        assert_eq!(group.in_flight(), 0);
        // Not remembered.
        let ok = group.try_work_many(&[1], |ids| {
            Ok::<_, Down>(ids.iter().map(|&&i| (i, 5)).collect::<Vec<_>>())
        });
        assert_eq!(ok.unwrap(), [Some(5)]);
    });
}

#[test]
fn a_panic_reaches_exactly_the_callers_of_that_batch_and_releases_every_key() {
    watchdog(LIMIT, || {
        let group: Arc<Group<u64, u64>> = Arc::new(Group::new());
        let single = {
            let group = group.clone();
            thread::spawn(move || {
                wait_for("the batch", || group.in_flight() >= 3);
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    group.work(&2, || unreachable!("joined"))
                }))
            })
        };
        let overlapping = {
            let group = group.clone();
            thread::spawn(move || {
                wait_for("the batch", || group.in_flight() >= 3);
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    // Leads 4, joins 3.
                    group.work_many(&[3, 4], |ids| {
                        assert_eq!(ids, [&4]);
                        vec![(4, 44)]
                    })
                }))
            })
        };
        let unrelated = {
            let group = group.clone();
            thread::spawn(move || group.work(&9, || 99))
        };
        wait_for("the batch", || group.in_flight() == 0);
        let payload = expect_panic(|| {
            group.work_many(&[1, 2, 3], |_| -> Vec<(u64, u64)> {
                wait_for("the followers", || {
                    group.waiters(&2) == 1 && group.waiters(&3) == 1
                });
                panic!("backend down")
            })
        });
        assert_eq!(panic_text(&*payload), "backend down");
        for follower in [
            single.join().unwrap().unwrap_err(),
            overlapping.join().unwrap().unwrap_err(),
        ] {
            let cause = follower
                .downcast_ref::<LeaderPanicked>()
                .expect("a LeaderPanicked payload");
            assert_eq!(cause.message(), "backend down");
        }
        assert_eq!(unrelated.join().unwrap(), 99);
        assert_eq!(group.in_flight(), 0, "no key left in flight");
        // The next batch starts afresh.
        let got = group.work_many(&[1, 2, 3], |ids| {
            ids.iter().map(|&&i| (i, i)).collect::<Vec<_>>()
        });
        assert_eq!(got, [Some(1), Some(2), Some(3)]);
        assert_eq!(group.stats().panics, 3);
    });
}

#[test]
fn a_panicking_hash_in_the_answer_releases_every_key() {
    watchdog(LIMIT, || {
        #[derive(Clone, PartialEq, Eq, Debug)]
        struct Key(u64);
        impl std::hash::Hash for Key {
            fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
                assert!(self.0 != 666, "hash of 666");
                self.0.hash(state);
            }
        }
        let group: Group<Key, u64> = Group::new();
        let keys = [Key(1), Key(2)];
        let payload = expect_panic(|| group.work_many(&keys, |_| vec![(Key(666), 0)]));
        assert_eq!(panic_text(&*payload), "hash of 666");
        assert_eq!(group.in_flight(), 0);
    });
}

#[test]
fn re_entrancy_on_a_batch_key_panics_clearly_and_leaves_nothing_in_flight() {
    watchdog(LIMIT, || {
        let group: Group<u64, u64> = Group::new();
        // From inside the batch's own `f`.
        let payload = expect_panic(|| {
            group.work_many(&[1, 2], |_| {
                group.work(&2, || 0);
                Vec::<(u64, u64)>::new()
            })
        });
        assert!(
            panic_text(&*payload).contains("re-entrant call"),
            "{}",
            panic_text(&*payload)
        );
        assert_eq!(group.in_flight(), 0);
        // A batch that meets, half-way through its keys, the key its thread
        // is computing: the keys it already leads are released too.
        let payload = expect_panic(|| {
            group.work(&7, || {
                let inner =
                    expect_panic(|| group.work_many(&[5, 6, 7, 8], |_| Vec::<(u64, u64)>::new()));
                assert!(panic_text(&*inner).contains("`work_many`"));
                assert_eq!(group.in_flight(), 1, "only the outer flight is left");
                panic!("done")
            })
        });
        assert_eq!(panic_text(&*payload), "done");
        assert_eq!(group.in_flight(), 0);
    });
}

#[test]
fn work_many_split_calls_f_per_max_batch_keys_and_every_flight_is_joinable_at_once() {
    watchdog(LIMIT, || {
        let group: Arc<Group<u64, u64>> = Arc::new(Group::new());
        let late = {
            let group = group.clone();
            thread::spawn(move || {
                wait_for("the batch", || group.in_flight() == 7);
                group.work(&7, || {
                    unreachable!("key 7, in the last call, is joinable from the start")
                })
            })
        };
        let mut sizes = Vec::new();
        let got = group.work_many_split(&[1, 2, 3, 4, 5, 6, 7], 3, |ids| {
            if sizes.is_empty() {
                assert_eq!(group.in_flight(), 7);
                wait_for("the late caller", || group.waiters(&7) == 1);
            }
            sizes.push(ids.len());
            ids.iter().map(|&&i| (i, value_of(i))).collect::<Vec<_>>()
        });
        assert_eq!(sizes, [3, 3, 1]);
        assert_eq!(got, (1..=7).map(|i| Some(value_of(i))).collect::<Vec<_>>());
        assert_eq!(late.join().unwrap(), value_of(7));
        assert_eq!(group.in_flight(), 0);
        let zero = expect_panic(|| group.work_many_split(&[1], 0, |_| Vec::<(u64, u64)>::new()));
        assert!(panic_text(&*zero).contains("max_batch"));
    });
}

#[test]
fn stress_random_overlapping_batches_and_single_calls() {
    watchdog(LIMIT, || {
        use rand::{Rng, SeedableRng};
        const KEYS: usize = 48;
        let group: Arc<Group<u64, u64>> = Arc::new(Group::new());
        // Per key: loads running now; never above 1 (one execution per key
        // at a time), and the total.
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
                let (group, load) = (group.clone(), load.clone());
                thread::spawn(move || {
                    let mut rng = rand::rngs::StdRng::seed_from_u64(t);
                    for round in 0..300 {
                        if round % 5 == 0 {
                            let k = rng.gen_range(0..KEYS as u64);
                            assert_eq!(group.work(&k, || load(k)), value_of(k));
                            continue;
                        }
                        let keys: Vec<u64> = (0..rng.gen_range(1..12))
                            .map(|_| rng.gen_range(0..KEYS as u64))
                            .collect();
                        let leave_out = rng.gen_range(0..KEYS as u64 * 4);
                        let got = group.work_many(&keys, |ids| {
                            ids.iter()
                                .filter(|&&&id| id != leave_out)
                                .map(|&&id| (id, load(id)))
                                .collect::<Vec<_>>()
                        });
                        for (k, v) in keys.iter().zip(got) {
                            // Left out by this or another batch: None.
                            assert!(v.is_none() || v == Some(value_of(*k)), "key {k}: {v:?}");
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(group.in_flight(), 0);
        let stats = group.stats();
        assert!(
            total.load(Ordering::SeqCst) as u64 <= stats.executions,
            "at most one load per flight"
        );
    });
}
