//! A repo shared by tabs: one host node writes the store, guest nodes of
//! the same device read it, take the host's writes as `stored_elsewhere`,
//! and hand their edits to the host. Every tab converges, guests write
//! nothing, the store holds one chunk per (author, seq), and a new host
//! rebuilt from the store after the old one died takes a guest's edits
//! that were never stored.

mod common;

use std::collections::BTreeMap;

use automerge::{ROOT, ReadDoc, transaction::Transactable};
use common::{Records, heads_of, json_of, rebuild, rng, stored_chunks};
use rand_chacha::ChaCha20Rng;
use synkro_core::{CoreError, DeviceIdentity, DocId, Effect, Instant, Node, NodeConfig, Role};

struct Tabs {
    rng: ChaCha20Rng,
    identity: DeviceIdentity,
    host: Node,
    guests: Vec<Node>,
    store: Records,
    now: u64,
}

fn guest_config() -> NodeConfig {
    NodeConfig {
        guest: true,
        ..NodeConfig::default()
    }
}

impl Tabs {
    fn new(guests: usize) -> Self {
        let mut rng = rng(7);
        let identity = DeviceIdentity::generate(&mut rng);
        let host = Node::new(identity.clone(), NodeConfig::default());
        let guests = (0..guests)
            .map(|_| Node::new(identity.clone(), guest_config()))
            .collect();
        Tabs {
            rng,
            identity,
            host,
            guests,
            store: BTreeMap::new(),
            now: 0,
        }
    }

    /// Run every tab until nothing moves: the host's writes reach the
    /// store and every guest, guests' edits reach the host.
    fn settle(&mut self) {
        for _ in 0..20 {
            self.now += 100;
            let now = Instant::from_millis(self.now);
            let mut moved = false;
            let mut forwarded = Vec::new();
            for g in &mut self.guests {
                g.handle_timeout(&mut self.rng, now);
                while let Some(e) = g.poll_effect() {
                    match e {
                        Effect::ForHost { doc, changes } => forwarded.push((doc, changes)),
                        Effect::Persist { .. } => panic!("a guest wrote to the store"),
                        Effect::Load { doc } => {
                            let records = self.store[&doc].clone().into_iter().collect();
                            g.load_doc(&mut self.rng, doc, records).unwrap();
                        }
                        _ => {}
                    }
                }
            }
            for (doc, changes) in forwarded {
                moved = true;
                self.host.take_from_guest(doc, changes).unwrap();
            }
            self.host.handle_timeout(&mut self.rng, now);
            while let Some(e) = self.host.poll_effect() {
                match e {
                    Effect::Persist {
                        write,
                        doc,
                        puts,
                        deletes,
                    } => {
                        moved = true;
                        let ns = self.store.entry(doc).or_default();
                        for k in deletes {
                            ns.remove(&k);
                        }
                        for (k, v) in &puts {
                            ns.insert(k.clone(), v.clone());
                        }
                        self.host.persisted(write);
                        // Stored: every guest hears it.
                        for g in &mut self.guests {
                            g.stored_elsewhere(&mut self.rng, doc, puts.clone());
                        }
                    }
                    Effect::Load { doc } => {
                        let records = self.store[&doc].clone().into_iter().collect();
                        self.host.load_doc(&mut self.rng, doc, records).unwrap();
                    }
                    _ => {}
                }
            }
            if !moved {
                return;
            }
        }
        panic!("the tabs did not settle");
    }

    /// A fresh host node from the store, as the next host tab builds it.
    fn rebuilt(&mut self, label: &str) -> Node {
        rebuild(
            &mut self.rng,
            &self.identity,
            &NodeConfig::default(),
            &self.store,
            label,
        )
    }

    /// Guest `i`'s edits, handed over at its next `handle_timeout` (the
    /// runtime would post them to the host).
    fn handed_over(&mut self, i: usize) -> Vec<(DocId, Vec<Vec<u8>>)> {
        self.guests[i].handle_timeout(&mut self.rng, Instant::from_millis(self.now + 1));
        let mut handed = Vec::new();
        while let Some(e) = self.guests[i].poll_effect() {
            if let Effect::ForHost { doc, changes } = e {
                handed.push((doc, changes));
            }
        }
        handed
    }

    fn json(node: &Node, doc: &DocId) -> serde_json::Value {
        node.read(doc, json_of).unwrap()
    }

    fn heads(node: &Node, doc: &DocId) -> Vec<automerge::ChangeHash> {
        node.read(doc, heads_of).unwrap()
    }

    fn assert_converged(&self, doc: &DocId) {
        let want = Self::json(&self.host, doc);
        for (i, g) in self.guests.iter().enumerate() {
            assert_eq!(Self::json(g, doc), want, "guest {i}");
            assert_eq!(Self::heads(g, doc), Self::heads(&self.host, doc), "guest {i} heads");
        }
    }
}

/// A document made by the host, known to every guest.
fn shared_doc(t: &mut Tabs) -> DocId {
    let doc = t.host.create_doc(&mut t.rng).unwrap();
    t.host.change(&doc, |d| d.put(ROOT, "title", "list")).unwrap();
    t.settle();
    for g in &mut t.guests {
        let records = t.store[&doc].clone().into_iter().collect();
        if g.read(&doc, |_| ()).is_err() {
            g.load_doc(&mut t.rng, doc, records).unwrap();
        }
    }
    doc
}

#[test]
fn guests_edit_live_through_the_host_and_never_write() {
    let mut t = Tabs::new(2);
    let doc = shared_doc(&mut t);
    t.assert_converged(&doc);

    // Concurrent edits in every tab, several rounds.
    for round in 0..5i64 {
        t.host.change(&doc, |d| d.put(ROOT, "host", round)).unwrap();
        t.guests[0].change(&doc, |d| d.put(ROOT, "a", round)).unwrap();
        t.guests[1].change(&doc, |d| d.put(ROOT, "b", round)).unwrap();
        t.settle();
        t.assert_converged(&doc);
    }
    let v = Tabs::json(&t.host, &doc);
    assert_eq!(
        (v["host"].as_i64(), v["a"].as_i64(), v["b"].as_i64()),
        (Some(4), Some(4), Some(4))
    );

    // The store holds this device's chunks with distinct seqs, and a node
    // rebuilt from it (as the next host is) reads the same.
    let (changes, _) = stored_chunks(&t.store[&doc]);
    let mut seqs: Vec<u64> = changes.iter().map(|c| c.header().seq).collect();
    let n = seqs.len();
    seqs.sort_unstable();
    seqs.dedup();
    assert_eq!(seqs.len(), n, "a seq was used twice");
    let fresh = t.rebuilt("after tabs");
    assert_eq!(Tabs::json(&fresh, &doc), v);
}

#[test]
fn a_guest_refuses_what_would_write_and_the_host_refuses_foreign_changes() {
    let mut t = Tabs::new(1);
    let doc = shared_doc(&mut t);
    let g = &mut t.guests[0];
    assert!(matches!(g.create_doc(&mut t.rng), Err(CoreError::Guest(_))));
    assert!(matches!(
        g.share(&mut t.rng, &doc, Role::Write),
        Err(CoreError::Guest(_))
    ));
    assert!(matches!(g.take_from_guest(doc, Vec::new()), Err(CoreError::Guest(_))));

    // A change by an actor that is not this device's: refused, nothing applied.
    let mut other = automerge::AutoCommit::new();
    other.put(ROOT, "forged", true).unwrap();
    let forged = other.save();
    let before = Tabs::json(&t.host, &doc);
    let changes = automerge::Automerge::load(&forged)
        .unwrap()
        .get_changes(&[])
        .into_iter()
        .map(|c| c.raw_bytes().to_vec())
        .collect();
    assert!(matches!(
        t.host.take_from_guest(doc, changes),
        Err(CoreError::BadAutomerge(_))
    ));
    assert!(matches!(
        t.host.take_from_guest(doc, vec![b"not a change".to_vec()]),
        Err(CoreError::BadAutomerge(_))
    ));
    assert_eq!(Tabs::json(&t.host, &doc), before);
    assert!(!t.host.is_dirty(&doc));
}

#[test]
fn a_new_host_takes_the_edits_the_old_one_never_stored() {
    let mut t = Tabs::new(2);
    let doc = shared_doc(&mut t);
    // Guest 0 edits; the host takes the edits, then dies before storing them.
    t.guests[0].change(&doc, |d| d.put(ROOT, "kept", "yes")).unwrap();
    let handed = t.handed_over(0);
    assert_eq!(handed.len(), 1);
    t.host.take_from_guest(doc, handed[0].1.clone()).unwrap();

    // Guest 1 becomes the host: a fresh node from the store; guest 0 hands
    // over again what was never acknowledged.
    let mut host = t.rebuilt("new host");
    assert!(Tabs::json(&host, &doc).get("kept").is_none());
    host.take_from_guest(doc, handed[0].1.clone()).unwrap();
    t.host = host;
    t.guests.remove(1);
    // Handing the same edits over twice is harmless.
    t.host.take_from_guest(doc, handed[0].1.clone()).unwrap();
    t.settle();
    t.assert_converged(&doc);
    let fresh = t.rebuilt("after take-over");
    assert_eq!(Tabs::json(&fresh, &doc)["kept"], "yes");
    assert!(fresh.read(&doc, |d| d.get(ROOT, "kept").unwrap().is_some()).unwrap());
}

#[test]
fn a_guest_that_becomes_the_host_seals_its_own_edits_the_old_host_never_stored() {
    let mut t = Tabs::new(2);
    let doc = shared_doc(&mut t);
    // Guest 0 edits twice; its edits are handed over, and the host dies
    // before storing them.
    t.guests[0].change(&doc, |d| d.put(ROOT, "first", 1)).unwrap();
    t.guests[0].change(&doc, |d| d.put(ROOT, "second", 2)).unwrap();
    let handed: Vec<Vec<u8>> = t.handed_over(0).into_iter().flat_map(|(_, c)| c).collect();
    assert!(!handed.is_empty());
    // Guest 0 becomes the host in place and takes its own edits back.
    let mut host = t.guests.remove(0);
    host.become_host();
    host.take_from_guest(doc, handed).unwrap();
    t.host = host;
    // It edits on as host: the new edit depends on the unstored ones.
    t.host.change(&doc, |d| d.put(ROOT, "third", 3)).unwrap();
    t.settle();
    t.assert_converged(&doc);
    let fresh = t.rebuilt("after promotion");
    let v = Tabs::json(&fresh, &doc);
    assert_eq!(
        (v["first"].as_i64(), v["second"].as_i64(), v["third"].as_i64()),
        (Some(1), Some(2), Some(3))
    );
}
