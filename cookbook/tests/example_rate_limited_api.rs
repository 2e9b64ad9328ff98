//! `examples/rate_limited_api.rs` at small size: duplicate requests for a
//! currency pair share one HTTP call, counted by the server.

// The library's test helpers (watchdog, wait_for), shared rather than copied.
#[path = "../../tests/common/mod.rs"]
mod common;
#[allow(dead_code)]
#[path = "../examples/rate_limited_api.rs"]
mod rate_limited_api;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::{wait_for, watchdog};
use rate_limited_api::{burst, expected_rate, ApiError, ApiServer, Pair, RatesClient, TokenBucket};

const LIMIT: Duration = Duration::from_secs(60);
const PAIRS: [Pair; 3] = [
    Pair::new("EUR", "USD"),
    Pair::new("USD", "JPY"),
    Pair::new("GBP", "CHF"),
];

/// A server that holds every answer until `gate` opens.
fn gated_server() -> (ApiServer, Arc<AtomicBool>) {
    let gate = Arc::new(AtomicBool::new(false));
    let open = gate.clone();
    let server = ApiServer::start(4, move |_| {
        wait_for("the gate", || open.load(Ordering::SeqCst))
    })
    .unwrap();
    (server, gate)
}

fn client(server: &ApiServer) -> RatesClient {
    RatesClient::new(server.url(), TokenBucket::new(100, 1_000))
}

#[test]
fn duplicate_requests_share_one_http_call() {
    watchdog(LIMIT, || {
        const PER_PAIR: usize = 6;
        let (server, gate) = gated_server();
        let client = client(&server);
        let answers = thread::scope(|s| {
            let callers: Vec<_> = PAIRS
                .iter()
                .flat_map(|&pair| std::iter::repeat_n(pair, PER_PAIR))
                .map(|pair| {
                    let client = &client;
                    s.spawn(move || (pair, client.rate(pair)))
                })
                .collect();
            wait_for("every caller to join its pair's call", || {
                PAIRS.iter().all(|&p| client.waiters(p) == PER_PAIR - 1)
            });
            gate.store(true, Ordering::SeqCst);
            callers
                .into_iter()
                .map(|h| h.join().unwrap())
                .collect::<Vec<_>>()
        });
        assert_eq!(answers.len(), PAIRS.len() * PER_PAIR);
        for (pair, rate) in answers {
            assert_eq!(rate.unwrap(), expected_rate(pair).unwrap(), "{pair}");
        }
        assert_eq!(server.requests(), PAIRS.len(), "one call per pair");
        for pair in PAIRS {
            assert_eq!(server.requests_for(pair), 1, "{pair}");
        }
    });
}

#[test]
fn without_the_group_every_request_is_a_call() {
    watchdog(LIMIT, || {
        let server = ApiServer::start(4, |_| {}).unwrap();
        let client = client(&server);
        let (requests, _) = burst(4, 6, &PAIRS, |p| client.call(p));
        assert_eq!((requests, server.requests()), (24, 24));
        // Nothing is remembered after a call: sequential requests all call.
        let (requests, _) = burst(1, 6, &PAIRS, |p| client.rate(p));
        assert_eq!((requests, server.requests()), (6, 30));
    });
}

#[test]
fn an_error_reaches_every_caller_of_its_call_and_is_not_kept() {
    watchdog(LIMIT, || {
        const CALLERS: usize = 5;
        let unknown = Pair::new("EUR", "XYZ");
        let (server, gate) = gated_server();
        let client = client(&server);
        let answers = thread::scope(|s| {
            let callers: Vec<_> = (0..CALLERS)
                .map(|_| s.spawn(|| client.rate(unknown)))
                .collect();
            wait_for("the callers", || client.waiters(unknown) == CALLERS - 1);
            gate.store(true, Ordering::SeqCst);
            callers
                .into_iter()
                .map(|h| h.join().unwrap())
                .collect::<Vec<_>>()
        });
        let expected = Err(ApiError::Status(404, "unknown currency XYZ".into()));
        assert!(answers.iter().all(|a| *a == expected), "{answers:?}");
        assert_eq!(server.requests_for(unknown), 1);

        assert_eq!(client.rate(unknown), expected);
        assert_eq!(server.requests_for(unknown), 2, "the error was not kept");
    });
}

#[test]
fn the_bucket_keeps_to_its_rate() {
    watchdog(LIMIT, || {
        // A burst of 2, then 50 a second: 12 tokens take at least 200 ms.
        let bucket = TokenBucket::new(2, 50);
        let start = Instant::now();
        for _ in 0..12 {
            bucket.acquire();
        }
        assert!(start.elapsed() >= Duration::from_millis(200));
    });
}
