//! The stampede demo's fleet mode: N processes x M threads on the same Zipf
//! keys against a slow backend, each process with its own `Group`, then
//! each with a `RedisGroup` sharing one Redis, beside one process with all
//! N x M threads (what the fleet would see if it were one process: the
//! ideal). One table of backend calls.
//!
//! Run: `cargo run --release --features redis --example fleet` (`-- --help`
//! for the flags). It starts its own `redis-server` on a Unix socket in a
//! temporary folder (Debian's `redis-server` package) unless `--redis URL`
//! names one. The processes are this program re-executed with `--worker`.
//!
//! A separate example rather than a flag of `stampede`: `stampede` must
//! build without the `redis` feature, and its four in-process modes share
//! nothing with starting processes.

#[allow(dead_code)]
#[path = "stampede.rs"]
mod stampede;

#[path = "../tests/redis_support/mod.rs"]
mod redis_support;

use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;
use singleflight_sync::redis::{RawCodec, RedisGroup};
use singleflight_sync::Group;
use stampede::{keys_for, value_of, Config, Zipf};

/// N processes x M threads on the same Zipf keys, per-process `Group` vs
/// `RedisGroup`.
#[derive(Parser, Debug, Clone)]
struct Args {
    /// Processes in the fleet.
    #[arg(long, default_value_t = 4)]
    processes: usize,
    /// Worker threads per process.
    #[arg(long, default_value_t = 16)]
    threads: usize,
    /// Distinct keys.
    #[arg(long, default_value_t = 1000)]
    keys: usize,
    /// The Zipf exponent.
    #[arg(long, default_value_t = 0.99)]
    zipf: f64,
    /// Each backend call's latency, in milliseconds.
    #[arg(long, default_value_t = 20)]
    latency_ms: u64,
    /// How long each mode runs, in seconds.
    #[arg(long, default_value_t = 3)]
    duration_s: u64,
    /// The RedisGroup's result_ttl in milliseconds: how long a result stays
    /// readable after its flight (waiters read it there; callers arriving
    /// in that window get it too, a small cache effect the table shows).
    #[arg(long, default_value_t = 5)]
    result_ttl_ms: u64,
    /// A Redis to use instead of starting one (e.g. redis://127.0.0.1/).
    #[arg(long)]
    redis: Option<String>,
    /// Fixes the key sequences.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    #[arg(long, hide = true)]
    worker: Option<String>,
    #[arg(long, hide = true, default_value_t = 0)]
    index: usize,
    #[arg(long, hide = true, default_value_t = 0)]
    start_ms: u64,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// One worker process: `threads` threads for `duration_s`, then one report
/// line on stdout.
fn worker(args: &Args, mode: &str, url: &str) {
    let config = Config {
        threads: args.threads,
        keys: args.keys,
        zipf: args.zipf,
        seed: args.seed ^ (args.index as u64).wrapping_mul(0xA24B_AED4_963E_E407),
        ..Config::default()
    };
    let zipf = Zipf::new(config.keys, config.zipf);
    let latency = Duration::from_millis(args.latency_ms);
    let backend_calls = AtomicU64::new(0);
    let requests = AtomicU64::new(0);
    let backend = |key: u64| {
        backend_calls.fetch_add(1, Ordering::Relaxed);
        thread::sleep(latency);
        value_of(key).to_string()
    };
    let local: Group<u64, String> = Group::new();
    let fleet: Option<RedisGroup<String>> = (mode == "redis").then(|| {
        RedisGroup::builder()
            .url(url)
            .namespace("fleet-demo")
            .lease(Duration::from_secs(2))
            .result_ttl(Duration::from_millis(args.result_ttl_ms))
            .op_timeout(Duration::from_millis(200))
            .codec(RawCodec)
            .build()
            .expect("a RedisGroup")
    });
    while now_ms() < args.start_ms {
        thread::sleep(Duration::from_millis(1));
    }
    let end = Instant::now() + Duration::from_secs(args.duration_s);
    thread::scope(|s| {
        for t in 0..config.threads {
            let (config, zipf, backend, local, fleet, requests) =
                (&config, &zipf, &backend, &local, &fleet, &requests);
            s.spawn(move || {
                for key in keys_for(config, zipf, t) {
                    if Instant::now() >= end {
                        break;
                    }
                    let value = match fleet {
                        Some(fleet) => fleet
                            .work(&key.to_string(), || backend(key))
                            .expect("a value"),
                        None => local.work(&key, || backend(key)),
                    };
                    assert_eq!(value, value_of(key).to_string());
                    requests.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    });
    let degraded = fleet.as_ref().map_or(0, |f| f.stats().degraded);
    println!(
        "FLEET requests={} backend={} degraded={degraded}",
        requests.load(Ordering::Relaxed),
        backend_calls.load(Ordering::Relaxed)
    );
}

/// Runs `processes` workers of `mode` with `threads` threads each; sums
/// their (requests, backend calls, degraded).
fn run(args: &Args, mode: &str, processes: usize, threads: usize, url: &str) -> [u64; 3] {
    let start_ms = now_ms() + 1000;
    let children: Vec<_> = (0..processes)
        .map(|index| {
            Command::new(std::env::current_exe().unwrap())
                .args(["--worker", mode, "--redis", url])
                .args([
                    "--index",
                    &index.to_string(),
                    "--start-ms",
                    &start_ms.to_string(),
                ])
                .args([
                    "--threads",
                    &threads.to_string(),
                    "--keys",
                    &args.keys.to_string(),
                ])
                .args([
                    "--zipf",
                    &args.zipf.to_string(),
                    "--latency-ms",
                    &args.latency_ms.to_string(),
                ])
                .args([
                    "--duration-s",
                    &args.duration_s.to_string(),
                    "--seed",
                    &args.seed.to_string(),
                ])
                .args(["--result-ttl-ms", &args.result_ttl_ms.to_string()])
                .stdout(Stdio::piped())
                .spawn()
                .expect("start a worker process")
        })
        .collect();
    let mut sums = [0u64; 3];
    for mut child in children {
        let mut out = String::new();
        child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        assert!(child.wait().unwrap().success(), "a worker failed:\n{out}");
        let line = out
            .lines()
            .find_map(|l| l.strip_prefix("FLEET "))
            .expect("a worker's report");
        for (i, kv) in line.split(' ').enumerate() {
            sums[i] += kv.split_once('=').unwrap().1.parse::<u64>().unwrap();
        }
    }
    sums
}

fn main() {
    let args = Args::parse();
    if let Some(mode) = &args.worker {
        worker(&args, mode, args.redis.as_deref().unwrap_or(""));
        return;
    }
    let server = args.redis.is_none().then(redis_support::RedisServer::start);
    let url = args
        .redis
        .clone()
        .unwrap_or_else(|| server.as_ref().unwrap().url());
    let (n, m) = (args.processes, args.threads);
    println!(
        "{n} processes x {m} threads, {} keys (Zipf {}), backend {} ms, {} s per row, result_ttl {} ms\n",
        args.keys, args.zipf, args.latency_ms, args.duration_s, args.result_ttl_ms
    );
    let rows = [
        (
            format!("1 process x {} threads, Group (ideal)", n * m),
            "group",
            1,
            n * m,
        ),
        (
            format!("{n} processes x {m} threads, Group each"),
            "group",
            n,
            m,
        ),
        (
            format!("{n} processes x {m} threads, RedisGroup"),
            "redis",
            n,
            m,
        ),
    ];
    println!("| fleet | requests | backend calls | calls / 1k requests | vs ideal | degraded |");
    println!("|---|---:|---:|---:|---:|---:|");
    let mut ideal = 0.0;
    for (label, mode, processes, threads) in rows {
        let [requests, calls, degraded] = run(&args, mode, processes, threads, &url);
        let per_k = calls as f64 * 1000.0 / requests.max(1) as f64;
        if ideal == 0.0 {
            ideal = calls as f64;
        }
        println!(
            "| {label} | {requests} | {calls} | {per_k:.1} | {:.2}x | {degraded} |",
            calls as f64 / ideal
        );
    }
}
