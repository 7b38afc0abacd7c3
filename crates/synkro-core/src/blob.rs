//! Blobs: files attached to a document, kept out of its Automerge history.
//!
//! A blob is cut into content-defined chunks (FastCDC 2020, 16 KiB minimum,
//! 64 KiB average, 256 KiB maximum), so an edit in the middle of a large
//! file changes the chunks around it only. Each chunk is encrypted with
//! XChaCha20-Poly1305 under a key derived from a document key, with a nonce
//! derived from the chunk's plaintext by a keyed hash under that document
//! key: the same chunk in the same document (and key) is the same
//! ciphertext, so it is stored and sent once, while the same file in
//! another document (another key) shares nothing a relay could compare.
//! A chunk is addressed by the BLAKE3 hash of its ciphertext
//! ([`BlobChunkId`]), which anyone holding it (a relay) can check.
//!
//! A blob is its [`BlobManifest`]: the document, the key, the chunk ids and
//! lengths in order, the file's name and type sealed under the document
//! key, signed by the member who attached it. The manifest's hash
//! ([`BlobId`]) names the blob; a [`BlobRef`] (id, size, type, name) is
//! what an application stores in the document. The exact bytes are in
//! `FORMAT.md`.
//!
//! This module is sans-IO: [`BlobWriter`] takes bytes as they come and
//! hands back sealed chunks as soon as their boundaries are known, holding
//! at most one maximal chunk; [`BlobManifest::open_chunk`] checks and opens
//! one chunk at a time.

use fastcdc::v2020::FastCDC;
use rand_core::CryptoRng;
use serde::{Deserialize, Serialize};

use crate::crypto::{NONCE_LEN, SymmetricKey, hash, random_array};
use crate::encoding::{Sig, check_version, decode, decode_canonical, encode};
use crate::error::VerifyError;
use crate::identity::DeviceIdentity;
pub use crate::ids::BlobId;
use crate::ids::{DocId, KeyId, MemberId};

/// Format version of manifests.
pub const MANIFEST_VERSION: u16 = 1;
/// Smallest chunk FastCDC cuts (the last chunk of a blob may be smaller).
pub const MIN_CHUNK: usize = 16 * 1024;
/// The average chunk FastCDC aims for.
pub const AVG_CHUNK: usize = 64 * 1024;
/// Largest chunk's plaintext.
pub const MAX_CHUNK: usize = 256 * 1024;
/// Largest sealed chunk: the ciphertext, the AEAD tag and the nonce.
pub const MAX_SEALED_CHUNK: usize = MAX_CHUNK + 16 + NONCE_LEN;
/// Most chunks a manifest lists: 4 GiB at the smallest chunks, 16 GiB at
/// the average, and a manifest of at most 10 MiB.
pub const MAX_CHUNKS: usize = 1 << 18;
/// Largest blob.
pub const MAX_BLOB_LEN: u64 = (MAX_CHUNKS as u64) * (MAX_CHUNK as u64);
/// Largest sealed name and type of a file.
pub const MAX_META_LEN: usize = 4096;
/// Largest encoded manifest.
pub const MAX_MANIFEST_LEN: usize = 64 + MAX_META_LEN + MAX_CHUNKS * 40;

/// A chunk's address: the BLAKE3 hash of its sealed bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct BlobChunkId(pub [u8; 32]);

impl BlobChunkId {
    /// The address of `sealed`.
    pub fn of(sealed: &[u8]) -> Self {
        Self(hash("synkro 2026 blob chunk", &[sealed]))
    }
}

/// What an application keeps in its document to find a blob again. In
/// JSON, ids are base58 text: `{"doc": "…", "id": "…", "size": 1234,
/// "mime": "image/png", "name": "tent.png"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobRef {
    /// The document the blob belongs to (its keys open it).
    #[serde(with = "crate::ids::text")]
    pub doc: DocId,
    /// The manifest's hash.
    #[serde(with = "crate::ids::text")]
    pub id: BlobId,
    /// Bytes of the file.
    pub size: u64,
    /// Media type, e.g. `image/png`.
    pub mime: String,
    /// File name.
    pub name: String,
}

/// What the attaching app says of the file (sealed in the manifest).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobMeta {
    /// Media type, e.g. `image/png`.
    pub mime: String,
    /// File name.
    pub name: String,
}

/// A sealed chunk and its address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealedBlobChunk {
    /// Address of `sealed`.
    pub id: BlobChunkId,
    /// Ciphertext and tag.
    pub sealed: Vec<u8>,
}

/// The keys a document key gives its blobs.
struct BlobKeys {
    encrypt: SymmetricKey,
    nonce: [u8; 32],
}

impl BlobKeys {
    fn of(key: &SymmetricKey) -> Self {
        Self {
            encrypt: SymmetricKey::from_bytes(hash("synkro 2026 blob encryption key", &[key.as_bytes()])),
            nonce: hash("synkro 2026 blob nonce key", &[key.as_bytes()]),
        }
    }

    fn seal(&self, doc: &DocId, key_id: &KeyId, plaintext: &[u8]) -> SealedBlobChunk {
        let mut nonce = [0; NONCE_LEN];
        let keyed = blake3::keyed_hash(&self.nonce, plaintext);
        nonce.copy_from_slice(&keyed.as_bytes()[..NONCE_LEN]);
        let mut sealed = self.encrypt.seal(&nonce, &chunk_aad(doc, key_id), plaintext);
        sealed.extend_from_slice(&nonce);
        SealedBlobChunk {
            id: BlobChunkId::of(&sealed),
            sealed,
        }
    }
}

fn chunk_aad(doc: &DocId, key_id: &KeyId) -> Vec<u8> {
    [b"synkro 2026 blob chunk".as_slice(), &doc.0, &key_id.0].concat()
}

/// Cuts and seals a blob as its bytes come ([`push`](Self::push)), then
/// signs its manifest ([`finish`](Self::finish)).
pub struct BlobWriter {
    doc: DocId,
    key_id: KeyId,
    keys: BlobKeys,
    meta: BlobMeta,
    /// Bytes not yet cut into a chunk (less than a maximal chunk between calls).
    pending: Vec<u8>,
    chunks: Vec<(BlobChunkId, u32)>,
    size: u64,
}

impl BlobWriter {
    /// A blob of `doc` sealed under the document key `key` (named `key_id`).
    pub fn new(doc: DocId, key_id: KeyId, key: &SymmetricKey, meta: BlobMeta) -> Self {
        Self {
            doc,
            key_id,
            keys: BlobKeys::of(key),
            meta,
            pending: Vec::new(),
            chunks: Vec::new(),
            size: 0,
        }
    }

    /// Takes the next bytes of the file; returns the chunks now complete.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<SealedBlobChunk>, VerifyError> {
        self.size = self.size.saturating_add(bytes.len() as u64);
        if self.size > MAX_BLOB_LEN {
            return Err(VerifyError::Invalid("blob too large"));
        }
        let mut out = Vec::new();
        let mut rest = bytes;
        while !rest.is_empty() {
            let room = 2 * MAX_CHUNK - self.pending.len();
            let (now, later) = rest.split_at(rest.len().min(room));
            self.pending.extend_from_slice(now);
            rest = later;
            // With a maximal chunk's worth in hand, the next cut is final.
            while self.pending.len() >= MAX_CHUNK {
                out.push(self.cut(false)?);
            }
        }
        Ok(out)
    }

    /// Seals what is left and signs the manifest.
    pub fn finish<R: CryptoRng + ?Sized>(
        mut self,
        rng: &mut R,
        identity: &DeviceIdentity,
    ) -> Result<(Vec<SealedBlobChunk>, BlobManifest), VerifyError> {
        if encode(&self.meta).len() > MAX_META_LEN {
            return Err(VerifyError::Invalid("blob name and type over 4 KiB"));
        }
        let mut out = Vec::new();
        while !self.pending.is_empty() {
            out.push(self.cut(true)?);
        }
        let nonce: [u8; NONCE_LEN] = random_array(rng);
        let manifest = BlobManifest::sign(
            identity,
            ManifestBody {
                version: MANIFEST_VERSION,
                doc: self.doc,
                key: self.key_id,
                author: identity.member_id(),
                size: self.size,
                chunks: self.chunks,
                meta: seal_meta(&self.keys, &self.doc, &self.key_id, &self.meta, nonce),
            },
        );
        Ok((out, manifest))
    }

    fn cut(&mut self, last: bool) -> Result<SealedBlobChunk, VerifyError> {
        let len = if last && self.pending.len() <= MIN_CHUNK {
            self.pending.len()
        } else {
            let chunker = FastCDC::new(&self.pending, MIN_CHUNK, AVG_CHUNK, MAX_CHUNK);
            chunker.cut(0, self.pending.len()).1
        };
        if self.chunks.len() >= MAX_CHUNKS {
            return Err(VerifyError::Invalid("blob has too many chunks"));
        }
        let chunk = self.keys.seal(&self.doc, &self.key_id, &self.pending[..len]);
        self.pending.drain(..len);
        self.chunks.push((chunk.id, len as u32));
        Ok(chunk)
    }
}

fn meta_aad(doc: &DocId, key_id: &KeyId) -> Vec<u8> {
    [b"synkro 2026 blob meta".as_slice(), &doc.0, &key_id.0].concat()
}

fn seal_meta(keys: &BlobKeys, doc: &DocId, key_id: &KeyId, meta: &BlobMeta, nonce: [u8; NONCE_LEN]) -> Vec<u8> {
    let mut sealed = keys.encrypt.seal(&nonce, &meta_aad(doc, key_id), &encode(meta));
    sealed.extend_from_slice(&nonce);
    sealed
}

/// The signed part of a manifest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct ManifestBody {
    version: u16,
    doc: DocId,
    key: KeyId,
    author: MemberId,
    size: u64,
    chunks: Vec<(BlobChunkId, u32)>,
    meta: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
struct ManifestWire {
    body: Vec<u8>,
    sig: Sig,
}

/// A blob's signed list of chunks, decoded and verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlobManifest {
    body: ManifestBody,
    encoded: Vec<u8>,
    id: BlobId,
}

impl BlobManifest {
    fn sign(identity: &DeviceIdentity, body: ManifestBody) -> Self {
        let body_bytes = encode(&body);
        let sig = identity.sign(&signing_message(&body_bytes));
        let encoded = encode(&ManifestWire {
            body: body_bytes,
            sig: Sig(sig),
        });
        let id = BlobId(hash("synkro 2026 blob manifest", &[&encoded]));
        Self { body, encoded, id }
    }

    /// Decodes untrusted bytes and checks the signature and the limits
    /// (not whether the author may write the document: the access log
    /// says that).
    pub fn decode(bytes: &[u8]) -> Result<Self, VerifyError> {
        // The hash of these bytes names the blob.
        let wire: ManifestWire = decode_canonical("blob manifest", bytes, MAX_MANIFEST_LEN)?;
        let body: ManifestBody = decode("blob manifest body", &wire.body, MAX_MANIFEST_LEN)?;
        check_version("blob manifest", body.version, MANIFEST_VERSION)?;
        if body.chunks.len() > MAX_CHUNKS || body.meta.len() > MAX_META_LEN + NONCE_LEN + 16 {
            return Err(VerifyError::Invalid("blob manifest over its limits"));
        }
        let last = body.chunks.len().saturating_sub(1);
        let mut sum = 0u64;
        for (i, (_, len)) in body.chunks.iter().enumerate() {
            let len = *len as usize;
            if len == 0 || len > MAX_CHUNK || (i < last && len < MIN_CHUNK) {
                return Err(VerifyError::Invalid("blob chunk length out of range"));
            }
            sum += len as u64;
        }
        if sum != body.size {
            return Err(VerifyError::Invalid("blob size is not the sum of its chunks"));
        }
        body.author.verify(&signing_message(&wire.body), &wire.sig.0)?;
        let id = BlobId(hash("synkro 2026 blob manifest", &[bytes]));
        Ok(Self {
            body,
            encoded: bytes.to_vec(),
            id,
        })
    }

    /// The blob's name.
    pub fn id(&self) -> BlobId {
        self.id
    }
    /// The canonical bytes (what is stored and sent).
    pub fn encoded(&self) -> &[u8] {
        &self.encoded
    }
    /// The document the blob belongs to.
    pub fn doc(&self) -> DocId {
        self.body.doc
    }
    /// The document key its chunks are sealed under.
    pub fn key(&self) -> KeyId {
        self.body.key
    }
    /// Who attached it.
    pub fn author(&self) -> MemberId {
        self.body.author
    }
    /// Bytes of the file.
    pub fn size(&self) -> u64 {
        self.body.size
    }
    /// The chunks' ids and plaintext lengths, in order.
    pub fn chunks(&self) -> &[(BlobChunkId, u32)] {
        &self.body.chunks
    }

    /// The file's type and name, opened with the document key the manifest names.
    pub fn meta(&self, key: &SymmetricKey) -> Result<BlobMeta, VerifyError> {
        let keys = BlobKeys::of(key);
        let (sealed, nonce) = split_nonce(&self.body.meta)?;
        let plain = keys
            .encrypt
            .open(&nonce, &meta_aad(&self.body.doc, &self.body.key), sealed)?;
        Ok(decode("blob meta", &plain, MAX_META_LEN)?)
    }

    /// The reference an application stores, opened with the document key.
    pub fn blob_ref(&self, key: &SymmetricKey) -> Result<BlobRef, VerifyError> {
        let BlobMeta { mime, name } = self.meta(key)?;
        Ok(BlobRef {
            doc: self.body.doc,
            id: self.id,
            size: self.body.size,
            mime,
            name,
        })
    }

    /// Checks that `sealed` is chunk `index` of this blob and opens it with
    /// the document key the manifest names.
    pub fn open_chunk(&self, key: &SymmetricKey, index: usize, sealed: &[u8]) -> Result<Vec<u8>, VerifyError> {
        let (id, len) = *self
            .body
            .chunks
            .get(index)
            .ok_or(VerifyError::Invalid("no such chunk in the blob"))?;
        if BlobChunkId::of(sealed) != id {
            return Err(VerifyError::Invalid("blob chunk does not match its id"));
        }
        let (ciphertext, nonce) = split_nonce(sealed)?;
        let plain = BlobKeys::of(key)
            .encrypt
            .open(&nonce, &chunk_aad(&self.body.doc, &self.body.key), ciphertext)?;
        if plain.len() != len as usize {
            return Err(VerifyError::Invalid("blob chunk length differs from the manifest"));
        }
        Ok(plain)
    }
}

/// A checked manifest with the document key that opens its chunks: what a
/// node hands out to read a blob ([`Node::open_blob`](crate::Node::open_blob)).
pub struct BlobReader {
    manifest: BlobManifest,
    key: SymmetricKey,
}

impl BlobReader {
    pub(crate) fn new(manifest: BlobManifest, key: SymmetricKey) -> Self {
        Self { manifest, key }
    }

    /// The manifest.
    pub fn manifest(&self) -> &BlobManifest {
        &self.manifest
    }

    /// The reference an application stores.
    pub fn blob_ref(&self) -> Result<BlobRef, VerifyError> {
        self.manifest.blob_ref(&self.key)
    }

    /// Checks that `sealed` is chunk `index` and opens it.
    pub fn open_chunk(&self, index: usize, sealed: &[u8]) -> Result<Vec<u8>, VerifyError> {
        self.manifest.open_chunk(&self.key, index, sealed)
    }
}

fn signing_message(body: &[u8]) -> Vec<u8> {
    hash("synkro 2026 blob manifest signature", &[body]).to_vec()
}

/// Splits the nonce off the end of sealed bytes.
fn split_nonce(sealed: &[u8]) -> Result<(&[u8], [u8; NONCE_LEN]), VerifyError> {
    let at = sealed
        .len()
        .checked_sub(NONCE_LEN)
        .ok_or(VerifyError::Invalid("sealed blob data too short"))?;
    let (ciphertext, nonce) = sealed.split_at(at);
    let mut n = [0; NONCE_LEN];
    n.copy_from_slice(nonce);
    Ok((ciphertext, n))
}

/// Seals `data` whole (tests, small attachments): the chunks and the manifest.
pub fn seal_blob<R: CryptoRng + ?Sized>(
    rng: &mut R,
    identity: &DeviceIdentity,
    doc: DocId,
    key_id: KeyId,
    key: &SymmetricKey,
    meta: BlobMeta,
    data: &[u8],
) -> Result<(Vec<SealedBlobChunk>, BlobManifest), VerifyError> {
    let mut writer = BlobWriter::new(doc, key_id, key, meta);
    let mut chunks = writer.push(data)?;
    let (rest, manifest) = writer.finish(rng, identity)?;
    chunks.extend(rest);
    Ok((chunks, manifest))
}

#[cfg(test)]
mod tests {
    use rand_chacha::ChaCha20Rng;
    use rand_chacha::rand_core::SeedableRng;

    use super::*;

    const DOC: DocId = DocId([1; 32]);
    const KEY_ID: KeyId = crate::ids::OpHash([2; 32]);

    fn sealed(doc: DocId, data: &[u8]) -> (DeviceIdentity, Vec<SealedBlobChunk>, BlobManifest) {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let identity = DeviceIdentity::generate(&mut rng);
        let key = SymmetricKey::from_bytes([3; 32]);
        let (chunks, manifest) = seal_blob(&mut rng, &identity, doc, KEY_ID, &key, BlobMeta::default(), data).unwrap();
        (identity, chunks, manifest)
    }

    /// Signed by its author, a manifest claiming 2^60 bytes (or chunks over
    /// the limits) is still refused.
    #[test]
    fn a_signed_manifest_claiming_more_than_its_chunks_is_refused() {
        let (identity, _, manifest) = sealed(DOC, &[5; 70_000]);
        let resigned = |edit: &dyn Fn(&mut ManifestBody)| {
            let mut body = manifest.body.clone();
            edit(&mut body);
            BlobManifest::decode(BlobManifest::sign(&identity, body).encoded())
        };
        assert!(resigned(&|_| {}).is_ok());
        let refused = [
            (
                resigned(&|b| b.size = 1 << 60),
                "blob size is not the sum of its chunks",
            ),
            (
                resigned(&|b| b.chunks[0].1 = u32::MAX),
                "blob chunk length out of range",
            ),
            (resigned(&|b| b.chunks[0].1 = 0), "blob chunk length out of range"),
            (
                resigned(&|b| b.chunks.insert(0, (BlobChunkId([0; 32]), 10))),
                "blob chunk length out of range",
            ),
        ];
        for (result, why) in refused {
            assert_eq!(result.unwrap_err(), VerifyError::Invalid(why));
        }
        let many = resigned(&|b| b.chunks = vec![(BlobChunkId([0; 32]), MIN_CHUNK as u32); MAX_CHUNKS + 1]);
        assert!(many.is_err());
    }

    /// A chunk sealed for another document, listed in a manifest of this
    /// one, does not open: the document is bound to every chunk.
    #[test]
    fn a_chunk_of_another_document_does_not_open() {
        let data = [6; 30_000];
        let (identity, theirs, their_manifest) = sealed(DocId([7; 32]), &data);
        let mut body = their_manifest.body.clone();
        body.doc = DOC;
        let forged = BlobManifest::sign(&identity, body);
        let key = SymmetricKey::from_bytes([3; 32]);
        assert_eq!(
            forged.open_chunk(&key, 0, &theirs[0].sealed).unwrap_err(),
            VerifyError::Decrypt
        );
        assert_eq!(their_manifest.open_chunk(&key, 0, &theirs[0].sealed).unwrap(), data);
    }
}
