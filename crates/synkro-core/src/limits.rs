//! Every size limit of the formats, in one place.
//!
//! Sealing, storage, loading and the wire all read these constants, so
//! nothing is ever sealed that a reader would refuse: a batch of changes is
//! split across chunks of at most [`MAX_PART_LEN`] bytes of plaintext, and a
//! single change or snapshot larger than that is sealed as several *parts*
//! (consecutive chunks that readers put back together and apply as one).
//! Every chunk sealed therefore stays far below [`MAX_CHUNK_LEN`], the most a
//! peer accepts; [`MAX_FRAME_LEN`] leaves room for the message around it.

/// Most plaintext sealed into one chunk (1 MiB): batches of changes are
/// split across chunks of at most this much, and a change or snapshot that
/// is larger is sealed in parts of this size.
pub const MAX_PART_LEN: usize = 1 << 20;

/// Most parts one change or snapshot may be split into; with
/// [`MAX_PART_LEN`], the largest single change or snapshot is 256 MiB.
/// A change larger than that is refused before it is kept
/// ([`CoreError::ChangeTooLarge`](crate::CoreError::ChangeTooLarge)).
pub const MAX_PARTS: u32 = 256;

/// Largest change or snapshot, in bytes (what [`MAX_PARTS`] parts hold).
pub const MAX_ASSEMBLED_LEN: usize = MAX_PART_LEN * MAX_PARTS as usize;

/// Largest encoded chunk accepted from a peer (16 MiB). Chunks this node
/// seals hold at most [`MAX_PART_LEN`] of plaintext, plus a header.
pub const MAX_CHUNK_LEN: usize = 16 << 20;

/// Largest encoded chunk read back from this device's own storage (64 MiB,
/// the storage backends' largest value). Releases before parts existed
/// could store a chunk over [`MAX_CHUNK_LEN`]; such a record still loads,
/// and its author folds it into a snapshot sealed in parts.
pub const MAX_STORED_CHUNK_LEN: usize = 64 << 20;

/// Largest encoded sync message: one chunk plus the message around it.
pub const MAX_FRAME_LEN: usize = MAX_CHUNK_LEN + (1 << 16);

/// Chunks and access ops are batched into messages of at most this size
/// (a single chunk or op larger than it travels alone).
pub const BATCH_TARGET_LEN: usize = 1 << 20;

const _: () = assert!(MAX_PART_LEN + (1 << 16) < MAX_CHUNK_LEN);
const _: () = assert!(BATCH_TARGET_LEN <= MAX_CHUNK_LEN);
const _: () = assert!(MAX_CHUNK_LEN <= MAX_STORED_CHUNK_LEN);
