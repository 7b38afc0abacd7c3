//! Who made a change. A device's Automerge actor for a document begins
//! with 8 bytes derived from its member id and the document id (random
//! after that), so a document's history can name the member behind each
//! change, and members cannot be linked across documents by their actors
//! (which plain Automerge exports carry). A change chunk is signed by its
//! author: one holding a change that claims another member's prefix is
//! refused, so the names hold for every change that arrived in a change
//! chunk. (A snapshot carries the changes it folds under its sealer's
//! signature: there the names are as good as that writer.)

use std::collections::BTreeMap;

use automerge::ActorId;
use rand_core::CryptoRng;

use crate::access::AccessState;
use crate::crypto::{hash, random_array};
use crate::error::VerifyError;
use crate::ids::{DocId, MemberId};

const PREFIX_LEN: usize = 8;
type Prefix = [u8; PREFIX_LEN];

fn prefix(doc: &DocId, member: &MemberId) -> Prefix {
    let h = hash("synkro 2026 actor prefix", &[doc.as_bytes(), member.as_bytes()]);
    let mut p = [0u8; PREFIX_LEN];
    p.copy_from_slice(&h[..PREFIX_LEN]);
    p
}

/// A new actor for `member`'s edits of `doc`.
pub(crate) fn new_actor<R: CryptoRng + ?Sized>(doc: &DocId, member: &MemberId, rng: &mut R) -> ActorId {
    let mut bytes = [0u8; 16];
    bytes[..PREFIX_LEN].copy_from_slice(&prefix(doc, member));
    bytes[PREFIX_LEN..].copy_from_slice(&random_array::<8, R>(rng));
    ActorId::from(bytes)
}

/// Is `actor` one of `member`'s actors for `doc`?
pub(crate) fn is_of(actor: &ActorId, doc: &DocId, member: &MemberId) -> bool {
    actor.to_bytes().starts_with(&prefix(doc, member))
}

/// Members (present and removed) by the prefix of their actors.
pub(crate) struct Authors(BTreeMap<Prefix, MemberId>);

impl Authors {
    pub(crate) fn of(doc: &DocId, state: &AccessState) -> Self {
        let everyone = state.members.keys().chain(state.revoked.iter());
        Self(everyone.map(|m| (prefix(doc, m), *m)).collect())
    }

    /// The member whose actor this is, if it is one of theirs.
    pub(crate) fn author(&self, actor: &ActorId) -> Option<MemberId> {
        let p: Prefix = actor.to_bytes().get(..PREFIX_LEN)?.try_into().ok()?;
        self.0.get(&p).copied()
    }
}

/// Refuse changes (`plain`: a change chunk's concatenated Automerge
/// changes) that claim a member of `doc` other than `signer` as their
/// author. Each received chunk is checked: the other members' prefixes
/// are worked out only for a change whose actor is not the signer's.
pub(crate) fn check(doc: &DocId, state: &AccessState, plain: &[u8], signer: &MemberId) -> Result<(), VerifyError> {
    let own = prefix(doc, signer);
    let mut others: Option<Authors> = None;
    for change in split(plain)? {
        let actor = actor_of(change)?;
        if actor.to_bytes().starts_with(&own) {
            continue;
        }
        let authors = others.get_or_insert_with(|| Authors::of(doc, state));
        if authors.author(&actor).is_some_and(|a| a != *signer) {
            return Err(VerifyError::Invalid("a change claims another member as its author"));
        }
    }
    Ok(())
}

const MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];
const CHANGE: u8 = 1;
const COMPRESSED_CHANGE: u8 = 2;
const MALFORMED: VerifyError = VerifyError::Invalid("chunk is not Automerge data");

/// A ULEB128 number at the start of `b`, and the bytes after it.
fn uleb(b: &[u8]) -> Result<(u64, &[u8]), VerifyError> {
    let mut n: u64 = 0;
    for (i, byte) in b.iter().enumerate().take(10) {
        n |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok((n, &b[i + 1..]));
        }
    }
    Err(MALFORMED)
}

/// Automerge chunks laid end to end: magic, checksum, type, length, data.
fn split(mut plain: &[u8]) -> Result<Vec<&[u8]>, VerifyError> {
    let mut out = Vec::new();
    while !plain.is_empty() {
        if plain.len() < 9 || plain[..4] != MAGIC {
            return Err(MALFORMED);
        }
        let (len, rest) = uleb(&plain[9..])?;
        let header = plain.len() - rest.len();
        let end = usize::try_from(len)
            .ok()
            .and_then(|l| header.checked_add(l))
            .filter(|e| *e <= plain.len())
            .ok_or(MALFORMED)?;
        out.push(&plain[..end]);
        plain = &plain[end..];
    }
    Ok(out)
}

/// The actor of one change chunk: read from its header (dependencies,
/// then the actor), or from the whole change if it is compressed.
fn actor_of(change: &[u8]) -> Result<ActorId, VerifyError> {
    match change[8] {
        CHANGE => {
            let (_, data) = uleb(&change[9..])?;
            let (deps, mut rest) = uleb(data)?;
            let skip = usize::try_from(deps)
                .ok()
                .and_then(|d| d.checked_mul(32))
                .ok_or(MALFORMED)?;
            rest = rest.get(skip..).ok_or(MALFORMED)?;
            let (len, rest) = uleb(rest)?;
            let len = usize::try_from(len).map_err(|_| MALFORMED)?;
            Ok(ActorId::from(rest.get(..len).ok_or(MALFORMED)?))
        }
        COMPRESSED_CHANGE => automerge::Change::try_from(change)
            .map(|c| c.actor_id().clone())
            .map_err(|_| MALFORMED),
        _ => Err(MALFORMED),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use automerge::{AutoCommit, ROOT, transaction::Transactable};

    #[test]
    fn actors_are_read_from_plain_and_compressed_changes() {
        use rand_core::SeedableRng;
        let mut rng = rand_chacha::ChaCha20Rng::from_seed([7; 32]);
        let doc = DocId([1; 32]);
        let (a, b) = (MemberId([2; 32]), MemberId([3; 32]));
        let mut d = AutoCommit::new().with_actor(new_actor(&doc, &a, &mut rng));
        d.put(ROOT, "small", 1).unwrap();
        d.commit();
        d.put(ROOT, "large", "x".repeat(4000)).unwrap();
        d.commit();
        let mut plain = Vec::new();
        for mut c in d.get_changes(&[]) {
            plain.extend_from_slice(&c.bytes());
        }
        let changes = split(&plain).unwrap();
        assert_eq!(changes.len(), 2);
        assert!(
            changes.iter().any(|c| c[8] == COMPRESSED_CHANGE),
            "the large change is compressed"
        );
        let mut state = AccessState::default();
        state.revoked.insert(b);
        state.revoked.insert(a);
        let authors = Authors::of(&doc, &state);
        assert_eq!(authors.author(d.get_actor()), Some(a));
        check(&doc, &state, &plain, &a).expect("a signs its own changes");
        assert!(
            check(&doc, &state, &plain, &b).is_err(),
            "b cannot pass a's changes as its own"
        );
        assert!(check(&doc, &state, &plain[..plain.len() - 1], &a).is_err(), "truncated");
        assert_eq!(authors.author(&ActorId::random()), None);
    }
}
