//! A stampede on a slow backend, served four ways, with real numbers.
//!
//! Worker threads ask a simulated backend for keys drawn from a Zipf
//! distribution, for a fixed time. Each backend call sleeps its latency and
//! counts how many calls are running at once. The same load runs in four
//! modes, one after another:
//!
//! - `none`: no coalescing; every request is a backend call;
//! - `group`: `Group::work`; concurrent requests for a key share one call;
//! - `cache`: `TtlCache::get_or_load`; a loaded value also serves the
//!   requests that come after it, until its TTL ends;
//! - `swr`: `TtlCache::get_or_load_detached` with `refresh_after`
//!   (stale-while-revalidate); an entry is refreshed in the background before
//!   it expires, and nobody waits for the refresh;
//! - `fail-safe`: the same with `fail_safe`: when a load fails, the expired
//!   value answers instead, and the backend is tried again after a throttle.
//!
//! Then one table: requests served, errors returned, backend calls, calls
//! saved, the backend's peak concurrency, latency percentiles and throughput.
//!
//! `--outage-ms N` takes the backend down for N ms, a third of the way into
//! each mode: every call then fails (after its latency). `--plot FILE.svg`
//! draws, per 50 ms, the backend calls in flight and the errors returned, one
//! line per mode.
//!
//! Run: `cargo run --release --example stampede` (`-- --help` for the flags).
//! The key sequence each worker draws is fixed by `--seed`; the counts that
//! depend on timing vary from run to run.
//!
//! `tests/stampede.rs` includes this file as a module and runs its core at a
//! small size, so everything but `main` and the flags is plain functions.

use std::fmt::Write as _;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use clap::error::ErrorKind;
use clap::{CommandFactory, Parser, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use singleflight_sync::{Group, TtlCache, DEFAULT_MAX_ENTRIES};

/// One run's settings, the same for every mode.
#[derive(Clone, Debug)]
pub struct Config {
    /// Worker threads, each issuing one request at a time.
    pub threads: usize,
    /// Distinct keys; key `k` (from 0) is asked for with weight `1/(k+1)^zipf`.
    pub keys: usize,
    /// The Zipf exponent: 0 is uniform, larger is more skewed.
    pub zipf: f64,
    /// How long each backend call sleeps.
    pub latency: Duration,
    /// How long each mode runs.
    pub duration: Duration,
    /// The cache modes' TTL.
    pub ttl: Duration,
    /// The `swr` mode's `refresh_after` (below `ttl`).
    pub refresh_after: Duration,
    /// Fixes the key sequence each worker draws.
    pub seed: u64,
    /// How long the backend is down, starting a third of the way into each
    /// mode (none: never).
    pub outage: Option<Duration>,
    /// The `fail-safe` mode's throttle: a key's backend is tried at most once
    /// per this long while it fails.
    pub throttle: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            threads: 64,
            keys: 1_000,
            zipf: 0.99,
            latency: Duration::from_millis(20),
            duration: Duration::from_secs(3),
            ttl: Duration::from_secs(1),
            refresh_after: Duration::from_millis(750),
            seed: 42,
            outage: None,
            throttle: Duration::from_millis(250),
        }
    }
}

impl Config {
    /// Why this configuration cannot run, if it cannot.
    pub fn check(&self) -> Result<(), String> {
        if self.threads == 0 || self.keys == 0 {
            return Err("threads and keys must be at least 1".into());
        }
        if !self.zipf.is_finite() || self.zipf < 0.0 {
            return Err(format!("zipf {} must be a number >= 0", self.zipf));
        }
        if self.duration.is_zero() || self.ttl.is_zero() {
            return Err("the duration and the TTL must be above zero".into());
        }
        if self.throttle.is_zero() {
            return Err("the fail-safe throttle must be above zero".into());
        }
        if self.refresh_after.is_zero() || self.refresh_after >= self.ttl {
            return Err(format!(
                "refresh after {:?} must be above zero and below the TTL ({:?})",
                self.refresh_after, self.ttl
            ));
        }
        Ok(())
    }
}

/// How requests reach the backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// Every request is a backend call.
    None,
    /// `Group::work`: concurrent requests for a key share one call.
    Group,
    /// `TtlCache::get_or_load`: values are kept for the TTL.
    Cache,
    /// `TtlCache::get_or_load_detached` with `refresh_after`.
    Swr,
    /// The same with `fail_safe`.
    FailSafe,
}

impl Mode {
    /// Every mode, in the order the example runs them.
    pub const ALL: [Mode; 5] = [
        Mode::None,
        Mode::Group,
        Mode::Cache,
        Mode::Swr,
        Mode::FailSafe,
    ];

    /// The mode's name in the table.
    pub fn label(self) -> &'static str {
        match self {
            Mode::None => "no coalescing",
            Mode::Group => "Group::work",
            Mode::Cache => "TtlCache",
            Mode::Swr => "TtlCache + SWR",
            Mode::FailSafe => "+ fail-safe",
        }
    }
}

/// The slow thing everyone wants: counts its calls and its peak concurrency,
/// overall and per 50 ms of its [`Timeline`], and fails during its outage.
#[derive(Debug)]
pub struct Backend {
    latency: Duration,
    calls: AtomicU64,
    running: AtomicUsize,
    peak: AtomicUsize,
    /// When the backend is down, if ever.
    outage: Option<(Instant, Instant)>,
    timeline: Timeline,
}

impl Backend {
    /// A backend whose every call takes `latency`.
    pub fn new(latency: Duration) -> Self {
        Backend::with_outage(latency, None, Timeline::new(Instant::now(), Duration::ZERO))
    }

    /// A backend that fails every call that starts within `outage`, and
    /// records its concurrency on `timeline`.
    pub fn with_outage(
        latency: Duration,
        outage: Option<(Instant, Instant)>,
        timeline: Timeline,
    ) -> Self {
        Backend {
            latency,
            calls: AtomicU64::new(0),
            running: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            outage,
            timeline,
        }
    }

    /// Sleeps the latency and answers [`value_of`]`(key)`.
    ///
    /// # Errors
    ///
    /// During the outage, after the same latency.
    pub fn fetch(&self, key: u64) -> Result<u64, String> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let begin = Instant::now();
        // Read-modify-writes of one atomic are totally ordered even when
        // relaxed, so `now` is the exact number running after this one began.
        let now = self.running.fetch_add(1, Ordering::Relaxed) + 1;
        self.peak.fetch_max(now, Ordering::Relaxed);
        self.timeline.in_flight(begin, now as u64);
        thread::sleep(self.latency);
        self.running.fetch_sub(1, Ordering::Relaxed);
        match self.outage {
            Some((from, until)) if (from..until).contains(&begin) => {
                Err(format!("backend down ({key})"))
            }
            _ => Ok(value_of(key)),
        }
    }

    /// The backend's timeline.
    pub fn timeline(&self) -> &Timeline {
        &self.timeline
    }

    /// Calls made so far.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// The most calls that were running at once.
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::Relaxed)
    }
}

/// The backend's answer for `key`, so a worker can check what it was served.
pub fn value_of(key: u64) -> u64 {
    key.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5EED
}

/// What a mode did per 50 ms: the most backend calls in flight and the
/// errors returned to callers.
#[derive(Debug)]
pub struct Timeline {
    start: Instant,
    peak: Vec<AtomicU64>,
    errors: Vec<AtomicU64>,
}

/// The [`Timeline`]'s step.
pub const STEP: Duration = Duration::from_millis(50);

impl Timeline {
    /// Room for `span` (and a second more, for refreshes that end late).
    pub fn new(start: Instant, span: Duration) -> Self {
        let steps = ((span + Duration::from_secs(1)).as_millis() / STEP.as_millis()) as usize + 1;
        Timeline {
            start,
            peak: (0..steps).map(|_| AtomicU64::new(0)).collect(),
            errors: (0..steps).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    fn step(&self, at: Instant) -> Option<usize> {
        let i = (at.saturating_duration_since(self.start).as_millis() / STEP.as_millis()) as usize;
        (i < self.peak.len()).then_some(i)
    }

    fn in_flight(&self, at: Instant, running: u64) {
        if let Some(i) = self.step(at) {
            self.peak[i].fetch_max(running, Ordering::Relaxed);
        }
    }

    fn error(&self, at: Instant) {
        if let Some(i) = self.step(at) {
            self.errors[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Per step: the most backend calls in flight, and the errors returned.
    pub fn steps(&self) -> Vec<(u64, u64)> {
        self.peak
            .iter()
            .zip(&self.errors)
            .map(|(p, e)| (p.load(Ordering::Relaxed), e.load(Ordering::Relaxed)))
            .collect()
    }
}

/// Draws key `k` in `0..keys` with probability proportional to
/// `1/(k+1)^exponent`, by inverting the cumulative distribution.
#[derive(Clone, Debug)]
pub struct Zipf {
    /// Shared, so that each worker's copy costs nothing.
    cdf: Arc<[f64]>,
}

impl Zipf {
    /// The distribution over `keys` keys (at least 1).
    pub fn new(keys: usize, exponent: f64) -> Self {
        assert!(keys > 0, "Zipf::new: no keys");
        let mut total = 0.0;
        let mut cdf: Vec<f64> = (1..=keys)
            .map(|rank| {
                total += (rank as f64).powf(-exponent);
                total
            })
            .collect();
        for c in &mut cdf {
            *c /= total;
        }
        // Rounding must not leave a gap above the last key.
        cdf[keys - 1] = 1.0;
        Zipf { cdf: cdf.into() }
    }

    /// One key.
    pub fn sample(&self, rng: &mut impl Rng) -> u64 {
        let u: f64 = rng.gen();
        self.cdf.partition_point(|&c| c <= u) as u64
    }
}

/// The endless key sequence worker `worker` draws: a function of the seed
/// and the worker's index only.
pub fn keys_for(config: &Config, zipf: &Zipf, worker: usize) -> impl Iterator<Item = u64> {
    let stream = (worker as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut rng = StdRng::seed_from_u64(config.seed ^ stream);
    let zipf = zipf.clone();
    std::iter::repeat_with(move || zipf.sample(&mut rng))
}

/// A latency histogram: exact below 32 ns, then 32 buckets per power of two
/// (within about 3%), so a worker can record millions of requests in a
/// fixed 16 KiB.
#[derive(Clone, Debug)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max: u64,
}

const SUB_BITS: u32 = 5;

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; 64 << SUB_BITS],
            total: 0,
            max: 0,
        }
    }
}

impl Histogram {
    fn index(ns: u64) -> usize {
        if ns < 1 << SUB_BITS {
            return ns as usize;
        }
        let exp = 63 - ns.leading_zeros();
        let mantissa = (ns >> (exp - SUB_BITS)) & ((1 << SUB_BITS) - 1);
        (((exp - SUB_BITS + 1) as usize) << SUB_BITS) | mantissa as usize
    }

    /// The middle of bucket `index`.
    fn middle(index: usize) -> u64 {
        let group = index >> SUB_BITS;
        if group == 0 {
            return index as u64;
        }
        let mantissa = (index & ((1 << SUB_BITS) - 1)) as u64;
        let width = 1u64 << (group - 1);
        (((1 << SUB_BITS) + mantissa) << (group - 1)) + width / 2
    }

    /// Adds one observation.
    pub fn record(&mut self, took: Duration) {
        let ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.counts[Self::index(ns)] += 1;
        self.total += 1;
        self.max = self.max.max(ns);
    }

    /// Adds another histogram's observations.
    pub fn merge(&mut self, other: &Histogram) {
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine += theirs;
        }
        self.total += other.total;
        self.max = self.max.max(other.max);
    }

    /// How many observations.
    pub fn len(&self) -> u64 {
        self.total
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// The `q` quantile (0.5 for the median), never above the maximum.
    pub fn quantile(&self, q: f64) -> Duration {
        let rank = ((q * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (index, &count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Duration::from_nanos(Self::middle(index).min(self.max));
            }
        }
        self.max()
    }

    /// The largest observation.
    pub fn max(&self) -> Duration {
        Duration::from_nanos(self.max)
    }
}

/// One mode's results.
#[derive(Clone, Debug)]
pub struct Report {
    /// The mode that ran.
    pub mode: Mode,
    /// Requests started.
    pub issued: u64,
    /// Requests answered with the right value.
    pub served: u64,
    /// Requests answered with an error (the backend's, during an outage).
    pub errors: u64,
    /// Calls that reached the backend, background refreshes included.
    pub backend_calls: u64,
    /// The most backend calls running at once.
    pub peak_concurrency: usize,
    /// Every request's latency.
    pub latency: Histogram,
    /// From the start until the last worker finished its last request.
    pub elapsed: Duration,
    /// Per 50 ms: the most backend calls in flight, and the errors returned.
    pub timeline: Vec<(u64, u64)>,
}

impl Report {
    /// The share of requests answered without a backend call of their own,
    /// in percent.
    pub fn saved_percent(&self) -> f64 {
        if self.issued == 0 {
            return 0.0;
        }
        100.0 * (1.0 - self.backend_calls as f64 / self.issued as f64)
    }

    /// Requests served per second.
    pub fn throughput(&self) -> f64 {
        self.served as f64 / self.elapsed.as_secs_f64()
    }
}

/// What a run shows while it goes on.
#[derive(Clone, Copy, Debug)]
pub struct Progress {
    /// Time since the mode started.
    pub elapsed: Duration,
    /// Requests served so far.
    pub served: u64,
    /// Backend calls so far.
    pub backend_calls: u64,
}

/// The error every caller of a failed flight shares.
type Failure = Arc<String>;

/// What the workers call, per mode.
enum Service {
    None,
    Group(Group<u64, Result<u64, Failure>>),
    Cache(TtlCache<u64, u64>),
    Swr(TtlCache<u64, u64>),
}

impl Service {
    fn new(config: &Config, mode: Mode) -> Self {
        // Room for every key with a margin, since the bound is split among
        // shards: an eviction would be a backend call no mode asked for.
        let room = config.keys.saturating_mul(4).max(DEFAULT_MAX_ENTRIES);
        let cache = TtlCache::builder().ttl(config.ttl).max_entries(room);
        match mode {
            Mode::None => Service::None,
            Mode::Group => Service::Group(Group::new()),
            Mode::Cache => Service::Cache(cache.build().expect("checked by Config::check")),
            Mode::Swr => Service::Swr(
                cache
                    .refresh_after(config.refresh_after)
                    .build()
                    .expect("checked by Config::check"),
            ),
            Mode::FailSafe => Service::Swr(
                cache
                    .refresh_after(config.refresh_after)
                    .fail_safe(Duration::from_secs(3600))
                    .fail_safe_throttle(config.throttle)
                    .build()
                    .expect("checked by Config::check"),
            ),
        }
    }

    fn get(&self, handle: &Arc<Handle>, key: u64) -> Result<u64, Failure> {
        let backend = &handle.0;
        match self {
            Service::None => backend.fetch(key).map_err(Arc::new),
            Service::Group(group) => group.try_work(&key, || backend.fetch(key)),
            Service::Cache(cache) => cache.try_get_or_load(&key, || backend.fetch(key)),
            Service::Swr(cache) => {
                let handle = Arc::clone(handle);
                cache.try_get_or_load_detached(&key, move |_| handle.0.fetch(key))
            }
        }
    }
}

/// A worker's own handle on the shared backend. A detached refresh needs an
/// owned one, made on every request; cloning this touches a reference count
/// no other worker writes, where cloning the shared `Arc<Backend>` would
/// bounce one cache line between every core on every hit.
struct Handle(Arc<Backend>);

/// A worker's running count of served requests, on a cache line of its own
/// so the progress line costs the workers no shared write.
#[repr(align(128))]
#[derive(Default)]
struct LiveCount(AtomicU64);

#[derive(Default)]
struct Tally {
    issued: u64,
    served: u64,
    errors: u64,
    latency: Histogram,
}

fn worker(
    service: &Service,
    handle: Arc<Handle>,
    keys: impl Iterator<Item = u64>,
    stop: Instant,
    live: &LiveCount,
) -> Tally {
    let mut tally = Tally::default();
    for key in keys {
        let begin = Instant::now();
        if begin >= stop {
            break;
        }
        tally.issued += 1;
        let value = service.get(&handle, key);
        tally.latency.record(begin.elapsed());
        match value {
            Ok(v) if v == value_of(key) => tally.served += 1,
            Ok(_) => {}
            Err(_) => {
                tally.errors += 1;
                handle.0.timeline().error(Instant::now());
            }
        }
        live.0.store(tally.served, Ordering::Relaxed);
    }
    tally
}

/// Runs `mode` under `config`'s load and reports on it.
///
/// # Panics
///
/// If `config` fails [`Config::check`].
pub fn run_mode(config: &Config, mode: Mode) -> Report {
    run_mode_watched(config, mode, |_| {})
}

/// [`run_mode`], calling `watch` about ten times a second while it runs.
///
/// # Panics
///
/// If `config` fails [`Config::check`].
pub fn run_mode_watched(config: &Config, mode: Mode, mut watch: impl FnMut(Progress)) -> Report {
    if let Err(why) = config.check() {
        panic!("stampede: {why}");
    }
    let zipf = Zipf::new(config.keys, config.zipf);
    let service = Service::new(config, mode);
    let live: Vec<LiveCount> = (0..config.threads).map(|_| LiveCount::default()).collect();
    let start = Instant::now();
    let stop = start + config.duration;
    let outage = config.outage.map(|d| {
        let from = start + config.duration / 3;
        (from, from + d)
    });
    let timeline = Timeline::new(start, config.duration);
    let backend = Arc::new(Backend::with_outage(config.latency, outage, timeline));
    let (tallies, elapsed) = thread::scope(|s| {
        let workers: Vec<_> = (0..config.threads)
            .map(|w| {
                let handle = Arc::new(Handle(Arc::clone(&backend)));
                let (service, keys, live) = (&service, keys_for(config, &zipf, w), &live[w]);
                s.spawn(move || worker(service, handle, keys, stop, live))
            })
            .collect();
        loop {
            let now = Instant::now();
            if now >= stop {
                break;
            }
            thread::sleep((stop - now).min(Duration::from_millis(100)));
            watch(Progress {
                elapsed: start.elapsed().min(config.duration),
                served: live.iter().map(|l| l.0.load(Ordering::Relaxed)).sum(),
                backend_calls: backend.calls(),
            });
        }
        let tallies: Vec<Tally> = workers
            .into_iter()
            .map(|w| w.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect();
        (tallies, start.elapsed())
    });
    // A cache's drop waits for its background refreshes, so they are counted.
    drop(service);
    let mut latency = Histogram::default();
    for t in &tallies {
        latency.merge(&t.latency);
    }
    Report {
        mode,
        issued: tallies.iter().map(|t| t.issued).sum(),
        served: tallies.iter().map(|t| t.served).sum(),
        errors: tallies.iter().map(|t| t.errors).sum(),
        backend_calls: backend.calls(),
        peak_concurrency: backend.peak(),
        latency,
        elapsed,
        timeline: backend.timeline().steps(),
    }
}

/// `1234567` as `1,234,567`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(d);
    }
    out
}

fn duration(d: Duration) -> String {
    let ns = d.as_nanos() as f64;
    match ns {
        _ if ns < 1e3 => format!("{ns:.0} ns"),
        _ if ns < 1e6 => format!("{:.1} µs", ns / 1e3),
        _ if ns < 1e9 => format!("{:.1} ms", ns / 1e6),
        _ => format!("{:.2} s", ns / 1e9),
    }
}

fn rate(per_sec: f64) -> String {
    match per_sec {
        _ if per_sec < 1e3 => format!("{per_sec:.0}/s"),
        _ if per_sec < 1e6 => format!("{:.1}k/s", per_sec / 1e3),
        _ => format!("{:.2}M/s", per_sec / 1e6),
    }
}

/// The results table, one row per report.
pub fn table(reports: &[Report]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<14}  {:>10}  {:>8}  {:>13}  {:>11}  {:>12}  {:>8}  {:>8}  {:>8}  {:>10}",
        "mode",
        "requests",
        "errors",
        "backend calls",
        "calls saved",
        "peak backend",
        "p50",
        "p99",
        "max",
        "throughput"
    );
    for r in reports {
        // Truncated, not rounded: 100.00% only when no call was made.
        let saved = (r.saved_percent() * 100.0).floor() / 100.0;
        let _ = writeln!(
            out,
            "{:<14}  {:>10}  {:>8}  {:>13}  {:>10.2}%  {:>12}  {:>8}  {:>8}  {:>8}  {:>10}",
            r.mode.label(),
            thousands(r.issued),
            thousands(r.errors),
            thousands(r.backend_calls),
            saved,
            r.peak_concurrency,
            duration(r.latency.quantile(0.50)),
            duration(r.latency.quantile(0.99)),
            duration(r.latency.max()),
            rate(r.throughput()),
        );
    }
    out
}

/// Draws each report's timeline into an SVG file: backend calls in flight
/// above, errors returned below, per 50 ms, one line per mode.
///
/// # Errors
///
/// If the file cannot be written.
pub fn plot(reports: &[Report], path: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
    use plotters::prelude::*;
    let root = SVGBackend::new(path, (960, 640)).into_drawing_area();
    root.fill(&WHITE)?;
    let (top, bottom) = root.split_vertically(320);
    let steps = reports.iter().map(|r| r.timeline.len()).max().unwrap_or(1);
    let secs = steps as f64 * STEP.as_secs_f64();
    let colors = [RED, BLUE, GREEN, MAGENTA, BLACK, CYAN];
    let charts = [
        (top, "backend calls in flight (most per 50 ms)", 0usize),
        (bottom, "errors returned to callers (per 50 ms)", 1usize),
    ];
    for (area, title, which) in charts {
        let pick = |s: &(u64, u64)| if which == 0 { s.0 } else { s.1 };
        let high = reports
            .iter()
            .flat_map(|r| r.timeline.iter().map(pick))
            .max()
            .unwrap_or(0)
            .max(1);
        let mut chart = ChartBuilder::on(&area)
            .caption(title, ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..secs, 0f64..(high as f64 * 1.1))?;
        chart
            .configure_mesh()
            .x_desc("seconds into the mode")
            .draw()?;
        for (i, r) in reports.iter().enumerate() {
            let color = colors[i % colors.len()];
            let points = r
                .timeline
                .iter()
                .enumerate()
                .map(|(n, s)| (n as f64 * STEP.as_secs_f64(), pick(s) as f64));
            chart
                .draw_series(LineSeries::new(points, color.stroke_width(2)))?
                .label(r.mode.label())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperRight)
            .draw()?;
    }
    root.present()?;
    Ok(())
}

/// Which modes to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Which {
    /// All five, one after another.
    All,
    /// No coalescing: every request is a backend call.
    None,
    /// `Group::work`.
    Group,
    /// `TtlCache::get_or_load`.
    Cache,
    /// `TtlCache::get_or_load_detached` with `refresh_after`.
    Swr,
    /// The same with `fail_safe`.
    FailSafe,
}

/// A slow backend under a Zipf-distributed load, served five ways: no
/// coalescing, `Group::work`, `TtlCache::get_or_load`, `TtlCache` with
/// stale-while-revalidate, and that with the fail-safe. Prints one table of
/// errors, backend calls, latencies and throughput; `--outage-ms` takes the
/// backend down for a while, `--plot` draws what happened.
#[derive(Debug, Parser)]
#[command(name = "stampede")]
struct Cli {
    /// Worker threads, each issuing one request at a time.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=4096))]
    threads: u32,
    /// Distinct keys.
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
    keys: u32,
    /// Zipf exponent of the key popularity (0 is uniform).
    #[arg(long, default_value_t = 0.99, value_parser = parse_zipf, allow_negative_numbers = true)]
    zipf: f64,
    /// Latency of each backend call, in milliseconds.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(0..=60_000))]
    latency_ms: u64,
    /// How long each mode runs, in seconds (fractions allowed).
    #[arg(long, default_value_t = 3.0, value_parser = parse_secs)]
    duration_secs: f64,
    /// TTL of the cache modes, in milliseconds.
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(1..))]
    ttl_ms: u64,
    /// The `swr` mode's refresh_after, in milliseconds [default: 3/4 of the TTL].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    refresh_ms: Option<u64>,
    /// Which mode to run.
    #[arg(long, value_enum, default_value_t = Which::All)]
    mode: Which,
    /// Fixes the key sequence each worker draws.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Takes the backend down for this long, a third of the way into each mode.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    outage_ms: Option<u64>,
    /// The fail-safe mode's throttle, in milliseconds.
    #[arg(long, default_value_t = 250, value_parser = clap::value_parser!(u64).range(1..))]
    throttle_ms: u64,
    /// Draws the backend calls in flight and the errors returned per 50 ms,
    /// one line per mode, into this SVG file.
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<std::path::PathBuf>,
}

fn parse_zipf(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(z) if z.is_finite() && (0.0..=10.0).contains(&z) => Ok(z),
        Ok(_) => Err("must be between 0 and 10".into()),
        Err(e) => Err(e.to_string()),
    }
}

fn parse_secs(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(secs) if secs.is_finite() && secs > 0.0 && secs <= 3600.0 => Ok(secs),
        Ok(_) => Err("must be above 0 and at most 3600".into()),
        Err(e) => Err(e.to_string()),
    }
}

impl Cli {
    fn config(&self) -> Config {
        let ttl = Duration::from_millis(self.ttl_ms);
        let config = Config {
            threads: self.threads as usize,
            keys: self.keys as usize,
            zipf: self.zipf,
            latency: Duration::from_millis(self.latency_ms),
            duration: Duration::from_secs_f64(self.duration_secs),
            ttl,
            refresh_after: self.refresh_ms.map_or(ttl * 3 / 4, Duration::from_millis),
            seed: self.seed,
            outage: self.outage_ms.map(Duration::from_millis),
            throttle: Duration::from_millis(self.throttle_ms),
        };
        if let Err(why) = config.check() {
            Cli::command()
                .error(ErrorKind::ArgumentConflict, why)
                .exit();
        }
        config
    }

    fn modes(&self) -> Vec<Mode> {
        match self.mode {
            Which::All => Mode::ALL.to_vec(),
            Which::None => vec![Mode::None],
            Which::Group => vec![Mode::Group],
            Which::Cache => vec![Mode::Cache],
            Which::Swr => vec![Mode::Swr],
            Which::FailSafe => vec![Mode::FailSafe],
        }
    }
}

fn main() {
    let cli = Cli::parse();
    let config = cli.config();
    let modes = cli.modes();
    if let Some(outage) = config.outage {
        println!(
            "the backend is down for {outage:?} from {:?} into each mode; \
             fail-safe throttle {:?}",
            config.duration / 3,
            config.throttle
        );
    }
    println!(
        "{} threads, {} keys (Zipf {}), backend latency {:?}, {:?} per mode, \
         ttl {:?}, refresh after {:?}, seed {}",
        config.threads,
        thousands(config.keys as u64),
        config.zipf,
        config.latency,
        config.duration,
        config.ttl,
        config.refresh_after,
        config.seed
    );
    let tty = std::io::stderr().is_terminal();
    let style = ProgressStyle::with_template("{prefix:<15} [{bar:30}] {msg}")
        .expect("a valid template")
        .progress_chars("=> ");
    let mut reports = Vec::new();
    for (i, &mode) in modes.iter().enumerate() {
        let step = format!("{}/{} {}", i + 1, modes.len(), mode.label());
        if !tty {
            eprintln!("running {step} for {:?}", config.duration);
        }
        let bar = ProgressBar::new(config.duration.as_millis() as u64)
            .with_style(style.clone())
            .with_prefix(step);
        let report = run_mode_watched(&config, mode, |p| {
            bar.set_position(p.elapsed.as_millis() as u64);
            bar.set_message(format!(
                "{} requests, {} backend calls",
                thousands(p.served),
                thousands(p.backend_calls)
            ));
        });
        bar.finish_and_clear();
        reports.push(report);
    }
    println!();
    print!("{}", table(&reports));
    if let Some(path) = &cli.plot {
        match plot(&reports, path) {
            Ok(()) => println!("\nplot: {}", path.display()),
            Err(e) => {
                eprintln!("stampede: cannot draw {}: {e}", path.display());
                std::process::exit(1);
            }
        }
    }
    println!(
        "\nrequests: answered (with the right value, or an error); errors: answered \
         with the backend's error;\ncalls saved: requests answered without a backend \
         call of their own; backend calls include background refreshes;\npeak backend: most backend \
         calls running at once; p50/p99/max: latency of one request"
    );
    let cores = thread::available_parallelism().map_or(1, |n| n.get());
    if config.threads > cores {
        println!(
            "{} workers share {cores} cores: a request that never blocks can still wait \
             for a core, which shows in the cache modes' max",
            config.threads
        );
    }
}
