//! Sealing: this device's edits into chunks (batches of at most
//! `MAX_PART_LEN`, a larger change in parts), and history into snapshots
//! when the compaction policy says so.

use rand_core::CryptoRng;

use crate::access::Role;
use crate::chunk::{ChunkKind, ChunkRef, Part, SealedChunk};
use crate::crypto::{SymmetricKey, random_array};
use crate::error::{CoreError, VerifyError};
use crate::identity::DeviceIdentity;
use crate::ids::{DocId, KeyId, MemberId};
use crate::limits::{MAX_ASSEMBLED_LEN, MAX_CHUNK_LEN, MAX_PART_LEN, MAX_PARTS};

use super::DocReplica;

/// When to fold the tail of change chunks into a snapshot.
///
/// A writer snapshots once the tail holds at least `min_tail_chunks` chunks
/// and `min_tail_bytes` bytes and is at least half the size of the last
/// snapshot, or whenever it reaches `max_tail_chunks` chunks. Stored bytes
/// thus stay within about 1.5× the document's own Automerge save plus
/// `min_tail_bytes`, however the edits were batched, and re-sending
/// snapshots stays amortised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CompactionPolicy {
    /// Never snapshot a tail shorter than this many chunks.
    pub min_tail_chunks: usize,
    /// Never snapshot a tail smaller than this many bytes (unless it
    /// reaches `max_tail_chunks`).
    pub min_tail_bytes: usize,
    /// Snapshot whenever the tail reaches this many chunks.
    pub max_tail_chunks: usize,
}

impl Default for CompactionPolicy {
    fn default() -> Self {
        Self {
            min_tail_chunks: 1,
            min_tail_bytes: 16 << 10,
            max_tail_chunks: 256,
        }
    }
}

/// A new snapshot (its parts) and the chunks it made redundant.
pub(crate) type Compacted = (Vec<SealedChunk>, Vec<ChunkRef>);

impl DocReplica {
    /// Seal this device's unflushed changes: batches of whole changes of at
    /// most [`MAX_PART_LEN`], a larger change in parts.
    pub fn flush<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        identity: &DeviceIdentity,
    ) -> Result<Vec<SealedChunk>, CoreError> {
        if !self.dirty {
            return Ok(Vec::new());
        }
        let me = identity.member_id();
        let (key_id, key) = self.current_key()?;
        let changes = self.take_unflushed()?;
        if changes.is_empty() {
            return Ok(Vec::new());
        }
        let mut seq = self.next_seq(&me)?;
        let mut sealed = Vec::new();
        for unit in batches(changes) {
            let chunks = seal_unit(
                rng,
                identity,
                (self.id, &mut seq, key_id, &key),
                ChunkKind::Changes,
                &unit,
            )?;
            sealed.extend(chunks);
        }
        for c in &sealed {
            self.insert(c.clone());
        }
        self.advance(me);
        Ok(sealed)
    }

    /// This device's edits since the last call (its own, and those guest
    /// tabs handed over), encoded, oldest first; they count as flushed
    /// from now on. Compressed where Automerge finds it worth it (changes
    /// over 256 bytes).
    pub fn take_unflushed(&mut self) -> Result<Vec<Vec<u8>>, CoreError> {
        if !self.dirty {
            return Ok(Vec::new());
        }
        let Some(doc) = self.doc.as_mut() else {
            return Err(CoreError::NoReadAccess(self.id));
        };
        let actor = doc.get_actor().clone();
        let from_guests = &mut self.from_guests;
        let mut changes: Vec<automerge::Change> = doc
            .get_changes(&self.flushed_heads)
            .into_iter()
            .filter(|c| *c.actor_id() == actor || from_guests.remove(&c.hash()))
            .collect();
        // Guests' changes this replica held before they were handed over
        // (a guest that became the host seals its own that the old host
        // never stored): before the flushed heads, so fetched by hash, and
        // put in causal order (a change's ops start after its deps').
        if !from_guests.is_empty() {
            let earlier: Vec<automerge::Change> =
                from_guests.drain().filter_map(|h| doc.get_change_by_hash(&h)).collect();
            changes.extend(earlier);
            changes.sort_by_key(|c| c.start_op());
        }
        let changes: Vec<Vec<u8>> = changes.into_iter().map(|mut c| c.bytes().into_owned()).collect();
        if let Some(len) = changes.iter().map(Vec::len).find(|l| *l > MAX_ASSEMBLED_LEN) {
            return Err(CoreError::ChangeTooLarge {
                doc: self.id,
                len,
                max: MAX_ASSEMBLED_LEN,
            });
        }
        self.flushed_heads = doc.get_heads();
        self.dirty = false;
        Ok(changes)
    }

    /// The seq of this device's next change chunk.
    fn next_seq(&self, me: &MemberId) -> Result<u64, CoreError> {
        let held = self
            .changes
            .range((*me, 0)..=(*me, u64::MAX))
            .next_back()
            .map_or(0, |((_, s), _)| *s);
        self.vv
            .get(me)
            .max(held)
            .checked_add(1)
            .ok_or(CoreError::Verify(VerifyError::Invalid("sequence numbers exhausted")))
    }

    pub(crate) fn current_key(&self) -> Result<(KeyId, SymmetricKey), CoreError> {
        let id = self.log.state().current_key().ok_or(CoreError::NotYetSynced(self.id))?;
        let key = self.keys.get(&id).cloned().ok_or(CoreError::NoReadAccess(self.id))?;
        Ok((id, key))
    }

    /// Encoded bytes and count of change chunks (the tail not yet in a snapshot).
    pub fn tail(&self) -> (usize, usize) {
        (
            self.changes.len(),
            self.changes.values().map(|c| c.encoded().len()).sum(),
        )
    }

    /// Does this replica hold a chunk too large to send to peers (stored
    /// by a release that sealed without a size limit)?
    pub fn holds_oversized(&self) -> bool {
        self.all_chunks().any(|c| c.encoded().len() > MAX_CHUNK_LEN)
    }

    /// Fold everything into a new snapshot when the policy says so and this
    /// device may write. Returns the snapshot (its parts, if it is larger
    /// than [`MAX_PART_LEN`]) and what it made redundant.
    pub fn maybe_snapshot<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        identity: &DeviceIdentity,
        policy: &CompactionPolicy,
        force: bool,
    ) -> Result<Option<Compacted>, CoreError> {
        let (count, bytes) = self.tail();
        let last: usize = self
            .snapshots
            .values()
            .filter(|s| self.is_complete_snapshot(s))
            .map(|s| s.encoded().len())
            .max()
            .unwrap_or(0);
        let due = force
            || count >= policy.max_tail_chunks
            || (count >= policy.min_tail_chunks && bytes >= policy.min_tail_bytes && bytes * 2 >= last);
        if !due || !self.role_of(&identity.member_id()).is_some_and(Role::can_write) || !self.unapplied.is_empty() {
            return Ok(None);
        }
        let (key_id, key) = self.current_key()?;
        let Some(doc) = self.doc.as_mut() else { return Ok(None) };
        // A snapshot must contain everything it claims to cover: changes
        // Automerge still queues for missing dependencies are not in a save.
        if !doc.get_missing_deps(&[]).is_empty() {
            return Ok(None);
        }
        let plain = doc.save();
        if plain.len() > MAX_ASSEMBLED_LEN {
            tracing::warn!(doc = %self.id, len = plain.len(), "document too large to snapshot; keeping its change chunks");
            return Ok(None);
        }
        let covers = self.vv.clone();
        let mut no_seq = 0;
        let parts = seal_unit(
            rng,
            identity,
            (self.id, &mut no_seq, key_id, &key),
            ChunkKind::Snapshot { covers: covers.clone() },
            &plain,
        )?;
        for p in &parts {
            self.insert(p.clone());
        }
        let gone = self.compact(&covers);
        Ok(Some((parts, gone)))
    }
}

/// Group encoded changes into the plaintexts of chunks: whole changes, in
/// order, up to [`MAX_PART_LEN`] bytes per chunk; a larger change alone
/// (sealed in parts by [`seal_unit`]).
fn batches(changes: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    let mut current: Vec<u8> = Vec::new();
    for c in changes {
        if !current.is_empty() && current.len() + c.len() > MAX_PART_LEN {
            out.push(core::mem::take(&mut current));
        }
        if c.len() > MAX_PART_LEN {
            out.push(c);
        } else {
            current.extend_from_slice(&c);
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// Seal `plain` as one chunk, or in parts of [`MAX_PART_LEN`] if larger.
/// Change chunks take seqs from `*seq` on (advancing it); snapshots have
/// seq 0.
fn seal_unit<R: CryptoRng + ?Sized>(
    rng: &mut R,
    identity: &DeviceIdentity,
    (doc, seq, key_id, key): (DocId, &mut u64, KeyId, &SymmetricKey),
    kind: ChunkKind,
    plain: &[u8],
) -> Result<Vec<SealedChunk>, CoreError> {
    let is_changes = matches!(kind, ChunkKind::Changes);
    let mut next_seq = || -> Result<u64, CoreError> {
        if !is_changes {
            return Ok(0);
        }
        let s = *seq;
        *seq = s
            .checked_add(1)
            .ok_or(CoreError::Verify(VerifyError::Invalid("sequence numbers exhausted")))?;
        Ok(s)
    };
    if plain.len() <= MAX_PART_LEN {
        return Ok(vec![SealedChunk::seal(
            rng,
            identity,
            doc,
            next_seq()?,
            key_id,
            key,
            kind,
            plain,
        )]);
    }
    let pieces: Vec<&[u8]> = plain.chunks(MAX_PART_LEN).collect();
    let count = u32::try_from(pieces.len())
        .ok()
        .filter(|c| *c <= MAX_PARTS)
        .ok_or(CoreError::ChangeTooLarge {
            doc,
            len: plain.len(),
            max: MAX_ASSEMBLED_LEN,
        })?;
    let group: [u8; 16] = random_array(rng);
    let mut out = Vec::with_capacity(pieces.len());
    for (index, piece) in (0u32..).zip(pieces) {
        let part = Part { group, index, count };
        out.push(SealedChunk::seal_part(
            rng,
            identity,
            doc,
            next_seq()?,
            key_id,
            key,
            kind.clone(),
            part,
            piece,
        ));
    }
    Ok(out)
}
