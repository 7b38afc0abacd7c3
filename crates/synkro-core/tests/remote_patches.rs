//! The patches a node reports for every change, local or remote, describe
//! the document exactly: replaying them onto a copy of the document as it
//! was gives the document as it is, on every replica, with concurrent edits
//! of a long text and a list arriving in batches of every size. (Remote
//! changes to a long sequence go through Automerge's bounded walk,
//! vendor/README.md; its patches are what apps render from.)

mod common;

use common::workload::random_edit;
use common::{Sim, below, chance, rng};
use synkro_core::automerge::hydrate;
use synkro_core::automerge::{ObjType, ROOT, ReadDoc, transaction::Transactable};
use synkro_core::{Event, NodeConfig, Role};

fn hydrated(sim: &Sim, i: usize, doc: &synkro_core::DocId) -> hydrate::Value {
    sim.read(i, doc, |d| d.hydrate(ROOT, None).unwrap()).unwrap()
}

#[test]
fn replayed_patches_rebuild_the_document_on_every_replica() {
    for seed in 0..6 {
        let mut rng = rng(900 + seed);
        let mut sim = Sim::new(&mut rng, 3, NodeConfig::default());
        sim.label = format!("seed {seed}");
        let doc = sim.act(0, |n| n.create_doc(&mut rng)).unwrap();
        // A text long enough that remote edits skip most of it.
        let start: String = (0..4000).map(|k| char::from(b'a' + (k % 26) as u8)).collect();
        sim.act(0, |n| {
            n.change(&doc, |d| {
                let t = d.put_object(ROOT, "text", ObjType::Text)?;
                d.splice_text(&t, 0, 0, &start)?;
                d.put_object(ROOT, "list", ObjType::List)?;
                d.put_object(ROOT, "map", ObjType::Map)?;
                Ok(())
            })
        })
        .unwrap();
        sim.act(0, |n| n.flush(&mut rng, &doc)).unwrap();
        for i in 1..3 {
            let token = sim.act(0, |n| n.share(&mut rng, &doc, Role::Write)).unwrap();
            sim.act(i, |n| n.join(&mut rng, &token)).unwrap();
        }
        sim.connect_all();
        sim.run_until_quiet(&mut rng);

        let mut mirrors: Vec<hydrate::Value> = (0..3).map(|i| hydrated(&sim, i, &doc)).collect();
        let mut seen: Vec<usize> = (0..3).map(|i| sim.nodes[i].events.len()).collect();
        for _ in 0..60 {
            let i = below(&mut rng, 3);
            sim.act(i, |n| n.change(&doc, |d| random_edit(d, &mut rng, i))).unwrap();
            if chance(&mut rng, 1, 3) {
                sim.act(i, |n| n.flush(&mut rng, &doc)).unwrap();
            }
            // Deliver some of what is in flight, so edits cross.
            for _ in 0..below(&mut rng, 4) {
                sim.step(&mut rng);
            }
            if chance(&mut rng, 1, 10) {
                sim.disconnect(below(&mut rng, 3), below(&mut rng, 3));
                sim.connect_all();
            }
        }
        for i in 0..3 {
            sim.act(i, |n| n.flush_all(&mut rng)).unwrap();
        }
        sim.connect_all();
        sim.run_until_quiet(&mut rng);

        for i in 0..3 {
            let encoding = sim.read(i, &doc, |d| d.text_encoding()).unwrap();
            for e in &sim.nodes[i].events[seen[i]..] {
                if let Event::DocChanged { doc: d, patches, .. } = e
                    && *d == doc
                {
                    mirrors[i].apply_patches(encoding, patches.clone()).unwrap();
                }
            }
            seen[i] = sim.nodes[i].events.len();
            assert_eq!(
                mirrors[i],
                hydrated(&sim, i, &doc),
                "[seed {seed}] node {i}: the patches do not add up to the document"
            );
        }
        assert_eq!(sim.heads(0, &doc), sim.heads(1, &doc));
        assert_eq!(sim.heads(0, &doc), sim.heads(2, &doc));
    }
}
