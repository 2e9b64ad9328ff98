//! Observability: the built-in [`Stats`] counters and the [`Metrics`]
//! observer trait.
//!
//! The counters live beside the data they count, inside each shard and
//! updated under the shard lock the operation holds anyway, so they cost no
//! atomic and never become a point of contention. A [`Metrics`] observer is
//! optional; without one, no clock is read and nothing is allocated.

use std::fmt;
use std::time::Duration;

/// A snapshot of a [`Group`](crate::Group)'s or a
/// [`TtlCache`](crate::TtlCache)'s counters, from
/// [`Group::stats`](crate::Group::stats) or
/// [`TtlCache::stats`](crate::TtlCache::stats). Counts since creation.
///
/// The cache fields are 0 for a bare group.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Stats {
    /// Calls made (each `work`, `work_shared`, `work_deadline`,
    /// `work_timeout` and `do_chan` call counts once).
    pub calls: u64,
    /// Flights started: each ran `f` once (or tried to).
    pub executions: u64,
    /// Calls that joined a running flight instead of starting one.
    pub shared: u64,
    /// Flights whose value the group's error test (see
    /// [`GroupBuilder::error_if`](crate::GroupBuilder::error_if)) called an
    /// error, or whose spawn failed.
    pub errors: u64,
    /// Flights whose `f` panicked.
    pub panics: u64,
    /// Callers that left at their deadline.
    pub timeouts: u64,
    /// Flights cancelled, by `cancel` or by every deadline caller leaving.
    pub cancellations: u64,
    /// Lookups that found a fresh value.
    pub hits: u64,
    /// Lookups that found none, or an expired one, or a cached error where
    /// the caller cannot use one (`get`, and the infallible loaders, which
    /// then load).
    pub misses: u64,
    /// Lookups by `try_get_or_load` answered with a cached error (negative
    /// caching, see `TtlCacheBuilder::error_ttl`): counted neither as hits
    /// nor as misses, since the caller gets an error and no load runs.
    pub negative_hits: u64,
    /// Loader runs (misses that led a load, and refreshes), counted when
    /// the loader returns or panics.
    pub loads: u64,
    /// Loader runs that returned an error.
    pub load_errors: u64,
    /// Hits on an entry due for a refresh (served the current value).
    pub stale_hits: u64,
    /// Refreshes started.
    pub refreshes: u64,
    /// Live entries evicted to make room.
    pub evictions: u64,
    /// Expired entries reclaimed.
    pub expirations: u64,
    /// Values not stored because they weigh more than the cache's whole
    /// `max_weight` (their callers still got them).
    pub oversized: u64,
    /// Answers the fail-safe gave with an expired value because its reload
    /// failed (and, during the throttle that follows, served again):
    /// neither a hit nor a miss.
    pub fail_safe_hits: u64,
}

impl Stats {
    pub(crate) fn add_group(&mut self, c: &GroupCounts) {
        self.calls += c.calls;
        self.executions += c.executions;
        self.shared += c.shared;
        self.errors += c.errors;
        self.panics += c.panics;
        self.timeouts += c.timeouts;
        self.cancellations += c.cancellations;
    }

    pub(crate) fn add_cache(&mut self, c: &CacheCounts) {
        self.hits += c.hits;
        self.misses += c.misses;
        self.negative_hits += c.negative_hits;
        self.loads += c.loads;
        self.load_errors += c.load_errors;
        self.stale_hits += c.stale_hits;
        self.refreshes += c.refreshes;
        self.evictions += c.evictions;
        self.expirations += c.expirations;
        self.oversized += c.oversized;
        self.fail_safe_hits += c.fail_safe_hits;
    }
}

/// One group shard's counters, updated under its lock. `calls` and
/// `executions` first: every uncontended call writes both (see `Table`).
#[derive(Clone, Copy, Debug, Default)]
#[repr(C)]
pub(crate) struct GroupCounts {
    pub(crate) calls: u64,
    pub(crate) executions: u64,
    pub(crate) shared: u64,
    pub(crate) errors: u64,
    pub(crate) panics: u64,
    pub(crate) timeouts: u64,
    pub(crate) cancellations: u64,
}

/// One cache shard's counters, updated under its lock.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct CacheCounts {
    pub(crate) hits: u64,
    pub(crate) misses: u64,
    pub(crate) negative_hits: u64,
    pub(crate) loads: u64,
    pub(crate) load_errors: u64,
    pub(crate) stale_hits: u64,
    pub(crate) refreshes: u64,
    pub(crate) evictions: u64,
    pub(crate) expirations: u64,
    pub(crate) oversized: u64,
    pub(crate) fail_safe_hits: u64,
}

/// How a flight ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Outcome {
    /// `f` returned a value.
    Value,
    /// `f` returned a value the group counts as an error, or the flight
    /// could not be spawned.
    Error,
    /// `f` panicked.
    Panic,
    /// The flight was cancelled.
    Cancelled,
}

impl Outcome {
    /// A short lowercase name, for labels: `value`, `error`, `panic`,
    /// `cancelled`.
    ///
    /// # Examples
    ///
    /// ```
    /// use singleflight_sync::Outcome;
    ///
    /// assert_eq!(Outcome::Value.as_str(), "value");
    /// assert_eq!(Outcome::Cancelled.as_str(), "cancelled");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Value => "value",
            Outcome::Error => "error",
            Outcome::Panic => "panic",
            Outcome::Cancelled => "cancelled",
        }
    }
}

/// What [`Metrics::flight_ended`] is told about a flight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct FlightEnd {
    /// How long `f` ran (for a cancelled flight: until the cancellation).
    pub duration: Duration,
    /// The callers this outcome reached, the leader included (for a
    /// detached flight, every caller still waiting, the one that started it
    /// included).
    pub callers: usize,
    /// How many of [`callers`](Self::callers) were waiters, each reported
    /// once by [`Metrics::waiter_joined`]: `callers - 1` for a flight led by
    /// [`Group::work`](crate::Group::work) or
    /// [`work_shared`](crate::Group::work_shared) (its leader runs `f` and
    /// never waits), `callers` for a detached or cancelled one.
    pub waiters: usize,
    /// Whether more than one caller shared the flight.
    pub shared: bool,
    /// How it ended.
    pub outcome: Outcome,
}

/// A cache lookup's or upkeep's result, for [`Metrics::cache_event`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CacheEvent {
    /// A fresh entry was found.
    Hit,
    /// An entry due for a refresh was found and served.
    StaleHit,
    /// No fresh entry: the caller loads or joins a load.
    Miss,
    /// A cached error answered a `try_get_or_load` (see
    /// [`Stats::negative_hits`]).
    NegativeHit,
    /// The fail-safe answered with an expired value, its reload having
    /// failed (see [`Stats::fail_safe_hits`]).
    FailSafeHit,
    /// A live entry was evicted to make room.
    Eviction,
    /// An expired entry was reclaimed.
    Expiration,
}

impl CacheEvent {
    /// A short lowercase name, for labels: `hit`, `stale`, `miss`,
    /// `negative`, `fail_safe`, `eviction`, `expiration`.
    ///
    /// # Examples
    ///
    /// ```
    /// use singleflight_sync::CacheEvent;
    ///
    /// assert_eq!(CacheEvent::StaleHit.as_str(), "stale");
    /// assert_eq!(CacheEvent::Miss.as_str(), "miss");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            CacheEvent::Hit => "hit",
            CacheEvent::StaleHit => "stale",
            CacheEvent::Miss => "miss",
            CacheEvent::NegativeHit => "negative",
            CacheEvent::FailSafeHit => "fail_safe",
            CacheEvent::Eviction => "eviction",
            CacheEvent::Expiration => "expiration",
        }
    }
}

/// An observer of a group's flights and a cache's lookups; install one with
/// [`GroupBuilder::metrics`](crate::GroupBuilder::metrics) or
/// [`TtlCacheBuilder::metrics`](crate::TtlCacheBuilder::metrics).
///
/// Every method has an empty default body, so implement only what you need.
/// They are called outside the library's locks, on the thread of the caller
/// or flight concerned, and must be cheap and must not panic. `group` is
/// the name given to the builder.
///
/// # Examples
///
/// ```
/// use singleflight_sync::{FlightEnd, Group, Metrics};
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use std::sync::Arc;
///
/// #[derive(Debug, Default)]
/// struct SlowFlights(AtomicU64);
///
/// impl Metrics for SlowFlights {
///     fn flight_ended(&self, _group: Option<&'static str>, flight: &FlightEnd) {
///         if flight.duration.as_millis() >= 100 {
///             self.0.fetch_add(1, Ordering::Relaxed);
///         }
///     }
/// }
///
/// let slow = Arc::new(SlowFlights::default());
/// let group: Group<String, u32> = Group::builder().name("api").metrics(slow.clone()).build();
/// group.work("k", || 1);
/// assert_eq!(slow.0.load(Ordering::Relaxed), 0);
/// ```
pub trait Metrics: Send + Sync + fmt::Debug + 'static {
    /// A flight ended and its outcome reached `flight.callers` callers.
    fn flight_ended(&self, group: Option<&'static str>, flight: &FlightEnd) {
        let _ = (group, flight);
    }

    /// A caller started waiting for a flight: a follower, a deadline caller
    /// (the one that started a detached flight included) or a `do_chan`
    /// receiver.
    fn waiter_joined(&self, group: Option<&'static str>) {
        let _ = group;
    }

    /// A waiter left at its deadline, before the flight ended; `shared` says
    /// whether others shared the flight. (Waiters that get the outcome are
    /// counted in [`FlightEnd::callers`] instead.)
    fn waiter_timed_out(&self, group: Option<&'static str>, shared: bool) {
        let _ = (group, shared);
    }

    /// A cache lookup's result, or an entry leaving the cache.
    fn cache_event(&self, group: Option<&'static str>, event: CacheEvent) {
        let _ = (group, event);
    }
}
