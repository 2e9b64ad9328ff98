//! Go's `x/sync/singleflight` tests, ported to blocking Rust.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Barrier};
use std::thread;
use std::time::Duration;

use common::{expect_panic, panic_text, wait_for, watchdog};
use singleflight_sync::{Group, LeaderPanicked};

#[test]
fn do_returns_the_value() {
    let group: Group<String, String> = Group::new();
    let flight = group.work_shared("key", || "bar".to_string());
    assert_eq!(flight.value, "bar");
    assert!(flight.leader);
    assert!(!flight.shared);
}

#[test]
fn do_err_returns_the_error_and_forgets_it() {
    let group: Group<String, Result<u32, String>> = Group::new();
    let first = group.work("key", || Err("some error".to_string()));
    assert_eq!(first, Err("some error".to_string()));
    // Errors are never remembered: the next call runs again.
    assert_eq!(group.work("key", || Ok(7)), Ok(7));
}

#[test]
fn do_dup_suppress_runs_once_for_callers_that_joined() {
    const CALLERS: usize = 10;
    watchdog(Duration::from_secs(30), || {
        let group: Arc<Group<String, String>> = Arc::new(Group::new());
        let runs = Arc::new(AtomicUsize::new(0));
        let start = Arc::new(Barrier::new(CALLERS));
        let handles: Vec<_> = (0..CALLERS)
            .map(|_| {
                let (group, runs, start) = (group.clone(), runs.clone(), start.clone());
                thread::spawn(move || {
                    start.wait();
                    group.work_shared("key", || {
                        runs.fetch_add(1, Ordering::SeqCst);
                        // Hold the flight until every other caller has joined.
                        wait_for("all followers", || group.waiters("key") == CALLERS - 1);
                        "bar".to_string()
                    })
                })
            })
            .collect();
        let flights: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert!(flights.iter().all(|f| f.value == "bar" && f.shared));
        assert_eq!(flights.iter().filter(|f| f.leader).count(), 1);
        assert_eq!(group.in_flight(), 0);
    });
}

/// Go's three-step case: the first flight is forgotten while it runs, a
/// second starts, the first ends, and a third caller joins the second flight.
#[test]
fn forget_three_steps() {
    watchdog(Duration::from_secs(30), || {
        let group: Arc<Group<String, u32>> = Arc::new(Group::new());
        let (first_started_tx, first_started) = mpsc::channel();
        let (unblock_first_tx, unblock_first) = mpsc::channel::<()>();
        let (unblock_second_tx, unblock_second) = mpsc::channel::<()>();
        let (second_started_tx, second_started) = mpsc::channel();

        let first = {
            let group = group.clone();
            thread::spawn(move || {
                group.work("key", || {
                    first_started_tx.send(()).unwrap();
                    unblock_first.recv().unwrap();
                    1
                })
            })
        };
        first_started.recv().unwrap();
        assert!(group.forget("key"));

        let second = {
            let group = group.clone();
            thread::spawn(move || {
                group.work("key", || {
                    second_started_tx.send(()).unwrap();
                    unblock_second.recv().unwrap();
                    2
                })
            })
        };
        second_started.recv().unwrap();
        unblock_first_tx.send(()).unwrap();
        assert_eq!(first.join().unwrap(), 1);
        // The first flight's end must not have removed the second's entry.
        assert_eq!(group.in_flight(), 1);

        let third = {
            let group = group.clone();
            thread::spawn(move || group.work_shared("key", || 3))
        };
        wait_for("the third caller to join", || group.waiters("key") == 1);
        unblock_second_tx.send(()).unwrap();
        assert_eq!(second.join().unwrap(), 2);
        let third = third.join().unwrap();
        assert_eq!(third.value, 2, "the third caller joins the second flight");
        assert!(!third.leader);
        assert_eq!(group.in_flight(), 0);
    });
}

#[test]
fn forget_unshared_only_releases_unjoined_flights() {
    watchdog(Duration::from_secs(30), || {
        let group: Arc<Group<String, u32>> = Arc::new(Group::new());
        assert!(!group.forget_unshared("key"), "nothing in flight");
        let mut follower = None;
        group.work("key", || {
            assert!(group.forget_unshared("key"));
            // Released: a new flight, whose follower makes it shared.
            group.work("key", || {
                let g = group.clone();
                follower = Some(thread::spawn(move || g.work("key", || 0)));
                wait_for("the follower", || group.waiters("key") == 1);
                assert!(!group.forget_unshared("key"), "a follower has joined");
                5
            })
        });
        assert_eq!(follower.unwrap().join().unwrap(), 5);
        assert_eq!(group.in_flight(), 0);
    });
}

#[test]
fn panic_do_releases_the_key() {
    let group: Group<String, u32> = Group::new();
    let payload = expect_panic(|| group.work("key", || panic!("invalid memory address")));
    assert_eq!(panic_text(&*payload), "invalid memory address");
    assert!(
        payload.downcast_ref::<LeaderPanicked>().is_none(),
        "the leader's own panic resumes unchanged"
    );
    assert_eq!(group.in_flight(), 0);
    assert_eq!(group.work("key", || 1), 1);
}
