//! One shard's hash index: from the low half of a key's hash (`short`) to
//! the positions of the slots that may hold the key, in buckets of one cache
//! line each, so that a hit reads one line of index before the slot's own.
//!
//! # Layout
//!
//! A bucket is 64 bytes, aligned to 64: eight 32-bit tags, then the eight
//! 32-bit positions they go with. A tag is the caller's whole `short`, so a
//! tag match is a false positive only when two keys share all 32 bits, and
//! so a rehash places every cell from its tag alone, without reading a
//! single slot. A position of `u32::MAX` marks an empty cell (the store never
//! holds that many slots). There is no header: eight cells rather than
//! seven plus a header is 8 bytes a cell instead of 9.1, and the placement
//! below needs no per-bucket counter. Tags and positions are kept apart so
//! that the tag compare and the empty-cell test each read 32 contiguous
//! bytes.
//!
//! # Placement: robin hood over buckets, deletion by backward shift
//!
//! A key's home bucket is its tag, multiplied by an odd constant, reduced to
//! the bucket count by multiply-shift; the count is not a power of two, so
//! memory follows the entry count instead of doubling. A full bucket sends
//! an insert to the next one (linear probing over buckets), and in each
//! full bucket the insert evicts the cell least displaced from its own home
//! if that one is less displaced than the insert is (robin hood); the
//! evicted cell carries on. So every bucket a cell went past was full, of
//! cells displaced at least as far as it was there: a lookup stops at the
//! first bucket that has an empty cell, or that holds a cell less displaced
//! than the lookup would be.
//!
//! A removal leaves no tombstone: while the next bucket holds a cell that
//! went past the hole, the most displaced such cell moves back into it and
//! leaves its own hole behind. Afterwards each bucket holds as many cells as
//! if the removed key had never been inserted, so the lookup cost is the
//! same too. A removal from a bucket that was not full moves nothing (no
//! cell can have gone past it), and neither does one followed by a bucket
//! whose cells are all at home.
//!
//! F14's per-bucket overflow counters were the other choice. They need a
//! header (7 cells a line, not 8), and they never move a displaced cell
//! back: under a cache's steady churn (every miss evicts one entry and
//! inserts another) a bucket's counter stays up while any cell that went
//! past it lives, so lookups go on past buckets that have room. In a
//! simulation at 85% load, after as many replacements as entries, 60% of the
//! keys were in their home bucket (88% before the churn) and a miss read 39
//! lines. Plain first-fit with backward shift keeps more keys at home (the
//! mean lines a hit is the same: it follows from the load alone) but can
//! stop a miss or a shift only at a bucket with room: 3.3 lines a miss and
//! 2.9 more a removal at 85%, against 1.6 and 2.6 here.
//!
//! # Load
//!
//! The table grows (by half, rehashing) past 80% of its cells: 6.4 entries
//! a bucket on average, 10 bytes an entry when sized by [`Index::reserve`].
//! Measured on this code at a million entries, after a million
//! replacements (`reserve(n)`, then `n` inserts; lines are index lines,
//! the slot's own not counted; misses are absent keys):
//!
//! | load | bytes/entry | keys at home | lines/hit | lines/miss | shift lines/removal |
//! |------|-------------|--------------|-----------|------------|---------------------|
//! | 75%  | 10.7        | 90%          | 1.10      | 1.34       | 0.87                |
//! | 80%  | 10.0        | 85%          | 1.15      | 1.45       | 1.41                |
//! | 85%  | 9.4         | 77%          | 1.25      | 1.61       | 2.57                |
//! | 90%  | 8.9         | 63%          | 1.46      | 1.87       | 5.92                |
//!
//! 85% would save 0.6 bytes an entry, but costs a tenth of a line more on
//! every hit and nearly doubles the shifting on every eviction; 75% saves
//! only a twentieth of a line a hit for 0.7 bytes more.

/// Cells in a bucket: eight tags and eight positions fill one cache line.
const CELLS: usize = 8;

/// The position of an empty cell.
const EMPTY: u32 = u32::MAX;

/// The multiplier that spreads a tag before its home is chosen: a tag that
/// varies only in its low bits still lands anywhere (the multiply-shift
/// reduction reads the high bits). Odd, so no two tags collide by it.
const SPREAD: u32 = 0x9E37_79B9;

/// The most entries the table holds per bucket before it grows, as a
/// fraction: 32/5 = 6.4 of 8 cells, 80% (see the module docs).
const LOAD_NUM: usize = 32;
const LOAD_DEN: usize = 5;

/// One cache line of the index.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Bucket {
    /// The `short` of each cell's key; meaningless in an empty cell.
    tags: [u32; CELLS],
    /// Each cell's slot position, or [`EMPTY`].
    pos: [u32; CELLS],
}

impl Bucket {
    const VACANT: Bucket = Bucket {
        tags: [0; CELLS],
        pos: [EMPTY; CELLS],
    };

    /// A bit per cell whose tag is `tag` (empty cells among them when `tag`
    /// is 0).
    #[inline]
    fn matches(&self, tag: u32) -> u32 {
        equal_cells(&self.tags, tag)
    }

    /// A bit per empty cell.
    #[inline]
    fn vacant(&self) -> u32 {
        equal_cells(&self.pos, EMPTY)
    }

    fn set(&mut self, cell: usize, tag: u32, pos: u32) {
        self.tags[cell] = tag;
        self.pos[cell] = pos;
    }
}

/// A bit per one of `words` equal to `x`: two vector compares and two move
/// masks on x86-64 (SSE2 is part of its baseline). The portable loop, which
/// LLVM left mostly unvectorised once inlined, was 34 instructions a probe,
/// half of a whole hit's index cost at 1,000 entries (cachegrind).
#[cfg(target_arch = "x86_64")]
#[inline]
fn equal_cells(words: &[u32; CELLS], x: u32) -> u32 {
    use std::arch::x86_64::{
        __m128i, _mm_castsi128_ps, _mm_cmpeq_epi32, _mm_loadu_si128, _mm_movemask_ps,
        _mm_set1_epi32,
    };
    let p = words.as_ptr().cast::<__m128i>();
    // SAFETY: `words` is 32 readable bytes, so both unaligned 16-byte loads
    // are in bounds; SSE and SSE2 are part of x86-64's baseline, so every
    // x86-64 processor has them.
    unsafe {
        let needle = _mm_set1_epi32(x as i32);
        let lo = _mm_cmpeq_epi32(_mm_loadu_si128(p), needle);
        let hi = _mm_cmpeq_epi32(_mm_loadu_si128(p.add(1)), needle);
        let lo = _mm_movemask_ps(_mm_castsi128_ps(lo));
        let hi = _mm_movemask_ps(_mm_castsi128_ps(hi));
        (lo | hi << 4) as u32
    }
}

/// A bit per one of `words` equal to `x`.
#[cfg(not(target_arch = "x86_64"))]
#[inline]
fn equal_cells(words: &[u32; CELLS], x: u32) -> u32 {
    let mut mask = 0;
    for (i, &w) in words.iter().enumerate() {
        mask |= u32::from(w == x) << i;
    }
    mask
}

/// A hash index from `short` hashes to `u32` slot positions: see the module
/// docs for its layout and placement.
pub(crate) struct Index {
    /// Empty (no allocation) until the first insert or reserve.
    buckets: Box<[Bucket]>,
    len: usize,
    /// The most entries before the next insert grows the table.
    limit: usize,
}

/// How many buckets hold `entries` within the load limit.
fn buckets_for(entries: usize) -> usize {
    let buckets = (entries as u128 * LOAD_DEN as u128).div_ceil(LOAD_NUM as u128);
    // The multiply-shift reduction takes the bucket count as a u32.
    assert!(
        buckets <= u128::from(u32::MAX),
        "an index of {entries} entries is over 2^32 buckets"
    );
    buckets as usize
}

impl Index {
    /// An empty index; allocates nothing.
    pub(crate) fn new() -> Self {
        Index {
            buckets: Box::new([]),
            len: 0,
            limit: 0,
        }
    }

    /// Makes room for `additional` more entries without growing on insert.
    /// Sizes the table to exactly what that needs (like
    /// `Vec::reserve_exact`), so a caller that knows its bound calls it once
    /// with the whole of it rather than a little at a time, each of which
    /// would rehash.
    pub(crate) fn reserve(&mut self, additional: usize) {
        let need = self.len.saturating_add(additional);
        if need > self.limit {
            self.rehash(buckets_for(need));
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The heap bytes the index holds.
    pub(crate) fn bytes(&self) -> usize {
        std::mem::size_of_val::<[Bucket]>(&self.buckets)
    }

    /// The first position, in probe order, among those indexed under
    /// `short` that `eq` accepts. Calls `eq` only with positions indexed
    /// under `short`.
    #[inline]
    pub(crate) fn find(&self, short: u32, eq: impl FnMut(u32) -> bool) -> Option<u32> {
        self.locate(short, eq).map(|(_, _, pos)| pos)
    }

    /// Indexes `pos` under `short`. The caller guarantees that no position
    /// already indexed holds the same key, and that `pos` is not `u32::MAX`.
    pub(crate) fn insert(&mut self, short: u32, pos: u32) {
        debug_assert_ne!(pos, EMPTY, "u32::MAX marks an empty cell");
        if self.len >= self.limit {
            let buckets = self.buckets.len();
            self.rehash((buckets + buckets / 2).max(buckets_for(self.len + 1)));
        }
        self.place(short, pos);
        self.len += 1;
    }

    /// Takes `pos` out of the index; false if it was not indexed under
    /// `short`.
    pub(crate) fn remove(&mut self, short: u32, pos: u32) -> bool {
        let Some((bucket, cell, _)) = self.locate(short, |p| p == pos) else {
            return false;
        };
        let was_full = self.buckets[bucket].vacant() == 0;
        self.buckets[bucket].set(cell, 0, EMPTY);
        self.len -= 1;
        if was_full {
            self.shift_back(bucket, cell);
        }
        true
    }

    /// Records that the slot indexed under `short` at `from` moved to `to`;
    /// false if `from` was not indexed under `short`.
    pub(crate) fn repoint(&mut self, short: u32, from: u32, to: u32) -> bool {
        debug_assert_ne!(to, EMPTY, "u32::MAX marks an empty cell");
        match self.locate(short, |p| p == from) {
            Some((bucket, cell, _)) => {
                self.buckets[bucket].pos[cell] = to;
                true
            }
            None => false,
        }
    }

    /// Empties the index and frees its buckets, as the store frees its slab:
    /// a cleared cache holds no memory. A caller that will refill it to the
    /// same size calls [`Index::reserve`] again.
    pub(crate) fn clear(&mut self) {
        *self = Index::new();
    }

    /// The home bucket of `tag`.
    #[inline]
    fn home(&self, tag: u32) -> usize {
        let spread = u64::from(tag.wrapping_mul(SPREAD));
        ((spread * self.buckets.len() as u64) >> 32) as usize
    }

    #[inline]
    fn next(&self, bucket: usize) -> usize {
        if bucket + 1 == self.buckets.len() {
            0
        } else {
            bucket + 1
        }
    }

    /// How many buckets past its home a cell with `tag` in `bucket` is.
    fn displacement(&self, bucket: usize, tag: u32) -> usize {
        let home = self.home(tag);
        if bucket >= home {
            bucket - home
        } else {
            bucket + self.buckets.len() - home
        }
    }

    /// The cell of a full `bucket` least displaced from its home, and how
    /// far that is.
    fn least_displaced(&self, bucket: usize) -> (usize, usize) {
        let tags = &self.buckets[bucket].tags;
        (0..CELLS)
            .map(|cell| (cell, self.displacement(bucket, tags[cell])))
            .min_by_key(|&(_, d)| d)
            .unwrap_or((0, 0))
    }

    /// The bucket, cell and position of the first cell under `short`, in
    /// probe order, whose position `hit` accepts.
    #[inline]
    fn locate(&self, short: u32, mut hit: impl FnMut(u32) -> bool) -> Option<(usize, usize, u32)> {
        let buckets = self.buckets.len();
        if buckets == 0 {
            return None;
        }
        let mut bucket = self.home(short);
        let mut displaced = 0;
        loop {
            let b = &self.buckets[bucket];
            let mut mask = b.matches(short);
            while mask != 0 {
                let cell = mask.trailing_zeros() as usize;
                mask &= mask - 1;
                let pos = b.pos[cell];
                if pos != EMPTY && hit(pos) {
                    return Some((bucket, cell, pos));
                }
            }
            // Every bucket a cell went past was full, of cells displaced at
            // least as far as it was there (see the module docs).
            if b.vacant() != 0 {
                return None;
            }
            if displaced > 0 && self.least_displaced(bucket).1 < displaced {
                return None;
            }
            displaced += 1;
            if displaced == buckets {
                return None;
            }
            bucket = self.next(bucket);
        }
    }

    /// Puts a cell in the table, robin hood style; no room check.
    fn place(&mut self, mut tag: u32, mut pos: u32) {
        let mut bucket = self.home(tag);
        let mut displaced = 0;
        // Bounded: at most `limit` < 8 cells a bucket are live, so a probe
        // meets a bucket with room within one lap.
        for _ in 0..self.buckets.len() {
            let vacant = self.buckets[bucket].vacant();
            if vacant != 0 {
                let cell = vacant.trailing_zeros() as usize;
                self.buckets[bucket].set(cell, tag, pos);
                return;
            }
            let (cell, least) = self.least_displaced(bucket);
            if least < displaced {
                let b = &mut self.buckets[bucket];
                std::mem::swap(&mut tag, &mut b.tags[cell]);
                std::mem::swap(&mut pos, &mut b.pos[cell]);
                displaced = least;
            }
            displaced += 1;
            bucket = self.next(bucket);
        }
        unreachable!("an index under its load limit has a bucket with room");
    }

    /// Fills the hole just made at `bucket`, `cell` (in a bucket that was
    /// full) from the buckets after it, so that no cell is left past a
    /// bucket with room.
    fn shift_back(&mut self, mut bucket: usize, mut cell: usize) {
        for _ in 0..self.buckets.len() {
            let from = self.next(bucket);
            let b = &self.buckets[from];
            // The cell of `from` most displaced, if it went past the hole.
            let mut best: Option<(usize, usize)> = None;
            for c in 0..CELLS {
                if b.pos[c] == EMPTY {
                    continue;
                }
                let d = self.displacement(from, b.tags[c]);
                if d > 0 && best.is_none_or(|(_, most)| d > most) {
                    best = Some((c, d));
                }
            }
            let Some((c, _)) = best else {
                // All of `from` is at home, so nothing after it went past
                // the hole either: they would have taken `from`'s cells.
                return;
            };
            let was_full = b.vacant() == 0;
            let (tag, pos) = (b.tags[c], b.pos[c]);
            self.buckets[bucket].set(cell, tag, pos);
            self.buckets[from].set(c, 0, EMPTY);
            if !was_full {
                // No cell went past a bucket with room.
                return;
            }
            (bucket, cell) = (from, c);
        }
    }

    /// Moves every cell into a table of `buckets` buckets, from its tag
    /// alone.
    fn rehash(&mut self, buckets: usize) {
        let old = std::mem::replace(
            &mut self.buckets,
            vec![Bucket::VACANT; buckets].into_boxed_slice(),
        );
        // In u64: 2^32 buckets times 32 is past a 32-bit usize.
        self.limit = usize::try_from(buckets as u64 * LOAD_NUM as u64 / LOAD_DEN as u64)
            .unwrap_or(usize::MAX);
        for b in old.iter() {
            for cell in 0..CELLS {
                if b.pos[cell] != EMPTY {
                    self.place(b.tags[cell], b.pos[cell]);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
