//! `do_chan`, `cancel` and spawners: one message per receiver, prompt
//! cancellation, and every way a spawner can fail.

mod common;

use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use common::{wait_for, watchdog, Counts, Tracked};
use crossbeam_channel::{after, select};
use singleflight_sync::{Error, Group};

const LONG: Duration = Duration::from_secs(20);

#[test]
fn do_chan_sends_exactly_one_message_and_works_in_select() {
    watchdog(LONG, || {
        let group: Arc<Group<String, u32>> = Arc::new(Group::new());
        let (go_tx, go) = mpsc::channel::<()>();
        let first = group.do_chan("k", move |_| {
            go.recv().unwrap();
            8
        });
        let second = group.do_chan("k", |_| unreachable!("joins the running flight"));
        // Not ready yet: the timer wins.
        select! {
            recv(first) -> _ => panic!("the flight has not ended"),
            recv(after(Duration::from_millis(20))) -> _ => {}
        }
        go_tx.send(()).unwrap();
        for (rx, leader) in [(first, true), (second, false)] {
            select! {
                recv(rx) -> msg => {
                    let flight = msg.unwrap().unwrap();
                    assert_eq!((flight.value, flight.leader, flight.shared), (8, leader, true));
                }
                recv(after(LONG)) -> _ => panic!("no message"),
            }
            // Exactly one message: then the channel is closed.
            assert!(rx.recv().is_err());
        }
        assert_eq!(group.in_flight(), 0);
    });
}

#[test]
fn a_dropped_receiver_leaks_nothing() {
    watchdog(LONG, || {
        let counts = Arc::new(Counts::default());
        let group: Group<String, Tracked> = Group::new();
        let (go_tx, go) = mpsc::channel::<()>();
        let c = counts.clone();
        let rx = group.do_chan("k", move |_| {
            go.recv().unwrap();
            Tracked::new(1, &c)
        });
        drop(rx);
        go_tx.send(()).unwrap();
        wait_for("the flight to end", || group.in_flight() == 0);
        wait_for("the value to be dropped", || counts.drops() == 1);
        assert_eq!(counts.clones(), 0);
    });
}

#[test]
fn cancel_wakes_every_waiter_promptly_and_releases_the_key() {
    watchdog(LONG, || {
        let group: Arc<Group<String, u32>> = Arc::new(Group::new());
        let saw_cancel = Arc::new(AtomicBool::new(false));
        let s = saw_cancel.clone();
        let rx = group.do_chan("k", move |token| {
            s.store(token.wait_timeout(LONG), Ordering::SeqCst);
            1
        });
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let group = group.clone();
                thread::spawn(move || {
                    let r = group.work_timeout("k", LONG, |_| 0);
                    (r, Instant::now())
                })
            })
            .collect();
        wait_for("three waiters", || group.waiters("k") == 4);
        let cancelled_at = Instant::now();
        assert!(group.cancel("k"));
        assert!(matches!(rx.recv().unwrap(), Err(Error::Cancelled)));
        for waiter in waiters {
            let (r, at) = waiter.join().unwrap();
            assert!(matches!(r, Err(Error::Cancelled)), "{r:?}");
            assert!(
                at.duration_since(cancelled_at) < Duration::from_secs(2),
                "not prompt"
            );
        }
        wait_for("f to see the cancellation", || {
            saw_cancel.load(Ordering::SeqCst)
        });
        // Released at once: a new flight, not the cancelled one.
        let fresh = group.work_timeout("k", LONG, |_| 2).unwrap();
        assert!(fresh.leader);
        assert_eq!(fresh.value, 2);
        wait_for("the cancelled flight to end", || group.in_flight() == 0);
    });
}

#[test]
fn a_work_caller_of_a_cancelled_flight_runs_again() {
    watchdog(LONG, || {
        let group: Arc<Group<String, u32>> = Arc::new(Group::new());
        let _rx = group.do_chan("k", |token| {
            token.wait();
            1
        });
        let g = group.clone();
        let follower = thread::spawn(move || g.work_shared("k", || 7));
        wait_for("the follower", || group.waiters("k") == 2);
        assert!(group.cancel("k"));
        let flight = follower.join().unwrap();
        assert_eq!(
            (flight.value, flight.leader),
            (7, true),
            "it led a fresh flight with its own f"
        );
    });
}

#[test]
fn cancel_on_an_inline_flight_is_forget() {
    watchdog(LONG, || {
        let group: Arc<Group<String, u32>> = Arc::new(Group::new());
        let (go_tx, go) = mpsc::channel::<()>();
        let g = group.clone();
        let leader = thread::spawn(move || {
            g.work("k", || {
                go.recv().unwrap();
                1
            })
        });
        wait_for("the leader", || group.in_flight() == 1);
        let g = group.clone();
        let follower = thread::spawn(move || g.work("k", || 0));
        wait_for("the follower", || group.waiters("k") == 1);
        assert!(group.cancel("k"));
        assert!(!group.cancel("k"), "already released");
        // The key is released: a new caller leads a new flight.
        assert_eq!(group.work("k", || 2), 2);
        go_tx.send(()).unwrap();
        assert_eq!(leader.join().unwrap(), 1);
        assert_eq!(
            follower.join().unwrap(),
            1,
            "waiters still get the inline value"
        );
        assert_eq!(group.in_flight(), 0);
    });
}

fn assert_spawn_error(r: Result<singleflight_sync::Flight<u32>, Error>, needle: &str) {
    match r {
        Err(Error::Spawn(cause)) => assert!(cause.to_string().contains(needle), "{cause}"),
        other => panic!("expected Error::Spawn, got {other:?}"),
    }
}

#[test]
fn a_failing_spawner_fails_every_waiter_and_releases_the_key() {
    watchdog(LONG, || {
        let fail = Arc::new(AtomicBool::new(true));
        let f = fail.clone();
        let group: Group<String, u32> = Group::builder()
            .spawner(move |job| {
                if f.load(Ordering::SeqCst) {
                    Err(io::Error::other("pool is full"))
                } else {
                    thread::spawn(job);
                    Ok(())
                }
            })
            .build();
        assert_spawn_error(group.work_timeout("k", LONG, |_| 1), "pool is full");
        match group.do_chan("k", |_| 1).recv().unwrap() {
            Err(Error::Spawn(cause)) => assert_eq!(cause.to_string(), "pool is full"),
            other => panic!("{other:?}"),
        }
        assert_eq!(group.in_flight(), 0);
        fail.store(false, Ordering::SeqCst);
        assert_eq!(group.work_timeout("k", LONG, |_| 3).unwrap().value, 3);
    });
}

#[test]
fn a_panicking_or_job_dropping_spawner_is_a_spawn_error() {
    watchdog(LONG, || {
        let panics: Group<String, u32> = Group::builder()
            .spawner(|_| panic!("no threads left"))
            .build();
        assert_spawn_error(panics.work_timeout("k", LONG, |_| 1), "no threads left");
        assert_eq!(panics.in_flight(), 0);

        let drops: Group<String, u32> = Group::builder()
            .spawner(|job| {
                drop(job);
                Ok(())
            })
            .build();
        assert_spawn_error(drops.work_timeout("k", LONG, |_| 1), "without running it");
        assert_eq!(drops.in_flight(), 0);

        // Dropped later, on another thread, after `spawn` returned.
        let late: Group<String, u32> = Group::builder()
            .spawner(|job| {
                thread::spawn(move || {
                    thread::sleep(Duration::from_millis(20));
                    drop(job);
                });
                Ok(())
            })
            .build();
        assert_spawn_error(late.work_timeout("k", LONG, |_| 1), "without running it");
        wait_for("the entry to go", || late.in_flight() == 0);
    });
}

#[test]
fn a_rayon_pool_runs_the_flights() {
    watchdog(LONG, || {
        let pool = Arc::new(
            rayon::ThreadPoolBuilder::new()
                .num_threads(2)
                .build()
                .unwrap(),
        );
        let p = pool.clone();
        let group: Arc<Group<u64, usize>> = Arc::new(
            Group::builder()
                .name("pool")
                .spawner(move |job| {
                    p.spawn(job);
                    Ok(())
                })
                .build(),
        );
        let runs = Arc::new(AtomicUsize::new(0));
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let (group, runs) = (group.clone(), runs.clone());
                thread::spawn(move || {
                    let r = runs.clone();
                    let flight = group
                        .work_timeout(&(i % 2), LONG, move |_| {
                            r.fetch_add(1, Ordering::SeqCst);
                            rayon::current_thread_index().expect("runs on a pool thread")
                        })
                        .unwrap();
                    assert!(flight.value < 2);
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert!(runs.load(Ordering::SeqCst) <= 8);
        assert_eq!(group.in_flight(), 0);
    });
}
