//! The crate's error and panic-payload types.

use std::any::Any;
use std::fmt;

use crate::sync::{Shared, Text};

/// The panic payload a follower unwinds with when the leader of its flight
/// panicked.
///
/// Returned by nothing: it arrives as the payload of the panic that
/// [`Group::work`](crate::Group::work) and
/// [`Group::work_shared`](crate::Group::work_shared) raise in every follower
/// of a flight whose `f` panicked. Downcast it from the payload that
/// [`std::panic::catch_unwind`] hands you:
///
/// ```
/// use singleflight_sync::{Group, LeaderPanicked};
/// use std::sync::{Arc, Barrier};
/// use std::thread;
///
/// let group: Arc<Group<String, u32>> = Arc::new(Group::new());
/// let started = Arc::new(Barrier::new(2));
/// let leader = {
///     let (group, started) = (group.clone(), started.clone());
///     thread::spawn(move || {
///         group.work("k", || {
///             started.wait();
///             while group.waiters("k") == 0 {
///                 thread::yield_now();
///             }
///             panic!("backend down")
///         })
///     })
/// };
/// started.wait();
/// let payload = std::panic::catch_unwind(|| group.work("k", || 1)).unwrap_err();
/// let cause = payload.downcast_ref::<LeaderPanicked>().unwrap();
/// assert_eq!(cause.message(), "backend down");
/// assert!(leader.join().is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaderPanicked {
    message: Text,
    group: Option<&'static str>,
}

impl LeaderPanicked {
    pub(crate) fn from_payload(payload: &(dyn Any + Send), group: Option<&'static str>) -> Self {
        let message: Text = if let Some(s) = payload.downcast_ref::<&'static str>() {
            (*s).into()
        } else if let Some(s) = payload.downcast_ref::<String>() {
            s.as_str().into()
        } else if let Some(inner) = payload.downcast_ref::<LeaderPanicked>() {
            // A leader that was itself a follower of a nested flight: keep
            // the root cause rather than a message about a message.
            inner.message.clone()
        } else {
            "a panic payload that is not a string".into()
        };
        LeaderPanicked { message, group }
    }

    /// The leader's panic message (`"a panic payload that is not a string"`
    /// when it panicked with some other payload type).
    ///
    /// # Examples
    ///
    /// ```
    /// use singleflight_sync::{Error, Group};
    /// use std::time::Duration;
    ///
    /// let group: Group<String, u32> = Group::new();
    /// let r = group.work_timeout("k", Duration::from_secs(5), |_| panic!("backend down"));
    /// assert!(matches!(&r, Err(Error::Panicked(c)) if c.message() == "backend down"));
    /// let r = group.work_timeout("k", Duration::from_secs(5), |_| std::panic::panic_any(7));
    /// let text = "a panic payload that is not a string";
    /// assert!(matches!(&r, Err(Error::Panicked(c)) if c.message() == text));
    /// ```
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The name of the group, if it was given one with
    /// [`GroupBuilder::name`](crate::GroupBuilder::name).
    ///
    /// # Examples
    ///
    /// ```
    /// use singleflight_sync::{Error, Group};
    /// use std::time::Duration;
    ///
    /// let group: Group<String, u32> = Group::builder().name("users").build();
    /// let r = group.work_timeout("k", Duration::from_secs(5), |_| panic!("backend down"));
    /// assert!(matches!(&r, Err(Error::Panicked(c)) if c.group() == Some("users")));
    /// assert_eq!(
    ///     r.unwrap_err().to_string(),
    ///     "the leader of a flight in group `users` panicked: backend down"
    /// );
    /// ```
    pub fn group(&self) -> Option<&'static str> {
        self.group
    }
}

impl fmt::Display for LeaderPanicked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.group {
            Some(name) => write!(f, "the leader of a flight in group `{name}` panicked: ")?,
            None => f.write_str("the leader of this flight panicked: ")?,
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for LeaderPanicked {}

/// Why a flight gave a caller no value: returned by
/// [`Group::work_deadline`](crate::Group::work_deadline),
/// [`Group::work_timeout`](crate::Group::work_timeout) and sent by
/// [`Group::do_chan`](crate::Group::do_chan).
///
/// `Clone`, so one failure can reach every caller of a flight.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Error {
    /// This caller's deadline passed before the flight ended. The flight
    /// goes on for the others.
    Timeout,
    /// The flight was cancelled by [`Group::cancel`](crate::Group::cancel)
    /// before it ended.
    Cancelled,
    /// The flight's `f` panicked; carries the panic's message.
    Panicked(LeaderPanicked),
    /// The spawner could not run the flight (it returned an error, panicked,
    /// or dropped the job); carries the cause.
    Spawn(Shared<std::io::Error>),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Timeout => f.write_str("the deadline passed before the flight ended"),
            Error::Cancelled => f.write_str("the flight was cancelled"),
            Error::Panicked(cause) => fmt::Display::fmt(cause, f),
            Error::Spawn(cause) => write!(f, "the flight could not be spawned: {cause}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Panicked(cause) => Some(cause),
            Error::Spawn(cause) => Some(&**cause),
            Error::Timeout | Error::Cancelled => None,
        }
    }
}

/// A [`TtlCacheBuilder`](crate::TtlCacheBuilder) setting that makes no sense;
/// returned by [`TtlCacheBuilder::build`](crate::TtlCacheBuilder::build).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    setting: &'static str,
    problem: String,
}

impl ConfigError {
    pub(crate) fn new(setting: &'static str, problem: impl Into<String>) -> Self {
        ConfigError {
            setting,
            problem: problem.into(),
        }
    }

    /// The builder method whose value was refused, e.g. `"max_entries"`.
    ///
    /// # Examples
    ///
    /// ```
    /// use singleflight_sync::TtlCache;
    /// use std::time::Duration;
    ///
    /// let err = TtlCache::<String, u8>::builder()
    ///     .ttl(Duration::from_secs(1))
    ///     .max_entries(0)
    ///     .build()
    ///     .unwrap_err();
    /// assert_eq!(err.setting(), "max_entries");
    /// assert_eq!(err.to_string(), "invalid TtlCache setting `max_entries`: must be at least 1");
    /// ```
    pub fn setting(&self) -> &'static str {
        self.setting
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid TtlCache setting `{}`: {}",
            self.setting, self.problem
        )
    }
}

impl std::error::Error for ConfigError {}

/// Why fallible work gave a caller no value, in one type: the work's own
/// error (shared by every caller of the flight, so it needs no `Clone`), or
/// why the flight itself gave none. Returned by
/// [`Group::try_work_deadline`](crate::Group::try_work_deadline),
/// [`Group::try_work_timeout`](crate::Group::try_work_timeout) and
/// [`into_result`](crate::IntoResult::into_result) on a `do_chan` reply.
///
/// # Examples
///
/// ```
/// use singleflight_sync::{Group, TryError};
/// use std::sync::Arc;
/// use std::time::Duration;
///
/// let group: Group<String, Result<u32, Arc<std::io::Error>>> = Group::new();
/// let r = group.try_work_timeout("k", Duration::from_secs(5), |_| {
///     Err(std::io::Error::other("db down"))
/// });
/// match r {
///     Err(TryError::Failed(e)) => assert_eq!(e.to_string(), "db down"),
///     other => panic!("{other:?}"),
/// }
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum TryError<E> {
    /// The work returned this error; every caller of the flight shares it.
    Failed(Shared<E>),
    /// This caller's deadline passed before the flight ended.
    Timeout,
    /// The flight was cancelled before it ended.
    Cancelled,
    /// The flight's work panicked; carries the panic's message.
    Panicked(LeaderPanicked),
    /// The spawner could not run the flight; carries the cause.
    Spawn(Shared<std::io::Error>),
}

impl<E> Clone for TryError<E> {
    fn clone(&self) -> Self {
        match self {
            TryError::Failed(e) => TryError::Failed(e.clone()),
            TryError::Timeout => TryError::Timeout,
            TryError::Cancelled => TryError::Cancelled,
            TryError::Panicked(p) => TryError::Panicked(p.clone()),
            TryError::Spawn(e) => TryError::Spawn(e.clone()),
        }
    }
}

impl<E> From<Error> for TryError<E> {
    fn from(e: Error) -> Self {
        match e {
            Error::Timeout => TryError::Timeout,
            Error::Cancelled => TryError::Cancelled,
            Error::Panicked(p) => TryError::Panicked(p),
            Error::Spawn(e) => TryError::Spawn(e),
        }
    }
}

impl<E: fmt::Display> fmt::Display for TryError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryError::Failed(e) => fmt::Display::fmt(&**e, f),
            TryError::Timeout => fmt::Display::fmt(&Error::Timeout, f),
            TryError::Cancelled => fmt::Display::fmt(&Error::Cancelled, f),
            TryError::Panicked(p) => fmt::Display::fmt(p, f),
            TryError::Spawn(e) => write!(f, "the flight could not be spawned: {e}"),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for TryError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TryError::Failed(e) => Some(&**e),
            TryError::Panicked(p) => Some(p),
            TryError::Spawn(e) => Some(&**e),
            TryError::Timeout | TryError::Cancelled => None,
        }
    }
}
