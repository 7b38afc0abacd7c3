//! Members, roles and keys: invitations, grants, revocation, key rotation.

use rand_core::CryptoRng;

use super::{Node, effect::*};
use crate::access::{AccessLog, Action, KeyMaterial, Role, rotate_context, seal_context, wrap_key};
use crate::crypto::{SealedKey, SymmetricKey, random_array};
use crate::error::{CoreError, VerifyError};
use crate::ids::{DocId, MemberId, OpHash};
use crate::invite::{InviteToken, invite_identity};
use crate::replica::{DocReplica, record};

impl Node {
    pub(super) fn append_op(&mut self, doc: &DocId, action: Action) -> Result<OpHash, CoreError> {
        self.host_only("changing who has access")?;
        let identity = self.identity.clone();
        let r = self.replica_mut(doc)?;
        let op = match r.log.append(&identity, action) {
            Err(VerifyError::Unauthorised) => {
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

    pub(super) fn require_admin(&self, doc: &DocId) -> Result<(), CoreError> {
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
        self.host_only("inviting")?;
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
        self.host_only("joining a document")?;
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
        self.check_not_unloaded(&doc)?;
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
    /// granted. Fails with [`CoreError::NotLoaded`] while one such document
    /// is not in memory.
    pub fn replicate_to<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        member: MemberId,
    ) -> Result<Vec<DocId>, CoreError> {
        let me = self.me;
        // Those not in memory are loaded first (the runtime retries).
        if let Some((doc, _)) = self
            .unloaded
            .iter()
            .find(|(_, e)| e.role(&me).is_some_and(Role::is_admin) && e.role(&member).is_none() && !e.revoked(&member))
        {
            return Err(CoreError::NotLoaded(*doc));
        }
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

    /// After merging concurrent access changes, seal the current key to any
    /// reader who lacks it (e.g. one invited while another admin rotated).
    pub(super) fn heal_keys<R: CryptoRng + ?Sized>(&mut self, rng: &mut R, doc: &DocId) {
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

    /// After the access log changed: tell the app, and bring every peer up
    /// to date (a new member gets everything; a revoked one gets nothing new).
    pub(super) fn access_changed(&mut self, doc: &DocId) {
        self.emit(Event::AccessChanged { doc: *doc });
        let peers: Vec<MemberId> = self.peers.keys().copied().collect();
        for p in peers {
            let shares = self
                .docs
                .get(doc)
                .is_some_and(|r| r.role_of(&p).is_some() || !r.log.is_rooted());
            let session = self.peers.get(&p).is_some_and(|x| x.docs.contains_key(doc));
            if shares || session {
                // Ops first: a peer that does not hold the document yet
                // ignores a `Have` of it.
                if let Some(x) = self.peers.get_mut(&p) {
                    x.docs.entry(*doc).or_default();
                }
                self.push_missing(p, *doc);
                self.send_have(p, *doc);
            }
        }
    }
}
