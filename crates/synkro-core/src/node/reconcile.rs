//! Which shared documents differ from a peer's, found by range-based set
//! reconciliation ([negentropy]) rather than by listing them all.
//!
//! Each side of a session runs one reconciliation (its `Hello` opens it)
//! over the documents it would sync with the peer, and answers the peer's.
//! An item is a document's id prefix and a hash of its id and state
//! digest, so the two sides' items for a document are equal exactly when
//! its state is. (negentropy's fingerprints add items up: hashing keeps
//! structured digests, such as the all-zero "not durable yet", from
//! cancelling out in a sum.) When
//! nothing changed, the fingerprints in `Hello` match and the answer is a
//! byte: one round trip, whatever the number of documents.
//!
//! [negentropy]: https://github.com/hoytech/negentropy

use std::collections::{BTreeMap, BTreeSet};

use negentropy::{Id, Negentropy, NegentropyStorageVector};

use crate::crypto::hash;
use crate::ids::DocId;
use crate::limits::BATCH_TARGET_LEN;
use crate::message::Digest;

type Side = Negentropy<'static, NegentropyStorageVector>;

/// Largest negentropy message we write: a reconciliation with many
/// differences goes in rounds of this size.
const FRAME_LIMIT: u64 = BATCH_TARGET_LEN as u64;

/// Bytes of a document's id in its item; the rest hash its state.
const PREFIX: usize = 32 - std::mem::size_of::<Digest>();

/// A reconciliation step the peer got wrong (undecodable, or out of turn).
pub(super) type ReconcileError = String;

/// Both reconciliations of one session.
pub(super) struct Reconciliation {
    /// Our documents and their digests when the session started: what our
    /// run compares (kept until it is over).
    ours: Vec<(DocId, Digest)>,
    /// Our run, until it is over.
    opener: Option<Side>,
    /// Answers the peer's run, until it says `Reconciled`.
    answerer: Option<Side>,
    /// Our items the peer lacks.
    have: Vec<Id>,
    /// The peer's items we lack.
    need: Vec<Id>,
}

/// What our run learnt.
pub(super) enum Step {
    /// Send this `Query` and wait for the next answer.
    Query(Vec<u8>),
    /// Over: each of our documents the peer holds, with its digest when it
    /// equals ours at the start (`None`: the peer holds another state).
    /// Documents absent from the map were not among the peer's.
    Done(BTreeMap<DocId, Option<Digest>>),
}

impl Reconciliation {
    /// Start over `ours`: the state, and the query our `Hello` carries.
    pub(super) fn start(ours: Vec<(DocId, Digest)>) -> (Self, Vec<u8>) {
        // negentropy fails these calls only when misused (an item after
        // sealing, two seals, a frame limit under its minimum of 4 KiB,
        // two initiations), and this is their only use.
        const USE: &str = "negentropy is set up once, sealed once, with a frame limit over 4 KiB";
        let mut items = NegentropyStorageVector::with_capacity(ours.len());
        for (doc, digest) in &ours {
            items.insert(0, item(doc, digest)).expect(USE);
        }
        items.seal().expect(USE);
        let answerer = Negentropy::owned(items.clone(), FRAME_LIMIT).expect(USE);
        let mut opener = Negentropy::owned(items, FRAME_LIMIT).expect(USE);
        let query = opener.initiate().expect(USE);
        let state = Reconciliation {
            ours,
            opener: Some(opener),
            answerer: Some(answerer),
            have: Vec::new(),
            need: Vec::new(),
        };
        (state, query)
    }

    /// Our answer to the peer's `Hello` or `Query`.
    pub(super) fn answer(&mut self, query: &[u8]) -> Result<Vec<u8>, ReconcileError> {
        let answerer = self.answerer.as_mut().ok_or("a query after its reconciliation ended")?;
        answerer.reconcile(query).map_err(err)
    }

    /// The peer's run is over.
    pub(super) fn answered(&mut self) {
        self.answerer = None;
    }

    /// The peer answered our run.
    pub(super) fn take_answer(&mut self, answer: &[u8]) -> Result<Step, ReconcileError> {
        let opener = self.opener.as_mut().ok_or("an answer with no reconciliation open")?;
        if let Some(query) = opener
            .reconcile_with_ids(answer, &mut self.have, &mut self.need)
            .map_err(err)?
        {
            return Ok(Step::Query(query));
        }
        self.opener = None;
        let prefixes = |ids: &[Id]| -> BTreeSet<[u8; PREFIX]> {
            ids.iter()
                .filter_map(|id| id.as_bytes()[..PREFIX].try_into().ok())
                .collect()
        };
        // A document of ours the peer lacks in our state: it holds
        // another state when one of its items has the same id prefix.
        let (lacked, other_state) = (prefixes(&self.have), prefixes(&self.need));
        let mut out = BTreeMap::new();
        for (doc, digest) in std::mem::take(&mut self.ours) {
            let p = prefix(&doc);
            if !lacked.contains(&p) {
                out.insert(doc, Some(digest));
            } else if other_state.contains(&p) {
                out.insert(doc, None);
            }
        }
        self.have = Vec::new();
        self.need = Vec::new();
        Ok(Step::Done(out))
    }

    /// Is our run over?
    pub(super) fn is_done(&self) -> bool {
        self.opener.is_none()
    }
}

fn prefix(doc: &DocId) -> [u8; PREFIX] {
    let mut p = [0; PREFIX];
    p.copy_from_slice(&doc.0[..PREFIX]);
    p
}

fn item(doc: &DocId, digest: &Digest) -> Id {
    let mut id = [0; 32];
    id[..PREFIX].copy_from_slice(&prefix(doc));
    let state = hash("synkro 2026 reconciliation item", &[&doc.0, digest]);
    id[PREFIX..].copy_from_slice(&state[..32 - PREFIX]);
    Id::from_byte_array(id)
}

fn err(e: negentropy::Error) -> ReconcileError {
    format!("set reconciliation: {e}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(i: u32) -> DocId {
        let mut d = [7; 32];
        d[..4].copy_from_slice(&i.to_be_bytes());
        DocId(d)
    }

    /// Runs `a`'s reconciliation against `b`'s answers: its outcome and
    /// the bytes it took both ways.
    fn run(a: Vec<(DocId, Digest)>, b: Vec<(DocId, Digest)>) -> (BTreeMap<DocId, Option<Digest>>, usize) {
        let (mut a, mut query) = Reconciliation::start(a);
        let (mut b, _) = Reconciliation::start(b);
        let mut bytes = 0;
        loop {
            bytes += query.len();
            let answer = b.answer(&query).unwrap();
            bytes += answer.len();
            match a.take_answer(&answer).unwrap() {
                Step::Query(q) => query = q,
                Step::Done(out) => {
                    assert!(a.is_done());
                    return (out, bytes);
                }
            }
        }
    }

    #[test]
    fn equal_sets_settle_in_one_round_trip_of_a_few_hundred_bytes() {
        let docs: Vec<_> = (0..100_000).map(|i| (doc(i), [i as u8; 16])).collect();
        let (out, bytes) = run(docs.clone(), docs.clone());
        eprintln!("100,000 equal documents: {bytes} bytes both ways");
        assert_eq!(out.len(), docs.len());
        assert!(out.values().all(Option::is_some));
        assert!(bytes < 1024, "{bytes} bytes");
    }

    #[test]
    fn finds_changed_missing_and_extra_documents() {
        let ours: Vec<_> = (0..5_000).map(|i| (doc(i), [1; 16])).collect();
        let mut theirs = ours.clone();
        theirs[10].1 = [2; 16]; // changed
        theirs.remove(20); // the peer lacks it
        theirs.push((doc(9_999), [1; 16])); // only the peer has it
        let (out, bytes) = run(ours, theirs);
        assert_eq!(out.get(&doc(10)), Some(&None), "changed: compared");
        assert_eq!(out.get(&doc(20)), None, "absent at the peer");
        assert!(!out.contains_key(&doc(9_999)));
        assert_eq!(out.values().filter(|d| d.is_some()).count(), 4_998);
        assert!(bytes < 8 << 10, "{bytes} bytes for three differences");
    }

    #[test]
    fn a_fresh_peer_learns_everything_in_bounded_frames() {
        let ours: Vec<_> = (0..50_000).map(|i| (doc(i), [1; 16])).collect();
        let (out, _) = run(ours.clone(), Vec::new());
        assert!(out.is_empty(), "nothing is held by the peer");
        let (out, _) = run(Vec::new(), ours);
        assert!(out.is_empty());
    }

    /// Random sets of every size around the bucket thresholds: the outcome
    /// is what comparing the two lists directly gives.
    #[test]
    fn agrees_with_comparing_the_lists() {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for round in 0..200 {
            let n = (next() % 3_000) as u32;
            let (mut ours, mut theirs) = (Vec::new(), BTreeMap::new());
            for i in 0..n {
                let r = next();
                let digest = [(r >> 8) as u8 % 3; 16];
                match r % 8 {
                    0 => ours.push((doc(i), digest)),
                    1 => {
                        theirs.insert(doc(i), digest);
                    }
                    2 => {
                        ours.push((doc(i), digest));
                        theirs.insert(doc(i), [9; 16]);
                    }
                    _ => {
                        ours.push((doc(i), digest));
                        theirs.insert(doc(i), digest);
                    }
                }
            }
            let expected: BTreeMap<DocId, Option<Digest>> = ours
                .iter()
                .filter_map(|(d, dg)| theirs.get(d).map(|t| (*d, (t == dg).then_some(*dg))))
                .collect();
            let (out, _) = run(ours, theirs.into_iter().collect());
            if out != expected {
                let extra: Vec<_> = out.iter().filter(|(d, v)| expected.get(d) != Some(v)).collect();
                let missing: Vec<_> = expected.iter().filter(|(d, v)| out.get(d) != Some(v)).collect();
                panic!("round {round}, {n} documents: wrong {extra:?}, expected {missing:?}");
            }
        }
    }

    #[test]
    fn out_of_turn_and_garbage_are_errors() {
        let (mut a, _) = Reconciliation::start(vec![(doc(1), [1; 16])]);
        assert!(a.answer(&[0x00]).is_err(), "not a negentropy message");
        assert!(a.answer(&[0x61, 0x01, 0x05]).is_err(), "a bound cut short");
        assert!(a.take_answer(b"").is_err());
        a.answered();
        assert!(a.answer(&[0x61]).is_err(), "after Reconciled");
    }
}
