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
mod scenarios;
mod trace;

use std::time::{Duration, Instant};

use clap::Parser;
use synkro::net::Multiaddr;
use synkro_tests::Relay;

use report::Row;
use scenarios::{api, blobs, cluster, encryption, home, idle, large, latency, many, throughput, typists, wasm};

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
    /// Run this command and print its exit code and peak RSS in bytes (the
    /// home scenario's measuring process: a child spawned by a small
    /// process does not inherit the benchmark's own peak in its figure).
    /// Keep the home scenario's homes in this directory and reuse them on
    /// the next run (for profiling the opening).
    #[arg(long)]
    homes: Option<std::path::PathBuf>,
    /// Numbers of documents for scenario 4, in place of the run's own
    /// (1,000 and 10,000; 500 in quick mode), e.g. `--many-docs 10000,100000`
    /// to see how the first sync grows.
    #[arg(long, value_delimiter = ',')]
    many_docs: Vec<usize>,
    #[arg(long, hide = true, num_args = 1.., allow_hyphen_values = true)]
    rss_of: Vec<std::ffi::OsString>,
}

/// Workload sizes of a run.
struct Sizes {
    seconds: f64,
    rates: Vec<f64>,
    step_seconds: f64,
    trace_ops: usize,
    many_docs: Vec<usize>,
    home_docs: usize,
    idle_connections: usize,
    typists: Vec<usize>,
    typing_seconds: f64,
    /// Size of the file attached in scenario 11, in MiB.
    blob_mib: usize,
}

impl Sizes {
    fn new(quick: bool) -> Self {
        if quick {
            Self {
                seconds: 5.0,
                rates: vec![100.0, 250.0, 500.0, 1000.0, 2000.0],
                step_seconds: 2.0,
                trace_ops: 10_000,
                many_docs: vec![500],
                home_docs: 10_000,
                idle_connections: 100,
                typists: vec![2, 4, 8],
                typing_seconds: 3.0,
                blob_mib: 64,
            }
        } else {
            Self {
                seconds: 30.0,
                rates: vec![100.0, 250.0, 500.0, 1000.0, 2000.0, 4000.0, 8000.0, 16000.0, 32000.0],
                step_seconds: 10.0,
                trace_ops: 260_000,
                many_docs: vec![1_000, 10_000],
                home_docs: 100_000,
                idle_connections: 1_000,
                typists: vec![2, 4, 8, 16, 24, 32, 48, 64],
                typing_seconds: 10.0,
                blob_mib: 1024,
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

/// What the workloads are, under the table (kept in step with the code).
const WORKLOADS: &str = r#"## The workloads

Both sides run the same topology: writer and reader clients in one process each (synkro: Rust repos over libp2p WebSocket; automerge-repo: Node clients) and one server process (`synkro-relay`, a blind replica that stores sealed chunks durably with fsync; automerge-repo's sync server, which stores plaintext without fsync).

1. Latency: one writer changes 100 documents at 1,000 changes/s in total; one reader follows all of them through the server. Each change sets a counter; the reader times every counter value from the writer's change to its own change event. automerge-repo is shown with its default 100 ms sync throttle and with it lowered to 10 ms; synkro seals an edit at once when its document was not sealed in the last 50 ms (its flush window), otherwise 50 ms later with the edits made meanwhile. At rest: one document changed every 200 ms, nothing pending when a change is made (native reader, and the page as reader in scenario 7), against automerge-repo and the 10 ms (native) and 25 ms (page) targets.
2. Throughput: 2 writers, 2 readers, 20 documents; the rate rises until p99 passes 1 s, a change is lost or the writers fall behind. The highest rate that held is reported.
3. Large document: a seeded editing trace shaped like the automerge-perf paper trace (one change per keystroke, 70 % insertions, cursor moving locally) is loaded by the writer, stored on the server and fetched by a fresh client; compared with Automerge's `load()` of the same bytes. Also: the bytes synkro stores for the trace in three rhythms against Automerge's save; remote keystrokes on the long document against a 1 KB one, natively and in a page; and the page joining the long document (`tests/browser/bench-large.mjs`).
4. Many documents: a fresh device gets N small documents through the server (first sync; N = 1,000 and 10,000, 500 in quick mode, or `--many-docs`; with several N, how the first sync grows against linear + 10 %); its repo is reopened from disk (cold open); then it reconnects with nothing changed (messages, bytes and time until the last message; automerge-repo's bytes are message payloads). Opening at scale (`--only home`): a home of 100,000 documents (10,000 in quick mode) with a title each, closed cleanly, is opened by an app that reads one document (in process, best of 5) and by `synkro get DOC title` (release CLI, best of 5), whose peak RSS is compared with the same command in a home of 100 documents.
5. Footprint: server RSS per idle client connection (1,000 connections, each with its sync session) and per stored document.
6. Encryption overhead: scenario 2 against a benchmark-only build (`insecure-unsealed-benchmark`) whose chunks are neither encrypted nor signed, relay included; also p99 at the highest rate both held (where queueing magnifies small costs), and the CPU time the peers and the relay spent per 1,000 changes over the rates both held (the work sealing adds).
7. wasm: gzip size of the npm package's wasm against `@automerge/automerge`'s own; and scenario 1 with reader B in a page of headless Chromium (the npm package over WebSocket, `tests/browser/bench-reader.mjs`), against the native reader B of the same run. Its rows count only the changes that arrived before the run's end + 15 s (see the note below the table).
8. Typists: N clients type 5 keystrokes/s each into one text; the largest N whose p99 stays under 250 ms.
9. Cluster: scenario 1's flow with the writer and the reader on two relays of a NATS JetStream cluster (`--cluster`; 3 NATS servers at R3, 1 in quick mode), against both on one relay of the cluster, and that against one relay on local files; the CPU the two relays and the NATS servers spend per 1,000 changes of the cross-relay run; and failover: a member that knows two relays of the cluster has its relay killed (SIGKILL) 20 times (3 in quick mode), the time from the kill to its next edit being durable on the other, against the 2 s target.
10. JS API: in a page of headless Chromium (`tests/browser/bench-api.mjs`), a keystroke (one character appended to a text, 2,000 times) by `change(fn)` with `splice()`, by the path method and by `@automerge/automerge`'s `change` in the same page (the main-thread cost of the call; synkro seals, stores and sends after it); `doc()` on a document of 10,000 small maps the first time, when nothing changed, and after one element changed, against `value()` and Automerge's `toJS`; three tabs of one profile sharing a repo (100 edits 20 ms apart from a guest tab seen in another guest tab, against the same from the holding tab; how long after the holding tab closes a guest holds the repo, against 1 s); and the gzip size of the package's JavaScript and of its React entry against Automerge's JavaScript layer and automerge-repo's React hooks.
11. Blobs: a file of 1 GiB (64 MiB in quick mode) attached to a document on one device and read back to a file (its own store, no network), against copying the same file with `std::fs::copy` and an fsync; the process's resident memory above its level before (sampled every 5 ms, limit 64 MiB); and the bytes stored anew when the file is attached again with one byte changed in the middle (limit 1 MiB).
"#;

/// The line after which `--write` keeps what the file already holds: notes
/// on earlier runs, profiles, probes that are not part of this table.
const KEPT_BELOW: &str =
    "<!-- Notes below are written by hand; `synkro-bench --write` keeps everything after this line. -->";

/// The benchmark document: this run's table and how to reproduce it, then
/// the hand-written notes of `previous` (the file being replaced) if any.
fn document(rows: &[Row], quick: bool, took: Duration, previous: Option<&str>) -> String {
    let kept = previous
        .and_then(|p| p.find(KEPT_BELOW).map(|i| &p[i..]))
        .map_or_else(|| format!("{KEPT_BELOW}\n"), str::to_owned);
    format!(
        "# Benchmarks\n\n\
         synkro side by side with automerge-repo 2.5.6 (its WebSocket sync server with Node file storage, \
         and its WebSocket clients) and with Automerge's own limits, on the same workloads over loopback, \
         in the same run on the same machine. Ratios are the result: synkro ÷ the other. Below 1 is better \
         for times and sizes, above 1 for rates and counts of typists.\n\n\
         Machine: {}. Mode: {}; the run took {:.0} s.\n\n\
         Reproduce: `scripts/bench.sh` (full) or `scripts/bench.sh --quick`.\n\n\
         {}\n{WORKLOADS}\n{kept}",
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
    // The repos of this process (the peers under test) report their
    // warnings, as the relay processes do, on stderr.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .init();
    let mut sizes = Sizes::new(args.quick);
    if !args.many_docs.is_empty() {
        sizes.many_docs.clone_from(&args.many_docs);
    }
    if let [program, rest @ ..] = args.rss_of.as_slice() {
        let (code, rss) = home::run_with_rss(std::process::Command::new(program).args(rest))?;
        println!("{code} {rss}");
        return Ok(());
    }
    if args.ramp_only {
        println!("{}", serde_json::to_string(&throughput::ramp(&sizes).await?)?);
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
        latency::latency(&mut b).await?;
    }
    if b.wants("throughput") {
        throughput::throughput(&mut b).await?;
    }
    if b.wants("encryption") {
        encryption::encryption(&mut b).await?;
    }
    if b.wants("large") {
        large::large(&mut b).await?;
    }
    if b.wants("many") {
        many::many(&mut b).await?;
    }
    if b.wants("home") {
        home::home(&mut b).await?;
    }
    if b.wants("idle") {
        idle::idle(&mut b).await?;
    }
    if b.wants("typists") {
        typists::typists(&mut b).await?;
    }
    if b.wants("wasm") {
        wasm::wasm(&mut b)?;
    }
    if b.wants("cluster") {
        cluster::cluster(&mut b).await?;
    }
    if b.wants("api") {
        api::api(&mut b).await?;
    }
    if b.wants("blobs") {
        blobs::blobs(&mut b).await?;
    }
    let took = start.elapsed();
    eprintln!("\n{}", report::markdown(&b.rows));
    if let Some(path) = &b.args.write {
        let previous = std::fs::read_to_string(path).ok();
        std::fs::write(path, document(&b.rows, b.args.quick, took, previous.as_deref()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writing_keeps_the_hand_written_notes_and_replaces_the_rest() {
        let old_table = "| 1 latency | p50 | 1 ms |";
        let previous = format!("# Benchmarks\n\n{old_table}\n\n{KEPT_BELOW}\n\n## Notes\n\nA probe.\n");
        let new = document(&[], true, Duration::from_secs(3), Some(&previous));
        assert!(!new.contains(old_table));
        assert!(new.contains("## The workloads"));
        assert!(
            new.ends_with(&format!("{KEPT_BELOW}\n\n## Notes\n\nA probe.\n")),
            "{new}"
        );
        // A first run (or a file without the line) starts the notes empty.
        let fresh = document(&[], true, Duration::from_secs(3), None);
        assert!(fresh.ends_with(&format!("{KEPT_BELOW}\n")));
    }
}
