//! Fallible work in one `Result`: a group whose value is
//! `Result<T, Arc<E>>` shares one error between all the callers of a flight
//! (`E` need not be `Clone`), and its deadline and channel calls return the
//! work's error and the flight's in one type, [`TryError`].

use std::borrow::Borrow;
use std::hash::{BuildHasher, Hash};
use std::time::{Duration, Instant};

use super::work::Group;
use crate::call::Flight;
use crate::cancel::CancelToken;
use crate::error::{Error, TryError};
use crate::sync::Shared;

impl<K, T: Clone, E, S: BuildHasher> Group<K, Result<T, Shared<E>>, S> {
    /// [`work`](Self::work) for work that can fail: `f`'s error is put in an
    /// `Arc` once and every caller of the flight gets a clone of that `Arc`,
    /// so `E` need not be `Clone` (an `io::Error`, a database error). Errors
    /// are never remembered: the next call runs again.
    ///
    /// # Errors
    ///
    /// `f`'s error, shared by every caller of that flight.
    ///
    /// # Panics
    ///
    /// As [`work`](Self::work).
    ///
    /// # Examples
    ///
    /// ```
    /// use singleflight_sync::Group;
    /// use std::{io, sync::Arc};
    ///
    /// let group: Group<String, Result<u32, Arc<io::Error>>> = Group::new();
    /// let r = group.try_work("k", || Err(io::Error::new(io::ErrorKind::NotFound, "no row")));
    /// assert_eq!(r.unwrap_err().kind(), io::ErrorKind::NotFound);
    /// assert_eq!(group.try_work("k", || Ok::<_, io::Error>(1)).unwrap(), 1);
    /// ```
    #[track_caller]
    pub fn try_work<Q>(&self, key: &Q, f: impl FnOnce() -> Result<T, E>) -> Result<T, Shared<E>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        self.work(key, || f().map_err(Shared::new))
    }
}

impl<K, T, E, S> Group<K, Result<T, Shared<E>>, S>
where
    K: Send + 'static,
    T: Clone + Send + 'static,
    E: Send + Sync + 'static,
    S: BuildHasher,
{
    /// [`work_deadline`](Self::work_deadline) for work that can fail, with
    /// one `Result`: the value, or a [`TryError`] that says whether the work
    /// failed (its error, shared) or the flight gave no value (timeout,
    /// cancelled, panicked, spawn failure).
    ///
    /// # Errors
    ///
    /// [`TryError::Failed`] with `f`'s error; otherwise as
    /// [`work_deadline`](Self::work_deadline).
    ///
    /// # Panics
    ///
    /// As [`work_deadline`](Self::work_deadline).
    ///
    /// # Examples
    ///
    /// ```
    /// use singleflight_sync::{Group, TryError};
    /// use std::sync::Arc;
    /// use std::time::{Duration, Instant};
    ///
    /// let group: Group<String, Result<u32, Arc<String>>> = Group::new();
    /// let soon = Instant::now() + Duration::from_millis(10);
    /// let r = group.try_work_deadline("k", soon, |token| {
    ///     token.wait_timeout(Duration::from_secs(5));
    ///     Ok(1)
    /// });
    /// assert!(matches!(r, Err(TryError::Timeout)));
    /// ```
    pub fn try_work_deadline<Q, F>(
        &self,
        key: &Q,
        deadline: Instant,
        f: F,
    ) -> Result<T, TryError<E>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
        F: FnOnce(&CancelToken) -> Result<T, E> + Send + 'static,
    {
        self.work_deadline(key, deadline, move |token| f(token).map_err(Shared::new))
            .into_result()
    }

    /// [`try_work_deadline`](Self::try_work_deadline) with a deadline
    /// `timeout` from now.
    ///
    /// # Errors
    ///
    /// As [`try_work_deadline`](Self::try_work_deadline).
    ///
    /// # Panics
    ///
    /// As [`work_deadline`](Self::work_deadline).
    ///
    /// # Examples
    ///
    /// ```
    /// use singleflight_sync::Group;
    /// use std::sync::Arc;
    /// use std::time::Duration;
    ///
    /// let group: Group<u64, Result<String, Arc<std::num::ParseIntError>>> = Group::new();
    /// let r = group.try_work_timeout(&7, Duration::from_secs(5), |_| "x".parse::<u8>().map(|n| n.to_string()));
    /// assert!(r.unwrap_err().to_string().contains("invalid digit"));
    /// ```
    pub fn try_work_timeout<Q, F>(&self, key: &Q, timeout: Duration, f: F) -> Result<T, TryError<E>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
        F: FnOnce(&CancelToken) -> Result<T, E> + Send + 'static,
    {
        self.work_timeout(key, timeout, move |token| f(token).map_err(Shared::new))
            .into_result()
    }
}

/// Flattens what a deadline or channel call on fallible work returns
/// (`Result<Flight<Result<T, Arc<E>>>, Error>`) into one `Result`, so a
/// [`do_chan`](crate::Group::do_chan) reply on fallible work is matched once.
///
/// # Examples
///
/// ```
/// use singleflight_sync::{Group, IntoResult, TryError};
/// use std::sync::Arc;
///
/// let group: Group<String, Result<u32, Arc<String>>> = Group::new();
/// let rx = group.do_chan("k", |_| Err(Arc::new("no such user".to_string())));
/// match rx.recv().unwrap().into_result() {
///     Err(TryError::Failed(e)) => assert_eq!(*e, "no such user"),
///     other => panic!("{other:?}"),
/// }
/// ```
pub trait IntoResult<T, E> {
    /// The value, or why there is none.
    ///
    /// # Errors
    ///
    /// [`TryError::Failed`] with the work's error, or the flight's
    /// [`Error`] as the matching [`TryError`] variant.
    fn into_result(self) -> Result<T, TryError<E>>;
}

impl<T, E> IntoResult<T, E> for Result<Flight<Result<T, Shared<E>>>, Error> {
    fn into_result(self) -> Result<T, TryError<E>> {
        match self {
            Ok(flight) => flight.value.map_err(TryError::Failed),
            Err(e) => Err(e.into()),
        }
    }
}
