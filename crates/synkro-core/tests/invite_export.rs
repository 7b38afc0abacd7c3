//! Invitation tokens (text round trip, garbage) and encrypted backups
//! (export, import, wrong passphrase, damaged files).

mod common;

use common::{Sim, batching, rng};
use proptest::prelude::*;
use synkro_core::automerge::{ObjType, ROOT, transaction::Transactable};
use synkro_core::{CoreError, DeviceIdentity, DocId, InviteToken, Node, Role};

/// A document with some content, owned by node 0 of a 2-node sim.
fn owned_doc(seed: u64) -> (Sim, DocId, rand_chacha::ChaCha20Rng) {
    let mut rng = rng(seed);
    let mut sim = Sim::new(&mut rng, 2, batching());
    let doc = sim.act(0, |n| n.create_doc(&mut rng)).unwrap();
    sim.act(0, |n| {
        n.change(&doc, |d| {
            d.put(ROOT, "title", "backup me")?;
            let l = d.put_object(ROOT, "items", ObjType::List)?;
            d.insert(&l, 0, 1)?;
            d.insert(&l, 1, "two")?;
            let t = d.put_object(ROOT, "text", ObjType::Text)?;
            d.splice_text(&t, 0, 0, "some text")
        })
    })
    .unwrap();
    assert!(sim.act(0, |n| n.flush(&mut rng, &doc)).unwrap());
    sim.act(0, |n| n.change(&doc, |d| d.put(ROOT, "second", "chunk")))
        .unwrap();
    assert!(sim.act(0, |n| n.flush(&mut rng, &doc)).unwrap());
    sim.act(0, |n| n.set_name(&mut rng, &doc, Some("groceries".into())))
        .unwrap();
    (sim, doc, rng)
}

#[test]
fn token_text_round_trips_and_joins() {
    let (mut sim, doc, mut rng) = owned_doc(10);
    for role in [Role::Read, Role::Write, Role::Admin, Role::Replicate] {
        let token = sim.act(0, |n| n.share(&mut rng, &doc, role)).unwrap();
        let text = token.to_string();
        assert!(text.starts_with("synkro1"), "{text}");
        let parsed: InviteToken = text.parse().unwrap();
        assert_eq!(parsed, token);
        assert_eq!(
            (parsed.doc, parsed.role, parsed.invite_op),
            (doc, role, token.invite_op)
        );
        // Surrounding whitespace (e.g. from copy and paste) is fine.
        assert_eq!(format!("  {text}\n").parse::<InviteToken>().unwrap(), token);
        // The Debug form never shows the secret.
        assert!(!format!("{token:?}").contains(&text[7..]));
    }
    // A parsed token works: node 1 joins and syncs.
    let token: InviteToken = sim
        .act(0, |n| n.share(&mut rng, &doc, Role::Write))
        .unwrap()
        .to_string()
        .parse()
        .unwrap();
    sim.act(1, |n| n.join(&mut rng, &token)).unwrap();
    sim.connect(0, 1);
    sim.run_until_quiet(&mut rng);
    assert_eq!(sim.json(0, &doc), sim.json(1, &doc));
    assert_eq!(sim.nodes[1].node.info(&doc).unwrap().my_role, Some(Role::Write));
}

fn bad_invite(s: &str) {
    match s.parse::<InviteToken>() {
        Err(CoreError::BadInvite(_)) => {}
        other => panic!("{s:?} parsed as {other:?}"),
    }
}

#[test]
fn garbled_tokens_are_bad_invites() {
    let (mut sim, doc, mut rng) = owned_doc(11);
    let text = sim.act(0, |n| n.share(&mut rng, &doc, Role::Read)).unwrap().to_string();
    bad_invite("");
    bad_invite("synkro1");
    bad_invite("synkro2abc");
    bad_invite(&text[1..]);
    bad_invite(&text.replace("synkro1", "SYNKRO1"));
    bad_invite(&format!("{text}0")); // '0' is not base58
    bad_invite(&format!("{text}2")); // one more byte: trailing garbage
    bad_invite(&format!("synkro1{}", "2".repeat(600))); // too long
    let body = &text["synkro1".len()..];
    for cut in 1..body.len() {
        bad_invite(&text[..text.len() - cut]); // every truncation
    }
    // An unsupported token version.
    let mut bytes = bs58::decode(body).into_vec().unwrap();
    assert_eq!(bytes[0], 1, "version 1 is the first byte");
    bytes[0] = 2;
    bad_invite(&format!("synkro1{}", bs58::encode(&bytes).into_string()));
    // A role that does not exist.
    let role_at = 1 + 32 + 32;
    bytes[0] = 1;
    bytes[role_at] = 9;
    bad_invite(&format!("synkro1{}", bs58::encode(&bytes).into_string()));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    /// Arbitrary text never panics; whatever parses prints back to the same token.
    #[test]
    fn token_parsing_never_panics(s in "(synkro1)?[1-9A-HJ-NP-Za-km-z]{0,200}", raw in proptest::collection::vec(any::<u8>(), 0..120)) {
        if let Ok(t) = s.parse::<InviteToken>() {
            prop_assert_eq!(t.to_string().parse::<InviteToken>().unwrap(), t);
        }
        let s2 = format!("synkro1{}", bs58::encode(&raw).into_string());
        if let Ok(t) = s2.parse::<InviteToken>() {
            prop_assert_eq!(t.to_string(), s2);
        }
    }
}

#[test]
fn admin_export_imports_with_content_and_membership() {
    let (mut sim, doc, mut rng) = owned_doc(12);
    let backup = sim.act(0, |n| n.export(&mut rng, &doc, b"correct horse")).unwrap();

    // Node 1 is replaced by a brand-new device that only has the backup.
    let fresh = Node::new(DeviceIdentity::generate(&mut rng), batching());
    let f = fresh.member_id();
    sim.nodes[1] = wrap(fresh);
    assert_eq!(
        sim.act(1, |n| n.import(&mut rng, &backup, b"correct horse")).unwrap(),
        doc
    );
    let info = sim.nodes[1].node.info(&doc).unwrap();
    assert!(info.readable);
    assert_eq!(
        info.my_role,
        Some(Role::Admin),
        "an admin's backup makes the importer a member"
    );
    assert_eq!(info.name.as_deref(), Some("groceries"));
    assert_eq!(sim.heads(1, &doc), sim.heads(0, &doc));
    assert_eq!(sim.json(1, &doc), sim.json(0, &doc));
    // What the import persisted reloads to the same state.
    sim.crash(&mut rng, 1);
    sim.load_all(1);
    assert_eq!(sim.nodes[1].node.info(&doc).unwrap().my_role, Some(Role::Admin));
    assert_eq!(sim.json(1, &doc), sim.json(0, &doc));

    // The importer is a real member: it writes, and the owner accepts both
    // its claim and its chunk.
    sim.act(1, |n| n.change(&doc, |d| d.put(ROOT, "restored", true)))
        .unwrap();
    assert!(sim.act(1, |n| n.flush(&mut rng, &doc)).unwrap());
    sim.connect(0, 1);
    sim.run_until_quiet(&mut rng);
    assert!(
        sim.nodes[0]
            .node
            .info(&doc)
            .unwrap()
            .members
            .iter()
            .any(|(m, r)| *m == f && *r == Role::Admin)
    );
    assert_eq!(sim.json(0, &doc), sim.json(1, &doc));
    assert_eq!(sim.heads(0, &doc), sim.heads(1, &doc));
    assert!(sim.json(0, &doc).unwrap()["restored"].as_bool().unwrap());

    // Importing into a node that already has the document merges harmlessly.
    let before = sim.json(0, &doc);
    assert_eq!(
        sim.act(0, |n| n.import(&mut rng, &backup, b"correct horse")).unwrap(),
        doc
    );
    assert_eq!(sim.json(0, &doc), before);
}

/// Wrap an existing node as a simulated one (its records start empty).
fn wrap(node: Node) -> common::SimNode {
    common::SimNode {
        identity: node.identity().clone(),
        node,
        config: batching(),
        records: Default::default(),
        events: Vec::new(),
        disconnects: Vec::new(),
        crashes: 0,
        disk_full: false,
        unwritten: Default::default(),
    }
}

#[test]
fn non_admin_export_gives_content_but_no_membership() {
    let (mut sim, doc, mut rng) = owned_doc(13);
    let token = sim.act(0, |n| n.share(&mut rng, &doc, Role::Write)).unwrap();
    sim.act(1, |n| n.join(&mut rng, &token)).unwrap();
    sim.connect(0, 1);
    sim.run_until_quiet(&mut rng);
    let backup = sim.act(1, |n| n.export(&mut rng, &doc, b"pw")).unwrap();
    let mut fresh = Node::new(DeviceIdentity::generate(&mut rng), batching());
    fresh.import(&mut rng, &backup, b"pw").unwrap();
    let info = fresh.info(&doc).unwrap();
    assert!(info.readable);
    assert_eq!(info.my_role, None);
    assert_eq!(fresh.read(&doc, common::json_of).ok(), sim.json(0, &doc));
    assert!(
        fresh.change(&doc, |d| d.put(ROOT, "x", 1)).is_err(),
        "no role, no writing"
    );
}

fn bad_backup(node: &mut Node, rng: &mut rand_chacha::ChaCha20Rng, bytes: &[u8], pw: &[u8], what: &str) {
    match node.import(rng, bytes, pw) {
        Err(CoreError::BadBackup) => {}
        other => panic!("{what}: expected BadBackup, got {other:?}"),
    }
    assert!(node.docs().is_empty(), "{what}: nothing was imported");
}

#[test]
fn damaged_backups_and_wrong_passphrases_are_bad_backups() {
    let (mut sim, doc, mut rng) = owned_doc(14);
    let backup = sim.act(0, |n| n.export(&mut rng, &doc, b"right")).unwrap();
    let mut fresh = Node::new(DeviceIdentity::generate(&mut rng), batching());
    bad_backup(&mut fresh, &mut rng, &backup, b"wrong", "wrong passphrase");
    bad_backup(&mut fresh, &mut rng, &backup, b"", "empty passphrase");
    bad_backup(
        &mut fresh,
        &mut rng,
        &backup,
        b"right ",
        "passphrase with a trailing space",
    );

    const HEADER: usize = 62;
    let len = backup.len();
    for cut in [
        0,
        1,
        7,
        8,
        9,
        10,
        21,
        22,
        37,
        38,
        HEADER - 1,
        HEADER,
        HEADER + 1,
        HEADER + 16,
        len / 2,
        len - 16,
        len - 1,
    ] {
        bad_backup(
            &mut fresh,
            &mut rng,
            &backup[..cut],
            b"right",
            &format!("truncated to {cut}"),
        );
    }
    let mut longer = backup.clone();
    longer.push(0);
    bad_backup(&mut fresh, &mut rng, &longer, b"right", "one byte appended");

    // One flipped bit anywhere: magic, version, Argon2 parameters (low bits,
    // so that the derivation stays cheap; high bits are rejected by bounds),
    // salt, nonce, ciphertext, tag.
    let flips: [(usize, u8); 20] = [
        (0, 0x01),
        (7, 0x80),
        (8, 0x01),
        (9, 0x40),
        (10, 0x01),
        (11, 0x02),
        (13, 0x80),
        (14, 0x01),
        (17, 0x80),
        (18, 0x02),
        (21, 0x80),
        (22, 0x01),
        (37, 0x80),
        (38, 0x01),
        (HEADER - 1, 0x80),
        (HEADER, 0x01),
        (HEADER + 5, 0x10),
        (len / 2, 0x04),
        (len - 16, 0x01),
        (len - 1, 0x80),
    ];
    for (at, bit) in flips {
        let mut b = backup.clone();
        b[at] ^= bit;
        bad_backup(
            &mut fresh,
            &mut rng,
            &b,
            b"right",
            &format!("bit {bit:#x} flipped at {at}"),
        );
    }
    // Garbage of every small size, and garbage with the right magic.
    for n in 0..80 {
        let junk: Vec<u8> = (0..n).map(|i| (i * 37 + 11) as u8).collect();
        bad_backup(&mut fresh, &mut rng, &junk, b"right", &format!("{n} junk bytes"));
        let mut magic = b"SYNKROBK".to_vec();
        magic.extend(&junk);
        bad_backup(
            &mut fresh,
            &mut rng,
            &magic,
            b"right",
            &format!("magic + {n} junk bytes"),
        );
    }
    // After all that, the intact backup still imports.
    assert_eq!(fresh.import(&mut rng, &backup, b"right").unwrap(), doc);
    assert_eq!(fresh.read(&doc, common::json_of).ok(), sim.json(0, &doc));
}

/// A document Automerge saved (two actors, merged) comes in with its
/// history, reaches another member, survives a crash; bytes that are not
/// a whole Automerge document make nothing.
#[test]
fn an_automerge_document_comes_in_with_its_history() {
    use synkro_core::automerge::AutoCommit;
    let mut rng = rng(41);
    let mut sim = Sim::new(&mut rng, 2, batching());
    let mut a = AutoCommit::new();
    a.put(ROOT, "title", "Notes").unwrap();
    let base = a.get_heads();
    let mut b = a.fork();
    a.put(ROOT, "a", 1).unwrap();
    b.put(ROOT, "b", 2).unwrap();
    let partial = b.save_after(&base);
    a.merge(&mut b).unwrap();
    let mut heads = a.get_heads();
    heads.sort();

    let doc = sim.act(0, |n| n.import_automerge(&mut rng, &a.save())).unwrap();
    assert_eq!(sim.heads(0, &doc), Some(heads.clone()));
    let token = sim.act(0, |n| n.share(&mut rng, &doc, Role::Write)).unwrap();
    sim.act(1, |n| n.join(&mut rng, &token)).unwrap();
    sim.connect_all();
    sim.run_until_quiet(&mut rng);
    assert_eq!(
        sim.heads(1, &doc),
        Some(heads.clone()),
        "the other member has the same history"
    );
    assert_eq!(
        sim.json(1, &doc),
        Some(serde_json::json!({"title": "Notes", "a": 1, "b": 2}))
    );
    sim.crash(&mut rng, 0);
    sim.load_all(0);
    assert_eq!(sim.heads(0, &doc), Some(heads), "stored: it survives a crash");
    let exported = sim.act(0, |n| n.export_automerge(&doc)).unwrap();
    assert_eq!(AutoCommit::load(&exported).unwrap().get_heads().len(), 2);

    let count = sim.act(0, |n| n.doc_count());
    for bad in [&partial[..], b"not automerge", &[]] {
        let r = sim.act(0, |n| n.import_automerge(&mut rng, bad));
        assert!(matches!(r, Err(CoreError::BadAutomerge(_))), "{r:?}");
    }
    assert_eq!(sim.act(0, |n| n.doc_count()), count, "nothing made");
}
