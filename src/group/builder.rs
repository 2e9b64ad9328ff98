//! `GroupBuilder`: a group's name, hasher, shard count, spawner and
//! observer.

use super::work::DefaultHashBuilder;
use std::fmt;
use std::hash::BuildHasher;
use std::io;
use std::marker::PhantomData;

use super::observer::Observer;
use super::table::Shard;
use super::work::Group;
use crate::metrics::Metrics;
use crate::spawn::{Job, Spawner};
use crate::sync::{self, Shared};

impl<K, V> Group<K, V> {
    /// Creates an empty group with the default hasher and shard count.
    ///
    /// # Examples
    ///
    /// ```
    /// let group = singleflight_sync::Group::<u64, String>::new();
    /// assert_eq!(group.in_flight(), 0);
    /// ```
    pub fn new() -> Self {
        Self::builder().build()
    }

    /// Starts a [`GroupBuilder`] to set a name, a hasher or a shard count.
    ///
    /// # Examples
    ///
    /// ```
    /// use singleflight_sync::Group;
    ///
    /// let group: Group<String, Vec<u8>> = Group::builder().name("thumbnails").build();
    /// assert_eq!(group.name(), Some("thumbnails"));
    /// ```
    pub fn builder() -> GroupBuilder<K, V> {
        GroupBuilder {
            name: None,
            hasher: DefaultHashBuilder::default(),
            shards: None,
            spawner: Spawner::default(),
            observer: Observer {
                metrics: None,
                error_if: None,
            },
            _types: PhantomData,
        }
    }
}

/// Configures a [`Group`]; made by [`Group::builder`].
///
/// # Examples
///
/// ```
/// use singleflight_sync::Group;
/// use std::collections::hash_map::RandomState;
///
/// let group: Group<u64, u64, RandomState> = Group::builder()
///     .name("prices")
///     .hasher(RandomState::new())
///     .shards(16)
///     .build();
/// assert_eq!(group.work(&1, || 2), 2);
/// ```
pub struct GroupBuilder<K, V, S = DefaultHashBuilder> {
    name: Option<&'static str>,
    hasher: S,
    shards: Option<usize>,
    pub(crate) spawner: Spawner,
    observer: Observer<V>,
    _types: PhantomData<fn() -> (K, V)>,
}

impl<K, V, S> GroupBuilder<K, V, S> {
    /// A label for panic messages, errors and metrics. Never a key: keys are
    /// unbounded, names are not.
    ///
    /// # Examples
    ///
    /// ```
    /// use singleflight_sync::Group;
    ///
    /// let group: Group<String, u32> = Group::builder().name("users").build();
    /// assert_eq!(group.name(), Some("users"));
    /// assert!(format!("{group:?}").contains(r#"name: Some("users")"#));
    /// ```
    pub fn name(mut self, name: &'static str) -> Self {
        self.name = Some(name);
        self
    }

    /// The hasher that picks a key's shard and bucket (default:
    /// [`DefaultHashBuilder`], foldhash; see there for when to choose
    /// `std::collections::hash_map::RandomState`, SipHash, instead).
    ///
    /// # Examples
    ///
    /// ```
    /// use singleflight_sync::Group;
    /// use std::hash::{BuildHasherDefault, DefaultHasher};
    ///
    /// let group: Group<String, u32, BuildHasherDefault<DefaultHasher>> =
    ///     Group::builder().hasher(BuildHasherDefault::default()).build();
    /// assert_eq!(group.work("k", || 1), 1);
    /// assert_eq!(group.stats().calls, 1);
    /// ```
    pub fn hasher<S2: BuildHasher>(self, hasher: S2) -> GroupBuilder<K, V, S2> {
        GroupBuilder {
            name: self.name,
            hasher,
            shards: self.shards,
            spawner: self.spawner,
            observer: self.observer,
            _types: PhantomData,
        }
    }

    /// How many independently locked shards the map has, rounded up to a
    /// power of two (default: four per core, at least 4, at most 256).
    ///
    /// # Panics
    ///
    /// If `shards` is 0 or above 65,536.
    ///
    /// # Examples
    ///
    /// ```
    /// use singleflight_sync::Group;
    ///
    /// let group: Group<u64, u64> = Group::builder().shards(3).build();
    /// assert!(format!("{group:?}").contains("shards: 4"), "rounded up to a power of two");
    /// assert!(std::panic::catch_unwind(|| Group::<u64, u64>::builder().shards(0)).is_err());
    /// ```
    pub fn shards(mut self, shards: usize) -> Self {
        assert!(
            (1..=1 << 16).contains(&shards),
            "GroupBuilder::shards: {shards} is not a shard count (1..=65536)"
        );
        self.shards = Some(shards.next_power_of_two());
        self
    }

    /// An observer told of every flight's end and every waiter (see
    /// [`Metrics`]). Without one, the group reads no clock and allocates
    /// nothing for metrics.
    ///
    /// # Examples
    ///
    /// ```
    /// use singleflight_sync::{FlightEnd, Group, Metrics};
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::sync::Arc;
    ///
    /// #[derive(Debug, Default)]
    /// struct Flights(AtomicUsize);
    /// impl Metrics for Flights {
    ///     fn flight_ended(&self, _group: Option<&'static str>, _flight: &FlightEnd) {
    ///         self.0.fetch_add(1, Ordering::Relaxed);
    ///     }
    /// }
    ///
    /// let flights = Arc::new(Flights::default());
    /// let group: Group<String, u32> = Group::builder().metrics(flights.clone()).build();
    /// group.work("k", || 1);
    /// assert_eq!(flights.0.load(Ordering::Relaxed), 1);
    /// ```
    pub fn metrics<M: Metrics>(mut self, metrics: std::sync::Arc<M>) -> Self {
        self.observer.metrics = Some(metrics);
        self
    }

    /// How to tell an error from a value, for [`Stats::errors`](crate::Stats::errors) and the
    /// observer's [`Outcome::Error`](crate::Outcome::Error): for `V = Result<T, E>`, pass
    /// `Result::is_err`. Default: no value is an error. If `is_error`
    /// panics, the value counts as a value (the flight still ends normally).
    ///
    /// # Examples
    ///
    /// ```
    /// use singleflight_sync::Group;
    ///
    /// let group: Group<String, Result<u32, String>> =
    ///     Group::builder().error_if(Result::is_err).build();
    /// let _ = group.work("k", || Err("down".to_string()));
    /// assert_eq!(group.stats().errors, 1);
    /// ```
    pub fn error_if(mut self, is_error: fn(&V) -> bool) -> Self {
        self.observer.error_if = Some(is_error);
        self
    }

    /// Makes the group.
    ///
    /// # Examples
    ///
    /// ```
    /// use singleflight_sync::Group;
    ///
    /// let group: Group<String, u32> = Group::builder().build();
    /// assert_eq!((group.name(), group.in_flight()), (None, 0));
    /// assert_eq!(group.work("k", || 1), 1);
    /// ```
    pub fn build(self) -> Group<K, V, S> {
        let count = self.shards.unwrap_or_else(sync::default_shards);
        let shards = (0..count).map(|_| Shard::new()).collect();
        Group {
            shards,
            mask: count - 1,
            hasher: self.hasher,
            name: self.name,
            spawner: self.spawner,
            observer: self.observer,
        }
    }
}

impl<K, V, S: fmt::Debug> fmt::Debug for GroupBuilder<K, V, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GroupBuilder")
            .field("name", &self.name)
            .field("hasher", &self.hasher)
            .field("shards", &self.shards)
            .field("spawner", &self.spawner)
            .finish()
    }
}

impl<K, V, S> GroupBuilder<K, V, S> {
    /// Where detached flights run (default: a new `std::thread` each, named
    /// `singleflight-<name>`). The hook must run the job it is given, once,
    /// on some thread, or return an error.
    ///
    /// A hook that returns an error, panics, or drops the job without running
    /// it makes the flight fail with [`Error::Spawn`](crate::Error::Spawn) for every waiter, and
    /// releases the key.
    ///
    /// # Examples
    ///
    /// A thread pool runs the flights:
    ///
    /// ```
    /// use singleflight_sync::Group;
    /// use std::time::Duration;
    ///
    /// let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
    /// let group: Group<String, u32> = Group::builder()
    ///     .spawner(move |job| {
    ///         pool.spawn(job);
    ///         Ok(())
    ///     })
    ///     .build();
    /// let flight = group.work_timeout("k", Duration::from_secs(5), |_| 7).unwrap();
    /// assert_eq!(flight.value, 7);
    /// ```
    pub fn spawner<F>(mut self, spawner: F) -> Self
    where
        F: Fn(Job) -> io::Result<()> + Send + Sync + 'static,
    {
        self.spawner = Spawner::hook(Shared::new(spawner));
        self
    }
}
