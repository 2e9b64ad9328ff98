//! Redis in trouble, for real: paused with SIGSTOP (it accepts connections
//! and answers nothing), killed and restarted empty, or never there. Every
//! call returns within the configured bound with the right value, and the
//! calls that ran without Redis are counted. Several `RedisGroup`s stand
//! for processes (the multi-process tests are in `redis_fleet.rs`).
#![cfg(feature = "redis")]

mod redis_support;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use redis_support::{abort_after, RedisServer};
use singleflight_sync::redis::{Error, RawCodec, RedisGroup};

const OP: Duration = Duration::from_millis(150);
const WAIT: Duration = Duration::from_secs(2);
const F: Duration = Duration::from_millis(100);

/// The longest a call may take: the wait for a leader elsewhere, then `f`,
/// with an operation timeout for each Redis step around them (connect,
/// elect, the last poll, complete), and a margin for a loaded machine.
fn bound() -> Duration {
    WAIT + F + 4 * OP + Duration::from_secs(1)
}

fn build(server: &RedisServer, strict: bool) -> RedisGroup<String> {
    RedisGroup::builder()
        .url(&server.url())
        .namespace("faults")
        .lease(Duration::from_secs(1))
        .result_ttl(Duration::from_millis(100))
        .op_timeout(OP)
        .retry_after(Duration::from_millis(300))
        .wait_timeout(WAIT)
        .strict(strict)
        .codec(RawCodec)
        .build()
        .unwrap()
}

fn value_of(key: &str) -> String {
    format!("value of {key}")
}

#[derive(Default)]
struct Storm {
    calls: AtomicUsize,
    wrong: AtomicUsize,
    slowest_ms: AtomicU64,
}

/// `groups` x 4 threads calling `work` until `stop`, on keys that change
/// every 200 ms (so flights overlap across groups and keep starting),
/// each call timed.
fn storm(groups: &[RedisGroup<String>], stop: &AtomicBool, storm: &Storm) {
    thread::scope(|s| {
        for group in groups {
            for t in 0..4 {
                s.spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        let slot = std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .unwrap()
                            .as_millis()
                            / 200;
                        let key = format!("slot{slot}-{}", t % 2);
                        let start = Instant::now();
                        let r = group.work(&key, || {
                            thread::sleep(F);
                            value_of(&key)
                        });
                        let took = start.elapsed().as_millis() as u64;
                        storm.slowest_ms.fetch_max(took, Ordering::Relaxed);
                        storm.calls.fetch_add(1, Ordering::Relaxed);
                        if !matches!(&r, Ok(v) if *v == value_of(&key)) {
                            eprintln!("{key}: {r:?}");
                            storm.wrong.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                });
            }
        }
    });
}

fn check(groups: &[RedisGroup<String>], storm: &Storm) {
    let slowest = Duration::from_millis(storm.slowest_ms.load(Ordering::Relaxed));
    let stats: Vec<_> = groups.iter().map(|g| g.stats()).collect();
    eprintln!(
        "slowest call {slowest:?}, {} calls; {stats:?}",
        storm.calls.load(Ordering::Relaxed)
    );
    assert!(
        slowest <= bound(),
        "a call took {slowest:?}, over the bound {:?}",
        bound()
    );
    assert_eq!(
        storm.wrong.load(Ordering::Relaxed),
        0,
        "every value is right"
    );
    assert!(storm.calls.load(Ordering::Relaxed) > 20);
    let degraded: u64 = groups.iter().map(|g| g.stats().degraded).sum();
    let errors: u64 = groups.iter().map(|g| g.stats().redis_errors).sum();
    assert!(
        degraded > 0,
        "calls during the fault ran alone and were counted"
    );
    assert!(errors > 0, "the failed operations were counted");
}

/// After the fault, with Redis back, flights go through Redis again.
fn recovered(groups: &[RedisGroup<String>]) {
    thread::sleep(Duration::from_millis(400)); // past retry_after
    let before = groups[0].stats().led;
    let start = Instant::now();
    loop {
        let key = format!("after-{}", start.elapsed().as_nanos());
        assert_eq!(
            groups[0].work(&key, || value_of(&key)).unwrap(),
            value_of(&key)
        );
        if groups[0].stats().led > before {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "never led through Redis again"
        );
        thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_paused_redis_costs_a_bounded_wait_and_calls_run_alone() {
    abort_after(Duration::from_secs(90), "a_paused_redis");
    let server = RedisServer::start();
    let groups: Vec<_> = (0..3).map(|_| build(&server, false)).collect();
    let (stop, result) = (AtomicBool::new(false), Storm::default());
    thread::scope(|s| {
        s.spawn(|| storm(&groups, &stop, &result));
        thread::sleep(Duration::from_millis(700));
        server.pause();
        thread::sleep(Duration::from_secs(1));
        server.resume();
        thread::sleep(Duration::from_millis(1500));
        stop.store(true, Ordering::Relaxed);
    });
    check(&groups, &result);
    recovered(&groups);
}

#[test]
fn a_restarted_redis_costs_a_bounded_wait_and_calls_run_alone() {
    abort_after(Duration::from_secs(90), "a_restarted_redis");
    let mut server = RedisServer::start();
    let groups: Vec<_> = (0..3).map(|_| build(&server, false)).collect();
    let (stop, result) = (AtomicBool::new(false), Storm::default());
    thread::scope(|s| {
        s.spawn(|| storm(&groups, &stop, &result));
        thread::sleep(Duration::from_millis(700));
        server.kill();
        thread::sleep(Duration::from_secs(1));
        server.restart();
        thread::sleep(Duration::from_millis(1500));
        stop.store(true, Ordering::Relaxed);
    });
    check(&groups, &result);
    recovered(&groups);
}

#[test]
fn strict_mode_returns_the_redis_error_instead() {
    abort_after(Duration::from_secs(60), "strict_mode");
    let server = RedisServer::start();
    let strict = build(&server, true);
    let lenient = build(&server, false);
    assert_eq!(
        strict.work("warm", || value_of("warm")).unwrap(),
        value_of("warm")
    );
    server.pause();
    let start = Instant::now();
    let r = strict.work("k", || {
        unreachable!("strict mode must not run f without Redis")
    });
    assert!(matches!(&r, Err(Error::Redis(_))), "{r:?}");
    assert!(
        start.elapsed() < 3 * OP + Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
    // While Redis counts as down, strict calls fail at once.
    let r = strict.work("k2", || unreachable!());
    assert!(matches!(&r, Err(Error::Redis(_))), "{r:?}");
    assert_eq!(lenient.work("k", || value_of("k")).unwrap(), value_of("k"));
    assert_eq!(strict.stats().degraded, 2);
    assert_eq!(lenient.stats().degraded, 1);
    server.resume();
}

#[test]
fn no_redis_at_all_degrades_every_call_without_waiting() {
    abort_after(Duration::from_secs(60), "no_redis_at_all");
    let dir = std::env::temp_dir().join(format!("sf-no-redis-{}", std::process::id()));
    let url = format!("redis+unix://{}/nothing.sock", dir.display());
    let group: RedisGroup<String> = RedisGroup::builder()
        .url(&url)
        .op_timeout(OP)
        .codec(RawCodec)
        .build()
        .unwrap();
    let start = Instant::now();
    for i in 0..20 {
        let key = format!("k{i}");
        assert_eq!(group.work(&key, || value_of(&key)).unwrap(), value_of(&key));
    }
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(group.stats().degraded, 20);
    assert_eq!(group.stats().led, 0);
    let strict: RedisGroup<String> = RedisGroup::builder()
        .url(&url)
        .strict(true)
        .codec(RawCodec)
        .build()
        .unwrap();
    let r = strict.work("k", || unreachable!());
    match r {
        Err(e @ Error::Redis(_)) => assert!(e.to_string().starts_with("redis: ")),
        other => panic!("{other:?}"),
    }
}
