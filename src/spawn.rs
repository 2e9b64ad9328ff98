//! Where detached flights run: a thread per flight by default, or the
//! caller's hook (a pool). Below the group, which holds one.

use std::fmt;
use std::io;
use std::panic::{self, AssertUnwindSafe};

use crate::error::LeaderPanicked;
use crate::sync::{self, Mutex, Shared};

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

/// What a launched job runs, and how it ends when it will never run.
pub(crate) trait Abandon {
    /// Ends the work unrun: its flights out of the map, their waiters told
    /// `cause`.
    fn abandon(self, cause: io::Error);
}

impl Spawner {
    /// Hands `runner` to the spawner, making sure that however the spawner
    /// fails (an error, a panic, a job dropped unrun) the runner is
    /// abandoned exactly once with the cause, and otherwise `run` runs it.
    pub(crate) fn launch<R>(&self, name: Option<&'static str>, runner: R, run: fn(R))
    where
        R: Abandon + Send + 'static,
    {
        let slot = Shared::new(Mutex::new(Slot {
            runner: Some(runner),
            spawn_returned: false,
            job_dropped: false,
        }));
        let job = Guard(slot.clone());
        let spawned = self.spawn(
            name,
            Box::new(move || {
                let runner = job.0.lock().runner.take();
                if let Some(runner) = runner {
                    run(runner);
                }
            }),
        );
        let mut slot = slot.lock();
        slot.spawn_returned = true;
        let unrun = match spawned {
            Err(cause) => slot.runner.take().map(|r| (r, cause)),
            Ok(()) if slot.job_dropped => slot.runner.take().map(|r| (r, dropped_unrun())),
            Ok(()) => None,
        };
        drop(slot);
        if let Some((runner, cause)) = unrun {
            runner.abandon(cause);
        }
    }
}

/// Who abandons a runner that has not run: the job until it runs, the
/// launcher whose spawn failed; `spawn_returned` and `job_dropped` settle
/// which, so the spawner's own error reaches the waiters when there is one.
struct Slot<R> {
    runner: Option<R>,
    spawn_returned: bool,
    job_dropped: bool,
}

/// The job's hold on its runner: dropped unrun after the spawn returned, it
/// abandons the runner itself.
struct Guard<R: Abandon>(Shared<Mutex<Slot<R>>>);

impl<R: Abandon> Drop for Guard<R> {
    fn drop(&mut self) {
        let mut slot = self.0.lock();
        slot.job_dropped = true;
        if slot.spawn_returned {
            if let Some(runner) = slot.runner.take() {
                drop(slot);
                runner.abandon(dropped_unrun());
            }
        }
    }
}

fn dropped_unrun() -> io::Error {
    io::Error::other("the spawner dropped the flight without running it")
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
