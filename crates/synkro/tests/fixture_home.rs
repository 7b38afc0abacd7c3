//! A home written by an earlier release, kept in `tests/fixtures`, opens
//! with this one: its documents come back with their names, members and
//! content, read through the index snapshot and through the logs alone,
//! and it takes new edits that survive a reopening.
//!
//! When the stored format changes on purpose, add a fixture of the new
//! format beside the old ones (and keep those: homes out there are in
//! them): `SYNKRO_FIXTURE=home-YYYY-MM cargo test -p synkro --test
//! fixture_home -- --ignored write_fixture` writes one from the current
//! code; then add its name to `FIXTURES`.

use std::collections::BTreeMap;
use std::path::Path;

use rand_chacha::rand_core::SeedableRng;
use serde_json::{Value, json};
use synkro::{DeviceIdentity, DocHandle, Repo, Role};

/// Homes written by earlier releases, oldest first.
const FIXTURES: &[&str] = &["home-2026-12"];

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

/// What a test sees of a document: name, members and roles, content.
fn describe(handle: &DocHandle) -> anyhow::Result<Value> {
    let info = handle.info()?;
    let members: BTreeMap<String, String> = info
        .members
        .iter()
        .map(|(m, r)| (m.to_string(), format!("{r:?}")))
        .collect();
    Ok(json!({
        "name": info.name,
        "members": members,
        "content": handle.to_json()?,
    }))
}

#[tokio::test]
async fn homes_from_earlier_releases_open() -> anyhow::Result<()> {
    for name in FIXTURES {
        let expected: Value = serde_json::from_slice(&std::fs::read(fixture(name).join("expected.json"))?)?;
        for from_logs in [false, true] {
            let dir = tempfile::tempdir()?;
            let home = dir.path().join("home");
            copy_dir(&fixture(name).join("home"), &home)?;
            if from_logs {
                std::fs::remove_file(home.join("docs/gathered.snapshot"))?;
            }
            let repo = Repo::open(&home).await?;
            assert!(repo.load_problems().is_empty(), "{name}: {:?}", repo.load_problems());
            assert_eq!(repo.member_id().to_string(), expected["member"], "{name}");
            let mut seen = serde_json::Map::new();
            for doc in repo.list() {
                seen.insert(doc.to_string(), describe(&repo.find(&doc).await?)?);
            }
            assert_eq!(
                Value::Object(seen),
                expected["docs"],
                "{name}, from the logs: {from_logs}"
            );

            // It takes new edits, kept across a reopening.
            let first = repo.list()[0];
            repo.find(&first).await?.set("reopened", &json!(true))?;
            repo.close().await?;
            drop(repo);
            let repo = Repo::open(&home).await?;
            assert_eq!(repo.find(&first).await?.get("reopened")?, Some(json!(true)), "{name}");
            repo.close().await?;
        }
    }
    Ok(())
}

/// Writes a fixture of the current format (see the module's doc): a few
/// documents with names, lists, text, counters, a long history (several
/// chunks and a compaction), an invitation, a relay granted, a member
/// revoked (a key rotation).
#[tokio::test]
#[ignore = "writes a fixture into the source tree"]
async fn write_fixture() -> anyhow::Result<()> {
    let name = std::env::var("SYNKRO_FIXTURE").unwrap_or_else(|_| FIXTURES[FIXTURES.len() - 1].to_owned());
    let out = fixture(&name);
    assert!(!out.exists(), "{} exists: fixtures are never rewritten", out.display());
    let home = out.join("home");
    let repo = Repo::open(&home).await?;

    let groceries = repo.create().await?;
    groceries.set_name(Some("Groceries".into())).await?;
    groceries.set("title", &json!("Saturday"))?;
    groceries.set(
        "items",
        &json!([{ "name": "tent", "done": false }, { "name": "rope", "done": true }]),
    )?;
    groceries.increment("count", 1)?;
    groceries.increment("count", 2)?;
    groceries.set_text("note", "bring cash")?;
    groceries.splice_text("note", 0, 0, "please ")?;
    groceries.flush().await?;

    let notes = repo.create().await?;
    notes.set_name(Some("Long notes".into())).await?;
    notes.set_text("body", "")?;
    for i in 0..600usize {
        notes.splice_text("body", i, 0, if i % 10 == 9 { "\n" } else { "x" })?;
        if i % 50 == 49 {
            notes.flush().await?;
        }
    }
    notes.flush().await?;

    let shared = repo.create().await?;
    shared.set("title", &json!("shared plans"))?;
    shared.share(Role::Write).await?;
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(2026);
    let relay = DeviceIdentity::generate(&mut rng);
    shared.grant_replica(relay.member_id()).await?;
    let gone = DeviceIdentity::generate(&mut rng);
    shared.grant_replica(gone.member_id()).await?;
    shared.revoke(gone.member_id()).await?;
    shared.set("after", &json!("the rotation"))?;
    shared.flush().await?;

    let mut docs = serde_json::Map::new();
    for doc in repo.list() {
        docs.insert(doc.to_string(), describe(&repo.find(&doc).await?)?);
    }
    let expected = json!({ "member": repo.member_id().to_string(), "docs": docs });
    repo.close().await?;
    drop(repo);
    let _ = std::fs::remove_file(home.join("lock"));
    std::fs::write(out.join("expected.json"), serde_json::to_vec_pretty(&expected)?)?;
    Ok(())
}
