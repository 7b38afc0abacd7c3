//! A document's log in JetStream: how one write becomes messages, and how
//! the messages read back (untrusted bytes) become its records.
//!
//! A write is one frame of `synkro_storage::frame` (checksummed ops). When
//! the frame fits in one message it is that message's payload, and the
//! message is the write's commit point. A larger frame is cut into parts,
//! each a message carrying [`PART`] = `i/n` and [`WRITE`] = the write's id;
//! the write counts once its last part is stored, in the order of that part.
//! A write whose parts are not all there (its writer died half way, or is
//! still sending) is left out: its writer was never told it was durable.

use std::collections::{BTreeMap, HashMap};

use synkro_storage::frame::decode_frame;
use synkro_storage::{MAX_WRITE_LEN, ProblemKind, WriteOp};

/// Header naming the part a message holds: `i/n`, `i` counted from 1.
pub(crate) const PART: &str = "Synkro-Part";
/// Header naming the store that published a message.
pub(crate) const WRITER: &str = "Synkro-Writer";
/// Header naming the write a part belongs to.
pub(crate) const WRITE: &str = "Synkro-Write";

/// Most parts one write may be cut into (with 1 MiB messages, a write of
/// `MAX_WRITE_LEN` needs 129).
const MAX_PARTS: usize = 4096;

/// One message of a log as read back.
pub(crate) struct Entry<'a> {
    /// Its sequence in the stream.
    pub(crate) seq: u64,
    /// [`PART`] and [`WRITE`], if present.
    pub(crate) part: Option<&'a str>,
    pub(crate) write: Option<&'a str>,
    pub(crate) payload: &'a [u8],
}

/// A write's part count and the parts arrived so far.
type Parts = (usize, Vec<Option<Vec<u8>>>);

/// Folds a log's messages, in stream order, into live records.
#[derive(Default)]
pub(crate) struct Replay {
    live: BTreeMap<Vec<u8>, Vec<u8>>,
    /// Writes whose parts are still arriving, by id.
    partial: HashMap<String, Parts>,
    problems: Vec<(u64, ProblemKind)>,
    messages: usize,
    bytes: usize,
}

/// What a replay found.
pub(crate) struct Replayed {
    /// Live records, sorted by key.
    pub(crate) live: BTreeMap<Vec<u8>, Vec<u8>>,
    /// Damaged messages: (stream sequence, what was wrong).
    pub(crate) problems: Vec<(u64, ProblemKind)>,
    /// Messages read and their payload bytes: what compaction would save.
    pub(crate) messages: usize,
    pub(crate) bytes: usize,
    /// Some write's parts were not all there.
    pub(crate) unfinished: bool,
}

impl Replay {
    pub(crate) fn push(&mut self, entry: Entry<'_>) {
        self.messages += 1;
        self.bytes = self.bytes.saturating_add(entry.payload.len());
        let (Some(part), Some(write)) = (entry.part, entry.write) else {
            self.apply(entry.seq, entry.payload);
            return;
        };
        let Some((i, n)) = parse_part(part) else {
            self.problems.push((entry.seq, ProblemKind::BadFrame));
            return;
        };
        let (count, parts) = self
            .partial
            .entry(write.to_owned())
            .or_insert_with(|| (n, vec![None; n]));
        let Some(slot) = parts.get_mut(i - 1).filter(|_| *count == n) else {
            self.problems.push((entry.seq, ProblemKind::BadFrame));
            return;
        };
        *slot = Some(entry.payload.to_vec());
        let held: usize = parts.iter().flatten().map(Vec::len).sum();
        if held > MAX_WRITE_LEN + 64 {
            self.partial.remove(write);
            self.problems.push((entry.seq, ProblemKind::BadFrame));
            return;
        }
        if parts.iter().all(Option::is_some) {
            let frame: Vec<u8> = parts.iter().flatten().flatten().copied().collect();
            self.partial.remove(write);
            self.apply(entry.seq, &frame);
        }
    }

    fn apply(&mut self, seq: u64, frame: &[u8]) {
        match decode_frame(frame) {
            Ok(ops) => {
                for op in ops {
                    match op {
                        WriteOp::Put { key, value } => {
                            self.live.insert(key, value);
                        }
                        WriteOp::Delete { key } => {
                            self.live.remove(&key);
                        }
                    }
                }
            }
            Err(kind) => self.problems.push((seq, kind)),
        }
    }

    pub(crate) fn finish(self) -> Replayed {
        Replayed {
            live: self.live,
            problems: self.problems,
            messages: self.messages,
            bytes: self.bytes,
            unfinished: !self.partial.is_empty(),
        }
    }
}

/// `i/n` with 1 ≤ i ≤ n ≤ [`MAX_PARTS`].
fn parse_part(s: &str) -> Option<(usize, usize)> {
    let (i, n) = s.split_once('/')?;
    let (i, n) = (i.parse::<usize>().ok()?, n.parse::<usize>().ok()?);
    (1..=MAX_PARTS).contains(&n).then_some(())?;
    (1..=n).contains(&i).then_some((i, n))
}

/// A frame cut into messages of at most `max` bytes each (at least one).
pub(crate) fn split(frame: &[u8], max: usize) -> Vec<&[u8]> {
    frame.chunks(max.max(1)).collect()
}

#[cfg(test)]
mod tests {
    use synkro_storage::frame::encode_write;

    use super::*;

    fn put(k: &[u8], v: &[u8]) -> WriteOp {
        WriteOp::Put {
            key: k.to_vec(),
            value: v.to_vec(),
        }
    }

    fn frame(ops: &[WriteOp]) -> Vec<u8> {
        encode_write(ops).unwrap_or_else(|e| panic!("encode: {e}"))
    }

    fn whole(seq: u64, payload: &[u8]) -> Entry<'_> {
        Entry {
            seq,
            part: None,
            write: None,
            payload,
        }
    }

    fn part<'a>(seq: u64, part: &'a str, write: &'a str, payload: &'a [u8]) -> Entry<'a> {
        Entry {
            seq,
            part: Some(part),
            write: Some(write),
            payload,
        }
    }

    #[test]
    fn writes_apply_in_order_and_deletes_remove() {
        let mut r = Replay::default();
        let (a, b) = (
            frame(&[put(b"a", b"1"), put(b"b", b"2")]),
            frame(&[WriteOp::Delete { key: b"a".to_vec() }]),
        );
        r.push(whole(1, &a));
        r.push(whole(2, &b));
        let got = r.finish();
        assert_eq!(
            got.live.into_iter().collect::<Vec<_>>(),
            vec![(b"b".to_vec(), b"2".to_vec())]
        );
        assert!(got.problems.is_empty() && !got.unfinished);
        assert_eq!(got.messages, 2);
    }

    #[test]
    fn parts_count_at_their_last_part_and_missing_parts_leave_the_write_out() {
        let big = frame(&[put(b"k", &[7u8; 100])]);
        let parts = split(&big, 50);
        assert_eq!(parts.len(), 3);
        let later = frame(&[put(b"k", b"later")]);
        let mut r = Replay::default();
        r.push(part(1, "1/3", "w", parts[0]));
        r.push(part(2, "2/3", "w", parts[1]));
        // Another writer's whole write lands between the parts...
        r.push(whole(3, &later));
        // ...and the big write commits after it, so it wins.
        r.push(part(4, "3/3", "w", parts[2]));
        let got = r.finish();
        assert_eq!(got.live.get(b"k".as_slice()), Some(&vec![7u8; 100]));
        assert!(!got.unfinished);

        let mut r = Replay::default();
        r.push(whole(1, &later));
        r.push(part(2, "1/3", "x", parts[0]));
        r.push(part(3, "3/3", "x", parts[2]));
        let got = r.finish();
        assert_eq!(got.live.get(b"k".as_slice()), Some(&b"later".to_vec()));
        assert!(got.unfinished && got.problems.is_empty());
    }

    #[test]
    fn damaged_messages_are_reported_and_skipped() {
        let good = frame(&[put(b"a", b"1")]);
        let mut bad = good.clone();
        let last = bad.len() - 1;
        bad[last] ^= 0xff;
        let mut r = Replay::default();
        r.push(whole(1, &bad));
        r.push(whole(2, b"not a frame"));
        r.push(part(3, "0/2", "w", &good));
        r.push(part(4, "3/2", "w", &good));
        r.push(part(5, "1/99999", "w", &good));
        r.push(part(6, "1/2", "v", &good));
        r.push(part(7, "1/3", "v", &good));
        r.push(whole(8, &good));
        let got = r.finish();
        assert_eq!(
            got.problems,
            vec![
                (1, ProblemKind::BadChecksum),
                (2, ProblemKind::BadFrame),
                (3, ProblemKind::BadFrame),
                (4, ProblemKind::BadFrame),
                (5, ProblemKind::BadFrame),
                (7, ProblemKind::BadFrame),
            ]
        );
        assert_eq!(got.live.len(), 1);
    }
}
