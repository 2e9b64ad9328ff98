//! One entry of a `TtlCache` shard, as the slab holds it: the key, the
//! value or a cached error, the expiry and a word of flags, and nothing a
//! hit does not read. What only some caches need is in `Extra`, beside the
//! slab.

use std::any::Any;
use std::mem::ManuallyDrop;
use std::ptr;

use crate::sync::Shared;

/// A cached error, type-erased so one cache can serve loaders with different
/// error types; `try_get_or_load` downcasts it back.
pub(crate) type AnyError = Shared<dyn Any + Send + Sync>;

/// What a slot holds: a value, or (with negative caching) a load's error.
/// A slot lends it out as `Cached<&V, &AnyError>`.
#[derive(Clone)]
pub(crate) enum Cached<V, E = AnyError> {
    Value(V),
    Error(E),
}

/// A slot's value or its error, in the room of the larger of `V` and one
/// pointer: for a `u64` value, 8 bytes where an enum took 24 (the error's
/// pointer is fat, and the tag pads). Which one is live is the slot's
/// `ERROR` flag.
union Payload<V> {
    value: ManuallyDrop<V>,
    error: ManuallyDrop<Box<AnyError>>,
}

/// `Slot::meta`: a hit since the policy's hand last passed.
pub(super) const REFERENCED: u32 = 1 << 31;
/// A refresh of this entry is running.
pub(super) const REFRESHING: u32 = 1 << 30;
/// A fail-safe answer: an expired value kept because its reload failed.
pub(super) const STALE: u32 = 1 << 29;
/// The payload is an error.
pub(super) const ERROR: u32 = 1 << 28;
/// The low bits: the stamp naming this slot's contents.
pub(super) const STAMP: u32 = ERROR - 1;

/// One entry: what a hit reads (key, value, expiry and flags) and nothing
/// else. For `u64` keys and values it is 32 bytes, aligned so a hit reads
/// one cache line of it and two slots share a line. The entry's place in
/// the policy (`Node`) and its optional settings (`Extra`) live in arrays
/// beside the slab, in step with it.
#[repr(C, align(32))]
pub(crate) struct Slot<K, V> {
    pub(crate) key: K,
    payload: Payload<V>,
    /// Times in clock nanoseconds.
    pub(crate) expires: u64,
    /// The low half of the key's hash: the index and the sketch need no
    /// more, and the shard was chosen by the high half.
    pub(super) short: u32,
    /// The flags above and the stamp.
    pub(super) meta: u32,
}

impl<K, V> Slot<K, V> {
    pub(crate) fn new(key: K, hash: u64, value: Cached<V>, expires: u64) -> Self {
        let (payload, meta) = match value {
            Cached::Value(v) => (
                Payload {
                    value: ManuallyDrop::new(v),
                },
                0,
            ),
            Cached::Error(e) => (
                Payload {
                    error: ManuallyDrop::new(Box::new(e)),
                },
                ERROR,
            ),
        };
        Slot {
            key,
            payload,
            expires,
            short: hash as u32,
            meta,
        }
    }

    /// The value, or the error.
    #[inline]
    pub(crate) fn cached(&self) -> Cached<&V, &AnyError> {
        // SAFETY: `ERROR` says which field was written, and neither is
        // moved out while the slot lives (see `into_parts` and `drop`).
        unsafe {
            if self.meta & ERROR == 0 {
                Cached::Value(&self.payload.value)
            } else {
                Cached::Error(&self.payload.error)
            }
        }
    }

    /// The value, unless the slot holds an error.
    #[inline]
    pub(crate) fn value(&self) -> Option<&V> {
        match self.cached() {
            Cached::Value(v) => Some(v),
            Cached::Error(_) => None,
        }
    }

    /// The key and what the slot held.
    pub(crate) fn into_parts(self) -> (K, Cached<V>) {
        let this = ManuallyDrop::new(self);
        // SAFETY: `this` is never used or dropped again, so each field is
        // read out exactly once; `ERROR` says which payload field is live.
        unsafe {
            let key = ptr::read(&this.key);
            let cached = if this.meta & ERROR == 0 {
                Cached::Value(ManuallyDrop::into_inner(ptr::read(&this.payload.value)))
            } else {
                Cached::Error(*ManuallyDrop::into_inner(ptr::read(&this.payload.error)))
            };
            (key, cached)
        }
    }

    /// The low half of the key's hash (see `Store::find_stamp`).
    pub(crate) fn short(&self) -> u32 {
        self.short
    }

    /// Names this slot's contents: a refresh clears only its own slot's
    /// flag, and a walk removes only the contents it judged.
    pub(crate) fn stamp(&self) -> u32 {
        self.meta & STAMP
    }

    pub(super) fn flag(&self, flag: u32) -> bool {
        self.meta & flag != 0
    }

    pub(super) fn set_flag(&mut self, flag: u32, on: bool) {
        if on {
            self.meta |= flag;
        } else {
            self.meta &= !flag;
        }
    }

    /// A fail-safe answer (see `STALE`).
    pub(crate) fn is_stale(&self) -> bool {
        self.flag(STALE)
    }

    pub(crate) fn set_stale(&mut self, on: bool) {
        self.set_flag(STALE, on);
    }

    pub(crate) fn is_refreshing(&self) -> bool {
        self.flag(REFRESHING)
    }

    pub(crate) fn set_refreshing(&mut self, on: bool) {
        self.set_flag(REFRESHING, on);
    }

    /// Whether a hit may answer from this slot without looking further: a
    /// value, not a fail-safe answer.
    #[inline]
    pub(crate) fn is_plain(&self) -> bool {
        self.meta & (ERROR | STALE) == 0
    }
}

impl<K, V> Drop for Slot<K, V> {
    fn drop(&mut self) {
        // SAFETY: `ERROR` says which field is live; it is dropped once, here
        // (`into_parts` reads the slot out without dropping it).
        unsafe {
            if self.meta & ERROR == 0 {
                ManuallyDrop::drop(&mut self.payload.value);
            } else {
                ManuallyDrop::drop(&mut self.payload.error);
            }
        }
    }
}

/// What an entry needs only with a weigher, a time to idle, a fail-safe or
/// a refresh: kept beside the slab, not in the slot, so a cache without them
/// pays nothing.
#[derive(Clone, Copy)]
pub(crate) struct Extra {
    pub(crate) weight: u32,
    /// How long the load that made this entry took, in microseconds
    /// (saturating), for early refresh.
    pub(crate) delta_micros: u32,
    /// When a refresh is due (`u64::MAX`: never before expiry).
    pub(crate) refresh: u64,
    /// When the entry's time to live ends: a hit moves `expires` to
    /// `now + time_to_idle`, never past this.
    pub(crate) deadline: u64,
    /// With a fail-safe: until when the value may be served stale, counted
    /// from its first expiry (a throttled stale answer keeps it).
    pub(crate) stale_until: u64,
}

impl Default for Extra {
    fn default() -> Self {
        Extra {
            weight: 0,
            delta_micros: 0,
            refresh: u64::MAX,
            deadline: u64::MAX,
            stale_until: u64::MAX,
        }
    }
}

impl Extra {
    /// How long this entry's load took, in nanoseconds.
    pub(crate) fn delta(&self) -> u64 {
        u64::from(self.delta_micros) * 1_000
    }

    pub(crate) fn set_delta(&mut self, nanos: u64) {
        self.delta_micros = u32::try_from(nanos / 1_000).unwrap_or(u32::MAX);
    }
}
