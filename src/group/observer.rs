//! What a group tells its [`Metrics`] observer, and how it tells an error
//! value from a value.

use std::panic::{self, AssertUnwindSafe};
use std::time::{Duration, Instant};

use crate::call::Delivered;
use crate::metrics::{FlightEnd, Metrics, Outcome};
use crate::sync::Shared;

/// What a group reports to, and how it tells an error value from a value.
pub(crate) struct Observer<V> {
    pub(crate) metrics: Option<Shared<dyn Metrics>>,
    pub(crate) error_if: Option<fn(&V) -> bool>,
}

impl<V> Clone for Observer<V> {
    fn clone(&self) -> Self {
        Observer {
            metrics: self.metrics.clone(),
            error_if: self.error_if,
        }
    }
}

impl<V> Observer<V> {
    /// The clock is read only when someone will be told.
    #[inline]
    pub(crate) fn start(&self) -> Option<Instant> {
        self.metrics.as_ref().map(|_| Instant::now())
    }

    /// How a value counts. A panicking `error_if` counts it as a value: it
    /// must not keep the flight from ending.
    #[inline]
    pub(crate) fn outcome(&self, value: &V) -> Outcome {
        let Some(is_error) = self.error_if else {
            return Outcome::Value;
        };
        match panic::catch_unwind(AssertUnwindSafe(|| is_error(value))) {
            Ok(true) => Outcome::Error,
            _ => Outcome::Value,
        }
    }

    /// Tells the observer a flight ended, if there is one.
    pub(crate) fn ended(
        &self,
        name: Option<&'static str>,
        start: Option<Instant>,
        callers: usize,
        waiters: usize,
        shared: bool,
        outcome: Outcome,
    ) {
        if let Some(m) = &self.metrics {
            let duration = start.map_or(Duration::ZERO, |s| s.elapsed());
            m.flight_ended(
                name,
                &FlightEnd {
                    duration,
                    callers,
                    waiters,
                    shared,
                    outcome,
                },
            );
        }
    }

    /// [`ended`](Self::ended) for a detached or cancelled flight, whose
    /// every caller was a waiter.
    pub(crate) fn ended_detached(
        &self,
        name: Option<&'static str>,
        start: Option<Instant>,
        delivered: Option<Delivered>,
        outcome: Outcome,
    ) {
        if let Some(d) = delivered {
            self.ended(name, start, d.waiters, d.waiters, d.shared, outcome);
        }
    }

    #[inline]
    pub(crate) fn joined(&self, name: Option<&'static str>) {
        if let Some(m) = &self.metrics {
            m.waiter_joined(name);
        }
    }
}
