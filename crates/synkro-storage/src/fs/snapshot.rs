//! A snapshot of one key of every namespace (a repo's index entries),
//! written when the store is closed cleanly, so that the next
//! [`gather`](crate::Storage::gather) of that key reads one file instead of
//! opening every log.
//!
//! The snapshot is true only while no log changed since it was written:
//! the first write or removal after opening deletes it (durably) before
//! touching any log, so a crash at any later point leaves no snapshot and
//! the next gather reads the logs, which win. It is written again when the
//! last handle of the store is dropped, if this process tracked the key
//! exactly: a gather read every namespace (or the snapshot) with no change
//! while it ran, and every change since succeeded.
//!
//! File `gathered.snapshot`:
//!
//! ```text
//! magic "SKS1" | crc32c(body) u32 LE | body_len u64 LE | body
//! body  = key_len u8, key, count u64 LE, count entries sorted by namespace
//! entry = namespace (32 bytes), 0 (no value) | 1 value_len u32 LE value
//! ```

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

use crate::{Gathered, Namespace, WriteOp};

pub(super) const FILE: &str = "gathered.snapshot";
pub(super) const TMP: &str = "gathered.snapshot.tmp";
const MAGIC: &[u8; 4] = b"SKS1";

/// The tracked key's value in every namespace (`None`: it has none).
pub(super) type Values = BTreeMap<Namespace, Option<Vec<u8>>>;

/// What the store knows of the snapshot and of the tracked key.
#[derive(Default)]
pub(super) struct Tracker {
    /// The snapshot file exists and no log changed since it was written.
    pub(super) on_disk: bool,
    /// The tracked key and its value in every namespace, while exact.
    tracked: Option<(Vec<u8>, Values)>,
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

    /// The gather of `key` found `entries`.
    pub(super) fn gathered(&mut self, key: &[u8], entries: &[Gathered]) {
        self.gathering = false;
        self.tracked = match self.raced {
            true => None,
            false => Some((key.to_vec(), entries.iter().map(|g| (g.ns, g.value.clone())).collect())),
        };
    }

    /// `ops` were written to `ns`, which now holds records unless `emptied`;
    /// `ok` is false when the write failed (and may or may not have happened).
    pub(super) fn wrote(&mut self, ns: &Namespace, ops: &[WriteOp], emptied: bool, ok: bool) {
        self.raced |= self.gathering;
        let Some((key, values)) = self.tracked.as_mut() else {
            return;
        };
        if !ok {
            self.tracked = None;
            return;
        }
        if emptied {
            values.remove(ns);
            return;
        }
        // Not tracked yet means it did not exist: it starts with no value.
        let value = values.entry(*ns).or_default();
        for op in ops {
            match op {
                WriteOp::Put { key: k, value: v } if k == key => *value = Some(v.clone()),
                WriteOp::Delete { key: k } if k == key => *value = None,
                _ => {}
            }
        }
    }

    /// `ns` was removed (`ok`: durably; otherwise maybe).
    pub(super) fn removed(&mut self, ns: &Namespace, ok: bool) {
        self.raced |= self.gathering;
        match self.tracked.as_mut() {
            Some((_, values)) if ok => {
                values.remove(ns);
            }
            _ => self.tracked = None,
        }
    }

    /// What to write at closing, if anything.
    pub(super) fn to_write(&self) -> Option<(&[u8], &Values)> {
        match (&self.tracked, self.on_disk) {
            (Some((key, values)), false) => Some((key, values)),
            _ => None,
        }
    }
}

/// Reads the snapshot in `dir` if it is there, intact, and of `key`.
pub(super) fn read(dir: &Path, key: &[u8]) -> Option<Vec<Gathered>> {
    let path = dir.join(FILE);
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot read the index snapshot; reading every log");
            return None;
        }
    };
    let parsed = parse(&bytes, key);
    if parsed.is_none() {
        tracing::warn!(path = %path.display(), "damaged index snapshot; reading every log");
    }
    parsed
}

fn parse(bytes: &[u8], key: &[u8]) -> Option<Vec<Gathered>> {
    let mut r = Reader(bytes);
    if r.take(4)? != MAGIC {
        return None;
    }
    let crc = u32::from_le_bytes(r.array()?);
    let len = usize::try_from(u64::from_le_bytes(r.array()?)).ok()?;
    let body = r.take(len)?;
    if !r.0.is_empty() || crc32c::crc32c(body) != crc {
        return None;
    }
    let mut r = Reader(body);
    let key_len = usize::from(r.take(1)?[0]);
    if r.take(key_len)? != key {
        return None; // a snapshot of another key
    }
    let count = u64::from_le_bytes(r.array()?);
    let mut out = Vec::new();
    let mut last: Option<Namespace> = None;
    for _ in 0..count {
        let ns: Namespace = r.array()?;
        if last.is_some_and(|l| l >= ns) {
            return None;
        }
        last = Some(ns);
        let value = match r.take(1)?[0] {
            0 => None,
            1 => {
                let len = usize::try_from(u32::from_le_bytes(r.array()?)).ok()?;
                Some(r.take(len)?.to_vec())
            }
            _ => return None,
        };
        out.push(Gathered {
            ns,
            value,
            problems: Vec::new(),
        });
    }
    r.0.is_empty().then_some(out)
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

/// Bounds-checked reading of untrusted bytes.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
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
        for i in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[i] ^= 0x40;
            assert!(parse(&damaged, b"I").is_none(), "byte {i} flipped");
            assert!(parse(&bytes[..i], b"I").is_none(), "cut at {i}");
        }
    }
}
