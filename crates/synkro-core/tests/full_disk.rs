//! A full disk is a state, not an end: a replica whose writes fail for lack
//! of room keeps serving what it holds, refuses new data with a reason the
//! sender sees, retries on its own, and takes everything once there is
//! room again; nothing is lost on either side.

mod common;

use common::{Sim, rng};
use synkro_core::automerge::{ROOT, transaction::Transactable};
use synkro_core::{Event, NodeConfig, Refusal, Role, StorageState};

const A: usize = 0;
const R: usize = 1;
const B: usize = 2;

#[test]
fn a_replica_with_a_full_disk_serves_refuses_retries_and_resumes() {
    let mut rng = rng(81);
    let config = NodeConfig::default();
    let retry = config.write_retry.as_millis() as u64;
    let mut sim = Sim::new(&mut rng, 3, config);
    let relay = sim.id(R);
    let doc = sim.act(A, |n| n.create_doc(&mut rng)).unwrap();
    sim.act(A, |n| n.change(&doc, |d| d.put(ROOT, "n", 0))).unwrap();
    sim.act(A, |n| n.flush(&mut rng, &doc)).unwrap();
    sim.act(A, |n| n.grant(&mut rng, &doc, relay, None, Role::Replicate))
        .unwrap();
    let token = sim.act(A, |n| n.share(&mut rng, &doc, Role::Read)).unwrap();
    sim.act(B, |n| n.join(&mut rng, &token)).unwrap();
    sim.connect(A, R);
    sim.connect(R, B);
    sim.run_until_quiet(&mut rng);
    assert!(sim.nodes[R].node.sync_status(&sim.id(A)).synced.contains(&doc));
    sim.disconnect(R, B);

    // R's disk fills: the first write that fails turns it Full.
    sim.nodes[R].disk_full = true;
    sim.act(A, |n| n.change(&doc, |d| d.put(ROOT, "n", 1))).unwrap();
    sim.act(A, |n| n.flush(&mut rng, &doc)).unwrap();
    sim.run_until_quiet(&mut rng);
    assert_eq!(sim.nodes[R].node.storage_state(), StorageState::Full);
    assert!(
        sim.nodes[R]
            .events
            .iter()
            .any(|e| matches!(e, Event::Storage(StorageState::Full)))
    );
    // Later data is refused, and A sees why.
    sim.act(A, |n| n.change(&doc, |d| d.put(ROOT, "n", 2))).unwrap();
    sim.act(A, |n| n.flush(&mut rng, &doc)).unwrap();
    sim.run_until_quiet(&mut rng);
    let status = sim.nodes[A].node.sync_status(&relay);
    assert_eq!(status.refused, vec![(doc, Refusal::StorageFull)], "{status:?}");
    // Sessions still work: B comes back. (What R says of this document
    // waits for the write that failed, as every message about a document
    // waits for its writes; documents without one are served as usual.)
    sim.disconnect(A, R);
    sim.connect(R, B);
    sim.run_until_quiet(&mut rng);
    assert!(sim.nodes[R].node.greeted(&sim.id(B)) && sim.nodes[B].node.greeted(&relay));
    // Retries while full change nothing.
    sim.advance(&mut rng, sim.now + 3 * retry, Default::default());
    assert_eq!(sim.nodes[R].node.storage_state(), StorageState::Full);

    // Room again: the next retry writes what waited, and R takes the rest.
    sim.nodes[R].disk_full = false;
    sim.advance(&mut rng, sim.now + retry + 1, Default::default());
    assert_eq!(sim.nodes[R].node.storage_state(), StorageState::Ok);
    sim.connect(A, R);
    sim.run_until_quiet(&mut rng);
    let status = sim.nodes[A].node.sync_status(&relay);
    assert!(status.refused.is_empty() && status.synced == vec![doc], "{status:?}");
    assert_eq!(sim.json(B, &doc), sim.json(A, &doc), "B has every edit, through R");
    // And it is all on R's disk: a restart loses nothing.
    sim.crash(&mut rng, R);
    sim.connect(R, B);
    sim.run_until_quiet(&mut rng);
    assert!(sim.nodes[R].node.sync_status(&sim.id(B)).synced.contains(&doc));
}

#[test]
fn a_full_replica_takes_data_again_without_a_new_session() {
    let mut rng = rng(82);
    let config = NodeConfig::default();
    let retry = config.write_retry.as_millis() as u64;
    let mut sim = Sim::new(&mut rng, 2, config);
    let relay = sim.id(R);
    let doc = sim.act(A, |n| n.create_doc(&mut rng)).unwrap();
    sim.act(A, |n| n.grant(&mut rng, &doc, relay, None, Role::Replicate))
        .unwrap();
    sim.connect(A, R);
    sim.run_until_quiet(&mut rng);
    sim.nodes[R].disk_full = true;
    for i in 1..=3 {
        sim.act(A, |n| n.change(&doc, |d| d.put(ROOT, "n", i))).unwrap();
        sim.act(A, |n| n.flush(&mut rng, &doc)).unwrap();
        sim.run_until_quiet(&mut rng);
    }
    assert!(!sim.nodes[A].node.sync_status(&relay).refused.is_empty());
    sim.nodes[R].disk_full = false;
    sim.advance(&mut rng, sim.now + retry + 1, Default::default());
    sim.run_until_quiet(&mut rng);
    let status = sim.nodes[A].node.sync_status(&relay);
    assert!(status.refused.is_empty() && status.synced == vec![doc], "{status:?}");
}
