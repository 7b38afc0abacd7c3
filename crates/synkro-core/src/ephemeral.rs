//! Ephemeral messages: presence, cursors, "is typing" — small, signed and
//! encrypted like chunks, but never stored, acknowledged or replayed.
//!
//! A message is sealed with XChaCha20-Poly1305 under the document's current
//! key, with the encoded header as associated data, and signed by its author
//! (Ed25519 over a BLAKE3 digest of header and ciphertext). Members who read
//! the document open it; a relay (a `replicate` member) checks the signature
//! and that the author is a member, then forwards it to the other members it
//! is connected to, without being able to read it.

use rand_core::CryptoRng;
use serde::{Deserialize, Serialize};

use crate::crypto::{NONCE_LEN, SymmetricKey, hash, random_array};
use crate::encoding::{Sig, check_version, decode, encode};
use crate::error::{DecodeError, VerifyError};
use crate::identity::DeviceIdentity;
use crate::ids::{DocId, KeyId, MemberId};

/// Format version of ephemeral messages.
pub const EPHEMERAL_VERSION: u16 = 1;
/// Largest plaintext of one ephemeral message (16 KiB): presence is small,
/// and a forwarder should not be made to copy large messages to everyone.
pub const MAX_EPHEMERAL_LEN: usize = 16 << 10;
/// Largest encoded ephemeral message (plaintext plus header, tag, signature).
const MAX_SEALED_LEN: usize = MAX_EPHEMERAL_LEN + 512;

/// The authenticated, unencrypted part of an ephemeral message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EphemeralHeader {
    /// [`EPHEMERAL_VERSION`].
    pub version: u16,
    /// Document.
    pub doc: DocId,
    /// Signer.
    pub author: MemberId,
    /// Document key it is sealed under.
    pub key: KeyId,
    /// AEAD nonce; random, so it also names the message (forwarders use it
    /// to drop copies that come back around).
    pub nonce: [u8; NONCE_LEN],
}

#[derive(Serialize, Deserialize)]
struct Wire<'a> {
    #[serde(borrow, with = "serde_bytes")]
    header: &'a [u8],
    #[serde(borrow, with = "serde_bytes")]
    ciphertext: &'a [u8],
    sig: Sig,
}

/// An ephemeral message whose signature has been checked.
#[derive(Clone, Debug)]
pub struct SealedEphemeral {
    header: EphemeralHeader,
    header_bytes: Vec<u8>,
    ciphertext: Vec<u8>,
    encoded: Vec<u8>,
}

fn digest(header: &[u8], ciphertext: &[u8]) -> [u8; 32] {
    hash("synkro 2026 ephemeral message", &[header, ciphertext])
}

impl SealedEphemeral {
    /// Encrypt `plaintext` (at most [`MAX_EPHEMERAL_LEN`] bytes) under `key`
    /// and sign it as `identity`.
    pub fn seal<R: CryptoRng + ?Sized>(
        rng: &mut R,
        identity: &DeviceIdentity,
        doc: DocId,
        key_id: KeyId,
        key: &SymmetricKey,
        plaintext: &[u8],
    ) -> Result<Self, DecodeError> {
        if plaintext.len() > MAX_EPHEMERAL_LEN {
            return Err(DecodeError::TooLarge {
                what: "ephemeral message",
                len: plaintext.len(),
                max: MAX_EPHEMERAL_LEN,
            });
        }
        let header = EphemeralHeader {
            version: EPHEMERAL_VERSION,
            doc,
            author: identity.member_id(),
            key: key_id,
            nonce: random_array(rng),
        };
        let header_bytes = encode(&header);
        let ciphertext = key.seal(&header.nonce, &header_bytes, plaintext);
        let sig = identity.sign(&digest(&header_bytes, &ciphertext));
        let encoded = encode(&Wire {
            header: &header_bytes,
            ciphertext: &ciphertext,
            sig: Sig(sig),
        });
        Ok(Self {
            header,
            header_bytes,
            ciphertext,
            encoded,
        })
    }

    /// Decode and check the signature. Whether the author is a member is
    /// for the caller to check against the document's access log.
    pub fn decode(bytes: &[u8]) -> Result<Self, VerifyError> {
        let wire: Wire<'_> = decode("ephemeral message", bytes, MAX_SEALED_LEN)?;
        let header: EphemeralHeader = decode("ephemeral header", wire.header, MAX_SEALED_LEN)?;
        check_version("ephemeral message", header.version, EPHEMERAL_VERSION)?;
        header
            .author
            .verify(&digest(wire.header, wire.ciphertext), &wire.sig.0)?;
        Ok(Self {
            header_bytes: wire.header.to_vec(),
            ciphertext: wire.ciphertext.to_vec(),
            header,
            encoded: bytes.to_vec(),
        })
    }

    /// Decrypt with `key` (the key named in the header).
    pub fn open(&self, key: &SymmetricKey) -> Result<Vec<u8>, VerifyError> {
        key.open(&self.header.nonce, &self.header_bytes, &self.ciphertext)
    }

    /// The header.
    pub fn header(&self) -> &EphemeralHeader {
        &self.header
    }

    /// The canonical bytes (what is sent).
    pub fn encoded(&self) -> &[u8] {
        &self.encoded
    }
}

#[cfg(test)]
mod tests {
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    use super::*;
    use crate::ids::OpHash;

    fn sealed(rng: &mut ChaCha20Rng, key: &SymmetricKey, text: &[u8]) -> (DeviceIdentity, SealedEphemeral) {
        let me = DeviceIdentity::generate(rng);
        let m = SealedEphemeral::seal(rng, &me, DocId([7; 32]), OpHash([1; 32]), key, text).expect("small");
        (me, m)
    }

    #[test]
    fn round_trip_and_every_bit_flip_is_refused() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let key = SymmetricKey::generate(&mut rng);
        let (me, m) = sealed(&mut rng, &key, b"cursor at 42");
        let back = SealedEphemeral::decode(m.encoded()).expect("valid");
        assert_eq!(back.header().author, me.member_id());
        assert_eq!(back.open(&key).expect("opens"), b"cursor at 42");
        let bytes = m.encoded().to_vec();
        for i in 0..bytes.len() * 8 {
            let mut bad = bytes.clone();
            bad[i / 8] ^= 1 << (i % 8);
            let opened = SealedEphemeral::decode(&bad).and_then(|m| m.open(&key));
            assert!(opened.is_err(), "bit {i} flipped and still accepted");
        }
    }

    #[test]
    fn too_large_is_refused_on_both_sides() {
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        let key = SymmetricKey::generate(&mut rng);
        let me = DeviceIdentity::generate(&mut rng);
        let big = vec![0u8; MAX_EPHEMERAL_LEN + 1];
        assert!(SealedEphemeral::seal(&mut rng, &me, DocId([7; 32]), OpHash([1; 32]), &key, &big).is_err());
        assert!(SealedEphemeral::decode(&vec![0u8; MAX_SEALED_LEN + 1]).is_err());
    }
}
