//! [`NatsStorage`]: the `Storage` trait over one JetStream stream.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use async_nats::HeaderMap;
use async_nats::jetstream::consumer::{DeliverPolicy, push};
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::stream::{LastRawMessageErrorKind, Stream};
use async_nats::jetstream::{self as js};
use futures::{StreamExt, TryStreamExt};
use synkro_storage::frame::{decode_frame, encode_write};
use synkro_storage::{Gathered, Loaded, Namespace, Problem, Storage, StorageError, WriteOp, check_ops};
use tracing::{debug, warn};

use crate::known::{Known, UNSURE};
use crate::log::{self, Entry, Replay, Replayed};
use crate::{ClusterConfig, ClusterError};

/// Room left in a message for its headers.
const HEADER_ROOM: usize = 1024;
/// How long a read may wait for the next message of a log.
const READ_STALL: Duration = Duration::from_secs(10);
/// A log is rewritten as one message when it holds at least this many
/// messages and more than twice the bytes of its live records.
const COMPACT_MESSAGES: usize = 64;

/// Documents kept in a NATS JetStream stream: each document's writes are
/// messages on its own subject, `<prefix>.<64 hex digits of the namespace>`,
/// replicated by JetStream at the stream's replication factor.
///
/// What the `Storage` contract asks, and how it is kept:
/// - **Atomic**: a write is one message (or, when larger than the server's
///   `max_payload`, parts that count only once the last one is stored; see
///   the `log` module).
/// - **Durable when it returns**: `write` returns after JetStream's publish
///   acknowledgement, which the stream leader sends once a majority of the
///   stream's replicas have the message (2 of 3 at R3).
/// - **Not poisoned by an outage**: when NATS does not confirm, the error is
///   [`StorageError::Unavailable`] and the repo keeps the write and tries it
///   again; each message carries a `Nats-Msg-Id`, so a retry within the
///   stream's duplicate window is not stored twice (and replaying a write
///   twice leaves the same records anyway).
/// - **Damage is reported**, never trusted: every message is a checksummed
///   frame, read as untrusted bytes.
///
/// A log is compacted when it is read and has grown to more than twice its
/// live records: one message with every live record replaces it
/// (`Nats-Rollup: sub`), on the condition that nothing was written to the
/// subject since it was read (`Nats-Expected-Last-Subject-Sequence`).
///
/// Writes are conditional too, so that the index entry each one carries is
/// known to count every write before it, or is marked unsure when another
/// store wrote first (the `known` module).
#[derive(Clone)]
pub struct NatsStorage {
    /// Names this store's messages, so that its watcher skips them.
    writer: String,
    counts: Arc<Counts>,
    /// What the repo holds of each log (see the `known` module).
    known: Arc<Known>,
    /// Told how long each acknowledged publish took (the relay's histogram).
    on_publish: Arc<OnceLock<PublishObserver>>,
    js: js::Context,
    stream: Stream,
    prefix: String,
    /// Largest payload one message may carry.
    part_max: usize,
}

impl NatsStorage {
    /// Open (or create) the stream.
    pub(crate) async fn open(client: async_nats::Client, config: &ClusterConfig) -> Result<Self, ClusterError> {
        let max_payload = client.server_info().max_payload;
        let js = js::new(client.clone());
        let stream = crate::layout::open_stream(&js, &client, config).await?;
        Ok(NatsStorage {
            writer: message_id(),
            counts: Arc::default(),
            known: Arc::default(),
            on_publish: Arc::default(),
            js,
            stream,
            prefix: config.subject_prefix.clone(),
            part_max: max_payload.saturating_sub(HEADER_ROOM).max(HEADER_ROOM),
        })
    }

    fn subject(&self, ns: &Namespace) -> String {
        format!("{}.{}", self.prefix, hex::encode(ns))
    }

    async fn publish(&self, subject: &str, headers: HeaderMap, payload: Vec<u8>) -> Result<u64, Failed> {
        let started = Instant::now();
        let published = self.publish_once(subject, headers, payload).await;
        match &published {
            Ok(_) => {
                self.counts.published.fetch_add(1, Ordering::Relaxed);
                if let Some(observe) = self.on_publish.get() {
                    observe(started.elapsed());
                }
            }
            // Another store wrote first: not a failure, the write follows.
            Err(Failed::Conflict) => {
                self.counts.conflicts.fetch_add(1, Ordering::Relaxed);
            }
            Err(Failed::Other(_)) => {
                self.counts.publish_failures.fetch_add(1, Ordering::Relaxed);
            }
        }
        published
    }

    async fn publish_once(&self, subject: &str, mut headers: HeaderMap, payload: Vec<u8>) -> Result<u64, Failed> {
        headers.insert(log::WRITER, self.writer.as_str());
        let ack = self
            .js
            .publish_with_headers(subject.to_owned(), headers, payload.into())
            .await
            .map_err(|e| Failed::Other(unavailable(e)))?;
        let ack = ack.await.map_err(|e| match e.kind() {
            PublishErrorKind::MaxPayloadExceeded => Failed::Other(StorageError::TooLarge {
                len: self.part_max,
                max: self.part_max,
            }),
            PublishErrorKind::WrongLastSequence => Failed::Conflict,
            _ => Failed::Other(unavailable(e)),
        })?;
        Ok(ack.sequence)
    }

    /// Publish one message of a write to `ns`'s log on the condition that
    /// the log's last message is the last one the repo holds; when another
    /// store wrote in between, publish it anyway, marked [`UNSURE`] (as is
    /// every message of a write once one is: `unsure` carries it on).
    async fn publish_in_order(
        &self,
        ns: &Namespace,
        mut headers: HeaderMap,
        payload: Vec<u8>,
        unsure: &mut bool,
    ) -> Result<u64, StorageError> {
        let subject = self.subject(ns);
        let (mut expected, lacking) = self.known.expect(ns);
        *unsure |= lacking;
        let mut passed = None;
        for _ in 0..8 {
            headers.insert("Nats-Expected-Last-Subject-Sequence", expected.to_string().as_str());
            if *unsure {
                headers.insert(UNSURE, "1");
            }
            match self.publish(&subject, headers.clone(), payload.clone()).await {
                Ok(seq) => {
                    self.known.wrote(ns, seq, passed);
                    return Ok(seq);
                }
                Err(Failed::Conflict) => {
                    expected = self.last_sequence(&subject).await?;
                    debug!(
                        subject,
                        expected, "another store wrote first; this write is marked unsure"
                    );
                    passed = Some(expected);
                    *unsure = true;
                }
                Err(Failed::Other(e)) => return Err(e),
            }
        }
        Err(unavailable(
            "the document's log kept changing under eight writes in a row",
        ))
    }

    /// The sequence of the last message on `subject` (0: none).
    async fn last_sequence(&self, subject: &str) -> Result<u64, StorageError> {
        match self.stream.get_last_raw_message_by_subject(subject).await {
            Ok(m) => Ok(m.sequence),
            Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(0),
            Err(e) => Err(unavailable(e)),
        }
    }

    /// Read a log whole: every message on the subject up to the last one
    /// there when the read began.
    async fn replay(&self, subject: &str) -> Result<Option<(Replayed, Last)>, StorageError> {
        let last = match self.stream.get_last_raw_message_by_subject(subject).await {
            Ok(m) => m.sequence,
            Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => return Ok(None),
            Err(e) => return Err(unavailable(e)),
        };
        let mut messages = self.ordered(subject.to_owned(), DeliverPolicy::All).await?;
        let mut replay = Replay::default();
        loop {
            let message = next_within(&mut messages, "log").await?;
            let seq = message.info().map_err(unavailable)?.stream_sequence;
            let header = |name: &str| message.headers.as_ref().and_then(|h| h.get(name)).map(|v| v.as_str());
            replay.push(Entry {
                seq,
                part: header(log::PART),
                write: header(log::WRITE),
                payload: &message.payload,
            });
            if seq >= last {
                let unsure = header(UNSURE).is_some();
                return Ok(Some((replay.finish(), Last { seq: last, unsure })));
            }
        }
    }

    /// A document's records, read whole, and the sequence of the last
    /// message read (0: an empty log). A long log is compacted on the way,
    /// unless its last write was marked unsure (the rollup would hide it).
    async fn read_log(&self, ns: &Namespace) -> Result<(Loaded, u64), StorageError> {
        let subject = self.subject(ns);
        let Some((replayed, last)) = self.replay(&subject).await? else {
            return Ok((Loaded::default(), 0));
        };
        let mut last_seq = last.seq;
        let live_bytes: usize = replayed.live.iter().map(|(k, v)| k.len() + v.len()).sum();
        if replayed.problems.is_empty()
            && !replayed.unfinished
            && !last.unsure
            && replayed.messages >= COMPACT_MESSAGES
            && replayed.bytes > 2 * live_bytes
            && let Some(seq) = self.compact(&subject, &replayed, last.seq).await
        {
            last_seq = seq;
        }
        let problems = replayed
            .problems
            .iter()
            .map(|&(seq, kind)| {
                warn!(subject, seq, %kind, "damaged message in a document's log");
                Problem {
                    location: format!("nats:{}/{subject}", self.stream.cached_info().config.name),
                    offset: seq,
                    kind,
                }
            })
            .collect();
        let loaded = Loaded {
            records: replayed.live.into_iter().collect(),
            problems,
        };
        Ok((loaded, last_seq))
    }

    /// Counts since this store was opened.
    pub fn counts(&self) -> CountsNow {
        let c = &self.counts;
        CountsNow {
            published: c.published.load(Ordering::Relaxed),
            publish_failures: c.publish_failures.load(Ordering::Relaxed),
            heard: c.heard.load(Ordering::Relaxed),
            follow_lag: c.follow_lag.load(Ordering::Relaxed),
            conflicts: c.conflicts.load(Ordering::Relaxed),
        }
    }

    /// Call `observe` with the time each acknowledged publish took (from
    /// sending it to JetStream's acknowledgement); one observer per store.
    pub fn observe_publishes(&self, observe: impl Fn(Duration) + Send + Sync + 'static) {
        let _ = self.on_publish.set(Box::new(observe));
    }

    /// The connection and the documents' stream, as NATS reports them now
    /// (asks the stream's leader; at most a few seconds).
    pub async fn health(&self) -> Health {
        let connected = self.js.client().connection_state() == async_nats::connection::State::Connected;
        let info = tokio::time::timeout(Duration::from_secs(2), self.stream.get_info()).await;
        let stream = match info {
            Ok(Ok(info)) => {
                // A lone server (no JetStream cluster) reports no cluster.
                let electing = info.cluster.as_ref().is_some_and(|c| c.leader.is_none());
                let cluster = info.cluster.unwrap_or_default();
                Ok(StreamHealth {
                    replicas: info.config.num_replicas,
                    electing,
                    leader: cluster.leader,
                    lagging: cluster
                        .replicas
                        .iter()
                        .filter(|p| p.offline || !p.current)
                        .map(|p| p.name.clone())
                        .collect(),
                    messages: info.state.messages,
                    bytes: info.state.bytes,
                })
            }
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("no answer in 2 s".into()),
        };
        Health { connected, stream }
    }

    /// A write of deletes only: nothing is written where nothing is
    /// stored, and a namespace it leaves with no record is purged (so it is
    /// no longer listed), up to the message read: a write that came after
    /// stays.
    async fn delete_only(&self, ns: &Namespace, ops: Vec<WriteOp>) -> Result<(), StorageError> {
        let subject = &self.subject(ns);
        self.known.forget(ns);
        let Some((replayed, last)) = self.replay(subject).await? else {
            return Ok(());
        };
        let mut live = replayed.live;
        for op in &ops {
            if let WriteOp::Delete { key } = op {
                live.remove(key);
            }
        }
        if !live.is_empty() {
            let mut headers = HeaderMap::new();
            headers.insert("Nats-Msg-Id", message_id().as_str());
            self.publish(subject, headers, encode_write(&ops)?).await?;
            return Ok(());
        }
        self.stream
            .purge()
            .filter(subject)
            .sequence(last.seq + 1)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    /// An ordered consumer of `filter`'s messages from `from` on (gap-free
    /// across reconnections), and its messages.
    async fn ordered(&self, filter: String, from: DeliverPolicy) -> Result<push::Ordered, StorageError> {
        let consumer = self
            .stream
            .create_consumer(push::OrderedConfig {
                deliver_subject: self.js.client().new_inbox(),
                filter_subject: filter,
                deliver_policy: from,
                ..Default::default()
            })
            .await
            .map_err(unavailable)?;
        consumer.messages().await.map_err(unavailable)
    }

    /// Writes other stores make to the stream from now on (the relays of a
    /// cluster each hear the others'), in the stream's order and without
    /// gaps, also across reconnections.
    pub async fn watch(&self) -> Result<Watch, StorageError> {
        let messages = self.ordered(format!("{}.*", self.prefix), DeliverPolicy::New).await?;
        Ok(Watch {
            store: self.clone(),
            messages,
        })
    }

    /// Rewrite a log as one message, unless something was written since.
    async fn compact(&self, subject: &str, replayed: &Replayed, last: u64) -> Option<u64> {
        let ops: Vec<WriteOp> = replayed
            .live
            .iter()
            .map(|(k, v)| WriteOp::Put {
                key: k.clone(),
                value: v.clone(),
            })
            .collect();
        let frame = encode_write(&ops).ok()?;
        if frame.len() > self.part_max {
            return None;
        }
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Rollup", "sub");
        headers.insert("Nats-Expected-Last-Subject-Sequence", last.to_string().as_str());
        headers.insert("Nats-Msg-Id", message_id().as_str());
        match self.publish(subject, headers, frame).await {
            Ok(seq) => {
                debug!(subject, messages = replayed.messages, "log compacted");
                Some(seq)
            }
            // Written to meanwhile, or NATS did not answer: the next read
            // tries again.
            Err(e) => {
                debug!(subject, error = %StorageError::from(e), "log not compacted");
                None
            }
        }
    }
}

type PublishObserver = Box<dyn Fn(Duration) + Send + Sync>;

/// A publish JetStream refused or did not confirm.
enum Failed {
    /// Its `Nats-Expected-Last-Subject-Sequence` did not hold.
    Conflict,
    Other(StorageError),
}

impl From<Failed> for StorageError {
    fn from(f: Failed) -> Self {
        match f {
            Failed::Conflict => unavailable("the document's log changed under a conditional write"),
            Failed::Other(e) => e,
        }
    }
}

/// The last message a read of a log reached.
struct Last {
    seq: u64,
    /// It was marked [`UNSURE`].
    unsure: bool,
}

#[derive(Default)]
struct Counts {
    published: AtomicU64,
    publish_failures: AtomicU64,
    heard: AtomicU64,
    follow_lag: AtomicU64,
    conflicts: AtomicU64,
}

/// What [`NatsStorage::counts`] returns.
#[derive(Debug, Clone, Copy, Default)]
pub struct CountsNow {
    /// Messages JetStream acknowledged.
    pub published: u64,
    /// Publishes that failed (no answer, no quorum, refused).
    pub publish_failures: u64,
    /// Writes of other stores handed out by [`Watch::next`].
    pub heard: u64,
    /// Messages of the stream not yet delivered to the watcher when it
    /// last received one (how far behind the other relays it is).
    pub follow_lag: u64,
    /// Conditional writes another store's write came before (each then
    /// published marked unsure; see [`NatsStorage`]).
    pub conflicts: u64,
}

/// What [`NatsStorage::health`] found.
#[derive(Debug, Clone)]
pub struct Health {
    /// The client is connected to a NATS server.
    pub connected: bool,
    /// The documents' stream, or why JetStream did not say.
    pub stream: Result<StreamHealth, String>,
}

/// The documents' stream, as its leader reports it.
#[derive(Debug, Clone)]
pub struct StreamHealth {
    /// Its replication factor.
    pub replicas: usize,
    /// The server leading it (`None` on a lone server, or during an election).
    pub leader: Option<String>,
    /// Its servers are electing a leader: writes wait.
    pub electing: bool,
    /// Replicas (other than the leader) that are offline or behind.
    pub lagging: Vec<String>,
    /// Messages and bytes it holds.
    pub messages: u64,
    /// Bytes it holds.
    pub bytes: u64,
}

/// A document another store wrote to, and the records it put.
pub struct Written {
    /// The document's namespace.
    pub ns: Namespace,
    /// The records put: the write's, or after a write too large for one
    /// message, every live record of the document.
    pub puts: Vec<(Vec<u8>, Vec<u8>)>,
    /// The stream sequence it was read up to: tell [`Watch::taken`] once
    /// the repo holds it.
    pub seq: u64,
}

/// What [`NatsStorage::watch`] returns.
pub struct Watch {
    store: NatsStorage,
    messages: push::Ordered,
}

impl Watch {
    /// The repo now holds a [`Written`] (it was handed to
    /// `Repo::stored_elsewhere`): the store's next write to document `ns`
    /// counts what was written up to `seq`.
    pub fn taken(&self, ns: &Namespace, seq: u64) {
        self.store.known.taken(ns, seq);
    }

    /// The next write another store made; `None` once the connection is
    /// closed for good.
    pub async fn next(&mut self) -> Option<Result<Written, StorageError>> {
        loop {
            let message = match self.messages.next().await? {
                Ok(m) => m,
                Err(e) => return Some(Err(unavailable(e))),
            };
            let header = |name: &str| {
                message
                    .headers
                    .as_ref()
                    .and_then(|h| h.get(name))
                    .map(|v| v.as_str().to_owned())
            };
            let Ok(info) = message.info() else { continue };
            let seq = info.stream_sequence;
            self.store.counts.follow_lag.store(info.pending, Ordering::Relaxed);
            if header(log::WRITER).as_deref() == Some(self.store.writer.as_str()) {
                continue;
            }
            self.store.counts.heard.fetch_add(1, Ordering::Relaxed);
            let subject = message.subject.as_str();
            let Some(ns) = subject.strip_prefix(&format!("{}.", self.store.prefix)).and_then(unhex) else {
                continue;
            };
            match header(log::PART) {
                None => match decode_frame(&message.payload) {
                    Ok(ops) => {
                        let puts = ops
                            .into_iter()
                            .filter_map(|op| match op {
                                WriteOp::Put { key, value } => Some((key, value)),
                                WriteOp::Delete { .. } => None,
                            })
                            .collect();
                        return Some(Ok(Written { ns, puts, seq }));
                    }
                    Err(kind) => warn!(subject, %kind, "damaged message from another relay skipped"),
                },
                // A write in parts: once its last part is there, read the
                // document's records whole.
                Some(part) if part.split_once('/').is_some_and(|(i, n)| i == n) => {
                    return Some(self.store.read_log(&ns).await.map(|(loaded, seq)| Written {
                        ns,
                        puts: loaded.records,
                        seq,
                    }));
                }
                Some(_) => {}
            }
        }
    }
}

#[async_trait::async_trait]
impl Storage for NatsStorage {
    async fn write(&self, ns: &Namespace, ops: Vec<WriteOp>) -> Result<(), StorageError> {
        check_ops(&ops)?;
        if ops.is_empty() {
            return Ok(());
        }
        if ops.iter().all(|op| matches!(op, WriteOp::Delete { .. })) {
            return self.delete_only(ns, ops).await;
        }
        let frame = encode_write(&ops)?;
        let id = message_id();
        let mut unsure = false;
        if frame.len() <= self.part_max {
            let mut headers = HeaderMap::new();
            headers.insert("Nats-Msg-Id", id.as_str());
            self.publish_in_order(ns, headers, frame, &mut unsure).await?;
            return Ok(());
        }
        let parts = log::split(&frame, self.part_max);
        let n = parts.len();
        for (i, part) in parts.into_iter().enumerate() {
            let mut headers = HeaderMap::new();
            headers.insert("Nats-Msg-Id", format!("{id}.{}", i + 1).as_str());
            headers.insert(log::WRITE, id.as_str());
            headers.insert(log::PART, format!("{}/{n}", i + 1).as_str());
            self.publish_in_order(ns, headers, part.to_vec(), &mut unsure).await?;
        }
        Ok(())
    }

    async fn load(&self, ns: &Namespace) -> Result<Loaded, StorageError> {
        let (loaded, last) = self.read_log(ns).await?;
        self.known.loaded(ns, last);
        Ok(loaded)
    }

    /// One pass over the stream's last message of every document: each
    /// write carries the records it puts, and every write of a synkro
    /// repo carries the document's index entry, so the last write holds the
    /// current entry (atomically with the records it counts). Where the
    /// last message is not a whole write (a part, a delete-only write) or
    /// does not put `key`, that document is read whole.
    async fn gather(&self, key: &[u8]) -> Result<Vec<Gathered>, StorageError> {
        let mut info = self.stream.clone();
        let info = info.info().await.map_err(unavailable)?;
        if info.state.messages == 0 {
            return Ok(Vec::new());
        }
        let mut messages = self
            .ordered(format!("{}.*", self.prefix), DeliverPolicy::LastPerSubject)
            .await?;
        let mut out = Vec::new();
        // Documents whose last write does not settle `key`: read whole.
        let mut whole = Vec::new();
        loop {
            let message = next_within(&mut messages, "index").await?;
            let info = message.info().map_err(unavailable)?;
            let (seq, pending) = (info.stream_sequence, info.pending);
            let subject = message.subject.as_str();
            if let Some(ns) = subject.strip_prefix(&format!("{}.", self.prefix)).and_then(unhex) {
                let has = |name| message.headers.as_ref().and_then(|h| h.get(name)).is_some();
                if has(UNSURE) {
                    // Its entry may miss another relay's write: the repo
                    // loads the document, which rebuilds the entry.
                    out.push(Gathered {
                        ns,
                        value: None,
                        problems: Vec::new(),
                    });
                    if pending == 0 {
                        break;
                    }
                    continue;
                }
                let last = match decode_frame(&message.payload) {
                    _ if has(log::PART) => Ok(None),
                    // The last op on `key` decides; none, or a delete: read it whole.
                    Ok(ops) => Ok(ops
                        .into_iter()
                        .rev()
                        .find_map(|op| match op {
                            WriteOp::Put { key: k, value } if k == key => Some(Some(value)),
                            WriteOp::Delete { key: k } if k == key => Some(None),
                            _ => None,
                        })
                        .flatten()),
                    Err(kind) => Err(kind),
                };
                match last {
                    Ok(Some(value)) => out.push(Gathered {
                        ns,
                        value: Some(value),
                        problems: Vec::new(),
                    }),
                    Ok(None) => whole.push(ns),
                    Err(kind) => out.push(Gathered {
                        ns,
                        value: None,
                        problems: vec![Problem {
                            location: format!("nats:{}/{subject}", self.stream.cached_info().config.name),
                            offset: seq,
                            kind,
                        }],
                    }),
                }
            }
            if pending == 0 {
                break;
            }
        }
        for ns in whole {
            let (loaded, _) = self.read_log(&ns).await?;
            let value = match loaded.problems.is_empty() {
                true => loaded.records.into_iter().find(|(k, _)| k == key).map(|(_, v)| v),
                false => None,
            };
            out.push(Gathered {
                ns,
                value,
                problems: loaded.problems,
            });
        }
        out.sort_unstable_by_key(|g| g.ns);
        Ok(out)
    }

    async fn namespaces(&self) -> Result<Vec<Namespace>, StorageError> {
        let mut subjects = self
            .stream
            .info_with_subjects(format!("{}.*", self.prefix))
            .await
            .map_err(unavailable)?;
        let mut out = Vec::new();
        while let Some((subject, _count)) = subjects.try_next().await.map_err(unavailable)? {
            if let Some(ns) = subject.strip_prefix(&format!("{}.", self.prefix)).and_then(unhex) {
                out.push(ns);
            }
        }
        out.sort_unstable();
        Ok(out)
    }

    async fn remove(&self, ns: &Namespace) -> Result<(), StorageError> {
        self.stream
            .purge()
            .filter(self.subject(ns))
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}

/// The next message of a read that expects more (`what` names it in
/// errors), or why there is none: a stall of [`READ_STALL`] counts as NATS
/// not answering.
async fn next_within(messages: &mut push::Ordered, what: &str) -> Result<js::Message, StorageError> {
    match tokio::time::timeout(READ_STALL, messages.next()).await {
        Ok(Some(Ok(m))) => Ok(m),
        Ok(Some(Err(e))) => Err(unavailable(e)),
        Ok(None) => Err(unavailable(format!("the {what}'s consumer ended early"))),
        Err(_) => Err(unavailable(format!("no message of the {what} for 10 s"))),
    }
}

fn unavailable(e: impl std::fmt::Display) -> StorageError {
    StorageError::Unavailable { detail: e.to_string() }
}

/// A fresh id for `Nats-Msg-Id`: 128 random bits.
fn message_id() -> String {
    let mut bytes = [0u8; 16];
    // No randomness means no safe id: fall back to the time, still unique
    // enough within one process for the duplicate window.
    if getrandom::fill(&mut bytes).is_err() {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        bytes = now.to_le_bytes();
    }
    hex::encode(bytes)
}

fn unhex(s: &str) -> Option<Namespace> {
    let mut ns = [0u8; 32];
    hex::decode_to_slice(s, &mut ns).ok()?;
    Some(ns)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_round_trip_through_subjects() {
        let ns = [0xabu8; 32];
        assert_eq!(unhex(&hex::encode(ns)), Some(ns));
        assert_eq!(unhex("ab"), None);
        assert_eq!(unhex(&"zz".repeat(32)), None);
    }

    #[test]
    fn message_ids_differ() {
        assert_ne!(message_id(), message_id());
        assert_eq!(message_id().len(), 32);
    }
}
