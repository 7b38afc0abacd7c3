//! Blob manifest decoder and chunk opening: any input is a typed error or
//! a verified manifest whose limits hold.
#![no_main]

use libfuzzer_sys::fuzz_target;
use synkro_core::blob::{BlobManifest, MAX_BLOB_LEN, MAX_CHUNKS};
use synkro_core::crypto::SymmetricKey;

fuzz_target!(|data: &[u8]| {
    let key = SymmetricKey::from_bytes([7; 32]);
    if let Ok(manifest) = BlobManifest::decode(data) {
        assert_eq!(manifest.encoded(), data);
        assert!(manifest.chunks().len() <= MAX_CHUNKS);
        assert!(manifest.size() <= MAX_BLOB_LEN);
        let _ = manifest.meta(&key);
        let _ = manifest.open_chunk(&key, 0, data);
    }
    // Bytes given as a chunk of a manifest that is not there, or any index.
    let _ = synkro_core::blob::BlobChunkId::of(data);
});
