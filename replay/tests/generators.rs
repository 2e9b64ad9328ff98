//! The synthetic generators: deterministic per seed, the requested length,
//! and the shape each promises.

use std::collections::HashSet;

use singleflight_replay::{lru_hits, Workload};

fn all() -> Vec<Workload> {
    vec![
        Workload::Zipf {
            skew: 0.99,
            keys: 10_000,
        },
        Workload::Loop { factor: 1.5 },
        Workload::Scan {
            skew: 0.99,
            keys: 10_000,
            fraction: 0.2,
            burst: 500,
        },
        Workload::Shift {
            skew: 0.99,
            window: 5_000,
            every: 20_000,
            jump: 2_500,
        },
        Workload::Recency {
            reuse: 0.8,
            mean: 500.0,
            fresh: 0.5,
        },
    ]
}

#[test]
fn a_seed_names_one_trace() {
    for w in all() {
        w.check().unwrap();
        let a = w.generate(50_000, 1_000, 1);
        assert_eq!(a.len(), 50_000, "{w:?}");
        assert_eq!(a, w.generate(50_000, 1_000, 1), "{w:?}");
        if !matches!(w, Workload::Loop { .. }) {
            assert_ne!(a, w.generate(50_000, 1_000, 2), "{w:?}");
        }
    }
}

#[test]
fn zipf_stays_in_range_and_is_skewed() {
    let trace = Workload::Zipf {
        skew: 0.99,
        keys: 10_000,
    }
    .generate(100_000, 1, 3);
    assert!(trace.iter().all(|&k| k < 10_000));
    let zeros = trace.iter().filter(|&&k| k == 0).count();
    // P(rank 0) = 1 / H(10,000; 0.99), about 0.1.
    assert!((8_500..11_500).contains(&zeros), "{zeros}");
    let uniform = Workload::Zipf {
        skew: 0.0,
        keys: 10,
    }
    .generate(100_000, 1, 3);
    let zeros = uniform.iter().filter(|&&k| k == 0).count();
    assert!((9_000..11_000).contains(&zeros), "{zeros}");
}

#[test]
fn loop_cycles_over_more_than_the_capacity() {
    let w = Workload::Loop { factor: 1.5 };
    assert!(w.per_capacity());
    let trace = w.generate(10_000, 1_000, 0);
    assert_eq!(trace[..3], [0, 1, 2]);
    assert_eq!(trace[1_499..1_502], [1_499, 0, 1]);
    assert_eq!(w.label(1_000), "loop of 1500 keys (1.5 x capacity)");
    // At least one key over the capacity, even for tiny caches.
    assert_eq!(
        Workload::Loop { factor: 1.01 }.generate(4, 2, 0),
        [0, 1, 2, 0]
    );
}

#[test]
fn scan_bursts_hold_the_fraction_and_never_repeat() {
    let trace = Workload::Scan {
        skew: 0.99,
        keys: 10_000,
        fraction: 0.2,
        burst: 500,
    }
    .generate(400_000, 1, 4);
    let scans: Vec<u64> = trace.iter().copied().filter(|&k| k >= 10_000).collect();
    let share = scans.len() as f64 / trace.len() as f64;
    assert!((0.15..0.25).contains(&share), "{share}");
    assert_eq!(scans.iter().collect::<HashSet<_>>().len(), scans.len());
    // In bursts: most scan keys follow the one before.
    let consecutive = trace
        .windows(2)
        .filter(|w| w[0] >= 10_000 && w[1] == w[0] + 1)
        .count();
    assert!(consecutive as f64 > 0.99 * scans.len() as f64 - 1_000.0);
}

#[test]
fn shift_moves_its_window() {
    let trace = Workload::Shift {
        skew: 0.99,
        window: 5_000,
        every: 20_000,
        jump: 2_500,
    }
    .generate(100_000, 1, 5);
    for (i, &k) in trace.iter().enumerate() {
        let offset = (i as u64 / 20_000) * 2_500;
        assert!(
            (offset..offset + 5_000).contains(&k),
            "request {i}: key {k}"
        );
    }
}

#[test]
fn recency_rewards_lru_as_its_stack_distance_says() {
    // 80% of requests re-use the key at a geometric LRU-stack distance of
    // mean 500: an exact LRU of C keys hits those with distance <= C,
    // 0.8 * (1 - (1 - 1/500)^C), plus a few uniform re-uses.
    let trace = Workload::Recency {
        reuse: 0.8,
        mean: 500.0,
        fresh: 0.5,
    }
    .generate(200_000, 1, 6);
    for capacity in [100, 500, 2_000] {
        let predicted = 0.8 * (1.0 - (1.0 - 1.0 / 500.0f64).powi(capacity as i32));
        let got = lru_hits(&trace, capacity) as f64 / trace.len() as f64;
        assert!(
            got >= predicted - 0.01 && got <= predicted + 0.03,
            "capacity {capacity}: {got} vs {predicted}"
        );
    }
}

#[test]
fn labels_name_every_parameter() {
    let labels: Vec<String> = all().iter().map(|w| w.label(1_000)).collect();
    assert_eq!(labels[0], "zipf s=0.99, 10000 keys");
    assert_eq!(
        labels[2],
        "scan: zipf s=0.99, 10000 keys + 20% in bursts of 500 new keys"
    );
    assert_eq!(
        labels[3],
        "shift: zipf s=0.99 over 5000 keys, +2500 every 20000 requests"
    );
    assert_eq!(
        labels[4],
        "recency: 80% at LRU distance ~geom(mean 500), else 50% new / uniform old"
    );
}
