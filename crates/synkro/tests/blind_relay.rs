//! A blind `replicate` member between two readers, on real files: it stores
//! and forwards what it cannot read, and its disk never holds plaintext.

use std::path::Path;

use serde_json::json;
use synkro::{DocHandle, Error, Repo, Role};

mod common;
use common::until;

const MARKER: &str = "plaintext-canary-7f3e9b2c";

fn has(doc: &DocHandle, path: &str, value: &serde_json::Value) -> bool {
    doc.get(path).ok().flatten().as_ref() == Some(value)
}

/// Every byte of every file under `dir`.
fn all_bytes(dir: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(all_bytes(&path));
        } else {
            out.extend(std::fs::read(&path).unwrap());
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_stores_and_forwards_ciphertext_it_cannot_read() {
    let (ha, hr, hb) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let (a, relay, b) = (
        Repo::open(ha.path()).await.unwrap(),
        Repo::open(hr.path()).await.unwrap(),
        Repo::open(hb.path()).await.unwrap(),
    );

    let doc = a.create().await.unwrap();
    doc.set("note", &json!(MARKER)).unwrap();
    doc.set("list", &json!(["first"])).unwrap();
    doc.grant_replica(relay.member_id()).await.unwrap();
    let token = doc.share(Role::Write).await.unwrap();
    doc.flush().await.unwrap();

    // A uploads to the relay, then goes away before B ever connects.
    let link_ar = synkro::link::connect(&a, &relay).await.unwrap();
    until("the relay to hold A's chunks", || {
        relay.info(&doc.id()).is_ok_and(|i| i.chunks > 0)
    })
    .await;
    link_ar.close().await;

    let on_relay = relay.find(&doc.id()).await.unwrap();
    assert!(
        matches!(on_relay.get("note"), Err(Error::Core(_))),
        "the relay must not be able to read"
    );
    assert_eq!(on_relay.info().unwrap().my_role, Some(Role::Replicate));

    // B joins and gets everything through the relay alone.
    let bdoc = b.join(&token).await.unwrap();
    let link_rb = synkro::link::connect(&relay, &b).await.unwrap();
    until("B to read A's note via the relay", || {
        has(&bdoc, "note", &json!(MARKER))
    })
    .await;

    // B's edit waits on the relay until A comes back.
    bdoc.set("list/1", &json!("from B")).unwrap();
    bdoc.flush().await.unwrap();
    until("the relay to hold B's edit", || {
        relay.info(&doc.id()).unwrap().vv.get(&b.member_id()) > 0
    })
    .await;
    link_rb.close().await;
    let _link = synkro::link::connect(&a, &relay).await.unwrap();
    until("A to receive B's edit via the relay", || {
        has(&doc, "list/1", &json!("from B"))
    })
    .await;

    // The canary is readable to members, so the scan below can fail...
    assert_eq!(doc.get("note").unwrap(), Some(json!(MARKER)));
    drop((on_relay, relay));
    // ...and yet nothing the relay wrote to disk contains it.
    let disk = all_bytes(hr.path());
    assert!(!disk.is_empty());
    assert!(!contains(&disk, MARKER.as_bytes()), "plaintext on the relay's disk");
    assert!(!contains(&disk, b"from B"), "plaintext on the relay's disk");
}
