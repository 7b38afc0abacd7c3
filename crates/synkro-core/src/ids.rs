//! Identifiers: who ([`MemberId`]), which document ([`DocId`]) and which
//! access-log operation or key ([`OpHash`], [`KeyId`]).
//!
//! All are 32 bytes, shown to people in base58.

use core::fmt;
use core::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::ParseIdError;

macro_rules! id32 {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub struct $name(pub [u8; 32]);

        impl $name {
            /// The raw 32 bytes.
            pub fn as_bytes(&self) -> &[u8; 32] {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&bs58::encode(self.0).into_string())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let s = bs58::encode(self.0).into_string();
                write!(f, concat!(stringify!($name), "({})"), &s[..s.len().min(8)])
            }
        }

        impl FromStr for $name {
            type Err = ParseIdError;
            fn from_str(s: &str) -> Result<Self, ParseIdError> {
                let mut out = [0u8; 32];
                match bs58::decode(s.trim()).onto(&mut out) {
                    Ok(32) => Ok(Self(out)),
                    _ => Err(ParseIdError { what: $what, input: s.chars().take(80).collect() }),
                }
            }
        }
    };
}

id32!(
    /// A device's identity: its Ed25519 public key. The same key derives the
    /// device's libp2p `PeerId`, so a transport handshake authenticates the
    /// member.
    MemberId,
    "member id"
);
id32!(
    /// A document: the hash of its signed genesis record, so anyone holding
    /// the genesis can check who created the document.
    DocId,
    "document id"
);
id32!(
    /// The hash of one signed access-log operation.
    OpHash,
    "operation hash"
);
id32!(
    /// A blob: the hash of its encoded manifest (see [`crate::blob`]).
    BlobId,
    "blob id"
);

/// Serde for ids inside values people read: base58 text in human-readable
/// formats (JSON), the raw bytes elsewhere. `#[serde(with = "ids::text")]`.
pub(crate) mod text {
    use super::*;
    use serde::{Deserializer, Serializer, de::Error as _};

    pub fn serialize<S: Serializer, T: fmt::Display + Serialize>(id: &T, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.collect_str(id)
        } else {
            id.serialize(s)
        }
    }

    pub fn deserialize<'de, D, T>(d: D) -> Result<T, D::Error>
    where
        D: Deserializer<'de>,
        T: FromStr<Err = ParseIdError> + Deserialize<'de>,
    {
        if d.is_human_readable() {
            let text = String::deserialize(d)?;
            text.parse().map_err(D::Error::custom)
        } else {
            T::deserialize(d)
        }
    }
}

/// Which document key sealed a chunk: the [`OpHash`] of the genesis or
/// rotate operation that introduced it. Hash-named rather than numbered so
/// that two admins rotating concurrently never produce two keys with the
/// same name.
pub type KeyId = OpHash;

impl From<DocId> for OpHash {
    fn from(d: DocId) -> Self {
        OpHash(d.0)
    }
}
