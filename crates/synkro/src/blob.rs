//! Blobs: files attached to a document without entering its history.
//!
//! [`DocHandle::attach`] cuts a file into chunks, seals each under the
//! document's key and stores them with a signed manifest; the [`BlobRef`]
//! it returns is what the app keeps in the document (any JSON value will
//! do: it serialises). [`Repo::blob`] reads the file back, checking every
//! chunk against the manifest. Both stream: a file never has to fit in
//! memory.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), synkro::Error> {
//! use synkro::{BlobMeta, Repo};
//!
//! let repo = Repo::in_memory().await?;
//! let trip = repo.create().await?;
//! let photo = vec![7u8; 300_000];
//! let meta = BlobMeta { mime: "image/jpeg".into(), name: "tent.jpg".into() };
//! let blob = trip.attach(&photo[..], meta).await?;
//! trip.set("photo", &serde_json::to_value(&blob).unwrap())?;
//!
//! let back = repo.blob(&blob).await?.to_vec().await?;
//! assert_eq!(back, photo);
//! # Ok(()) }
//! ```

use futures::io::{AsyncRead, AsyncReadExt};
use futures::stream::{self, Stream};
use synkro_core::blob::{BlobChunkId, BlobReader, MAX_CHUNK, SealedBlobChunk};
use synkro_storage::BlobKey;

use crate::{DocHandle, Error, Repo};
pub use synkro_core::blob::{BlobId, BlobMeta, BlobRef};

/// Bytes read from the app's reader at a time.
const READ_LEN: usize = MAX_CHUNK;

/// Chunks stored per write while attaching: a few MiB, one directory sync.
const PUT_BATCH: usize = 16;

impl DocHandle {
    /// Attach the file `data` reads to this document: its bytes are cut
    /// into chunks, sealed under the document's current key and stored with
    /// a manifest signed by this device. Returns the reference to keep in
    /// the document. Needs the write role.
    pub async fn attach(&self, data: impl AsyncRead + Unpin, meta: BlobMeta) -> Result<BlobRef, Error> {
        self.attach_with_progress(data, meta, |_| {}).await
    }

    /// [`attach`](Self::attach), calling `progress` with the bytes read so
    /// far each time chunks are stored.
    pub async fn attach_with_progress(
        &self,
        mut data: impl AsyncRead + Unpin,
        meta: BlobMeta,
        mut progress: impl FnMut(u64),
    ) -> Result<BlobRef, Error> {
        let doc = self.id();
        let inner = &self.repo.inner;
        let mut writer = inner.call_checked(|n, _| n.blob_writer(&doc, meta))??;
        let mut buf = vec![0; READ_LEN];
        let (mut read, mut sealed) = (0u64, Vec::new());
        loop {
            let n = data.read(&mut buf).await.map_err(|source| Error::Io {
                path: "attached data".into(),
                source,
            })?;
            if n == 0 {
                break;
            }
            read += n as u64;
            sealed.extend(writer.push(&buf[..n]).map_err(synkro_core::CoreError::from)?);
            if sealed.len() >= PUT_BATCH {
                self.put_chunks(std::mem::take(&mut sealed)).await?;
                progress(read);
            }
        }
        let (rest, manifest) = inner.call_checked(|n, rng| n.finish_blob(rng, writer))??;
        sealed.extend(rest);
        self.put_chunks(sealed).await?;
        // The manifest last: one that is stored names chunks that are.
        let key = BlobKey::manifest(manifest.id().0);
        inner
            .blobs
            .put(&doc.0, vec![(key, manifest.encoded().to_vec())])
            .await?;
        progress(read);
        let reader = inner.call_checked(|n, _| n.open_blob(&doc, manifest.encoded()))??;
        tracing::debug!(%doc, blob = %manifest.id(), bytes = read, chunks = manifest.chunks().len(), "blob attached");
        Ok(reader.blob_ref().map_err(synkro_core::CoreError::from)?)
    }

    async fn put_chunks(&self, chunks: Vec<SealedBlobChunk>) -> Result<(), Error> {
        let items = chunks.into_iter().map(|c| (BlobKey::chunk(c.id.0), c.sealed)).collect();
        Ok(self.repo.inner.blobs.put(&self.id.0, items).await?)
    }
}

impl Repo {
    /// Read the blob `blob` names, chunk by chunk, each checked against
    /// its signed manifest. Fails with [`Error::BlobMissing`] when the
    /// manifest or a chunk is not on this device (or is damaged here).
    pub async fn blob(&self, blob: &BlobRef) -> Result<Blob, Error> {
        let handle = self.find(&blob.doc).await?;
        let missing = |chunk| Error::BlobMissing { blob: blob.id, chunk };
        let bytes = self
            .inner
            .blobs
            .get(&blob.doc.0, &BlobKey::manifest(blob.id.0))
            .await?
            .ok_or_else(|| missing(None))?;
        let reader = self.inner.call(|n, _| n.open_blob(&blob.doc, &bytes))?;
        if reader.manifest().id() != blob.id {
            // Damaged on disk: the bytes are not those the id names.
            return Err(missing(None));
        }
        Ok(Blob {
            handle,
            reader,
            next: 0,
            read: 0,
        })
    }
}

/// A blob being read ([`Repo::blob`]): its chunks in order.
pub struct Blob {
    handle: DocHandle,
    reader: BlobReader,
    next: usize,
    read: u64,
}

impl Blob {
    /// Bytes of the file.
    pub fn size(&self) -> u64 {
        self.reader.manifest().size()
    }

    /// Bytes returned so far (progress, against [`size`](Self::size)).
    pub fn read(&self) -> u64 {
        self.read
    }

    /// The next chunk of the file, checked and opened; `None` at the end.
    pub async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, Error> {
        let Some((id, _)) = self.reader.manifest().chunks().get(self.next).copied() else {
            return Ok(None);
        };
        let plain = self.open(self.next, id).await?;
        self.next += 1;
        self.read += plain.len() as u64;
        Ok(Some(plain))
    }

    async fn open(&self, index: usize, id: BlobChunkId) -> Result<Vec<u8>, Error> {
        let missing = Error::BlobMissing {
            blob: self.reader.manifest().id(),
            chunk: Some(index),
        };
        let repo = &self.handle.repo;
        let Some(sealed) = repo.inner.blobs.get(&self.handle.id.0, &BlobKey::chunk(id.0)).await? else {
            return Err(missing);
        };
        self.reader.open_chunk(index, &sealed).map_err(|e| {
            tracing::warn!(blob = %self.reader.manifest().id(), chunk = index, error = %e, "a stored blob chunk is damaged");
            missing
        })
    }

    /// The whole file in memory.
    pub async fn to_vec(mut self) -> Result<Vec<u8>, Error> {
        let mut out = Vec::with_capacity(usize::try_from(self.size()).unwrap_or(0).min(64 << 20));
        while let Some(chunk) = self.next_chunk().await? {
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }

    /// The chunks as a stream.
    pub fn into_stream(self) -> impl Stream<Item = Result<Vec<u8>, Error>> {
        stream::try_unfold(self, |mut blob| async move {
            Ok(blob.next_chunk().await?.map(|chunk| (chunk, blob)))
        })
    }

    /// The file as an [`AsyncRead`] (errors become [`std::io::Error`]s).
    pub fn into_async_read(self) -> impl AsyncRead {
        use futures::TryStreamExt;
        Box::pin(self.into_stream().map_err(std::io::Error::other)).into_async_read()
    }
}
