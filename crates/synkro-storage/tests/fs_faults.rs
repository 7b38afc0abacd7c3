//! The file backend under injected faults: random workloads (puts, deletes,
//! overwrites large enough to trigger compaction, namespace removals) while
//! a write, an fsync or a rename fails with EIO or ENOSPC, or the process
//! "dies" half way through a write. After every fault the store must have
//! answered with a typed error, and a reopened store must load exactly what
//! was acknowledged (plus, at most, the one write whose fsync failed), with
//! no damage other than the torn frame of a crash.
//!
//! Every failure names its seed; replay one with
//! `FAULT_SEED=<seed> cargo test -p synkro-storage --test fs_faults`.
//! Long run: `FAULT_SEEDS=20000 cargo test ... -- --ignored many_seeds`.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use common::{Model, Rng, apply, del, put, records};
use synkro_storage::{Fault, FaultKind, FaultPoint, FsStorage, Namespace, ProblemKind, Storage, StorageError, WriteOp};

const NAMESPACES: [Namespace; 3] = [[0x11; 32], [0x22; 32], [0x33; 32]];

#[derive(Default, Debug, Clone, Copy)]
struct Stats {
    writes_acknowledged: u64,
    faults_armed: u64,
    typed_errors: u64,
    disk_full: u64,
    poisoned: u64,
    torn: u64,
    restarts: u64,
}

/// A write whose outcome the store could not promise: its fsync failed.
enum Uncertain {
    Write(usize, Vec<WriteOp>),
    Remove(usize),
}

fn random_ops(rng: &mut Rng) -> Vec<WriteOp> {
    (0..1 + rng.below(4))
        .map(|_| {
            let key = format!("k{}", rng.below(12)).into_bytes();
            if rng.below(5) == 0 {
                del(&key)
            } else {
                // Mostly small values; some large ones so that overwrites
                // pile up dead bytes and compaction (write, fsync, rename) runs.
                let len = if rng.below(4) == 0 {
                    8_000 + rng.below(24_000)
                } else {
                    rng.below(64)
                };
                put(&key, &rng.bytes(len as usize))
            }
        })
        .collect()
}

fn random_fault(rng: &mut Rng) -> Fault {
    let point = [FaultPoint::Write, FaultPoint::Sync, FaultPoint::Rename][rng.below(3) as usize];
    let kind = match (point, rng.below(3)) {
        (FaultPoint::Write, 0) => FaultKind::Torn,
        (_, 1) => FaultKind::NoSpace,
        _ => FaultKind::Error,
    };
    Fault::new(point, rng.below(6) as u32, kind)
}

/// Reopens the store (a restart) and checks every namespace against the
/// models: equal to the acknowledged state, or to it plus the uncertain
/// write. Resolves the models to what is on disk.
async fn restart(
    label: &str,
    store: FsStorage,
    models: &mut [Model; 3],
    uncertain: Option<Uncertain>,
    torn: bool,
) -> FsStorage {
    let dir = store.dir().to_path_buf();
    drop(store);
    let store = FsStorage::open(&dir).unwrap_or_else(|e| panic!("[{label}] reopen failed: {e}"));
    for (i, ns) in NAMESPACES.iter().enumerate() {
        let loaded = store
            .load(ns)
            .await
            .unwrap_or_else(|e| panic!("[{label}] load after restart: {e}"));
        for p in &loaded.problems {
            assert!(
                torn && p.kind == ProblemKind::TornTail,
                "[{label}] namespace {i}: unexpected damage after restart: {p:?}"
            );
        }
        let mut with = models[i].clone();
        match &uncertain {
            Some(Uncertain::Write(j, ops)) if *j == i => apply(&mut with, ops),
            Some(Uncertain::Remove(j)) if *j == i => with.clear(),
            _ => {}
        }
        if loaded.records == records(&models[i]) {
            // The uncertain write did not survive (or there was none).
        } else if loaded.records == records(&with) {
            models[i] = with;
        } else {
            panic!(
                "[{label}] namespace {i}: {} records loaded, acknowledged {} (an acknowledged write was lost)",
                loaded.records.len(),
                models[i].len()
            );
        }
        // A second load after the repair is clean and identical.
        let again = store.load(ns).await.expect("second load");
        assert!(
            again.problems.is_empty(),
            "[{label}] damage left after repair: {:?}",
            again.problems
        );
        assert_eq!(again.records, records(&models[i]), "[{label}] second load differs");
    }
    store
}

async fn run(seed: u64) -> Stats {
    let label = format!("seed {seed}");
    let mut rng = Rng::new(seed);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut store = FsStorage::open(dir.path()).expect("open");
    let mut models: [Model; 3] = Default::default();
    let mut stats = Stats::default();
    let fault_every = 3 + rng.below(10);

    for step in 0..60 {
        let label = format!("{label} step {step}");
        if rng.below(fault_every) == 0 {
            store.inject_fault(random_fault(&mut rng));
            stats.faults_armed += 1;
        }
        let i = rng.below(3) as usize;
        let ns = &NAMESPACES[i];
        let was_poisoned = store.is_poisoned();
        let removing = rng.below(25) == 0;
        let ops = if removing { Vec::new() } else { random_ops(&mut rng) };
        let result = if removing {
            store.remove(ns).await
        } else {
            store.write(ns, ops.clone()).await
        };
        let outcome = match result {
            Ok(()) => {
                assert!(!was_poisoned, "[{label}] a poisoned store acknowledged a write");
                if removing {
                    models[i].clear();
                } else {
                    apply(&mut models[i], &ops);
                }
                stats.writes_acknowledged += 1;
                continue;
            }
            Err(e) => e,
        };
        stats.typed_errors += 1;
        match outcome {
            StorageError::Poisoned if was_poisoned => continue,
            StorageError::DiskFull { .. } => {
                // Not applied, and the store stays usable.
                stats.disk_full += 1;
                assert!(!store.is_poisoned(), "[{label}] ENOSPC on a write must not poison");
                assert!(!outcome.to_string().is_empty());
                let loaded = store.load(ns).await.expect("load after ENOSPC");
                assert_eq!(
                    loaded.records,
                    records(&models[i]),
                    "[{label}] ENOSPC write left traces"
                );
            }
            StorageError::Io { .. } if !store.is_poisoned() => {
                let loaded = store.load(ns).await.expect("load after EIO");
                assert_eq!(
                    loaded.records,
                    records(&models[i]),
                    "[{label}] failed write left traces"
                );
            }
            // A crash half way through a write, or a failed fsync: the
            // process restarts. Only a failed fsync leaves the outcome open.
            StorageError::Io { .. } | StorageError::Poisoned => {
                let torn = matches!(outcome, StorageError::Io { .. });
                if torn {
                    stats.torn += 1;
                } else {
                    stats.poisoned += 1;
                }
                assert!(store.is_poisoned(), "[{label}] store still writable after {outcome}");
                let later = store.write(ns, vec![put(b"after", b"x")]).await;
                assert!(matches!(later, Err(StorageError::Poisoned)), "[{label}] {later:?}");
                let uncertain = match (torn, removing) {
                    (true, _) => None,
                    (false, true) => Some(Uncertain::Remove(i)),
                    (false, false) => Some(Uncertain::Write(i, ops)),
                };
                store = restart(&label, store, &mut models, uncertain, torn).await;
                stats.restarts += 1;
            }
            other => panic!("[{label}] unexpected error: {other}"),
        }
    }
    // Disarm leftovers by restarting; everything acknowledged is there.
    let store = restart(&format!("{label} end"), store, &mut models, None, false).await;
    drop(store);
    stats
}

fn seeds_from_env(var: &str) -> Option<u64> {
    std::env::var(var).ok().and_then(|s| s.parse().ok())
}

async fn run_many(seeds: impl Iterator<Item = u64>) -> Stats {
    let mut total = Stats::default();
    for seed in seeds {
        let s = run(seed).await;
        total.writes_acknowledged += s.writes_acknowledged;
        total.faults_armed += s.faults_armed;
        total.typed_errors += s.typed_errors;
        total.disk_full += s.disk_full;
        total.poisoned += s.poisoned;
        total.torn += s.torn;
        total.restarts += s.restarts;
    }
    eprintln!("fs faults: {total:?}");
    total
}

#[tokio::test]
async fn faults_lose_no_acknowledged_write() {
    let total = match seeds_from_env("FAULT_SEED") {
        Some(seed) => run_many(std::iter::once(seed)).await,
        None => run_many(1..=150).await,
    };
    // The runs exercised every kind of failure they claim to.
    assert!(total.disk_full > 0 && total.poisoned > 0 && total.torn > 0, "{total:?}");
    assert!(total.writes_acknowledged > 1000, "{total:?}");
}

#[tokio::test]
#[ignore]
async fn many_seeds() {
    let n = seeds_from_env("FAULT_SEEDS").unwrap_or(5_000);
    run_many(1_000_000..1_000_000 + n).await;
}

#[tokio::test]
async fn a_full_disk_refuses_the_write_and_recovers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = FsStorage::open(dir.path()).expect("open");
    let ns = &NAMESPACES[0];
    store.write(ns, vec![put(b"a", b"1")]).await.expect("write");
    store.inject_fault(Fault::new(FaultPoint::Write, 0, FaultKind::NoSpace));
    let err = store.write(ns, vec![put(b"b", b"2")]).await.unwrap_err();
    assert!(matches!(err, StorageError::DiskFull { .. }), "{err:?}");
    assert!(err.to_string().contains("full"), "{err}");
    // Space freed: the next write goes through, the failed one left nothing.
    store
        .write(ns, vec![put(b"c", b"3")])
        .await
        .expect("write after ENOSPC");
    let loaded = store.load(ns).await.expect("load");
    assert!(loaded.problems.is_empty());
    assert_eq!(
        loaded.records,
        vec![(b"a".to_vec(), b"1".to_vec()), (b"c".to_vec(), b"3".to_vec())]
    );
}
