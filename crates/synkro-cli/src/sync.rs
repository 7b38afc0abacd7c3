//! `synkro sync` and `synkro serve`: the commands that talk to the network.

use std::collections::HashSet;
use std::time::Duration;

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use synkro::RecvError;
use synkro::net::{Multiaddr, NetConfig, Network, PeerEvent, Traffic};
use synkro::{Event, MemberId, Origin, Repo};

use crate::usage;

/// Parse `--relay` / `--peer` / `--listen` values, which must be multiaddrs;
/// those we dial must name the peer (`/p2p/<id>`), which Noise then proves.
pub fn parse_addrs(flag: &str, values: &[String]) -> anyhow::Result<Vec<Multiaddr>> {
    values
        .iter()
        .map(|v| {
            let addr = v.parse::<Multiaddr>().map_err(|e| {
                usage(format!(
                    "--{flag} {v:?} is not a multiaddr ({e}); e.g. /ip4/203.0.113.7/tcp/4001/p2p/12D3KooW..."
                ))
            })?;
            if flag != "listen" && synkro::net::peer_in(&addr).is_none() {
                return Err(usage(format!(
                    "--{flag} {v:?} must end with /p2p/<peer id>; the relay prints its full addresses when it starts"
                )));
            }
            Ok(addr)
        })
        .collect()
}

/// `sync --once`: push everything until each relay or peer acknowledges it
/// as durable, pull what is missing, print what was exchanged.
pub async fn once(repo: &Repo, relays: Vec<Multiaddr>, peers: Vec<Multiaddr>, timeout: Duration) -> anyhow::Result<()> {
    let targets: Vec<Multiaddr> = relays.iter().chain(&peers).cloned().collect();
    let net = repo
        .connect(NetConfig {
            relays,
            dial_timeout: timeout.min(Duration::from_secs(30)),
            ..NetConfig::default()
        })
        .await?;
    let result = sync_all(repo, &net, &targets, timeout).await;
    net.shutdown().await;
    result
}

async fn sync_all(repo: &Repo, net: &Network, targets: &[Multiaddr], timeout: Duration) -> anyhow::Result<()> {
    for addr in targets {
        let peer = net
            .dial(addr.clone())
            .await
            .with_context(|| format!("cannot sync with {addr}"))?;
        let progress = progress_bar(format!("syncing with {}", short(&peer)));
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            repo.flush_all().await?;
            let status = repo.sync_status(&peer);
            let total = status.synced.len() + status.unsynced.len() + status.pending.len();
            progress.set_length(total as u64);
            progress.set_position(status.synced.len() as u64);
            if let Some((doc, reason)) = status.refused.iter().find(|(_, r)| !r.is_transient()) {
                progress.abandon();
                return Err(synkro::Error::Refused {
                    peer,
                    doc: *doc,
                    reason: reason.clone(),
                }
                .into());
            }
            if let Some((doc, reason)) = status.refused.first() {
                progress.set_message(format!("syncing with {}: {doc}: {reason}", short(&peer)));
            }
            if status.is_complete() && repo.greeted(&peer) {
                progress.finish_and_clear();
                report(&peer, status.synced.len(), status.not_shared.len(), net.traffic(&peer))?;
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                progress.abandon();
                return Err(synkro::Error::NotSynced {
                    peer,
                    unsynced: status.unsynced.len(),
                    pending: status.pending.len(),
                }
                .into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    Ok(())
}

fn progress_bar(message: String) -> ProgressBar {
    // Drawn only when stderr is a terminal.
    let bar = ProgressBar::new(0).with_message(message);
    if let Ok(style) = ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} documents") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

fn report(peer: &MemberId, synced: usize, not_shared: usize, t: Traffic) -> anyhow::Result<()> {
    out!(
        "synced {synced} document{} with {peer} (sent {} messages, {} bytes; received {} messages, {} bytes)",
        if synced == 1 { "" } else { "s" },
        t.messages_sent,
        t.bytes_sent,
        t.messages_received,
        t.bytes_received
    );
    if not_shared > 0 {
        eprintln!(
            "note: {not_shared} document(s) are not shared with {}: only an admin of a document can let a relay store it",
            short(peer)
        );
    }
    Ok(())
}

fn short(m: &MemberId) -> String {
    m.to_string().chars().take(8).collect()
}

/// `sync` without `--once`, and `serve`: stay connected, print what
/// happens, stop on Ctrl-C.
pub async fn live(repo: &Repo, config: NetConfig, print_listening: bool) -> anyhow::Result<()> {
    let targets: Vec<Multiaddr> = config.relays.iter().chain(&config.peers).cloned().collect();
    let net = repo.connect(config).await?;
    let mut events = net.events();
    let mut doc_events = repo.events();
    let mut printed = HashSet::new();
    let mut print = |addr: Multiaddr| -> anyhow::Result<()> {
        if print_listening && printed.insert(addr.clone()) {
            out!("listening {addr}");
        }
        Ok(())
    };
    for addr in net.listen_addrs() {
        print(addr)?;
    }
    for addr in &targets {
        match net.dial(addr.clone()).await {
            Ok(peer) => eprintln!("syncing with {peer}"),
            // Relays and peers in the config are retried in the background.
            Err(e) => eprintln!("warning: {e}; retrying in the background"),
        }
    }
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            e = events.recv() => match e {
                Ok(PeerEvent::Listening(addr)) => print(addr)?,
                Ok(PeerEvent::SessionOpened { peer, relayed }) => {
                    eprintln!("connected to {peer}{}", if relayed { " (through a relay)" } else { "" });
                }
                Ok(PeerEvent::SessionClosed { peer }) => eprintln!("disconnected from {peer}"),
                Ok(PeerEvent::Reachable { relay }) => eprintln!("reachable through relay {relay}"),
                Ok(PeerEvent::Misbehaved { peer, reason }) => eprintln!("dropped {peer}: {reason}"),
                Ok(_) | Err(RecvError::Overflowed(_)) => {}
                Err(RecvError::Closed) => bail!("the network stopped"),
            },
            e = doc_events.recv() => match e {
                Ok(Event::DocChanged { doc, origin: Origin::Remote(from), .. }) => {
                    eprintln!("{doc} changed (from {})", short(&from));
                }
                Ok(Event::DocAdded { doc }) => eprintln!("{doc} arrived"),
                Ok(Event::Rejected { doc, reason, .. }) => eprintln!("warning: refused data for {doc}: {reason}"),
                Ok(Event::PeerRefused { peer, doc, reason }) => {
                    eprintln!("warning: {} refused data of {doc}: {reason}", short(&peer));
                }
                _ => {}
            },
        }
    }
    eprintln!("stopping");
    repo.flush_all().await?;
    net.shutdown().await;
    Ok(())
}
