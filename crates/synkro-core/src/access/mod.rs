//! The access log: who may do what to a document, and which keys exist.
//!
//! Each document has a signed, hash-linked DAG of [`AccessOp`]s. The first
//! is the genesis, whose hash *is* the [`DocId`]. Every later op names the
//! heads its author knew (`prev`), so concurrent admin ops form branches
//! that every replica merges the same way.
//!
//! ## Evaluation (deterministic on every replica)
//! 1. Ops whose ancestors are all present are put in a topological order;
//!    among ops ready at the same time, revokes come first, then ascending
//!    hash.
//! 2. An op is *authorised* when its author holds the needed role in the
//!    state built from its own valid ancestors only: authority never comes
//!    from something the author could not have seen.
//! 3. **Revoke wins**: an op by (or a grant to) a member who is revoked by a
//!    valid revoke *concurrent* with the op is invalid. Two passes settle
//!    revokes first, then everything else.
//! 4. The final state folds the valid ops in that order.
//!
//! Invalid ops are kept (they are part of the hash chain) but have no effect.
//! Keys: the genesis and each rotate introduce a document key, named by the
//! op's hash ([`KeyId`]) and sealed (HPKE) to each reader. A rotate also
//! wraps the key it replaces under the new key, so whoever holds the newest
//! key can unwrap every older one.

mod op;
mod state;

pub use op::*;
pub use state::*;

use std::collections::{BTreeMap, BTreeSet, BinaryHeap};

use rand_core::CryptoRng;

use crate::crypto::{SealedKey, SymmetricKey, random_array};
use crate::error::VerifyError;
use crate::identity::DeviceIdentity;
use crate::ids::{DocId, OpHash};

/// Result of [`AccessLog::insert`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Inserted {
    /// New and connected; the state was re-evaluated.
    New,
    /// New, but waiting for parents we do not have.
    Pending,
    /// Already held.
    Duplicate,
}

/// One document's access log.
#[derive(Clone, Debug)]
pub struct AccessLog {
    doc: DocId,
    ops: BTreeMap<OpHash, Box<AccessOp>>,
    pending: BTreeMap<OpHash, Box<AccessOp>>,
    order: Vec<OpHash>,
    valid: BTreeSet<OpHash>,
    state: AccessState,
}

impl AccessLog {
    /// An empty log for `doc` (e.g. a document being joined).
    pub fn new(doc: DocId) -> Self {
        Self {
            doc,
            ops: BTreeMap::new(),
            pending: BTreeMap::new(),
            order: Vec::new(),
            valid: BTreeSet::new(),
            state: AccessState::default(),
        }
    }

    /// Create a document: returns its log (holding the genesis) and first key.
    pub fn create<R: CryptoRng + ?Sized>(identity: &DeviceIdentity, rng: &mut R) -> (Self, SymmetricKey) {
        let key = SymmetricKey::generate(rng);
        let nonce = random_array(rng);
        let me = identity.member_id();
        let ctx = seal_context(&genesis_context(&nonce), &me);
        let sealed = SealedKey::seal(rng, &identity.exchange_key(), &key, &ctx).unwrap_or(SealedKey {
            enc: [0; 32],
            ciphertext: Vec::new(),
        });
        let body = OpBody {
            version: OP_VERSION,
            doc: None,
            author: me,
            prev: Vec::new(),
            action: Action::Genesis {
                exchange: identity.exchange_key(),
                nonce,
                key: sealed,
            },
        };
        let op = AccessOp::sign(identity, body);
        let mut log = Self::new(DocId(op.hash.0));
        log.ops.insert(op.hash, Box::new(op));
        log.evaluate();
        (log, key)
    }

    /// The document.
    pub fn doc(&self) -> DocId {
        self.doc
    }

    /// The evaluated state.
    pub fn state(&self) -> &AccessState {
        &self.state
    }

    /// Has the genesis arrived (is the log usable)?
    pub fn is_rooted(&self) -> bool {
        self.ops.contains_key(&OpHash(self.doc.0))
    }

    /// Number of ops held (connected and pending).
    pub fn len(&self) -> usize {
        self.ops.len() + self.pending.len()
    }

    /// True when no op is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Is this op held (connected or pending)?
    pub fn contains(&self, h: &OpHash) -> bool {
        self.ops.contains_key(h) || self.pending.contains_key(h)
    }

    /// Get a held op.
    pub fn get(&self, h: &OpHash) -> Option<&AccessOp> {
        self.ops.get(h).or_else(|| self.pending.get(h)).map(|op| &**op)
    }

    /// Was this op found valid?
    pub fn is_valid(&self, h: &OpHash) -> bool {
        self.valid.contains(h)
    }

    /// Heads of the connected part of the log (ops whose ancestors are all
    /// here): what new ops build on and what a peer is told we hold.
    /// Ops still waiting for parents are not heads: we lack their ancestors.
    pub fn heads(&self) -> Vec<OpHash> {
        let parents: BTreeSet<OpHash> = self.ops.values().flat_map(|o| o.body.prev.iter().copied()).collect();
        self.ops.keys().filter(|h| !parents.contains(h)).copied().collect()
    }

    /// Ops waiting for parents.
    pub fn pending(&self) -> impl Iterator<Item = &OpHash> {
        self.pending.keys()
    }

    /// Decode, verify and insert an op received from anyone. An op held
    /// already (the same bytes) is not decoded or verified again.
    pub fn insert(&mut self, bytes: &[u8]) -> Result<Inserted, VerifyError> {
        if self.contains(&AccessOp::hash_of(bytes)) {
            return Ok(Inserted::Duplicate);
        }
        let op = AccessOp::decode(bytes)?;
        self.insert_op(op)
    }

    fn insert_op(&mut self, op: AccessOp) -> Result<Inserted, VerifyError> {
        if self.contains(&op.hash) {
            return Ok(Inserted::Duplicate);
        }
        match op.body.doc {
            None if op.hash.0 != self.doc.0 => {
                return Err(VerifyError::Invalid("genesis of another document"));
            }
            None if !op.body.prev.is_empty() || !matches!(op.body.action, Action::Genesis { .. }) => {
                return Err(VerifyError::Invalid("malformed genesis"));
            }
            Some(d) if d != self.doc => {
                return Err(VerifyError::WrongDocument {
                    expected: self.doc,
                    found: d,
                });
            }
            Some(_) if op.body.prev.is_empty() || matches!(op.body.action, Action::Genesis { .. }) => {
                return Err(VerifyError::Invalid("op without parents"));
            }
            _ => {}
        }
        if self.ops.len() >= MAX_LOG_OPS {
            return Err(VerifyError::Invalid("access log is full"));
        }
        if !op.body.prev.iter().all(|p| self.ops.contains_key(p)) {
            if self.pending.len() >= MAX_PENDING_OPS {
                return Err(VerifyError::Invalid("too many ops waiting for parents"));
            }
            self.pending.insert(op.hash, Box::new(op));
            return Ok(Inserted::Pending);
        }
        let inserted = op.hash;
        self.ops.insert(op.hash, Box::new(op));
        // Connect pending ops whose parents have now all arrived.
        loop {
            let ready: Vec<OpHash> = self
                .pending
                .values()
                .filter(|o| o.body.prev.iter().all(|p| self.ops.contains_key(p)))
                .map(|o| o.hash)
                .collect();
            if ready.is_empty() {
                break;
            }
            for h in ready {
                if let Some(o) = self.pending.remove(&h) {
                    self.ops.insert(h, o);
                }
            }
        }
        // Drop what no ancestor authorises: keeping it would let anyone who
        // can reach a replica grow every member's log (and fill it).
        let unauthorised = self.evaluate();
        if !unauthorised.is_empty() {
            for h in &unauthorised {
                self.ops.remove(h);
            }
            self.evaluate();
        }
        if unauthorised.contains(&inserted) {
            return Err(VerifyError::Unauthorised);
        }
        Ok(Inserted::New)
    }

    /// Append a new op authored by `identity` on top of the current heads.
    pub(crate) fn append(&mut self, identity: &DeviceIdentity, action: Action) -> Result<AccessOp, VerifyError> {
        let body = OpBody {
            version: OP_VERSION,
            doc: Some(self.doc),
            author: identity.member_id(),
            prev: self.heads(),
            action,
        };
        let op = AccessOp::sign(identity, body);
        self.insert_op(op.clone())?;
        Ok(op)
    }

    /// Ops a peer lacks, given the heads it reported: everything connected
    /// that is not among the ancestors of the heads we recognise (parents
    /// before children), then every pending op (the peer may hold their
    /// parents, which is how a joiner's claim reaches an admin).
    pub fn missing_for(&self, their_heads: &[OpHash]) -> Vec<&AccessOp> {
        let mut known = BTreeSet::new();
        let mut stack: Vec<OpHash> = their_heads
            .iter()
            .filter(|h| self.ops.contains_key(h))
            .copied()
            .collect();
        while let Some(h) = stack.pop() {
            if known.insert(h)
                && let Some(op) = self.get(&h)
            {
                stack.extend(op.body.prev.iter().copied());
            }
        }
        self.order
            .iter()
            .filter_map(|h| self.ops.get(h))
            .chain(self.pending.values())
            .filter(|o| !known.contains(&o.hash))
            .map(|o| &**o)
            .collect()
    }

    /// The valid ops that revoked `member`, with their ancestors: what a
    /// removed member may still be told, so that it learns it was
    /// removed (and nothing of what happened after).
    pub fn up_to_removal_of(&self, member: &crate::ids::MemberId) -> BTreeSet<OpHash> {
        let mut stack: Vec<OpHash> = self
            .order
            .iter()
            .filter(|h| self.is_valid(h))
            .filter(|h| {
                self.ops
                    .get(h)
                    .is_some_and(|o| matches!(o.body.action, Action::Revoke { member: m, .. } if m == *member))
            })
            .copied()
            .collect();
        let mut out = BTreeSet::new();
        while let Some(h) = stack.pop() {
            if out.insert(h)
                && let Some(op) = self.get(&h)
            {
                stack.extend(op.body.prev.iter().copied());
            }
        }
        out
    }

    /// Does a peer with these heads know every connected op we hold?
    pub fn known_to(&self, their_heads: &[OpHash]) -> bool {
        let mut known = BTreeSet::new();
        let mut stack: Vec<OpHash> = their_heads.to_vec();
        while let Some(h) = stack.pop() {
            if known.insert(h)
                && let Some(op) = self.get(&h)
            {
                stack.extend(op.body.prev.iter().copied());
            }
        }
        self.order.iter().all(|h| known.contains(h))
    }

    /// All held ops, parents first (connected ones, then pending).
    pub fn all_ops(&self) -> Vec<&AccessOp> {
        self.missing_for(&[])
    }

    /// Encoded bytes of [`all_ops`](Self::all_ops), without collecting
    /// them (the memory estimate asks for this of every document).
    pub fn encoded_len(&self) -> usize {
        self.order
            .iter()
            .filter_map(|h| self.ops.get(h))
            .chain(self.pending.values())
            .map(|o| o.encoded().len())
            .sum()
    }

    /// Key material of the valid ops, for a replica to open.
    pub fn key_material(&self) -> Vec<KeyMaterial<'_>> {
        let mut out = Vec::new();
        for h in &self.order {
            let Some(op) = self.ops.get(h).filter(|_| self.valid.contains(h)) else {
                continue;
            };
            match &op.body.action {
                Action::Genesis { key, nonce, .. } => out.push(KeyMaterial::Sealed {
                    key: op.hash,
                    to: op.body.author,
                    sealed: key,
                    context: seal_context(&genesis_context(nonce), &op.body.author),
                }),
                Action::Grant {
                    member,
                    key: Some((k, sealed)),
                    ..
                } => out.push(KeyMaterial::Sealed {
                    key: *k,
                    to: *member,
                    sealed,
                    context: seal_context(k, member),
                }),
                Action::Invite {
                    invitee,
                    key: (k, sealed),
                    ..
                } => out.push(KeyMaterial::Sealed {
                    key: *k,
                    to: *invitee,
                    sealed,
                    context: seal_context(k, invitee),
                }),
                Action::Rotate { keys, previous } => {
                    let ctx_key = previous.first().map(|(old, _)| rotate_context(old)).unwrap_or(op.hash);
                    for (to, sealed) in keys {
                        out.push(KeyMaterial::Sealed {
                            key: op.hash,
                            to: *to,
                            sealed,
                            context: seal_context(&ctx_key, to),
                        });
                    }
                    for (old, wrapped) in previous {
                        out.push(KeyMaterial::Wrapped {
                            old: *old,
                            under: op.hash,
                            wrapped,
                        });
                    }
                }
                _ => {}
            }
        }
        out
    }

    /// Evaluate the log; returns the ops their own ancestors do not
    /// authorise (such an op can never become valid: its ancestors are fixed).
    fn evaluate(&mut self) -> BTreeSet<OpHash> {
        let hashes: Vec<OpHash> = self.ops.keys().copied().collect();
        let index: BTreeMap<OpHash, usize> = hashes.iter().enumerate().map(|(i, h)| (*h, i)).collect();
        let n = hashes.len();
        let ops: Vec<&AccessOp> = hashes.iter().filter_map(|h| self.ops.get(h).map(|op| &**op)).collect();
        let parents: Vec<Vec<usize>> = ops
            .iter()
            .map(|o| o.body.prev.iter().filter_map(|p| index.get(p).copied()).collect())
            .collect();

        // Kahn's algorithm; ready ops ordered by (revokes first, hash).
        let mut children = vec![Vec::new(); n];
        let mut indegree = vec![0usize; n];
        for (i, ps) in parents.iter().enumerate() {
            indegree[i] = ps.len();
            for &p in ps {
                children[p].push(i);
            }
        }
        let rank = |i: usize| {
            let revoke = matches!(ops[i].body.action, Action::Revoke { .. });
            core::cmp::Reverse((!revoke, hashes[i]))
        };
        let mut ready: BinaryHeap<(core::cmp::Reverse<(bool, OpHash)>, usize)> =
            (0..n).filter(|&i| indegree[i] == 0).map(|i| (rank(i), i)).collect();
        let mut order = Vec::with_capacity(n);
        while let Some((_, i)) = ready.pop() {
            order.push(i);
            for &c in &children[i] {
                indegree[c] -= 1;
                if indegree[c] == 0 {
                    ready.push((rank(c), c));
                }
            }
        }

        // Ancestor sets as bitsets, filled in topological order.
        let words = n.div_ceil(64);
        let mut anc = vec![vec![0u64; words]; n];
        for &i in &order {
            let mut set = vec![0u64; words];
            for &p in &parents[i] {
                set[p / 64] |= 1 << (p % 64);
                for (w, a) in set.iter_mut().zip(&anc[p]) {
                    *w |= a;
                }
            }
            anc[i] = set;
        }
        let is_anc = |a: usize, of: usize| anc[of][a / 64] & (1 << (a % 64)) != 0;

        let root = index.get(&OpHash(self.doc.0)).copied();
        let mut unauthorised = BTreeSet::new();
        let mut validate = |known_revokes: &[usize]| -> Vec<bool> {
            let mut valid = vec![false; n];
            for (pos, &i) in order.iter().enumerate() {
                if Some(i) == root {
                    valid[i] = true;
                    continue;
                }
                let mut state = AccessState::default();
                let mut claimed = BTreeSet::new();
                for &j in &order[..pos] {
                    if valid[j] && is_anc(j, i) {
                        state.apply(ops[j], &mut claimed);
                    }
                }
                let mut ok = state.authorised(ops[i], &claimed);
                if !ok {
                    unauthorised.insert(hashes[i]);
                }
                if ok {
                    let author = ops[i].body.author;
                    let target = match &ops[i].body.action {
                        Action::Grant { member, .. } | Action::Claim { member, .. } => Some(*member),
                        _ => None,
                    };
                    let earlier = order[..pos].iter().filter(|&&r| valid[r]);
                    let revokes = known_revokes.iter().chain(earlier).copied();
                    for r in revokes {
                        if r == i || is_anc(r, i) || is_anc(i, r) {
                            continue;
                        }
                        if let Action::Revoke { member, .. } = ops[r].body.action
                            && (member == author || Some(member) == target)
                        {
                            ok = false;
                            break;
                        }
                    }
                }
                valid[i] = ok;
            }
            valid
        };
        let first = validate(&[]);
        let revokes: Vec<usize> = (0..n)
            .filter(|&i| first[i] && matches!(ops[i].body.action, Action::Revoke { .. }))
            .collect();
        let valid = validate(&revokes);

        let mut state = AccessState::default();
        let mut claimed = BTreeSet::new();
        for &i in &order {
            if valid[i] {
                state.apply(ops[i], &mut claimed);
            }
        }
        self.order = order.iter().map(|&i| hashes[i]).collect();
        self.valid = order.iter().filter(|&&i| valid[i]).map(|&i| hashes[i]).collect();
        self.state = state;
        unauthorised
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_chacha::rand_core::SeedableRng;

    fn rng() -> ChaCha20Rng {
        ChaCha20Rng::from_seed([1; 32])
    }

    #[test]
    fn genesis_hash_is_doc_id_and_owner_is_admin() {
        let mut r = rng();
        let owner = DeviceIdentity::generate(&mut r);
        let (log, _) = AccessLog::create(&owner, &mut r);
        assert!(log.is_rooted());
        assert_eq!(log.state().role(&owner.member_id()), Some(Role::Admin));
        let mut copy = AccessLog::new(log.doc());
        for op in log.all_ops() {
            assert_eq!(copy.insert(op.encoded()), Ok(Inserted::New));
        }
        assert_eq!(copy.state(), log.state());
        let other = AccessLog::new(DocId([9; 32]));
        let mut other = other;
        assert!(other.insert(log.all_ops()[0].encoded()).is_err());
    }

    #[test]
    fn non_admin_grant_is_ignored_and_concurrent_revoke_wins() {
        let mut r = rng();
        let owner = DeviceIdentity::generate(&mut r);
        let alice = DeviceIdentity::generate(&mut r);
        let mallory = DeviceIdentity::generate(&mut r);
        let (mut log, _) = AccessLog::create(&owner, &mut r);
        let grant = |m: &DeviceIdentity, role| Action::Grant {
            member: m.member_id(),
            exchange: Some(m.exchange_key()),
            role,
            key: None,
        };
        log.append(&owner, grant(&alice, Role::Admin)).unwrap();
        // Mallory, not a member, grants herself admin: refused, not kept.
        assert_eq!(
            log.append(&mallory, grant(&mallory, Role::Admin)).map(|_| ()),
            Err(VerifyError::Unauthorised)
        );
        assert_eq!(log.state().role(&mallory.member_id()), None);
        assert_eq!(log.len(), 2);

        // Concurrently: owner revokes alice, alice grants mallory write.
        let mut branch = log.clone();
        log.append(
            &owner,
            Action::Revoke {
                member: alice.member_id(),
                accept_until: 0,
            },
        )
        .unwrap();
        branch.append(&alice, grant(&mallory, Role::Write)).unwrap();
        for op in branch.all_ops() {
            log.insert(op.encoded()).unwrap();
        }
        assert_eq!(log.state().role(&alice.member_id()), None);
        assert_eq!(
            log.state().role(&mallory.member_id()),
            None,
            "revoke wins over a concurrent grant"
        );
        // The estimate's byte count is that of every op held, invalid ones too.
        let all: usize = log.all_ops().iter().map(|o| o.encoded().len()).sum();
        assert_eq!((log.encoded_len(), log.all_ops().len()), (all, 4));
    }

    #[test]
    fn tampered_op_is_rejected() {
        let mut r = rng();
        let owner = DeviceIdentity::generate(&mut r);
        let (log, _) = AccessLog::create(&owner, &mut r);
        let mut bytes = log.all_ops()[0].encoded().to_vec();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        assert!(AccessLog::new(log.doc()).insert(&bytes).is_err());
    }
}
