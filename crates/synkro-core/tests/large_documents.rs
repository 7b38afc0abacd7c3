//! Large documents: nothing is ever sealed that a reader would refuse.
//!
//! A burst of edits is split across chunks of at most `MAX_PART_LEN`; a
//! change or snapshot larger than that travels in parts, stored and
//! forwarded by a blind replica that cannot read them, and applied by
//! readers once every part has arrived; a record stored over the limit by a
//! release that had none still loads and is folded into a snapshot; and a
//! peer that refuses data says why.

mod common;

use std::collections::BTreeMap;

use common::{Records, Sim, batching, below, decode_all, rebuild, rng};
use proptest::prelude::*;
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::Rng;
use synkro_core::access::KeyMaterial;
use synkro_core::automerge::{AutoCommit, ObjType, ROOT, ReadDoc, ScalarValue, transaction::Transactable};
use synkro_core::chunk::ChunkKind;
use synkro_core::limits::{MAX_CHUNK_LEN, MAX_FRAME_LEN, MAX_PART_LEN};
use synkro_core::{AccessLog, DeviceIdentity, DocId, Effect, Event, Message, Node, Refusal, Role, SealedChunk};

const A: usize = 0;
const R: usize = 1;
const B: usize = 2;

/// Every chunk a node stored or sent is within what every reader accepts.
fn assert_within_limits(sim: &Sim, label: &str) {
    for (i, n) in sim.nodes.iter().enumerate() {
        for ns in n.records.values() {
            for (key, value) in ns {
                if matches!(key.first(), Some(b'C' | b'S')) {
                    assert!(
                        value.len() <= MAX_CHUNK_LEN,
                        "[{label}] node {i} stored a chunk of {} bytes",
                        value.len()
                    );
                    let chunk = SealedChunk::decode(value).expect("a stored chunk decodes as a peer's would");
                    // Plaintext + 16-byte tag + header and signature.
                    assert!(
                        chunk.encoded().len() <= MAX_PART_LEN + 4096,
                        "[{label}] chunk over a part"
                    );
                }
            }
        }
    }
    for (_, _, bytes) in sim.trace.as_deref().unwrap_or_default() {
        assert!(
            bytes.len() <= MAX_FRAME_LEN,
            "[{label}] a frame of {} bytes",
            bytes.len()
        );
    }
}

/// A document with a text `text`, shared with a blind replica R and a
/// reader/writer B who joins later.
fn setup(seed: u64) -> (ChaCha20Rng, Sim, DocId) {
    let mut rng = rng(seed);
    let mut sim = Sim::new(&mut rng, 3, batching());
    let r_id = sim.id(R);
    let doc = sim.act(A, |n| n.create_doc(&mut rng)).unwrap();
    sim.act(A, |n| {
        n.change(&doc, |d| d.put_object(ROOT, "text", ObjType::Text).map(drop))
    })
    .unwrap();
    sim.act(A, |n| n.grant(&mut rng, &doc, r_id, None, Role::Replicate))
        .unwrap();
    (rng, sim, doc)
}

fn text_of(node: &Node, doc: &DocId) -> String {
    node.read(doc, |d| {
        let (_, t) = d.get(ROOT, "text").unwrap().unwrap();
        d.text(&t).unwrap()
    })
    .unwrap()
}

fn type_keystrokes(sim: &mut Sim, doc: &DocId, n: usize, rng: &mut ChaCha20Rng) -> String {
    let mut expected = String::new();
    let text = sim.nodes[A]
        .node
        .read(doc, |d| d.get(ROOT, "text").unwrap().unwrap().1)
        .unwrap();
    for _ in 0..n {
        let pos = if expected.is_empty() {
            0
        } else {
            below(rng, expected.len() + 1)
        };
        let ch = char::from(b'a' + below(rng, 26) as u8);
        expected.insert(pos, ch);
        let node = &mut sim.nodes[A].node;
        node.change(doc, |d| d.splice_text(&text, pos, 0, &ch.to_string()))
            .unwrap();
    }
    sim.drain(A);
    expected
}

/// A then B, through R only, with A offline once R has everything.
fn sync_through_replica(sim: &mut Sim, rng: &mut ChaCha20Rng, doc: &DocId) {
    let token = sim.act(A, |n| n.share(rng, doc, Role::Write)).unwrap();
    sim.act(B, |n| n.join(rng, &token)).unwrap();
    sim.connect(A, R);
    sim.run_until_quiet(rng);
    sim.disconnect(A, R);
    sim.connect(R, B);
    sim.run_until_quiet(rng);
}

#[test]
fn a_burst_of_keystrokes_is_sealed_in_chunks_every_reader_accepts() {
    let (mut rng, mut sim, doc) = setup(24);
    sim.trace = Some(Vec::new());
    // Single-character changes, all sealed by one flush: about 105 bytes
    // each as raw Automerge changes, far over one chunk in all.
    let n = 260_000;
    let expected = type_keystrokes(&mut sim, &doc, n, &mut rng);
    assert!(sim.act(A, |n| n.flush(&mut rng, &doc)).unwrap());
    sync_through_replica(&mut sim, &mut rng, &doc);

    assert_eq!(text_of(&sim.nodes[B].node, &doc), expected, "B reads A's burst via R");
    assert_within_limits(&sim, "burst");
    // A reloaded from its records, and B too, read the same text.
    for i in [A, B] {
        let sn = &sim.nodes[i];
        let node = rebuild(&mut rng, &sn.identity, &sn.config, &sn.records, "reload");
        assert_eq!(text_of(&node, &doc), expected);
    }
    // Compaction folded the burst into a snapshot far smaller than the
    // changes themselves.
    let save = sim.read(A, &doc, |d| d.clone().save().len()).unwrap();
    let stored = sim.nodes[A].node.info(&doc).unwrap().stored_bytes;
    println!("{n} keystrokes: stored {stored} B, Automerge save {save} B");
    assert!(
        stored < 2 * save + (16 << 10),
        "stored {stored} B for a save of {save} B"
    );
}

/// A value of `len` random bytes: one change, incompressible.
fn random_bytes(rng: &mut ChaCha20Rng, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    rng.fill_bytes(&mut v);
    v
}

#[test]
fn a_change_larger_than_a_chunk_travels_in_parts_through_a_blind_replica() {
    let (mut rng, mut sim, doc) = setup(25);
    sim.trace = Some(Vec::new());
    // 5.5 MiB in one change: six parts.
    let big = random_bytes(&mut rng, 5 * MAX_PART_LEN + MAX_PART_LEN / 2);
    sim.act(A, |n| {
        n.change(&doc, |d| d.put(ROOT, "attachment", ScalarValue::Bytes(big.clone())))
    })
    .unwrap();
    assert!(sim.act(A, |n| n.flush(&mut rng, &doc)).unwrap());
    let parts = sim.nodes[A]
        .records
        .get(&doc)
        .unwrap()
        .values()
        .filter_map(|v| SealedChunk::decode(v).ok())
        .filter(|c| c.part().is_some())
        .count();
    assert!(parts >= 6, "the change was sealed in {parts} parts");

    sync_through_replica(&mut sim, &mut rng, &doc);
    assert_within_limits(&sim, "parts");
    let got = sim.read(B, &doc, |d| match d.get(ROOT, "attachment").unwrap() {
        Some((v, _)) => v.as_bytes().map(|b| b.to_vec()),
        None => None,
    });
    assert_eq!(got.flatten().as_deref(), Some(&big[..]), "B assembled the parts");
    assert!(!sim.nodes[R].node.info(&doc).unwrap().readable);
    // Everyone reloads it from their records; the relay still holds the parts.
    for i in [A, R, B] {
        let sn = &sim.nodes[i];
        let node = rebuild(&mut rng, &sn.identity, &sn.config, &sn.records, "reload");
        assert_eq!(node.info(&doc).unwrap().vv, sim.nodes[A].node.info(&doc).unwrap().vv);
    }
}

#[test]
fn a_document_larger_than_a_chunk_snapshots_in_parts() {
    let (mut rng, mut sim, doc) = setup(26);
    // Three changes of 1.5 MiB each: each in parts, then the snapshot (about
    // 4.5 MiB) in parts too once the tail outgrows the policy.
    for i in 0..3 {
        let value = random_bytes(&mut rng, MAX_PART_LEN + MAX_PART_LEN / 2);
        sim.act(A, |n| {
            n.change(&doc, |d| d.put(ROOT, format!("v{i}"), ScalarValue::Bytes(value)))
        })
        .unwrap();
        assert!(sim.act(A, |n| n.flush(&mut rng, &doc)).unwrap());
    }
    let records = sim.records(A, &doc);
    let snapshot_parts: Vec<SealedChunk> = records
        .values()
        .filter_map(|v| SealedChunk::decode(v).ok())
        .filter(|c| c.covers().is_some())
        .collect();
    assert!(
        snapshot_parts.len() >= 4 && snapshot_parts.iter().all(|c| c.part().is_some()),
        "a snapshot in parts: {} chunks",
        snapshot_parts.len()
    );
    sync_through_replica(&mut sim, &mut rng, &doc);
    assert_within_limits(&sim, "snapshot parts");
    assert_eq!(sim.json(B, &doc), sim.json(A, &doc));
    assert_eq!(sim.heads(B, &doc), sim.heads(A, &doc));
}

/// The document key as its owner opens it from the access log it stored.
fn owner_key(
    owner: &DeviceIdentity,
    records: &BTreeMap<Vec<u8>, Vec<u8>>,
    doc: DocId,
) -> (synkro_core::KeyId, synkro_core::crypto::SymmetricKey) {
    let mut log = AccessLog::new(doc);
    for (k, v) in records {
        if k.first() == Some(&b'L') {
            log.insert(v).unwrap();
        }
    }
    let key_id = log.state().current_key().unwrap();
    log.key_material()
        .iter()
        .find_map(|m| match m {
            KeyMaterial::Sealed {
                key,
                to,
                sealed,
                context,
            } if *key == key_id && *to == owner.member_id() => {
                owner.exchange_secret().open(sealed, context).map(|k| (key_id, k))
            }
            _ => None,
        })
        .unwrap()
}

#[test]
fn a_record_stored_over_the_limit_by_an_older_release_still_loads_and_then_syncs() {
    let (mut rng, mut sim, doc) = setup(27);
    assert!(sim.act(A, |n| n.flush(&mut rng, &doc)).unwrap());
    // What a release without a size limit stored: one chunk of 17 MiB of
    // Automerge changes (a burst of edits sealed at once).
    let mut burst = AutoCommit::new();
    let big = random_bytes(&mut rng, MAX_CHUNK_LEN + (1 << 20));
    burst.put(ROOT, "burst", ScalarValue::Bytes(big.clone())).unwrap();
    let plain: Vec<u8> = burst
        .get_changes(&[])
        .iter()
        .flat_map(|c| c.raw_bytes().to_vec())
        .collect();
    let owner = sim.nodes[A].identity.clone();
    let (key_id, key) = owner_key(&owner, &sim.records(A, &doc), doc);
    let seq = sim.nodes[A].node.info(&doc).unwrap().vv.get(&owner.member_id()) + 1;
    let legacy = SealedChunk::seal(&mut rng, &owner, doc, seq, key_id, &key, ChunkKind::Changes, &plain);
    assert!(legacy.encoded().len() > MAX_CHUNK_LEN);
    let mut record_key = vec![b'C'];
    record_key.extend_from_slice(&owner.member_id().0);
    record_key.extend_from_slice(&seq.to_be_bytes());
    let mut records: Records = sim.nodes[A].records.clone();
    records
        .get_mut(&doc)
        .unwrap()
        .insert(record_key, legacy.encoded().to_vec());

    // It loads; its author folds it into a snapshot sealed in parts.
    let mut node = Node::new(owner.clone(), batching());
    let report = node
        .load_doc(
            &mut rng,
            doc,
            records[&doc].iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        )
        .unwrap();
    assert!(!report.problems.is_empty(), "the reseal is reported");
    let value = node
        .read(&doc, |d| {
            d.get(ROOT, "burst")
                .unwrap()
                .and_then(|(v, _)| v.as_bytes().map(|b| b.to_vec()))
        })
        .unwrap();
    assert_eq!(value.as_deref(), Some(&big[..]), "the oversized record loaded");
    let mut persisted = 0;
    while let Some(e) = node.poll_effect() {
        if let Effect::Persist {
            doc: d, puts, deletes, ..
        } = e
        {
            let ns = records.get_mut(&d).unwrap();
            for k in deletes {
                ns.remove(&k);
            }
            for (k, v) in puts {
                assert!(v.len() <= MAX_CHUNK_LEN);
                ns.insert(k, v);
                persisted += 1;
            }
        }
    }
    assert!(
        persisted >= 17,
        "the snapshot's parts were stored ({persisted} records)"
    );
    assert!(
        records[&doc].values().all(|v| v.len() <= MAX_CHUNK_LEN),
        "the oversized record was dropped once the snapshot covered it"
    );
    // The repaired home syncs to a fresh reader through the replica.
    sim.nodes[A].node = rebuild(&mut rng, &owner, &batching(), &records, "repaired");
    sim.nodes[A].records = records;
    sim.trace = Some(Vec::new());
    sync_through_replica(&mut sim, &mut rng, &doc);
    assert_within_limits(&sim, "legacy");
    let at_b = sim
        .read(B, &doc, |d| {
            d.get(ROOT, "burst")
                .unwrap()
                .and_then(|(v, _)| v.as_bytes().map(|b| b.len()))
        })
        .flatten();
    assert_eq!(at_b, Some(big.len()));
}

#[test]
fn a_change_too_large_for_any_chunk_group_is_undone_and_nothing_else_is_lost() {
    let (mut rng, mut sim, doc) = setup(28);
    sim.act(A, |n| n.change(&doc, |d| d.put(ROOT, "kept", "unflushed edit")))
        .unwrap();
    let huge = vec![7u8; synkro_core::limits::MAX_ASSEMBLED_LEN + 1];
    let err = sim
        .act(A, |n| n.change(&doc, |d| d.put(ROOT, "huge", ScalarValue::Bytes(huge))))
        .unwrap_err();
    assert!(matches!(err, synkro_core::CoreError::ChangeTooLarge { .. }), "{err}");
    let (kept, huge) = sim
        .read(A, &doc, |d| {
            (
                d.get(ROOT, "kept").unwrap().is_some(),
                d.get(ROOT, "huge").unwrap().is_some(),
            )
        })
        .unwrap();
    assert!(kept && !huge);
    // Later edits and the flush work as usual.
    sim.act(A, |n| n.change(&doc, |d| d.put(ROOT, "after", 1))).unwrap();
    assert!(sim.act(A, |n| n.flush(&mut rng, &doc)).unwrap());
    sync_through_replica(&mut sim, &mut rng, &doc);
    assert_eq!(sim.json(B, &doc), sim.json(A, &doc));
}

#[test]
fn a_peer_that_refuses_a_chunk_says_why_and_the_document_shows_as_stuck() {
    let (mut rng, mut sim, doc) = setup(29);
    sim.act(A, |n| n.change(&doc, |d| d.put(ROOT, "x", 1))).unwrap();
    assert!(sim.act(A, |n| n.flush(&mut rng, &doc)).unwrap());
    // R is a replica; a chunk signed by a stranger has no authority.
    let mallory = DeviceIdentity::generate(&mut rng);
    let (key_id, key) = owner_key(&sim.nodes[A].identity, &sim.records(A, &doc), doc);
    let forged = SealedChunk::seal(&mut rng, &mallory, doc, 1, key_id, &key, ChunkKind::Changes, b"junk");
    sim.connect(A, R);
    sim.run_until_quiet(&mut rng);
    // B, a reader, pushes it: R refuses it and tells B why.
    let b_id = sim.id(B);
    let token = sim.act(A, |n| n.share(&mut rng, &doc, Role::Read)).unwrap();
    sim.act(B, |n| n.join(&mut rng, &token)).unwrap();
    sim.connect(R, B);
    sim.run_until_quiet(&mut rng);
    let frame = Message::Chunks {
        doc,
        chunks: vec![forged.encoded().to_vec().into()],
    }
    .encode();
    let trace = sim.trace.insert(Vec::new()).len();
    sim.inject(&mut rng, R, b_id, &frame);
    sim.run_until_quiet(&mut rng);
    let told = decode_all(&sim.trace.as_ref().unwrap()[trace..])
        .iter()
        .any(|(from, to, msg)| {
            (*from, *to) == (R, B)
                && matches!(
                    msg,
                    Message::Refused {
                        reason: Refusal::NotAllowed,
                        ..
                    }
                )
        });
    assert!(told, "R told the sender why it refused the chunk");

    // A's next edit is refused by R (say its disk is full): A reports it
    // and lists the document as stuck there until R acknowledges it.
    let r_id = sim.id(R);
    sim.act(A, |n| n.change(&doc, |d| d.put(ROOT, "x", 2))).unwrap();
    assert!(sim.act(A, |n| n.flush(&mut rng, &doc)).unwrap());
    let refusal = Message::Refused {
        doc,
        reason: Refusal::StorageFull,
    };
    sim.inject(&mut rng, A, r_id, &refusal.encode());
    let events = &sim.nodes[A].events;
    assert!(events.iter().any(|e| matches!(
        e,
        Event::PeerRefused {
            reason: Refusal::StorageFull,
            ..
        }
    )));
    let status = sim.nodes[A].node.sync_status(&r_id);
    assert_eq!(status.refused, vec![(doc, Refusal::StorageFull)]);
    assert!(!status.is_complete());
    // Once R stores the edit and acknowledges it, the document is synced.
    sim.run_until_quiet(&mut rng);
    let status = sim.nodes[A].node.sync_status(&r_id);
    assert!(status.refused.is_empty() && status.is_complete(), "{status:?}");
}

/// One rhythm of edits: a burst of `n` single-character changes, or of
/// `n` bytes in one change, then a flush.
#[derive(Clone, Debug)]
enum Edit {
    Keystrokes(usize),
    Paste(usize),
    Bytes(usize),
}

fn edit_strategy() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (1usize..3000).prop_map(Edit::Keystrokes),
        (1usize..400_000).prop_map(Edit::Paste),
        (1usize..(3 * MAX_PART_LEN)).prop_map(Edit::Bytes),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    /// Whatever the rhythm of edits, every chunk sealed, stored or sent is
    /// within the limits readers enforce, and everything arrives.
    #[test]
    fn every_sealed_chunk_is_within_the_readers_limits(rhythm in prop::collection::vec(edit_strategy(), 1..6), seed in any::<u64>()) {
        let (mut rng, mut sim, doc) = setup(seed);
        sim.trace = Some(Vec::new());
        let token = sim.act(A, |n| n.share(&mut rng, &doc, Role::Read)).unwrap();
        sim.act(B, |n| n.join(&mut rng, &token)).unwrap();
        sim.connect(A, R);
        sim.connect(R, B);
        for (i, edit) in rhythm.iter().enumerate() {
            match edit {
                Edit::Keystrokes(n) => {
                    type_keystrokes(&mut sim, &doc, *n, &mut rng);
                }
                Edit::Paste(n) => {
                    let text: String = (0..*n).map(|k| char::from(b'a' + (k % 26) as u8)).collect();
                    sim.act(A, |node| node.change(&doc, |d| {
                        let (_, t) = d.get(ROOT, "text")?.unwrap();
                        d.splice_text(&t, 0, 0, &text)
                    })).unwrap();
                }
                Edit::Bytes(n) => {
                    let value = random_bytes(&mut rng, *n);
                    sim.act(A, |node| node.change(&doc, |d| d.put(ROOT, format!("b{i}"), ScalarValue::Bytes(value)))).unwrap();
                }
            }
            sim.act(A, |n| n.flush(&mut rng, &doc)).unwrap();
            sim.run_until_quiet(&mut rng);
        }
        assert_within_limits(&sim, "rhythm");
        prop_assert_eq!(sim.heads(B, &doc), sim.heads(A, &doc));
    }
}
