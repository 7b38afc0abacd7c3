//! A blind replica (role `Replicate`) stores and forwards sealed chunks it
//! cannot read, and refuses forged or unauthorised chunks.
//!
//! Topology: A — R — B. A and B are never connected; A goes offline before B
//! first connects, so everything B reads came through R's storage.

mod common;

use common::{Sim, batching, contains, rng, stored_chunks};
use synkro_core::automerge::{ObjType, ROOT, ReadDoc, transaction::Transactable};
use synkro_core::chunk::ChunkKind;
use synkro_core::crypto::SymmetricKey;
use synkro_core::{CoreError, DeviceIdentity, DocId, Event, MemberId, Message, NodeConfig, Role, SealedChunk};

const A: usize = 0;
const R: usize = 1;
const B: usize = 2;
const MARKER: &str = "PLAINTEXT-MARKER-c0ffee-4b1d";
const MARKER2: &str = "SECOND-MARKER-after-attacks-91e2";

fn chunks_frame(doc: DocId, chunks: &[&[u8]]) -> Vec<u8> {
    Message::Chunks {
        doc,
        chunks: chunks.iter().map(|c| c.to_vec().into()).collect(),
    }
    .encode()
}

fn rejected_from(sim: &Sim, i: usize, from: MemberId) -> usize {
    sim.nodes[i]
        .events
        .iter()
        .filter(|e| matches!(e, Event::Rejected { peer: Some(p), .. } if *p == from))
        .count()
}

fn disconnects_of(sim: &Sim, i: usize, peer: MemberId) -> usize {
    sim.nodes[i].disconnects.iter().filter(|(p, _)| *p == peer).count()
}

fn text_of(sim: &Sim, i: usize, doc: &DocId) -> Option<String> {
    sim.read(i, doc, |d| {
        d.get(ROOT, "text").unwrap().map(|(_, t)| d.text(t).unwrap())
    })
    .flatten()
}

fn no_marker_anywhere(sim: &Sim, i: usize, marker: &str) {
    for v in sim.all_values(i) {
        assert!(
            !contains(v, marker.as_bytes()),
            "node {i} stored the plaintext marker {marker:?}"
        );
    }
}

#[test]
fn blind_replica_stores_forwards_and_refuses_forgeries() {
    let mut rng = rng(2);
    let mut sim = Sim::new(&mut rng, 3, batching());
    let (r_id, b_id) = (sim.id(R), sim.id(B));
    let mallory = DeviceIdentity::generate(&mut rng); // not a member
    let reader = DeviceIdentity::generate(&mut rng); // a member with the Read role only

    // A creates the document with a unique marker and shares it.
    let doc = sim.act(A, |n| n.create_doc(&mut rng)).unwrap();
    sim.act(A, |n| {
        n.change(&doc, |d| {
            d.put(ROOT, "marker", MARKER)?;
            let t = d.put_object(ROOT, "text", ObjType::Text)?;
            d.splice_text(&t, 0, 0, MARKER)
        })
    })
    .unwrap();
    assert!(sim.act(A, |n| n.flush(&mut rng, &doc)).unwrap());
    sim.act(A, |n| n.grant(&mut rng, &doc, r_id, None, Role::Replicate))
        .unwrap();
    sim.act(A, |n| {
        n.grant(
            &mut rng,
            &doc,
            reader.member_id(),
            Some(reader.exchange_key()),
            Role::Read,
        )
    })
    .unwrap();
    let token = sim.act(A, |n| n.share(&mut rng, &doc, Role::Read)).unwrap();
    sim.act(B, |n| n.join(&mut rng, &token)).unwrap();

    // A syncs with R, then goes offline.
    sim.connect(A, R);
    sim.run_until_quiet(&mut rng);
    sim.disconnect(A, R);
    let r_info = sim.nodes[R].node.info(&doc).unwrap();
    assert!(r_info.chunks >= 1, "R holds the sealed chunk");
    assert!(!r_info.readable);
    assert_eq!(r_info.my_role, Some(Role::Replicate));
    assert_eq!(
        sim.nodes[R].node.read(&doc, |_| ()).unwrap_err(),
        CoreError::NoReadAccess(doc)
    );

    // B, never connected to A, gets everything through R.
    sim.connect(R, B);
    sim.run_until_quiet(&mut rng);
    assert!(!sim.connected(A, B));
    let marker = sim
        .read(B, &doc, |d| d.get(ROOT, "marker").unwrap().map(|(v, _)| v.to_string()))
        .flatten();
    assert_eq!(marker, Some(format!("{MARKER:?}")), "B reads A's content via R");
    assert_eq!(text_of(&sim, B, &doc).as_deref(), Some(MARKER));
    assert_eq!(sim.nodes[B].node.info(&doc).unwrap().my_role, Some(Role::Read));
    // R learnt B's membership from B's claim (A has not seen it yet).
    assert_eq!(
        sim.nodes[R]
            .node
            .info(&doc)
            .unwrap()
            .members
            .iter()
            .find(|(m, _)| *m == b_id)
            .map(|m| m.1),
        Some(Role::Read)
    );

    // R can hold and serve, never read: no plaintext at rest anywhere on R.
    // (Control: the marker is visible in the plaintext, so the search works.)
    let plain = sim.read(B, &doc, |d| d.clone().save()).unwrap();
    assert!(
        contains(&plain, MARKER.as_bytes()),
        "the marker appears in the plaintext document"
    );
    assert!(sim.nodes[R].node.read(&doc, |_| ()).is_err());
    let r_info = sim.nodes[R].node.info(&doc).unwrap();
    assert!(r_info.chunks >= 1 && r_info.stored_bytes > 0);
    no_marker_anywhere(&sim, R, MARKER);
    // Readers store sealed chunks too.
    no_marker_anywhere(&sim, B, MARKER);
    no_marker_anywhere(&sim, A, MARKER);

    // An honest chunk and one of another document, as raw material.
    let (honest_changes, _) = stored_chunks(&sim.records(A, &doc));
    let honest = honest_changes.first().expect("A stored its chunk").clone();
    let key_id = honest.header().key;
    let doc2 = sim.act(A, |n| n.create_doc(&mut rng)).unwrap();
    sim.act(A, |n| n.change(&doc2, |d| d.put(ROOT, "other", "document")))
        .unwrap();
    assert!(sim.act(A, |n| n.flush(&mut rng, &doc2)).unwrap());
    let (other_doc_chunks, _) = stored_chunks(&sim.records(A, &doc2));
    let other_doc_chunk = other_doc_chunks[0].clone();

    // Attacks arrive at R over a connection from a peer outside the document.
    let m = mallory.member_id();
    sim.connect_outside(R, m);
    let before = sim.nodes[R].records.clone();

    // 1. Tampered ciphertext: the last ciphertext byte (the AEAD tag) sits
    //    just before the signature's length byte and 64 signature bytes.
    let mut tampered = honest.encoded().to_vec();
    let at = tampered.len() - 64 - 2;
    tampered[at] ^= 0x01;
    assert!(
        SealedChunk::decode(&tampered).is_err(),
        "a flipped byte breaks the signature"
    );
    sim.inject(&mut rng, R, m, &chunks_frame(doc, &[&tampered]));
    assert_eq!(
        disconnects_of(&sim, R, m),
        1,
        "a forged chunk gets the sender disconnected"
    );
    assert_eq!(sim.nodes[R].records, before, "forged chunk not stored");
    assert!(!sim.nodes[R].node.peers().contains(&m));
    sim.connect_outside(R, m);

    // Authentic chunks from a peer that does not share the document are
    // dropped unread: not stored, not answered (a refusal would tell the
    // peer the relay holds the document).
    let sent_to_m = |sim: &Sim| sim.outside.iter().filter(|(_, to, _)| *to == m).count();
    let (rejected, answers) = (rejected_from(&sim, R, m), sent_to_m(&sim));

    // 2. Validly signed by a non-member.
    let key = SymmetricKey::generate(&mut rng);
    let by_stranger = SealedChunk::seal(&mut rng, &mallory, doc, 1, key_id, &key, ChunkKind::Changes, b"junk");
    sim.inject(&mut rng, R, m, &chunks_frame(doc, &[by_stranger.encoded()]));
    assert_eq!(sim.nodes[R].records, before, "non-member's chunk not stored");

    // 3. Validly signed by a member who may only read.
    let by_reader = SealedChunk::seal(&mut rng, &reader, doc, 1, key_id, &key, ChunkKind::Changes, b"junk");
    sim.inject(&mut rng, R, m, &chunks_frame(doc, &[by_reader.encoded()]));
    assert_eq!(sim.nodes[R].records, before, "reader's chunk not stored");

    // 4. An honest chunk of another document, slipped into this document's frame ...
    sim.inject(&mut rng, R, m, &chunks_frame(doc, &[other_doc_chunk.encoded()]));
    assert_eq!(sim.nodes[R].records, before, "other document's chunk not stored");
    assert_eq!(rejected_from(&sim, R, m), rejected, "dropped unread");
    assert_eq!(sent_to_m(&sim), answers, "and unanswered");
    // ... or under its own id, which R does not replicate.
    sim.inject(&mut rng, R, m, &chunks_frame(doc2, &[other_doc_chunk.encoded()]));
    assert_eq!(sim.nodes[R].records, before, "unknown document not stored");
    assert!(!sim.nodes[R].node.has_doc(&doc2));

    // 5. A writer's signature but a key the log never introduced.
    let mut unknown_key = key_id;
    unknown_key.0[0] ^= 0xff;
    let honest_author_bad_key =
        SealedChunk::seal(&mut rng, &reader, doc, 2, unknown_key, &key, ChunkKind::Changes, b"x");
    sim.inject(&mut rng, R, m, &chunks_frame(doc, &[honest_author_bad_key.encoded()]));
    assert_eq!(sim.nodes[R].records, before);
    assert_eq!(
        disconnects_of(&sim, R, m),
        1,
        "authentic but unauthorised data is rejected, not a disconnect"
    );

    // 6. A replay of an honest chunk is a harmless duplicate.
    sim.inject(&mut rng, R, m, &chunks_frame(doc, &[honest.encoded()]));
    assert_eq!(sim.nodes[R].records, before);

    // The honest session still works: A comes back with a new edit.
    assert!(sim.connected(R, B));
    sim.act(A, |n| {
        n.change(&doc, |d| {
            let t = d.get(ROOT, "text")?.expect("text exists").1;
            d.splice_text(&t, 0, 0, MARKER2)
        })
    })
    .unwrap();
    assert!(sim.act(A, |n| n.flush(&mut rng, &doc)).unwrap());
    sim.connect(A, R);
    sim.run_until_quiet(&mut rng);
    assert!(!sim.connected(A, B));
    assert_eq!(
        text_of(&sim, B, &doc),
        Some(format!("{MARKER2}{MARKER}")),
        "B gets the new edit via R"
    );
    assert_eq!(sim.heads(A, &doc), sim.heads(B, &doc));
    no_marker_anywhere(&sim, R, MARKER2);
    assert!(sim.nodes[R].node.read(&doc, |_| ()).is_err());
    // A learnt B's claim from R.
    assert!(
        sim.nodes[A]
            .node
            .info(&doc)
            .unwrap()
            .members
            .iter()
            .any(|(m, r)| *m == b_id && *r == Role::Read)
    );
    // Nothing R or B did reached the attacker beyond the session greeting.
    assert!(
        sim.outside
            .iter()
            .all(|(_, to, bytes)| *to != m || !matches!(Message::decode(bytes), Ok(Message::Chunks { .. })))
    );
}

/// `replicate_to` grants a relay the replicate role on exactly the
/// documents this device administers, never re-grants one an admin
/// revoked, and the relay then receives them.
#[test]
fn replicate_to_grants_administered_documents_only() {
    let mut rng = rng(5);
    let mut sim = Sim::new(&mut rng, 3, batching());
    let relay = sim.id(R);
    let mine = sim.act(A, |n| n.create_doc(&mut rng)).unwrap();
    let revoked = sim.act(A, |n| n.create_doc(&mut rng)).unwrap();
    let theirs = sim.act(B, |n| n.create_doc(&mut rng)).unwrap();
    // A writes in B's document but does not administer it.
    let token = sim.act(B, |n| n.share(&mut rng, &theirs, Role::Write)).unwrap();
    sim.act(A, |n| n.join(&mut rng, &token)).unwrap();
    sim.connect(A, B);
    sim.run_until_quiet(&mut rng);
    sim.act(A, |n| n.grant(&mut rng, &revoked, relay, None, Role::Replicate))
        .unwrap();
    sim.act(A, |n| n.revoke(&mut rng, &revoked, relay)).unwrap();

    let granted = sim.act(A, |n| n.replicate_to(&mut rng, relay)).unwrap();
    assert_eq!(granted, vec![mine]);
    assert_eq!(
        sim.act(A, |n| n.replicate_to(&mut rng, relay)).unwrap(),
        Vec::<DocId>::new(),
        "idempotent"
    );

    sim.connect(A, R);
    sim.run_until_quiet(&mut rng);
    let relay_docs = sim.nodes[R].node.docs();
    assert!(relay_docs.contains(&mine), "the relay stores the granted document");
    assert!(!relay_docs.contains(&revoked) && !relay_docs.contains(&theirs));
    assert_eq!(sim.nodes[R].node.sync_status(&sim.id(A)).synced, vec![mine]);
}

/// A node at its `max_docs` quota refuses to store a new document a peer
/// pushes, and keeps serving the ones it has.
#[test]
fn a_full_replica_refuses_new_documents() {
    let mut rng = rng(6);
    let config = NodeConfig {
        max_docs: 1,
        ..batching()
    };
    let mut sim = Sim::new(&mut rng, 2, config);
    let relay = sim.id(R);
    let first = sim.act(A, |n| n.create_doc(&mut rng)).unwrap();
    let second = sim.act(A, |n| n.create_doc(&mut rng)).unwrap();
    sim.act(A, |n| n.grant(&mut rng, &first, relay, None, Role::Replicate))
        .unwrap();
    sim.connect(A, R);
    sim.run_until_quiet(&mut rng);
    sim.act(A, |n| n.grant(&mut rng, &second, relay, None, Role::Replicate))
        .unwrap();
    sim.run_until_quiet(&mut rng);
    assert_eq!(sim.nodes[R].node.docs(), vec![first]);
    assert!(
        sim.nodes[R]
            .events
            .iter()
            .any(|e| matches!(e, Event::Rejected { doc, reason, .. } if *doc == second && reason.contains("limit")))
    );
    // The node's own count, what a relay's metrics read, has every one.
    assert_eq!(sim.nodes[R].node.rejected() as usize, sim.nodes[R].rejected());
    assert!(
        sim.records(R, &second).is_empty(),
        "nothing of the refused document is stored"
    );
}
