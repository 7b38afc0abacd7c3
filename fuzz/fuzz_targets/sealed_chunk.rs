//! Sealed chunk and ephemeral message decoders: decode, verify the
//! signature, open with a key. Any input: a typed error or a verified value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use synkro_core::crypto::SymmetricKey;
use synkro_core::{SealedChunk, SealedEphemeral};

fuzz_target!(|data: &[u8]| {
    let key = SymmetricKey::from_bytes([7; 32]);
    if let Ok(chunk) = SealedChunk::decode(data) {
        let _ = chunk.open(&key);
        let _ = chunk.covers();
        let _ = chunk.chunk_ref();
        // A chunk that decoded re-encodes to the same bytes.
        assert_eq!(chunk.encoded(), data);
    }
    if let Ok(message) = SealedEphemeral::decode(data) {
        let _ = message.open(&key);
    }
});
