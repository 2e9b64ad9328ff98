//! Distinct keys never wait for each other, and `f` never runs under a lock.

mod common;

use std::sync::mpsc;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use common::watchdog;
use singleflight_sync::Group;

/// Key A's `f` waits for key B's `f` to finish. With a single shard, both
/// keys share one lock: if `f` ran under it, B could never start.
#[test]
fn a_flight_can_wait_for_another_keys_flight() {
    for shards in [1, 64] {
        watchdog(Duration::from_secs(30), move || {
            let group: Arc<Group<String, u32>> = Arc::new(Group::builder().shards(shards).build());
            let (b_done_tx, b_done) = mpsc::channel();
            let (a_started_tx, a_started) = mpsc::channel();
            let a = {
                let group = group.clone();
                thread::spawn(move || {
                    group.work("A", || {
                        a_started_tx.send(()).unwrap();
                        b_done.recv().unwrap() + 1
                    })
                })
            };
            a_started.recv().unwrap();
            let b = group.work("B", || 41);
            b_done_tx.send(b).unwrap();
            assert_eq!(a.join().unwrap(), 42);
            assert_eq!(group.in_flight(), 0);
        });
    }
}

/// The same, with A's `f` running `work` for B itself on the same thread.
#[test]
fn a_flight_can_start_another_keys_flight_on_a_single_shard() {
    watchdog(Duration::from_secs(30), || {
        let group: Group<String, u32> = Group::builder().shards(1).build();
        assert_eq!(group.work("A", || group.work("B", || 1) + 1), 2);
    });
}
