//! The access-log decoder and verifier: ops inserted in any order, with any
//! bytes. The input is a sequence of ops, each `u16 LE length` + bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use synkro_core::DocId;
use synkro_core::access::{AccessLog, AccessOp};

fuzz_target!(|data: &[u8]| {
    let Some((doc, mut rest)) = data.split_first_chunk::<32>() else {
        return;
    };
    let mut log = AccessLog::new(DocId(*doc));
    while rest.len() >= 2 {
        let len = usize::from(u16::from_le_bytes([rest[0], rest[1]])).min(rest.len() - 2);
        let op = &rest[2..2 + len];
        rest = &rest[2 + len..];
        let _ = AccessOp::decode(op);
        let _ = log.insert(op);
    }
    let _ = log.heads();
    let _ = log.missing_for(&[]);
    let _ = log.key_material();
    let state = log.state();
    let _ = state.current_key();
});
