//! [`Node`]: every document of one device and its sync sessions with peers.

use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};

use automerge::{AutoCommit, Patch};
use rand_core::CryptoRng;
use serde_bytes::ByteBuf;

use crate::access::{AccessLog, Action, Inserted, KeyMaterial, Role, rotate_context, seal_context, wrap_key};
use crate::backup::Backup;
use crate::chunk::{ChunkRef, SealedChunk};
use crate::crypto::{NONCE_LEN, SealedKey, SymmetricKey, random_array};
use crate::ephemeral::SealedEphemeral;
use crate::error::{CoreError, VerifyError};
use crate::fence::fenced;
use crate::identity::DeviceIdentity;
use crate::ids::{DocId, MemberId, OpHash};
use crate::invite::{InviteToken, invite_identity};
use crate::limits::{BATCH_TARGET_LEN, MAX_ASSEMBLED_LEN, MAX_FRAME_LEN};
use crate::message::{Digest, Message, PROTOCOL_VERSION, Refusal};
use crate::replica::{Accepted, CompactionPolicy, DocReplica, LocalState, record};
use crate::vv::VersionVector;

/// Tunables of a [`Node`].
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// When writers fold history into snapshots.
    pub compaction: CompactionPolicy,
    /// Bytes of [`Effect::Send`] per peer that may be waiting to be
    /// transmitted (see [`Node::transmitted`]) before the node holds back
    /// further chunks: a slow peer costs at most this much memory, and a
    /// large initial sync streams instead of being queued whole.
    pub send_window: usize,
    /// Most documents a peer may make this node store (a relay's quota);
    /// documents created, joined or imported locally are not limited.
    pub max_docs: usize,
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            compaction: CompactionPolicy::default(),
            send_window: 4 << 20,
            max_docs: usize::MAX,
        }
    }
}

/// Something the runtime must do for the node. Execute effects in the
/// order they are polled: a `Send` that follows a `Persist` acknowledges
/// data to a peer, so it must not leave before that `Persist` is durable.
#[derive(Debug)]
pub enum Effect {
    /// Write records of a document atomically and durably.
    Persist {
        /// Document (the storage namespace).
        doc: DocId,
        /// Records to insert or overwrite.
        puts: Vec<(Vec<u8>, Vec<u8>)>,
        /// Records to remove.
        deletes: Vec<Vec<u8>>,
    },
    /// Send an encoded [`Message`] to a connected peer.
    Send {
        /// Recipient.
        peer: MemberId,
        /// Encoded message.
        message: Vec<u8>,
    },
    /// Close the connection to a misbehaving peer.
    Disconnect {
        /// Peer.
        peer: MemberId,
        /// Why, for the logs.
        reason: String,
    },
    /// Tell the application.
    Event(Event),
}

/// Where a document change came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// This device.
    Local,
    /// A peer (which may have forwarded others' changes).
    Remote(MemberId),
}

/// Notifications for the application.
#[derive(Clone, Debug)]
pub enum Event {
    /// The document's content changed.
    DocChanged {
        /// Document.
        doc: DocId,
        /// What changed, as Automerge patches.
        patches: Vec<Patch>,
        /// Who changed it.
        origin: Origin,
    },
    /// The access log changed (members, roles, keys).
    AccessChanged {
        /// Document.
        doc: DocId,
    },
    /// A document arrived (e.g. after joining).
    DocAdded {
        /// Document.
        doc: DocId,
    },
    /// A peer reported (and, after receiving from us, acknowledged as
    /// durably stored) what it holds of a document.
    PeerHas {
        /// Peer.
        peer: MemberId,
        /// Document.
        doc: DocId,
        /// Its version vector.
        vv: VersionVector,
        /// Its access-log heads.
        heads: Vec<OpHash>,
    },
    /// An ephemeral message from a member (see [`Node::send_ephemeral`]).
    Ephemeral {
        /// Document.
        doc: DocId,
        /// Who wrote it (checked: a member who may read the document).
        from: MemberId,
        /// What they sent.
        data: Vec<u8>,
    },
    /// Data from a peer was refused (forged, unauthorised, unreadable).
    Rejected {
        /// Who sent it.
        peer: Option<MemberId>,
        /// Document.
        doc: DocId,
        /// Why.
        reason: String,
    },
    /// A peer refused data of `doc` that this node sent it: until that
    /// changes, the document is stuck there ([`SyncStatus::refused`]).
    PeerRefused {
        /// The peer.
        peer: MemberId,
        /// Document.
        doc: DocId,
        /// Why.
        reason: Refusal,
    },
}

/// A document's facts for display.
#[derive(Clone, Debug)]
pub struct DocInfo {
    /// Document.
    pub doc: DocId,
    /// Local name.
    pub name: Option<String>,
    /// This device's role (None: not, or not yet, a member).
    pub my_role: Option<Role>,
    /// Members and roles.
    pub members: Vec<(MemberId, Role)>,
    /// Version vector held.
    pub vv: VersionVector,
    /// Access-log ops held.
    pub log_ops: usize,
    /// Change chunks and snapshots held.
    pub chunks: usize,
    /// Sealed bytes held.
    pub stored_bytes: usize,
    /// Can this device read the content?
    pub readable: bool,
}

/// Per document shared with one peer, whether the two are in sync, from
/// the peer's own (durable) acknowledgements. See [`Node::sync_status`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncStatus {
    /// The peer acknowledged holding everything we hold, and we hold
    /// everything it reported.
    pub synced: Vec<DocId>,
    /// Shared with the peer, with something left to exchange.
    pub unsynced: Vec<DocId>,
    /// Joined, but nothing has arrived from anyone yet.
    pub pending: Vec<DocId>,
    /// Held here, but the peer is not a member (it will not be sent).
    pub not_shared: Vec<DocId>,
    /// Documents (also in `unsynced`) of which the peer refused data we
    /// sent, and why: the last refusal since it last acknowledged them.
    pub refused: Vec<(DocId, Refusal)>,
}

impl SyncStatus {
    /// Nothing left to exchange with this peer.
    pub fn is_complete(&self) -> bool {
        self.unsynced.is_empty() && self.pending.is_empty()
    }
}

/// What [`Node::load_doc`] found.
#[derive(Clone, Debug, Default)]
pub struct LoadReport {
    /// Records that failed verification and were skipped.
    pub problems: Vec<String>,
}

#[derive(Default)]
struct PeerDoc {
    heads: Vec<OpHash>,
    vv: VersionVector,
    /// What the peer last reported in a `Have` (sent after its writes are
    /// durable), unlike `heads`/`vv`, which also count what we sent it.
    acked: Option<(Vec<OpHash>, VersionVector)>,
    snapshots: Vec<[u8; 32]>,
    last_sent: Option<Digest>,
    /// The peer's last refusal of data we sent, until it acknowledges.
    refused: Option<Refusal>,
}

#[derive(Default)]
struct Peer {
    docs: BTreeMap<DocId, PeerDoc>,
    /// Bytes sent to this peer and not yet reported transmitted.
    queued: usize,
    /// Documents with chunks held back by the send window.
    backlog: BTreeSet<DocId>,
    /// Its `Hello` arrived: we know what it holds.
    greeted: bool,
}

/// All documents of one device and its sync sessions. See the crate docs
/// for the run-loop contract.
pub struct Node {
    identity: DeviceIdentity,
    me: MemberId,
    config: NodeConfig,
    docs: BTreeMap<DocId, DocReplica>,
    peers: BTreeMap<MemberId, Peer>,
    effects: VecDeque<Effect>,
    /// Nonces of recent ephemeral messages, oldest first, so a copy that
    /// comes back around (two relays forwarding to each other) is dropped.
    seen_ephemeral: (HashSet<[u8; NONCE_LEN]>, VecDeque<[u8; NONCE_LEN]>),
    /// [`Event::Rejected`] emitted so far.
    rejected: u64,
}

/// How many ephemeral nonces a node remembers.
const SEEN_EPHEMERAL: usize = 4096;

impl Node {
    /// A node with no documents.
    pub fn new(identity: DeviceIdentity, config: NodeConfig) -> Self {
        let me = identity.member_id();
        Self {
            identity,
            me,
            config,
            docs: BTreeMap::new(),
            peers: BTreeMap::new(),
            effects: VecDeque::new(),
            seen_ephemeral: (HashSet::new(), VecDeque::new()),
            rejected: 0,
        }
    }

    /// This device's member id.
    pub fn member_id(&self) -> MemberId {
        self.me
    }

    /// This device's identity.
    pub fn identity(&self) -> &DeviceIdentity {
        &self.identity
    }

    /// Next effect to execute, in order.
    pub fn poll_effect(&mut self) -> Option<Effect> {
        self.effects.pop_front()
    }

    /// Documents held.
    pub fn docs(&self) -> Vec<DocId> {
        self.docs.keys().copied().collect()
    }

    /// Is this document held?
    pub fn has_doc(&self, doc: &DocId) -> bool {
        self.docs.contains_key(doc)
    }

    fn replica(&self, doc: &DocId) -> Result<&DocReplica, CoreError> {
        self.docs.get(doc).ok_or(CoreError::UnknownDocument(*doc))
    }

    fn replica_mut(&mut self, doc: &DocId) -> Result<&mut DocReplica, CoreError> {
        self.docs.get_mut(doc).ok_or(CoreError::UnknownDocument(*doc))
    }

    // ---- loading and local operations -------------------------------------------------

    /// Rebuild a document from its stored records. Every record is verified
    /// (signature, authority, AEAD) before its bytes reach Automerge; bad
    /// ones are skipped and reported.
    pub fn load_doc<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        doc: DocId,
        records: Vec<(Vec<u8>, Vec<u8>)>,
    ) -> Result<LoadReport, CoreError> {
        let mut report = LoadReport::default();
        let mut log = AccessLog::new(doc);
        let mut chunks = Vec::new();
        let mut local = LocalState::default();
        for (key, value) in &records {
            match key.first() {
                Some(&record::OP) => {
                    if let Err(e) = log.insert(value) {
                        report.problems.push(format!("access op skipped: {e}"));
                    }
                }
                Some(&record::CHANGE) | Some(&record::SNAPSHOT) => match SealedChunk::decode_stored(value) {
                    Ok(c) => chunks.push(c),
                    Err(e) => report.problems.push(format!("chunk skipped: {e}")),
                },
                Some(&record::LOCAL) => match LocalState::open(value, &self.identity, &doc) {
                    Ok(l) => local = l,
                    Err(e) => report.problems.push(format!("local state skipped: {e}")),
                },
                _ => report.problems.push("unknown record skipped".into()),
            }
        }
        if log.is_empty() {
            // Nothing verifiable names this document: do not invent one.
            report.problems.push("no valid access-log op; nothing loaded".into());
            return Ok(report);
        }
        let mut replica = DocReplica::new(log);
        replica.local = local;
        replica.refresh_keys(rng, &self.identity)?;
        // Snapshots first, so the change chunks they cover count as duplicates.
        chunks.sort_by_key(|c| c.covers().is_none());
        for c in chunks {
            if let Err(e) = replica.accept(c, true) {
                report.problems.push(format!("chunk skipped: {e}"));
            }
        }
        replica.refresh_keys(rng, &self.identity)?;
        let oversized = replica.holds_oversized();
        self.docs.insert(doc, replica);
        if oversized {
            // Stored by a release that sealed without a size limit: peers
            // would refuse it. Its author folds it into a snapshot sealed in
            // parts (the Persist effect this emits must be carried out).
            report
                .problems
                .push("a chunk over the size peers accept was found; it is folded into a new snapshot".into());
            self.snapshot_now(rng, &doc)?;
        }
        Ok(report)
    }

    /// Create a document owned by this device.
    pub fn create_doc<R: CryptoRng + ?Sized>(&mut self, rng: &mut R) -> Result<DocId, CoreError> {
        let (log, _key) = AccessLog::create(&self.identity, rng);
        let doc = log.doc();
        let mut replica = DocReplica::new(log);
        replica.refresh_keys(rng, &self.identity)?;
        let puts = replica
            .log
            .all_ops()
            .iter()
            .map(|o| (record::op(&o.hash()), o.encoded().to_vec()))
            .collect();
        self.docs.insert(doc, replica);
        self.persist(doc, puts, Vec::new());
        Ok(doc)
    }

    /// Read the document.
    pub fn read<T>(&self, doc: &DocId, f: impl FnOnce(&AutoCommit) -> T) -> Result<T, CoreError> {
        let r = self.replica(doc)?;
        match &r.doc {
            Some(d) => Ok(f(d)),
            None if !r.log.is_rooted() => Err(CoreError::NotYetSynced(*doc)),
            None => Err(CoreError::NoReadAccess(*doc)),
        }
    }

    /// Change the document. The change is applied at once and sealed into a
    /// chunk at the next [`flush`](Self::flush), so bursts of edits cost one
    /// signature and one write.
    pub fn change<T>(
        &mut self,
        doc: &DocId,
        f: impl FnOnce(&mut AutoCommit) -> Result<T, automerge::AutomergeError>,
    ) -> Result<T, CoreError> {
        let me = self.me;
        let r = self.replica_mut(doc)?;
        if !r.role_of(&me).is_some_and(Role::can_write) {
            return Err(CoreError::NotAllowed {
                doc: *doc,
                needed: Role::Write,
            });
        }
        let d = r.doc.as_mut().ok_or(CoreError::NoReadAccess(*doc))?;
        let before = d.get_heads();
        let actor = d.get_actor().clone();
        let out = match fenced("a change", || f(d)) {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => {
                d.rollback();
                return Err(e.into());
            }
            Err(panicked) => {
                // Automerge may be half-way through the change: rebuild.
                r.reload(None);
                return Err(panicked);
            }
        };
        let after = d.get_heads();
        if before != after {
            // A change too large for any chunk group is undone before
            // anything can seal, store or send it.
            let too_large = d.get_changes(&before).iter().map(|c| c.raw_bytes().len()).max();
            if let Some(len) = too_large.filter(|l| *l > MAX_ASSEMBLED_LEN) {
                let undone = d.fork_at(&before)?.with_actor(actor);
                *d = undone;
                d.update_diff_cursor();
                return Err(CoreError::ChangeTooLarge {
                    doc: *doc,
                    len,
                    max: MAX_ASSEMBLED_LEN,
                });
            }
            let patches = d.diff(&before, &after);
            // Index what comes next, so the next diff is not a walk over the
            // whole document (a keystroke in a long text stays cheap).
            d.update_diff_cursor();
            r.dirty = true;
            self.emit(Event::DocChanged {
                doc: *doc,
                patches,
                origin: Origin::Local,
            });
        }
        Ok(out)
    }

    /// The document's current heads: the hashes of its latest changes, the
    /// same on every replica that has the same changes.
    pub fn heads(&mut self, doc: &DocId) -> Result<Vec<automerge::ChangeHash>, CoreError> {
        let r = self.replica_mut(doc)?;
        let d = r.doc.as_mut().ok_or(CoreError::NoReadAccess(*doc))?;
        Ok(d.get_heads())
    }

    /// Does the document have edits not yet sealed?
    pub fn is_dirty(&self, doc: &DocId) -> bool {
        self.docs.get(doc).is_some_and(|r| r.dirty)
    }

    /// Seal pending edits into chunks (as many as their size needs), store
    /// them and push them to peers; compact into a snapshot when due.
    /// Returns whether a chunk was made.
    pub fn flush<R: CryptoRng + ?Sized>(&mut self, rng: &mut R, doc: &DocId) -> Result<bool, CoreError> {
        let policy = self.config.compaction;
        let identity = self.identity.clone();
        let r = self.replica_mut(doc)?;
        let chunks = r.flush(rng, &identity)?;
        if chunks.is_empty() {
            return Ok(false);
        }
        let mut batch = StoreBatch::default();
        batch.put_chunks(&chunks);
        if let Some((snap, gone)) = r.maybe_snapshot(rng, &identity, &policy, false)? {
            batch.put_chunks(&snap);
            batch.delete_chunks(&gone);
        }
        self.store(*doc, batch);
        self.push_all(doc);
        Ok(true)
    }

    /// Flush every document with pending edits.
    pub fn flush_all<R: CryptoRng + ?Sized>(&mut self, rng: &mut R) -> Result<(), CoreError> {
        let dirty: Vec<DocId> = self.docs.iter().filter(|(_, r)| r.dirty).map(|(d, _)| *d).collect();
        for d in dirty {
            self.flush(rng, &d)?;
        }
        Ok(())
    }

    /// Set the local name of a document (stored sealed, never synced).
    pub fn set_name<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        doc: &DocId,
        name: Option<String>,
    ) -> Result<(), CoreError> {
        let r = self.replica_mut(doc)?;
        r.local.name = name;
        self.save_local(rng, doc)
    }

    fn save_local<R: CryptoRng + ?Sized>(&mut self, rng: &mut R, doc: &DocId) -> Result<(), CoreError> {
        let bytes = self.replica(doc)?.local.seal(rng, &self.identity, doc);
        self.persist(*doc, vec![(record::local(), bytes)], Vec::new());
        Ok(())
    }

    /// Facts about a document.
    pub fn info(&self, doc: &DocId) -> Result<DocInfo, CoreError> {
        let r = self.replica(doc)?;
        let state = r.log.state();
        Ok(DocInfo {
            doc: *doc,
            name: r.local.name.clone(),
            my_role: state.role(&self.me),
            members: state.members.iter().map(|(m, e)| (*m, e.role)).collect(),
            vv: r.vv.clone(),
            log_ops: r.log.len(),
            chunks: r.changes.len() + r.snapshots.len(),
            stored_bytes: r.stored_bytes(),
            readable: r.doc.is_some(),
        })
    }

    // ---- access control ----------------------------------------------------------------

    fn append_op(&mut self, doc: &DocId, action: Action) -> Result<OpHash, CoreError> {
        let identity = self.identity.clone();
        let r = self.replica_mut(doc)?;
        let op = match r.log.append(&identity, action) {
            Err(VerifyError::Invalid(crate::access::UNAUTHORISED)) => {
                return Err(CoreError::NotAllowed {
                    doc: *doc,
                    needed: Role::Admin,
                });
            }
            other => other?,
        };
        if !r.log.is_valid(&op.hash()) {
            return Err(CoreError::NotAllowed {
                doc: *doc,
                needed: Role::Admin,
            });
        }
        self.persist(*doc, vec![(record::op(&op.hash()), op.encoded().to_vec())], Vec::new());
        self.access_changed(doc);
        Ok(op.hash())
    }

    fn require_admin(&self, doc: &DocId) -> Result<(), CoreError> {
        if self.replica(doc)?.role_of(&self.me).is_some_and(Role::is_admin) {
            Ok(())
        } else {
            Err(CoreError::NotAllowed {
                doc: *doc,
                needed: Role::Admin,
            })
        }
    }

    /// Invite whoever gets the returned token to join with `role`.
    pub fn share<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        doc: &DocId,
        role: Role,
    ) -> Result<InviteToken, CoreError> {
        self.require_admin(doc)?;
        let secret: [u8; 32] = random_array(rng);
        let invitee = invite_identity(&secret);
        let r = self.replica(doc)?;
        let key_id = r.log.state().current_key().ok_or(CoreError::NotYetSynced(*doc))?;
        let key = r.keys.get(&key_id).ok_or(CoreError::NoReadAccess(*doc))?;
        let sealed = SealedKey::seal(
            rng,
            &invitee.exchange_key(),
            key,
            &seal_context(&key_id, &invitee.member_id()),
        )
        .ok_or(VerifyError::Invalid("cannot seal to the invitation key"))?;
        let action = Action::Invite {
            invitee: invitee.member_id(),
            exchange: invitee.exchange_key(),
            role,
            key: (key_id, sealed),
        };
        let op = self.append_op(doc, action)?;
        Ok(InviteToken::new(*doc, op, role, secret))
    }

    /// Join a document with an invitation. The content arrives from the
    /// first peer or relay that has it.
    pub fn join<R: CryptoRng + ?Sized>(&mut self, rng: &mut R, token: &InviteToken) -> Result<DocId, CoreError> {
        let doc = token.doc;
        let invitee = token.identity();
        let body = crate::access::OpBody {
            version: crate::access::OP_VERSION,
            doc: Some(doc),
            author: invitee.member_id(),
            prev: vec![token.invite_op],
            action: Action::Claim {
                member: self.me,
                exchange: self.identity.exchange_key(),
            },
        };
        let claim = crate::access::sign_op(&invitee, body);
        let is_new = !self.docs.contains_key(&doc);
        let r = self
            .docs
            .entry(doc)
            .or_insert_with(|| DocReplica::new(AccessLog::new(doc)));
        if !r.local.invites.contains(&token.secret()) {
            r.local.invites.push(token.secret());
        }
        r.log
            .insert(claim.encoded())
            .map_err(|e| CoreError::BadInvite(e.to_string()))?;
        r.refresh_keys(rng, &self.identity)?;
        self.persist(
            doc,
            vec![(record::op(&claim.hash()), claim.encoded().to_vec())],
            Vec::new(),
        );
        self.save_local(rng, &doc)?;
        if is_new {
            self.emit(Event::DocAdded { doc });
        }
        self.access_changed(&doc);
        Ok(doc)
    }

    /// Give a member a role that needs no key (`replicate`) or, when its
    /// exchange key is known, any role.
    pub fn grant<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        doc: &DocId,
        member: MemberId,
        exchange: Option<crate::crypto::ExchangeKey>,
        role: Role,
    ) -> Result<(), CoreError> {
        self.require_admin(doc)?;
        let r = self.replica(doc)?;
        let key = match (role.can_read(), exchange) {
            (false, _) => None,
            (true, None) => {
                return Err(CoreError::BadInvite(
                    "a reading role needs the member's exchange key".into(),
                ));
            }
            (true, Some(x)) => {
                let key_id = r.log.state().current_key().ok_or(CoreError::NotYetSynced(*doc))?;
                let key = r.keys.get(&key_id).ok_or(CoreError::NoReadAccess(*doc))?;
                let sealed = SealedKey::seal(rng, &x, key, &seal_context(&key_id, &member))
                    .ok_or(VerifyError::Invalid("bad exchange key"))?;
                Some((key_id, sealed))
            }
        };
        self.append_op(
            doc,
            Action::Grant {
                member,
                exchange,
                role,
                key,
            },
        )
        .map(drop)
    }

    /// Give `member` (a relay) the `replicate` role on every document this
    /// device administers where it has no role yet and was never revoked,
    /// so it stores and serves their ciphertext. Returns the documents
    /// granted.
    pub fn replicate_to<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        member: MemberId,
    ) -> Result<Vec<DocId>, CoreError> {
        let me = self.me;
        let docs: Vec<DocId> = self
            .docs
            .values()
            .filter(|r| {
                let state = r.log.state();
                state.role(&me).is_some_and(Role::is_admin)
                    && state.role(&member).is_none()
                    && !state.revoked.contains(&member)
            })
            .map(|r| r.id)
            .collect();
        for doc in &docs {
            self.grant(rng, doc, member, None, Role::Replicate)?;
        }
        Ok(docs)
    }

    /// Remove a member, then rotate to a new key sealed only to those who
    /// remain, so the removed member cannot read anything written after.
    pub fn revoke<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        doc: &DocId,
        member: MemberId,
    ) -> Result<(), CoreError> {
        self.require_admin(doc)?;
        let state = self.replica(doc)?.log.state();
        if !state.members.contains_key(&member) && !state.invites.contains_key(&member) {
            return Err(CoreError::NotAMember { doc: *doc, member });
        }
        // Seal pending edits under the key the member still shares, so they
        // are not stuck behind the rotation.
        self.flush(rng, doc)?;
        let r = self.replica(doc)?;
        let held = r
            .changes
            .keys()
            .filter(|(a, _)| *a == member)
            .map(|(_, s)| *s)
            .max()
            .unwrap_or(0);
        let accept_until = r.vv.get(&member).max(held);
        self.append_op(doc, Action::Revoke { member, accept_until })?;
        self.rotate(rng, doc)?;
        // A fresh snapshot under the new key supersedes any snapshot the
        // revoked member made, which replicas no longer accept from it.
        self.snapshot_now(rng, doc)
    }

    fn snapshot_now<R: CryptoRng + ?Sized>(&mut self, rng: &mut R, doc: &DocId) -> Result<(), CoreError> {
        let policy = self.config.compaction;
        let identity = self.identity.clone();
        let r = self.replica_mut(doc)?;
        if let Some((snap, gone)) = r.maybe_snapshot(rng, &identity, &policy, true)? {
            let mut batch = StoreBatch::default();
            batch.put_chunks(&snap);
            batch.delete_chunks(&gone);
            self.store(*doc, batch);
            self.push_all(doc);
        }
        Ok(())
    }

    /// After merging concurrent access changes, seal the current key to any
    /// reader who lacks it (e.g. one invited while another admin rotated).
    fn heal_keys<R: CryptoRng + ?Sized>(&mut self, rng: &mut R, doc: &DocId) {
        let Ok(r) = self.replica(doc) else { return };
        let state = r.log.state();
        if !state.role(&self.me).is_some_and(Role::is_admin) {
            return;
        }
        let Some(current) = state.current_key() else { return };
        let Some(key) = r.keys.get(&current).cloned() else {
            return;
        };
        let has_copy: std::collections::BTreeSet<MemberId> = r
            .log
            .key_material()
            .iter()
            .filter_map(|m| match m {
                KeyMaterial::Sealed { key, to, .. } if *key == current => Some(*to),
                _ => None,
            })
            .collect();
        let missing: Vec<(MemberId, crate::crypto::ExchangeKey, Role)> = state
            .members
            .iter()
            .filter(|(m, e)| {
                let invite = state.via_invite.get(m);
                e.role.can_read()
                    && !has_copy.contains(m)
                    && !invite.is_some_and(|i| has_copy.contains(i))
                    && Some(**m) != state.owner
            })
            .filter_map(|(m, e)| e.exchange.map(|x| (*m, x, e.role)))
            .collect();
        for (member, x, role) in missing {
            let Some(sealed) = SealedKey::seal(rng, &x, &key, &seal_context(&current, &member)) else {
                continue;
            };
            let action = Action::Grant {
                member,
                exchange: Some(x),
                role,
                key: Some((current, sealed)),
            };
            if let Err(e) = self.append_op(doc, action) {
                tracing::debug!(%doc, %member, error = %e, "could not re-seal the current key");
            }
        }
    }

    /// Introduce a new document key for everything written from now on.
    pub fn rotate<R: CryptoRng + ?Sized>(&mut self, rng: &mut R, doc: &DocId) -> Result<(), CoreError> {
        self.require_admin(doc)?;
        let r = self.replica(doc)?;
        let state = r.log.state();
        let new = SymmetricKey::generate(rng);
        let old_id = state.current_key().ok_or(CoreError::NotYetSynced(*doc))?;
        let old = r.keys.get(&old_id).ok_or(CoreError::NoReadAccess(*doc))?;
        let mut keys = Vec::new();
        let recipients = state.readers().map(|(m, x)| (*m, *x)).chain(
            state
                .invites
                .iter()
                .filter(|(_, i)| i.role.can_read())
                .map(|(m, i)| (*m, i.exchange)),
        );
        for (m, x) in recipients {
            if let Some(s) = SealedKey::seal(rng, &x, &new, &seal_context(&rotate_context(&old_id), &m)) {
                keys.push((m, s));
            }
        }
        let previous = vec![(old_id, wrap_key(rng, &new, &old_id, old))];
        self.append_op(doc, Action::Rotate { keys, previous })?;
        let identity = self.identity.clone();
        let r = self.replica_mut(doc)?;
        r.refresh_keys(rng, &identity)?;
        Ok(())
    }

    // ---- backups -----------------------------------------------------------------------

    /// Everything needed to restore `doc` on any device, encrypted under a
    /// passphrase. Admins include a fresh invitation so the restoring
    /// device becomes a member with the same role.
    pub fn export<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        doc: &DocId,
        passphrase: &[u8],
    ) -> Result<Vec<u8>, CoreError> {
        self.flush(rng, doc)?;
        let role = self.replica(doc)?.role_of(&self.me);
        let invite = match role {
            Some(role) if role.is_admin() => {
                let t = self.share(rng, doc, role)?;
                Some((t.invite_op, t.secret()))
            }
            _ => None,
        };
        let r = self.replica(doc)?;
        let backup = Backup {
            doc: *doc,
            ops: r
                .log
                .all_ops()
                .iter()
                .map(|o| ByteBuf::from(o.encoded().to_vec()))
                .collect(),
            chunks: r.all_chunks().map(|c| ByteBuf::from(c.encoded().to_vec())).collect(),
            keys: r.keys.iter().map(|(k, v)| (*k, *v.as_bytes())).collect(),
            invite,
            name: r.local.name.clone(),
        };
        Ok(backup.seal(rng, passphrase))
    }

    /// Restore a backup made by [`export`](Self::export); merges into the
    /// document if it is already here.
    pub fn import<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        bytes: &[u8],
        passphrase: &[u8],
    ) -> Result<DocId, CoreError> {
        let backup = Backup::open(bytes, passphrase)?;
        let doc = backup.doc;
        let is_new = !self.docs.contains_key(&doc);
        let mut r = self
            .docs
            .remove(&doc)
            .unwrap_or_else(|| DocReplica::new(AccessLog::new(doc)));
        let mut batch = StoreBatch::default();
        for op in &backup.ops {
            if let Ok(Inserted::New | Inserted::Pending) = r.log.insert(op)
                && let Ok(o) = crate::access::AccessOp::decode(op)
            {
                batch.put(record::op(&o.hash()), op.to_vec());
            }
        }
        for (k, v) in &backup.keys {
            if !r.local.imported.iter().any(|(i, _)| i == k) {
                r.local.imported.push((*k, *v));
            }
        }
        if r.local.name.is_none() {
            r.local.name = backup.name.clone();
        }
        if let Some((_, secret)) = backup.invite
            && !r.local.invites.contains(&secret)
        {
            r.local.invites.push(secret);
        }
        let result = self.import_into(rng, &mut r, &backup, &mut batch);
        let oversized = r.holds_oversized();
        self.docs.insert(doc, r);
        result?;
        self.store(doc, batch);
        self.save_local(rng, &doc)?;
        if oversized {
            self.snapshot_now(rng, &doc)?;
        }
        // Claim the bundled invitation, unless this device already has a role.
        if let Some((op, secret)) = backup.invite {
            let member = self.replica(&doc)?.role_of(&self.me).is_some();
            if !member {
                let role = self.replica(&doc)?.log.get(&op).and_then(|o| match o.body().action {
                    Action::Invite { role, .. } => Some(role),
                    _ => None,
                });
                if let Some(role) = role {
                    self.join(rng, &InviteToken::new(doc, op, role, secret))?;
                }
            }
        }
        if is_new {
            self.emit(Event::DocAdded { doc });
        }
        self.access_changed(&doc);
        Ok(doc)
    }

    fn import_into<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        r: &mut DocReplica,
        backup: &Backup,
        batch: &mut StoreBatch,
    ) -> Result<(), CoreError> {
        r.refresh_keys(rng, &self.identity)?;
        // A backup is authenticated as a whole by its passphrase, and its
        // chunks were accepted by the device that made it.
        let mut chunks: Vec<SealedChunk> = Vec::new();
        for c in &backup.chunks {
            match SealedChunk::decode_stored(c) {
                Ok(c) => chunks.push(c),
                Err(e) => tracing::warn!(doc = %r.id, error = %e, "backup chunk skipped"),
            }
        }
        chunks.sort_by_key(|c| c.covers().is_none());
        for c in chunks {
            let held = c.clone();
            match r.accept(c, true) {
                Ok(Accepted::New { deletes }) => {
                    batch.put_chunks(&[held]);
                    batch.delete_chunks(&deletes);
                }
                Ok(Accepted::Duplicate) => {}
                Err(e) => tracing::warn!(doc = %r.id, error = %e, "backup chunk skipped"),
            }
        }
        Ok(())
    }

    // ---- sync sessions -----------------------------------------------------------------

    /// A connection to `peer` (authenticated by the transport) is up.
    pub fn peer_connected(&mut self, peer: MemberId) {
        self.peers.insert(peer, Peer::default());
        let docs = self
            .docs
            .values()
            .filter(|r| !r.log.is_rooted() || r.role_of(&peer).is_some())
            .map(|r| (r.id, r.digest()))
            .collect();
        self.send(
            peer,
            &Message::Hello {
                version: PROTOCOL_VERSION,
                docs,
            },
        );
    }

    /// The connection to `peer` is gone.
    pub fn peer_disconnected(&mut self, peer: &MemberId) {
        self.peers.remove(peer);
    }

    /// Is `peer` connected, with its `Hello` received (so [`sync_status`](Self::sync_status)
    /// knows what it holds)?
    pub fn greeted(&self, peer: &MemberId) -> bool {
        self.peers.get(peer).is_some_and(|p| p.greeted)
    }

    /// Where each document stands with `peer`, from what it acknowledged.
    pub fn sync_status(&self, peer: &MemberId) -> SyncStatus {
        let mut status = SyncStatus::default();
        for r in self.docs.values() {
            if !r.log.is_rooted() {
                status.pending.push(r.id);
            } else if r.role_of(peer).is_none() {
                status.not_shared.push(r.id);
            } else if self.durable_on(peer, &r.id) && self.holds_all_of(peer, &r.id) {
                status.synced.push(r.id);
            } else {
                status.unsynced.push(r.id);
                let refused = self
                    .peers
                    .get(peer)
                    .and_then(|p| p.docs.get(&r.id))
                    .and_then(|pd| pd.refused.clone());
                if let Some(reason) = refused {
                    status.refused.push((r.id, reason));
                }
            }
        }
        status
    }

    /// Has `peer` acknowledged storing everything this node holds of `doc`
    /// (every sealed edit and access op)? Unsealed edits count as not held.
    pub fn durable_on(&self, peer: &MemberId, doc: &DocId) -> bool {
        let Some(r) = self.docs.get(doc) else { return false };
        let acked = self
            .peers
            .get(peer)
            .and_then(|p| p.docs.get(doc))
            .and_then(|pd| pd.acked.as_ref());
        !r.dirty && acked.is_some_and(|(heads, vv)| vv.dominates(&r.vv) && r.log.known_to(heads))
    }

    /// Why `peer` last refused data of `doc` we sent it, if it has not
    /// acknowledged the document since.
    pub fn refusal(&self, peer: &MemberId, doc: &DocId) -> Option<&Refusal> {
        self.peers.get(peer)?.docs.get(doc)?.refused.as_ref()
    }

    /// Do we hold everything `peer` last reported holding of `doc`?
    fn holds_all_of(&self, peer: &MemberId, doc: &DocId) -> bool {
        let Some(r) = self.docs.get(doc) else { return false };
        let acked = self
            .peers
            .get(peer)
            .and_then(|p| p.docs.get(doc))
            .and_then(|pd| pd.acked.as_ref());
        let state = r.log.state();
        // Chunks we would refuse (a revoked writer's edits after the revoke,
        // which the peer took before it learnt of it) are not missing.
        let holds = |(author, seq): (&MemberId, &u64)| {
            let ours = r.vv.get(author);
            ours >= *seq || !state.may_author(author, ours.saturating_add(1))
        };
        acked.is_some_and(|(heads, vv)| vv.iter().all(holds) && heads.iter().all(|h| r.log.contains(h)))
    }

    /// Sealed bytes held over all documents (access ops and chunks).
    pub fn stored_bytes(&self) -> usize {
        self.docs.values().map(|r| r.stored_bytes()).sum()
    }

    /// How many times data from a peer was refused ([`Event::Rejected`])
    /// since the node started: for metrics that must not miss any.
    pub fn rejected(&self) -> u64 {
        self.rejected
    }

    /// Peers with an open session.
    pub fn peers(&self) -> Vec<MemberId> {
        self.peers.keys().copied().collect()
    }

    /// Handle one message from `peer`. Undecodable input or forged data
    /// produces [`Effect::Disconnect`]; the node itself never fails.
    pub fn handle_message<R: CryptoRng + ?Sized>(&mut self, rng: &mut R, peer: MemberId, bytes: &[u8]) {
        if !self.peers.contains_key(&peer) {
            return;
        }
        let msg = match Message::decode(bytes) {
            Ok(m) => m,
            Err(e) => return self.disconnect(peer, format!("undecodable message: {e}")),
        };
        match msg {
            Message::Hello { version, docs } => self.on_hello(peer, version, docs),
            Message::Have {
                doc,
                heads,
                vv,
                snapshots,
            } => self.on_have(peer, doc, heads, vv, snapshots),
            Message::Ops { doc, ops } => self.on_ops(rng, peer, doc, ops),
            Message::Chunks { doc, chunks } => self.on_chunks(peer, doc, chunks),
            Message::Ephemeral { doc, message } => self.on_ephemeral(peer, doc, &message),
            Message::Refused { doc, reason } => self.on_refused(peer, doc, reason),
        }
    }

    /// Send `data` (presence, a cursor: at most [`MAX_EPHEMERAL_LEN`]
    /// bytes) to the members of `doc` connected now, sealed under the
    /// document key and signed. It is not stored; whoever is offline misses
    /// it. Relays forward it to the members connected to them.
    ///
    /// [`MAX_EPHEMERAL_LEN`]: crate::MAX_EPHEMERAL_LEN
    pub fn send_ephemeral<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        doc: &DocId,
        data: &[u8],
    ) -> Result<(), CoreError> {
        let r = self.replica(doc)?;
        let (key_id, key) = r
            .log
            .state()
            .current_key()
            .and_then(|k| r.keys.get(&k).map(|key| (k, key.clone())))
            .ok_or(CoreError::NoReadAccess(*doc))?;
        let sealed = SealedEphemeral::seal(rng, &self.identity, *doc, key_id, &key, data)?;
        self.remember_ephemeral(sealed.header().nonce);
        self.forward_ephemeral(*doc, &sealed, &[]);
        Ok(())
    }

    fn on_ephemeral(&mut self, peer: MemberId, doc: DocId, bytes: &[u8]) {
        let Some(r) = self.docs.get(&doc) else { return };
        if r.role_of(&peer).is_none() {
            return; // Only members relay presence to us.
        }
        let sealed = match SealedEphemeral::decode(bytes) {
            Ok(m) if m.header().doc == doc => m,
            Ok(_) => return self.reject_ephemeral(peer, doc, "ephemeral message of another document".into()),
            Err(e) => return self.reject_ephemeral(peer, doc, format!("ephemeral message: {e}")),
        };
        let h = sealed.header().clone();
        if !r.log.state().role(&h.author).is_some_and(Role::can_read) {
            return self.reject_ephemeral(peer, doc, format!("ephemeral message from {}, not a member", h.author));
        }
        let key = r.keys.get(&h.key).cloned();
        let relay = r.doc.is_none();
        if !self.remember_ephemeral(h.nonce) {
            return;
        }
        match key {
            Some(key) => match sealed.open(&key) {
                Ok(data) => self.emit(Event::Ephemeral {
                    doc,
                    from: h.author,
                    data,
                }),
                Err(e) => self.reject_ephemeral(peer, doc, format!("ephemeral message: {e}")),
            },
            // A member that cannot read it (a relay) passes it on; readers
            // are leaves, so messages do not flood a mesh of peers.
            None if relay => self.forward_ephemeral(doc, &sealed, &[peer, h.author]),
            None => {}
        }
    }

    fn forward_ephemeral(&mut self, doc: DocId, sealed: &SealedEphemeral, except: &[MemberId]) {
        let Some(r) = self.docs.get(&doc) else { return };
        let to: Vec<MemberId> = self
            .peers
            .keys()
            .filter(|p| !except.contains(p) && r.role_of(p).is_some())
            .copied()
            .collect();
        let msg = Message::Ephemeral {
            doc,
            message: ByteBuf::from(sealed.encoded().to_vec()),
        };
        for p in to {
            self.send(p, &msg);
        }
    }

    /// Remember a nonce; false if it was already known.
    fn remember_ephemeral(&mut self, nonce: [u8; NONCE_LEN]) -> bool {
        let (set, order) = &mut self.seen_ephemeral;
        if !set.insert(nonce) {
            return false;
        }
        order.push_back(nonce);
        if order.len() > SEEN_EPHEMERAL
            && let Some(old) = order.pop_front()
        {
            set.remove(&old);
        }
        true
    }

    fn reject_ephemeral(&mut self, peer: MemberId, doc: DocId, reason: String) {
        tracing::warn!(me = %self.me, %peer, %doc, %reason, "ephemeral message rejected");
        self.emit(Event::Rejected {
            peer: Some(peer),
            doc,
            reason,
        });
    }

    fn on_hello(&mut self, peer: MemberId, version: u16, docs: Vec<(DocId, Digest)>) {
        if version != PROTOCOL_VERSION {
            return self.disconnect(peer, format!("protocol version {version} is not {PROTOCOL_VERSION}"));
        }
        if let Some(p) = self.peers.get_mut(&peer) {
            p.greeted = true;
        }
        let theirs: BTreeMap<DocId, Digest> = docs.into_iter().collect();
        let mut to_have = Vec::new();
        for (d, dg) in &theirs {
            match (self.docs.get(d), self.peers.get_mut(&peer)) {
                (Some(r), Some(p)) if r.digest() == *dg => {
                    // Same state on both sides: open the session as if Haves
                    // had been exchanged, so later changes are pushed.
                    let pd = p.docs.entry(*d).or_default();
                    pd.heads = r.log.heads();
                    pd.vv = r.vv.clone();
                    pd.snapshots = r.snapshot_ids();
                    pd.acked = Some((pd.heads.clone(), pd.vv.clone()));
                    pd.last_sent = Some(*dg);
                }
                _ => to_have.push(*d),
            }
        }
        // Documents we share with the peer that it did not mention.
        to_have.extend(
            self.docs
                .values()
                .filter(|r| !theirs.contains_key(&r.id) && (!r.log.is_rooted() || r.role_of(&peer).is_some()))
                .map(|r| r.id),
        );
        for doc in to_have {
            self.send_have(peer, doc);
        }
    }

    /// The peer refused data of `doc` we sent it.
    fn on_refused(&mut self, peer: MemberId, doc: DocId, reason: Refusal) {
        let Some(pd) = self.peers.get_mut(&peer).and_then(|p| p.docs.get_mut(&doc)) else {
            return; // Not something we sent in this session.
        };
        tracing::warn!(me = %self.me, %peer, %doc, %reason, "peer refused our data");
        if reason.is_transient() {
            // It did not keep what we sent: send it again when it has room.
            match &pd.acked {
                Some((heads, vv)) => {
                    pd.heads = heads.clone();
                    pd.vv = vv.clone();
                }
                None => {
                    pd.heads.clear();
                    pd.vv = VersionVector::default();
                }
            }
        }
        pd.refused = Some(reason.clone());
        self.emit(Event::PeerRefused { peer, doc, reason });
    }

    /// Tell `peer` we refused data of `doc` it sent.
    fn refuse(&mut self, peer: MemberId, doc: DocId, reason: Refusal) {
        self.send(peer, &Message::Refused { doc, reason });
    }

    fn on_have(&mut self, peer: MemberId, doc: DocId, heads: Vec<OpHash>, vv: VersionVector, snapshots: Vec<[u8; 32]>) {
        let holds_ours = self
            .docs
            .get(&doc)
            .is_some_and(|r| vv.dominates(&r.vv) && r.log.known_to(&heads));
        if let Some(p) = self.peers.get_mut(&peer) {
            let pd = p.docs.entry(doc).or_default();
            pd.heads = heads.clone();
            // Merge rather than replace: chunks we sent after the peer wrote
            // this `Have` are still on their way, and must not be sent again.
            pd.vv.merge(&vv);
            for s in snapshots {
                if !pd.snapshots.contains(&s) {
                    pd.snapshots.push(s);
                }
            }
            pd.acked = Some((heads.clone(), vv.clone()));
            if holds_ours {
                pd.refused = None;
            }
        }
        self.emit(Event::PeerHas { peer, doc, vv, heads });
        self.push_missing(peer, doc);
        self.send_have(peer, doc);
    }

    fn on_ops<R: CryptoRng + ?Sized>(&mut self, rng: &mut R, peer: MemberId, doc: DocId, ops: Vec<ByteBuf>) {
        let is_new = !self.docs.contains_key(&doc);
        let mut r = self
            .docs
            .remove(&doc)
            .unwrap_or_else(|| DocReplica::new(AccessLog::new(doc)));
        let mut batch = StoreBatch::default();
        let mut rejected = Vec::new();
        let before = r.log.state().clone();
        for bytes in &ops {
            match crate::access::AccessOp::decode(bytes) {
                Err(e @ (VerifyError::BadSignature | VerifyError::Decode(_))) => {
                    self.docs.extend((!is_new).then_some((doc, r)));
                    self.refuse(peer, doc, Refusal::from_verify(&e));
                    return self.disconnect(peer, "sent a forged or malformed access op".into());
                }
                Err(e) => rejected.push(e),
                Ok(op) => {
                    let h = op.hash();
                    match r.log.insert(bytes) {
                        Ok(Inserted::New | Inserted::Pending) => batch.put(record::op(&h), bytes.to_vec()),
                        Ok(Inserted::Duplicate) => {}
                        Err(e) => rejected.push(e),
                    }
                }
            }
        }
        if let Some(first) = rejected.first() {
            self.refuse(peer, doc, Refusal::from_verify(first));
        }
        for e in rejected {
            self.emit(Event::Rejected {
                peer: Some(peer),
                doc,
                reason: e.to_string(),
            });
        }
        if is_new {
            let wanted = r.role_of(&self.me).is_some() || !r.local.invites.is_empty();
            if !wanted || batch.is_empty() {
                return self.send_have(peer, doc);
            }
            if self.docs.len() >= self.config.max_docs {
                let max = self.config.max_docs;
                tracing::warn!(%peer, %doc, max, "document limit reached; not stored");
                self.refuse(peer, doc, Refusal::DocumentLimit { max: max as u64 });
                return self.emit(Event::Rejected {
                    peer: Some(peer),
                    doc,
                    reason: format!("this node holds its limit of {max} documents"),
                });
            }
        }
        let changed = r.log.state() != &before;
        let heads_before = r.doc.as_mut().map(|d| d.get_heads());
        if let Err(e) = r.refresh_keys(rng, &self.identity) {
            self.emit(Event::Rejected {
                peer: Some(peer),
                doc,
                reason: e.to_string(),
            });
        }
        let patches = diff_since(&mut r, heads_before);
        self.docs.insert(doc, r);
        self.store(doc, batch);
        if is_new {
            self.emit(Event::DocAdded { doc });
        }
        if let Some(patches) = patches {
            self.emit(Event::DocChanged {
                doc,
                patches,
                origin: Origin::Remote(peer),
            });
        }
        if changed {
            self.heal_keys(rng, &doc);
            self.access_changed(&doc);
        } else {
            self.push_all_except(&doc, Some(peer));
        }
        self.send_have(peer, doc);
    }

    fn on_chunks(&mut self, peer: MemberId, doc: DocId, chunks: Vec<ByteBuf>) {
        let Some(r) = self.docs.get_mut(&doc) else { return };
        let heads_before = r.doc.as_mut().map(|d| d.get_heads());
        let mut batch = StoreBatch::default();
        let mut rejected = Vec::new();
        let mut forged = None;
        let mut sent = Vec::new();
        for bytes in &chunks {
            let chunk = match SealedChunk::decode(bytes) {
                Ok(c) => c,
                Err(e) => {
                    forged = Some(e);
                    break;
                }
            };
            sent.push((chunk.chunk_ref(), chunk.covers().cloned()));
            let held = chunk.clone();
            match r.accept(chunk, false) {
                Ok(Accepted::New { deletes }) => {
                    batch.put_chunks(&[held]);
                    batch.delete_chunks(&deletes);
                }
                Ok(Accepted::Duplicate) => {}
                Err(e) => rejected.push(e),
            }
        }
        let patches = diff_since(r, heads_before);
        self.store(doc, batch);
        if let Some(first) = rejected.first().or(forged.as_ref()) {
            self.refuse(peer, doc, Refusal::from_verify(first));
        }
        for e in rejected {
            let reason = e.to_string();
            tracing::warn!(me = %self.me, %peer, %doc, %reason, "chunk rejected");
            self.emit(Event::Rejected {
                peer: Some(peer),
                doc,
                reason,
            });
        }
        if let Some(patches) = patches {
            self.emit(Event::DocChanged {
                doc,
                patches,
                origin: Origin::Remote(peer),
            });
        }
        if let Some(e) = forged {
            return self.disconnect(peer, format!("sent a forged or malformed chunk: {e}"));
        }
        if let Some(p) = self.peers.get_mut(&peer) {
            // What the sender sent, it has: never echo those chunks back.
            let pd = p.docs.entry(doc).or_default();
            for (r, covers) in sent {
                match r {
                    ChunkRef::Change(a, s) if pd.vv.get(&a).checked_add(1) == Some(s) => pd.vv.set(a, s),
                    ChunkRef::Snapshot(d) => {
                        pd.vv.merge(&covers.unwrap_or_default());
                        pd.snapshots.push(d);
                    }
                    ChunkRef::Change(..) => {}
                }
            }
        }
        self.push_all_except(&doc, Some(peer));
        self.send_have(peer, doc);
    }

    /// Send our state of `doc` to `peer` unless it already has this exact state.
    fn send_have(&mut self, peer: MemberId, doc: DocId) {
        let (heads, vv, snapshots, digest) = match self.docs.get(&doc) {
            Some(r) if r.role_of(&peer).is_some() || !r.log.is_rooted() => {
                (r.log.heads(), r.vv.clone(), r.snapshot_ids(), r.digest())
            }
            Some(r) => (r.log.heads(), VersionVector::default(), Vec::new(), r.digest()),
            None => (Vec::new(), VersionVector::default(), Vec::new(), [0; 16]),
        };
        let Some(p) = self.peers.get_mut(&peer) else { return };
        let pd = p.docs.entry(doc).or_default();
        if pd.last_sent == Some(digest) {
            return;
        }
        pd.last_sent = Some(digest);
        self.send(
            peer,
            &Message::Have {
                doc,
                heads,
                vv,
                snapshots,
            },
        );
    }

    /// Send `peer` the ops and chunks it lacks, as far as we know. Ops
    /// always go out (they are small and gate everything else); chunks stop
    /// once the peer's send window is full and resume from
    /// [`transmitted`](Self::transmitted).
    fn push_missing(&mut self, peer: MemberId, doc: DocId) {
        let window = self.config.send_window;
        let (Some(r), Some(p)) = (self.docs.get(&doc), self.peers.get_mut(&peer)) else {
            return;
        };
        let Some(pd) = p.docs.get_mut(&doc) else { return };
        let member = r.role_of(&peer).is_some();
        let mut messages = Vec::new();
        if member || !r.log.is_rooted() {
            let ops: Vec<ByteBuf> = r
                .log
                .missing_for(&pd.heads)
                .iter()
                .map(|o| ByteBuf::from(o.encoded().to_vec()))
                .collect();
            if !ops.is_empty() {
                pd.heads = r.log.heads();
                // In order, a message of at most about BATCH_TARGET_LEN each.
                messages.extend(in_batches(ops).map(|ops| Message::Ops { doc, ops }));
            }
        }
        p.backlog.remove(&doc);
        if member {
            let mut budget = window.saturating_sub(p.queued);
            let mut batch = Vec::new();
            let mut size = 0;
            for c in r.missing_for(&pd.vv, &pd.snapshots) {
                if budget == 0 {
                    p.backlog.insert(doc);
                    break;
                }
                let len = c.encoded().len();
                // A message holds chunks up to BATCH_TARGET_LEN in all, or
                // one larger chunk alone: never more than a frame.
                if !batch.is_empty() && size + len > BATCH_TARGET_LEN {
                    messages.push(Message::Chunks {
                        doc,
                        chunks: core::mem::take(&mut batch),
                    });
                    size = 0;
                }
                batch.push(ByteBuf::from(c.encoded().to_vec()));
                size += len;
                budget = budget.saturating_sub(len);
                // The peer will hold what we send: the stream is ordered and
                // reliable, and a broken one ends the session.
                match c.chunk_ref() {
                    ChunkRef::Change(a, s) => pd.vv.set(a, pd.vv.get(&a).max(s)),
                    ChunkRef::Snapshot(d) => {
                        pd.vv.merge(c.covers().unwrap_or(&VersionVector::default()));
                        pd.snapshots.push(d);
                    }
                }
                if size >= BATCH_TARGET_LEN {
                    messages.push(Message::Chunks {
                        doc,
                        chunks: core::mem::take(&mut batch),
                    });
                    size = 0;
                }
            }
            if !batch.is_empty() {
                messages.push(Message::Chunks { doc, chunks: batch });
            }
        }
        for m in messages {
            self.send(peer, &m);
        }
    }

    /// The runtime handed `bytes` of this peer's [`Effect::Send`]s to the
    /// network: room in the send window for held-back chunks.
    pub fn transmitted(&mut self, peer: &MemberId, bytes: usize) {
        let window = self.config.send_window;
        let Some(p) = self.peers.get_mut(peer) else { return };
        p.queued = p.queued.saturating_sub(bytes);
        while let Some(p) = self.peers.get(peer)
            && p.queued < window
            && let Some(doc) = p.backlog.first().copied()
        {
            self.push_missing(*peer, doc);
        }
    }

    fn push_all(&mut self, doc: &DocId) {
        self.push_all_except(doc, None);
    }

    /// Push to every peer that has a session on `doc`.
    fn push_all_except(&mut self, doc: &DocId, except: Option<MemberId>) {
        let peers: Vec<MemberId> = self
            .peers
            .iter()
            .filter(|(id, p)| Some(**id) != except && p.docs.contains_key(doc))
            .map(|(id, _)| *id)
            .collect();
        for p in peers {
            self.push_missing(p, *doc);
        }
    }

    /// After the access log changed: tell the app, and bring every peer up
    /// to date (a new member gets everything; a revoked one gets nothing new).
    fn access_changed(&mut self, doc: &DocId) {
        self.emit(Event::AccessChanged { doc: *doc });
        let peers: Vec<MemberId> = self.peers.keys().copied().collect();
        for p in peers {
            let shares = self
                .docs
                .get(doc)
                .is_some_and(|r| r.role_of(&p).is_some() || !r.log.is_rooted());
            let session = self.peers.get(&p).is_some_and(|x| x.docs.contains_key(doc));
            if shares || session {
                self.send_have(p, *doc);
                self.push_missing(p, *doc);
            }
        }
    }

    fn send(&mut self, peer: MemberId, msg: &Message) {
        let message = msg.encode();
        if message.len() > MAX_FRAME_LEN {
            // Every message is built within the limits: this is a bug, and
            // the peer would end the session over it.
            tracing::error!(%peer, len = message.len(), "a message over the frame limit was not sent");
            debug_assert!(false, "message of {} bytes over the frame limit", message.len());
            return;
        }
        if let Some(p) = self.peers.get_mut(&peer) {
            p.queued = p.queued.saturating_add(message.len());
        }
        self.effects.push_back(Effect::Send { peer, message });
    }

    fn persist(&mut self, doc: DocId, puts: Vec<(Vec<u8>, Vec<u8>)>, deletes: Vec<Vec<u8>>) {
        if !puts.is_empty() || !deletes.is_empty() {
            self.effects.push_back(Effect::Persist { doc, puts, deletes });
        }
    }

    fn store(&mut self, doc: DocId, batch: StoreBatch) {
        let (puts, deletes) = batch.finish();
        self.persist(doc, puts, deletes);
    }

    fn emit(&mut self, e: Event) {
        if matches!(e, Event::Rejected { .. }) {
            self.rejected += 1;
        }
        self.effects.push_back(Effect::Event(e));
    }

    fn disconnect(&mut self, peer: MemberId, reason: String) {
        tracing::warn!(%peer, %reason, "dropping peer");
        self.peers.remove(&peer);
        self.effects.push_back(Effect::Disconnect { peer, reason });
    }
}

/// Records as (key, value) pairs.
type Records = Vec<(Vec<u8>, Vec<u8>)>;

/// The records one node call writes to a document: chunks and ops to put,
/// chunks compaction dropped. A chunk put and dropped in the same batch (a
/// batch folded into a snapshot at once) is neither written nor deleted.
#[derive(Default)]
struct StoreBatch {
    puts: Records,
    deletes: Vec<Vec<u8>>,
}

impl StoreBatch {
    fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.puts.push((key, value));
    }

    fn put_chunks(&mut self, chunks: &[SealedChunk]) {
        for c in chunks {
            self.put(record::chunk(&c.chunk_ref()), c.encoded().to_vec());
        }
    }

    fn delete_chunks(&mut self, gone: &[ChunkRef]) {
        self.deletes.extend(gone.iter().map(record::chunk));
    }

    fn is_empty(&self) -> bool {
        self.puts.is_empty() && self.deletes.is_empty()
    }

    fn finish(mut self) -> (Records, Vec<Vec<u8>>) {
        let deletes: BTreeSet<&Vec<u8>> = self.deletes.iter().collect();
        self.puts.retain(|(k, _)| !deletes.contains(k));
        (self.puts, self.deletes)
    }
}

/// Encoded items in order, as lists of at most about [`BATCH_TARGET_LEN`]
/// bytes each (an item larger than that alone).
fn in_batches(items: Vec<ByteBuf>) -> impl Iterator<Item = Vec<ByteBuf>> {
    let mut batches: Vec<Vec<ByteBuf>> = Vec::new();
    let mut size = 0;
    for item in items {
        match batches.last_mut() {
            Some(last) if size + item.len() <= BATCH_TARGET_LEN => {
                size += item.len();
                last.push(item);
            }
            _ => {
                size = item.len();
                batches.push(vec![item]);
            }
        }
    }
    batches.into_iter()
}

/// Patches between `before` and the current heads, if anything changed.
fn diff_since(r: &mut DocReplica, before: Option<Vec<automerge::ChangeHash>>) -> Option<Vec<Patch>> {
    let d = r.doc.as_mut()?;
    let before = before.unwrap_or_default();
    let after = d.get_heads();
    (before != after).then(|| {
        let patches = d.diff(&before, &after);
        d.update_diff_cursor();
        patches
    })
}
