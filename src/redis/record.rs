//! What the fleet writes in Redis: key names, lease tokens and result
//! records, and the checks that read them back as untrusted bytes.
//!
//! Key names: `<namespace>:lease:<key>` and `<namespace>:result:<key>`, and
//! one channel, `<namespace>:done`, whose messages are keys. The namespace
//! may not hold a `:` (the builder refuses it), so the first `:` ends the
//! namespace, the second ends the kind, and the rest is the caller's key,
//! byte for byte: no two (namespace, kind, key) triples share a name,
//! whatever bytes the key holds.
//!
//! A record: `b"sf"`, a format version (1), a kind (`v` a value, `e` an
//! error, `p` a panic), then the codec's bytes or the UTF-8 message.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::time::{SystemTime, UNIX_EPOCH};

use super::error::DecodeError;
use crate::sync::{AtomicU64, Once, Ordering};

const MAGIC: [u8; 3] = [b's', b'f', 1];
/// Error and panic messages are cut to this many bytes before they are
/// stored (at a character boundary).
pub(crate) const MAX_MESSAGE: usize = 1024;

/// The Redis names of one group's keys and channel.
#[derive(Debug)]
pub(crate) struct Names {
    lease: Vec<u8>,
    result: Vec<u8>,
    pub(crate) channel: Vec<u8>,
}

impl Names {
    /// `namespace` was checked by [`check_namespace`].
    pub(crate) fn new(namespace: &str) -> Self {
        Names {
            lease: format!("{namespace}:lease:").into_bytes(),
            result: format!("{namespace}:result:").into_bytes(),
            channel: format!("{namespace}:done").into_bytes(),
        }
    }

    pub(crate) fn lease(&self, key: &str) -> Vec<u8> {
        [&self.lease[..], key.as_bytes()].concat()
    }

    pub(crate) fn result(&self, key: &str) -> Vec<u8> {
        [&self.result[..], key.as_bytes()].concat()
    }
}

/// Refuses a namespace that would make key names ambiguous or unreadable.
pub(crate) fn check_namespace(namespace: &str) -> Result<(), String> {
    if namespace.is_empty() || namespace.len() > 64 {
        return Err(format!(
            "must be 1 to 64 bytes long, is {}",
            namespace.len()
        ));
    }
    match namespace
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
    {
        Some(c) => Err(format!(
            "may hold only ASCII letters, digits, `_`, `-` and `.`, holds {c:?}"
        )),
        None => Ok(()),
    }
}

/// A lease token: 128 bits from two SipHash keys the OS seeded for this
/// process (std's `RandomState`), over the time, the process id and a
/// counter. Unique per flight and hard to guess, but **not
/// cryptographic**: it tells leaders apart, it does not authenticate them
/// (whoever can write to Redis can delete any lease anyway).
pub(crate) fn new_token() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    static SEEDS: Once<(RandomState, RandomState)> = Once::new();
    let (a, b) = SEEDS.get_or_init(|| (RandomState::new(), RandomState::new()));
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let input = (
        nanos,
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
    );
    format!("{:016x}{:016x}", a.hash_one(input), b.hash_one(input))
}

/// What a result record holds, decoded as far as the record layer goes.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Record<'a> {
    /// The codec's bytes for the value.
    Value(&'a [u8]),
    /// The leader's error message.
    Error(&'a str),
    /// The leader's panic message.
    Panic(&'a str),
}

impl Record<'_> {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let (kind, body) = match self {
            Record::Value(bytes) => (b'v', *bytes),
            Record::Error(text) => (b'e', text.as_bytes()),
            Record::Panic(text) => (b'p', text.as_bytes()),
        };
        let mut out = Vec::with_capacity(MAGIC.len() + 1 + body.len());
        out.extend_from_slice(&MAGIC);
        out.push(kind);
        out.extend_from_slice(body);
        out
    }

    /// Reads bytes from Redis; never panics, whatever they are.
    pub(crate) fn decode(bytes: &[u8]) -> Result<Record<'_>, DecodeError> {
        let Some((head, body)) = bytes.split_at_checked(MAGIC.len() + 1) else {
            return Err(DecodeError::Malformed("shorter than its header"));
        };
        if head[..MAGIC.len()] != MAGIC {
            return Err(DecodeError::Malformed(
                "not a singleflight-sync record (version 1)",
            ));
        }
        let text =
            || std::str::from_utf8(body).map_err(|_| DecodeError::Malformed("message not UTF-8"));
        match head[MAGIC.len()] {
            b'v' => Ok(Record::Value(body)),
            b'e' => Ok(Record::Error(text()?)),
            b'p' => Ok(Record::Panic(text()?)),
            _ => Err(DecodeError::Malformed("unknown record kind")),
        }
    }
}

/// `text` cut to at most [`MAX_MESSAGE`] bytes, at a character boundary.
pub(crate) fn cut(text: &str) -> &str {
    if text.len() <= MAX_MESSAGE {
        return text;
    }
    let mut end = MAX_MESSAGE;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_garbage_is_refused() {
        for record in [
            Record::Value(b"\x00\xff"),
            Record::Error("boom"),
            Record::Panic(""),
        ] {
            assert_eq!(Record::decode(&record.encode()).unwrap(), record);
        }
        for bad in [
            &b""[..],
            b"sf",
            b"sf\x01",
            b"xx\x01v",
            b"sf\x02v",
            b"sf\x01z",
            b"sf\x01e\xff",
        ] {
            assert!(Record::decode(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn names_never_collide() {
        let a = Names::new("a");
        let b = Names::new("a.b");
        let names = [
            a.lease("x"),
            a.result("x"),
            a.lease("result:x"),
            a.result("lease:x"),
            b.lease("x"),
            a.channel.clone(),
        ];
        for (i, x) in names.iter().enumerate() {
            for y in &names[i + 1..] {
                assert_ne!(x, y);
            }
        }
        assert!(check_namespace("a:b").is_err());
        assert!(check_namespace("").is_err());
        assert!(check_namespace(&"x".repeat(65)).is_err());
        assert!(check_namespace("my-app_v2.users").is_ok());
    }

    #[test]
    fn tokens_differ_and_messages_are_cut_at_a_char() {
        assert_ne!(new_token(), new_token());
        assert_eq!(new_token().len(), 32);
        let long = "é".repeat(MAX_MESSAGE);
        let short = cut(&long);
        assert!(short.len() <= MAX_MESSAGE && short.len() >= MAX_MESSAGE - 1);
        assert_eq!(cut("ok"), "ok");
    }
}
