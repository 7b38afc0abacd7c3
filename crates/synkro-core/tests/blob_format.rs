//! Blob chunks and manifests (`synkro_core::blob`): what comes back out is
//! what went in, edits re-use the chunks around them, equal files in two
//! documents share nothing, and every kind of bad input is refused with a
//! typed error.

use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use synkro_core::blob::{
    BlobManifest, BlobMeta, BlobWriter, MAX_CHUNK, MAX_SEALED_CHUNK, MIN_CHUNK, SealedBlobChunk, seal_blob,
};
use synkro_core::crypto::SymmetricKey;
use synkro_core::{DeviceIdentity, DocId, KeyId, OpHash, VerifyError};

const DOC: DocId = DocId([1; 32]);
const KEY_ID: KeyId = OpHash([2; 32]);

fn key() -> SymmetricKey {
    SymmetricKey::from_bytes([3; 32])
}

fn meta() -> BlobMeta {
    BlobMeta {
        mime: "image/png".into(),
        name: "cat.png".into(),
    }
}

/// Bytes no chunker finds structure in.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    use rand_chacha::rand_core::Rng;
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let mut out = vec![0; len];
    rng.fill_bytes(&mut out);
    out
}

fn seal(doc: DocId, key: &SymmetricKey, data: &[u8]) -> (Vec<SealedBlobChunk>, BlobManifest) {
    let mut rng = ChaCha20Rng::seed_from_u64(9);
    let identity = DeviceIdentity::generate(&mut rng);
    seal_blob(&mut rng, &identity, doc, KEY_ID, key, meta(), data).expect("seal")
}

fn open_all(manifest: &BlobManifest, chunks: &[SealedBlobChunk]) -> Vec<u8> {
    let by_id: std::collections::HashMap<_, _> = chunks.iter().map(|c| (c.id, &c.sealed)).collect();
    let mut out = Vec::new();
    for (i, (id, _)) in manifest.chunks().iter().enumerate() {
        out.extend(manifest.open_chunk(&key(), i, by_id[id]).expect("open chunk"));
    }
    out
}

#[test]
fn a_blob_comes_back_whole_with_its_name() {
    for len in [
        0,
        1,
        MIN_CHUNK - 1,
        MIN_CHUNK + 1,
        MAX_CHUNK,
        3 * MAX_CHUNK + 17,
        2_000_000,
    ] {
        let data = noise(len, len as u64);
        let (chunks, manifest) = seal(DOC, &key(), &data);
        let manifest = BlobManifest::decode(manifest.encoded()).expect("decode");
        assert_eq!(manifest.size(), len as u64);
        assert_eq!(manifest.doc(), DOC);
        assert!(chunks.iter().all(|c| c.sealed.len() <= MAX_SEALED_CHUNK));
        assert_eq!(open_all(&manifest, &chunks), data, "{len} bytes");
        let r = manifest.blob_ref(&key()).expect("ref");
        assert_eq!(
            (r.id, r.size, r.mime.as_str(), r.name.as_str()),
            (manifest.id(), len as u64, "image/png", "cat.png")
        );
    }
}

/// Fed in pieces of any size, the writer cuts the same chunks.
#[test]
fn pieces_cut_like_the_whole() {
    let data = noise(1_500_000, 4);
    let (whole, _) = seal(DOC, &key(), &data);
    let mut rng = ChaCha20Rng::seed_from_u64(9);
    let identity = DeviceIdentity::generate(&mut rng);
    let mut writer = BlobWriter::new(DOC, KEY_ID, &key(), meta());
    let mut pieces = Vec::new();
    for piece in data.chunks(7_777) {
        pieces.extend(writer.push(piece).expect("push"));
    }
    let (rest, _) = writer.finish(&mut rng, &identity).expect("finish");
    pieces.extend(rest);
    assert_eq!(pieces, whole);
}

/// One byte changed in the middle of 8 MiB: only the chunks around it change.
#[test]
fn an_edit_changes_the_chunks_around_it_only() {
    let mut data = noise(8 << 20, 5);
    let (before, _) = seal(DOC, &key(), &data);
    data[4 << 20] ^= 1;
    let (after, _) = seal(DOC, &key(), &data);
    let known: std::collections::HashSet<_> = before.iter().map(|c| c.id).collect();
    let new: usize = after
        .iter()
        .filter(|c| !known.contains(&c.id))
        .map(|c| c.sealed.len())
        .sum();
    assert!(new <= 2 * MAX_SEALED_CHUNK, "{new} new bytes of {} chunks", after.len());
    assert!(after.len() > 64, "chunks average about 64 KiB: {}", after.len());
}

/// The same file in two documents (two keys) shares no chunk a relay could
/// compare; within one document, equal chunks are stored once.
#[test]
fn equal_files_in_two_documents_look_unrelated() {
    let data = noise(1 << 20, 6);
    let (mine, _) = seal(DOC, &key(), &data);
    let (theirs, _) = seal(DocId([7; 32]), &SymmetricKey::from_bytes([8; 32]), &data);
    assert!(
        mine.iter()
            .all(|a| theirs.iter().all(|b| a.id != b.id && a.sealed != b.sealed))
    );
    let twice = [data.clone(), data].concat();
    let (chunks, manifest) = seal(DOC, &key(), &twice);
    let distinct: std::collections::HashSet<_> = chunks.iter().map(|c| c.id).collect();
    assert!(
        distinct.len() < manifest.chunks().len(),
        "a repeated megabyte re-uses its chunks"
    );
}

#[test]
fn a_chunk_that_does_not_match_its_id_is_refused() {
    let data = noise(300_000, 7);
    let (mut chunks, manifest) = seal(DOC, &key(), &data);
    chunks[0].sealed[10] ^= 1;
    let err = manifest.open_chunk(&key(), 0, &chunks[0].sealed).unwrap_err();
    assert_eq!(err, VerifyError::Invalid("blob chunk does not match its id"));
    // Another chunk of the blob in its place.
    let err = manifest.open_chunk(&key(), 0, &chunks[1].sealed).unwrap_err();
    assert_eq!(err, VerifyError::Invalid("blob chunk does not match its id"));
    assert!(manifest.open_chunk(&key(), 99, &chunks[1].sealed).is_err());
}

#[test]
fn forged_and_truncated_manifests_are_refused() {
    let data = noise(200_000, 9);
    let (_, manifest) = seal(DOC, &key(), &data);
    let bytes = manifest.encoded().to_vec();
    // Any flipped bit: a decoding error or a bad signature, never a manifest.
    for i in (0..bytes.len()).step_by(7) {
        let mut forged = bytes.clone();
        forged[i] ^= 0x20;
        assert!(BlobManifest::decode(&forged).is_err(), "bit flipped at {i}");
    }
    // Every truncation.
    for len in 0..bytes.len() {
        assert!(BlobManifest::decode(&bytes[..len]).is_err(), "truncated to {len}");
    }
    // The wrong key opens neither the name nor the chunks.
    assert_eq!(
        manifest.meta(&SymmetricKey::from_bytes([4; 32])).unwrap_err(),
        VerifyError::Decrypt
    );
}

#[test]
fn a_name_over_the_limit_is_refused_before_anything_is_signed() {
    let mut rng = ChaCha20Rng::seed_from_u64(9);
    let identity = DeviceIdentity::generate(&mut rng);
    let meta = BlobMeta {
        mime: "text/plain".into(),
        name: "n".repeat(5000),
    };
    let err = seal_blob(&mut rng, &identity, DOC, KEY_ID, &key(), meta, b"hello").unwrap_err();
    assert_eq!(err, VerifyError::Invalid("blob name and type over 4 KiB"));
}
