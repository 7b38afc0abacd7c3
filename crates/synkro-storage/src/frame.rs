//! The frame codec: what one [`Storage::write`](crate::Storage::write)
//! becomes in bytes, and how untrusted bytes (torn tails, flipped bits,
//! garbage) are read back into records and problems. `FsStorage` appends
//! frames to a log file; a store that keeps writes as messages (a NATS
//! JetStream stream) sends one frame per message ([`encode_write`],
//! [`decode_frame`]).
//!
//! A frame is `MAGIC ‖ payload_len (u32 LE) ‖ crc32c(payload) (u32 LE) ‖
//! payload`; the payload is `op_count (u32 LE)` then per op `TAG_PUT ‖
//! key_len (u8) ‖ value_len (u32 LE) ‖ key ‖ value` or `TAG_DELETE ‖
//! key_len (u8) ‖ key`.

// Browsers only decode single frames.
#![cfg_attr(target_arch = "wasm32", allow(dead_code))]

use std::collections::BTreeMap;

use crate::{MAX_KEY_LEN, MAX_VALUE_LEN, MAX_WRITE_LEN, ProblemKind, StorageError, WriteOp, write_len};

/// Start of every frame; also what resynchronisation scans for.
const MAGIC: [u8; 4] = [0xA7, b'S', b'K', b'1'];
/// magic + payload_len + crc.
const HEADER_LEN: usize = 12;
const TAG_PUT: u8 = 1;
const TAG_DELETE: u8 = 2;
/// Fixed bytes of an encoded put besides key and value: tag, key_len, value_len.
pub(crate) const PUT_OVERHEAD: usize = 6;

// The encoding stores key lengths in one byte and payload lengths in four.
const _: () = assert!(MAX_KEY_LEN <= u8::MAX as usize);
const _: () = assert!(MAX_WRITE_LEN <= u32::MAX as usize);
const _: () = assert!(MAX_VALUE_LEN + MAX_KEY_LEN + PUT_OVERHEAD + 4 <= MAX_WRITE_LEN);

// ---------------------------------------------------------------------------
// Encoding

/// Builds one frame: header placeholder, op count, ops; `finish` fills the
/// header in.
pub(crate) struct FrameBuilder {
    pub(crate) buf: Vec<u8>,
    pub(crate) count: u32,
}

impl FrameBuilder {
    pub(crate) fn new(payload_capacity: usize) -> Self {
        let mut buf = Vec::with_capacity(HEADER_LEN + 4 + payload_capacity);
        buf.resize(HEADER_LEN + 4, 0);
        FrameBuilder { buf, count: 0 }
    }

    pub(crate) fn payload_len(&self) -> usize {
        self.buf.len().saturating_sub(HEADER_LEN)
    }

    fn key(&mut self, tag: u8, key: &[u8]) -> Result<(), StorageError> {
        let len = u8::try_from(key.len())
            .ok()
            .filter(|&l| l > 0)
            .ok_or(StorageError::InvalidKey { len: key.len() })?;
        self.count = self.count.checked_add(1).ok_or(StorageError::TooLarge {
            len: usize::MAX,
            max: MAX_WRITE_LEN,
        })?;
        self.buf.push(tag);
        self.buf.push(len);
        self.buf.extend_from_slice(key);
        Ok(())
    }

    pub(crate) fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), StorageError> {
        let too_large = StorageError::TooLarge {
            len: value.len(),
            max: MAX_VALUE_LEN,
        };
        if value.len() > MAX_VALUE_LEN {
            return Err(too_large);
        }
        let value_len = u32::try_from(value.len()).map_err(|_| too_large)?;
        self.key(TAG_PUT, key)?;
        self.buf.extend_from_slice(&value_len.to_le_bytes());
        self.buf.extend_from_slice(value);
        Ok(())
    }

    pub(crate) fn delete(&mut self, key: &[u8]) -> Result<(), StorageError> {
        self.key(TAG_DELETE, key)
    }

    pub(crate) fn finish(mut self) -> Result<Vec<u8>, StorageError> {
        let payload_len = self.payload_len();
        let too_large = StorageError::TooLarge {
            len: payload_len,
            max: MAX_WRITE_LEN,
        };
        if payload_len > MAX_WRITE_LEN {
            return Err(too_large);
        }
        let len = u32::try_from(payload_len).map_err(|_| too_large)?;
        // `new` made the buffer at least HEADER_LEN + 4 bytes long.
        let (header, payload) = self.buf.split_at_mut(HEADER_LEN);
        payload[..4].copy_from_slice(&self.count.to_le_bytes());
        let crc = crc32c::crc32c(payload);
        header[..4].copy_from_slice(&MAGIC);
        header[4..8].copy_from_slice(&len.to_le_bytes());
        header[8..12].copy_from_slice(&crc.to_le_bytes());
        Ok(self.buf)
    }
}

/// One write as one frame, checksummed. Rejects what
/// [`Storage::write`](crate::Storage::write) rejects: empty or over-long
/// keys, values over [`MAX_VALUE_LEN`], writes over [`MAX_WRITE_LEN`].
pub fn encode_write(ops: &[WriteOp]) -> Result<Vec<u8>, StorageError> {
    let mut frame = FrameBuilder::new(write_len(ops));
    for op in ops {
        match op {
            WriteOp::Put { key, value } => frame.put(key, value)?,
            WriteOp::Delete { key } => frame.delete(key)?,
        }
    }
    frame.finish()
}

// ---------------------------------------------------------------------------
// Decoding. Everything here works on untrusted bytes: only checked slicing,
// no length-driven allocation, no arithmetic that can overflow.

enum Op<'a> {
    Put(&'a [u8], &'a [u8]),
    Delete(&'a [u8]),
}

struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1)?.first().copied()
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
}

/// Decodes a payload whose checksum matched; `None` if it is malformed.
fn decode(payload: &[u8]) -> Option<Vec<Op<'_>>> {
    let mut cur = Cursor(payload);
    let count = usize::try_from(cur.u32()?).ok()?;
    // Every op takes at least 3 bytes, which bounds the allocation.
    let mut ops = Vec::with_capacity(count.min(cur.0.len() / 3));
    for _ in 0..count {
        let tag = cur.u8()?;
        let key_len = usize::from(cur.u8()?);
        if key_len == 0 {
            return None;
        }
        let key = cur.take(key_len)?;
        match tag {
            TAG_PUT => {
                let value_len = usize::try_from(cur.u32()?).ok()?;
                if value_len > MAX_VALUE_LEN {
                    return None;
                }
                ops.push(Op::Put(key, cur.take(value_len)?));
            }
            TAG_DELETE => ops.push(Op::Delete(key)),
            _ => return None,
        }
    }
    cur.0.is_empty().then_some(ops)
}

/// The ops of `buf`, which must be exactly one intact frame as
/// [`encode_write`] makes them; otherwise what is wrong with it.
pub fn decode_frame(buf: &[u8]) -> Result<Vec<WriteOp>, ProblemKind> {
    match frame_at(buf, 0) {
        FrameAt::Intact { payload, end } if end == buf.len() => {
            let ops = decode(payload).ok_or(ProblemKind::BadFrame)?;
            Ok(ops
                .into_iter()
                .map(|op| match op {
                    Op::Put(key, value) => WriteOp::Put {
                        key: key.to_vec(),
                        value: value.to_vec(),
                    },
                    Op::Delete(key) => WriteOp::Delete { key: key.to_vec() },
                })
                .collect())
        }
        FrameAt::Intact { .. } | FrameAt::BadHeader => Err(ProblemKind::BadFrame),
        FrameAt::Partial => Err(ProblemKind::TornTail),
        FrameAt::BadChecksum { .. } => Err(ProblemKind::BadChecksum),
    }
}

/// What sits at one offset of a log.
enum FrameAt<'a> {
    /// A whole frame with a matching checksum, ending at `end`.
    Intact { payload: &'a [u8], end: usize },
    /// The start of a frame cut off by the end of the file.
    Partial,
    /// No frame: wrong magic or impossible length.
    BadHeader,
    /// A whole frame (as far as its header says) with a wrong checksum.
    BadChecksum { end: usize },
}

fn frame_at(buf: &[u8], pos: usize) -> FrameAt<'_> {
    let Some(rest) = buf.get(pos..) else {
        return FrameAt::BadHeader;
    };
    let magic_len = rest.len().min(MAGIC.len());
    if rest.get(..magic_len) != MAGIC.get(..magic_len) {
        return FrameAt::BadHeader;
    }
    let mut header = Cursor(rest);
    let (Some(_), Some(len), Some(crc)) = (header.take(4), header.u32(), header.u32()) else {
        return FrameAt::Partial;
    };
    let Ok(len) = usize::try_from(len) else {
        return FrameAt::BadHeader;
    };
    if len > MAX_WRITE_LEN {
        return FrameAt::BadHeader;
    }
    let Some(payload) = header.take(len) else {
        return FrameAt::Partial;
    };
    let Some(end) = pos.checked_add(HEADER_LEN).and_then(|p| p.checked_add(len)) else {
        return FrameAt::BadHeader;
    };
    if crc32c::crc32c(payload) == crc {
        FrameAt::Intact { payload, end }
    } else {
        FrameAt::BadChecksum { end }
    }
}

/// First offset at or after `from` where an intact frame starts.
fn next_intact(buf: &[u8], from: usize) -> Option<usize> {
    let mut at = from;
    loop {
        let found = buf.get(at..)?.windows(MAGIC.len()).position(|w| w == MAGIC)?;
        let candidate = at.checked_add(found)?;
        if let FrameAt::Intact { .. } = frame_at(buf, candidate) {
            return Some(candidate);
        }
        at = candidate.checked_add(1)?;
    }
}

/// The result of reading a whole log.
pub(crate) struct Scan<'a> {
    /// Live records after replaying every intact frame, sorted by key.
    pub(crate) live: BTreeMap<&'a [u8], &'a [u8]>,
    /// Damage found: (offset, kind).
    pub(crate) problems: Vec<(u64, ProblemKind)>,
    /// End of the last intact frame when the file ends in damage, else the
    /// file length: where the file should be cut.
    pub(crate) good_end: usize,
}

fn to_u64(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

pub(crate) fn scan(buf: &[u8]) -> Scan<'_> {
    let mut live = BTreeMap::new();
    let mut problems = Vec::new();
    let mut pos = 0;
    let mut good_end = buf.len();
    while pos < buf.len() {
        let (kind, end_hint) = match frame_at(buf, pos) {
            FrameAt::Intact { payload, end } => {
                match decode(payload) {
                    Some(ops) => {
                        for op in ops {
                            match op {
                                Op::Put(key, value) => {
                                    live.insert(key, value);
                                }
                                Op::Delete(key) => {
                                    live.remove(key);
                                }
                            }
                        }
                    }
                    // Checksum fine but contents not: skip just this frame.
                    None => problems.push((to_u64(pos), ProblemKind::BadFrame)),
                }
                pos = end;
                continue;
            }
            FrameAt::Partial => (ProblemKind::TornTail, None),
            FrameAt::BadHeader => (ProblemKind::BadFrame, None),
            FrameAt::BadChecksum { end } => (ProblemKind::BadChecksum, Some(end)),
        };
        // Resynchronise: trust the damaged frame's length if an intact frame
        // starts right after it, else scan byte by byte for the next one.
        let next = end_hint
            .filter(|&end| matches!(frame_at(buf, end), FrameAt::Intact { .. }))
            .or_else(|| pos.checked_add(1).and_then(|from| next_intact(buf, from)));
        match next {
            Some(next) => {
                // A "partial" frame followed by intact ones is not a torn
                // write but a damaged length field.
                let kind = if kind == ProblemKind::TornTail {
                    ProblemKind::BadFrame
                } else {
                    kind
                };
                problems.push((to_u64(pos), kind));
                pos = next;
            }
            None => {
                problems.push((to_u64(pos), kind));
                good_end = pos;
                break;
            }
        }
    }
    Scan {
        live,
        problems,
        good_end,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(ops: &[WriteOp]) -> Vec<u8> {
        match encode_write(ops) {
            Ok(f) => f,
            Err(e) => panic!("encode failed: {e}"),
        }
    }

    pub(crate) fn put(k: &[u8], v: &[u8]) -> WriteOp {
        WriteOp::Put {
            key: k.to_vec(),
            value: v.to_vec(),
        }
    }

    #[test]
    fn encode_decode_round_trip() {
        let f = frame(&[put(b"a", b"1"), WriteOp::Delete { key: b"b".to_vec() }]);
        let s = scan(&f);
        assert!(s.problems.is_empty());
        assert_eq!(s.good_end, f.len());
        assert_eq!(s.live.into_iter().collect::<Vec<_>>(), vec![(&b"a"[..], &b"1"[..])]);
    }

    #[test]
    fn one_frame_decodes_and_damage_is_named() {
        let ops = [put(b"a", b"1"), WriteOp::Delete { key: b"b".to_vec() }];
        let f = frame(&ops);
        assert_eq!(decode_frame(&f), Ok(ops.to_vec()));
        let mut flipped = f.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert_eq!(decode_frame(&flipped), Err(ProblemKind::BadChecksum));
        assert_eq!(decode_frame(&f[..f.len() - 1]), Err(ProblemKind::TornTail));
        let mut two = f.clone();
        two.extend(&f);
        assert_eq!(decode_frame(&two), Err(ProblemKind::BadFrame));
        assert_eq!(decode_frame(b"garbage"), Err(ProblemKind::BadFrame));
    }

    #[test]
    fn damaged_length_is_not_mistaken_for_a_torn_tail() {
        let mut buf = frame(&[put(b"a", b"1")]);
        let second = buf.len();
        buf.extend(frame(&[put(b"b", b"2")]));
        buf.extend(frame(&[put(b"c", b"3")]));
        // Make the second frame claim to run past the end of the file.
        buf[second + 4..second + 8].copy_from_slice(&1_000_000u32.to_le_bytes());
        let s = scan(&buf);
        assert_eq!(s.problems, vec![(to_u64(second), ProblemKind::BadFrame)]);
        assert_eq!(s.good_end, buf.len());
        assert_eq!(s.live.len(), 2);
    }

    #[test]
    fn valid_checksum_but_bad_contents_is_skipped() {
        let mut payload = 1u32.to_le_bytes().to_vec();
        payload.extend([9, 1, b'k']); // unknown tag
        let mut buf = MAGIC.to_vec();
        buf.extend((payload.len() as u32).to_le_bytes());
        buf.extend(crc32c::crc32c(&payload).to_le_bytes());
        buf.extend(&payload);
        buf.extend(frame(&[put(b"a", b"1")]));
        let s = scan(&buf);
        assert_eq!(s.problems, vec![(0, ProblemKind::BadFrame)]);
        assert_eq!(s.live.len(), 1);
    }
}
