//! The random editing workload shared by the simulations.

use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::Rng;
use synkro_core::automerge::{AutoCommit, AutomergeError, ROOT, ReadDoc, transaction::Transactable};
use synkro_core::{DocId, Role};

use super::{Sim, below, chance};

/// A few random edits: root scalars, a nested map, a list and a text. Values
/// are 64-bit random so that a put never repeats the current value (Automerge
/// makes no change for that, and the caller asserts that edits change heads).
pub fn random_edit(d: &mut AutoCommit, rng: &mut ChaCha20Rng, who: usize) -> Result<(), AutomergeError> {
    for _ in 0..1 + below(rng, 3) {
        match below(rng, 4) {
            0 => d.put(ROOT, format!("k{}", below(rng, 4)), rng.next_u64() as i64)?,
            1 => {
                if let Some((_, map)) = d.get(ROOT, "map")? {
                    d.put(
                        &map,
                        format!("m{}", below(rng, 6)),
                        format!("{who}:{:x}", rng.next_u64()),
                    )?;
                }
            }
            2 => {
                if let Some((_, list)) = d.get(ROOT, "list")? {
                    let len = d.length(&list);
                    if len > 0 && chance(rng, 1, 4) {
                        d.delete(&list, below(rng, len))?;
                    } else {
                        d.insert(&list, below(rng, len + 1), format!("{who}-{}", rng.next_u32() % 100))?;
                    }
                }
            }
            _ => {
                if let Some((_, text)) = d.get(ROOT, "text")? {
                    let len = d.length(&text);
                    let pos = below(rng, len + 1);
                    let del = below(rng, (len - pos).min(3) + 1);
                    let words = ["a", "bc", "def", " ", "xyz "];
                    d.splice_text(&text, pos, del as isize, words[below(rng, words.len())])?;
                }
            }
        }
    }
    Ok(())
}

pub fn can_write(sim: &Sim, i: usize, doc: &DocId) -> bool {
    sim.nodes[i]
        .node
        .info(doc)
        .is_ok_and(|info| info.readable && info.my_role.is_some_and(Role::can_write))
}

/// Edit on node `i` if it can; returns whether it did.
pub fn edit(sim: &mut Sim, rng: &mut ChaCha20Rng, i: usize, doc: &DocId) -> bool {
    if !can_write(sim, i, doc) {
        return false;
    }
    let label = sim.label.clone();
    sim.act(i, |n| n.change(doc, |d| random_edit(d, rng, i)))
        .unwrap_or_else(|e| panic!("[{label}] node {i} could not edit: {e}"));
    true
}

/// Make sure node `i`'s edits of `doc` are sealed: flush them if they are
/// pending. Whether they are in a chunk now: an edit sealed at once
/// (`seal_at_once`) was already.
pub fn seal(sim: &mut Sim, rng: &mut ChaCha20Rng, i: usize, doc: &DocId) -> bool {
    if !sim.nodes[i].node.is_dirty(doc) {
        return sim.nodes[i].config.seal_at_once;
    }
    flush(sim, rng, i, doc)
}

/// Flush node `i`; returns whether a chunk was sealed.
pub fn flush(sim: &mut Sim, rng: &mut ChaCha20Rng, i: usize, doc: &DocId) -> bool {
    if !sim.nodes[i].node.is_dirty(doc) {
        return false;
    }
    let label = sim.label.clone();
    sim.act(i, |n| n.flush(rng, doc))
        .unwrap_or_else(|e| panic!("[{label}] node {i} could not flush: {e}"))
}
