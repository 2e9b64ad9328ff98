//! Duplicate-call suppression for blocking, thread-based Rust.
//!
//! When many threads ask for the same expensive thing at once (a cache miss, a
//! report, a rate-limited API call), a [`Group`] runs it **once** and every
//! caller gets the result. The first caller for a key leads and runs the
//! work on its own thread; the others block until it is done and receive a
//! clone of its value. No async runtime.
//!
//! ```
//! use singleflight_sync::Group;
//! use std::sync::atomic::{AtomicUsize, Ordering};
//! use std::sync::Barrier;
//! use std::thread;
//!
//! let group: Group<String, String> = Group::new();
//! let queries = AtomicUsize::new(0);
//! let all_here = Barrier::new(8);
//! thread::scope(|s| {
//!     for _ in 0..8 {
//!         s.spawn(|| {
//!             all_here.wait();
//!             let name = group.work("user:42", || {
//!                 queries.fetch_add(1, Ordering::Relaxed);
//!                 thread::sleep(std::time::Duration::from_millis(50));
//!                 "Ada".to_string()
//!             });
//!             assert_eq!(name, "Ada");
//!         });
//!     }
//! });
//! // Eight callers, and (almost always) one query.
//! assert!(queries.load(Ordering::Relaxed) < 8);
//! ```
//!
//! Semantics in brief: one execution per key at a time; nothing is
//! remembered after a flight ends; a leader's panic reaches every follower as
//! a [`LeaderPanicked`] panic; a re-entrant call on the key being computed
//! panics instead of deadlocking; [`Group::forget`] releases a key early.
//!
//! Beyond [`Group::work`]:
//!
//! - **Deadlines and cancellation**: [`Group::work_timeout`],
//!   [`Group::work_deadline`] and [`Group::do_chan`] run `f` detached, on a
//!   pluggable spawner, so callers can leave at their deadline (or `select!`
//!   on a channel) while the flight goes on for the others; `f` gets a
//!   [`CancelToken`], cancelled by [`Group::cancel`] or when every caller
//!   has given up.
//! - **Caching**: [`TtlCache`] keeps results for a time, loads each miss once,
//!   stays bounded (by entries or by weight), refreshes hot entries without
//!   stalling callers, and tells an [eviction
//!   listener](TtlCacheBuilder::eviction_listener) why each entry left.
//! - **Resilience**: with a [fail-safe](TtlCacheBuilder::fail_safe), an
//!   expired value answers when its reload fails, throttling the retries;
//!   [`TtlCache::get_or_load_entry_detached`] bounds how long callers wait
//!   for a slow backend (soft and hard timeouts).
//! - **Errors without `Clone`**: [`Group::try_work`] and
//!   [`TtlCache::try_get_or_load`] share one `Arc<E>` with every caller.
//! - **Observability**: [`Group::stats`] and [`TtlCache::stats`] cost nothing
//!   on the hot path; a [`Metrics`] observer (a Prometheus one behind the
//!   `prometheus` feature) sees every flight.
//!
//! The [`guide`] shows how to choose keys, handle errors and deadlines, pick
//! between `Group` and `TtlCache`, and avoid the pitfalls.

#![warn(missing_docs, missing_debug_implementations, rust_2018_idioms)]
#![cfg_attr(docsrs, feature(doc_cfg))]

// The layers, each importing only from those listed before it: the sync
// shim; errors and metrics; the flight (`call`), its cancel token and
// spawner; the group, with its detached flights; the cache built on it.
mod sync;

mod error;
mod metrics;
#[cfg(feature = "prometheus")]
mod prometheus;

mod call;
mod cancel;
mod spawn;

mod group;

mod cache;

#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub mod redis;

#[doc = include_str!("guide.md")]
pub mod guide {}

/// The README's example runs as a doctest, so the front door stays true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

pub use crate::cache::{
    Clock, Entry, Expiry, Iter, ManualClock, RemovalCause, SystemClock, TtlCache, TtlCacheBuilder,
    DEFAULT_DROP_TIMEOUT, DEFAULT_FAIL_SAFE_THROTTLE, DEFAULT_MAX_ENTRIES,
};
pub use crate::call::Flight;
pub use crate::cancel::CancelToken;
pub use crate::error::{ConfigError, Error, LeaderPanicked, TryError};
pub use crate::group::{DefaultHashBuilder, Group, GroupBuilder, IntoResult};
pub use crate::metrics::{CacheEvent, FlightEnd, Metrics, Outcome, Stats};
#[cfg(feature = "prometheus")]
#[cfg_attr(docsrs, doc(cfg(feature = "prometheus")))]
pub use crate::prometheus::{PrometheusError, PrometheusMetrics};
pub use crate::spawn::Job;
