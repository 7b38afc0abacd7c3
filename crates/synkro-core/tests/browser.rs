//! The sans-IO core inside real headless Chromium (wasm-bindgen-test):
//! identities from the browser's randomness, sealing and verifying, and
//! two writers syncing through a blind replica. `scripts/test.sh` runs it
//! with `wasm-bindgen-test-runner`.
#![cfg(target_arch = "wasm32")]

mod common;

use common::{Sim, contains};
use synkro_core::automerge::{ROOT, transaction::Transactable};
use synkro_core::{DeviceIdentity, NodeConfig, Role};
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

#[wasm_bindgen_test]
fn identities_come_from_the_browsers_randomness() {
    let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
    let (a, b) = (DeviceIdentity::generate(&mut rng), DeviceIdentity::generate(&mut rng));
    assert_ne!(a.member_id(), b.member_id());
    let sig = a.sign(b"hello");
    assert!(a.member_id().verify(b"hello", &sig).is_ok());
    assert!(b.member_id().verify(b"hello", &sig).is_err());
}

#[wasm_bindgen_test]
fn two_writers_converge_through_a_blind_replica() {
    const MARKER: &str = "browser-plaintext-marker-5e1f";
    let (a, r, b) = (0, 1, 2);
    let mut rng = common::rng(7);
    let mut sim = Sim::new(&mut rng, 3, NodeConfig::default());
    let r_id = sim.id(r);
    let doc = sim.act(a, |n| n.create_doc(&mut rng)).expect("create");
    sim.act(a, |n| n.change(&doc, |d| d.put(ROOT, "from_a", MARKER)))
        .expect("change");
    sim.act(a, |n| n.flush(&mut rng, &doc)).expect("flush");
    sim.act(a, |n| n.grant(&mut rng, &doc, r_id, None, Role::Replicate))
        .expect("grant");
    let token = sim.act(a, |n| n.share(&mut rng, &doc, Role::Write)).expect("share");
    sim.act(b, |n| n.join(&mut rng, &token)).expect("join");
    sim.connect(a, r);
    sim.connect(r, b);
    sim.run_until_quiet(&mut rng);
    sim.act(b, |n| n.change(&doc, |d| d.put(ROOT, "from_b", "hi")))
        .expect("change");
    sim.act(b, |n| n.flush(&mut rng, &doc)).expect("flush");
    sim.run_until_quiet(&mut rng);

    let (ja, jb) = (sim.json(a, &doc).expect("a reads"), sim.json(b, &doc).expect("b reads"));
    assert_eq!(ja, jb);
    assert_eq!(ja["from_b"], "hi");
    assert!(sim.json(r, &doc).is_none(), "the replica cannot read");
    for v in sim.all_values(r) {
        assert!(!contains(v, MARKER.as_bytes()), "the replica stored plaintext");
    }
}
