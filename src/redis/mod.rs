//! Fleet-wide flights (feature `redis`): one execution per key across every
//! process that shares a Redis, not one per process.
//!
//! A fleet of replicas each with its own [`Group`](crate::Group) still sends
//! its database one query per replica when a hot key expires. A
//! [`RedisGroup`] first coalesces a process's threads in a local group, then
//! elects one leader across the fleet with a Redis lease; the others wait
//! for its result on pub/sub and read it from Redis. Redis trouble never
//! hangs or fails a call: every operation has a timeout, and the call runs
//! in its own process instead, counted in [`RedisStats::degraded`]. See
//! [`RedisGroup`] for the guarantee, stated precisely.
//!
//! Redis is shared ground: a record read back is untrusted input (a
//! malformed, foreign or oversized one is an [`Error::Decode`] for that
//! call, never a panic, never a transfer over
//! [`max_record_bytes`](RedisGroupBuilder::max_record_bytes)); key names
//! cannot collide across kinds or namespaces (see
//! [`namespace`](RedisGroupBuilder::namespace)); credentials and TLS go in
//! the URL (see [`RedisGroupBuilder`]). Lease tokens are random but not
//! cryptographic: they tell leaders apart, they do not authenticate them.
//! A message on the namespace's channel only wakes a waiter, which then
//! reads Redis again, so a forged one costs a read, never a wrong value;
//! the redis crate reads each message whole (Redis's own
//! `client-output-buffer-limit pubsub`, 32 MiB by default, bounds what it
//! will send one subscriber). Anyone who can write to the namespace's keys
//! can still plant a well-formed value: keep untrusted writers out with
//! Redis ACLs (a user restricted to `~<namespace>:*` and `&<namespace>:*`
//! needs nothing more).
//!
//! Its files run one way: the codec and errors; key names, tokens and
//! records; the counters; the link to Redis (pool, breaker, scripts); the
//! state shared with the subscriber and renewer threads; the group; its
//! builder.

mod codec;
mod error;
mod record;
mod stats;

mod link;

mod fleet;

mod group;

mod builder;

pub use self::builder::RedisGroupBuilder;
#[cfg(feature = "serde")]
#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
pub use self::codec::PostcardCodec;
pub use self::codec::{Codec, CodecError, RawCodec};
pub use self::error::{BuildError, DecodeError, Error, RemoteError};
pub use self::group::RedisGroup;
pub use self::stats::RedisStats;
