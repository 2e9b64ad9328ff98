//! The five policies of a row and how a trace is replayed through each: one
//! thread, in order, a lookup and on a miss a load (an insert).
//!
//! Every hashed cache gets the same fixed hasher (std's SipHash-1-3 with
//! zero keys) instead of its per-process random default, so that a seed
//! names one result: with random hashers, moka's frequency sketch and
//! quick_cache's and ours' shard choice would differ from run to run.

use std::hash::{BuildHasherDefault, DefaultHasher};
use std::time::Duration;

use singleflight_sync::TtlCache;

use crate::error::Error;
use crate::lru::lru_hits;
use crate::opt::opt_hits;

/// The deterministic hasher every hashed cache is built with.
type Fixed = BuildHasherDefault<DefaultHasher>;

/// Long enough that nothing expires during a replay: the table measures
/// admission and eviction, not TTLs.
const TTL: Duration = Duration::from_secs(3600);

/// A column of the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// `singleflight_sync::TtlCache`, ours.
    Ours,
    /// `moka::sync::Cache` with `max_capacity`.
    Moka,
    /// `quick_cache::sync::Cache` with the capacity in items.
    QuickCache,
    /// The exact [`Lru`](crate::Lru).
    Lru,
    /// Belady's optimal with bypass ([`opt_hits`]), the ceiling.
    Opt,
}

impl Policy {
    /// Every column, in the table's order.
    pub const ALL: [Policy; 5] = [
        Policy::Ours,
        Policy::Moka,
        Policy::QuickCache,
        Policy::Lru,
        Policy::Opt,
    ];

    /// The peers ours is measured against (OPT is the ceiling, not a peer).
    pub const PEERS: [Policy; 3] = [Policy::Moka, Policy::QuickCache, Policy::Lru];

    /// The column's heading.
    pub fn name(self) -> &'static str {
        match self {
            Policy::Ours => "TtlCache",
            Policy::Moka => "moka",
            Policy::QuickCache => "quick_cache",
            Policy::Lru => "LRU",
            Policy::Opt => "OPT",
        }
    }

    /// The position of this column in [`Policy::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// How the peers are driven.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tuning {
    /// moka's `run_pending_tasks` runs after every this many of its inserts
    /// (0: never explicitly, only by moka's own triggers). See
    /// [`DEFAULT_MOKA_MAINTENANCE`].
    pub moka_maintenance: u64,
}

/// moka buffers reads and writes and applies them, admission and eviction
/// included, lazily: by itself when 64 are pending (`READ_LOG_FLUSH_POINT`,
/// `WRITE_LOG_FLUSH_POINT` in `common/concurrent/constants.rs`) or 300 ms
/// have passed (`LOG_SYNC_INTERVAL_MILLIS`). Between two runs it holds up to
/// 64 entries beyond `max_capacity` and serves hits from them, an advantage
/// of 6% of the cache at 1,000 entries that ours and quick_cache, whose
/// bound is exact at every call, do not get; and the 300 ms timer would make
/// the result depend on the machine's speed. So by default the table runs
/// moka's pending tasks after each insert: its policy (TinyLFU admission,
/// LRU eviction) applied exactly, within its capacity, deterministically.
/// `--moka-maintenance 0` shows moka as it runs unattended.
pub const DEFAULT_MOKA_MAINTENANCE: u64 = 1;

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            moka_maintenance: DEFAULT_MOKA_MAINTENANCE,
        }
    }
}

/// The hits of `policy` holding at most `capacity` keys on `trace`.
///
/// ```
/// use singleflight_replay::{hits, Policy, Tuning};
/// let trace = [1, 2, 1, 3, 1];
/// assert_eq!(hits(Policy::Lru, &trace, 2, Tuning::default()).unwrap(), 2);
/// assert_eq!(hits(Policy::Opt, &trace, 2, Tuning::default()).unwrap(), 2);
/// assert_eq!(hits(Policy::Ours, &trace, 10, Tuning::default()).unwrap(), 2);
/// ```
///
/// # Errors
///
/// [`Error::Invalid`] if `capacity` is 0 (or too large for the exact LRU's
/// `u32` slots); [`Error::Cache`] if `TtlCache`'s builder refuses it.
pub fn hits(policy: Policy, trace: &[u64], capacity: usize, tuning: Tuning) -> Result<u64, Error> {
    crate::table::check_capacities(&[capacity])?;
    Ok(match policy {
        Policy::Ours => ours(trace, capacity)?,
        Policy::Moka => moka(trace, capacity, tuning.moka_maintenance),
        Policy::QuickCache => quick(trace, capacity),
        Policy::Lru => lru_hits(trace, capacity),
        Policy::Opt => opt_hits(trace, capacity),
    })
}

/// Through the public API, as a user would: `get_or_load`, counting the
/// loader's runs.
fn ours(trace: &[u64], capacity: usize) -> Result<u64, Error> {
    let cache: TtlCache<u64, u64, Fixed> = TtlCache::builder()
        .ttl(TTL)
        .max_entries(capacity)
        .hasher(Fixed::default())
        .build()
        .map_err(|e| Error::Cache(e.to_string()))?;
    let mut loads = 0u64;
    for &key in trace {
        cache.get_or_load(&key, || {
            loads += 1;
            key
        });
    }
    Ok(trace.len() as u64 - loads)
}

fn moka(trace: &[u64], capacity: usize, maintenance: u64) -> u64 {
    let cache: moka::sync::Cache<u64, u64, Fixed> = moka::sync::Cache::builder()
        .max_capacity(capacity as u64)
        .build_with_hasher(Fixed::default());
    let mut hits = 0u64;
    let mut inserts = 0u64;
    for &key in trace {
        if cache.get(&key).is_some() {
            hits += 1;
            continue;
        }
        cache.insert(key, key);
        inserts += 1;
        if maintenance > 0 && inserts % maintenance == 0 {
            cache.run_pending_tasks();
        }
    }
    hits
}

/// `Cache::new(capacity)` is `Cache::with(capacity, capacity, UnitWeighter,
/// default hasher, DefaultLifecycle)`; this is that with the fixed hasher.
/// Its shard count, from `available_parallelism()`, stays quick_cache's
/// default.
fn quick(trace: &[u64], capacity: usize) -> u64 {
    let cache: quick_cache::sync::Cache<u64, u64, quick_cache::UnitWeighter, Fixed> =
        quick_cache::sync::Cache::with(
            capacity,
            capacity as u64,
            quick_cache::UnitWeighter,
            Fixed::default(),
            quick_cache::sync::DefaultLifecycle::default(),
        );
    let mut hits = 0u64;
    for &key in trace {
        if cache.get(&key).is_some() {
            hits += 1;
        } else {
            cache.insert(key, key);
        }
    }
    hits
}

/// How many shards quick_cache gives a cache of `capacity` items on this
/// machine (its default, from `available_parallelism()`), printed beside the
/// table since its hit ratio depends on it.
pub fn quick_cache_shards(capacity: usize) -> usize {
    quick_cache::sync::Cache::<u64, u64>::new(capacity).num_shards()
}
