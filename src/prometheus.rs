//! `PrometheusMetrics`: a [`Metrics`] observer that reports to a
//! `prometheus::Registry` (feature `prometheus`).

use std::fmt;

use ::prometheus::core::{Collector, Desc};
use ::prometheus::proto::MetricFamily;
use ::prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
};

use crate::metrics::{CacheEvent, FlightEnd, Metrics, Outcome};

/// The `status` label of `singleflight_calls_total`, in the order of the
/// second index of `PrometheusMetrics::calls`.
const STATUSES: [&str; 5] = ["value", "error", "panic", "cancelled", "timeout"];
const TIMEOUT: usize = 4;

/// The `result` label of `singleflight_cache_requests_total`.
const RESULTS: [&str; 5] = ["hit", "stale", "miss", "negative", "fail_safe"];

/// A [`Metrics`] observer that reports one group's (or one cache's) flights,
/// waiters and lookups to a [`prometheus::Registry`]. Feature `prometheus`.
///
/// It registers these families, every sample labelled `group=<name>`:
///
/// | family | type | labels | counts |
/// |---|---|---|---|
/// | `singleflight_calls_total` | counter | `shared`, `status` | calls, by how they ended: `value`, `error`, `panic`, `cancelled`, `timeout` |
/// | `singleflight_duration_seconds` | histogram | `shared` | one observation per flight that ran to its end |
/// | `singleflight_waiters_current` | gauge | | callers blocked on a flight now |
/// | `singleflight_cache_requests_total` | counter | `result` | cache lookups: `hit`, `stale`, `miss`, `negative` (a cached error served) |
/// | `singleflight_cache_evictions_total` | counter | | live cache entries evicted to make room |
///
/// Every series exists from registration, at 0, so a rate over it never
/// starts from nothing.
///
/// **The label is the group's name, never the key.** Every distinct label
/// value is a separate time series that Prometheus keeps in memory and on
/// disk; keys are unbounded (user ids, URLs, query strings), so a key label
/// would grow the series without limit and could expose private data in
/// dashboards. Group names are few and chosen by the programmer.
///
/// Each group needs its own observer, made with its name; the samples carry
/// that name whatever group the observer is installed on. A
/// [`TtlCache`](crate::TtlCache) hands its observer to its load group, so
/// one observer covers a cache's lookups and its loads. Two names may
/// share a registry; the same name twice is refused with
/// [`PrometheusError::DuplicateGroup`].
///
/// How the numbers relate to [`Stats`](crate::Stats), once the group is
/// quiet:
/// - the `calls_total` series add up to `calls` (a `work` caller that joined
///   a detached flight which was then cancelled, and so called again, counts
///   once as `cancelled` and once for its second flight);
/// - the `timeout` series add up to `timeouts`;
/// - the histogram's `_count` is `executions - cancellations`: a cancelled
///   flight is not observed, as it has no duration of its own;
/// - `waiters_current` is 0. While calls run, a waiter reports itself just
///   after it joins and a flight just after it ends, so the gauge may lag
///   for those moments, and briefly dip below 0 when a flight ends before
///   its newest waiter has reported.
///
/// Lookups that find an expired entry count as `miss`; expirations
/// themselves are in [`Stats::expirations`](crate::Stats::expirations).
///
/// # Examples
///
/// ```
/// use prometheus::{Registry, TextEncoder};
/// use singleflight_sync::{Group, PrometheusMetrics};
/// use std::sync::Arc;
///
/// let registry = Registry::new();
/// let metrics = Arc::new(PrometheusMetrics::new(&registry, "users").unwrap());
/// let group: Group<String, u32> = Group::builder().name("users").metrics(metrics).build();
/// group.work("user:42", || 42);
///
/// let text = TextEncoder::new().encode_to_string(&registry.gather()).unwrap();
/// assert!(text.contains(r#"singleflight_calls_total{group="users",shared="false",status="value"} 1"#));
/// ```
pub struct PrometheusMetrics {
    group: &'static str,
    /// Indexed `[shared as usize][status]`, as in [`STATUSES`].
    calls: [[IntCounter; 5]; 2],
    /// Indexed by `shared as usize`.
    duration: [Histogram; 2],
    waiters: IntGauge,
    /// Indexed as in [`RESULTS`].
    requests: [IntCounter; 5],
    evictions: IntCounter,
}

/// The collectors, registered as one so a registration succeeds or fails
/// whole.
struct Families {
    calls: IntCounterVec,
    duration: HistogramVec,
    waiters: IntGauge,
    requests: IntCounterVec,
    evictions: IntCounter,
}

impl Collector for Families {
    fn desc(&self) -> Vec<&Desc> {
        let mut descs = self.calls.desc();
        descs.extend(self.duration.desc());
        descs.extend(self.waiters.desc());
        descs.extend(self.requests.desc());
        descs.extend(self.evictions.desc());
        descs
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let mut families = self.calls.collect();
        families.extend(self.duration.collect());
        families.extend(self.waiters.collect());
        families.extend(self.requests.collect());
        families.extend(self.evictions.collect());
        families
    }
}

impl PrometheusMetrics {
    /// The duration histogram's default bucket bounds, in seconds: 100 µs
    /// to 10 s, as flights range from a cache load to a slow report.
    pub const DEFAULT_BUCKETS: [f64; 16] = [
        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
        5.0, 10.0,
    ];

    /// Registers the families for the group named `group` on `registry`,
    /// with [`DEFAULT_BUCKETS`](Self::DEFAULT_BUCKETS).
    ///
    /// Give the group (or cache) the same name with
    /// [`GroupBuilder::name`](crate::GroupBuilder::name) or
    /// [`TtlCacheBuilder::name`](crate::TtlCacheBuilder::name), so panic
    /// messages and metrics agree.
    ///
    /// # Errors
    ///
    /// [`PrometheusError::DuplicateGroup`] if `registry` already holds a
    /// group named `group`; [`PrometheusError::Registry`] if the registry
    /// refuses the families for another reason (say, a family of the same
    /// name with other labels). Nothing is registered then.
    ///
    /// # Examples
    ///
    /// ```
    /// use prometheus::Registry;
    /// use singleflight_sync::{PrometheusError, PrometheusMetrics};
    ///
    /// let registry = Registry::new();
    /// let users = PrometheusMetrics::new(&registry, "users").unwrap();
    /// let orders = PrometheusMetrics::new(&registry, "orders").unwrap();
    /// let again = PrometheusMetrics::new(&registry, "users").unwrap_err();
    /// assert!(matches!(again, PrometheusError::DuplicateGroup("users")));
    /// ```
    pub fn new(registry: &Registry, group: &'static str) -> Result<Self, PrometheusError> {
        Self::with_buckets(registry, group, Self::DEFAULT_BUCKETS.to_vec())
    }

    /// Like [`new`](Self::new), with the duration histogram's bucket upper
    /// bounds, in seconds (increasing; `+Inf` is implied).
    ///
    /// # Errors
    ///
    /// As [`new`](Self::new), and [`PrometheusError::Registry`] for buckets
    /// that are not increasing.
    ///
    /// # Examples
    ///
    /// ```
    /// use prometheus::{Registry, TextEncoder};
    /// use singleflight_sync::{Group, PrometheusError, PrometheusMetrics};
    /// use std::sync::Arc;
    ///
    /// let registry = Registry::new();
    /// let bad = PrometheusMetrics::with_buckets(&registry, "reports", vec![1.0, 0.5]);
    /// assert!(matches!(bad, Err(PrometheusError::Registry(_))), "nothing registered");
    /// let metrics = PrometheusMetrics::with_buckets(&registry, "reports", vec![1.0, 30.0]).unwrap();
    /// let group: Group<String, u32> = Group::builder().name("reports").metrics(Arc::new(metrics)).build();
    /// group.work("q1", || 1);
    /// let text = TextEncoder::new().encode_to_string(&registry.gather()).unwrap();
    /// assert!(text.contains(r#"singleflight_duration_seconds_bucket{group="reports",shared="false",le="30"} 1"#));
    /// ```
    pub fn with_buckets(
        registry: &Registry,
        group: &'static str,
        buckets: Vec<f64>,
    ) -> Result<Self, PrometheusError> {
        let families = Families::new(group, buckets).map_err(PrometheusError::Registry)?;
        // Bad buckets show when a child is made: before registering, so a
        // refusal registers nothing.
        let histogram = |shared: &str| {
            families
                .duration
                .get_metric_with_label_values(&[shared])
                .map_err(PrometheusError::Registry)
        };
        let duration = [histogram("false")?, histogram("true")?];
        let calls = |shared: &str| {
            STATUSES.map(|status| families.calls.with_label_values(&[shared, status]))
        };
        let metrics = PrometheusMetrics {
            group,
            calls: [calls("false"), calls("true")],
            duration,
            waiters: families.waiters.clone(),
            requests: RESULTS.map(|r| families.requests.with_label_values(&[r])),
            evictions: families.evictions.clone(),
        };
        registry.register(Box::new(families)).map_err(|e| match e {
            ::prometheus::Error::AlreadyReg => PrometheusError::DuplicateGroup(group),
            e => PrometheusError::Registry(e),
        })?;
        Ok(metrics)
    }

    /// The group name the samples are labelled with.
    ///
    /// # Examples
    ///
    /// ```
    /// use prometheus::Registry;
    /// use singleflight_sync::PrometheusMetrics;
    ///
    /// let registry = Registry::new();
    /// let metrics = PrometheusMetrics::new(&registry, "users").unwrap();
    /// assert_eq!(metrics.group(), "users");
    /// ```
    pub fn group(&self) -> &'static str {
        self.group
    }
}

impl Families {
    fn new(group: &'static str, buckets: Vec<f64>) -> ::prometheus::Result<Self> {
        let opts = |name: &str, help: &str| Opts::new(name, help).const_label("group", group);
        Ok(Families {
            calls: IntCounterVec::new(
                opts(
                    "singleflight_calls_total",
                    "Calls to a singleflight group, by whether their flight was shared and how \
                     it ended for them (value, error, panic, cancelled, timeout).",
                ),
                &["shared", "status"],
            )?,
            duration: HistogramVec::new(
                HistogramOpts::new(
                    "singleflight_duration_seconds",
                    "How long each flight's function ran, by whether the flight was shared.",
                )
                .const_label("group", group)
                .buckets(buckets),
                &["shared"],
            )?,
            waiters: IntGauge::with_opts(opts(
                "singleflight_waiters_current",
                "Callers blocked waiting for another caller's flight.",
            ))?,
            requests: IntCounterVec::new(
                opts(
                    "singleflight_cache_requests_total",
                    "Cache lookups, by result: hit, stale (served, due for a refresh) or miss.",
                ),
                &["result"],
            )?,
            evictions: IntCounter::with_opts(opts(
                "singleflight_cache_evictions_total",
                "Live cache entries evicted to make room.",
            ))?,
        })
    }
}

impl Metrics for PrometheusMetrics {
    fn flight_ended(&self, _group: Option<&'static str>, flight: &FlightEnd) {
        let status = match flight.outcome {
            Outcome::Value => 0,
            Outcome::Error => 1,
            Outcome::Panic => 2,
            Outcome::Cancelled => 3,
        };
        self.calls[usize::from(flight.shared)][status].inc_by(flight.callers as u64);
        if flight.outcome != Outcome::Cancelled {
            self.duration[usize::from(flight.shared)].observe(flight.duration.as_secs_f64());
        }
        self.waiters.sub(flight.waiters as i64);
    }

    fn waiter_joined(&self, _group: Option<&'static str>) {
        self.waiters.inc();
    }

    fn waiter_timed_out(&self, _group: Option<&'static str>, shared: bool) {
        self.waiters.dec();
        self.calls[usize::from(shared)][TIMEOUT].inc();
    }

    fn cache_event(&self, _group: Option<&'static str>, event: CacheEvent) {
        match event {
            CacheEvent::Hit => self.requests[0].inc(),
            CacheEvent::StaleHit => self.requests[1].inc(),
            CacheEvent::Miss => self.requests[2].inc(),
            CacheEvent::NegativeHit => self.requests[3].inc(),
            CacheEvent::FailSafeHit => self.requests[4].inc(),
            CacheEvent::Eviction => self.evictions.inc(),
            // In `Stats`; a lookup that finds an expired entry is a miss.
            CacheEvent::Expiration => {}
        }
    }
}

impl fmt::Debug for PrometheusMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrometheusMetrics")
            .field("group", &self.group)
            .field("waiters", &self.waiters.get())
            .finish_non_exhaustive()
    }
}

/// Why [`PrometheusMetrics::new`] (or
/// [`with_buckets`](PrometheusMetrics::with_buckets)) registered nothing.
#[derive(Debug)]
#[non_exhaustive]
pub enum PrometheusError {
    /// The registry already holds the families of a group with this name.
    /// Names must be unique per registry, or two groups' numbers would
    /// merge.
    DuplicateGroup(&'static str),
    /// The registry or the prometheus crate refused the families for
    /// another reason: a family of the same name registered with other
    /// labels or help, buckets that are not increasing.
    Registry(::prometheus::Error),
}

impl fmt::Display for PrometheusError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PrometheusError::DuplicateGroup(group) => write!(
                f,
                "a singleflight group named `{group}` is already registered on this \
                 Prometheus registry; give each group its own name"
            ),
            PrometheusError::Registry(cause) => {
                write!(f, "could not register singleflight metrics: {cause}")
            }
        }
    }
}

impl std::error::Error for PrometheusError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PrometheusError::DuplicateGroup(_) => None,
            PrometheusError::Registry(cause) => Some(cause),
        }
    }
}
