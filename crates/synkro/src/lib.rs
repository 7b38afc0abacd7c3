//! # synkro
//!
//! Local-first, end-to-end encrypted Automerge documents that sync.
//!
//! A [`Repo`] keeps documents on the device; every edit works offline, is
//! sealed (encrypted, signed) into a chunk at once (or, while edits come
//! fast, with the others of a short flush window) and written durably before any peer hears of it. Peers and relays exchange
//! sealed chunks; relays and other `replicate` members store and forward
//! them without being able to read them. Access (read, write, admin,
//! replicate) is a signed log inside each document; revoking a member
//! rotates the document key.
//!
//! This crate is the async shell around the sans-IO [`synkro_core`]: on
//! tokio natively, on the browser's event loop in WebAssembly: one driver
//! task per repo carries out what the core asks (see `driver.rs`).
//! Transports attach peers with [`Repo::attach_peer`] and [`Repo::deliver`];
//! [`link`] connects two repos in one process.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), synkro::Error> {
//! use synkro::{Repo, Role};
//! use serde_json::json;
//!
//! let alice = Repo::in_memory().await?;
//! let list = alice.create().await?;
//! list.set("title", &json!("Trip"))?;
//!
//! // Bob joins with a token (send it over a private channel).
//! let bob = Repo::in_memory().await?;
//! let bobs_list = bob.join(&list.share(Role::Write).await?).await?;
//! let link = synkro::link::connect(&alice, &bob).await?;
//! let mut changes = bobs_list.subscribe();
//! while bobs_list.get("title").ok().flatten().is_none() {
//!     changes.recv().await;
//! }
//! bobs_list.set("items", &json!(["tent"]))?;
//! bobs_list.flush().await?;
//! # let mut alices = list.subscribe();
//! # while list.get("items").ok().flatten().is_none() { alices.recv().await; }
//! assert_eq!(list.get("items/0")?, Some(json!("tent")));
//! # drop(link); Ok(()) }
//! ```
#![warn(missing_docs)]

pub mod blob;
mod doc;
mod driver;
mod error;
pub mod home;
pub mod json;
pub mod link;
pub mod net;
mod repo;
mod rt;

pub use async_broadcast::RecvError;
pub use blob::{Blob, BlobId, BlobMeta, BlobRef};
pub use doc::{DocChanges, DocHandle, EphemeralMessages, Lagged};
pub use error::{Error, ErrorKind};
pub use repo::{CloseReason, Events, FrameSender, HangUp, LoadProblem, Repo, RepoConfig, RepoStats};
pub use synkro_core::chunk::UNSEALED;
pub use synkro_core::{
    CompactionPolicy, DeviceIdentity, DocId, DocInfo, Event, InviteToken, MAX_EPHEMERAL_LEN, MemberId, NodeConfig,
    Origin, Refusal, Role, SessionId, StorageState, SyncStatus, VersionVector, automerge,
};
pub use synkro_storage::{BlobStore, Storage};

/// The README's examples, compiled as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
