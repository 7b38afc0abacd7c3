//! One document as held by one device: its access log, the sealed chunks,
//! the keys this device can open, and (for readers) the Automerge document.

use std::collections::{BTreeMap, BTreeSet};

use automerge::{ActorId, AutoCommit, ChangeHash};
use rand_core::CryptoRng;
use serde::{Deserialize, Serialize};

use crate::access::{AccessLog, KeyMaterial, Role, unwrap_key};
use crate::chunk::{ChunkKind, ChunkRef, Part, SealedChunk};
use crate::crypto::{NONCE_LEN, SymmetricKey, hash, random_array};
use crate::encoding::{decode, encode};
use crate::error::{CoreError, VerifyError};
use crate::fence::fenced;
use crate::identity::DeviceIdentity;
use crate::ids::{DocId, KeyId, MemberId, OpHash};
use crate::invite::invite_identity;
use crate::limits::{MAX_ASSEMBLED_LEN, MAX_CHUNK_LEN, MAX_PART_LEN, MAX_PARTS};
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
    pub doc: Option<AutoCommit>,
    /// Held chunks whose plaintext is not in `doc` yet (no key yet, or a
    /// part whose group is incomplete).
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
            groups: BTreeMap::new(),
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
                *doc = AutoCommit::load(plain).map_err(bad)?.with_actor(actor);
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
        self.doc = Some(doc);
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

    /// Seal this device's unflushed changes: batches of whole changes of at
    /// most [`MAX_PART_LEN`] bytes each, and a larger change in parts.
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
        let Some(doc) = self.doc.as_mut() else {
            return Err(CoreError::NoReadAccess(self.id));
        };
        let actor = doc.get_actor().clone();
        // Compressed where Automerge finds it worth it (changes over 256 bytes).
        let changes: Vec<Vec<u8>> = doc
            .get_changes(&self.flushed_heads)
            .into_iter()
            .filter(|c| *c.actor_id() == actor)
            .map(|mut c| c.bytes().into_owned())
            .collect();
        if let Some(len) = changes.iter().map(Vec::len).find(|l| *l > MAX_ASSEMBLED_LEN) {
            return Err(CoreError::ChangeTooLarge {
                doc: self.id,
                len,
                max: MAX_ASSEMBLED_LEN,
            });
        }
        self.flushed_heads = doc.get_heads();
        self.dirty = false;
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
        let chunks: usize = self.all_chunks().map(|c| c.encoded().len()).sum();
        ops + chunks
    }

    pub fn all_chunks(&self) -> impl Iterator<Item = &SealedChunk> {
        self.snapshots.values().chain(self.changes.values())
    }
}

/// A new snapshot (its parts) and the chunks it made redundant.
pub(crate) type Compacted = (Vec<SealedChunk>, Vec<ChunkRef>);

/// Why verified plaintext did not load.
enum LoadFailed {
    /// Automerge refused it.
    Invalid(VerifyError),
    /// Automerge panicked on it (contained).
    Panicked(CoreError),
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
