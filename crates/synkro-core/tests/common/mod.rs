//! A small deterministic in-memory harness for `synkro-core` nodes.
//!
//! * `Sim` owns N [`Node`]s and, for every connected pair, two directed FIFO
//!   queues (libp2p streams are ordered, so order is kept per link).
//! * After every input the node is told the time (`handle_timeout`, which
//!   arms the timers the input started and fires those due) and its effects
//!   are executed: `Send` goes into the link queue (and counts as
//!   transmitted when delivered), `Persist` is applied to the node's
//!   in-memory record map and reported durable at once, `Disconnect` tears
//!   the link down on both sides, `Event`s are collected. [`Sim::advance`]
//!   moves the clock through deliveries and the nodes' own timers (flush
//!   windows) in time order.
//! * A node can be "crashed" and rebuilt from its records with
//!   [`Node::load_doc`], exactly as a runtime would at start-up.
//! * Peers that are not simulated nodes ("outside" peers, e.g. an attacker
//!   driven by the test) can be connected; what nodes send them is recorded.
#![allow(dead_code)]

pub mod workload;

use std::collections::{BTreeMap, VecDeque};

use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};
use synkro_core::automerge::{self, AutoCommit, ChangeHash};
use synkro_core::{
    DeviceIdentity, DocId, Effect, Event, Instant, MemberId, Message, Node, NodeConfig, SealedChunk, SessionId,
    WriteFailure, WriteId,
};

/// One node's durable storage: document namespace → key → value.
pub type Records = BTreeMap<DocId, BTreeMap<Vec<u8>, Vec<u8>>>;

/// Deterministic RNG from a u64 seed.
pub fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

/// Uniform in `0..n` (n > 0); the modulo bias is irrelevant here.
pub fn below<R: Rng + ?Sized>(rng: &mut R, n: usize) -> usize {
    (rng.next_u64() % n as u64) as usize
}

/// True with probability `num / den`.
pub fn chance<R: Rng + ?Sized>(rng: &mut R, num: u32, den: u32) -> bool {
    rng.next_u32() % den < num
}

/// One direction of a connection: (due time, bytes) in FIFO order.
type Link = VecDeque<(u64, Vec<u8>)>;

/// Network faults applied by [`Sim::advance`], per delivery.
#[derive(Clone, Copy, Debug, Default)]
pub struct Faults {
    /// Chance (‰) that a message is lost, resetting its connection.
    pub drop_per_mille: u32,
    /// Chance (‰) that a message is delivered twice.
    pub duplicate_per_mille: u32,
}

/// A write a node asked for: (write, document, puts, deletes).
pub type Unwritten = (WriteId, DocId, Vec<(Vec<u8>, Vec<u8>)>, Vec<Vec<u8>>);

/// A simulated device.
pub struct SimNode {
    /// The live node.
    pub node: Node,
    /// Kept to rebuild the node after a crash.
    pub identity: DeviceIdentity,
    /// Kept to rebuild the node after a crash.
    pub config: NodeConfig,
    /// What the node persisted (puts and deletes applied).
    pub records: Records,
    /// Events, in order.
    pub events: Vec<Event>,
    /// Disconnect effects it issued: (peer, reason).
    pub disconnects: Vec<(MemberId, String)>,
    /// Times it was crashed and reloaded.
    pub crashes: usize,
    /// Its disk is full: writes fail with [`WriteFailure::Full`].
    pub disk_full: bool,
    /// Writes not carried out yet (one failed for lack of room, and those
    /// queued behind it), in order, until the node asks to retry.
    pub unwritten: VecDeque<Unwritten>,
}

impl SimNode {
    /// The node's member id.
    pub fn id(&self) -> MemberId {
        self.identity.member_id()
    }

    /// Count of `Event::Rejected` so far.
    pub fn rejected(&self) -> usize {
        self.events
            .iter()
            .filter(|e| matches!(e, Event::Rejected { .. }))
            .count()
    }
}

/// The simulation.
pub struct Sim {
    /// Nodes, by index.
    pub nodes: Vec<SimNode>,
    /// Directed FIFO queues `(from, to)` of (due time, bytes); present iff
    /// the pair is connected.
    links: BTreeMap<(usize, usize), Link>,
    /// Simulated clock (ms), advanced by [`Sim::advance`].
    pub now: u64,
    /// Latency of every link, drawn per message from `latency.0..=latency.1`
    /// ms (FIFO per link still holds). Only [`Sim::advance`] looks at it.
    pub latency: (u64, u64),
    /// Draws latencies, so `drain` needs no caller RNG (reseed it per run).
    pub latency_rng: ChaCha20Rng,
    /// Randomness of what nodes do when their timers fire (sealing).
    timer_rng: ChaCha20Rng,
    /// Each node's session with each connected node: `(i, j)` → `i`'s session id for `j`.
    sessions: BTreeMap<(usize, usize), SessionId>,
    /// Outside peers connected to a node: (node, peer, the node's session).
    outside_links: Vec<(usize, MemberId, SessionId)>,
    /// Messages nodes sent to outside peers: (from node, peer, bytes).
    pub outside: Vec<(usize, MemberId, Vec<u8>)>,
    /// When `Some`, every delivered message is appended: (from, to, bytes).
    pub trace: Option<Vec<(usize, usize, Vec<u8>)>>,
    /// Messages delivered so far.
    pub delivered: u64,
    /// `Send`s to a peer with no open link (dropped, as a closed stream would).
    pub dropped: u64,
    /// Messages lost in flight by [`Sim::advance`] (each reset its link).
    pub lost: u64,
    /// Messages delivered twice by [`Sim::advance`].
    pub duplicated: u64,
    /// Change chunks the nodes sealed (their own records written).
    pub sealed: u64,
    /// Label used in panic messages (e.g. the seed).
    pub label: String,
}

/// The default config with every edit waiting for its flush window, for
/// tests that make edits and then seal them with an explicit `flush` (which
/// then has them to seal), or that need edits still pending.
pub fn batching() -> NodeConfig {
    NodeConfig {
        seal_at_once: false,
        ..NodeConfig::default()
    }
}

impl Sim {
    /// `n` fresh nodes with identities drawn from `rng`.
    pub fn new(rng: &mut ChaCha20Rng, n: usize, config: NodeConfig) -> Self {
        let nodes = (0..n)
            .map(|_| {
                let identity = DeviceIdentity::generate(rng);
                SimNode {
                    node: Node::new(identity.clone(), config.clone()),
                    identity,
                    config: config.clone(),
                    records: Records::new(),
                    events: Vec::new(),
                    disconnects: Vec::new(),
                    crashes: 0,
                    disk_full: false,
                    unwritten: VecDeque::new(),
                }
            })
            .collect();
        Self {
            nodes,
            links: BTreeMap::new(),
            now: 0,
            latency: (0, 0),
            latency_rng: ChaCha20Rng::seed_from_u64(0),
            timer_rng: ChaCha20Rng::seed_from_u64(rng.next_u64()),
            sessions: BTreeMap::new(),
            outside_links: Vec::new(),
            outside: Vec::new(),
            trace: None,
            delivered: 0,
            dropped: 0,
            lost: 0,
            duplicated: 0,
            sealed: 0,
            label: String::new(),
        }
    }

    /// Member id of node `i`.
    pub fn id(&self, i: usize) -> MemberId {
        self.nodes[i].id()
    }

    fn index_of(&self, m: &MemberId) -> Option<usize> {
        self.nodes.iter().position(|n| n.id() == *m)
    }

    /// Load `doc` into node `i` from what it stored (a runtime's answer to
    /// [`Effect::Load`], or an app opening a handle).
    fn load(&mut self, i: usize, doc: DocId) {
        let label = format!("{} node {i}", self.label);
        let records = self.records(i, &doc);
        load_clean(&mut self.nodes[i].node, &mut self.timer_rng, doc, &records, &label);
    }

    /// Load every document of node `i` that is not in memory (as an app's
    /// handles would), then execute the effects.
    pub fn load_all(&mut self, i: usize) {
        for doc in self.nodes[i].node.docs() {
            if !self.nodes[i].node.is_loaded(&doc) {
                self.load(i, doc);
            }
        }
        self.drain(i);
    }

    /// Drop `doc` from node `i`'s memory if it is idle; says whether it did.
    pub fn unload(&mut self, i: usize, doc: &DocId) -> bool {
        let unloaded = self.nodes[i].node.unload(doc);
        self.drain(i);
        unloaded
    }

    /// Run `f` on node `i` (an app call, on handles that keep its documents
    /// loaded), then execute its effects.
    pub fn act<T>(&mut self, i: usize, f: impl FnOnce(&mut Node) -> T) -> T {
        self.load_all(i);
        let out = f(&mut self.nodes[i].node);
        self.drain(i);
        out
    }

    /// Tell node `i` the time, then execute every pending effect of it, in order.
    pub fn drain(&mut self, i: usize) {
        let now = Instant::from_millis(self.now);
        self.nodes[i].node.handle_timeout(&mut self.timer_rng, now);
        while let Some(effect) = self.nodes[i].node.poll_effect() {
            match effect {
                Effect::Persist {
                    write,
                    doc,
                    puts,
                    deletes,
                } => {
                    for d in &deletes {
                        assert!(
                            !puts.iter().any(|(k, _)| k == d),
                            "[{}] node {i}: one Persist both puts and deletes a key",
                            self.label
                        );
                    }
                    self.nodes[i].unwritten.push_back((write, doc, puts, deletes));
                    if self.nodes[i].unwritten.len() == 1 {
                        self.write(i);
                    } else {
                        // Behind a write that failed for lack of room: it
                        // would fail too, until the node retries.
                        self.nodes[i].node.persist_failed(write, WriteFailure::Full);
                    }
                }
                Effect::RetryWrites => self.write(i),
                Effect::Send { session, peer, message } => match self
                    .index_of(&peer)
                    .filter(|j| self.sessions.get(&(i, *j)) == Some(&session))
                {
                    Some(j) => {
                        let (lo, hi) = self.latency;
                        let due = self.now + lo + self.latency_rng.next_u64() % (hi - lo + 1);
                        match self.links.get_mut(&(i, j)) {
                            Some(q) => {
                                let due = q.back().map_or(due, |(last, _)| due.max(*last));
                                q.push_back((due, message));
                            }
                            None => self.dropped += 1,
                        }
                    }
                    None if self.outside_links.contains(&(i, peer, session)) => self.outside.push((i, peer, message)),
                    None => self.dropped += 1,
                },
                Effect::Disconnect { session, peer, reason } => {
                    self.nodes[i].disconnects.push((peer, reason));
                    match self.index_of(&peer) {
                        Some(j) if self.sessions.get(&(i, j)) == Some(&session) => {
                            self.links.remove(&(i, j));
                            self.links.remove(&(j, i));
                            self.sessions.remove(&(i, j));
                            if let Some(theirs) = self.sessions.remove(&(j, i)) {
                                self.nodes[j].node.peer_disconnected(theirs);
                                self.drain(j);
                            }
                        }
                        Some(_) => {}
                        None => self.outside_links.retain(|l| *l != (i, peer, session)),
                    }
                }
                Effect::Event(e) => self.nodes[i].events.push(e),
                Effect::Load { doc } => self.load(i, doc),
                Effect::ForHost { .. } => panic!("the simulation runs no guest nodes"),
            }
        }
        // Reporting writes may have started timers: arm them, as a driver would.
        if !self.nodes[i].node.timers_armed() {
            self.drain(i);
        }
    }

    /// Carry out node `i`'s unwritten writes in order, until its disk is full.
    fn write(&mut self, i: usize) {
        while let Some((write, doc, puts, deletes)) = self.nodes[i].unwritten.pop_front() {
            if self.nodes[i].disk_full {
                self.nodes[i].node.persist_failed(write, WriteFailure::Full);
                self.nodes[i].unwritten.push_front((write, doc, puts, deletes));
                return;
            }
            let me = self.nodes[i].id();
            let own = |k: &[u8]| k.first() == Some(&b'C') && k.get(1..33) == Some(&me.0[..]);
            self.sealed += puts.iter().filter(|(k, _)| own(k)).count() as u64;
            let ns = self.nodes[i].records.entry(doc).or_default();
            for d in deletes {
                ns.remove(&d);
            }
            for (k, v) in puts {
                ns.insert(k, v);
            }
            self.nodes[i].node.persisted(write);
        }
    }

    /// Are `i` and `j` connected?
    pub fn connected(&self, i: usize, j: usize) -> bool {
        self.links.contains_key(&(i, j))
    }

    /// Open a connection between `i` and `j` (both sides see `peer_connected`).
    pub fn connect(&mut self, i: usize, j: usize) {
        assert!(i != j && !self.connected(i, j), "[{}] bad connect {i}-{j}", self.label);
        self.links.insert((i, j), VecDeque::new());
        self.links.insert((j, i), VecDeque::new());
        let (a, b) = (self.id(i), self.id(j));
        let at_i = self.nodes[i].node.peer_connected(b);
        self.sessions.insert((i, j), at_i);
        self.drain(i);
        let at_j = self.nodes[j].node.peer_connected(a);
        self.sessions.insert((j, i), at_j);
        self.drain(j);
    }

    /// Close the connection between `i` and `j`, dropping what is in flight.
    pub fn disconnect(&mut self, i: usize, j: usize) {
        if self.links.remove(&(i, j)).is_some() | self.links.remove(&(j, i)).is_some() {
            for (x, y) in [(i, j), (j, i)] {
                if let Some(session) = self.sessions.remove(&(x, y)) {
                    self.nodes[x].node.peer_disconnected(session);
                    self.drain(x);
                }
            }
        }
    }

    /// Connect every pair that is not connected yet.
    pub fn connect_all(&mut self) {
        for i in 0..self.nodes.len() {
            for j in i + 1..self.nodes.len() {
                if !self.connected(i, j) {
                    self.connect(i, j);
                }
            }
        }
    }

    /// Connect node `i` to an outside peer `m` driven by the test.
    pub fn connect_outside(&mut self, i: usize, m: MemberId) {
        let session = self.nodes[i].node.peer_connected(m);
        self.outside_links.push((i, m, session));
        self.drain(i);
    }

    /// Deliver `bytes` to node `i` as if sent by (connected) peer `from`.
    pub fn inject(&mut self, rng: &mut ChaCha20Rng, i: usize, from: MemberId, bytes: &[u8]) {
        let session = self
            .outside_links
            .iter()
            .rev()
            .find(|(n, m, _)| *n == i && *m == from)
            .map(|l| l.2)
            .or_else(|| {
                let j = self.index_of(&from)?;
                self.sessions.get(&(i, j)).copied()
            });
        if let Some(session) = session {
            self.nodes[i].node.handle_message(rng, session, bytes);
            self.drain(i);
        }
    }

    /// Messages waiting on all links.
    pub fn pending(&self) -> usize {
        self.links.values().map(VecDeque::len).sum()
    }

    /// Deliver the oldest message of one random non-empty link. Returns false
    /// when nothing is in flight.
    pub fn step(&mut self, rng: &mut ChaCha20Rng) -> bool {
        let busy: Vec<(usize, usize)> = self
            .links
            .iter()
            .filter(|(_, q)| !q.is_empty())
            .map(|(k, _)| *k)
            .collect();
        if busy.is_empty() {
            return false;
        }
        let (from, to) = busy[below(rng, busy.len())];
        self.deliver(rng, from, to);
        true
    }

    /// When the earliest node timer is due (ms), if any.
    fn next_timer(&self) -> Option<(u64, usize)> {
        self.nodes
            .iter()
            .enumerate()
            .filter_map(|(i, n)| n.node.poll_timeout().map(|t| (t.as_duration().as_millis() as u64, i)))
            .min()
    }

    /// Advance the clock to `until`, delivering every message due by then
    /// in due order (ties broken at random) and firing the nodes' timers
    /// when they are due. With `faults`, a delivery may instead be lost,
    /// which resets that connection as a broken stream would, or be
    /// delivered twice. Returns the deliveries made.
    pub fn advance(&mut self, rng: &mut ChaCha20Rng, until: u64, faults: Faults) -> u64 {
        let mut n = 0;
        loop {
            let next = self.links.values().filter_map(|q| q.front().map(|m| m.0)).min();
            if let Some((at, i)) = self
                .next_timer()
                .filter(|(at, _)| *at <= until && next.is_none_or(|d| *at <= d))
            {
                self.now = self.now.max(at);
                self.drain(i);
                continue;
            }
            let Some(due) = next.filter(|d| *d <= until) else {
                break;
            };
            self.now = self.now.max(due);
            let ready: Vec<(usize, usize)> = self
                .links
                .iter()
                .filter(|(_, q)| q.front().is_some_and(|m| m.0 == due))
                .map(|(k, _)| *k)
                .collect();
            let (from, to) = ready[below(rng, ready.len())];
            if chance(rng, faults.drop_per_mille, 1000) {
                self.links.get_mut(&(from, to)).and_then(VecDeque::pop_front);
                self.lost += 1;
                self.disconnect(from, to);
                continue;
            }
            let copy = self.links[&(from, to)].front().map(|m| m.1.clone());
            self.deliver(rng, from, to);
            n += 1;
            if let Some(message) = copy.filter(|_| chance(rng, faults.duplicate_per_mille, 1000)) {
                // The network repeats it: the sender sent it once.
                if let Some(session) = self.sessions.get(&(to, from)).copied() {
                    self.duplicated += 1;
                    self.nodes[to].node.handle_message(rng, session, &message);
                    self.drain(to);
                }
            }
        }
        self.now = self.now.max(until);
        n
    }

    /// Deliver the head of link `from → to`.
    fn deliver(&mut self, rng: &mut ChaCha20Rng, from: usize, to: usize) {
        let Some((_, message)) = self.links.get_mut(&(from, to)).and_then(VecDeque::pop_front) else {
            return;
        };
        if let Some(t) = self.trace.as_mut() {
            t.push((from, to, message.clone()));
        }
        self.delivered += 1;
        // Delivery is when the sender's bytes have left: room in its window.
        if let Some(session) = self.sessions.get(&(from, to)).copied() {
            self.nodes[from].node.transmitted(session, message.len());
            self.drain(from);
        }
        if let Some(session) = self.sessions.get(&(to, from)).copied() {
            self.nodes[to].node.handle_message(rng, session, &message);
            self.drain(to);
        }
    }

    /// Deliver until no message is in flight. Panics on (what looks like) a livelock.
    pub fn run_until_quiet(&mut self, rng: &mut ChaCha20Rng) -> u64 {
        const LIMIT: u64 = 200_000;
        let mut n = 0;
        while self.step(rng) {
            n += 1;
            assert!(n < LIMIT, "[{}] no quiescence after {LIMIT} deliveries", self.label);
        }
        n
    }

    /// Crash node `i` (dropping its connections and anything not persisted)
    /// and rebuild it from its records.
    pub fn crash(&mut self, rng: &mut ChaCha20Rng, i: usize) {
        for j in 0..self.nodes.len() {
            if j != i {
                self.disconnect(i, j);
            }
        }
        self.outside_links.retain(|(n, _, _)| *n != i);
        let label = self.label.clone();
        let sn = &mut self.nodes[i];
        // A restart reads the index: documents load when something needs them.
        sn.node = rebuild_from_index(rng, &sn.identity, &sn.config, &sn.records, &format!("{label} node {i}"));
        sn.crashes += 1;
        sn.unwritten.clear();
        self.drain(i);
    }

    /// Node `i`'s document, if readable.
    pub fn read<T>(&self, i: usize, doc: &DocId, f: impl FnOnce(&AutoCommit) -> T) -> Option<T> {
        self.nodes[i].node.read(doc, f).ok()
    }

    /// Sorted Automerge heads of node `i`'s copy of `doc`.
    pub fn heads(&self, i: usize, doc: &DocId) -> Option<Vec<ChangeHash>> {
        self.read(i, doc, heads_of)
    }

    /// Node `i`'s copy of `doc` as JSON.
    pub fn json(&self, i: usize, doc: &DocId) -> Option<serde_json::Value> {
        self.read(i, doc, json_of)
    }

    /// Every persisted value of node `i` (all documents).
    pub fn all_values(&self, i: usize) -> impl Iterator<Item = &Vec<u8>> {
        self.nodes[i].records.values().flat_map(|ns| ns.values())
    }

    /// Persisted records of node `i` for `doc`.
    pub fn records(&self, i: usize, doc: &DocId) -> BTreeMap<Vec<u8>, Vec<u8>> {
        self.nodes[i].records.get(doc).cloned().unwrap_or_default()
    }
}

/// Load `doc` into `node` from `records`, which the node wrote itself and
/// which must therefore load without problems.
fn load_clean(node: &mut Node, rng: &mut ChaCha20Rng, doc: DocId, records: &BTreeMap<Vec<u8>, Vec<u8>>, label: &str) {
    let records = records.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let report = node
        .load_doc(rng, doc, records)
        .unwrap_or_else(|e| panic!("[{label}] load_doc failed: {e}"));
    assert!(
        report.problems.is_empty(),
        "[{label}] own records did not load cleanly: {:?}",
        report.problems
    );
}

/// A fresh node rebuilt from `records` (as a runtime does at start-up),
/// every document loaded.
pub fn rebuild(
    rng: &mut ChaCha20Rng,
    identity: &DeviceIdentity,
    config: &NodeConfig,
    records: &Records,
    label: &str,
) -> Node {
    rebuild_with(rng, identity, config, records, label, false)
}

/// A fresh node that holds every document of `records` without loading
/// it (from its index entry), as a runtime opening a home does; a document
/// without an intact entry is loaded.
pub fn rebuild_from_index(
    rng: &mut ChaCha20Rng,
    identity: &DeviceIdentity,
    config: &NodeConfig,
    records: &Records,
    label: &str,
) -> Node {
    rebuild_with(rng, identity, config, records, label, true)
}

fn rebuild_with(
    rng: &mut ChaCha20Rng,
    identity: &DeviceIdentity,
    config: &NodeConfig,
    records: &Records,
    label: &str,
    from_index: bool,
) -> Node {
    let mut node = Node::new(identity.clone(), config.clone());
    for (doc, ns) in records {
        let entry = ns.get(synkro_core::INDEX_RECORD).filter(|_| from_index);
        match entry.map(|v| synkro_core::DocSummary::decode(v)) {
            Some(Ok(summary)) => node.add_unloaded(*doc, summary),
            _ => load_clean(&mut node, rng, *doc, ns, label),
        }
    }
    if !from_index {
        // Loading emits nothing a runtime must act on; drop anything anyway.
        // (From the index, the writes of entries rebuilt from records are
        // left for the caller to carry out.)
        while node.poll_effect().is_some() {}
    }
    node
}

/// Sorted heads of a document.
pub fn heads_of(d: &AutoCommit) -> Vec<ChangeHash> {
    let mut h = d.clone().get_heads();
    h.sort();
    h
}

/// A document's content as JSON.
pub fn json_of(d: &AutoCommit) -> serde_json::Value {
    serde_json::to_value(automerge::AutoSerde::from(d)).expect("documents serialise")
}

/// The chunks among persisted values: (change chunks, snapshots).
pub fn stored_chunks(ns: &BTreeMap<Vec<u8>, Vec<u8>>) -> (Vec<SealedChunk>, Vec<SealedChunk>) {
    ns.values()
        .filter_map(|v| SealedChunk::decode(v).ok())
        .partition(|c| c.covers().is_none())
}

/// Does `needle` occur in `hay`?
pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

/// Decode messages of a trace, panicking on garbage (nodes only send valid frames).
pub fn decode_all(trace: &[(usize, usize, Vec<u8>)]) -> Vec<(usize, usize, Message)> {
    trace
        .iter()
        .map(|(f, t, b)| (*f, *t, Message::decode(b).expect("nodes send valid frames")))
        .collect()
}
