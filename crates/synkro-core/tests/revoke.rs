//! Revocation: after the owner revokes a writer, content written from then
//! on is sealed under a new key the revoked member cannot obtain, other
//! members keep reading, and the revoked member's new chunks are refused.

mod common;

use std::collections::BTreeSet;

use common::{Sim, batching, rng, stored_chunks};
use serde::Deserialize;
use serde_bytes::ByteBuf;
use synkro_core::automerge::{ObjType, ROOT, ReadDoc, transaction::Transactable};
use synkro_core::crypto::SymmetricKey;
use synkro_core::{DeviceIdentity, DocId, Event, KeyId, Message, Node, OpHash, Role, SealedChunk};

const OWNER: usize = 0;
const B: usize = 1; // writer, to be revoked
const C: usize = 2; // reader, stays

const BEFORE: &str = "written-before-the-revoke";
const AFTER: &str = "SECRET-written-after-the-revoke";
const BY_REVOKED: &str = "written-by-B-after-its-revoke";

fn text_of(sim: &Sim, i: usize, doc: &DocId) -> String {
    sim.read(i, doc, |d| {
        d.get(ROOT, "text").unwrap().map(|(_, t)| d.text(t).unwrap())
    })
    .flatten()
    .unwrap_or_else(|| panic!("node {i} cannot read"))
}

fn append(sim: &mut Sim, i: usize, doc: &DocId, s: &str) {
    sim.act(i, |n| {
        n.change(doc, |d| {
            let t = d.get(ROOT, "text")?.expect("text exists").1;
            let len = d.length(&t);
            d.splice_text(&t, len, 0, s)
        })
    })
    .unwrap();
}

/// Mirror of the (documented, private) backup payload, to list the keys a
/// device holds.
#[derive(Deserialize)]
#[allow(dead_code)]
struct BackupPayload {
    doc: DocId,
    ops: Vec<ByteBuf>,
    chunks: Vec<ByteBuf>,
    keys: Vec<(KeyId, [u8; 32])>,
    invite: Option<(OpHash, [u8; 32])>,
    name: Option<String>,
}

/// Every document key a node holds, read from its own export (layout in
/// `backup.rs`: magic, version, Argon2id m/t/p, salt, nonce, ciphertext).
fn keys_held(node: &mut Node, rng: &mut rand_chacha::ChaCha20Rng, doc: &DocId) -> Vec<(KeyId, SymmetricKey)> {
    const HEADER: usize = 8 + 2 + 12 + 16 + 24;
    let bytes = node.export(rng, doc, b"pw").unwrap();
    let (header, ct) = bytes.split_at(HEADER);
    let u32_at = |i: usize| u32::from_le_bytes(header[i..i + 4].try_into().unwrap());
    let params = argon2::Params::new(u32_at(10), u32_at(14), u32_at(18), Some(32)).unwrap();
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut key = [0u8; 32];
    argon.hash_password_into(b"pw", &header[22..38], &mut key).unwrap();
    let nonce: [u8; 24] = header[38..HEADER].try_into().unwrap();
    let plain = SymmetricKey::from_bytes(key)
        .open(&nonce, header, ct)
        .expect("own backup opens");
    let payload: BackupPayload = postcard::from_bytes(&plain).expect("backup payload decodes");
    assert_eq!(payload.doc, *doc);
    payload
        .keys
        .into_iter()
        .map(|(id, k)| (id, SymmetricKey::from_bytes(k)))
        .collect()
}

/// Owner, writer B and reader C, all connected and in sync on a document
/// whose text is `BEFORE` (plus whatever `b_writes` B appended).
/// Node 3 exists but stays unconnected.
fn three_synced(seed: u64, b_writes: Option<&str>) -> (Sim, DocId, rand_chacha::ChaCha20Rng) {
    let mut rng = rng(seed);
    let mut sim = Sim::new(&mut rng, 4, batching());
    let doc = sim.act(OWNER, |n| n.create_doc(&mut rng)).unwrap();
    sim.act(OWNER, |n| {
        n.change(&doc, |d| {
            let t = d.put_object(ROOT, "text", ObjType::Text)?;
            d.splice_text(&t, 0, 0, BEFORE)
        })
    })
    .unwrap();
    assert!(sim.act(OWNER, |n| n.flush(&mut rng, &doc)).unwrap());
    let tb = sim.act(OWNER, |n| n.share(&mut rng, &doc, Role::Write)).unwrap();
    let tc = sim.act(OWNER, |n| n.share(&mut rng, &doc, Role::Read)).unwrap();
    sim.act(B, |n| n.join(&mut rng, &tb)).unwrap();
    sim.act(C, |n| n.join(&mut rng, &tc)).unwrap();
    sim.connect(OWNER, B);
    sim.connect(OWNER, C);
    sim.connect(B, C);
    sim.run_until_quiet(&mut rng);
    if let Some(s) = b_writes {
        append(&mut sim, B, &doc, s);
        assert!(sim.act(B, |n| n.flush(&mut rng, &doc)).unwrap());
        sim.run_until_quiet(&mut rng);
    }
    let expected = format!("{BEFORE}{}", b_writes.unwrap_or(""));
    for i in 0..3 {
        assert_eq!(text_of(&sim, i, &doc), expected);
    }
    (sim, doc, rng)
}

fn rejected_from(sim: &Sim, i: usize, from: synkro_core::MemberId) -> usize {
    sim.nodes[i]
        .events
        .iter()
        .filter(|e| matches!(e, Event::Rejected { peer: Some(p), .. } if *p == from))
        .count()
}

fn chunks_frame(doc: DocId, chunks: &[SealedChunk]) -> Vec<u8> {
    Message::Chunks {
        doc,
        chunks: chunks.iter().map(|c| c.encoded().to_vec().into()).collect(),
    }
    .encode()
}

#[test]
fn revoked_member_cannot_read_new_content() {
    let (mut sim, doc, mut rng) = three_synced(3, None);
    let (owner_id, b_id) = (sim.id(OWNER), sim.id(B));
    let (old_chunks, _) = stored_chunks(&sim.records(OWNER, &doc));
    let old_keys: BTreeSet<KeyId> = old_chunks.iter().map(|c| c.header().key).collect();
    assert_eq!(old_keys.len(), 1, "one key before the revoke");
    let old_refs: BTreeSet<_> = old_chunks.iter().map(SealedChunk::chunk_ref).collect();

    // Revoke B, then write.
    sim.act(OWNER, |n| n.revoke(&mut rng, &doc, b_id)).unwrap();
    sim.run_until_quiet(&mut rng);
    assert!(
        sim.nodes[OWNER]
            .node
            .info(&doc)
            .unwrap()
            .members
            .iter()
            .all(|(m, _)| *m != b_id)
    );
    assert!(
        sim.nodes[C]
            .node
            .info(&doc)
            .unwrap()
            .members
            .iter()
            .all(|(m, _)| *m != b_id),
        "C learnt the revoke"
    );
    append(&mut sim, OWNER, &doc, AFTER);
    assert!(sim.act(OWNER, |n| n.flush(&mut rng, &doc)).unwrap());
    sim.run_until_quiet(&mut rng);

    let (all_chunks, _) = stored_chunks(&sim.records(OWNER, &doc));
    let new_chunks: Vec<SealedChunk> = all_chunks
        .into_iter()
        .filter(|c| !old_refs.contains(&c.chunk_ref()))
        .collect();
    assert_eq!(new_chunks.len(), 1);
    for c in &new_chunks {
        assert!(
            !old_keys.contains(&c.header().key),
            "post-revoke chunk sealed under the pre-revoke key"
        );
    }

    // C, still a reader, reads the new content; B does not get it.
    assert_eq!(text_of(&sim, C, &doc), format!("{BEFORE}{AFTER}"));
    assert_eq!(text_of(&sim, B, &doc), BEFORE, "B must not receive post-revoke content");

    // Hand B the new chunks directly: refused (B's log has no such key).
    sim.inject(&mut rng, B, owner_id, &chunks_frame(doc, &new_chunks));
    assert_eq!(text_of(&sim, B, &doc), BEFORE);
    // Hand B the whole access log too, then the chunks again: B now knows
    // the new key exists, but nothing in the log opens it for B.
    let owner_ops: Vec<ByteBuf> = sim
        .records(OWNER, &doc)
        .values()
        .filter(|v| synkro_core::access::AccessOp::decode(v).is_ok())
        .map(|v| ByteBuf::from(v.clone()))
        .collect();
    assert_eq!(owner_ops.len(), 7, "genesis, 2 invites, 2 claims, revoke, rotate");
    sim.inject(&mut rng, B, owner_id, &Message::Ops { doc, ops: owner_ops }.encode());
    sim.inject(&mut rng, B, owner_id, &chunks_frame(doc, &new_chunks));
    assert_eq!(
        text_of(&sim, B, &doc),
        BEFORE,
        "B cannot read post-revoke content even when handed it"
    );
    assert_eq!(
        sim.nodes[B].node.info(&doc).unwrap().my_role,
        None,
        "B now sees its own revoke"
    );
    assert_eq!(sim.nodes[B].node.info(&doc).unwrap().log_ops, 7);

    // Every key B holds (after seeing the whole log): none opens a new chunk,
    // and one opens the old ones (so the check can fail).
    let b_keys = keys_held(&mut sim.nodes[B].node, &mut rng, &doc);
    sim.drain(B);
    assert!(!b_keys.is_empty());
    for c in &new_chunks {
        for (id, k) in &b_keys {
            assert!(c.open(k).is_err(), "B's key {id:?} opens a post-revoke chunk");
        }
    }
    for c in &old_chunks {
        assert!(
            b_keys.iter().any(|(_, k)| c.open(k).is_ok()),
            "B's keys open the pre-revoke chunks"
        );
    }
    // The same for a fresh device that imports B's backup and gets the new chunks.
    let bk = sim.act(B, |n| n.export(&mut rng, &doc, b"pw")).unwrap();
    let mut thief = Node::new(DeviceIdentity::generate(&mut rng), batching());
    thief.import(&mut rng, &bk, b"pw").unwrap();
    let session = thief.peer_connected(owner_id);
    thief.handle_message(&mut rng, session, &chunks_frame(doc, &new_chunks));
    let stolen = thief
        .read(&doc, |d| d.get(ROOT, "text").unwrap().map(|(_, t)| d.text(t).unwrap()))
        .unwrap();
    assert_eq!(
        stolen.as_deref(),
        Some(BEFORE),
        "B's backup reads exactly the pre-revoke content"
    );

    // C keeps up with further writes.
    append(&mut sim, OWNER, &doc, "+more");
    assert!(sim.act(OWNER, |n| n.flush(&mut rng, &doc)).unwrap());
    sim.run_until_quiet(&mut rng);
    assert_eq!(text_of(&sim, C, &doc), format!("{BEFORE}{AFTER}+more"));
    assert_eq!(sim.heads(OWNER, &doc), sim.heads(C, &doc));
    assert_eq!(text_of(&sim, B, &doc), BEFORE);
}

#[test]
fn revoked_writers_new_chunks_are_refused() {
    let (mut sim, doc, mut rng) = three_synced(4, None);
    let b_id = sim.id(B);
    // B is offline when it is removed, so it still writes; then it comes back.
    sim.disconnect(OWNER, B);
    sim.disconnect(B, C);
    sim.act(OWNER, |n| n.revoke(&mut rng, &doc, b_id)).unwrap();
    sim.run_until_quiet(&mut rng);
    let (owner_records, c_records) = (sim.records(OWNER, &doc), sim.records(C, &doc));
    let (owner_rejected, c_rejected) = (rejected_from(&sim, OWNER, b_id), rejected_from(&sim, C, b_id));
    append(&mut sim, B, &doc, BY_REVOKED);
    assert!(sim.act(B, |n| n.flush(&mut rng, &doc)).unwrap());
    let (b_chunks, _) = stored_chunks(&sim.records(B, &doc));
    sim.connect(OWNER, B);
    sim.connect(B, C);
    sim.run_until_quiet(&mut rng);
    assert_eq!(
        sim.nodes[B].node.info(&doc).unwrap().my_role,
        None,
        "B learns it was removed"
    );
    assert!(
        rejected_from(&sim, OWNER, b_id) > owner_rejected,
        "owner reports the revoked writer's chunk"
    );
    assert!(
        rejected_from(&sim, C, b_id) > c_rejected,
        "C reports the revoked writer's chunk"
    );
    assert_eq!(sim.records(OWNER, &doc), owner_records, "owner stored nothing of B's");
    assert_eq!(sim.records(C, &doc), c_records, "C stored nothing of B's");
    assert_eq!(text_of(&sim, OWNER, &doc), BEFORE);
    assert_eq!(text_of(&sim, C, &doc), BEFORE);

    // Even delivered by C, an honest member, the chunk is refused.
    let c_id = sim.id(C);
    let before = rejected_from(&sim, OWNER, c_id);
    sim.inject(&mut rng, OWNER, c_id, &chunks_frame(doc, &b_chunks));
    assert!(rejected_from(&sim, OWNER, c_id) > before);
    assert_eq!(sim.records(OWNER, &doc), owner_records);
    assert_eq!(text_of(&sim, OWNER, &doc), BEFORE);
    // And the owner keeps working with C.
    append(&mut sim, OWNER, &doc, "+ok");
    assert!(sim.act(OWNER, |n| n.flush(&mut rng, &doc)).unwrap());
    sim.run_until_quiet(&mut rng);
    assert_eq!(text_of(&sim, C, &doc), format!("{BEFORE}+ok"));
}

/// Known core bug (see the report): a chunk's authority is checked against
/// the *current* access state, so once a writer is revoked, everything it
/// wrote *before* the revoke is refused too: on reload from disk, by members
/// who join later, and on backup import. Content then differs between
/// members forever.
#[test]
fn pre_revoke_content_of_a_revoked_writer_is_kept() {
    let (mut sim, doc, mut rng) = three_synced(5, Some("+B"));
    let b_id = sim.id(B);
    sim.act(OWNER, |n| n.revoke(&mut rng, &doc, b_id)).unwrap();
    sim.run_until_quiet(&mut rng);
    let expected = format!("{BEFORE}+B");
    assert_eq!(text_of(&sim, OWNER, &doc), expected);

    // Backups of the document restore, with B's earlier contribution.
    let export = sim.act(OWNER, |n| n.export(&mut rng, &doc, b"pw")).unwrap();
    let mut restored = Node::new(DeviceIdentity::generate(&mut rng), batching());
    let imported = restored.import(&mut rng, &export, b"pw");
    assert!(imported.is_ok(), "the owner's backup imports: {imported:?}");
    let text = restored
        .read(&doc, |d| d.get(ROOT, "text").unwrap().map(|(_, t)| d.text(t).unwrap()))
        .unwrap();
    assert_eq!(text.as_deref(), Some(expected.as_str()));

    // A member who joins after the revoke gets it too.
    let token = sim.act(OWNER, |n| n.share(&mut rng, &doc, Role::Read)).unwrap();
    sim.act(3, |n| n.join(&mut rng, &token)).unwrap();
    sim.connect(OWNER, 3);
    sim.run_until_quiet(&mut rng);
    assert_eq!(text_of(&sim, 3, &doc), expected);
    assert_eq!(sim.heads(OWNER, &doc), sim.heads(3, &doc));

    // C restarts from its records and still has B's earlier text.
    sim.crash(&mut rng, C);
    sim.load_all(C);
    assert_eq!(text_of(&sim, C, &doc), expected);
}

/// Known core bug (see the report): a rotate seals the new key only to the
/// readers its author knows. A reader invited by another admin concurrently
/// (offline) holds only the old key, and nobody ever seals the current key to
/// it, so it can never read anything written after the merge.
#[test]
fn reader_invited_concurrently_with_a_rotate_gets_the_new_key() {
    let mut rng = rng(60);
    let mut sim = Sim::new(&mut rng, 3, batching());
    let doc = sim.act(0, |n| n.create_doc(&mut rng)).unwrap();
    sim.act(0, |n| {
        n.change(&doc, |d| {
            let t = d.put_object(ROOT, "text", ObjType::Text)?;
            d.splice_text(&t, 0, 0, BEFORE)
        })
    })
    .unwrap();
    assert!(sim.act(0, |n| n.flush(&mut rng, &doc)).unwrap());
    let admin = sim.act(0, |n| n.share(&mut rng, &doc, Role::Admin)).unwrap();
    sim.act(1, |n| n.join(&mut rng, &admin)).unwrap();
    sim.connect(0, 1);
    sim.run_until_quiet(&mut rng);
    sim.disconnect(0, 1);
    // Partitioned: the owner rotates while the other admin invites node 2.
    sim.act(0, |n| n.rotate(&mut rng, &doc)).unwrap();
    let reader = sim.act(1, |n| n.share(&mut rng, &doc, Role::Read)).unwrap();
    sim.act(2, |n| n.join(&mut rng, &reader)).unwrap();
    sim.connect_all();
    sim.run_until_quiet(&mut rng);
    append(&mut sim, 0, &doc, AFTER);
    assert!(sim.act(0, |n| n.flush(&mut rng, &doc)).unwrap());
    sim.run_until_quiet(&mut rng);
    assert_eq!(text_of(&sim, 1, &doc), format!("{BEFORE}{AFTER}"));
    assert_eq!(sim.nodes[2].node.info(&doc).unwrap().my_role, Some(Role::Read));
    assert_eq!(
        text_of(&sim, 2, &doc),
        format!("{BEFORE}{AFTER}"),
        "the new reader reads what is written now"
    );
}

/// A removed member learns that it was removed (its own view says it is
/// no longer a member), and nothing of the access changes made after it.
#[test]
fn a_removed_member_learns_of_its_removal_and_nothing_after() {
    let (mut sim, doc, mut rng) = three_synced(9, None);
    let b_id = sim.id(B);
    assert_eq!(sim.nodes[B].node.info(&doc).unwrap().my_role, Some(Role::Write));
    sim.act(OWNER, |n| n.revoke(&mut rng, &doc, b_id)).unwrap();
    sim.run_until_quiet(&mut rng);
    let seen = sim.nodes[B].node.info(&doc).unwrap();
    assert_eq!(seen.my_role, None, "B's own view: no longer a member");
    assert!(
        sim.nodes[B]
            .events
            .iter()
            .any(|e| matches!(e, Event::AccessChanged { doc: d } if *d == doc)),
        "B's app is told"
    );
    // Later access changes do not reach B.
    let before = seen.log_ops;
    let token = sim.act(OWNER, |n| n.share(&mut rng, &doc, Role::Read)).unwrap();
    sim.act(3, |n| n.join(&mut rng, &token)).unwrap();
    sim.connect(OWNER, 3);
    sim.run_until_quiet(&mut rng);
    assert!(sim.nodes[OWNER].node.info(&doc).unwrap().log_ops > before);
    assert_eq!(
        sim.nodes[B].node.info(&doc).unwrap().log_ops,
        before,
        "nothing after the removal"
    );
}
