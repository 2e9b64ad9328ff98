//! The crate's error and panic-payload types.

use std::any::Any;
use std::fmt;

use crate::sync::Text;

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
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The name of the group, if it was given one with
    /// [`GroupBuilder::name`](crate::GroupBuilder::name).
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
