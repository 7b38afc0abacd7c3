//! One document as held by one device: its access log, the sealed chunks,
//! the keys this device can open, and (for readers) the Automerge document.

use std::collections::{BTreeMap, BTreeSet};

use automerge::{ActorId, AutoCommit, ChangeHash};
use rand_core::CryptoRng;
use serde::{Deserialize, Serialize};

use crate::access::{AccessLog, KeyMaterial, Role, unwrap_key};
use crate::chunk::{ChunkKind, ChunkRef, SealedChunk};
use crate::crypto::{NONCE_LEN, SymmetricKey, hash, random_array};
use crate::encoding::{decode, encode};
use crate::error::{CoreError, VerifyError};
use crate::fence::fenced;
use crate::identity::DeviceIdentity;
use crate::ids::{DocId, KeyId, MemberId, OpHash};
use crate::invite::invite_identity;
use crate::vv::VersionVector;

/// Storage record keys inside a document's namespace.
pub(crate) mod record {
    use super::*;

    pub const OP: u8 = b'L';
    pub const CHANGE: u8 = b'C';
    pub const SNAPSHOT: u8 = b'S';
    pub const LOCAL: u8 = b'K';

    pub fn op(h: &OpHash) -> Vec<u8> {
        let mut k = vec![OP];
        k.extend_from_slice(&h.0);
        k
    }
    pub fn chunk(r: &ChunkRef) -> Vec<u8> {
        match r {
            ChunkRef::Change(a, s) => {
                let mut k = vec![CHANGE];
                k.extend_from_slice(&a.0);
                k.extend_from_slice(&s.to_be_bytes());
                k
            }
            ChunkRef::Snapshot(d) => {
                let mut k = vec![SNAPSHOT];
                k.extend_from_slice(d);
                k
            }
        }
    }
    pub fn local() -> Vec<u8> {
        vec![LOCAL]
    }
}

/// Device-private facts about a document, stored sealed under a key only
/// this device can derive.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct LocalState {
    /// Secrets of invitations this device holds (joined or exported).
    pub invites: Vec<[u8; 32]>,
    /// Keys learnt from an imported backup.
    pub imported: Vec<(KeyId, [u8; 32])>,
    /// A local name.
    pub name: Option<String>,
}

const MAX_LOCAL_LEN: usize = 1 << 20;

fn local_key(identity: &DeviceIdentity) -> SymmetricKey {
    SymmetricKey::from_bytes(hash("synkro 2026 local storage key", &[&identity.signing_seed()[..]]))
}

impl LocalState {
    pub fn seal<R: CryptoRng + ?Sized>(&self, rng: &mut R, identity: &DeviceIdentity, doc: &DocId) -> Vec<u8> {
        let nonce: [u8; NONCE_LEN] = random_array(rng);
        let mut out = nonce.to_vec();
        out.extend(local_key(identity).seal(&nonce, &doc.0, &encode(self)));
        out
    }

    pub fn open(bytes: &[u8], identity: &DeviceIdentity, doc: &DocId) -> Result<Self, VerifyError> {
        let (nonce, ct) = bytes.split_at_checked(NONCE_LEN).ok_or(VerifyError::Decrypt)?;
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| VerifyError::Decrypt)?;
        let plain = local_key(identity).open(&nonce, &doc.0, ct)?;
        Ok(decode("local state", &plain, MAX_LOCAL_LEN)?)
    }
}

/// When to fold the tail of change chunks into a snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CompactionPolicy {
    /// Never snapshot a tail shorter than this many chunks.
    pub min_tail_chunks: usize,
    /// Snapshot once the tail holds this many bytes and at least half the
    /// size of the last snapshot (so re-sending snapshots stays amortised).
    pub min_tail_bytes: usize,
    /// Snapshot whenever the tail reaches this many chunks.
    pub max_tail_chunks: usize,
}

impl Default for CompactionPolicy {
    fn default() -> Self {
        Self {
            min_tail_chunks: 16,
            min_tail_bytes: 16 << 10,
            max_tail_chunks: 256,
        }
    }
}

/// What happened to a received chunk.
#[derive(Debug)]
pub(crate) enum Accepted {
    /// Stored (and applied, for readers); these records were compacted away.
    New { deletes: Vec<ChunkRef> },
    /// Already held or already covered by a snapshot.
    Duplicate,
}

pub(crate) struct DocReplica {
    pub id: DocId,
    pub log: AccessLog,
    pub changes: BTreeMap<(MemberId, u64), SealedChunk>,
    pub snapshots: BTreeMap<[u8; 32], SealedChunk>,
    /// Effective version vector: snapshot covers plus contiguous change chunks.
    pub vv: VersionVector,
    pub keys: BTreeMap<KeyId, SymmetricKey>,
    pub local: LocalState,
    pub doc: Option<AutoCommit>,
    /// Held chunks whose plaintext is not in `doc` yet (no key yet).
    pub unapplied: BTreeSet<ChunkRef>,
    flushed_heads: Vec<ChangeHash>,
    pub dirty: bool,
}

impl DocReplica {
    pub fn new(log: AccessLog) -> Self {
        Self {
            id: log.doc(),
            log,
            changes: BTreeMap::new(),
            snapshots: BTreeMap::new(),
            vv: VersionVector::default(),
            keys: BTreeMap::new(),
            local: LocalState::default(),
            doc: None,
            unapplied: BTreeSet::new(),
            flushed_heads: Vec::new(),
            dirty: false,
        }
    }

    pub fn role_of(&self, m: &MemberId) -> Option<Role> {
        self.log.state().role(m)
    }

    /// Open every key this device can reach: sealed to it, to an invitation
    /// it holds, imported, or wrapped under a key already open. Then, if it
    /// can now read, make sure the Automerge document exists and apply any
    /// chunks that were waiting for a key.
    pub fn refresh_keys<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        identity: &DeviceIdentity,
    ) -> Result<(), CoreError> {
        let me = identity.member_id();
        let invites: Vec<DeviceIdentity> = self.local.invites.iter().map(invite_identity).collect();
        for (k, bytes) in &self.local.imported {
            self.keys.entry(*k).or_insert_with(|| SymmetricKey::from_bytes(*bytes));
        }
        let material = self.log.key_material();
        loop {
            let before = self.keys.len();
            for m in &material {
                match m {
                    KeyMaterial::Sealed {
                        key,
                        to,
                        sealed,
                        context,
                    } if !self.keys.contains_key(key) => {
                        let holder = if *to == me {
                            Some(identity)
                        } else {
                            invites.iter().find(|i| i.member_id() == *to)
                        };
                        if let Some(h) = holder
                            && let Some(k) = h.exchange_secret().open(sealed, context)
                        {
                            self.keys.insert(*key, k);
                        }
                    }
                    KeyMaterial::Wrapped { old, under, wrapped } if !self.keys.contains_key(old) => {
                        if let Some(k) = self.keys.get(under).and_then(|u| unwrap_key(u, old, wrapped)) {
                            self.keys.insert(*old, k);
                        }
                    }
                    _ => {}
                }
            }
            if self.keys.len() == before {
                break;
            }
        }
        if !self.keys.is_empty() && self.doc.is_none() {
            self.doc = Some(AutoCommit::new().with_actor(ActorId::from(random_array::<16, R>(rng))));
            self.unapplied = self
                .changes
                .values()
                .chain(self.snapshots.values())
                .map(|c| c.chunk_ref())
                .collect();
        }
        let waiting: Vec<ChunkRef> = self.unapplied.iter().copied().collect();
        for r in waiting {
            if let Some(c) = self.get(&r).cloned()
                && self.keys.contains_key(&c.header().key)
            {
                self.unapplied.remove(&r);
                self.apply(&c)?;
            }
        }
        // Unflushed local edits must stay after `flushed_heads`, or the next
        // flush would not find them.
        if let Some(d) = self.doc.as_mut().filter(|_| !self.dirty) {
            self.flushed_heads = d.get_heads();
        }
        Ok(())
    }

    fn get(&self, r: &ChunkRef) -> Option<&SealedChunk> {
        match r {
            ChunkRef::Change(a, s) => self.changes.get(&(*a, *s)),
            ChunkRef::Snapshot(d) => self.snapshots.get(d),
        }
    }

    /// Decrypt a verified chunk and hand it to Automerge.
    fn apply(&mut self, chunk: &SealedChunk) -> Result<(), CoreError> {
        let Some(doc) = self.doc.as_mut() else { return Ok(()) };
        let key = self.keys.get(&chunk.header().key).ok_or(VerifyError::UnknownKey)?;
        let plain = chunk.open(key)?;
        match fenced("loading a chunk", || doc.load_incremental(&plain)) {
            Ok(loaded) => {
                loaded?;
                Ok(())
            }
            Err(panicked) => {
                self.reload(Some(chunk.chunk_ref()));
                Err(panicked)
            }
        }
    }

    /// Rebuild the Automerge document from the chunks held, after a
    /// contained panic may have left it half-updated. A chunk that panics
    /// again (and `skip`) stays unapplied instead of being retried in a loop.
    /// Unflushed local edits are lost; everything sealed is kept.
    pub fn reload(&mut self, skip: Option<ChunkRef>) {
        self.reload_without(skip.into_iter().collect());
    }

    fn reload_without(&mut self, bad: BTreeSet<ChunkRef>) {
        // Each round drops at least one more chunk, so this terminates.
        let Some(old) = self.doc.as_ref() else { return };
        let mut doc = AutoCommit::new().with_actor(old.get_actor().clone());
        let mut unapplied = bad.clone();
        for chunk in self.snapshots.values().chain(self.changes.values()) {
            let r = chunk.chunk_ref();
            if bad.contains(&r) {
                continue;
            }
            let Some(Ok(plain)) = self.keys.get(&chunk.header().key).map(|k| chunk.open(k)) else {
                unapplied.insert(r);
                continue;
            };
            if !matches!(fenced("reloading a chunk", || doc.load_incremental(&plain)), Ok(Ok(_))) {
                unapplied.insert(r);
                return self.reload_without(unapplied);
            }
        }
        self.flushed_heads = doc.get_heads();
        self.doc = Some(doc);
        self.unapplied = unapplied;
        self.dirty = false;
    }

    /// Check a chunk's authority and store it; readers also decrypt and
    /// apply it. Signature was checked by [`SealedChunk::decode`].
    /// `trusted` skips the authority check, for records this device already
    /// checked when it first accepted them (its own storage, its backups):
    /// a later revoke must not make a replica drop what it legitimately held.
    pub fn accept(&mut self, chunk: SealedChunk, trusted: bool) -> Result<Accepted, VerifyError> {
        let h = chunk.header();
        if h.doc != self.id {
            return Err(VerifyError::WrongDocument {
                expected: self.id,
                found: h.doc,
            });
        }
        if !trusted && !self.log.state().may_author(&h.author, h.seq) {
            return Err(VerifyError::NotAllowed {
                member: h.author,
                needed: Role::Write,
            });
        }
        if !self.log.state().keys.contains(&h.key) {
            return Err(VerifyError::UnknownKey);
        }
        let r = chunk.chunk_ref();
        let duplicate = match (&r, chunk.covers()) {
            (ChunkRef::Change(a, s), _) => self.changes.contains_key(&(*a, *s)) || self.vv.covers(a, *s),
            (ChunkRef::Snapshot(d), Some(covers)) => {
                self.snapshots.contains_key(d)
                    || self
                        .snapshots
                        .values()
                        .any(|s| s.covers().is_some_and(|c| c.dominates(covers)))
            }
            (ChunkRef::Snapshot(_), None) => true,
        };
        if duplicate {
            return Ok(Accepted::Duplicate);
        }
        // Readers authenticate the ciphertext before storing anything.
        let readable = self.doc.is_some() && self.keys.contains_key(&h.key);
        if readable {
            let key = self.keys.get(&h.key).ok_or(VerifyError::UnknownKey)?;
            let plain = chunk.open(key)?;
            if let Some(doc) = self.doc.as_mut() {
                let bad = |_| VerifyError::Invalid("chunk is not Automerge data");
                let loaded = fenced("loading a received chunk", || {
                    if doc.get_heads().is_empty() && chunk.covers().is_some() {
                        // Loading a whole save is much faster than merging it in.
                        let actor = doc.get_actor().clone();
                        *doc = AutoCommit::load(&plain).map_err(bad)?.with_actor(actor);
                    } else {
                        doc.load_incremental(&plain).map_err(bad)?;
                    }
                    Ok::<(), VerifyError>(())
                });
                match loaded {
                    Ok(result) => result?,
                    Err(_) => {
                        // Not stored: the sender's chunk is refused, and the
                        // document is rebuilt from what was held before.
                        self.reload(None);
                        return Err(VerifyError::Invalid("chunk made Automerge panic"));
                    }
                }
            }
        } else {
            self.unapplied.insert(r);
        }
        let mut deletes = Vec::new();
        match r {
            ChunkRef::Change(a, s) => {
                self.changes.insert((a, s), chunk);
                self.advance(a);
            }
            ChunkRef::Snapshot(d) => {
                let covers = chunk.covers().cloned().unwrap_or_default();
                self.snapshots.insert(d, chunk);
                deletes = self.compact(&covers);
            }
        }
        Ok(Accepted::New { deletes })
    }

    /// Advance `author`'s entry over contiguous held chunks.
    fn advance(&mut self, author: MemberId) {
        let mut s = self.vv.get(&author);
        // Checked: a hostile snapshot may claim `covers` up to u64::MAX.
        while let Some(next) = s.checked_add(1).filter(|n| self.changes.contains_key(&(author, *n))) {
            s = next;
        }
        self.vv.set(author, s);
    }

    /// Drop what a snapshot covering `covers` makes redundant.
    fn compact(&mut self, covers: &VersionVector) -> Vec<ChunkRef> {
        self.vv.merge(covers);
        let authors: Vec<MemberId> = covers.iter().map(|(a, _)| *a).collect();
        for a in authors {
            self.advance(a);
        }
        let mut gone = Vec::new();
        self.changes.retain(|(a, s), _| {
            let keep = !covers.covers(a, *s);
            if !keep {
                gone.push(ChunkRef::Change(*a, *s));
            }
            keep
        });
        self.snapshots.retain(|d, snap| {
            let dominated = snap.covers().is_some_and(|c| covers.dominates(c) && c != covers);
            if dominated {
                gone.push(ChunkRef::Snapshot(*d));
            }
            !dominated
        });
        for g in &gone {
            self.unapplied.remove(g);
        }
        gone
    }

    /// Seal this device's unflushed changes into one chunk.
    pub fn flush<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        identity: &DeviceIdentity,
    ) -> Result<Option<SealedChunk>, CoreError> {
        if !self.dirty {
            return Ok(None);
        }
        let me = identity.member_id();
        let (key_id, key) = self.current_key()?;
        let Some(doc) = self.doc.as_mut() else {
            return Err(CoreError::NoReadAccess(self.id));
        };
        let actor = doc.get_actor().clone();
        let mut plain = Vec::new();
        for c in doc.get_changes(&self.flushed_heads) {
            if *c.actor_id() == actor {
                plain.extend_from_slice(c.raw_bytes());
            }
        }
        self.flushed_heads = doc.get_heads();
        self.dirty = false;
        if plain.is_empty() {
            return Ok(None);
        }
        let last = self.vv.get(&me).max(
            self.changes
                .keys()
                .filter(|(a, _)| *a == me)
                .map(|(_, s)| *s)
                .max()
                .unwrap_or(0),
        );
        let seq = last
            .checked_add(1)
            .ok_or(CoreError::Verify(VerifyError::Invalid("sequence numbers exhausted")))?;
        let chunk = SealedChunk::seal(rng, identity, self.id, seq, key_id, &key, ChunkKind::Changes, &plain);
        self.changes.insert((me, seq), chunk.clone());
        self.advance(me);
        Ok(Some(chunk))
    }

    fn current_key(&self) -> Result<(KeyId, SymmetricKey), CoreError> {
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

    /// Fold everything into a new snapshot when the policy says so and this
    /// device may write. Returns the snapshot and what it made redundant.
    pub fn maybe_snapshot<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        identity: &DeviceIdentity,
        policy: &CompactionPolicy,
        force: bool,
    ) -> Result<Option<(SealedChunk, Vec<ChunkRef>)>, CoreError> {
        let (count, bytes) = self.tail();
        let last = self.snapshots.values().map(|s| s.encoded().len()).max().unwrap_or(0);
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
        let covers = self.vv.clone();
        let plain = doc.save();
        let snap = SealedChunk::seal(
            rng,
            identity,
            self.id,
            0,
            key_id,
            &key,
            ChunkKind::Snapshot { covers: covers.clone() },
            &plain,
        );
        self.snapshots.insert(snap.digest(), snap.clone());
        let gone = self.compact(&covers);
        Ok(Some((snap, gone)))
    }

    /// Chunks a peer lacks, given its version vector and the snapshots it
    /// holds: every snapshot it does not list (so replicas that stay live
    /// still receive them and can compact), then the change chunks above
    /// what it has, skipping those the snapshots sent already cover, in
    /// (author, seq) order.
    pub fn missing_for(&self, theirs: &VersionVector, their_snapshots: &[[u8; 32]]) -> Vec<&SealedChunk> {
        let mut covered = theirs.clone();
        let mut out: Vec<&SealedChunk> = Vec::new();
        for (d, snap) in &self.snapshots {
            if !their_snapshots.contains(d) {
                if let Some(c) = snap.covers() {
                    covered.merge(c);
                }
                out.push(snap);
            }
        }
        // Only the contiguous part: a chunk beyond a gap is forwarded once
        // the gap fills, so what a peer is sent is always a prefix.
        out.extend(
            self.changes
                .iter()
                .filter(|((a, s), _)| *s > covered.get(a) && *s <= self.vv.get(a))
                .map(|(_, c)| c),
        );
        out
    }

    /// Digests of the snapshots held.
    pub fn snapshot_ids(&self) -> Vec<[u8; 32]> {
        self.snapshots.keys().copied().collect()
    }

    /// Short digest of log heads and version vector, compared in `Hello`.
    pub fn digest(&self) -> [u8; 16] {
        let mut heads = self.log.heads();
        heads.extend(self.log.pending());
        let heads = encode(&heads);
        let vv = encode(&self.vv);
        let full = hash("synkro 2026 doc digest", &[&heads, &vv]);
        let mut d = [0u8; 16];
        d.copy_from_slice(&full[..16]);
        d
    }

    /// Total stored bytes (ops and chunks).
    pub fn stored_bytes(&self) -> usize {
        let ops: usize = self.log.all_ops().iter().map(|o| o.encoded().len()).sum();
        let chunks: usize = self
            .changes
            .values()
            .chain(self.snapshots.values())
            .map(|c| c.encoded().len())
            .sum();
        ops + chunks
    }

    pub fn all_chunks(&self) -> impl Iterator<Item = &SealedChunk> {
        self.snapshots.values().chain(self.changes.values())
    }
}
