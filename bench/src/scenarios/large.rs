//! Scenario 3: one long document: fetching it, storing it, keystrokes into it.

use std::time::Instant;

use serde_json::json;
use synkro::net::Multiaddr;

use crate::{AMR, Bench, browser, fresh_relay, ms, ours, peer, trace};

pub(crate) async fn large(b: &mut Bench) -> anyhow::Result<()> {
    let ops = b.sizes.trace_ops;
    let edits = trace::edits(ops, 7);
    let bytes = trace::build(&edits)?;
    eprintln!("large document: {ops} keystrokes, {} KiB saved", bytes.len() / 1024);
    let start = Instant::now();
    let loaded = synkro::automerge::AutoCommit::load(&bytes)?;
    let load = start.elapsed();
    drop(loaded);
    let (_relay, addr, _dir) = fresh_relay()?;
    let fetch = ours::large(&addr, &edits).await?;
    let file = tempfile::NamedTempFile::new()?;
    std::fs::write(file.path(), &bytes)?;
    let server = peer::Server::start()?;
    let theirs = peer::run(&server, "large", json!({ "file": file.path() }), None)?;
    b.row(
        "3 large doc",
        format!("fresh peer fetches {ops} ops"),
        ms(fetch),
        "Automerge load() of the same bytes (Rust)",
        ms(load),
        "ms",
        true,
    );
    b.row(
        "3 large doc",
        format!("fresh peer fetches {ops} ops"),
        ms(fetch),
        AMR,
        peer::num(&theirs, "fetch_ms"),
        "ms",
        true,
    );
    b.row(
        "3 large doc",
        format!("{AMR} fetch vs its own load()"),
        peer::num(&theirs, "fetch_ms"),
        "Automerge load() (JS)",
        peer::num(&theirs, "load_ms"),
        "ms",
        true,
    );
    for (rhythm, how) in [
        (ours::Rhythm::OneLoop, "typed in one loop"),
        (ours::Rhythm::Every(100), "sealed every 100 edits"),
        (ours::Rhythm::Every(1), "sealed after every edit (typing)"),
    ] {
        let (stored, save) = ours::stored_bytes(&edits, rhythm).await?;
        b.row(
            "3 large doc",
            format!("bytes stored, {ops} keystrokes {how}"),
            stored as f64,
            "Automerge save() of the same document (goal ≤ 2×)",
            save as f64,
            "B",
            true,
        );
    }
    remote_keystrokes(b, &addr, &edits).await
}

/// Scenario 3: a keystroke arriving on the long document costs what it
/// costs on a short one (goal: p50 within 1.2×).
pub(crate) async fn remote_keystrokes(b: &mut Bench, addr: &Multiaddr, edits: &[trace::Edit]) -> anyhow::Result<()> {
    let (n, rate) = (if b.args.quick { 30 } else { 100 }, 10.0);
    let short_edits = trace::edits(1_400, 8); // about 1 KB of text
    eprintln!("large document: {n} remote keystrokes at {rate}/s, long vs 1 KB document");
    let mut latencies = Vec::new();
    for doc_edits in [edits, &short_edits[..]] {
        let typing = ours::Typing::start(addr, doc_edits).await?;
        latencies.push(typing.keystrokes(n, rate).await?);
        typing.close().await;
    }
    let [long, short] = &mut latencies[..] else {
        anyhow::bail!("two runs")
    };
    for p in [50.0, 99.0] {
        b.row(
            "3 large doc",
            format!("p{p} remote keystroke → other peer, {}-op document", edits.len()),
            long.percentile_ms(p),
            "the same on a 1 KB document (goal ≤ 1.2×)",
            short.percentile_ms(p),
            "ms",
            true,
        );
    }
    if let Some(why) = browser::missing() {
        eprintln!("large document: no browser peer: {why}");
        return Ok(());
    }
    eprintln!("large document: the same with the reader in headless Chromium");
    let (relay, page_addr, _dir) = browser::relay_with_page()?;
    let mut page = browser::large(&relay, &page_addr, edits, &short_edits, n, rate).await?;
    let ops = edits.len();
    b.row(
        "3 large doc",
        format!("join of the {ops}-op document in the page"),
        page.join_ms,
        "@automerge/automerge load() of the same bytes in the same page (goal ≤ 1.5×)",
        page.load_ms,
        "ms",
        true,
    );
    b.row(
        "3 large doc",
        "longest main-thread task while the page joins it",
        page.join_longest_task_ms,
        "target 50 ms",
        50.0,
        "ms",
        true,
    );
    for p in [50.0, 99.0] {
        b.row(
            "3 large doc",
            format!("p{p} remote keystroke → page, {ops}-op document"),
            page.long.percentile_ms(p),
            "the same on a 1 KB document (goal ≤ 1.2×)",
            page.short.percentile_ms(p),
            "ms",
            true,
        );
    }
    eprintln!(
        "large document: {} main-thread tasks over 50 ms while keystrokes arrived in the page",
        page.typing_long_tasks
    );
    b.row(
        "3 large doc",
        "longest main-thread task while keystrokes arrive in the page",
        page.typing_longest_task_ms,
        "target 50 ms",
        50.0,
        "ms",
        true,
    );
    Ok(())
}
