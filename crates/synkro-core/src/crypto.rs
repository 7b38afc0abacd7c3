//! The cryptographic building blocks, all from well-kept crates:
//! BLAKE3 (hashing, key derivation), XChaCha20-Poly1305 (sealing chunks),
//! Ed25519 (signatures, in [`crate::identity`]) and HPKE RFC 9180
//! `DHKEM(X25519, HKDF-SHA256) / HKDF-SHA256 / ChaCha20-Poly1305`
//! (sealing document keys to members).

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hpke::kem::X25519HkdfSha256;
use hpke::{Deserializable, Kem, OpModeR, OpModeS, Serializable};
use rand_core::CryptoRng;
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::error::VerifyError;

type HpkeKem = X25519HkdfSha256;
type HpkeAead = hpke::aead::ChaCha20Poly1305;
type HpkeKdf = hpke::kdf::HkdfSha256;

/// Length of an XChaCha20-Poly1305 nonce.
pub const NONCE_LEN: usize = 24;
/// Length of a Poly1305 tag.
pub const TAG_LEN: usize = 16;

/// BLAKE3 in derive-key mode: a different context string per use keeps
/// hashes of one kind from ever colliding with another kind's.
pub(crate) fn hash(context: &str, parts: &[&[u8]]) -> [u8; 32] {
    let mut h = blake3::Hasher::new_derive_key(context);
    for p in parts {
        h.update(&(p.len() as u64).to_le_bytes());
        h.update(p);
    }
    *h.finalize().as_bytes()
}

pub(crate) fn random_array<const N: usize, R: CryptoRng + ?Sized>(rng: &mut R) -> [u8; N] {
    let mut out = [0u8; N];
    rng.fill_bytes(&mut out);
    out
}

/// A 256-bit symmetric key: a document epoch key, or a key derived from a
/// passphrase. Wiped from memory when dropped.
#[derive(Clone, Zeroize, ZeroizeOnDrop, PartialEq, Eq)]
pub struct SymmetricKey([u8; 32]);

impl core::fmt::Debug for SymmetricKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("SymmetricKey(..)")
    }
}

impl SymmetricKey {
    /// A fresh random key.
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        Self(random_array(rng))
    }

    /// Wrap raw key bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The raw key bytes (for sealing to a member or a backup).
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Encrypt and authenticate `plaintext`, binding `aad`.
    pub fn seal(&self, nonce: &[u8; NONCE_LEN], aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let cipher = XChaCha20Poly1305::new(&self.0.into());
        // Encryption only fails for plaintexts over ~256 GiB; ours are bounded far below.
        cipher
            .encrypt(&XNonce::from(*nonce), Payload { msg: plaintext, aad })
            .unwrap_or_default()
    }

    /// Check and decrypt what [`seal`](Self::seal) produced.
    pub fn open(&self, nonce: &[u8; NONCE_LEN], aad: &[u8], ciphertext: &[u8]) -> Result<Vec<u8>, VerifyError> {
        let cipher = XChaCha20Poly1305::new(&self.0.into());
        cipher
            .decrypt(&XNonce::from(*nonce), Payload { msg: ciphertext, aad })
            .map_err(|_| VerifyError::Decrypt)
    }
}

/// A member's X25519 public key, to which document keys are sealed.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Debug)]
pub struct ExchangeKey(pub [u8; 32]);

/// The secret half of an [`ExchangeKey`].
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct ExchangeSecret([u8; 32]);

impl ExchangeSecret {
    /// Use 32 secret bytes (clamped as X25519 requires).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The raw secret bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    fn hpke_secret(&self) -> Option<<HpkeKem as Kem>::PrivateKey> {
        <HpkeKem as Kem>::PrivateKey::from_bytes(&self.0).ok()
    }

    /// The matching public key.
    pub fn public(&self) -> ExchangeKey {
        let mut out = [0u8; 32];
        if let Some(sk) = self.hpke_secret() {
            out.copy_from_slice(&HpkeKem::sk_to_pk(&sk).to_bytes());
        }
        ExchangeKey(out)
    }

    /// Open a [`SealedKey`] addressed to this key. `context` must equal the
    /// one given to [`SealedKey::seal`].
    pub fn open(&self, sealed: &SealedKey, context: &[u8]) -> Option<SymmetricKey> {
        let sk = self.hpke_secret()?;
        let enc = <HpkeKem as Kem>::EncappedKey::from_bytes(&sealed.enc).ok()?;
        let plain = hpke::single_shot_open::<HpkeAead, HpkeKdf, HpkeKem>(
            &OpModeR::Base,
            &sk,
            &enc,
            b"synkro/doc-key/v1",
            &sealed.ciphertext,
            context,
        )
        .ok()?;
        let bytes: [u8; 32] = plain.as_slice().try_into().ok()?;
        Some(SymmetricKey(bytes))
    }
}

/// A document key sealed (HPKE base mode) to one member's [`ExchangeKey`].
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Debug)]
pub struct SealedKey {
    /// HPKE encapsulated key.
    pub enc: [u8; 32],
    /// The key, encrypted.
    pub ciphertext: Vec<u8>,
}

impl SealedKey {
    /// Seal `key` to `to`, binding `context` (as HPKE associated data).
    pub fn seal<R: CryptoRng + ?Sized>(
        rng: &mut R,
        to: &ExchangeKey,
        key: &SymmetricKey,
        context: &[u8],
    ) -> Option<Self> {
        let pk = <HpkeKem as Kem>::PublicKey::from_bytes(&to.0).ok()?;
        let (enc, ciphertext) = hpke::single_shot_seal_with_rng::<HpkeAead, HpkeKdf, HpkeKem>(
            &OpModeS::Base,
            &pk,
            b"synkro/doc-key/v1",
            key.as_bytes(),
            context,
            &mut RngRef(rng),
        )
        .ok()?;
        let mut e = [0u8; 32];
        e.copy_from_slice(&enc.to_bytes());
        Some(Self { enc: e, ciphertext })
    }
}

/// Adapts `&mut R` with `R: ?Sized` to the `Sized` rng hpke wants.
struct RngRef<'a, R: ?Sized>(&'a mut R);

impl<R: CryptoRng + ?Sized> rand_core::TryRng for RngRef<'_, R> {
    type Error = core::convert::Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        Ok(self.0.next_u32())
    }
    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        Ok(self.0.next_u64())
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        self.0.fill_bytes(dst);
        Ok(())
    }
}
impl<R: CryptoRng + ?Sized> rand_core::TryCryptoRng for RngRef<'_, R> {}
