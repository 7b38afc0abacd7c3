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
//! A runtime owns one [`Node`] per device and drives it like this:
//!
//! 1. On start, for every document in storage, call [`Node::load_doc`] with
//!    its records. Damaged records are skipped and listed in the report.
//! 2. Feed inputs as they happen: app calls ([`Node::change`],
//!    [`Node::create_doc`], [`Node::share`], ...), connections
//!    ([`Node::peer_connected`], [`Node::peer_disconnected`]) and each
//!    received message ([`Node::handle_message`]).
//! 3. Call [`Node::flush`] when a document's flush window closes (e.g. 50 ms
//!    after its first unsealed change): edits become one sealed chunk.
//! 4. After every input, drain [`Node::poll_effect`] until it returns `None`
//!    and execute the effects **in order**: [`Effect::Persist`] writes must
//!    be durable before any later [`Effect::Send`] leaves, because the
//!    `Have` messages we send acknowledge what we store.
//! 5. Once a `Send`'s bytes are handed to the connection (written to the
//!    socket, say), report them with [`Node::transmitted`]. A node keeps at
//!    most [`NodeConfig::send_window`] bytes per peer waiting there and holds
//!    the rest of a large transfer back until then, so memory stays bounded
//!    however slow the peer.
//!
//! Nothing in this crate panics on input from peers, disk or apps; errors
//! are typed ([`CoreError`], [`VerifyError`], [`DecodeError`]).
//!
//! ## Example: two devices, an invitation, and sync
//!
//! ```
//! use automerge::{ReadDoc, transaction::Transactable, ROOT};
//! use rand_chacha::{ChaCha20Rng, rand_core::SeedableRng};
//! use synkro_core::{DeviceIdentity, Effect, Node, NodeConfig, Role};
//!
//! let mut rng = ChaCha20Rng::from_seed([42; 32]);
//! let mut alice = Node::new(DeviceIdentity::generate(&mut rng), NodeConfig::default());
//! let mut bob = Node::new(DeviceIdentity::generate(&mut rng), NodeConfig::default());
//!
//! let doc = alice.create_doc(&mut rng)?;
//! alice.change(&doc, |d| d.put(ROOT, "title", "groceries"))?;
//! alice.flush(&mut rng, &doc)?;
//! let token = alice.share(&mut rng, &doc, Role::Write)?;
//! bob.join(&mut rng, &token)?;
//!
//! // A toy transport: deliver Send effects until both are quiet.
//! let (a, b) = (alice.member_id(), bob.member_id());
//! alice.peer_connected(b);
//! bob.peer_connected(a);
//! loop {
//!     let mut moved = false;
//!     while let Some(e) = alice.poll_effect() {
//!         if let Effect::Send { message, .. } = e {
//!             alice.transmitted(&b, message.len());
//!             bob.handle_message(&mut rng, a, &message);
//!             moved = true;
//!         }
//!     }
//!     while let Some(e) = bob.poll_effect() {
//!         if let Effect::Send { message, .. } = e {
//!             bob.transmitted(&a, message.len());
//!             alice.handle_message(&mut rng, b, &message);
//!             moved = true;
//!         }
//!     }
//!     if !moved { break; }
//! }
//! let title = bob.read(&doc, |d| d.get(ROOT, "title").unwrap().unwrap().0.to_string())?;
//! assert_eq!(title, "\"groceries\"");
//! # Ok::<(), synkro_core::CoreError>(())
//! ```
#![warn(missing_docs)]

pub mod access;
mod backup;
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
pub mod vv;

pub use access::{AccessLog, AccessState, Role};
pub use automerge;
pub use chunk::{ChunkRef, Part, SealedChunk};
pub use ephemeral::{MAX_EPHEMERAL_LEN, SealedEphemeral};
pub use error::{CoreError, DecodeError, ParseIdError, VerifyError};
pub use identity::DeviceIdentity;
pub use ids::{DocId, KeyId, MemberId, OpHash};
pub use invite::InviteToken;
pub use message::{MAX_FRAME_LEN, Message, PROTOCOL_VERSION, Refusal};
pub use node::{DocInfo, Effect, Event, LoadReport, Node, NodeConfig, Origin, SyncStatus};
pub use replica::CompactionPolicy;
pub use vv::VersionVector;
