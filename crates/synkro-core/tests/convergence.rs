//! Three writers edit one document concurrently while links come and go,
//! messages are delivered in random interleavings (FIFO per link) and nodes
//! crash and reload from their records. Once everyone is connected and the
//! network is quiet, all copies must be identical; with a small compaction
//! policy, snapshots must keep storage bounded.

mod common;

use common::workload::{can_write, edit, flush};
use common::{Sim, batching, below, chance, rebuild, rng, stored_chunks};
use proptest::prelude::*;
use synkro_core::automerge::{ObjType, ROOT, transaction::Transactable};
use synkro_core::{CompactionPolicy, InviteToken, NodeConfig, Role};

const N: usize = 3;
const SMALL: CompactionPolicy = CompactionPolicy {
    min_tail_chunks: 4,
    min_tail_bytes: 0,
    max_tail_chunks: 8,
};

struct Stats {
    chunks_made: usize,
    crashes: usize,
    deliveries: u64,
    snapshots_seen: bool,
}

fn run(seed: u64, compact: bool) -> Stats {
    let mut rng = rng(seed);
    // The small policy, or a random small one (min ≤ max, tail bytes 0).
    let policy = match below(&mut rng, 2) {
        0 => SMALL,
        _ => {
            let max = 2 + below(&mut rng, 9);
            CompactionPolicy {
                min_tail_chunks: 1 + below(&mut rng, max),
                min_tail_bytes: 0,
                max_tail_chunks: max,
            }
        }
    };
    // Tiny send windows hold chunks back after every message or two, so
    // transfers resume from `transmitted` under every schedule.
    let send_window = [1, 300, 4096, NodeConfig::default().send_window][below(&mut rng, 4)];
    let config = NodeConfig {
        compaction: if compact { policy } else { CompactionPolicy::default() },
        send_window,
        ..batching()
    };
    let mut sim = Sim::new(&mut rng, N, config);
    sim.label = format!("seed {seed} compact {compact} window {send_window} ({policy:?})");
    let label = sim.label.clone();

    // The owner creates the document and its shared objects up front.
    let doc = sim.act(0, |n| n.create_doc(&mut rng)).unwrap();
    sim.act(0, |n| {
        n.change(&doc, |d| {
            d.put_object(ROOT, "map", ObjType::Map)?;
            d.put_object(ROOT, "list", ObjType::List)?;
            let text = d.put_object(ROOT, "text", ObjType::Text)?;
            d.splice_text(&text, 0, 0, "hello")
        })
    })
    .unwrap();
    let mut chunks_made = usize::from(flush(&mut sim, &mut rng, 0, &doc));
    for i in 1..N {
        let token = sim.act(0, |n| n.share(&mut rng, &doc, Role::Write)).unwrap();
        let token: InviteToken = token.to_string().parse().unwrap();
        assert_eq!(sim.act(i, |n| n.join(&mut rng, &token)).unwrap(), doc);
    }

    // Chaos, with per-run weights so that some runs are calm and others
    // are all partitions and crashes.
    let steps = 250 + below(&mut rng, 250);
    let w_deliver = 20 + below(&mut rng, 50);
    let w_edit = 10 + below(&mut rng, 20);
    let w_flush = 5 + below(&mut rng, 20);
    let w_link = 3 + below(&mut rng, 20);
    let w_crash = below(&mut rng, 5);
    let w_burst = below(&mut rng, 10);
    let total = w_deliver + w_edit + w_flush + w_link + w_crash + w_burst;
    for _ in 0..steps {
        let i = below(&mut rng, N);
        let mut x = below(&mut rng, total);
        if x < w_deliver {
            sim.step(&mut rng);
            continue;
        }
        x -= w_deliver;
        if x < w_edit {
            edit(&mut sim, &mut rng, i, &doc);
            continue;
        }
        x -= w_edit;
        if x < w_flush {
            chunks_made += usize::from(flush(&mut sim, &mut rng, i, &doc));
            continue;
        }
        x -= w_flush;
        if x < w_link {
            let j = (i + 1 + below(&mut rng, N - 1)) % N;
            if sim.connected(i, j) {
                sim.disconnect(i, j);
            } else {
                sim.connect(i, j);
            }
            continue;
        }
        x -= w_link;
        if x < w_crash {
            sim.crash(&mut rng, i);
            continue;
        }
        for _ in 0..below(&mut rng, 30) {
            sim.step(&mut rng);
        }
    }

    // Settle: everything flushed, network quiet, and either everyone
    // connected or only a chain a - b - c (so a and c depend on b forwarding,
    // over sessions that may predate the settle).
    if chance(&mut rng, 1, 2) {
        sim.connect_all();
    } else {
        let mid = below(&mut rng, N);
        let (a, c) = ((mid + 1) % N, (mid + 2) % N);
        for x in [a, c] {
            if !sim.connected(mid, x) {
                sim.connect(mid, x);
            }
        }
        sim.disconnect(a, c);
    }
    for i in 0..N {
        chunks_made += usize::from(flush(&mut sim, &mut rng, i, &doc));
    }
    sim.run_until_quiet(&mut rng);
    // A few more rounds of edits with the network quiet in between: every
    // writer flushes (and, with the small policy, snapshots) on full state.
    for round in 0..if compact { 24 } else { 3 } {
        let i = round % N;
        assert!(
            edit(&mut sim, &mut rng, i, &doc),
            "[{label}] node {i} cannot write after settling"
        );
        assert!(
            flush(&mut sim, &mut rng, i, &doc),
            "[{label}] node {i}: an edit did not make a chunk"
        );
        chunks_made += 1;
        sim.run_until_quiet(&mut rng);
    }

    // Everyone converged.
    let heads0 = sim
        .heads(0, &doc)
        .unwrap_or_else(|| panic!("[{label}] node 0 cannot read"));
    let json0 = sim.json(0, &doc).unwrap();
    let vv0 = sim.nodes[0].node.info(&doc).unwrap().vv;
    if std::env::var("SIM_DEBUG").is_ok() {
        for i in 0..N {
            let info = sim.nodes[i].node.info(&doc).unwrap();
            eprintln!(
                "node {i} {:?} vv {:?} chunks {} heads {:?} crashes {}",
                sim.id(i),
                info.vv,
                info.chunks,
                sim.heads(i, &doc),
                sim.nodes[i].crashes
            );
            eprintln!("   json {}", sim.json(i, &doc).unwrap());
        }
    }
    for i in 1..N {
        let heads = sim
            .heads(i, &doc)
            .unwrap_or_else(|| panic!("[{label}] node {i} cannot read"));
        assert_eq!(heads, heads0, "[{label}] heads of node {i} differ from node 0");
        assert_eq!(
            sim.json(i, &doc).unwrap(),
            json0,
            "[{label}] content of node {i} differs from node 0"
        );
        assert_eq!(
            sim.nodes[i].node.info(&doc).unwrap().vv,
            vv0,
            "[{label}] version vector of node {i} differs"
        );
    }
    for i in 0..N {
        assert!(!sim.nodes[i].node.is_dirty(&doc));
    }
    // Once quiet, every connected pair reports the document as in sync from
    // the acknowledgements alone (what `wait_synced` relies on).
    for i in 0..N {
        for j in (0..N).filter(|j| *j != i && sim.connected(i, *j)) {
            let status = sim.nodes[i].node.sync_status(&sim.id(j));
            assert!(
                !status.unsynced.contains(&doc) && !status.pending.contains(&doc),
                "[{label}] node {i} does not see node {j} in sync: {status:?}"
            );
            assert!(
                status.not_shared.contains(&doc) || sim.nodes[i].node.durable_on(&sim.id(j), &doc),
                "[{label}] node {i}: node {j} in sync but not durable"
            );
        }
    }

    let mut snapshots_seen = false;
    // What each node persisted matches what it holds, and reloads to the same document.
    for i in 0..N {
        let info = sim.nodes[i].node.info(&doc).unwrap();
        let ns = sim.records(i, &doc);
        let (changes, snaps) = stored_chunks(&ns);
        snapshots_seen |= !snaps.is_empty();
        assert_eq!(
            changes.len() + snaps.len(),
            info.chunks,
            "[{label}] node {i}: stored chunks differ from held chunks"
        );
        let other = ns.len().checked_sub(info.chunks + info.log_ops);
        assert!(
            other.is_some_and(|o| o <= 2),
            "[{label}] node {i}: {} records for {} ops, {} chunks, local state and index entry",
            ns.len(),
            info.log_ops,
            info.chunks
        );
        // The index entry stored with the last write describes what is held.
        let entry = ns.get(synkro_core::INDEX_RECORD).expect("an index entry");
        let entry = synkro_core::DocSummary::decode(entry).unwrap();
        assert_eq!(
            (entry.vv.clone(), entry.log_ops as usize, entry.chunks as usize),
            (info.vv.clone(), info.log_ops, info.chunks),
            "[{label}] node {i}: the index entry disagrees with what is held"
        );
        let sn = &sim.nodes[i];
        let reloaded = rebuild(&mut rng, &sn.identity, &sn.config, &sn.records, &label);
        let (h, j) = reloaded
            .read(&doc, |d| (common::heads_of(d), common::json_of(d)))
            .unwrap();
        assert_eq!(h, heads0, "[{label}] node {i} reloaded from records has other heads");
        assert_eq!(j, json0, "[{label}] node {i} reloaded from records has other content");
        assert_eq!(reloaded.info(&doc).unwrap().vv, vv0);

        if compact {
            // Changes are at most one tail per writer plus what arrived since
            // its last snapshot; snapshots at most one per writer.
            let bound = policy.max_tail_chunks + 2 * N;
            assert!(
                chunks_made > bound,
                "[{label}] too few chunks ({chunks_made}) for the bound to mean anything"
            );
            assert!(
                info.chunks <= bound,
                "[{label}] node {i} holds {} chunks ({} changes, {} snapshots) of {chunks_made} made; bound {bound}",
                info.chunks,
                changes.len(),
                snaps.len()
            );
            assert!(!snaps.is_empty(), "[{label}] node {i} holds no snapshot");
        }
    }
    if compact {
        assert!(snapshots_seen);
    }
    Stats {
        chunks_made,
        crashes: sim.nodes.iter().map(|n| n.crashes).sum(),
        deliveries: sim.delivered,
        snapshots_seen,
    }
}

#[test]
fn fixed_seeds_converge() {
    let mut totals = (0, 0, 0, 0);
    for seed in [0u64, 1, 2, 3, 42, 1234, 0xdead_beef, u64::MAX] {
        for compact in [false, true] {
            eprintln!("fixed seed {seed}, compact {compact}");
            let s = run(seed, compact);
            totals.0 += s.chunks_made;
            totals.1 += s.crashes;
            totals.2 += s.deliveries;
            totals.3 += usize::from(s.snapshots_seen);
        }
    }
    // The runs exercised what they claim to.
    assert!(totals.1 > 0, "no crash happened in any fixed seed");
    eprintln!(
        "fixed seeds: {} chunks, {} crashes, {} deliveries, {} runs with snapshots",
        totals.0, totals.1, totals.2, totals.3
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, max_shrink_iters: 0, failure_persistence: None, ..ProptestConfig::default() })]

    /// The seed is printed by proptest on failure (and in every assertion).
    #[test]
    fn converge(seed in any::<u64>()) {
        run(seed, seed % 2 == 0);
    }
}

/// Regression: an access-log change arriving while a writer has unflushed
/// edits must not make those edits vanish from the next flush.
#[test]
fn unflushed_edits_survive_an_access_change() {
    let mut rng = rng(9);
    let mut sim = Sim::new(&mut rng, 2, batching());
    let doc = sim.act(0, |n| n.create_doc(&mut rng)).unwrap();
    let token = sim.act(0, |n| n.share(&mut rng, &doc, Role::Write)).unwrap();
    sim.act(1, |n| n.join(&mut rng, &token)).unwrap();
    sim.connect(0, 1);
    sim.run_until_quiet(&mut rng);
    assert!(can_write(&sim, 1, &doc));

    sim.act(1, |n| n.change(&doc, |d| d.put(ROOT, "pending", "edit")))
        .unwrap();
    // Meanwhile the owner invites someone else: node 1 receives the new op.
    sim.act(0, |n| n.share(&mut rng, &doc, Role::Read)).unwrap();
    sim.run_until_quiet(&mut rng);
    assert!(
        sim.act(1, |n| n.flush(&mut rng, &doc)).unwrap(),
        "the pending edit is sealed into a chunk"
    );
    sim.run_until_quiet(&mut rng);
    assert_eq!(sim.json(0, &doc), sim.json(1, &doc), "the owner got the edit");
    assert_eq!(sim.heads(0, &doc), sim.heads(1, &doc));
}

/// Long soak over many seeds, e.g.
/// `SOAK=2000 cargo test -p synkro-core --test convergence -- --ignored soak`.
#[test]
#[ignore]
fn soak() {
    let n: u64 = std::env::var("SOAK").ok().and_then(|s| s.parse().ok()).unwrap_or(500);
    let start: u64 = std::env::var("SOAK_START")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    for seed in start..start + n {
        run(seed, seed % 2 == 0);
    }
}
