//! The coordination core: `Group` and its builder.
//!
//! Its files run one way, each importing only from those listed before it:
//! a shard's map of running flights (`table`), what the group tells its
//! observer, the group with the flights its callers lead inline (`work`),
//! its builder, detached flights (deadlines, `do_chan`, `cancel`), and
//! batches (`work_many`, and the detached ones the cache refreshes with).

mod observer;
mod table;

mod work;

mod builder;
mod detached;
mod many;
mod many_detached;

pub use self::builder::GroupBuilder;
pub(crate) use self::table::{FlightRef, Shard};
pub use self::work::{DefaultHashBuilder, Group};
