//! `CancelToken`: how a detached flight's `f` learns nobody wants it any more.

use std::fmt;
use std::time::{Duration, Instant};

use crate::sync::{Arc, Condvar, Mutex};

/// Tells a detached flight's `f` that its result is no longer wanted.
///
/// Handed to the `f` of [`Group::work_deadline`](crate::Group::work_deadline),
/// [`Group::work_timeout`](crate::Group::work_timeout) and
/// [`Group::do_chan`](crate::Group::do_chan). It is cancelled by
/// [`Group::cancel`](crate::Group::cancel), and when every caller that was
/// waiting with a deadline has given up; in both cases the key is released
/// first, so new callers start a fresh flight. Cancellation is a request: `f`
/// should check [`is_cancelled`](Self::is_cancelled) between steps, or sleep
/// with [`wait_timeout`](Self::wait_timeout), and return early.
///
/// # Examples
///
/// ```
/// use singleflight_sync::CancelToken;
/// use std::time::Duration;
///
/// let token = CancelToken::new();
/// assert!(!token.wait_timeout(Duration::from_millis(1)));
/// token.cancel();
/// assert!(token.is_cancelled());
/// assert!(token.wait_timeout(Duration::from_secs(3600)), "returns at once");
/// ```
#[derive(Clone)]
pub struct CancelToken {
    inner: Arc<Inner>,
}

struct Inner {
    cancelled: Mutex<bool>,
    changed: Condvar,
}

impl CancelToken {
    /// A token that is not cancelled. Useful to call a flight's `f` directly
    /// (in a test, say).
    ///
    /// # Examples
    ///
    /// ```
    /// use singleflight_sync::CancelToken;
    ///
    /// let token = CancelToken::new();
    /// assert!(!token.is_cancelled());
    /// assert_eq!(format!("{token:?}"), "CancelToken { cancelled: false }");
    /// ```
    pub fn new() -> Self {
        CancelToken {
            inner: Arc::new(Inner {
                cancelled: Mutex::new(false),
                changed: Condvar::new(),
            }),
        }
    }

    /// Whether the flight has been cancelled.
    ///
    /// # Examples
    ///
    /// ```
    /// use singleflight_sync::CancelToken;
    ///
    /// let token = CancelToken::new();
    /// let clone = token.clone();
    /// assert!(!clone.is_cancelled());
    /// token.cancel();
    /// assert!(clone.is_cancelled(), "clones share one state");
    /// ```
    pub fn is_cancelled(&self) -> bool {
        *self.inner.cancelled.lock()
    }

    /// Cancels the token and wakes every thread waiting on it. Idempotent.
    ///
    /// # Examples
    ///
    /// ```
    /// use singleflight_sync::CancelToken;
    /// use std::thread;
    ///
    /// let token = CancelToken::new();
    /// let waiters: Vec<_> = (0..2)
    ///     .map(|_| {
    ///         let token = token.clone();
    ///         thread::spawn(move || token.wait())
    ///     })
    ///     .collect();
    /// token.cancel();
    /// token.cancel(); // idempotent
    /// assert!(waiters.into_iter().all(|w| w.join().unwrap()));
    /// ```
    pub fn cancel(&self) {
        let mut cancelled = self.inner.cancelled.lock();
        *cancelled = true;
        // Under the lock: a waiter checks the flag under it before parking.
        self.inner.changed.notify_all();
    }

    /// Sleeps for `timeout`, or less if the token is cancelled meanwhile.
    /// Returns whether it is cancelled: `f` can use this in place of
    /// `thread::sleep` and still stop promptly.
    ///
    /// # Examples
    ///
    /// ```
    /// use singleflight_sync::CancelToken;
    /// use std::time::Duration;
    ///
    /// let token = CancelToken::new();
    /// assert!(!token.wait_timeout(Duration::ZERO), "not cancelled: false");
    /// token.cancel();
    /// assert!(token.wait_timeout(Duration::MAX), "cancelled: true, at once");
    /// ```
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        match Instant::now().checked_add(timeout) {
            Some(deadline) => self.wait_deadline(deadline),
            None => self.wait(),
        }
    }

    /// Like [`wait_timeout`](Self::wait_timeout), until `deadline`.
    ///
    /// # Examples
    ///
    /// ```
    /// use singleflight_sync::CancelToken;
    /// use std::time::{Duration, Instant};
    ///
    /// let token = CancelToken::new();
    /// assert!(!token.wait_deadline(Instant::now()), "a deadline now returns at once");
    /// token.cancel();
    /// assert!(token.wait_deadline(Instant::now() + Duration::from_secs(3600)));
    /// ```
    pub fn wait_deadline(&self, deadline: Instant) -> bool {
        let mut cancelled = self.inner.cancelled.lock();
        while !*cancelled && Instant::now() < deadline {
            cancelled = self.inner.changed.wait_until(cancelled, deadline);
        }
        *cancelled
    }

    /// Blocks until the token is cancelled. Returns `true`.
    ///
    /// # Examples
    ///
    /// ```
    /// use singleflight_sync::CancelToken;
    /// use std::thread;
    ///
    /// let token = CancelToken::new();
    /// let canceller = {
    ///     let token = token.clone();
    ///     thread::spawn(move || token.cancel())
    /// };
    /// assert!(token.wait());
    /// canceller.join().unwrap();
    /// ```
    pub fn wait(&self) -> bool {
        let mut cancelled = self.inner.cancelled.lock();
        while !*cancelled {
            cancelled = self.inner.changed.wait(cancelled);
        }
        true
    }
}

impl Default for CancelToken {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for CancelToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CancelToken")
            .field("cancelled", &self.is_cancelled())
            .finish()
    }
}
