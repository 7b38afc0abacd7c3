//! A thousand documents shared with a relay over one connection; when the
//! device reconnects with nothing changed, the whole reconnect is one round
//! trip of a few hundred bytes (`Hello`, `Answer`, `Reconciled` each way),
//! whatever the number of documents.

use std::time::Instant;

use serde_json::json;
use synkro::Repo;
use synkro_tests::Relay;

use crate::{TIMEOUT, connect, eventually};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnecting_with_a_thousand_unchanged_documents_is_one_round_trip() -> anyhow::Result<()> {
    const DOCS: usize = 1000;
    let dir = tempfile::tempdir()?;
    let mut relay = Relay::start(dir.path(), &[])?;
    let addr = relay.addr("/tcp/");
    let repo = Repo::in_memory().await?;
    for i in 0..DOCS {
        let doc = repo.create().await?;
        doc.set("n", &json!(i))?;
    }
    repo.flush_all().await?;

    let started = Instant::now();
    let (net, relay_id) = connect(&repo, &addr).await?;
    repo.wait_synced(relay_id, TIMEOUT * 3).await?;
    let first = net.traffic(&relay_id);
    eprintln!(
        "first sync of {DOCS} documents: {:?}, sent {} messages / {} bytes, received {} messages / {} bytes",
        started.elapsed(),
        first.messages_sent,
        first.bytes_sent,
        first.messages_received,
        first.bytes_received
    );
    assert_eq!(repo.sync_status(&relay_id).synced.len(), DOCS);
    net.shutdown().await;

    let started = Instant::now();
    let (net, relay_id) = connect(&repo, &addr).await?;
    repo.wait_synced(relay_id, TIMEOUT).await?;
    let elapsed = started.elapsed();
    // Synced is known once the relay answered our Hello; our own
    // `Reconciled` may still be on its way out (counted when written). Wait
    // for it, then give any further message time to show.
    eventually(TIMEOUT, || Ok(net.traffic(&relay_id).messages_sent >= 3)).await?;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let again = net.traffic(&relay_id);
    eprintln!(
        "reconnect with {DOCS} unchanged documents: {elapsed:?}, sent {} message(s) / {} bytes, received {} message(s) / {} bytes",
        again.messages_sent, again.bytes_sent, again.messages_received, again.bytes_received
    );
    assert_eq!(
        (again.messages_sent, again.messages_received),
        (3, 3),
        "Hello, Answer and Reconciled each way"
    );
    assert!(
        again.bytes_sent < 1024 && again.bytes_received < 1024,
        "a few hundred bytes each way: {again:?}"
    );
    assert_eq!(repo.sync_status(&relay_id).synced.len(), DOCS);

    // One changed document costs that document, not the thousand.
    let doc = repo.find(&repo.list()[0]).await?;
    doc.set("n", &json!("changed"))?;
    doc.wait_durable_on(relay_id, TIMEOUT).await?;
    let after = net.traffic(&relay_id);
    assert!(after.messages_sent - again.messages_sent <= 3, "{after:?}");
    net.shutdown().await;
    Ok(())
}
