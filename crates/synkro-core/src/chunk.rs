//! Sealed chunks: the unit of storage and transfer.
//!
//! A chunk's plaintext is either a batch of Automerge changes or a whole
//! Automerge save (a snapshot). It is encrypted with XChaCha20-Poly1305
//! under a document key, with the encoded header as associated data, and
//! the author signs (a BLAKE3 digest of) header and ciphertext with Ed25519.
//! Anyone can check who wrote a chunk; only readers can open it.

use rand_core::CryptoRng;
use serde::{Deserialize, Serialize};

use crate::crypto::{NONCE_LEN, SymmetricKey, hash, random_array};
use crate::encoding::{Sig, decode, encode};
use crate::error::{DecodeError, VerifyError};
use crate::identity::DeviceIdentity;
use crate::ids::{DocId, KeyId, MemberId};
use crate::vv::VersionVector;

/// True only in builds with the `insecure-unsealed-benchmark` feature, made
/// to measure what sealing costs (benchmark scenario 6): chunks are then
/// neither encrypted nor signed nor checked. Such a build must never hold
/// real data; it cannot read sealed chunks, and sealed peers refuse its
/// chunks (they carry no valid signature).
pub const UNSEALED: bool = cfg!(feature = "insecure-unsealed-benchmark");

/// Format version of chunks.
pub const CHUNK_VERSION: u16 = 1;
/// Largest encoded chunk accepted (16 MiB).
pub const MAX_CHUNK_LEN: usize = 16 << 20;

/// What a chunk holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChunkKind {
    /// A batch of Automerge changes; `seq` numbers the author's batches from 1.
    Changes,
    /// A whole document that includes at least everything in `covers`.
    Snapshot {
        /// What the snapshot contains.
        covers: VersionVector,
    },
}

/// The authenticated, unencrypted part of a chunk.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkHeader {
    /// [`CHUNK_VERSION`].
    pub version: u16,
    /// Document.
    pub doc: DocId,
    /// Signer.
    pub author: MemberId,
    /// Author's batch number (changes) or 0 (snapshots).
    pub seq: u64,
    /// Document key it is sealed under.
    pub key: KeyId,
    /// Changes or snapshot.
    pub kind: ChunkKind,
    /// AEAD nonce.
    pub nonce: [u8; NONCE_LEN],
}

#[derive(Serialize, Deserialize)]
struct ChunkWire {
    #[serde(with = "serde_bytes")]
    header: Vec<u8>,
    #[serde(with = "serde_bytes")]
    ciphertext: Vec<u8>,
    sig: Sig,
}

/// Where a chunk sits in a document: by author and seq, or by content hash for snapshots.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ChunkRef {
    /// A change batch.
    Change(MemberId, u64),
    /// A snapshot, by digest.
    Snapshot([u8; 32]),
}

/// A chunk whose signature has been checked.
#[derive(Clone, Debug)]
pub struct SealedChunk {
    header: ChunkHeader,
    header_bytes: Vec<u8>,
    ciphertext_range: core::ops::Range<usize>,
    encoded: Vec<u8>,
    digest: [u8; 32],
}

fn digest(header: &[u8], ciphertext: &[u8]) -> [u8; 32] {
    hash("synkro 2026 sealed chunk", &[header, ciphertext])
}

impl SealedChunk {
    /// Encrypt `plaintext` under `key` and sign it as `identity`.
    #[allow(clippy::too_many_arguments)]
    pub fn seal<R: CryptoRng + ?Sized>(
        rng: &mut R,
        identity: &DeviceIdentity,
        doc: DocId,
        seq: u64,
        key_id: KeyId,
        key: &SymmetricKey,
        kind: ChunkKind,
        plaintext: &[u8],
    ) -> Self {
        let header = ChunkHeader {
            version: CHUNK_VERSION,
            doc,
            author: identity.member_id(),
            seq,
            key: key_id,
            kind,
            nonce: random_array(rng),
        };
        let header_bytes = encode(&header);
        let ciphertext = if UNSEALED {
            plaintext.to_vec()
        } else {
            key.seal(&header.nonce, &header_bytes, plaintext)
        };
        let digest = digest(&header_bytes, &ciphertext);
        let sig = if UNSEALED { [0; 64] } else { identity.sign(&digest) };
        let encoded = encode(&ChunkWire {
            header: header_bytes.clone(),
            ciphertext,
            sig: Sig(sig),
        });
        Self::from_parts(header, header_bytes, encoded, digest)
    }

    fn from_parts(header: ChunkHeader, header_bytes: Vec<u8>, encoded: Vec<u8>, digest: [u8; 32]) -> Self {
        // Locate the ciphertext inside the wire bytes instead of keeping a copy.
        let range = postcard::from_bytes::<ChunkWireRef<'_>>(&encoded)
            .map(|w| subslice_range(&encoded, w.ciphertext))
            .unwrap_or(0..0);
        Self {
            header,
            header_bytes,
            ciphertext_range: range,
            encoded,
            digest,
        }
    }

    /// Decode and check the signature. Says nothing yet about whether the
    /// author may write: that needs the document's access log.
    pub fn decode(bytes: &[u8]) -> Result<Self, VerifyError> {
        if bytes.len() > MAX_CHUNK_LEN {
            return Err(DecodeError::TooLarge {
                what: "chunk",
                len: bytes.len(),
                max: MAX_CHUNK_LEN,
            }
            .into());
        }
        let wire: ChunkWireRef<'_> = decode("chunk", bytes, MAX_CHUNK_LEN)?;
        let header: ChunkHeader = decode("chunk header", wire.header, MAX_CHUNK_LEN)?;
        if header.version != CHUNK_VERSION {
            return Err(DecodeError::Version {
                what: "chunk",
                found: header.version,
                supported: CHUNK_VERSION,
            }
            .into());
        }
        let is_snapshot = matches!(header.kind, ChunkKind::Snapshot { .. });
        if is_snapshot != (header.seq == 0) {
            return Err(VerifyError::Invalid("chunk seq does not match its kind"));
        }
        let d = digest(wire.header, wire.ciphertext);
        if !UNSEALED {
            header.author.verify(&d, &wire.sig.0)?;
        }
        let range = subslice_range(bytes, wire.ciphertext);
        Ok(Self {
            header_bytes: wire.header.to_vec(),
            header,
            ciphertext_range: range,
            encoded: bytes.to_vec(),
            digest: d,
        })
    }

    /// Decrypt with `key` (which must be the key named in the header).
    pub fn open(&self, key: &SymmetricKey) -> Result<Vec<u8>, VerifyError> {
        let ct = self
            .encoded
            .get(self.ciphertext_range.clone())
            .ok_or(VerifyError::Decrypt)?;
        if UNSEALED {
            return Ok(ct.to_vec());
        }
        key.open(&self.header.nonce, &self.header_bytes, ct)
    }

    /// The header.
    pub fn header(&self) -> &ChunkHeader {
        &self.header
    }
    /// The canonical bytes (what is stored and sent).
    pub fn encoded(&self) -> &[u8] {
        &self.encoded
    }
    /// Where the chunk sits in its document.
    pub fn chunk_ref(&self) -> ChunkRef {
        match self.header.kind {
            ChunkKind::Changes => ChunkRef::Change(self.header.author, self.header.seq),
            ChunkKind::Snapshot { .. } => ChunkRef::Snapshot(self.digest),
        }
    }
    /// The signed digest, which also names snapshots.
    pub fn digest(&self) -> [u8; 32] {
        self.digest
    }
    /// What a snapshot covers (`None` for change batches).
    pub fn covers(&self) -> Option<&VersionVector> {
        match &self.header.kind {
            ChunkKind::Snapshot { covers } => Some(covers),
            ChunkKind::Changes => None,
        }
    }
}

#[derive(Deserialize)]
struct ChunkWireRef<'a> {
    #[serde(borrow)]
    header: &'a [u8],
    #[serde(borrow)]
    ciphertext: &'a [u8],
    sig: Sig,
}

/// The position of `part`, a sub-slice borrowed from `whole`.
fn subslice_range(whole: &[u8], part: &[u8]) -> core::ops::Range<usize> {
    let start = (part.as_ptr() as usize).saturating_sub(whole.as_ptr() as usize);
    start..start + part.len()
}
