//! `synkro-store-bench`: the native store for many documents, measured.
//!
//! The same workload through the repo's `Storage` trait on today's
//! `FsStorage` (one log file per document) and on two embedded stores
//! (redb, fjall), at each of `--docs` sizes: a home of N documents written
//! durably, then single-document writes, opening and listing, and reading
//! cold documents (the page cache is dropped first when the process may).
//! Run through `scripts/bench.sh stores`.

mod embedded;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use rand::{Rng, RngExt, SeedableRng};
use synkro_storage::{FsStorage, Namespace, Storage, WriteOp};

#[derive(Parser)]
#[command(about = "the native store for many documents: FsStorage, redb and fjall side by side")]
struct Args {
    /// Home sizes to measure, in documents.
    #[arg(long, value_delimiter = ',', default_value = "10000,100000")]
    docs: Vec<usize>,
    /// Stores to measure (fs, redb, fjall).
    #[arg(long, value_delimiter = ',', default_value = "fs,redb,fjall")]
    stores: Vec<String>,
    /// Where the homes are made (a temporary directory under it).
    #[arg(long, default_value = "target/store-bench")]
    dir: std::path::PathBuf,
}

/// Concurrent writers while filling a home (the driver runs one write task
/// per document, so writes to different documents overlap).
const FILL_WRITERS: usize = 64;
/// Single-document writes measured on a filled home, per mode.
const WRITES: usize = 1_000;
/// Cold documents read per home.
const READS: usize = 200;

type Store = Arc<dyn Storage>;

fn open(kind: &str, dir: &Path) -> anyhow::Result<Store> {
    Ok(match kind {
        "fs" => Arc::new(FsStorage::open(dir)?),
        "redb" => Arc::new(embedded::Redb::open(dir)?),
        "fjall" => Arc::new(embedded::Fjall::open(dir)?),
        other => anyhow::bail!("unknown store {other:?} (fs, redb, fjall)"),
    })
}

/// What a new document writes: its first access-log op, its local state
/// and two sealed chunks (sizes as a small synkro document's).
fn new_doc(rng: &mut impl Rng) -> Vec<WriteOp> {
    let put = |rng: &mut dyn Rng, tag: u8, len: usize| {
        let mut key = vec![tag; 33];
        rng.fill_bytes(&mut key[1..]);
        let mut value = vec![0; len];
        rng.fill_bytes(&mut value);
        WriteOp::Put { key, value }
    };
    vec![put(rng, 1, 180), put(rng, 4, 120), put(rng, 2, 420), put(rng, 2, 380)]
}

fn doc_id(i: usize) -> Namespace {
    let mut ns = [0u8; 32];
    let h = blake3::hash(&(i as u64).to_le_bytes());
    ns.copy_from_slice(h.as_bytes());
    ns
}

struct Figures {
    fill: Duration,
    write_one: Duration,
    write_many: Duration,
    open: Duration,
    list: Duration,
    listed: usize,
    reads: Vec<Duration>,
    disk: u64,
    rss_after_open: u64,
}

fn rss() -> u64 {
    procfs::process::Process::myself()
        .and_then(|p| p.statm())
        .map(|s| s.resident * procfs::page_size())
        .unwrap_or(0)
}

/// Drop the page cache (needs root); says whether it could.
fn drop_caches() -> bool {
    // SAFETY-free: sync(2) then the kernel's own knob.
    let _ = std::process::Command::new("sync").status();
    std::fs::write("/proc/sys/vm/drop_caches", "3").is_ok()
}

fn disk_use(dir: &Path) -> u64 {
    let out = std::process::Command::new("du").arg("-sb").arg(dir).output();
    out.ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.split_whitespace().next().and_then(|n| n.parse().ok()))
        .unwrap_or(0)
}

/// `n` writes made by `concurrency` writers, each with a seeded RNG; the
/// `i`th write is `write(i, rng)`. Returns how long they took.
async fn spread(
    store: &Store,
    n: usize,
    concurrency: usize,
    seed: u64,
    write: impl Fn(usize, &mut rand_chacha::ChaCha8Rng) -> (Namespace, Vec<WriteOp>) + Send + Sync + 'static,
) -> anyhow::Result<Duration> {
    let write = Arc::new(write);
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    for w in 0..concurrency {
        let (store, next, write) = (store.clone(), next.clone(), write.clone());
        tasks.spawn(async move {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ w as u64);
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= n {
                    return anyhow::Ok(());
                }
                let (ns, ops) = write(i, &mut rng);
                store.write(&ns, ops).await?;
            }
        });
    }
    while let Some(t) = tasks.join_next().await {
        t??;
    }
    Ok(start.elapsed())
}

/// `n` single-record writes (a 300-byte chunk) to random documents of a
/// home of `docs`.
async fn writes(store: &Store, n: usize, concurrency: usize, docs: usize, seed: u64) -> anyhow::Result<Duration> {
    spread(store, n, concurrency, seed, move |_, rng| {
        let ns = doc_id(rng.random_range(0..docs));
        let mut key = vec![2u8; 33];
        rng.fill_bytes(&mut key[1..]);
        let mut value = vec![0; 300];
        rng.fill_bytes(&mut value);
        (ns, vec![WriteOp::Put { key, value }])
    })
    .await
}

async fn measure(kind: &str, root: &Path, docs: usize) -> anyhow::Result<Figures> {
    let dir = root.join(format!("{kind}-{docs}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let fill = {
        let store = open(kind, &dir)?;
        spread(&store, docs, FILL_WRITERS, 0, |i, rng| (doc_id(i), new_doc(rng))).await?
    };
    let (write_one, write_many) = {
        let store = open(kind, &dir)?;
        let one = writes(&store, WRITES, 1, docs, 1).await?;
        let many = writes(&store, WRITES, FILL_WRITERS, docs, 2).await?;
        (one, many)
    };
    let cold = drop_caches();
    let before = rss();
    let start = Instant::now();
    let store = open(kind, &dir)?;
    let open_time = start.elapsed();
    let start = Instant::now();
    let listed = store.namespaces().await?.len();
    let list = start.elapsed();
    let rss_after_open = rss().saturating_sub(before);
    anyhow::ensure!(listed == docs, "{kind}: listed {listed} of {docs} documents");
    drop(store);
    if cold {
        drop_caches();
    }
    let store = open(kind, &dir)?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let mut reads = Vec::with_capacity(READS);
    for _ in 0..READS {
        let ns = doc_id(rng.random_range(0..docs));
        let start = Instant::now();
        let loaded = store.load(&ns).await?;
        reads.push(start.elapsed());
        anyhow::ensure!(loaded.records.len() >= 4, "{kind}: a document came back short");
    }
    drop(store);
    let disk = disk_use(&dir);
    std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    Ok(Figures {
        fill,
        write_one,
        write_many,
        open: open_time,
        list,
        listed,
        reads,
        disk,
        rss_after_open,
    })
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn percentile(v: &mut [Duration], p: f64) -> f64 {
    v.sort_unstable();
    ms(v[((p / 100.0) * v.len() as f64) as usize].min(v[v.len() - 1]))
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    std::fs::create_dir_all(&args.dir)?;
    let cold = drop_caches();
    println!(
        "Each home: N documents of 4 records (1.1 KB) written durably by {FILL_WRITERS} writers; then {WRITES} \
         single-record durable writes to random documents by 1 and by {FILL_WRITERS} writers; open + list; \
         {READS} reads of random documents{}.\n",
        if cold {
            " after dropping the page cache"
        } else {
            " (page cache not dropped: not root)"
        }
    );
    println!(
        "| store | documents | fill (docs/s) | writes/s, 1 writer | writes/s, {FILL_WRITERS} writers | open (ms) | \
         list (ms) | RSS after open+list (MiB) | cold read p50 (ms) | cold read p99 (ms) | disk (MiB) | bytes/doc |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for &docs in &args.docs {
        for kind in &args.stores {
            let mut f = measure(kind, &args.dir, docs).await?;
            println!(
                "| {kind} | {docs} | {:.0} | {:.0} | {:.0} | {:.1} | {:.1} | {:.1} | {:.2} | {:.2} | {:.1} | {:.0} |",
                docs as f64 / f.fill.as_secs_f64(),
                WRITES as f64 / f.write_one.as_secs_f64(),
                WRITES as f64 / f.write_many.as_secs_f64(),
                ms(f.open),
                ms(f.list),
                f.rss_after_open as f64 / (1 << 20) as f64,
                percentile(&mut f.reads, 50.0),
                percentile(&mut f.reads, 99.0),
                f.disk as f64 / (1 << 20) as f64,
                f.disk as f64 / f.listed as f64,
            );
        }
    }
    Ok(())
}
