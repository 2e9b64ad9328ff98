//! The builder's settings for what a cache calls beside its loaders: the
//! eviction listener, the weigher with its bound, idle expiry and the expiry
//! policy.

use std::time::Duration;

use super::hooks::{Expiry, RemovalCause};
use super::TtlCacheBuilder;

impl<K, V, S> TtlCacheBuilder<K, V, S> {
    /// Calls `listener` with the key, the value and the cause of every entry
    /// that leaves the cache: exactly once per entry, after the shard's lock
    /// is released (so it may use the cache). Dropping the cache tells it
    /// nothing; cached errors are not told. An expired entry is told when it
    /// is reclaimed (by a lookup or a write's sweep), not at its expiry
    /// instant.
    ///
    /// A listener that panics loses no other entry and poisons nothing: the
    /// panic is caught and the entry it was given is dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// use singleflight_sync::{RemovalCause, TtlCache};
    /// use std::sync::{Arc, Mutex};
    /// use std::time::Duration;
    ///
    /// let told = Arc::new(Mutex::new(Vec::new()));
    /// let log = told.clone();
    /// let cache: TtlCache<String, u32> = TtlCache::builder()
    ///     .ttl(Duration::from_secs(60))
    ///     .eviction_listener(move |k, v, cause| log.lock().unwrap().push((k, v, cause)))
    ///     .build()
    ///     .unwrap();
    /// cache.insert("a".into(), 1);
    /// cache.insert("a".into(), 2);
    /// cache.invalidate("a");
    /// assert_eq!(
    ///     *told.lock().unwrap(),
    ///     [("a".into(), 1, RemovalCause::Replaced), ("a".into(), 2, RemovalCause::Invalidated)]
    /// );
    /// ```
    pub fn eviction_listener<F>(mut self, listener: F) -> Self
    where
        F: Fn(K, V, RemovalCause) + Send + Sync + 'static,
    {
        self.hooks.listener = Some(Box::new(listener));
        self
    }

    /// Weighs each entry (`weigher(&key, &value)`, called once when it is
    /// stored, never under a lock), for a bound by weight: with
    /// [`max_weight`](Self::max_weight), the entries' total weight never
    /// exceeds it, beside the `max_entries` bound. A value heavier than the
    /// whole `max_weight` is not stored (its callers still get it) and is
    /// counted in [`Stats::oversized`](crate::Stats::oversized). Cached errors
    /// weigh 0. A weigher that panics unwinds in the caller that stored the
    /// value (for a load: as if the loader panicked); nothing is stored.
    ///
    /// # Examples
    ///
    /// ```
    /// use singleflight_sync::TtlCache;
    /// use std::time::Duration;
    ///
    /// let cache: TtlCache<String, Vec<u8>> = TtlCache::builder()
    ///     .ttl(Duration::from_secs(60))
    ///     .weigher(|_, v: &Vec<u8>| v.len() as u32)
    ///     .max_weight(1_000)
    ///     .build()
    ///     .unwrap();
    /// cache.insert("a".into(), vec![0; 600]);
    /// cache.insert("b".into(), vec![0; 600]);
    /// assert_eq!(cache.len(), 1, "1,200 bytes do not fit in 1,000");
    /// cache.insert("huge".into(), vec![0; 5_000]);
    /// assert_eq!((cache.get("huge"), cache.stats().oversized), (None, 1));
    /// ```
    pub fn weigher<F>(mut self, weigher: F) -> Self
    where
        F: Fn(&K, &V) -> u32 + Send + Sync + 'static,
    {
        self.hooks.weigher = Some(Box::new(weigher));
        self
    }

    /// The bound on the entries' total weight (see
    /// [`weigher`](Self::weigher), which it needs; at least 1).
    ///
    /// # Examples
    ///
    /// ```
    /// use singleflight_sync::TtlCache;
    /// use std::time::Duration;
    ///
    /// let no_weigher = TtlCache::<String, String>::builder()
    ///     .ttl(Duration::from_secs(1))
    ///     .max_weight(10)
    ///     .build();
    /// assert_eq!(no_weigher.unwrap_err().setting(), "max_weight");
    /// ```
    pub fn max_weight(mut self, max_weight: u64) -> Self {
        self.max_weight = Some(max_weight);
        self
    }

    /// Idle expiry: an entry not read for `idle` expires, even before its
    /// TTL (which still ends it: a read never extends an entry past its
    /// TTL). A hit moves the entry's expiry to `idle` from then, so hits
    /// take a slightly longer path. Not zero.
    ///
    /// # Examples
    ///
    /// ```
    /// use singleflight_sync::{ManualClock, TtlCache};
    /// use std::time::Duration;
    ///
    /// let clock = ManualClock::new();
    /// let cache: TtlCache<String, u32> = TtlCache::builder()
    ///     .ttl(Duration::from_secs(60))
    ///     .time_to_idle(Duration::from_secs(10))
    ///     .clock(clock.clone())
    ///     .build()
    ///     .unwrap();
    /// cache.insert("read".into(), 1);
    /// cache.insert("idle".into(), 2);
    /// clock.advance(Duration::from_secs(8));
    /// assert_eq!(cache.get("read"), Some(1));
    /// clock.advance(Duration::from_secs(8));
    /// assert_eq!((cache.get("read"), cache.get("idle")), (Some(1), None));
    /// ```
    pub fn time_to_idle(mut self, idle: Duration) -> Self {
        self.time_to_idle = Some(idle);
        self
    }

    /// A policy that chooses each entry's TTL from its key and value (see
    /// [`Expiry`]), instead of the call's TTL.
    ///
    /// # Examples
    ///
    /// See [`Expiry`].
    pub fn expiry(mut self, expiry: impl Expiry<K, V> + 'static) -> Self {
        self.hooks.expiry = Some(Box::new(expiry));
        self
    }
}
