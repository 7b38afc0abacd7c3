//! The sync protocol's messages: the greeting and reconciliation, `Have`,
//! ops and chunks in both directions, refusals, and the send window. The
//! sessions they travel on are `session.rs`'s.

use std::collections::BTreeMap;

use rand_core::CryptoRng;
use serde_bytes::ByteBuf;

use super::documents::diff_since;
use super::reconcile::Step;
use super::residency::Waiting;
use super::session::{MAX_PARKED, MAX_PUSH_LOADS, PeerDoc, shares};
use super::timers::Timer;
use super::{Node, effect::*, store::StoreBatch};
use crate::access::{AccessLog, AccessOp, Inserted};
use crate::chunk::{ChunkRef, SealedChunk};
use crate::error::VerifyError;
use crate::ids::{DocId, MemberId, OpHash};
use crate::limits::BATCH_TARGET_LEN;
use crate::message::{Digest, Message, PROTOCOL_VERSION, Refusal};
use crate::replica::{Accepted, DocReplica, record};
use crate::vv::VersionVector;

impl Node {
    /// Handle one message received on `session`. Undecodable input or
    /// forged data produces [`Effect::Disconnect`]; the node itself never
    /// fails.
    pub fn handle_message<R: CryptoRng + ?Sized>(&mut self, rng: &mut R, session: SessionId, bytes: &[u8]) {
        let Some(peer) = self.session_peer(session) else {
            return; // an old session's last frames
        };
        let msg = match Message::decode(bytes) {
            Ok(m) => m,
            Err(e) => return self.disconnect(peer, format!("undecodable message: {e}")),
        };
        if self.needs_load(session, &peer, &msg, bytes) {
            return;
        }
        match msg {
            Message::Hello { version, query } => self.on_hello(peer, version, &query),
            Message::Query { ranges } => self.answer(peer, &ranges),
            Message::Answer { ranges } => self.on_answer(peer, &ranges),
            Message::Reconciled => {
                if let Some(p) = self.peers.get_mut(&peer) {
                    p.recon.answered();
                }
            }
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

    pub(super) fn on_hello(&mut self, peer: MemberId, version: u16, query: &[u8]) {
        if version != PROTOCOL_VERSION {
            return self.disconnect(peer, format!("protocol version {version} is not {PROTOCOL_VERSION}"));
        }
        let Some(p) = self.peers.get_mut(&peer) else { return };
        if p.said_hello {
            return self.disconnect(peer, "sent a second Hello".into());
        }
        p.said_hello = true;
        let session = p.session;
        self.timers.stop(Timer::Hello(session));
        self.answer(peer, query);
    }

    /// Answer a step of the peer's reconciliation.
    fn answer(&mut self, peer: MemberId, query: &[u8]) {
        let Some(p) = self.peers.get_mut(&peer) else { return };
        match p.recon.answer(query) {
            Ok(ranges) => self.send(peer, &Message::Answer { ranges: ranges.into() }),
            Err(e) => self.disconnect(peer, e),
        }
    }

    /// The peer answered a step of our reconciliation.
    fn on_answer(&mut self, peer: MemberId, answer: &[u8]) {
        let Some(p) = self.peers.get_mut(&peer) else { return };
        match p.recon.take_answer(answer) {
            Ok(Step::Query(ranges)) => self.send(peer, &Message::Query { ranges: ranges.into() }),
            Ok(Step::Done(theirs)) => {
                self.send(peer, &Message::Reconciled);
                self.compare(peer, theirs);
            }
            Err(e) => self.disconnect(peer, e),
        }
    }

    /// Our reconciliation with `peer` is over: `theirs` holds each of our
    /// documents the peer holds, with its digest when it was ours at the
    /// session's start.
    fn compare(&mut self, peer: MemberId, theirs: BTreeMap<DocId, Option<Digest>>) {
        let Some(session) = self.session_of(&peer) else { return };
        // Only documents we still share with the peer (a revocation may have
        // come while we reconciled).
        let theirs: BTreeMap<DocId, Option<Digest>> =
            theirs.into_iter().filter(|(d, _)| self.shared_with(d, &peer)).collect();
        let mut to_have = Vec::new();
        for (d, dg) in &theirs {
            // Same state on both sides (from the document, or its index
            // entry when it is not in memory: nothing to load): open the
            // session as if Haves had been exchanged, so later changes are
            // pushed.
            let Some(dg) = *dg else {
                to_have.push(*d);
                continue;
            };
            let same = match (self.docs.get(d), self.unloaded.get(d)) {
                (Some(r), _) => (r.digest() == dg).then(|| (r.log.heads(), r.vv.clone(), r.snapshot_ids())),
                (None, Some(e)) => (e.digest == dg).then(|| {
                    let s = e.summary();
                    (s.heads, s.vv, s.snapshots)
                }),
                (None, None) => None,
            };
            match (same, self.peers.get_mut(&peer)) {
                (Some((heads, vv, snapshots)), Some(p)) => {
                    let pd = p.docs.entry(*d).or_default();
                    if pd.acked.is_none() {
                        // Unless a `Have` of the peer told us more since.
                        pd.acked = Some((heads.clone(), vv.clone()));
                        pd.heads = heads;
                        pd.vv = vv;
                        pd.snapshots = snapshots;
                        pd.last_sent = Some(dg);
                    }
                }
                _ => to_have.push(*d),
            }
        }
        for doc in to_have {
            self.send_have(peer, doc);
        }
        // Documents we share with the peer that it did not mention: it does
        // not hold them, or does not know it shares them (it will not say),
        // so their access log goes first; their chunks follow its `Have`.
        let unmentioned: Vec<DocId> = self.shared_docs(&peer).filter(|d| !theirs.contains_key(d)).collect();
        for doc in unmentioned {
            if self.is_unloaded(&doc) {
                self.wait_for_load(
                    doc,
                    Waiting::Have {
                        session,
                        ops_first: true,
                    },
                );
                continue;
            }
            // Ops first: a peer that does not hold the document yet ignores
            // a `Have` of it.
            self.push_ops(peer, doc);
            self.send_have(peer, doc);
        }
    }

    /// The peer refused data of `doc` we sent it.
    pub(super) fn on_refused(&mut self, peer: MemberId, doc: DocId, reason: Refusal) {
        let Some(pd) = self.peers.get_mut(&peer).and_then(|p| p.docs.get_mut(&doc)) else {
            return; // Not something we sent in this session.
        };
        tracing::warn!(me = %self.me, %peer, %doc, %reason, "peer refused our data");
        if reason.is_transient() {
            // It did not keep what we sent: send it again when it has room,
            // which its next `Have` will tell.
            pd.paused = true;
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
    pub(super) fn refuse(&mut self, peer: MemberId, doc: DocId, reason: Refusal) {
        self.send(peer, &Message::Refused { doc, reason });
    }

    pub(super) fn on_have(
        &mut self,
        peer: MemberId,
        doc: DocId,
        heads: Vec<OpHash>,
        vv: VersionVector,
        snapshots: Vec<[u8; 32]>,
    ) {
        if !self.shared_with(&doc, &peer) && !self.in_session(&peer, &doc) {
            return;
        }
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
            pd.paused = false;
            if holds_ours {
                pd.refused = None;
            }
        }
        self.emit(Event::PeerHas { peer, doc, vv, heads });
        self.push_missing(peer, doc);
        self.send_have(peer, doc);
    }

    pub(super) fn on_ops<R: CryptoRng + ?Sized>(&mut self, rng: &mut R, peer: MemberId, doc: DocId, ops: Vec<ByteBuf>) {
        let is_new = !self.docs.contains_key(&doc);
        // A peer that does not share the document (or a document we do not
        // hold) may still bring ops that make it a member (a joiner's
        // claim), or make us one (a new document): they are taken, and
        // nothing is answered unless they do.
        let stranger = !self.shared_with(&doc, &peer) && !self.in_session(&peer, &doc);
        if !is_new && self.storage != StorageState::Ok && self.brings_new_ops(&doc, &ops) {
            if !stranger {
                self.refuse_for_storage(peer, doc);
            }
            return;
        }
        let mut r = self
            .docs
            .remove(&doc)
            .unwrap_or_else(|| DocReplica::new(AccessLog::new(doc)));
        let mut batch = StoreBatch::default();
        let mut rejected = Vec::new();
        let before = r.log.state().clone();
        for bytes in &ops {
            // An op held already is skipped unverified (it was verified when
            // it came first); decoding and signature errors come as they are.
            match r.log.insert(bytes) {
                Err(e @ (VerifyError::BadSignature | VerifyError::Decode(_))) => {
                    self.docs.extend((!is_new).then_some((doc, r)));
                    if !stranger {
                        self.refuse(peer, doc, Refusal::from_verify(&e));
                    }
                    return self.disconnect(peer, "sent a forged or malformed access op".into());
                }
                Ok(Inserted::New | Inserted::Pending) => {
                    batch.put(record::op(&AccessOp::hash_of(bytes)), bytes.to_vec())
                }
                Ok(Inserted::Duplicate) => {}
                Err(e) => rejected.push(e),
            }
        }
        if let Some(first) = rejected.first()
            && !stranger
        {
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
            if !wanted {
                return self.park(peer, doc, ops); // Not ours (yet): nothing answered.
            }
            if batch.is_empty() {
                return;
            }
            if self.storage != StorageState::Ok {
                return self.refuse_for_storage(peer, doc);
            }
            if self.docs.len() + self.unloaded.len() >= self.config.max_docs {
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
        self.unpark(rng, doc);
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

    /// Keep `ops` of a document not held, within the session's allowance.
    fn park(&mut self, peer: MemberId, doc: DocId, ops: Vec<ByteBuf>) {
        let Some(p) = self.peers.get_mut(&peer) else { return };
        let len: usize = ops.iter().map(|o| o.len()).sum();
        if p.parked_len() + len <= MAX_PARKED {
            p.parked.push((doc, ops));
        }
    }

    /// `doc` is held now: take up the ops peers sent for it before.
    fn unpark<R: CryptoRng + ?Sized>(&mut self, rng: &mut R, doc: DocId) {
        let mut waiting = Vec::new();
        for (id, p) in &mut self.peers {
            if p.parked.iter().any(|(d, _)| *d == doc) {
                let (mine, rest) = std::mem::take(&mut p.parked).into_iter().partition(|(d, _)| *d == doc);
                p.parked = rest;
                waiting.extend(mine.into_iter().map(|(_, ops): (DocId, Vec<ByteBuf>)| (*id, ops)));
            }
        }
        for (peer, ops) in waiting {
            self.on_ops(rng, peer, doc, ops);
        }
    }

    /// Would `ops` add to what we hold of `doc`?
    fn brings_new_ops(&self, doc: &DocId, ops: &[ByteBuf]) -> bool {
        let Some(r) = self.docs.get(doc) else { return false };
        ops.iter().any(|bytes| !r.log.contains(&AccessOp::hash_of(bytes)))
    }

    /// Chunks from a peer that does not share the document with us: forged
    /// ones end the session (whatever the document, so that tells nothing
    /// about it), the rest are dropped unanswered, as if they never came.
    fn ignore_chunks(&mut self, peer: MemberId, chunks: &[ByteBuf]) {
        if let Some(e) = chunks.iter().find_map(|c| SealedChunk::decode(c).err()) {
            self.disconnect(peer, format!("sent a forged or malformed chunk: {e}"));
        }
    }

    /// Would `chunks` add to what we hold of `doc`? (Undecodable ones count
    /// as new: they are for the normal path to reject.)
    fn brings_new_chunks(&self, doc: &DocId, chunks: &[ByteBuf]) -> bool {
        let Some(r) = self.docs.get(doc) else { return false };
        chunks
            .iter()
            .any(|bytes| SealedChunk::decode(bytes).map_or(true, |c| !r.holds(&c.chunk_ref())))
    }

    /// Data from `peer` for `doc` is refused because it could not be
    /// stored; it is told our state again once it can.
    fn refuse_for_storage(&mut self, peer: MemberId, doc: DocId) {
        let reason = match self.storage {
            StorageState::Failed => Refusal::StorageFailed,
            _ => {
                self.full_refused.insert((peer, doc));
                Refusal::StorageFull
            }
        };
        self.refuse(peer, doc, reason);
    }

    pub(super) fn on_chunks(&mut self, peer: MemberId, doc: DocId, chunks: Vec<ByteBuf>) {
        if !self.shared_with(&doc, &peer) && !self.in_session(&peer, &doc) {
            return self.ignore_chunks(peer, &chunks);
        }
        if self.storage != StorageState::Ok && self.brings_new_chunks(&doc, &chunks) {
            return self.refuse_for_storage(peer, doc);
        }
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
    pub(super) fn send_have(&mut self, peer: MemberId, doc: DocId) {
        // (is a member, shares it, heads, vv, snapshots, digest)
        let state = match self.docs.get(&doc) {
            Some(r) => (
                !r.log.is_rooted() || r.role_of(&peer).is_some(),
                shares(r, &peer),
                r.log.heads(),
                r.vv.clone(),
                r.snapshot_ids(),
                r.digest(),
            ),
            // Unloaded, its index entry says where it stands (it is written
            // with every change): no need to read the document to say so.
            None => match self.unloaded.get(&doc).and_then(|e| e.decoded()) {
                Some(s) => {
                    let member = !s.rooted || s.members.iter().any(|(m, _)| *m == peer);
                    let shared = member || s.revoked.contains(&peer);
                    (member, shared, s.heads, s.vv, s.snapshots, s.digest)
                }
                None => {
                    if self.is_unloaded(&doc)
                        && let Some(session) = self.session_of(&peer)
                    {
                        self.wait_for_load(
                            doc,
                            Waiting::Have {
                                session,
                                ops_first: false,
                            },
                        );
                    }
                    return;
                }
            },
        };
        let (heads, vv, snapshots, digest) = match state {
            (true, _, heads, vv, snapshots, digest) => (heads, vv, snapshots, digest),
            // A member no more: where the log stands, nothing of the content.
            (false, shared, heads, _, _, digest) if shared || self.in_session(&peer, &doc) => {
                (heads, VersionVector::default(), Vec::new(), digest)
            }
            _ => return,
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
    pub(super) fn push_missing(&mut self, peer: MemberId, doc: DocId) {
        let window = self.config.send_window;
        let Some(p) = self.peers.get_mut(&peer) else { return };
        // Unloaded, it stays in the backlog: `pump` loads it in its turn.
        let Some(r) = self.docs.get(&doc) else { return };
        // Back in the backlog below if the window fills again.
        p.backlog.remove(&doc);
        let Some(pd) = p.docs.get_mut(&doc) else { return };
        if pd.paused {
            return;
        }
        let member = r.role_of(&peer).is_some();
        let mut messages = Vec::new();
        if member || !r.log.is_rooted() {
            messages.extend(ops_missing(doc, r, pd));
        } else if r.log.state().revoked.contains(&peer) {
            // A removed member hears of its removal, and nothing after it.
            messages.extend(ops_until_removal(doc, r, pd, &peer));
        }
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

    /// Send `peer` the access ops of `doc` it lacks (the whole log if we
    /// know nothing of what it holds), without chunks.
    pub(super) fn push_ops(&mut self, peer: MemberId, doc: DocId) {
        let (Some(r), Some(p)) = (self.docs.get(&doc), self.peers.get_mut(&peer)) else {
            return;
        };
        let pd = p.docs.entry(doc).or_default();
        let messages: Vec<Message> = ops_missing(doc, r, pd).collect();
        for m in messages {
            self.send(peer, &m);
        }
    }

    /// The runtime handed `bytes` of `session`'s [`Effect::Send`]s to the
    /// network: room in the send window for held-back chunks.
    pub fn transmitted(&mut self, session: SessionId, bytes: usize) {
        let Some(peer) = self.session_peer(session) else { return };
        let Some(p) = self.peers.get_mut(&peer) else { return };
        p.queued = p.queued.saturating_sub(bytes);
        self.pump(peer);
    }

    /// Send `peer` held-back chunks while its send window has room. A
    /// document of the backlog that was unloaded meanwhile is loaded first
    /// (at most [`MAX_PUSH_LOADS`] at once) and sent when it is in memory.
    pub(super) fn pump(&mut self, peer: MemberId) {
        let window = self.config.send_window;
        loop {
            let Some(p) = self.peers.get_mut(&peer) else { return };
            if p.queued >= window {
                return;
            }
            let Some(doc) = p.backlog.first().copied() else { return };
            if self.docs.contains_key(&doc) {
                self.push_missing(peer, doc);
                continue;
            }
            if p.push_loads >= MAX_PUSH_LOADS {
                return;
            }
            p.backlog.remove(&doc);
            if self.unloaded.contains_key(&doc) {
                p.push_loads += 1;
                let session = p.session;
                self.wait_for_load(doc, Waiting::Push { session });
            }
        }
    }

    pub(super) fn push_all(&mut self, doc: &DocId) {
        self.push_all_except(doc, None);
    }

    /// Push to every peer that has a session on `doc`.
    pub(super) fn push_all_except(&mut self, doc: &DocId, except: Option<MemberId>) {
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
}

/// The `Ops` messages that bring `pd` up to our access log of `doc`, which
/// it then counts as sent.
fn ops_missing(doc: DocId, r: &DocReplica, pd: &mut PeerDoc) -> impl Iterator<Item = Message> + use<> {
    let ops: Vec<ByteBuf> = r
        .log
        .missing_for(&pd.heads)
        .iter()
        .map(|o| ByteBuf::from(o.encoded().to_vec()))
        .collect();
    if !ops.is_empty() {
        pd.heads = r.log.heads();
    }
    // In order, a message of at most about BATCH_TARGET_LEN each.
    in_batches(ops).map(move |ops| Message::Ops { doc, ops })
}

/// The `Ops` messages that tell removed member `peer` how it was removed:
/// the ops it lacks among those that revoked it and their ancestors.
fn ops_until_removal(
    doc: DocId,
    r: &DocReplica,
    pd: &mut PeerDoc,
    peer: &MemberId,
) -> impl Iterator<Item = Message> + use<> {
    let allowed = r.log.up_to_removal_of(peer);
    let ops: Vec<ByteBuf> = r
        .log
        .missing_for(&pd.heads)
        .iter()
        .filter(|o| allowed.contains(&o.hash()))
        .map(|o| ByteBuf::from(o.encoded().to_vec()))
        .collect();
    if !ops.is_empty() {
        let parents: std::collections::BTreeSet<_> = allowed
            .iter()
            .filter_map(|h| r.log.get(h))
            .flat_map(|o| o.body().prev.iter().copied())
            .collect();
        pd.heads = allowed.into_iter().filter(|h| !parents.contains(h)).collect();
    }
    in_batches(ops).map(move |ops| Message::Ops { doc, ops })
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
