//! Loading, creating, reading, changing and sealing documents.

use std::time::Duration;

use automerge::{AutoCommit, Patch};
use rand_core::CryptoRng;

use super::timers::Timer;
use super::{Node, effect::*, store::StoreBatch};
use crate::access::{AccessLog, Role};
use crate::chunk::SealedChunk;
use crate::error::CoreError;
use crate::fence::fenced;
use crate::ids::DocId;
use crate::limits::MAX_ASSEMBLED_LEN;
use crate::replica::{DocReplica, DocSummary, LocalState, record};

impl Node {
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
        if self.docs.contains_key(&doc) {
            // Loaded meanwhile (by another call for the same need).
            return Ok(report);
        }
        let mut log = AccessLog::new(doc);
        let mut chunks = Vec::new();
        let mut local = (LocalState::default(), Vec::new());
        let mut indexed = None;
        for (key, value) in &records {
            match key.first() {
                Some(&record::INDEX) => match DocSummary::decode(value) {
                    Ok(s) => indexed = Some(s),
                    Err(e) => report.problems.push(format!("index entry skipped: {e}")),
                },
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
                    Ok(l) => local = (l, value.clone()),
                    Err(e) => report.problems.push(format!("local state skipped: {e}")),
                },
                _ => report.problems.push("unknown record skipped".into()),
            }
        }
        if log.is_empty() {
            // Nothing verifiable names this document: do not invent one.
            report.problems.push("no valid access-log op; nothing loaded".into());
            self.unloaded.remove(&doc);
            self.load_failed(&doc);
            return Ok(report);
        }
        let mut replica = DocReplica::new(log);
        (replica.local, replica.local_sealed) = local;
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
        let summary = DocSummary::of(&replica);
        self.docs.insert(doc, replica);
        self.unloaded.remove(&doc);
        // The records win over the index entry: a missing entry (a home
        // written before the index) is added, a stale one rewritten.
        if indexed.as_ref() != Some(&summary) {
            if indexed.is_some() {
                report
                    .problems
                    .push("the index entry disagreed with the records; rebuilt from them".into());
            }
            self.write(doc, Vec::new(), Vec::new());
        }
        if oversized {
            // Stored by a release that sealed without a size limit: peers
            // would refuse it. Its author folds it into a snapshot sealed in
            // parts (the Persist effect this emits must be carried out).
            report
                .problems
                .push("a chunk over the size peers accept was found; it is folded into a new snapshot".into());
            self.snapshot_now(rng, &doc)?;
        }
        self.resume(rng, doc);
        Ok(report)
    }

    /// Create a document owned by this device.
    pub fn create_doc<R: CryptoRng + ?Sized>(&mut self, rng: &mut R) -> Result<DocId, CoreError> {
        self.host_only("creating a document")?;
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
        Ok(f(self.replica(doc)?.readable()?))
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
        self.touch(doc);
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
                **d = undone;
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
            self.edited_here(*doc, Some(patches));
        }
        Ok(out)
    }

    /// `doc` holds new edits of this device (its own, or a guest tab's),
    /// with `patches` if its content changed: they are sealed at the next
    /// `handle_timeout`, or a window later if the document was sealed less
    /// than a window ago (or at an explicit flush); the app hears them.
    pub(super) fn edited_here(&mut self, doc: DocId, patches: Option<Vec<Patch>>) {
        let wait = if self.config.seal_at_once {
            Duration::ZERO
        } else {
            self.config.flush_window
        };
        self.timers.start(Timer::Flush(doc), wait);
        if let Some(patches) = patches {
            self.emit(Event::DocChanged {
                doc,
                patches,
                origin: Origin::Local,
            });
        }
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
        self.timers.stop(Timer::Flush(*doc));
        if self.config.guest {
            return self.forward_to_host(doc);
        }
        let policy = self.config.compaction;
        let identity = self.identity.clone();
        let now = self.now;
        let r = self.replica_mut(doc)?;
        let chunks = r.flush(rng, &identity)?;
        if chunks.is_empty() {
            return Ok(false);
        }
        r.sealed_at = now;
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
        self.host_only("naming a document")?;
        let r = self.replica_mut(doc)?;
        r.local.name = name;
        self.save_local(rng, doc)
    }

    pub(super) fn save_local<R: CryptoRng + ?Sized>(&mut self, rng: &mut R, doc: &DocId) -> Result<(), CoreError> {
        let bytes = self.replica(doc)?.local.seal(rng, &self.identity, doc);
        self.replica_mut(doc)?.local_sealed = bytes.clone();
        self.persist(*doc, vec![(record::local(), bytes)], Vec::new());
        Ok(())
    }

    /// Facts about a document.
    pub fn info(&self, doc: &DocId) -> Result<DocInfo, CoreError> {
        if let Some(s) = self.unloaded.get(doc).map(|e| e.summary()) {
            let local = LocalState::open(&s.local, &self.identity, doc).unwrap_or_default();
            return Ok(DocInfo {
                doc: *doc,
                name: local.name,
                my_role: s.role(&self.me),
                members: s.members.clone(),
                vv: s.vv.clone(),
                log_ops: s.log_ops as usize,
                chunks: s.chunks as usize,
                stored_bytes: s.stored_bytes as usize,
                readable: s.readable,
            });
        }
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

    pub(super) fn snapshot_now<R: CryptoRng + ?Sized>(&mut self, rng: &mut R, doc: &DocId) -> Result<(), CoreError> {
        self.host_only("compacting a document")?;
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
}

/// Patches between `before` and the current heads, if anything changed.
pub(super) fn diff_since(r: &mut DocReplica, before: Option<Vec<automerge::ChangeHash>>) -> Option<Vec<Patch>> {
    let d = r.doc.as_mut()?;
    let before = before.unwrap_or_default();
    let after = d.get_heads();
    (before != after).then(|| {
        let patches = d.diff(&before, &after);
        d.update_diff_cursor();
        patches
    })
}
