//! Model 5: a follower leaves a flight early while the flight ends.
//!
//! loom does not model time, so the decision to leave is an input: a caller
//! using `work_timeout(&KEY, Duration::ZERO, ..)` finds its deadline passed
//! at once and takes the leave path without blocking. What loom varies is
//! where that leave falls against the flight's end.
//!
//! - An inline flight (led by `work`) with one follower that leaves and one
//!   that stays: the one that stays is woken, the count of waiters is exact
//!   at every step, the leader is never disturbed, and the leaver gets
//!   `Timeout` or, if the outcome had arrived already, the value.
//! - A detached flight whose only deadline caller (the one that started it)
//!   leaves while a new caller arrives: cancelling the token and releasing
//!   the key are one step, so the new caller either joined before it (and
//!   the flight goes on for it) or starts a fresh flight, never joins a
//!   cancelled one; the late value is dropped once and reported never.
//!
//! Each test also tallies which way every interleaving went and checks,
//! after loom is done, that every way was reached (`common::assert_reached`).

#![cfg(loom)]

mod common;

use std::fmt;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use common::{assert_reached, joined, led, Gate, Tally, KEY, NAME};
use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use loom::sync::{Arc, Mutex};
use loom::thread;
use singleflight_sync::{CancelToken, Error, Flight, FlightEnd, Group, Metrics, Outcome};

/// (a) `work` leads an inline flight; one follower joins and leaves at
/// once, the other joins and stays. The leader starts both from inside its
/// `f` and holds the flight open until both have joined, so neither can
/// lead (and the leaver cannot start a detached flight of its own).
#[test]
fn inline_flight_one_follower_leaves_one_stays() {
    // Interleavings in which the leaver left first, or found the value.
    static TIMED_OUT: Tally = Tally::new(0);
    static GOT_VALUE: Tally = Tally::new(0);

    common::model(|| {
        let group = common::group();
        let left = Arc::new(AtomicBool::new(false));
        let mut followers = None;
        let flight = group.work_shared(&KEY, || {
            let leaver = {
                let (group, left) = (group.clone(), left.clone());
                thread::spawn(move || {
                    let r = group.work_timeout(&KEY, Duration::ZERO, |_| 3);
                    left.store(true, SeqCst);
                    r
                })
            };
            let stayer = {
                let group = group.clone();
                thread::spawn(move || group.work_shared(&KEY, || 2))
            };
            while group.stats().shared < 2 {
                thread::yield_now();
            }
            // While `f` runs there is no outcome, so a leaver that has
            // returned has left: one waiter is left, the one that stays.
            // (Read `left` first: a leaver not yet seen may leave meanwhile.)
            let gone = left.load(SeqCst);
            let waiting = group.waiters(&KEY);
            if gone {
                assert_eq!(waiting, 1, "the leaver left, yet {waiting} waiters");
            } else {
                assert!(matches!(waiting, 1 | 2), "{waiting} waiters of 2 joined");
            }
            followers = Some((leaver, stayer));
            1
        });
        // The leaver's leave never reaches the leader.
        assert_eq!(flight, led(1, true), "the leader was disturbed");

        let (leaver, stayer) = followers.expect("the first caller leads");
        // The one that stays is woken, and gets the flight's value.
        assert_eq!(stayer.join().unwrap(), joined(1));
        let timed_out = match leaver.join().unwrap() {
            Err(Error::Timeout) => true,
            // It took its share of an outcome that had arrived: still a
            // follower of flight 1, whose `f` it never ran.
            Ok(flight) => {
                assert_eq!(flight, joined(1), "the leaver found another value");
                false
            }
            Err(other) => panic!("the leaver got {other:?}"),
        };
        let way = if timed_out { &TIMED_OUT } else { &GOT_VALUE };
        way.fetch_add(1, Relaxed);

        assert_eq!(group.waiters(&KEY), 0);
        assert_eq!(group.in_flight(), 0, "a flight outlived its leader");
        let stats = group.stats();
        assert_eq!((stats.calls, stats.executions, stats.shared), (3, 1, 2));
        assert_eq!(stats.timeouts, u64::from(timed_out));
        assert_eq!(stats.cancellations, 0, "an inline flight was cancelled");
    });

    assert_reached(&[
        (&TIMED_OUT, "the leaver left before the outcome"),
        (&GOT_VALUE, "the leaver found the outcome"),
    ]);
}

/// A value that counts its copies and its drops (one `Life` per flight), so
/// a model can check that every copy made was dropped, once.
struct Counted {
    tag: u32,
    life: Arc<Life>,
}

#[derive(Debug, Default)]
struct Life {
    made: AtomicUsize,
    dropped: AtomicUsize,
}

impl Counted {
    fn new(tag: u32, life: &Arc<Life>) -> Self {
        life.made.fetch_add(1, SeqCst);
        Counted {
            tag,
            life: life.clone(),
        }
    }
}

impl Clone for Counted {
    fn clone(&self) -> Self {
        Counted::new(self.tag, &self.life)
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.life.dropped.fetch_add(1, SeqCst);
    }
}

impl PartialEq for Counted {
    fn eq(&self, other: &Self) -> bool {
        self.tag == other.tag
    }
}

impl fmt::Debug for Counted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Counted({})", self.tag)
    }
}

impl Life {
    /// Copies made and copies dropped.
    fn counts(&self) -> (usize, usize) {
        (self.made.load(SeqCst), self.dropped.load(SeqCst))
    }
}

/// Counts the flight ends the group reports, by outcome.
#[derive(Debug, Default)]
struct Ends {
    values: AtomicUsize,
    cancelled: AtomicUsize,
    other: AtomicUsize,
}

impl Metrics for Ends {
    fn flight_ended(&self, _group: Option<&'static str>, flight: &FlightEnd) {
        match flight.outcome {
            Outcome::Value => &self.values,
            Outcome::Cancelled => &self.cancelled,
            _ => &self.other,
        }
        .fetch_add(1, SeqCst);
    }
}

/// What the detached flight's `f` leaves behind: its token, and whether the
/// caller that started the flight had already returned when `f` was about
/// to return (so it left while the flight was still in the map).
type Seen = Mutex<Option<(CancelToken, bool)>>;

/// (b) `work_timeout(ZERO)` starts a detached flight and, as its only
/// deadline caller, leaves at once; a new `work` caller arrives once `f` has
/// started. The group's spawner runs the flight on a loom thread, like the
/// default one, and keeps its handle so the model can join it too.
#[test]
fn detached_flight_loses_its_only_deadline_caller() {
    // Interleavings in which: the leave cancelled the flight; the new caller
    // joined it first; the new caller came after the flight's end and led;
    // the leaver found the value; `f` saw the leaver gone.
    static CANCELLED: Tally = Tally::new(0);
    static JOINED: Tally = Tally::new(0);
    static LED_AFTER_END: Tally = Tally::new(0);
    static LEAVER_GOT_VALUE: Tally = Tally::new(0);
    static SEEN_GONE: Tally = Tally::new(0);

    common::model(|| {
        let ends = std::sync::Arc::new(Ends::default());
        let runners = Arc::new(Mutex::new(Vec::new()));
        let group: Arc<Group<u32, Counted>> = {
            let runners = runners.clone();
            Arc::new(
                Group::builder()
                    .shards(1)
                    .name(NAME)
                    .metrics(ends.clone())
                    .spawner(move |job| {
                        runners.lock().unwrap().push(thread::spawn(job));
                        Ok(())
                    })
                    .build(),
            )
        };
        let [first, fresh] = [(); 2].map(|()| Arc::new(Life::default()));
        let started = Gate::new();
        let left = Arc::new(AtomicBool::new(false));
        let seen: Arc<Seen> = Arc::default();

        let newcomer = {
            let (group, started, fresh) = (group.clone(), started.clone(), fresh.clone());
            thread::spawn(move || {
                started.wait();
                group.work_shared(&KEY, || Counted::new(2, &fresh))
            })
        };
        let f = {
            let (left, seen, first) = (left.clone(), seen.clone(), first.clone());
            move |token: &CancelToken| {
                started.open();
                let token = token.clone();
                let leaver_gone = left.load(SeqCst);
                *seen.lock().unwrap() = Some((token, leaver_gone));
                Counted::new(1, &first)
            }
        };
        let leaver = group.work_timeout(&KEY, Duration::ZERO, f);
        left.store(true, SeqCst);

        let newcomer = newcomer.join().unwrap();
        let runner = {
            let mut runners = runners.lock().unwrap();
            assert_eq!(runners.len(), 1, "one detached flight, one thread");
            runners.pop().unwrap()
        };
        runner.join().unwrap();

        let (token, leaver_gone) = seen.lock().unwrap().take().expect("f ran");
        let cancelled = token.is_cancelled();
        let stats = group.stats();
        let new_joined = !newcomer.leader;

        if new_joined {
            // It joined the detached flight, before any release: so the
            // leave found it waiting and cancelled nothing.
            assert_eq!(newcomer.value.tag, 1);
            assert!(newcomer.shared, "a follower's value is always shared");
            assert!(!cancelled, "a caller got the value of a cancelled flight");
            assert_eq!(stats.shared, 1);
        } else {
            // It led a fresh flight of its own, having joined nothing: a
            // caller that joined a cancelled flight would have come back
            // with `Cancelled` and led afterwards, its join counted.
            assert_eq!(
                newcomer.value.tag, 2,
                "the new caller led, yet {newcomer:?}"
            );
            assert!(!newcomer.shared, "nobody could join the new flight");
            assert_eq!(stats.shared, 0, "the new caller joined a cancelled flight");
        }
        match &leaver {
            Err(Error::Timeout) => {}
            Ok(flight) => {
                // The value was published before it looked.
                assert!(!cancelled && !leaver_gone);
                let Flight {
                    value,
                    shared,
                    leader,
                } = flight;
                assert_eq!((value.tag, *shared, *leader), (1, new_joined, true));
            }
            Err(other) => panic!("the caller that started the flight got {other:?}"),
        }
        if leaver_gone {
            SEEN_GONE.fetch_add(1, Relaxed);
            // It left while the flight was in the map: cancelled exactly
            // when nobody else was waiting.
            assert_eq!(
                cancelled, !new_joined,
                "the only deadline caller left a running flight: cancelled = {cancelled}, \
                 new caller joined = {new_joined}"
            );
        }

        let tally = if cancelled {
            &CANCELLED
        } else if new_joined {
            &JOINED
        } else {
            &LED_AFTER_END
        };
        tally.fetch_add(1, Relaxed);
        if leaver.is_ok() {
            LEAVER_GOT_VALUE.fetch_add(1, Relaxed);
        }

        assert_eq!(stats.cancellations, u64::from(cancelled));
        assert_eq!(stats.executions, 1 + u64::from(!new_joined));
        assert_eq!(stats.timeouts, u64::from(leaver.is_err()));
        // Every flight's end is reported once: a cancelled one by the waiter
        // that cancelled it, never again when its late value arrives.
        let reported = |n: &AtomicUsize| n.load(SeqCst) as u64;
        assert_eq!(reported(&ends.cancelled), u64::from(cancelled));
        assert_eq!(
            reported(&ends.values),
            stats.executions - u64::from(cancelled),
            "flight ends reported as values"
        );
        assert_eq!(reported(&ends.other), 0);
        assert_eq!(group.waiters(&KEY), 0);
        assert_eq!(group.in_flight(), 0, "a flight outlived its thread");

        drop((leaver, newcomer));
        let (made, dropped) = first.counts();
        assert_eq!(
            made, dropped,
            "flight 1's values: {made} made, {dropped} dropped"
        );
        if cancelled {
            // The late value went to nobody: made once, never copied,
            // dropped once.
            assert_eq!((made, dropped), (1, 1), "the late value");
        }
        let (made, dropped) = fresh.counts();
        assert_eq!(
            made, dropped,
            "flight 2's values: {made} made, {dropped} dropped"
        );
    });

    assert_reached(&[
        (&CANCELLED, "the leave cancelled the flight"),
        (&JOINED, "the new caller joined the detached flight"),
        (
            &LED_AFTER_END,
            "the new caller led after the detached flight ended",
        ),
        (&LEAVER_GOT_VALUE, "the first caller found the value"),
        (&SEEN_GONE, "f returned after the first caller had left"),
    ]);
}
