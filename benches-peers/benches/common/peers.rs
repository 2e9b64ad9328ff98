//! moka's and quick_cache's sync caches as [`Peer`]s, each called through its
//! own loading API (moka's `get_with`, quick_cache's `get_or_insert_with`),
//! for the benches that run the shared workloads of
//! `benches/common/caches.rs` on them (`ttl.rs`, `engine.rs`).
#![allow(dead_code)] // each bench uses its own subset

use std::convert::Infallible;

use crate::caches::{unexpected_load, Peer};

pub type Moka = moka::sync::Cache<u64, u64>;
pub type Quick = quick_cache::sync::Cache<u64, u64>;

impl Peer for Moka {
    #[inline]
    fn hit(&self, key: u64) -> u64 {
        self.get(&key).unwrap_or_else(|| unexpected_load(key))
    }

    #[inline]
    fn load(&self, key: u64) -> u64 {
        self.get_with(key, || key)
    }

    fn entries(&self) -> u64 {
        self.run_pending_tasks();
        self.entry_count()
    }
}

impl Peer for Quick {
    #[inline]
    fn hit(&self, key: u64) -> u64 {
        self.get(&key).unwrap_or_else(|| unexpected_load(key))
    }

    #[inline]
    fn load(&self, key: u64) -> u64 {
        match self.get_or_insert_with(&key, || Ok::<_, Infallible>(key)) {
            Ok(v) => v,
            Err(never) => match never {},
        }
    }

    fn entries(&self) -> u64 {
        self.len() as u64
    }
}
