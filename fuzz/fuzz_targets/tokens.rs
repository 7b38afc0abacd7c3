//! Text and bytes users paste or pick: invitation tokens and document ids
//! parse or give a typed error; backups open or give a typed error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use synkro_core::{DeviceIdentity, DocId, InviteToken, MemberId, Node, NodeConfig};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = text.parse::<InviteToken>();
        let _ = text.parse::<DocId>();
        let _ = text.parse::<MemberId>();
    }
    if data.len() < 4096 {
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let mut node = Node::new(DeviceIdentity::generate(&mut rng), NodeConfig::default());
        let _ = node.import(&mut rng, data, b"pw");
    }
});
