//! One flight's meeting point for its followers.
//!
//! A `Call` exists only once somebody joins a flight: an uncontended flight
//! never allocates one. The leader publishes the outcome here after it has
//! taken the flight's entry out of the map, so the number of followers is
//! final by then and each follower is counted exactly once.

use crate::error::LeaderPanicked;
use crate::sync::{Condvar, Mutex};

pub(crate) struct Call<V> {
    state: Mutex<State<V>>,
    done: Condvar,
}

struct State<V> {
    outcome: Outcome<V>,
    /// Followers that joined and have not yet taken the outcome. Exact: a
    /// follower adds itself under the shard lock while the flight is in the
    /// map, and removes itself when it takes the outcome.
    waiting: usize,
}

enum Outcome<V> {
    Pending,
    Value(V),
    Panicked(LeaderPanicked),
    /// The last follower moved the value out.
    Taken,
}

impl<V> Call<V> {
    pub(crate) fn new() -> Self {
        Call {
            state: Mutex::new(State {
                outcome: Outcome::Pending,
                waiting: 0,
            }),
            done: Condvar::new(),
        }
    }

    /// Counts one more follower. Called with the shard lock held and the
    /// flight still in the map, so the leader has not published yet.
    pub(crate) fn join(&self) {
        self.state.lock().waiting += 1;
    }

    /// How many followers are waiting now.
    pub(crate) fn waiting(&self) -> usize {
        self.state.lock().waiting
    }

    /// Publishes a leader's panic to every follower.
    pub(crate) fn publish_panic(&self, cause: LeaderPanicked) {
        self.publish(Outcome::Panicked(cause));
    }

    fn publish(&self, outcome: Outcome<V>) {
        let mut state = self.state.lock();
        state.outcome = outcome;
        // Notify while holding the lock: a follower tests `outcome` under
        // this same lock before each wait, so it either sees the outcome or
        // is already parked and gets this wakeup.
        self.done.notify_all();
        drop(state);
    }

    /// Blocks until the leader publishes, then takes this follower's share.
    pub(crate) fn wait(&self) -> Result<V, LeaderPanicked>
    where
        V: Clone,
    {
        let mut state = self.state.lock();
        while matches!(state.outcome, Outcome::Pending) {
            state = self.done.wait(state);
        }
        state.take()
    }
}

impl<V: Clone> Call<V> {
    /// Publishes the leader's value: one clone for the followers to share,
    /// none when every follower has already gone.
    ///
    /// # Panics
    ///
    /// If `V::clone` panics, the followers are released with that panic as
    /// their [`LeaderPanicked`] cause, and the panic resumes in the leader.
    pub(crate) fn publish_value(&self, value: &V, group: Option<&'static str>) {
        let mut state = self.state.lock();
        if state.waiting == 0 {
            return;
        }
        let copy = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| value.clone()));
        match copy {
            Ok(copy) => {
                state.outcome = Outcome::Value(copy);
                self.done.notify_all();
            }
            Err(payload) => {
                state.outcome = Outcome::Panicked(LeaderPanicked::from_payload(&*payload, group));
                self.done.notify_all();
                drop(state);
                std::panic::resume_unwind(payload);
            }
        }
    }
}

impl<V: Clone> State<V> {
    /// The first followers clone the shared value; the last one moves it, so
    /// a flight with `n` followers costs exactly `n` clones in all.
    fn take(&mut self) -> Result<V, LeaderPanicked> {
        self.waiting -= 1;
        match &self.outcome {
            Outcome::Value(value) if self.waiting > 0 => Ok(value.clone()),
            Outcome::Value(_) => match std::mem::replace(&mut self.outcome, Outcome::Taken) {
                Outcome::Value(value) => Ok(value),
                _ => unreachable!("matched as a value just above"),
            },
            Outcome::Panicked(cause) => Err(cause.clone()),
            Outcome::Pending | Outcome::Taken => {
                unreachable!("a follower takes only a published outcome, and only its own share")
            }
        }
    }
}
