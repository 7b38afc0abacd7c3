//! Noise's hash and cipher in browsers (synkro patch, see vendor/README.md):
//! SHA-256 and ChaCha20-Poly1305 from the RustCrypto releases the rest of
//! the build uses, instead of snow's default resolver, which links an
//! older release of each, plus BLAKE2, SHA-512 and AES-GCM that libp2p's
//! `Noise_XX_25519_ChaChaPoly_SHA256` never uses. The same algorithms and
//! the same nonce layout as snow's own (`resolvers/default.rs`): every
//! browser test's handshake with a native peer (snow's ring resolver)
//! checks that they agree.

use chacha20poly1305::aead::{AeadInOut, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Nonce, Tag};
use sha2::{Digest, Sha256};
use snow::params::{CipherChoice, HashChoice};
use snow::types::{Cipher, Hash};

const TAG_LEN: usize = 16;

pub(crate) fn hash(choice: &HashChoice) -> Option<Box<dyn Hash>> {
    match choice {
        HashChoice::SHA256 => Some(Box::new(HashSha256(Sha256::new()))),
        _ => None,
    }
}

pub(crate) fn cipher(choice: &CipherChoice) -> Option<Box<dyn Cipher>> {
    match choice {
        CipherChoice::ChaChaPoly => Some(Box::new(ChaChaPoly([0; 32]))),
        _ => None,
    }
}

struct HashSha256(Sha256);

impl Hash for HashSha256 {
    fn name(&self) -> &'static str {
        "SHA256"
    }

    fn block_len(&self) -> usize {
        64
    }

    fn hash_len(&self) -> usize {
        32
    }

    fn reset(&mut self) {
        self.0 = Sha256::new();
    }

    fn input(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    fn result(&mut self, out: &mut [u8]) {
        out[..32].copy_from_slice(&self.0.finalize_reset());
    }
}

struct ChaChaPoly([u8; 32]);

impl Drop for ChaChaPoly {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

/// Noise's ChaChaPoly nonce: 32 bits of zeros, then the counter little-endian.
fn nonce(n: u64) -> Nonce {
    let mut bytes = [0u8; 12];
    bytes[4..].copy_from_slice(&n.to_le_bytes());
    bytes.into()
}

impl Cipher for ChaChaPoly {
    fn name(&self) -> &'static str {
        "ChaChaPoly"
    }

    fn set(&mut self, key: &[u8; 32]) {
        self.0 = *key;
    }

    fn encrypt(&self, n: u64, authtext: &[u8], plaintext: &[u8], out: &mut [u8]) -> usize {
        let len = plaintext.len();
        out[..len].copy_from_slice(plaintext);
        let aead = ChaCha20Poly1305::new(&self.0.into());
        // Fails only past ChaCha20's 256 GiB per nonce; a Noise message is
        // at most 64 KiB (snow checks before it calls this).
        let tag = aead
            .encrypt_inout_detached(&nonce(n), authtext, (&mut out[..len]).into())
            .expect("a Noise message is far below ChaCha20's limit");
        out[len..len + TAG_LEN].copy_from_slice(&tag);
        len + TAG_LEN
    }

    fn decrypt(&self, n: u64, authtext: &[u8], ciphertext: &[u8], out: &mut [u8]) -> Result<usize, snow::Error> {
        let len = ciphertext.len().checked_sub(TAG_LEN).ok_or(snow::Error::Decrypt)?;
        let (message, tag) = ciphertext.split_at(len);
        let tag = Tag::try_from(tag).map_err(|_| snow::Error::Decrypt)?;
        out[..len].copy_from_slice(message);
        ChaCha20Poly1305::new(&self.0.into())
            .decrypt_inout_detached(&nonce(n), authtext, (&mut out[..len]).into(), &tag)
            .map_err(|_| snow::Error::Decrypt)?;
        Ok(len)
    }
}
