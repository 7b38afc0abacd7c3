//! The state an access log evaluates to: members and their roles,
//! invitations, revocations, keys, and the key material a replica opens.

use std::collections::{BTreeMap, BTreeSet};

use crate::crypto::{ExchangeKey, SealedKey};
use crate::ids::{KeyId, MemberId, OpHash};

use super::op::*;

/// A current member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// Its role.
    pub role: Role,
    /// Its exchange key, if it gave one.
    pub exchange: Option<ExchangeKey>,
}

/// An open (unclaimed, unrevoked) invitation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invitation {
    /// Role a claimer gets.
    pub role: Role,
    /// Exchange key derived from the invitation secret.
    pub exchange: ExchangeKey,
    /// The invite op.
    pub op: OpHash,
}

/// The result of evaluating an access log.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AccessState {
    /// The creator.
    pub owner: Option<MemberId>,
    /// Current members.
    pub members: BTreeMap<MemberId, Member>,
    /// Open invitations by invitee id.
    pub invites: BTreeMap<MemberId, Invitation>,
    /// Members removed by a revoke.
    pub revoked: BTreeSet<MemberId>,
    /// Members who joined by claiming an invitation, with its invitee id
    /// (keys sealed to the invitation are theirs too).
    pub via_invite: BTreeMap<MemberId, MemberId>,
    /// Revoked writers, with the last change seq of theirs that stays valid.
    pub revoked_writes: BTreeMap<MemberId, u64>,
    /// Document keys in evaluation order; the last is current.
    pub keys: Vec<KeyId>,
}

impl AccessState {
    /// The member's role, if any.
    pub fn role(&self, member: &MemberId) -> Option<Role> {
        self.members.get(member).map(|m| m.role)
    }
    /// May `author` have written change batch `seq` (0 for a snapshot)?
    /// Current writers may; a revoked writer's batches up to the seq its
    /// revoke recorded stay valid, its snapshots do not.
    pub fn may_author(&self, author: &MemberId, seq: u64) -> bool {
        self.role(author).is_some_and(Role::can_write)
            || (seq > 0 && self.revoked_writes.get(author).is_some_and(|until| seq <= *until))
    }

    /// The key new chunks are sealed with.
    pub fn current_key(&self) -> Option<KeyId> {
        self.keys.last().copied()
    }
    /// Members who can decrypt, with their exchange keys.
    pub fn readers(&self) -> impl Iterator<Item = (&MemberId, &ExchangeKey)> {
        self.members
            .iter()
            .filter(|(_, m)| m.role.can_read())
            .filter_map(|(id, m)| m.exchange.as_ref().map(|x| (id, x)))
    }

    pub(super) fn authorised(&self, op: &AccessOp, claimed: &BTreeSet<MemberId>) -> bool {
        let author = op.body.author;
        let admin = self.role(&author).is_some_and(Role::is_admin);
        match &op.body.action {
            Action::Genesis { .. } => false, // only the root, handled by the caller
            Action::Grant {
                member, role, exchange, ..
            } => admin && Some(*member) != self.owner && (!role.can_read() || exchange.is_some()),
            Action::Revoke { member, .. } => admin && Some(*member) != self.owner,
            Action::Rotate { .. } | Action::Invite { .. } => admin,
            Action::Claim { member, .. } => {
                self.invites.contains_key(&author)
                    && !claimed.contains(&author)
                    && !self.members.contains_key(member)
                    && Some(*member) != self.owner
            }
        }
    }

    pub(super) fn apply(&mut self, op: &AccessOp, claimed: &mut BTreeSet<MemberId>) {
        match &op.body.action {
            Action::Genesis { exchange, .. } => {
                self.owner = Some(op.body.author);
                self.members.insert(
                    op.body.author,
                    Member {
                        role: Role::Admin,
                        exchange: Some(*exchange),
                    },
                );
                self.keys.push(op.hash);
            }
            Action::Grant {
                member, exchange, role, ..
            } => {
                let exchange = exchange.or_else(|| self.members.get(member).and_then(|m| m.exchange));
                self.members.insert(*member, Member { role: *role, exchange });
                self.revoked.remove(member);
            }
            Action::Revoke { member, accept_until } => {
                if self.members.get(member).is_some_and(|m| m.role.can_write()) {
                    let until = self.revoked_writes.entry(*member).or_default();
                    *until = (*until).max(*accept_until);
                }
                self.members.remove(member);
                self.invites.remove(member);
                self.revoked.insert(*member);
            }
            Action::Rotate { .. } => self.keys.push(op.hash),
            Action::Invite {
                invitee,
                exchange,
                role,
                ..
            } => {
                self.invites.insert(
                    *invitee,
                    Invitation {
                        role: *role,
                        exchange: *exchange,
                        op: op.hash,
                    },
                );
            }
            Action::Claim { member, exchange } => {
                if let Some(inv) = self.invites.remove(&op.body.author) {
                    claimed.insert(op.body.author);
                    self.via_invite.insert(*member, op.body.author);
                    self.members.insert(
                        *member,
                        Member {
                            role: inv.role,
                            exchange: Some(*exchange),
                        },
                    );
                    self.revoked.remove(member);
                }
            }
        }
    }
}

/// A key-bearing fragment of the log, for a replica to open with its secrets.
#[derive(Clone, Debug)]
pub enum KeyMaterial<'a> {
    /// `key` sealed to `to`.
    Sealed {
        /// Key name.
        key: KeyId,
        /// Recipient member or invitation id.
        to: MemberId,
        /// Sealed bytes.
        sealed: &'a SealedKey,
        /// HPKE associated data it was sealed with.
        context: Vec<u8>,
    },
    /// Key `old` wrapped under key `under`.
    Wrapped {
        /// Key being unwrapped.
        old: KeyId,
        /// Key needed.
        under: KeyId,
        /// Wrapped bytes.
        wrapped: &'a WrappedKey,
    },
}
