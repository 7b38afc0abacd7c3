//! Scenario 7's size half: the npm package's wasm against Automerge's.

use anyhow::Context;

use crate::{Bench, peer};

pub(crate) fn gzip_len(path: &std::path::Path) -> anyhow::Result<(f64, f64)> {
    use std::io::Write;
    let raw =
        std::fs::read(path).with_context(|| format!("{} (build it with scripts/build-wasm.sh)", path.display()))?;
    let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    z.write_all(&raw)?;
    Ok((raw.len() as f64, z.finish()?.len() as f64))
}

pub(crate) fn wasm(b: &mut Bench) -> anyhow::Result<()> {
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
