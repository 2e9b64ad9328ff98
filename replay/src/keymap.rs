//! A fixed, fast hash map for `u64` keys, for the tool's own tables (the
//! exact LRU, OPT's next-use pass, the generators). Fixed so every run is the
//! same; fast because the replay spends most of its time in these maps.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A `HashMap` keyed by `u64` with [`MixHasher`].
pub(crate) type KeyMap<V> = HashMap<u64, V, BuildHasherDefault<MixHasher>>;

/// A new, empty [`KeyMap`] with room for `capacity` keys.
pub(crate) fn key_map<V>(capacity: usize) -> KeyMap<V> {
    KeyMap::with_capacity_and_hasher(capacity, BuildHasherDefault::default())
}

/// Hashes one `u64` by a multiply and a fold (the finaliser of foldhash's
/// folded multiply), so sequential keys spread over the table's groups.
#[derive(Default)]
pub(crate) struct MixHasher(u64);

impl Hasher for MixHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        let m = u128::from(self.0 ^ n ^ 0x243f_6a88_85a3_08d3) * 0x9e37_79b9_7f4a_7c15;
        self.0 = (m as u64) ^ ((m >> 64) as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}
