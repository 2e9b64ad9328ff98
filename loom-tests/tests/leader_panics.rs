//! Model 3: a caller whose `f` panics races two callers whose `f` returns.
//!
//! Whoever leads, every caller must come back: the panicking leader with its
//! own panic, each follower of its flight with a `LeaderPanicked` panic that
//! carries the message and the group's name, each follower of a flight that
//! returned with that flight's value. No thread may block forever (loom
//! reports a deadlock) and nothing may stay in flight.

#![cfg(loom)]

mod common;

use common::{catch, Ended, BOOM, KEY, NAME};
use loom::sync::Arc;
use loom::thread;
use singleflight_sync::{Flight, Group};

/// One caller: `tag` 0 panics in `f`, any other tag returns itself.
struct Caller {
    tag: u32,
    ran: bool,
    ended: Ended,
}

fn call(group: &Group<u32, u32>, tag: u32) -> Caller {
    let mut ran = false;
    let ended = catch(|| {
        group.work_shared(&KEY, || {
            ran = true;
            if tag == 0 {
                std::panic::panic_any(BOOM);
            }
            tag
        })
    });
    Caller { tag, ran, ended }
}

#[test]
fn leader_panics() {
    common::model(|| {
        let group = common::group();
        let spawn = |tag| {
            let group = Arc::clone(&group);
            thread::spawn(move || call(&group, tag))
        };
        let (one, two) = (spawn(1), spawn(2));
        let panicker = call(&group, 0);
        let callers = [panicker, one.join().unwrap(), two.join().unwrap()];

        assert_eq!(group.in_flight(), 0, "a flight outlived its leader");
        let panicked_leader = callers[0].ran;
        for c in &callers {
            match &c.ended {
                Ended::Panicked => {
                    assert_eq!(c.tag, 0, "only the panicking f panics");
                    assert!(c.ran);
                }
                Ended::LeaderPanicked(cause) => {
                    assert!(!c.ran, "caller {} ran f yet got LeaderPanicked", c.tag);
                    assert!(panicked_leader, "LeaderPanicked, but no leader panicked");
                    assert_eq!(cause.message(), BOOM);
                    assert_eq!(cause.group(), Some(NAME));
                }
                Ended::Returned(f) if c.ran => {
                    assert_ne!(c.tag, 0, "the panicking f returned");
                    assert_eq!(
                        *f,
                        Flight {
                            value: c.tag,
                            shared: f.shared,
                            leader: true
                        }
                    );
                }
                Ended::Returned(f) => {
                    // Followed a flight that returned: a value that a leader
                    // who knows it was shared returned.
                    assert!(f.shared && !f.leader, "caller {}: {f:?}", c.tag);
                    let led = callers.iter().find(|o| o.ran && o.tag == f.value);
                    assert!(
                        led.is_some_and(|l| l.ended
                            == Ended::Returned(Flight {
                                value: l.tag,
                                shared: true,
                                leader: true
                            })),
                        "caller {} got {f:?}, which no shared flight produced",
                        c.tag
                    );
                }
            }
        }
        if panicked_leader {
            assert_eq!(
                callers[0].ended,
                Ended::Panicked,
                "the leader's own panic changed"
            );
        }
    });
}
