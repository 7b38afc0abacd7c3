//! What a document's replica stores besides chunks and ops: the record
//! keys of its namespace, and the device-private local state.

use rand_core::CryptoRng;
use serde::{Deserialize, Serialize};

use crate::chunk::ChunkRef;
use crate::crypto::{NONCE_LEN, SymmetricKey, hash, random_array};
use crate::encoding::{decode, encode};
use crate::error::VerifyError;
use crate::identity::DeviceIdentity;
use crate::ids::{DocId, KeyId, OpHash};

/// Storage record keys inside a document's namespace.
pub(crate) mod record {
    use super::*;

    pub const OP: u8 = b'L';
    pub const CHANGE: u8 = b'C';
    pub const SNAPSHOT: u8 = b'S';
    pub const LOCAL: u8 = b'K';
    /// The document's index entry ([`DocSummary`](crate::replica::DocSummary)).
    pub const INDEX: u8 = b'I';

    pub fn op(h: &OpHash) -> Vec<u8> {
        let mut k = vec![OP];
        k.extend_from_slice(&h.0);
        k
    }
    pub fn chunk(r: &ChunkRef) -> Vec<u8> {
        match r {
            ChunkRef::Change(a, s) => {
                let mut k = vec![CHANGE];
                k.extend_from_slice(&a.0);
                k.extend_from_slice(&s.to_be_bytes());
                k
            }
            ChunkRef::Snapshot(d) => {
                let mut k = vec![SNAPSHOT];
                k.extend_from_slice(d);
                k
            }
        }
    }
    pub fn local() -> Vec<u8> {
        vec![LOCAL]
    }
}

/// Device-private facts about a document, stored sealed under a key only
/// this device can derive.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct LocalState {
    /// Secrets of invitations this device holds (joined or exported).
    pub invites: Vec<[u8; 32]>,
    /// Keys learnt from an imported backup.
    pub imported: Vec<(KeyId, [u8; 32])>,
    /// A local name.
    pub name: Option<String>,
}

const MAX_LOCAL_LEN: usize = 1 << 20;

fn local_key(identity: &DeviceIdentity) -> SymmetricKey {
    SymmetricKey::from_bytes(hash("synkro 2026 local storage key", &[&identity.signing_seed()[..]]))
}

impl LocalState {
    pub fn seal<R: CryptoRng + ?Sized>(&self, rng: &mut R, identity: &DeviceIdentity, doc: &DocId) -> Vec<u8> {
        let nonce: [u8; NONCE_LEN] = random_array(rng);
        let mut out = nonce.to_vec();
        out.extend(local_key(identity).seal(&nonce, &doc.0, &encode(self)));
        out
    }

    pub fn open(bytes: &[u8], identity: &DeviceIdentity, doc: &DocId) -> Result<Self, VerifyError> {
        let (nonce, ct) = bytes.split_at_checked(NONCE_LEN).ok_or(VerifyError::Decrypt)?;
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| VerifyError::Decrypt)?;
        let plain = local_key(identity).open(&nonce, &doc.0, ct)?;
        Ok(decode("local state", &plain, MAX_LOCAL_LEN)?)
    }
}
