//! Canonical, bounded encoding of everything synkro signs, stores or sends.
//!
//! postcard is deterministic for our types (no maps with unordered keys:
//! every map is a `BTreeMap`), which matters because signatures cover the
//! encoded bytes. Decoding checks the input length against an explicit bound
//! before anything is parsed, and serde caps collection pre-allocation, so a
//! length field claiming gigabytes cannot make us allocate them.

use serde::{Deserialize, Serialize};

use crate::error::DecodeError;

pub(crate) fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Serializing our own in-memory types into a Vec cannot fail: postcard
    // only errors on unsupported serde features (none used) or a full buffer.
    postcard::to_allocvec(value).unwrap_or_default()
}

pub(crate) fn decode<'a, T: Deserialize<'a>>(
    what: &'static str,
    bytes: &'a [u8],
    max: usize,
) -> Result<T, DecodeError> {
    if bytes.len() > max {
        return Err(DecodeError::TooLarge {
            what,
            len: bytes.len(),
            max,
        });
    }
    match postcard::take_from_bytes::<T>(bytes) {
        Ok((value, [])) => Ok(value),
        Ok((_, rest)) => Err(DecodeError::TrailingBytes {
            what,
            extra: rest.len(),
        }),
        Err(e) => Err(DecodeError::Malformed {
            what,
            detail: e.to_string(),
        }),
    }
}

/// [`decode`], refusing any encoding but the canonical one: where the hash
/// of the bytes names what they hold, only one framing of a signed body may
/// exist (postcard also accepts over-long varints, which would let anyone
/// relaying it mint twins with new hashes).
pub(crate) fn decode_canonical<T: Serialize + serde::de::DeserializeOwned>(
    what: &'static str,
    bytes: &[u8],
    max: usize,
) -> Result<T, DecodeError> {
    let value: T = decode(what, bytes, max)?;
    if encode(&value) != bytes {
        return Err(DecodeError::Malformed {
            what,
            detail: "non-canonical encoding".into(),
        });
    }
    Ok(value)
}

/// Refuse a format version other than the one this build reads.
pub(crate) fn check_version(what: &'static str, found: u16, supported: u16) -> Result<(), DecodeError> {
    if found != supported {
        return Err(DecodeError::Version { what, found, supported });
    }
    Ok(())
}

/// A 64-byte Ed25519 signature (serde has no impls for `[u8; 64]`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sig(pub [u8; 64]);

impl serde::Serialize for Sig {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Sig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Sig;
            fn expecting(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.write_str("64 signature bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Sig, E> {
                v.try_into().map(Sig).map_err(|_| E::invalid_length(v.len(), &self))
            }
        }
        d.deserialize_bytes(V)
    }
}
