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
use crate::limits::{MAX_PARTS, MAX_STORED_CHUNK_LEN};
use crate::vv::VersionVector;

/// True only in builds with the `insecure-unsealed-benchmark` feature, made
/// to measure what sealing costs (benchmark scenario 6): chunks are then
/// neither encrypted nor signed nor checked. Such a build must never hold
/// real data; it cannot read sealed chunks, and sealed peers refuse its
/// chunks (they carry no valid signature).
pub const UNSEALED: bool = cfg!(feature = "insecure-unsealed-benchmark");

/// Format version of chunks sealed whole.
pub const CHUNK_VERSION: u16 = 1;
/// Format version of chunks that are one [`Part`] of a larger change or
/// snapshot: version 1's header plus the part.
pub const PART_VERSION: u16 = 2;
pub use crate::limits::MAX_CHUNK_LEN;

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

/// Where a chunk sits among the parts of one change or snapshot too large
/// for a chunk of its own ([`MAX_PART_LEN`](crate::limits::MAX_PART_LEN)).
/// Readers apply the parts' plaintexts, concatenated in `index` order, once
/// they hold all `count` of them. The parts of a change have consecutive
/// `seq`s (part `i` at `first + i`); those of a snapshot share `covers`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Part {
    /// Names the group of parts (random, chosen by the author).
    pub group: [u8; 16],
    /// This part's position, `0..count`.
    pub index: u32,
    /// How many parts the group has, `2..=`[`MAX_PARTS`](crate::limits::MAX_PARTS).
    pub count: u32,
}

/// The authenticated, unencrypted part of a chunk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChunkHeader {
    /// [`CHUNK_VERSION`], or [`PART_VERSION`] for a part.
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
    /// Which part of a larger change or snapshot this is (`None`: sealed whole).
    pub part: Option<Part>,
}

/// Version 1's header on the wire.
#[derive(Serialize, Deserialize)]
struct HeaderV1 {
    version: u16,
    doc: DocId,
    author: MemberId,
    seq: u64,
    key: KeyId,
    kind: ChunkKind,
    nonce: [u8; NONCE_LEN],
}

/// Version 2's header on the wire: version 1's, then the part.
#[derive(Serialize, Deserialize)]
struct HeaderV2 {
    version: u16,
    doc: DocId,
    author: MemberId,
    seq: u64,
    key: KeyId,
    kind: ChunkKind,
    nonce: [u8; NONCE_LEN],
    part: Part,
}

#[derive(Deserialize)]
struct VersionOnly {
    version: u16,
}

impl ChunkHeader {
    fn encode(&self) -> Vec<u8> {
        let Self {
            version: _,
            doc,
            author,
            seq,
            key,
            kind,
            nonce,
            part,
        } = self.clone();
        match part {
            None => encode(&HeaderV1 {
                version: CHUNK_VERSION,
                doc,
                author,
                seq,
                key,
                kind,
                nonce,
            }),
            Some(part) => encode(&HeaderV2 {
                version: PART_VERSION,
                doc,
                author,
                seq,
                key,
                kind,
                nonce,
                part,
            }),
        }
    }

    fn decode(bytes: &[u8]) -> Result<Self, VerifyError> {
        let version = postcard::take_from_bytes::<VersionOnly>(bytes)
            .map(|(v, _)| v.version)
            .map_err(|e| DecodeError::Malformed {
                what: "chunk header",
                detail: e.to_string(),
            })?;
        let header = match version {
            CHUNK_VERSION => {
                let h: HeaderV1 = decode("chunk header", bytes, MAX_CHUNK_LEN)?;
                Self {
                    version,
                    doc: h.doc,
                    author: h.author,
                    seq: h.seq,
                    key: h.key,
                    kind: h.kind,
                    nonce: h.nonce,
                    part: None,
                }
            }
            PART_VERSION => {
                let h: HeaderV2 = decode("chunk header", bytes, MAX_CHUNK_LEN)?;
                if h.part.count < 2 || h.part.count > MAX_PARTS || h.part.index >= h.part.count {
                    return Err(VerifyError::Invalid("chunk part out of range"));
                }
                Self {
                    version,
                    doc: h.doc,
                    author: h.author,
                    seq: h.seq,
                    key: h.key,
                    kind: h.kind,
                    nonce: h.nonce,
                    part: Some(h.part),
                }
            }
            found => {
                return Err(DecodeError::Version {
                    what: "chunk",
                    found,
                    supported: PART_VERSION,
                }
                .into());
            }
        };
        Ok(header)
    }
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
    /// Boxed: a replica holds its chunks in maps whose nodes have room
    /// for eleven, so every byte inline counts elevenfold.
    header: Box<ChunkHeader>,
    header_bytes: Vec<u8>,
    ciphertext_range: core::ops::Range<usize>,
    encoded: Vec<u8>,
    digest: [u8; 32],
}

fn digest(header: &[u8], ciphertext: &[u8]) -> [u8; 32] {
    hash("synkro 2026 sealed chunk", &[header, ciphertext])
}

impl SealedChunk {
    /// Encrypt `plaintext` under `key` and sign it as `identity`: a chunk
    /// sealed whole. Keep `plaintext` within
    /// [`MAX_PART_LEN`](crate::limits::MAX_PART_LEN) (larger changes and
    /// snapshots are sealed in parts, [`seal_part`](Self::seal_part)), or
    /// peers will refuse the chunk.
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
        Self::seal_with(rng, identity, (doc, seq, key_id, kind, None), key, plaintext)
    }

    /// [`seal`](Self::seal) one part of a change or snapshot.
    #[allow(clippy::too_many_arguments)]
    pub fn seal_part<R: CryptoRng + ?Sized>(
        rng: &mut R,
        identity: &DeviceIdentity,
        doc: DocId,
        seq: u64,
        key_id: KeyId,
        key: &SymmetricKey,
        kind: ChunkKind,
        part: Part,
        plaintext: &[u8],
    ) -> Self {
        Self::seal_with(rng, identity, (doc, seq, key_id, kind, Some(part)), key, plaintext)
    }

    fn seal_with<R: CryptoRng + ?Sized>(
        rng: &mut R,
        identity: &DeviceIdentity,
        (doc, seq, key_id, kind, part): (DocId, u64, KeyId, ChunkKind, Option<Part>),
        key: &SymmetricKey,
        plaintext: &[u8],
    ) -> Self {
        let header = ChunkHeader {
            version: if part.is_some() { PART_VERSION } else { CHUNK_VERSION },
            doc,
            author: identity.member_id(),
            seq,
            key: key_id,
            kind,
            nonce: random_array(rng),
            part,
        };
        let header_bytes = header.encode();
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
            header: Box::new(header),
            header_bytes,
            ciphertext_range: range,
            encoded,
            digest,
        }
    }

    /// Decode a chunk from a peer and check the signature. Says nothing yet
    /// about whether the author may write: that needs the document's access
    /// log.
    pub fn decode(bytes: &[u8]) -> Result<Self, VerifyError> {
        Self::decode_within(bytes, MAX_CHUNK_LEN)
    }

    /// [`decode`](Self::decode) a record of this device's own storage,
    /// which may be larger than a peer may send (see
    /// [`MAX_STORED_CHUNK_LEN`](crate::limits::MAX_STORED_CHUNK_LEN)).
    pub fn decode_stored(bytes: &[u8]) -> Result<Self, VerifyError> {
        Self::decode_within(bytes, MAX_STORED_CHUNK_LEN)
    }

    fn decode_within(bytes: &[u8], max: usize) -> Result<Self, VerifyError> {
        if bytes.len() > max {
            return Err(DecodeError::TooLarge {
                what: "chunk",
                len: bytes.len(),
                max,
            }
            .into());
        }
        let wire: ChunkWireRef<'_> = decode("chunk", bytes, max)?;
        let header = ChunkHeader::decode(wire.header)?;
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
            header: Box::new(header),
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
    /// Which part of a larger change or snapshot this is (`None`: sealed whole).
    pub fn part(&self) -> Option<Part> {
        self.header.part
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
