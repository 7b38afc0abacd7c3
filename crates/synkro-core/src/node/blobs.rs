//! Blobs of a document: a new one is sealed under the document's current
//! key by a member who may write it; one read back (from a store or a peer)
//! is opened only if its manifest is signed by a member who may write the
//! document and names a key this device holds. Storing and moving the
//! bytes is the runtime's (see [`crate::blob`]).

use rand_core::CryptoRng;

use super::Node;
use crate::access::Role;
use crate::blob::{BlobManifest, BlobMeta, BlobReader, BlobWriter, SealedBlobChunk};
use crate::error::{CoreError, VerifyError};
use crate::ids::DocId;

impl Node {
    /// A writer for a new blob of `doc`, sealed under the document's current
    /// key: feed it the file ([`BlobWriter::push`]), then
    /// [`finish_blob`](Self::finish_blob). The document must be loaded and
    /// this device able to write it.
    pub fn blob_writer(&self, doc: &DocId, meta: BlobMeta) -> Result<BlobWriter, CoreError> {
        let r = self.replica(doc)?;
        if !r.role_of(&self.me).is_some_and(Role::can_write) {
            return Err(CoreError::NotAllowed {
                doc: *doc,
                needed: Role::Write,
            });
        }
        let (key_id, key) = r.current_key()?;
        Ok(BlobWriter::new(*doc, key_id, &key, meta))
    }

    /// Seals the rest of a blob and signs its manifest as this device.
    pub fn finish_blob<R: CryptoRng + ?Sized>(
        &self,
        rng: &mut R,
        writer: BlobWriter,
    ) -> Result<(Vec<SealedBlobChunk>, BlobManifest), CoreError> {
        Ok(writer.finish(rng, &self.identity)?)
    }

    /// Opens the manifest `bytes` of a blob of `doc` (untrusted: read from
    /// a store or sent by a peer) to read its chunks. Refused when it is
    /// not a valid signed manifest of `doc`, when its author may not write
    /// `doc` (a member removed since keeps the blobs they attached), or
    /// when this device lacks the key it names.
    pub fn open_blob(&self, doc: &DocId, bytes: &[u8]) -> Result<BlobReader, CoreError> {
        let manifest = BlobManifest::decode(bytes)?;
        if manifest.doc() != *doc {
            return Err(VerifyError::Invalid("blob manifest of another document").into());
        }
        let r = self.replica(doc)?;
        let author = manifest.author();
        let state = r.log.state();
        if !(state.role(&author).is_some_and(Role::can_write) || state.revoked.contains(&author)) {
            return Err(VerifyError::Invalid("blob attached by a member who may not write the document").into());
        }
        let key = r
            .keys
            .get(&manifest.key())
            .cloned()
            .ok_or(CoreError::NoReadAccess(*doc))?;
        Ok(BlobReader::new(manifest, key))
    }
}
