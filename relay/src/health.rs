//! What `/health` reports: `ok`, or `degraded` with the reasons a relay
//! serves less than it should: storage that is full or failed, memory at
//! the cap past which new connections are denied, file handles nearly
//! used up, and in a cluster, NATS unreachable or replicas behind.

use serde_json::{Value, json};
use synkro::{Repo, StorageState};
use synkro_cluster::Health;

/// Above this share of a limit, the relay counts as degraded.
const NEAR: f64 = 0.9;

/// Why the relay is degraded; empty if it is not.
pub fn reasons(repo: &Repo, memory_cap: usize) -> Vec<String> {
    let mut reasons = Vec::new();
    match repo.storage_state() {
        StorageState::Ok => {}
        StorageState::Full => reasons.push("storage full: new data is refused until there is room".to_owned()),
        StorageState::Failed => {
            reasons.push("storage failed: new data is refused; check the disk and restart".to_owned())
        }
    }
    if let Some(rss) = resident_bytes()
        && rss as f64 >= NEAR * memory_cap as f64
    {
        reasons.push(format!(
            "memory: {} MiB of the {} MiB cap; new connections are denied at the cap",
            rss >> 20,
            memory_cap >> 20
        ));
    }
    if let Some((open, max)) = file_handles()
        && open as f64 >= NEAR * max as f64
    {
        reasons.push(format!("file handles: {open} open of a limit of {max}"));
    }
    reasons
}

/// Why the cluster store serves less than it should; empty if it does not.
pub fn cluster_reasons(h: &Health) -> Vec<String> {
    let mut reasons = Vec::new();
    if !h.connected {
        reasons.push("cluster: not connected to NATS; nothing is acknowledged until it is back".to_owned());
    }
    match &h.stream {
        Err(e) => reasons.push(format!("cluster: JetStream does not answer ({e}); writes wait")),
        Ok(s) if s.electing => reasons.push("cluster: the documents' stream has no leader (an election)".into()),
        Ok(s) if !s.lagging.is_empty() => {
            reasons.push(format!("cluster: replicas offline or behind: {}", s.lagging.join(", ")))
        }
        Ok(_) => {}
    }
    reasons
}

/// The cluster's part of `/health`.
pub fn cluster_json(h: &Health) -> Value {
    let stream = match &h.stream {
        Ok(s) => json!({
            "replicas": s.replicas,
            "leader": s.leader,
            "lagging": s.lagging,
            "messages": s.messages,
            "bytes": s.bytes,
        }),
        Err(e) => json!({ "error": e }),
    };
    json!({ "connected": h.connected, "stream": stream })
}

/// The process's resident memory, where the system tells it.
fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// Open file handles and the limit, where the system tells them.
fn file_handles() -> Option<(u64, u64)> {
    #[cfg(unix)]
    {
        let open = std::fs::read_dir("/proc/self/fd").ok()?.count() as u64;
        let (soft, _) = rlimit::getrlimit(rlimit::Resource::NOFILE).ok()?;
        Some((open, soft))
    }
    #[cfg(not(unix))]
    None
}
