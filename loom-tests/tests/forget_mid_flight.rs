//! Model 2: `forget` during a flight, then a second flight for the same key.
//!
//! The order of events is fixed with `Gate`s (blocking loom can see), so each
//! model checks one story under every interleaving of the steps in between:
//! the end of one flight must remove that flight's entry and never the
//! other's, and a later caller must find exactly the flight that is still
//! joinable. Values tag their flight (1, 2, 3). The two stories end the two
//! flights in opposite orders, so an end that removes "the entry for this key"
//! instead of its own fails one of them whichever entry the table finds first.

#![cfg(loom)]

mod common;

use common::{joined, led, Gate, KEY};
use loom::sync::atomic::{AtomicBool, Ordering::SeqCst};
use loom::sync::Arc;
use loom::thread;
use singleflight_sync::{Flight, Group};

/// Flight 1 forgets itself, and waits at `end` before returning 1.
fn first_flight(
    group: &Arc<Group<u32, u32>>,
    forgotten: &Arc<Gate>,
    end: &Arc<Gate>,
) -> thread::JoinHandle<Flight<u32>> {
    let (group, forgotten, end) = (group.clone(), forgotten.clone(), end.clone());
    thread::spawn(move || {
        group.work_shared(&KEY, || {
            assert!(group.forget(&KEY), "forget found no flight to release");
            assert!(!group.forget(&KEY), "a released flight was released again");
            forgotten.open();
            end.wait();
            1
        })
    })
}

/// Flight 2 starts after the release, says so, and waits at `end` before
/// returning 2.
fn second_flight(
    group: &Arc<Group<u32, u32>>,
    started: &Arc<Gate>,
    end: &Arc<Gate>,
) -> thread::JoinHandle<Flight<u32>> {
    let (group, started, end) = (group.clone(), started.clone(), end.clone());
    thread::spawn(move || {
        group.work_shared(&KEY, || {
            started.open();
            end.wait();
            2
        })
    })
}

/// forget, flight 2 starts, flight 1 ends: flight 2's entry survives and a
/// later caller joins it.
#[test]
fn first_flight_ends_first() {
    common::model(|| {
        let group = common::group();
        let [forgotten, started, first_end, second_end] = &[(); 4].map(|()| Gate::new());

        let first = first_flight(&group, forgotten, first_end);
        forgotten.wait();
        let second = second_flight(&group, started, second_end);
        started.wait();
        assert_eq!(group.in_flight(), 2);

        first_end.open();
        assert_eq!(first.join().unwrap(), led(1, false));
        assert_eq!(
            group.in_flight(),
            1,
            "flight 1's end removed more than its entry"
        );

        let returned = Arc::new(AtomicBool::new(false));
        let later = {
            let (group, returned) = (group.clone(), returned.clone());
            thread::spawn(move || {
                let flight = group.work_shared(&KEY, || 3);
                returned.store(true, SeqCst);
                flight
            })
        };
        // Flight 2 cannot end before this, so the later caller either joins
        // it (and is counted) or, if flight 2's entry was lost, leads and
        // returns.
        while group.waiters(&KEY) == 0 && !returned.load(SeqCst) {
            thread::yield_now();
        }
        assert_eq!(
            group.waiters(&KEY),
            1,
            "the later caller did not join flight 2"
        );

        second_end.open();
        assert_eq!(second.join().unwrap(), led(2, true));
        assert_eq!(later.join().unwrap(), joined(2));
        assert_eq!(group.in_flight(), 0);
    });
}

/// forget, flight 2 starts, flight 2 ends while the forgotten flight 1 still
/// runs: flight 1's entry survives (still in flight, never joinable) and a
/// later caller leads flight 3.
#[test]
fn second_flight_ends_first() {
    common::model(|| {
        let group = common::group();
        let [forgotten, started, first_end, second_end] = &[(); 4].map(|()| Gate::new());

        let first = first_flight(&group, forgotten, first_end);
        forgotten.wait();
        let second = second_flight(&group, started, second_end);
        started.wait();

        second_end.open();
        assert_eq!(second.join().unwrap(), led(2, false));
        assert_eq!(
            group.in_flight(),
            1,
            "flight 2's end removed more than its entry"
        );
        assert_eq!(group.waiters(&KEY), 0);

        // Flight 1 is released: nobody may join it, so this call leads (and
        // would block forever if it joined, since flight 1 waits on us).
        let later = {
            let group = group.clone();
            thread::spawn(move || group.work_shared(&KEY, || 3))
        };
        assert_eq!(later.join().unwrap(), led(3, false));

        first_end.open();
        assert_eq!(first.join().unwrap(), led(1, false));
        assert_eq!(group.in_flight(), 0);
    });
}
