//! Writing: the records one node call writes to a document
//! ([`StoreBatch`]), and the writes in flight with the messages that must
//! wait for them ([`Writes`]).
//!
//! A message that acknowledges data (a `Have`) or carries what this device
//! just sealed (its own chunks) must not leave before the write that stores
//! it is durable: a peer told "stored" must find it stored after a crash,
//! and a chunk sent but lost here would have its seq reused for different
//! content. So every message about a document with a write in flight waits
//! for that write; other documents' messages do not.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::effect::{SessionId, WriteId};
use crate::chunk::{ChunkRef, SealedChunk};
use crate::ids::{DocId, MemberId};
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

/// A message waiting for a write: (the last write it waits for, session,
/// peer, encoded message).
type Held = (WriteId, SessionId, MemberId, Vec<u8>);

/// Writes in flight, per document, and the messages waiting for them.
#[derive(Default)]
pub(super) struct Writes {
    next: u64,
    docs: BTreeMap<DocId, DocWrites>,
    owner: BTreeMap<WriteId, DocId>,
    /// Writes in flight that the runtime reported failed (they stay in
    /// flight: a full disk's writes are retried, a failed store's never end).
    failed: BTreeSet<WriteId>,
}

#[derive(Default)]
struct DocWrites {
    pending: BTreeSet<WriteId>,
    held: VecDeque<Held>,
}

impl Writes {
    /// A new write of `doc`.
    pub(super) fn begin(&mut self, doc: DocId) -> WriteId {
        self.next += 1;
        let id = WriteId(self.next);
        self.docs.entry(doc).or_default().pending.insert(id);
        self.owner.insert(id, doc);
        id
    }

    /// The newest write begun so far.
    pub(super) fn last(&self) -> Option<WriteId> {
        (self.next > 0).then_some(WriteId(self.next))
    }

    /// Is every write up to and including `write` durable?
    pub(super) fn durable_through(&self, write: WriteId) -> bool {
        self.owner.first_key_value().is_none_or(|(oldest, _)| *oldest > write)
    }

    /// Is every write up to and including `write` durable or failed? What
    /// failed stays in flight, but waiting for it would wait for the disk.
    pub(super) fn settled_through(&self, write: WriteId) -> bool {
        self.owner.range(..=write).all(|(w, _)| self.failed.contains(w))
    }

    /// `write` failed (again); false if it is not in flight.
    pub(super) fn fail(&mut self, write: WriteId) -> bool {
        let in_flight = self.owner.contains_key(&write);
        if in_flight {
            self.failed.insert(write);
        }
        in_flight
    }

    /// Has a write failed that is still in flight?
    pub(super) fn any_failed(&self) -> bool {
        !self.failed.is_empty()
    }

    /// Has a write of `doc` in flight failed?
    pub(super) fn doc_failed(&self, doc: &DocId) -> bool {
        self.docs
            .get(doc)
            .is_some_and(|d| d.pending.iter().any(|w| self.failed.contains(w)))
    }

    /// Is no write in flight?
    pub(super) fn idle(&self) -> bool {
        self.owner.is_empty()
    }

    /// The newest write of `doc` in flight, if any.
    pub(super) fn pending(&self, doc: &DocId) -> Option<WriteId> {
        self.docs.get(doc).and_then(|d| d.pending.last().copied())
    }

    /// Hold a message about `doc` until `after` (and every earlier write of
    /// it) is durable.
    pub(super) fn hold(&mut self, doc: DocId, after: WriteId, session: SessionId, peer: MemberId, message: Vec<u8>) {
        self.docs
            .entry(doc)
            .or_default()
            .held
            .push_back((after, session, peer, message));
    }

    /// `write` is durable: the messages that no longer wait, in order.
    pub(super) fn done(&mut self, write: WriteId) -> Vec<Held> {
        let Some(doc) = self.owner.remove(&write) else {
            return Vec::new();
        };
        self.failed.remove(&write);
        let Some(d) = self.docs.get_mut(&doc) else {
            return Vec::new();
        };
        d.pending.remove(&write);
        let mut released = Vec::new();
        // In order: a message waits for everything held before it too.
        while let Some((after, ..)) = d.held.front()
            && d.pending.first().is_none_or(|oldest| after < oldest)
        {
            released.extend(d.held.pop_front());
        }
        if d.pending.is_empty() && d.held.is_empty() {
            self.docs.remove(&doc);
        }
        released
    }
}
