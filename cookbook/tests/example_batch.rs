//! `examples/batch.rs` at small size: every shared dependency is built once,
//! and the batch's answer matches a one-thread run.

#[allow(dead_code)]
#[path = "../examples/batch.rs"]
mod batch;
// The library's test helpers (watchdog, wait_for), shared rather than copied.
#[path = "../../tests/common/mod.rs"]
mod common;

use std::time::Duration;

use batch::{expected_total, run, Config};
use common::watchdog;

const LIMIT: Duration = Duration::from_secs(60);

#[test]
fn each_catalogue_is_built_once() {
    watchdog(LIMIT, || {
        let config = Config {
            items: 2_000,
            catalogues: 20,
            threads: 4,
            build_cost: 200,
        };
        let summary = run(&config);
        assert_eq!(summary.builds, 20, "one build per catalogue");
        assert_eq!(summary.cache.loads, 20);
        assert_eq!(summary.cache.hits + summary.cache.misses, 2_000);
        assert_eq!(summary.total_cents, expected_total(&config));
    });
}

#[test]
fn more_threads_than_cores_still_build_once() {
    watchdog(LIMIT, || {
        let config = Config {
            items: 1_000,
            catalogues: 5,
            threads: 16,
            build_cost: 2_000,
        };
        let summary = run(&config);
        assert_eq!(summary.builds, 5);
        assert_eq!(summary.total_cents, expected_total(&config));
    });
}
