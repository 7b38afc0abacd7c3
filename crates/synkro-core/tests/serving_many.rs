//! A node serving a peer that lacks many documents (a relay answering a
//! device's first sync) must not hold them all in memory: what its send
//! window holds back may leave memory and is read again when its turn
//! comes, a few documents at a time.

mod common;

use common::{Faults, Sim, batching, below, rng};
use synkro_core::automerge::{ObjType, ROOT, transaction::Transactable};
use synkro_core::{NodeConfig, Role};

const DOCS: usize = 100;

#[test]
fn a_peer_behind_many_documents_gets_them_all_from_few_in_memory() {
    let mut rng = rng(19);
    let config = NodeConfig {
        // A window of two documents' chunks; every idle document unloads.
        send_window: 8 << 10,
        memory_budget: 0,
        ..batching()
    };
    let mut sim = Sim::new(&mut rng, 2, config);
    let (b, bx) = (sim.id(1), sim.nodes[1].identity.exchange_key());
    let mut docs = Vec::new();
    for _ in 0..DOCS {
        let doc = sim.act(0, |n| n.create_doc(&mut rng)).unwrap();
        // Random letters: about 6 KB sealed, whatever the compression.
        let body: String = (0..8_000)
            .map(|_| char::from(b'a' + below(&mut rng, 26) as u8))
            .collect();
        sim.act(0, |n| {
            n.change(&doc, |d| {
                let text = d.put_object(ROOT, "body", ObjType::Text)?;
                d.splice_text(&text, 0, 0, &body)
            })
        })
        .unwrap();
        assert!(sim.act(0, |n| n.flush(&mut rng, &doc)).unwrap());
        sim.act(0, |n| n.grant(&mut rng, &doc, b, Some(bx), Role::Read))
            .unwrap();
        docs.push(doc);
    }
    // Restarted, node 0 holds every document unloaded.
    sim.crash(&mut rng, 0);
    sim.latency = (200, 200);
    sim.connect(0, 1);

    let loaded = |sim: &Sim| docs.iter().filter(|d| sim.nodes[0].node.is_loaded(d)).count();
    let start = sim.now;
    let mut most = 0;
    let mut idle_rounds = 0;
    while idle_rounds < 50 {
        let now = sim.now;
        let delivered = sim.advance(&mut rng, now + 50, Faults::default());
        idle_rounds = if delivered == 0 && sim.pending() == 0 {
            idle_rounds + 1
        } else {
            0
        };
        // The greeting loads every shared document once (to say where it
        // stands); from the next looks at the budget on, few stay: those
        // being sent and those the peer's acknowledgements name.
        if sim.now > start + 3_000 {
            most = most.max(loaded(&sim));
        }
        assert!(sim.now < start + 600_000, "the transfer did not finish");
    }
    sim.load_all(0);
    sim.load_all(1);
    for doc in &docs {
        assert!(sim.json(1, doc).is_some(), "node 1 got every document");
        assert_eq!(sim.json(0, doc), sim.json(1, doc));
    }
    assert!(
        most <= DOCS / 5,
        "{most} of {DOCS} documents in memory at once while they were sent"
    );
}
