//! Back a document up into one file encrypted under a passphrase, and
//! restore it on another device: everything it needs comes with it (the
//! sealed history, the keys, and for an admin an invitation, so the
//! restoring device becomes a member with the same role).
//!
//! `cargo run -p synkro --example encrypted-backup`

use serde_json::json;
use synkro::Repo;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (laptop_home, phone_home, dir) = (tempfile::tempdir()?, tempfile::tempdir()?, tempfile::tempdir()?);

    let laptop = Repo::open(laptop_home.path()).await?;
    let notes = laptop.create().await?;
    notes.set_text("text", "Meeting notes: ship the relay on Friday.")?;
    notes.set("tags", &json!(["work"]))?;

    // The passphrase never leaves the device; the file is XChaCha20-Poly1305
    // under a key stretched with Argon2id.
    let file = dir.path().join("notes.synkro-backup");
    std::fs::write(&file, notes.export(b"correct horse battery staple").await?)?;
    println!(
        "backed up {} to {} ({} bytes)",
        notes.id(),
        file.display(),
        std::fs::metadata(&file)?.len()
    );

    // A wrong passphrase opens nothing.
    let phone = Repo::open(phone_home.path()).await?;
    let wrong = phone.import(&std::fs::read(&file)?, b"wrong").await;
    println!(
        "with a wrong passphrase: {}",
        wrong.err().map(|e| e.to_string()).unwrap_or_default()
    );

    let restored = phone
        .import(&std::fs::read(&file)?, b"correct horse battery staple")
        .await?;
    println!("restored on the phone: {}", restored.to_json()?);
    println!("the phone's role: {:?}", restored.info()?.my_role);
    Ok(())
}
