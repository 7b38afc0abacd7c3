//! Crash and damage recovery of the file backend, on real files.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use std::path::Path;
use std::sync::Arc;

use common::{Model, NS_A, NS_B, Rng, apply, assert_clean, del, file_len, put};
use synkro_storage::{FsStorage, MemoryStorage, Namespace, Problem, ProblemKind, Storage, WriteOp};

/// A log with three frames; returns (store dir, log bytes, frame start
/// offsets, model after each frame).
struct ThreeFrames {
    bytes: Vec<u8>,
    starts: [usize; 3],
    models: [Model; 3],
}

async fn three_frames() -> ThreeFrames {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = FsStorage::open(dir.path()).expect("open");
    let path = store.log_path(&NS_A);
    let writes = [
        vec![put(b"a", b"first value"), put(b"b", b"second value")],
        vec![put(b"c", b"third value"), del(b"a")],
        // Multi-op last frame: after a crash, all of it or none.
        vec![put(b"d", b"fourth value"), put(b"b", b"overwritten value"), del(b"c")],
    ];
    let mut starts = [0; 3];
    let mut models: [Model; 3] = Default::default();
    let mut model = Model::new();
    for (i, ops) in writes.into_iter().enumerate() {
        starts[i] = file_len(&path) as usize;
        apply(&mut model, &ops);
        models[i] = model.clone();
        store.write(&NS_A, ops).await.expect("write");
    }
    ThreeFrames {
        bytes: std::fs::read(&path).expect("read log"),
        starts,
        models,
    }
}

/// A fresh directory holding `bytes` as the log of `NS_A`.
fn dir_with_log(bytes: &[u8]) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = FsStorage::open(dir.path()).expect("open").log_path(&NS_A);
    std::fs::write(&path, bytes).expect("write log");
    (dir, path)
}

fn only_problem(problems: &[Problem]) -> &Problem {
    assert_eq!(problems.len(), 1, "expected exactly one problem: {problems:?}");
    &problems[0]
}

/// After recovery the log must take appends cleanly and keep them.
async fn assert_appends_cleanly(dir: &Path, mut model: Model) {
    let store = FsStorage::open(dir).expect("open");
    let ops = vec![put(b"after", b"repair")];
    apply(&mut model, &ops);
    store.write(&NS_A, ops).await.expect("write after repair");
    assert_clean(&store.load(&NS_A).await.expect("load"), &model);
    drop(store);
    let store = FsStorage::open(dir).expect("reopen");
    assert_clean(&store.load(&NS_A).await.expect("reload"), &model);
}

#[tokio::test]
async fn reopen_keeps_every_acknowledged_write() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut models = [Model::new(), Model::new()];
    {
        let store = FsStorage::open(dir.path()).expect("open");
        for i in 0..20u32 {
            let (ns, model) = if i % 3 == 0 {
                (NS_B, &mut models[1])
            } else {
                (NS_A, &mut models[0])
            };
            let ops = vec![put(&i.to_be_bytes(), &i.to_le_bytes()), del(&(i / 2).to_be_bytes())];
            apply(model, &ops);
            store.write(&ns, ops).await.expect("write");
        }
    }
    let store = FsStorage::open(dir.path()).expect("reopen");
    assert_eq!(store.namespaces().await.expect("namespaces"), vec![NS_B, NS_A]);
    assert_clean(&store.load(&NS_A).await.expect("load"), &models[0]);
    assert_clean(&store.load(&NS_B).await.expect("load"), &models[1]);
}

#[tokio::test]
async fn log_is_named_after_the_namespace() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = FsStorage::open(dir.path()).expect("open");
    let mut ns: Namespace = [0; 32];
    ns[0] = 0xAB;
    ns[31] = 0x01;
    store.write(&ns, vec![put(b"k", b"v")]).await.expect("write");
    let name = format!("ab{}01.log", "0".repeat(60));
    assert_eq!(
        store.log_path(&ns),
        dir.path().canonicalize().expect("canon").join(&name)
    );
    assert!(dir.path().join(&name).is_file());
    // Deleting the last record deletes the file.
    store.write(&ns, vec![del(b"k")]).await.expect("delete");
    assert!(!dir.path().join(&name).exists());
}

#[tokio::test]
async fn torn_tail_at_every_offset_of_the_last_frame() {
    let log = three_frames().await;
    let last = log.starts[2];
    assert!(
        log.bytes.len() - last > 40,
        "last frame should be long enough to be interesting"
    );

    // Cut exactly at a frame boundary: nothing is wrong.
    let (dir, _) = dir_with_log(&log.bytes[..last]);
    let store = FsStorage::open(dir.path()).expect("open");
    assert_clean(&store.load(&NS_A).await.expect("load"), &log.models[1]);

    for cut in last + 1..log.bytes.len() {
        let (dir, path) = dir_with_log(&log.bytes[..cut]);
        let store = FsStorage::open(dir.path()).expect("open");
        let loaded = store.load(&NS_A).await.expect("load");
        let problem = only_problem(&loaded.problems);
        assert_eq!(problem.kind, ProblemKind::TornTail, "cut at {cut}");
        assert_eq!(problem.offset, last as u64, "cut at {cut}");
        assert_eq!(problem.location, path.display().to_string());
        // None of the torn frame's ops, all of the earlier ones.
        assert_eq!(loaded.records, common::records(&log.models[1]), "cut at {cut}");
        // Cut back to the last good frame end.
        assert_eq!(file_len(&path), last as u64, "cut at {cut}");
        drop(store);
        assert_appends_cleanly(dir.path(), log.models[1].clone()).await;
    }
}

#[tokio::test]
async fn torn_tail_is_repaired_by_a_first_write_without_load() {
    let log = three_frames().await;
    let (dir, path) = dir_with_log(&log.bytes[..log.bytes.len() - 1]);
    let store = FsStorage::open(dir.path()).expect("open");
    store.write(&NS_A, vec![put(b"z", b"1")]).await.expect("write");
    let mut model = log.models[1].clone();
    model.insert(b"z".to_vec(), b"1".to_vec());
    assert_clean(&store.load(&NS_A).await.expect("load"), &model);
    assert!(file_len(&path) > log.starts[2] as u64);
}

#[tokio::test]
async fn flipped_payload_byte_in_a_middle_frame_is_a_bad_checksum() {
    let log = three_frames().await;
    let middle = log.starts[1];
    // Records written by frames 1 and 3 only (frame 2 skipped).
    let mut expected = log.models[0].clone();
    apply(
        &mut expected,
        &[put(b"d", b"fourth value"), put(b"b", b"overwritten value"), del(b"c")],
    );

    for at in middle + 12..log.starts[2] {
        let mut bytes = log.bytes.clone();
        bytes[at] ^= 0x40;
        let (dir, path) = dir_with_log(&bytes);
        let store = FsStorage::open(dir.path()).expect("open");
        let loaded = store.load(&NS_A).await.expect("load");
        let problem = only_problem(&loaded.problems);
        assert_eq!(problem.kind, ProblemKind::BadChecksum, "flip at {at}");
        assert_eq!(problem.offset, middle as u64, "flip at {at}");
        assert_eq!(loaded.records, common::records(&expected), "flip at {at}");
        // Mid-file damage is skipped, not cut off.
        assert_eq!(file_len(&path), bytes.len() as u64);
    }
}

#[tokio::test]
async fn damaged_header_in_a_middle_frame_is_skipped() {
    let log = three_frames().await;
    let middle = log.starts[1];
    let mut expected = log.models[0].clone();
    apply(
        &mut expected,
        &[put(b"d", b"fourth value"), put(b"b", b"overwritten value"), del(b"c")],
    );

    for at in middle..middle + 12 {
        for mask in [0x01u8, 0x80, 0xFF] {
            let mut bytes = log.bytes.clone();
            bytes[at] ^= mask;
            let (dir, path) = dir_with_log(&bytes);
            let store = FsStorage::open(dir.path()).expect("open");
            let loaded = store.load(&NS_A).await.expect("load");
            let problem = only_problem(&loaded.problems);
            assert!(
                matches!(problem.kind, ProblemKind::BadFrame | ProblemKind::BadChecksum),
                "flip {mask:#x} at {at}: {problem}"
            );
            assert_eq!(problem.offset, middle as u64, "flip {mask:#x} at {at}");
            assert_eq!(loaded.records, common::records(&expected), "flip {mask:#x} at {at}");
            assert_eq!(file_len(&path), bytes.len() as u64, "flip {mask:#x} at {at}");
        }
    }
}

#[tokio::test]
async fn damaged_last_frame_is_cut_off() {
    let log = three_frames().await;
    let mut bytes = log.bytes.clone();
    let at = bytes.len() - 2;
    bytes[at] ^= 0x01;
    let (dir, path) = dir_with_log(&bytes);
    let store = FsStorage::open(dir.path()).expect("open");
    let loaded = store.load(&NS_A).await.expect("load");
    let problem = only_problem(&loaded.problems);
    assert_eq!(problem.kind, ProblemKind::BadChecksum);
    assert_eq!(problem.offset, log.starts[2] as u64);
    assert_eq!(loaded.records, common::records(&log.models[1]));
    assert_eq!(file_len(&path), log.starts[2] as u64);
    drop(store);
    assert_appends_cleanly(dir.path(), log.models[1].clone()).await;
}

/// Frame bytes with a correct checksum around an arbitrary payload.
fn raw_frame(payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0xA7, b'S', b'K', b'1'];
    f.extend((payload.len() as u32).to_le_bytes());
    f.extend(crc32c(payload).to_le_bytes());
    f.extend(payload);
    f
}

/// Bitwise CRC-32C, so the tests do not trust the implementation they test.
fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[tokio::test]
async fn garbage_logs_load_without_panicking() {
    let mut rng = Rng::new(0x5EED);
    let magic = [0xA7u8, b'S', b'K', b'1'];
    let mut cases: Vec<(String, Vec<u8>)> = Vec::new();
    for len in [1usize, 3, 4, 11, 12, 13, 100, 4096, 1 << 20] {
        cases.push((format!("random {len}"), rng.bytes(len)));
    }
    cases.push(("zeros".into(), vec![0; 5000]));
    cases.push(("ones".into(), vec![0xFF; 5000]));
    cases.push(("magic repeated".into(), magic.repeat(3000)));
    for len in [u32::MAX, 128 << 20, (128 << 20) + 1, 1 << 30, 100] {
        let mut b = magic.to_vec();
        b.extend(len.to_le_bytes());
        b.extend([0; 4]);
        b.extend(rng.bytes(64));
        cases.push((format!("huge length {len}"), b));
    }
    // Checksums that match but payloads that lie.
    let hostile_payloads: Vec<Vec<u8>> = vec![
        vec![],
        u32::MAX.to_le_bytes().to_vec(),
        [u32::MAX.to_le_bytes().as_slice(), &[1, 1, b'k', 0xFF, 0xFF, 0xFF, 0xFF]].concat(),
        [1u32.to_le_bytes().as_slice(), &[1, 0]].concat(),
        [1u32.to_le_bytes().as_slice(), &[1, 200, b'k']].concat(),
        [
            1u32.to_le_bytes().as_slice(),
            &[1, 1, b'k'],
            &((64u32 << 20) + 1).to_le_bytes(),
        ]
        .concat(),
        [2u32.to_le_bytes().as_slice(), &[2, 1, b'k']].concat(),
        [1u32.to_le_bytes().as_slice(), &[2, 1, b'k', 0]].concat(),
        rng.bytes(300),
    ];
    for (i, p) in hostile_payloads.iter().enumerate() {
        cases.push((format!("hostile payload {i}"), raw_frame(p)));
    }
    // Random bytes around one good frame: the good frame must survive.
    let good = raw_frame(
        &[
            1u32.to_le_bytes().as_slice(),
            &[1, 4],
            b"good",
            &2u32.to_le_bytes(),
            b"ok",
        ]
        .concat(),
    );
    cases.push((
        "garbage, good frame, garbage".into(),
        [rng.bytes(777), good.clone(), rng.bytes(555)].concat(),
    ));

    for (name, bytes) in cases {
        let (dir, _) = dir_with_log(&bytes);
        let store = FsStorage::open(dir.path()).expect("open");
        let loaded = store.load(&NS_A).await.unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(!loaded.problems.is_empty(), "{name}: damage must be reported");
        let mut model: Model = loaded.records.iter().cloned().collect();
        if name.contains("good frame") {
            assert_eq!(loaded.records, vec![(b"good".to_vec(), b"ok".to_vec())], "{name}");
        }
        // The store keeps working: a write lands and reads back, and the
        // reported damage is not made worse.
        let ops = vec![put(b"after", b"garbage")];
        apply(&mut model, &ops);
        store.write(&NS_A, ops).await.unwrap_or_else(|e| panic!("{name}: {e}"));
        let reloaded = store.load(&NS_A).await.unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(reloaded.records, common::records(&model), "{name}");
        assert!(reloaded.problems.len() <= loaded.problems.len(), "{name}");
    }
}

#[tokio::test]
async fn compaction_keeps_the_live_set_exactly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = FsStorage::open(dir.path()).expect("open");
    let reference = MemoryStorage::new();
    let path = store.log_path(&NS_A);
    let mut rng = Rng::new(42);
    let mut appended = 0u64;
    let mut shrank = 0;
    for _ in 0..600 {
        let mut ops = Vec::new();
        for _ in 0..1 + rng.below(4) {
            let key = format!("key-{}", rng.below(40)).into_bytes();
            if rng.below(4) == 0 {
                ops.push(WriteOp::Delete { key });
            } else {
                let len = rng.below(2000) as usize;
                ops.push(WriteOp::Put {
                    key,
                    value: rng.bytes(len),
                });
            }
        }
        let before = file_len(&path);
        store.write(&NS_A, ops.clone()).await.expect("write");
        reference.write(&NS_A, ops).await.expect("reference write");
        let after = file_len(&path);
        if after < before {
            shrank += 1;
        }
        appended += after.saturating_sub(before);
    }
    assert!(shrank > 0, "compaction never ran");
    let expected: Model = reference
        .load(&NS_A)
        .await
        .expect("reference")
        .records
        .into_iter()
        .collect();
    assert_clean(&store.load(&NS_A).await.expect("load"), &expected);
    let live: u64 = expected.iter().map(|(k, v)| (k.len() + v.len() + 6) as u64).sum();
    let len = file_len(&path);
    assert!(
        len < 2 * live + (64 << 10) + 4096,
        "log of {len} bytes for {live} live bytes"
    );
    assert!(len < appended / 4, "log of {len} bytes after appending {appended}");
    // No temporary file is left, and a reopen sees the same.
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .expect("read dir")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    drop(store);
    let store = FsStorage::open(dir.path()).expect("reopen");
    assert_clean(&store.load(&NS_A).await.expect("reload"), &expected);
}

#[tokio::test]
async fn stray_tmp_files_are_removed_and_foreign_files_ignored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = FsStorage::open(dir.path()).expect("open");
    store.write(&NS_A, vec![put(b"k", b"v")]).await.expect("write");
    let tmp = dir.path().join(format!("{}.log.tmp", "ab".repeat(32)));
    std::fs::write(&tmp, b"half a compaction").expect("tmp");
    let foreign = ["notes.txt", "README.log", "not-hex.log.tmp"];
    for name in foreign {
        std::fs::write(dir.path().join(name), b"keep me").expect("foreign");
    }
    std::fs::write(dir.path().join(format!("{}.log", "AB".repeat(32))), b"upper").expect("upper");
    drop(store);

    let store = FsStorage::open(dir.path()).expect("reopen");
    assert!(!tmp.exists(), "stray tmp survived open");
    for name in foreign {
        assert!(dir.path().join(name).exists(), "{name} was deleted");
    }
    assert_eq!(store.namespaces().await.expect("namespaces"), vec![NS_A]);
    assert_clean(
        &store.load(&NS_A).await.expect("load"),
        &[(b"k".to_vec(), b"v".to_vec())].into(),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writes_to_one_namespace_are_serialized() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(FsStorage::open(dir.path()).expect("open"));
    let mut tasks = Vec::new();
    for t in 0..8u8 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            for i in 0..25u8 {
                let ops = vec![put(&[t, i], &[t; 100]), put(&[t, i, 0], &[i; 50])];
                store.write(&NS_A, ops).await.expect("write");
                if i % 5 == 0 {
                    let loaded = store.load(&NS_A).await.expect("load");
                    assert!(loaded.problems.is_empty(), "{:?}", loaded.problems);
                }
            }
        }));
    }
    for task in tasks {
        task.await.expect("task");
    }
    let mut expected = Model::new();
    for t in 0..8u8 {
        for i in 0..25u8 {
            expected.insert(vec![t, i], vec![t; 100]);
            expected.insert(vec![t, i, 0], vec![i; 50]);
        }
    }
    assert_clean(&store.load(&NS_A).await.expect("load"), &expected);
    drop(store);
    let store = FsStorage::open(dir.path()).expect("reopen");
    assert_clean(&store.load(&NS_A).await.expect("reload"), &expected);
}

#[test]
fn works_outside_a_tokio_runtime() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = FsStorage::open(dir.path()).expect("open");
    block_on(store.write(&NS_A, vec![put(b"k", b"v")])).expect("write");
    let loaded = block_on(store.load(&NS_A)).expect("load");
    assert_eq!(loaded.records, vec![(b"k".to_vec(), b"v".to_vec())]);
}

/// Minimal executor with no Tokio runtime behind it.
fn block_on<F: std::future::Future>(fut: F) -> F::Output {
    use std::task::{Context, Poll, Wake, Waker};
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut fut = std::pin::pin!(fut);
    loop {
        match fut.as_mut().poll(&mut cx) {
            Poll::Ready(out) => return out,
            Poll::Pending => std::thread::park(),
        }
    }
}
