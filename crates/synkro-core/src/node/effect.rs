//! What a [`Node`](super::Node) asks of its runtime ([`Effect`]) and tells
//! the application ([`Event`]), and the reports it answers queries with.

use automerge::Patch;

use crate::access::Role;
use crate::ids::{DocId, MemberId, OpHash};
use crate::message::Refusal;
use crate::vv::VersionVector;

/// One sync session with a peer, from [`Node::peer_connected`]. A newer
/// session with the same peer replaces it; inputs naming an old session are
/// ignored.
///
/// [`Node::peer_connected`]: super::Node::peer_connected
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SessionId(pub(super) u64);

/// One [`Effect::Persist`], to report back with [`Node::persisted`].
///
/// [`Node::persisted`]: super::Node::persisted
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WriteId(pub(super) u64);

/// Something the runtime must do for the node.
///
/// Writes of one document must be carried out in the order they are
/// polled; writes of different documents and everything else may run at
/// once. The node itself holds back what must wait for a write (its
/// acknowledgements, the chunks it just sealed) until the runtime reports
/// the write durable with [`Node::persisted`](super::Node::persisted).
#[derive(Debug)]
pub enum Effect {
    /// Write records of a document atomically and durably, then report
    /// [`Node::persisted`](super::Node::persisted)`(write)`.
    Persist {
        /// Names this write.
        write: WriteId,
        /// Document (the storage namespace).
        doc: DocId,
        /// Records to insert or overwrite.
        puts: Vec<(Vec<u8>, Vec<u8>)>,
        /// Records to remove.
        deletes: Vec<Vec<u8>>,
    },
    /// Read every record of a document held but not in memory and hand
    /// them to [`Node::load_doc`](super::Node::load_doc) (or report
    /// [`Node::load_failed`](super::Node::load_failed)): something waits for it.
    Load {
        /// Document (the storage namespace).
        doc: DocId,
    },
    /// Send an encoded [`Message`](crate::Message) on a session, then
    /// report its size with [`Node::transmitted`](super::Node::transmitted)
    /// once it is handed to the connection.
    Send {
        /// The session.
        session: SessionId,
        /// The peer at its other end.
        peer: MemberId,
        /// Encoded message.
        message: Vec<u8>,
    },
    /// End a session (the peer misbehaved); the node has forgotten it already.
    Disconnect {
        /// The session.
        session: SessionId,
        /// The peer at its other end.
        peer: MemberId,
        /// Why, for the logs.
        reason: String,
    },
    /// Write again every [`Persist`](Effect::Persist) reported with
    /// [`WriteFailure::Full`] and not written since, in their order:
    /// there may be room now.
    RetryWrites,
    /// A guest node's edits of `doc` ([`NodeConfig::guest`](super::NodeConfig::guest)),
    /// encoded Automerge changes, oldest first: hand them to the host,
    /// which seals and stores them
    /// ([`Node::take_from_guest`](super::Node::take_from_guest)). Until
    /// the host has stored them they exist only in this node.
    ForHost {
        /// Document.
        doc: DocId,
        /// The changes.
        changes: Vec<Vec<u8>>,
    },
    /// Tell the application.
    Event(Event),
}

/// Why an [`Effect::Persist`] was not carried out (see
/// [`Node::persist_failed`](super::Node::persist_failed)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteFailure {
    /// No room (a full disk, a browser's quota): nothing was written, and
    /// the same write may succeed later. The runtime keeps it and writes
    /// it again on [`Effect::RetryWrites`].
    Full,
    /// Storage failed for good (an `fsync` failed, the store is
    /// poisoned): nothing more will be written.
    Failed,
}

/// Whether the node can store what it receives
/// ([`Node::storage_state`](super::Node::storage_state)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StorageState {
    /// Writes succeed.
    #[default]
    Ok,
    /// A write failed for lack of space and waits to be retried: data
    /// from peers is refused with [`Refusal::StorageFull`] meanwhile, local
    /// edits are kept in memory and written once there is room.
    Full,
    /// Storage failed for good: data from peers is refused with
    /// [`Refusal::StorageFailed`]; what is held is still served.
    Failed,
}

/// Where a document change came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// This device.
    Local,
    /// A peer (which may have forwarded others' changes).
    Remote(MemberId),
}

/// Notifications for the application.
#[derive(Clone, Debug)]
pub enum Event {
    /// The document's content changed.
    DocChanged {
        /// Document.
        doc: DocId,
        /// What changed, as Automerge patches.
        patches: Vec<Patch>,
        /// Who changed it.
        origin: Origin,
    },
    /// The access log changed (members, roles, keys).
    AccessChanged {
        /// Document.
        doc: DocId,
    },
    /// A document arrived (e.g. after joining).
    DocAdded {
        /// Document.
        doc: DocId,
    },
    /// A peer reported (and, after receiving from us, acknowledged as
    /// durably stored) what it holds of a document.
    PeerHas {
        /// Peer.
        peer: MemberId,
        /// Document.
        doc: DocId,
        /// Its version vector.
        vv: VersionVector,
        /// Its access-log heads.
        heads: Vec<OpHash>,
    },
    /// An ephemeral message from a member (see [`Node::send_ephemeral`]).
    Ephemeral {
        /// Document.
        doc: DocId,
        /// Who wrote it (checked: a member who may read the document).
        from: MemberId,
        /// What they sent.
        data: Vec<u8>,
    },
    /// Data from a peer was refused (forged, unauthorised, unreadable).
    Rejected {
        /// Who sent it.
        peer: Option<MemberId>,
        /// Document.
        doc: DocId,
        /// Why.
        reason: String,
    },
    /// Whether the node can store what it receives changed.
    Storage(StorageState),
    /// A peer refused data of `doc` that this node sent it: until that
    /// changes, the document is stuck there ([`SyncStatus::refused`]).
    PeerRefused {
        /// The peer.
        peer: MemberId,
        /// Document.
        doc: DocId,
        /// Why.
        reason: Refusal,
    },
}

/// A document's facts for display.
#[derive(Clone, Debug)]
pub struct DocInfo {
    /// Document.
    pub doc: DocId,
    /// Local name.
    pub name: Option<String>,
    /// This device's role (None: not, or not yet, a member).
    pub my_role: Option<Role>,
    /// Members and roles.
    pub members: Vec<(MemberId, Role)>,
    /// Version vector held.
    pub vv: VersionVector,
    /// Access-log ops held.
    pub log_ops: usize,
    /// Change chunks and snapshots held.
    pub chunks: usize,
    /// Sealed bytes held.
    pub stored_bytes: usize,
    /// Can this device read the content?
    pub readable: bool,
}

/// Per document shared with one peer, whether the two are in sync, from
/// the peer's own (durable) acknowledgements. See [`Node::sync_status`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncStatus {
    /// The peer acknowledged holding everything we hold, and we hold
    /// everything it reported.
    pub synced: Vec<DocId>,
    /// Shared with the peer, with something left to exchange.
    pub unsynced: Vec<DocId>,
    /// Joined, but nothing has arrived from anyone yet.
    pub pending: Vec<DocId>,
    /// Held here, but the peer is not a member (it will not be sent).
    pub not_shared: Vec<DocId>,
    /// Documents (also in `unsynced`) of which the peer refused data we
    /// sent, and why: the last refusal since it last acknowledged them.
    pub refused: Vec<(DocId, Refusal)>,
}

impl SyncStatus {
    /// Nothing left to exchange with this peer.
    pub fn is_complete(&self) -> bool {
        self.unsynced.is_empty() && self.pending.is_empty()
    }
}

/// What [`Node::load_doc`] found.
#[derive(Clone, Debug, Default)]
pub struct LoadReport {
    /// Records that failed verification and were skipped.
    pub problems: Vec<String>,
}
