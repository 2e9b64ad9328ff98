//! Deadlines and detached flights: `work_deadline`, `work_timeout`, and how
//! they share flights with `work`.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use common::{wait_for, watchdog, Counts, Tracked};
use singleflight_sync::{Error, Group};

const LONG: Duration = Duration::from_secs(20);

#[test]
fn work_joins_a_detached_flight() {
    watchdog(LONG, || {
        let group: Arc<Group<String, u32>> = Arc::new(Group::new());
        let release = Arc::new(AtomicBool::new(false));
        let starter = {
            let (group, release) = (group.clone(), release.clone());
            thread::spawn(move || {
                group.work_timeout("k", LONG, move |_| {
                    wait_for("release", || release.load(Ordering::SeqCst));
                    1
                })
            })
        };
        wait_for("the detached flight", || group.waiters("k") == 1);
        let g = group.clone();
        let joiner = thread::spawn(move || g.work_shared("k", || 2));
        wait_for("the work caller to join", || group.waiters("k") == 2);
        release.store(true, Ordering::SeqCst);
        let started = starter.join().unwrap().unwrap();
        assert_eq!(
            (started.value, started.leader, started.shared),
            (1, true, true)
        );
        let joined = joiner.join().unwrap();
        assert_eq!(
            (joined.value, joined.leader, joined.shared),
            (1, false, true)
        );
        assert_eq!(group.in_flight(), 0);
    });
}

#[test]
fn a_deadline_caller_joins_an_inline_flight_and_can_leave_it() {
    watchdog(LONG, || {
        let group: Arc<Group<String, u32>> = Arc::new(Group::new());
        let (release_tx, release) = mpsc::channel::<()>();
        let leader = {
            let group = group.clone();
            thread::spawn(move || {
                group.work_shared("k", || {
                    release.recv().unwrap();
                    10
                })
            })
        };
        wait_for("the inline flight", || group.in_flight() == 1);
        // Joins, gives up at its deadline, and does not disturb the flight.
        let left = group.work_timeout("k", Duration::from_millis(20), |_| 0);
        assert!(matches!(left, Err(Error::Timeout)), "{left:?}");
        assert_eq!(group.in_flight(), 1);
        // Joins again and stays.
        let g = group.clone();
        let stays = thread::spawn(move || g.work_timeout("k", LONG, |_| 0));
        wait_for("the second follower", || group.waiters("k") == 1);
        release_tx.send(()).unwrap();
        assert_eq!(stays.join().unwrap().unwrap().value, 10);
        let led = leader.join().unwrap();
        assert!(led.leader && led.shared);
        assert_eq!(group.in_flight(), 0);
    });
}

#[test]
fn the_last_deadline_caller_leaving_cancels_and_releases_in_one_step() {
    watchdog(LONG, || {
        let group: Arc<Group<String, u32>> = Arc::new(Group::new());
        let cancelled = Arc::new(AtomicBool::new(false));
        let c = cancelled.clone();
        let gone = group.work_timeout("k", Duration::from_millis(30), move |token| {
            // Runs until cancelled; then records it.
            assert!(token.wait_timeout(LONG), "cancelled, not timed out");
            c.store(true, Ordering::SeqCst);
            1
        });
        assert!(matches!(gone, Err(Error::Timeout)));
        // Released at the same moment: a new caller starts a fresh flight at
        // once, even while the cancelled `f` is still winding down.
        let fresh = group.work_timeout("k", LONG, |_| 2).unwrap();
        assert_eq!((fresh.value, fresh.leader), (2, true));
        wait_for("the cancelled f to notice", || {
            cancelled.load(Ordering::SeqCst)
        });
        wait_for("the cancelled flight to end", || group.in_flight() == 0);
    });
}

#[test]
fn one_caller_leaving_does_not_cancel_while_another_waits() {
    watchdog(LONG, || {
        let group: Arc<Group<String, u32>> = Arc::new(Group::new());
        let release = Arc::new(AtomicBool::new(false));
        let r = release.clone();
        let g = group.clone();
        let patient = thread::spawn(move || {
            g.work_timeout("k", LONG, move |token| {
                wait_for("release", || r.load(Ordering::SeqCst));
                assert!(!token.is_cancelled());
                5
            })
        });
        wait_for("the flight", || group.waiters("k") == 1);
        let hasty = group.work_timeout("k", Duration::from_millis(10), |_| 0);
        assert!(matches!(hasty, Err(Error::Timeout)));
        assert_eq!(
            group.waiters("k"),
            1,
            "the patient caller still waits on the same flight"
        );
        release.store(true, Ordering::SeqCst);
        assert_eq!(patient.join().unwrap().unwrap().value, 5);
    });
}

#[test]
fn a_do_chan_receiver_counts_as_waiting_until_its_message_is_sent() {
    watchdog(LONG, || {
        let group: Arc<Group<String, u32>> = Arc::new(Group::new());
        let release = Arc::new(AtomicBool::new(false));
        let r = release.clone();
        let rx = group.do_chan("k", move |token| {
            wait_for("release", || r.load(Ordering::SeqCst));
            u32::from(token.is_cancelled())
        });
        // A deadline caller joins, gives up; the receiver still waits, so the
        // flight is neither cancelled nor released.
        let left = group.work_timeout("k", Duration::from_millis(10), |_| 9);
        assert!(matches!(left, Err(Error::Timeout)));
        assert_eq!(group.waiters("k"), 1);
        release.store(true, Ordering::SeqCst);
        let reply = rx.recv().unwrap().unwrap();
        assert_eq!(reply.value, 0, "not cancelled");
        assert!(reply.leader);
        assert!(reply.shared, "the deadline caller had joined it");
    });
}

#[test]
fn the_late_result_of_an_abandoned_flight_is_dropped_once() {
    watchdog(LONG, || {
        let counts = Arc::new(Counts::default());
        let group: Arc<Group<String, Tracked>> = Arc::new(Group::new());
        let (finish_tx, finish) = mpsc::channel::<()>();
        let c = counts.clone();
        let gone = group.work_timeout("k", Duration::from_millis(10), move |_| {
            // Ignores cancellation; its value arrives after everyone left.
            finish.recv().unwrap();
            Tracked::new(1, &c)
        });
        assert!(matches!(gone, Err(Error::Timeout)));
        assert_eq!(group.in_flight(), 1, "the abandoned f still runs");
        finish_tx.send(()).unwrap();
        wait_for("the flight to end", || group.in_flight() == 0);
        wait_for("the value to be dropped", || counts.drops() == 1);
        assert_eq!(counts.clones(), 0);
        thread::sleep(Duration::from_millis(20));
        assert_eq!(counts.drops(), 1, "dropped exactly once");
    });
}

#[test]
fn detached_values_are_moved_to_the_last_waiter() {
    watchdog(LONG, || {
        let counts = Arc::new(Counts::default());
        let group: Arc<Group<String, Tracked>> = Arc::new(Group::new());
        let release = Arc::new(AtomicBool::new(false));
        let (c, r) = (counts.clone(), release.clone());
        let rx = group.do_chan("k", move |_| {
            wait_for("release", || r.load(Ordering::SeqCst));
            Tracked::new(3, &c)
        });
        let joiners: Vec<_> = (0..3)
            .map(|_| {
                let group = group.clone();
                thread::spawn(move || group.work_timeout("k", LONG, |_| unreachable!()).unwrap())
            })
            .collect();
        wait_for("three joiners", || group.waiters("k") == 4);
        release.store(true, Ordering::SeqCst);
        let mut values = vec![rx.recv().unwrap().unwrap().value];
        values.extend(joiners.into_iter().map(|j| j.join().unwrap().value));
        assert!(values.iter().all(|v| v.tag == 3));
        assert_eq!(
            counts.clones(),
            3,
            "four receivers of a detached value: three clones"
        );
        drop(values);
        assert_eq!(counts.drops(), 4);
    });
}

#[test]
fn a_detached_panic_reaches_every_waiter_as_an_error() {
    watchdog(LONG, || {
        let group: Arc<Group<String, u32>> = Arc::new(Group::builder().name("imports").build());
        let release = Arc::new(AtomicBool::new(false));
        let r = release.clone();
        let rx = group.do_chan("k", move |_| {
            wait_for("release", || r.load(Ordering::SeqCst));
            panic!("parse error at line {}", 3)
        });
        let g = group.clone();
        let waiter = thread::spawn(move || g.work_timeout("k", LONG, |_| 0));
        wait_for("the waiter", || group.waiters("k") == 2);
        release.store(true, Ordering::SeqCst);
        for outcome in [rx.recv().unwrap(), waiter.join().unwrap()] {
            match outcome {
                Err(Error::Panicked(cause)) => {
                    assert_eq!(cause.message(), "parse error at line 3");
                    assert_eq!(cause.group(), Some("imports"));
                }
                other => panic!("expected Panicked, got {other:?}"),
            }
        }
        assert_eq!(group.in_flight(), 0);
        assert_eq!(group.work_timeout("k", LONG, |_| 4).unwrap().value, 4);
    });
}

#[test]
fn a_work_follower_of_a_detached_panic_panics_with_the_payload() {
    watchdog(LONG, || {
        let group: Arc<Group<String, u32>> = Arc::new(Group::new());
        let release = Arc::new(AtomicBool::new(false));
        let r = release.clone();
        let _rx = group.do_chan("k", move |_| {
            wait_for("release", || r.load(Ordering::SeqCst));
            panic!("boom")
        });
        let g = group.clone();
        let follower = thread::spawn(move || common::expect_panic(|| g.work("k", || 0)));
        wait_for("the follower", || group.waiters("k") == 2);
        release.store(true, Ordering::SeqCst);
        let payload = follower.join().unwrap();
        let cause = payload
            .downcast_ref::<singleflight_sync::LeaderPanicked>()
            .unwrap();
        assert_eq!(cause.message(), "boom");
    });
}

#[test]
fn deadline_accuracy_is_within_a_generous_bound() {
    // A bound for correctness (the waiter does wake at its deadline), not a
    // speed claim: the lateness itself is measured in `benches/deadlines.rs`.
    watchdog(LONG, || {
        let group: Group<String, u32> = Group::new();
        for _ in 0..5 {
            let deadline = Instant::now() + Duration::from_millis(30);
            let r = group.work_deadline("k", deadline, |token| {
                token.wait_timeout(LONG);
                0
            });
            let late = Instant::now().saturating_duration_since(deadline);
            assert!(matches!(r, Err(Error::Timeout)));
            assert!(
                late < Duration::from_millis(500),
                "returned {late:?} after its deadline"
            );
        }
    });
}

#[test]
fn a_reentrant_deadline_call_panics() {
    watchdog(LONG, || {
        let group: Group<String, u32> = Group::new();
        let payload = common::expect_panic(|| {
            group.work("k", || {
                group.work_timeout("k", LONG, |_| 1).map_or(0, |f| f.value)
            })
        });
        assert!(common::panic_text(&*payload).contains("re-entrant call"));
    });
}

#[test]
fn a_detached_reentrant_call_fails_the_flight_instead_of_hanging() {
    watchdog(LONG, || {
        let group: Arc<Group<String, u32>> = Arc::new(Group::new());
        let g = group.clone();
        let runs = Arc::new(AtomicUsize::new(0));
        let r = runs.clone();
        let outcome = group.work_timeout("k", LONG, move |_| {
            r.fetch_add(1, Ordering::SeqCst);
            g.work("k", || 1)
        });
        match outcome {
            Err(Error::Panicked(cause)) => {
                assert!(cause.message().contains("re-entrant call"), "{cause}")
            }
            other => panic!("expected a re-entrancy panic, got {other:?}"),
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        wait_for("the flight to end", || group.in_flight() == 0);
    });
}
