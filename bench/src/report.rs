//! The result table: one row per metric, synkro against a peer or a limit
//! measured in the same run, and their ratio.

use std::fmt::Write as _;

/// One measured metric.
pub struct Row {
    pub scenario: &'static str,
    pub metric: String,
    pub synkro: f64,
    /// What synkro is compared with: automerge-repo, or a limit.
    pub against: f64,
    pub against_what: String,
    pub unit: &'static str,
    /// Smaller is better (times, bytes) or larger is better (rates).
    pub lower_is_better: bool,
}

impl Row {
    /// synkro / peer: below 1 means synkro is faster or smaller (for rates:
    /// above 1 means synkro sustains more).
    pub fn ratio(&self) -> Option<f64> {
        (self.against > 0.0 && self.synkro.is_finite() && self.against.is_finite()).then(|| self.synkro / self.against)
    }

    fn verdict(&self) -> &'static str {
        if self.metric.starts_with("automerge-repo") {
            return ""; // the peer against its own limit
        }
        match self.ratio() {
            None => "",
            Some(r) if (r < 1.0) == self.lower_is_better => "synkro better",
            Some(_) => "synkro worse",
        }
    }
}

fn number(v: f64, unit: &str) -> String {
    if !v.is_finite() {
        return "n/a".into();
    }
    match unit {
        "B" if v >= 1024.0 * 1024.0 => format!("{:.2} MiB", v / 1024.0 / 1024.0),
        "B" if v >= 1024.0 => format!("{:.1} KiB", v / 1024.0),
        _ if v >= 100.0 => format!("{v:.0} {unit}"),
        _ if v >= 10.0 => format!("{v:.1} {unit}"),
        _ => format!("{v:.2} {unit}"),
    }
    .trim_end()
    .to_owned()
}

/// The table as Markdown (also readable in a terminal).
pub fn markdown(rows: &[Row]) -> String {
    let mut out = String::from(
        "| scenario | metric | synkro | compared with | value | ratio | |\n|---|---|---:|---|---:|---:|---|\n",
    );
    for r in rows {
        let ratio = r.ratio().map_or_else(|| "n/a".into(), |x| format!("{x:.2}×"));
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} |",
            r.scenario,
            r.metric,
            number(r.synkro, r.unit),
            r.against_what,
            number(r.against, r.unit),
            ratio,
            r.verdict()
        );
    }
    out
}
