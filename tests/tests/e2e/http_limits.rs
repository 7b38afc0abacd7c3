//! The relay's HTTP endpoint under a flood of half-sent requests, on
//! loopback: thousands of connections that send the start of a request's
//! headers and nothing more. The endpoint holds at most its
//! `max_http_connections`, closes the rest at once and the held ones when
//! the header timeout passes; libp2p peers never notice, and `/health`
//! answers again once the flood is over.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::json;
use synkro::Role;
use synkro_tests::Relay;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

use crate::{TIMEOUT, marker, repo_via, wait_for_value};

/// Half-sent requests opened, at least.
const FLOOD: usize = 5000;
/// And at most, so that a slow honest sync does not use up the loopback's
/// ephemeral ports.
const FLOOD_MAX: usize = 4 * FLOOD;
/// The endpoint's cap in this test.
const CAP: usize = 64;
/// How long a half-sent connection may stay open before the test calls it
/// held for good: many times the relay's 2 s header timeout.
const HELD_FOR_GOOD: Duration = Duration::from_secs(20);
const HALF_REQUEST: &[u8] = b"GET /health HTTP/1.1\r\nHost: x\r\n";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HalfSent {
    /// The connection could not be opened (the accept queue was full).
    NotConnected,
    /// The relay hung up (end of stream or reset).
    Closed,
    /// Still open after [`HELD_FOR_GOOD`].
    StillOpen,
}

/// One half-sent request to `http`: connect, send the first lines of the
/// headers, then wait for the relay to hang up.
async fn half_sent(http: String) -> HalfSent {
    let Ok(Ok(mut socket)) = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(http)).await else {
        return HalfSent::NotConnected;
    };
    // A write refused because the relay already hung up is a hang-up too.
    if socket.write_all(HALF_REQUEST).await.is_err() {
        return HalfSent::Closed;
    }
    let mut buf = [0u8; 512];
    let read_to_end = async {
        loop {
            match socket.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    match tokio::time::timeout(HELD_FOR_GOOD, read_to_end).await {
        Ok(()) => HalfSent::Closed,
        Err(_) => HalfSent::StillOpen,
    }
}

/// Open half-sent requests as fast as they connect, never more than
/// `budget` open at once (this process's own file handles), until at least
/// `FLOOD` were opened and `stop` is set (or `FLOOD_MAX` were); the outcome
/// of each.
async fn flood(http: String, budget: usize, stop: Arc<AtomicBool>) -> Vec<HalfSent> {
    let open = Arc::new(Semaphore::new(budget));
    let mut connections = Vec::new();
    while connections.len() < FLOOD || (connections.len() < FLOOD_MAX && !stop.load(Ordering::Relaxed)) {
        let Ok(slot) = Arc::clone(&open).acquire_owned().await else {
            break;
        };
        let http = http.clone();
        connections.push(tokio::spawn(async move {
            let outcome = half_sent(http).await;
            drop(slot);
            outcome
        }));
    }
    let mut outcomes = Vec::new();
    for c in connections {
        outcomes.push(c.await.unwrap_or(HalfSent::StillOpen));
    }
    outcomes
}

/// File handles the process `pid` holds (Linux), if readable.
fn open_files(pid: u32) -> Option<usize> {
    std::fs::read_dir(format!("/proc/{pid}/fd")).ok().map(Iterator::count)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_http_requests_are_capped_and_timed_out_and_peers_keep_syncing() -> anyhow::Result<()> {
    synkro_tests::raise_descriptor_limit();
    // Leave room for the honest peers, the runtime and the test harness.
    #[cfg(unix)]
    let budget = usize::try_from(rlimit::getrlimit(rlimit::Resource::NOFILE)?.0)
        .unwrap_or(usize::MAX)
        .saturating_sub(256)
        .min(FLOOD);
    #[cfg(not(unix))]
    let budget = 512;
    anyhow::ensure!(budget > 2 * CAP, "this process may open only {budget} sockets");

    let dir = tempfile::tempdir()?;
    let config = dir.path().join("relay.toml");
    std::fs::write(
        &config,
        format!("http_header_timeout = \"2s\"\nhttp_idle_timeout = \"5s\"\nmax_http_connections = {CAP}\n"),
    )?;
    let data = dir.path().join("data");
    std::fs::create_dir(&data)?;
    let mut relay = Relay::start(&data, &["--config", &config.to_string_lossy()])?;
    let addr = relay.addr("/tcp/");
    let pid = relay.process.pid();
    let files_before = open_files(pid);

    // The flood, in the background.
    let stop = Arc::new(AtomicBool::new(false));
    let flooding = tokio::spawn(flood(relay.http.clone(), budget, Arc::clone(&stop)));
    let watch_files = {
        let stop = Arc::clone(&stop);
        tokio::spawn(async move {
            let mut most = 0;
            while !stop.load(Ordering::Relaxed) {
                most = most.max(open_files(pid).unwrap_or(0));
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            most
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;

    // (a) Meanwhile an honest peer connects over libp2p and syncs a
    // document through the relay to a second one.
    let honest = async {
        let (alice, a_net, relay_id) = repo_via(&addr).await?;
        let doc = alice.create().await?;
        doc.set("note", &json!(marker("http-flood")))?;
        doc.wait_durable_on(relay_id, TIMEOUT).await?;
        let (bob, b_net, _) = repo_via(&addr).await?;
        let bobs = bob.join(&doc.share(Role::Read).await?).await?;
        bob.wait_synced(relay_id, TIMEOUT).await?;
        wait_for_value(&bobs, "note", &json!(marker("http-flood"))).await?;
        a_net.shutdown().await;
        b_net.shutdown().await;
        anyhow::Ok(())
    };
    let synced = tokio::time::timeout(TIMEOUT, honest).await;
    stop.store(true, Ordering::Relaxed);
    let most_files = watch_files.await?;
    let outcomes = flooding.await?;
    synced.map_err(|_| anyhow::anyhow!("the honest peers did not sync within {TIMEOUT:?} during the flood"))??;

    // (b) Every half-sent request was closed by the relay: at once over the
    // cap, at the header timeout within it.
    let count = |o: HalfSent| outcomes.iter().filter(|x| **x == o).count();
    let (closed, still_open, not_connected) = (
        count(HalfSent::Closed),
        count(HalfSent::StillOpen),
        count(HalfSent::NotConnected),
    );
    // (c) Afterwards the endpoint answers.
    let (status, _) = relay.get("/health")?;
    let refused = relay.metric("synkro_http_connections_refused_total")?;
    eprintln!(
        "HTTP flood: {} half-sent requests (at most {budget} open at once): {closed} closed by the relay, \
         {still_open} still open after {HELD_FOR_GOOD:?}, {not_connected} not connected; {refused} refused at \
         the cap of {CAP}; relay file handles {files_before:?} before, at most {most_files} during; /health {status} after",
        outcomes.len(),
    );
    assert!(outcomes.len() >= FLOOD);
    assert_eq!(still_open, 0, "the relay kept half-sent requests open");
    assert_eq!(closed + not_connected, outcomes.len());
    assert!(closed > CAP, "the flood never reached the endpoint");
    assert!(
        refused >= 1.0,
        "{closed} connections and none refused at a cap of {CAP}"
    );
    if let Some(before) = files_before {
        // The cap, plus the honest peers' connections and storage.
        assert!(
            most_files <= before + CAP + 64,
            "the relay held {most_files} file handles during the flood, {before} before, HTTP cap {CAP}"
        );
    }
    assert_eq!(status, 200);

    // Below the cap, a half-sent request is closed by the header timeout,
    // not refused: the count of refusals does not move.
    let mut probes = Vec::new();
    for _ in 0..8 {
        probes.push(tokio::spawn(half_sent(relay.http.clone())));
    }
    for p in probes {
        assert_eq!(
            p.await?,
            HalfSent::Closed,
            "a half-sent request below the cap stayed open"
        );
    }
    assert_eq!(relay.metric("synkro_http_connections_refused_total")?, refused);
    assert_eq!(relay.get("/health")?.0, 200);

    // A stop is not held up by a half-sent request.
    let lingering = tokio::spawn(half_sent(relay.http.clone()));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(relay.process.terminate(Duration::from_secs(20))?, Some(0));
    assert_ne!(lingering.await?, HalfSent::StillOpen);
    Ok(())
}
