//! The peer: automerge-repo's sync server and clients (Node, in
//! `bench/automerge-repo/`), run on the same workloads.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::Value;
use synkro_tests::Process;

/// Where `bench.mjs` and its `node_modules` live.
pub fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("automerge-repo")
}

/// An automerge-repo sync server process on 127.0.0.1.
pub struct Server {
    process: Process,
    pub url: String,
    _data: tempfile::TempDir,
}

impl Server {
    pub fn start() -> anyhow::Result<Self> {
        let data = tempfile::tempdir()?;
        let mut cmd = Command::new("node");
        cmd.current_dir(dir()).arg("bench.mjs").arg("server").arg(data.path());
        let mut process = Process::start(cmd, Duration::from_secs(30), |lines| {
            lines.iter().any(|l| l.starts_with("listening "))
        })
        .context("starting automerge-repo's sync server (run scripts/bench.sh, which installs it)")?;
        let port = process.line_after("listening ").context("port line")?;
        Ok(Self {
            process,
            url: format!("ws://127.0.0.1:{port}"),
            _data: data,
        })
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }
}

/// Run `scenario` of `bench.mjs` with `params` (plus the server's url and
/// pid); `throttle_ms` lowers automerge-repo's sync throttle.
pub fn run(server: &Server, scenario: &str, mut params: Value, throttle_ms: Option<u64>) -> anyhow::Result<Value> {
    params["url"] = server.url.clone().into();
    params["serverPid"] = server.pid().into();
    let mut cmd = Command::new("node");
    cmd.current_dir(dir())
        .arg("bench.mjs")
        .arg(scenario)
        .arg(params.to_string());
    if let Some(ms) = throttle_ms {
        cmd.env("AMR_SYNC_THROTTLE_MS", ms.to_string());
    }
    let out = cmd.output().context("running node")?;
    if !out.status.success() {
        bail!(
            "automerge-repo {scenario} failed: {}",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .take(20)
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().context("no result line")?;
    serde_json::from_str(last).with_context(|| format!("result line {last:?}"))
}

/// [`run`], where automerge-repo failing the workload is a result rather
/// than the end of the benchmark: the failure is printed, its figures read
/// n/a, and the label to compare with says it did not finish.
pub fn run_or_report(server: &Server, scenario: &str, params: Value) -> (Value, String) {
    match run(server, scenario, params, None) {
        Ok(v) => (v, "automerge-repo".into()),
        Err(e) => {
            let first = e.to_string();
            let reason = first.lines().find(|l| l.starts_with("Error: ")).unwrap_or("failed");
            eprintln!("{scenario}: {e:#}");
            (
                Value::Null,
                format!(
                    "automerge-repo (did not finish: {})",
                    reason.trim_start_matches("Error: ")
                ),
            )
        }
    }
}

/// A number field of a result.
pub fn num(v: &Value, key: &str) -> f64 {
    v[key].as_f64().unwrap_or(f64::NAN)
}
