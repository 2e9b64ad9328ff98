//! What every model shares: a small group, a quiet panic hook, and a way to
//! run a call that may panic and say how it ended.

#![allow(dead_code)] // each model file uses its own part of this module

use std::any::Any;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

use loom::sync::{Arc, Condvar, Mutex};
use singleflight_sync::{Flight, Group, LeaderPanicked};

/// The one key every model contends on.
pub const KEY: u32 = 7;

/// The group name, so a model can check that a `LeaderPanicked` names it.
pub const NAME: &str = "loom";

/// The message of every panic a model raises on purpose.
pub const BOOM: &str = "boom";

/// One shard: the smallest state for loom to explore.
pub fn group() -> Arc<Group<u32, u32>> {
    Arc::new(Group::builder().shards(1).name(NAME).build())
}

/// What the leader of the flight whose value is `value` gets.
pub fn led(value: u32, shared: bool) -> Flight<u32> {
    Flight {
        value,
        shared,
        leader: true,
    }
}

/// What a caller that joined the flight whose value is `value` gets.
pub fn joined(value: u32) -> Flight<u32> {
    Flight {
        value,
        shared: true,
        leader: false,
    }
}

/// `loom::model`, with the panics a model raises on purpose (and the
/// `LeaderPanicked` panics they cause) kept off stderr: loom runs thousands of
/// interleavings and would print each one. Every other panic, loom's verdicts
/// included, still goes to the default hook.
pub fn model<F>(f: F)
where
    F: Fn() + Sync + Send + 'static,
{
    static QUIET: Once = Once::new();
    QUIET.call_once(|| {
        let default = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            let payload = info.payload();
            let on_purpose = payload.downcast_ref::<&str>() == Some(&BOOM)
                || payload.downcast_ref::<LeaderPanicked>().is_some();
            if !on_purpose {
                default(info);
            }
        }));
    });
    loom::model(f);
}

/// A one-way gate built from loom's Mutex and Condvar, to fix the order of a
/// model's steps with blocking loom can see. (`loom::sync::Notify` is not a
/// substitute: loom explores spurious returns from its `wait`.)
#[derive(Debug, Default)]
pub struct Gate {
    open: Mutex<bool>,
    opened: Condvar,
}

impl Gate {
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    pub fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.opened.notify_all();
    }

    /// Returns once the gate is open (at once if it already is).
    pub fn wait(&self) {
        let mut open = self.open.lock().unwrap();
        while !*open {
            open = self.opened.wait(open).unwrap();
        }
    }
}

/// How one call to `work_shared` ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// It returned.
    Returned(Flight<u32>),
    /// It led, and its own `f` panicked with [`BOOM`].
    Panicked,
    /// It followed a flight whose leader panicked.
    LeaderPanicked(LeaderPanicked),
}

/// Runs `call`, catching the panics a model expects. Any other panic (one of
/// loom's own, such as a deadlock verdict) is resumed untouched.
pub fn catch(call: impl FnOnce() -> Flight<u32>) -> Ended {
    match panic::catch_unwind(AssertUnwindSafe(call)) {
        Ok(flight) => Ended::Returned(flight),
        Err(payload) => classify(payload),
    }
}

fn classify(payload: Box<dyn Any + Send>) -> Ended {
    if payload.downcast_ref::<&str>() == Some(&BOOM) {
        return Ended::Panicked;
    }
    match payload.downcast::<LeaderPanicked>() {
        Ok(cause) => Ended::LeaderPanicked(*cause),
        Err(other) => panic::resume_unwind(other),
    }
}

/// Counts, across one `loom::model` run, the interleavings that took one way
/// through a model, so the model can check afterwards that loom reached it.
pub type Tally = std::sync::atomic::AtomicUsize;

/// The fewest preemptions with which every tallied way is reachable in the
/// models that tally: with a lower `LOOM_MAX_PREEMPTIONS`, loom may not reach
/// them all, and [`assert_reached`] says so instead of failing.
pub const PREEMPTIONS_TO_REACH_ALL: usize = 2;

/// Checks, after `loom::model` returns, that every way in `ways` was taken in
/// some interleaving: a change that made one unreachable would otherwise
/// leave that way's checks vacuous. Skipped (with a note on stderr) when
/// `LOOM_MAX_PREEMPTIONS` is below [`PREEMPTIONS_TO_REACH_ALL`].
pub fn assert_reached(ways: &[(&Tally, &str)]) {
    use std::sync::atomic::Ordering::Relaxed;

    let bound = std::env::var("LOOM_MAX_PREEMPTIONS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok());
    if bound.is_some_and(|b| b < PREEMPTIONS_TO_REACH_ALL) {
        eprintln!(
            "note: LOOM_MAX_PREEMPTIONS is below {PREEMPTIONS_TO_REACH_ALL}: \
             not checking that every way through the model was reached"
        );
        return;
    }
    for (tally, what) in ways {
        assert!(
            tally.load(Relaxed) > 0,
            "loom explored no interleaving in which {what}"
        );
    }
}
