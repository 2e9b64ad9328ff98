//! The adapter's lock-free side: the keys resident in both miniatures, so
//! that a sampled hit on one is served without the lock, and whether the
//! adapter sleeps (see the parent module's docs).

use crate::sync::hint::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};

/// What a sampled hit needs without the lock: the keys resident in both
/// miniatures with their two positions, both miniatures' reference bits,
/// and how many requests the current period can still take. See the
/// module docs.
///
/// The `sync` shim's hint atomics (std's even under loom): what they hold is a hint, not part of
/// the cache's coordination. A race on them (a key read just as it is
/// evicted, so its bit is set on the entry that took its place; a credit
/// decrement lost) only blurs or loses a sample, as a contended `try_lock`
/// already does.
pub(super) struct Quiet {
    /// Buckets of [`WAYS`] slots, by the key's mixed hash: the low 32 bits
    /// are the key (0 is an empty slot; a key that mixes to 0 is never
    /// filed), the next 16 and the top 16 where its two reference bits are
    /// in `refs`. A key that finds its bucket full is not filed, and takes
    /// the locked path.
    buckets: Box<[[AtomicU64; WAYS]]>,
    mask: usize,
    /// The smaller-window miniature's reference bits, then the larger's.
    pub(super) refs: Box<[AtomicBool]>,
    pub(super) credit: Credit,
}

/// The requests the current period can still take without the lock, and
/// whether the cache evicted in it ([`EVICTED`], [`DORMANT`]), on a line of
/// their own: the credit is written on a sampled hit, and the cache's
/// read-mostly fields beside it must not bounce between cores for it.
#[repr(align(128))]
pub(super) struct Credit(pub(super) AtomicUsize, pub(super) AtomicU8);

/// The cache evicted since the period began.
pub(super) const EVICTED: u8 = 1;
/// The cache neither evicted nor grew in the last period: no request is
/// sampled until it evicts again (see [`Adapter::evicting`](super::Adapter::evicting)).
pub(super) const DORMANT: u8 = 2;

/// Slots in a bucket of [`Quiet`]: 32 bytes, within one cache line.
const WAYS: usize = 4;

impl Quiet {
    pub(super) fn new(entries: usize) -> Self {
        debug_assert!(entries * 2 <= 1 << 16, "positions take 16 bits");
        // Half full at most: a bucket of four is then rarely full.
        let buckets = entries.div_ceil(2).next_power_of_two();
        Quiet {
            buckets: (0..buckets)
                .map(|_| std::array::from_fn(|_| AtomicU64::new(0)))
                .collect(),
            mask: buckets - 1,
            refs: (0..entries * 2).map(|_| AtomicBool::new(false)).collect(),
            credit: Credit(AtomicUsize::new(0), AtomicU8::new(0)),
        }
    }

    #[inline]
    fn bucket(&self, key: u32) -> &[AtomicU64; WAYS] {
        &self.buckets[key as usize & self.mask]
    }

    /// Files `mixed`, whose reference bits are now at `small` and `large`
    /// in `refs`.
    pub(super) fn file(&self, mixed: u64, small: usize, large: usize) {
        let key = mixed as u32;
        if key == 0 {
            return;
        }
        let value = (small as u64) << 48 | (large as u64) << 32 | u64::from(key);
        let bucket = self.bucket(key);
        // Its own slot if it has one (a key is filed once, so `unfile`
        // finds it all), else a free one.
        let slot = bucket
            .iter()
            .find(|s| s.load(Ordering::Relaxed) as u32 == key)
            .or_else(|| bucket.iter().find(|s| s.load(Ordering::Relaxed) == 0));
        if let Some(slot) = slot {
            slot.store(value, Ordering::Relaxed);
        }
    }

    /// Unfiles `mixed`, which left a miniature.
    pub(super) fn unfile(&self, mixed: u64) {
        let key = mixed as u32;
        if let Some(slot) = self
            .bucket(key)
            .iter()
            .find(|s| s.load(Ordering::Relaxed) as u32 == key)
        {
            slot.store(0, Ordering::Relaxed);
        }
    }

    /// Whether a request for `mixed` was served here: the key is resident
    /// in both miniatures, so the request is a hit in both, which sets the
    /// two reference bits and counts toward the period.
    #[inline]
    pub(super) fn hits(&self, mixed: u64) -> bool {
        let key = mixed as u32;
        if key == 0 {
            return false;
        }
        let Some(value) = self
            .bucket(key)
            .iter()
            .map(|s| s.load(Ordering::Relaxed))
            .find(|&v| v as u32 == key)
        else {
            return false;
        };
        // A load and a store, not a read-modify-write: two threads that
        // race here count one request, which only lengthens a period.
        let credit = self.credit.0.load(Ordering::Relaxed);
        if credit == 0 {
            return false;
        }
        self.credit.0.store(credit - 1, Ordering::Relaxed);
        for i in [value >> 48, value >> 32 & 0xFFFF] {
            let bit = &self.refs[i as usize];
            // Written once per lap of the hand: a hot key's line stays
            // shared.
            if !bit.load(Ordering::Relaxed) {
                bit.store(true, Ordering::Relaxed);
            }
        }
        true
    }
}

/// The hash a miniature files a sampled key under. Sampled hashes share
/// their top bits (all zero), which hashbrown takes for its tags: turn the
/// varying low bits up. (Both halves of the result are equal, the low 32
/// bits of the hash's two halves XORed: that is all a miniature tells keys
/// apart by, and all [`Quiet`] needs to store.)
#[inline]
pub(super) fn mixed(hash: u64) -> u64 {
    hash.rotate_right(32) ^ hash
}
