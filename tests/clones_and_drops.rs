//! No needless clones, and every value dropped exactly once.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use common::{wait_for, watchdog, Counts, Tracked};
use rand::{Rng, SeedableRng};
use singleflight_sync::Group;

#[test]
fn a_flight_nobody_joined_clones_nothing() {
    let counts = Arc::new(Counts::default());
    let group: Group<u32, Tracked> = Group::new();
    for k in 0..100 {
        let flight = group.work_shared(&(k % 3), || Tracked::new(k.into(), &counts));
        assert!(!flight.shared);
        assert_eq!(flight.value.tag, u64::from(k));
    }
    assert_eq!(counts.clones(), 0);
    assert_eq!(counts.drops(), 100);
}

#[test]
fn exactly_one_clone_per_follower() {
    for followers in [1, 2, 7] {
        watchdog(Duration::from_secs(30), move || {
            let counts = Arc::new(Counts::default());
            let group: Arc<Group<u32, Tracked>> = Arc::new(Group::new());
            let leader = {
                let (group, counts) = (group.clone(), counts.clone());
                thread::spawn(move || {
                    group.work(&1, || {
                        wait_for("followers", || group.waiters(&1) == followers);
                        Tracked::new(11, &counts)
                    })
                })
            };
            wait_for("the leader", || group.in_flight() == 1);
            let handles: Vec<_> = (0..followers)
                .map(|_| {
                    let (group, counts) = (group.clone(), counts.clone());
                    thread::spawn(move || group.work(&1, || Tracked::new(0, &counts)))
                })
                .collect();
            let mut values = vec![leader.join().unwrap()];
            values.extend(handles.into_iter().map(|h| h.join().unwrap()));
            assert!(values.iter().all(|v| v.tag == 11));
            assert_eq!(counts.clones(), followers, "{followers} followers");
            drop(values);
            assert_eq!(counts.drops(), followers + 1, "each value dropped once");
        });
    }
}

#[test]
fn thousands_of_random_flights_drop_every_value_once() {
    const THREADS: usize = 4;
    const CALLS: usize = 3_000;
    watchdog(Duration::from_secs(60), || {
        let counts = Arc::new(Counts::default());
        let runs = Arc::new(AtomicUsize::new(0));
        let group: Arc<Group<u32, Tracked>> = Arc::new(Group::new());
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let (group, counts, runs) = (group.clone(), counts.clone(), runs.clone());
                thread::spawn(move || {
                    let mut rng = rand::rngs::StdRng::seed_from_u64(t as u64);
                    let mut followed = 0;
                    for _ in 0..CALLS {
                        let key = rng.gen_range(0..8);
                        let spin = rng.gen_range(0..200);
                        let flight = group.work_shared(&key, || {
                            runs.fetch_add(1, Ordering::SeqCst);
                            for _ in 0..spin {
                                std::hint::spin_loop();
                            }
                            Tracked::new(key.into(), &counts)
                        });
                        assert_eq!(flight.value.tag, u64::from(key));
                        followed += usize::from(!flight.leader);
                    }
                    followed
                })
            })
            .collect();
        let followed: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
        let runs = runs.load(Ordering::SeqCst);
        assert_eq!(
            runs + followed,
            THREADS * CALLS,
            "every call led or followed"
        );
        assert_eq!(
            counts.clones(),
            followed,
            "one clone per follower, none for leaders"
        );
        assert_eq!(
            counts.drops(),
            runs + counts.clones(),
            "every value dropped exactly once"
        );
        assert_eq!(group.in_flight(), 0);
    });
}
