//! A group's and a cache's metrics at `/metrics` for Prometheus to scrape,
//! while a few threads make traffic.
//!
//! Run: `cargo run --example metrics_server --features prometheus -- [PORT]`
//! (or set `METRICS_PORT`). Port 0, the default, takes a free one; the
//! address is printed. Then `curl http://127.0.0.1:<port>/metrics`.
//!
//! The server is a small blocking one (`tiny_http`) on its own thread: no
//! async runtime, like the crate. `tests/metrics.rs` includes this file and
//! scrapes the server over loopback.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use prometheus::{Encoder, Registry, TextEncoder};
use singleflight_sync::{Group, PrometheusError, PrometheusMetrics, TtlCache};

/// Answers `GET /metrics` with `registry`'s text exposition, on 127.0.0.1,
/// from one thread, until stopped or dropped.
pub struct MetricsServer {
    server: Arc<tiny_http::Server>,
    addr: SocketAddr,
    stopping: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl MetricsServer {
    /// Listens on `127.0.0.1:port` (0: a free port) and starts serving.
    pub fn start(port: u16, registry: Registry) -> io::Result<Self> {
        let server = tiny_http::Server::http(("127.0.0.1", port)).map_err(io::Error::other)?;
        let addr = server
            .server_addr()
            .to_ip()
            .ok_or_else(|| io::Error::other("not listening on an IP address"))?;
        let server = Arc::new(server);
        let stopping = Arc::new(AtomicBool::new(false));
        let thread = {
            let (server, stopping) = (server.clone(), stopping.clone());
            thread::Builder::new()
                .name("metrics-server".into())
                .spawn(move || loop {
                    match server.recv() {
                        Ok(request) => respond(request, &registry),
                        // `stop` unblocks `recv` with an error.
                        Err(_) if stopping.load(Ordering::SeqCst) => break,
                        Err(e) => eprintln!("metrics server: {e}"),
                    }
                })?
        };
        Ok(MetricsServer {
            server,
            addr,
            stopping,
            thread: Some(thread),
        })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Answers the requests already received, then stops.
    pub fn stop(mut self) {
        self.shut_down();
    }

    fn shut_down(&mut self) {
        if let Some(thread) = self.thread.take() {
            self.stopping.store(true, Ordering::SeqCst);
            self.server.unblock();
            let _ = thread.join();
        }
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.shut_down();
    }
}

fn respond(request: tiny_http::Request, registry: &Registry) {
    let path = request.url().split('?').next().unwrap_or("");
    let response = if *request.method() != tiny_http::Method::Get || path != "/metrics" {
        tiny_http::Response::from_string("not found: try GET /metrics\n").with_status_code(404)
    } else {
        let encoder = TextEncoder::new();
        let mut body = Vec::new();
        match encoder.encode(&registry.gather(), &mut body) {
            Ok(()) => {
                let content_type =
                    tiny_http::Header::from_bytes("Content-Type", encoder.format_type())
                        .expect("the text format's content type is a valid header");
                tiny_http::Response::from_data(body).with_header(content_type)
            }
            Err(e) => tiny_http::Response::from_string(format!("encoding failed: {e}\n"))
                .with_status_code(500)
                .with_header(
                    tiny_http::Header::from_bytes("Content-Type", "text/plain")
                        .expect("a valid header"),
                ),
        }
    };
    // The client may have gone; nothing to do about it.
    let _ = request.respond(response);
}

/// What the demo serves the metrics of: a group in front of a flaky
/// backend, and a cache in front of a slow one.
pub struct Demo {
    /// Named `backend`; one call in five fails.
    pub group: Group<u64, Result<String, String>>,
    /// Named `profiles`; at most 8 entries, so some are evicted.
    pub cache: TtlCache<u64, String>,
}

impl Demo {
    /// Makes the group and the cache, their metrics registered on
    /// `registry`.
    pub fn new(registry: &Registry) -> Result<Self, PrometheusError> {
        let group = Group::builder()
            .name("backend")
            .error_if(Result::is_err)
            .metrics(Arc::new(PrometheusMetrics::new(registry, "backend")?))
            .build();
        let cache = TtlCache::builder()
            .name("profiles")
            .ttl(Duration::from_secs(2))
            .max_entries(8)
            .metrics(Arc::new(PrometheusMetrics::new(registry, "profiles")?))
            .build()
            .expect("a valid cache configuration");
        Ok(Demo { group, cache })
    }

    /// One round of traffic: four threads ask the backend for one key and
    /// the cache for a few, at once.
    pub fn round(&self, round: u64) {
        thread::scope(|s| {
            for t in 0..4 {
                s.spawn(move || {
                    let _ = self.group.work(&(round % 3), || {
                        thread::sleep(Duration::from_millis(2));
                        if round % 5 == 4 {
                            Err("backend unavailable".to_string())
                        } else {
                            Ok(format!("row {round}"))
                        }
                    });
                    let key = (round + t) % 12;
                    self.cache.get_or_load(&key, || {
                        thread::sleep(Duration::from_millis(1));
                        format!("profile {key}")
                    });
                });
            }
        });
    }
}

#[allow(dead_code)] // `tests/metrics.rs` includes this file and runs the rest
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let port = match std::env::args()
        .nth(1)
        .or_else(|| std::env::var("METRICS_PORT").ok())
    {
        Some(port) => port
            .parse()
            .map_err(|e| format!("port `{port}`: {e} (expected 0-65535)"))?,
        None => 0,
    };
    let registry = Registry::new();
    let demo = Demo::new(&registry)?;
    let server = MetricsServer::start(port, registry)?;
    println!("serving metrics on http://{}/metrics", server.addr());
    let mut round = 0u64;
    loop {
        demo.round(round);
        round += 1;
        thread::sleep(Duration::from_millis(100));
    }
}
