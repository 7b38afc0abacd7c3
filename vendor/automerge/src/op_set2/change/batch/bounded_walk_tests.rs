//! Differential tests for the bounded walk of sequence objects in
//! `BatchApply::apply`: random concurrent histories on lists and text are
//! applied once with the bounded walk and once with the full walk of every
//! object, and must give the same document and the same patches.
//!
//! Besides the end to end comparison, every bounded walk in a test build is
//! repeated as a full walk inside `apply` (see `FullWalkCheck`), which
//! compares the placement of every op, the successors, the conflict
//! adjustments and the patch log events.
//!
//! `AUTOMERGE_BOUNDED_WALK_CASES=n` runs `n` random cases (64 by default),
//! from seed `AUTOMERGE_BOUNDED_WALK_FIRST_SEED` (0 by default).

use super::{SEQ_WALK_BOUNDED, SEQ_WALK_STATS};
use crate::marks::{ExpandMark, Mark};
use crate::transaction::Transactable;
use crate::{
    ActorId, AutoCommit, Automerge, Change, ChangeHash, ObjId, ObjType, Patch, PatchLog, ReadDoc,
    ScalarValue, TextEncoding, Value, ROOT,
};
use std::collections::HashSet;

struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
    fn percent(&mut self, p: usize) -> bool {
        self.below(100) < p
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

fn actor(n: u8) -> ActorId {
    ActorId::from(vec![n, n, n, n])
}

/// Every list and text object reachable from the root.
fn seq_objects(doc: &AutoCommit) -> Vec<(ObjId, ObjType)> {
    let mut out = vec![];
    let mut stack = vec![(ROOT, ObjType::Map)];
    while let Some((obj, ty)) = stack.pop() {
        let children: Vec<(Value<'_>, ObjId)> = match ty {
            ObjType::Map | ObjType::Table => doc
                .keys(&obj)
                .flat_map(|k| doc.get_all(&obj, k).unwrap())
                .collect(),
            ObjType::List => (0..doc.length(&obj))
                .flat_map(|i| doc.get_all(&obj, i).unwrap())
                .collect(),
            ObjType::Text => vec![],
        };
        for (v, id) in children {
            if let Value::Object(t) = v {
                stack.push((id, t));
            }
        }
        if matches!(ty, ObjType::List | ObjType::Text) {
            out.push((obj, ty));
        }
    }

    out
}

const CHUNKS: &[&str] = &["a", "b", "xy", "é", "😀", "hello", "z", "\u{0301}", "日本"];

fn random_scalar(rng: &mut Rng) -> ScalarValue {
    match rng.below(6) {
        0 => ScalarValue::Int(rng.below(100) as i64),
        1 => ScalarValue::counter(rng.below(10) as i64),
        2 => ScalarValue::Null,
        3 => ScalarValue::Boolean(rng.percent(50)),
        _ => ScalarValue::Str((*rng.pick(CHUNKS)).into()),
    }
}

/// One random edit to a random sequence object. Edits that the document
/// rejects (an index in the middle of a character, ...) are ignored.
fn random_edit(doc: &mut AutoCommit, rng: &mut Rng) {
    let objs = seq_objects(doc);
    let (obj, ty) = rng.pick(&objs).clone();
    let len = doc.length(&obj);
    match ty {
        ObjType::List => match rng.below(12) {
            0..=3 => {
                let _ = doc.insert(&obj, rng.below(len + 1), random_scalar(rng));
            }
            4 => {
                let t = *rng.pick(&[ObjType::Map, ObjType::List, ObjType::Text]);
                if let Ok(child) = doc.insert_object(&obj, rng.below(len + 1), t) {
                    match t {
                        ObjType::Map => doc.put(&child, "k", random_scalar(rng)).unwrap(),
                        ObjType::List => doc.insert(&child, 0, random_scalar(rng)).unwrap(),
                        _ => doc.splice_text(&child, 0, 0, "nested").unwrap(),
                    }
                }
            }
            5 | 6 if len > 0 => {
                let _ = doc.delete(&obj, rng.below(len));
            }
            7 | 8 if len > 0 => {
                let _ = doc.put(&obj, rng.below(len), random_scalar(rng));
            }
            9 | 10 if len > 0 => {
                // increment a counter if there is one nearby
                let at = rng.below(len);
                for i in (at..len).chain(0..at) {
                    if let Ok(Some((Value::Scalar(s), _))) = doc.get(&obj, i) {
                        if matches!(s.as_ref(), ScalarValue::Counter(_)) {
                            doc.increment(&obj, i, rng.below(5) as i64 + 1).unwrap();
                            break;
                        }
                    }
                }
            }
            _ => {
                let pos = rng.below(len + 1);
                let del = rng.below((len - pos).min(3) + 1) as isize;
                let vals: Vec<ScalarValue> =
                    (0..rng.below(3)).map(|_| random_scalar(rng)).collect();
                let _ = doc.splice(&obj, pos, del, vals);
            }
        },
        _ => match rng.below(14) {
            0..=5 => {
                let s: String = (0..rng.below(3) + 1).map(|_| *rng.pick(CHUNKS)).collect();
                let _ = doc.splice_text(&obj, rng.below(len + 1), 0, &s);
            }
            6..=8 if len > 0 => {
                let pos = rng.below(len);
                let del = rng.below((len - pos).min(4)) as isize + 1;
                let _ = doc.splice_text(&obj, pos, del, "");
            }
            9 | 10 if len > 0 => {
                let start = rng.below(len);
                let end = start + 1 + rng.below((len - start).min(6));
                let name = *rng.pick(&["bold", "italic", "link"]);
                let value = match rng.below(3) {
                    0 => ScalarValue::Boolean(true),
                    1 => ScalarValue::Str((*rng.pick(&["x", "y"])).into()),
                    _ => ScalarValue::Int(rng.below(3) as i64),
                };
                let expand = *rng.pick(&[
                    ExpandMark::Before,
                    ExpandMark::After,
                    ExpandMark::Both,
                    ExpandMark::None,
                ]);
                let _ = doc.mark(&obj, Mark::new(name.into(), value, start, end), expand);
            }
            11 if len > 0 => {
                let start = rng.below(len);
                let end = start + 1 + rng.below((len - start).min(6));
                let name = *rng.pick(&["bold", "italic", "link"]);
                let _ = doc.unmark(&obj, name, start, end, ExpandMark::After);
            }
            12 => {
                let _ = doc.split_block(&obj, rng.below(len + 1));
            }
            _ if len > 0 => {
                // overwrite one element of the text
                let _ = doc.put(&obj, rng.below(len), *rng.pick(CHUNKS));
            }
            _ => {}
        },
    }
}

fn edit_and_commit(doc: &mut AutoCommit, rng: &mut Rng, edits: usize) {
    for _ in 0..edits {
        random_edit(doc, rng);
    }
    doc.commit();
}

fn new_changes(
    doc: &mut AutoCommit,
    since: &[ChangeHash],
    seen: &mut HashSet<ChangeHash>,
) -> Vec<Change> {
    doc.get_changes(since)
        .into_iter()
        .filter(|c| seen.insert(c.hash()))
        .collect()
}

/// Apply `batches` to a copy of `doc`, with the bounded walk enabled or not;
/// returns the document and the patches of each batch.
fn apply(doc: &Automerge, batches: &[Vec<Change>], bounded: bool) -> (Automerge, Vec<Vec<Patch>>) {
    let mut doc = doc.clone();
    SEQ_WALK_BOUNDED.with(|f| f.set(Some(bounded)));
    let patches = batches
        .iter()
        .map(|batch| {
            let mut log = PatchLog::active();
            doc.apply_changes_log_patches(batch.clone(), &mut log)
                .unwrap();
            doc.make_patches(&mut log)
        })
        .collect();
    SEQ_WALK_BOUNDED.with(|f| f.set(Some(true)));
    (doc, patches)
}

fn check_case(seed: u64) {
    let mut rng = Rng::new(seed);
    let encoding = *rng.pick(&[
        TextEncoding::UnicodeCodePoint,
        TextEncoding::Utf8CodeUnit,
        TextEncoding::Utf16CodeUnit,
        TextEncoding::GraphemeCluster,
    ]);

    // a shared history, written by several actors, partly concurrently
    let mut base = AutoCommit::new_with_encoding(encoding).with_actor(actor(1));
    let list = base.put_object(&ROOT, "list", ObjType::List).unwrap();
    let text = base.put_object(&ROOT, "text", ObjType::Text).unwrap();
    base.splice_text(&text, 0, 0, "the quick brown fox")
        .unwrap();
    for i in 0..5 {
        base.insert(&list, i, i as i64).unwrap();
    }
    base.commit();
    let rounds = 2 + rng.below(8);
    for round in 0..rounds {
        let n = 1 + rng.below(3);
        let mut forks: Vec<AutoCommit> = (0..n)
            .map(|k| base.fork().with_actor(actor(2 + ((round + k) % 4) as u8)))
            .collect();
        for f in &mut forks {
            let edits = 1 + rng.below(20);
            edit_and_commit(f, &mut rng, edits);
        }
        for f in &mut forks {
            base.merge(f).unwrap();
        }
        // long runs of typing make the objects larger than the batches
        let (obj, ty) = rng.pick(&seq_objects(&base)).clone();
        let start = rng.below(base.length(&obj) + 1);
        for at in start..start + rng.below(60) {
            let r = if ty == ObjType::Text {
                base.splice_text(&obj, at, 0, "t")
            } else {
                base.insert(&obj, at, "t")
            };
            if r.is_err() {
                break;
            }
        }
        base.commit();
    }
    let base_heads = base.get_heads();

    // peers edit concurrently, and sometimes sync with each other
    let peers = 1 + rng.below(3);
    let mut peer_docs: Vec<AutoCommit> = (0..peers)
        .map(|p| base.fork().with_actor(actor(10 + p as u8)))
        .collect();
    let mut seen = HashSet::new();
    let mut batches: Vec<Vec<Change>> = vec![];
    for _ in 0..(1 + rng.below(4)) {
        let p = rng.below(peers);
        let edits = 1 + rng.below(6);
        edit_and_commit(&mut peer_docs[p], &mut rng, edits);
        if peers > 1 && rng.percent(25) {
            let q = (p + 1) % peers;
            let (a, b) = if p < q {
                let (x, y) = peer_docs.split_at_mut(q);
                (&mut x[p], &mut y[0])
            } else {
                let (x, y) = peer_docs.split_at_mut(p);
                (&mut y[0], &mut x[q])
            };
            b.merge(a).unwrap();
        }
        if rng.percent(50) {
            let mut batch = vec![];
            for d in &mut peer_docs {
                batch.extend(new_changes(d, &base_heads, &mut seen));
            }
            batches.push(batch);
        }
    }
    let mut last = vec![];
    for d in &mut peer_docs {
        last.extend(new_changes(d, &base_heads, &mut seen));
    }
    batches.push(last);
    if rng.percent(30) {
        // deliver out of causal order: the queue must hold changes back
        batches.reverse();
    }

    // the receiving document may have concurrent local edits of its own
    let mut target = base.fork().with_actor(actor(20));
    if rng.percent(50) {
        let edits = 1 + rng.below(5);
        edit_and_commit(&mut target, &mut rng, edits);
    }
    let target = target.document().clone();

    let (bounded, bounded_patches) = apply(&target, &batches, true);
    let (full, full_patches) = apply(&target, &batches, false);

    assert_eq!(bounded_patches, full_patches, "seed {seed}: patches differ");
    assert_eq!(
        bounded.hydrate(None),
        full.hydrate(None),
        "seed {seed}: documents differ"
    );
    assert_eq!(
        bounded.save(),
        full.save(),
        "seed {seed}: saved bytes differ"
    );
    assert!(bounded.ops.validate_top_index());

    // the document is the one that loading its own save gives
    let reloaded = Automerge::load_with_options(
        &bounded.save(),
        crate::LoadOptions::new().text_encoding(encoding),
    )
    .unwrap();
    assert_eq!(reloaded.hydrate(None), bounded.hydrate(None), "seed {seed}");

    // Optionally: the patches take the old state to the new one.  This checks
    // the patches of the full walk as much as those of the bounded walk, and
    // 0.12.0 gets some wrong (an increment of the last element of a list and
    // an insert after it: the insert is reported one index too early), so it
    // is off by default.  Not with grapheme clusters: a lone combining
    // character inserted as an element counts as one grapheme but merges with
    // its neighbour.
    if std::env::var("AUTOMERGE_BOUNDED_WALK_PATCH_ORACLE").is_err()
        || encoding == TextEncoding::GraphemeCluster
    {
        return;
    }
    let mut state = target.hydrate(None);
    for patches in bounded_patches {
        // (hydrated text does not carry marks)
        let patches = patches
            .into_iter()
            .filter(|p| !matches!(p.action, crate::PatchAction::Mark { .. }));
        state.apply_patches(encoding, patches).unwrap();
    }
    assert_eq!(
        state,
        bounded.hydrate(None),
        "seed {seed}: patches are wrong"
    );
}

fn cases() -> u64 {
    std::env::var("AUTOMERGE_BOUNDED_WALK_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(64)
}

#[test]
fn bounded_walk_matches_full_walk() {
    SEQ_WALK_STATS.with(|s| s.set(Default::default()));
    let first: u64 = std::env::var("AUTOMERGE_BOUNDED_WALK_FIRST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    for seed in first..first + cases() {
        check_case(seed);
    }
    let stats = SEQ_WALK_STATS.with(|s| s.get());
    // the random cases must exercise starting late and stopping early
    assert!(stats.skips > 0 && stats.stopped_early > 0, "{stats:?}");
}

/// A large text receiving small remote batches through the size heuristic
/// (which the other tests bypass): typing, deleting, overwriting, marking and
/// concurrent inserts after the same element.
#[test]
fn bounded_walk_on_large_text() {
    SEQ_WALK_BOUNDED.with(|f| f.set(None));
    let mut doc = AutoCommit::new().with_actor(actor(1));
    let text = doc.put_object(&ROOT, "text", ObjType::Text).unwrap();
    for i in 0..3000 {
        doc.splice_text(&text, i, 0, "a").unwrap();
        if i % 100 == 0 {
            doc.commit();
        }
    }
    doc.mark(
        &text,
        Mark::new("bold".into(), true, 1000, 1200),
        ExpandMark::After,
    )
    .unwrap();
    doc.commit();
    SEQ_WALK_STATS.with(|s| s.set(Default::default()));
    type Edit<'a> = Box<dyn Fn(&mut AutoCommit) + 'a>;
    let edits: Vec<Edit<'_>> = vec![
        Box::new(|d| d.splice_text(&text, 1500, 0, "X").unwrap()),
        Box::new(|d| d.splice_text(&text, 1100, 0, "in bold").unwrap()),
        Box::new(|d| d.splice_text(&text, 3000, 0, "end").unwrap()),
        Box::new(|d| d.splice_text(&text, 0, 0, "start").unwrap()),
        Box::new(|d| d.splice_text(&text, 2000, 3, "").unwrap()),
        Box::new(|d| d.put(&text, 2500, "Y").unwrap()),
        Box::new(|d| {
            d.mark(
                &text,
                Mark::new("i".into(), true, 1900, 1950),
                ExpandMark::None,
            )
            .unwrap()
        }),
        Box::new(|d| {
            d.unmark(&text, "bold", 1150, 1160, ExpandMark::None)
                .unwrap()
        }),
    ];
    let heads = doc.get_heads();
    for (i, edit) in edits.iter().enumerate() {
        for (j, other) in edits.iter().enumerate() {
            // two peers, each with one edit, arrive in one batch
            let mut a = doc.fork().with_actor(actor(2));
            let mut b = doc.fork().with_actor(actor(3));
            edit(&mut a);
            other(&mut b);
            let mut changes = a.get_changes(&heads);
            changes.extend(b.get_changes(&heads));
            let target = doc.document().clone();
            let (bounded, bp) = apply(&target, std::slice::from_ref(&changes), true);
            let (full, fp) = apply(&target, &[changes], false);
            assert_eq!(bp, fp, "edits {i} {j}");
            assert_eq!(bounded.save(), full.save(), "edits {i} {j}");
        }
    }
    // `apply` set the mode explicitly; the heuristic is covered below
    SEQ_WALK_BOUNDED.with(|f| f.set(None));
    let mut a = doc.fork().with_actor(actor(2));
    a.splice_text(&text, 1500, 0, "X").unwrap();
    let mut target = doc.fork();
    target.apply_changes(a.get_changes(&heads)).unwrap();
    assert_eq!(target.text(&text).unwrap(), a.text(&text).unwrap());
    let stats = SEQ_WALK_STATS.with(|s| s.get());
    SEQ_WALK_BOUNDED.with(|f| f.set(Some(true)));
    assert!(stats.stopped_early > 0, "{stats:?}");
}

/// Concurrent inserts after the same element, with descendants, where the
/// remote ops must skip a long run of later local inserts.
#[test]
fn bounded_walk_skips_concurrent_subtrees() {
    let mut doc = AutoCommit::new().with_actor(actor(5));
    let list = doc.put_object(&ROOT, "list", ObjType::List).unwrap();
    for i in 0..200 {
        doc.insert(&list, i, i as i64).unwrap();
    }
    doc.commit();
    let heads = doc.get_heads();
    // a remote peer with a smaller actor id inserts after element 100 ...
    let mut remote = doc.fork().with_actor(actor(1));
    for i in 0..5 {
        remote.insert(&list, 101 + i, "r").unwrap();
    }
    remote.insert(&list, 50, "r2").unwrap();
    remote.commit();
    // ... while the local peer typed a long run after the same element
    let mut local = doc.fork().with_actor(actor(9));
    for i in 0..100 {
        local.insert(&list, 101 + i, "l").unwrap();
    }
    local.commit();
    let target = local.document().clone();
    let changes = remote.get_changes(&heads);
    let (bounded, bp) = apply(&target, std::slice::from_ref(&changes), true);
    let (full, fp) = apply(&target, &[changes], false);
    assert_eq!(bp, fp);
    assert_eq!(bounded.save(), full.save());
}
