//! The synthetic generators: each a workload shape that some policy family
//! handles well and another badly, with its parameters.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::error::Error;
use crate::recency::recency;
use crate::zipf::Zipf;

/// The most keys a Zipf draw ranges over (its table is 8 bytes a key).
pub const MAX_ZIPF_KEYS: u64 = 1 << 27;

/// Where `Scan`'s never-repeated keys start: above every Zipf key.
const SCAN_KEYS_FROM: u64 = 1 << 40;

/// One synthetic workload shape and its parameters.
#[derive(Clone, Debug, PartialEq)]
pub enum Workload {
    /// Independent Zipf draws over `keys` keys: frequency is the signal.
    Zipf {
        /// The exponent (0 is uniform; 0.99 is the classic web trace).
        skew: f64,
        /// How many distinct keys.
        keys: u64,
    },
    /// A cyclic scan of `factor` × capacity keys (at least one more than the
    /// capacity): every key is reused at the same, too long, distance, so
    /// LRU never hits and OPT keeps a fixed subset.
    Loop {
        /// The loop's length over the capacity (above 1).
        factor: f64,
    },
    /// Zipf draws with bursts of never-repeated keys: the scans a policy
    /// must keep from flushing the hot set.
    Scan {
        /// The Zipf exponent.
        skew: f64,
        /// The Zipf keys.
        keys: u64,
        /// The share of requests in scans, in `0.0..1.0`.
        fraction: f64,
        /// The keys in one burst.
        burst: u64,
    },
    /// Zipf draws over a window of keys that moves up by `jump` every
    /// `every` requests: yesterday's popular keys go cold.
    Shift {
        /// The Zipf exponent.
        skew: f64,
        /// The window's keys.
        window: u64,
        /// Requests between jumps.
        every: u64,
        /// How far the window moves (its hottest key becomes the key that
        /// was `jump` ranks down).
        jump: u64,
    },
    /// Re-references by LRU-stack distance (see the `recency` module): recency
    /// is the signal, frequency none.
    Recency {
        /// The share of requests that re-reference by stack distance.
        reuse: f64,
        /// The mean stack distance (geometric; at least 1).
        mean: f64,
        /// Of the other requests, the share for new keys (the rest pick an
        /// old key uniformly).
        fresh: f64,
    },
}

impl Workload {
    /// Checks the parameters, naming the flag of the first out of range.
    ///
    /// ```
    /// use singleflight_replay::Workload;
    /// let bad = Workload::Scan { skew: 0.99, keys: 100, fraction: 1.0, burst: 10 };
    /// assert!(bad.check().unwrap_err().to_string().starts_with("--scan-fraction"));
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] naming the flag.
    pub fn check(&self) -> Result<(), Error> {
        let skew = |flag, s: f64| {
            ensure(s.is_finite() && s >= 0.0, flag, || {
                format!("{s} is not a skew (a finite number >= 0)")
            })
        };
        let keys = |flag, n: u64| {
            ensure((1..=MAX_ZIPF_KEYS).contains(&n), flag, || {
                format!("{n} is outside 1..={MAX_ZIPF_KEYS}")
            })
        };
        let share = |flag, p: f64, top_open: bool| {
            let ok = (0.0..=1.0).contains(&p) && !(top_open && p == 1.0);
            let range = if top_open { "0.0..1.0" } else { "0.0..=1.0" };
            ensure(ok, flag, || format!("{p} is outside {range}"))
        };
        let positive = |flag, n: u64| ensure(n > 0, flag, || "must be at least 1".into());
        match *self {
            Workload::Zipf { skew: s, keys: n } => {
                skew("--zipf-skews", s)?;
                keys("--zipf-keys", n)
            }
            Workload::Loop { factor } => {
                ensure(factor.is_finite() && factor > 1.0, "--loop-factor", || {
                    format!("{factor} must be above 1.0 (a loop that fits is no test)")
                })
            }
            Workload::Scan {
                skew: s,
                keys: n,
                fraction,
                burst,
            } => {
                skew("--scan-skew", s)?;
                keys("--scan-keys", n)?;
                share("--scan-fraction", fraction, true)?;
                positive("--scan-burst", burst)
            }
            Workload::Shift {
                skew: s,
                window,
                every,
                jump,
            } => {
                skew("--shift-skew", s)?;
                keys("--shift-window", window)?;
                positive("--shift-every", every)?;
                positive("--shift-jump", jump)
            }
            Workload::Recency { reuse, mean, fresh } => {
                share("--recency-reuse", reuse, false)?;
                ensure(mean.is_finite() && mean >= 1.0, "--recency-mean", || {
                    format!("{mean} must be at least 1")
                })?;
                share("--recency-fresh", fresh, false)
            }
        }
    }

    /// Whether the trace depends on the capacity (`Loop` only), so it is
    /// generated again for each.
    pub fn per_capacity(&self) -> bool {
        matches!(self, Workload::Loop { .. })
    }

    /// The row label: the shape and every parameter.
    pub fn label(&self, capacity: usize) -> String {
        match *self {
            Workload::Zipf { skew, keys } => format!("zipf s={skew}, {keys} keys"),
            Workload::Loop { factor } => {
                format!(
                    "loop of {} keys ({factor} x capacity)",
                    loop_len(factor, capacity)
                )
            }
            Workload::Scan {
                skew,
                keys,
                fraction,
                burst,
            } => format!(
                "scan: zipf s={skew}, {keys} keys + {}% in bursts of {burst} new keys",
                fraction * 100.0
            ),
            Workload::Shift {
                skew,
                window,
                every,
                jump,
            } => format!("shift: zipf s={skew} over {window} keys, +{jump} every {every} requests"),
            Workload::Recency { reuse, mean, fresh } => format!(
                "recency: {}% at LRU distance ~geom(mean {mean}), else {}% new / uniform old",
                reuse * 100.0,
                fresh * 100.0
            ),
        }
    }

    /// `requests` keys of this shape, the same for the same `seed` (and, for
    /// `Loop`, `capacity`). Call [`check`](Self::check) first.
    ///
    /// # Panics
    ///
    /// On parameters that [`check`](Self::check) refuses.
    pub fn generate(&self, requests: usize, capacity: usize, seed: u64) -> Vec<u64> {
        let mut rng = StdRng::seed_from_u64(seed);
        match *self {
            Workload::Zipf { skew, keys } => {
                let zipf = Zipf::new(keys, skew);
                (0..requests).map(|_| zipf.sample(&mut rng)).collect()
            }
            Workload::Loop { factor } => {
                let len = loop_len(factor, capacity);
                (0..requests as u64).map(|i| i % len).collect()
            }
            Workload::Scan {
                skew,
                keys,
                fraction,
                burst,
            } => {
                let zipf = Zipf::new(keys, skew);
                // A burst starts after a Zipf request with this probability,
                // so that bursts hold `fraction` of all requests on average.
                let start = fraction / ((1.0 - fraction) * burst as f64);
                let mut next_new = SCAN_KEYS_FROM;
                let mut trace = Vec::with_capacity(requests);
                while trace.len() < requests {
                    trace.push(zipf.sample(&mut rng));
                    if rng.gen::<f64>() < start {
                        let n = (burst as usize).min(requests - trace.len());
                        trace.extend(next_new..next_new + n as u64);
                        next_new += n as u64;
                    }
                }
                trace
            }
            Workload::Shift {
                skew,
                window,
                every,
                jump,
            } => {
                let zipf = Zipf::new(window, skew);
                (0..requests as u64)
                    .map(|i| (i / every) * jump + zipf.sample(&mut rng))
                    .collect()
            }
            Workload::Recency { reuse, mean, fresh } => {
                recency(requests, reuse, mean, fresh, &mut rng)
            }
        }
    }
}

fn loop_len(factor: f64, capacity: usize) -> u64 {
    ((factor * capacity as f64).ceil() as u64).max(capacity as u64 + 1)
}

fn ensure(ok: bool, setting: &'static str, reason: impl FnOnce() -> String) -> Result<(), Error> {
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(setting, reason()))
    }
}
