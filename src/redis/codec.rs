//! How a fleet's values become bytes in Redis and back: the [`Codec`] trait,
//! [`RawCodec`] for `Vec<u8>` and `String`, and (feature `serde`)
//! [`PostcardCodec`] for any serde type.

use std::fmt;

/// Turns a [`RedisGroup`](super::RedisGroup)'s values into bytes for Redis
/// and back.
///
/// `decode` reads bytes that came from Redis, which is shared ground:
/// another version of the program, another program or anyone with write
/// access may have put them there. It must return an error for bytes it
/// cannot read, never panic (a panic would unwind in the caller, which is
/// then told nothing useful). The group hands `decode` only records within
/// its [`max_record_bytes`](super::RedisGroupBuilder::max_record_bytes), so
/// a codec that never allocates more than a small multiple of its input
/// stays within that bound.
///
/// # Examples
///
/// A codec for `u64` as 8 little-endian bytes:
///
/// ```
/// use singleflight_sync::redis::{Codec, CodecError};
///
/// struct U64Le;
///
/// impl Codec<u64> for U64Le {
///     fn encode(&self, value: &u64) -> Result<Vec<u8>, CodecError> {
///         Ok(value.to_le_bytes().to_vec())
///     }
///     fn decode(&self, bytes: &[u8]) -> Result<u64, CodecError> {
///         let bytes: [u8; 8] = bytes
///             .try_into()
///             .map_err(|_| CodecError::new(format!("{} bytes, not 8", bytes.len())))?;
///         Ok(u64::from_le_bytes(bytes))
///     }
/// }
///
/// let bytes = U64Le.encode(&7).unwrap();
/// assert_eq!(U64Le.decode(&bytes).unwrap(), 7);
/// assert_eq!(U64Le.decode(b"abc").unwrap_err().to_string(), "3 bytes, not 8");
/// ```
pub trait Codec<V>: Send + Sync {
    /// The bytes that stand for `value` in Redis.
    ///
    /// # Errors
    ///
    /// When `value` cannot be encoded; the group then stores no result, and
    /// callers in other processes take over the flight.
    fn encode(&self, value: &V) -> Result<Vec<u8>, CodecError>;

    /// The value `bytes` stand for.
    ///
    /// # Errors
    ///
    /// When `bytes` are not a value's encoding (garbage, truncated, written
    /// by another program).
    fn decode(&self, bytes: &[u8]) -> Result<V, CodecError>;
}

/// Why a [`Codec`] could not encode or decode a value.
///
/// # Examples
///
/// ```
/// use singleflight_sync::redis::CodecError;
///
/// let err = CodecError::new("not UTF-8");
/// assert_eq!(err.to_string(), "not UTF-8");
/// ```
#[derive(Debug)]
pub struct CodecError(Box<dyn std::error::Error + Send + Sync>);

impl CodecError {
    /// Wraps a cause: a message or another error.
    pub fn new(cause: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        CodecError(cause.into())
    }
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for CodecError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

/// The bytes themselves: a [`Codec`] for `Vec<u8>` (any bytes decode) and
/// for `String` (bytes that are not UTF-8 are a decode error).
///
/// # Examples
///
/// ```
/// use singleflight_sync::redis::{Codec, RawCodec};
///
/// let bytes = Codec::<String>::encode(&RawCodec, &"héllo".to_string()).unwrap();
/// assert_eq!(bytes, "héllo".as_bytes());
/// assert!(Codec::<String>::decode(&RawCodec, &[0xff, 0xfe]).is_err());
/// assert_eq!(Codec::<Vec<u8>>::decode(&RawCodec, &[0xff]).unwrap(), vec![0xff]);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RawCodec;

impl Codec<Vec<u8>> for RawCodec {
    fn encode(&self, value: &Vec<u8>) -> Result<Vec<u8>, CodecError> {
        Ok(value.clone())
    }

    fn decode(&self, bytes: &[u8]) -> Result<Vec<u8>, CodecError> {
        Ok(bytes.to_vec())
    }
}

impl Codec<String> for RawCodec {
    fn encode(&self, value: &String) -> Result<Vec<u8>, CodecError> {
        Ok(value.as_bytes().to_vec())
    }

    fn decode(&self, bytes: &[u8]) -> Result<String, CodecError> {
        match std::str::from_utf8(bytes) {
            Ok(text) => Ok(text.to_owned()),
            Err(e) => Err(CodecError::new(e)),
        }
    }
}

/// Any serde type in [postcard](https://docs.rs/postcard)'s format: compact
/// (varints, no field names), stable (frozen since postcard 1.0, so
/// processes built from different versions of a program read each other's
/// records), and decoded from a borrowed slice.
///
/// A record written for another type (another version of the struct) is a
/// decode error when its bytes do not fit, but postcard carries no schema:
/// bytes that happen to fit the new type decode. Change the
/// [`namespace`](super::RedisGroupBuilder::namespace) when a value's type
/// changes shape.
///
/// # Examples
///
/// ```
/// use singleflight_sync::redis::{Codec, PostcardCodec};
///
/// let user = (42u32, "Ada".to_string());
/// let bytes = PostcardCodec.encode(&user).unwrap();
/// assert_eq!(bytes.len(), 5);
/// let back: (u32, String) = PostcardCodec.decode(&bytes).unwrap();
/// assert_eq!(back, user);
/// assert!(Codec::<(u32, String)>::decode(&PostcardCodec, &bytes[..3]).is_err());
/// ```
#[cfg(feature = "serde")]
#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PostcardCodec;

#[cfg(feature = "serde")]
impl<V: serde::Serialize + serde::de::DeserializeOwned> Codec<V> for PostcardCodec {
    fn encode(&self, value: &V) -> Result<Vec<u8>, CodecError> {
        postcard::to_allocvec(value).map_err(CodecError::new)
    }

    fn decode(&self, bytes: &[u8]) -> Result<V, CodecError> {
        match postcard::from_bytes(bytes) {
            Ok(value) => Ok(value),
            Err(e) => Err(CodecError::new(e)),
        }
    }
}
