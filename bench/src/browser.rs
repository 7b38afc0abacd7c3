//! Scenario 7's browser peer: scenario 1 with the reader in a page of
//! headless Chromium (the npm package, over WebSocket), driven by
//! `tests/browser/bench-reader.mjs` with Playwright. The writer is a native
//! repo in this process; both clocks are this machine's wall clock.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use serde_json::{Value, json};
use synkro::Role;
use synkro::net::Multiaddr;
use synkro_tests::{Process, Relay};

use crate::Latencies;
use crate::ours::{Peer, write_at};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Why the browser peer cannot run here, if it cannot.
pub fn missing() -> Option<String> {
    let root = root();
    let pkg = root.join("bindings/wasm/pkg/index.js");
    let playwright = root.join("tests/browser/node_modules/playwright-core");
    if !pkg.exists() {
        return Some(format!("{} not built (scripts/build-wasm.sh)", pkg.display()));
    }
    if !playwright.exists() {
        return Some(format!(
            "{} not installed (scripts/setup-browser.sh)",
            playwright.display()
        ));
    }
    None
}

/// A relay that also serves a page loading the npm package as `window.synkro`.
pub fn relay_with_page() -> anyhow::Result<(Relay, Multiaddr, tempfile::TempDir)> {
    let dir = tempfile::tempdir()?;
    let site = dir.path().join("site");
    std::fs::create_dir_all(&site)?;
    std::os::unix::fs::symlink(root().join("bindings/wasm/pkg").canonicalize()?, site.join("pkg"))?;
    // The browser tests' page (`stageSite` in tests/browser/harness.mjs).
    std::os::unix::fs::symlink(
        root().join("tests/browser/test-page.html").canonicalize()?,
        site.join("index.html"),
    )?;
    let site_arg = site.to_str().context("site path")?.to_owned();
    let mut relay = Relay::start(&dir.path().join("data"), &["--web-root", &site_arg])?;
    let addr = relay.addr("/ws/").parse()?;
    Ok((relay, addr, dir))
}

fn wall_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

/// The native writer makes `rate` changes/s over `docs` documents for
/// `seconds`; the page follows them all. Latency: change made → the page's
/// change event.
pub async fn flow(
    relay: &Relay,
    addr: &Multiaddr,
    docs: usize,
    rate: f64,
    seconds: f64,
) -> anyhow::Result<(Latencies, usize)> {
    let writer = Peer::in_memory(addr).await?;
    let mut handles = Vec::new();
    let mut tokens = Vec::new();
    for _ in 0..docs {
        let doc = writer.repo.create().await?;
        doc.set("seq", &json!(0))?;
        tokens.push(doc.share(Role::Read).await?.to_string());
        handles.push(doc);
    }
    let stop = tempfile::NamedTempFile::new()?.into_temp_path();
    let stop_file = stop.to_path_buf();
    std::fs::remove_file(&stop_file)?;
    let expected = (rate * seconds).round() as usize;
    let params = json!({
        "page": format!("http://{}/index.html", relay.http),
        "relay": addr.to_string(),
        "tokens": tokens,
        "stopFile": stop_file,
        "expected": expected,
    });
    let mut cmd = Command::new("node");
    cmd.current_dir(root().join("tests/browser"))
        .arg("bench-reader.mjs")
        .arg(params.to_string());
    let mut reader = Process::start(cmd, Duration::from_secs(120), |l| l.iter().any(|l| l == "ready"))
        .context("starting the browser reader")?;

    // sent[d][n]: wall-clock ms when change n of document d was made.
    let mut sent = vec![vec![0.0]; docs];
    write_at(&handles, rate, seconds, |d| sent[d].push(wall_ms())).await?;
    std::fs::write(&stop_file, b"stop")?;
    reader.wait_for(Duration::from_secs(60), |l| l.iter().any(|l| l.starts_with("result ")))?;
    let line = reader
        .lines()
        .iter()
        .find_map(|l| l.strip_prefix("result "))
        .context("result line")?
        .to_owned();
    let receipts: Vec<(usize, usize, f64)> = serde_json::from_str::<Value>(&line)
        .ok()
        .and_then(|v| serde_json::from_value(v).ok())
        .context("the browser reader's result")?;
    let mut latencies = Latencies::default();
    for (d, n, at) in receipts {
        if let Some(t) = sent.get(d).and_then(|s| s.get(n)) {
            latencies.push(Duration::from_secs_f64(((at - t) / 1000.0).max(0.0)));
        }
    }
    writer.close().await;
    Ok((latencies, expected))
}
