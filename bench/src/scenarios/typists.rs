//! Scenario 8: how many people can type into one text.

use serde_json::json;

use crate::{AMR, Bench, fresh_relay, ours, peer};

pub(crate) async fn typists(b: &mut Bench) -> anyhow::Result<()> {
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
