//! `synkro-bench`: synkro side by side with automerge-repo (its sync server
//! and clients, in Node) and with Automerge's own limits, on the same
//! workloads over loopback in the same run. Prints a table of ratios;
//! `--write docs/benchmarks.md` also writes it with the machine and how to
//! reproduce. Run through `scripts/bench.sh`, which installs and builds what
//! it needs.

mod browser;
mod ours;
mod peer;
mod report;
mod trace;

use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use serde_json::json;
use synkro::net::Multiaddr;
use synkro_tests::Relay;

use report::Row;

#[derive(Parser)]
#[command(about = "synkro's comparative benchmarks")]
struct Args {
    /// Small workloads that finish in a few minutes (CI).
    #[arg(long)]
    quick: bool,
    /// Only the scenarios whose name contains one of these.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Also write the table, the machine and how to reproduce to this file.
    #[arg(long)]
    write: Option<std::path::PathBuf>,
    /// synkro-bench built with sealing switched off (scenario 6), next to
    /// its own synkro-relay; `scripts/bench.sh` builds it for full runs.
    #[arg(long)]
    unsealed: Option<std::path::PathBuf>,
    /// Run synkro's throughput ramp only and print its steps as JSON (what
    /// the main run asks of the `--unsealed` build).
    #[arg(long, hide = true)]
    ramp_only: bool,
}

/// Workload sizes of a run.
struct Sizes {
    seconds: f64,
    rates: Vec<f64>,
    step_seconds: f64,
    trace_ops: usize,
    many_docs: usize,
    idle_connections: usize,
    typists: Vec<usize>,
    typing_seconds: f64,
}

impl Sizes {
    fn new(quick: bool) -> Self {
        if quick {
            Self {
                seconds: 5.0,
                rates: vec![100.0, 250.0, 500.0, 1000.0, 2000.0],
                step_seconds: 2.0,
                trace_ops: 10_000,
                many_docs: 500,
                idle_connections: 100,
                typists: vec![2, 4, 8],
                typing_seconds: 3.0,
            }
        } else {
            Self {
                seconds: 30.0,
                rates: vec![100.0, 250.0, 500.0, 1000.0, 2000.0, 4000.0, 8000.0, 16000.0, 32000.0],
                step_seconds: 10.0,
                trace_ops: 260_000,
                many_docs: 10_000,
                idle_connections: 1_000,
                typists: vec![2, 4, 8, 16, 24, 32, 48, 64],
                typing_seconds: 10.0,
            }
        }
    }
}

/// Observed delays, in milliseconds when summarised.
#[derive(Default)]
pub struct Latencies(Vec<Duration>);

impl Latencies {
    pub fn push(&mut self, d: Duration) {
        self.0.push(d);
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The `p`th percentile in milliseconds (NaN when empty).
    pub fn percentile_ms(&mut self, p: f64) -> f64 {
        if self.0.is_empty() {
            return f64::NAN;
        }
        self.0.sort_unstable();
        let i = ((p / 100.0) * self.0.len() as f64) as usize;
        self.0[i.min(self.0.len() - 1)].as_secs_f64() * 1000.0
    }
}

/// One rate of a throughput ramp: the rate, its p99 in ms, whether every
/// change arrived at (nearly) that rate, and (synkro's) CPU time in ms that
/// the peers and the relay together spent per 1,000 changes.
type Step = (f64, f64, bool, Option<f64>);

struct Bench {
    args: Args,
    sizes: Sizes,
    rows: Vec<Row>,
    /// synkro's throughput ramp, kept for scenario 6.
    sealed_ramp: Option<Vec<Step>>,
}

impl Bench {
    fn wants(&self, scenario: &str) -> bool {
        self.args.only.is_empty() || self.args.only.iter().any(|o| scenario.contains(o.as_str()))
    }

    #[allow(clippy::too_many_arguments)]
    fn row(
        &mut self,
        scenario: &'static str,
        metric: impl Into<String>,
        synkro: f64,
        against_what: impl Into<String>,
        against: f64,
        unit: &'static str,
        lower_is_better: bool,
    ) {
        let row = Row {
            scenario,
            metric: metric.into(),
            synkro,
            against,
            against_what: against_what.into(),
            unit,
            lower_is_better,
        };
        println!(
            "{}",
            report::markdown(std::slice::from_ref(&row))
                .lines()
                .last()
                .unwrap_or_default()
        );
        self.rows.push(row);
    }
}

fn fresh_relay() -> anyhow::Result<(Relay, Multiaddr, tempfile::TempDir)> {
    fresh_relay_with(&[])
}

/// [`fresh_relay`] with `extra` arguments.
fn fresh_relay_with(extra: &[&str]) -> anyhow::Result<(Relay, Multiaddr, tempfile::TempDir)> {
    let dir = tempfile::tempdir()?;
    let mut relay = Relay::start(dir.path(), extra)?;
    let addr = relay.addr("/ws/").parse()?;
    Ok((relay, addr, dir))
}

const AMR: &str = "automerge-repo";

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

async fn latency(b: &mut Bench) -> anyhow::Result<()> {
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
    browser_latency(b, &mut ours.latencies).await
}

/// Scenario 7's second half: scenario 1 with the reader in headless
/// Chromium, against the native reader of the same run.
async fn browser_latency(b: &mut Bench, native: &mut Latencies) -> anyhow::Result<()> {
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

/// The highest rate whose step kept p99 under 1 s with every change delivered.
fn sustained(steps: &[Step]) -> f64 {
    steps
        .iter()
        .take_while(|(_, p99, ok, _)| *ok && *p99 <= 1000.0)
        .map(|(rate, ..)| *rate)
        .fold(0.0, f64::max)
}

/// Says so when a ramp held up to its last rate (the true ceiling is higher).
fn ceiling_note(sizes: &Sizes, steps: &[Step]) -> &'static str {
    let top = sizes.rates.last().copied().unwrap_or_default();
    if sustained(steps) >= top {
        " (the highest rate tried)"
    } else {
        ""
    }
}

const THROUGHPUT_DOCS: usize = 20;

/// synkro's throughput ramp (2 writers, 2 readers, one fresh relay), up to
/// the first rate that misses.
async fn ramp(sizes: &Sizes) -> anyhow::Result<Vec<Step>> {
    let (relay, addr, _dir) = fresh_relay()?;
    // The peers run in this process; the relay is the other one.
    let cpu = || -> anyhow::Result<f64> { Ok(cpu_seconds(std::process::id())? + cpu_seconds(relay.process.pid())?) };
    let mut steps = Vec::new();
    for &rate in &sizes.rates {
        let before = cpu()?;
        let mut f = ours::flow(&addr, 2, 2, THROUGHPUT_DOCS, rate, sizes.step_seconds).await?;
        let cpu_ms = (cpu()? - before) * 1000.0 / f.expected.max(1) as f64 * 1000.0;
        let p99 = f.latencies.percentile_ms(99.0);
        let ok = f.latencies.len() >= f.expected && f.achieved_rate >= 0.9 * rate;
        eprintln!(
            "  synkro{} {rate}/s: p99 {p99:.0} ms, {}/{} delivered, CPU {cpu_ms:.0} ms per 1000 changes",
            if synkro::UNSEALED { " (sealing off)" } else { "" },
            f.latencies.len(),
            f.expected
        );
        steps.push((rate, p99, ok, Some(cpu_ms)));
        if !ok || p99 > 1000.0 {
            break;
        }
    }
    Ok(steps)
}

async fn throughput(b: &mut Bench) -> anyhow::Result<()> {
    let (docs, seconds) = (THROUGHPUT_DOCS, b.sizes.step_seconds);
    eprintln!("throughput: 2 writers, 2 readers, {docs} docs, {seconds} s per rate");
    let ours_steps = ramp(&b.sizes).await?;
    b.sealed_ramp = Some(ours_steps.clone());
    let server = peer::Server::start()?;
    let theirs = peer::run(
        &server,
        "throughput",
        json!({ "rates": b.sizes.rates, "seconds": seconds, "docs": docs }),
        None,
    )?;
    let their_steps: Vec<Step> = theirs["steps"]
        .as_array()
        .context("steps")?
        .iter()
        .map(|s| {
            let rate = peer::num(s, "rate");
            let ok = peer::num(s, "count") >= peer::num(s, "expected") && peer::num(s, "achieved_rate") >= 0.9 * rate;
            eprintln!("  {AMR} {rate}/s: p99 {:.0} ms, ok {ok}", peer::num(s, "p99_ms"));
            (rate, peer::num(s, "p99_ms"), ok, None)
        })
        .collect();
    let note = |s: &[Step]| ceiling_note(&b.sizes, s);
    b.row(
        "2 throughput",
        format!("changes/s with p99 < 1 s{}", note(&ours_steps)),
        sustained(&ours_steps),
        format!("{AMR}{}", note(&their_steps)),
        sustained(&their_steps),
        "/s",
        false,
    );
    Ok(())
}

/// Scenario 6: the throughput ramp of this build against the same ramp in
/// the build with sealing switched off (`--unsealed`), run as a child
/// process so that each side uses its own relay binary.
async fn encryption(b: &mut Bench) -> anyhow::Result<()> {
    let Some(unsealed) = b.args.unsealed.clone() else {
        eprintln!("encryption: skipped (needs the build with sealing off; scripts/bench.sh builds it for full runs)");
        return Ok(());
    };
    let sealed = match b.sealed_ramp.clone() {
        Some(steps) => steps,
        None => ramp(&b.sizes).await?,
    };
    eprintln!("encryption: the same ramp with sealing off ({})", unsealed.display());
    let mut child = std::process::Command::new(&unsealed);
    child.arg("--ramp-only").stderr(std::process::Stdio::inherit());
    if b.args.quick {
        child.arg("--quick");
    }
    let out = child
        .output()
        .with_context(|| format!("running {}", unsealed.display()))?;
    anyhow::ensure!(out.status.success(), "{} failed: {}", unsealed.display(), out.status);
    let open: Vec<Step> = serde_json::from_slice(&out.stdout).context("the unsealed ramp's output")?;
    b.row(
        "6 encryption",
        format!("changes/s with p99 < 1 s, sealed{}", ceiling_note(&b.sizes, &sealed)),
        sustained(&sealed),
        "sealing off",
        sustained(&open),
        "/s",
        false,
    );
    // Latency at the highest rate both sustained shows the cost even when
    // both reach the top of the ramp.
    let common = sustained(&sealed).min(sustained(&open));
    let p99 = |steps: &[Step]| steps.iter().find(|s| s.0 == common).map(|s| s.1);
    if let (Some(s), Some(o)) = (p99(&sealed), p99(&open)) {
        b.row(
            "6 encryption",
            format!("p99 at {common}/s, sealed"),
            s,
            "sealing off",
            o,
            "ms",
            true,
        );
    }
    // What sealing costs in work rather than in queueing: CPU per change
    // over the rates both sustained, weighted by the changes each made.
    let cpu = |steps: &[Step]| {
        let used: Vec<(f64, f64)> = steps
            .iter()
            .filter(|s| s.0 <= common)
            .filter_map(|s| s.3.map(|c| (s.0, c)))
            .collect();
        let weight: f64 = used.iter().map(|(rate, _)| rate).sum();
        (weight > 0.0).then(|| used.iter().map(|(rate, c)| rate * c).sum::<f64>() / weight)
    };
    if let (Some(s), Some(o)) = (cpu(&sealed), cpu(&open)) {
        b.row(
            "6 encryption",
            format!("CPU per 1000 changes, peers + relay (up to {common}/s), sealed"),
            s,
            "sealing off",
            o,
            "ms",
            true,
        );
    }
    Ok(())
}

/// CPU time (user + system) a process has used so far, from `/proc` (Linux).
fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = procfs::process::Process::new(i32::try_from(pid)?)?.stat()?;
    Ok((stat.utime + stat.stime) as f64 / procfs::ticks_per_second() as f64)
}

async fn large(b: &mut Bench) -> anyhow::Result<()> {
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
async fn remote_keystrokes(b: &mut Bench, addr: &Multiaddr, edits: &[trace::Edit]) -> anyhow::Result<()> {
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

async fn many(b: &mut Bench) -> anyhow::Result<()> {
    let docs = b.sizes.many_docs;
    eprintln!("many documents: {docs} small docs");
    let (relay, addr, _dir) = fresh_relay()?;
    let (home_a, home_b) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let before = relay.rss_bytes()?;
    let ours = ours::many(&addr, docs, home_a.path(), home_b.path()).await?;
    let per_doc = relay.rss_bytes()?.saturating_sub(before) as f64 / docs as f64;
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
        format!("cold open of {docs} docs"),
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
    Ok(())
}

async fn idle(b: &mut Bench) -> anyhow::Result<()> {
    let n = b.sizes.idle_connections;
    eprintln!("footprint: {n} idle connections");
    // All from 127.0.0.1: lift the per-IP cap (256 by default) above them.
    let per_ip = (n + 16).to_string();
    let (relay, addr, _dir) = fresh_relay_with(&["--max-connections-per-ip", &per_ip])?;
    let ours = ours::idle(&relay, &addr, n).await?;
    let server = peer::Server::start()?;
    let theirs = peer::run(&server, "idle", json!({ "connections": n }), None)?;
    b.row(
        "5 footprint",
        format!("relay / server RSS per idle connection ({n})"),
        ours,
        AMR,
        peer::num(&theirs, "per_connection_bytes"),
        "B",
        true,
    );
    b.row(
        "5 footprint",
        "relay RSS per idle connection",
        ours,
        "target 64 KiB",
        64.0 * 1024.0,
        "B",
        true,
    );
    Ok(())
}

async fn typists(b: &mut Bench) -> anyhow::Result<()> {
    let (keystrokes, seconds) = (5.0, b.sizes.typing_seconds);
    eprintln!("typists: N peers typing {keystrokes}/s each into one text for {seconds} s");
    let largest = |p99s: &[(usize, f64)]| {
        p99s.iter()
            .take_while(|(_, p99)| *p99 < 250.0)
            .map(|(n, _)| *n as f64)
            .fold(0.0, f64::max)
    };
    let mut ours_p99 = Vec::new();
    for &n in &b.sizes.typists {
        let (_relay, addr, _dir) = fresh_relay()?;
        let (mut l, expected) = ours::typists(&addr, n, keystrokes, seconds).await?;
        let p99 = if l.len() < expected {
            f64::INFINITY
        } else {
            l.percentile_ms(99.0)
        };
        eprintln!("  synkro {n}: p99 {p99:.0} ms ({}/{expected})", l.len());
        ours_p99.push((n, p99));
        if p99 >= 250.0 {
            break;
        }
    }
    let mut their_p99 = Vec::new();
    for &n in &b.sizes.typists {
        let server = peer::Server::start()?;
        let r = peer::run(
            &server,
            "typists",
            json!({ "typists": n, "keystrokes": keystrokes, "seconds": seconds }),
            None,
        )?;
        let complete = peer::num(&r, "count") >= peer::num(&r, "expected");
        let p99 = if complete {
            peer::num(&r, "p99_ms")
        } else {
            f64::INFINITY
        };
        eprintln!("  {AMR} {n}: p99 {p99:.0} ms");
        their_p99.push((n, p99));
        if p99 >= 250.0 {
            break;
        }
    }
    let top = b.sizes.typists.last().copied().unwrap_or_default() as f64;
    let note = |x: f64| if x >= top { " (the most tried)" } else { "" };
    let (o, t) = (largest(&ours_p99), largest(&their_p99));
    b.row(
        "8 typists",
        format!("most typists with p99 < 250 ms{}", note(o)),
        o,
        format!("{AMR}{}", note(t)),
        t,
        "",
        false,
    );
    Ok(())
}

fn gzip_len(path: &std::path::Path) -> anyhow::Result<(f64, f64)> {
    use std::io::Write;
    let raw =
        std::fs::read(path).with_context(|| format!("{} (build it with scripts/build-wasm.sh)", path.display()))?;
    let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    z.write_all(&raw)?;
    Ok((raw.len() as f64, z.finish()?.len() as f64))
}

fn wasm(b: &mut Bench) -> anyhow::Result<()> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let ours = root.join("bindings/wasm/pkg/synkro_wasm_bg.wasm");
    if !ours.exists() {
        eprintln!(
            "wasm: {} not built; skipped (scripts/build-wasm.sh builds it)",
            ours.display()
        );
        return Ok(());
    }
    let theirs =
        peer::dir().join("node_modules/@automerge/automerge/dist/mjs/wasm_bindgen_output/web/automerge_wasm_bg.wasm");
    let (o_raw, o_gz) = gzip_len(&ours)?;
    let (t_raw, t_gz) = gzip_len(&theirs)?;
    b.row(
        "7 wasm",
        "gzip size (synkro: Automerge + crypto + libp2p)",
        o_gz,
        "@automerge/automerge alone",
        t_gz,
        "B",
        true,
    );
    b.row(
        "7 wasm",
        "raw size",
        o_raw,
        "@automerge/automerge alone",
        t_raw,
        "B",
        true,
    );
    Ok(())
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .next()
                .map(|l| l.split_whitespace().nth(1).unwrap_or("0").to_owned())
        })
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or_else(String::new, |kb| format!(", {:.1} GiB RAM", kb / 1024.0 / 1024.0));
    let node = std::process::Command::new("node")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    format!("{cpu}, {cores} cores{mem}; Node {node}")
}

fn document(rows: &[Row], quick: bool, took: Duration) -> String {
    format!(
        "# Benchmarks\n\n\
         synkro side by side with automerge-repo 2.5.6 (its WebSocket sync server with Node file storage, \
         and its WebSocket clients) and with Automerge's own limits, on the same workloads over loopback, \
         in the same run on the same machine. Ratios are the result: synkro ÷ the other. Below 1 is better \
         for times and sizes, above 1 for rates and counts of typists.\n\n\
         Machine: {}. Mode: {}; the run took {:.0} s.\n\n\
         Reproduce: `scripts/bench.sh` (full) or `scripts/bench.sh --quick`.\n\n\
         {}\n\
         ## The workloads\n\n\
         Both sides run the same topology: writer and reader clients in one process each (synkro: Rust repos \
         over libp2p WebSocket; automerge-repo: Node clients) and one server process (`synkro-relay`, a blind \
         replica that stores sealed chunks durably with fsync; automerge-repo's sync server, which stores \
         plaintext without fsync).\n\n\
         1. Latency: one writer changes 100 documents at 1,000 changes/s in total; one reader follows all of \
         them through the server. Each change sets a counter; the reader times every counter value from the \
         writer's change to its own change event. automerge-repo is shown with its default 100 ms sync \
         throttle and with it lowered to 10 ms; synkro seals edits every 50 ms (its flush window).\n\
         2. Throughput: 2 writers, 2 readers, 20 documents; the rate rises until p99 passes 1 s, a change is \
         lost or the writers fall behind. The highest rate that held is reported.\n\
         3. Large document: a seeded editing trace shaped like the automerge-perf paper trace (one change per \
         keystroke, 70 % insertions, cursor moving locally) is loaded by the writer, stored on the server and \
         fetched by a fresh client; compared with Automerge's `load()` of the same bytes.\n\
         4. Many documents: a fresh device gets N small documents through the server (first sync); its repo \
         is reopened from disk (cold open); then it reconnects with nothing changed (messages, bytes and \
         time until the last message; automerge-repo's bytes are message payloads).\n\
         5. Footprint: server RSS per idle client connection and per stored document.\n\
         6. Encryption overhead: synkro's throughput ramp (scenario 2) against the same ramp in a \
         benchmark-only build (`insecure-unsealed-benchmark`) whose chunks are neither encrypted nor signed, \
         relay included; also p99 at the highest rate both held (where queueing magnifies small costs), \
         and the CPU time the peers and the relay spent per 1,000 changes over the rates both held (the \
         work sealing adds).\n\
         7. wasm: gzip size of the npm package's wasm against `@automerge/automerge`'s own; and scenario 1 \
         with peer B in a page of headless Chromium (the npm package over WebSocket, \
         `tests/browser/bench-reader.mjs`), against the native peer B of the same run.\n\
         8. Typists: N clients type 5 keystrokes/s each into one text; the largest N whose p99 stays under \
         250 ms.\n",
        machine(),
        if quick {
            "quick (small workloads, noisy)"
        } else {
            "full"
        },
        took.as_secs_f64(),
        report::markdown(rows),
    )
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let sizes = Sizes::new(args.quick);
    if args.ramp_only {
        println!("{}", serde_json::to_string(&ramp(&sizes).await?)?);
        return Ok(());
    }
    let mut b = Bench {
        args,
        sizes,
        rows: Vec::new(),
        sealed_ramp: None,
    };
    let start = Instant::now();
    if cfg!(debug_assertions) {
        eprintln!(
            "note: an unoptimized build (CI reuses its test build): synkro's own code runs far slower than \
             released; use scripts/bench.sh for figures"
        );
    }
    println!("{}", report::markdown(&[]).trim_end());
    if b.wants("latency") {
        latency(&mut b).await?;
    }
    if b.wants("throughput") {
        throughput(&mut b).await?;
    }
    if b.wants("encryption") {
        encryption(&mut b).await?;
    }
    if b.wants("large") {
        large(&mut b).await?;
    }
    if b.wants("many") {
        many(&mut b).await?;
    }
    if b.wants("idle") {
        idle(&mut b).await?;
    }
    if b.wants("typists") {
        typists(&mut b).await?;
    }
    if b.wants("wasm") {
        wasm(&mut b)?;
    }
    let took = start.elapsed();
    eprintln!("\n{}", report::markdown(&b.rows));
    if let Some(path) = &b.args.write {
        std::fs::write(path, document(&b.rows, b.args.quick, took))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}
