//! Hit ratios of `singleflight_sync::TtlCache`, moka, quick_cache, an exact
//! LRU and Belady's optimal on the same key traces, side by side.
//!
//! The `replay` binary is the front end; this library is what it runs, so
//! tests and other tools can drive each piece: the synthetic generators
//! ([`Workload`]), the trace parsers ([`parse_keys`], [`parse_arc`]), the
//! exact [`Lru`], Belady's optimal ([`opt_hits`]), a replay through any
//! [`Policy`] ([`hits`]) and the markdown table ([`render`]).
//!
//! ```
//! use singleflight_replay::{replay, render, Input, Plan, Policy, Tuning, Workload};
//!
//! let plan = Plan {
//!     inputs: vec![Input::Synthetic(Workload::Zipf { skew: 0.99, keys: 1_000 })],
//!     capacities: vec![100],
//!     requests: 10_000,
//!     seed: 7,
//!     tuning: Tuning::default(),
//! };
//! let rows = replay(&plan, |_, _| {}).unwrap();
//! let opt = rows[0].hits_of(Policy::Opt);
//! assert!(Policy::ALL.iter().all(|&p| rows[0].hits_of(p) <= opt));
//! assert!(render(&rows).contains("| zipf s=0.99, 1000 keys | 100 |"));
//! ```
//!
//! Every replay is single-threaded and in trace order, so a seed names one
//! table: the caches are built with a fixed hasher, and moka's deferred
//! maintenance is run at fixed points (see [`DEFAULT_MOKA_MAINTENANCE`]).

#![warn(missing_docs, missing_debug_implementations, rust_2018_idioms)]

mod error;
mod keymap;
mod lru;
mod opt;
mod policy;
mod recency;
mod run;
mod table;
mod trace;
mod workload;
mod zipf;

pub use crate::error::Error;
pub use crate::lru::{lru_hits, Lru};
pub use crate::opt::{next_uses, opt_hits, NEVER};
pub use crate::policy::{hits, quick_cache_shards, Policy, Tuning, DEFAULT_MOKA_MAINTENANCE};
pub use crate::run::{replay, replay_row, Input, Plan};
pub use crate::table::{check_capacities, render, summary, Row, MAX_CAPACITY};
pub use crate::trace::{key_of, parse_arc, parse_keys, read_trace, Format, MAX_TRACE_KEYS};
pub use crate::workload::{Workload, MAX_ZIPF_KEYS};
pub use crate::zipf::Zipf;
