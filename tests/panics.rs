//! A panicking `f`, `Hash`, `Eq`, `ToOwned` or `Clone`: the panic reaches the
//! right callers, nobody hangs, no entry is left behind.

mod common;

use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use common::{expect_panic, panic_text, wait_for, watchdog};
use singleflight_sync::{Group, LeaderPanicked};

#[test]
fn followers_panic_with_the_leaders_message_and_the_key_is_released() {
    const FOLLOWERS: usize = 5;
    watchdog(Duration::from_secs(30), || {
        let group: Arc<Group<String, u32>> = Arc::new(Group::builder().name("reports").build());
        let leader_in = Arc::new(Barrier::new(2));
        let leader = {
            let (group, leader_in) = (group.clone(), leader_in.clone());
            thread::spawn(move || {
                expect_panic(|| {
                    group.work("k", || {
                        leader_in.wait();
                        wait_for("followers", || group.waiters("k") == FOLLOWERS);
                        panic!("backend returned {}", 503)
                    })
                })
            })
        };
        leader_in.wait();
        let followers: Vec<_> = (0..FOLLOWERS)
            .map(|_| {
                let group = group.clone();
                thread::spawn(move || expect_panic(|| group.work("k", || 0)))
            })
            .collect();

        let own = leader.join().unwrap();
        assert_eq!(
            panic_text(&*own),
            "backend returned 503",
            "the leader's own panic is unchanged"
        );
        for follower in followers {
            let payload = follower.join().unwrap();
            let cause = payload
                .downcast_ref::<LeaderPanicked>()
                .expect("a follower's payload is LeaderPanicked");
            assert_eq!(cause.message(), "backend returned 503");
            assert_eq!(cause.group(), Some("reports"));
            assert_eq!(
                cause.to_string(),
                "the leader of a flight in group `reports` panicked: backend returned 503"
            );
        }
        assert_eq!(group.in_flight(), 0);
        let fresh = group.work_shared("k", || 9);
        assert!(fresh.leader, "the next call starts a fresh flight");
        assert_eq!(fresh.value, 9);
    });
}

#[test]
fn a_non_string_panic_payload_is_named_as_such() {
    watchdog(Duration::from_secs(30), || {
        let group: Arc<Group<String, u32>> = Arc::new(Group::new());
        let g = group.clone();
        let leader = thread::spawn(move || {
            expect_panic(|| {
                g.work("k", || {
                    wait_for("a follower", || g.waiters("k") == 1);
                    std::panic::panic_any(42_i32)
                })
            })
        });
        wait_for("the leader", || group.in_flight() == 1);
        let payload = expect_panic(|| group.work("k", || 0));
        let cause = payload.downcast_ref::<LeaderPanicked>().unwrap();
        assert_eq!(cause.message(), "a panic payload that is not a string");
        assert_eq!(*leader.join().unwrap().downcast_ref::<i32>().unwrap(), 42);
    });
}

/// A key whose `Hash`, `Eq` or `Clone` panics when told to.
#[derive(Debug)]
struct Touchy {
    id: u32,
    panic_in_hash: bool,
    panic_in_eq: bool,
    panic_in_clone: bool,
}

impl Touchy {
    fn calm(id: u32) -> Self {
        Touchy {
            id,
            panic_in_hash: false,
            panic_in_eq: false,
            panic_in_clone: false,
        }
    }
}

impl Hash for Touchy {
    fn hash<H: Hasher>(&self, state: &mut H) {
        assert!(!self.panic_in_hash, "Hash panicked");
        self.id.hash(state);
    }
}

impl PartialEq for Touchy {
    fn eq(&self, other: &Self) -> bool {
        assert!(!self.panic_in_eq && !other.panic_in_eq, "Eq panicked");
        self.id == other.id
    }
}

impl Eq for Touchy {}

impl Clone for Touchy {
    fn clone(&self) -> Self {
        assert!(!self.panic_in_clone, "Clone panicked");
        Touchy::calm(self.id)
    }
}

#[test]
fn panicking_hash_or_key_clone_leaves_nothing_behind() {
    let group: Group<Touchy, u32> = Group::new();
    let bad_hash = Touchy {
        panic_in_hash: true,
        ..Touchy::calm(1)
    };
    let payload = expect_panic(|| group.work(&bad_hash, || 1));
    assert_eq!(panic_text(&*payload), "Hash panicked");
    assert_eq!(group.in_flight(), 0);

    // `ToOwned` for a sized key is `Clone`: only a leader makes the owned key.
    let bad_clone = Touchy {
        panic_in_clone: true,
        ..Touchy::calm(1)
    };
    let payload = expect_panic(|| group.work(&bad_clone, || 1));
    assert_eq!(panic_text(&*payload), "Clone panicked");
    assert_eq!(group.in_flight(), 0);

    assert_eq!(group.work(&Touchy::calm(1), || 5), 5);
    assert_eq!(group.in_flight(), 0);
}

#[test]
fn panicking_eq_in_a_follower_does_not_disturb_the_flight() {
    watchdog(Duration::from_secs(30), || {
        let group: Arc<Group<Touchy, u32>> = Arc::new(Group::new());
        let release = Arc::new(AtomicBool::new(false));
        let leader = {
            let (group, release) = (group.clone(), release.clone());
            thread::spawn(move || {
                group.work(&Touchy::calm(7), || {
                    wait_for("release", || release.load(Ordering::SeqCst));
                    70
                })
            })
        };
        wait_for("the leader", || group.in_flight() == 1);
        let bad_eq = Touchy {
            panic_in_eq: true,
            ..Touchy::calm(7)
        };
        let payload = expect_panic(|| group.work(&bad_eq, || 0));
        assert_eq!(panic_text(&*payload), "Eq panicked");
        release.store(true, Ordering::SeqCst);
        assert_eq!(leader.join().unwrap(), 70);
        assert_eq!(group.in_flight(), 0);
    });
}

/// A value whose `Clone` panics: only cloning for followers can trigger it.
#[derive(Debug)]
struct CloneBomb(u32);

impl Clone for CloneBomb {
    fn clone(&self) -> Self {
        panic!("cannot clone {}", self.0)
    }
}

#[test]
fn panicking_value_clone_reaches_leader_and_followers() {
    watchdog(Duration::from_secs(30), || {
        let group: Arc<Group<String, CloneBomb>> = Arc::new(Group::new());
        // Alone, the leader never clones: no panic.
        assert_eq!(group.work("k", || CloneBomb(1)).0, 1);

        let g = group.clone();
        let leader = thread::spawn(move || {
            expect_panic(|| {
                g.work("k", || {
                    wait_for("two followers", || g.waiters("k") == 2);
                    CloneBomb(2)
                })
            })
        });
        wait_for("the leader", || group.in_flight() == 1);
        let followers: Vec<_> = (0..2)
            .map(|_| {
                let group = group.clone();
                thread::spawn(move || expect_panic(|| group.work("k", || CloneBomb(0))))
            })
            .collect();
        assert_eq!(panic_text(&*leader.join().unwrap()), "cannot clone 2");
        for follower in followers {
            let payload = follower.join().unwrap();
            let cause = payload.downcast_ref::<LeaderPanicked>().unwrap();
            assert_eq!(cause.message(), "cannot clone 2");
        }
        assert_eq!(group.in_flight(), 0);
    });
}
