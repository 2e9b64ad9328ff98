//! A plan (what to replay, at which capacities) and its run.

use std::time::{Duration, Instant};

use crate::error::Error;
use crate::policy::{hits, Policy, Tuning};
use crate::table::{check_capacities, Row};
use crate::workload::Workload;

/// What one group of rows replays.
#[derive(Clone, Debug, PartialEq)]
pub enum Input {
    /// A generated trace of [`Plan::requests`] keys.
    Synthetic(Workload),
    /// A trace read from a file, replayed whole.
    Trace {
        /// The row label.
        name: String,
        /// The keys, in order.
        keys: Vec<u64>,
    },
}

/// Everything a run needs.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// The workloads and traces, one group of rows each.
    pub inputs: Vec<Input>,
    /// The cache sizes, one row each per input.
    pub capacities: Vec<usize>,
    /// Keys per synthetic workload.
    pub requests: usize,
    /// The generators' seed.
    pub seed: u64,
    /// How the peers are driven.
    pub tuning: Tuning,
}

impl Plan {
    /// Checks every setting before anything runs.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] naming the flag.
    pub fn check(&self) -> Result<(), Error> {
        check_capacities(&self.capacities)?;
        if self.inputs.is_empty() {
            return Err(Error::invalid(
                "--workloads",
                "nothing to replay: name a workload or give a --trace",
            ));
        }
        for input in &self.inputs {
            match input {
                Input::Synthetic(w) => {
                    if self.requests == 0 {
                        return Err(Error::invalid("--requests", "must be at least 1"));
                    }
                    w.check()?;
                }
                Input::Trace { name, keys } if keys.is_empty() => {
                    return Err(Error::invalid("--trace", format!("{name} holds no keys")));
                }
                Input::Trace { .. } => {}
            }
        }
        Ok(())
    }
}

/// Replays the plan: every input at every capacity through every policy, one
/// after another on this thread. `progress` sees each row as it is done,
/// with the time each policy took.
///
/// # Errors
///
/// What [`Plan::check`] finds, or a cache refusing its configuration.
pub fn replay(
    plan: &Plan,
    mut progress: impl FnMut(&Row, &[Duration; 5]),
) -> Result<Vec<Row>, Error> {
    plan.check()?;
    let mut rows = Vec::new();
    for input in &plan.inputs {
        // Generated once for every capacity, unless it depends on it.
        let shared = match input {
            Input::Synthetic(w) if !w.per_capacity() => {
                Some(w.generate(plan.requests, plan.capacities[0], plan.seed))
            }
            _ => None,
        };
        for &capacity in &plan.capacities {
            let owned;
            let (label, trace): (String, &[u64]) = match (input, &shared) {
                (Input::Synthetic(w), Some(keys)) => (w.label(capacity), keys),
                (Input::Synthetic(w), None) => {
                    owned = w.generate(plan.requests, capacity, plan.seed);
                    (w.label(capacity), &owned)
                }
                (Input::Trace { name, keys }, _) => (name.clone(), keys),
            };
            let (row, took) = replay_row(label, trace, capacity, plan.tuning)?;
            progress(&row, &took);
            rows.push(row);
        }
    }
    Ok(rows)
}

/// One row: `trace` at `capacity` through every policy.
///
/// # Errors
///
/// As [`hits`].
pub fn replay_row(
    workload: String,
    trace: &[u64],
    capacity: usize,
    tuning: Tuning,
) -> Result<(Row, [Duration; 5]), Error> {
    let mut row = Row {
        workload,
        capacity,
        requests: trace.len() as u64,
        hits: [0; 5],
    };
    let mut took = [Duration::ZERO; 5];
    for p in Policy::ALL {
        let start = Instant::now();
        row.hits[p.index()] = hits(p, trace, capacity, tuning)?;
        took[p.index()] = start.elapsed();
    }
    Ok((row, took))
}
