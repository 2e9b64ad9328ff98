//! Defects found by adversarial probing, each held by a test that failed
//! before its fix: an `insert` lost to another key's invalidation, followers
//! stranded by a panicking `Drop`, a re-entrant `do_chan` that waited on
//! itself, a flight end the observer never heard of, a refresh's panic
//! reaching `get_or_load`, an uncounted and uncached fallback load, XFetch
//! choosing a cached error, and a refresh flag left set by a `Clone` panic.

mod common;

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::Duration;

use common::{expect_panic, panic_text, wait_for, watchdog, Invalidator};
use singleflight_sync::*;

/// Every key hashes alike, so every key shares one shard (and one bucket).
#[derive(Clone, Copy, Debug, Default)]
struct OneShard;
impl BuildHasher for OneShard {
    type Hasher = OneShardHasher;
    fn build_hasher(&self) -> OneShardHasher {
        OneShardHasher
    }
}
#[derive(Debug)]
struct OneShardHasher;
impl Hasher for OneShardHasher {
    fn finish(&self) -> u64 {
        0x0123_4567_89ab_cdef
    }
    fn write(&mut self, _: &[u8]) {}
}

/// 1. `insert` must store even when another key of its shard is
///    invalidated between its two lock holds.
#[test]
fn an_insert_is_kept_while_other_keys_of_its_shard_are_invalidated() {
    watchdog(Duration::from_secs(60), || {
        let clock = ManualClock::new();
        let cache: Arc<TtlCache<u64, u64, OneShard>> = Arc::new(
            TtlCache::builder()
                .ttl(Duration::from_secs(60))
                .hasher(OneShard)
                .clock(clock)
                .build()
                .unwrap(),
        );
        let invalidator = Invalidator::start(&cache, 1000);
        let mut lost = 0;
        for i in 1..=300_000u64 {
            cache.insert(7, i);
            if cache.get(&7) != Some(i) {
                lost += 1;
            }
        }
        assert!(invalidator.stop() > 0);
        assert_eq!(lost, 0, "inserts lost to other keys' invalidation");
    });
}

/// A value whose `Drop` panics once, when armed.
#[derive(Debug)]
struct DropBomb {
    tag: u32,
    armed: &'static AtomicBool,
}
impl Clone for DropBomb {
    fn clone(&self) -> Self {
        DropBomb {
            tag: self.tag,
            armed: self.armed,
        }
    }
}
impl Drop for DropBomb {
    fn drop(&mut self) {
        if self.armed.swap(false, Ordering::SeqCst) && !thread::panicking() {
            panic!("drop failed");
        }
    }
}

/// 2. A dropped `do_chan` receiver's copy is dropped while the outcome is
///    handed out; its panicking `Drop` must strand no follower. The leader
///    is detached here.
#[test]
fn a_panicking_drop_of_an_unread_copy_strands_no_follower_of_a_detached_flight() {
    static ARMED: AtomicBool = AtomicBool::new(false);
    watchdog(Duration::from_secs(20), || {
        let group: Arc<Group<String, DropBomb>> = Arc::new(Group::new());
        let (go, gate) = mpsc::channel::<()>();
        let gate = Mutex::new(gate);
        drop(group.do_chan("k", move |_| {
            gate.lock().unwrap().recv().unwrap();
            DropBomb {
                tag: 1,
                armed: &ARMED,
            }
        }));
        let follower = {
            let group = group.clone();
            thread::spawn(move || group.work("k", || unreachable!("joins")))
        };
        wait_for("the follower to join", || group.waiters("k") == 2);
        ARMED.store(true, Ordering::SeqCst);
        go.send(()).unwrap();
        // Kept until the unread copy has gone off, so only it can.
        let value = follower.join().unwrap();
        wait_for("the unread copy to be dropped", || {
            !ARMED.load(Ordering::SeqCst)
        });
        assert_eq!(value.tag, 1);
        assert_eq!(group.in_flight(), 0);
    });
}

/// 2, with an inline leader: neither the leader nor its follower is hurt by
/// the panicking `Drop` of a dropped receiver's copy.
#[test]
fn a_panicking_drop_of_an_unread_copy_strands_no_follower_of_an_inline_flight() {
    static ARMED: AtomicBool = AtomicBool::new(false);
    watchdog(Duration::from_secs(20), || {
        let group: Arc<Group<String, DropBomb>> = Arc::new(Group::new());
        let started = Arc::new(AtomicBool::new(false));
        let leader = {
            let (group, started) = (group.clone(), started.clone());
            thread::spawn(move || {
                let g = group.clone();
                group.work("k", move || {
                    started.store(true, Ordering::SeqCst);
                    wait_for("a reader and a follower", || g.waiters("k") == 2);
                    ARMED.store(true, Ordering::SeqCst);
                    DropBomb {
                        tag: 1,
                        armed: &ARMED,
                    }
                })
            })
        };
        wait_for("the leader to start", || started.load(Ordering::SeqCst));
        drop(group.do_chan("k", |_| unreachable!("joins")));
        let follower = {
            let group = group.clone();
            thread::spawn(move || group.work("k", || unreachable!("joins")))
        };
        // Both kept until the unread copy has gone off, so only it can.
        let (theirs, mine) = (follower.join().unwrap(), leader.join().unwrap());
        wait_for("the unread copy to be dropped", || {
            !ARMED.load(Ordering::SeqCst)
        });
        assert_eq!((theirs.tag, mine.tag), (1, 1));
    });
}

/// 3. `do_chan` for the key being computed, from inside its own `f`, panics
///    as `work` does, for an inline and a detached `f`.
#[test]
fn a_re_entrant_do_chan_panics_instead_of_waiting_on_itself() {
    watchdog(Duration::from_secs(20), || {
        let group: Arc<Group<String, u32>> = Arc::new(Group::new());
        let message = group.work("k", || {
            let payload = expect_panic(|| group.do_chan("k", |_| 1));
            assert!(panic_text(&*payload).contains("re-entrant"));
            assert!(panic_text(&*payload).contains("do_chan"));
            7
        });
        assert_eq!(message, 7);

        let g = group.clone();
        let rx = group.do_chan("d", move |_| {
            let payload = expect_panic(|| g.do_chan("d", |_| 1));
            u32::from(panic_text(&*payload).contains("re-entrant"))
        });
        let reply = rx.recv_timeout(Duration::from_secs(10)).unwrap().unwrap();
        assert_eq!(reply.value, 1, "the detached f saw the re-entrancy panic");
        assert_eq!(group.in_flight(), 0);
    });
}

/// Counts what an observer is told.
#[derive(Debug, Default)]
struct Tally {
    joined: AtomicUsize,
    ended: Mutex<Vec<FlightEnd>>,
}
impl Metrics for Tally {
    fn flight_ended(&self, _: Option<&'static str>, flight: &FlightEnd) {
        self.ended.lock().unwrap().push(*flight);
    }
    fn waiter_joined(&self, _: Option<&'static str>) {
        self.joined.fetch_add(1, Ordering::SeqCst);
    }
}

/// A value whose `Clone` panics once, when armed.
#[derive(Debug)]
struct CloneBomb {
    tag: u32,
    armed: &'static AtomicBool,
}
impl Clone for CloneBomb {
    fn clone(&self) -> Self {
        if self.armed.swap(false, Ordering::SeqCst) {
            panic!("clone failed");
        }
        CloneBomb {
            tag: self.tag,
            armed: self.armed,
        }
    }
}

/// 4. A leader whose clone for its followers panics still reports the
///    flight's end, as a panic, to the observer and to `Stats`.
#[test]
fn a_leaders_clone_panic_is_reported_as_the_flights_end() {
    static ARMED: AtomicBool = AtomicBool::new(false);
    watchdog(Duration::from_secs(20), || {
        let tally = Arc::new(Tally::default());
        let group: Arc<Group<String, CloneBomb>> =
            Arc::new(Group::builder().metrics(tally.clone()).build());
        let started = Arc::new(AtomicBool::new(false));
        let leader = {
            let (group, started) = (group.clone(), started.clone());
            thread::spawn(move || {
                let g = group.clone();
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    group.work("k", move || {
                        started.store(true, Ordering::SeqCst);
                        wait_for("two followers", || g.waiters("k") == 2);
                        ARMED.store(true, Ordering::SeqCst);
                        CloneBomb {
                            tag: 1,
                            armed: &ARMED,
                        }
                    })
                }))
                .is_err()
            })
        };
        wait_for("the leader to start", || started.load(Ordering::SeqCst));
        let followers: Vec<_> = (0..2)
            .map(|_| {
                let group = group.clone();
                thread::spawn(move || {
                    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        group.work("k", || unreachable!("joins"))
                    }));
                    r.unwrap_err().downcast::<LeaderPanicked>().is_ok()
                })
            })
            .collect();
        for f in followers {
            assert!(f.join().unwrap(), "a follower panics with LeaderPanicked");
        }
        assert!(leader.join().unwrap(), "the leader's clone panic resumes");
        let ended = tally.ended.lock().unwrap().clone();
        assert_eq!(ended.len(), 1, "{ended:?}");
        assert_eq!(ended[0].outcome, Outcome::Panic);
        assert_eq!(ended[0].waiters, 2);
        assert_eq!(ended[0].callers, 3);
        let reported: usize = ended.iter().map(|e| e.waiters).sum();
        assert_eq!(
            tally.joined.load(Ordering::SeqCst),
            reported,
            "waiters add up"
        );
        let stats = group.stats();
        assert_eq!((stats.calls, stats.panics, stats.errors), (3, 1, 0));
        assert_eq!(group.in_flight(), 0);
    });
}

/// A cache whose spawner queues jobs for the test to run.
fn queued_cache<V>(clock: &ManualClock) -> (TtlCache<String, V>, mpsc::Receiver<Job>)
where
    V: Clone,
{
    let (queue, jobs) = mpsc::channel::<Job>();
    let queue = Mutex::new(queue);
    let cache = TtlCache::builder()
        .ttl(Duration::from_secs(60))
        .refresh_after(Duration::from_secs(30))
        .clock(clock.clone())
        .spawner(move |job| {
            queue
                .lock()
                .unwrap()
                .send(job)
                .map_err(|_| std::io::Error::other("closed"))
        })
        .build()
        .unwrap();
    (cache, jobs)
}

/// 5 and 6. A `get_or_load` that joins a detached refresh which panics
/// loads for itself (and caches what it loaded) instead of inheriting the
/// refresh's panic.
#[test]
fn a_panicking_detached_refresh_does_not_reach_get_or_load() {
    watchdog(Duration::from_secs(20), || {
        let clock = ManualClock::new();
        let (cache, jobs) = queued_cache::<u32>(&clock);
        assert_eq!(cache.get_or_load_detached("k", |_| 1), 1);
        clock.advance(Duration::from_secs(30));
        let stale = cache.get_or_load_detached("k", |_| panic!("refresh failed"));
        assert_eq!(stale, 1, "served; the refresh is queued");
        clock.advance(Duration::from_secs(30));
        let refresh = jobs.recv().unwrap();
        thread::scope(|s| {
            let joiner = s.spawn(|| cache.get_or_load("k", || 3));
            wait_for("the miss to join the refresh", || cache.waiters("k") == 2);
            refresh();
            assert_eq!(joiner.join().ok(), Some(3), "loaded for itself");
        });
        assert_eq!(cache.get("k"), Some(3), "and cached it");
        assert_eq!(cache.stats().loads, 3, "first load, refresh, fallback");
    });
}

/// 6. A `get_or_load` that joins a failing `try_get_or_load` runs its own
///    loader: counted in `Stats.loads`, and its value cached.
#[test]
fn a_fallback_load_after_joining_a_failed_try_load_is_counted_and_cached() {
    watchdog(Duration::from_secs(20), || {
        let cache: TtlCache<String, u32> = TtlCache::new(Duration::from_secs(60));
        let started = AtomicBool::new(false);
        let runs = AtomicUsize::new(0);
        thread::scope(|s| {
            let failing = s.spawn(|| {
                cache.try_get_or_load("k", || {
                    runs.fetch_add(1, Ordering::SeqCst);
                    started.store(true, Ordering::SeqCst);
                    wait_for("a joiner", || cache.waiters("k") == 1);
                    Err::<u32, _>("down".to_string())
                })
            });
            wait_for("the failing load to start", || {
                started.load(Ordering::SeqCst)
            });
            let v = cache.get_or_load("k", || {
                runs.fetch_add(1, Ordering::SeqCst);
                7
            });
            assert_eq!(v, 7);
            assert_eq!(failing.join().unwrap(), Err(Arc::new("down".to_string())));
        });
        assert_eq!(cache.get("k"), Some(7), "the fallback's value is cached");
        assert_eq!(cache.stats().loads, runs.load(Ordering::SeqCst) as u64);
        assert_eq!(cache.stats().loads, 2);
    });
}

/// 7. XFetch never picks a cached error for a refresh, and a cached error
///    is counted as what its reader sees: a negative hit for
///    `try_get_or_load`, a miss for `get`.
#[test]
fn early_refresh_never_picks_a_cached_error() {
    let clock = ManualClock::new();
    let cache: TtlCache<String, u32> = TtlCache::builder()
        .ttl(Duration::from_secs(60))
        .error_ttl(Duration::from_secs(10))
        // Huge: every value within reach of expiry is due at once.
        .early_refresh(1e12)
        .clock(clock.clone())
        .build()
        .unwrap();
    let down = Err("down".to_string());
    let first = cache.try_get_or_load("k", || {
        clock.advance(Duration::from_secs(1)); // a slow load: XFetch's delta
        down.clone()
    });
    let shared = Err(Arc::new("down".to_string()));
    assert_eq!(first, shared);
    clock.advance(Duration::from_secs(5));
    for _ in 0..10 {
        assert_eq!(
            cache.try_get_or_load("k", || Ok(2)),
            shared,
            "served cached"
        );
    }
    assert_eq!(cache.get("k"), None);
    let stats = cache.stats();
    assert_eq!((stats.refreshes, stats.stale_hits), (0, 0), "{stats:?}");
    assert_eq!(stats.negative_hits, 10, "{stats:?}");
    assert_eq!(stats.hits, 0, "a cached error is no hit: {stats:?}");
    assert_eq!(stats.misses, 2, "the first load and the `get`: {stats:?}");
    assert_eq!(stats.loads, 1);
}

/// 8. A `V::clone` panic at the moment a caller is picked to refresh leaves
///    the entry refreshable.
#[test]
fn a_clone_panic_when_picked_to_refresh_leaves_the_entry_refreshable() {
    static ARMED: AtomicBool = AtomicBool::new(false);
    let clock = ManualClock::new();
    let cache: TtlCache<String, CloneBomb> = TtlCache::builder()
        .ttl(Duration::from_secs(60))
        .refresh_after(Duration::from_secs(30))
        .clock(clock.clone())
        .build()
        .unwrap();
    let bomb = |tag| CloneBomb { tag, armed: &ARMED };
    assert_eq!(cache.get_or_load("k", || bomb(1)).tag, 1);
    clock.advance(Duration::from_secs(30));
    ARMED.store(true, Ordering::SeqCst);
    let payload = expect_panic(|| cache.get_or_load("k", || bomb(2)));
    assert_eq!(panic_text(&*payload), "clone failed");
    assert_eq!(cache.stats().refreshes, 0, "no refresh was handed out");
    assert_eq!(cache.get_or_load("k", || bomb(3)).tag, 3, "refreshed");
    assert_eq!(cache.stats().refreshes, 1);
}
