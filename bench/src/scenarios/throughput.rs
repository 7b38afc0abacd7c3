//! Scenario 2: the highest rate of changes that holds, up a ramp.

use anyhow::Context;
use serde_json::json;

use crate::{AMR, Bench, Sizes, Step, fresh_relay, ours, peer};

pub(crate) const THROUGHPUT_DOCS: usize = 20;

/// The highest rate whose step kept p99 under 1 s with every change delivered.
pub(crate) fn sustained(steps: &[Step]) -> f64 {
    steps
        .iter()
        .take_while(|(_, p99, ok, _)| *ok && *p99 <= 1000.0)
        .map(|(rate, ..)| *rate)
        .fold(0.0, f64::max)
}

/// Says so when a ramp held up to its last rate (the true ceiling is higher).
pub(crate) fn ceiling_note(sizes: &Sizes, steps: &[Step]) -> &'static str {
    let top = sizes.rates.last().copied().unwrap_or_default();
    if sustained(steps) >= top {
        " (the highest rate tried)"
    } else {
        ""
    }
}

/// CPU time (user + system) a process has used so far, from `/proc` (Linux).
pub(crate) fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = procfs::process::Process::new(i32::try_from(pid)?)?.stat()?;
    Ok((stat.utime + stat.stime) as f64 / procfs::ticks_per_second() as f64)
}

/// synkro's throughput ramp (2 writers, 2 readers, one fresh relay), up to
/// the first rate that misses.
pub(crate) async fn ramp(sizes: &Sizes) -> anyhow::Result<Vec<Step>> {
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

pub(crate) async fn throughput(b: &mut Bench) -> anyhow::Result<()> {
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
