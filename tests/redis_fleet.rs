//! The fleet across real OS processes: this test binary re-executes itself
//! as worker processes (`worker_entry`, selected by `SFR_WORKER`), each
//! with its own `RedisGroup` and many threads on the same keys, against a
//! real `redis-server`. Backend runs are counted in Redis (`INCR`), across
//! every process.
#![cfg(feature = "redis")]

mod redis_support;

use std::collections::HashMap;
use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use redis_support::{abort_after, count, incr, RedisServer};
use singleflight_sync::redis::{RawCodec, RedisGroup};

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("worker without {name}"))
}

fn env_u64(name: &str) -> u64 {
    env(name)
        .parse()
        .unwrap_or_else(|_| panic!("{name} is not a number"))
}

fn value_of(key: &str) -> String {
    format!("value of {key}")
}

/// Not a test of its own: the entry point of the worker processes the
/// tests below start. Returns at once unless `SFR_WORKER` is set.
#[test]
fn worker_entry() {
    if std::env::var_os("SFR_WORKER").is_none() {
        return;
    }
    abort_after(Duration::from_secs(120), "a fleet worker");
    let url = env("SFR_URL");
    let group: RedisGroup<String> = RedisGroup::builder()
        .url(&url)
        .namespace(&env("SFR_NS"))
        .lease(Duration::from_millis(env_u64("SFR_LEASE_MS")))
        .result_ttl(Duration::from_secs(10))
        .op_timeout(Duration::from_millis(500))
        .codec(RawCodec)
        .build()
        .unwrap();
    let threads = env_u64("SFR_THREADS") as usize;
    let keys: Vec<String> = (0..env_u64("SFR_KEYS"))
        .map(|k| format!("key-{k}"))
        .collect();
    let sleep = Duration::from_millis(env_u64("SFR_SLEEP_MS"));
    let start = env_u64("SFR_START_MS");
    let mode = env("SFR_MODE");
    let f = |key: &str| {
        let mut conn = redis::Client::open(url.as_str())
            .unwrap()
            .get_connection()
            .unwrap();
        incr(&mut conn, &format!("runs:{key}"));
        if mode == "hang" {
            thread::sleep(Duration::from_secs(100));
        }
        thread::sleep(sleep);
        value_of(key)
    };
    let (mut ok, mut bad) = (0, 0);
    thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (group, keys, f) = (&group, &keys, &f);
                s.spawn(move || {
                    while now_ms() < start {
                        thread::sleep(Duration::from_millis(1));
                    }
                    let (mut ok, mut bad) = (0, 0);
                    for i in 0..keys.len() {
                        let key = &keys[(i + t) % keys.len()];
                        match group.work(key, || f(key)) {
                            Ok(v) if v == value_of(key) => ok += 1,
                            other => {
                                eprintln!("worker: {key}: {other:?}");
                                bad += 1
                            }
                        }
                    }
                    (ok, bad)
                })
            })
            .collect();
        for h in handles {
            let (o, b) = h.join().unwrap();
            ok += o;
            bad += b;
        }
    });
    let s = group.stats();
    println!(
        "SFR ok={ok} bad={bad} led={} took_over={} remote_values={} degraded={} leases_lost={}",
        s.led, s.took_over, s.remote_values, s.degraded, s.leases_lost
    );
}

struct Worker {
    child: Child,
}

struct Settings<'a> {
    ns: &'a str,
    mode: &'a str,
    threads: u64,
    keys: u64,
    sleep_ms: u64,
    lease_ms: u64,
    start_ms: u64,
}

fn spawn_worker(server: &RedisServer, s: &Settings<'_>) -> Worker {
    let child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "worker_entry",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env("SFR_WORKER", "1")
        .env("SFR_URL", server.url())
        .env("SFR_NS", s.ns)
        .env("SFR_MODE", s.mode)
        .env("SFR_THREADS", s.threads.to_string())
        .env("SFR_KEYS", s.keys.to_string())
        .env("SFR_SLEEP_MS", s.sleep_ms.to_string())
        .env("SFR_LEASE_MS", s.lease_ms.to_string())
        .env("SFR_START_MS", s.start_ms.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("re-execute the test binary as a worker");
    Worker { child }
}

impl Worker {
    /// Waits for the worker (killing it and failing after `limit`) and
    /// returns its report.
    fn finish(mut self, limit: Duration) -> HashMap<String, u64> {
        let start = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if start.elapsed() > limit {
                let _ = self.child.kill();
                panic!("a worker did not finish within {limit:?}");
            }
            thread::sleep(Duration::from_millis(10));
        };
        let mut out = String::new();
        self.child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        assert!(status.success(), "worker failed: {status}\n{out}");
        let line = out
            .lines()
            .find_map(|l| l.find("SFR ").map(|at| &l[at + 4..]))
            .unwrap_or_else(|| panic!("no report from the worker:\n{out}"));
        line.split(' ')
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap();
                (k.to_string(), v.parse().unwrap())
            })
            .collect()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn total(reports: &[HashMap<String, u64>], field: &str) -> u64 {
    reports.iter().map(|r| r[field]).sum()
}

#[test]
fn processes_share_one_execution_per_key() {
    abort_after(
        Duration::from_secs(120),
        "processes_share_one_execution_per_key",
    );
    let server = RedisServer::start();
    let mut conn = server.conn();
    let (processes, threads, keys) = (4, 8, 8);
    let settings = Settings {
        ns: "fleet",
        mode: "flights",
        threads,
        keys,
        sleep_ms: 400,
        lease_ms: 2000,
        start_ms: now_ms() + 1500,
    };
    let workers: Vec<_> = (0..processes)
        .map(|_| spawn_worker(&server, &settings))
        .collect();
    let reports: Vec<_> = workers
        .into_iter()
        .map(|w| w.finish(Duration::from_secs(60)))
        .collect();
    assert_eq!(total(&reports, "ok"), processes * threads * keys);
    assert_eq!(total(&reports, "bad"), 0);
    for k in 0..keys {
        assert_eq!(
            count(&mut conn, &format!("runs:key-{k}")),
            1,
            "key-{k} ran more than once"
        );
    }
    assert_eq!(total(&reports, "led"), keys);
    assert_eq!(total(&reports, "degraded"), 0);
    // Every process asked for every key, and those it did not lead were
    // answered by Redis (some more than once: a thread that comes back to a
    // key after its local flight ended reads the stored result).
    assert!(total(&reports, "remote_values") >= (processes - 1) * keys);
}

#[test]
fn a_killed_leader_is_taken_over_after_its_lease() {
    abort_after(
        Duration::from_secs(120),
        "a_killed_leader_is_taken_over_after_its_lease",
    );
    let server = RedisServer::start();
    let mut conn = server.conn();
    let lease_ms = 1000;
    let base = Settings {
        ns: "kill",
        mode: "hang",
        threads: 1,
        keys: 1,
        sleep_ms: 0,
        lease_ms,
        start_ms: 0,
    };
    let mut leader = spawn_worker(&server, &base);
    let start = Instant::now();
    while count(&mut conn, "runs:key-0") == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the leader never started f"
        );
        thread::sleep(Duration::from_millis(10));
    }
    let join = Settings {
        mode: "join",
        threads: 4,
        sleep_ms: 50,
        ..base
    };
    let followers: Vec<_> = (0..2).map(|_| spawn_worker(&server, &join)).collect();
    // Let them start waiting on the leader (well past one lease, so the
    // leader's renewals are what keeps them waiting), then kill it.
    thread::sleep(Duration::from_millis(3 * lease_ms));
    assert_eq!(
        count(&mut conn, "runs:key-0"),
        1,
        "a follower ran while the leader lived"
    );
    leader.child.kill().unwrap();
    leader.child.wait().unwrap();
    let killed = Instant::now();
    let reports: Vec<_> = followers
        .into_iter()
        .map(|w| w.finish(Duration::from_secs(30)))
        .collect();
    let took = killed.elapsed();
    assert_eq!(total(&reports, "ok"), 8, "every caller got the value");
    assert_eq!(total(&reports, "bad"), 0);
    assert_eq!(count(&mut conn, "runs:key-0"), 2, "one takeover, no more");
    assert_eq!(total(&reports, "took_over"), 1);
    assert_eq!(total(&reports, "remote_values"), 1);
    assert!(took < Duration::from_secs(10), "takeover took {took:?}");
}

#[test]
fn a_leader_paused_past_its_lease_is_duplicated_and_nobody_is_lost() {
    abort_after(Duration::from_secs(120), "a_leader_paused_past_its_lease");
    let server = RedisServer::start();
    let mut conn = server.conn();
    let lease_ms = 600;
    let slow = Settings {
        ns: "pause",
        mode: "flights",
        threads: 1,
        keys: 1,
        sleep_ms: 3000,
        lease_ms,
        start_ms: 0,
    };
    let leader = spawn_worker(&server, &slow);
    let start = Instant::now();
    while count(&mut conn, "runs:key-0") == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the leader never started f"
        );
        thread::sleep(Duration::from_millis(10));
    }
    // The leader stops (a GC pause, a stalled VM) for more than two leases.
    let signal = |sig: &str| {
        let ok = Command::new("kill")
            .arg(sig)
            .arg(leader.child.id().to_string())
            .status()
            .unwrap();
        assert!(ok.success());
    };
    signal("-STOP");
    let join = Settings {
        mode: "join",
        threads: 4,
        sleep_ms: 50,
        ..slow
    };
    let follower = spawn_worker(&server, &join);
    let report = follower.finish(Duration::from_secs(30));
    signal("-CONT");
    assert_eq!(report["ok"], 4, "the follower's callers got a value");
    assert_eq!(
        report["took_over"], 1,
        "the follower took the expired lease"
    );
    let report = leader.finish(Duration::from_secs(30));
    assert_eq!(
        (report["ok"], report["bad"]),
        (1, 0),
        "the paused leader's caller got its value"
    );
    assert_eq!(report["led"], 1);
    assert!(
        report["leases_lost"] >= 1,
        "the leader saw its lease was gone: {report:?}"
    );
    // A duplicate, as documented: the lease is advisory.
    assert_eq!(count(&mut conn, "runs:key-0"), 2);
}
