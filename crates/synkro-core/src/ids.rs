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
