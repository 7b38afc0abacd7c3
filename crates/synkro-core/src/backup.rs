//! Encrypted backups of one document.
//!
//! File layout (all integers little-endian):
//!
//! | bytes | field |
//! |---|---|
//! | 8 | magic `SYNKROBK` |
//! | 2 | format version (1) |
//! | 4, 4, 4 | Argon2id memory (KiB), iterations, lanes |
//! | 16 | salt |
//! | 24 | XChaCha20-Poly1305 nonce |
//! | rest | ciphertext of the postcard-encoded [`Backup`] |
//!
//! The key is Argon2id(passphrase, salt); the 62-byte header is the AEAD's
//! associated data, so no field can be altered unnoticed. Parameters read
//! from a file are bounded before use, so a crafted file cannot make us
//! allocate gigabytes.

use rand_core::CryptoRng;
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use crate::crypto::{NONCE_LEN, SymmetricKey, random_array};
use crate::encoding::{decode, encode};
use crate::error::CoreError;
use crate::ids::{DocId, KeyId, OpHash};

const MAGIC: &[u8; 8] = b"SYNKROBK";
const VERSION: u16 = 1;
const HEADER_LEN: usize = 8 + 2 + 12 + 16 + NONCE_LEN;
/// Largest backup accepted (1 GiB).
pub const MAX_BACKUP_LEN: usize = 1 << 30;
/// OWASP's recommended Argon2id settings.
const M_COST: u32 = 19 * 1024;
const T_COST: u32 = 2;
const P_COST: u32 = 1;

#[derive(Serialize, Deserialize)]
pub(crate) struct Backup {
    pub doc: DocId,
    pub ops: Vec<ByteBuf>,
    pub chunks: Vec<ByteBuf>,
    pub keys: Vec<(KeyId, [u8; 32])>,
    pub invite: Option<(OpHash, [u8; 32])>,
    pub name: Option<String>,
}

fn derive(passphrase: &[u8], salt: &[u8], m: u32, t: u32, p: u32) -> Result<SymmetricKey, CoreError> {
    let params = argon2::Params::new(m, t, p, Some(32)).map_err(|_| CoreError::BadBackup)?;
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut out = [0u8; 32];
    argon
        .hash_password_into(passphrase, salt, &mut out)
        .map_err(|_| CoreError::BadBackup)?;
    Ok(SymmetricKey::from_bytes(out))
}

impl Backup {
    pub fn seal<R: CryptoRng + ?Sized>(&self, rng: &mut R, passphrase: &[u8]) -> Vec<u8> {
        let salt: [u8; 16] = random_array(rng);
        let nonce: [u8; NONCE_LEN] = random_array(rng);
        let mut out = Vec::with_capacity(HEADER_LEN);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        for v in [M_COST, T_COST, P_COST] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&salt);
        out.extend_from_slice(&nonce);
        // Our constants are valid Argon2 parameters, so derivation cannot fail.
        let key =
            derive(passphrase, &salt, M_COST, T_COST, P_COST).unwrap_or_else(|_| SymmetricKey::from_bytes([0; 32]));
        let ct = key.seal(&nonce, &out, &encode(self));
        out.extend(ct);
        out
    }

    pub fn open(bytes: &[u8], passphrase: &[u8]) -> Result<Self, CoreError> {
        if bytes.len() > MAX_BACKUP_LEN || bytes.len() < HEADER_LEN || &bytes[..8] != MAGIC {
            return Err(CoreError::BadBackup);
        }
        let (header, ct) = bytes.split_at(HEADER_LEN);
        let u32_at = |i: usize| {
            header
                .get(i..i + 4)
                .and_then(|b| b.try_into().ok())
                .map(u32::from_le_bytes)
        };
        let version = u16::from_le_bytes([header[8], header[9]]);
        let (Some(m), Some(t), Some(p)) = (u32_at(10), u32_at(14), u32_at(18)) else {
            return Err(CoreError::BadBackup);
        };
        if version != VERSION || m > 1 << 20 || t > 16 || p > 8 {
            return Err(CoreError::BadBackup);
        }
        let salt = &header[22..38];
        let nonce: [u8; NONCE_LEN] = header[38..HEADER_LEN].try_into().map_err(|_| CoreError::BadBackup)?;
        let key = derive(passphrase, salt, m, t, p)?;
        let plain = key.open(&nonce, header, ct).map_err(|_| CoreError::BadBackup)?;
        decode("backup", &plain, MAX_BACKUP_LEN).map_err(|_| CoreError::BadBackup)
    }
}
