//! Scenario 10: the npm package's document API in a page of headless
//! Chromium (`tests/browser/bench-api.mjs`): a keystroke by `change(fn)`,
//! by the path method and by `@automerge/automerge`'s own `change` in the
//! same page; `doc()` on a document of 10,000 elements; and the gzip size
//! of the package's JavaScript and of its React entry.

use std::process::Command;
use std::time::Duration;

use anyhow::Context;
use serde_json::{Value, json};
use synkro_tests::Process;

use crate::scenarios::wasm::gzip_len;
use crate::{Bench, browser, peer};

const KEYSTROKES: usize = 2_000;
const ELEMENTS: usize = 10_000;

pub(crate) async fn api(b: &mut Bench) -> anyhow::Result<()> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    sizes(b, &root)?;
    if let Some(why) = browser::missing() {
        eprintln!("api: {why}; the page half skipped");
        return Ok(());
    }
    let (relay, _addr, _dir) = browser::relay_with_page()?;
    let automerge = peer::dir().join("node_modules/@automerge/automerge/dist/iife/iife.js");
    let params = json!({
        "page": format!("http://{}/index.html", relay.http),
        "automerge": automerge,
        "keystrokes": KEYSTROKES,
        "elements": ELEMENTS,
    });
    eprintln!("api: {KEYSTROKES} keystrokes three ways, doc() on {ELEMENTS} elements, in Chromium");
    let mut cmd = Command::new("node");
    cmd.current_dir(root.join("tests/browser"))
        .arg("bench-api.mjs")
        .arg(params.to_string());
    let mut page =
        Process::start(cmd, Duration::from_secs(600), browser::has_result).context("the API benchmark page")?;
    let r = browser::page_result(&mut page, Duration::ZERO)?;
    let num = |k: &str| r[k].as_f64().unwrap_or(f64::NAN);
    let s = "10 JS API";
    b.row(
        s,
        "per keystroke, `change(fn)` with `splice()`",
        num("changeFn"),
        "the path method `splice(path, …)`",
        num("pathCall"),
        "ms",
        true,
    );
    b.row(
        s,
        "per keystroke, `change(fn)` with `splice()`",
        num("changeFn"),
        "@automerge/automerge `change` + `splice` in the same page",
        num("automerge"),
        "ms",
        true,
    );
    b.row(
        s,
        format!("`doc()`, first call, {ELEMENTS}-element document"),
        num("firstMs"),
        "`value()` (the whole document as JSON)",
        num("valueMs"),
        "ms",
        true,
    );
    b.row(
        s,
        format!("`doc()`, first call, {ELEMENTS}-element document"),
        num("firstMs"),
        "@automerge/automerge `toJS`",
        num("toJsMs"),
        "ms",
        true,
    );
    b.row(
        s,
        "`doc()` when nothing changed",
        num("unchangedMs"),
        "`value()`",
        num("valueMs"),
        "ms",
        true,
    );
    b.row(
        s,
        format!("change one element + `doc()`, {ELEMENTS}-element document"),
        num("changeAndDocMs"),
        "@automerge/automerge `change` of one element",
        num("automergeChangeMs"),
        "ms",
        true,
    );
    b.row(
        s,
        "tabs: an edit in a guest tab → another guest tab (through the holding tab), p50",
        num("tabGuestP50"),
        "an edit in the holding tab → a guest tab, p50",
        num("tabHostP50"),
        "ms",
        true,
    );
    b.row(
        s,
        "tabs: an edit in a guest tab → another guest tab, p99",
        num("tabGuestP99"),
        "an edit in the holding tab → a guest tab, p99",
        num("tabHostP99"),
        "ms",
        true,
    );
    b.row(
        s,
        "tabs: a guest holds the repo after the holding tab closes",
        num("takeOverMs"),
        "the limit",
        1000.0,
        "ms",
        true,
    );
    if r["shared"] != Value::Bool(true) {
        eprintln!("api: the snapshot after a change did not share an untouched element");
    }
    Ok(())
}

/// The package's own JavaScript (over its wasm glue) and its React entry,
/// against Automerge's JavaScript layer and automerge-repo's React hooks.
fn sizes(b: &mut Bench, root: &std::path::Path) -> anyhow::Result<()> {
    let js = root.join("bindings/wasm/js");
    let ours = gzip_of(&["index.js", "draft.js", "snapshot.js", "tabs.js"].map(|f| js.join(f)))?;
    let react = gzip_of(&[js.join("react.js")])?;
    let mjs = peer::dir().join("node_modules/@automerge/automerge/dist/mjs");
    let layer: Vec<_> = std::fs::read_dir(&mjs)
        .with_context(|| format!("{} (scripts/bench.sh installs it)", mjs.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "js"))
        .collect();
    let theirs = gzip_of(&layer)?;
    let hooks = gzip_of(&[peer::dir().join("node_modules/@automerge/automerge-repo-react-hooks/dist/index.js")])?;
    let s = "10 JS API";
    b.row(
        s,
        "gzip size of the JS wrapper (index, draft, snapshot, tabs)",
        ours,
        "@automerge/automerge's JS layer (dist/mjs/*.js)",
        theirs,
        "B",
        true,
    );
    b.row(
        s,
        "gzip size of the React entry (`synkro/react`)",
        react,
        "@automerge/automerge-repo-react-hooks 2.5.6",
        hooks,
        "B",
        true,
    );
    Ok(())
}

/// Gzip size of the files concatenated (one download's worth).
fn gzip_of(files: &[std::path::PathBuf]) -> anyhow::Result<f64> {
    let dir = tempfile::tempdir()?;
    let all = dir.path().join("all.js");
    let mut bytes = Vec::new();
    for f in files {
        bytes.extend(std::fs::read(f).with_context(|| f.display().to_string())?);
    }
    std::fs::write(&all, bytes)?;
    Ok(gzip_len(&all)?.1)
}
