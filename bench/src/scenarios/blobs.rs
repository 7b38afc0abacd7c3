//! Scenario 11: a file attached to a document on one device (its own
//! store, no network yet): attach and read back against copying the same
//! file, the process's memory throughout, and what one byte changed costs.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::io::AllowStdIo;
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};
use synkro::{BlobMeta, Repo};

use crate::Bench;

const MIB: u64 = 1 << 20;

pub(crate) async fn blobs(b: &mut Bench) -> anyhow::Result<()> {
    let mib = b.sizes.blob_mib as u64;
    eprintln!("blobs: a {mib} MiB file");
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("file.bin");
    write_random(&file, mib * MIB, 12)?;

    // The reference: the same bytes copied to another file and synced.
    let start = Instant::now();
    let copy = dir.path().join("copy.bin");
    std::fs::copy(&file, &copy)?;
    std::fs::File::open(&copy)?.sync_all()?;
    let copy_mbs = mbs(mib, start.elapsed());
    std::fs::remove_file(&copy)?;

    let home = dir.path().join("home");
    let repo = Repo::open(&home).await?;
    let doc = repo.create().await?;
    let meta = BlobMeta {
        mime: "application/octet-stream".into(),
        name: "file.bin".into(),
    };
    let peak = Peak::start();
    let start = Instant::now();
    let blob = doc
        .attach(AllowStdIo::new(std::fs::File::open(&file)?), meta.clone())
        .await?;
    let attach = start.elapsed();
    let attach_peak = peak.take();

    let start = Instant::now();
    let out = dir.path().join("out.bin");
    {
        let mut w = std::io::BufWriter::new(std::fs::File::create(&out)?);
        let mut reading = repo.blob(&blob).await?;
        while let Some(chunk) = reading.next_chunk().await? {
            w.write_all(&chunk)?;
        }
        w.into_inner()?.sync_all()?;
    }
    let read = start.elapsed();
    let read_peak = peak.take();
    if std::fs::metadata(&out)?.len() != blob.size {
        anyhow::bail!("the blob read back has another size");
    }

    // One byte changed in the middle: what is stored anew.
    let chunks_dir = home.join("blobs");
    let before = dir_bytes(&chunks_dir)?;
    flip_byte(&file, mib * MIB / 2)?;
    doc.attach(AllowStdIo::new(std::fs::File::open(&file)?), meta).await?;
    let added = dir_bytes(&chunks_dir)?.saturating_sub(before);
    peak.stop();
    repo.close().await?;

    let (attach_mbs, read_mbs) = (mbs(mib, attach), mbs(mib, read));
    eprintln!(
        "synkro, {mib} MiB: attach {attach_mbs:.0} MB/s, read {read_mbs:.0} MB/s (copy {copy_mbs:.0} MB/s), \
         peak RSS over the start {:.1} / {:.1} MiB, one byte changed stored {:.0} KiB",
        attach_peak as f64 / MIB as f64,
        read_peak as f64 / MIB as f64,
        added as f64 / 1024.0
    );
    let label = format!("copying the file ({mib} MiB)");
    b.row(
        "11 blobs",
        format!("attach {mib} MiB, MB/s"),
        attach_mbs,
        &label,
        copy_mbs,
        "MB/s",
        false,
    );
    b.row(
        "11 blobs",
        format!("read back {mib} MiB, MB/s"),
        read_mbs,
        &label,
        copy_mbs,
        "MB/s",
        false,
    );
    let peak_mib = attach_peak.max(read_peak) as f64 / MIB as f64;
    b.row(
        "11 blobs",
        "memory while attaching and reading (RSS growth)",
        peak_mib,
        "limit",
        64.0,
        "MiB",
        true,
    );
    b.row(
        "11 blobs",
        format!("stored for one byte changed in {mib} MiB"),
        added as f64 / 1024.0,
        "limit",
        1024.0,
        "KiB",
        true,
    );
    Ok(())
}

fn mbs(mib: u64, took: Duration) -> f64 {
    (mib * MIB) as f64 / 1e6 / took.as_secs_f64()
}

fn write_random(path: &Path, len: u64, seed: u64) -> anyhow::Result<()> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut w = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut buf = vec![0; MIB as usize];
    for _ in 0..len / MIB {
        rng.fill_bytes(&mut buf);
        w.write_all(&buf)?;
    }
    w.into_inner()?.sync_all()?;
    Ok(())
}

fn flip_byte(path: &Path, at: u64) -> anyhow::Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::OpenOptions::new().read(true).write(true).open(path)?;
    let mut byte = [0u8];
    f.seek(SeekFrom::Start(at))?;
    f.read_exact(&mut byte)?;
    byte[0] ^= 1;
    f.seek(SeekFrom::Start(at))?;
    f.write_all(&byte)?;
    Ok(())
}

fn dir_bytes(dir: &Path) -> anyhow::Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        total += if entry.file_type()?.is_dir() {
            dir_bytes(&entry.path())?
        } else {
            entry.metadata()?.len()
        };
    }
    Ok(total)
}

/// This process's resident memory above what it was at the start, at its
/// highest, sampled every 5 ms on a thread of its own.
struct Peak {
    max: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    base: u64,
}

impl Peak {
    fn start() -> Self {
        let (max, stop) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicBool::new(false)));
        let base = rss().unwrap_or(0);
        let (m, s) = (max.clone(), stop.clone());
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                m.fetch_max(rss().unwrap_or(0), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        Self { max, stop, base }
    }

    /// The highest growth since the start or the last call.
    fn take(&self) -> u64 {
        self.max.swap(0, Ordering::Relaxed).saturating_sub(self.base)
    }

    fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb = status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?;
    kb.trim()
        .strip_suffix("kB")?
        .trim()
        .parse::<u64>()
        .ok()
        .map(|kb| kb * 1024)
}
