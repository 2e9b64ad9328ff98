//! A client for a rate-limited HTTP API: duplicate requests share one call.
//!
//! The example serves a small exchange-rate API itself, on 127.0.0.1 (a free
//! port), with `tiny_http`, and counts every request it receives. The client
//! may make only so many calls a second (a token bucket, as an API quota
//! demands), so each call saved is time saved: with a `Group` in front,
//! concurrent requests for the same currency pair share one HTTP call and
//! one token.
//!
//! Run: `cargo run --release -p singleflight-cookbook --example rate_limited_api`

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Barrier, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use singleflight_sync::Group;

/// A currency pair: the group's key type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Pair {
    pub base: &'static str,
    pub quote: &'static str,
}

impl Pair {
    pub const fn new(base: &'static str, quote: &'static str) -> Self {
        Pair { base, quote }
    }
}

impl fmt::Display for Pair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.base, self.quote)
    }
}

/// Each currency's value in US dollars, as the API knows it.
const USD_VALUE: [(&str, f64); 5] = [
    ("USD", 1.0),
    ("EUR", 1.08),
    ("GBP", 1.27),
    ("CHF", 1.12),
    ("JPY", 0.0067),
];

fn usd_value(currency: &str) -> Option<f64> {
    USD_VALUE.iter().find(|(c, _)| *c == currency).map(|r| r.1)
}

/// The rate the API answers for `base` in `quote`, if both are known.
pub fn expected_rate(pair: Pair) -> Option<f64> {
    Some(usd_value(pair.base)? / usd_value(pair.quote)?)
}

/// The API: `GET /v1/rates/EUR/USD` answers `1.08`, or 404 for a currency it
/// does not know. Counts the requests it receives, per path.
pub struct ApiServer {
    server: Arc<tiny_http::Server>,
    addr: SocketAddr,
    received: Arc<Mutex<HashMap<String, usize>>>,
    workers: Vec<JoinHandle<()>>,
}

impl ApiServer {
    /// Serves on 127.0.0.1 with `workers` threads. `before_reply` runs
    /// before each answer, with the request's path: the API's latency (or,
    /// in a test, a gate).
    pub fn start<F>(workers: usize, before_reply: F) -> io::Result<ApiServer>
    where
        F: Fn(&str) + Send + Sync + 'static,
    {
        let server = tiny_http::Server::http("127.0.0.1:0").map_err(io::Error::other)?;
        let addr = server
            .server_addr()
            .to_ip()
            .expect("listening on an IP address");
        let server = Arc::new(server);
        let received = Arc::new(Mutex::new(HashMap::new()));
        let before_reply = Arc::new(before_reply);
        let workers = (0..workers.max(1))
            .map(|_| {
                let (server, received, before_reply) =
                    (server.clone(), received.clone(), before_reply.clone());
                thread::spawn(move || {
                    // `recv` fails once `drop` unblocks this worker.
                    while let Ok(request) = server.recv() {
                        let path = request.url().to_string();
                        *received.lock().unwrap().entry(path.clone()).or_insert(0) += 1;
                        before_reply(&path);
                        let (status, body) = answer(&path);
                        let response = tiny_http::Response::from_string(body)
                            .with_status_code(tiny_http::StatusCode(status));
                        let _ = request.respond(response);
                    }
                })
            })
            .collect();
        Ok(ApiServer {
            server,
            addr,
            received,
            workers,
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests received so far.
    pub fn requests(&self) -> usize {
        self.received.lock().unwrap().values().sum()
    }

    /// Requests received so far for `pair`.
    pub fn requests_for(&self, pair: Pair) -> usize {
        let path = format!("/v1/rates/{}/{}", pair.base, pair.quote);
        self.received
            .lock()
            .unwrap()
            .get(&path)
            .copied()
            .unwrap_or(0)
    }
}

fn answer(path: &str) -> (u16, String) {
    let Some(pair) = path.strip_prefix("/v1/rates/") else {
        return (404, "no such endpoint".into());
    };
    let Some((base, quote)) = pair.split_once('/') else {
        return (404, "expected /v1/rates/BASE/QUOTE".into());
    };
    match (usd_value(base), usd_value(quote)) {
        (Some(b), Some(q)) => (200, format!("{}", b / q)),
        (None, _) => (404, format!("unknown currency {base}")),
        (_, None) => (404, format!("unknown currency {quote}")),
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        // Each `unblock` releases one worker from `recv`.
        for _ in &self.workers {
            self.server.unblock();
        }
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

/// A token bucket: up to `burst` calls at once, then `per_second`.
pub struct TokenBucket {
    burst: f64,
    per_second: f64,
    state: Mutex<(f64, Instant)>,
}

impl TokenBucket {
    pub fn new(burst: u32, per_second: u32) -> Self {
        TokenBucket {
            burst: f64::from(burst),
            per_second: f64::from(per_second),
            state: Mutex::new((f64::from(burst), Instant::now())),
        }
    }

    /// Takes a token, sleeping until one is there.
    pub fn acquire(&self) {
        let wait = {
            let mut state = self.state.lock().unwrap();
            let (tokens, last) = &mut *state;
            let now = Instant::now();
            *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * self.per_second)
                .min(self.burst);
            *last = now;
            // Take it now, even into debt: the debt is this caller's wait,
            // and the next caller queues behind it.
            *tokens -= 1.0;
            if *tokens >= 0.0 {
                return;
            }
            Duration::from_secs_f64(-*tokens / self.per_second)
        };
        thread::sleep(wait);
    }
}

/// Why the API gave no rate. `Clone`: one failed call answers every caller
/// of its flight.
#[derive(Clone, Debug, PartialEq)]
pub enum ApiError {
    /// The API answered with an error status.
    Status(u16, String),
    /// The call failed, or the answer was not a number.
    Transport(String),
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiError::Status(code, body) => write!(f, "HTTP {code}: {body}"),
            ApiError::Transport(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for ApiError {}

/// The API's client: within its quota, and one call per pair at a time.
pub struct RatesClient {
    base_url: String,
    agent: ureq::Agent,
    bucket: TokenBucket,
    group: Group<Pair, Result<f64, ApiError>>,
}

impl RatesClient {
    pub fn new(base_url: String, bucket: TokenBucket) -> Self {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(10)))
            .http_status_as_error(false)
            // Straight to 127.0.0.1, whatever proxy the environment names.
            .proxy(None)
            .build()
            .into();
        RatesClient {
            base_url,
            agent,
            bucket,
            group: Group::builder().name("rates").build(),
        }
    }

    /// The rate for `pair`. Concurrent callers for the same pair share one
    /// call and its result, error included; nothing is remembered after it.
    pub fn rate(&self, pair: Pair) -> Result<f64, ApiError> {
        self.group.work(&pair, || self.call(pair))
    }

    /// One HTTP call, once the bucket allows it; no sharing.
    pub fn call(&self, pair: Pair) -> Result<f64, ApiError> {
        self.bucket.acquire();
        let url = format!("{}/v1/rates/{}/{}", self.base_url, pair.base, pair.quote);
        let transport = |e: ureq::Error| ApiError::Transport(e.to_string());
        let mut response = self.agent.get(&url).call().map_err(transport)?;
        let status = response.status().as_u16();
        let body = response.body_mut().read_to_string().map_err(transport)?;
        if status != 200 {
            return Err(ApiError::Status(status, body));
        }
        body.trim()
            .parse()
            .map_err(|_| ApiError::Transport(format!("not a rate: {body:?}")))
    }

    /// How many callers are waiting for the call running for `pair`.
    #[allow(dead_code)] // for tests/example_rate_limited_api.rs
    pub fn waiters(&self, pair: Pair) -> usize {
        self.group.waiters(&pair)
    }
}

/// `threads` threads, released together, each asking `per_thread` times for
/// the pairs in turn (each thread starting at a different one). Checks every
/// answer; returns how many requests were made and how long they took.
///
/// # Panics
///
/// If an answer is an error or the wrong rate.
pub fn burst<F>(threads: usize, per_thread: usize, pairs: &[Pair], ask: F) -> (usize, Duration)
where
    F: Fn(Pair) -> Result<f64, ApiError> + Sync,
{
    let start_line = Barrier::new(threads);
    let start = Instant::now();
    thread::scope(|s| {
        for t in 0..threads {
            let (ask, start_line) = (&ask, &start_line);
            s.spawn(move || {
                start_line.wait();
                for i in 0..per_thread {
                    let pair = pairs[(t + i) % pairs.len()];
                    let rate = ask(pair).expect("the API answers");
                    assert_eq!(Some(rate), expected_rate(pair), "{pair}");
                }
            });
        }
    });
    (threads * per_thread, start.elapsed())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    const LATENCY: Duration = Duration::from_millis(40);
    let pairs = [
        Pair::new("EUR", "USD"),
        Pair::new("GBP", "USD"),
        Pair::new("USD", "JPY"),
        Pair::new("EUR", "CHF"),
    ];
    let server = ApiServer::start(8, |_| thread::sleep(LATENCY))?;
    println!(
        "API at {} (answers in {LATENCY:?}); quota: bursts of 10, then 50 calls/s",
        server.url()
    );
    println!("16 threads x 10 requests over {} pairs\n", pairs.len());
    println!(
        "{:<15} {:>9} {:>11} {:>9}",
        "mode", "requests", "HTTP calls", "elapsed"
    );
    let client = RatesClient::new(server.url(), TokenBucket::new(10, 50));
    let before = server.requests();
    let (requests, took) = burst(16, 10, &pairs, |p| client.call(p));
    let calls = server.requests() - before;
    println!(
        "{:<15} {requests:>9} {calls:>11} {took:>9.2?}",
        "no coalescing"
    );

    let client = RatesClient::new(server.url(), TokenBucket::new(10, 50));
    let before = server.requests();
    let (requests, took) = burst(16, 10, &pairs, |p| client.rate(p));
    let calls = server.requests() - before;
    println!(
        "{:<15} {requests:>9} {calls:>11} {took:>9.2?}",
        "Group::work"
    );

    let unknown = Pair::new("EUR", "XYZ");
    let before = server.requests_for(unknown);
    let answers: Vec<_> = thread::scope(|s| {
        let handles: Vec<_> = (0..8).map(|_| s.spawn(|| client.rate(unknown))).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    println!(
        "\n8 concurrent requests for {unknown}: {} HTTP call(s); each caller got: {}",
        server.requests_for(unknown) - before,
        answers[0].as_ref().unwrap_err()
    );
    let again = client.rate(unknown);
    println!(
        "the same error for all: {}; asked again, the API is called again (errors are not kept): {} call(s) in all",
        answers.iter().all(|a| a == &answers[0]) && again == answers[0],
        server.requests_for(unknown) - before,
    );
    Ok(())
}
