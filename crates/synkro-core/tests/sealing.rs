//! When edits are sealed: an edit at rest at once, one soon after a seal a
//! window later with those that follow (a burst: at most one chunk per
//! window), and with `seal_at_once: false` every edit a window later.

use std::time::Duration;

use automerge::{ROOT, transaction::Transactable};
use rand_chacha::{ChaCha20Rng, rand_core::SeedableRng};
use synkro_core::{DeviceIdentity, DocId, Effect, Instant, Node, NodeConfig};

const WINDOW: Duration = Duration::from_millis(50);

fn node(seal_at_once: bool) -> (Node, DocId, ChaCha20Rng) {
    let mut rng = ChaCha20Rng::from_seed([3; 32]);
    let config = NodeConfig {
        flush_window: WINDOW,
        seal_at_once,
        ..NodeConfig::default()
    };
    let mut node = Node::new(DeviceIdentity::generate(&mut rng), config);
    let doc = node.create_doc(&mut rng).unwrap();
    node.handle_timeout(&mut rng, Instant::ZERO);
    while node.poll_effect().is_some() {}
    (node, doc, rng)
}

fn edit(node: &mut Node, doc: &DocId, n: u64) {
    node.change(doc, |d| d.put(ROOT, "n", n)).unwrap();
}

/// Tell the node the time; how many writes it asked for (one per seal).
fn tick(node: &mut Node, rng: &mut ChaCha20Rng, ms: u64) -> usize {
    node.handle_timeout(rng, Instant::from_millis(ms));
    let mut writes = 0;
    while let Some(e) = node.poll_effect() {
        if let Effect::Persist { write, .. } = e {
            node.persisted(write);
            writes += 1;
        }
    }
    writes
}

#[test]
fn an_edit_at_rest_is_sealed_at_once_and_one_soon_after_waits_a_window() {
    let (mut node, doc, mut rng) = node(true);
    edit(&mut node, &doc, 1);
    assert_eq!(tick(&mut node, &mut rng, 1000), 1, "sealed at the first handle_timeout");
    assert!(!node.is_dirty(&doc));

    // 10 ms later: within a window of that seal, so it waits a window.
    edit(&mut node, &doc, 2);
    assert_eq!(tick(&mut node, &mut rng, 1010), 0);
    assert!(node.is_dirty(&doc));
    assert_eq!(node.poll_timeout(), Some(Instant::from_millis(1060)));
    edit(&mut node, &doc, 3);
    assert_eq!(tick(&mut node, &mut rng, 1030), 0);
    assert_eq!(tick(&mut node, &mut rng, 1059), 0);
    assert_eq!(tick(&mut node, &mut rng, 1060), 1, "both edits in one seal");
    assert!(!node.is_dirty(&doc));

    // A window after that seal, at rest again: at once.
    edit(&mut node, &doc, 4);
    assert_eq!(tick(&mut node, &mut rng, 1200), 1);
}

#[test]
fn a_burst_is_sealed_at_most_once_per_window() {
    let (mut node, doc, mut rng) = node(true);
    let mut seals = 0;
    // An edit every 2 ms for one second.
    for i in 0..500u64 {
        edit(&mut node, &doc, i);
        seals += tick(&mut node, &mut rng, 10_000 + 2 * i);
    }
    seals += tick(&mut node, &mut rng, 11_100);
    assert!(!node.is_dirty(&doc));
    // One at once, then one every window and a step: 1 + 1000 / 52.
    assert!((18..=21).contains(&seals), "{seals} seals for a one-second burst");
}

#[test]
fn without_seal_at_once_every_edit_waits_a_window() {
    let (mut node, doc, mut rng) = node(false);
    edit(&mut node, &doc, 1);
    assert_eq!(tick(&mut node, &mut rng, 1000), 0);
    assert_eq!(node.poll_timeout(), Some(Instant::from_millis(1050)));
    assert_eq!(tick(&mut node, &mut rng, 1050), 1);
    edit(&mut node, &doc, 2);
    assert_eq!(tick(&mut node, &mut rng, 5000), 0, "at rest too");
    assert_eq!(tick(&mut node, &mut rng, 5050), 1);
}
