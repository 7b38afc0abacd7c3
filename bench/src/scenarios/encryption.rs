//! Scenario 6: what sealing (encryption and signatures) costs.

use anyhow::Context;

use super::throughput::{ceiling_note, ramp, sustained};
use crate::{Bench, Step};

/// Scenario 6: the throughput ramp of this build against the same ramp in
/// the build with sealing switched off (`--unsealed`), run as a child
/// process so that each side uses its own relay binary.
pub(crate) async fn encryption(b: &mut Bench) -> anyhow::Result<()> {
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
