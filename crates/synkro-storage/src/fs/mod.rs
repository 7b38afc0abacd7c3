//! Crash-safe file backend: one append-only log per namespace.
//!
//! The file format and the exact guarantees are documented on [`FsStorage`],
//! since this module is private; the frame codec (untrusted bytes in,
//! records out) is `crate::frame`.

mod blobs;
mod compact;
pub use blobs::FsBlobs;
use compact::COMPACT_MIN_DEAD;
mod snapshot;

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use tokio::sync::Mutex as AsyncMutex;

use crate::fault::{FaultKind, FaultPoint};
use crate::frame::{FrameBuilder, PUT_OVERHEAD, Scan, encode_write, scan};
use crate::{Gathered, Loaded, Namespace, Problem, RecordKey, Storage, StorageError, WriteOp, check_ops};

const LOG_SUFFIX: &str = ".log";
const TMP_SUFFIX: &str = ".log.tmp";

/// A [`Storage`] that keeps each namespace in an append-only, checksummed
/// log file (native targets only).
///
/// Cloning is cheap and shares the store (its locks and its poisoned state).
///
/// # Layout
///
/// A storage directory holds one file per namespace, named
/// `<64 lowercase hex digits of the namespace>.log`. Other files are ignored;
/// `<name>.log.tmp` files are leftovers of an interrupted compaction and are
/// deleted by [`FsStorage::open`].
///
/// # File format
///
/// A log is a sequence of frames, one per [`Storage::write`] call:
///
/// ```text
/// frame   = magic (4 bytes: A7 53 4B 31, "\xA7SK1")
///           payload_len  u32 little-endian  (at most MAX_WRITE_LEN)
///           crc32c(payload) u32 little-endian
///           payload
/// payload = op_count u32 LE, then op_count ops, then nothing
/// op      = 0x01 key_len u8 key value_len u32 LE value   (put)
///         | 0x02 key_len u8 key                          (delete: a tombstone)
/// ```
///
/// Keys are 1..=[`MAX_KEY_LEN`] bytes, values at most [`MAX_VALUE_LEN`]
/// bytes. Frames are replayed in file order; a later op on a key wins.
///
/// # Guarantees
///
/// - **Durable acknowledgement.** `write` returns `Ok` only after its frame
///   is written and `fdatasync`ed, and, when the write created the file,
///   after the directory is `fsync`ed too. `remove`, and a write that
///   deletes a namespace's last record (which deletes the file instead of
///   appending tombstones), return after the directory is `fsync`ed.
/// - **Atomic writes.** A frame is applied whole or not at all: a crash
///   mid-write leaves an incomplete last frame (a torn tail), which the next
///   read reports as [`ProblemKind::TornTail`] and cuts off.
/// - **Poisoning.** If any `fsync` fails, the store sets itself poisoned:
///   that call and every later `write`/`remove` return
///   [`StorageError::Poisoned`]; nothing is retried. (After a failed fsync
///   the kernel may have dropped the dirty pages and report success on a
///   retry.) Loads keep working but no longer modify files. A new
///   [`FsStorage::open`] (for example after a restart) starts clean.
/// - **Damage is reported, never fatal.** `load` never panics on any file
///   content. A frame with a wrong checksum ([`ProblemKind::BadChecksum`])
///   or an unreadable header or payload ([`ProblemKind::BadFrame`]) is
///   skipped by scanning forward for the next intact frame; every other
///   intact frame still loads. Damage that runs to the end of the file with
///   no intact frame after it is cut off (truncated and `fsync`ed), so
///   later appends start on a clean frame boundary. Damage loses only the
///   ops of the damaged frames (so a damaged tombstone can bring back the
///   record it deleted); an undamaged acknowledged frame is never dropped.
/// - **Bounded reads.** Nothing read from a file is allocated from a length
///   field: a frame must fit in the bytes actually read, and lengths above
///   the limits are rejected first. A load holds the whole log in memory.
/// - **Compaction.** When the bytes of overwritten and deleted records
///   exceed both the live bytes and 64 KiB, the log is rewritten with only
///   the live records: written to `<name>.log.tmp`, `fsync`ed, renamed over
///   the log, and the directory `fsync`ed. A crash at any point leaves
///   either the old or the new log, both complete. Frames already damaged
///   at that point are dropped, as `load` already skipped them.
/// - **Concurrency.** Operations on one namespace are serialized by a
///   per-namespace async lock; different namespaces proceed in parallel.
///   Blocking file I/O runs in `tokio::task::spawn_blocking` when called
///   inside a Tokio runtime, and in place otherwise. A cancelled (dropped)
///   `write` future may still complete its write, but never half of it.
///
/// Not guaranteed: exclusive access. Only one `FsStorage` (in one process)
/// may use a directory at a time; this is not enforced. Directory `fsync`
/// is done on Unix only (other platforms have no portable equivalent).
///
/// # Example
///
/// ```
/// use synkro_storage::{FsStorage, Storage, WriteOp};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = tempfile::tempdir()?;
/// let rt = tokio::runtime::Builder::new_current_thread().build()?;
/// rt.block_on(async {
///     let ns = [1u8; 32];
///     {
///         let store = FsStorage::open(dir.path())?;
///         store
///             .write(&ns, vec![
///                 WriteOp::Put { key: b"a".to_vec(), value: b"1".to_vec() },
///                 WriteOp::Put { key: b"b".to_vec(), value: b"2".to_vec() },
///             ])
///             .await?;
///         store.write(&ns, vec![WriteOp::Delete { key: b"a".to_vec() }]).await?;
///     }
///     // Reopening (as after a restart) finds everything acknowledged.
///     let store = FsStorage::open(dir.path())?;
///     let loaded = store.load(&ns).await?;
///     assert_eq!(loaded.records, vec![(b"b".to_vec(), b"2".to_vec())]);
///     assert!(loaded.problems.is_empty());
///     Ok::<_, synkro_storage::StorageError>(())
/// })?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct FsStorage {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for FsStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FsStorage")
            .field("dir", &self.inner.dir)
            .field("poisoned", &self.inner.is_poisoned())
            .finish_non_exhaustive()
    }
}

struct Inner {
    dir: PathBuf,
    /// Kept open so a directory fsync cannot fail for want of a descriptor.
    #[cfg(unix)]
    dir_handle: File,
    poisoned: AtomicBool,
    /// One lock per namespace ever touched. Entries are never removed, so
    /// two tasks can never hold different locks for the same file.
    slots: Mutex<HashMap<Namespace, Arc<AsyncMutex<Slot>>>>,
    /// The index snapshot (`snapshot.rs`).
    snapshot: Mutex<snapshot::Tracker>,
    /// Directory fsyncs, shared by the writers waiting for one.
    dir_sync: DirSync,
    #[cfg(feature = "fault-injection")]
    faults: Mutex<Vec<crate::fault::Armed>>,
}

/// Which directory fsyncs have begun and which have succeeded
/// (`Inner::sync_dir`): each call runs on a blocking thread, so waiting on
/// a condition variable is fine.
#[derive(Default)]
struct DirSync {
    state: Mutex<DirSyncState>,
    done: Condvar,
}

#[derive(Default)]
struct DirSyncState {
    /// Number of the last directory fsync begun.
    started: u64,
    /// Number of the last one that succeeded.
    finished: u64,
    running: bool,
}

impl DirSync {
    fn lock(&self) -> MutexGuard<'_, DirSyncState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn wait<'a>(&self, state: MutexGuard<'a, DirSyncState>) -> MutexGuard<'a, DirSyncState> {
        self.done.wait(state).unwrap_or_else(PoisonError::into_inner)
    }

    fn wake(&self) {
        self.done.notify_all();
    }
}

/// What is known about one namespace's log, guarded by its lock.
enum Slot {
    /// Not looked at yet, or an operation failed half way: rescan first.
    Unknown,
    /// No file exists.
    Absent,
    /// The file exists and its contents are summarized.
    Open(LogFile),
}

/// What is known of a log. No file handle is kept: each operation opens
/// the log by path under the namespace's lock and closes it when done, so a
/// store of 100,000 documents holds no more descriptors than operations in
/// flight (an open takes microseconds; the fdatasync of a write, hundreds).
struct LogFile {
    /// End of the last intact frame: where the next frame goes.
    end: u64,
    /// Live key -> bytes its put takes in the log (for compaction accounting).
    index: HashMap<RecordKey, u64>,
    /// Sum of `index` values.
    live: u64,
}

impl LogFile {
    /// The log whose intact frames end at `end` and hold `scan`'s live records.
    fn of(end: u64, scan: &Scan<'_>) -> LogFile {
        let index: HashMap<RecordKey, u64> = scan
            .live
            .iter()
            .map(|(k, v)| (k.to_vec(), record_size(k.len(), v.len())))
            .collect();
        let live = index.values().fold(0u64, |a, b| a.saturating_add(*b));
        LogFile { end, index, live }
    }
}

impl FsStorage {
    /// Opens (creating if needed) a storage directory.
    ///
    /// Deletes `<name>.log.tmp` leftovers of an interrupted compaction
    /// (only after a crash: with an index snapshot there are none, and the
    /// directory is not listed).
    /// Logs themselves are read lazily, on the first access to each
    /// namespace. This call does blocking I/O.
    pub fn open(dir: impl AsRef<Path>) -> Result<FsStorage, StorageError> {
        let given = dir.as_ref();
        // Absolute, so messages name the real place and a later chdir of
        // the process cannot move the store.
        let dir = std::path::absolute(given).map_err(io_err(given))?;
        let existed = dir.is_dir();
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        #[cfg(unix)]
        let dir_handle = File::open(&dir).map_err(io_err(&dir))?;
        #[cfg(unix)]
        if !existed {
            // Make the new directory's own entry durable.
            if let Some(parent) = dir.parent() {
                File::open(parent).and_then(|p| p.sync_all()).map_err(io_err(parent))?;
            }
        }
        #[cfg(not(unix))]
        let _ = existed;

        // A compaction's leftover exists only after a crash, which leaves
        // no index snapshot: with one, the directory need not be listed
        // (that listing is most of what opening a large store costs).
        let snapshot_on_disk = dir.join(snapshot::FILE).is_file();
        if !snapshot_on_disk {
            remove_leftovers(&dir)?;
        }
        // A base left by a process that did not close cleanly: stale.
        match fs::remove_file(dir.join(snapshot::BASE)) {
            Ok(()) => tracing::debug!(dir = %dir.display(), "removed a stale index snapshot base"),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(&dir.join(snapshot::BASE))(e)),
        }
        Ok(FsStorage {
            inner: Arc::new(Inner {
                dir,
                #[cfg(unix)]
                dir_handle,
                poisoned: AtomicBool::new(false),
                slots: Mutex::new(HashMap::new()),
                snapshot: Mutex::new(snapshot::Tracker::new(snapshot_on_disk)),
                dir_sync: DirSync::default(),
                #[cfg(feature = "fault-injection")]
                faults: Mutex::new(Vec::new()),
            }),
        })
    }

    /// The storage directory (absolute).
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Whether an fsync failure has made this store refuse writes.
    pub fn is_poisoned(&self) -> bool {
        self.inner.is_poisoned()
    }

    /// Path of the log file that holds `ns` (it may not exist).
    pub fn log_path(&self, ns: &Namespace) -> PathBuf {
        self.inner.log_path(ns)
    }

    /// Makes the next fsync this store does (of a log, a compaction file or
    /// the directory) fail, as a failing disk would. Test seam for
    /// reliability suites; only with the `fault-injection` feature.
    #[cfg(feature = "fault-injection")]
    pub fn inject_sync_failure_for_tests(&self) {
        self.inject_fault(crate::Fault::new(crate::FaultPoint::Sync, 0, crate::FaultKind::Error));
    }

    /// Arms `fault`: the matching file-system call, once `fault.after`
    /// earlier calls of that kind have passed, fails as described. Test
    /// seam for reliability suites; only with the `fault-injection` feature.
    #[cfg(feature = "fault-injection")]
    pub fn inject_fault(&self, fault: crate::Fault) {
        self.inner
            .faults
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(crate::fault::Armed::new(fault));
    }
}

#[async_trait::async_trait]
impl Storage for FsStorage {
    async fn write(&self, ns: &Namespace, ops: Vec<WriteOp>) -> Result<(), StorageError> {
        check_ops(&ops)?;
        self.inner.check_poisoned()?;
        if ops.is_empty() {
            return Ok(());
        }
        let guard = self.inner.slot(ns).lock_owned().await;
        let inner = Arc::clone(&self.inner);
        let ns = *ns;
        run_blocking(move || {
            let mut guard = guard;
            let written = inner.write_locked(&ns, &mut guard, &ops);
            let emptied = matches!(*guard, Slot::Absent);
            inner.tracker().wrote(&ns, &ops, emptied, written.is_ok());
            written
        })
        .await
    }

    async fn load(&self, ns: &Namespace) -> Result<Loaded, StorageError> {
        // Locked even for reading: an append in progress would otherwise
        // look like a torn tail and be cut off.
        let guard = self.inner.slot(ns).lock_owned().await;
        let inner = Arc::clone(&self.inner);
        let ns = *ns;
        run_blocking(move || {
            let mut guard = guard;
            inner.load_locked(&ns, &mut guard)
        })
        .await
    }

    async fn namespaces(&self) -> Result<Vec<Namespace>, StorageError> {
        let inner = Arc::clone(&self.inner);
        run_blocking(move || inner.list()).await
    }

    async fn remove(&self, ns: &Namespace) -> Result<(), StorageError> {
        self.inner.check_poisoned()?;
        let guard = self.inner.slot(ns).lock_owned().await;
        let inner = Arc::clone(&self.inner);
        let ns = *ns;
        run_blocking(move || {
            let mut guard = guard;
            let removed = inner.remove_locked(&ns, &mut guard);
            inner.tracker().removed(&ns, removed.is_ok());
            removed
        })
        .await
    }

    /// From the index snapshot when the store was closed cleanly with that
    /// key tracked and no log changed since; otherwise by reading every log.
    async fn gather(&self, key: &[u8]) -> Result<Vec<Gathered>, StorageError> {
        self.inner.tracker().gathering();
        let inner = Arc::clone(&self.inner);
        let wanted = key.to_vec();
        let found = run_blocking(move || {
            let on_disk = inner.tracker().on_disk;
            Ok(on_disk.then(|| snapshot::read(&inner.dir, &wanted)).flatten())
        })
        .await?;
        let (found, from_file) = match found {
            Some(found) => (found, true),
            None => (crate::gather_by_loading(self, key).await?, false),
        };
        self.inner.tracker().gathered(key, &found, from_file);
        Ok(found)
    }

    /// Writes the index snapshot now if it is due (it is also written when
    /// the last handle is dropped).
    async fn checkpoint(&self) -> Result<(), StorageError> {
        let inner = Arc::clone(&self.inner);
        run_blocking(move || inner.write_snapshot()).await
    }
}

/// Runs blocking file work off the async threads when a Tokio runtime is
/// available; under any other executor it runs in place.
async fn run_blocking<T, F>(f: F) -> Result<T, StorageError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, StorageError> + Send + 'static,
{
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => match handle.spawn_blocking(f).await {
            Ok(result) => result,
            // A panic here is a bug in this crate: surface it, don't hide it.
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => Err(StorageError::Closed),
        },
        Err(_) => f(),
    }
}

impl Drop for Inner {
    /// The last handle is gone: write the index snapshot if this process
    /// tracked it exactly (see `snapshot.rs`).
    fn drop(&mut self) {
        if let Err(e) = self.write_snapshot() {
            tracing::warn!(dir = %self.dir.display(), error = %e, "index snapshot not written");
        }
    }
}

impl Inner {
    /// Writes the index snapshot if this process tracked it exactly and
    /// it is not on disk already.
    fn write_snapshot(&self) -> Result<(), StorageError> {
        if self.is_poisoned() {
            return Ok(());
        }
        let mut tracker = self.tracker();
        let Some((key, values)) = tracker.to_write(&self.dir) else {
            return Ok(());
        };
        snapshot::write(&self.dir, key, &values).map_err(io_err(&self.dir))?;
        let namespaces = values.len();
        drop(values);
        self.sync_dir()?;
        tracker.written();
        // The base is in the new snapshot now; it is never read at opening.
        let _ = fs::remove_file(self.dir.join(snapshot::BASE));
        tracing::debug!(dir = %self.dir.display(), namespaces, "index snapshot written");
        Ok(())
    }

    fn tracker(&self) -> std::sync::MutexGuard<'_, snapshot::Tracker> {
        self.snapshot.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Before a log changes: the snapshot stops being true, so it goes
    /// first (durably): moved aside as the base of the next one, or
    /// removed if nothing tracked needs it.
    fn invalidate_snapshot(&self) -> Result<(), StorageError> {
        let mut tracker = self.tracker();
        if tracker.on_disk {
            let path = self.dir.join(snapshot::FILE);
            let gone = match tracker.needs_base() {
                true => fs::rename(&path, self.dir.join(snapshot::BASE)),
                false => fs::remove_file(&path),
            };
            match gone {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err(&path)(e)),
            }
            self.sync_dir()?;
            tracker.on_disk = false;
        }
        Ok(())
    }

    fn is_poisoned(&self) -> bool {
        self.poisoned.load(Ordering::SeqCst)
    }

    fn check_poisoned(&self) -> Result<(), StorageError> {
        if self.is_poisoned() {
            Err(StorageError::Poisoned)
        } else {
            Ok(())
        }
    }

    fn slot(&self, ns: &Namespace) -> Arc<AsyncMutex<Slot>> {
        // Held only for this lookup, never across an await. The map stays
        // consistent even if a holder panicked, so poisoning is ignored.
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(
            slots
                .entry(*ns)
                .or_insert_with(|| Arc::new(AsyncMutex::new(Slot::Unknown))),
        )
    }

    fn log_path(&self, ns: &Namespace) -> PathBuf {
        self.dir.join(format!("{}{LOG_SUFFIX}", hex(ns)))
    }

    /// fdatasync `file`; on failure poison the store.
    fn sync_file(&self, file: &File, path: &Path) -> Result<(), StorageError> {
        let result = match self.injected(FaultPoint::Sync) {
            Some(kind) => Err(kind.io_error("fsync")),
            None => file.sync_data(),
        };
        result.map_err(|e| self.poison(path, e))
    }

    /// Makes the names created, renamed and deleted so far durable: returns
    /// once a directory fsync that began after this call has succeeded
    /// (group commit: callers that come while one runs share the next).
    /// On failure the store is poisoned.
    fn sync_dir(&self) -> Result<(), StorageError> {
        let mut state = self.dir_sync.lock();
        // A sync already running may have begun before this caller's
        // change: only one begun from now on covers it.
        let needed = state.started + 1;
        loop {
            if state.finished >= needed {
                return Ok(());
            }
            self.check_poisoned()?;
            if !state.running {
                state.running = true;
                state.started += 1;
                let this = state.started;
                drop(state);
                let result = self.sync_dir_now();
                let mut state = self.dir_sync.lock();
                state.running = false;
                if result.is_ok() {
                    state.finished = this;
                }
                self.dir_sync.wake();
                return result;
            }
            state = self.dir_sync.wait(state);
        }
    }

    /// fsync the directory now; on failure poison the store.
    fn sync_dir_now(&self) -> Result<(), StorageError> {
        if let Some(kind) = self.injected(FaultPoint::Sync) {
            return Err(self.poison(&self.dir, kind.io_error("fsync")));
        }
        #[cfg(unix)]
        self.dir_handle.sync_all().map_err(|e| self.poison(&self.dir, e))?;
        Ok(())
    }

    fn poison(&self, path: &Path, error: io::Error) -> StorageError {
        self.poisoned.store(true, Ordering::SeqCst);
        tracing::error!(
            path = %path.display(),
            %error,
            "fsync failed: storage now refuses all writes until restarted"
        );
        StorageError::Poisoned
    }

    /// The fault armed for this call, if any (always `None` without the
    /// `fault-injection` feature).
    #[cfg(feature = "fault-injection")]
    fn injected(&self, point: FaultPoint) -> Option<FaultKind> {
        let mut faults = self.faults.lock().unwrap_or_else(PoisonError::into_inner);
        let hit = faults.iter_mut().position(|f| f.tick(point))?;
        Some(faults.swap_remove(hit).kind())
    }

    #[cfg(not(feature = "fault-injection"))]
    #[allow(clippy::unused_self)]
    fn injected(&self, _point: FaultPoint) -> Option<FaultKind> {
        None
    }

    /// Writes `bytes` at offset `at` of `file`.
    fn append(&self, file: &File, at: u64, bytes: &[u8]) -> io::Result<()> {
        let mut writer = file;
        writer.seek(SeekFrom::Start(at))?;
        match self.injected(FaultPoint::Write) {
            None => writer.write_all(bytes),
            Some(FaultKind::Torn) => {
                // The process dies half way through the write: part of the
                // frame reaches the file and nothing runs afterwards.
                writer.write_all(&bytes[..bytes.len() / 2])?;
                self.poisoned.store(true, Ordering::SeqCst);
                Err(FaultKind::Torn.io_error("write"))
            }
            Some(kind) => Err(kind.io_error("write")),
        }
    }

    /// Renames `from` to `to`.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        match self.injected(FaultPoint::Rename) {
            Some(kind) => Err(kind.io_error("rename")),
            None => fs::rename(from, to),
        }
    }

    /// Opens an existing log for reading and appending; `None` if absent.
    fn open_log(&self, path: &Path) -> Result<Option<File>, StorageError> {
        match OpenOptions::new().read(true).write(true).open(path) {
            Ok(file) => Ok(Some(file)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(path)(e)),
        }
    }

    /// Turns a fresh scan of `file` into its slot state, first cutting off
    /// a damaged tail so later appends start on a frame boundary.
    fn settle(&self, file: &File, path: &Path, scan: &Scan<'_>, file_len: usize) -> Result<LogFile, StorageError> {
        let end = to_u64(scan.good_end);
        if scan.good_end < file_len {
            // A poisoned store modifies nothing, not even to repair.
            self.check_poisoned()?;
            tracing::warn!(
                path = %path.display(),
                offset = end,
                bytes = file_len - scan.good_end,
                "cutting off damaged end of storage log"
            );
            file.set_len(end).map_err(io_err(path))?;
            self.sync_file(file, path)?;
        }
        Ok(LogFile::of(end, scan))
    }

    /// Opens the log a slot says exists; its disappearance is an error.
    fn reopen_log(&self, path: &Path) -> Result<File, StorageError> {
        self.open_log(path)?
            .ok_or_else(|| io_err(path)(io::Error::new(io::ErrorKind::NotFound, "storage log vanished")))
    }

    fn load_locked(&self, ns: &Namespace, slot: &mut Slot) -> Result<Loaded, StorageError> {
        let path = self.log_path(ns);
        if matches!(std::mem::replace(slot, Slot::Unknown), Slot::Absent) {
            *slot = Slot::Absent;
            return Ok(Loaded::default());
        }
        let Some(file) = self.open_log(&path)? else {
            *slot = Slot::Absent;
            return Ok(Loaded::default());
        };
        let buf = read_all(&file, &path)?;
        let scan = scan(&buf);
        let problems = report(&path, &scan);
        let records = scan.live.iter().map(|(k, v)| (k.to_vec(), v.to_vec())).collect();
        match self.settle(&file, &path, &scan, buf.len()) {
            Ok(log) => *slot = Slot::Open(log),
            // The data read is still good; the next access retries the repair.
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "could not repair storage log")
            }
        }
        Ok(Loaded { records, problems })
    }

    fn write_locked(&self, ns: &Namespace, slot: &mut Slot, ops: &[WriteOp]) -> Result<(), StorageError> {
        // Rechecked under the lock: another task may have poisoned meanwhile.
        self.check_poisoned()?;
        self.invalidate_snapshot()?;
        let path = self.log_path(ns);
        // The slot stays `Unknown` (forcing a rescan) unless this write
        // completes, so no failure leaves stale state behind.
        let current = match std::mem::replace(slot, Slot::Unknown) {
            Slot::Open(log) => Some(log),
            Slot::Absent => None,
            Slot::Unknown => match self.open_log(&path)? {
                Some(file) => {
                    let buf = read_all(&file, &path)?;
                    let scan = scan(&buf);
                    report(&path, &scan);
                    Some(self.settle(&file, &path, &scan, buf.len())?)
                }
                None => None,
            },
        };

        // The effect of this write on the live set, before touching disk.
        let mut changes: HashMap<&[u8], Option<u64>> = HashMap::new();
        for op in ops {
            match op {
                WriteOp::Put { key, value } => {
                    changes.insert(key, Some(record_size(key.len(), value.len())));
                }
                WriteOp::Delete { key } => {
                    changes.insert(key, None);
                }
            }
        }
        let (mut count, mut live) = current.as_ref().map_or((0, 0), |l| (l.index.len(), l.live));
        for (key, new) in &changes {
            if let Some(old) = current.as_ref().and_then(|l| l.index.get(*key)) {
                count = count.saturating_sub(1);
                live = live.saturating_sub(*old);
            }
            if let Some(new) = new {
                count = count.saturating_add(1);
                live = live.saturating_add(*new);
            }
        }

        if count == 0 {
            // Nothing left: delete the file rather than log tombstones, so
            // `namespaces()` stops listing it.
            if current.is_some() {
                match fs::remove_file(&path) {
                    Ok(()) => self.sync_dir()?,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io_err(&path)(e)),
                }
            }
            *slot = Slot::Absent;
            return Ok(());
        }

        let frame = encode_write(ops)?;
        let (file, mut log, created) = match current {
            Some(log) => (self.reopen_log(&path)?, log, false),
            None => {
                let file = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create_new(true)
                    .open(&path)
                    .map_err(io_err(&path))?;
                let log = LogFile {
                    end: 0,
                    index: HashMap::new(),
                    live: 0,
                };
                (file, log, true)
            }
        };
        if let Err(e) = self.append(&file, log.end, &frame) {
            // Best effort: drop the partial frame now; otherwise the rescan
            // forced by the `Unknown` slot cuts it off.
            if !self.is_poisoned() {
                let _ = file.set_len(log.end);
            }
            return Err(io_err(&path)(e));
        }
        self.sync_file(&file, &path)?;
        if created {
            self.sync_dir()?;
        }
        // Durable: commit the new state.
        log.end = log.end.saturating_add(to_u64(frame.len()));
        for (key, new) in changes {
            match new {
                Some(size) => {
                    log.index.insert(key.to_vec(), size);
                }
                None => {
                    log.index.remove(key);
                }
            }
        }
        log.live = live;

        let dead = log.end.saturating_sub(log.live);
        if dead > log.live && dead > COMPACT_MIN_DEAD {
            log = self.compact(&path, &file, log)?;
        }
        *slot = Slot::Open(log);
        Ok(())
    }

    fn remove_locked(&self, ns: &Namespace, slot: &mut Slot) -> Result<(), StorageError> {
        self.check_poisoned()?;
        self.invalidate_snapshot()?;
        let path = self.log_path(ns);
        // Unknown until the removal is durable.
        *slot = Slot::Unknown;
        match fs::remove_file(&path) {
            Ok(()) => self.sync_dir()?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(&path)(e)),
        }
        *slot = Slot::Absent;
        Ok(())
    }

    fn list(&self) -> Result<Vec<Namespace>, StorageError> {
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(io_err(&self.dir))? {
            let entry = entry.map_err(io_err(&self.dir))?;
            let name = entry.file_name();
            let Some(ns) = name
                .to_str()
                .and_then(|n| n.strip_suffix(LOG_SUFFIX))
                .and_then(parse_hex)
            else {
                continue;
            };
            // An empty file (crash right after creating it) holds no record.
            let meta = entry.metadata().map_err(io_err(&entry.path()))?;
            if meta.is_file() && meta.len() > 0 {
                out.push(ns);
            }
        }
        out.sort_unstable();
        Ok(out)
    }
}

/// Deletes `<name>.log.tmp` files (an interrupted compaction) and a
/// half-written index snapshot.
fn remove_leftovers(dir: &Path) -> Result<(), StorageError> {
    for entry in fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        let name = entry.file_name();
        let is_stray_tmp = name
            .to_str()
            .and_then(|n| n.strip_suffix(TMP_SUFFIX))
            .and_then(parse_hex)
            .is_some()
            || name.to_str() == Some(snapshot::TMP);
        if is_stray_tmp {
            let path = entry.path();
            tracing::warn!(path = %path.display(), "removing leftover of an interrupted compaction");
            fs::remove_file(&path).map_err(io_err(&path))?;
        }
    }
    Ok(())
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StorageError + '_ {
    move |source| {
        if source.kind() == io::ErrorKind::StorageFull {
            StorageError::DiskFull {
                path: path.to_path_buf(),
            }
        } else {
            StorageError::Io {
                path: path.to_path_buf(),
                source,
            }
        }
    }
}

fn to_u64(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// Bytes a live put of this size occupies in a compacted log.
fn record_size(key_len: usize, value_len: usize) -> u64 {
    to_u64(PUT_OVERHEAD.saturating_add(key_len).saturating_add(value_len))
}

fn read_all(file: &File, path: &Path) -> Result<Vec<u8>, StorageError> {
    let mut reader = file;
    let mut buf = Vec::new();
    reader.seek(SeekFrom::Start(0)).map_err(io_err(path))?;
    reader.read_to_end(&mut buf).map_err(io_err(path))?;
    Ok(buf)
}

/// Turns the problems of a scan into reports and log events.
fn report(path: &Path, scan: &Scan<'_>) -> Vec<Problem> {
    scan.problems
        .iter()
        .map(|&(offset, kind)| {
            tracing::warn!(path = %path.display(), offset, %kind, "damaged storage log");
            Problem {
                location: path.display().to_string(),
                offset,
                kind,
            }
        })
        .collect()
}

fn hex(ns: &Namespace) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(64);
    for b in ns {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    s
}

/// Parses exactly 64 lowercase hex digits (the only form `hex` writes).
fn parse_hex(s: &str) -> Option<Namespace> {
    fn digit(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        }
    }
    let bytes = s.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut ns = [0u8; 32];
    for (out, pair) in ns.iter_mut().zip(bytes.chunks_exact(2)) {
        let [hi, lo] = pair else { return None };
        *out = (digit(*hi)? << 4) | digit(*lo)?;
    }
    Some(ns)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let ns: Namespace = std::array::from_fn(|i| (i * 37) as u8);
        assert_eq!(parse_hex(&hex(&ns)), Some(ns));
        assert_eq!(parse_hex(&hex(&ns).to_uppercase()), None);
        assert_eq!(parse_hex("abc"), None);
    }
}
