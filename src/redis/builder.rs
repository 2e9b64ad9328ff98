//! `RedisGroupBuilder`: where the fleet's Redis is, and how long its leases,
//! results and waits last.

use std::fmt;
use std::time::Duration;

use super::codec::Codec;
use super::error::BuildError;
use super::fleet::{self, Fleet, Settings};
use super::group::Outcome;
use super::group::RedisGroup;
use super::link::Link;
use super::record::{check_namespace, Names};
use crate::group::{Group, GroupBuilder};
use crate::metrics::Metrics;
use crate::sync::{self, Shared};

/// Hands the caller's observer to the local group's builder.
type WithMetrics<V> =
    Box<dyn FnOnce(GroupBuilder<String, Outcome<V>>) -> GroupBuilder<String, Outcome<V>>>;

impl<V> RedisGroup<V> {
    /// Starts a [`RedisGroupBuilder`]; `url` (or `client`) and `codec` are
    /// required, the rest have defaults.
    ///
    /// # Examples
    ///
    /// See [`RedisGroupBuilder`].
    pub fn builder() -> RedisGroupBuilder<V> {
        RedisGroupBuilder {
            client: None,
            namespace: "sf".to_owned(),
            lease: Duration::from_secs(10),
            result_ttl: Duration::from_secs(1),
            error_ttl: Duration::from_millis(200),
            op_timeout: Duration::from_millis(250),
            retry_after: Duration::from_secs(1),
            wait_timeout: Duration::from_secs(30),
            max_record_bytes: 16 << 20,
            strict: false,
            name: None,
            codec: None,
            metrics: None,
        }
    }
}

/// Configures a [`RedisGroup`]; made by [`RedisGroup::builder`].
///
/// Credentials and TLS are the `redis` crate's, in the URL:
/// `redis://user:password@host:6379/0` logs in as an ACL user,
/// `redis+unix:///path/to/redis.sock` uses a Unix socket, and (with this
/// crate's `redis-tls` feature) `rediss://user:password@host:6380/` uses
/// TLS with the system's root certificates. Build a
/// [`redis::Client`] yourself for anything else (client certificates, a
/// custom root) and pass it to [`client`](Self::client).
///
/// # Examples
///
/// ```
/// use singleflight_sync::redis::{RawCodec, RedisGroup};
/// use std::time::Duration;
///
/// // No connection is made at build time: Redis may be down now.
/// let group: RedisGroup<String> = RedisGroup::builder()
///     .url("redis://app:secret@127.0.0.1:6379/")
///     .namespace("myapp.users")
///     .lease(Duration::from_secs(5))
///     .result_ttl(Duration::from_secs(2))
///     .op_timeout(Duration::from_millis(100))
///     .codec(RawCodec)
///     .build()
///     .unwrap();
///
/// let err = RedisGroup::<String>::builder()
///     .url("redis://127.0.0.1/")
///     .namespace("my:app")
///     .codec(RawCodec)
///     .build()
///     .unwrap_err();
/// assert!(err.to_string().starts_with("invalid RedisGroup setting `namespace`"));
/// ```
pub struct RedisGroupBuilder<V> {
    client: Option<Result<redis::Client, redis::RedisError>>,
    namespace: String,
    lease: Duration,
    result_ttl: Duration,
    error_ttl: Duration,
    op_timeout: Duration,
    retry_after: Duration,
    wait_timeout: Duration,
    max_record_bytes: usize,
    strict: bool,
    name: Option<&'static str>,
    codec: Option<Box<dyn Codec<V>>>,
    metrics: Option<WithMetrics<V>>,
}

impl<V> RedisGroupBuilder<V> {
    /// The Redis to use, by URL (parsed at [`build`](Self::build), where a
    /// bad one is refused; nothing connects before the first call).
    pub fn url(mut self, url: &str) -> Self {
        self.client = Some(redis::Client::open(url));
        self
    }

    /// The Redis to use, as a client made by the caller (TLS settings,
    /// credentials from elsewhere).
    pub fn client(mut self, client: redis::Client) -> Self {
        self.client = Some(Ok(client));
        self
    }

    /// The prefix of every Redis key and channel this group uses (default
    /// `sf`): 1 to 64 ASCII letters, digits, `_`, `-` or `.`, no `:`, so a
    /// key's names (`<namespace>:lease:<key>`, `<namespace>:result:<key>`)
    /// never collide with another kind's or another namespace's, whatever
    /// bytes the key holds. Groups share flights exactly when they share a
    /// namespace (and a Redis): give each kind of value its own.
    pub fn namespace(mut self, namespace: &str) -> Self {
        self.namespace = namespace.to_owned();
        self
    }

    /// How long a leader's lease lasts without renewal (default 10 s). The
    /// leader renews it every third of this while `f` runs; a dead leader's
    /// flight is taken over this long after its last renewal.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// How long a value stays readable in Redis after its flight (default
    /// 1 s): waiters read it there, and callers arriving this soon after
    /// the flight get it without running `f`. At least 1 ms.
    pub fn result_ttl(mut self, ttl: Duration) -> Self {
        self.result_ttl = ttl;
        self
    }

    /// How long a leader's error (or panic) record stays readable (default
    /// 200 ms), so the callers waiting elsewhere get the error instead of
    /// each running `f` again in turn. Zero stores no record: one waiter
    /// takes over instead.
    pub fn error_ttl(mut self, ttl: Duration) -> Self {
        self.error_ttl = ttl;
        self
    }

    /// The limit on every Redis operation: connecting, each read and each
    /// write (default 250 ms). Must be shorter than the lease.
    pub fn op_timeout(mut self, timeout: Duration) -> Self {
        self.op_timeout = timeout;
        self
    }

    /// After a Redis operation fails or times out, how long calls skip
    /// Redis and run in this process alone (default 1 s), so a stopped
    /// Redis costs one timeout, not one per call.
    pub fn retry_after(mut self, pause: Duration) -> Self {
        self.retry_after = pause;
        self
    }

    /// How long a call waits for a leader in another process (default
    /// 30 s) before it runs `f` itself (or, in strict mode, returns
    /// [`Error::Timeout`](super::Error::Timeout)).
    pub fn wait_timeout(mut self, timeout: Duration) -> Self {
        self.wait_timeout = timeout;
        self
    }

    /// The largest record read from or written to Redis (default 16 MiB).
    /// A larger one in Redis is an [`Error::Decode`](super::Error::Decode)
    /// and is never transferred; a larger value here is not stored. At
    /// least 4 (a record's header).
    pub fn max_record_bytes(mut self, limit: usize) -> Self {
        self.max_record_bytes = limit;
        self
    }

    /// Strict mode (default off): a call whose Redis operation fails before
    /// `f` ran returns [`Error::Redis`](super::Error::Redis) instead of
    /// running `f` in this process alone. A failure after `f` ran (storing
    /// its result) never costs the caller its value.
    pub fn strict(mut self, strict: bool) -> Self {
        self.strict = strict;
        self
    }

    /// A name for the group, carried by its
    /// [`LeaderPanicked`](crate::LeaderPanicked) errors and its local
    /// group.
    pub fn name(mut self, name: &'static str) -> Self {
        self.name = Some(name);
        self
    }

    /// A [`Metrics`] observer for the group's local flights (one per key
    /// per process, however it was answered: led, read from Redis, or run
    /// alone); a flight that ended in an error reports
    /// [`Outcome::Error`](crate::Outcome::Error). The fleet's own counters
    /// (degraded calls, takeovers, ...) are in
    /// [`RedisGroup::stats`](super::RedisGroup::stats).
    ///
    /// # Examples
    ///
    /// ```
    /// use singleflight_sync::redis::{RawCodec, RedisGroup};
    /// use singleflight_sync::{FlightEnd, Metrics};
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::sync::Arc;
    ///
    /// #[derive(Debug, Default)]
    /// struct Flights(AtomicUsize);
    /// impl Metrics for Flights {
    ///     fn flight_ended(&self, _group: Option<&'static str>, _flight: &FlightEnd) {
    ///         self.0.fetch_add(1, Ordering::Relaxed);
    ///     }
    /// }
    ///
    /// let flights = Arc::new(Flights::default());
    /// // No Redis listens there: the call runs alone, and is observed.
    /// let group: RedisGroup<String> = RedisGroup::builder()
    ///     .url("redis+unix:///nonexistent/redis.sock")
    ///     .metrics(flights.clone())
    ///     .codec(RawCodec)
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(group.work("k", || "v".to_string()).unwrap(), "v");
    /// assert_eq!(flights.0.load(Ordering::Relaxed), 1);
    /// assert_eq!(group.stats().degraded, 1);
    /// ```
    pub fn metrics<M: Metrics>(mut self, metrics: std::sync::Arc<M>) -> Self
    where
        V: 'static,
    {
        self.metrics = Some(Box::new(move |local| local.metrics(metrics)));
        self
    }

    /// How values become bytes in Redis and back (required).
    pub fn codec(mut self, codec: impl Codec<V> + 'static) -> Self {
        self.codec = Some(Box::new(codec));
        self
    }

    /// Builds the group and starts its two threads (the subscriber and the
    /// lease renewer), which end when the group is dropped. Connects to
    /// nothing yet.
    ///
    /// # Errors
    ///
    /// [`BuildError::Setting`](super::BuildError::Setting) naming the
    /// setting that is missing or makes no sense,
    /// [`BuildError::Url`](super::BuildError::Url) for a URL that does not
    /// parse, [`BuildError::Spawn`](super::BuildError::Spawn) if a thread
    /// cannot start.
    pub fn build(self) -> Result<RedisGroup<V>, BuildError> {
        let client = match self.client {
            None => {
                return Err(BuildError::setting(
                    "url",
                    "no Redis given: call url() or client()",
                ))
            }
            Some(Err(e)) => return Err(BuildError::Url(e)),
            Some(Ok(client)) => client,
        };
        let Some(codec) = self.codec else {
            return Err(BuildError::setting("codec", "no codec given: call codec()"));
        };
        check_namespace(&self.namespace).map_err(|p| BuildError::setting("namespace", p))?;
        if self.lease < Duration::from_millis(30) {
            return Err(BuildError::setting("lease", "must be at least 30 ms"));
        }
        if self.op_timeout.is_zero() || self.op_timeout >= self.lease {
            return Err(BuildError::setting(
                "op_timeout",
                "must be above zero and below the lease",
            ));
        }
        if self.result_ttl < Duration::from_millis(1) {
            return Err(BuildError::setting("result_ttl", "must be at least 1 ms"));
        }
        if self.wait_timeout.is_zero() {
            return Err(BuildError::setting("wait_timeout", "must be above zero"));
        }
        if self.max_record_bytes < 4 {
            return Err(BuildError::setting(
                "max_record_bytes",
                "must be at least 4",
            ));
        }
        let names = Names::new(&self.namespace);
        let link = Link::new(client, names, self.op_timeout, self.retry_after);
        let settings = Settings {
            lease: self.lease,
            result_ttl: self.result_ttl,
            error_ttl: self.error_ttl,
            wait_timeout: self.wait_timeout,
            max_record_bytes: self.max_record_bytes,
            strict: self.strict,
            name: self.name,
        };
        let fleet = Shared::new(Fleet::new(link, settings));
        let weak = Shared::downgrade(&fleet);
        sync::spawn_thread(
            "sf-redis-subscriber".into(),
            Box::new(move || fleet::subscriber(weak)),
        )
        .map_err(BuildError::Spawn)?;
        let strong = fleet.clone();
        if let Err(e) = sync::spawn_thread(
            "sf-redis-renewer".into(),
            Box::new(move || fleet::renewer(strong)),
        ) {
            fleet.close();
            return Err(BuildError::Spawn(e));
        }
        let mut local = Group::builder().error_if(|outcome: &Outcome<V>| outcome.is_err());
        if let Some(name) = self.name {
            local = local.name(name);
        }
        if let Some(with_metrics) = self.metrics {
            local = with_metrics(local);
        }
        Ok(RedisGroup {
            local: local.build(),
            codec,
            fleet,
        })
    }
}

impl<V> fmt::Debug for RedisGroupBuilder<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisGroupBuilder")
            .field("namespace", &self.namespace)
            .field("lease", &self.lease)
            .field("result_ttl", &self.result_ttl)
            .field("error_ttl", &self.error_ttl)
            .field("op_timeout", &self.op_timeout)
            .field("retry_after", &self.retry_after)
            .field("wait_timeout", &self.wait_timeout)
            .field("max_record_bytes", &self.max_record_bytes)
            .field("strict", &self.strict)
            .finish_non_exhaustive()
    }
}
