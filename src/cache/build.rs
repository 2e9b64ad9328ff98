//! `TtlCacheBuilder::build`: every setting checked, then the cache made.

use std::fmt;

use super::adapt::Adapter;
use super::clock::{nanos, SystemClock};
use super::inner::{CacheShard, ClockSource, Inner, Loaders};
use super::store::Store;
use super::{TtlCache, TtlCacheBuilder};
use crate::error::ConfigError;
use crate::sync::{self, AtomicU64, AtomicUsize, Condvar, Mutex, Shared};

impl<K, V, S> TtlCacheBuilder<K, V, S> {
    /// Makes the cache.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the setting, if the TTL is missing or zero,
    /// `max_entries` is 0, `jitter` is outside `0.0..1.0`, `error_ttl` is
    /// zero, `refresh_after` is zero or not below the TTL, the
    /// `early_refresh` beta is negative or not a number, `time_to_idle` is
    /// zero, or a `weigher` is set without a `max_weight` (or the other way
    /// round, or `max_weight` is 0), a fail-safe, throttle or timeout is
    /// zero, or the soft timeout is above the hard one.
    ///
    /// # Examples
    ///
    /// ```
    /// use singleflight_sync::TtlCache;
    /// use std::time::Duration;
    ///
    /// let ok = TtlCache::<String, u32>::builder().ttl(Duration::from_secs(60)).build();
    /// assert!(ok.unwrap().is_empty());
    /// let err = TtlCache::<String, u32>::builder()
    ///     .ttl(Duration::from_secs(60))
    ///     .jitter(1.0)
    ///     .build()
    ///     .unwrap_err();
    /// assert_eq!(err.setting(), "jitter");
    /// ```
    pub fn build(self) -> Result<TtlCache<K, V, S>, ConfigError> {
        let ttl = match self.ttl {
            None => {
                return Err(ConfigError::new(
                    "ttl",
                    "not set; every cache needs a default TTL",
                ))
            }
            Some(ttl) if ttl.is_zero() => {
                return Err(ConfigError::new("ttl", "must be above zero"))
            }
            Some(ttl) => ttl,
        };
        if self.max_entries == 0 {
            return Err(ConfigError::new("max_entries", "must be at least 1"));
        }
        if self.max_batch == 0 {
            return Err(ConfigError::new("max_batch", "must be at least 1"));
        }
        if !(0.0..1.0).contains(&self.jitter) {
            return Err(ConfigError::new(
                "jitter",
                format!("{} is outside 0.0..1.0", self.jitter),
            ));
        }
        if self.error_ttl.is_some_and(|t| t.is_zero()) {
            return Err(ConfigError::new(
                "error_ttl",
                "must be above zero (leave it unset to cache no errors)",
            ));
        }
        if let Some(after) = self.refresh_after {
            if after.is_zero() || after >= ttl {
                return Err(ConfigError::new(
                    "refresh_after",
                    format!("{after:?} must be above zero and below the TTL ({ttl:?})"),
                ));
            }
        }
        if let Some(beta) = self.beta {
            if beta.is_nan() || beta < 0.0 {
                return Err(ConfigError::new(
                    "early_refresh",
                    format!("beta {beta} must be a number >= 0"),
                ));
            }
        }
        match (self.hooks.weigher.is_some(), self.max_weight) {
            (true, None) => {
                return Err(ConfigError::new(
                    "weigher",
                    "a weigher needs a max_weight to bound",
                ))
            }
            (false, Some(_)) => {
                return Err(ConfigError::new(
                    "max_weight",
                    "needs a weigher to weigh the entries",
                ))
            }
            (_, Some(0)) => return Err(ConfigError::new("max_weight", "must be at least 1")),
            _ => {}
        }
        if self.time_to_idle.is_some_and(|t| t.is_zero()) {
            return Err(ConfigError::new("time_to_idle", "must be above zero"));
        }
        let r = self.resilience;
        if r.max_stale.is_some_and(|d| d.is_zero()) {
            return Err(ConfigError::new(
                "fail_safe",
                "max_stale must be above zero",
            ));
        }
        if r.throttle.is_zero() {
            return Err(ConfigError::new("fail_safe_throttle", "must be above zero"));
        }
        for (setting, t) in [
            ("soft_timeout", r.soft_timeout),
            ("hard_timeout", r.hard_timeout),
        ] {
            if t.is_some_and(|t| t.is_zero()) {
                return Err(ConfigError::new(setting, "must be above zero"));
            }
        }
        if let (Some(soft), Some(hard)) = (r.soft_timeout, r.hard_timeout) {
            if soft > hard {
                return Err(ConfigError::new(
                    "soft_timeout",
                    format!("{soft:?} is above the hard timeout ({hard:?})"),
                ));
            }
        }
        let with_extras = self.hooks.weigher.is_some()
            || self.time_to_idle.is_some()
            || r.max_stale.is_some()
            || self.refresh_after.is_some()
            || self.beta.is_some();
        // The bound is kept for the whole cache, so shards are only for
        // concurrency; each policy sees its shard's share of the traffic, so
        // small caches get few shards (a shard of under 64 entries decides
        // evictions on too little).
        let count = sync::default_shards().min(1 << (self.max_entries / 64).max(1).ilog2());
        let share = self.max_entries.div_ceil(count);
        let shards = (0..count)
            .map(|_| CacheShard::new(Store::new(share, with_extras)))
            .collect();
        let adapter = Adapter::new(self.max_entries);
        let inner = Inner {
            shards,
            mask: count - 1,
            clock: match self.clock {
                Some(clock) => ClockSource::Custom(clock),
                None => ClockSource::System(SystemClock),
            },
            ttl: nanos(ttl),
            error_ttl: self.error_ttl.map(nanos),
            refresh_after: self.refresh_after.map(nanos),
            jitter: self.jitter,
            beta: self.beta,
            loaders: Mutex::new(Loaders::default()),
            loaders_done: Condvar::new(),
            metrics: self.metrics,
            name: self.name,
            len: AtomicUsize::new(0),
            max: self.max_entries,
            max_batch: self.max_batch,
            sample_mask: u64::MAX.checked_shl(adapter.shift()).unwrap_or(0),
            window: AtomicU64::new(adapter.window().to_bits()),
            adapter,
            handles: AtomicUsize::new(1),
            weight: AtomicU64::new(0),
            max_weight: self.max_weight.unwrap_or(u64::MAX),
            time_to_idle: self.time_to_idle.map(nanos),
            plain_hits: self.beta.is_none()
                && self.time_to_idle.is_none()
                && self.refresh_after.is_none(),
            hooks: self.hooks,
            max_stale: r.max_stale.map_or(0, nanos),
            throttle: nanos(r.throttle),
            soft_timeout: r.soft_timeout,
            hard_timeout: r.hard_timeout,
            drop_timeout: r.drop_timeout,
        };
        Ok(TtlCache {
            inner: Shared::new(inner),
            group: self.group.error_if(Result::is_err).build(),
        })
    }
}

impl<K, V, S: fmt::Debug> fmt::Debug for TtlCacheBuilder<K, V, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TtlCacheBuilder")
            .field("ttl", &self.ttl)
            .field("max_entries", &self.max_entries)
            .field("jitter", &self.jitter)
            .field("error_ttl", &self.error_ttl)
            .field("refresh_after", &self.refresh_after)
            .field("early_refresh", &self.beta)
            .field("max_batch", &self.max_batch)
            .field("clock", &self.clock)
            .field("metrics", &self.metrics)
            .field("max_weight", &self.max_weight)
            .field("time_to_idle", &self.time_to_idle)
            .field("eviction_listener", &self.hooks.listener.is_some())
            .field("weigher", &self.hooks.weigher.is_some())
            .field("expiry", &self.hooks.expiry.is_some())
            .field("resilience", &self.resilience)
            .field("group", &self.group)
            .finish()
    }
}
