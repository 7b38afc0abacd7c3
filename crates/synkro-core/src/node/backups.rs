//! Encrypted backups of a document: export and import.

use rand_core::CryptoRng;
use serde_bytes::ByteBuf;

use super::{Node, effect::*, store::StoreBatch};
use crate::access::{AccessLog, Action, Inserted};
use crate::backup::Backup;
use crate::chunk::SealedChunk;
use crate::error::CoreError;
use crate::ids::DocId;
use crate::invite::InviteToken;
use crate::replica::{Accepted, DocReplica, record};

impl Node {
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
        self.host_only("restoring a backup")?;
        let backup = Backup::open(bytes, passphrase)?;
        let doc = backup.doc;
        self.check_not_unloaded(&doc)?;
        let is_new = !self.docs.contains_key(&doc);
        let mut r = self
            .docs
            .remove(&doc)
            .unwrap_or_else(|| DocReplica::new(AccessLog::new(doc)));
        let mut batch = StoreBatch::default();
        for op in &backup.ops {
            if let Ok(Inserted::New | Inserted::Pending) = r.log.insert(op) {
                batch.put(record::op(&crate::access::AccessOp::hash_of(op)), op.to_vec());
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

    pub(super) fn import_into<R: CryptoRng + ?Sized>(
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
}
