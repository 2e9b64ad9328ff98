//! The stampede example's core at a small size: each tool removes backend
//! calls, no request is lost, and the key sequence is fixed by the seed.
//!
//! The example file is included as a module, so this runs the example's own
//! code; only its `main` and flags go unused here.

#[allow(dead_code)]
#[path = "../examples/stampede.rs"]
mod stampede;

use std::time::Duration;

use stampede::{keys_for, run_mode, table, Config, Histogram, Mode, Zipf};

/// Small enough for a loaded two-core CI machine (about 2.5 s in all), with
/// margins that do not depend on timing:
///
/// - the TTL outlives the run, so `TtlCache` loads each key at most once:
///   at most 30 calls;
/// - a refresh comes 0.4 s after a load, so stale-while-revalidate loads
///   each key at most twice in 0.6 s: at most 60 calls;
/// - `Group` makes a call per flight, about 8 × 0.6 s / 10 ms × the share
///   of requests that lead (roughly half at 30 keys): about 250, still
///   above 60 if every sleep took twice as long.
fn small() -> Config {
    Config {
        threads: 8,
        keys: 30,
        zipf: 0.99,
        latency: Duration::from_millis(10),
        duration: Duration::from_millis(600),
        ttl: Duration::from_secs(5),
        refresh_after: Duration::from_millis(400),
        seed: 7,
        outage: None,
        throttle: Duration::from_millis(250),
    }
}

#[test]
fn each_tool_saves_backend_calls_and_no_request_is_lost() {
    let config = small();
    let reports: Vec<_> = Mode::ALL.iter().map(|&m| run_mode(&config, m)).collect();
    let table = table(&reports);
    println!("{table}");
    let [none, group, cache, swr, fail_safe] = &reports[..] else {
        unreachable!("one report per mode")
    };

    for r in &reports {
        assert!(r.issued > 0, "{:?} issued nothing\n{table}", r.mode);
        assert_eq!(r.served, r.issued, "{:?} lost requests\n{table}", r.mode);
        assert_eq!(r.latency.len(), r.issued, "{:?}\n{table}", r.mode);
        // Background refreshes run on threads of their own, so only the
        // other modes are bounded by the workers.
        if !matches!(r.mode, Mode::Swr | Mode::FailSafe) {
            assert!(
                r.peak_concurrency <= config.threads,
                "{:?}: more backend calls at once than workers\n{table}",
                r.mode
            );
        }
        // One flight per key at a time, a refresh included.
        if r.mode != Mode::None {
            assert!(
                r.peak_concurrency <= config.keys,
                "{:?}: two backend calls for one key at once\n{table}",
                r.mode
            );
        }
    }
    assert_eq!(none.backend_calls, none.served, "{table}");

    assert!(group.backend_calls < none.backend_calls, "{table}");
    assert!(cache.backend_calls < none.backend_calls, "{table}");
    assert!(swr.backend_calls < none.backend_calls, "{table}");

    assert!(cache.backend_calls < group.backend_calls, "{table}");
    assert!(swr.backend_calls < group.backend_calls, "{table}");

    // The bounds the relations rest on.
    let keys = config.keys as u64;
    assert!(cache.backend_calls <= keys, "{table}");
    assert!(swr.backend_calls <= 2 * keys, "{table}");
    assert!(fail_safe.backend_calls <= 2 * keys, "{table}");
    assert!(
        reports.iter().all(|r| r.errors == 0),
        "no outage, no error\n{table}"
    );
}

/// An outage of 300 ms from 300 ms into a 900 ms run, with a 200 ms TTL:
/// every key is loaded (10 ms) long before it, and every entry expires
/// during it, so every cache mode meets the failing backend.
#[test]
fn in_an_outage_only_the_fail_safe_keeps_errors_from_callers() {
    let config = Config {
        duration: Duration::from_millis(900),
        ttl: Duration::from_millis(200),
        refresh_after: Duration::from_millis(150),
        outage: Some(Duration::from_millis(300)),
        throttle: Duration::from_millis(100),
        ..small()
    };
    let reports: Vec<_> = [Mode::Cache, Mode::Swr, Mode::FailSafe]
        .iter()
        .map(|&m| run_mode(&config, m))
        .collect();
    let table = table(&reports);
    println!("{table}");
    let [cache, swr, fail_safe] = &reports[..] else {
        unreachable!("one report per mode")
    };
    assert!(cache.errors > 0 && swr.errors > 0, "{table}");
    assert_eq!(fail_safe.errors, 0, "{table}");
    for r in &reports {
        assert_eq!(
            r.served + r.errors,
            r.issued,
            "{:?} lost requests\n{table}",
            r.mode
        );
        let errors: u64 = r.timeline.iter().map(|s| s.1).sum();
        assert_eq!(errors, r.errors, "the timeline counts every error\n{table}");
    }
    // The throttle: at most one try per key per 100 ms while the backend is
    // down (300 ms), and the refreshes and loads around it.
    assert!(
        fail_safe.backend_calls < cache.backend_calls + swr.backend_calls,
        "{table}"
    );
}

#[test]
fn the_seed_fixes_each_workers_key_sequence() {
    let config = small();
    let zipf = Zipf::new(config.keys, config.zipf);
    let draw = |config: &Config, worker| keys_for(config, &zipf, worker).take(500).collect();
    let first: Vec<u64> = draw(&config, 0);

    assert_eq!(first, draw(&config, 0));
    assert_ne!(first, draw(&config, 1), "workers draw different sequences");
    let reseeded = Config {
        seed: config.seed + 1,
        ..config.clone()
    };
    assert_ne!(first, draw(&reseeded, 0), "another seed, another sequence");
    assert!(first.iter().all(|&k| k < config.keys as u64));
}

#[test]
fn the_sampler_follows_zipf() {
    let (keys, exponent, draws) = (30, 0.99, 200_000);
    let zipf = Zipf::new(keys, exponent);
    let config = Config { keys, ..small() };
    let mut counts = vec![0u64; keys];
    for k in keys_for(&config, &zipf, 0).take(draws) {
        counts[k as usize] += 1;
    }
    let harmonic: f64 = (1..=keys).map(|r| (r as f64).powf(-exponent)).sum();
    for (rank, &count) in counts.iter().enumerate().take(5) {
        let expected = draws as f64 * ((rank + 1) as f64).powf(-exponent) / harmonic;
        let off = (count as f64 - expected).abs() / expected;
        assert!(
            off < 0.05,
            "key {rank}: {count} draws, expected {expected:.0}"
        );
    }
    assert!(
        counts.iter().all(|&c| c > 0),
        "every key is drawn: {counts:?}"
    );

    // Exponent 0 is uniform.
    let uniform = Zipf::new(4, 0.0);
    let mut counts = [0u64; 4];
    for k in keys_for(&config, &uniform, 0).take(40_000) {
        counts[k as usize] += 1;
    }
    assert!(
        counts.iter().all(|&c| (9_000..11_000).contains(&c)),
        "{counts:?}"
    );
}

#[test]
fn the_histogram_is_within_a_few_percent() {
    let mut h = Histogram::default();
    for us in 1..=1_000u64 {
        h.record(Duration::from_micros(us));
    }
    assert_eq!(h.len(), 1_000);
    for (q, exact) in [(0.5, 500.0), (0.99, 990.0)] {
        let got = h.quantile(q).as_nanos() as f64 / 1e3;
        assert!((got - exact).abs() / exact < 0.04, "q{q}: {got} µs");
    }
    assert_eq!(h.max(), Duration::from_micros(1_000));
    assert_eq!(h.quantile(1.0), h.max());

    let mut small = Histogram::default();
    small.record(Duration::from_nanos(7));
    assert_eq!(small.quantile(0.5), Duration::from_nanos(7));
}
