//! Access ops: the signed, hash-linked records of the access log, their
//! actions and roles, and the key material they carry.

use rand_core::CryptoRng;
use serde::{Deserialize, Serialize};

use crate::crypto::{ExchangeKey, NONCE_LEN, SealedKey, SymmetricKey, hash, random_array};
use crate::encoding::{check_version, decode, decode_canonical, encode};
use crate::error::VerifyError;
use crate::identity::DeviceIdentity;
use crate::ids::{DocId, KeyId, MemberId, OpHash};

/// Format version of access ops.
pub const OP_VERSION: u16 = 1;
/// Largest encoded op accepted (a rotate seals a key to every reader).
pub const MAX_OP_LEN: usize = 1 << 20;
/// Most connected ops one document's log may hold; evaluation is quadratic.
pub const MAX_LOG_OPS: usize = 4096;
/// Most ops waiting for missing parents.
pub const MAX_PENDING_OPS: usize = 1024;
/// Most parents one op may name.
pub const MAX_PREV: usize = 64;

/// What a member may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Role {
    /// Store and serve ciphertext; cannot decrypt (a relay).
    Replicate,
    /// Decrypt and read.
    Read,
    /// Read and write.
    Write,
    /// Write, and grant, revoke, invite and rotate keys.
    Admin,
}

impl Role {
    /// May decrypt.
    pub fn can_read(self) -> bool {
        matches!(self, Role::Read | Role::Write | Role::Admin)
    }
    /// May author chunks.
    pub fn can_write(self) -> bool {
        matches!(self, Role::Write | Role::Admin)
    }
    /// May change the access log.
    pub fn is_admin(self) -> bool {
        self == Role::Admin
    }
    /// Lower-case name, as the CLI spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Replicate => "replicate",
            Role::Read => "read",
            Role::Write => "write",
            Role::Admin => "admin",
        }
    }
}

impl core::fmt::Display for Role {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl core::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "replicate" => Ok(Role::Replicate),
            "read" => Ok(Role::Read),
            "write" => Ok(Role::Write),
            "admin" => Ok(Role::Admin),
            other => Err(format!("unknown role {other:?}; use read, write, admin or replicate")),
        }
    }
}

/// An older key encrypted under a newer one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WrappedKey {
    /// XChaCha20 nonce.
    pub nonce: [u8; NONCE_LEN],
    /// The older key, sealed under the newer key with its [`KeyId`] as AAD.
    pub ciphertext: Vec<u8>,
}

/// What an access op does.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Action {
    /// Creates the document; the author is its owner (an admin who cannot be revoked).
    Genesis {
        /// Owner's exchange key.
        exchange: ExchangeKey,
        /// Makes every genesis, hence every [`DocId`], unique.
        nonce: [u8; 16],
        /// The first document key, sealed to the owner.
        key: SealedKey,
    },
    /// Gives `member` a role (or changes it).
    Grant {
        /// Member.
        member: MemberId,
        /// Its exchange key (needed for reading roles).
        exchange: Option<ExchangeKey>,
        /// Role given.
        role: Role,
        /// The author's current key sealed to the member (reading roles).
        key: Option<(KeyId, SealedKey)>,
    },
    /// Removes `member` (and cancels an unclaimed invitation of that id).
    Revoke {
        /// Member or invitation id.
        member: MemberId,
        /// Change chunks of a revoked writer up to this seq stay valid: what
        /// it wrote while allowed is part of the document.
        accept_until: u64,
    },
    /// Introduces a new document key, named by this op's hash.
    Rotate {
        /// The new key sealed to each remaining reader and open invitation.
        keys: Vec<(MemberId, SealedKey)>,
        /// Keys the author knew as current, wrapped under the new key.
        previous: Vec<(KeyId, WrappedKey)>,
    },
    /// An invitation: whoever holds the secret behind `invitee` may claim `role`.
    Invite {
        /// Public id derived from the invitation secret.
        invitee: MemberId,
        /// Exchange key derived from the invitation secret.
        exchange: ExchangeKey,
        /// Role the claimer gets.
        role: Role,
        /// The current key sealed to the invitation.
        key: (KeyId, SealedKey),
    },
    /// Signed by an invitation's key: gives its role to `member`. Single use.
    Claim {
        /// The device joining.
        member: MemberId,
        /// Its exchange key.
        exchange: ExchangeKey,
    },
}

/// The signed content of an op.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpBody {
    /// [`OP_VERSION`].
    pub version: u16,
    /// The document; `None` only in a genesis (its hash is the document id).
    pub doc: Option<DocId>,
    /// Who signed it.
    pub author: MemberId,
    /// Log heads the author knew.
    pub prev: Vec<OpHash>,
    /// What it does.
    pub action: Action,
}

#[derive(Serialize, Deserialize)]
struct OpWire {
    #[serde(with = "serde_bytes")]
    body: Vec<u8>,
    sig: crate::encoding::Sig,
}

/// A verified (signature checked) access op with its encoding and hash.
#[derive(Clone, Debug)]
pub struct AccessOp {
    pub(super) body: OpBody,
    pub(super) encoded: Vec<u8>,
    pub(super) hash: OpHash,
}

impl AccessOp {
    pub(super) fn sign(identity: &DeviceIdentity, body: OpBody) -> Self {
        let body_bytes = encode(&body);
        let sig = identity.sign(&signing_message(&body_bytes));
        let encoded = encode(&OpWire {
            body: body_bytes,
            sig: crate::encoding::Sig(sig),
        });
        let hash = OpHash(hash("synkro 2026 access op", &[&encoded]));
        Self { body, encoded, hash }
    }

    /// Decode and check the signature (not yet authority: see [`AccessLog`]).
    pub fn decode(bytes: &[u8]) -> Result<Self, VerifyError> {
        // The hash of these bytes names the op.
        let wire: OpWire = decode_canonical("access op", bytes, MAX_OP_LEN)?;
        let body: OpBody = decode("access op body", &wire.body, MAX_OP_LEN)?;
        check_version("access op", body.version, OP_VERSION)?;
        if body.prev.len() > MAX_PREV {
            return Err(VerifyError::Invalid("too many parents"));
        }
        body.author.verify(&signing_message(&wire.body), &wire.sig.0)?;
        let hash = Self::hash_of(bytes);
        Ok(Self {
            body,
            encoded: bytes.to_vec(),
            hash,
        })
    }

    /// The hash that names the op encoded as `bytes`, without decoding or
    /// verifying them: equal hashes mean equal bytes, so an op already held
    /// need not be verified again.
    pub fn hash_of(bytes: &[u8]) -> OpHash {
        OpHash(hash("synkro 2026 access op", &[bytes]))
    }

    /// The op's hash.
    pub fn hash(&self) -> OpHash {
        self.hash
    }
    /// The signed content.
    pub fn body(&self) -> &OpBody {
        &self.body
    }
    /// The canonical bytes (what is stored and sent).
    pub fn encoded(&self) -> &[u8] {
        &self.encoded
    }
}

fn signing_message(body: &[u8]) -> Vec<u8> {
    hash("synkro 2026 access op signature", &[body]).to_vec()
}

/// A key's id is the hash of the op that introduces it, unknown while that
/// op is being written; keys sealed inside their own op therefore bind a
/// stand-in: the genesis nonce, or (for a rotate) the key being replaced.
pub(crate) fn genesis_context(nonce: &[u8; 16]) -> OpHash {
    OpHash(hash("synkro 2026 genesis key", &[nonce]))
}

/// See [`genesis_context`].
pub(crate) fn rotate_context(previous: &KeyId) -> OpHash {
    OpHash(hash("synkro 2026 rotate key", &[&previous.0]))
}

/// Sign `body` as `identity`.
pub(crate) fn sign_op(identity: &DeviceIdentity, body: OpBody) -> AccessOp {
    AccessOp::sign(identity, body)
}

/// HPKE context for a key sealed to `to`.
pub(crate) fn seal_context(key: &KeyId, to: &MemberId) -> Vec<u8> {
    let mut c = Vec::with_capacity(64);
    c.extend_from_slice(&key.0);
    c.extend_from_slice(&to.0);
    c
}

/// Wrap `old` under `new` (for a rotate).
pub(crate) fn wrap_key<R: CryptoRng + ?Sized>(
    rng: &mut R,
    new: &SymmetricKey,
    old_id: &KeyId,
    old: &SymmetricKey,
) -> WrappedKey {
    let nonce = random_array(rng);
    WrappedKey {
        nonce,
        ciphertext: new.seal(&nonce, &old_id.0, old.as_bytes()),
    }
}

/// Unwrap what [`wrap_key`] produced.
pub(crate) fn unwrap_key(new: &SymmetricKey, old_id: &KeyId, w: &WrappedKey) -> Option<SymmetricKey> {
    let bytes = new.open(&w.nonce, &old_id.0, &w.ciphertext).ok()?;
    let arr: [u8; 32] = bytes.as_slice().try_into().ok()?;
    Some(SymmetricKey::from_bytes(arr))
}
