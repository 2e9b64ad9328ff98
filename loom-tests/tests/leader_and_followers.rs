//! Model 1: three callers race for one key.
//!
//! loom cannot be made to pick "two followers join": any blocking that would
//! force it would be a wait loom schedules around. So the model lets the
//! callers overlap however loom likes and checks what must hold in every
//! interleaving: each `f` that ran was a leader's, every caller got the value
//! of a flight that ran, the `shared`/`leader` flags tell the truth, and the
//! group is empty afterwards.

#![cfg(loom)]

mod common;

use common::KEY;
use loom::sync::Arc;
use loom::thread;
use singleflight_sync::{Flight, Group};

/// One caller whose `f` returns its own tag, so a value names its flight.
struct Caller {
    tag: u32,
    ran: bool,
    flight: Flight<u32>,
}

fn call(group: &Group<u32, u32>, tag: u32) -> Caller {
    let mut ran = false;
    let flight = group.work_shared(&KEY, || {
        ran = true;
        tag
    });
    Caller { tag, ran, flight }
}

#[test]
fn leader_and_two_followers() {
    common::model(|| {
        let group = common::group();
        let spawn = |tag| {
            let group = Arc::clone(&group);
            thread::spawn(move || call(&group, tag))
        };
        let (second, third) = (spawn(2), spawn(3));
        let first = call(&group, 1);
        let callers = [first, second.join().unwrap(), third.join().unwrap()];

        assert_eq!(group.in_flight(), 0, "a flight outlived its leader");
        assert_eq!(group.waiters(&KEY), 0);

        let executions = callers.iter().filter(|c| c.ran).count();
        assert!(
            (1..=callers.len()).contains(&executions),
            "{executions} executions"
        );
        for c in &callers {
            let f = &c.flight;
            // `f` ran exactly in the callers that say they led, and a leader
            // gets its own value back.
            assert_eq!(
                c.ran, f.leader,
                "caller {}: ran f = {}, but {f:?}",
                c.tag, c.ran
            );
            if f.leader {
                assert_eq!(f.value, c.tag, "a leader got another flight's value");
                // `shared` is true exactly when somebody joined this flight.
                let joined = callers
                    .iter()
                    .any(|o| !o.flight.leader && o.flight.value == c.tag);
                assert_eq!(f.shared, joined, "leader {}: {f:?}", c.tag);
            } else {
                assert!(f.shared, "a follower's value is always shared: {f:?}");
                // A follower gets the value of a flight that ran, whose leader
                // knows it was shared.
                let led = callers.iter().find(|o| o.flight.leader && o.tag == f.value);
                assert!(
                    led.is_some_and(|l| l.flight.shared),
                    "follower {} got {f:?}, which no shared flight produced",
                    c.tag
                );
            }
        }
        if callers.iter().any(|c| c.flight.shared) {
            assert!(
                executions < callers.len(),
                "a shared value, yet every caller ran f"
            );
        }
    });
}
