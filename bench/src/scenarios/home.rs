//! Scenario 4's opening half at scale: a home of many documents opened by
//! an app that reads one of them, and by one command-line call, with the
//! command's peak memory against a home of 100 documents.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::{StreamExt, TryStreamExt};
use serde_json::json;
use synkro::{DocId, Repo};

use crate::{Bench, ms};

/// The small home the large one's memory is compared with.
const SMALL: usize = 100;
/// Each timing is the best of this many runs (the machine is shared).
const RUNS: usize = 5;

pub(crate) async fn home(b: &mut Bench) -> anyhow::Result<()> {
    let docs = b.sizes.home_docs;
    eprintln!("home: opening homes of {SMALL} and {docs} documents");
    let temp = tempfile::tempdir()?;
    let dir = b.args.homes.clone().unwrap_or_else(|| temp.path().to_owned());
    let (small, large) = (dir.join(format!("home-{SMALL}")), dir.join(format!("home-{docs}")));
    let small_doc = fill(&small, SMALL).await?;
    let large_doc = fill(&large, docs).await?;

    let mut open = Duration::MAX;
    for _ in 0..RUNS {
        open = open.min(open_and_read(&large, &large_doc).await?);
    }
    b.row(
        "4 many docs",
        format!("open a home of {docs} docs and read one (in process)"),
        ms(open),
        "target 50 ms",
        50.0,
        "ms",
        true,
    );

    let (small_time, small_rss) = cli_get(&small, &small_doc)?;
    let (large_time, large_rss) = cli_get(&large, &large_doc)?;
    b.row(
        "4 many docs",
        format!("`synkro get DOC title` in a home of {docs} docs"),
        ms(large_time),
        "target 100 ms",
        100.0,
        "ms",
        true,
    );
    b.row(
        "4 many docs",
        format!("`synkro get` peak RSS, home of {docs} docs"),
        large_rss as f64,
        format!(
            "home of {SMALL} docs ({} ms); target: within 10 MiB",
            ms(small_time).round()
        ),
        small_rss as f64,
        "B",
        true,
    );
    Ok(())
}

/// A home of `docs` documents with a title each, closed cleanly (or kept
/// from an earlier run with `--homes`); returns the first one's id.
async fn fill(home: &Path, docs: usize) -> anyhow::Result<DocId> {
    let marker = home.join("bench-first-doc");
    if let Ok(id) = std::fs::read_to_string(&marker) {
        return Ok(id.trim().parse()?);
    }
    let start = Instant::now();
    let repo = Repo::open(home).await?;
    let ids: Vec<DocId> = futures::stream::iter(0..docs)
        .map(|i| {
            let repo = repo.clone();
            async move {
                let doc = repo.create().await?;
                doc.set("title", &json!(format!("note {i}")))?;
                anyhow::Ok(doc.id())
            }
        })
        .buffer_unordered(64)
        .try_collect()
        .await?;
    repo.close().await?;
    let first = ids.into_iter().min().context("no document written")?;
    std::fs::write(marker, first.to_string())?;
    eprintln!("home: wrote {docs} documents in {:.1} s", start.elapsed().as_secs_f64());
    Ok(first)
}

/// Open `home` in this process and read `doc`'s title.
async fn open_and_read(home: &Path, doc: &DocId) -> anyhow::Result<Duration> {
    let start = Instant::now();
    let repo = Repo::open(home).await?;
    if repo.find(doc).await?.get("title")?.is_none() {
        bail!("the document came back without its title");
    }
    let took = start.elapsed();
    repo.close().await?;
    Ok(took)
}

/// The best time of `synkro get DOC title` in `home`, and the largest peak
/// RSS (bytes) of those runs.
fn cli_get(home: &Path, doc: &DocId) -> anyhow::Result<(Duration, u64)> {
    let (mut best, mut peak) = (Duration::MAX, 0);
    for _ in 0..RUNS {
        let start = Instant::now();
        let out = Command::new(std::env::current_exe()?)
            .arg("--rss-of")
            .arg(synkro_tests::bin("synkro"))
            .arg("--home")
            .arg(home)
            .args(["get", &doc.to_string(), "title"])
            .output()?;
        best = best.min(start.elapsed());
        let report = String::from_utf8_lossy(&out.stdout);
        match report.split_whitespace().collect::<Vec<_>>().as_slice() {
            ["0", rss] => peak = peak.max(rss.parse()?),
            _ => bail!("synkro get failed in {}: {report}", home.display()),
        }
    }
    Ok((best, peak))
}

/// Run `command` (output discarded); its exit code and peak RSS in bytes.
pub(crate) fn run_with_rss(command: &mut Command) -> anyhow::Result<(i32, u64)> {
    let child = command.stdout(std::process::Stdio::null()).spawn()?;
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: `usage` is plain data that wait4 fills in; `pid` is our own
    // child, not waited for elsewhere.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::wait4(pid, &mut status, 0, &mut usage) } != pid {
        bail!("wait4: {}", std::io::Error::last_os_error());
    }
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    Ok((code, usage.ru_maxrss as u64 * 1024))
}
