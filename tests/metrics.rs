//! Metrics: exact `Stats` after a scripted run of a `Group` and a
//! `TtlCache`; with feature `prometheus`, the exact text exposition of the
//! same run, the registration rules, and the example's `/metrics` server
//! scraped over loopback.
//!
//! Ordering is by channels and by waiting until `waiters(key)` (and the
//! waiters gauge) show the followers, never by sleeping; every test runs
//! under a watchdog.

mod common;

use std::collections::hash_map::DefaultHasher;
use std::hash::BuildHasherDefault;
use std::sync::{mpsc, Arc};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use common::{panic_text, wait_for, watchdog};
use singleflight_sync::{Error, Flight, Group, LeaderPanicked, ManualClock, Stats, TtlCache};

const LIMIT: Duration = Duration::from_secs(60);
/// Value flights in the group script, and followers on each.
const FLIGHTS: u32 = 3;
const FOLLOWERS: usize = 2;

type Reply = Result<u32, String>;
/// A fixed hasher, so the cache's frequency sketch (which decides the one
/// eviction) counts the same way on every run.
type Fixed = BuildHasherDefault<DefaultHasher>;
type Cache = TtlCache<String, u32, Fixed>;
/// Reads `singleflight_waiters_current` for one group, when the run has a
/// registry to read it from.
type Gauge<'a> = &'a dyn Fn() -> Option<i64>;

fn no_gauge() -> Option<i64> {
    None
}

/// Waits until the gauge (if any) shows `n` waiters: each waiter reports
/// itself just after it joined, outside the group's locks.
fn wait_gauge(gauge: Gauge<'_>, n: i64) {
    if gauge().is_some() {
        wait_for("the waiters gauge", || gauge() == Some(n));
    }
}

/// The `f` side of a held flight: says it started, then waits to be let go.
struct Hold {
    started: mpsc::SyncSender<()>,
    go: mpsc::Receiver<()>,
}

impl Hold {
    fn wait(self) {
        self.started.send(()).unwrap();
        self.go
            .recv_timeout(LIMIT)
            .expect("the test lets the flight go");
    }
}

/// The test's side of a held flight.
struct Gate {
    started: mpsc::Receiver<()>,
    go: mpsc::SyncSender<()>,
}

impl Gate {
    fn started(&self) {
        self.started
            .recv_timeout(LIMIT)
            .expect("the flight's f started");
    }
    fn release(&self) {
        self.go.send(()).unwrap();
    }
}

fn gate() -> (Gate, Hold) {
    let (started_tx, started_rx) = mpsc::sync_channel(1);
    let (go_tx, go_rx) = mpsc::sync_channel(1);
    let gate = Gate {
        started: started_rx,
        go: go_tx,
    };
    (
        gate,
        Hold {
            started: started_tx,
            go: go_rx,
        },
    )
}

type Joined = thread::Result<Flight<Reply>>;

/// A group flight for `key` whose `f` (ending with `value`) is held until
/// `followers` callers wait on it; `release` lets it end and joins them all.
struct Held {
    gate: Gate,
    leader: JoinHandle<Flight<Reply>>,
    followers: Vec<JoinHandle<Flight<Reply>>>,
}

impl Held {
    fn start(
        group: &Arc<Group<String, Reply>>,
        key: &str,
        followers: usize,
        gauge: Gauge<'_>,
        value: impl FnOnce() -> Reply + Send + 'static,
    ) -> Held {
        let (gate, hold) = gate();
        let leader = {
            let (group, key) = (group.clone(), key.to_string());
            thread::spawn(move || {
                group.work_shared(&key, move || {
                    hold.wait();
                    value()
                })
            })
        };
        gate.started();
        let handles = (0..followers)
            .map(|_| {
                let (group, key) = (group.clone(), key.to_string());
                thread::spawn(move || group.work_shared(&key, || unreachable!("followers wait")))
            })
            .collect();
        wait_for("the followers to join", || group.waiters(key) == followers);
        wait_gauge(gauge, followers as i64);
        Held {
            gate,
            leader,
            followers: handles,
        }
    }

    fn release(self) -> (Joined, Vec<Joined>) {
        self.gate.release();
        let leader = self.leader.join();
        (
            leader,
            self.followers.into_iter().map(|f| f.join()).collect(),
        )
    }
}

/// N value flights with M followers each, one error, one panic, one
/// timeout, one solo call and one cancelled `do_chan`.
fn group_script(group: &Arc<Group<String, Reply>>, gauge: Gauge<'_>) {
    for i in 0..FLIGHTS {
        let key = format!("value-{i}");
        let (leader, followers) =
            Held::start(group, &key, FOLLOWERS, gauge, move || Ok(i)).release();
        let leader = leader.unwrap();
        assert_eq!(
            (leader.value, leader.leader, leader.shared),
            (Ok(i), true, true)
        );
        for f in followers {
            let f = f.unwrap();
            assert_eq!((f.value, f.leader, f.shared), (Ok(i), false, true));
        }
    }

    let (leader, followers) =
        Held::start(group, "error", 1, gauge, || Err("down".into())).release();
    assert_eq!(leader.unwrap().value, Err("down".to_string()));
    assert_eq!(
        followers[0].as_ref().unwrap().value,
        Err("down".to_string())
    );

    let (leader, followers) = Held::start(group, "panic", 1, gauge, || panic!("boom")).release();
    assert_eq!(panic_text(&*leader.unwrap_err()), "boom");
    for f in followers {
        let payload = f.unwrap_err();
        assert_eq!(
            payload.downcast_ref::<LeaderPanicked>().unwrap().message(),
            "boom"
        );
    }

    // A deadline caller joins a held inline flight and leaves at its
    // deadline; the flight goes on.
    let held = Held::start(group, "timeout", 0, gauge, || Ok(9));
    let late = group.work_timeout("timeout", Duration::from_millis(20), |_| -> Reply {
        unreachable!("the deadline caller joins the held flight")
    });
    assert!(matches!(late, Err(Error::Timeout)), "{late:?}");
    if let Some(n) = gauge() {
        assert_eq!(n, 0, "the timed-out caller no longer waits");
    }
    let (leader, _) = held.release();
    let leader = leader.unwrap();
    assert_eq!((leader.value, leader.shared), (Ok(9), true));

    let solo = group.work_shared("solo", || Ok(7));
    assert_eq!((solo.value, solo.leader, solo.shared), (Ok(7), true, false));

    let rx = group.do_chan("cancel", |token| {
        token.wait();
        Ok(0)
    });
    assert!(group.cancel("cancel"));
    let reply = rx.recv_timeout(LIMIT).unwrap();
    assert!(matches!(reply, Err(Error::Cancelled)), "{reply:?}");
    if let Some(n) = gauge() {
        assert_eq!(n, 0, "the cancelled receiver no longer waits");
    }
}

fn expected_group_stats() -> Stats {
    let n = u64::from(FLIGHTS);
    let m = FOLLOWERS as u64;
    let mut s = Stats::default();
    // value flights, error, panic, timeout (leader + deadline caller), solo, cancel
    s.calls = n * (1 + m) + 2 + 2 + 2 + 1 + 1;
    s.executions = n + 1 + 1 + 1 + 1 + 1;
    s.shared = n * m + 1 + 1 + 1;
    s.errors = 1;
    s.panics = 1;
    s.timeouts = 1;
    s.cancellations = 1;
    s
}

fn group_named(name: &'static str) -> Group<String, Reply> {
    Group::builder().name(name).error_if(Result::is_err).build()
}

/// TTL 60 s, refresh after 30 s, one entry, on a manual clock. Hits, a
/// stale hit and its refresh, misses, two evictions, one load error, one
/// load shared by M followers (stored in place of `b`), and
/// one expiry.
fn cache_script(cache: &Arc<Cache>, clock: &ManualClock, gauge: Gauge<'_>) {
    assert_eq!(cache.get_or_load("a", || 1), 1);
    assert_eq!(cache.get_or_load("a", || unreachable!("cached")), 1);
    assert_eq!(cache.get("a"), Some(1));

    clock.advance(Duration::from_secs(30));
    assert_eq!(cache.get_or_load("a", || 2), 2, "refreshed inline");

    // Asked for often enough that the sketch admits it over `a`.
    for _ in 0..10 {
        assert_eq!(cache.get("b"), None);
    }
    assert_eq!(cache.get_or_load("b", || 3), 3);
    assert_eq!(cache.get("a"), None, "evicted for `b`");

    let failed: Result<u32, std::sync::Arc<String>> =
        cache.try_get_or_load("c", || Err("down".into()));
    assert_eq!(failed, Err(std::sync::Arc::new("down".to_string())));

    let (gate, hold) = gate();
    let leader = {
        let cache = cache.clone();
        thread::spawn(move || {
            cache.get_or_load("d", move || {
                hold.wait();
                4
            })
        })
    };
    gate.started();
    let followers: Vec<_> = (0..FOLLOWERS)
        .map(|_| {
            let cache = cache.clone();
            thread::spawn(move || cache.get_or_load("d", || unreachable!("followers wait")))
        })
        .collect();
    wait_for("the followers to join", || cache.waiters("d") == FOLLOWERS);
    wait_gauge(gauge, FOLLOWERS as i64);
    gate.release();
    assert_eq!(leader.join().unwrap(), 4);
    for f in followers {
        assert_eq!(f.join().unwrap(), 4);
    }

    // Every new entry is stored: `d` took `b`'s place (the second eviction).
    clock.advance(Duration::from_secs(61));
    assert_eq!(cache.get("d"), None, "expired");
}

fn expected_cache_stats() -> Stats {
    let m = FOLLOWERS as u64;
    let mut s = Stats::default();
    // The load group: a, a's refresh, b, c (an error), d with M followers.
    s.calls = 4 + 1 + m;
    s.executions = 5;
    s.shared = m;
    s.errors = 1;
    s.hits = 2;
    s.stale_hits = 1;
    // a; b ten times and once more; a after its eviction; c; d and its
    // followers; d once expired
    s.misses = 1 + 11 + 1 + 1 + (1 + m) + 1;
    s.loads = 5;
    s.load_errors = 1;
    s.refreshes = 1;
    s.evictions = 2;
    s.expirations = 1;
    s
}

fn cache_named(name: &'static str, clock: &ManualClock) -> Cache {
    cache_builder(name, clock).build().unwrap()
}

fn cache_builder(
    name: &'static str,
    clock: &ManualClock,
) -> singleflight_sync::TtlCacheBuilder<String, u32, Fixed> {
    TtlCache::builder()
        .name(name)
        .ttl(Duration::from_secs(60))
        .refresh_after(Duration::from_secs(30))
        .max_entries(1)
        .clock(clock.clone())
        .hasher(Fixed::default())
}

#[test]
fn stats_after_a_scripted_run() {
    watchdog(LIMIT, || {
        let group = Arc::new(group_named("script"));
        group_script(&group, &no_gauge);
        assert_eq!(group.stats(), expected_group_stats());
        // The cancelled flight's runner leaves the map once its `f` has
        // seen the token; it reports nothing and counts nothing more.
        wait_for("the cancelled flight to end", || group.in_flight() == 0);
        assert_eq!(group.stats(), expected_group_stats());

        let clock = ManualClock::new();
        let cache = Arc::new(cache_named("cache", &clock));
        cache_script(&cache, &clock, &no_gauge);
        assert_eq!(cache.stats(), expected_cache_stats());
    });
}

#[cfg(feature = "prometheus")]
#[allow(dead_code)] // its `main` is the example's, not ours
#[path = "../examples/metrics_server.rs"]
mod metrics_server;

#[cfg(feature = "prometheus")]
mod prometheus_exposition {
    use super::*;

    use std::collections::BTreeMap;
    use std::io::{Read, Write};
    use std::net::{SocketAddr, TcpStream};

    use prometheus::{IntCounter, Registry, TextEncoder};
    use singleflight_sync::{PrometheusError, PrometheusMetrics};

    use super::metrics_server;

    /// A parsed text exposition: each family's type, and each sample's
    /// value under its name and sorted labels.
    #[derive(Debug, Default)]
    struct Exposition {
        types: BTreeMap<String, String>,
        samples: BTreeMap<String, f64>,
    }

    fn sample_key(name: &str, labels: &BTreeMap<String, String>) -> String {
        let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
        format!("{name}{{{}}}", labels.join(","))
    }

    impl Exposition {
        /// Parses the Prometheus text format (version 0.0.4).
        fn parse(text: &str) -> Exposition {
            let mut out = Exposition::default();
            for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
                if let Some(rest) = line.strip_prefix("# TYPE ") {
                    let (name, kind) = rest.split_once(' ').expect("# TYPE name type");
                    out.types.insert(name.into(), kind.into());
                    continue;
                }
                if line.starts_with('#') {
                    continue;
                }
                let (name, labels, rest) = parse_series(line);
                let value = rest.split_whitespace().next().expect("a sample value");
                let value: f64 = value.parse().unwrap_or_else(|e| panic!("{line}: {e}"));
                let key = sample_key(name, &labels);
                assert!(out.samples.insert(key, value).is_none(), "twice: {line}");
            }
            out
        }

        fn gather(registry: &Registry) -> Exposition {
            let text = TextEncoder::new()
                .encode_to_string(&registry.gather())
                .unwrap();
            Exposition::parse(&text)
        }

        fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
            let labels = labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            self.samples.get(&sample_key(name, &labels)).copied()
        }

        /// The sample's value; fails, listing the family's samples, if absent.
        fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
            self.get(name, labels).unwrap_or_else(|| {
                let family: Vec<_> = self
                    .samples
                    .keys()
                    .filter(|k| k.starts_with(name))
                    .collect();
                panic!("no sample {name} {labels:?}; the family has {family:#?}")
            })
        }

        /// The sum of a family's samples whose labels include `labels`.
        fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
            let prefix = format!("{name}{{");
            self.samples
                .iter()
                .filter(|(k, _)| k.starts_with(&prefix))
                .filter(|(k, _)| {
                    labels
                        .iter()
                        .all(|(l, v)| k.contains(&format!("{l}={v:?}")))
                })
                .map(|(_, v)| v)
                .sum()
        }
    }

    /// `name{a="x",b="y"} rest` into its name, labels and the rest.
    fn parse_series(line: &str) -> (&str, BTreeMap<String, String>, &str) {
        let end = line.find(['{', ' ']).expect("a name");
        let (name, mut rest) = line.split_at(end);
        let mut labels = BTreeMap::new();
        if let Some(mut s) = rest.strip_prefix('{') {
            loop {
                if let Some(after) = s.strip_prefix('}') {
                    rest = after;
                    break;
                }
                let (label, after) = s.split_once("=\"").expect("label=\"value\"");
                let mut value = String::new();
                let mut chars = after.char_indices();
                let close = loop {
                    match chars.next().expect("a closing quote") {
                        (i, '"') => break i,
                        (_, '\\') => match chars.next().expect("an escape").1 {
                            'n' => value.push('\n'),
                            c => value.push(c),
                        },
                        (_, c) => value.push(c),
                    }
                };
                labels.insert(label.trim_start_matches(',').to_string(), value);
                s = after[close + 1..].trim_start_matches(',');
            }
        }
        (name, labels, rest)
    }

    const CALLS: &str = "singleflight_calls_total";
    const DURATION_COUNT: &str = "singleflight_duration_seconds_count";
    const WAITERS: &str = "singleflight_waiters_current";
    const REQUESTS: &str = "singleflight_cache_requests_total";
    const EVICTIONS: &str = "singleflight_cache_evictions_total";
    const STATUSES: [&str; 5] = ["value", "error", "panic", "cancelled", "timeout"];

    fn gauge_of(registry: &Registry, group: &str) -> Option<i64> {
        Some(Exposition::gather(registry).value(WAITERS, &[("group", group)]) as i64)
    }

    /// Every `calls_total` series of `group`: those listed have these
    /// values, every other one is 0.
    fn assert_calls(exp: &Exposition, group: &str, expected: &[(&str, &str, f64)]) {
        for shared in ["false", "true"] {
            for status in STATUSES {
                let want = expected
                    .iter()
                    .find(|(sh, st, _)| *sh == shared && *st == status)
                    .map_or(0.0, |e| e.2);
                let labels = [("group", group), ("shared", shared), ("status", status)];
                assert_eq!(exp.value(CALLS, &labels), want, "{CALLS} {labels:?}");
            }
        }
    }

    /// Every `singleflight_*` sample is labelled by group name and by the
    /// adapter's own labels only: never by a key.
    fn assert_no_key_labels(exp: &Exposition, groups: &[&str]) {
        let allowed = ["group", "shared", "status", "result", "le"];
        for key in exp
            .samples
            .keys()
            .filter(|k| k.starts_with("singleflight_"))
        {
            let (_, labels, _) = parse_series(&format!("{key} 0"));
            assert!(
                labels.keys().all(|l| allowed.contains(&l.as_str())),
                "{key}"
            );
            assert!(groups.contains(&labels["group"].as_str()), "{key}");
        }
    }

    #[test]
    fn exposition_after_a_scripted_run() {
        watchdog(LIMIT, || {
            let registry = Registry::new();
            let group = Arc::new(
                Group::builder()
                    .name("script")
                    .error_if(Result::is_err)
                    .metrics(Arc::new(
                        PrometheusMetrics::new(&registry, "script").unwrap(),
                    ))
                    .build(),
            );
            let clock = ManualClock::new();
            let cache: Arc<Cache> = Arc::new(
                cache_builder("cache", &clock)
                    .metrics(Arc::new(
                        PrometheusMetrics::new(&registry, "cache").unwrap(),
                    ))
                    .build()
                    .unwrap(),
            );

            group_script(&group, &|| gauge_of(&registry, "script"));
            cache_script(&cache, &clock, &|| gauge_of(&registry, "cache"));

            assert_eq!(group.stats(), expected_group_stats());
            assert_eq!(cache.stats(), expected_cache_stats());

            let exp = Exposition::gather(&registry);
            let types = [
                (CALLS, "counter"),
                ("singleflight_duration_seconds", "histogram"),
                (WAITERS, "gauge"),
                (REQUESTS, "counter"),
                (EVICTIONS, "counter"),
            ];
            for (family, kind) in types {
                assert_eq!(exp.types.get(family).map(String::as_str), Some(kind));
            }
            assert_no_key_labels(&exp, &["script", "cache"]);

            // The group: every call by how it ended, every flight that ran
            // observed once, nobody left waiting, no cache traffic.
            let n = f64::from(FLIGHTS);
            let m = FOLLOWERS as f64;
            assert_calls(
                &exp,
                "script",
                &[
                    ("true", "value", n * (1.0 + m) + 1.0),
                    ("false", "value", 1.0),
                    ("true", "error", 2.0),
                    ("true", "panic", 2.0),
                    ("true", "timeout", 1.0),
                    ("false", "cancelled", 1.0),
                ],
            );
            let stats = group.stats();
            assert_eq!(exp.sum(CALLS, &[("group", "script")]), stats.calls as f64);
            let observed =
                |group, shared| exp.value(DURATION_COUNT, &[("group", group), ("shared", shared)]);
            assert_eq!(observed("script", "true"), n + 3.0);
            assert_eq!(
                observed("script", "false"),
                1.0,
                "solo; not the cancelled one"
            );
            assert_eq!(
                exp.sum(DURATION_COUNT, &[("group", "script")]),
                (stats.executions - stats.cancellations) as f64
            );
            for shared in ["false", "true"] {
                let labels = [("group", "script"), ("shared", shared), ("le", "+Inf")];
                let inf = exp.value("singleflight_duration_seconds_bucket", &labels);
                assert_eq!(inf, observed("script", shared));
            }
            assert!(
                exp.value(
                    "singleflight_duration_seconds_sum",
                    &[("group", "script"), ("shared", "true")]
                ) > 0.0
            );
            assert_eq!(exp.value(WAITERS, &[("group", "script")]), 0.0);
            for result in ["hit", "stale", "miss"] {
                let labels = [("group", "script"), ("result", result)];
                assert_eq!(exp.value(REQUESTS, &labels), 0.0);
            }
            assert_eq!(exp.value(EVICTIONS, &[("group", "script")]), 0.0);

            // The cache: its lookups, its two evictions, its loads' flights.
            let stats = cache.stats();
            let requests = |result| exp.value(REQUESTS, &[("group", "cache"), ("result", result)]);
            assert_eq!(requests("hit"), 2.0);
            assert_eq!(requests("stale"), 1.0);
            assert_eq!(requests("miss"), 18.0);
            assert_eq!(requests("hit"), stats.hits as f64);
            assert_eq!(requests("stale"), stats.stale_hits as f64);
            assert_eq!(requests("miss"), stats.misses as f64);
            assert_eq!(exp.value(EVICTIONS, &[("group", "cache")]), 2.0);
            assert_calls(
                &exp,
                "cache",
                &[
                    ("false", "value", 3.0),
                    ("false", "error", 1.0),
                    ("true", "value", 1.0 + m),
                ],
            );
            assert_eq!(exp.sum(CALLS, &[("group", "cache")]), stats.calls as f64);
            assert_eq!(observed("cache", "false"), 4.0);
            assert_eq!(observed("cache", "true"), 1.0);
            assert_eq!(exp.value(WAITERS, &[("group", "cache")]), 0.0);
        });
    }

    #[test]
    fn two_names_share_a_registry_and_a_name_twice_is_an_error() {
        let registry = Registry::new();
        let users = Arc::new(PrometheusMetrics::new(&registry, "users").unwrap());
        let orders = Arc::new(PrometheusMetrics::new(&registry, "orders").unwrap());
        assert_eq!((users.group(), orders.group()), ("users", "orders"));

        let again = PrometheusMetrics::new(&registry, "users").unwrap_err();
        assert!(
            matches!(again, PrometheusError::DuplicateGroup("users")),
            "{again:?}"
        );
        let message = again.to_string();
        assert!(
            message.contains("`users`") && message.contains("already registered"),
            "{message}"
        );

        // The refusal changed nothing: both groups report, separately.
        let users_group: Group<String, u32> = Group::builder().name("users").metrics(users).build();
        let orders_group: Group<String, u32> =
            Group::builder().name("orders").metrics(orders).build();
        users_group.work("u", || 1);
        users_group.work("u", || 1);
        orders_group.work("o", || 2);
        let exp = Exposition::gather(&registry);
        let calls = |group| {
            exp.value(
                CALLS,
                &[("group", group), ("shared", "false"), ("status", "value")],
            )
        };
        assert_eq!((calls("users"), calls("orders")), (2.0, 1.0));
        assert_no_key_labels(&exp, &["users", "orders"]);
    }

    #[test]
    fn a_clashing_family_or_bad_buckets_register_nothing() {
        let registry = Registry::new();
        let theirs = IntCounter::new(EVICTIONS, "someone else's counter").unwrap();
        registry.register(Box::new(theirs)).unwrap();
        let clash = PrometheusMetrics::new(&registry, "users").unwrap_err();
        assert!(matches!(clash, PrometheusError::Registry(_)), "{clash:?}");
        assert!(std::error::Error::source(&clash).is_some());
        let families: Vec<_> = registry
            .gather()
            .iter()
            .map(|f| f.name().to_string())
            .collect();
        assert_eq!(families, [EVICTIONS]);

        let registry = Registry::new();
        let bad = PrometheusMetrics::with_buckets(&registry, "users", vec![1.0, 0.5]).unwrap_err();
        assert!(matches!(bad, PrometheusError::Registry(_)), "{bad:?}");
        assert!(registry.gather().is_empty());
        PrometheusMetrics::with_buckets(&registry, "users", vec![0.5, 1.0]).unwrap();
    }

    /// `FlightEnd::waiters` tells an inline flight's leader (a caller that
    /// never waited) from a detached flight's first caller (a waiter).
    #[test]
    fn the_waiters_gauge_returns_to_zero_after_detached_flights() {
        watchdog(LIMIT, || {
            let registry = Registry::new();
            let metrics = Arc::new(PrometheusMetrics::new(&registry, "detached").unwrap());
            let group: Group<String, u32> = Group::builder()
                .name("detached")
                .metrics(metrics.clone())
                .build();
            let refusing: Group<String, u32> = Group::builder()
                .name("detached")
                .metrics(metrics)
                .spawner(|_job| Err(std::io::Error::other("no threads today")))
                .build();

            // A detached flight's first caller waits like any other.
            assert_eq!(group.work_timeout("a", LIMIT, |_| 1).unwrap().value, 1);

            // A `do_chan` receiver, and a `work` caller that joins its flight.
            let (gate, hold) = gate();
            let rx = group.do_chan("b", move |_| {
                hold.wait();
                2
            });
            gate.started();
            thread::scope(|s| {
                let follower = s.spawn(|| group.work("b", || unreachable!("joins")));
                wait_for("the follower to join", || group.waiters("b") == 2);
                wait_gauge(&|| gauge_of(&registry, "detached"), 2);
                gate.release();
                assert_eq!(rx.recv_timeout(LIMIT).unwrap().unwrap().value, 2);
                assert_eq!(follower.join().unwrap(), 2);
            });

            // A flight the spawner refuses ends as an error for its caller.
            let refused = refusing.work_timeout("c", LIMIT, |_| 3);
            assert!(matches!(refused, Err(Error::Spawn(_))), "{refused:?}");

            // A runner reports after it has answered: wait for the reports.
            let reported =
                || Exposition::gather(&registry).sum(DURATION_COUNT, &[("group", "detached")]);
            wait_for("every flight's report", || reported() == 3.0);
            let exp = Exposition::gather(&registry);
            assert_eq!(exp.value(WAITERS, &[("group", "detached")]), 0.0);
            assert_calls(
                &exp,
                "detached",
                &[
                    ("false", "value", 1.0),
                    ("true", "value", 2.0),
                    ("false", "error", 1.0),
                ],
            );
        });
    }

    /// GETs `path` over a fresh connection; the status, the headers
    /// (lowercased names) and the body.
    fn http_get(addr: SocketAddr, path: &str) -> (u16, BTreeMap<String, String>, String) {
        let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream
            .set_write_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut raw = Vec::new();
        let mut buf = [0; 4096];
        let (head_len, headers, status) = loop {
            let n = stream.read(&mut buf).unwrap();
            assert!(n > 0, "the connection closed before the headers ended");
            raw.extend_from_slice(&buf[..n]);
            if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = std::str::from_utf8(&raw[..end]).unwrap();
                let mut lines = head.split("\r\n");
                let status_line = lines.next().unwrap();
                let status = status_line.split(' ').nth(1).unwrap().parse().unwrap();
                let headers: BTreeMap<_, _> = lines
                    .map(|l| l.split_once(':').expect("name: value"))
                    .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
                    .collect();
                break (end + 4, headers, status);
            }
        };
        let length: usize = headers["content-length"].parse().unwrap();
        while raw.len() < head_len + length {
            let n = stream.read(&mut buf).unwrap();
            assert!(n > 0, "the connection closed before the body ended");
            raw.extend_from_slice(&buf[..n]);
        }
        let body = String::from_utf8(raw[head_len..head_len + length].to_vec()).unwrap();
        (status, headers, body)
    }

    #[test]
    fn the_example_server_serves_the_exposition_over_loopback() {
        watchdog(LIMIT, || {
            let registry = Registry::new();
            let demo = metrics_server::Demo::new(&registry).unwrap();
            for round in 0..10 {
                demo.round(round);
            }
            let server = metrics_server::MetricsServer::start(0, registry).unwrap();
            let addr = server.addr();
            assert!(addr.ip().is_loopback() && addr.port() != 0, "{addr}");

            let (status, headers, body) = http_get(addr, "/metrics");
            assert_eq!(status, 200, "{body}");
            assert!(
                headers["content-type"].starts_with("text/plain; version=0.0.4"),
                "{headers:?}"
            );
            let exp = Exposition::parse(&body);
            assert_no_key_labels(&exp, &["backend", "profiles"]);
            for family in [
                CALLS,
                "singleflight_duration_seconds",
                WAITERS,
                REQUESTS,
                EVICTIONS,
            ] {
                assert!(
                    exp.types.contains_key(family),
                    "{family} missing from {body}"
                );
            }

            // Ten rounds of four calls; rounds 4 and 9 fail.
            let stats = demo.group.stats();
            let backend = [("group", "backend")];
            assert_eq!(exp.sum(CALLS, &backend), 40.0);
            assert_eq!(stats.calls, 40);
            assert_eq!(
                exp.sum(CALLS, &[("group", "backend"), ("status", "error")]),
                8.0
            );
            assert_eq!(
                exp.sum(CALLS, &[("group", "backend"), ("status", "value")]),
                32.0
            );
            assert_eq!(exp.sum(DURATION_COUNT, &backend), stats.executions as f64);
            assert_eq!(exp.value(WAITERS, &backend), 0.0);

            let stats = demo.cache.stats();
            let requests =
                |result| exp.value(REQUESTS, &[("group", "profiles"), ("result", result)]);
            assert_eq!(requests("hit") + requests("stale") + requests("miss"), 40.0);
            assert_eq!(requests("hit"), stats.hits as f64);
            assert_eq!(requests("stale"), stats.stale_hits as f64);
            assert_eq!(requests("miss"), stats.misses as f64);
            let profiles = [("group", "profiles")];
            assert_eq!(exp.value(EVICTIONS, &profiles), stats.evictions as f64);
            assert_eq!(exp.sum(CALLS, &profiles), stats.calls as f64);
            assert_eq!(exp.sum(DURATION_COUNT, &profiles), stats.executions as f64);
            assert_eq!(exp.value(WAITERS, &profiles), 0.0);

            let (status, _, _) = http_get(addr, "/elsewhere");
            assert_eq!(status, 404);
            server.stop();
        });
    }
}
