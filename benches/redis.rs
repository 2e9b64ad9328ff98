//! What a `RedisGroup` adds to a flight, beside a bare Redis `GET` round
//! trip in the same run, on a real `redis-server` over a Unix socket
//! (loopback): the README's fleet latency table.
//!
//! `cargo bench --features redis --bench redis -- --measurement-time 3 --warm-up-time 1`
//!
//! - `redis/bare_get`: one `GET` on one connection, the floor of any
//!   Redis round trip.
//! - `redis/group_work_fresh_key`: a local `Group::work` on a fresh key,
//!   for scale.
//! - `redis/leader_fresh_key`: `RedisGroup::work` on a fresh key with no
//!   one else there: the election script, `f`, the completion script.
//! - `redis/leader_result_in_redis`: `RedisGroup::work` on a key whose
//!   result is still in Redis (a late joiner): one script, one decode.
//! - `redis/follower_handoff`: a follower in a second `RedisGroup` (its
//!   own connections and subscriber, as another process would have; a
//!   thread of this one) waits on a leader; timed from the end of the
//!   leader's `f` to the follower's return: the completion script, the
//!   publish, the subscriber's wakeup and the follower's read.
//! - `redis/follower_handoff_other_process`: the same with the follower in
//!   another process (this bench binary re-executed with
//!   `SF_BENCH_FOLLOWER` set), which reports the wall-clock time it
//!   returned (both processes read the same `CLOCK_REALTIME`).

use std::hint::black_box;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use criterion::{criterion_group, Criterion};
use singleflight_sync::redis::{RawCodec, RedisGroup};
use singleflight_sync::Group;

#[path = "../tests/redis_support/mod.rs"]
mod redis_support;
use redis_support::RedisServer;

fn build(server: &RedisServer) -> RedisGroup<Vec<u8>> {
    RedisGroup::builder()
        .url(&server.url())
        .namespace("bench")
        .lease(Duration::from_secs(5))
        .result_ttl(Duration::from_secs(30))
        .op_timeout(Duration::from_secs(1))
        .codec(RawCodec)
        .build()
        .unwrap()
}

fn latency(c: &mut Criterion) {
    let server = RedisServer::start();
    let mut bench = c.benchmark_group("redis");
    let value = vec![7u8; 64];

    let mut conn = server.conn();
    let _: () = redis::cmd("SET")
        .arg("bench-get")
        .arg(&value)
        .query(&mut conn)
        .unwrap();
    bench.bench_function("bare_get", |b| {
        b.iter(|| {
            let v: Vec<u8> = redis::cmd("GET").arg("bench-get").query(&mut conn).unwrap();
            black_box(v)
        })
    });

    let local: Group<String, Vec<u8>> = Group::new();
    let mut next = 0u64;
    bench.bench_function("group_work_fresh_key", |b| {
        b.iter(|| {
            next += 1;
            black_box(local.work(&next.to_string(), || value.clone()))
        })
    });

    let leader = build(&server);
    let mut next = 0u64;
    bench.bench_function("leader_fresh_key", |b| {
        b.iter(|| {
            next += 1;
            black_box(
                leader
                    .work(&format!("fresh-{next}"), || value.clone())
                    .unwrap(),
            )
        })
    });

    leader.work("stored", || value.clone()).unwrap();
    bench.bench_function("leader_result_in_redis", |b| {
        b.iter(|| black_box(leader.work("stored", || unreachable!()).unwrap()))
    });

    // The follower lives on its own thread with its own group, asked for
    // one key per round; it reports when it returned.
    let (ask, asked) = mpsc::channel::<String>();
    let (tell, told) = mpsc::channel::<Instant>();
    let follower_server_url = server.url();
    let follower = thread::spawn(move || {
        let group: RedisGroup<Vec<u8>> = RedisGroup::builder()
            .url(&follower_server_url)
            .namespace("bench")
            .lease(Duration::from_secs(5))
            .op_timeout(Duration::from_secs(1))
            .codec(RawCodec)
            .build()
            .unwrap();
        for key in asked {
            let v = group
                .work(&key, || panic!("the follower must not lead"))
                .unwrap();
            let returned = Instant::now();
            black_box(v);
            tell.send(returned).unwrap();
        }
    });
    let mut next = 0u64;
    bench.bench_function("follower_handoff", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                next += 1;
                let key = format!("handoff-{next}");
                let mut ended = Instant::now();
                leader
                    .work(&key, || {
                        ask.send(key.clone()).unwrap();
                        // Time for the follower to lose the election and wait.
                        thread::sleep(Duration::from_millis(2));
                        ended = Instant::now();
                        value.clone()
                    })
                    .unwrap();
                total += told.recv().unwrap() - ended;
            }
            total
        })
    });
    drop(ask);
    follower.join().unwrap();

    let mut child = Command::new(std::env::current_exe().unwrap())
        .env("SF_BENCH_FOLLOWER", server.url())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("re-execute the bench as the follower process");
    let mut to_child = child.stdin.take().unwrap();
    let mut from_child = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    bench.bench_function("follower_handoff_other_process", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                next += 1;
                let key = format!("handoff-{next}");
                let mut ended = 0u128;
                leader
                    .work(&key, || {
                        writeln!(to_child, "{key}").unwrap();
                        to_child.flush().unwrap();
                        thread::sleep(Duration::from_millis(2));
                        ended = wall_nanos();
                        value.clone()
                    })
                    .unwrap();
                line.clear();
                from_child.read_line(&mut line).unwrap();
                let returned: u128 = line.trim().parse().expect("the follower's time");
                total += Duration::from_nanos(returned.saturating_sub(ended) as u64);
            }
            total
        })
    });
    drop(to_child);
    child.wait().unwrap();
    bench.finish();
}

fn wall_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// The follower process: one `work` per key read from stdin, answering
/// with the wall-clock time it returned.
fn follower_process(url: &str) {
    let group: RedisGroup<Vec<u8>> = RedisGroup::builder()
        .url(url)
        .namespace("bench")
        .lease(Duration::from_secs(5))
        .op_timeout(Duration::from_secs(1))
        .codec(RawCodec)
        .build()
        .unwrap();
    let mut out = std::io::stdout().lock();
    for key in std::io::stdin().lock().lines() {
        let key = key.unwrap();
        let v = group
            .work(&key, || panic!("the follower must not lead"))
            .unwrap();
        let returned = wall_nanos();
        black_box(v);
        writeln!(out, "{returned}").unwrap();
        out.flush().unwrap();
    }
}

criterion_group!(benches, latency);

fn main() {
    if let Ok(url) = std::env::var("SF_BENCH_FOLLOWER") {
        follower_process(&url);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
