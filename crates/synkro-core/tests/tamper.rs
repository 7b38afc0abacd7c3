//! Chunks in transit: every single-bit flip of a sealed chunk (header,
//! nonce, ciphertext, tag, signature) is refused before any plaintext
//! reaches Automerge, and chunks replayed, duplicated and shuffled give
//! exactly the state in-order delivery gives.

mod common;

use common::{Sim, batching, rng, stored_chunks};
use rand_chacha::rand_core::Rng;
use synkro_core::automerge::{ROOT, transaction::Transactable};
use synkro_core::{DocId, Message, Role, SealedChunk};

const OWNER: usize = 0;
const IN_ORDER: usize = 1;
const SHUFFLED: usize = 2;

fn frame(doc: DocId, chunks: &[&SealedChunk]) -> Vec<u8> {
    Message::Chunks {
        doc,
        chunks: chunks.iter().map(|c| c.encoded().to_vec().into()).collect(),
    }
    .encode()
}

/// The owner and two readers who hold the key but none of the chunks: the
/// readers synced the access log, then went offline while the owner made
/// `edits` flushed edits. Returns the chunks the owner holds, in its order.
fn setup(seed: u64, edits: usize) -> (Sim, DocId, Vec<SealedChunk>, rand_chacha::ChaCha20Rng) {
    let mut rng = rng(seed);
    let mut sim = Sim::new(&mut rng, 3, batching());
    let doc = sim.act(OWNER, |n| n.create_doc(&mut rng)).unwrap();
    for r in [IN_ORDER, SHUFFLED] {
        let token = sim.act(OWNER, |n| n.share(&mut rng, &doc, Role::Read)).unwrap();
        sim.act(r, |n| n.join(&mut rng, &token)).unwrap();
        sim.connect(OWNER, r);
    }
    sim.run_until_quiet(&mut rng);
    sim.disconnect(OWNER, IN_ORDER);
    sim.disconnect(OWNER, SHUFFLED);
    for i in 0..edits {
        sim.act(OWNER, |n| {
            n.change(&doc, |d| {
                d.put(ROOT, format!("k{}", i % 7), i as i64)?;
                d.put(ROOT, "last", i as i64)
            })
        })
        .unwrap();
        assert!(sim.act(OWNER, |n| n.flush(&mut rng, &doc)).unwrap());
    }
    let (mut changes, snapshots) = stored_chunks(&sim.records(OWNER, &doc));
    changes.extend(snapshots);
    changes.sort_by_key(|c| c.header().seq);
    // The readers now accept frames "from the owner" that the test writes.
    let owner = sim.id(OWNER);
    sim.connect_outside(IN_ORDER, owner);
    sim.connect_outside(SHUFFLED, owner);
    (sim, doc, changes, rng)
}

#[test]
fn every_bit_flip_of_a_chunk_is_refused_before_decryption() {
    let (mut sim, doc, chunks, mut rng) = setup(5, 1);
    let good = chunks.last().unwrap().encoded().to_vec();
    let owner = sim.id(OWNER);
    let heads_before = sim.heads(IN_ORDER, &doc);
    let mut refused = 0;
    for bit in 0..good.len() * 8 {
        let mut bad = good.clone();
        bad[bit / 8] ^= 1 << (bit % 8);
        assert!(
            SealedChunk::decode(&bad).is_err(),
            "flip of bit {bit} of {} decoded",
            good.len() * 8
        );
        let message = Message::Chunks {
            doc,
            chunks: vec![bad.into()],
        }
        .encode();
        // A fresh session each time: the node hangs up on a peer that
        // sends a forged chunk, and would ignore the rest.
        let before = (sim.nodes[IN_ORDER].rejected(), sim.nodes[IN_ORDER].disconnects.len());
        sim.connect_outside(IN_ORDER, owner);
        sim.inject(&mut rng, IN_ORDER, owner, &message);
        let after = (sim.nodes[IN_ORDER].rejected(), sim.nodes[IN_ORDER].disconnects.len());
        assert!(
            after.0 > before.0 || after.1 > before.1,
            "flip of bit {bit} neither rejected nor hung up on"
        );
        refused += 1;
    }
    // Nothing of it reached the document, and nothing was stored.
    assert_eq!(sim.heads(IN_ORDER, &doc), heads_before);
    assert_eq!(sim.nodes[IN_ORDER].node.info(&doc).unwrap().chunks, 0);
    eprintln!("{refused} single-bit flips of a {}-byte chunk refused", good.len());
    // The genuine chunk is then accepted: the flips did not poison anything.
    let good = SealedChunk::decode(&good).unwrap();
    sim.connect_outside(IN_ORDER, owner);
    sim.inject(&mut rng, IN_ORDER, owner, &frame(doc, &[&good]));
    assert_eq!(sim.heads(IN_ORDER, &doc), sim.heads(OWNER, &doc));
}

#[test]
fn replayed_and_shuffled_chunks_give_the_in_order_state() {
    for seed in 0..20 {
        let (mut sim, doc, chunks, mut rng) = setup(100 + seed, 12);
        let owner = sim.id(OWNER);
        for c in &chunks {
            sim.inject(&mut rng, IN_ORDER, owner, &frame(doc, &[c]));
        }
        // Every chunk two or three times, in random order and batches.
        let mut deliveries: Vec<&SealedChunk> = chunks.iter().chain(chunks.iter()).collect();
        deliveries.extend(chunks.iter().filter(|_| rng.next_u32() % 2 == 0));
        for i in (1..deliveries.len()).rev() {
            deliveries.swap(i, (rng.next_u64() % (i as u64 + 1)) as usize);
        }
        for batch in deliveries.chunks(1 + (rng.next_u32() % 4) as usize) {
            sim.inject(&mut rng, SHUFFLED, owner, &frame(doc, batch));
        }
        let label = format!("seed {seed}");
        assert_eq!(sim.heads(IN_ORDER, &doc), sim.heads(OWNER, &doc), "[{label}] in order");
        assert_eq!(sim.heads(SHUFFLED, &doc), sim.heads(OWNER, &doc), "[{label}] shuffled");
        assert_eq!(sim.json(SHUFFLED, &doc), sim.json(OWNER, &doc), "[{label}] content");
        let (a, b) = (
            sim.nodes[IN_ORDER].node.info(&doc).unwrap(),
            sim.nodes[SHUFFLED].node.info(&doc).unwrap(),
        );
        assert_eq!(a.vv, b.vv, "[{label}] version vectors");
        assert_eq!(a.chunks, b.chunks, "[{label}] duplicates were stored");
        assert_eq!(sim.records(IN_ORDER, &doc).len(), sim.records(SHUFFLED, &doc).len());
    }
}
