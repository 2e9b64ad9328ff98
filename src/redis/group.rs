//! `RedisGroup`: a local `Group` per process, and one flight per key across
//! the fleet through a Redis lease.

use std::any::Any;
use std::convert::Infallible;
use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::time::{Duration, Instant};

use super::codec::Codec;
use super::error::{DecodeError, Error, RemoteError};
use super::fleet::{Fleet, UNSUBSCRIBED_POLL};
use super::link::{down, Joined};
use super::record::{cut, new_token, Record};
use super::stats::{bump, RedisStats};
use crate::error::LeaderPanicked;
use crate::group::Group;
use crate::metrics::Stats;
use crate::sync::{Shared, Text};

/// A caught panic's payload.
type Payload = Box<dyn Any + Send>;

/// A user's error as the local group shares it: the error itself (for
/// callers with the same error type) and its text (for the record).
#[derive(Clone, Debug)]
pub(crate) struct UserError {
    error: Shared<dyn Any + Send + Sync>,
    message: Text,
}

/// What the local group's flights return.
pub(crate) type Outcome<V> = Result<V, Error<UserError>>;

/// One execution per key across every process of a fleet, through Redis.
///
/// Threads of one process first meet in a local [`Group`], so a process
/// sends Redis one request per key however many of its threads ask. The
/// process whose request wins the key's lease (`SET <ns>:lease:<key>
/// <token> NX PX <lease>`) runs `f`, renews the lease while `f` runs, and
/// then, in one script, stores the result record for
/// [`result_ttl`](super::RedisGroupBuilder::result_ttl), deletes its lease
/// and publishes the key on `<ns>:done`. The other processes wait for that
/// message (one subscriber connection per group), read the record, and
/// return its value. A waiter that finds the lease gone and no result (the
/// leader died, or could not store its result) takes the lease and runs `f`
/// itself.
///
/// **The guarantee.** With Redis healthy: at most one execution of `f` per
/// key per lease period across the fleet, and callers that arrive within
/// `result_ttl` of its end get its value without running `f`. Under faults
/// (a leader paused past its lease, Redis failing over, restarted or
/// unreachable) duplicates are possible, and no call is lost or left
/// waiting: every Redis operation has a timeout, and a call whose Redis
/// operation fails runs `f` in this process (coalesced with this process's
/// other callers only), counted in [`RedisStats::degraded`]. Leases are
/// advisory (one Redis, no Redlock): never use them for mutual exclusion
/// that correctness depends on.
///
/// **A leader's error.** When `f` fails (or panics), its process stores an
/// error record with the error's text for
/// [`error_ttl`](super::RedisGroupBuilder::error_ttl) (short by default), so
/// the callers waiting in other processes get [`Error::Remote`] (or
/// [`Error::Panicked`]) at once instead of each retrying a failing backend
/// in turn. With `error_ttl` zero no record is stored and one of them takes
/// over instead.
///
/// # Examples
///
/// ```no_run
/// use singleflight_sync::redis::{RawCodec, RedisGroup};
/// use std::time::Duration;
///
/// let group: RedisGroup<String> = RedisGroup::builder()
///     .url("redis+unix:///run/redis/redis.sock")
///     .namespace("myapp.users")
///     .lease(Duration::from_secs(5))
///     .codec(RawCodec)
///     .build()
///     .unwrap();
/// // Every thread of every process asking for user 42 now shares one query.
/// let name = group.work("user:42", || "Ada".to_string()).unwrap();
/// assert_eq!(name, "Ada");
/// ```
pub struct RedisGroup<V> {
    pub(crate) local: Group<String, Outcome<V>>,
    pub(crate) codec: Box<dyn Codec<V>>,
    pub(crate) fleet: Shared<Fleet>,
}

impl<V> RedisGroup<V> {
    /// The fleet counters of this group (this process's view).
    ///
    /// # Examples
    ///
    /// See [`RedisStats`].
    pub fn stats(&self) -> RedisStats {
        self.fleet.link.counters.snapshot()
    }

    /// The local group's counters: `calls` and `shared` say how many of
    /// this process's calls shared one local flight; a local flight that
    /// failed counts in `errors`.
    pub fn local_stats(&self) -> Stats {
        self.local.stats()
    }
}

impl<V> Drop for RedisGroup<V> {
    fn drop(&mut self) {
        self.fleet.close();
    }
}

impl<V> fmt::Debug for RedisGroup<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisGroup")
            .field("settings", &self.fleet.settings)
            .field("link", &self.fleet.link)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl<V: Clone> RedisGroup<V> {
    /// Runs `f` once for every caller across the fleet that asks for `key`
    /// while it runs (or within `result_ttl` of its end), and returns its
    /// value to each of them.
    ///
    /// # Errors
    ///
    /// - [`Error::Remote`] / [`Error::Panicked`]: the leader in another
    ///   process failed or panicked (see [`try_work`](Self::try_work)).
    /// - [`Error::Panicked`]: this caller is a local follower of a leader
    ///   whose `f` panicked.
    /// - [`Error::Decode`]: the result record in Redis is not readable.
    /// - Strict mode only: [`Error::Redis`], [`Error::Timeout`].
    ///
    /// # Panics
    ///
    /// If `f` panics, the panic unwinds in this caller (the process's
    /// leader), after the panic record is stored for the fleet; this
    /// process's followers get [`Error::Panicked`]. A re-entrant call on
    /// `key` from inside its own `f` panics, as [`Group::work`] does. A
    /// [`Codec`] that panics (it should return an error instead) unwinds in
    /// the caller whose call ran it, and this process's followers panic
    /// with a [`LeaderPanicked`] payload, as a [`Group`]'s do; the lease
    /// is left to expire, so the other processes take over.
    ///
    /// # Examples
    ///
    /// See [`RedisGroup`].
    pub fn work(&self, key: &str, f: impl FnOnce() -> V) -> Result<V, Error> {
        match self.try_work(key, || Ok::<V, Infallible>(f())) {
            Ok(value) => Ok(value),
            Err(e) => Err(match e {
                Error::Failed(never) => match *never {},
                Error::Remote(e) => Error::Remote(e),
                Error::Panicked(e) => Error::Panicked(e),
                Error::Redis(e) => Error::Redis(e),
                Error::Timeout => Error::Timeout,
                Error::Decode(e) => Error::Decode(e),
            }),
        }
    }

    /// Like [`work`](Self::work) for an `f` that can fail: its error is
    /// shared, never remembered past
    /// [`error_ttl`](super::RedisGroupBuilder::error_ttl).
    ///
    /// # Errors
    ///
    /// - [`Error::Failed`]: `f` failed in this process (this caller's own,
    ///   or its local leader's), shared as an `Arc<E>`.
    /// - [`Error::Remote`]: the leader in another process failed; carries
    ///   its error's text (cut to 1 KiB).
    /// - [`Error::Panicked`], [`Error::Decode`], and in strict mode
    ///   [`Error::Redis`] and [`Error::Timeout`]: as for
    ///   [`work`](Self::work).
    ///
    /// # Panics
    ///
    /// As [`work`](Self::work).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use singleflight_sync::redis::{Error, RawCodec, RedisGroup};
    ///
    /// let group: RedisGroup<Vec<u8>> = RedisGroup::builder()
    ///     .url("redis://127.0.0.1/")
    ///     .codec(RawCodec)
    ///     .build()
    ///     .unwrap();
    /// let r = group.try_work("report", || Err::<Vec<u8>, _>("backend down"));
    /// match r {
    ///     Err(Error::Failed(e)) => assert_eq!(*e, "backend down"),
    ///     Err(Error::Remote(e)) => assert_eq!(e.message(), "backend down"),
    ///     other => panic!("{other:?}"),
    /// }
    /// ```
    pub fn try_work<E, F>(&self, key: &str, f: F) -> Result<V, Error<E>>
    where
        F: FnOnce() -> Result<V, E>,
        E: fmt::Display + Send + Sync + 'static,
    {
        let mut payload = None;
        let outcome = self.local.work(key, || self.flight(key, f, &mut payload));
        if let Some(payload) = payload {
            panic::resume_unwind(payload);
        }
        outcome.map_err(for_caller)
    }

    /// This process's one flight for `key`: wins the lease and leads, or
    /// waits for the leader elsewhere, or runs `f` alone when Redis fails.
    fn flight<E, F>(&self, key: &str, f: F, payload: &mut Option<Payload>) -> Outcome<V>
    where
        F: FnOnce() -> Result<V, E>,
        E: fmt::Display + Send + Sync + 'static,
    {
        let fleet = &*self.fleet;
        let settings = &fleet.settings;
        let counters = &fleet.link.counters;
        if fleet.link.is_down() {
            bump(&counters.degraded);
            return self.alone(f, payload, Some(down()));
        }
        let token = new_token();
        let waiting = fleet.register(key);
        let deadline = Instant::now() + settings.wait_timeout;
        let mut waited = false;
        loop {
            let joined = fleet
                .link
                .join(key, &token, settings.lease, settings.max_record_bytes);
            match joined {
                Err(e) => {
                    bump(&counters.degraded);
                    return self.alone(f, payload, Some(e));
                }
                Ok(Joined::Record(bytes)) => return self.read(&bytes),
                Ok(Joined::TooLarge(size)) => {
                    bump(&counters.decode_errors);
                    let limit = settings.max_record_bytes;
                    return Err(Error::Decode(Shared::new(DecodeError::TooLarge {
                        size,
                        limit,
                    })));
                }
                Ok(Joined::Leader) => {
                    drop(waiting);
                    if waited {
                        bump(&counters.took_over);
                    }
                    return self.lead(key, &token, f, payload);
                }
                Ok(Joined::Wait(left)) => {
                    waited = true;
                    let now = Instant::now();
                    if now >= deadline {
                        bump(&counters.wait_timeouts);
                        if settings.strict {
                            return Err(Error::Timeout);
                        }
                        return self.alone(f, payload, None);
                    }
                    // Woken by the completion message; else re-read when
                    // the lease would expire (a dead leader), and often
                    // while no subscription would bring the message.
                    let poll = if fleet.subscribed() {
                        settings.lease
                    } else {
                        UNSUBSCRIBED_POLL.min(settings.lease)
                    };
                    let nap = left.map_or(poll, |left| (left + Duration::from_millis(1)).min(poll));
                    waiting.waiter.wait_until((now + nap).min(deadline));
                }
            }
        }
    }

    /// Runs `f` here, without Redis (or, in strict mode after a Redis
    /// failure, not at all).
    fn alone<E, F>(
        &self,
        f: F,
        payload: &mut Option<Payload>,
        failure: Option<redis::RedisError>,
    ) -> Outcome<V>
    where
        F: FnOnce() -> Result<V, E>,
        E: fmt::Display + Send + Sync + 'static,
    {
        if let (Some(e), true) = (failure, self.fleet.settings.strict) {
            return Err(Error::Redis(Shared::new(e)));
        }
        self.run(f, payload)
    }

    fn run<E, F>(&self, f: F, payload: &mut Option<Payload>) -> Outcome<V>
    where
        F: FnOnce() -> Result<V, E>,
        E: fmt::Display + Send + Sync + 'static,
    {
        match panic::catch_unwind(AssertUnwindSafe(f)) {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => {
                let message: Text = e.to_string().into();
                Err(Error::Failed(Shared::new(UserError {
                    error: Shared::new(e),
                    message,
                })))
            }
            Err(p) => {
                let cause = LeaderPanicked::from_payload(&*p, self.fleet.settings.name);
                *payload = Some(p);
                Err(Error::Panicked(cause))
            }
        }
    }

    /// Runs `f` under the lease, then stores its record, releases the
    /// lease and tells the fleet, in one script.
    fn lead<E, F>(&self, key: &str, token: &str, f: F, payload: &mut Option<Payload>) -> Outcome<V>
    where
        F: FnOnce() -> Result<V, E>,
        E: fmt::Display + Send + Sync + 'static,
    {
        let fleet = &*self.fleet;
        let settings = &fleet.settings;
        bump(&fleet.link.counters.led);
        let held = fleet.hold(key, token);
        let outcome = self.run(f, payload);
        drop(held);
        let encoded;
        let (record, ttl) = match &outcome {
            Ok(value) => match self.codec.encode(value) {
                Ok(bytes) if bytes.len() + 4 <= settings.max_record_bytes => {
                    encoded = bytes;
                    (Record::Value(&encoded), settings.result_ttl)
                }
                // Unstorable: no record, so the waiters take over.
                _ => {
                    bump(&fleet.link.counters.encode_errors);
                    (Record::Value(&[]), Duration::ZERO)
                }
            },
            Err(Error::Failed(e)) => (Record::Error(cut(&e.message)), settings.error_ttl),
            Err(Error::Panicked(p)) => (Record::Panic(cut(p.message())), settings.error_ttl),
            Err(_) => (Record::Value(&[]), Duration::ZERO),
        };
        // A failure is counted by the link; the value is this process's
        // either way, and the lease expires on its own.
        let _ = fleet.link.complete(key, token, &record.encode(), ttl);
        outcome
    }

    /// Reads another process's record: untrusted bytes.
    fn read(&self, bytes: &[u8]) -> Outcome<V> {
        let counters = &self.fleet.link.counters;
        let decoded = match Record::decode(bytes) {
            Ok(Record::Value(body)) => self.codec.decode(body).map_err(DecodeError::Codec),
            Ok(Record::Error(message)) => {
                bump(&counters.remote_errors);
                return Err(Error::Remote(RemoteError {
                    message: message.into(),
                }));
            }
            Ok(Record::Panic(message)) => {
                bump(&counters.remote_errors);
                let cause =
                    LeaderPanicked::from_payload(&message.to_owned(), self.fleet.settings.name);
                return Err(Error::Panicked(cause));
            }
            Err(e) => Err(e),
        };
        match decoded {
            Ok(value) => {
                bump(&counters.remote_values);
                Ok(value)
            }
            Err(e) => {
                bump(&counters.decode_errors);
                Err(Error::Decode(Shared::new(e)))
            }
        }
    }
}

/// The local group's error as this caller's error type: its own `E` when
/// the flight's `f` had that type, else its text.
fn for_caller<E: Send + Sync + 'static>(e: Error<UserError>) -> Error<E> {
    match e {
        Error::Failed(user) => match user.error.clone().downcast::<E>() {
            Ok(e) => Error::Failed(e),
            Err(_) => Error::Remote(RemoteError {
                message: user.message.clone(),
            }),
        },
        Error::Remote(e) => Error::Remote(e),
        Error::Panicked(e) => Error::Panicked(e),
        Error::Redis(e) => Error::Redis(e),
        Error::Timeout => Error::Timeout,
        Error::Decode(e) => Error::Decode(e),
    }
}
