//! Large documents through a relay process: a long burst of keystrokes
//! applied in one synchronous loop, a large paste and a large value are
//! stored, survive a reopen of the home, and reach a fresh device that only
//! ever talks to the relay.

use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};
use serde_json::json;
use synkro::automerge::{ObjType, ROOT, ReadDoc, ScalarValue, transaction::Transactable};
use synkro::{DocHandle, Repo, Role};
use synkro_tests::Relay;

use crate::{TIMEOUT, connect, repo_via};

/// Push `doc` to the relay at `addr`, then let a fresh device that talks
/// only to the relay join it; returns that device's copy.
async fn fresh_device_via_relay(repo: &Repo, doc: &DocHandle, addr: &str) -> anyhow::Result<(Repo, DocHandle)> {
    let token = doc.share(Role::Read).await?;
    let (net, relay) = connect(repo, addr).await?;
    doc.wait_durable_on(relay, TIMEOUT).await?; // the invitation too
    net.shutdown().await; // the writer is gone: everything comes from the relay
    let (bob, _net, relay) = repo_via(addr).await?;
    let bobs = bob.join(&token).await?;
    bob.wait_synced(relay, TIMEOUT).await?;
    Ok((bob, bobs))
}

/// A text typed like a paper: mostly at a cursor that moves locally,
/// backspaces, now and then a jump.
fn type_paper(doc: &DocHandle, keystrokes: usize) -> anyhow::Result<()> {
    let mut rng = ChaCha8Rng::seed_from_u64(260);
    let (mut len, mut cursor) = (0usize, 0usize);
    for _ in 0..keystrokes {
        let roll = rng.next_u32() % 1000;
        if roll < 15 && len > 0 {
            cursor = (rng.next_u64() % (len as u64 + 1)) as usize;
        }
        if roll < 700 || cursor == 0 {
            let ch = char::from(b'a' + (rng.next_u32() % 26) as u8);
            doc.splice_text("paper", cursor, 0, &ch.to_string())?;
            cursor += 1;
            len += 1;
        } else {
            doc.splice_text("paper", cursor - 1, 1, "")?;
            cursor -= 1;
            len -= 1;
        }
    }
    Ok(())
}

// One thread: the loop below runs with no flush in between, as a page's
// synchronous loop does, so one flush seals the whole burst.
#[tokio::test(flavor = "current_thread")]
async fn a_burst_of_260000_keystrokes_is_stored_reloaded_and_synced() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut relay = Relay::start(dir.path(), &[])?;
    let addr = relay.addr("/tcp/");
    let home = tempfile::tempdir()?;
    let (id, text) = {
        let repo = Repo::open(home.path()).await?;
        let doc = repo.create().await?;
        doc.set_text("paper", "")?;
        type_paper(&doc, 260_000)?;
        doc.flush().await?;
        (doc.id(), doc.get("paper")?)
    };
    assert!(
        text.as_ref()
            .and_then(|t| t.as_str())
            .is_some_and(|t| t.len() > 100_000)
    );

    let repo = Repo::open(home.path()).await?;
    assert_eq!(repo.load_problems(), Vec::new());
    let doc = repo.find(&id).await?;
    assert_eq!(doc.get("paper")?, text, "the reopened home has every keystroke");
    let stored = doc.info()?.stored_bytes;
    let save = doc.read(|d| d.clone().save().len())?;
    eprintln!("260,000 keystrokes: {stored} bytes stored, Automerge save {save} bytes");
    assert!(
        stored < 2 * save + (64 << 10),
        "stored {stored} B for a save of {save} B"
    );

    let (_bob, bobs) = fresh_device_via_relay(&repo, &doc, &addr).await?;
    assert_eq!(bobs.get("paper")?, text, "the fresh device has every keystroke");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_paste_and_a_large_value_are_stored_reloaded_and_synced() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut relay = Relay::start(dir.path(), &[])?;
    let addr = relay.addr("/tcp/");
    let home = tempfile::tempdir()?;
    // A 20 MB paste costs Automerge about a minute and 6 GiB here (some 300
    // bytes per character while it applies the insert): CI pastes 2 MB
    // (SYNKRO_LONG=1 for the full size). The 20 MiB value (one
    // incompressible change) is what travels in parts either way.
    let paste_len = if std::env::var_os("SYNKRO_LONG").is_some() {
        20 << 20
    } else {
        2 << 20
    };
    let paste: String = {
        let words = [
            "lorem",
            "ipsum",
            "\\section{Results}",
            "$x_i^2$",
            "synchronise",
            "the",
            "of",
        ];
        let mut rng = ChaCha8Rng::seed_from_u64(20);
        let mut s = String::with_capacity(paste_len + 32);
        while s.len() < paste_len {
            s.push_str(words[(rng.next_u32() % words.len() as u32) as usize]);
            s.push(if rng.next_u32() % 12 == 0 { '\n' } else { ' ' });
        }
        s.truncate(paste_len);
        s
    };
    let mut value = vec![0u8; 20 << 20];
    ChaCha8Rng::seed_from_u64(21).fill_bytes(&mut value);
    let id = {
        let repo = Repo::open(home.path()).await?;
        let doc = repo.create().await?;
        // The path API refuses pastes too large for a browser tab's memory
        // up front; the Automerge API takes them.
        let too_large = "x".repeat(synkro::json::MAX_TEXT_INSERT + 1);
        assert!(matches!(
            doc.set_text("notes", &too_large),
            Err(synkro::Error::TextTooLarge { .. })
        ));
        assert_eq!(doc.to_json()?, json!({}), "nothing of the refused paste was kept");
        doc.change(|d| {
            let notes = d.put_object(ROOT, "notes", ObjType::Text)?;
            d.splice_text(&notes, 0, 0, &paste)
        })?;
        doc.change(|d| d.put(ROOT, "file", ScalarValue::Bytes(value.clone())))?;
        doc.flush().await?;
        doc.id()
    };
    let bytes_of = |doc: &DocHandle| {
        doc.read(|d| {
            d.get(ROOT, "file")
                .ok()
                .flatten()
                .and_then(|(v, _)| v.as_bytes().map(<[u8]>::to_vec))
        })
    };

    let repo = Repo::open(home.path()).await?;
    assert_eq!(repo.load_problems(), Vec::new());
    let doc = repo.find(&id).await?;
    assert_eq!(doc.get("notes")?, Some(json!(paste)));
    assert_eq!(bytes_of(&doc)?.as_deref(), Some(&value[..]));

    let (_bob, bobs) = fresh_device_via_relay(&repo, &doc, &addr).await?;
    assert_eq!(bobs.get("notes")?, Some(json!(paste)));
    assert_eq!(bytes_of(&bobs)?.as_deref(), Some(&value[..]));
    Ok(())
}
