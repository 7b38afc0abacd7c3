//! Reconnect cost: two nodes sharing many documents that are already in sync
//! must settle a reconnection with one `Hello` each way and nothing else, and
//! the session must keep working afterwards.

mod common;

use common::{Sim, decode_all, rng};
use rand_chacha::ChaCha20Rng;
use synkro_core::automerge::{ROOT, ReadDoc, transaction::Transactable};
use synkro_core::{DocId, Message, NodeConfig, Role};

const DOCS: usize = 200;

/// Node 0 owns `DOCS` documents, each with some content and node 1 granted
/// write; both connected and synced.
fn synced_pair(seed: u64) -> (Sim, Vec<DocId>, ChaCha20Rng) {
    let mut rng = rng(seed);
    let mut sim = Sim::new(&mut rng, 2, NodeConfig::default());
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
fn unchanged_reconnect_is_one_hello_each_way() {
    let (mut sim, _docs, mut rng) = synced_pair(6);
    sim.disconnect(0, 1);
    sim.trace = Some(Vec::new());
    sim.connect(0, 1);
    sim.run_until_quiet(&mut rng);
    let msgs = decode_all(sim.trace.as_deref().unwrap_or_default());
    let summary: Vec<String> = msgs.iter().map(|(f, t, m)| format!("{f}->{t} {}", kind(m))).collect();
    assert_eq!(msgs.len(), 2, "messages after an unchanged reconnect: {summary:?}");
    let mut directions = Vec::new();
    for (f, t, m) in &msgs {
        match m {
            Message::Hello { docs, .. } => assert_eq!(docs.len(), DOCS, "a Hello lists every shared document"),
            other => panic!("expected only Hellos, got {}", kind(other)),
        }
        directions.push((*f, *t));
    }
    directions.sort();
    assert_eq!(directions, vec![(0, 1), (1, 0)]);
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
    }
}
