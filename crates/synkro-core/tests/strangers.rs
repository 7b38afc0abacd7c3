//! A peer that shares no document with a node learns nothing from it and
//! costs it nothing: whatever it lists, asks or pushes, the node answers
//! the same for a document it holds as for one it never heard of (its
//! reconciliation runs over an empty set). A session must greet once, and
//! soon.

mod common;

use common::{Sim, rng};
use negentropy::{Id, Negentropy, NegentropyStorageVector};
use rand_chacha::rand_core::Rng;
use synkro_core::automerge::{ROOT, transaction::Transactable};
use synkro_core::{DeviceIdentity, DocId, Message, NodeConfig, PROTOCOL_VERSION, VersionVector};

const V: usize = 0;
const OWNER: usize = 1;

/// A negentropy side over `items` (an id prefix and a digest each; a
/// stranger may list anything).
fn side(items: &[(DocId, [u8; 16])]) -> Negentropy<'static, NegentropyStorageVector> {
    let mut storage = NegentropyStorageVector::new();
    for (doc, digest) in items {
        let mut id = [0; 32];
        id[..16].copy_from_slice(&doc.0[..16]);
        id[16..].copy_from_slice(digest);
        storage.insert(0, Id::from_byte_array(id)).unwrap();
    }
    storage.seal().unwrap();
    Negentropy::owned(storage, 1 << 20).unwrap()
}

/// The `Hello` of a node that shares nothing with its peer.
fn empty_hello() -> Message {
    Message::Hello {
        version: PROTOCOL_VERSION,
        query: side(&[]).initiate().unwrap().into(),
    }
}

/// What the stranger got from the victim since `from`.
fn answers(sim: &Sim, stranger: &DeviceIdentity, from: usize) -> Vec<Message> {
    sim.outside[from..]
        .iter()
        .filter(|(_, to, _)| *to == stranger.member_id())
        .map(|(_, _, bytes)| Message::decode(bytes).expect("the node sends valid messages"))
        .collect()
}

#[test]
fn a_stranger_learns_nothing_about_a_document_not_even_that_it_is_held() {
    let mut rng = rng(71);
    let mut sim = Sim::new(&mut rng, 2, NodeConfig::default());
    // V holds `held` (shared with it by its owner); `unknown` exists nowhere.
    let held = sim.act(OWNER, |n| n.create_doc(&mut rng)).unwrap();
    sim.act(OWNER, |n| n.change(&held, |d| d.put(ROOT, "secret", "plans")))
        .unwrap();
    sim.act(OWNER, |n| n.flush(&mut rng, &held)).unwrap();
    let token = sim
        .act(OWNER, |n| n.share(&mut rng, &held, synkro_core::Role::Read))
        .unwrap();
    sim.act(V, |n| n.join(&mut rng, &token)).unwrap();
    sim.connect(V, OWNER);
    sim.run_until_quiet(&mut rng);
    assert!(sim.json(V, &held).is_some(), "V holds the document");
    let mut unknown = DocId([0; 32]);
    rng.fill_bytes(&mut unknown.0);

    let stranger = DeviceIdentity::generate(&mut rng);
    let m = stranger.member_id();
    sim.connect_outside(V, m);
    // The greeting reconciles an empty set.
    let hello = answers(&sim, &stranger, 0);
    assert_eq!(hello, [empty_hello()]);
    let before = sim.outside.len();
    let records = sim.nodes[V].records.clone();

    // A Hello listing both and many more ids, with made-up digests.
    let mut docs = vec![(held, [1; 16]), (unknown, [2; 16])];
    docs.extend((0..20_000u32).map(|i| {
        let mut id = [0; 32];
        id[..4].copy_from_slice(&i.to_le_bytes());
        (DocId(id), [3; 16])
    }));
    let mut theirs = side(&docs);
    let query = theirs.initiate().unwrap();
    // Answered as an empty set answers it.
    let expected = side(&[]).reconcile(&query).unwrap();
    let hello = Message::Hello {
        version: PROTOCOL_VERSION,
        query: query.into(),
    };
    sim.inject(&mut rng, V, m, &hello.encode());
    let answer = answers(&sim, &stranger, before);
    assert_eq!(
        answer,
        [Message::Answer {
            ranges: expected.into()
        }]
    );
    let before = sim.outside.len();
    // A Have, Ops and Chunks of each: the owner's own, replayed.
    let owner_records = sim.records(OWNER, &held);
    let ops: Vec<_> = owner_records
        .values()
        .filter(|v| synkro_core::access::AccessOp::decode(v).is_ok())
        .map(|v| v.clone().into())
        .collect();
    let chunks: Vec<_> = owner_records
        .values()
        .filter(|v| synkro_core::SealedChunk::decode(v).is_ok())
        .map(|v| v.clone().into())
        .collect();
    assert!(!ops.is_empty() && !chunks.is_empty());
    for doc in [held, unknown] {
        let have = Message::Have {
            doc,
            heads: Vec::new(),
            vv: VersionVector::default(),
            snapshots: Vec::new(),
        };
        sim.inject(&mut rng, V, m, &have.encode());
        sim.inject(&mut rng, V, m, &Message::Ops { doc, ops: ops.clone() }.encode());
        sim.inject(
            &mut rng,
            V,
            m,
            &Message::Chunks {
                doc,
                chunks: chunks.clone(),
            }
            .encode(),
        );
    }
    assert_eq!(
        answers(&sim, &stranger, before),
        Vec::new(),
        "no answer about either document"
    );
    assert_eq!(sim.nodes[V].records, records, "nothing stored");
    assert!(!sim.nodes[V].node.has_doc(&unknown));
    assert!(
        sim.nodes[V].node.peers().contains(&m),
        "still connected: nothing was forged"
    );

    // The honest session is unaffected.
    sim.act(OWNER, |n| n.change(&held, |d| d.put(ROOT, "after", 1)))
        .unwrap();
    sim.act(OWNER, |n| n.flush(&mut rng, &held)).unwrap();
    sim.run_until_quiet(&mut rng);
    assert_eq!(sim.json(V, &held), sim.json(OWNER, &held));
}

#[test]
fn a_second_hello_or_none_at_all_ends_the_session() {
    let mut rng = rng(72);
    let config = NodeConfig::default();
    let timeout = config.hello_timeout.as_millis() as u64;
    let mut sim = Sim::new(&mut rng, 1, config);
    let hello = empty_hello().encode();

    // Greets twice.
    let chatty = DeviceIdentity::generate(&mut rng).member_id();
    sim.connect_outside(V, chatty);
    sim.inject(&mut rng, V, chatty, &hello);
    assert!(sim.nodes[V].node.peers().contains(&chatty), "one Hello is welcome");
    sim.inject(&mut rng, V, chatty, &hello);
    assert!(!sim.nodes[V].node.peers().contains(&chatty), "a second Hello ends it");

    // Never greets, next to one that does.
    let silent = DeviceIdentity::generate(&mut rng).member_id();
    let polite = DeviceIdentity::generate(&mut rng).member_id();
    sim.connect_outside(V, silent);
    sim.connect_outside(V, polite);
    sim.inject(&mut rng, V, polite, &hello);
    sim.advance(&mut rng, sim.now + timeout - 1, Default::default());
    assert!(sim.nodes[V].node.peers().contains(&silent), "not before the timeout");
    sim.advance(&mut rng, sim.now + 2, Default::default());
    let peers = sim.nodes[V].node.peers();
    assert!(!peers.contains(&silent), "no Hello in time ends it");
    assert!(peers.contains(&polite), "a greeted session stays");
    assert!(
        sim.nodes[V]
            .disconnects
            .iter()
            .any(|(p, reason)| *p == silent && reason.contains("no Hello"))
    );
}
