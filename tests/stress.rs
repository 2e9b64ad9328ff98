//! Bounded stress: many threads, few keys, random work and random `forget`s.
//! Every caller must receive the value of a flight for its key that was
//! running while it waited; executions never exceed calls; nothing is left in
//! flight at the end.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use common::watchdog;
use rand::{Rng, SeedableRng};
use singleflight_sync::Group;

const THREADS: usize = 8;
const CALLS: usize = 20_000;
const KEYS: u64 = 64;

/// What a flight returns: which key it ran for and which flight it was.
#[derive(Clone, Copy, Debug)]
struct Tag {
    key: u64,
    flight: u64,
}

/// Logical times, indexed by flight id: when `f` started and ended, and when
/// its leader's `work` call returned (after the flight left the map).
struct Timeline {
    clock: AtomicU64,
    flights: AtomicU64,
    started: Vec<AtomicU64>,
    ended: Vec<AtomicU64>,
    returned: Vec<AtomicU64>,
}

impl Timeline {
    fn tick(&self) -> u64 {
        self.clock.fetch_add(1, Ordering::SeqCst) + 1
    }
}

#[test]
fn stress_random_work_and_forgets() {
    watchdog(Duration::from_secs(120), || {
        let group: Arc<Group<u64, Tag>> = Arc::new(Group::builder().shards(8).build());
        let timeline = Arc::new(Timeline {
            clock: AtomicU64::new(0),
            flights: AtomicU64::new(0),
            started: (0..THREADS * CALLS).map(|_| AtomicU64::new(0)).collect(),
            ended: (0..THREADS * CALLS).map(|_| AtomicU64::new(0)).collect(),
            returned: (0..THREADS * CALLS).map(|_| AtomicU64::new(0)).collect(),
        });
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let (group, tl) = (group.clone(), timeline.clone());
                thread::spawn(move || {
                    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed + t as u64);
                    let mut led = 0u64;
                    for _ in 0..CALLS {
                        let key = rng.gen_range(0..KEYS);
                        if rng.gen_ratio(1, 50) {
                            group.forget(&rng.gen_range(0..KEYS));
                        }
                        let spin = rng.gen_range(0..300);
                        let before = tl.tick();
                        let flight = group.work_shared(&key, || {
                            let id = tl.flights.fetch_add(1, Ordering::SeqCst);
                            tl.started[id as usize].store(tl.tick(), Ordering::SeqCst);
                            for _ in 0..spin {
                                std::hint::spin_loop();
                            }
                            if spin % 7 == 0 {
                                thread::yield_now();
                            }
                            tl.ended[id as usize].store(tl.tick(), Ordering::SeqCst);
                            Tag { key, flight: id }
                        });
                        let after = tl.tick();
                        let tag = flight.value;
                        assert_eq!(tag.key, key, "a caller got another key's value");
                        let id = tag.flight as usize;
                        let started = tl.started[id].load(Ordering::SeqCst);
                        let ended = tl.ended[id].load(Ordering::SeqCst);
                        assert!(
                            started != 0 && ended != 0 && ended < after,
                            "flight {id} had not ended"
                        );
                        if flight.leader {
                            assert!(before < started, "a leader got a flight it did not run");
                            tl.returned[id].store(after, Ordering::SeqCst);
                        } else {
                            // The flight must still have been joinable when
                            // this call began: its leader had not returned.
                            let returned = tl.returned[id].load(Ordering::SeqCst);
                            assert!(
                                returned == 0 || before < returned,
                                "flight {id} was over ({returned}) before the call began ({before})"
                            );
                        }
                        led += u64::from(flight.leader);
                    }
                    led
                })
            })
            .collect();
        let led: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
        let executions = timeline.flights.load(Ordering::SeqCst);
        assert_eq!(executions, led, "every execution had exactly one leader");
        assert!(executions <= (THREADS * CALLS) as u64);
        assert_eq!(group.in_flight(), 0, "nothing left in flight");
    });
}

/// Every entry point at once: inline and detached flights, deadlines that
/// expire, receivers dropped unread, `cancel` and `forget`. Nothing hangs,
/// every value made is dropped exactly once, and the group drains.
#[test]
fn stress_detached_deadlines_cancels_and_channels() {
    use common::{wait_for, Counts, Tracked};
    use singleflight_sync::Error;
    use std::sync::atomic::AtomicUsize;

    const THREADS: usize = 4;
    const CALLS: usize = 1_500;
    watchdog(Duration::from_secs(120), || {
        let counts = Arc::new(Counts::default());
        let made = Arc::new(AtomicUsize::new(0));
        let group: Arc<Group<u64, Tracked>> = Arc::new(Group::builder().shards(4).build());
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let (group, counts, made) = (group.clone(), counts.clone(), made.clone());
                thread::spawn(move || {
                    let mut rng = rand::rngs::StdRng::seed_from_u64(0xdead + t as u64);
                    for _ in 0..CALLS {
                        let key = rng.gen_range(0..8u64);
                        let micros = rng.gen_range(0..400);
                        let make = {
                            let (counts, made) = (counts.clone(), made.clone());
                            move |_: &singleflight_sync::CancelToken| {
                                thread::sleep(Duration::from_micros(micros));
                                made.fetch_add(1, Ordering::SeqCst);
                                Tracked::new(key, &counts)
                            }
                        };
                        match rng.gen_range(0..10) {
                            0..=2 => {
                                let v = group
                                    .work(&key, || make(&singleflight_sync::CancelToken::new()));
                                assert_eq!(v.tag, key);
                            }
                            3..=5 => {
                                let timeout = Duration::from_micros(rng.gen_range(0..600));
                                match group.work_timeout(&key, timeout, make) {
                                    Ok(f) => assert_eq!(f.value.tag, key),
                                    Err(Error::Timeout | Error::Cancelled) => {}
                                    Err(e) => panic!("unexpected {e}"),
                                }
                            }
                            6..=7 => {
                                let rx = group.do_chan(&key, make);
                                if rng.gen_bool(0.5) {
                                    match rx.recv().expect("exactly one message") {
                                        Ok(f) => assert_eq!(f.value.tag, key),
                                        Err(Error::Cancelled) => {}
                                        Err(e) => panic!("unexpected {e}"),
                                    }
                                }
                            }
                            8 => {
                                group.cancel(&key);
                            }
                            _ => {
                                group.forget(&key);
                            }
                        }
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        wait_for("detached flights to drain", || group.in_flight() == 0);
        let made = made.load(Ordering::SeqCst);
        wait_for("every value to be dropped", || {
            counts.drops() == made + counts.clones()
        });
        thread::sleep(Duration::from_millis(50));
        assert_eq!(
            counts.drops(),
            made + counts.clones(),
            "dropped exactly once"
        );
        assert!(made > 0);
    });
}

/// The cache under mixed traffic, with the oracles that caught two defects:
/// after `insert` returns, `get` sees that value unless a later write or
/// invalidate of the same key happened (each thread owns the keys it
/// inserts, while everyone invalidates and loads the shared keys, which fall
/// in the same shards); and `Stats.loads` equals the loader runs counted
/// here, whichever loads fail, get joined, expire or are refreshed.
#[test]
fn stress_cache_inserts_loads_and_invalidations() {
    use singleflight_sync::{ManualClock, TtlCache};

    const THREADS: u64 = 4;
    const OPS: usize = 20_000;
    const SHARED: u64 = 32;
    watchdog(Duration::from_secs(120), || {
        let clock = ManualClock::new();
        let cache: Arc<TtlCache<u64, u64>> = Arc::new(
            TtlCache::builder()
                .ttl(Duration::from_secs(10))
                .refresh_after(Duration::from_secs(5))
                .error_ttl(Duration::from_secs(2))
                .max_entries(100_000)
                .clock(clock.clone())
                // Refreshes run on the caller's thread: every loader run has
                // ended when the threads are joined.
                .spawner(|job| {
                    job();
                    Ok(())
                })
                .build()
                .unwrap(),
        );
        let runs = Arc::new(AtomicU64::new(0));
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let (cache, runs, clock) = (cache.clone(), runs.clone(), clock.clone());
                thread::spawn(move || {
                    let mut rng = rand::rngs::StdRng::seed_from_u64(0xcace + t);
                    let own = 1_000 + t;
                    let mut lost = 0;
                    for i in 0..OPS as u64 {
                        let key = rng.gen_range(0..SHARED);
                        let value = key * 1_000_000 + i;
                        let load = || {
                            runs.fetch_add(1, Ordering::SeqCst);
                            value
                        };
                        match rng.gen_range(0..20) {
                            0..=5 => assert_eq!(cache.get_or_load(&key, load) / 1_000_000, key),
                            6..=8 => {
                                let fail = rng.gen_bool(0.5);
                                let r = cache.try_get_or_load(&key, || {
                                    let v = load();
                                    if fail {
                                        Err(format!("{key} down"))
                                    } else {
                                        Ok(v)
                                    }
                                });
                                match r {
                                    Ok(v) => assert_eq!(v / 1_000_000, key),
                                    Err(e) => assert_eq!(*e, format!("{key} down")),
                                }
                            }
                            9..=10 => {
                                let runs = runs.clone();
                                let v = cache.get_or_load_detached(&key, move |_| {
                                    runs.fetch_add(1, Ordering::SeqCst);
                                    value
                                });
                                assert_eq!(v / 1_000_000, key);
                            }
                            11..=14 => {
                                cache.invalidate(&key);
                            }
                            15 => {
                                if let Some(v) = cache.get(&key) {
                                    assert_eq!(v / 1_000_000, key);
                                }
                            }
                            16 if t == 0 && i % 8 == 0 => clock.advance(Duration::from_secs(1)),
                            _ => {
                                // Outlives every clock advance of this run.
                                cache.insert_with_ttl(own, i, Duration::from_secs(1 << 30));
                                lost += usize::from(cache.get(&own) != Some(i));
                            }
                        }
                    }
                    lost
                })
            })
            .collect();
        let lost: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(lost, 0, "inserts not seen by the next `get`");
        let stats = cache.stats();
        assert_eq!(stats.loads, runs.load(Ordering::SeqCst), "{stats:?}");
        assert!(stats.loads > 0 && stats.refreshes > 0, "{stats:?}");
    });
}
