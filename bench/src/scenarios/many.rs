//! Scenario 4 and 5's stored half: many documents on one device.

use serde_json::json;

use crate::{Bench, fresh_relay, ms, ours, peer};

pub(crate) async fn many(b: &mut Bench) -> anyhow::Result<()> {
    let mut before: Option<(usize, f64)> = None;
    for docs in b.sizes.many_docs.clone() {
        let first_sync = many_of(b, docs).await?;
        if let Some((fewer, took)) = before {
            // Linear growth, with 10 % to spare, is the limit.
            let times = docs as f64 / fewer as f64;
            b.row(
                "4 many docs",
                format!("first sync of {docs} docs ÷ first sync of {fewer}"),
                first_sync / took,
                format!("{times:.0}× + 10 % (linear)"),
                times * 1.1,
                "",
                true,
            );
        }
        before = Some((docs, first_sync));
    }
    Ok(())
}

/// Scenario 4 with `docs` documents; returns the first sync in ms.
async fn many_of(b: &mut Bench, docs: usize) -> anyhow::Result<f64> {
    eprintln!("many documents: {docs} small docs");
    let (relay, addr, _dir) = fresh_relay()?;
    let (home_a, home_b) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let before = relay.rss_bytes()?;
    let ours = ours::many(&addr, docs, home_a.path(), home_b.path()).await?;
    let per_doc = relay.rss_bytes()?.saturating_sub(before) as f64 / docs as f64;
    // Shown now: automerge-repo's run can take long before it gives up.
    eprintln!(
        "synkro, {docs} docs: first sync {:.0} ms, open one {:.1} ms, cold open {:.0} ms, reconnect {:.0} ms / {} messages / {} B, relay RSS per doc {:.1} KiB",
        ms(ours.first_sync),
        ms(ours.open_one),
        ms(ours.cold_open),
        ms(ours.reconnect),
        ours.reconnect_messages,
        ours.reconnect_bytes,
        per_doc / 1024.0
    );
    let server = peer::Server::start()?;
    let (dir_a, dir_b) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let (theirs, peer_label) = peer::run_or_report(
        &server,
        "many",
        json!({ "docs": docs, "dirA": dir_a.path(), "dirB": dir_b.path() }),
    );
    b.row(
        "4 many docs",
        format!("first sync of {docs} docs"),
        ms(ours.first_sync),
        &peer_label,
        peer::num(&theirs, "first_sync_ms"),
        "ms",
        true,
    );
    b.row(
        "4 many docs",
        format!("open a home of {docs} docs and read one"),
        ms(ours.open_one),
        "target 50 ms",
        50.0,
        "ms",
        true,
    );
    b.row(
        "4 many docs",
        format!("cold open of {docs} docs, reading every one"),
        ms(ours.cold_open),
        &peer_label,
        peer::num(&theirs, "cold_open_ms"),
        "ms",
        true,
    );
    b.row(
        "4 many docs",
        "reconnect, nothing changed: time to last message",
        ms(ours.reconnect),
        &peer_label,
        peer::num(&theirs, "reconnect_ms"),
        "ms",
        true,
    );
    b.row(
        "4 many docs",
        "reconnect, nothing changed: messages",
        ours.reconnect_messages as f64,
        &peer_label,
        peer::num(&theirs, "reconnect_messages"),
        "",
        true,
    );
    b.row(
        "4 many docs",
        "reconnect, nothing changed: bytes",
        ours.reconnect_bytes as f64,
        format!("{peer_label} (payload bytes)"),
        peer::num(&theirs, "reconnect_bytes"),
        "B",
        true,
    );
    b.row(
        "5 footprint",
        "relay / server RSS per stored doc",
        per_doc,
        &peer_label,
        peer::num(&theirs, "server_rss_per_doc"),
        "B",
        true,
    );
    Ok(ms(ours.first_sync))
}
