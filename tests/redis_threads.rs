//! A dropped `RedisGroup` ends both of its threads (the subscriber and the
//! lease renewer). Alone in its file, so no other test's threads blur the
//! count.
#![cfg(feature = "redis")]

mod common;
mod redis_support;

use std::thread;
use std::time::{Duration, Instant};

use common::watchdog;
use redis_support::RedisServer;
use singleflight_sync::redis::{RawCodec, RedisGroup};

fn threads_of_this_process() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

#[test]
fn a_dropped_group_ends_its_threads() {
    watchdog(Duration::from_secs(60), || {
        let server = RedisServer::start();
        let before = threads_of_this_process();
        let groups: Vec<RedisGroup<String>> = (0..10)
            .map(|i| {
                RedisGroup::builder()
                    .url(&server.url())
                    .namespace(&format!("drop{i}"))
                    .codec(RawCodec)
                    .build()
                    .unwrap()
            })
            .collect();
        for g in &groups {
            // One leads (the renewer holds its lease), and one waits
            // through the subscriber (none here: a fresh key each).
            assert_eq!(g.work("k", || "v".to_string()).unwrap(), "v");
        }
        assert_eq!(
            threads_of_this_process(),
            before + 20,
            "two threads per group"
        );
        drop(groups);
        let start = Instant::now();
        while threads_of_this_process() > before {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "{} of the groups' threads still run",
                threads_of_this_process() - before
            );
            thread::sleep(Duration::from_millis(20));
        }
    });
}
