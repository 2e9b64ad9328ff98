//! The coordination core: `Group` and its builder.
//!
//! Its files run one way, each importing only from those listed before it:
//! a shard's map of running flights (`table`), what the group tells its
//! observer, the group with the flights its callers lead inline (`work`),
//! its builder, detached flights (deadlines, `do_chan`, `cancel`), and
//! fallible work in one `Result` (`try_work`, `TryError`).

mod observer;
mod table;

mod work;

mod builder;
mod detached;
mod fallible;

pub use self::builder::GroupBuilder;
pub use self::fallible::IntoResult;
pub(crate) use self::table::{FlightRef, Shard};
pub use self::work::{DefaultHashBuilder, Group};
