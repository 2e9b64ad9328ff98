//! Where detached flights run: a thread per flight by default, or the
//! caller's hook (a pool). Below the group, which holds one.

use std::fmt;
use std::io;
use std::panic::{self, AssertUnwindSafe};

use crate::error::LeaderPanicked;
use crate::sync::{self, Shared};

/// The job a spawner runs: a detached flight, start to end.
pub type Job = Box<dyn FnOnce() + Send + 'static>;

pub(crate) type Hook = dyn Fn(Job) -> io::Result<()> + Send + Sync;

/// Runs detached flights: a new named thread each, or the caller's hook.
#[derive(Clone, Default)]
pub(crate) struct Spawner(Option<Shared<Hook>>);

impl Spawner {
    /// A spawner that hands each job to `hook`.
    pub(crate) fn hook(hook: Shared<Hook>) -> Self {
        Spawner(Some(hook))
    }

    /// Hands `job` to the hook. A hook that panics counts as one that
    /// failed: the panic becomes the error.
    pub(crate) fn spawn(&self, name: Option<&'static str>, job: Job) -> io::Result<()> {
        let Some(hook) = &self.0 else {
            let name = name.map_or_else(
                || "singleflight".to_string(),
                |n| format!("singleflight-{n}"),
            );
            return sync::spawn_thread(name, job);
        };
        match panic::catch_unwind(AssertUnwindSafe(|| hook(job))) {
            Ok(result) => result,
            Err(payload) => {
                let cause = LeaderPanicked::from_payload(&*payload, name);
                Err(io::Error::other(format!(
                    "the spawner panicked: {}",
                    cause.message()
                )))
            }
        }
    }
}

impl fmt::Debug for Spawner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "custom"
        } else {
            "std::thread"
        })
    }
}
