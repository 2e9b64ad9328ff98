//! The cache layer: `TtlCache`, built on a `Group`.
//!
//! Its files run one way, each importing only from those listed before it:
//! the clock, the user's hooks (listener, weigher, expiry), the frequency sketch, the slot, the eviction policy and one shard's
//! store (plain data structures: no locks, clocks or threads inside); what every handle
//! shares (`inner`); the cache type with its lookups and writes (`lookup`);
//! the loaders on the caller's thread (`load`, and `many` for batches) and
//! on the spawner (`refresh`, and `many_detached` for batches); the
//! builder.

mod adapt;
mod clock;
mod hooks;
mod policy;
mod sketch;
mod slot;
mod store;

mod flight;
mod inner;
mod lookup;
mod map;

mod load;
mod many;
mod refresh;
mod resilience;

mod many_detached;

mod build;
mod builder;
mod options;

pub use self::builder::{
    TtlCacheBuilder, DEFAULT_DROP_TIMEOUT, DEFAULT_FAIL_SAFE_THROTTLE, DEFAULT_MAX_ENTRIES,
};
pub use self::clock::{Clock, ManualClock, SystemClock};
pub use self::hooks::{Expiry, RemovalCause};
pub use self::lookup::TtlCache;
pub use self::map::Iter;
pub use self::resilience::Entry;
