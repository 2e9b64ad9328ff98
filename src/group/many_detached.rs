//! Detached batches: the flights of many keys, run by one job on the
//! group's spawner (for the cache's batch refreshes, which nobody waits for).
//!
//! Each key is an ordinary detached flight while the job runs: callers join
//! it, `cancel` cancels it; the job ends each with its answer, `NotFound`
//! for a key its answer left out. However the spawner fails (an error, a
//! panic, a job dropped unrun), every flight ends with [`Error::Spawn`] and
//! leaves the map.

use std::hash::{BuildHasher, Hash};
use std::io;
use std::panic::{self, AssertUnwindSafe};

use super::observer::Observer;
use super::table::{finish, FlightRef, Shard};
use super::work::{recount_as_panic, Group};
use crate::call::Call;
use crate::cancel::CancelToken;
use crate::error::{Error, LeaderPanicked};
use crate::metrics::Outcome;
use crate::spawn::Abandon;
use crate::sync::{self, Arc, Shared};

/// One flight of a detached batch: its shard, hash and id, its waiters'
/// call and its token.
type Started<V> = (usize, u64, u64, Arc<Call<V>>, CancelToken);

/// Everything a detached batch needs to run and end, on any thread.
struct ManyRunner<K, V, F> {
    shards: Shared<[Shard<K, V>]>,
    keys: Vec<K>,
    flights: Vec<Started<V>>,
    name: Option<&'static str>,
    observer: Observer<V>,
    f: F,
}

impl<K, V, S> Group<K, V, S>
where
    K: Hash + Eq + Clone + Send + 'static,
    V: Clone + Send + 'static,
    S: BuildHasher,
{
    /// Starts a detached flight for each of `keys` that has none running
    /// (the others are skipped: someone is computing them), all run by one
    /// job: `f` gets the keys started, in order, with their hashes and
    /// flights, and
    /// answers each (`None`: not found). Returns how many were started; with
    /// none, `f` is dropped here, unrun.
    pub(crate) fn start_many_detached<F>(&self, keys: Vec<K>, f: F) -> usize
    where
        F: FnOnce(&[K], &[u64], &[FlightRef]) -> Vec<Option<V>> + Send + 'static,
    {
        let mut started = Vec::with_capacity(keys.len());
        let mut flights = Vec::with_capacity(keys.len());
        for key in keys {
            let (hash, index) = self.locate(&key);
            let mut table = self.shards[index].table.lock();
            table.counts.calls += 1;
            if table.joinable(hash, &key).is_some() {
                drop(table);
                continue;
            }
            let (call, token) = (Arc::new(Call::new(0)), CancelToken::new());
            let id = table.insert(
                hash,
                key.clone(),
                0,
                Some(call.clone()),
                Some(token.clone()),
            );
            drop(table);
            flights.push((index, hash, id, call, token));
            started.push(key);
        }
        let n = started.len();
        if n == 0 {
            return 0;
        }
        let runner = ManyRunner {
            shards: self.shards.clone(),
            keys: started,
            flights,
            name: self.name,
            observer: self.observer.clone(),
            f,
        };
        self.spawner.launch(self.name, runner, ManyRunner::run);
        n
    }
}

impl<K, V: Clone, F> ManyRunner<K, V, F>
where
    F: FnOnce(&[K], &[u64], &[FlightRef]) -> Vec<Option<V>>,
{
    fn run(self) {
        let me = sync::thread_token();
        for &(index, hash, id, ..) in &self.flights {
            if let Some(entry) = self.shards[index].table.lock().by_id(hash, id) {
                entry.owner = me;
            }
        }
        let ManyRunner {
            shards,
            keys,
            flights,
            name,
            observer,
            f,
        } = self;
        let refs: Vec<FlightRef> = flights
            .iter()
            .map(|&(index, hash, id, ..)| FlightRef::new(index, hash, id))
            .collect();
        let hashes: Vec<u64> = flights.iter().map(|&(_, hash, ..)| hash).collect();
        let start = observer.start();
        let answers = panic::catch_unwind(AssertUnwindSafe(|| f(&keys, &hashes, &refs)));
        let answers: Vec<Result<Option<V>, LeaderPanicked>> = match answers {
            Ok(answers) => {
                let mut answers: Vec<_> = answers.into_iter().map(Ok).collect();
                answers.resize_with(flights.len(), || Ok(None));
                answers
            }
            Err(payload) => {
                let cause = LeaderPanicked::from_payload(&*payload, name);
                flights.iter().map(|_| Err(cause.clone())).collect()
            }
        };
        for ((index, hash, id, call, _), answer) in flights.into_iter().zip(answers) {
            let shard = &shards[index];
            let mut outcome = match &answer {
                Ok(Some(value)) => observer.outcome(value),
                Ok(None) => Outcome::Value,
                Err(_) => Outcome::Panic,
            };
            // Out of the map first, so no caller joins once the outcome is set.
            let _ = finish(shard.table.lock(), hash, id, outcome);
            let delivered = match answer {
                Ok(Some(value)) => call.publish_owned(value, name),
                Ok(None) => call.publish_error(Error::NotFound),
                Err(cause) => call.publish_error(Error::Panicked(cause)),
            };
            if delivered.is_some_and(|d| d.clone_panicked) {
                outcome = recount_as_panic(shard, outcome);
            }
            observer.ended_detached(name, start, delivered, outcome);
        }
    }
}

impl<K, V, F> Abandon for ManyRunner<K, V, F> {
    /// Ends a batch that will never run: its flights out of the map, their
    /// tokens cancelled, every waiter told why.
    fn abandon(self, cause: io::Error) {
        let cause = Shared::new(cause);
        for (index, hash, id, call, token) in self.flights {
            let _ = finish(self.shards[index].table.lock(), hash, id, Outcome::Error);
            token.cancel();
            let delivered = call.publish_error(Error::Spawn(cause.clone()));
            self.observer
                .ended_detached(self.name, None, delivered, Outcome::Error);
        }
    }
}
