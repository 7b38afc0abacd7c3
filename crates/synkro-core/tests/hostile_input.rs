//! Hostile bytes from peers: nothing panics, garbage gets the sender
//! disconnected, and tampered data never changes what a node holds.

mod common;

use std::sync::OnceLock;

use common::{Sim, batching, rng};
use proptest::prelude::*;
use synkro_core::access::{AccessOp, Action, Inserted};
use synkro_core::automerge::{ROOT, transaction::Transactable};
use synkro_core::{
    AccessLog, DeviceIdentity, DocId, Effect, Event, MAX_FRAME_LEN, MemberId, Message, Node, Role, SealedChunk,
};

const ATTACKER: MemberId = MemberId([0xa7; 32]);

/// A synced pair (owner 0, writer 1) and every frame their first sync carried.
struct Fixture {
    doc: DocId,
    frames: Vec<Vec<u8>>,
    chunks: Vec<Vec<u8>>,
    ops: Vec<Vec<u8>>,
    /// The owner's records of ops and chunks (keys as stored).
    records: Vec<(Vec<u8>, Vec<u8>)>,
    /// The owner's identity, so a victim can read.
    owner: DeviceIdentity,
}

fn synced(seed: u64) -> (Sim, DocId, Vec<Vec<u8>>, rand_chacha::ChaCha20Rng) {
    let mut rng = rng(seed);
    let mut sim = Sim::new(&mut rng, 2, batching());
    let doc = sim.act(0, |n| n.create_doc(&mut rng)).unwrap();
    sim.act(0, |n| n.change(&doc, |d| d.put(ROOT, "a", "alpha"))).unwrap();
    assert!(sim.act(0, |n| n.flush(&mut rng, &doc)).unwrap());
    let token = sim.act(0, |n| n.share(&mut rng, &doc, Role::Write)).unwrap();
    sim.act(1, |n| n.join(&mut rng, &token)).unwrap();
    sim.trace = Some(Vec::new());
    sim.connect(0, 1);
    sim.run_until_quiet(&mut rng);
    sim.act(1, |n| n.change(&doc, |d| d.put(ROOT, "b", "beta"))).unwrap();
    assert!(sim.act(1, |n| n.flush(&mut rng, &doc)).unwrap());
    sim.run_until_quiet(&mut rng);
    assert_eq!(sim.json(0, &doc), sim.json(1, &doc));
    let frames = sim.trace.take().unwrap().into_iter().map(|(_, _, b)| b).collect();
    (sim, doc, frames, rng)
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let (sim, doc, frames, _) = synced(50);
        let ns = sim.records(0, &doc);
        let chunks = ns
            .values()
            .filter(|v| SealedChunk::decode(v).is_ok())
            .cloned()
            .collect::<Vec<_>>();
        let ops = ns
            .values()
            .filter(|v| AccessOp::decode(v).is_ok())
            .cloned()
            .collect::<Vec<_>>();
        assert!(chunks.len() >= 2 && ops.len() >= 3);
        for kind in 0..4u8 {
            assert!(
                frames.iter().any(|f| matches!(
                    (kind, Message::decode(f)),
                    (0, Ok(Message::Hello { .. }))
                        | (1, Ok(Message::Have { .. }))
                        | (2, Ok(Message::Ops { .. }))
                        | (3, Ok(Message::Chunks { .. }))
                )),
                "the fixture sync carried every message kind"
            );
        }
        let records = ns
            .into_iter()
            .filter(|(_, v)| chunks.contains(v) || ops.contains(v))
            .collect();
        Fixture {
            doc,
            frames,
            chunks,
            ops,
            records,
            owner: sim.nodes[0].identity.clone(),
        }
    })
}

/// The owner's device restarted from its records, with the attacker connected.
fn victim(rng: &mut rand_chacha::ChaCha20Rng) -> Node {
    let f = fixture();
    let mut node = Node::new(f.owner.clone(), batching());
    let report = node.load_doc(rng, f.doc, f.records.clone()).unwrap();
    assert!(report.problems.is_empty());
    node.peer_connected(ATTACKER);
    while node.poll_effect().is_some() {}
    node
}

/// Feed `bytes` from the attacker; return the effects.
fn feed(node: &mut Node, rng: &mut rand_chacha::ChaCha20Rng, bytes: &[u8]) -> Vec<Effect> {
    if let Some(session) = node.session_of(&ATTACKER) {
        node.handle_message(rng, session, bytes);
    }
    let effects: Vec<Effect> = std::iter::from_fn(|| node.poll_effect()).collect();
    // Writes are durable at once here: what waited for them follows.
    let mut all = Vec::new();
    for e in effects {
        if let Effect::Persist { write, .. } = &e {
            node.persisted(*write);
        }
        all.push(e);
    }
    all.extend(std::iter::from_fn(|| node.poll_effect()));
    all
}

fn disconnected(effects: &[Effect]) -> bool {
    effects
        .iter()
        .any(|e| matches!(e, Effect::Disconnect { peer, .. } if *peer == ATTACKER))
}

fn stored(effects: &[Effect]) -> bool {
    effects.iter().any(|e| matches!(e, Effect::Persist { .. }))
}

/// Feed one frame to a node with the attacker connected (reconnecting it if
/// the node dropped it) and check the invariants.
fn attack(node: &mut Node, rng: &mut rand_chacha::ChaCha20Rng, bytes: &[u8], what: &str) -> Vec<Effect> {
    if !node.peers().contains(&ATTACKER) {
        node.peer_connected(ATTACKER);
        while node.poll_effect().is_some() {}
    }
    let effects = feed(node, rng, bytes);
    if Message::decode(bytes).is_err() {
        assert!(disconnected(&effects), "{what}: undecodable frame without a disconnect");
        assert!(!stored(&effects), "{what}: undecodable frame stored something");
        assert!(!node.peers().contains(&ATTACKER));
    }
    effects
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    /// Random bytes: never a panic; undecodable ones disconnect.
    #[test]
    fn random_frames(bytes in proptest::collection::vec(any::<u8>(), 0..600), seed in any::<u64>()) {
        let mut rng = rng(seed);
        let mut node = victim(&mut rng);
        let json = node.read(&fixture().doc, common::json_of).unwrap();
        attack(&mut node, &mut rng, &bytes, "random bytes");
        prop_assert_eq!(node.read(&fixture().doc, common::json_of).unwrap(), json);
    }

    /// Random bytes behind a valid message tag and document id get further
    /// into the decoder.
    #[test]
    fn random_frames_with_valid_prefix(tag in 0u8..4, tail in proptest::collection::vec(any::<u8>(), 0..300), seed in any::<u64>()) {
        let mut rng = rng(seed);
        let mut node = victim(&mut rng);
        let mut bytes = vec![tag];
        if tag > 0 {
            bytes.extend_from_slice(&fixture().doc.0);
        }
        bytes.extend(tail);
        attack(&mut node, &mut rng, &bytes, "tagged random bytes");
        prop_assert!(node.read(&fixture().doc, |_| ()).is_ok());
    }

    #[test]
    fn chunk_decode_survives_anything(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = SealedChunk::decode(&bytes);
    }

    /// Any single flipped bit or truncation of a valid chunk fails to decode.
    #[test]
    fn tampered_chunks_never_verify(which in any::<prop::sample::Index>(), pos in any::<prop::sample::Index>(), bit in 0u8..8, cut in any::<prop::sample::Index>()) {
        let good = which.get(&fixture().chunks);
        let mut flipped = good.clone();
        let at = pos.index(flipped.len());
        flipped[at] ^= 1 << bit;
        prop_assert!(SealedChunk::decode(&flipped).is_err(), "flip at {} of {} verified", at, good.len());
        let cut = cut.index(good.len());
        prop_assert!(SealedChunk::decode(&good[..cut]).is_err());
        prop_assert!(SealedChunk::decode(good).is_ok());
    }

    #[test]
    fn access_log_insert_survives_anything(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let mut log = AccessLog::new(fixture().doc);
        prop_assert!(log.insert(&bytes).is_err());
        prop_assert!(log.is_empty());
    }

    /// Any single flipped bit or truncation of a valid op is refused.
    #[test]
    fn tampered_ops_never_verify(which in any::<prop::sample::Index>(), pos in any::<prop::sample::Index>(), bit in 0u8..8, cut in any::<prop::sample::Index>()) {
        let good = which.get(&fixture().ops);
        let mut log = AccessLog::new(fixture().doc);
        let mut flipped = good.clone();
        let at = pos.index(flipped.len());
        flipped[at] ^= 1 << bit;
        prop_assert!(log.insert(&flipped).is_err(), "flip at {} of {} verified", at, good.len());
        let cut = cut.index(good.len());
        prop_assert!(log.insert(&good[..cut]).is_err());
        prop_assert!(log.is_empty());
        prop_assert!(AccessOp::decode(good).is_ok());
    }

    #[test]
    fn message_decode_survives_anything(which in any::<prop::sample::Index>(), pos in any::<prop::sample::Index>(), bit in 0u8..8, cut in any::<prop::sample::Index>(), junk in proptest::collection::vec(any::<u8>(), 0..200)) {
        let frame = which.get(&fixture().frames);
        let mut flipped = frame.clone();
        flipped[pos.index(frame.len())] ^= 1 << bit;
        let _ = Message::decode(&flipped);
        prop_assert!(Message::decode(&frame[..cut.index(frame.len())]).is_err(), "a strict prefix of a frame decoded");
        let _ = Message::decode(&junk);
        prop_assert!(Message::decode(frame).is_ok());
    }
}

/// Every truncation and every single-bit flip of every frame of a real
/// session, fed to a node that already holds everything: nothing panics,
/// undecodable frames disconnect, and nothing the node holds changes.
#[test]
fn truncated_and_flipped_session_frames() {
    let mut rng = rng(51);
    let f = fixture();
    let mut node = victim(&mut rng);
    let json = node.read(&f.doc, common::json_of).unwrap();
    let info = node.info(&f.doc).unwrap();
    let mut fed = 0;
    for (k, frame) in f.frames.iter().enumerate() {
        let step = (frame.len() / 400).max(1); // keep big frames affordable
        for cut in (0..frame.len()).step_by(step) {
            let e = attack(&mut node, &mut rng, &frame[..cut], &format!("frame {k} cut to {cut}"));
            assert!(disconnected(&e), "frame {k} cut to {cut} was accepted");
            fed += 1;
        }
        for at in (0..frame.len()).step_by(step) {
            for bit in [0, 3, 7] {
                let mut b = frame.clone();
                b[at] ^= 1 << bit;
                let e = attack(&mut node, &mut rng, &b, &format!("frame {k} bit {bit} at {at}"));
                assert!(!stored(&e), "frame {k} with bit {bit} flipped at {at} stored something");
                fed += 1;
            }
        }
    }
    assert!(fed > 1000);
    assert_eq!(node.read(&f.doc, common::json_of).unwrap(), json);
    let after = node.info(&f.doc).unwrap();
    assert_eq!(
        (after.vv, after.log_ops, after.chunks),
        (info.vv, info.log_ops, info.chunks)
    );
}

fn varint(mut v: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return out;
        }
        out.push(b | 0x80);
    }
}

#[test]
fn huge_claimed_lengths_disconnect_without_allocating() {
    let mut rng = rng(52);
    let mut node = victim(&mut rng);
    let doc = fixture().doc.0;
    let mut frames: Vec<Vec<u8>> = Vec::new();
    for n in [u64::from(u32::MAX), u64::MAX, 1 << 40, 1 << 25] {
        // Hello { version: 1, query: <n bytes> } with almost nothing after.
        frames.push([vec![0, 1], varint(n), vec![0; 40]].concat());
        // Have { doc, heads: <n>, .. }
        frames.push([vec![1], doc.to_vec(), varint(n), vec![7; 8]].concat());
        // Ops { doc, ops: <n> }, and one op claiming n bytes.
        frames.push([vec![2], doc.to_vec(), varint(n)].concat());
        frames.push([vec![2], doc.to_vec(), vec![1], varint(n), vec![1; 16]].concat());
        // Chunks { doc, chunks: <n> }, and one chunk claiming n bytes.
        frames.push([vec![3], doc.to_vec(), varint(n), vec![0; 3]].concat());
        frames.push([vec![3], doc.to_vec(), vec![1], varint(n), vec![9; 16]].concat());
        // Query and Answer { ranges: <n bytes> }.
        frames.push([vec![6], varint(n), vec![0; 8]].concat());
        frames.push([vec![7], varint(n), vec![0; 8]].concat());
    }
    // Hello with an overlong varint and a wrong protocol version.
    frames.push(vec![
        0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0,
    ]);
    for (i, frame) in frames.iter().enumerate() {
        assert!(Message::decode(frame).is_err(), "frame {i} decoded");
        let e = attack(&mut node, &mut rng, frame, &format!("huge frame {i}"));
        assert!(disconnected(&e));
    }
    let wrong_version = Message::Hello {
        version: 99,
        query: Vec::new().into(),
    }
    .encode();
    let e = attack(&mut node, &mut rng, &wrong_version, "wrong version");
    assert!(disconnected(&e), "a Hello of another protocol version disconnects");
    assert!(node.read(&fixture().doc, |_| ()).is_ok());
}

#[test]
fn frames_over_the_limit_disconnect() {
    let mut rng = rng(53);
    let mut node = victim(&mut rng);
    let big = vec![0u8; MAX_FRAME_LEN + 1];
    let e = attack(&mut node, &mut rng, &big, "oversized zeros");
    assert!(disconnected(&e));
    // A well-formed message that is too large.
    let msg = Message::Chunks {
        doc: fixture().doc,
        chunks: vec![vec![0u8; MAX_FRAME_LEN].into()],
    }
    .encode();
    assert!(msg.len() > MAX_FRAME_LEN);
    let e = attack(&mut node, &mut rng, &msg, "oversized chunks");
    assert!(disconnected(&e));
    assert!(!stored(&e));
}

#[test]
fn strangers_and_unknown_documents_are_ignored() {
    let mut rng = rng(54);
    let mut node = victim(&mut rng);
    // Not connected: nothing at all happens, even for garbage.
    let stranger = MemberId([0x55; 32]);
    assert_eq!(node.session_of(&stranger), None);
    let old = node.session_of(&ATTACKER).unwrap();
    node.peer_connected(ATTACKER); // a newer session replaces it
    while node.poll_effect().is_some() {}
    node.handle_message(&mut rng, old, b"garbage");
    assert!(node.poll_effect().is_none(), "an old session's frames are ignored");
    // Chunks for a document the node does not hold are not stored.
    let f = fixture();
    let other = DocId([0x42; 32]);
    let msg = Message::Chunks {
        doc: other,
        chunks: f.chunks.iter().map(|c| c.clone().into()).collect(),
    }
    .encode();
    let e = feed(&mut node, &mut rng, &msg);
    assert!(!stored(&e));
    assert!(!node.has_doc(&other));
    // Valid chunks replayed by anyone are duplicates: nothing stored.
    let msg = Message::Chunks {
        doc: f.doc,
        chunks: f.chunks.iter().map(|c| c.clone().into()).collect(),
    }
    .encode();
    let e = feed(&mut node, &mut rng, &msg);
    assert!(!stored(&e));
    assert!(!e.iter().any(|e| matches!(e, Effect::Event(Event::Rejected { .. }))));
}

/// postcard accepts over-long varints, so a relay can re-frame a signed op
/// (e.g. write the signature's length 64 as `c0 00` instead of `40`) without
/// touching what is signed. Such a twin must not count as a different op:
/// op hashes name keys and parents, and every twin would be stored and
/// synced as a new op.
#[test]
fn reframed_ops_are_not_new_ops() {
    let mut rng = rng(55);
    let (mut sim, doc, _, _) = synced(56);
    let token = sim.act(0, |n| n.share(&mut rng, &doc, Role::Read)).unwrap();
    let invite = sim
        .records(0, &doc)
        .values()
        .find(|v| AccessOp::decode(v).is_ok_and(|o| o.hash() == token.invite_op))
        .cloned()
        .unwrap();
    let op = AccessOp::decode(&invite).unwrap();
    assert!(matches!(op.body().action, Action::Invite { .. }));
    // The last 65 bytes are the signature's length (64 = 0x40) and the signature.
    let n = invite.len();
    assert_eq!(invite[n - 65], 0x40);
    let twin = [&invite[..n - 65], &[0xc0, 0x00], &invite[n - 64..]].concat();

    match AccessOp::decode(&twin) {
        Err(_) => {}
        Ok(t) => assert_eq!(t.hash(), op.hash(), "a re-framed op got another hash"),
    }
    let mut log = AccessLog::new(doc);
    for v in sim.records(0, &doc).values().filter(|v| AccessOp::decode(v).is_ok()) {
        assert!(log.insert(v).is_ok());
    }
    let len = log.len();
    let state = log.state().clone();
    assert!(
        !matches!(log.insert(&twin), Ok(Inserted::New | Inserted::Pending)),
        "the twin was inserted as a new op"
    );
    assert_eq!(log.len(), len);
    assert_eq!(log.state(), &state);
}

/// A well-formed invitation token for `doc` that no admin ever issued.
fn forged_token(doc: DocId, parent: synkro_core::OpHash, secret: [u8; 32]) -> synkro_core::InviteToken {
    let mut bytes = vec![1u8]; // token version
    bytes.extend_from_slice(&doc.0);
    bytes.extend_from_slice(&parent.0);
    bytes.push(2); // Role::Write
    bytes.extend_from_slice(&secret);
    format!("synkro1{}", bs58::encode(bytes).into_string()).parse().unwrap()
}

/// Known design issue (see the report): ops are self-authenticating and any
/// connected peer may send them, and unauthorised ops are kept (they may be
/// part of the hash chain). A stranger can therefore make every replica
/// store, forward and re-evaluate (quadratic per insert) junk ops, up to
/// `MAX_LOG_OPS`, after which no admin can change the document's access.
#[test]
fn strangers_cannot_grow_the_access_log() {
    let junk: usize = std::env::var("JUNK").ok().and_then(|s| s.parse().ok()).unwrap_or(200);
    let mut rng = rng(57);
    let mut node = victim(&mut rng);
    let doc = fixture().doc;
    let before = node.info(&doc).unwrap().log_ops;
    // The stranger signs claims of invitations that never existed.
    let mut stranger = Node::new(DeviceIdentity::generate(&mut rng), batching());
    for k in 0..junk {
        let mut secret = [0u8; 32];
        secret[..8].copy_from_slice(&(k as u64).to_le_bytes());
        stranger
            .join(&mut rng, &forged_token(doc, synkro_core::OpHash(doc.0), secret))
            .unwrap();
    }
    while stranger.poll_effect().is_some() {}
    let s = stranger.member_id();
    // Connect them; relay messages both ways until quiet.
    let at_node = node.peer_connected(s);
    let at_stranger = stranger.peer_connected(ATTACKER);
    let started = std::time::Instant::now();
    loop {
        let mut moved = false;
        while let Some(e) = node.poll_effect() {
            match e {
                Effect::Send { message, .. } => {
                    stranger.handle_message(&mut rng, at_stranger, &message);
                    moved = true;
                }
                Effect::Persist { write, .. } => node.persisted(write),
                _ => {}
            }
        }
        while let Some(e) = stranger.poll_effect() {
            match e {
                Effect::Send { message, .. } => {
                    node.handle_message(&mut rng, at_node, &message);
                    moved = true;
                }
                Effect::Persist { write, .. } => stranger.persisted(write),
                _ => {}
            }
        }
        if !moved {
            break;
        }
    }
    let after = node.info(&doc).unwrap().log_ops;
    eprintln!(
        "{junk} junk claims: log {before} -> {after} ops in {:?}",
        started.elapsed()
    );
    assert!(
        after < before + junk / 2,
        "a stranger grew the access log from {before} to {after} ops"
    );
}
