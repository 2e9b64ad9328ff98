//! The fleet's error types: what a call can fail with, and what a builder
//! can refuse.

use std::convert::Infallible;
use std::fmt;

use super::codec::CodecError;
use crate::error::LeaderPanicked;
use crate::sync::{Shared, Text};

/// Why a [`RedisGroup`](super::RedisGroup) call gave no value.
///
/// `E` is the error type of the caller's `f`
/// ([`try_work`](super::RedisGroup::try_work)); [`work`](super::RedisGroup::work)'s
/// `f` cannot fail, so its error is `Error<Infallible>`, the default.
/// `Clone`, so one failure can reach every caller of a flight.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error<E = Infallible> {
    /// The flight's `f` returned this error in this process (this caller's
    /// own `f`, or its local leader's), shared by every local caller.
    Failed(Shared<E>),
    /// The flight's leader failed and the error reached this caller as
    /// text: the leader ran in another process (and left an error record,
    /// see [`error_ttl`](super::RedisGroupBuilder::error_ttl)), or in this
    /// process with an `f` of another error type on the same key.
    Remote(RemoteError),
    /// The flight's `f` panicked: in this process (this caller is a local
    /// follower) or in another one (which left a panic record).
    Panicked(LeaderPanicked),
    /// Strict mode only (see [`strict`](super::RedisGroupBuilder::strict)):
    /// a Redis operation failed or timed out before `f` ran. Without strict
    /// mode the call runs `f` in this process instead.
    Redis(Shared<redis::RedisError>),
    /// Strict mode only: a leader in another process held the key past
    /// [`wait_timeout`](super::RedisGroupBuilder::wait_timeout).
    Timeout,
    /// The flight's record in Redis could not be read: not a record of this
    /// library, truncated, over
    /// [`max_record_bytes`](super::RedisGroupBuilder::max_record_bytes), or
    /// refused by the [`Codec`](super::Codec).
    Decode(Shared<DecodeError>),
}

impl<E> Clone for Error<E> {
    fn clone(&self) -> Self {
        match self {
            Error::Failed(e) => Error::Failed(e.clone()),
            Error::Remote(e) => Error::Remote(e.clone()),
            Error::Panicked(e) => Error::Panicked(e.clone()),
            Error::Redis(e) => Error::Redis(e.clone()),
            Error::Timeout => Error::Timeout,
            Error::Decode(e) => Error::Decode(e.clone()),
        }
    }
}

impl<E: fmt::Display> fmt::Display for Error<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Failed(e) => write!(f, "the flight failed: {e}"),
            Error::Remote(e) => fmt::Display::fmt(e, f),
            Error::Panicked(e) => fmt::Display::fmt(e, f),
            Error::Redis(e) => write!(f, "redis: {e}"),
            Error::Timeout => {
                f.write_str("the leader in another process held the key past wait_timeout")
            }
            Error::Decode(e) => fmt::Display::fmt(e, f),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for Error<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Failed(e) => Some(&**e),
            Error::Remote(e) => Some(e),
            Error::Panicked(e) => Some(e),
            Error::Redis(e) => Some(&**e),
            Error::Decode(e) => Some(&**e),
            Error::Timeout => None,
        }
    }
}

/// A leader's error that reached a caller as text; in
/// [`Error::Remote`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteError {
    pub(crate) message: Text,
}

impl RemoteError {
    /// The leader's error, as its `Display` wrote it (cut to at most 1 KiB).
    ///
    /// # Examples
    ///
    /// See [`RedisGroup::try_work`](super::RedisGroup::try_work).
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for RemoteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the flight's leader failed: {}", self.message)
    }
}

impl std::error::Error for RemoteError {}

/// Why a record read from Redis was refused; in [`Error::Decode`].
#[derive(Debug)]
#[non_exhaustive]
pub enum DecodeError {
    /// The record is larger than
    /// [`max_record_bytes`](super::RedisGroupBuilder::max_record_bytes); it
    /// was not transferred.
    TooLarge {
        /// The record's size in Redis.
        size: u64,
        /// The limit it broke.
        limit: usize,
    },
    /// The record does not start with this library's header, or its kind
    /// is unknown, or its error text is not UTF-8.
    Malformed(&'static str),
    /// The [`Codec`](super::Codec) refused the value's bytes.
    Codec(CodecError),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::TooLarge { size, limit } => write!(
                f,
                "the flight's record in redis is {size} bytes, over max_record_bytes ({limit})"
            ),
            DecodeError::Malformed(why) => {
                write!(f, "the flight's record in redis is malformed: {why}")
            }
            DecodeError::Codec(e) => write!(f, "the flight's value in redis does not decode: {e}"),
        }
    }
}

impl std::error::Error for DecodeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DecodeError::Codec(e) => Some(e),
            _ => None,
        }
    }
}

/// Why [`RedisGroupBuilder::build`](super::RedisGroupBuilder::build)
/// refused to build a group.
#[derive(Debug)]
#[non_exhaustive]
pub enum BuildError {
    /// A setting makes no sense; names the builder method.
    Setting {
        /// The builder method whose value was refused, e.g. `"lease"`.
        setting: &'static str,
        /// What is wrong with it.
        problem: String,
    },
    /// The Redis URL does not parse (no connection is made at build time).
    Url(redis::RedisError),
    /// The group's subscriber or lease-renewal thread could not be started.
    Spawn(std::io::Error),
}

impl BuildError {
    pub(crate) fn setting(setting: &'static str, problem: impl Into<String>) -> Self {
        BuildError::Setting {
            setting,
            problem: problem.into(),
        }
    }
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::Setting { setting, problem } => {
                write!(f, "invalid RedisGroup setting `{setting}`: {problem}")
            }
            BuildError::Url(e) => write!(f, "invalid redis URL: {e}"),
            BuildError::Spawn(e) => write!(f, "could not start the RedisGroup's threads: {e}"),
        }
    }
}

impl std::error::Error for BuildError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BuildError::Url(e) => Some(e),
            BuildError::Spawn(e) => Some(e),
            BuildError::Setting { .. } => None,
        }
    }
}
