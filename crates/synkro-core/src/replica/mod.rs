//! One document as held by one device: its access log, the sealed chunks,
//! the keys this device can open, and (for readers) the Automerge document.

pub(crate) mod authors;
mod local;
mod seal;
mod summary;

pub(crate) use authors::Authors;
pub(crate) use local::{LocalState, record};
pub use seal::CompactionPolicy;
pub use summary::DocSummary;

/// Key of the record that holds a document's [`DocSummary`] in its namespace.
pub const INDEX_RECORD: &[u8] = &[record::INDEX];

use std::collections::{BTreeMap, BTreeSet, HashSet};

use automerge::{AutoCommit, ChangeHash};
use rand_core::CryptoRng;

use crate::access::{AccessLog, KeyMaterial, Role, unwrap_key};
use crate::chunk::{ChunkKind, ChunkRef, Part, SealedChunk};
use crate::crypto::{SymmetricKey, hash};
use crate::encoding::encode;
use crate::error::{CoreError, VerifyError};
use crate::fence::fenced;
use crate::identity::DeviceIdentity;
use crate::ids::{DocId, KeyId, MemberId};
use crate::invite::invite_identity;
use crate::limits::MAX_CHUNK_LEN;
use crate::time::Instant;
use crate::vv::VersionVector;

/// What happened to a received chunk.
#[derive(Debug)]
pub(crate) enum Accepted {
    /// Stored (and applied, for readers); these records were compacted away.
    New { deletes: Vec<ChunkRef> },
    /// Already held or already covered by a snapshot.
    Duplicate,
}

/// The parts held of one change or snapshot sealed in parts.
#[derive(Debug)]
struct PartGroup {
    count: u32,
    parts: BTreeMap<u32, ChunkRef>,
}

impl PartGroup {
    fn is_complete(&self) -> bool {
        self.parts.len() == self.count as usize
    }
}

/// A change or snapshot as applied to Automerge: one chunk, or the parts of
/// a group in order.
type Unit = Vec<ChunkRef>;

pub(crate) struct DocReplica {
    pub id: DocId,
    pub log: AccessLog,
    pub changes: BTreeMap<(MemberId, u64), SealedChunk>,
    pub snapshots: BTreeMap<[u8; 32], SealedChunk>,
    /// Groups of parts held, complete or not.
    groups: BTreeMap<[u8; 16], PartGroup>,
    /// Effective version vector: snapshot covers plus contiguous change chunks.
    pub vv: VersionVector,
    pub keys: BTreeMap<KeyId, SymmetricKey>,
    pub local: LocalState,
    /// `local` as stored (sealed), carried in the index entry.
    pub local_sealed: Vec<u8>,
    /// Boxed: an `AutoCommit` is over 4 KiB inline, which every replica
    /// (and every slot of the map of replicas) would carry even without
    /// one, as a relay's replicas are.
    pub doc: Option<Box<AutoCommit>>,
    /// Held chunks whose plaintext is not in `doc` yet (no key yet, or a
    /// part whose group is incomplete).
    pub unapplied: BTreeSet<ChunkRef>,
    flushed_heads: Vec<ChangeHash>,
    /// Changes a guest tab made and handed to this host to seal (their
    /// actors are other tabs' of this device, not `doc`'s own).
    pub from_guests: HashSet<ChangeHash>,
    pub dirty: bool,
    /// When its edits were last sealed (the node's latest `now` then): an
    /// edit within a flush window of it waits a window to gather others.
    pub sealed_at: Option<Instant>,
    /// When the node last used it (its use clock), for unloading.
    pub last_used: u64,
}

impl DocReplica {
    pub fn new(log: AccessLog) -> Self {
        Self {
            id: log.doc(),
            log,
            changes: BTreeMap::new(),
            snapshots: BTreeMap::new(),
            groups: BTreeMap::new(),
            vv: VersionVector::default(),
            keys: BTreeMap::new(),
            local: LocalState::default(),
            local_sealed: Vec::new(),
            doc: None,
            unapplied: BTreeSet::new(),
            flushed_heads: Vec::new(),
            from_guests: HashSet::new(),
            dirty: false,
            sealed_at: None,
            last_used: 0,
        }
    }

    /// The Automerge document, or why this device cannot read it.
    pub(crate) fn readable(&self) -> Result<&AutoCommit, CoreError> {
        let why = self.unreadable();
        self.doc.as_deref().ok_or(why)
    }

    /// [`readable`](Self::readable), to change or save.
    pub(crate) fn readable_mut(&mut self) -> Result<&mut AutoCommit, CoreError> {
        let why = self.unreadable();
        self.doc.as_deref_mut().ok_or(why)
    }

    fn unreadable(&self) -> CoreError {
        if self.log.is_rooted() {
            CoreError::NoReadAccess(self.id)
        } else {
            CoreError::NotYetSynced(self.id)
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
            self.doc = Some(Box::new(
                AutoCommit::new().with_actor(authors::new_actor(&self.id, &me, rng)),
            ));
            self.unapplied = self
                .changes
                .values()
                .chain(self.snapshots.values())
                .map(|c| c.chunk_ref())
                .collect();
        }
        // Snapshots first: loading a save into an empty document is fastest.
        let mut waiting: Vec<ChunkRef> = self.unapplied.iter().copied().collect();
        waiting.sort_by_key(|r| matches!(r, ChunkRef::Change(..)));
        for r in waiting {
            if !self.unapplied.contains(&r) {
                continue; // applied with its group already
            }
            let Some(unit) = self.unit_of(&r) else { continue };
            if unit
                .iter()
                .all(|u| self.get(u).is_some_and(|c| self.keys.contains_key(&c.header().key)))
            {
                self.apply(&unit)?;
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

    /// What must be applied together with `r`: `r` alone, or its group's
    /// parts in order once every one is held (`None` until then).
    fn unit_of(&self, r: &ChunkRef) -> Option<Unit> {
        let part = self.get(r)?.part();
        match part {
            None => Some(vec![*r]),
            Some(p) => {
                let g = self.groups.get(&p.group).filter(|g| g.is_complete())?;
                Some(g.parts.values().copied().collect())
            }
        }
    }

    fn is_complete_snapshot(&self, chunk: &SealedChunk) -> bool {
        match chunk.part() {
            None => true,
            Some(p) => self.groups.get(&p.group).is_some_and(PartGroup::is_complete),
        }
    }

    /// Decrypt a unit's chunks, in order, into one plaintext.
    fn open_unit(&self, unit: &[ChunkRef]) -> Result<Vec<u8>, VerifyError> {
        let mut plain = Vec::new();
        for r in unit {
            let chunk = self
                .get(r)
                .ok_or(VerifyError::Invalid("part of a chunk group is missing"))?;
            let key = self.keys.get(&chunk.header().key).ok_or(VerifyError::UnknownKey)?;
            plain.extend(chunk.open(key)?);
        }
        Ok(plain)
    }

    /// Decrypt a held unit and hand it to Automerge.
    fn apply(&mut self, unit: &[ChunkRef]) -> Result<(), CoreError> {
        if self.doc.is_none() {
            return Ok(());
        }
        let plain = self.open_unit(unit)?;
        let snapshot = unit.first().is_some_and(|r| matches!(r, ChunkRef::Snapshot(_)));
        if let Some(ChunkRef::Change(signer, _)) = unit.first() {
            authors::check(&self.id, self.log.state(), &plain, signer)?;
        }
        match self.load_plain(&plain, snapshot) {
            Ok(()) => {
                for r in unit {
                    self.unapplied.remove(r);
                }
                Ok(())
            }
            Err(LoadFailed::Invalid(e)) => Err(e.into()),
            Err(LoadFailed::Panicked(panicked)) => {
                self.reload_without(unit.iter().copied().collect());
                Err(panicked)
            }
        }
    }

    /// Hand verified plaintext (changes, or a whole save) to Automerge.
    fn load_plain(&mut self, plain: &[u8], snapshot: bool) -> Result<(), LoadFailed> {
        let Some(doc) = self.doc.as_mut() else { return Ok(()) };
        let bad = |_| VerifyError::Invalid("chunk is not Automerge data");
        let loaded = fenced("loading a chunk", || {
            if snapshot && doc.get_heads().is_empty() {
                // Loading a whole save is much faster than merging it in.
                let actor = doc.get_actor().clone();
                **doc = AutoCommit::load(plain).map_err(bad)?.with_actor(actor);
            } else {
                doc.load_incremental(plain).map_err(bad)?;
            }
            Ok::<(), VerifyError>(())
        });
        match loaded {
            Ok(result) => result.map_err(LoadFailed::Invalid),
            Err(panicked) => Err(LoadFailed::Panicked(panicked)),
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
        let mut done: BTreeSet<ChunkRef> = BTreeSet::new();
        let refs: Vec<ChunkRef> = self.all_chunks().map(|c| c.chunk_ref()).collect();
        for r in refs {
            if bad.contains(&r) || done.contains(&r) {
                continue;
            }
            let unit = match self.unit_of(&r) {
                Some(unit) if !unit.iter().any(|u| bad.contains(u)) => unit,
                _ => {
                    unapplied.insert(r);
                    continue;
                }
            };
            done.extend(unit.iter().copied());
            let Ok(plain) = self.open_unit(&unit) else {
                unapplied.extend(unit);
                continue;
            };
            if !matches!(fenced("reloading a chunk", || doc.load_incremental(&plain)), Ok(Ok(_))) {
                unapplied.extend(unit);
                return self.reload_without(unapplied);
            }
        }
        self.flushed_heads = doc.get_heads();
        self.doc = Some(Box::new(doc));
        self.unapplied = unapplied;
        self.dirty = false;
    }

    /// A part must fit the parts of its group already held: same author,
    /// key, kind and count, a place not taken, and (for changes) the seq
    /// its index puts it at.
    fn check_part(&self, chunk: &SealedChunk, part: Part) -> Result<(), VerifyError> {
        let h = chunk.header();
        if matches!(h.kind, ChunkKind::Changes) && h.seq <= u64::from(part.index) {
            return Err(VerifyError::Invalid("chunk part before the first seq"));
        }
        let Some(group) = self.groups.get(&part.group) else {
            return Ok(());
        };
        let first = group.parts.values().next().and_then(|r| self.get(r));
        let fits = first.is_some_and(|f| {
            let fh = f.header();
            let fp = f.part().unwrap_or(part);
            group.count == part.count
                && fh.author == h.author
                && fh.key == h.key
                && fh.kind == h.kind
                && (matches!(h.kind, ChunkKind::Snapshot { .. })
                    || fh.seq - u64::from(fp.index) == h.seq - u64::from(part.index))
        });
        if !fits || group.parts.contains_key(&part.index) {
            return Err(VerifyError::Invalid("chunk part does not fit its group"));
        }
        Ok(())
    }

    /// Check a chunk's authority and store it; readers also decrypt and
    /// apply it (a part, once its group is complete). Signature was checked
    /// by [`SealedChunk::decode`]. `trusted` skips the authority check, for
    /// records this device already checked when it first accepted them (its
    /// own storage, its backups): a later revoke must not make a replica
    /// drop what it legitimately held.
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
                        .any(|s| self.is_complete_snapshot(s) && s.covers().is_some_and(|c| c.dominates(covers)))
            }
            (ChunkRef::Snapshot(_), None) => true,
        };
        if duplicate {
            return Ok(Accepted::Duplicate);
        }
        if let Some(part) = chunk.part() {
            self.check_part(&chunk, part)?;
        }
        // Readers authenticate the ciphertext before storing anything.
        let key = self.keys.get(&h.key).filter(|_| self.doc.is_some());
        let plain = match key {
            Some(key) => Some(chunk.open(key)?),
            None => None,
        };
        let part = chunk.part();
        let snapshot = chunk.covers().cloned();
        self.insert(chunk);
        let unit = self.unit_of(&r);
        match (plain, &unit) {
            // Whole, or the part that completes its group: apply the unit.
            (Some(plain), Some(unit)) => {
                let whole = if part.is_some() {
                    match self.open_unit(unit) {
                        Ok(whole) => whole,
                        Err(e) => {
                            self.forget(&r);
                            return Err(e);
                        }
                    }
                } else {
                    plain
                };
                match self.load_plain(&whole, snapshot.is_some()) {
                    Ok(()) => {
                        for u in unit {
                            self.unapplied.remove(u);
                        }
                    }
                    Err(LoadFailed::Invalid(e)) => {
                        self.forget(&r);
                        return Err(e);
                    }
                    Err(LoadFailed::Panicked(_)) => {
                        // Not stored: the sender's chunk is refused, and the
                        // document is rebuilt from what was held before.
                        self.forget(&r);
                        self.reload(None);
                        return Err(VerifyError::Invalid("chunk made Automerge panic"));
                    }
                }
            }
            _ => {
                self.unapplied.insert(r);
            }
        }
        let mut deletes = Vec::new();
        match r {
            ChunkRef::Change(a, _) => self.advance(a),
            ChunkRef::Snapshot(_) => {
                // A snapshot counts once all its parts are held.
                if let (Some(covers), Some(_)) = (snapshot, unit) {
                    deletes = self.compact(&covers);
                }
            }
        }
        Ok(Accepted::New { deletes })
    }

    /// Hold a verified chunk (no checks, no Automerge).
    fn insert(&mut self, chunk: SealedChunk) {
        let r = chunk.chunk_ref();
        if let Some(p) = chunk.part() {
            let group = self.groups.entry(p.group).or_insert_with(|| PartGroup {
                count: p.count,
                parts: BTreeMap::new(),
            });
            group.parts.insert(p.index, r);
        }
        match r {
            ChunkRef::Change(a, s) => {
                self.changes.insert((a, s), chunk);
            }
            ChunkRef::Snapshot(d) => {
                self.snapshots.insert(d, chunk);
            }
        }
    }

    /// Drop a chunk just inserted that turned out to be bad.
    fn forget(&mut self, r: &ChunkRef) {
        self.remove(r);
        self.unapplied.remove(r);
    }

    fn remove(&mut self, r: &ChunkRef) -> Option<SealedChunk> {
        let chunk = match r {
            ChunkRef::Change(a, s) => self.changes.remove(&(*a, *s)),
            ChunkRef::Snapshot(d) => self.snapshots.remove(d),
        }?;
        if let Some(p) = chunk.part()
            && let Some(group) = self.groups.get_mut(&p.group)
        {
            group.parts.remove(&p.index);
            if group.parts.is_empty() {
                self.groups.remove(&p.group);
            }
        }
        Some(chunk)
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

    /// Drop what a complete snapshot covering `covers` makes redundant.
    fn compact(&mut self, covers: &VersionVector) -> Vec<ChunkRef> {
        self.vv.merge(covers);
        let authors: Vec<MemberId> = covers.iter().map(|(a, _)| *a).collect();
        for a in authors {
            self.advance(a);
        }
        let mut gone: Vec<ChunkRef> = self
            .changes
            .keys()
            .filter(|(a, s)| covers.covers(a, *s))
            .map(|(a, s)| ChunkRef::Change(*a, *s))
            .collect();
        gone.extend(
            self.snapshots
                .iter()
                .filter(|(_, snap)| snap.covers().is_some_and(|c| covers.dominates(c) && c != covers))
                .map(|(d, _)| ChunkRef::Snapshot(*d)),
        );
        for g in &gone {
            self.remove(g);
            self.unapplied.remove(g);
        }
        gone
    }

    /// Chunks a peer lacks, given its version vector and the snapshots it
    /// holds: every snapshot it does not list (so replicas that stay live
    /// still receive them and can compact), then the change chunks above
    /// what it has, skipping those the (complete) snapshots sent already
    /// cover, in (author, seq) order. Chunks too large for the wire (see
    /// [`holds_oversized`](Self::holds_oversized)) are never sent.
    pub fn missing_for(&self, theirs: &VersionVector, their_snapshots: &[[u8; 32]]) -> Vec<&SealedChunk> {
        let mut covered = theirs.clone();
        let mut out: Vec<&SealedChunk> = Vec::new();
        for (d, snap) in &self.snapshots {
            if !their_snapshots.contains(d) {
                if let Some(c) = snap.covers().filter(|_| self.is_complete_snapshot(snap)) {
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
        out.retain(|c| c.encoded().len() <= MAX_CHUNK_LEN);
        out
    }

    /// Is this chunk held, or its change covered by what is held?
    pub fn holds(&self, chunk: &ChunkRef) -> bool {
        match chunk {
            ChunkRef::Change(a, s) => *s <= self.vv.get(a) || self.changes.contains_key(&(*a, *s)),
            ChunkRef::Snapshot(d) => self.snapshots.contains_key(d),
        }
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
        let ops = self.log.encoded_len();
        let chunks: usize = self.all_chunks().map(|c| c.encoded().len()).sum();
        ops + chunks
    }

    pub fn all_chunks(&self) -> impl Iterator<Item = &SealedChunk> {
        self.snapshots.values().chain(self.changes.values())
    }
}

/// Why verified plaintext did not load.
enum LoadFailed {
    /// Automerge refused it.
    Invalid(VerifyError),
    /// Automerge panicked on it (contained).
    Panicked(CoreError),
}
