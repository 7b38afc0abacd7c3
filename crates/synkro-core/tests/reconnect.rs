//! Reconnect cost: two nodes sharing many documents that are already in sync
//! must settle a reconnection in one round trip of a few hundred bytes (a
//! `Hello`, its `Answer` and `Reconciled` each way) and nothing else; the
//! session must keep working afterwards, and offline edits on a few
//! documents cost messages about those documents only.

mod common;

use common::{Sim, batching, decode_all, rng};
use rand_chacha::ChaCha20Rng;
use synkro_core::automerge::{ROOT, ReadDoc, transaction::Transactable};
use synkro_core::{DocId, Message, Role};

const DOCS: usize = 200;

/// Node 0 owns `DOCS` documents, each with some content and node 1 granted
/// write; both connected and synced.
fn synced_pair(seed: u64) -> (Sim, Vec<DocId>, ChaCha20Rng) {
    let mut rng = rng(seed);
    let mut sim = Sim::new(&mut rng, 2, batching());
    let (b, bx) = (sim.id(1), sim.nodes[1].identity.exchange_key());
    let mut docs = Vec::new();
    for i in 0..DOCS {
        let doc = sim.act(0, |n| n.create_doc(&mut rng)).unwrap();
        sim.act(0, |n| n.change(&doc, |d| d.put(ROOT, "n", i as i64))).unwrap();
        assert!(sim.act(0, |n| n.flush(&mut rng, &doc)).unwrap());
        sim.act(0, |n| n.grant(&mut rng, &doc, b, Some(bx), Role::Write))
            .unwrap();
        docs.push(doc);
    }
    sim.connect(0, 1);
    sim.run_until_quiet(&mut rng);
    for doc in &docs {
        assert!(sim.json(1, doc).is_some(), "node 1 can read every shared document");
        assert_eq!(sim.json(0, doc), sim.json(1, doc));
        assert_eq!(sim.heads(0, doc), sim.heads(1, doc));
    }
    (sim, docs, rng)
}

fn get_str(sim: &Sim, i: usize, doc: &DocId, key: &str) -> Option<String> {
    sim.read(i, doc, |d| d.get(ROOT, key).ok().flatten().map(|(v, _)| v.to_string()))
        .flatten()
}

#[test]
fn unchanged_reconnect_is_one_round_trip_of_a_few_hundred_bytes() {
    let (mut sim, _docs, mut rng) = synced_pair(6);
    sim.disconnect(0, 1);
    sim.trace = Some(Vec::new());
    sim.connect(0, 1);
    sim.run_until_quiet(&mut rng);
    let trace = sim.trace.clone().unwrap_or_default();
    let msgs = decode_all(&trace);
    let mut summary: Vec<String> = msgs.iter().map(|(f, t, m)| format!("{f}->{t} {}", kind(m))).collect();
    summary.sort();
    assert_eq!(
        summary,
        [
            "0->1 Answer",
            "0->1 Hello",
            "0->1 Reconciled",
            "1->0 Answer",
            "1->0 Hello",
            "1->0 Reconciled"
        ],
        "messages after an unchanged reconnect"
    );
    let bytes: usize = trace.iter().map(|(_, _, b)| b.len()).sum();
    assert!(
        bytes < 1024,
        "{bytes} bytes to find that {DOCS} documents are unchanged"
    );
    assert!(sim.nodes[0].node.greeted(&sim.id(1)) && sim.nodes[1].node.greeted(&sim.id(0)));
    let status = sim.nodes[0].node.sync_status(&sim.id(1));
    assert_eq!(
        status.synced.len(),
        DOCS,
        "every document known to be in sync: {status:?}"
    );
}

/// After a reconnect in which every digest matched (so no `Have` was
/// exchanged), new edits on either side must still be pushed.
#[test]
fn edits_after_unchanged_reconnect_still_sync() {
    let (mut sim, docs, mut rng) = synced_pair(7);
    sim.disconnect(0, 1);
    sim.connect(0, 1);
    sim.run_until_quiet(&mut rng);

    sim.act(0, |n| n.change(&docs[0], |d| d.put(ROOT, "after", "from 0")))
        .unwrap();
    assert!(sim.act(0, |n| n.flush(&mut rng, &docs[0])).unwrap());
    sim.act(1, |n| n.change(&docs[1], |d| d.put(ROOT, "after", "from 1")))
        .unwrap();
    assert!(sim.act(1, |n| n.flush(&mut rng, &docs[1])).unwrap());
    sim.run_until_quiet(&mut rng);

    assert_eq!(
        get_str(&sim, 1, &docs[0], "after").as_deref(),
        Some("\"from 0\""),
        "owner's edit reached node 1"
    );
    assert_eq!(
        get_str(&sim, 0, &docs[1], "after").as_deref(),
        Some("\"from 1\""),
        "node 1's edit reached the owner"
    );
    for doc in &docs[..2] {
        assert_eq!(sim.heads(0, doc), sim.heads(1, doc));
    }
}

/// Offline edits on a few documents: the reconnect only talks about those.
#[test]
fn reconnect_after_offline_edits_touches_only_changed_docs() {
    let (mut sim, docs, mut rng) = synced_pair(8);
    sim.disconnect(0, 1);
    let changed = [docs[3], docs[50], docs[199]];
    for (k, doc) in changed.iter().enumerate() {
        let who = k % 2;
        sim.act(who, |n| n.change(doc, |d| d.put(ROOT, "offline", k as i64)))
            .unwrap();
        assert!(sim.act(who, |n| n.flush(&mut rng, doc)).unwrap());
    }
    sim.trace = Some(Vec::new());
    sim.connect(0, 1);
    sim.run_until_quiet(&mut rng);
    let msgs = decode_all(sim.trace.as_deref().unwrap_or_default());
    let mut hellos = 0;
    for (_, _, m) in &msgs {
        match m {
            Message::Hello { .. } => hellos += 1,
            Message::Query { .. } | Message::Answer { .. } | Message::Reconciled => {}
            Message::Have { doc, .. }
            | Message::Ops { doc, .. }
            | Message::Chunks { doc, .. }
            | Message::Ephemeral { doc, .. }
            | Message::Refused { doc, .. } => {
                assert!(
                    changed.contains(doc),
                    "message about an unchanged document: {}",
                    kind(m)
                )
            }
        }
    }
    assert_eq!(hellos, 2);
    for doc in &changed {
        assert_eq!(sim.json(0, doc), sim.json(1, doc));
        assert_eq!(sim.heads(0, doc), sim.heads(1, doc));
    }
}

fn kind(m: &Message) -> &'static str {
    match m {
        Message::Hello { .. } => "Hello",
        Message::Have { .. } => "Have",
        Message::Ops { .. } => "Ops",
        Message::Chunks { .. } => "Chunks",
        Message::Ephemeral { .. } => "Ephemeral",
        Message::Refused { .. } => "Refused",
        Message::Query { .. } => "Query",
        Message::Answer { .. } => "Answer",
        Message::Reconciled => "Reconciled",
    }
}
