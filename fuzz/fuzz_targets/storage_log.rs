//! The file backend's log reader on any file content: `load` returns the
//! intact records and reports the rest, never fails or panics on content.
//! Its repair (cutting a damaged end) changes no record, leaves no torn
//! tail, and only ever removes problems: damage in the middle of a log is
//! reported on every load, not rewritten.
#![no_main]

use libfuzzer_sys::fuzz_target;
use synkro_storage::{FsStorage, ProblemKind, Storage};

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().expect("tempdir");
    let ns = [0x5a; 32];
    let store = FsStorage::open(dir.path()).expect("open");
    std::fs::write(store.log_path(&ns), data).expect("write log");
    let first = futures::executor::block_on(store.load(&ns)).expect("load never fails on content");
    let second = futures::executor::block_on(store.load(&ns)).expect("second load");
    assert_eq!(first.records, second.records);
    assert!(second.problems.len() <= first.problems.len(), "{:?}", second.problems);
    assert!(
        !second.problems.iter().any(|p| p.kind == ProblemKind::TornTail),
        "{:?}",
        second.problems
    );
});
