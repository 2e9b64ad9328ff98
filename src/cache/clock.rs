//! Time for `TtlCache`: the system's monotonic clock, or a manual one so TTL
//! tests never sleep.

use std::fmt;
use std::time::Duration;

use crate::sync::{AtomicU64, Ordering, Shared};

/// A monotonic clock: the time elapsed since some fixed origin of its own.
///
/// [`TtlCache`](crate::TtlCache) reads it on every lookup to decide what has
/// expired. Inject a [`ManualClock`] in tests; the default is
/// [`SystemClock`].
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// The time since this clock's origin. Must never go backwards.
    fn now(&self) -> Duration;
}

/// The operating system's monotonic clock, read the cheap way.
///
/// On Linux it reads `CLOCK_MONOTONIC_COARSE` (a few nanoseconds, at the
/// kernel tick's resolution of 1-4 ms), since a cache hit must not pay for a
/// precise clock: an entry may expire up to one tick late. Elsewhere it is
/// [`std::time::Instant`].
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[cfg(target_os = "linux")]
    #[inline]
    fn now(&self) -> Duration {
        Duration::from_nanos(self.now_nanos())
    }

    #[cfg(not(target_os = "linux"))]
    fn now(&self) -> Duration {
        static ORIGIN: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
        ORIGIN.get_or_init(std::time::Instant::now).elapsed()
    }
}

impl SystemClock {
    /// [`Clock::now`] in whole nanoseconds, as the cache keeps times.
    #[cfg(target_os = "linux")]
    #[inline]
    pub(crate) fn now_nanos(self) -> u64 {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC_COARSE
        // exists on every Linux since 2.6.32, so the call cannot fail.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
        (ts.tv_sec as u64)
            .wrapping_mul(1_000_000_000)
            .wrapping_add(ts.tv_nsec as u64)
    }

    /// [`Clock::now`] in whole nanoseconds, as the cache keeps times.
    #[cfg(not(target_os = "linux"))]
    #[inline]
    pub(crate) fn now_nanos(self) -> u64 {
        nanos(self.now())
    }
}

/// A clock that moves only when told to. Clones share one time, so a test
/// keeps one handle and gives the cache another.
///
/// # Examples
///
/// ```
/// use singleflight_sync::{ManualClock, TtlCache};
/// use std::time::Duration;
///
/// let clock = ManualClock::new();
/// let cache: TtlCache<String, u32> = TtlCache::builder()
///     .ttl(Duration::from_secs(60))
///     .clock(clock.clone())
///     .build()
///     .unwrap();
/// cache.insert("k".to_string(), 1);
/// clock.advance(Duration::from_secs(59));
/// assert_eq!(cache.get("k"), Some(1));
/// clock.advance(Duration::from_secs(1));
/// assert_eq!(cache.get("k"), None, "expired after exactly the TTL");
/// ```
#[derive(Clone, Debug, Default)]
pub struct ManualClock {
    nanos: Shared<AtomicU64>,
}

impl ManualClock {
    /// A clock at time zero.
    ///
    /// # Examples
    ///
    /// ```
    /// use singleflight_sync::{Clock, ManualClock};
    /// use std::time::Duration;
    ///
    /// let clock = ManualClock::new();
    /// assert_eq!(clock.now(), Duration::ZERO);
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Moves the clock forward by `by`.
    ///
    /// # Examples
    ///
    /// ```
    /// use singleflight_sync::{Clock, ManualClock};
    /// use std::time::Duration;
    ///
    /// let clock = ManualClock::new();
    /// let shared = clock.clone();
    /// clock.advance(Duration::from_millis(1500));
    /// shared.advance(Duration::from_millis(500));
    /// assert_eq!(clock.now(), Duration::from_secs(2), "clones share one time");
    /// ```
    pub fn advance(&self, by: Duration) {
        // Saturating, so the clock can never wrap and run backwards.
        let by = nanos(by);
        let mut now = self.nanos.load(Ordering::SeqCst);
        while let Err(seen) = self.nanos.compare_exchange(
            now,
            now.saturating_add(by),
            Ordering::SeqCst,
            Ordering::SeqCst,
        ) {
            now = seen;
        }
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Duration {
        Duration::from_nanos(self.nanos.load(Ordering::SeqCst))
    }
}

/// A duration in whole nanoseconds, saturating (585 years is forever here).
pub(crate) fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}
