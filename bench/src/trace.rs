//! A reproducible editing trace shaped like the automerge-perf paper trace
//! (one author writing a paper: 182k insertions, 77k deletions, 105k
//! characters left): typing at a cursor that mostly moves locally,
//! backspacing, and occasional jumps elsewhere. Seeded, so every run and
//! both peers replay the same keystrokes.

use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};
use synkro::automerge::transaction::Transactable;
use synkro::automerge::{AutoCommit, AutomergeError, ObjId, ObjType, ROOT};

/// One keystroke: at `pos`, delete `delete` characters and insert `insert`.
pub struct Edit {
    pub pos: usize,
    pub delete: usize,
    pub insert: Option<char>,
}

/// `n` keystrokes from `seed`.
pub fn edits(n: usize, seed: u64) -> Vec<Edit> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (mut len, mut cursor) = (0usize, 0usize);
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let roll = rng.next_u32() % 1000;
        if roll < 15 && len > 0 {
            cursor = (rng.next_u64() % (len as u64 + 1)) as usize;
        }
        if roll < 700 || cursor == 0 {
            // ~70% typing, as in the paper trace.
            let ch = if rng.next_u32() % 6 == 0 {
                ' '
            } else {
                char::from(b'a' + (rng.next_u32() % 26) as u8)
            };
            out.push(Edit {
                pos: cursor,
                delete: 0,
                insert: Some(ch),
            });
            cursor += 1;
            len += 1;
        } else {
            out.push(Edit {
                pos: cursor - 1,
                delete: 1,
                insert: None,
            });
            cursor -= 1;
            len -= 1;
        }
    }
    out
}

/// Create the text at `text` in `doc` (one change).
pub fn start(doc: &mut AutoCommit) -> Result<ObjId, AutomergeError> {
    doc.put_object(ROOT, "text", ObjType::Text)
}

/// Apply one keystroke to the text `text`.
pub fn apply(doc: &mut AutoCommit, text: &ObjId, e: &Edit) -> Result<(), AutomergeError> {
    let mut buf = [0u8; 4];
    let insert = e.insert.map_or("", |c| c.encode_utf8(&mut buf));
    doc.splice_text(text, e.pos, e.delete as isize, insert)
}

/// The trace as a plain Automerge document, one change per keystroke, saved.
pub fn build(edits: &[Edit]) -> Result<Vec<u8>, AutomergeError> {
    let mut doc = AutoCommit::new();
    let text = start(&mut doc)?;
    doc.commit();
    for e in edits {
        apply(&mut doc, &text, e)?;
        doc.commit();
    }
    Ok(doc.save())
}
