//! Model 4: `forget_unshared` races a follower that is joining.
//!
//! The leader's `f` calls `forget_unshared` while a second caller arrives.
//! Exactly one story may happen: the follower joined first and
//! `forget_unshared` refused (returned false), or the key was released first
//! (true) and the follower led a flight of its own. Never both, never
//! neither: a follower counted on a released flight, or a release that strands
//! a follower, is a lost caller.

#![cfg(loom)]

mod common;

use common::{Gate, KEY};
use loom::thread;

#[test]
fn forget_unshared_races_a_joining_follower() {
    common::model(|| {
        let group = common::group();
        let leading = Gate::new();
        let leader = {
            let (group, leading) = (group.clone(), leading.clone());
            thread::spawn(move || {
                let mut released = None;
                let flight = group.work_shared(&KEY, || {
                    leading.open();
                    released = Some(group.forget_unshared(&KEY));
                    1
                });
                (flight, released.expect("the first caller leads"))
            })
        };
        // The follower starts only once the first caller leads, so it can
        // only join that flight or find it released.
        leading.wait();
        let follower = {
            let group = group.clone();
            thread::spawn(move || group.work_shared(&KEY, || 2))
        };
        let (led, released) = leader.join().unwrap();
        let followed = follower.join().unwrap();

        if released {
            // Released before the follower looked: it led flight 2 alone.
            assert_eq!(led, common::led(1, false), "released a shared flight");
            assert_eq!(followed, common::led(2, false), "released, yet not led");
        } else {
            // Refused because the follower had joined: it got flight 1's value.
            assert_eq!(led, common::led(1, true), "refused, yet unshared");
            assert_eq!(followed, common::joined(1), "refused, yet not joined");
        }
        assert_eq!(group.in_flight(), 0, "a flight outlived its leader");
        assert!(!group.forget_unshared(&KEY), "released an idle key");
    });
}
