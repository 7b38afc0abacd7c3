//! Many clients touch many documents in random order through a relay whose
//! document memory budget is far below what it stores: every change
//! arrives everywhere, and once the clients pause the relay's documents in
//! memory fit the budget again (it unloads idle ones and loads them back
//! from disk when they are touched).
//!
//! Short by default; `SYNKRO_SOAK=long` runs the soak (50 clients,
//! 1,000 documents, 10 minutes, 64 MiB).

use std::time::{Duration, Instant};

use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};
use serde_json::json;
use synkro::Role;
use synkro_tests::Relay;

use crate::{TIMEOUT, eventually, repo_via};

struct Shape {
    clients: usize,
    docs: usize,
    duration: Duration,
    budget_mib: usize,
}

fn shape() -> Shape {
    match std::env::var("SYNKRO_SOAK").as_deref() {
        Ok("long") => Shape {
            clients: 50,
            docs: 1000,
            duration: Duration::from_secs(600),
            budget_mib: 64,
        },
        _ => Shape {
            clients: 6,
            docs: 60,
            duration: Duration::from_secs(10),
            budget_mib: 1,
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_touching_documents_at_random_stay_within_the_relays_budget() -> anyhow::Result<()> {
    let shape = shape();
    let budget = (shape.budget_mib << 20) as f64;
    let dir = tempfile::tempdir()?;
    let mut relay = Relay::start(dir.path(), &["--memory-budget-mib", &shape.budget_mib.to_string()])?;
    let addr = relay.addr("/tcp/");

    // One owner creates the documents; every client joins all of them
    // (an invitation is claimed once: one per client and document).
    let (owner, owner_net, relay_id) = repo_via(&addr).await?;
    // 32 KiB of incompressible text each, so that together they are far
    // over the relay's budget.
    let mut rng = ChaCha20Rng::seed_from_u64(9);
    let mut docs = Vec::new();
    for i in 0..shape.docs {
        let doc = owner.create().await?;
        doc.set("title", &json!(format!("doc {i}")))?;
        let mut pad = [0u8; 16 << 10];
        rng.fill_bytes(&mut pad);
        let pad: String = pad.iter().map(|b| format!("{b:02x}")).collect();
        doc.set("pad", &json!(pad))?;
        // Made once here: maps created concurrently by several clients
        // under one key would conflict, and all but one be hidden.
        doc.set("by", &json!({}))?;
        docs.push(doc);
    }
    owner.flush_all().await?;
    owner.wait_synced(relay_id, TIMEOUT).await?;
    let mut clients = Vec::new();
    for _ in 0..shape.clients {
        let (repo, net, _) = repo_via(&addr).await?;
        let tokens = futures::future::try_join_all(docs.iter().map(|d| d.share(Role::Write))).await?;
        let handles = futures::future::try_join_all(tokens.iter().map(|t| repo.join(t))).await?;
        clients.push((repo, net, handles));
    }
    let missing = |clients: &[(synkro::Repo, synkro::net::Network, Vec<synkro::DocHandle>)]| {
        let mut missing = Vec::new();
        for (c, (_, _, handles)) in clients.iter().enumerate() {
            for (d, h) in handles.iter().enumerate() {
                if !matches!(h.get("title"), Ok(Some(_))) {
                    missing.push((c, d));
                }
            }
        }
        missing
    };
    let arrived = eventually(TIMEOUT, || Ok(missing(&clients).is_empty())).await?;
    assert!(
        arrived,
        "documents that did not reach a client (client, doc): {:?}",
        missing(&clients)
    );
    let rss_before = relay.rss_bytes()?;

    // Each client writes its own counter into random documents.
    let mut last = vec![vec![None; shape.docs]; shape.clients];
    let (mut changes, mut peak_estimate, mut peak_loaded) = (0u64, 0f64, 0f64);
    let started = Instant::now();
    while started.elapsed() < shape.duration {
        for (c, (_, _, handles)) in clients.iter().enumerate() {
            let d = (rng.next_u32() as usize) % shape.docs;
            changes += 1;
            handles[d].set(&format!("by/{c}"), &json!(changes))?;
            last[c][d] = Some(changes);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        if changes % 50 < shape.clients as u64 {
            peak_estimate = peak_estimate.max(relay.metric("synkro_memory_estimate_bytes")?);
            peak_loaded = peak_loaded.max(relay.metric("synkro_documents_loaded")?);
        }
    }

    // Every change arrives at every client.
    let stale = |clients: &[(synkro::Repo, synkro::net::Network, Vec<synkro::DocHandle>)]| {
        let mut stale = Vec::new();
        for (reader, (_, _, handles)) in clients.iter().enumerate() {
            for (c, writes) in last.iter().enumerate() {
                for (d, value) in writes.iter().enumerate() {
                    if let Some(v) = value
                        && !matches!(handles[d].get(&format!("by/{c}")), Ok(Some(got)) if got == json!(v))
                    {
                        stale.push((reader, c, d));
                    }
                }
            }
        }
        stale
    };
    let converged = eventually(TIMEOUT * 2, || Ok(stale(&clients).is_empty())).await?;
    if !converged {
        for (reader, c, d) in stale(&clients).into_iter().take(8) {
            eprintln!(
                "reader {reader} reads by/{c} of doc {d} as {:?}, written {:?}",
                clients[reader].2[d].get(&format!("by/{c}")),
                last[c][d]
            );
        }
    }
    assert!(
        converged,
        "changes that did not arrive (reader, writer, doc): {:?}",
        stale(&clients)
    );

    // Idle: the relay unloads back into its budget.
    let fits = eventually(Duration::from_secs(20), || {
        Ok(relay.metric("synkro_memory_estimate_bytes")? <= budget)
    })
    .await?;
    let (estimate, loaded) = (
        relay.metric("synkro_memory_estimate_bytes")?,
        relay.metric("synkro_documents_loaded")?,
    );
    let rss_after = relay.rss_bytes()?;
    let mib = |b: f64| b / (1u64 << 20) as f64;
    eprintln!(
        "soak: {} clients x {} docs for {:?}, {changes} changes, budget {} MiB: relay estimate peak {:.1} MiB ({peak_loaded} docs loaded), idle {:.2} MiB ({loaded} loaded); RSS {:.1} -> {:.1} MiB",
        shape.clients,
        shape.docs,
        shape.duration,
        shape.budget_mib,
        mib(peak_estimate),
        mib(estimate),
        mib(rss_before as f64),
        mib(rss_after as f64),
    );
    assert!(
        fits,
        "the relay's documents take {estimate} bytes, over its budget of {budget}"
    );
    assert!(
        loaded < shape.docs as f64,
        "an idle relay over budget keeps every document loaded"
    );

    for (repo, net, handles) in clients {
        drop(handles);
        net.shutdown().await;
        drop(repo);
    }
    owner_net.shutdown().await;
    Ok(())
}
