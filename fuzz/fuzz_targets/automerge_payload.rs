//! Automerge's loaders on decrypted payloads. A writer of a document can
//! seal any bytes it likes, so after decryption Automerge sees arbitrary
//! input. The replica calls it through the panic fence; here a panic is
//! contained the same way, so what the fuzzer finds are the failures the
//! fence cannot contain: aborts, stack overflows, hangs, huge allocations.
#![no_main]

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Once;

use libfuzzer_sys::fuzz_target;
use synkro_core::automerge::{AutoCommit, ROOT, transaction::Transactable};

static QUIET: Once = Once::new();

fuzz_target!(|data: &[u8]| {
    // libfuzzer-sys aborts on any panic; the fence catches them instead.
    QUIET.call_once(|| std::panic::set_hook(Box::new(|_| {})));
    let _ = catch_unwind(AssertUnwindSafe(|| {
        let _ = AutoCommit::load(data);
        let mut doc = AutoCommit::new();
        doc.put(ROOT, "k", "v").expect("put");
        let _ = doc.load_incremental(data);
        let _ = doc.get_heads();
    }));
});
