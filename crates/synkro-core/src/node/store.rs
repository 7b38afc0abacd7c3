//! The records one node call writes to a document.

use std::collections::BTreeSet;

use crate::chunk::{ChunkRef, SealedChunk};
use crate::replica::record;

/// Records as (key, value) pairs.
pub(super) type Records = Vec<(Vec<u8>, Vec<u8>)>;

/// The records one node call writes to a document: chunks and ops to put,
/// chunks compaction dropped. A chunk put and dropped in the same batch (a
/// batch folded into a snapshot at once) is neither written nor deleted.
#[derive(Default)]
pub(super) struct StoreBatch {
    puts: Records,
    deletes: Vec<Vec<u8>>,
}

impl StoreBatch {
    pub(super) fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.puts.push((key, value));
    }

    pub(super) fn put_chunks(&mut self, chunks: &[SealedChunk]) {
        for c in chunks {
            self.put(record::chunk(&c.chunk_ref()), c.encoded().to_vec());
        }
    }

    pub(super) fn delete_chunks(&mut self, gone: &[ChunkRef]) {
        self.deletes.extend(gone.iter().map(record::chunk));
    }

    pub(super) fn is_empty(&self) -> bool {
        self.puts.is_empty() && self.deletes.is_empty()
    }

    pub(super) fn finish(mut self) -> (Records, Vec<Vec<u8>>) {
        let deletes: BTreeSet<&Vec<u8>> = self.deletes.iter().collect();
        self.puts.retain(|(k, _)| !deletes.contains(k));
        (self.puts, self.deletes)
    }
}
