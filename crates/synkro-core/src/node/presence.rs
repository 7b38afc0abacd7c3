//! Ephemeral messages (presence, cursors): sealed, forwarded, never stored.

use rand_core::CryptoRng;
use serde_bytes::ByteBuf;

use super::{Node, effect::*};
use crate::access::Role;
use crate::crypto::NONCE_LEN;
use crate::ephemeral::SealedEphemeral;
use crate::error::CoreError;
use crate::ids::{DocId, MemberId};
use crate::message::Message;

/// How many ephemeral nonces a node remembers.
const SEEN_EPHEMERAL: usize = 4096;

impl Node {
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

    pub(super) fn on_ephemeral(&mut self, peer: MemberId, doc: DocId, bytes: &[u8]) {
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

    pub(super) fn forward_ephemeral(&mut self, doc: DocId, sealed: &SealedEphemeral, except: &[MemberId]) {
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
    pub(super) fn remember_ephemeral(&mut self, nonce: [u8; NONCE_LEN]) -> bool {
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

    pub(super) fn reject_ephemeral(&mut self, peer: MemberId, doc: DocId, reason: String) {
        tracing::warn!(me = %self.me, %peer, %doc, %reason, "ephemeral message rejected");
        self.emit(Event::Rejected {
            peer: Some(peer),
            doc,
            reason,
        });
    }
}
