//! # synkro-core
//!
//! The sans-IO heart of synkro: identities, the signed access log, sealed
//! chunks, version vectors and the sync state machine. It does no IO, reads
//! no clock and owns no randomness: callers pass a CSPRNG into every call
//! that needs one, feed in bytes, and carry out the effects it returns. The
//! same code therefore runs natively, in a browser, in the relay and in a
//! deterministic simulation.
//!
//! ## The run-loop contract
//!
//! A runtime owns one [`Node`] per device and drives it like this, in the
//! manner of quinn-proto and str0m:
//!
//! 1. On start, for every document in storage, call [`Node::load_doc`] with
//!    its records (damaged records are skipped and listed in the report),
//!    then carry out the effects it queued (a repair may write).
//! 2. Feed inputs as they happen: app calls ([`Node::change`],
//!    [`Node::create_doc`], [`Node::share`], ...), sessions
//!    ([`Node::peer_connected`] returns the [`SessionId`] the session's
//!    inputs name; [`Node::peer_disconnected`]), each received message
//!    ([`Node::handle_message`]), the progress of sends
//!    ([`Node::transmitted`]) and of writes ([`Node::persisted`]).
//! 3. After every batch of inputs, call [`Node::handle_timeout`] with the
//!    time: it arms the timers those inputs started and fires the ones due
//!    (an edit is sealed into a chunk at once, or, if its document was
//!    sealed less than a flush window ago, a window later with the edits
//!    made meanwhile). Then sleep until
//!    [`Node::poll_timeout`] (or the next input) and call it again.
//! 4. Drain [`Node::poll_effect`] until it returns `None` and carry the
//!    effects out: [`Effect::Persist`] (writes of one document in order;
//!    report each with [`Node::persisted`] once durable, or with
//!    [`Node::persist_failed`]: a full disk's writes are kept and carried
//!    out again on [`Effect::RetryWrites`]), [`Effect::Send`]
//!    (report its bytes with [`Node::transmitted`] once handed to the
//!    connection), [`Effect::Disconnect`] (the node has forgotten that
//!    session), [`Effect::Load`] (read a document for
//!    [`Node::load_doc`]), [`Effect::ForHost`] (only a guest node, which
//!    shares a store another node writes, see [`NodeConfig::guest`]: its
//!    edits, for that node), [`Effect::Event`] (for the app). The node itself holds back
//!    every message that acknowledges or carries data until the write that
//!    stores it is reported durable, so a runtime may run writes of
//!    different documents, and sends, at once. At most
//!    [`NodeConfig::send_window`] bytes per peer wait to be transmitted;
//!    the rest of a large transfer follows as they are.
//!
//! The node keeps no clock and no randomness of its own: "now" is an
//! [`Instant`] the runtime counts from an epoch of its choosing, and calls
//! that need randomness take a CSPRNG. Nothing in this crate panics on
//! input from peers, disk or apps; errors are typed ([`CoreError`],
//! [`VerifyError`], [`DecodeError`]).
//!
//! ## Example: two devices, an invitation, and sync
//!
//! ```
//! use std::time::Duration;
//! use automerge::{ReadDoc, transaction::Transactable, ROOT};
//! use rand_chacha::{ChaCha20Rng, rand_core::SeedableRng};
//! use synkro_core::{DeviceIdentity, Effect, Instant, Node, NodeConfig, Role, SessionId};
//!
//! let mut rng = ChaCha20Rng::from_seed([42; 32]);
//! let mut alice = Node::new(DeviceIdentity::generate(&mut rng), NodeConfig::default());
//! let mut bob = Node::new(DeviceIdentity::generate(&mut rng), NodeConfig::default());
//!
//! let doc = alice.create_doc(&mut rng)?;
//! alice.change(&doc, |d| d.put(ROOT, "title", "groceries"))?;
//! let token = alice.share(&mut rng, &doc, Role::Write)?;
//! bob.join(&mut rng, &token)?;
//!
//! // A toy runtime: writes are durable at once, sends arrive at once.
//! let (a, b) = (alice.member_id(), bob.member_id());
//! let at_alice = alice.peer_connected(b);
//! let at_bob = bob.peer_connected(a);
//! let mut now = Instant::ZERO;
//! let run = |node: &mut Node, now: Instant, out: &mut Vec<Vec<u8>>| {
//!     node.handle_timeout(&mut ChaCha20Rng::from_seed([7; 32]), now);
//!     while let Some(e) = node.poll_effect() {
//!         match e {
//!             Effect::Persist { write, .. } => node.persisted(write),
//!             Effect::Send { session, message, .. } => {
//!                 node.transmitted(session, message.len());
//!                 out.push(message);
//!             }
//!             _ => {}
//!         }
//!     }
//! };
//! // Alice's edit is sealed at her first `handle_timeout`.
//! for _ in 0..20 {
//!     let (mut to_bob, mut to_alice) = (Vec::new(), Vec::new());
//!     run(&mut alice, now, &mut to_bob);
//!     run(&mut bob, now, &mut to_alice);
//!     for m in to_bob { bob.handle_message(&mut rng, at_bob, &m); }
//!     for m in to_alice { alice.handle_message(&mut rng, at_alice, &m); }
//!     now = now + Duration::from_millis(10);
//! }
//! let title = bob.read(&doc, |d| d.get(ROOT, "title").unwrap().unwrap().0.to_string())?;
//! assert_eq!(title, "\"groceries\"");
//! # let _: SessionId = at_alice;
//! # Ok::<(), synkro_core::CoreError>(())
//! ```
#![warn(missing_docs)]

pub mod access;
mod backup;
pub mod blob;
pub mod chunk;
pub mod crypto;
mod encoding;
pub mod ephemeral;
pub mod error;
mod fence;
pub mod identity;
pub mod ids;
pub mod invite;
pub mod limits;
pub mod message;
mod node;
mod replica;
pub mod time;
pub mod vv;

pub use access::{AccessLog, AccessState, Role};
pub use automerge;
pub use chunk::{ChunkRef, Part, SealedChunk};
pub use ephemeral::{MAX_EPHEMERAL_LEN, SealedEphemeral};
pub use error::{AutomergeFailure, CoreError, DecodeError, ParseIdError, VerifyError};
pub use identity::DeviceIdentity;
pub use ids::{DocId, KeyId, MemberId, OpHash};
pub use invite::InviteToken;
pub use message::{MAX_FRAME_LEN, Message, PROTOCOL_VERSION, Refusal};
pub use node::{
    ChangeInfo, DocInfo, Effect, Event, LoadReport, Node, NodeConfig, Origin, SessionId, StorageState, SyncStatus,
    WriteFailure, WriteId,
};
pub use replica::{CompactionPolicy, DocSummary, INDEX_RECORD};
pub use time::Instant;
pub use vv::VersionVector;
