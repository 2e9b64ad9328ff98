//! A frequency sketch: how often each key was asked for, recently, in a few
//! bits per key. When a full cache must choose, an entry leaving the recency
//! window replaces main's victim only if it is asked for more often (the
//! TinyLFU idea), which keeps the hot keys of a skewed workload.

/// A count-min sketch of 4-bit counters, four rows, all four of a key's
/// counters in one 64-byte block so an update touches one cache line. Sized
/// at 16 bytes per entry (eight counters per entry per row, twice
/// Caffeine's): on the replay tool's Zipf traces this was 0.5 to 2 points
/// of hit ratio above 8 bytes, where collisions among the many keys seen
/// once let cold candidates win admission; 32 bytes gained another 0.2 to
/// 1 point. Counts are halved every `sample` additions (see [`AGING`]), so
/// old popularity fades.
pub(crate) struct Sketch {
    blocks: Box<[Block]>,
    mask: u64,
    additions: usize,
    sample: usize,
    /// The doorkeeper's bits (see [`DOOR_BITS_PER_BLOCK`]); empty for a
    /// sketch at its floor, whose counters are not scarce.
    door: Box<[u64]>,
    door_mask: u64,
}

/// One key's four counters, a cache line: aligned to one, so reading them
/// touches one line (an unaligned `[u8; 64]` straddled two in all but one
/// case in 64).
#[derive(Clone, Copy)]
#[repr(align(64))]
struct Block([u8; 64]);

/// Entries a 64-byte block serves (see the type's docs).
const ENTRIES_PER_BLOCK: usize = 4;

/// The smallest sketch, 16 KiB: what a sketch must tell apart is the keys
/// seen in an aging period, which a small cache's skewed workload has as
/// many of as a large one's. On the replay tool's 1,000-entry rows (8
/// shards of 125), this floor brought the Zipf and scan rows 0.4 to 1.7
/// points closer to quick_cache.
const SMALLEST_BLOCKS: usize = 256;

/// Additions between two halvings, per block of the sketch. The period is
/// set by the sketch's size, not the shard's capacity: how long a sketch can
/// remember is limited by how many keys its counters tell apart before
/// collisions blur them, and the blocks are that room (a 4 times larger
/// sketch, at the same period, was 1.2 points better on the 10,000-entry
/// Zipf s=0.6 row; memory per entry is held where it is, so the period is
/// what moves). Per capacity (10 additions an entry, Caffeine's figure) the
/// 10,000-entry shards, whose sketches have room for 1.6 times their
/// entries, remembered too long. 6 a block (1.5 to 3 additions an entry
/// above the 16 KiB floor, 12 at it) lifted the replay tool's 10,000-entry
/// Zipf and scan rows by 0.1 to 0.6 points, and a 100,000-entry cache's
/// Zipf rows (1,000,000 keys) by 0.1 to 0.25; 4 or 10 a block did less.
const AGING: usize = 6;

/// The doorkeeper in front of the counters (TinyLFU's): a Bloom filter of
/// two bits a key, both in one 64-bit word (one line read a check; two
/// independent words took 0.7 more lines missing a 1 MiB cache per miss
/// into a full 100,000-entry cache under cachegrind, and moved the replay
/// tool's rows by 0.01 to 0.03 points, 0.05 to 0.09 summed over 16). A
/// key's first request in an aging period only sets its bits; later ones
/// reach the counters, and its estimate is the counters
/// plus one for the bits. The many keys seen once (most of a skewed
/// workload's tail) then take no counter, so the counters tell the
/// returning keys apart for longer. Cleared at every halving.
///
/// Only for a sketch above its floor (`SMALLEST_BLOCKS`), where counters
/// are scarce: on the replay tool, 128 bits a block (4 bytes an entry)
/// lifted the 10,000-entry Zipf and scan rows by 0.1 to 0.55 points, while
/// on the 1,000-entry rows, whose floor-sized sketches have room to spare,
/// it cost 0.1 to 0.25 (its false positives and the extra count only add
/// noise there). 32 bits a block did less; halving the counters under it
/// (8 bytes an entry) lost more than it gained.
const DOOR_BITS_PER_BLOCK: usize = 128;

/// Counters per row in a block: 64 bytes hold 128 nibbles, 32 per row.
const ROW: usize = 32;
const MAX: u8 = 15;

impl Sketch {
    /// A sketch for a shard that holds about `capacity` entries.
    pub(crate) fn new(capacity: usize) -> Self {
        // At least 16 KiB (see `SMALLEST_BLOCKS`), and at most 16 MiB a
        // shard: past a million entries a shard, a larger
        // sketch buys little accuracy, and a huge `max_entries` must not
        // allocate (or overflow) up front.
        let wanted = capacity.div_ceil(ENTRIES_PER_BLOCK);
        let blocks = wanted.clamp(SMALLEST_BLOCKS, 1 << 18).next_power_of_two();
        let door_bits = match wanted > SMALLEST_BLOCKS {
            true => blocks * DOOR_BITS_PER_BLOCK,
            false => 0,
        };
        Sketch {
            blocks: vec![Block([0; 64]); blocks].into_boxed_slice(),
            mask: blocks as u64 - 1,
            additions: 0,
            sample: blocks * AGING,
            door: vec![0; door_bits / 64].into_boxed_slice(),
            door_mask: (door_bits as u64 / 64).wrapping_sub(1),
        }
    }

    /// The block and the four counters (nibble indexes, one per row) for
    /// `hash`. The block comes from the low bits, the counters from four
    /// other 5-bit fields of a remixed hash, so rows are independent enough
    /// for a count-min.
    #[inline]
    fn cells(&self, hash: u64) -> (usize, [usize; 4]) {
        let mixed = hash.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(29);
        let block = (hash & self.mask) as usize;
        let cell = |row: usize| row * ROW + ((mixed >> (row * 5)) as usize & (ROW - 1));
        (block, [cell(0), cell(1), cell(2), cell(3)])
    }

    #[inline]
    fn get(block: &[u8; 64], nibble: usize) -> u8 {
        (block[nibble / 2] >> ((nibble & 1) * 4)) & 0xF
    }

    /// The doorkeeper's word and two bits in it for `hash`, from bits the
    /// counters' block and cells do not use. Both bits in one word (a
    /// blocked Bloom filter), so a check reads one line, not two.
    #[inline]
    fn door_bits(&self, hash: u64) -> (usize, u64) {
        let m = hash.wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
        let word = ((m >> 20) & self.door_mask) as usize;
        (word, 1 << (m >> 52 & 63) | 1 << (m >> 58))
    }

    /// Whether `hash` passed the doorkeeper this period (always, without
    /// one).
    #[inline]
    fn past_door(&self, hash: u64) -> bool {
        if self.door.is_empty() {
            return true;
        }
        let (word, bits) = self.door_bits(hash);
        self.door[word] & bits == bits
    }

    /// Counts one request for `hash`: at the doorkeeper the first time in
    /// a period, then in the counters, where only the smallest grow
    /// (conservative update), which keeps estimates tighter.
    #[inline]
    pub(crate) fn increment(&mut self, hash: u64) {
        if !self.past_door(hash) {
            let (word, bits) = self.door_bits(hash);
            self.door[word] |= bits;
            self.added();
            return;
        }
        let (block, cells) = self.cells(hash);
        let counters = &mut self.blocks[block].0;
        let min = cells
            .iter()
            .map(|&c| Self::get(counters, c))
            .min()
            .unwrap_or(MAX);
        if min == MAX {
            return;
        }
        for &c in &cells {
            if Self::get(counters, c) == min {
                counters[c / 2] += 1 << ((c & 1) * 4);
            }
        }
        self.added();
    }

    fn added(&mut self) {
        self.additions += 1;
        if self.additions >= self.sample {
            self.age();
        }
    }

    /// The estimated recent request count for `hash` (at most 16 with a
    /// doorkeeper, 15 without).
    pub(crate) fn frequency(&self, hash: u64) -> u8 {
        let (block, cells) = self.cells(hash);
        let counters = &self.blocks[block].0;
        let counted = cells
            .iter()
            .map(|&c| Self::get(counters, c))
            .min()
            .unwrap_or(0);
        let door = u8::from(!self.door.is_empty() && self.past_door(hash));
        counted + door
    }

    fn age(&mut self) {
        for block in self.blocks.iter_mut() {
            for byte in block.0.iter_mut() {
                // Halve both nibbles at once.
                *byte = (*byte >> 1) & 0x77;
            }
        }
        self.additions /= 2;
        self.door.fill(0);
    }
}

#[cfg(test)]
mod tests {
    use super::Sketch;

    #[test]
    fn a_large_sketch_counts_a_first_request_at_its_doorkeeper_only() {
        let mut sketch = Sketch::new(1 << 16);
        assert!(!sketch.door.is_empty());
        let hash = |k: u64| k.wrapping_mul(0xA076_1D64_78BD_642F) ^ (k << 7);
        sketch.increment(hash(1));
        let (block, cells) = sketch.cells(hash(1));
        let counted = |s: &Sketch| {
            cells
                .iter()
                .map(|&c| Sketch::get(&s.blocks[block].0, c))
                .min()
        };
        assert_eq!(
            counted(&sketch),
            Some(0),
            "the first request takes no counter"
        );
        assert_eq!(
            sketch.frequency(hash(1)),
            1,
            "but is counted by the doorkeeper"
        );
        sketch.increment(hash(1));
        assert_eq!(counted(&sketch), Some(1));
        assert_eq!(sketch.frequency(hash(1)), 2);
        assert_eq!(sketch.frequency(hash(2)), 0, "an unseen key");
        sketch.age();
        assert!(
            sketch.door.iter().all(|&w| w == 0),
            "aging clears the doorkeeper"
        );
        assert_eq!(sketch.frequency(hash(1)), 0);
    }

    #[test]
    fn a_keys_counters_are_one_cache_line() {
        let sketch = Sketch::new(1 << 16);
        // The type's alignment, which no allocator's luck can stand in
        // for, then every block's address.
        assert_eq!(std::mem::align_of::<super::Block>(), 64);
        assert_eq!(std::mem::size_of_val(&sketch.blocks[0]), 64);
        assert!(sketch
            .blocks
            .iter()
            .all(|b| (b as *const super::Block as usize) % 64 == 0));
    }

    #[test]
    fn a_sketch_at_its_floor_has_no_doorkeeper() {
        let mut sketch = Sketch::new(100);
        assert!(sketch.door.is_empty());
        let hash = 0x1234_5678_9ABC_DEF1;
        sketch.increment(hash);
        assert_eq!(sketch.frequency(hash), 1, "counted in the counters at once");
    }

    #[test]
    fn frequent_keys_estimate_higher_and_estimates_age() {
        let mut sketch = Sketch::new(1024);
        let hash = |k: u64| k.wrapping_mul(0xA076_1D64_78BD_642F) ^ (k << 7);
        for _ in 0..10 {
            sketch.increment(hash(1));
        }
        sketch.increment(hash(2));
        assert_eq!(sketch.frequency(hash(1)), 10);
        assert!(sketch.frequency(hash(2)) >= 1);
        assert!(sketch.frequency(hash(2)) < 10);
        assert_eq!(sketch.frequency(hash(3)), 0);
        for _ in 0..20 {
            sketch.increment(hash(1));
        }
        assert_eq!(sketch.frequency(hash(1)), 15, "saturates");
        sketch.age();
        assert_eq!(sketch.frequency(hash(1)), 7, "halved");
    }

    #[test]
    fn counts_halve_after_aging_additions_a_block() {
        // 1,024 entries: the 16 KiB floor, 256 blocks.
        let mut sketch = Sketch::new(1024);
        assert_eq!(sketch.blocks.len(), 256);
        let period = 256 * super::AGING;
        let hash = |k: u64| k.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        for _ in 0..8 {
            sketch.increment(hash(0));
        }
        for k in 1..(period - 8) as u64 {
            sketch.increment(hash(k));
        }
        assert!(sketch.frequency(hash(0)) >= 8, "not aged yet");
        sketch.increment(hash(u64::MAX));
        assert!(sketch.frequency(hash(0)) <= 7, "halved at the period");
    }

    #[test]
    fn neighbouring_nibbles_do_not_disturb_each_other() {
        let mut sketch = Sketch::new(4096);
        for k in 0..200u64 {
            for _ in 0..(k % 16) {
                sketch.increment(k.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            }
        }
        // A count-min never underestimates (before aging).
        for k in 0..200u64 {
            assert!(
                sketch.frequency(k.wrapping_mul(0x9E37_79B9_7F4A_7C15)) as u64 >= (k % 16).min(15)
            );
        }
    }
}
