//! A peer's frames on a sync session: the node decodes each as a sync
//! message and acts on it. Any input: no panic, no unbounded growth.
//! The input is a sequence of frames, each `u16 LE length` + bytes, sent by
//! a member of the node's document (so messages get past the membership
//! check and reach the access-log and chunk code).
#![no_main]

use libfuzzer_sys::fuzz_target;
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use synkro_core::automerge::{ROOT, transaction::Transactable};
use synkro_core::{DeviceIdentity, Message, Node, NodeConfig, Role};

fuzz_target!(|data: &[u8]| {
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let mut node = Node::new(DeviceIdentity::generate(&mut rng), NodeConfig::default());
    let peer = DeviceIdentity::generate(&mut rng);
    let doc = node.create_doc(&mut rng).expect("create");
    node.change(&doc, |d| d.put(ROOT, "k", "v")).expect("change");
    node.flush(&mut rng, &doc).expect("flush");
    node.grant(&mut rng, &doc, peer.member_id(), Some(peer.exchange_key()), Role::Write)
        .expect("grant");
    let session = node.peer_connected(peer.member_id());

    let mut rest = data;
    while rest.len() >= 2 {
        let len = usize::from(u16::from_le_bytes([rest[0], rest[1]])).min(rest.len() - 2);
        let frame = &rest[2..2 + len];
        rest = &rest[2 + len..];
        // Both the decoder alone and the node's handling of it.
        let _ = Message::decode(frame);
        node.handle_message(&mut rng, session, frame);
        while node.poll_effect().is_some() {}
    }
    // Whatever happened, the node still works.
    node.change(&doc, |d| d.put(ROOT, "after", 1)).expect("still writable");
});
