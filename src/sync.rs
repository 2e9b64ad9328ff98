//! The one place that names the synchronisation primitives.
//!
//! Normal builds use `parking_lot` (no poisoning, small, fast) and `std`'s
//! atomics and `Arc`. Under `RUSTFLAGS="--cfg loom"` the same names map to
//! loom's models, so `loom-tests/` can check the coordination core under every
//! interleaving loom explores. Both backends offer the same shape: `lock()`
//! returns a guard, and a Condvar takes and gives back the guard by value.

#[cfg(not(loom))]
mod imp {
    pub(crate) use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
    pub(crate) use std::sync::Arc;
    use std::time::Instant;

    /// A mutex that never poisons: a panicking `f` runs outside every lock,
    /// and a panicking `Eq`/`Clone` must not wedge the group for other keys.
    #[derive(Debug, Default)]
    pub(crate) struct Mutex<T>(parking_lot::Mutex<T>);

    pub(crate) type MutexGuard<'a, T> = parking_lot::MutexGuard<'a, T>;

    impl<T> Mutex<T> {
        pub(crate) fn new(value: T) -> Self {
            Self(parking_lot::Mutex::new(value))
        }

        #[inline]
        pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
            self.0.lock()
        }

        pub(crate) fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
            self.0.try_lock()
        }
    }

    #[derive(Debug, Default)]
    pub(crate) struct Condvar(parking_lot::Condvar);

    impl Condvar {
        pub(crate) fn new() -> Self {
            Self(parking_lot::Condvar::new())
        }

        pub(crate) fn wait<'a, T>(&self, mut guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
            self.0.wait(&mut guard);
            guard
        }

        /// Waits until notified or `deadline`; the caller re-checks its state
        /// either way, so whether it timed out is not reported.
        pub(crate) fn wait_until<'a, T>(
            &self,
            mut guard: MutexGuard<'a, T>,
            deadline: Instant,
        ) -> MutexGuard<'a, T> {
            let _ = self.0.wait_until(&mut guard, deadline);
            guard
        }

        pub(crate) fn notify_all(&self) {
            self.0.notify_all();
        }
    }

    std::thread_local! {
        static TOKEN: u8 = const { 0 };
    }

    /// A number that names the calling thread among the threads alive now
    /// (the address of one of its thread-locals). Never 0.
    #[inline]
    pub(crate) fn thread_token() -> usize {
        TOKEN.with(|t| t as *const u8 as usize)
    }

    /// Lets another thread run: a spin that waits for one must yield here.
    pub(crate) fn yield_now() {
        std::thread::yield_now();
    }
}

#[cfg(loom)]
mod imp {
    pub(crate) use loom::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
    pub(crate) use loom::sync::Arc;
    use std::time::Instant;

    #[derive(Debug)]
    pub(crate) struct Mutex<T>(loom::sync::Mutex<T>);

    pub(crate) type MutexGuard<'a, T> = loom::sync::MutexGuard<'a, T>;

    impl<T> Mutex<T> {
        pub(crate) fn new(value: T) -> Self {
            Self(loom::sync::Mutex::new(value))
        }

        pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
            // The library never panics while holding a lock on purpose; a
            // poisoned lock in a model still holds consistent state.
            self.0.lock().unwrap_or_else(|e| e.into_inner())
        }

        pub(crate) fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
            match self.0.try_lock() {
                Ok(guard) => Some(guard),
                Err(std::sync::TryLockError::Poisoned(e)) => Some(e.into_inner()),
                Err(std::sync::TryLockError::WouldBlock) => None,
            }
        }
    }

    #[derive(Debug)]
    pub(crate) struct Condvar(loom::sync::Condvar);

    impl Condvar {
        pub(crate) fn new() -> Self {
            Self(loom::sync::Condvar::new())
        }

        pub(crate) fn wait<'a, T>(&self, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
            self.0.wait(guard).unwrap_or_else(|e| e.into_inner())
        }

        /// loom does not model time: a timed wait is a wait that may also
        /// return spuriously, which the callers' re-check loops already allow.
        pub(crate) fn wait_until<'a, T>(
            &self,
            guard: MutexGuard<'a, T>,
            _deadline: Instant,
        ) -> MutexGuard<'a, T> {
            self.wait(guard)
        }

        pub(crate) fn notify_all(&self) {
            self.0.notify_all();
        }
    }

    /// loom runs its threads as coroutines on one OS thread, so a std
    /// thread-local cannot tell them apart; loom's thread ids can.
    pub(crate) fn thread_token() -> usize {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        loom::thread::current().id().hash(&mut h);
        (h.finish() as usize) | 1
    }

    /// loom's yield, so a model's spin lets the other threads run.
    pub(crate) fn yield_now() {
        loom::thread::yield_now();
    }
}

pub(crate) use imp::*;

/// Shared ownership of data that needs no modelling (the shard array, a
/// message, an I/O error): reference counting only, so std's `Arc` under loom
/// too (loom's `Arc` cannot hold a slice or a `str`).
pub(crate) type Shared<T> = std::sync::Arc<T>;

/// Immutable text shared by many callers (a panic message).
pub(crate) type Text = Shared<str>;

/// A weak [`Shared`]: how a helper thread (the fleet's subscriber) refers
/// to state it must not keep alive.
#[cfg(feature = "redis")]
pub(crate) type SharedWeak<T> = std::sync::Weak<T>;

/// Process-wide state made once (the fleet's token seeds): not
/// coordination, so std's under loom too.
#[cfg(feature = "redis")]
pub(crate) type Once<T> = std::sync::OnceLock<T>;

/// How many shards a group gets by default: a few per core, so that threads
/// on distinct keys rarely share a lock. Read once per process; not part of
/// the coordination, so it uses std's `OnceLock` under loom too.
pub(crate) fn default_shards() -> usize {
    static SHARDS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *SHARDS.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(4, |n| n.get());
        (cores * 4).next_power_of_two().clamp(4, 256)
    })
}

/// Starts a named thread for a detached flight (the default spawner).
#[cfg(not(loom))]
pub(crate) fn spawn_thread(name: String, job: Box<dyn FnOnce() + Send>) -> std::io::Result<()> {
    std::thread::Builder::new().name(name).spawn(job).map(drop)
}

/// Starts a named thread for a detached flight (the default spawner).
#[cfg(loom)]
pub(crate) fn spawn_thread(name: String, job: Box<dyn FnOnce() + Send>) -> std::io::Result<()> {
    loom::thread::Builder::new().name(name).spawn(job).map(drop)
}

/// Atomics that carry hints, not coordination (the cache adapter's sample
/// of resident keys, its reference bits and credit): std's under loom too. A
/// race on them only blurs or loses a sample, so there is nothing for a model
/// to check, and loom would have to track thousands of them per cache.
pub(crate) mod hint {
    pub(crate) use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
}
