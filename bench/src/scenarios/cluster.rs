//! Scenario 9: relays over NATS JetStream. Scenario 1's flow (A → relay →
//! B) with A and B on two relays of a cluster, against both on one relay of
//! the same cluster and against one relay on local files; the CPU the
//! relays and NATS spend per 1,000 changes; and failover: a member's relay
//! killed, again and again, and how long until its next edit is durable on
//! another.

use std::time::{Duration, Instant};

use serde_json::json;
use synkro::Repo;
use synkro::net::{Multiaddr, NetConfig};
use synkro_tests::{Nats, Relay};

use crate::scenarios::throughput::cpu_seconds;
use crate::{Bench, Latencies, fresh_relay, ours};

pub(crate) async fn cluster(b: &mut Bench) -> anyhow::Result<()> {
    if std::process::Command::new("nats-server")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("cluster: nats-server not found (scripts/setup.sh installs it); skipped");
        return Ok(());
    }
    let servers = if b.args.quick { 1 } else { 3 };
    let (docs, rate, seconds) = (100, 1000.0, b.sizes.seconds);
    eprintln!("cluster: {rate} changes/s over {docs} docs for {seconds} s; {servers} NATS server(s), 2 relays");

    let (file_relay, addr, _dir) = fresh_relay()?;
    let cpu_before = cpu_seconds(file_relay.process.pid())?;
    let mut files = ours::flow(&addr, 1, 1, docs, rate, seconds).await?;
    let file_cpu = per_thousand(cpu_seconds(file_relay.process.pid())? - cpu_before, files.expected);
    drop(file_relay);

    let nats = Nats::start(servers)?;
    let (d1, d2) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let mut r1 = Relay::start(d1.path(), &["--cluster", &nats.urls()])?;
    let mut r2 = Relay::start(d2.path(), &["--cluster", &nats.urls()])?;
    let (a1, a2) = (r1.addr("/ws/").parse()?, r2.addr("/ws/").parse()?);
    let mut same = ours::flow(&a1, 1, 1, docs, rate, seconds).await?;

    let relays_cpu = || -> anyhow::Result<f64> { Ok(cpu_seconds(r1.process.pid())? + cpu_seconds(r2.process.pid())?) };
    let nats_cpu = || -> anyhow::Result<f64> {
        let mut total = 0.0;
        for i in 0..nats.len() {
            if let Some(pid) = nats.pid(i) {
                total += cpu_seconds(pid)?;
            }
        }
        Ok(total)
    };
    let (relays_before, nats_before) = (relays_cpu()?, nats_cpu()?);
    let mut across = ours::flow_between(&a1, &a2, 1, 1, docs, rate, seconds).await?;
    let relays = per_thousand(relays_cpu()? - relays_before, across.expected);
    let nats_per = per_thousand(nats_cpu()? - nats_before, across.expected);
    for (name, f) in [("across", &across), ("same relay", &same), ("files", &files)] {
        if f.latencies.len() < f.expected {
            eprintln!(
                "cluster ({name}): {} of {} changes delivered",
                f.latencies.len(),
                f.expected
            );
        }
    }

    for p in [50.0, 99.0] {
        b.row(
            "9 cluster",
            format!("p{p} change → peer on another relay of the cluster"),
            across.latencies.percentile_ms(p),
            "both on one relay of the cluster",
            same.latencies.percentile_ms(p),
            "ms",
            true,
        );
    }
    for p in [50.0, 99.0] {
        b.row(
            "9 cluster",
            format!("p{p} change → peer, one relay of the cluster"),
            same.latencies.percentile_ms(p),
            "one relay on local files",
            files.latencies.percentile_ms(p),
            "ms",
            true,
        );
    }
    b.row(
        "9 cluster",
        "relays' CPU per 1,000 changes (writer's relay + reader's relay)",
        relays,
        "one relay on local files",
        file_cpu,
        "ms",
        true,
    );
    b.row(
        "9 cluster",
        format!("NATS CPU per 1,000 changes ({servers} server(s))"),
        nats_per,
        "the two relays",
        relays,
        "ms",
        true,
    );
    drop((r1, r2));
    failover(b, &nats).await
}

/// A member knows two relays of the cluster and is connected to one; that
/// one is killed (SIGKILL) and the member makes an edit: the time until it
/// is durable on the other. The killed relay is started again (same port,
/// same data directory) before the next round, which kills the other.
async fn failover(b: &mut Bench, nats: &Nats) -> anyhow::Result<()> {
    let kills = if b.args.quick { 3 } else { 20 };
    let dirs = [tempfile::tempdir()?, tempfile::tempdir()?];
    let ports = [free_port()?, free_port()?];
    let start = |i: usize| -> anyhow::Result<Relay> {
        let listen = format!("/ip4/127.0.0.1/tcp/{}", ports[i]);
        Relay::start(dirs[i].path(), &["--cluster", &nats.urls(), "--listen", &listen])
    };
    let mut relays = [Some(start(0)?), Some(start(1)?)];
    let id = relays[0].as_mut().map(Relay::peer_id).unwrap_or_default();
    let addrs: Vec<Multiaddr> = ports
        .iter()
        .map(|p| format!("/ip4/127.0.0.1/tcp/{p}/p2p/{id}").parse())
        .collect::<Result<_, _>>()?;
    let repo = Repo::in_memory().await?;
    let net = repo
        .connect(NetConfig {
            relays: addrs.clone(),
            ..NetConfig::default()
        })
        .await?;
    let relay = net.dial(addrs[0].clone()).await?;
    let doc = repo.create().await?;
    doc.set("n", &json!(0))?;
    doc.wait_durable_on(relay, Duration::from_secs(30)).await?;
    eprintln!("cluster: failover, {kills} kills");
    let mut took = Latencies::default();
    for round in 0..kills {
        let victim = round % 2;
        if let Some(mut r) = relays[victim].take() {
            r.process.kill();
        }
        let killed = Instant::now();
        doc.set("n", &json!(round + 1))?;
        doc.wait_durable_on(relay, Duration::from_secs(30)).await?;
        took.push(killed.elapsed());
        relays[victim] = Some(start(victim)?);
    }
    net.shutdown().await;
    for (p, what) in [(50.0, "p50"), (100.0, "max")] {
        b.row(
            "9 cluster",
            format!("failover {what}: relay killed → next edit durable on another ({kills} kills)"),
            took.percentile_ms(p),
            "target",
            2000.0,
            "ms",
            true,
        );
    }
    Ok(())
}

/// A port the OS would hand out now (the relay takes it a moment later).
fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// CPU seconds over `changes` changes, as milliseconds per 1,000 changes.
fn per_thousand(cpu_seconds: f64, changes: usize) -> f64 {
    cpu_seconds * 1000.0 * 1000.0 / changes.max(1) as f64
}
