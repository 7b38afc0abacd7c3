//! A snapshot of one key of every namespace (a repo's index entries),
//! written when the store is closed cleanly, so that the next
//! [`gather`](crate::Storage::gather) of that key reads one file instead of
//! opening every log.
//!
//! The snapshot is true only while no log changed since it was written:
//! the first write or removal after opening moves it aside (durably) before
//! touching any log, so a crash at any later point leaves no snapshot and
//! the next gather reads the logs, which win. It is written again when the
//! last handle of the store is dropped, if this process tracked the key
//! exactly: a gather read every namespace (or the snapshot) with no change
//! while it ran, and every change since succeeded.
//!
//! What this process tracks is small: the changes since the gather. The
//! values the gather found stay in the file, moved aside as
//! `gathered.base` (never read at opening: it is not true any more), and
//! the next snapshot is that base with the changes applied. Only a gather
//! that read the logs (no snapshot: the first opening, or after a crash)
//! keeps the values it found in memory, for want of a file holding them.
//!
//! File `gathered.snapshot` (and `gathered.base`):
//!
//! ```text
//! magic "SKS1" | crc32c(body) u32 LE | body_len u64 LE | body
//! body  = key_len u8, key, count u64 LE, count entries sorted by namespace
//! entry = namespace (32 bytes), 0 (no value) | 1 value_len u32 LE value
//! ```

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::Path;

use crate::{Gathered, Namespace, WriteOp};

pub(super) const FILE: &str = "gathered.snapshot";
pub(super) const TMP: &str = "gathered.snapshot.tmp";
/// The last snapshot, moved aside by the first change after it.
pub(super) const BASE: &str = "gathered.base";
const MAGIC: &[u8; 4] = b"SKS1";

/// The tracked key's value in every namespace (`None`: it has none).
pub(super) type Values = BTreeMap<Namespace, Option<Vec<u8>>>;

/// Where the values the gather found are.
enum Base {
    /// In the snapshot file: `FILE` while it is on disk, `BASE` after the
    /// first change moved it aside.
    File,
    /// Here (the gather read the logs).
    Values(Values),
}

/// What happened to a namespace since the gather.
enum Change {
    /// Written, with the tracked key untouched: it exists (with no value if
    /// the base does not have it).
    Touched,
    /// The tracked key was set (`Some`) or deleted (`None`).
    Value(Option<Vec<u8>>),
    /// Removed, or emptied by a compaction.
    Gone,
}

/// The tracked key's values as the gather found them, and what changed.
struct Tracked {
    key: Vec<u8>,
    base: Base,
    changes: BTreeMap<Namespace, Change>,
}

/// What the store knows of the snapshot and of the tracked key.
#[derive(Default)]
pub(super) struct Tracker {
    /// The snapshot file exists and no log changed since it was written.
    pub(super) on_disk: bool,
    /// The tracked key and its changes, while exact.
    tracked: Option<Tracked>,
    /// A gather is reading the logs.
    gathering: bool,
    /// A change came while it did: what it found may be stale.
    raced: bool,
}

impl Tracker {
    pub(super) fn new(on_disk: bool) -> Self {
        Tracker {
            on_disk,
            ..Tracker::default()
        }
    }

    /// A gather starts.
    pub(super) fn gathering(&mut self) {
        self.gathering = true;
        self.raced = false;
    }

    /// The gather of `key` found `entries`, in the snapshot file
    /// (`from_file`) or in the logs.
    pub(super) fn gathered(&mut self, key: &[u8], entries: &[Gathered], from_file: bool) {
        self.gathering = false;
        self.tracked = (!self.raced).then(|| Tracked {
            key: key.to_vec(),
            base: match from_file {
                true => Base::File,
                false => Base::Values(entries.iter().map(|g| (g.ns, g.value.clone())).collect()),
            },
            changes: BTreeMap::new(),
        });
    }

    /// Is the snapshot file the base of what is tracked? Then the first
    /// change moves it aside instead of removing it.
    pub(super) fn needs_base(&self) -> bool {
        matches!(&self.tracked, Some(Tracked { base: Base::File, .. }))
    }

    /// `ops` were written to `ns`, which now holds records unless `emptied`;
    /// `ok` is false when the write failed (and may or may not have happened).
    pub(super) fn wrote(&mut self, ns: &Namespace, ops: &[WriteOp], emptied: bool, ok: bool) {
        self.raced |= self.gathering;
        let Some(tracked) = self.tracked.as_mut() else {
            return;
        };
        if !ok {
            self.tracked = None;
            return;
        }
        if emptied {
            tracked.changes.insert(*ns, Change::Gone);
            return;
        }
        let change = tracked.changes.entry(*ns).or_insert(Change::Touched);
        if matches!(change, Change::Gone) {
            // It did not exist: it starts with no value.
            *change = Change::Value(None);
        }
        for op in ops {
            match op {
                WriteOp::Put { key, value } if *key == tracked.key => *change = Change::Value(Some(value.clone())),
                WriteOp::Delete { key } if *key == tracked.key => *change = Change::Value(None),
                _ => {}
            }
        }
    }

    /// `ns` was removed (`ok`: durably; otherwise maybe).
    pub(super) fn removed(&mut self, ns: &Namespace, ok: bool) {
        self.raced |= self.gathering;
        match self.tracked.as_mut() {
            Some(tracked) if ok => {
                tracked.changes.insert(*ns, Change::Gone);
            }
            _ => self.tracked = None,
        }
    }

    /// The snapshot was written: it holds everything tracked, and is the
    /// base from now on.
    pub(super) fn written(&mut self) {
        self.on_disk = true;
        if let Some(tracked) = self.tracked.as_mut() {
            tracked.base = Base::File;
            tracked.changes.clear();
        }
    }

    /// What to write at closing, if anything: the key and its values now,
    /// read from the base in `dir` where they are kept there.
    pub(super) fn to_write(&self, dir: &Path) -> Option<(&[u8], Values)> {
        let tracked = self.tracked.as_ref().filter(|_| !self.on_disk)?;
        let mut values = match &tracked.base {
            Base::Values(values) => values.clone(),
            Base::File => {
                let base = read_file(&dir.join(BASE), &tracked.key)?;
                base.into_iter().map(|g| (g.ns, g.value)).collect()
            }
        };
        for (ns, change) in &tracked.changes {
            match change {
                Change::Touched => {
                    values.entry(*ns).or_insert(None);
                }
                Change::Value(v) => {
                    values.insert(*ns, v.clone());
                }
                Change::Gone => {
                    values.remove(ns);
                }
            }
        }
        Some((&tracked.key, values))
    }
}

/// Reads the snapshot in `dir` if it is there, intact, and of `key`.
pub(super) fn read(dir: &Path, key: &[u8]) -> Option<Vec<Gathered>> {
    read_file(&dir.join(FILE), key)
}

/// Reads the snapshot file at `path` if it is there, intact, and of `key`.
/// Read as a stream (the file of a large home is tens of megabytes, and
/// what is read from it is kept anyway); a damaged file is found by its
/// checksum at the end, and then nothing read from it is used.
fn read_file(path: &Path, key: &[u8]) -> Option<Vec<Gathered>> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot read the index snapshot; reading every log");
            return None;
        }
    };
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let parsed = parse(io::BufReader::with_capacity(64 << 10, file), size, key);
    if parsed.is_none() {
        tracing::warn!(path = %path.display(), "damaged index snapshot; reading every log");
    }
    parsed
}

/// Parses a snapshot of `size` bytes from `input` (untrusted).
fn parse(input: impl Read, size: u64, key: &[u8]) -> Option<Vec<Gathered>> {
    let mut head = Reader {
        input,
        left: size,
        crc: None,
    };
    if head.take_array::<4>()? != *MAGIC {
        return None;
    }
    let crc = u32::from_le_bytes(head.take_array()?);
    let len = u64::from_le_bytes(head.take_array()?);
    if len != head.left {
        return None;
    }
    let mut r = Reader {
        input: head.input,
        left: len,
        crc: Some(0),
    };
    let key_len = usize::from(r.take_array::<1>()?[0]);
    if r.take(key_len)? != key {
        return None; // a snapshot of another key
    }
    let count = u64::from_le_bytes(r.take_array()?);
    // Each entry takes at least 33 bytes: no more room than the body holds.
    let mut out = Vec::with_capacity(usize::try_from(count.min(r.left / 33)).ok()?);
    let mut last: Option<Namespace> = None;
    for _ in 0..count {
        let ns: Namespace = r.take_array()?;
        if last.is_some_and(|l| l >= ns) {
            return None;
        }
        last = Some(ns);
        let value = match r.take_array::<1>()?[0] {
            0 => None,
            1 => {
                let len = usize::try_from(u32::from_le_bytes(r.take_array()?)).ok()?;
                Some(r.take(len)?)
            }
            _ => return None,
        };
        out.push(Gathered {
            ns,
            value,
            problems: Vec::new(),
        });
    }
    (r.left == 0 && r.crc == Some(crc)).then_some(out)
}

/// Writes the snapshot into `dir`: a temporary file, synced, renamed over.
/// The caller syncs the directory.
pub(super) fn write(dir: &Path, key: &[u8], values: &Values) -> io::Result<()> {
    let key_len = u8::try_from(key.len()).map_err(|_| io::Error::other("key too long"))?;
    let mut body = vec![key_len];
    body.extend_from_slice(key);
    body.extend_from_slice(&(values.len() as u64).to_le_bytes());
    for (ns, value) in values {
        body.extend_from_slice(ns);
        match value {
            None => body.push(0),
            Some(v) => {
                let len = u32::try_from(v.len()).map_err(|_| io::Error::other("value too long"))?;
                body.push(1);
                body.extend_from_slice(&len.to_le_bytes());
                body.extend_from_slice(v);
            }
        }
    }
    let tmp = dir.join(TMP);
    let mut file = File::create(&tmp)?;
    file.write_all(MAGIC)?;
    file.write_all(&crc32c::crc32c(&body).to_le_bytes())?;
    file.write_all(&(body.len() as u64).to_le_bytes())?;
    file.write_all(&body)?;
    file.sync_all()?;
    fs::rename(&tmp, dir.join(FILE))
}

/// Bounds-checked reading of untrusted bytes: never past `left`, with a
/// running checksum of what was read (when `crc` is set).
struct Reader<R> {
    input: R,
    left: u64,
    crc: Option<u32>,
}

impl<R: Read> Reader<R> {
    fn take(&mut self, n: usize) -> Option<Vec<u8>> {
        if self.left < n as u64 {
            return None;
        }
        let mut buf = vec![0; n];
        self.fill(&mut buf)?;
        Some(buf)
    }

    fn take_array<const N: usize>(&mut self) -> Option<[u8; N]> {
        if self.left < N as u64 {
            return None;
        }
        let mut buf = [0; N];
        self.fill(&mut buf)?;
        Some(buf)
    }

    fn fill(&mut self, buf: &mut [u8]) -> Option<()> {
        self.input.read_exact(buf).ok()?;
        self.left -= buf.len() as u64;
        self.crc = self.crc.map(|c| crc32c::crc32c_append(c, buf));
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_damage() {
        let dir = tempfile::tempdir().unwrap();
        let values: BTreeMap<Namespace, Option<Vec<u8>>> = [
            ([1; 32], Some(b"one".to_vec())),
            ([2; 32], None),
            ([3; 32], Some(Vec::new())),
        ]
        .into();
        write(dir.path(), b"I", &values).unwrap();
        let read_back = read(dir.path(), b"I").unwrap();
        let got: BTreeMap<_, _> = read_back.into_iter().map(|g| (g.ns, g.value)).collect();
        assert_eq!(got, values);
        assert!(read(dir.path(), b"J").is_none(), "another key");
        let bytes = fs::read(dir.path().join(FILE)).unwrap();
        let parse = |b: &[u8]| parse(b, b.len() as u64, b"I");
        assert!(parse(&bytes).is_some());
        for i in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[i] ^= 0x40;
            assert!(parse(&damaged).is_none(), "byte {i} flipped");
            assert!(parse(&bytes[..i]).is_none(), "cut at {i}");
        }
        // A size that claims more than the file holds.
        assert!(super::parse(&bytes[..], bytes.len() as u64 + 1, b"I").is_none());
    }
}
