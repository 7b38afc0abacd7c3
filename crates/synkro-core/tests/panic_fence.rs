//! The panic fence: a panic inside a change (the application's closure or
//! Automerge itself) becomes `CoreError::Panicked`, the document is rebuilt
//! from its sealed chunks, and the node keeps working and syncing.

mod common;

use common::{Sim, batching, rng};
use serde_json::json;
use synkro_core::automerge::{ROOT, transaction::Transactable};
use synkro_core::{CoreError, Role};

#[test]
fn a_panicking_change_is_contained_and_the_document_reloads() {
    // The default hook would print the expected panic as if it were a failure.
    std::panic::set_hook(Box::new(|_| {}));
    let mut rng = rng(11);
    let mut sim = Sim::new(&mut rng, 2, batching());
    let doc = sim.act(0, |n| n.create_doc(&mut rng)).unwrap();
    sim.act(0, |n| n.change(&doc, |d| d.put(ROOT, "sealed", "kept")))
        .unwrap();
    assert!(sim.act(0, |n| n.flush(&mut rng, &doc)).unwrap());
    // An edit that is applied but not yet flushed, then a change that
    // panics half way, after touching the document.
    sim.act(0, |n| n.change(&doc, |d| d.put(ROOT, "unflushed", 1))).unwrap();
    let err = sim
        .act(0, |n| {
            n.change(&doc, |d| -> Result<(), _> {
                d.put(ROOT, "half", "done")?;
                panic!("bug in the application's closure")
            })
        })
        .unwrap_err();
    assert!(
        matches!(&err, CoreError::Panicked { message, .. } if message.contains("application's closure")),
        "{err:?}"
    );
    assert!(err.to_string().contains("reloaded from storage"), "{err}");
    // Rebuilt from the sealed chunk: what was flushed is there, the half
    // change is not, and (as documented) the unflushed edit is gone.
    assert_eq!(sim.json(0, &doc), Some(json!({ "sealed": "kept" })));
    assert!(!sim.nodes[0].node.is_dirty(&doc));

    // The node goes on: it edits, flushes, shares and syncs.
    sim.act(0, |n| n.change(&doc, |d| d.put(ROOT, "after", true))).unwrap();
    assert!(sim.act(0, |n| n.flush(&mut rng, &doc)).unwrap());
    let token = sim.act(0, |n| n.share(&mut rng, &doc, Role::Read)).unwrap();
    sim.act(1, |n| n.join(&mut rng, &token)).unwrap();
    sim.connect(0, 1);
    sim.run_until_quiet(&mut rng);
    assert_eq!(sim.json(1, &doc), Some(json!({ "sealed": "kept", "after": true })));
    assert_eq!(sim.heads(0, &doc), sim.heads(1, &doc));
    let _ = std::panic::take_hook();
}
