//! A full disk is a state, not an end: a relay whose data directory fills
//! up keeps its sessions and serves what it holds, refuses new data with a
//! reason the writer sees, says `degraded` on `/health`, and takes the
//! data on its own once space is back, with no restart.
//!
//! The data directory is a small tmpfs; where mounting is not allowed
//! (not root, a container without the capability) the test says so and
//! passes without running.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};
use serde_json::json;
use synkro::{Refusal, Role};
use synkro_tests::Relay;

use crate::{TIMEOUT, connect, eventually, repo_via};

/// A tmpfs mounted for the test's life.
struct Tmpfs(PathBuf, #[allow(dead_code)] tempfile::TempDir);

impl Tmpfs {
    fn mount(size: &str) -> Option<Self> {
        let dir = tempfile::tempdir().ok()?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .ok()?;
        if !out.status.success() {
            eprintln!(
                "SKIPPED: cannot mount a tmpfs here ({}); the full-disk test needs root",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            return None;
        }
        Some(Self(dir.path().to_owned(), dir))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Write a file until the disk refuses more.
fn fill(dir: &Path) -> PathBuf {
    use std::io::Write;
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).expect("create filler");
    let block = vec![0x5a; 4096];
    while f.write_all(&block).is_ok() {}
    let _ = f.sync_all();
    path
}

fn health(relay: &Relay) -> anyhow::Result<serde_json::Value> {
    Ok(serde_json::from_str(&relay.get("/health")?.1)?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_degrades_the_relay_and_it_recovers_without_a_restart() -> anyhow::Result<()> {
    let Some(disk) = Tmpfs::mount("8m") else { return Ok(()) };
    let mut relay = Relay::start(disk.path(), &[])?;
    let addr = relay.addr("/tcp/");
    let (alice, a_net, relay_id) = repo_via(&addr).await?;
    let (bob, b_net, _) = repo_via(&addr).await?;
    // Two documents, both stored on the relay and joined by Bob.
    let notes = alice.create().await?;
    notes.set("title", &json!("notes"))?;
    let plans = alice.create().await?;
    plans.set("title", &json!("plans"))?;
    let bobs_plans = bob.join(&plans.share(Role::Read).await?).await?;
    bob.join(&notes.share(Role::Read).await?).await?;
    bob.wait_synced(relay_id, TIMEOUT).await?;
    // Bob goes offline; Alice edits `plans`, which the relay stores.
    b_net.shutdown().await;
    plans.set("step", &json!(1))?;
    plans.wait_durable_on(relay_id, TIMEOUT).await?;
    assert_eq!(health(&relay)?["status"], "ok");

    // The disk fills up. Alice's next edits of `notes` cannot be stored.
    let filler = fill(disk.path());
    // Text that does not compress: more than a log file's spare room.
    let mut x = 0x9e37_79b9_7f4a_7c15_u64;
    let noise: String = (0..1_000_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from(b'a' + (x % 26) as u8)
        })
        .collect();
    notes.set("body", &json!(noise))?;
    let degraded = eventually(TIMEOUT, || Ok(health(&relay)?["status"] == "degraded")).await?;
    let h = health(&relay)?;
    assert!(degraded, "health stays ok on a full disk: {h}");
    assert!(h["reasons"].to_string().contains("storage full"), "{h}");
    notes.set("more", &json!(2))?;
    let refused = eventually(TIMEOUT, || {
        Ok(alice
            .sync_status(&relay_id)
            .refused
            .contains(&(notes.id(), Refusal::StorageFull)))
    })
    .await?;
    assert!(
        refused,
        "Alice sees the relay is full: {:?}",
        alice.sync_status(&relay_id)
    );

    // Still serving: Bob comes back and fetches what the relay holds.
    let (b_net, _) = connect(&bob, &addr).await?;
    let fetched = eventually(TIMEOUT, || Ok(bobs_plans.get("step")? == Some(json!(1)))).await?;
    assert!(fetched, "a full relay still serves what it stored");

    // Space is back: the relay takes the data on its own, no restart.
    std::fs::remove_file(filler)?;
    let freed = Instant::now();
    let ok = eventually(Duration::from_secs(20), || Ok(health(&relay)?["status"] == "ok")).await?;
    assert!(ok, "the relay did not recover: {}", health(&relay)?);
    notes.wait_durable_on(relay_id, TIMEOUT).await?;
    eprintln!(
        "full disk: degraded, refused, served; writes resumed {:?} after space was freed",
        freed.elapsed()
    );
    let bobs_notes = bob.find(&notes.id()).await?;
    let arrived = eventually(TIMEOUT, || Ok(bobs_notes.get("more")? == Some(json!(2)))).await?;
    assert!(arrived, "Bob gets the edits the relay took after recovering");
    a_net.shutdown().await;
    b_net.shutdown().await;
    relay.process.terminate(TIMEOUT)?;
    Ok(())
}

/// The CLI with its home on a full disk: an edit fails with a clear error
/// and exit code 1, nothing stored before is lost, reads keep working, and
/// once space is back the same edit succeeds.
#[test]
fn the_cli_on_a_full_disk_says_so_and_loses_nothing() -> anyhow::Result<()> {
    let Some(disk) = Tmpfs::mount("4m") else { return Ok(()) };
    let home = disk.path().join("home");
    let synkro = |args: &[&str]| synkro_tests::synkro_cli(&home, args).output().expect("run synkro");
    let stdout = |out: &std::process::Output| String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(synkro(&["init"]).status.success());
    let new = synkro(&["new"]);
    assert!(new.status.success(), "{new:?}");
    let doc = stdout(&new);
    assert!(synkro(&["set", &doc, "title", "\"kept\""]).status.success());

    let filler = fill(disk.path());
    // 64 KiB of letters that do not compress.
    let mut rng = ChaCha8Rng::seed_from_u64(64);
    let body: String = (0..64 * 1024)
        .map(|_| char::from(b'a' + (rng.next_u32() % 26) as u8))
        .collect();
    let refused = synkro(&["set", &doc, "body", &format!("\"{body}\"")]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{refused:?}");
    assert!(stderr.contains("full"), "the error says the disk is full: {stderr}");
    // Reads keep working and what was stored is there.
    let got = synkro(&["get", &doc]);
    assert!(got.status.success(), "{got:?}");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&stdout(&got))?,
        json!({"title": "kept"})
    );

    std::fs::remove_file(filler)?;
    let stored = synkro(&["set", &doc, "body", "\"now there is room\""]);
    assert!(stored.status.success(), "{stored:?}");
    let got = synkro(&["get", &doc]);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&stdout(&got))?,
        json!({"title": "kept", "body": "now there is room"})
    );
    Ok(())
}
