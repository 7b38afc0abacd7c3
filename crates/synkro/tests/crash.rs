//! kill -9 at random moments loses no acknowledged change.
//!
//! The test binary re-runs itself as the writer: `crash_child` appends to a
//! list in a repo on disk, flushes, and prints `ack N` only once the flush
//! returned (the change is durable). The parent kills it with SIGKILL after
//! a random delay, reopens the repo and checks that every acknowledged
//! value is there, and that the index it opened from (the snapshot its
//! own clean close left for the next round, which the writer's first
//! change deletes) agrees with the records. Rounds: `SYNKRO_CRASH_ROUNDS`
//! (default 30).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};
use serde_json::json;
use synkro::{CompactionPolicy, DocId, NodeConfig, Repo, RepoConfig};

const CHILD_ENV: &str = "SYNKRO_CRASH_CHILD";

fn config(small_compaction: bool) -> RepoConfig {
    let mut config = RepoConfig::default();
    if small_compaction {
        // Snapshots and their deletes every few batches, so kills land in them too.
        config.node = NodeConfig {
            compaction: CompactionPolicy {
                min_tail_chunks: 4,
                min_tail_bytes: 0,
                max_tail_chunks: 16,
            },
            ..NodeConfig::default()
        };
    }
    config
}

/// The writer. Does nothing unless started by `kill9_loses_no_acknowledged_change`.
#[test]
fn crash_child() {
    let Ok(home) = std::env::var(CHILD_ENV) else { return };
    let small = std::env::var("SYNKRO_CRASH_SMALL").is_ok();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let home = Path::new(&home);
        let repo = Repo::open_home(home, config(small))
            .await
            .expect("child opens the repo");
        let id_file = home.join("doc-id");
        let doc = match std::fs::read_to_string(&id_file) {
            Ok(id) => repo.find(&id.trim().parse::<DocId>().unwrap()).await.unwrap(),
            Err(_) => {
                let doc = repo.create().await.unwrap();
                doc.set("items", &json!([])).unwrap();
                doc.flush().await.unwrap();
                let tmp = home.join("doc-id.tmp");
                std::fs::write(&tmp, doc.id().to_string()).unwrap();
                std::fs::File::open(&tmp).unwrap().sync_all().unwrap();
                std::fs::rename(&tmp, &id_file).unwrap();
                std::fs::File::open(home).unwrap().sync_all().unwrap();
                doc
            }
        };
        let mut next = doc
            .get("items")
            .unwrap()
            .and_then(|v| v.as_array().map(Vec::len))
            .unwrap_or(0);
        loop {
            doc.set(&format!("items/{next}"), &json!(next)).unwrap();
            doc.flush().await.unwrap();
            println!("ack {next}");
            next += 1;
        }
    });
}

#[test]
fn kill9_loses_no_acknowledged_change() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let rounds: u32 = std::env::var("SYNKRO_CRASH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    let home = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut rng = ChaCha20Rng::from_seed([9; 32]);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut acked: Option<usize> = None;
    let mut kills_before_first_ack = 0;
    let started = Instant::now();

    for round in 0..rounds {
        let small = round % 2 == 1;
        let mut cmd = Command::new(&exe);
        cmd.args(["crash_child", "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, home.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if small {
            cmd.env("SYNKRO_CRASH_SMALL", "1");
        }
        let mut child = cmd.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(n) = line.strip_prefix("ack ").and_then(|n| n.parse::<usize>().ok()) {
                    let _ = tx.send(n);
                }
            }
        });
        // Mix kills during start-up (before any ack) with kills mid-stream.
        let delay = match rng.next_u32() % 4 {
            0 => Duration::from_millis(u64::from(rng.next_u32() % 20)),
            _ => Duration::from_millis(30 + u64::from(rng.next_u32() % 250)),
        };
        std::thread::sleep(delay);
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        reader.join().unwrap();
        let round_acks: Vec<usize> = rx.try_iter().collect();
        if round_acks.is_empty() {
            kills_before_first_ack += 1;
        }
        if let Some(&last) = round_acks.last() {
            acked = Some(acked.map_or(last, |a| a.max(last)));
        }

        // Reopen: it must open, and hold every acknowledged value.
        let Some(last_acked) = acked else { continue };
        let items = rt.block_on(async {
            let repo = Repo::open_home(home.path(), config(small))
                .await
                .expect("repo reopens after kill -9");
            let id: DocId = std::fs::read_to_string(home.path().join("doc-id"))
                .unwrap()
                .trim()
                .parse()
                .unwrap();
            // What opening read of it (the index snapshot a clean close
            // left, or every log after a kill) must agree with its records.
            let indexed = repo.info(&id).expect("listed at opening");
            let items = repo.find(&id).await.unwrap().get("items").unwrap().unwrap();
            let loaded = repo.info(&id).unwrap();
            assert_eq!(
                (indexed.vv, indexed.log_ops, indexed.chunks),
                (loaded.vv, loaded.log_ops, loaded.chunks),
                "round {round}: the index disagreed with the records"
            );
            // Closed cleanly: the next round starts from an index snapshot.
            repo.close().await.unwrap();
            assert!(home.path().join("docs").join("gathered.snapshot").is_file());
            items
        });
        let items = items.as_array().unwrap();
        assert!(
            items.len() > last_acked,
            "round {round}: acknowledged item {last_acked} lost ({} items)",
            items.len()
        );
        for (i, v) in items.iter().enumerate() {
            assert_eq!(v, &json!(i), "round {round}: item {i} is wrong");
        }
    }
    let total = acked.map_or(0, |a| a + 1);
    println!(
        "{rounds} kill -9 rounds ({kills_before_first_ack} before the first ack of their round), \
         {total} acknowledged changes, none lost, {:?}",
        started.elapsed()
    );
    assert!(
        total > 0,
        "the writer never acknowledged anything: the test proved nothing"
    );
}
