//! Scenario 1 (latency) and 7's browser half: a change's way from one peer to another.

use serde_json::json;

use crate::{AMR, Bench, Latencies, browser, fresh_relay, ours, peer};

pub(crate) async fn latency(b: &mut Bench) -> anyhow::Result<()> {
    let (docs, rate, seconds) = (100, 1000.0, b.sizes.seconds);
    eprintln!("latency: {rate} changes/s over {docs} docs for {seconds} s, A → relay → B");
    let (_relay, addr, _dir) = fresh_relay()?;
    let mut ours = ours::flow(&addr, 1, 1, docs, rate, seconds).await?;
    let params = json!({ "docs": docs, "rate": rate, "seconds": seconds });
    for (label, throttle) in [("", None), (" (sync throttle 10 ms)", Some(10))] {
        let server = peer::Server::start()?;
        let theirs = peer::run(&server, "latency", params.clone(), throttle)?;
        for p in [50.0, 99.0] {
            b.row(
                "1 latency",
                format!("p{p} change → other peer"),
                ours.latencies.percentile_ms(p),
                format!("{AMR}{label}"),
                peer::num(&theirs, &format!("p{p}_ms")),
                "ms",
                true,
            );
        }
    }
    let lost = ours.expected.saturating_sub(ours.latencies.len());
    if lost > 0 {
        eprintln!(
            "latency: synkro delivered {} of {}",
            ours.latencies.len(),
            ours.expected
        );
    }
    let mut at_rest = at_rest(b).await?;
    browser_latency(b, &mut ours.latencies).await?;
    browser_at_rest(b, &mut at_rest).await
}

/// One change every 200 ms: nothing is pending when a change is made, so
/// it is sealed and sent at once instead of waiting for a flush window.
const AT_REST: (usize, f64) = (1, 5.0);

/// Scenario 1 at rest, against automerge-repo's default throttle and the
/// 10 ms target. Returns synkro's delays for the browser row.
async fn at_rest(b: &mut Bench) -> anyhow::Result<Latencies> {
    let ((docs, rate), seconds) = (AT_REST, b.sizes.seconds);
    eprintln!("latency: at rest, one change every {} ms", 1000.0 / rate);
    let (_relay, addr, _dir) = fresh_relay()?;
    let mut ours = ours::flow(&addr, 1, 1, docs, rate, seconds).await?;
    let server = peer::Server::start()?;
    let theirs = peer::run(
        &server,
        "latency",
        json!({ "docs": docs, "rate": rate, "seconds": seconds }),
        None,
    )?;
    for p in [50.0, 99.0] {
        b.row(
            "1 latency",
            format!("p{p} change → other peer, at rest (a change every 200 ms)"),
            ours.latencies.percentile_ms(p),
            AMR,
            peer::num(&theirs, &format!("p{p}_ms")),
            "ms",
            true,
        );
    }
    b.row(
        "1 latency",
        "p50 change → other peer, at rest",
        ours.latencies.percentile_ms(50.0),
        "target 10 ms",
        10.0,
        "ms",
        true,
    );
    Ok(ours.latencies)
}

/// Scenario 7's at-rest row: the page as reader B, against the 25 ms target
/// and the native reader of the same workload.
async fn browser_at_rest(b: &mut Bench, native: &mut Latencies) -> anyhow::Result<()> {
    if browser::missing().is_some() {
        return Ok(());
    }
    let ((docs, rate), seconds) = (AT_REST, b.sizes.seconds);
    let (relay, addr, _dir) = browser::relay_with_page()?;
    let (mut page, expected) = browser::flow(&relay, &addr, docs, rate, seconds).await?;
    if page.len() < expected {
        eprintln!("latency: at rest, the browser peer got {} of {expected}", page.len());
    }
    let p50 = page.percentile_ms(50.0);
    b.row(
        "7 browser peer",
        "p50 change → peer B in headless Chromium, at rest",
        p50,
        "target 25 ms",
        25.0,
        "ms",
        true,
    );
    b.row(
        "7 browser peer",
        "p50 change → peer B in headless Chromium, at rest",
        p50,
        "synkro, native peer B",
        native.percentile_ms(50.0),
        "ms",
        true,
    );
    Ok(())
}

/// Scenario 7's second half: scenario 1 with the reader in headless
/// Chromium, against the native reader of the same run.
pub(crate) async fn browser_latency(b: &mut Bench, native: &mut Latencies) -> anyhow::Result<()> {
    if let Some(why) = browser::missing() {
        eprintln!("latency: no browser peer: {why}");
        return Ok(());
    }
    let (docs, rate, seconds) = (100, 1000.0, b.sizes.seconds);
    eprintln!("latency: the same with B in headless Chromium");
    let (relay, addr, _dir) = browser::relay_with_page()?;
    let (mut page, expected) = browser::flow(&relay, &addr, docs, rate, seconds).await?;
    if page.len() < expected {
        eprintln!("latency: the browser peer got {} of {expected}", page.len());
    }
    for p in [50.0, 99.0] {
        b.row(
            "7 browser peer",
            format!("p{p} change → peer B in headless Chromium"),
            page.percentile_ms(p),
            "synkro, native peer B",
            native.percentile_ms(p),
            "ms",
            true,
        );
    }
    Ok(())
}
