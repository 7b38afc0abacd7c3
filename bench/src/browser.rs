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

/// Whether a page script (`tests/browser/bench-*.mjs`) printed its
/// `result {...}` line.
pub fn has_result(lines: &[String]) -> bool {
    lines.iter().any(|l| l.starts_with("result "))
}

/// A page script's `result {...}`, waiting up to `timeout` for it.
pub fn page_result(page: &mut Process, timeout: Duration) -> anyhow::Result<Value> {
    page.wait_for(timeout, has_result)?;
    let line = page.line_after("result ").context("result line")?;
    serde_json::from_str(&line).context("the page's result")
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
    let receipts: Vec<(usize, usize, f64)> = serde_json::from_value(page_result(&mut reader, Duration::from_secs(60))?)
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

/// What scenario 3's page measured (see `tests/browser/bench-large.mjs`).
pub struct LargeInPage {
    /// @automerge/automerge's `load()` of the long document's save, in the page.
    pub load_ms: f64,
    /// Joining the long document through the relay until all of it is there.
    pub join_ms: f64,
    /// The longest main-thread task while joining.
    pub join_longest_task_ms: f64,
    /// Keystroke → the page, on the long and on the short document.
    pub long: Latencies,
    pub short: Latencies,
    /// The longest main-thread task while keystrokes arrived, and how many
    /// ran over 50 ms.
    pub typing_longest_task_ms: f64,
    pub typing_long_tasks: usize,
}

/// Scenario 3 with the reader in a page: it joins a document holding
/// `edits` and a short one, then a native writer types `n` keystrokes at
/// `rate` per second at the end of each.
pub async fn large(
    relay: &Relay,
    addr: &Multiaddr,
    edits: &[crate::trace::Edit],
    short_edits: &[crate::trace::Edit],
    n: usize,
    rate: f64,
) -> anyhow::Result<LargeInPage> {
    let writer = Peer::in_memory(addr).await?;
    let mut docs = Vec::new();
    let mut params = Vec::new();
    for doc_edits in [edits, short_edits] {
        let doc = writer.repo.create().await?;
        let text = doc.change(crate::trace::start)?;
        for e in doc_edits {
            doc.change(|d| crate::trace::apply(d, &text, e))?;
        }
        let token = doc.share(Role::Read).await?.to_string();
        doc.wait_durable_on(writer.relay, Duration::from_secs(120)).await?;
        let length = doc.read(|d| synkro::automerge::ReadDoc::length(d, &text))?;
        params.push(json!({ "token": token, "length": length }));
        docs.push((doc, text, length));
    }
    let save = tempfile::NamedTempFile::new()?;
    std::fs::write(save.path(), docs[0].0.read(|d| d.clone().save())?)?;
    let stop = tempfile::NamedTempFile::new()?.into_temp_path();
    let stop_file = stop.to_path_buf();
    std::fs::remove_file(&stop_file)?;
    let automerge = root().join("bench/automerge-repo/node_modules/@automerge/automerge/dist/iife/iife.js");
    let params = json!({
        "page": format!("http://{}/index.html", relay.http),
        "relay": addr.to_string(),
        "long": params[0],
        "short": params[1],
        "automerge": automerge,
        "save": save.path(),
        "stopFile": stop_file,
        "keystrokes": n,
    });
    let mut cmd = Command::new("node");
    cmd.current_dir(root().join("tests/browser"))
        .arg("bench-large.mjs")
        .arg(params.to_string());
    let mut page = Process::start(cmd, Duration::from_secs(600), |l| l.iter().any(|l| l == "ready"))
        .context("starting the browser reader")?;

    let period = Duration::from_secs_f64(1.0 / rate);
    let mut sent: Vec<Vec<f64>> = Vec::new();
    for (doc, text, length) in &docs {
        let mut times = Vec::new();
        let start = tokio::time::Instant::now();
        for k in 0..n {
            tokio::time::sleep_until(start + period * k as u32).await;
            times.push(wall_ms());
            doc.change(|d| synkro::automerge::transaction::Transactable::splice_text(d, text, length + k, 0, "x"))?;
        }
        sent.push(times);
    }
    std::fs::write(&stop_file, b"stop")?;
    let result = page_result(&mut page, Duration::from_secs(60))?;
    let num = |key: &str| result[key].as_f64().unwrap_or(f64::NAN);
    let latencies = |name: &str, sent: &[f64]| {
        let mut l = Latencies::default();
        for (t, at) in sent
            .iter()
            .zip(result["receipts"][name].as_array().into_iter().flatten())
        {
            if let Some(at) = at.as_f64() {
                l.push(Duration::from_secs_f64(((at - t) / 1000.0).max(0.0)));
            }
        }
        l
    };
    let out = LargeInPage {
        load_ms: num("loadMs"),
        join_ms: num("joinMs"),
        join_longest_task_ms: num("joinLongestTask"),
        long: latencies("long", &sent[0]),
        short: latencies("short", &sent[1]),
        typing_longest_task_ms: num("typingLongestTask"),
        typing_long_tasks: result["typingLongTasks"].as_u64().unwrap_or(0) as usize,
    };
    writer.close().await;
    Ok(out)
}
