//! What a user can plug into a cache beside its loaders: an eviction
//! listener (told why each entry left), a weigher (for a bound by weight)
//! and an expiry policy (a TTL chosen per entry, from its value). None of
//! them is called under a shard's lock.

use std::panic::{self, AssertUnwindSafe};
use std::time::Duration;

/// Why an entry left a [`TtlCache`](crate::TtlCache), as told to its
/// [`eviction_listener`](crate::TtlCacheBuilder::eviction_listener).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RemovalCause {
    /// Its time to live (or time to idle) passed; it was reclaimed by a
    /// lookup or by a write's sweep.
    Expired,
    /// The policy evicted it to keep the cache within `max_entries` or
    /// `max_weight`.
    Size,
    /// `invalidate`, `remove`, `invalidate_if`, `retain` or `clear` took it
    /// out.
    Invalidated,
    /// An insert or a load stored a new value for its key.
    Replaced,
}

/// A cache's eviction listener.
pub(crate) type Listener<K, V> = Box<dyn Fn(K, V, RemovalCause) + Send + Sync>;

/// A cache's weigher.
pub(crate) type Weigher<K, V> = Box<dyn Fn(&K, &V) -> u32 + Send + Sync>;

/// Calls `listener` with one entry that left, containing a panic: a
/// listener that panics loses nothing else (the entry is consumed either
/// way) and poisons nothing, since no lock is held here. Returns whether it
/// panicked.
pub(crate) fn tell<K, V>(listener: &Listener<K, V>, key: K, value: V, cause: RemovalCause) -> bool {
    panic::catch_unwind(AssertUnwindSafe(|| listener(key, value, cause))).is_err()
}

/// Chooses each entry's time to live from its key and value: an HTTP
/// response's `max-age`, a token's own expiry, a shorter life for an empty
/// answer. Set with [`TtlCacheBuilder::expiry`](crate::TtlCacheBuilder::expiry).
///
/// For an entry that lives longer when it is read, see
/// [`time_to_idle`](crate::TtlCacheBuilder::time_to_idle).
///
/// Each method gets the TTL the cache would use otherwise (the call's TTL:
/// the default, or a `_with_ttl` call's, after jitter) and returns the one
/// to use. None of them is called under a lock, so they may do anything but
/// take long. A method that panics unwinds in the caller that stored or read
/// the entry; for a load, as if its loader had panicked.
///
/// A TTL of zero stores an entry that is already expired: callers of that
/// load still get the value, and the next lookup loads again.
///
/// # Examples
///
/// ```
/// use singleflight_sync::{Expiry, ManualClock, TtlCache};
/// use std::time::Duration;
///
/// #[derive(Clone)]
/// struct Response { body: String, max_age: Duration }
///
/// struct MaxAge;
/// impl Expiry<String, Response> for MaxAge {
///     fn expire_after_create(&self, _: &String, r: &Response, _: Duration) -> Duration {
///         r.max_age
///     }
/// }
///
/// let clock = ManualClock::new();
/// let cache: TtlCache<String, Response> = TtlCache::builder()
///     .ttl(Duration::from_secs(3600))
///     .expiry(MaxAge)
///     .clock(clock.clone())
///     .build()
///     .unwrap();
/// let fetch = |age| Response { body: "ok".into(), max_age: Duration::from_secs(age) };
/// cache.get_or_load("/short", || fetch(5));
/// cache.get_or_load("/long", || fetch(600));
/// clock.advance(Duration::from_secs(5));
/// assert!(cache.get("/short").is_none(), "expired at its own max-age");
/// assert_eq!(cache.get("/long").unwrap().body, "ok");
/// ```
pub trait Expiry<K, V>: Send + Sync {
    /// The TTL of an entry stored for a key that had none: a load after a
    /// miss, or an insert of a key not in the cache. The default keeps
    /// `ttl`.
    fn expire_after_create(&self, key: &K, value: &V, ttl: Duration) -> Duration {
        let _ = (key, value);
        ttl
    }

    /// The TTL of an entry that replaces one of the same key: an insert
    /// over an entry, or a refresh. `remaining` is the old entry's time
    /// left (zero if it had expired). The default keeps `ttl`.
    fn expire_after_update(
        &self,
        key: &K,
        value: &V,
        ttl: Duration,
        remaining: Duration,
    ) -> Duration {
        let _ = (key, value, remaining);
        ttl
    }
}
