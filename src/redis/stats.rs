//! The fleet's own counters.

use crate::sync::{AtomicU64, Ordering};

/// A snapshot of a [`RedisGroup`](super::RedisGroup)'s fleet counters, from
/// [`RedisGroup::stats`](super::RedisGroup::stats). Counts since creation,
/// per flight of this process (a flight is what the local
/// [`Group`](crate::Group) runs once for all of this process's callers of a
/// key); how many callers shared each flight locally is in
/// [`RedisGroup::local_stats`](super::RedisGroup::local_stats).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct RedisStats {
    /// Flights this process led for the fleet: it won the lease and ran `f`.
    pub led: u64,
    /// Of `led`, those won after waiting on another leader whose lease
    /// then disappeared with no result (it died, or failed with no error
    /// record).
    pub took_over: u64,
    /// Flights answered by another process's value, read from Redis.
    pub remote_values: u64,
    /// Flights answered by another process's error or panic record.
    pub remote_errors: u64,
    /// Flights that ran `f` in this process alone because Redis failed,
    /// timed out or was still counted as down (or, in strict mode, that
    /// returned [`Error::Redis`](super::Error::Redis) instead).
    pub degraded: u64,
    /// Flights that stopped waiting for another process's leader at
    /// [`wait_timeout`](super::RedisGroupBuilder::wait_timeout).
    pub wait_timeouts: u64,
    /// Redis operations that failed or timed out (elections, waits,
    /// renewals, completions, the subscriber's connection).
    pub redis_errors: u64,
    /// Records read from Redis that could not be decoded.
    pub decode_errors: u64,
    /// Values this process led whose codec refused them (or that exceeded
    /// `max_record_bytes`): no record was stored, so other processes took
    /// over.
    pub encode_errors: u64,
    /// Renewals that found the lease gone or held by another token (this
    /// leader was paused past its lease, or Redis lost it).
    pub leases_lost: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) led: AtomicU64,
    pub(crate) took_over: AtomicU64,
    pub(crate) remote_values: AtomicU64,
    pub(crate) remote_errors: AtomicU64,
    pub(crate) degraded: AtomicU64,
    pub(crate) wait_timeouts: AtomicU64,
    pub(crate) redis_errors: AtomicU64,
    pub(crate) decode_errors: AtomicU64,
    pub(crate) encode_errors: AtomicU64,
    pub(crate) leases_lost: AtomicU64,
}

pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Counters {
    pub(crate) fn snapshot(&self) -> RedisStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        RedisStats {
            led: get(&self.led),
            took_over: get(&self.took_over),
            remote_values: get(&self.remote_values),
            remote_errors: get(&self.remote_errors),
            degraded: get(&self.degraded),
            wait_timeouts: get(&self.wait_timeouts),
            redis_errors: get(&self.redis_errors),
            decode_errors: get(&self.decode_errors),
            encode_errors: get(&self.encode_errors),
            leases_lost: get(&self.leases_lost),
        }
    }
}
