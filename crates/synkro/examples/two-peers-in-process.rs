//! Two devices share an end-to-end encrypted document: Alice creates it and
//! invites Bob, both edit (Bob while disconnected), and they converge when
//! connected. The link is in-process, but the frames are the same sync
//! protocol a network transport carries.
//!
//! `cargo run -p synkro --example two-peers-in-process`

use std::time::{Duration, Instant};

use serde_json::json;
use synkro::{Repo, Role};

async fn until(what: &str, mut done: impl FnMut() -> bool) -> anyhow::Result<()> {
    let start = Instant::now();
    while !done() {
        anyhow::ensure!(
            start.elapsed() < Duration::from_secs(10),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (alice_home, bob_home) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let alice = Repo::open(alice_home.path()).await?;
    let bob = Repo::open(bob_home.path()).await?;
    println!("alice is {}\nbob   is {}", alice.member_id(), bob.member_id());

    let list = alice.create().await?;
    list.set("title", &json!("Weekend trip"))?;
    list.set("packing", &json!(["tent", "stove"]))?;
    println!("alice created {} and invites bob to write", list.id());
    let token = list.share(Role::Write).await?;
    let bobs = bob.join(&token).await?;

    let link = synkro::link::connect(&alice, &bob).await?;
    let start = Instant::now();
    until("bob to receive the list", || {
        bobs.get("packing/1").ok().flatten().is_some()
    })
    .await?;
    println!("bob has it after {:?}: {}", start.elapsed(), bobs.to_json()?);

    link.close().await;
    println!("offline: alice and bob both edit");
    list.set("packing/2", &json!("map"))?;
    bobs.set("packing/2", &json!("torch"))?;
    bobs.set("meals/saturday", &json!("pasta"))?;
    list.flush().await?;
    bobs.flush().await?;

    let _link = synkro::link::connect(&alice, &bob).await?;
    until("both to converge", || {
        matches!((list.to_json(), bobs.to_json()), (Ok(a), Ok(b)) if a == b && a["meals"]["saturday"] == "pasta" && a["packing"].as_array().is_some_and(|p| p.len() == 4))
    })
    .await?;
    println!(
        "reconnected, both now have:\n{}",
        serde_json::to_string_pretty(&list.to_json()?)?
    );
    let info = list.info()?;
    println!(
        "{} members, {} chunks, {} bytes sealed on alice's disk",
        info.members.len(),
        info.chunks,
        info.stored_bytes
    );
    Ok(())
}
