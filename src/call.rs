//! One flight's meeting point for the callers that wait on it.
//!
//! A `Call` exists only once somebody waits on a flight: an uncontended
//! inline flight never allocates one. Waiters are threads blocked on the
//! Condvar and `do_chan` receivers, whose senders are kept here. The flight's
//! runner publishes the outcome after it has taken the flight out of the map,
//! so no waiter can join afterwards and the count of waiters is final; each
//! waiter then takes its share exactly once.

use crossbeam_channel::{SendError, Sender};

use crate::error::{Error, LeaderPanicked};
use crate::sync::{Condvar, Mutex};
use std::time::Instant;

/// A caught panic's payload.
type Payload = Box<dyn std::any::Any + Send>;

/// What a caller of [`Group::work_shared`](crate::Group::work_shared) receives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Flight<V> {
    /// The flight's value: moved to the leader, cloned for each follower.
    pub value: V,
    /// Whether the value went to more than one caller. Always `true` for a
    /// follower; `true` for the leader when anyone joined its flight (as in
    /// Go's `x/sync/singleflight`).
    pub shared: bool,
    /// Whether this caller ran `f`.
    pub leader: bool,
}

/// What a `do_chan` receiver gets.
pub(crate) type Reply<V> = Result<Flight<V>, Error>;

pub(crate) struct Call<V> {
    state: Mutex<State<V>>,
    done: Condvar,
}

struct State<V> {
    outcome: Outcome<V>,
    /// Waiters that have not yet taken the outcome: blocked threads plus
    /// unsent replies. Exact: a waiter adds itself under the shard lock while
    /// the flight is joinable, and removes itself when it takes the outcome
    /// or leaves.
    /// (`u32`s, like `joined`, to keep a flight within DESIGN.md's 128
    /// bytes: four billion waiters on one key is not a workload.)
    waiting: u32,
    /// Every caller that ever shared this flight, its leader included; final
    /// once published, so `shared` is `joined > 1` for everyone.
    joined: u32,
    /// Replies for `do_chan` receivers, each with whether it led.
    replies: Vec<(Sender<Reply<V>>, bool)>,
}

enum Outcome<V> {
    Pending,
    Value(V),
    /// Boxed: failures are rare, and every call pays for the largest variant.
    Failed(Box<Error>),
    /// The last waiter moved the value out.
    Taken,
}

/// A waiter's share: the value (or why there is none) and whether the flight
/// served more than one caller.
pub(crate) type Share<V> = Result<(V, bool), Error>;

/// Who an outcome reached when it was published, for the metrics.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Delivered {
    /// Waiters that take (or were sent) this outcome.
    pub(crate) waiters: usize,
    /// Whether more than one caller shared the flight.
    pub(crate) shared: bool,
    /// A `V::clone` panicked while copies were made: the waiters not yet
    /// served got [`Error::Panicked`], so the flight counts as a panic.
    pub(crate) clone_panicked: bool,
}

impl<V> Call<V> {
    /// A call for a flight that `joined` callers share from the start (its
    /// inline leader, or the caller that started a detached flight).
    pub(crate) fn new(joined: u32) -> Self {
        Call {
            state: Mutex::new(State {
                outcome: Outcome::Pending,
                waiting: 0,
                joined,
                replies: Vec::new(),
            }),
            done: Condvar::new(),
        }
    }

    /// Counts one more blocked waiter. Called with the shard lock held and
    /// the flight joinable, so nothing has been published yet.
    pub(crate) fn join(&self) {
        let mut state = self.state.lock();
        state.waiting += 1;
        state.joined += 1;
    }

    /// Adds a `do_chan` reply; it counts as waiting until it is sent. Same
    /// locking rule as [`join`](Self::join).
    pub(crate) fn join_reply(&self, reply: Sender<Reply<V>>, leader: bool) {
        let mut state = self.state.lock();
        state.waiting += 1;
        state.joined += 1;
        state.replies.push((reply, leader));
    }

    /// Every caller that shared the flight so far, its leader or starter
    /// included.
    pub(crate) fn joined(&self) -> usize {
        self.state.lock().joined as usize
    }

    /// How many waiters have not taken the outcome yet.
    pub(crate) fn waiting(&self) -> usize {
        self.state.lock().waiting as usize
    }

    /// Publishes a failure (a panic, a cancellation, a spawn error) to every
    /// waiter. A call that already has an outcome keeps it.
    pub(crate) fn publish_error(&self, error: Error) -> Option<Delivered> {
        let mut state = self.state.lock();
        if !matches!(state.outcome, Outcome::Pending) {
            return None;
        }
        let delivered = state.delivered();
        state.fail(error);
        // Notify under the lock: a waiter tests `outcome` under this same
        // lock before each wait, so it either sees the outcome or is parked
        // already and gets this wakeup.
        self.done.notify_all();
        Some(delivered)
    }
}

impl<V: Clone> Call<V> {
    /// Publishes a value that no caller holds (a detached flight's): the last
    /// waiter to take it moves it, so `n` waiters cost `n - 1` clones. With
    /// nobody left, or an outcome already published (a cancelled flight), it
    /// is dropped here, after the lock is released.
    ///
    /// If `V::clone` panics while copies are made, the waiters not yet served
    /// get [`Error::Panicked`] and the result says so; the panic is not
    /// resumed (this runs on a spawner's thread, which a panic could take
    /// down).
    pub(crate) fn publish_owned(&self, value: V, group: Option<&'static str>) -> Option<Delivered> {
        let mut garbage = Garbage::default();
        let mut state = self.state.lock();
        if !matches!(state.outcome, Outcome::Pending) {
            drop(state);
            garbage.values.push(value);
            garbage.dispose();
            return None;
        }
        let mut delivered = state.delivered();
        delivered.clone_panicked = state.hand_out(value, group, &mut garbage).is_err();
        self.done.notify_all();
        drop(state);
        garbage.dispose();
        Some(delivered)
    }

    /// Publishes the value an inline leader keeps: one clone for the waiters
    /// to share, none when every waiter has left already.
    ///
    /// If `V::clone` panics, the waiters get [`Error::Panicked`] with that
    /// panic's message, and the payload comes back (with who was told) for
    /// the leader to resume once it has reported the flight's end.
    pub(crate) fn publish_copy(
        &self,
        value: &V,
        group: Option<&'static str>,
    ) -> Result<Delivered, (Delivered, Payload)> {
        let mut state = self.state.lock();
        let mut delivered = state.delivered();
        if state.waiting == 0 || !matches!(state.outcome, Outcome::Pending) {
            return Ok(delivered);
        }
        let mut garbage = Garbage::default();
        let handed = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| value.clone()))
        {
            Ok(copy) => state.hand_out(copy, group, &mut garbage),
            Err(payload) => {
                state.fail(Error::Panicked(LeaderPanicked::from_payload(
                    &*payload, group,
                )));
                Err(payload)
            }
        };
        // Notify under the lock: see `publish_error`.
        self.done.notify_all();
        drop(state);
        garbage.dispose();
        handed.map(|()| delivered).map_err(|payload| {
            delivered.clone_panicked = true;
            (delivered, payload)
        })
    }

    /// Blocks until the outcome is published or `deadline` passes, and takes
    /// this waiter's share. `None` means the deadline passed first; the
    /// waiter is still counted and must [`leave`](Self::leave).
    pub(crate) fn wait(&self, deadline: Option<Instant>) -> Option<Share<V>> {
        let mut state = self.state.lock();
        loop {
            if !matches!(state.outcome, Outcome::Pending) {
                return Some(state.take());
            }
            match deadline {
                None => state = self.done.wait(state),
                Some(deadline) if Instant::now() >= deadline => return None,
                Some(deadline) => state = self.done.wait_until(state, deadline),
            }
        }
    }

    /// A waiter whose deadline passed gives up its place, unless the outcome
    /// arrived meanwhile (then it takes its share, keeping the count exact).
    /// Returns the share, or `Err` with how many waiters are left and
    /// whether the flight was shared.
    pub(crate) fn leave(&self) -> Result<Share<V>, (usize, bool)> {
        let mut state = self.state.lock();
        if !matches!(state.outcome, Outcome::Pending) {
            return Ok(state.take());
        }
        state.waiting -= 1;
        Err((state.waiting as usize, state.joined > 1))
    }
}

impl<V> State<V> {
    /// Settles the outcome as `error`: sent to every reply, left for every
    /// blocked waiter.
    fn fail(&mut self, error: Error) {
        for (reply, _) in std::mem::take(&mut self.replies) {
            self.waiting -= 1;
            let _ = reply.send(Err(error.clone()));
        }
        self.outcome = Outcome::Failed(Box::new(error));
    }

    fn delivered(&self) -> Delivered {
        Delivered {
            waiters: self.waiting as usize,
            shared: self.joined > 1,
            clone_panicked: false,
        }
    }
}

impl<V: Clone> State<V> {
    /// Sends the replies, then leaves the value for the blocked waiters. The
    /// last waiter served gets `value` itself; every other one a clone.
    ///
    /// Nothing of `V` is dropped here, under the call's lock: a copy whose
    /// receiver is gone, the reply senders (a receiver dropped after its
    /// message was sent leaves the message to its sender) and a value nobody
    /// takes all go to `garbage`, for the caller to drop once the outcome is
    /// published and the lock released. A `Drop` that panics then reaches no
    /// waiter.
    ///
    /// A `V::clone` that panics fails every waiter not yet served with
    /// [`Error::Panicked`] and hands back the panic's payload.
    fn hand_out(
        &mut self,
        value: V,
        group: Option<&'static str>,
        garbage: &mut Garbage<V>,
    ) -> Result<(), Payload> {
        let shared = self.joined > 1;
        let mut value = Some(value);
        let replies = std::mem::take(&mut self.replies);
        let mut result = Ok(());
        for (served, (reply, leader)) in replies.iter().enumerate() {
            self.waiting -= 1;
            let v = if self.waiting == 0 {
                value.take().expect("only the last waiter moves the value")
            } else {
                let original = value
                    .as_ref()
                    .expect("the value stays until the last waiter");
                match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| original.clone())) {
                    Ok(copy) => copy,
                    Err(payload) => {
                        self.waiting += 1;
                        let error = Error::Panicked(LeaderPanicked::from_payload(&*payload, group));
                        for (reply, _) in &replies[served..] {
                            self.waiting -= 1;
                            let _ = reply.send(Err(error.clone()));
                        }
                        self.outcome = Outcome::Failed(Box::new(error));
                        result = Err(payload);
                        break;
                    }
                }
            };
            let flight = Flight {
                value: v,
                shared,
                leader: *leader,
            };
            if let Err(SendError(Ok(unread))) = reply.send(Ok(flight)) {
                garbage.values.push(unread.value);
            }
        }
        garbage.senders = replies;
        if result.is_ok() {
            self.outcome = match value.take() {
                Some(v) if self.waiting > 0 => Outcome::Value(v),
                _ => Outcome::Taken,
            };
        }
        garbage.values.extend(value);
        result
    }

    /// One waiter's share: the first waiters clone, the last one moves.
    fn take(&mut self) -> Share<V> {
        self.waiting -= 1;
        let shared = self.joined > 1;
        match &self.outcome {
            Outcome::Value(value) if self.waiting > 0 => Ok((value.clone(), shared)),
            Outcome::Value(_) => match std::mem::replace(&mut self.outcome, Outcome::Taken) {
                Outcome::Value(value) => Ok((value, shared)),
                _ => unreachable!("matched as a value just above"),
            },
            Outcome::Failed(error) => Err((**error).clone()),
            Outcome::Pending | Outcome::Taken => {
                unreachable!("a waiter takes only a published outcome, and only its own share")
            }
        }
    }
}

/// What a hand-out leaves to drop once the call's lock is released: copies
/// nobody received, the reply senders, a value nobody took.
struct Garbage<V> {
    values: Vec<V>,
    senders: Vec<(Sender<Reply<V>>, bool)>,
}

impl<V> Default for Garbage<V> {
    fn default() -> Self {
        Garbage {
            values: Vec::new(),
            senders: Vec::new(),
        }
    }
}

impl<V> Garbage<V> {
    /// Drops everything, each item on its own: a `V` whose `Drop` panics
    /// loses nothing else, and the panic stops here. It belongs to no caller:
    /// the copy was never received.
    fn dispose(self) {
        for value in self.values {
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(value)));
        }
        for sender in self.senders {
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(sender)));
        }
    }
}
