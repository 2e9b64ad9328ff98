//! `examples/report.rs` at small size: one generation however many callers
//! ask, callers with deadlines leave without stopping it, and every caller
//! reads the same contents as the stored file.

// The library's test helpers (watchdog, wait_for), shared rather than copied.
#[path = "../../tests/common/mod.rs"]
mod common;
#[allow(dead_code)]
#[path = "../examples/report.rs"]
mod report;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::{wait_for, watchdog};
use report::{monthly_report, Generator, Month, ReportError, Reports, Served};
use singleflight_sync::{CancelToken, Error};

const LIMIT: Duration = Duration::from_secs(60);
const ROWS: u64 = 100_000;
const MAY: Month = Month {
    year: 2024,
    month: 5,
};

fn later() -> Instant {
    Instant::now() + LIMIT
}

/// The real generator, counted, and held at `gate` until it opens.
fn gated(runs: &Arc<AtomicUsize>, gate: &Arc<AtomicBool>) -> Arc<Generator> {
    let (runs, gate) = (runs.clone(), gate.clone());
    Arc::new(move |month, token: &CancelToken| {
        runs.fetch_add(1, Ordering::SeqCst);
        wait_for("the gate", || gate.load(Ordering::SeqCst));
        monthly_report(month, ROWS, token)
    })
}

#[test]
fn one_generation_and_a_caller_that_leaves_does_not_stop_it() {
    watchdog(LIMIT, || {
        const WAITING: usize = 5;
        let dir = tempfile::tempdir().unwrap();
        let (runs, gate) = Default::default();
        let reports = Reports::new(dir.path(), gated(&runs, &gate));
        thread::scope(|s| {
            let waiting: Vec<_> = (0..WAITING)
                .map(|_| s.spawn(|| reports.get(MAY, later())))
                .collect();
            // Its deadline has passed: it joins, then leaves at once.
            let impatient = s.spawn(|| reports.get(MAY, Instant::now()));
            wait_for("every caller to join", || {
                reports.waiters(MAY) == WAITING + 1
            });
            assert!(matches!(
                impatient.join().unwrap(),
                Err(ReportError::TimedOut)
            ));
            gate.store(true, Ordering::SeqCst);

            let stored = waiting
                .into_iter()
                .map(|h| h.join().unwrap().unwrap())
                .inspect(|r| assert!(matches!(r.served, Served::Flight { shared: true, .. })))
                .map(|r| r.contents.to_string())
                .collect::<Vec<_>>();
            let file = std::fs::read_to_string(reports.store().path(MAY)).unwrap();
            assert!(stored.iter().all(|contents| *contents == file));
            assert!(file.starts_with("Sales report 2024-05\n"), "{file}");
            assert!(file.contains(&format!("total    {ROWS:>10}")), "{file}");
        });
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert_eq!(reports.generated(), 1);

        let later_caller = reports.get(MAY, later()).unwrap();
        assert_eq!(later_caller.served, Served::Disk);
        assert_eq!(runs.load(Ordering::SeqCst), 1, "read from disk");
    });
}

#[test]
fn a_report_stored_just_before_a_flight_starts_is_not_generated_again() {
    watchdog(LIMIT, || {
        let dir = tempfile::tempdir().unwrap();
        let (runs, gate) = <(Arc<AtomicUsize>, Arc<AtomicBool>)>::default();
        gate.store(true, Ordering::SeqCst);
        let reports = Reports::new(dir.path(), gated(&runs, &gate));
        let first = reports.get(MAY, later()).unwrap();
        assert_eq!(
            first.served,
            Served::Flight {
                leader: true,
                shared: false
            }
        );
        // A caller that looked in storage before that flight stored the
        // report: its own flight looks again and finds it.
        let second = reports.join_or_start(MAY, later()).unwrap();
        assert_eq!(second.contents, first.contents);
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert_eq!(reports.generated(), 1);
    });
}

#[test]
fn a_failure_reaches_every_caller_and_is_not_stored() {
    watchdog(LIMIT, || {
        const CALLERS: usize = 4;
        let dir = tempfile::tempdir().unwrap();
        let (runs, gate) = <(Arc<AtomicUsize>, Arc<AtomicBool>)>::default();
        let generator: Arc<Generator> = {
            let (runs, gate) = (runs.clone(), gate.clone());
            Arc::new(move |month, token: &CancelToken| {
                wait_for("the gate", || gate.load(Ordering::SeqCst));
                if runs.fetch_add(1, Ordering::SeqCst) == 0 {
                    return Err("the warehouse is offline".to_string());
                }
                monthly_report(month, ROWS, token)
            })
        };
        let reports = Reports::new(dir.path(), generator);
        let failures = thread::scope(|s| {
            let callers: Vec<_> = (0..CALLERS)
                .map(|_| s.spawn(|| reports.get(MAY, later())))
                .collect();
            wait_for("every caller to join", || reports.waiters(MAY) == CALLERS);
            gate.store(true, Ordering::SeqCst);
            callers
                .into_iter()
                .map(|h| h.join().unwrap().unwrap_err())
                .collect::<Vec<_>>()
        });
        for failure in failures {
            assert!(
                matches!(&failure, ReportError::Failed(why) if why == "the warehouse is offline"),
                "{failure}"
            );
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1, "one run failed for all");
        assert_eq!(reports.store().read(MAY).unwrap(), None);

        let retry = reports.get(MAY, later()).unwrap();
        assert!(retry.contents.starts_with("Sales report 2024-05"));
        assert_eq!((runs.load(Ordering::SeqCst), reports.generated()), (2, 1));
    });
}

#[test]
fn cancel_stops_the_generation_and_stores_nothing() {
    watchdog(LIMIT, || {
        let dir = tempfile::tempdir().unwrap();
        let returned = Arc::new(AtomicBool::new(false));
        let generator: Arc<Generator> = {
            let returned = returned.clone();
            Arc::new(move |month, token: &CancelToken| {
                token.wait();
                let report = monthly_report(month, ROWS, token);
                returned.store(true, Ordering::SeqCst);
                report
            })
        };
        let reports = Reports::new(dir.path(), generator);
        let got = thread::scope(|s| {
            let caller = s.spawn(|| reports.get(MAY, later()));
            wait_for("the caller", || reports.waiters(MAY) == 1);
            assert!(reports.cancel(MAY));
            caller.join().unwrap()
        });
        assert!(matches!(got, Err(ReportError::Flight(Error::Cancelled))));
        wait_for("the cancelled generation to return", || {
            returned.load(Ordering::SeqCst)
        });
        assert_eq!(reports.store().read(MAY).unwrap(), None);
        assert_eq!(reports.generated(), 0);
    });
}
